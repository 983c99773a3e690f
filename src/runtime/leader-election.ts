import { Gauge, type Registry } from 'prom-client';
import type { KubeClient } from '../kube/client.js';
import { ApiError } from '../kube/api-error.js';
import { LEASES } from '../kube/resources.js';
import type { KubeObject } from '../kube/types.js';
import { logger } from '../util/logger.js';
import { errorMessage } from '../util/errors.js';
import { sleep } from '../util/sleep.js';

/** client-go's defaults: a dead leader is replaced within about lease duration + retry period. */
export const DEFAULT_LEASE_DURATION_MS = 15_000;
export const DEFAULT_RENEW_DEADLINE_MS = 10_000;
export const DEFAULT_RETRY_PERIOD_MS = 2_000;

export interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

export interface Lease extends KubeObject {
  spec?: LeaseSpec;
}

export interface LeaderElectorOptions {
  readonly client: KubeClient;
  readonly namespace: string;
  readonly name: string;
  /** Unique per process: hostname plus a random suffix. */
  readonly identity: string;
  readonly leaseDurationMs?: number;
  readonly renewDeadlineMs?: number;
  readonly retryPeriodMs?: number;
  readonly metrics?: LeaderElectionMetrics;
}

/**
 * Leader election on a `coordination.k8s.io/v1` Lease, with client-go's rules: a lease is expired
 * when its record has not changed for `leaseDuration` as measured on OUR clock since we last saw it
 * change (so clock skew between nodes does not matter); writes use optimistic concurrency; the
 * leader renews every retry period and gives up leadership when it cannot renew within the renew
 * deadline; on a clean stop it releases the lease so a successor takes over at once.
 */
export class LeaderElector {
  private readonly log = logger('leader-election');
  private observed?: { record: string; at: number };
  private leading = false;

  constructor(private readonly options: LeaderElectorOptions) {}

  get isLeader(): boolean {
    return this.leading;
  }

  /**
   * Blocks until this process becomes leader (resolves true) or `signal` aborts (resolves false).
   */
  async acquire(signal: AbortSignal): Promise<boolean> {
    const retry = this.options.retryPeriodMs ?? DEFAULT_RETRY_PERIOD_MS;
    this.log.info({ lease: `${this.options.namespace}/${this.options.name}`, identity: this.options.identity }, 'waiting to become leader');
    while (!signal.aborted) {
      if (await this.tryAcquireOrRenew()) {
        this.setLeading(true);
        this.log.info({ identity: this.options.identity }, 'became leader');
        return true;
      }
      await sleep(jittered(retry), signal);
    }
    return false;
  }

  /**
   * Renews the lease every retry period while `signal` is not aborted. Resolves 'lost' when a
   * renewal has not succeeded within the renew deadline, 'stopped' when `signal` aborted. The lease
   * is not released here: the caller stops its work first, then calls {@link release}.
   */
  async hold(signal: AbortSignal): Promise<'lost' | 'stopped'> {
    const retry = this.options.retryPeriodMs ?? DEFAULT_RETRY_PERIOD_MS;
    const deadline = this.options.renewDeadlineMs ?? DEFAULT_RENEW_DEADLINE_MS;
    let lastRenew = Date.now();
    while (!signal.aborted) {
      await sleep(retry, signal);
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- the signal may abort during the await above
      if (signal.aborted) break;
      if (await this.tryAcquireOrRenew()) {
        lastRenew = Date.now();
      } else if (Date.now() - lastRenew > deadline) {
        this.setLeading(false);
        this.log.error({ identity: this.options.identity }, 'could not renew the lease within the renew deadline; leadership lost');
        return 'lost';
      }
    }
    return 'stopped';
  }

  /** Gives the lease up (holder cleared, 1 s duration) so another process takes over immediately. */
  async release(): Promise<void> {
    if (!this.leading) return;
    this.setLeading(false);
    try {
      const lease = await this.options.client.get<Lease>(LEASES, this.options.name, this.options.namespace);
      if (lease.spec?.holderIdentity !== this.options.identity) return;
      await this.options.client.replace(LEASES, {
        ...lease,
        spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime() },
      });
      this.log.info({ identity: this.options.identity }, 'released the lease');
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, 'could not release the lease; it will expire on its own');
    }
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { client, namespace, name, identity } = this.options;
    const leaseSeconds = Math.ceil((this.options.leaseDurationMs ?? DEFAULT_LEASE_DURATION_MS) / 1000);
    const now = microTime();
    try {
      const lease = await client.getIfExists<Lease>(LEASES, name, namespace);
      if (!lease) {
        await client.create<Lease>(LEASES, {
          metadata: { name, namespace },
          spec: { holderIdentity: identity, leaseDurationSeconds: leaseSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 },
        });
        return true;
      }
      const spec = lease.spec ?? {};
      const record = JSON.stringify([spec.holderIdentity, spec.renewTime, spec.leaseDurationSeconds]);
      if (this.observed?.record !== record) this.observed = { record, at: Date.now() };
      const holder = spec.holderIdentity ?? '';
      const held = holder !== '' && holder !== identity;
      const expired = Date.now() - this.observed.at > (spec.leaseDurationSeconds ?? leaseSeconds) * 1000;
      if (held && !expired) return false;
      const transition = holder !== identity;
      await client.replace<Lease>(LEASES, {
        ...lease,
        spec: {
          holderIdentity: identity,
          leaseDurationSeconds: leaseSeconds,
          acquireTime: transition ? now : (spec.acquireTime ?? now),
          renewTime: now,
          leaseTransitions: (spec.leaseTransitions ?? 0) + (transition && holder !== '' ? 1 : 0),
        },
      });
      return true;
    } catch (err) {
      if (!ApiError.isConflict(err)) this.log.warn({ err: errorMessage(err) }, 'lease update failed');
      return false;
    }
  }

  private setLeading(leading: boolean): void {
    this.leading = leading;
    this.options.metrics?.master.set({ name: this.options.name }, leading ? 1 : 0);
  }
}

/** metav1.MicroTime: RFC 3339 with microseconds. */
function microTime(date = new Date()): string {
  return date.toISOString().replace(/Z$/, '000Z');
}

function jittered(ms: number): number {
  return Math.round(ms * (1 + Math.random() * 0.2));
}

export class LeaderElectionMetrics {
  readonly master: Gauge<'name'>;

  constructor(registry: Registry) {
    this.master = new Gauge({
      name: 'leader_election_master_status',
      help: 'Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master',
      labelNames: ['name'],
      registers: [registry],
    });
  }
}

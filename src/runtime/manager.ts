import { Registry, collectDefaultMetrics } from 'prom-client';
import type { KubeClient } from '../kube/client.js';
import type { ResourceType } from '../kube/resources.js';
import type { KubeObject } from '../kube/types.js';
import { logger } from '../util/logger.js';
import { instrumentClient } from './api-metrics.js';
import { Controller, ControllerMetrics, type ControllerOptions } from './controller.js';
import { HealthServer } from './health-server.js';
import { Informer, InformerMetrics, type InformerOptions } from './informer.js';
import { LeaderElectionMetrics, LeaderElector, type LeaderElectorOptions } from './leader-election.js';
import { WorkQueueMetrics } from './work-queue.js';

/**
 * Warm-ups start this long after the informers: their list requests (connection, TLS handshake)
 * go out first, and the warm-up's CPU then overlaps the API server's work on the lists.
 */
const WARM_UP_DELAY_MS = 20;

export interface ManagerOptions {
  readonly client: KubeClient;
  /** `HOST:PORT` for /metrics (and the probes, when both addresses are equal); undefined: off. */
  readonly metricsAddress?: string | undefined;
  /** `HOST:PORT` for /healthz and /readyz; undefined: off. */
  readonly healthAddress?: string | undefined;
  /** Without it every process reconciles (one replica, or tests). */
  readonly leaderElection?: Omit<LeaderElectorOptions, 'client' | 'metrics'> | undefined;
  /** Overrides for every informer this manager creates (tests shorten timeouts). */
  readonly informerDefaults?: Partial<Pick<InformerOptions, 'resyncMs' | 'watchTimeoutRangeS' | 'watchdogGraceMs' | 'backoff'>>;
}

export type StopReason = 'stopped' | 'lost-leadership';

/**
 * Owns what controllers share — the API client, informers (one per resource type and selector),
 * metrics, probes and leader election — and runs them: informers and controllers start only while
 * this process leads, and stop the moment leadership is lost.
 *
 * @example
 *   const mgr = new Manager({ client, healthAddress: ':8081', leaderElection: { namespace, name, identity } });
 *   const pools = mgr.informer(STORAGE_POOLS);
 *   mgr.controller({ name: 'storagepool', reconciler }).watchFor(pools);
 *   await mgr.run(signal);
 */
export class Manager {
  readonly registry = new Registry();
  private readonly log = logger('manager');
  private readonly informers = new Map<string, Informer>();
  private readonly controllers: Controller[] = [];
  private readonly warmUps: { name: string; run: () => void }[] = [];
  private readonly controllerMetrics: ControllerMetrics;
  private readonly queueMetrics: WorkQueueMetrics;
  private readonly informerMetrics: InformerMetrics;
  private elector?: LeaderElector;

  constructor(private readonly options: ManagerOptions) {
    collectDefaultMetrics({ register: this.registry });
    instrumentClient(options.client, this.registry);
    this.controllerMetrics = new ControllerMetrics(this.registry);
    this.queueMetrics = new WorkQueueMetrics(this.registry);
    this.informerMetrics = new InformerMetrics(this.registry);
  }

  get client(): KubeClient {
    return this.options.client;
  }

  get isLeader(): boolean {
    return this.elector ? this.elector.isLeader : true;
  }

  /** The shared informer for a resource type (and selector); created on first use. */
  informer<T extends KubeObject>(
    resource: ResourceType,
    opts: Pick<InformerOptions, 'labelSelector' | 'fieldSelector' | 'namespace'> = {},
  ): Informer<T> {
    const key = JSON.stringify([resource.group, resource.plural, opts.namespace, opts.labelSelector, opts.fieldSelector]);
    let informer = this.informers.get(key);
    if (!informer) {
      informer = new Informer({ ...this.options.informerDefaults, ...opts, client: this.client, resource, metrics: this.informerMetrics });
      this.informers.set(key, informer);
    }
    return informer as unknown as Informer<T>;
  }

  controller(options: Omit<ControllerOptions, 'metrics' | 'queueMetrics'>): Controller {
    const controller = new Controller({ ...options, metrics: this.controllerMetrics, queueMetrics: this.queueMetrics });
    this.controllers.push(controller);
    return controller;
  }

  /**
   * Registers work to do once while the caches fill, before any controller starts (compiling
   * validators, say), so the first reconciles do not pay for it. A failing warm-up is logged and
   * otherwise ignored: the work is then done on first use.
   *
   * @example
   *   mgr.warmUp('StoragePool validator', () => precompileValidator('StoragePool'));
   */
  warmUp(name: string, run: () => void): void {
    this.warmUps.push({ name, run });
  }

  /**
   * Serves probes and metrics, waits for leadership, then runs informers and controllers until
   * `signal` aborts ('stopped': in-flight reconciles finish, the lease is released) or leadership
   * is lost ('lost-leadership': the caller should exit so a restart starts clean, as controller-runtime does).
   */
  async run(signal: AbortSignal): Promise<StopReason> {
    const servers = await this.serve();
    try {
      if (!this.options.leaderElection) {
        await this.startWorkers(signal);
        await new Promise<void>((resolve) =>
          signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true }),
        );
        await this.stopWorkers();
        return 'stopped';
      }
      this.elector = new LeaderElector({
        ...this.options.leaderElection,
        client: this.client,
        metrics: new LeaderElectionMetrics(this.registry),
      });
      if (!(await this.elector.acquire(signal))) return 'stopped';
      const holding = new AbortController();
      const onStop = (): void => holding.abort();
      signal.addEventListener('abort', onStop, { once: true });
      const held = this.elector.hold(holding.signal);
      await this.startWorkers(signal);
      const outcome = await held;
      signal.removeEventListener('abort', onStop);
      // In-flight reconciles finish before the lease is released, so a successor never overlaps us.
      await this.stopWorkers();
      if (outcome === 'lost') return 'lost-leadership';
      await this.elector.release();
      return 'stopped';
    } finally {
      await Promise.all(servers.map((s) => s.close()));
    }
  }

  private async serve(): Promise<HealthServer[]> {
    const { metricsAddress, healthAddress } = this.options;
    const addresses = [...new Set([metricsAddress, healthAddress].filter((a): a is string => a !== undefined && a !== '0'))];
    const servers: HealthServer[] = [];
    for (const address of addresses) {
      const server = new HealthServer(this.registry);
      server.addHealthCheck('ping', () => undefined);
      server.addReadyCheck('informers', () => {
        if (!this.isLeader) return undefined; // a standby is ready: it is healthy and waiting
        const unsynced = [...this.informers.values()].filter((i) => !i.hasSynced()).map((i) => i.resource.plural);
        return unsynced.length > 0 ? `caches not synced yet: ${unsynced.join(', ')}` : undefined;
      });
      await server.listen(address);
      servers.push(server);
    }
    return servers;
  }

  private async startWorkers(signal: AbortSignal): Promise<void> {
    for (const informer of this.informers.values()) informer.start();
    const warmedUp = this.runWarmUps();
    // One abort listener for the whole wait (not one per informer, which trips Node's leak warning).
    let onAbort = (): void => undefined;
    const aborted = new Promise<void>((resolve) => {
      onAbort = () => resolve();
      signal.addEventListener('abort', onAbort, { once: true });
    });
    await Promise.race([Promise.all([...this.informers.values()].map((i) => i.waitForSync())), aborted]);
    signal.removeEventListener('abort', onAbort);
    await warmedUp;
    if (signal.aborted) return;
    this.log.info({ informers: this.informers.size, controllers: this.controllers.length }, 'caches synced; starting controllers');
    for (const controller of this.controllers) controller.start();
  }

  private async runWarmUps(): Promise<void> {
    for (const { name, run } of this.warmUps) {
      // One per macrotask, so list responses are read in between.
      await new Promise((resolve) => setTimeout(resolve, WARM_UP_DELAY_MS));
      const started = performance.now();
      try {
        run();
        this.log.debug({ warmUp: name, ms: Math.round(performance.now() - started) }, 'warmed up');
      } catch (err) {
        this.log.warn({ warmUp: name, err }, 'warm-up failed; the work is done on first use instead');
      }
    }
  }

  private async stopWorkers(): Promise<void> {
    await Promise.all(this.controllers.map((c) => c.stop()));
    await Promise.all([...this.informers.values()].map((i) => i.stop()));
  }
}

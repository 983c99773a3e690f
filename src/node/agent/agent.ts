/**
 * The node agent (`stowage node`): one per node. It keeps one NodeDisk per disk of its node,
 * prepares disks the operator claimed, wipes released volumes and releases disks whose claim was
 * cleared (the claim protocol, DESIGN §2).
 *
 * Everything runs in "passes", one at a time: discover → act on claims → compose → apply. A pass is
 * triggered on start, on an interval, on udev block events, and when a NodeDisk's spec changes.
 * Each NodeDisk's status is composed in ONE place (`desiredStatus`) from in-memory state, and
 * written only when it differs from the live object.
 *
 * This file is the composition and the pass; each step is its own part:
 *   observation.ts      discovery → one named observation per disk or mount (pure)
 *   disk-memory.ts      what the agent remembers per disk between passes, seeded from the live objects
 *   local-claims.ts     prepare / release a Local claim's disk; discovered mounts used as they are
 *   wiping.ts           the recycle protocol: spec.wipe with a volume UID → status.lastWipe
 *   dynamic-pool-sync.ts  hand Dynamic-claimed disks to the pool engine, collect its outcomes
 *   disk-view.ts        observation + memory + engine outcome → the DiskView (pure)
 *   status-writer.ts    DiskView → server-side apply of the NodeDisk and its status
 *   udev-watch.ts       block-device events that trigger a pass early
 */
import type { KubeClient } from '../../kube/client.js';
import { NODE_DISKS } from '../../crds/resource-types.js';
import { NODE_DISK_LABELS, type NodeDisk } from '../../crds/nodedisk.js';
import { Informer } from '../../runtime/informer.js';
import { EventRecorder } from '../../runtime/events.js';
import { logger } from '../../util/logger.js';
import { errorMessage } from '../../util/errors.js';
import type { AgentMetrics } from './agent-metrics.js';
import { ProbeCache, discover } from './discovery.js';
import { DiskMemory } from './disk-memory.js';
import { absentView, presentView, wasDiscovered } from './disk-view.js';
import { syncDynamicPools } from './dynamic-pool-sync.js';
import type { DynamicPoolSync } from './dynamic-pools.js';
import type { FilterSet } from './inventory.js';
import { HandoutRecords } from './handout-records.js';
import { LocalClaims } from './local-claims.js';
import { observe, type Observation } from './observation.js';
import type { Emit } from './preparation.js';
import { readSmart } from './smart.js';
import { ioProblem, readFsErrors } from './io-health.js';
import { labelValue, stamp } from './status.js';
import { NODE_FIELD_MANAGER } from '../field-manager.js';
import { NodeDiskWriter } from './status-writer.js';
import { watchUdev, type UdevWatch } from './udev-watch.js';
import { Wiper } from './wiping.js';

export const DEFAULT_ROOT = '/var/lib/stowage/disks';
export const DEFAULT_DISCOVERY_INTERVAL_MS = 30_000;
export const DEFAULT_HEALTH_INTERVAL_MS = 5 * 60_000;
export const DEFAULT_HEARTBEAT_MS = 10 * 60_000;
export const DEFAULT_MIN_SIZE_BYTES = 16n * 1024n * 1024n;
/** NodeDisks written at once: each is independent; a small pool keeps a 64-disk node quick without flooding the API server. */
const WRITE_CONCURRENCY = 8;
/** smartctl processes at once: SMART reads are slow on busy disks and must not starve the node. */
const SMART_CONCURRENCY = 4;

export interface NodeAgentOptions {
  readonly client: KubeClient;
  readonly nodeName: string;
  /** Explicit allow-list (device paths or loop backing files); when non-empty nothing else is touched. */
  readonly allowDevices?: readonly string[];
  /** Where prepared disks are mounted: `<root>/<nodedisk>`. */
  readonly root?: string;
  /** Directories whose mounted sub-directories are inventoried as NodeDisks of kind Mount. */
  readonly discoveryDirs?: readonly string[];
  readonly include?: FilterSet;
  readonly exclude?: FilterSet;
  readonly minSizeBytes?: bigint;
  readonly discoveryIntervalMs?: number;
  readonly healthIntervalMs?: number;
  /** lastSeenTime and health.checkedTime are refreshed at least this often (and only then, when nothing else changed). */
  readonly heartbeatMs?: number;
  /** Watch `udevadm monitor` for block events (when udevadm exists). Default true. */
  readonly udev?: boolean;
  /** The Dynamic-pool engine; without it, Dynamic claims are reported `Prepared=Unknown`. */
  readonly dynamicPools?: DynamicPoolSync;
  readonly fieldManager?: string;
  /** Counts and times preparations and wipes (stowage_disk_preparations_total, stowage_disk_wipes_total, …). */
  readonly metrics?: AgentMetrics;
}

export interface PassStats {
  readonly disks: number;
  /** API writes (applies) this pass sent. */
  readonly writes: number;
  readonly durationMs: number;
}

/** A running agent. */
export interface NodeAgent {
  readonly nodeName: string;
  /** Runs one pass now (after any running one) and reports it. */
  pass(): Promise<PassStats>;
  /** Resolves when a pass has completed since the call (useful in tests). */
  stop(): Promise<void>;
  /** Total API writes since start. */
  readonly writes: number;
  /** This node's NodeDisks as the agent's cache holds them (for the disk metrics). */
  disks(): readonly NodeDisk[];
}

/** An agent made but not started: `notReady()` answers /readyz while `start()` waits for the API. */
export interface StartableNodeAgent extends NodeAgent {
  /** Resolves once the NodeDisk cache synced and the first pass is done (retrying the API with backoff until then). */
  start(): Promise<void>;
  /** Why the agent is not ready yet (cache not synced, first pass not done), or undefined when it is. */
  notReady(): string | undefined;
}

/** Makes an agent without starting it (the daemon serves /readyz from it while it starts). */
export function createNodeAgent(opts: NodeAgentOptions): StartableNodeAgent {
  return new Agent(opts);
}

/** Starts an agent in this process (the CLI and tests use this). Resolves once the first pass is done. */
export async function startNodeAgent(opts: NodeAgentOptions): Promise<NodeAgent> {
  const agent = new Agent(opts);
  await agent.start();
  return agent;
}

class Agent implements StartableNodeAgent {
  readonly nodeName: string;
  private readonly log;
  private readonly events: EventRecorder;
  private readonly informer: Informer<NodeDisk>;
  private readonly allowDevices: readonly string[];
  private readonly root: string;
  private readonly heartbeatMs: number;
  private readonly abort = new AbortController();
  private timers: NodeJS.Timeout[] = [];
  private udev?: UdevWatch;
  private running?: Promise<PassStats>;
  private queued?: Promise<PassStats>;
  private firstPassDone = false;

  /** In-memory state, seeded from the live objects on start. */
  private readonly memory = new DiskMemory();
  private readonly probeCache = new ProbeCache();
  private readonly claims: LocalClaims;
  private readonly writer: NodeDiskWriter;

  constructor(private readonly opts: NodeAgentOptions) {
    this.nodeName = opts.nodeName;
    this.log = logger('node-agent', { node: opts.nodeName });
    this.allowDevices = [...(opts.allowDevices ?? [])];
    this.root = opts.root ?? DEFAULT_ROOT;
    this.heartbeatMs = opts.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    const manager = opts.fieldManager ?? NODE_FIELD_MANAGER;
    this.events = new EventRecorder(opts.client, manager, opts.nodeName);
    this.informer = new Informer<NodeDisk>({
      client: opts.client,
      resource: NODE_DISKS,
      labelSelector: `${NODE_DISK_LABELS.node}=${labelValue(opts.nodeName)}`,
      resyncMs: 0,
    });
    this.claims = new LocalClaims(
      this.memory,
      new Wiper(this.memory, opts.metrics),
      this.root,
      opts.metrics,
      new HandoutRecords(this.root),
    );
    this.writer = new NodeDiskWriter({
      client: opts.client,
      fieldManager: manager,
      informer: this.informer,
      memory: this.memory,
      heartbeatMs: this.heartbeatMs,
      log: this.log,
      onDevicePathReverted: (name, message) => this.emitter(name)('Warning', 'DevicePathReverted', message),
    });
    this.informer.addHandler({
      added: () => this.trigger(),
      // Only spec changes (claim, wipe, schedulable) are news; our own status writes are not.
      updated: (o, n) => {
        if (o !== n && o.metadata.generation !== n.metadata.generation) this.trigger();
      },
      deleted: (o) => {
        this.writer.forget(o.metadata.name);
        this.trigger();
      },
    });
  }

  get writes(): number {
    return this.writer.writes;
  }

  async start(): Promise<void> {
    this.informer.start();
    await this.informer.waitForSync(this.abort.signal);
    await this.pass();
    this.firstPassDone = true;
    const every = (ms: number): void => {
      const t = setInterval(() => this.trigger(), ms);
      t.unref();
      this.timers.push(t);
    };
    every(this.opts.discoveryIntervalMs ?? DEFAULT_DISCOVERY_INTERVAL_MS);
    every(Math.max(1000, Math.min(this.opts.healthIntervalMs ?? DEFAULT_HEALTH_INTERVAL_MS, this.heartbeatMs)));
    if (this.opts.udev ?? true) this.udev = watchUdev(() => this.trigger(), this.log);
    this.log.info({ allowDevices: this.allowDevices, root: this.root }, 'node agent started');
  }

  disks(): readonly NodeDisk[] {
    return this.informer.list();
  }

  notReady(): string | undefined {
    if (!this.informer.hasSynced()) {
      const why = this.informer.lastError ? `: ${this.informer.lastError}` : '';
      return `waiting for the API server, the NodeDisk cache has not synced yet (retrying with backoff)${why}`;
    }
    return this.firstPassDone ? undefined : 'the first disk inventory pass has not finished';
  }

  async stop(): Promise<void> {
    this.abort.abort();
    for (const t of this.timers) clearInterval(t);
    this.udev?.stop();
    // A pass's failure was logged where it was started (trigger): stop only waits for it to end.
    await this.running?.catch(() => undefined);
    await this.queued?.catch(() => undefined); // likewise
    await this.informer.stop();
    await this.events.drain();
  }

  private trigger(): void {
    if (this.abort.signal.aborted) return;
    void this.pass().catch((err) => this.log.error({ err: errorMessage(err) }, 'pass failed; retrying on the next trigger'));
  }

  /** Passes never overlap; triggers during a pass collapse into one follow-up pass. */
  pass(): Promise<PassStats> {
    if (!this.running) {
      this.running = this.runPass().finally(() => (this.running = undefined));
      return this.running;
    }
    if (!this.queued) {
      // The follow-up pass runs however the current one ends; its failure reaches the current pass's callers.
      this.queued = this.running
        .catch(() => undefined)
        .then(() => {
          this.queued = undefined;
          return this.pass();
        });
    }
    return this.queued;
  }

  // ---------------------------------------------------------------------------------------------

  /** discover → act on claims → (rediscover what acting changed) → health → Dynamic pools → write. */
  private async runPass(): Promise<PassStats> {
    const started = process.hrtime.bigint();
    const writesBefore = this.writes;
    let observations = await this.observe();
    await this.readIo(observations);

    const acted = await Promise.all(
      observations.map((o) =>
        this.act(o).catch((err) => {
          this.log.error({ disk: o.name, err: errorMessage(err) }, 'unexpected error acting on a disk');
          return false;
        }),
      ),
    );
    this.noteAbsentDisks(observations);
    if (acted.some(Boolean)) observations = await this.observe();
    await this.readHealth(observations);
    const dynamic = await syncDynamicPools(this.opts.dynamicPools, this.nodeName, this.informer.list(), observations);

    const engine = this.opts.dynamicPools;
    const heldByEngine = engine?.released ? (devicePath: string) => engine.released!(devicePath) : undefined;
    const present = new Set(observations.map((o) => o.name));
    const views = observations.map((o) =>
      presentView(o, this.informer.get(o.name), this.memory, this.nodeName, dynamic.get(o.name), heldByEngine),
    );
    for (const live of this.informer.list()) {
      const name = live.metadata.name;
      if (present.has(name) || live.spec.nodeName !== this.nodeName) continue;
      views.push(absentView(live, this.memory, this.nodeName, dynamic.get(name)));
    }
    await inBatches(views, WRITE_CONCURRENCY, (v) => this.writer.write(v));
    const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
    return { disks: observations.length, writes: this.writes - writesBefore, durationMs };
  }

  /** Discovers this node's disks and mounts and names them. */
  private async observe(): Promise<Observation[]> {
    const discovery = await discover({
      allowDevices: this.allowDevices,
      discoveryDirs: this.opts.discoveryDirs ?? [],
      cache: this.probeCache,
    });
    const config = {
      allowDevices: this.allowDevices,
      ...(this.opts.include ? { include: this.opts.include } : {}),
      ...(this.opts.exclude ? { exclude: this.opts.exclude } : {}),
      minSizeBytes: this.opts.minSizeBytes ?? DEFAULT_MIN_SIZE_BYTES,
    };
    const { observations, duplicates } = observe(discovery, this.informer.list(), this.nodeName, config);
    for (const { device, identity } of duplicates) {
      this.log.warn({ device, identity }, 'a second device with the same identity (e.g. one file attached twice); ignoring it');
    }
    return observations;
  }

  /** Acts on one observed disk's claim and wipe request. Returns true when something on the host changed. */
  private act(o: Observation): Promise<boolean> {
    const live = this.informer.get(o.name);
    this.memory.seed(o.name, live);
    if (live?.metadata.generation !== undefined) this.memory.actedGeneration.set(o.name, live.metadata.generation);
    return this.claims.act(o, live, this.emitter(o.name));
  }

  /** A prepared disk that vanished keeps its record (it may come back); nothing to do on the host. */
  private noteAbsentDisks(observations: readonly Observation[]): void {
    const present = new Set(observations.map((o) => o.name));
    for (const live of this.informer.list()) {
      const name = live.metadata.name;
      this.memory.seed(name, live);
      if (present.has(name)) continue;
      if (!wasDiscovered(live)) {
        this.memory.prepared.set(name, notDiscovered(live, this.allowDevices));
        continue;
      }
      this.memory.prepared.set(
        name,
        live.spec.claim
          ? { status: 'False', reason: 'NotPresent', message: 'the disk is not attached to the node; it is prepared again when it returns' }
          : { status: 'False', reason: 'NotClaimed', message: 'no pool claims this disk' },
      );
    }
  }

  /**
   * What the kernel shows about each disk, every pass (sysfs reads, cheap): a medium gone, errors on
   * its filesystem. A change is an event on the disk; the Healthy condition says it until it clears.
   */
  private async readIo(observations: readonly Observation[]): Promise<void> {
    await Promise.all(
      observations
        .filter((o) => o.kind === 'Disk')
        .map(async (o) => {
          const f = o.facts!;
          const mountPoint = f.mountPoints.find((m) => m !== '[SWAP]');
          const problem = ioProblem({
            device: o.currentPath,
            sizeBytes: f.raw.sizeBytes,
            mountPoint,
            fsErrors: mountPoint ? await readFsErrors(f.raw.kname) : undefined,
          });
          const before = this.memory.io.get(o.name);
          if (problem) this.memory.io.set(o.name, problem);
          else this.memory.io.delete(o.name);
          if (problem && before?.reason !== problem.reason) this.emitter(o.name)('Warning', problem.reason, problem.message);
          else if (!problem && before)
            this.emitter(o.name)('Normal', 'IOHealthy', `${o.currentPath} answers I/O again and its filesystem reports no errors`);
        }),
    );
  }

  /** SMART health of every disk whose last reading is older than the health interval. */
  private async readHealth(observations: readonly Observation[]): Promise<void> {
    const interval = this.opts.healthIntervalMs ?? DEFAULT_HEALTH_INTERVAL_MS;
    const due = observations.filter((o) => o.kind === 'Disk' && Date.now() - (this.memory.health.get(o.name)?.at ?? 0) >= interval);
    await inBatches(due, SMART_CONCURRENCY, async (o) => {
      const health = await readSmart(o.currentPath);
      const now = new Date();
      this.memory.health.set(o.name, { health, at: now.getTime(), checkedAt: stamp(now) });
    });
  }

  /** Logs a destructive or notable step and records it as an event on the disk's NodeDisk. */
  private emitter(name: string): Emit {
    return (type, reason, message) => {
      const live = this.informer.get(name);
      this.log.info({ disk: name, reason }, message);
      // emit never rejects: the recorder logs an event it could not write, and the step goes on.
      if (live) void this.events.emit(live, type, reason, message);
    };
  }
}

/**
 * The Prepared state of a NodeDisk the agent never discovered a disk for (made by hand): it is not
 * "prepared again when it returns" — nothing is ever done for it. Says why and what to do.
 */
export function notDiscovered(live: NodeDisk, allowDevices: readonly string[]): { status: 'False'; reason: string; message: string } {
  const path = live.spec.devicePath;
  const why =
    allowDevices.length > 0 && !allowDevices.includes(path)
      ? `${path} is not on the agent's allow-list (--allow-device ${allowDevices.join(', ')})`
      : `the agent found no disk at ${path} on this node`;
  return {
    status: 'False',
    reason: 'NotDiscovered',
    message:
      `nothing is done for this NodeDisk, it was not made by the node agent: ${why}. The agent makes one NodeDisk per disk it discovers; ` +
      `delete this one (kubectl delete nodedisk ${live.metadata.name}) and, to use the device, put it on the agent's allow-list or attach it to the node`,
  };
}

/** Runs `fn` over `items` with at most `limit` in flight. */
async function inBatches<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

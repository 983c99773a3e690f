/**
 * The node agent (`stowage node`): one per node. It keeps one NodeDisk per disk of its node,
 * prepares disks the operator claimed, wipes released volumes and releases disks whose claim was
 * cleared (the claim protocol, DESIGN §2).
 *
 * Everything runs in "passes", one at a time: discover → act on claims → compose → apply. A pass is
 * triggered on start, on an interval, on udev block events, and when a NodeDisk's spec changes.
 * Each NodeDisk's status is composed in ONE place (`desiredStatus`) from in-memory state, and
 * written only when it differs from the live object.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { KubeClient } from '../../kube/client.js';
import { NODE_DISKS } from '../../crds/resource-types.js';
import { NODE_DISK_LABELS, type DiskClaim, type NodeDisk, type NodeDiskStatus } from '../../crds/nodedisk.js';
import { Applier } from '../../runtime/apply.js';
import { Informer } from '../../runtime/informer.js';
import { EventRecorder } from '../../runtime/events.js';
import { logger } from '../../util/logger.js';
import { errorMessage } from '../../util/errors.js';
import { formatBytes } from '../../util/quantity.js';
import type { AgentMetrics } from './agent-metrics.js';
import { ProbeCache, discover, type Discovery, type MountFacts } from './discovery.js';
import type { ClaimedDisk, DynamicPoolSync, PreparationOutcome } from './dynamic-pools.js';
import {
  diskIdentity, eligibility, isBlank, mediaOf, nodeDiskName, partitionsOf, stableDevicePath,
  type DiskFacts, type Eligibility, type FilterSet,
} from './inventory.js';
import {
  PreparationRefused, mountTarget, prepareBlock, prepareFilesystem, releaseDisk, removeContents, stowageLabel, usageOf, wipeDisk,
  type DiskTarget, type Emit, type Preparation,
} from './preparation.js';
import { readSmart } from './smart.js';
import {
  IDENTITY_ANNOTATION, MAX_REMEMBERED_WIPES, NODE_FIELD_MANAGER, WIPED_VOLUMES_ANNOTATION, desiredNodeDisk, desiredStatus, labelValue, stamp,
  type DiskView, type Inventory, type PreparedState,
} from './status.js';

export const DEFAULT_ROOT = '/var/lib/stowage/disks';
export const DEFAULT_DISCOVERY_INTERVAL_MS = 30_000;
export const DEFAULT_HEALTH_INTERVAL_MS = 5 * 60_000;
export const DEFAULT_HEARTBEAT_MS = 10 * 60_000;
export const DEFAULT_MIN_SIZE_BYTES = 16n * 1024n * 1024n;
/** udev sends bursts of events for one change; wait for the burst to end. */
const UDEV_DEBOUNCE_MS = 300;
/** A failed wipe is retried no sooner than this (doubling up to the cap). */
const WIPE_RETRY_BASE_MS = 5_000;
const WIPE_RETRY_MAX_MS = 5 * 60_000;
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

interface Observation {
  readonly name: string;
  readonly identity: string;
  readonly kind: 'Disk' | 'Mount';
  readonly devicePath: string;
  readonly currentPath: string;
  readonly facts?: DiskFacts;
  readonly mount?: MountFacts;
  readonly inventory: Inventory;
  readonly media: DiskView['media'];
  readonly eligibility: Eligibility;
  readonly blank: boolean;
}

interface WipeRetry {
  readonly uid: string;
  readonly attempts: number;
  readonly notBefore: number;
}

/** Starts an agent in this process (the CLI and tests use this). Resolves once the first pass is done. */
export async function startNodeAgent(opts: NodeAgentOptions): Promise<NodeAgent> {
  const agent = new Agent(opts);
  await agent.start();
  return agent;
}

class Agent implements NodeAgent {
  readonly nodeName: string;
  writes = 0;
  private readonly log;
  private readonly applier: Applier;
  private readonly events: EventRecorder;
  private readonly informer: Informer<NodeDisk>;
  private readonly allowDevices: readonly string[];
  private readonly root: string;
  private readonly heartbeatMs: number;
  private readonly abort = new AbortController();
  private timers: NodeJS.Timeout[] = [];
  private udev?: ChildProcess;
  private udevTimer?: NodeJS.Timeout;
  private running?: Promise<PassStats>;
  private queued?: Promise<PassStats>;

  // In-memory state, seeded from the live objects on start.
  private readonly preparations = new Map<string, Preparation>();
  private readonly prepared = new Map<string, PreparedState>();
  private readonly health = new Map<string, { health: Omit<NonNullable<NodeDiskStatus['health']>, 'checkedTime'>; at: number; checkedAt: string }>();
  private readonly lastWipes = new Map<string, NonNullable<NodeDiskStatus['lastWipe']>>();
  private readonly wiped = new Map<string, string[]>();
  private readonly wipeRetries = new Map<string, WipeRetry>();
  private readonly staleReported = new Set<string>();
  private readonly lastView = new Map<string, DiskView>();
  private seeded = new Set<string>();

  constructor(private readonly opts: NodeAgentOptions) {
    this.nodeName = opts.nodeName;
    this.log = logger('node-agent', { node: opts.nodeName });
    this.allowDevices = [...(opts.allowDevices ?? [])];
    this.root = opts.root ?? DEFAULT_ROOT;
    this.heartbeatMs = opts.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    const manager = opts.fieldManager ?? NODE_FIELD_MANAGER;
    this.applier = new Applier(opts.client, manager);
    this.events = new EventRecorder(opts.client, manager, opts.nodeName);
    this.informer = new Informer<NodeDisk>({
      client: opts.client,
      resource: NODE_DISKS,
      labelSelector: `${NODE_DISK_LABELS.node}=${labelValue(opts.nodeName)}`,
      resyncMs: 0,
    });
    this.informer.addHandler({
      added: () => this.trigger(),
      // Only spec changes (claim, wipe, schedulable) are news; our own status writes are not.
      updated: (o, n) => {
        if (o !== n && o.metadata.generation !== n.metadata.generation) this.trigger();
      },
      deleted: (o) => {
        this.written.delete(o.metadata.name!);
        this.trigger();
      },
    });
  }

  async start(): Promise<void> {
    this.informer.start();
    await this.informer.waitForSync(this.abort.signal);
    await this.pass();
    const every = (ms: number): void => {
      const t = setInterval(() => this.trigger(), ms);
      t.unref();
      this.timers.push(t);
    };
    every(this.opts.discoveryIntervalMs ?? DEFAULT_DISCOVERY_INTERVAL_MS);
    every(Math.max(1000, Math.min(this.opts.healthIntervalMs ?? DEFAULT_HEALTH_INTERVAL_MS, this.heartbeatMs)));
    if (this.opts.udev ?? true) this.watchUdev();
    this.log.info({ allowDevices: this.allowDevices, root: this.root }, 'node agent started');
  }

  disks(): readonly NodeDisk[] {
    return this.informer.list();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    for (const t of this.timers) clearInterval(t);
    if (this.udevTimer) clearTimeout(this.udevTimer);
    this.udev?.kill('SIGTERM');
    await this.running?.catch(() => undefined);
    await this.queued?.catch(() => undefined);
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
      this.queued = this.running.catch(() => undefined).then(() => {
        this.queued = undefined;
        return this.pass();
      });
    }
    return this.queued;
  }

  private watchUdev(): void {
    const child = spawn('udevadm', ['monitor', '--udev', '--subsystem-match=block'], { stdio: ['ignore', 'pipe', 'ignore'] });
    child.on('error', () => this.log.info('udevadm is not available: discovery runs on its interval only'));
    child.stdout?.setEncoding('utf8');
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (!/^UDEV\s/.test(line)) return;
      if (this.udevTimer) clearTimeout(this.udevTimer);
      this.udevTimer = setTimeout(() => this.trigger(), UDEV_DEBOUNCE_MS);
    });
    this.udev = child;
  }

  // ---------------------------------------------------------------------------------------------

  private async runPass(): Promise<PassStats> {
    const started = process.hrtime.bigint();
    const writesBefore = this.writes;
    let discovery = await this.discover();
    let observations = this.observe(discovery);

    const acted = await Promise.all(observations.map((o) => this.act(o).catch((err) => {
      this.log.error({ disk: o.name, err: errorMessage(err) }, 'unexpected error acting on a disk');
      return false;
    })));
    await this.releaseVanishedClaims(observations);
    if (acted.some(Boolean)) {
      discovery = await this.discover();
      observations = this.observe(discovery);
    }
    await this.readHealth(observations);
    const dynamic = await this.syncDynamic(observations);

    const present = new Set(observations.map((o) => o.name));
    const views = observations.map((o) => this.view(o, dynamic.get(o.name)));
    for (const live of this.informer.list()) {
      const name = live.metadata.name!;
      if (present.has(name) || live.spec.nodeName !== this.nodeName) continue;
      views.push(this.absentView(live, dynamic.get(name)));
    }
    await inBatches(views, WRITE_CONCURRENCY, (v) => this.write(v));
    const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
    return { disks: observations.length, writes: this.writes - writesBefore, durationMs };
  }

  private discover(): Promise<Discovery> {
    return discover({ allowDevices: this.allowDevices, discoveryDirs: this.opts.discoveryDirs ?? [], cache: this.probeCache });
  }

  private config() {
    return {
      allowDevices: this.allowDevices,
      ...(this.opts.include ? { include: this.opts.include } : {}),
      ...(this.opts.exclude ? { exclude: this.opts.exclude } : {}),
      minSizeBytes: this.opts.minSizeBytes ?? DEFAULT_MIN_SIZE_BYTES,
    };
  }

  /** Discovery → one observation per disk/mount, named (existing NodeDisks win for weak identities). */
  private observe(d: Discovery): Observation[] {
    const out: Observation[] = [];
    const taken = new Set<string>();
    const live = this.informer.list();
    for (const f of d.disks) {
      const identity = diskIdentity(f);
      const name = this.resolveName(identity, f, live, taken);
      if (!name) {
        this.log.warn({ device: f.raw.path, identity }, 'a second device with the same identity (e.g. one file attached twice); ignoring it');
        continue;
      }
      taken.add(name);
      const s = f.signatures;
      const inventory: Inventory = {
        kernelName: f.raw.kname,
        links: [...f.links],
        capacity: formatBytes(f.raw.sizeBytes),
        model: f.raw.model,
        vendor: f.raw.vendor,
        serial: f.raw.serial,
        wwn: f.raw.wwn,
        media: mediaOf(f.raw),
        rotational: f.raw.rotational,
        transport: f.raw.transport ?? (f.raw.type === 'loop' ? 'loop' : undefined),
        readOnly: f.raw.readOnly,
        ...(s.fsType || s.uuid || s.label
          ? { filesystem: { ...(s.fsType ? { type: s.fsType } : {}), ...(s.uuid ? { uuid: s.uuid } : {}), ...(s.label ? { label: s.label } : {}) } }
          : {}),
        partitionTable: s.ptType,
        partitions: partitionsOf(f.raw),
        mountPoints: [...f.mountPoints],
      };
      out.push({
        name, identity, kind: 'Disk',
        devicePath: stableDevicePath(f.raw, f.links),
        currentPath: f.raw.path,
        facts: f,
        inventory,
        media: mediaOf(f.raw),
        eligibility: eligibility(f, this.config()),
        blank: isBlank(f),
      });
    }
    for (const m of d.mounts) {
      const identity = `mount:${m.target}`;
      const name = nodeDiskName(this.nodeName, identity);
      if (taken.has(name)) continue;
      taken.add(name);
      out.push({
        name, identity, kind: 'Mount',
        devicePath: m.target,
        currentPath: m.target,
        mount: m,
        inventory: { capacity: formatBytes(m.sizeBytes), filesystem: { type: m.fsType }, mountPoints: [m.target], media: 'unknown' },
        media: 'unknown',
        eligibility: {
          eligible: true, reason: 'DiscoveredMount',
          message: `${m.target} is a filesystem an administrator mounted under a discovery directory; a Local Filesystem pool may use it as is (Stowage never formats or unmounts it)`,
        },
        blank: false,
      });
    }
    return out;
  }

  private resolveName(identity: string, f: DiskFacts, live: readonly NodeDisk[], taken: Set<string>): string | undefined {
    const byAnnotation = live.find((nd) => nd.metadata.annotations?.[IDENTITY_ANNOTATION] === identity)?.metadata.name;
    if (byAnnotation) return taken.has(byAnnotation) ? undefined : byAnnotation;
    // A weak identity (UUIDs, kernel name) changes when the disk is formatted: match the disk we prepared.
    if (/^(fsuuid|ptuuid|kname):/.test(identity) && f.signatures.uuid) {
      const ours = live.find((nd) => nd.status?.preparation?.uuid === f.signatures.uuid)?.metadata.name;
      if (ours && !taken.has(ours)) return ours;
    }
    const name = nodeDiskName(this.nodeName, identity);
    return taken.has(name) ? undefined : name;
  }

  private seed(name: string): void {
    if (this.seeded.has(name)) return;
    this.seeded.add(name);
    const live = this.informer.get(name);
    const st = live?.status;
    if (!live || !st) return;
    const prepared = st.conditions?.find((c) => c.type === 'Prepared');
    if (st.preparation?.path && prepared?.status === 'True' && live.spec.claim?.mode === 'Local') this.preparations.set(name, st.preparation as Preparation);
    if (st.lastWipe) this.lastWipes.set(name, st.lastWipe);
    const wiped = live.metadata.annotations?.[WIPED_VOLUMES_ANNOTATION];
    if (wiped) this.wiped.set(name, wiped.split(',').filter(Boolean));
    if (st.health) {
      const { checkedTime, ...h } = st.health;
      const at = checkedTime ? Date.parse(checkedTime) : 0;
      this.health.set(name, { health: h, at, checkedAt: checkedTime ?? stamp(new Date(at)) });
    }
  }

  private emitter(name: string): Emit {
    return (type, reason, message) => {
      const live = this.informer.get(name);
      this.log.info({ disk: name, reason }, message);
      if (live) void this.events.emit(live, type, reason, message);
    };
  }

  /** Acts on the disk's claim and wipe request. Returns true when something on the host changed. */
  private async act(o: Observation): Promise<boolean> {
    this.seed(o.name);
    const live = this.informer.get(o.name);
    if (live?.metadata.generation !== undefined) this.actedGeneration.set(o.name, live.metadata.generation);
    const claim = live?.spec.claim;
    const emit = this.emitter(o.name);
    if (o.kind === 'Mount') return this.actOnMount(o, claim, live, emit);
    const f = o.facts!;
    const target: DiskTarget = { name: o.name, devicePath: o.currentPath, root: this.root };
    const ours = f.signatures.label === stowageLabel(o.name) || f.mountPoints.includes(mountTarget(target));

    if (!claim || claim.mode !== 'Local') {
      if (claim?.mode === 'Dynamic') return false; // the engine's
      if (!this.preparations.has(o.name) && !ours) {
        this.prepared.set(o.name, { status: 'False', reason: 'NotClaimed', message: 'no pool claims this disk' });
        return false;
      }
      try {
        await releaseDisk(target, emit);
        this.preparations.delete(o.name);
        this.prepared.set(o.name, { status: 'False', reason: 'NotClaimed', message: 'released: the claim was cleared, Stowage\'s filesystem was removed' });
        emit('Normal', 'Released', `${o.currentPath} was released from its pool and is blank again`);
      } catch (err) {
        this.prepared.set(o.name, refusal(err, 'ReleaseFailed'));
      }
      return true;
    }

    // Local claim. Never touch what we may not.
    const blocker = this.localBlocker(o, claim, ours);
    if (blocker) {
      this.prepared.set(o.name, blocker);
      return false;
    }
    let changed = false;
    const wipe = live?.spec.wipe;
    if (wipe) changed = (await this.maybeWipe(o, target, claim, wipe, emit)) || changed;
    const before = this.preparations.get(o.name);
    try {
      const kind = claim.volumeMode === 'Block' ? 'Block' : 'Filesystem';
      // Only a disk not prepared yet is an attempt worth counting; re-checking a prepared one is not.
      const timed = <T>(step: () => Promise<T>): Promise<T> => (before || !this.opts.metrics ? step() : this.opts.metrics.timePreparation(kind, step));
      let prep: Preparation;
      if (claim.volumeMode === 'Block') {
        prep = await timed(() => prepareBlock(target, { stablePath: o.devicePath, allowAdoption: claim.allowAdoption === true, alreadyPrepared: before !== undefined, emit }));
      } else {
        prep = await timed(() => prepareFilesystem(target, {
          fsType: claim.fsType ?? 'ext4',
          allowAdoption: claim.allowAdoption === true,
          recordedUuid: before?.uuid,
          epoch: this.lastWipes.get(o.name)?.result === 'Succeeded' ? this.lastWipes.get(o.name)!.volumeUID : '',
          emit,
        }));
      }
      if (!before || before.uuid !== prep.uuid || before.path !== prep.path) {
        changed = true;
        emit('Normal', 'Prepared', `prepared for pool ${claim.pool}: ${prep.filesystem ? `${prep.filesystem} mounted at ${prep.path}` : `raw device ${prep.path}`}`);
      }
      this.preparations.set(o.name, prep);
      this.prepared.set(o.name, {
        status: 'True', reason: 'Prepared',
        message: prep.filesystem ? `${prep.filesystem} filesystem ${prep.uuid} mounted at ${prep.path} for pool ${claim.pool}` : `raw device ${prep.path} verified for pool ${claim.pool}`,
      });
    } catch (err) {
      const state = refusal(err, 'PreparationFailed');
      const prev = this.prepared.get(o.name);
      if (prev?.reason !== state.reason || prev.message !== state.message) emit('Warning', state.reason, state.message);
      this.prepared.set(o.name, state);
    }
    return changed;
  }

  /** Why a Local claim must not be prepared on this disk, or undefined when it may. */
  private localBlocker(o: Observation, claim: DiskClaim, ours: boolean): PreparedState | undefined {
    const e = o.eligibility;
    if (e.reason === 'SystemDisk' || e.reason === 'ExcludedByFilter' || e.reason === 'ReadOnly') return { status: 'False', reason: e.reason, message: `not preparing: ${e.message}` };
    if (ours || this.preparations.has(o.name) || e.eligible) return undefined;
    if ((e.reason === 'HasFilesystem' || e.reason === 'HasPartitions') && claim.allowAdoption) return undefined;
    return { status: 'False', reason: e.reason, message: `not preparing, nothing was changed: ${e.message}` };
  }

  private async maybeWipe(o: Observation, target: DiskTarget, claim: DiskClaim, wipe: { volumeUID: string; method: 'quick' | 'zero' | 'discard' }, emit: Emit): Promise<boolean> {
    const last = this.lastWipes.get(o.name);
    if (last?.volumeUID === wipe.volumeUID && last.result === 'Succeeded') return false;
    const history = this.wiped.get(o.name) ?? [];
    if (history[0] === wipe.volumeUID) {
      // Our newest wipe, done before a restart cut off its report (the history is written first).
      this.lastWipes.set(o.name, { volumeUID: wipe.volumeUID, method: wipe.method, result: 'Succeeded', time: stamp(new Date()), message: `wiped with ${wipe.method} (reported after an agent restart)` });
      return true;
    }
    if (history.includes(wipe.volumeUID)) {
      const key = `${o.name}/${wipe.volumeUID}`;
      if (!this.staleReported.has(key)) {
        this.staleReported.add(key);
        emit('Warning', 'StaleWipeIgnored', `ignoring a wipe request for volume ${wipe.volumeUID}: that volume was already wiped, a newer volume may be on the disk now`);
      }
      return false;
    }
    const retry = this.wipeRetries.get(o.name);
    if (retry?.uid === wipe.volumeUID && Date.now() < retry.notBefore) return false;
    const prep = this.preparations.get(o.name);
    const mode = claim.volumeMode ?? 'Filesystem';
    emit('Normal', 'Wiping', `wiping ${o.currentPath} (${wipe.method}) for released volume ${wipe.volumeUID}`);
    try {
      if (!prep) throw new Error('the disk was never prepared, so there is no volume of it to wipe');
      const run = (): Promise<Preparation | undefined> => wipeDisk(target, { method: wipe.method, volumeMode: mode, fsType: claim.fsType, volumeUID: wipe.volumeUID, emit });
      const next = await (this.opts.metrics ? this.opts.metrics.timeWipe(wipe.method, run) : run());
      if (next) this.preparations.set(o.name, next);
      this.lastWipes.set(o.name, { volumeUID: wipe.volumeUID, method: wipe.method, result: 'Succeeded', time: stamp(new Date()), message: `wiped with ${wipe.method}` });
      this.wiped.set(o.name, [wipe.volumeUID, ...history].slice(0, MAX_REMEMBERED_WIPES));
      this.wipeRetries.delete(o.name);
      emit('Normal', 'Wiped', `wiped ${o.currentPath} (${wipe.method}) for released volume ${wipe.volumeUID}`);
    } catch (err) {
      const attempts = retry?.uid === wipe.volumeUID ? retry.attempts + 1 : 1;
      this.wipeRetries.set(o.name, { uid: wipe.volumeUID, attempts, notBefore: Date.now() + Math.min(WIPE_RETRY_MAX_MS, WIPE_RETRY_BASE_MS * 2 ** (attempts - 1)) });
      const message = `wipe attempt ${attempts} failed (retrying): ${errorMessage(err)}`;
      this.lastWipes.set(o.name, { volumeUID: wipe.volumeUID, method: wipe.method, result: 'Failed', time: stamp(new Date()), message: message.slice(0, 1000) });
      emit('Warning', 'WipeFailed', `wiping ${o.currentPath} for volume ${wipe.volumeUID}: ${message}`);
    }
    return true;
  }

  /** Discovery-directory mounts: used as they are; a wipe removes the volume's contents only. */
  private async actOnMount(o: Observation, claim: DiskClaim | undefined, live: NodeDisk | undefined, emit: Emit): Promise<boolean> {
    if (!claim) {
      this.preparations.delete(o.name);
      this.prepared.set(o.name, { status: 'False', reason: 'NotClaimed', message: 'no pool claims this mount' });
      return false;
    }
    if (claim.mode !== 'Local' || claim.volumeMode === 'Block') {
      this.prepared.set(o.name, { status: 'False', reason: 'NotABlockDevice', message: `${o.devicePath} is a mounted filesystem; only Local Filesystem pools can use it` });
      return false;
    }
    const wipe = live?.spec.wipe;
    const last = this.lastWipes.get(o.name);
    const history = this.wiped.get(o.name) ?? [];
    if (wipe && history[0] === wipe.volumeUID && last?.volumeUID !== wipe.volumeUID) {
      this.lastWipes.set(o.name, { volumeUID: wipe.volumeUID, method: wipe.method, result: 'Succeeded', time: stamp(new Date()), message: 'removed the volume\'s contents (reported after an agent restart)' });
    } else if (wipe && !(last?.volumeUID === wipe.volumeUID && last.result === 'Succeeded') && !history.includes(wipe.volumeUID)) {
      try {
        emit('Normal', 'Wiping', `removing the contents of ${o.devicePath} for released volume ${wipe.volumeUID}`);
        const run = (): Promise<void> => removeContents(o.devicePath);
        await (this.opts.metrics ? this.opts.metrics.timeWipe(wipe.method, run) : run());
        this.lastWipes.set(o.name, { volumeUID: wipe.volumeUID, method: wipe.method, result: 'Succeeded', time: stamp(new Date()), message: 'removed the volume\'s contents (a discovered mount is never reformatted)' });
        this.wiped.set(o.name, [wipe.volumeUID, ...history].slice(0, MAX_REMEMBERED_WIPES));
        emit('Normal', 'Wiped', `removed the contents of ${o.devicePath} for volume ${wipe.volumeUID}`);
      } catch (err) {
        this.lastWipes.set(o.name, { volumeUID: wipe.volumeUID, method: wipe.method, result: 'Failed', time: stamp(new Date()), message: errorMessage(err).slice(0, 1000) });
      }
    }
    this.preparations.set(o.name, { path: o.devicePath, filesystem: o.mount!.fsType });
    this.prepared.set(o.name, { status: 'True', reason: 'Prepared', message: `${o.devicePath} is used as is for pool ${claim.pool}` });
    return false;
  }

  /** A prepared disk that vanished keeps its record (it may come back); nothing to do on the host. */
  private async releaseVanishedClaims(observations: readonly Observation[]): Promise<void> {
    const present = new Set(observations.map((o) => o.name));
    for (const live of this.informer.list()) {
      const name = live.metadata.name!;
      this.seed(name);
      if (present.has(name)) continue;
      this.prepared.set(name, live.spec.claim
        ? { status: 'False', reason: 'NotPresent', message: 'the disk is not attached to the node; it is prepared again when it returns' }
        : { status: 'False', reason: 'NotClaimed', message: 'no pool claims this disk' });
    }
  }

  private async readHealth(observations: readonly Observation[]): Promise<void> {
    const interval = this.opts.healthIntervalMs ?? DEFAULT_HEALTH_INTERVAL_MS;
    const due = observations.filter((o) => o.kind === 'Disk' && Date.now() - (this.health.get(o.name)?.at ?? 0) >= interval);
    await inBatches(due, SMART_CONCURRENCY, async (o) => {
      const health = await readSmart(o.currentPath);
      const now = new Date();
      this.health.set(o.name, { health, at: now.getTime(), checkedAt: stamp(now) });
    });
  }

  private async syncDynamic(observations: readonly Observation[]): Promise<Map<string, PreparationOutcome>> {
    const result = new Map<string, PreparationOutcome>();
    const claimed: ClaimedDisk[] = [];
    const present = new Map(observations.map((o) => [o.name, o]));
    for (const live of this.informer.list()) {
      const claim = live.spec.claim;
      if (claim?.mode !== 'Dynamic') continue;
      const o = present.get(live.metadata.name!);
      if (o?.kind === 'Mount') {
        result.set(o.name, { prepared: false, reason: 'NotABlockDevice', message: 'a discovered mount cannot join a Dynamic pool' });
        continue;
      }
      if (o && !o.eligibility.eligible && ['SystemDisk', 'ExcludedByFilter', 'ReadOnly'].includes(o.eligibility.reason)) {
        result.set(o.name, { prepared: false, reason: o.eligibility.reason, message: `not handing the disk to the pool engine: ${o.eligibility.message}` });
        continue;
      }
      const sig = o?.facts?.signatures;
      claimed.push({
        name: live.metadata.name!,
        claim,
        devicePath: o?.currentPath ?? live.spec.devicePath,
        stablePath: o?.devicePath ?? live.spec.devicePath,
        sizeBytes: Number(o?.facts?.raw.sizeBytes ?? 0n),
        blank: o?.blank ?? false,
        ...(sig && (sig.fsType || sig.uuid || sig.label)
          ? { filesystem: { ...(sig.fsType ? { type: sig.fsType } : {}), ...(sig.uuid ? { uuid: sig.uuid } : {}), ...(sig.label ? { label: sig.label } : {}) } }
          : {}),
        present: o !== undefined,
      });
    }
    if (!this.opts.dynamicPools) {
      for (const d of claimed) result.set(d.name, { prepared: false, reason: 'EngineUnavailable', message: 'this agent runs without the Dynamic-pool engine' });
      return result;
    }
    try {
      const outcomes = await this.opts.dynamicPools.sync(this.nodeName, claimed);
      for (const d of claimed) {
        result.set(d.name, outcomes.get(d.name) ?? { prepared: false, reason: 'EnginePending', message: 'the pool engine has not reported on this disk yet' });
      }
    } catch (err) {
      for (const d of claimed) result.set(d.name, { prepared: false, reason: 'EngineError', message: errorMessage(err).slice(0, 1000) });
    }
    return result;
  }

  private view(o: Observation, dynamic: PreparationOutcome | undefined): DiskView {
    const live = this.informer.get(o.name);
    const claim = live?.spec.claim;
    const h = this.health.get(o.name);
    let prepared = this.prepared.get(o.name) ?? { status: 'False', reason: 'NotClaimed', message: 'no pool claims this disk' } as PreparedState;
    let preparation: DiskView['preparation'] = claim?.mode === 'Local' && prepared.status === 'True' ? this.preparations.get(o.name) : undefined;
    // Released from a Dynamic pool whose filesystem still holds volumes: say why the disk is not free.
    const held = !claim ? this.opts.dynamicPools?.released?.(o.currentPath) : undefined;
    if (held) prepared = { status: 'False', reason: held.reason, message: held.message };
    if (claim?.mode === 'Dynamic') {
      const d = dynamic ?? { prepared: false, reason: 'EnginePending', message: 'the pool engine has not reported on this disk yet' };
      prepared = { status: d.prepared ? 'True' : d.reason === 'EnginePending' ? 'Unknown' : 'False', reason: d.reason, message: d.message };
      preparation = d.preparation ? { ...d.preparation } : undefined;
    }
    let e = o.eligibility;
    if (claim && (prepared.status === 'True' || e.eligible || (o.kind === 'Disk' && this.preparations.has(o.name)))) {
      e = { eligible: false, reason: 'Claimed', message: `claimed by pool ${claim.pool}` };
    } else if (!claim && live?.spec.schedulable === false && e.eligible) {
      e = { eligible: false, reason: 'Cordoned', message: 'spec.schedulable is false: an administrator cordoned this disk' };
    }
    return {
      name: o.name,
      nodeName: this.nodeName,
      identity: o.identity,
      kind: o.kind,
      devicePath: o.devicePath,
      media: o.media,
      present: true,
      inventory: o.inventory,
      eligibility: e,
      health: h?.health,
      healthCheckedAt: h?.checkedAt,
      prepared,
      preparation,
      usage: this.usage.get(o.name),
      lastWipe: this.lastWipes.get(o.name),
      claimPool: claim?.pool,
      wipedVolumes: this.wiped.get(o.name) ?? [],
      observedGeneration: this.actedGeneration.get(o.name),
    };
  }

  private readonly usage = new Map<string, DiskView['usage']>();
  private readonly probeCache = new ProbeCache();
  private readonly actedGeneration = new Map<string, number>();
  /** What our own last write returned: the informer may not have seen it yet when the next pass runs. */
  private readonly written = new Map<string, NodeDisk>();

  /** The newer of the informer's copy and our last write's answer (etcd revisions are numbers). */
  private newest(name: string): NodeDisk | undefined {
    const cached = this.informer.get(name);
    const mine = this.written.get(name);
    if (!mine) return cached;
    if (!cached) return mine; // created by us, not yet seen by the informer (a delete clears `written`)
    const rv = (o: NodeDisk): number => Number(o.metadata.resourceVersion ?? 0);
    if (cached.metadata.uid === mine.metadata.uid && rv(mine) > rv(cached)) return mine;
    this.written.delete(name);
    return cached;
  }

  private absentView(live: NodeDisk, dynamic: PreparationOutcome | undefined): DiskView {
    const name = live.metadata.name!;
    const st = live.status ?? {};
    const { kernelName, links, capacity, model, vendor, serial, wwn, media, rotational, transport, readOnly, filesystem, partitionTable, partitions } = st;
    const claim = live.spec.claim;
    let prepared = this.prepared.get(name) ?? { status: 'False', reason: 'NotPresent', message: 'the disk is not attached to the node' } as PreparedState;
    if (claim?.mode === 'Dynamic' && dynamic) prepared = { status: dynamic.prepared ? 'True' : 'False', reason: dynamic.reason, message: dynamic.message };
    const h = this.health.get(name);
    return {
      name,
      nodeName: this.nodeName,
      identity: live.metadata.annotations?.[IDENTITY_ANNOTATION] ?? `name:${name}`,
      kind: st.kind ?? 'Disk',
      devicePath: live.spec.devicePath,
      media: (live.metadata.labels?.[NODE_DISK_LABELS.media] as DiskView['media']) ?? media ?? 'unknown',
      present: false,
      inventory: { kernelName, links, capacity, model, vendor, serial, wwn, media, rotational, transport, readOnly, filesystem, partitionTable, partitions },
      eligibility: { eligible: false, reason: 'NotPresent', message: 'the disk is not attached to the node' },
      health: h?.health,
      healthCheckedAt: h?.checkedAt,
      prepared,
      preparation: undefined,
      lastWipe: this.lastWipes.get(name),
      claimPool: claim?.pool,
      wipedVolumes: this.wiped.get(name) ?? [],
    };
  }

  private async write(v: DiskView): Promise<void> {
    if (v.preparation?.path && v.kind === 'Disk' && v.preparation.filesystem) {
      const u = await usageOf(v.preparation.path);
      const usage = u ? { size: formatBytes(u.size), used: formatBytes(u.used), available: formatBytes(u.available) } : undefined;
      this.usage.set(v.name, usage);
      v = { ...v, usage };
    } else if (v.kind === 'Mount' && v.present) {
      const u = await usageOf(v.devicePath);
      v = { ...v, usage: u ? { size: formatBytes(u.size), used: formatBytes(u.used), available: formatBytes(u.available) } : undefined };
    }
    this.lastView.set(v.name, v);
    let live = this.newest(v.name);
    try {
      const desired = desiredNodeDisk(v);
      const applied = await this.applier.apply<NodeDisk>(NODE_DISKS, desired as never, live);
      if (applied !== live) {
        this.writes += 1;
        this.written.set(v.name, applied);
      }
      live = applied;
      const status = desiredStatus(v, live, new Date(), this.heartbeatMs);
      const removed = removedFields(status, live.status);
      if (removed) {
        // A v1.20 API server turns an object field dropped from an apply into `null` and then
        // rejects it; removing it with a merge patch first keeps the apply a plain update.
        live = await this.opts.client.mergePatch<NodeDisk>(NODE_DISKS, v.name, { status: removed }, { subresource: 'status', fieldManager: this.applier.fieldManager });
        this.writes += 1;
        this.written.set(v.name, live);
      }
      const result = await this.applier.applyStatus<NodeDisk>(NODE_DISKS, { ...desired, status } as never, live);
      if (result !== live) {
        this.writes += 1;
        if (result) this.written.set(v.name, result);
      }
    } catch (err) {
      this.log.error({ disk: v.name, err: errorMessage(err) }, 'could not write the NodeDisk; retrying on the next pass');
    }
  }
}

function refusal(err: unknown, fallbackReason: string): PreparedState {
  if (err instanceof PreparationRefused) return { status: 'False', reason: err.reason, message: err.message };
  return { status: 'False', reason: fallbackReason, message: `${errorMessage(err)} (retrying on the next pass)`.slice(0, 1000) };
}

/** A merge patch (nulls) that removes what `live` has and `desired` no longer states, or undefined. */
export function removedFields(desired: unknown, live: unknown): Record<string, unknown> | undefined {
  if (!isPlainObject(live)) return undefined;
  const want = isPlainObject(desired) ? desired : {};
  const patch: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(live)) {
    if (!(key in want) || want[key] === undefined) patch[key] = null;
    else if (isPlainObject(value) && isPlainObject(want[key])) {
      const inner = removedFields(want[key], value);
      if (inner) patch[key] = inner;
    }
  }
  return Object.keys(patch).length > 0 ? patch : undefined;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Runs `fn` over `items` with at most `limit` in flight. */
async function inBatches<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

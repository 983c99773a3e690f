/**
 * The btrfs engine of Dynamic pools (DESIGN §2): per node and pool, one btrfs filesystem over the
 * pool's claimed disks on this node, mounted at <root>/pools/<pool>, with the data/metadata profile
 * of `replicated.size`. The node agent calls {@link BtrfsEngine.sync} with the claimed disks (the
 * DynamicPoolSync seam); the PoolVolume realizer and the CSI Node service use the volume methods.
 *
 * Safety: the engine only ever formats or adds devices the agent passed (claimed, allow-listed,
 * blank or explicitly adoptable), recognises its own filesystems by label, and never formats a disk
 * that carries another filesystem unless the claim allows adoption.
 */
import { mkdir, realpath } from 'node:fs/promises';
import type { ClaimedDisk, DynamicPoolSync, PreparationOutcome } from '../dynamic-pools.js';
import type { VolumeMode } from '../../crds/storagepool.js';
import { logger } from '../../util/logger.js';
import { errorMessage } from '../../util/errors.js';
import * as btrfs from './btrfs.js';
import { mountAt } from './mounts.js';
import * as volumes from './volumes.js';

const log = logger('btrfs-engine');

/** Filesystem label of a pool's filesystem: how the engine recognises its own work after a restart. */
export const labelFor = (pool: string): string => `stowage-${pool}`;

export interface BtrfsEngineOptions {
  /** The agent's state directory; pool filesystems are mounted under <root>/pools/. */
  readonly root: string;
  /** `replicated.size` of a pool (from the StoragePool informer); undefined: the pool is not known (yet). */
  readonly copiesOf: (pool: string) => number | undefined;
  /**
   * Copies below which a device removal is refused, and the share of the remaining raw space the
   * data may fill after a removal (btrfs needs working room for metadata and balance).
   */
  readonly removalHeadroom?: number;
}

/** What the engine knows about one pool filesystem after its last sync. */
export interface PoolState {
  readonly pool: string;
  readonly mountPoint: string;
  readonly uuid: string;
  readonly copies: number;
  /** A member device is missing: the filesystem runs (mounted `degraded`) without full redundancy. */
  readonly degraded: boolean;
  /** Human-readable summary: degraded, removal refused, I/O errors. */
  readonly message: string;
  /** btrfs device stats: error counters per member device. */
  readonly deviceStats: readonly btrfs.DeviceStats[];
  /** Set when a disk left the pool but could not be removed (the rest cannot hold the data). */
  readonly removalRefused?: string;
}

export class BtrfsEngine implements DynamicPoolSync {
  private readonly states = new Map<string, PoolState>();
  private readonly listings = new Map<string, { at: number; groups: Promise<btrfs.Qgroup[]> }>();
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: BtrfsEngineOptions) {}

  mountPointOf(pool: string): string {
    return `${this.options.root}/pools/${pool}`;
  }

  /** The last observed state of a pool, if this process has synced it. */
  state(pool: string): PoolState | undefined {
    return this.states.get(pool);
  }

  /** The pool's mount point when its btrfs is mounted there right now (checked in the mount table, not memory). */
  async mountedPool(pool: string): Promise<string | undefined> {
    const mnt = this.mountPointOf(pool);
    const info = await mountAt(mnt);
    return info?.fsType === 'btrfs' ? mnt : undefined;
  }

  /** One sync at a time: the agent's passes and a test's direct calls never interleave device operations. */
  sync(nodeName: string, disks: readonly ClaimedDisk[]): Promise<ReadonlyMap<string, PreparationOutcome>> {
    const next = this.chain.then(() => this.syncAll(nodeName, disks));
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async syncAll(nodeName: string, disks: readonly ClaimedDisk[]): Promise<ReadonlyMap<string, PreparationOutcome>> {
    const byPool = new Map<string, ClaimedDisk[]>();
    for (const disk of disks) {
      if (disk.claim.mode !== 'Dynamic') continue;
      byPool.set(disk.claim.pool, [...(byPool.get(disk.claim.pool) ?? []), disk]);
    }
    const outcomes = new Map<string, PreparationOutcome>();
    for (const [pool, poolDisks] of byPool) {
      try {
        for (const [name, outcome] of await this.syncPool(pool, poolDisks)) outcomes.set(name, outcome);
      } catch (err) {
        log.error({ node: nodeName, pool, err: errorMessage(err) }, 'pool filesystem sync failed');
        for (const d of poolDisks) outcomes.set(d.name, { prepared: false, reason: 'EngineError', message: errorMessage(err) });
      }
    }
    return outcomes;
  }

  private async syncPool(pool: string, disks: readonly ClaimedDisk[]): Promise<Map<string, PreparationOutcome>> {
    const copies = this.options.copiesOf(pool);
    const outcomes = new Map<string, PreparationOutcome>();
    const all = (prepared: boolean, reason: string, message: string): Map<string, PreparationOutcome> => {
      for (const d of disks) outcomes.set(d.name, { prepared, reason, message });
      return outcomes;
    };
    if (copies === undefined) return all(false, 'PoolUnknown', `StoragePool ${pool} is not known to the node daemon yet; waiting for it`);
    const label = labelFor(pool);
    const mnt = this.mountPointOf(pool);

    const present = disks.filter((d) => d.present);
    const real = new Map<string, string>();
    const probes = new Map<string, { type?: string; label?: string; uuid?: string }>();
    for (const d of present) {
      real.set(d.name, await realpath(d.devicePath));
      probes.set(d.name, await btrfs.probe(d.devicePath));
    }
    const ours = present.filter((d) => probes.get(d.name)?.type === 'btrfs' && probes.get(d.name)?.label === label);
    const foreign = present.filter((d) => probes.get(d.name)?.type !== undefined && !ours.includes(d));
    let blank = present.filter((d) => probes.get(d.name)?.type === undefined || (d.claim.allowAdoption === true && foreign.includes(d)));

    let mounted = await this.mountedPool(pool);
    if (!mounted) {
      let members = ours;
      if (members.length === 0) {
        if (blank.length < copies) {
          return all(false, 'NotEnoughDisks', `replicated.size ${copies} needs at least ${copies} blank disks of pool ${pool} on this node; ${blank.length} available`);
        }
        const devices = blank.map((d) => d.devicePath);
        log.warn({ pool, devices, copies }, 'creating the pool filesystem (mkfs.btrfs)');
        await btrfs.mkfs(devices, label, copies, blank.some((d) => foreign.includes(d)));
        members = blank;
        blank = [];
      }
      await mkdir(mnt, { recursive: true });
      await btrfs.scan(members.map((d) => d.devicePath));
      try {
        await btrfs.mount(members[0]!.devicePath, mnt, false);
      } catch (err) {
        // A missing member: mount degraded where the profile keeps a copy elsewhere, never otherwise.
        if (copies < 2) throw new Error(`cannot mount pool ${pool} (${errorMessage(err)}); with replicated.size 1 a missing disk means lost data, so it is not mounted degraded`);
        log.warn({ pool, err: errorMessage(err) }, 'mounting the pool filesystem degraded');
        await btrfs.mount(members[0]!.devicePath, mnt, true);
      }
      await btrfs.quotaEnable(mnt);
      mounted = mnt;
    }

    let fs = await btrfs.show(mnt);
    const memberPaths = new Set(fs.devices.filter((d) => d.path).map((d) => d.path!));
    blank = blank.filter((d) => !memberPaths.has(real.get(d.name)!));
    let changed = false;
    // Heal first: rebuild each missing member's copies onto a new blank disk.
    for (const gone of fs.devices.filter((d) => d.path === undefined)) {
      const spare = blank.shift();
      if (!spare) break;
      log.warn({ pool, devid: gone.devid, device: spare.devicePath }, 'replacing a missing disk of the pool filesystem');
      await btrfs.replace(gone.devid, spare.devicePath, mnt);
      await btrfs.resize(gone.devid, mnt);
      changed = true;
    }
    if (blank.length > 0) {
      log.warn({ pool, devices: blank.map((d) => d.devicePath) }, 'adding disks to the pool filesystem');
      await btrfs.deviceAdd(blank.map((d) => d.devicePath), mnt, blank.some((d) => foreign.includes(d)));
      changed = true;
    }
    if (changed) {
      await btrfs.balance(mnt, copies);
      fs = await btrfs.show(mnt);
    }

    // Disks that left the pool (claim cleared): migrate their data away, unless the rest cannot hold it.
    const claimedPaths = new Set([...real.values()]);
    let removalRefused: string | undefined;
    for (const member of fs.devices.filter((d) => d.path && !claimedPaths.has(d.path))) {
      const rest = fs.devices.filter((d) => d !== member && d.path);
      const usage = await btrfs.usage(mnt);
      const restRaw = rest.reduce((sum, d) => sum + d.sizeBytes, 0n);
      const headroom = this.options.removalHeadroom ?? 0.9;
      if (rest.length < copies || Number(usage.used) > Number(restRaw) * headroom) {
        removalRefused = `disk ${member.path} left pool ${pool} but was not removed: the remaining ${rest.length} disk(s) (${restRaw} bytes raw) cannot hold ${usage.used} bytes with ${copies} cop${copies === 1 ? 'y' : 'ies'}; add a disk or delete volumes first`;
        log.warn({ pool, device: member.path }, removalRefused);
        continue;
      }
      log.warn({ pool, device: member.path }, 'removing a disk from the pool filesystem (data migrates first)');
      await btrfs.deviceRemove(member.path!, mnt);
      fs = await btrfs.show(mnt);
    }

    const stats = await btrfs.deviceStats(mnt);
    const errored = stats.filter((s) => s.writeErrors + s.readErrors + s.flushErrors + s.corruptionErrors + s.generationErrors > 0);
    const missingCount = fs.devices.filter((d) => d.path === undefined).length;
    const degraded = missingCount > 0;
    const notes = [
      degraded ? `${missingCount} disk(s) of the pool filesystem are missing; running degraded without full redundancy — add a new disk to the pool on this node to heal it` : '',
      removalRefused ?? '',
      errored.length > 0 ? `I/O errors on ${errored.map((s) => s.device).join(', ')} (btrfs device stats)` : '',
    ].filter(Boolean);
    this.states.set(pool, {
      pool, mountPoint: mnt, uuid: fs.uuid, copies, degraded, deviceStats: stats,
      message: notes.join('; ') || 'healthy',
      ...(removalRefused ? { removalRefused } : {}),
    });

    const inFs = new Set(fs.devices.filter((d) => d.path).map((d) => d.path!));
    const preparation = { path: mnt, filesystem: 'btrfs', uuid: fs.uuid };
    for (const d of disks) {
      if (!d.present) {
        outcomes.set(d.name, { prepared: false, reason: 'DiskMissing', message: `the disk is gone; pool ${pool} ${degraded ? 'runs degraded' : 'is mounted without it'}` });
        continue;
      }
      const path = real.get(d.name)!;
      if (!inFs.has(path)) {
        outcomes.set(d.name, foreign.includes(d)
          ? { prepared: false, reason: 'HasFilesystem', message: `the disk carries a ${probes.get(d.name)?.type} filesystem that is not pool ${pool}'s; set disks.allowAdoption on the pool to let Stowage reuse it (destroys its data)` }
          : { prepared: false, reason: 'Pending', message: `not yet part of pool ${pool}'s filesystem` });
        continue;
      }
      const stat = stats.find((s) => s.device === path);
      const errors = stat ? stat.writeErrors + stat.readErrors + stat.flushErrors + stat.corruptionErrors + stat.generationErrors : 0;
      const reason = errors > 0 ? 'IOErrors' : degraded ? 'PoolDegraded' : 'Prepared';
      const message = errors > 0
        ? `member of pool ${pool}'s btrfs, with I/O errors: write ${stat!.writeErrors}, read ${stat!.readErrors}, flush ${stat!.flushErrors}, corruption ${stat!.corruptionErrors}, generation ${stat!.generationErrors}`
        : `member of pool ${pool}'s btrfs (${btrfs.profileFor(copies).data}) at ${mnt}${notes.length ? `; ${notes.join('; ')}` : ''}`;
      outcomes.set(d.name, { prepared: true, reason, message, preparation });
    }
    return outcomes;
  }

  // ---- volumes ---------------------------------------------------------------------------------

  private async requireMounted(pool: string): Promise<string> {
    const mnt = await this.mountedPool(pool);
    if (!mnt) throw new Error(`pool ${pool}'s filesystem is not mounted on this node (yet); its disks may not be prepared`);
    return mnt;
  }

  async ensureVolume(pool: string, name: string, mode: VolumeMode, sizeBytes: bigint, noDataCow = false): Promise<volumes.RealizedVolume> {
    return volumes.ensureVolume(await this.requireMounted(pool), name, mode, sizeBytes, noDataCow);
  }

  async removeVolume(pool: string, name: string, mode: VolumeMode): Promise<boolean> {
    return volumes.removeVolume(await this.requireMounted(pool), name, mode);
  }

  /**
   * Bytes a volume holds. `maxAgeMs`: a listing of the pool's qgroups at most this old may answer
   * (the realizer's periodic refresh shares one; a caller that just wrote data asks for a fresh one).
   */
  async volumeUsage(pool: string, name: string, mode: VolumeMode, maxAgeMs = 0): Promise<{ path: string; usedBytes: bigint }> {
    const mnt = await this.requireMounted(pool);
    const path = volumes.volumePath(mnt, name, mode);
    return { path, usedBytes: await volumes.usedBytes(mnt, path, mode, mode === 'Filesystem' ? await this.qgroupListing(mnt, maxAgeMs) : undefined) };
  }

  /**
   * One `btrfs qgroup show` serves every volume of a pool asking within `maxAgeMs`: each volume's
   * periodic refresh would otherwise list every qgroup of the pool (n volumes, n² work).
   */
  private qgroupListing(mnt: string, maxAgeMs: number): Promise<btrfs.Qgroup[]> {
    const cached = this.listings.get(mnt);
    if (cached && Date.now() - cached.at <= maxAgeMs) return cached.groups;
    const groups = btrfs.qgroups(mnt);
    const entry = { at: Date.now(), groups };
    this.listings.set(mnt, entry);
    groups.catch(() => {
      if (this.listings.get(mnt) === entry) this.listings.delete(mnt);
    });
    return groups;
  }

  /**
   * Whether the pool filesystem runs degraded: from the last sync when this process has synced the
   * pool (the agent syncs on every pass), else from the mounted filesystem itself.
   */
  async health(pool: string): Promise<{ degraded: boolean; message: string }> {
    const mnt = await this.mountedPool(pool);
    if (!mnt) return { degraded: true, message: `pool ${pool}'s filesystem is not mounted on this node` };
    const known = this.states.get(pool);
    if (known) return { degraded: known.degraded, message: known.message };
    const fs = await btrfs.show(mnt);
    const missing = fs.devices.filter((d) => d.path === undefined).length;
    if (missing > 0) return { degraded: true, message: `${missing} disk(s) of pool ${pool} are missing on this node; the pool runs degraded` };
    return { degraded: false, message: this.states.get(pool)?.message ?? 'healthy' };
  }
}

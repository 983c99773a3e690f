/**
 * The btrfs engine of Dynamic pools (DESIGN §2): per node and pool, one btrfs filesystem over the
 * pool's claimed disks on this node, mounted at <root>/pools/<pool>, with the data/metadata profile
 * of `replicated.size`. The node agent calls {@link BtrfsEngine.sync} with the claimed disks (the
 * DynamicPoolSync seam); the PoolVolume realizer and the CSI Node service use the volume methods.
 *
 * Safety: the engine only ever formats or adds devices the agent passed (claimed, allow-listed,
 * blank or explicitly adoptable), recognises its own filesystems by label, and never formats a disk
 * that carries another filesystem unless the claim allows adoption.
 *
 * This class observes and acts; what its observations mean for the pool and for each disk (the
 * summary message, the Prepared outcomes) is computed by the pure functions of pool-outcomes.ts.
 */
import { mkdir, readdir, realpath, rmdir } from 'node:fs/promises';
import type { ClaimedDisk, DynamicPoolSync, PreparationOutcome } from '../agent/dynamic-pools.js';
import type { VolumeMode } from '../../crds/storagepool.js';
import { logger } from '../../util/logger.js';
import { errorMessage, ifNotFound, isNotFound } from '../../util/errors.js';
import * as btrfs from './btrfs.js';
import { run } from '../../host/command.js';
import { mountAt, mountTable } from '../../host/mounts.js';
import * as volumes from './volumes.js';
import { ownVolume, type OwnVolume } from './own-volume.js';
import { diskOutcomes, poolNotes, type ObservedPool } from './pool-outcomes.js';

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
  /**
   * Give new pool filesystems simple quotas where the kernel has them (default true); false: full
   * qgroup accounting, as on kernels before 6.7. An existing filesystem keeps the mode it has.
   */
  readonly simpleQuotas?: boolean;
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
  /** How the filesystem keeps the volumes' size limits: simple quotas or full qgroup accounting. */
  readonly quotas: 'squota' | 'qgroup';
  /** The last scrub's result (read at most every {@link SCRUB_STATUS_INTERVAL_MS}); undefined if unreadable. */
  readonly scrub?: btrfs.ScrubStatus;
}

/** The last scrub's result changes only when a scrub runs; it is read this often per pool. */
const SCRUB_STATUS_INTERVAL_MS = 5 * 60_000;

export class BtrfsEngine implements DynamicPoolSync {
  private readonly states = new Map<string, PoolState>();
  private readonly listings = new Map<string, { at: number; groups: Promise<btrfs.Qgroup[]> }>();
  private readonly scrubs = new Map<string, { at: number; status?: btrfs.ScrubStatus }>();
  /** Disks no pool claims any more that a pool filesystem still holds, by device path, with why. */
  private readonly held = new Map<string, PreparationOutcome>();
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
    // The chain only orders syncs: the next one runs however this one ends, and its caller gets the rejection from `next`.
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
    // A pool filesystem mounted here whose every disk left (claims cleared): retire it.
    const held = new Map<string, PreparationOutcome>();
    for (const pool of await this.mountedPools()) {
      if (byPool.has(pool)) continue;
      try {
        for (const [device, outcome] of await this.retirePool(pool)) held.set(device, outcome);
      } catch (err) {
        log.error({ node: nodeName, pool, err: errorMessage(err) }, 'retiring the pool filesystem failed');
      }
    }
    this.held.clear();
    for (const [device, outcome] of held) this.held.set(device, outcome);
    return outcomes;
  }

  /**
   * What the engine still holds of a disk that no pool claims any more: the refusal to let it go
   * (its pool filesystem still holds volumes), or undefined when the disk is not held.
   */
  released(devicePath: string): PreparationOutcome | undefined {
    return this.held.get(devicePath);
  }

  /** Pools whose filesystem is mounted under this engine's root right now (from the mount table). */
  private async mountedPools(): Promise<string[]> {
    const prefix = `${this.options.root}/pools/`;
    return (await mountTable())
      .filter((m) => m.fsType === 'btrfs' && m.target.startsWith(prefix) && !m.target.slice(prefix.length).includes('/'))
      .map((m) => m.target.slice(prefix.length));
  }

  /**
   * The last disk of a pool left this node: unmount the pool filesystem and remove its signature from
   * every member, so the disks are blank and Eligible again (the claim protocol's release) — unless
   * volumes still live on it, which is refused (nothing a workload may use is destroyed), reported
   * on each member disk and in the pool's state, and retried on every pass.
   */
  private async retirePool(pool: string): Promise<Map<string, PreparationOutcome>> {
    const mnt = this.mountPointOf(pool);
    const fs = await btrfs.show(mnt);
    const members = fs.devices.filter((d) => d.path).map((d) => d.path!);
    const volumeNames = [
      // Only a directory that does not exist holds nothing: an I/O error must not read as "no volumes"
      // and let the filesystem under them be retired.
      ...(await readdir(`${mnt}/volumes`).catch(ifNotFound<string[]>([]))),
      ...(await readdir(`${mnt}/blocks`).catch(ifNotFound<string[]>([]))),
      // Snapshots are data too (restorable after their volume is gone): they hold the filesystem as volumes do.
      ...(await readdir(`${mnt}/snapshots`).catch(ifNotFound<string[]>([]))),
    ];
    if (volumeNames.length > 0) {
      const message = `no disk of this node is claimed by pool ${pool} any more, but its filesystem still holds ${volumeNames.length} volume(s) (${volumeNames.slice(0, 5).join(', ')}${volumeNames.length > 5 ? ', …' : ''}); it stays mounted and the disks stay in it until those volumes are deleted`;
      log.warn({ pool, members }, message);
      const previous = this.states.get(pool);
      this.states.set(pool, {
        pool,
        mountPoint: mnt,
        uuid: fs.uuid,
        copies: previous?.copies ?? 1,
        degraded: previous?.degraded ?? false,
        deviceStats: previous?.deviceStats ?? [],
        quotas: previous?.quotas ?? ((await btrfs.quotaMode(fs.uuid)) === 'squota' ? 'squota' : 'qgroup'),
        message,
        removalRefused: message,
      });
      return new Map(members.map((m) => [m, { prepared: false, reason: 'ReleaseRefused', message }]));
    }
    const label = labelFor(pool);
    log.warn(
      { pool, members },
      'the last disk left the pool on this node: unmounting its filesystem and removing its signature from the disks',
    );
    await run('umount', [mnt]);
    await rmdir(mnt).catch((err: unknown) => {
      // An empty mount point left behind harms nothing; the signatures below are what frees the disks.
      if (!isNotFound(err))
        log.warn({ pool, mountPoint: mnt, err: errorMessage(err) }, 'could not remove the unmounted pool directory; going on');
    });
    for (const device of members) {
      // Only a device that still carries this pool's filesystem: never one the kernel gave another role meanwhile.
      const probe = await btrfs.probe(device);
      if (probe.type === 'btrfs' && probe.label === label && probe.uuid === fs.uuid) await run('wipefs', ['--all', '--force', device]);
    }
    this.states.delete(pool);
    this.listings.delete(mnt);
    this.scrubs.delete(pool);
    return new Map();
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

    const mounted = await this.mountedPool(pool);
    if (!mounted) {
      let members = ours;
      if (members.length === 0) {
        if (blank.length < copies) {
          return all(
            false,
            'NotEnoughDisks',
            `replicated.size ${copies} needs at least ${copies} blank disks of pool ${pool} on this node; ${blank.length} available`,
          );
        }
        const devices = blank.map((d) => d.devicePath);
        log.warn({ pool, devices, copies }, 'creating the pool filesystem (mkfs.btrfs)');
        await btrfs.mkfs(
          devices,
          label,
          copies,
          blank.some((d) => foreign.includes(d)),
        );
        members = blank;
        blank = [];
      }
      await mkdir(mnt, { recursive: true });
      await btrfs.scan(members.map((d) => d.devicePath));
      try {
        await btrfs.mount(members[0].devicePath, mnt, false);
      } catch (err) {
        // A missing member: mount degraded where the profile keeps a copy elsewhere, never otherwise.
        if (copies < 2)
          throw new Error(
            `cannot mount pool ${pool} (${errorMessage(err)}); with replicated.size 1 a missing disk means lost data, so it is not mounted degraded`,
            { cause: err },
          );
        log.warn({ pool, err: errorMessage(err) }, 'mounting the pool filesystem degraded');
        await btrfs.mount(members[0].devicePath, mnt, true);
      }
    }

    let fs = await btrfs.show(mnt);
    const quotas = await this.ensureQuotas(pool, mnt, fs.uuid);
    const memberPaths = new Set(fs.devices.filter((d) => d.path).map((d) => d.path!));
    blank = blank.filter((d) => !memberPaths.has(real.get(d.name)!));
    let changed = false;
    // Members whose disk lost its medium (btrfs still holds the dead device open): gone for redundancy.
    const failed = await failedMembers(disks);
    // Heal first: rebuild each missing or failed member's copies onto a new blank disk.
    for (const gone of fs.devices.filter((d) => d.path === undefined || failed.has(d.path))) {
      const spare = blank.shift();
      if (!spare) break;
      log.warn({ pool, devid: gone.devid, device: spare.devicePath }, 'replacing a missing disk of the pool filesystem');
      await btrfs.replace(gone.devid, spare.devicePath, mnt).catch(async (err: unknown) => {
        // Every byte of the devices allocated to chunks (rewrites leave many nearly empty): free
        // those first, then rebuild. Anything else is reported as it is.
        if (!/No space left on device/i.test(errorMessage(err))) throw err;
        log.warn({ pool, devid: gone.devid }, 'no unallocated space for the rebuild; compacting nearly empty chunks first');
        await btrfs.compactChunks(mnt);
        await btrfs.replace(gone.devid, spare.devicePath, mnt);
      });
      await btrfs.resize(gone.devid, mnt);
      changed = true;
    }
    if (blank.length > 0) {
      log.warn({ pool, devices: blank.map((d) => d.devicePath) }, 'adding disks to the pool filesystem');
      await btrfs.deviceAdd(
        blank.map((d) => d.devicePath),
        mnt,
        blank.some((d) => foreign.includes(d)),
      );
      changed = true;
    }
    if (changed) {
      await btrfs.balance(mnt, copies);
      fs = await btrfs.show(mnt);
    }

    // Disks that left the pool (claim cleared): migrate their data away, unless the rest cannot hold it.
    const claimedPaths = new Set([...real.values()]);
    let removalRefused: string | undefined;
    // (A failed member has not left: its claim stands; it is rebuilt onto a new disk above.)
    for (const member of fs.devices.filter((d) => d.path && !claimedPaths.has(d.path) && !failed.has(d.path))) {
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
    const scrub = await this.lastScrub(pool, mnt);
    const observed: ObservedPool = {
      pool,
      mountPoint: mnt,
      uuid: fs.uuid,
      copies,
      devices: fs.devices,
      stats,
      scrub,
      removalRefused,
      failed: [...failed],
    };
    const { notes, degraded } = poolNotes(observed);
    this.states.set(pool, {
      pool,
      mountPoint: mnt,
      uuid: fs.uuid,
      copies,
      degraded,
      deviceStats: stats,
      quotas,
      message: notes.join('; ') || 'healthy',
      ...(removalRefused ? { removalRefused } : {}),
      ...(scrub ? { scrub } : {}),
    });
    return diskOutcomes(observed, disks, { real, probes, foreign });
  }

  /** The last scrub's result, read at most every {@link SCRUB_STATUS_INTERVAL_MS}; a failed read is not fatal. */
  private async lastScrub(pool: string, mnt: string): Promise<btrfs.ScrubStatus | undefined> {
    const cached = this.scrubs.get(pool);
    if (cached && Date.now() - cached.at < SCRUB_STATUS_INTERVAL_MS) return cached.status;
    let status: btrfs.ScrubStatus | undefined;
    try {
      status = await btrfs.scrubStatus(mnt);
    } catch (err) {
      log.warn({ pool, err: errorMessage(err) }, 'cannot read the last scrub result');
    }
    this.scrubs.set(pool, { at: Date.now(), ...(status ? { status } : {}) });
    return status;
  }

  /**
   * Volume size limits need quotas. A new filesystem gets simple quotas where the kernel has them:
   * full qgroup accounting resolves the sharing of every extent written at each transaction commit
   * (about a fifth of the CPU time under 4k random writes, and commit stalls); simple quotas charge
   * each extent to the subvolume that wrote it, which is exact for volumes without snapshots. Simple
   * quotas only count extents written after they were enabled, so a filesystem that already holds
   * volumes (quotas lost to a crash between mount and enable) gets full accounting, which rescans.
   * Checked on every sync (a sysfs read), so a crash at any point is repaired on the next pass.
   */
  private async ensureQuotas(pool: string, mnt: string, uuid: string): Promise<'squota' | 'qgroup'> {
    const mode = await btrfs.quotaMode(uuid);
    if (mode !== 'disabled') return mode;
    const holdsVolumes =
      (await readdir(`${mnt}/volumes`).catch(ifNotFound([]))).length > 0 ||
      (await readdir(`${mnt}/blocks`).catch(ifNotFound([]))).length > 0;
    if ((this.options.simpleQuotas ?? true) && !holdsVolumes && (await btrfs.kernelHasSimpleQuotas())) {
      try {
        await btrfs.quotaEnableSimple(mnt);
        log.info({ pool }, 'enabled simple quotas on the pool filesystem');
        return 'squota';
      } catch (err) {
        log.warn({ pool, err: errorMessage(err) }, 'simple quotas could not be enabled; using full qgroup accounting');
      }
    }
    await btrfs.quotaEnable(mnt);
    return 'qgroup';
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

  /** The volume's own subvolume or file, verified on disk (see own-volume.ts); throws saying what is wrong. */
  async ownVolume(pool: string, name: string, mode: VolumeMode): Promise<OwnVolume> {
    return ownVolume(await this.requireMounted(pool), name, mode);
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
    return {
      path,
      usedBytes: await volumes.usedBytes(mnt, path, mode, mode === 'Filesystem' ? await this.qgroupListing(mnt, maxAgeMs) : undefined),
    };
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
  async health(pool: string): Promise<{ degraded: boolean; message: string; reason?: string }> {
    const mnt = await this.mountedPool(pool);
    if (!mnt) return { degraded: true, message: `pool ${pool}'s filesystem is not mounted on this node` };
    const known = this.states.get(pool);
    // Data without a good copy is worse than a missing disk: say so first.
    if (known?.scrub && known.scrub.uncorrectableErrors > 0)
      return { degraded: true, reason: 'UncorrectableErrors', message: known.message };
    if (known) return { degraded: known.degraded, message: known.message };
    const fs = await btrfs.show(mnt);
    const missing = fs.devices.filter((d) => d.path === undefined).length;
    if (missing > 0)
      return { degraded: true, message: `${missing} disk(s) of pool ${pool} are missing on this node; the pool runs degraded` };
    return { degraded: false, message: this.states.get(pool)?.message ?? 'healthy' };
  }
}

/** Resolved device paths of the disks the agent reports as failed (present, but every I/O fails). */
async function failedMembers(disks: readonly ClaimedDisk[]): Promise<Set<string>> {
  const out = new Set<string>();
  for (const d of disks) {
    if (!d.failed) continue;
    // A failed disk whose device node is gone already is no member to name by path.
    const path = await realpath(d.devicePath).catch(ifNotFound(undefined));
    if (path) out.add(path);
  }
  return out;
}

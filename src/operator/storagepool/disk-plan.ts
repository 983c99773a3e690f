import type { DiskClaim, NodeDisk } from '../../crds/nodedisk.js';
import type { StoragePool } from '../../crds/storagepool.js';
import { matchesSelector } from '../../kube/label-selector.js';
import type { Node, PersistentVolume } from '../../kube/types.js';
import { tryParseBytes } from '../../util/quantity.js';
import { findCondition } from '../../runtime/conditions.js';
import { isInUse, isRetained, persistentVolumeName } from './persistent-volume.js';

/**
 * Eligible=False reasons a pool may override with `disks.allowAdoption`: the disk carries data
 * structures, but nothing is using it. Never `Mounted`, `SystemDisk` or `ReadOnly`.
 */
const ADOPTABLE_REASONS = new Set(['HasFilesystem', 'HasPartitions']);

/** Everything the plan looks at; all of it comes from informer caches. */
export interface PoolWorld {
  /** Defaulted (withDefaults) and valid. */
  readonly pool: StoragePool;
  readonly disks: readonly NodeDisk[];
  readonly nodes: ReadonlyMap<string, Node>;
  /** This pool's PVs by name. */
  readonly volumes: ReadonlyMap<string, PersistentVolume>;
}

export interface DiskPlan {
  /** Unclaimed disks to claim now. */
  readonly claim: NodeDisk[];
  /** Disks this pool holds and keeps. */
  readonly keep: NodeDisk[];
  /** Disks this pool holds but no longer selects, with no volume in use: hand back. */
  readonly release: NodeDisk[];
  /** Disks this pool would hand back but cannot, because a workload uses (or retains) their volume. */
  readonly held: { disk: NodeDisk; reason: string }[];
  /** Disks this pool selects that another pool claimed first (the older claim wins). */
  readonly conflicts: { disk: NodeDisk; pool: string }[];
}

/** The claim a pool writes on a disk it selects: how the agent must prepare it. */
export function desiredClaim(pool: StoragePool): DiskClaim {
  if (pool.spec.mode === 'Dynamic') return { pool: pool.metadata.name, mode: 'Dynamic', ...adoption(pool) };
  const volumeMode = pool.spec.local?.volumeMode ?? 'Filesystem';
  return {
    pool: pool.metadata.name,
    mode: 'Local',
    volumeMode,
    ...(volumeMode === 'Filesystem' ? { fsType: pool.spec.local?.fsType ?? 'ext4' } : {}),
    ...adoption(pool),
  };
}

function adoption(pool: StoragePool): { allowAdoption?: true } {
  return pool.spec.disks.allowAdoption ? { allowAdoption: true } : {};
}

/** Same preparation asked for: a disk prepared for one claim is not right for a different one. */
export function sameClaim(a: DiskClaim | undefined, b: DiskClaim): boolean {
  return a !== undefined && a.pool === b.pool && a.mode === b.mode && a.volumeMode === b.volumeMode && a.fsType === b.fsType;
}

/**
 * Why `pool` does not select `disk`, or undefined when it does. Claims are ignored here: this is
 * whether the pool's own criteria match, which is what the conflict rule compares. A claimed disk
 * (by this pool or another) is not checked for eligibility: once prepared it carries a filesystem
 * and is in use, which is exactly what a claim means.
 */
export function selectionProblem(pool: StoragePool, disk: NodeDisk, node: Node | undefined, claimed: boolean): string | undefined {
  if (!node) return `its node ${disk.spec.nodeName} is not in the cluster`;
  if (!matchesSelector(pool.spec.disks.selector, disk.metadata.labels)) return 'its labels do not match disks.selector';
  if (pool.spec.disks.nodeSelector && !matchesSelector(pool.spec.disks.nodeSelector, node.metadata.labels)) {
    return `its node ${disk.spec.nodeName} does not match disks.nodeSelector`;
  }
  const min = tryParseBytes(pool.spec.disks.minSize); // memoized: cheap per disk
  const capacity = tryParseBytes(disk.status?.capacity);
  if (min !== undefined && (capacity === undefined || capacity < min)) return `it is smaller than disks.minSize ${pool.spec.disks.minSize}`;
  if (disk.spec.schedulable === false) return 'an administrator cordoned it (spec.schedulable: false)';
  const isMount = disk.status?.kind === 'Mount';
  if (isMount && !(pool.spec.mode === 'Local' && (pool.spec.local?.volumeMode ?? 'Filesystem') === 'Filesystem')) {
    return 'it is a mounted directory, which only Local Filesystem pools can use';
  }
  if (claimed) return undefined;
  const eligible = findCondition(disk.status?.conditions, 'Eligible');
  if (eligible?.status === 'True') return undefined;
  if (eligible?.status === 'False' && pool.spec.disks.allowAdoption && ADOPTABLE_REASONS.has(eligible.reason)) return undefined;
  return eligible
    ? `it is not eligible (${eligible.reason}: ${eligible.message})`
    : 'the node agent has not reported whether it is eligible';
}

/**
 * What a pool does with every disk in the cluster, by the claim protocol (DESIGN §2): claim what it
 * selects and nobody holds, keep what it holds and still selects with the same preparation, hand
 * back what it no longer selects unless a workload still uses the disk's volume, and report
 * selected disks another pool holds.
 */
export function planDisks(world: PoolWorld): DiskPlan {
  const { pool } = world;
  const name = pool.metadata.name;
  const wanted = desiredClaim(pool);
  const plan: DiskPlan = { claim: [], keep: [], release: [], held: [], conflicts: [] };
  for (const disk of world.disks) {
    const claim = disk.spec.claim;
    const ours = claim?.pool === name;
    const problem = selectionProblem(pool, disk, world.nodes.get(disk.spec.nodeName), claim !== undefined);
    if (!ours) {
      if (problem !== undefined) continue;
      if (claim) plan.conflicts.push({ disk, pool: claim.pool });
      else plan.claim.push(disk);
      continue;
    }
    if (problem === undefined && sameClaim(claim, wanted)) {
      plan.keep.push(disk);
      continue;
    }
    const pv = world.volumes.get(persistentVolumeName(disk.metadata.name));
    const why = problem ?? 'the pool now asks for a different preparation (mode, volumeMode or fsType)';
    if (pv && isInUse(pv)) plan.held.push({ disk, reason: `${why}, but its volume ${pv.metadata.name} is bound to ${claimRefName(pv)}` });
    else if (pv && isRetained(pv))
      plan.held.push({
        disk,
        reason: `${why}, but its volume ${pv.metadata.name} is Released and retained (reclaimPolicy Retain); delete the PV to free the disk`,
      });
    else plan.release.push(disk);
  }
  return plan;
}

export function claimRefName(pv: PersistentVolume): string {
  const ref = pv.spec.claimRef;
  return ref ? `${ref.namespace ?? ''}/${ref.name ?? ''}` : 'a claim';
}

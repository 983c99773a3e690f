/**
 * Reservation-based capacity of Dynamic pools, computed from API objects only (the controller cannot
 * look at disks): per node, what the pool's prepared disks there can hold after replication, minus a
 * metadata reserve, minus what that node's PoolVolumes already reserve and the bytes its
 * PoolSnapshots hold alone (a snapshot shares its data with the volume at first; what the volume
 * overwrites afterwards, or all of it once the volume is deleted, is the snapshot's). Pure functions.
 */
import type { NodeDisk } from './nodedisk.js';
import type { PoolVolume } from './poolvolume.js';
import type { PoolSnapshot } from './poolsnapshot.js';
import { tryParseBytes } from '../util/quantity.js';

/** Default share of the usable space kept free for btrfs metadata, global reserve and balance room. */
export const DEFAULT_METADATA_RESERVE_PERCENT = 10;

/**
 * Bytes `copies`-way mirrored data can fill on disks of these sizes, the way btrfs allocates chunks:
 * each chunk goes to the `copies` disks with the most free space, so the biggest disk cannot be used
 * beyond what the others can mirror. min over k of (sum without the k largest) / (copies − k).
 */
export function mirroredBytes(diskSizes: readonly bigint[], copies: number): bigint {
  if (copies < 1 || diskSizes.length < copies) return 0n;
  const sorted = [...diskSizes].sort((a, b) => (a > b ? -1 : a < b ? 1 : 0));
  const total = sorted.reduce((s, v) => s + v, 0n);
  let best = total / BigInt(copies);
  let without = total;
  for (let k = 1; k < copies; k++) {
    without -= sorted[k - 1];
    const bound = without / BigInt(copies - k);
    if (bound < best) best = bound;
  }
  return best;
}

export interface NodeCapacity {
  readonly node: string;
  /** Sum of the prepared disks' sizes. */
  readonly raw: bigint;
  /** What volumes may reserve in total: mirrored bytes minus the metadata reserve. */
  readonly usable: bigint;
  /** Sum of the sizes of this node's PoolVolumes of the pool (deleting ones included until gone), plus {@link snapshots}. */
  readonly allocated: bigint;
  /** Bytes this node's PoolSnapshots of the pool hold alone (their reported `status.exclusive`). */
  readonly snapshots: bigint;
  readonly available: bigint;
}

const isPrepared = (d: NodeDisk): boolean => d.status?.conditions?.some((c) => c.type === 'Prepared' && c.status === 'True') ?? false;

/** Size of a disk as the agent reported it. */
export function diskBytes(d: NodeDisk): bigint | undefined {
  return tryParseBytes(d.status?.capacity);
}

/** The prepared disks of a Dynamic pool, grouped by node. */
export function preparedDisksByNode(pool: string, disks: readonly NodeDisk[]): Map<string, NodeDisk[]> {
  const out = new Map<string, NodeDisk[]>();
  for (const d of disks) {
    if (d.spec.claim?.pool !== pool || d.spec.claim.mode !== 'Dynamic' || !isPrepared(d)) continue;
    out.set(d.spec.nodeName, [...(out.get(d.spec.nodeName) ?? []), d]);
  }
  return out;
}

export function nodeCapacity(opts: {
  node: string;
  disks: readonly NodeDisk[];
  volumes: readonly PoolVolume[];
  snapshots?: readonly PoolSnapshot[];
  copies: number;
  reservePercent: number;
}): NodeCapacity {
  const sizes = opts.disks.map(diskBytes).filter((b): b is bigint => b !== undefined);
  const raw = sizes.reduce((s, v) => s + v, 0n);
  const mirrored = mirroredBytes(sizes, opts.copies);
  const usable = mirrored - (mirrored * BigInt(Math.round(opts.reservePercent * 100))) / 10000n;
  const snapshots = snapshotBytes(opts.snapshots ?? []);
  const allocated = opts.volumes.reduce((s, v) => s + (tryParseBytes(v.spec.size) ?? 0n), 0n) + snapshots;
  const available = usable > allocated ? usable - allocated : 0n;
  return { node: opts.node, raw, usable, allocated, snapshots, available };
}

/** Bytes the snapshots hold alone, as their node daemons last reported (deleting ones count until gone). */
export function snapshotBytes(snapshots: readonly PoolSnapshot[]): bigint {
  return snapshots.reduce((s, p) => s + (tryParseBytes(p.status?.exclusive) ?? 0n), 0n);
}

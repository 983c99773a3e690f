import type { NodeDisk } from '../../crds/nodedisk.js';
import type { PoolVolume } from '../../crds/poolvolume.js';
import type { PoolSnapshot } from '../../crds/poolsnapshot.js';
import type { StoragePool } from '../../crds/storagepool.js';
import { DEFAULT_METADATA_RESERVE_PERCENT, nodeCapacity, preparedDisksByNode, snapshotBytes } from '../../crds/capacity.js';
import { tryParseBytes } from '../../util/quantity.js';
import type { DynamicObservation } from './status.js';

/**
 * A Dynamic pool's capacity and replication health, with the CSI controller's own arithmetic
 * (`nodeCapacity`: prepared disks per node, mirrored per `replicated.size`, minus the metadata
 * reserve; the bytes snapshots hold alone are allocated), so the pool's status and `GetCapacity`
 * can never disagree.
 */
export function observeDynamicPool(
  pool: StoragePool,
  claimed: readonly NodeDisk[],
  volumes: readonly PoolVolume[],
  snapshots: readonly PoolSnapshot[] = [],
): DynamicObservation {
  const copies = pool.spec.replicated?.size ?? 1;
  const name = pool.metadata.name;
  const mine = volumes.filter((v) => v.spec.pool === name);
  const mySnapshots = snapshots.filter((s) => s.spec.pool === name);
  let usableBytes = 0n;
  for (const [node, disks] of preparedDisksByNode(name, claimed)) {
    usableBytes += nodeCapacity({
      node,
      disks,
      volumes: mine.filter((v) => v.spec.node === node),
      copies,
      reservePercent: DEFAULT_METADATA_RESERVE_PERCENT,
    }).usable;
  }
  const perNode = new Map<string, number>();
  for (const d of claimed) perNode.set(d.spec.nodeName, (perNode.get(d.spec.nodeName) ?? 0) + 1);
  const nodesBelowReplication = [...perNode]
    .filter(([, count]) => count < copies)
    .map(([node, disks]) => ({ node, disks }))
    .sort((a, b) => a.node.localeCompare(b.node));
  return {
    usableBytes,
    allocatedBytes: mine.reduce((sum, v) => sum + (tryParseBytes(v.spec.size) ?? 0n), 0n) + snapshotBytes(mySnapshots),
    snapshots: mySnapshots.length,
    snapshotBytes: snapshotBytes(mySnapshots),
    nodesBelowReplication,
    volumes: mine.length,
  };
}

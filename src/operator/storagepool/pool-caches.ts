import type { NodeDisk } from '../../crds/nodedisk.js';
import type { PoolVolume } from '../../crds/poolvolume.js';
import type { PoolSnapshot } from '../../crds/poolsnapshot.js';
import type { StoragePool } from '../../crds/storagepool.js';
import { matchesSelector } from '../../kube/label-selector.js';
import type { KubeObject, Node, PersistentVolume, StorageClass } from '../../kube/types.js';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE, POOL_LABEL } from '../../crds/labels.js';
import type { Informer } from '../../runtime/informer.js';

export type Pool = StoragePool & KubeObject;
export type Disk = NodeDisk & KubeObject;

/** The informer caches the pool reconciler reads; it never lists from the API server itself. */
export interface PoolCaches {
  readonly pools: Informer<Pool>;
  readonly disks: Informer<Disk>;
  /** Every PersistentVolume (one cache, shared with the driver-stack controller); Stowage's are indexed by pool. */
  readonly volumes: Informer<PersistentVolume>;
  readonly classes: Informer<StorageClass>;
  readonly nodes: Informer<Node>;
  /** Dynamic pools' volumes, as the CSI controller records them. */
  readonly poolVolumes: Informer<PoolVolume & KubeObject>;
  /** Dynamic pools' snapshots: the bytes they hold alone, and a pool's deletion waits for them. */
  readonly poolSnapshots: Informer<PoolSnapshot & KubeObject>;
  /** The snapshot.storage.k8s.io VolumeSnapshotClass CRD, when the cluster has it (one object or none). */
  readonly snapshotCrds: Informer;
}

/** Index of disks by the pool that claims them, and of Stowage's PVs by the pool that made them. */
const BY_POOL = 'stowage.dev/pool';
/** Index of disks by their node. */
const BY_NODE = 'spec.nodeName';

/**
 * Adds the indexes the queries below use. Reconciles then cost what the pool holds, not what the
 * cluster holds: at 4,000 disks and 20 pools, scanning every disk and PV per reconcile was most of
 * the operator's CPU time. Idempotent (the informers are shared).
 */
export function indexPoolCaches(caches: PoolCaches): void {
  caches.disks.addIndex(BY_POOL, (d) => (d.spec.claim?.pool ? [d.spec.claim.pool] : []));
  caches.disks.addIndex(BY_NODE, (d) => [d.spec.nodeName]);
  caches.volumes.addIndex(BY_POOL, (pv) => {
    const labels = pv.metadata.labels;
    return labels?.[MANAGED_BY_LABEL] === MANAGED_BY_VALUE && labels[POOL_LABEL] ? [labels[POOL_LABEL]] : [];
  });
}

/** The PVs Stowage made for `pool`, by name. */
export function volumesOf(caches: PoolCaches, pool: string): Map<string, PersistentVolume> {
  return new Map(caches.volumes.byIndex(BY_POOL, pool).map((pv) => [pv.metadata.name!, pv]));
}

/** The disks `pool` has claimed. */
export function disksOf(caches: PoolCaches, pool: string): Disk[] {
  return caches.disks.byIndex(BY_POOL, pool);
}

/**
 * The disks `pool` may have to do with, sorted by name: those it holds, and every disk it could
 * select. With a `disks.nodeSelector` that is only the disks of matching nodes (found through the
 * node index), so a pool over 25 of 500 nodes looks at 200 disks, not 4,000. Sorting keeps
 * everything derived from the plan (claim order, status messages) stable between reconciles.
 */
export function candidateDisks(caches: PoolCaches, pool: StoragePool, nodes: ReadonlyMap<string, Node>): Disk[] {
  const nodeSelector = pool.spec.disks.nodeSelector;
  let candidates: Disk[];
  if (!nodeSelector) {
    candidates = caches.disks.list();
  } else {
    const found = new Set(disksOf(caches, pool.metadata.name));
    for (const node of nodes.values()) {
      if (!matchesSelector(nodeSelector, node.metadata.labels)) continue;
      for (const disk of caches.disks.byIndex(BY_NODE, node.metadata.name!)) found.add(disk);
    }
    candidates = [...found];
  }
  return candidates.sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0));
}

/**
 * The operator's part for pools whose copies go to other nodes (failureDomain host or zone): what
 * it observes of them in the informer caches. The pool reconciler hands such pools here before it
 * creates anything, so nothing of the btrfs path (StorageClass, claims, finalizer) runs for them.
 */
import type { StoragePool } from '../../crds/storagepool.js';
import type { Node } from '../../kube/types.js';
import { planDisks } from '../storagepool/disk-plan.js';
import { candidateDisks, disksOf, volumesOf, type PoolCaches } from '../storagepool/pool-caches.js';
import { isOwnedBy } from '../storagepool/storage-class.js';
import { placementOf } from './failure-domains.js';
import type { AcrossNodesObservation } from './placement-status.js';

/**
 * The placement of a defaulted, valid host or zone pool over the eligible disks it selects (the
 * claim protocol's own selection: labels, nodeSelector, minSize, schedulable, Eligible, and no
 * other pool's claim), and what it still holds from a life as a disk pool. Reads caches only.
 */
export function observeAcrossNodes(pool: StoragePool, caches: PoolCaches, nodes: ReadonlyMap<string, Node>): AcrossNodesObservation {
  const name = pool.metadata.name;
  const plan = planDisks({ pool, disks: candidateDisks(caches, pool, nodes), nodes, volumes: volumesOf(caches, name) });
  const selectable = [...plan.keep, ...plan.claim];
  return {
    ...(pool.metadata.generation !== undefined ? { generation: pool.metadata.generation } : {}),
    placement: placementOf(pool, selectable, nodes),
    leftovers: {
      disks: disksOf(caches, name)
        .map((d) => d.metadata.name)
        .sort(),
      storageClasses: caches.classes
        .list()
        .filter((c) => isOwnedBy(c, pool))
        .map((c) => c.metadata.name!)
        .sort(),
    },
  };
}

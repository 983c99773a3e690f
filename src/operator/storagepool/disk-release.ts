/**
 * A pool being deleted goes only after the node agents released its disks (issue 25, item 8):
 * otherwise deleting the pools and then Stowage (the uninstall order) removes the agents while
 * disks are still mounted with Stowage's filesystem. On deletion the operator clears each disk's
 * claim but keeps the pool label `stowage.dev/pool` on it as the mark "released by this pool, not
 * yet confirmed"; the agent confirms with Prepared=False, reason NotClaimed, for the disk's current
 * generation; then the label goes. A disk whose node is gone, or that no agent ever reported on
 * (no Prepared condition), has no agent to wait for. Pure.
 */
import type { NodeDisk } from '../../crds/nodedisk.js';
import { POOL_LABEL } from '../../crds/labels.js';
import { findCondition } from '../../runtime/conditions.js';

export interface ReleaseProgress {
  /** Released by the agent (or on a node that is gone): the pool label can go. */
  readonly done: NodeDisk[];
  /** Still waiting for the agent, with what it says now. */
  readonly waiting: { disk: NodeDisk; why: string }[];
}

/** The disks `pool` released on deletion (claim cleared, label kept), split by whether the agent confirmed. */
export function releaseProgress(pool: string, disks: readonly NodeDisk[], nodeExists: (name: string) => boolean): ReleaseProgress {
  const done: NodeDisk[] = [];
  const waiting: { disk: NodeDisk; why: string }[] = [];
  for (const d of disks) {
    if (d.metadata.labels?.[POOL_LABEL] !== pool) continue;
    if (d.spec.claim) {
      // Still claimed (the write budget may clear claims over several rounds): not released yet,
      // and the pool must not go before it is.
      if (d.spec.claim.pool === pool)
        waiting.push({ disk: d, why: `${d.metadata.name} on node ${d.spec.nodeName} (its claim is being cleared)` });
      continue;
    }
    const prepared = findCondition(d.status?.conditions, 'Prepared');
    // An agent that states the generation it acted on must have acted on the cleared claim.
    const current =
      prepared !== undefined && (prepared.observedGeneration === undefined || prepared.observedGeneration >= (d.metadata.generation ?? 0));
    // No Prepared condition at all: no agent ever reported on this disk, so none will release it.
    if (!nodeExists(d.spec.nodeName) || !prepared || (current && prepared.reason === 'NotClaimed')) {
      done.push(d);
      continue;
    }
    const now = current ? `${prepared.reason}: ${prepared.message}` : 'the node agent has not reported on the released claim yet';
    waiting.push({ disk: d, why: `${d.metadata.name} on node ${d.spec.nodeName} (${now})` });
  }
  return { done, waiting };
}

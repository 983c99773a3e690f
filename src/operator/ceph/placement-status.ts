/**
 * The status of a pool whose copies go to other nodes (failureDomain host or zone), in this
 * version: the placement is checked up front, and the Ceph engine that would keep the copies is
 * not wired into the operator yet, so the pool says exactly that and serves nothing. Pure.
 */
import type { StoragePoolStatus } from '../../crds/storagepool.js';
import type { Condition } from '../../kube/types.js';
import { findCondition, setConditions, type ConditionInput } from '../../runtime/conditions.js';
import { describePlacement, isSatisfiable, placementFix, type Placement } from './failure-domains.js';

/** What the operator saw of a host or zone pool. */
export interface AcrossNodesObservation {
  readonly generation?: number;
  readonly placement: Placement;
  /**
   * What the pool still holds from before it asked for host or zone (disks it claimed and the
   * StorageClass it published as a disk pool): never touched here, because data does not move
   * between engines.
   */
  readonly leftovers: { readonly disks: readonly string[]; readonly storageClasses: readonly string[] };
}

/** The conditions such a pool reports; the others describe things it does not have. */
const REPORTED = ['Ready', 'ReplicationSatisfiable'];

export function acrossNodesStatus(obs: AcrossNodesObservation, previous: StoragePoolStatus | undefined, now: string): StoragePoolStatus {
  const withGeneration = (c: Omit<ConditionInput, 'observedGeneration'>): ConditionInput =>
    obs.generation !== undefined ? { ...c, observedGeneration: obs.generation } : c;
  const kept = previous?.conditions?.filter((c) => REPORTED.includes(c.type));
  const conditions = setConditions(kept, [withGeneration(readyCondition(obs)), withGeneration(replicationCondition(obs.placement))], now);
  return {
    ...previous,
    ...(obs.generation !== undefined ? { observedGeneration: obs.generation } : {}),
    conditions: REPORTED.map((t) => findCondition(conditions, t)).filter((c): c is Condition => c !== undefined),
  };
}

function replicationCondition(placement: Placement): Omit<ConditionInput, 'observedGeneration'> {
  if (isSatisfiable(placement)) {
    return { type: 'ReplicationSatisfiable', status: 'True', reason: 'EnoughFailureDomains', message: describePlacement(placement) };
  }
  return {
    type: 'ReplicationSatisfiable',
    status: 'False',
    reason: 'TooFewFailureDomains',
    message: `${describePlacement(placement)}; ${placementFix(placement)}`,
  };
}

function readyCondition(obs: AcrossNodesObservation): Omit<ConditionInput, 'observedGeneration'> {
  const { disks, storageClasses } = obs.leftovers;
  if (disks.length > 0 || storageClasses.length > 0) {
    const held = [
      ...(disks.length > 0 ? [`${disks.length} disk(s) (${disks.slice(0, 5).join(', ')}${disks.length > 5 ? ', …' : ''})`] : []),
      ...storageClasses.map((c) => `StorageClass ${c}`),
    ].join(' and ');
    return {
      type: 'Ready',
      status: 'False',
      reason: 'FailureDomainChanged',
      message: `the pool still holds ${held} from when its failureDomain was disk; data does not move between engines, so nothing is changed: set replicated.failureDomain back to disk, or move the data to a new pool and delete this one`,
    };
  }
  if (!isSatisfiable(obs.placement)) {
    return {
      type: 'Ready',
      status: 'False',
      reason: 'ReplicationNotSatisfiable',
      message: `nothing is created for the pool (no StorageClass, no disk claims) while fewer than ${obs.placement.size} ${obs.placement.failureDomain === 'host' ? 'nodes' : 'zones'} hold eligible disks; ReplicationSatisfiable says which do`,
    };
  }
  return {
    type: 'Ready',
    status: 'False',
    reason: 'CephEngineNotDeployed',
    message: `the placement is satisfiable (${describePlacement(obs.placement)}), but this version of Stowage checks placement for failureDomain ${obs.placement.failureDomain} and does not yet deploy the Ceph cluster that keeps the copies; no StorageClass is published and no disk is claimed, so no claim waits for volumes nobody can serve`,
  };
}

/** Warning events for a pool that turned unsatisfiable (once per change), and a Normal one when it recovers. */
export function placementEvents(
  before: readonly Condition[] | undefined,
  after: readonly Condition[] | undefined,
): { type: 'Normal' | 'Warning'; reason: string; message: string }[] {
  const was = findCondition(before, 'ReplicationSatisfiable');
  const now = findCondition(after, 'ReplicationSatisfiable');
  if (now?.status === 'False' && (was?.status !== 'False' || was.message !== now.message)) {
    return [{ type: 'Warning', reason: 'ReplicationNotSatisfiable', message: now.message }];
  }
  if (now?.status === 'True' && was?.status === 'False') return [{ type: 'Normal', reason: 'EnoughFailureDomains', message: now.message }];
  return [];
}

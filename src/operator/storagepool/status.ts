import type { Problem } from '../../crds/meta.js';
import type { NodeDisk } from '../../crds/nodedisk.js';
import type { StoragePool, StoragePoolStatus } from '../../crds/storagepool.js';
import type { Condition, PersistentVolume } from '../../kube/types.js';
import { formatBytes, sumBytes, tryParseBytes } from '../../util/quantity.js';
import { findCondition, setConditions, type ConditionInput } from '../../runtime/conditions.js';
import type { DiskPlan } from './disk-plan.js';
import { phaseOf } from './persistent-volume.js';
import { snapshotsCondition, type SnapshotClassObservation } from './snapshot-class.js';

/** How many names or problems a condition message lists before it says "and N more". */
const MAX_LISTED = 5;
const DEFAULT_LOW_WATERMARK_PERCENT = 10;

/** What the reconciler observed and did, from which the status follows. */
export interface PoolObservation {
  /** Defaulted pool (withDefaults) with the live metadata and status. */
  readonly pool: StoragePool;
  readonly problems: readonly Problem[];
  /** Absent when the spec is invalid (nothing is planned then). */
  readonly plan?: DiskPlan;
  /** This pool's PVs (Local pools). */
  readonly volumes: readonly PersistentVolume[];
  readonly storageClassName: string;
  /** Set when the class name belongs to something that is not this pool's. */
  readonly storageClassConflict?: string;
  /** Claims (namespace/name) that keep a pool being deleted from going away. */
  readonly deletionBlockedBy?: readonly string[];
  /** A pool being deleted: disks released but not yet confirmed by their node agents (disk-release.ts), with why. */
  readonly releasingDisks?: readonly string[];
  /** Dynamic pools: capacity computed from disks and PoolVolumes (see capacity.ts). */
  readonly dynamic?: DynamicObservation;
  /** Dynamic pools: whether the node plugin serves the pool's nodes (driver-stack/health.ts). */
  readonly driver?: DriverObservation;
  /** Set when the cluster is too old for what the pool needs: nothing is done for it. */
  readonly unsupported?: string;
  /** Dynamic pools: the pool's VolumeSnapshotClass, or why there is none. */
  readonly snapshotClass?: SnapshotClassObservation;
}

export interface DriverObservation {
  readonly status: 'True' | 'False' | 'Unknown';
  readonly reason: string;
  readonly message: string;
  /** No node of the pool has a serving plugin: nothing can be mounted, so the pool is not Ready. */
  readonly noneServing: boolean;
}

export interface DynamicObservation {
  readonly usableBytes: bigint;
  readonly allocatedBytes: bigint;
  /** Nodes with fewer selected disks than `replicated.size`, with their disk counts. */
  readonly nodesBelowReplication: readonly { node: string; disks: number }[];
  readonly volumes: number;
  /** PoolSnapshots of the pool, and the bytes they hold alone (included in allocatedBytes). */
  readonly snapshots?: number;
  readonly snapshotBytes?: bigint;
}

/**
 * The status a pool should have. Pure: the same observation and time give the same status, and an
 * unchanged outcome keeps every lastTransitionTime, so an unchanged pool is never rewritten.
 */
export function poolStatus(obs: PoolObservation, now: string): StoragePoolStatus {
  const { pool } = obs;
  const generation = pool.metadata.generation;
  const withGeneration = (c: Omit<ConditionInput, 'observedGeneration'>): ConditionInput =>
    generation !== undefined ? { ...c, observedGeneration: generation } : c;
  const previous = pool.status ?? {};

  if (obs.unsupported) {
    return {
      ...previous,
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
      conditions: setConditions(
        previous.conditions,
        [withGeneration({ type: 'Ready', status: 'False', reason: 'UnsupportedKubernetes', message: obs.unsupported })],
        now,
      ),
    };
  }
  if (obs.problems.length > 0 || !obs.plan) {
    return {
      ...previous,
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
      conditions: setConditions(
        previous.conditions,
        [
          withGeneration({
            type: 'Ready',
            status: 'False',
            reason: 'InvalidSpec',
            message: `the spec is invalid; fix it and apply again: ${describeProblems(obs.problems)}`,
          }),
        ],
        now,
      ),
    };
  }

  const plan = obs.plan;
  const claimed = [...plan.keep, ...plan.held.map((h) => h.disk), ...plan.claim];
  const missing = claimed.filter((d) => findCondition(d.status?.conditions, 'Present')?.status === 'False');
  const unhealthy = claimed.filter((d) => findCondition(d.status?.conditions, 'Healthy')?.status === 'False');
  const ready = claimed.filter((d) => isReadyDisk(d));
  const nodes = new Set(claimed.map((d) => d.spec.nodeName));
  const byPhase = (phase: string): PersistentVolume[] => obs.volumes.filter((pv) => phaseOf(pv) === phase);
  const bytesOf = (pvs: readonly PersistentVolume[]): bigint => sumBytes(pvs.map((pv) => tryParseBytes(pv.spec.capacity?.storage) ?? 0n));
  const raw = sumBytes(claimed.map((d) => tryParseBytes(d.status?.capacity) ?? 0n));

  let usable: bigint;
  let allocated: bigint;
  let volumes: NonNullable<NonNullable<StoragePoolStatus['counts']>['volumes']>;
  if (obs.dynamic) {
    usable = obs.dynamic.usableBytes;
    allocated = obs.dynamic.allocatedBytes;
    volumes = { available: 0, bound: obs.dynamic.volumes, released: 0 };
  } else {
    const available = byPhase('Available');
    const held = [...byPhase('Bound'), ...byPhase('Released')];
    allocated = bytesOf(held);
    usable = allocated + bytesOf(available);
    volumes = { available: available.length, bound: byPhase('Bound').length, released: byPhase('Released').length };
  }
  const free = usable > allocated ? usable - allocated : 0n;

  const conditions: ConditionInput[] = [
    withGeneration(readyCondition(obs, claimed.length, ready.length, volumes)),
    withGeneration(disksHealthyCondition(claimed.length, missing, unhealthy)),
    withGeneration(replicationCondition(obs)),
    withGeneration(capacityCondition(pool, usable, free)),
    ...(obs.driver
      ? [withGeneration({ type: 'DriverReady', status: obs.driver.status, reason: obs.driver.reason, message: obs.driver.message })]
      : []),
    ...(obs.snapshotClass ? [withGeneration(snapshotsCondition(obs.snapshotClass))] : []),
  ];
  // Only pools that need the driver report DriverReady; a pool that stopped needing it drops it.
  const kept = obs.driver ? previous.conditions : previous.conditions?.filter((c) => c.type !== 'DriverReady');
  return {
    ...previous,
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
    conditions: orderConditions(setConditions(kept, conditions, now)),
    storageClassName: obs.storageClassName,
    counts: {
      nodes: nodes.size,
      disks: { total: claimed.length, ready: ready.length, unhealthy: unhealthy.length, missing: missing.length },
      volumes,
    },
    capacity: { raw: formatBytes(raw), usable: formatBytes(usable), allocated: formatBytes(allocated), available: formatBytes(free) },
  };
}

/** A claimed disk that can carry a volume: prepared, present, and not known to be failing. */
export function isReadyDisk(disk: NodeDisk): boolean {
  const conditions = disk.status?.conditions;
  return (
    findCondition(conditions, 'Prepared')?.status === 'True' &&
    findCondition(conditions, 'Present')?.status !== 'False' &&
    findCondition(conditions, 'Healthy')?.status !== 'False'
  );
}

function readyCondition(
  obs: PoolObservation,
  claimed: number,
  readyDisks: number,
  volumes: { available?: number; bound?: number; released?: number },
): Omit<ConditionInput, 'observedGeneration'> {
  const plan = obs.plan!;
  const notes = [
    ...(plan.conflicts.length > 0
      ? [
          `${plan.conflicts.length} selected disk(s) belong to other pools (the older claim wins): ${list(plan.conflicts.map((c) => `${c.disk.metadata.name} (pool ${c.pool})`))}`,
        ]
      : []),
    ...(plan.held.length > 0
      ? [`${plan.held.length} disk(s) cannot be released yet: ${list(plan.held.map((h) => `${h.disk.metadata.name}: ${h.reason}`))}`]
      : []),
  ];
  const suffix = notes.length > 0 ? `; ${notes.join('; ')}` : '';
  if (obs.deletionBlockedBy && obs.deletionBlockedBy.length > 0) {
    return {
      type: 'Ready',
      status: 'False',
      reason: 'DeletionBlocked',
      message: `the pool is being deleted but volumes are still in use by ${list(obs.deletionBlockedBy)}; delete those claims (or their PVs, for retained volumes, or the VolumeSnapshots of snapshots) to let it go`,
    };
  }
  if (obs.releasingDisks && obs.releasingDisks.length > 0) {
    return {
      type: 'Ready',
      status: 'False',
      reason: 'DisksReleasing',
      message:
        `the pool is being deleted and waits for the node agents to release its disks (unmount, remove Stowage's filesystem): ${list(obs.releasingDisks)}. ` +
        "If a node's agent is gone for good, take the disk off the wait with kubectl label nodedisk DISK stowage.dev/pool- (what is on it stays there)",
    };
  }
  if (obs.storageClassConflict) {
    return { type: 'Ready', status: 'False', reason: 'StorageClassConflict', message: obs.storageClassConflict };
  }
  if (claimed === 0) {
    return plan.conflicts.length > 0
      ? {
          type: 'Ready',
          status: 'False',
          reason: 'DisksClaimedByOtherPools',
          message: `every disk this pool selects already belongs to another pool${suffix}`,
        }
      : {
          type: 'Ready',
          status: 'False',
          reason: 'NoDisks',
          message: 'no eligible disk matches spec.disks; see `kubectl get nodedisks -o wide` for why each disk is or is not eligible',
        };
  }
  const dynamic = obs.dynamic !== undefined;
  if (obs.driver?.noneServing && obs.driver.status === 'False') {
    return {
      type: 'Ready',
      status: 'False',
      reason: 'DriverNotReady',
      message: `the CSI node plugin serves none of the pool's nodes, so its volumes cannot be mounted: ${obs.driver.message}`,
    };
  }
  const driverNote = obs.driver?.status === 'False' ? `; the node plugin is not serving some of its nodes (see DriverReady)` : '';
  const serving = dynamic ? readyDisks : (volumes.available ?? 0) + (volumes.bound ?? 0) + (volumes.released ?? 0);
  if (serving === 0) {
    return {
      type: 'Ready',
      status: 'False',
      reason: 'Preparing',
      message: `${claimed} disk(s) claimed; waiting for the node agents to prepare them${suffix}`,
    };
  }
  const summary = dynamic
    ? `${readyDisks} of ${claimed} disk(s) ready; ${obs.dynamic.volumes} volume(s)`
    : `${volumes.available ?? 0} volume(s) available, ${volumes.bound ?? 0} bound, ${volumes.released ?? 0} released`;
  return { type: 'Ready', status: 'True', reason: 'Ready', message: `${summary}${suffix}${driverNote}` };
}

function disksHealthyCondition(
  claimed: number,
  missing: readonly NodeDisk[],
  unhealthy: readonly NodeDisk[],
): Omit<ConditionInput, 'observedGeneration'> {
  if (claimed === 0) return { type: 'DisksHealthy', status: 'Unknown', reason: 'NoDisks', message: 'the pool holds no disks yet' };
  if (missing.length === 0 && unhealthy.length === 0) {
    return { type: 'DisksHealthy', status: 'True', reason: 'AllHealthy', message: `all ${claimed} disk(s) present and healthy` };
  }
  const parts = [
    ...(missing.length > 0 ? [`missing: ${list(missing.map((d) => d.metadata.name))}`] : []),
    ...(unhealthy.length > 0 ? [`unhealthy: ${list(unhealthy.map((d) => d.metadata.name))}`] : []),
  ];
  return {
    type: 'DisksHealthy',
    status: 'False',
    reason: missing.length > 0 ? 'DisksMissing' : 'DisksUnhealthy',
    message: `${parts.join('; ')}; their unbound volumes are withdrawn, bound ones stay. See \`kubectl describe nodedisk NAME\``,
  };
}

function replicationCondition(obs: PoolObservation): Omit<ConditionInput, 'observedGeneration'> {
  const size = obs.pool.spec.replicated?.size ?? 1;
  if (obs.pool.spec.mode === 'Local') {
    return {
      type: 'ReplicationSatisfiable',
      status: 'True',
      reason: 'SingleCopy',
      message: 'Local pools keep one copy of each volume on one disk',
    };
  }
  const below = obs.dynamic?.nodesBelowReplication ?? [];
  if (below.length === 0) {
    return {
      type: 'ReplicationSatisfiable',
      status: 'True',
      reason: 'EnoughDisks',
      message: `every node of the pool has at least ${size} disk(s) for ${size} copies`,
    };
  }
  return {
    type: 'ReplicationSatisfiable',
    status: 'False',
    reason: 'TooFewDisks',
    message: `replicated.size ${size} needs ${size} disks on a node; these nodes have fewer: ${list(below.map((b) => `${b.node} (${b.disks})`))}`,
  };
}

function capacityCondition(pool: StoragePool, usable: bigint, free: bigint): Omit<ConditionInput, 'observedGeneration'> {
  const watermark = pool.spec.capacity?.lowWatermarkPercent ?? DEFAULT_LOW_WATERMARK_PERCENT;
  if (usable === 0n)
    return { type: 'CapacityAvailable', status: 'False', reason: 'NoCapacity', message: 'the pool has no usable capacity yet' };
  const percent = Number((free * 10000n) / usable) / 100;
  const figures = `${formatBytes(free)} of ${formatBytes(usable)} available (${percent}%)`;
  if (free * 100n < BigInt(watermark) * usable) {
    return {
      type: 'CapacityAvailable',
      status: 'False',
      reason: 'LowCapacity',
      message: `${figures}, below the ${watermark}% watermark; add disks to the pool`,
    };
  }
  return { type: 'CapacityAvailable', status: 'True', reason: 'Sufficient', message: figures };
}

/** Conditions in a fixed order (Ready first), so a status never differs by order alone. */
function orderConditions(conditions: Condition[]): Condition[] {
  const order = ['Ready', 'DisksHealthy', 'ReplicationSatisfiable', 'CapacityAvailable', 'DriverReady', 'SnapshotsAvailable'];
  const rank = (t: string): number => (order.includes(t) ? order.indexOf(t) : order.length);
  return [...conditions].sort((a, b) => rank(a.type) - rank(b.type) || a.type.localeCompare(b.type));
}

export function describeProblems(problems: readonly Problem[]): string {
  return list(
    problems.map((p) => `${p.path}: ${p.message}`),
    '; ',
  );
}

function list(items: readonly string[], separator = ', '): string {
  const shown = items.slice(0, MAX_LISTED);
  const more = items.length - shown.length;
  return shown.join(separator) + (more > 0 ? `${separator}and ${more} more` : '');
}

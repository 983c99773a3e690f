import { NODE_DISKS, POOL_SNAPSHOTS, POOL_VOLUMES, STORAGE_POOLS } from '../crds/resource-types.js';
import type { PoolSnapshot } from '../crds/poolsnapshot.js';
import { SNAPSHOT_CLASS_CRD } from './storagepool/snapshot-class.js';
import { precompileValidator } from '../crds/validation.js';
import type { PoolVolume } from '../crds/poolvolume.js';
import { CUSTOM_RESOURCE_DEFINITIONS, NODES, PERSISTENT_VOLUMES, STORAGE_CLASSES } from '../kube/resources.js';
import { registerPoolMetrics } from './storagepool/pool-metrics.js';
import { registerSnapshotMetrics } from './storagepool/snapshot-metrics.js';
import type { KubeObject, Node, PersistentVolume, StorageClass } from '../kube/types.js';
import { POOL_LABEL } from '../crds/labels.js';
import { Applier, jsonEqual } from '../runtime/apply.js';
import type { Controller } from '../runtime/controller.js';
import { EventRecorder } from '../runtime/events.js';
import type { Manager } from '../runtime/manager.js';
import { setupDriverStack, type DriverStackOptions } from './driver-stack/controller.js';
import { ServerVersion } from './driver-stack/server-version.js';
import type { Disk, Pool, PoolCaches } from './storagepool/pool-caches.js';
import { StoragePoolReconciler, type PoolTurns } from './storagepool/reconciler.js';

/**
 * How long the pool controller collects events before reconciling a pool. PV phase changes,
 * claims and preparation reports arrive in bursts of hundreds for a big pool; each reconcile reads
 * the latest state anyway, so one reconcile per burst does the same work once.
 */
const POOL_DEBOUNCE_MS = 250;

export interface SetupOptions {
  readonly workers: number;
  readonly fieldManager: string;
  /** Writes per pool turn; tests shrink them. */
  readonly poolTurns?: PoolTurns;
  /** Deploy and keep the driver stack (node DaemonSet, CSI driver); off in tests that only exercise pools. */
  readonly driverStack?: Omit<DriverStackOptions, 'fieldManager' | 'serverVersion'>;
  /** Where the server's version comes from; default: the API server's /version (tests inject an old server). */
  readonly serverVersion?: ServerVersion;
}

/** Registers the operator's informers and controllers with `manager`. */
export function setupControllers(
  manager: Manager,
  opts: SetupOptions,
): { storagePools: Controller; caches: PoolCaches; events: EventRecorder } {
  const applier = new Applier(manager.client, opts.fieldManager);
  const events = new EventRecorder(manager.client, opts.fieldManager);
  const caches: PoolCaches = {
    pools: manager.informer<Pool>(STORAGE_POOLS),
    disks: manager.informer<Disk>(NODE_DISKS),
    // Unfiltered: the driver-stack controller counts the CSI driver's PVs from the same cache, so
    // every PV is held (and its watch events parsed) once.
    volumes: manager.informer<PersistentVolume>(PERSISTENT_VOLUMES),
    classes: manager.informer<StorageClass>(STORAGE_CLASSES),
    nodes: manager.informer<Node>(NODES),
    poolVolumes: manager.informer<PoolVolume & KubeObject>(POOL_VOLUMES),
    poolSnapshots: manager.informer<PoolSnapshot & KubeObject>(POOL_SNAPSHOTS),
    // Only whether the cluster takes snapshots: the one CRD, by name.
    snapshotCrds: manager.informer<KubeObject>(CUSTOM_RESOURCE_DEFINITIONS, { fieldSelector: `metadata.name=${SNAPSHOT_CLASS_CRD}` }),
  };
  registerPoolMetrics(manager.registry, () => caches.pools.list());
  registerSnapshotMetrics(manager.registry, () => caches.poolSnapshots.list());
  // Every pool reconcile validates and defaults its pool; compiling that schema takes ~0.2 s.
  manager.warmUp('StoragePool validator', () => precompileValidator('StoragePool'));
  const allPools = (): string[] => caches.pools.list().map((p) => p.metadata.name);
  const serverVersion = opts.serverVersion ?? new ServerVersion(manager.client);
  const driverStack = opts.driverStack
    ? setupDriverStack(manager, { ...opts.driverStack, serverVersion, fieldManager: opts.fieldManager })
    : undefined;
  const driver = driverStack ? { health: () => driverStack.health(), serverVersion: () => serverVersion.get() } : undefined;
  const reconciler = new StoragePoolReconciler(caches, applier, events, undefined, opts.poolTurns, driver);
  const storagePools = manager
    .controller({ name: 'storagepool', reconciler, workers: opts.workers, debounceMs: POOL_DEBOUNCE_MS })
    .watchFor(caches.pools)
    // A claimed disk concerns its pool; an unclaimed one may be wanted by any pool. A disk's old
    // state only matters to the pool that held it: a disk that just got claimed wakes no other pool
    // (without this, every claim would re-plan every pool).
    .watch(
      caches.disks,
      (disk) => (disk.spec.claim?.pool ? [disk.spec.claim.pool] : allPools()),
      (old) => (old.spec.claim?.pool ? [old.spec.claim.pool] : []),
    )
    .watch(caches.volumes, (pv) => (pv.metadata.labels?.[POOL_LABEL] ? [pv.metadata.labels[POOL_LABEL]] : []))
    .watch(caches.classes, (sc) => (sc.metadata.labels?.[POOL_LABEL] ? [sc.metadata.labels[POOL_LABEL]] : []))
    // Node labels feed nodeSelectors, and a deleted node releases its disks.
    // Kubelets rewrite Node status every few seconds; only labels and presence matter here.
    .watch(
      caches.nodes,
      () => allPools(),
      undefined,
      (old, node) => !jsonEqual(old.metadata.labels ?? {}, node.metadata.labels ?? {}),
    )
    .watch(caches.poolVolumes, (v) => [v.spec.pool])
    .watch(caches.poolSnapshots, (s) => [s.spec.pool])
    // The snapshot CRDs installed or removed: every Dynamic pool's class and status follow.
    .watch(caches.snapshotCrds, () =>
      caches.pools
        .list()
        .filter((p) => p.spec.mode === 'Dynamic')
        .map((p) => p.metadata.name),
    );
  // The node plugin's health concerns the pools that need the driver: a few objects change rarely
  // (the DaemonSet's status, its pods, CSINodes), and a converged pool's reconcile writes nothing.
  driverStack?.watchHealth(storagePools, () =>
    caches.pools
      .list()
      .filter((p) => p.spec.mode === 'Dynamic')
      .map((p) => p.metadata.name),
  );
  return { storagePools, caches, events };
}

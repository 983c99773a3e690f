import { NODE_DISKS, POOL_VOLUMES, STORAGE_POOLS } from '../crds/resource-types.js';
import type { PoolVolume } from '../crds/poolvolume.js';
import { NODES, PERSISTENT_VOLUMES, STORAGE_CLASSES } from '../kube/resources.js';
import { registerPoolMetrics } from '../metrics/pool-metrics.js';
import type { KubeObject, Node, PersistentVolume, StorageClass } from '../kube/types.js';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE, POOL_LABEL } from '../labels.js';
import { Applier } from './runtime/apply.js';
import type { Controller } from './runtime/controller.js';
import { EventRecorder } from './runtime/events.js';
import type { Manager } from './runtime/manager.js';
import { setupDriverStack, type DriverStackOptions } from './driver-stack/controller.js';
import { StoragePoolReconciler, type Disk, type Pool, type PoolCaches } from './storagepool/reconciler.js';

export interface SetupOptions {
  readonly workers: number;
  readonly fieldManager: string;
  /** Deploy and keep the driver stack (node DaemonSet, CSI driver); off in tests that only exercise pools. */
  readonly driverStack?: Omit<DriverStackOptions, 'fieldManager'>;
}

/** Registers the operator's informers and controllers with `manager`. */
export function setupControllers(manager: Manager, opts: SetupOptions): { storagePools: Controller; caches: PoolCaches } {
  const applier = new Applier(manager.client, opts.fieldManager);
  const events = new EventRecorder(manager.client, opts.fieldManager);
  const caches: PoolCaches = {
    pools: manager.informer<Pool>(STORAGE_POOLS),
    disks: manager.informer<Disk>(NODE_DISKS),
    volumes: manager.informer<PersistentVolume>(PERSISTENT_VOLUMES, { labelSelector: `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}` }),
    classes: manager.informer<StorageClass>(STORAGE_CLASSES),
    nodes: manager.informer<Node>(NODES),
    poolVolumes: manager.informer<PoolVolume & KubeObject>(POOL_VOLUMES),
  };
  registerPoolMetrics(manager.registry, () => caches.pools.list());
  const allPools = (): string[] => caches.pools.list().map((p) => p.metadata.name!);
  const storagePools = manager
    .controller({ name: 'storagepool', reconciler: new StoragePoolReconciler(caches, applier, events), workers: opts.workers })
    .watchFor(caches.pools)
    // A claimed disk concerns its pool; an unclaimed one may be wanted by any pool. A disk's old
    // state only matters to the pool that held it: a disk that just got claimed wakes no other pool
    // (without this, every claim would re-plan every pool).
    .watch(caches.disks, (disk) => (disk.spec.claim?.pool ? [disk.spec.claim.pool] : allPools()), (old) => (old.spec.claim?.pool ? [old.spec.claim.pool] : []))
    .watch(caches.volumes, (pv) => (pv.metadata.labels?.[POOL_LABEL] ? [pv.metadata.labels[POOL_LABEL]] : []))
    .watch(caches.classes, (sc) => (sc.metadata.labels?.[POOL_LABEL] ? [sc.metadata.labels[POOL_LABEL]] : []))
    // Node labels feed nodeSelectors, and a deleted node releases its disks.
    .watch(caches.nodes, () => allPools())
    .watch(caches.poolVolumes, (v) => [v.spec.pool]);
  if (opts.driverStack) setupDriverStack(manager, { ...opts.driverStack, fieldManager: opts.fieldManager });
  return { storagePools, caches };
}

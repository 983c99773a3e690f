import { STORAGE_POOLS } from '../crds/resource-types.js';
import { registerPoolMetrics } from '../metrics/pool-metrics.js';
import type { StoragePool } from '../crds/storagepool.js';
import { Applier } from './runtime/apply.js';
import type { Controller } from './runtime/controller.js';
import type { Manager } from './runtime/manager.js';
import { setupDriverStack, type DriverStackOptions } from './driver-stack/controller.js';
import { StoragePoolReconciler } from './storagepool/reconciler.js';

export interface SetupOptions {
  readonly workers: number;
  readonly fieldManager: string;
  /** Deploy and keep the driver stack (node DaemonSet, CSI driver); off in tests that only exercise pools. */
  readonly driverStack?: Omit<DriverStackOptions, 'fieldManager'>;
}

/** Registers the operator's informers and controllers with `manager`. */
export function setupControllers(manager: Manager, opts: SetupOptions): { storagePools: Controller } {
  const applier = new Applier(manager.client, opts.fieldManager);
  const pools = manager.informer<StoragePool & { metadata: { name: string } }>(STORAGE_POOLS);
  registerPoolMetrics(manager.registry, () => pools.list());
  const storagePools = manager
    .controller({ name: 'storagepool', reconciler: new StoragePoolReconciler(pools, applier), workers: opts.workers })
    .watchFor(pools);
  if (opts.driverStack) setupDriverStack(manager, { ...opts.driverStack, fieldManager: opts.fieldManager });
  return { storagePools };
}

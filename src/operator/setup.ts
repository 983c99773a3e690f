import { STORAGE_POOLS } from '../crds/resource-types.js';
import type { StoragePool } from '../crds/storagepool.js';
import { Applier } from './runtime/apply.js';
import type { Controller } from './runtime/controller.js';
import type { Manager } from './runtime/manager.js';
import { StoragePoolReconciler } from './storagepool/reconciler.js';

export interface SetupOptions {
  readonly workers: number;
  readonly fieldManager: string;
}

/** Registers the operator's informers and controllers with `manager`. */
export function setupControllers(manager: Manager, opts: SetupOptions): { storagePools: Controller } {
  const applier = new Applier(manager.client, opts.fieldManager);
  const pools = manager.informer<StoragePool & { metadata: { name: string } }>(STORAGE_POOLS);
  const storagePools = manager
    .controller({ name: 'storagepool', reconciler: new StoragePoolReconciler(pools, applier), workers: opts.workers })
    .watchFor(pools);
  return { storagePools };
}

import { STORAGE_POOLS } from '../../crds/resource-types.js';
import type { StoragePool } from '../../crds/storagepool.js';
import { validateObject } from '../../crds/validation.js';
import type { Applier } from '../runtime/apply.js';
import { nowTimestamp } from '../runtime/conditions.js';
import type { ReconcileResult, Reconciler } from '../runtime/controller.js';
import type { Informer } from '../runtime/informer.js';
import { poolStatus } from './status.js';

/**
 * Reconciles one StoragePool: checks its spec with the same schema and cross-field rules as
 * `stowage validate` (older API servers drop the CRD's CEL rules, so the operator cannot rely on
 * admission) and reports the outcome in status.
 */
export class StoragePoolReconciler implements Reconciler {
  constructor(
    private readonly pools: Informer<StoragePool & { metadata: { name: string } }>,
    private readonly applier: Applier,
    private readonly now: () => string = nowTimestamp,
  ) {}

  async reconcile(name: string): Promise<ReconcileResult> {
    const pool = this.pools.get(name);
    if (!pool || pool.metadata.deletionTimestamp) return {};
    const problems = validateObject(pool).filter((p) => !p.path.startsWith('status'));
    const status = poolStatus(pool, problems, this.now());
    await this.applier.applyStatus(STORAGE_POOLS, { apiVersion: pool.apiVersion, kind: pool.kind, metadata: { name }, status }, pool);
    return {};
  }
}

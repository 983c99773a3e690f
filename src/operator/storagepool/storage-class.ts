import { API_VERSION } from '../../crds/meta.js';
import type { StoragePool } from '../../crds/storagepool.js';
import type { StorageClass } from '../../kube/types.js';
import { jsonEqual } from '../../runtime/apply.js';
import { CSI_DRIVER_NAME, DEFAULT_CLASS_ANNOTATION, LOCAL_PROVISIONER, MANAGED_BY, POOL_LABEL } from '../../crds/labels.js';

/** The StorageClass name of a (defaulted) pool: `spec.storageClass.name`, else the pool's name. */
export function storageClassName(pool: StoragePool): string {
  return pool.spec.storageClass?.name ?? pool.metadata.name;
}

/**
 * The StorageClass that makes a pool claimable. Local pools use `kubernetes.io/no-provisioner`
 * (the operator creates the PVs); Dynamic pools use Stowage's CSI driver with `parameters.pool`.
 * `pool` must be defaulted (withDefaults) and have a uid.
 */
export function renderStorageClass(pool: StoragePool): StorageClass {
  const sc = pool.spec.storageClass ?? {};
  const dynamic = pool.spec.mode === 'Dynamic';
  return {
    apiVersion: 'storage.k8s.io/v1',
    kind: 'StorageClass',
    metadata: {
      name: storageClassName(pool),
      labels: { ...MANAGED_BY, [POOL_LABEL]: pool.metadata.name },
      ...(sc.isDefault ? { annotations: { [DEFAULT_CLASS_ANNOTATION]: 'true' } } : {}),
      ownerReferences: [
        {
          apiVersion: API_VERSION,
          kind: 'StoragePool',
          name: pool.metadata.name,
          uid: pool.metadata.uid!,
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    provisioner: dynamic ? CSI_DRIVER_NAME : LOCAL_PROVISIONER,
    ...(dynamic ? { parameters: { pool: pool.metadata.name } } : {}),
    reclaimPolicy: sc.reclaimPolicy ?? 'Delete',
    volumeBindingMode: sc.volumeBindingMode ?? 'WaitForFirstConsumer',
    allowVolumeExpansion: sc.allowVolumeExpansion ?? dynamic,
    ...(sc.mountOptions && sc.mountOptions.length > 0 ? { mountOptions: [...sc.mountOptions] } : {}),
  };
}

/** Fields {@link renderStorageClass} sets only sometimes: dropped from the pool, dropped from the class. */
export const STORAGE_CLASS_OPTIONAL_FIELDS: readonly (readonly string[])[] = [
  ['metadata', 'annotations', DEFAULT_CLASS_ANNOTATION],
  ['mountOptions'],
];

/** Fields the API server refuses to change on an existing StorageClass. */
const IMMUTABLE_FIELDS = ['provisioner', 'parameters', 'reclaimPolicy', 'volumeBindingMode'] as const;

/**
 * The immutable fields on which `live` differs from `desired`; non-empty means the class must be
 * deleted and recreated (PVs already bound keep working: they hold the class name, not the object).
 */
export function immutableDifferences(desired: StorageClass, live: StorageClass): string[] {
  return IMMUTABLE_FIELDS.filter((field) => !jsonEqual(desired[field] ?? defaultOf(field), live[field] ?? defaultOf(field)));
}

function defaultOf(field: (typeof IMMUTABLE_FIELDS)[number]): unknown {
  return field === 'parameters' ? {} : field === 'reclaimPolicy' ? 'Delete' : field === 'volumeBindingMode' ? 'Immediate' : undefined;
}

/** Whether a live StorageClass was made by Stowage for this pool (and may be changed or deleted by it). */
export function isOwnedBy(live: StorageClass, pool: StoragePool): boolean {
  return (
    live.metadata.labels?.[POOL_LABEL] === pool.metadata.name &&
    (live.metadata.ownerReferences ?? []).some((r) => r.uid === pool.metadata.uid)
  );
}

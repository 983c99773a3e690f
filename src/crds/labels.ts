/** Labels, annotations and names that every Stowage component (operator, node daemon, CSI driver) agrees on. */

/** On everything Stowage generates, so `kubectl get -l app.kubernetes.io/managed-by=stowage` finds it. */
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY_VALUE = 'stowage';
export const MANAGED_BY = { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE } as const;

export const POOL_LABEL = 'stowage.dev/pool';
export const NODE_LABEL = 'stowage.dev/node';
export const DISK_LABEL = 'stowage.dev/disk';

/** Held by a StoragePool until everything it created is gone or handed back. */
export const POOL_FINALIZER = 'stowage.dev/pool-protection';

/** Local pools: PVs are created by the operator; no in-tree or CSI provisioner is involved. */
export const LOCAL_PROVISIONER = 'kubernetes.io/no-provisioner';
/** The CSI driver that carves Dynamic pools' volumes. */
export const CSI_DRIVER_NAME = 'csi.stowage.dev';
/**
 * Set on Local PVs so that, once Released with reclaimPolicy Delete, the PV controller leaves them to
 * us (an external provisioner) instead of marking them Failed for lack of an in-tree deleter.
 */
export const PROVISIONED_BY_ANNOTATION = 'pv.kubernetes.io/provisioned-by';
export const LOCAL_PROVISIONER_IDENTITY = 'local.stowage.dev';
export const DEFAULT_CLASS_ANNOTATION = 'storageclass.kubernetes.io/is-default-class';
export const HOSTNAME_LABEL = 'kubernetes.io/hostname';

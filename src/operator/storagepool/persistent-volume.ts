import type { NodeDisk } from '../../crds/nodedisk.js';
import type { StoragePool } from '../../crds/storagepool.js';
import type { PersistentVolume } from '../../kube/types.js';
import { formatBytes, tryParseBytes } from '../../util/quantity.js';
import {
  DISK_LABEL,
  HOSTNAME_LABEL,
  LOCAL_PROVISIONER_IDENTITY,
  MANAGED_BY,
  NODE_LABEL,
  POOL_LABEL,
  PROVISIONED_BY_ANNOTATION,
} from '../../crds/labels.js';
import { storageClassName } from './storage-class.js';

/** Fields of a Local PV that {@link renderLocalPv} sets only sometimes: gone from the pool, gone from its PVs. */
export const LOCAL_PV_OPTIONAL_FIELDS: readonly (readonly string[])[] = [['spec', 'mountOptions']];

/** The PV of a disk: one per NodeDisk, so the name follows from the NodeDisk's. */
export function persistentVolumeName(diskName: string): string {
  return `stowage-${diskName}`;
}

/**
 * The size a Local PV offers: the prepared filesystem's size where the agent reported it (what a
 * workload can really write), else the disk's capacity (Block volumes, or before the first report).
 */
export function preparedBytes(disk: NodeDisk): bigint | undefined {
  return tryParseBytes(disk.status?.usage?.size) ?? tryParseBytes(disk.status?.capacity);
}

/**
 * The local PersistentVolume for one prepared disk of a Local pool, pinned to the disk's node.
 * `hostname` is the node's `kubernetes.io/hostname` label (usually, not always, the node name).
 * Returns undefined when the disk has no usable preparation yet.
 */
export function renderLocalPv(pool: StoragePool, disk: NodeDisk, hostname: string): PersistentVolume | undefined {
  const local = pool.spec.local ?? {};
  const block = local.volumeMode === 'Block';
  const path = block ? disk.spec.devicePath : disk.status?.preparation?.path;
  const bytes = preparedBytes(disk);
  if (!path || bytes === undefined || bytes === 0n) return undefined;
  const mountOptions = pool.spec.storageClass?.mountOptions ?? [];
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolume',
    metadata: {
      name: persistentVolumeName(disk.metadata.name),
      labels: { ...MANAGED_BY, [POOL_LABEL]: pool.metadata.name, [NODE_LABEL]: disk.spec.nodeName, [DISK_LABEL]: disk.metadata.name },
      annotations: { [PROVISIONED_BY_ANNOTATION]: LOCAL_PROVISIONER_IDENTITY },
    },
    spec: {
      capacity: { storage: formatBytes(bytes) },
      accessModes: ['ReadWriteOnce'],
      persistentVolumeReclaimPolicy: pool.spec.storageClass?.reclaimPolicy ?? 'Delete',
      storageClassName: storageClassName(pool),
      volumeMode: block ? 'Block' : 'Filesystem',
      ...(mountOptions.length > 0 && !block ? { mountOptions: [...mountOptions] } : {}),
      local: { path },
      nodeAffinity: {
        required: { nodeSelectorTerms: [{ matchExpressions: [{ key: HOSTNAME_LABEL, operator: 'In', values: [hostname] }] }] },
      },
    },
  };
}

export type VolumePhase = NonNullable<NonNullable<PersistentVolume['status']>['phase']>;

export function phaseOf(pv: PersistentVolume): VolumePhase {
  return pv.status?.phase ?? 'Pending';
}

/** A PV a workload holds or may still hold: never modified or deleted by the operator. */
export function isInUse(pv: PersistentVolume): boolean {
  const phase = phaseOf(pv);
  return phase === 'Bound' || (pv.spec.claimRef?.uid !== undefined && phase !== 'Released' && phase !== 'Failed');
}

/** A Released PV whose data the user asked to keep (reclaimPolicy Retain): left alone and counted. */
export function isRetained(pv: PersistentVolume): boolean {
  return phaseOf(pv) === 'Released' && pv.spec.persistentVolumeReclaimPolicy === 'Retain';
}

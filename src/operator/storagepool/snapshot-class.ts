/**
 * The VolumeSnapshotClass of a Dynamic pool (issue 17): `snapshot.storage.k8s.io/v1`, driver
 * csi.stowage.dev, the pool's deletion policy, named like the pool's StorageClass so users find the
 * pair. The snapshot CRDs and the snapshot-controller belong to the cluster, not to Stowage: when
 * the CRDs are not installed the operator creates nothing and says so in the pool's status.
 */
import { API_VERSION } from '../../crds/meta.js';
import type { StoragePool } from '../../crds/storagepool.js';
import { CSI_DRIVER_NAME, MANAGED_BY, POOL_LABEL } from '../../crds/labels.js';
import type { ResourceType } from '../../kube/resources.js';
import type { KubeObject } from '../../kube/types.js';
import { storageClassName } from './storage-class.js';

export const VOLUME_SNAPSHOT_CLASSES: ResourceType = {
  group: 'snapshot.storage.k8s.io',
  version: 'v1',
  plural: 'volumesnapshotclasses',
  kind: 'VolumeSnapshotClass',
  namespaced: false,
};
/** The CRD whose presence means the cluster takes snapshots (the external-snapshotter's). */
export const SNAPSHOT_CLASS_CRD = 'volumesnapshotclasses.snapshot.storage.k8s.io';

export type VolumeSnapshotClass = KubeObject & { driver: string; deletionPolicy: 'Delete' | 'Retain'; parameters?: Record<string, string> };

/** What the pool's status says about snapshots (Dynamic pools). */
export interface SnapshotClassObservation {
  /** Ready: the class exists; CRDsMissing: the cluster has no snapshot CRDs; Conflict: the name is taken. */
  readonly state: 'Ready' | 'CRDsMissing' | 'Conflict';
  readonly name: string;
  readonly deletionPolicy: 'Delete' | 'Retain';
}

export function snapshotClassName(pool: StoragePool): string {
  return storageClassName(pool);
}

/** `pool` must be defaulted and have a uid. */
export function renderSnapshotClass(pool: StoragePool): VolumeSnapshotClass {
  return {
    apiVersion: 'snapshot.storage.k8s.io/v1',
    kind: 'VolumeSnapshotClass',
    metadata: {
      name: snapshotClassName(pool),
      labels: { ...MANAGED_BY, [POOL_LABEL]: pool.metadata.name },
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
    driver: CSI_DRIVER_NAME,
    deletionPolicy: pool.spec.snapshots?.deletionPolicy ?? 'Delete',
  };
}

/** Whether a live class was made by Stowage for this pool (and may be changed or deleted by it). */
export function isSnapshotClassOf(live: KubeObject, pool: StoragePool): boolean {
  return (
    live.metadata.labels?.[POOL_LABEL] === pool.metadata.name &&
    (live.metadata.ownerReferences ?? []).some((r) => r.uid === pool.metadata.uid)
  );
}

/** The condition a Dynamic pool reports about snapshots. */
export function snapshotsCondition(obs: SnapshotClassObservation): {
  type: string;
  status: 'True' | 'False';
  reason: string;
  message: string;
} {
  switch (obs.state) {
    case 'Ready':
      return {
        type: 'SnapshotsAvailable',
        status: 'True',
        reason: 'ClassReady',
        message: `VolumeSnapshotClass ${obs.name} (driver ${CSI_DRIVER_NAME}, deletionPolicy ${obs.deletionPolicy}) takes snapshots of this pool's volumes`,
      };
    case 'Conflict':
      return {
        type: 'SnapshotsAvailable',
        status: 'False',
        reason: 'ClassConflict',
        message: `VolumeSnapshotClass ${obs.name} already exists and is not this pool's; delete it or rename the pool's StorageClass (spec.storageClass.name)`,
      };
    default:
      return {
        type: 'SnapshotsAvailable',
        status: 'False',
        reason: 'SnapshotCRDsMissing',
        message: `the cluster has no snapshot.storage.k8s.io/v1 CRDs, so no VolumeSnapshotClass was created; install the external-snapshotter's CRDs and snapshot-controller (v6.x for Kubernetes 1.20-1.24, v8.x from 1.25), then the class appears`,
      };
  }
}

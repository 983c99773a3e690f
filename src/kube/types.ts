/**
 * Minimal shapes of Kubernetes objects as they travel as JSON. Timestamps stay strings (RFC 3339),
 * exactly as the API server sends them, so objects round-trip byte for byte.
 */

export interface OwnerReference {
  readonly apiVersion: string;
  readonly kind: string;
  readonly name: string;
  readonly uid: string;
  readonly controller?: boolean;
  readonly blockOwnerDeletion?: boolean;
}

export interface ManagedFieldsEntry {
  readonly manager?: string;
  readonly operation?: string;
  readonly apiVersion?: string;
  readonly time?: string;
  readonly fieldsType?: string;
  readonly fieldsV1?: unknown;
  readonly subresource?: string;
}

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: OwnerReference[];
  managedFields?: ManagedFieldsEntry[];
}

/** Any Kubernetes object: apiVersion, kind, metadata and whatever else its kind carries. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  [field: string]: unknown;
}

export interface ObjectList<T extends KubeObject = KubeObject> {
  apiVersion?: string;
  kind?: string;
  metadata: { resourceVersion?: string; continue?: string };
  items: T[];
}

/** A watch event as the API server streams it, one JSON document per line. */
export interface WatchEvent<T extends KubeObject = KubeObject> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T | Status;
}

/** metav1.Status: the API server's error and result body. */
export interface Status {
  kind: 'Status';
  apiVersion?: string;
  status?: 'Success' | 'Failure';
  message?: string;
  reason?: string;
  code?: number;
  details?: { name?: string; kind?: string; causes?: { field?: string; message?: string; reason?: string }[] };
}

export type ConditionStatus = 'True' | 'False' | 'Unknown';

/** `metav1.Condition`, field for field. */
export interface Condition {
  type: string;
  status: ConditionStatus;
  observedGeneration?: number;
  /** RFC 3339; changes only when `status` changes. */
  lastTransitionTime: string;
  /** CamelCase, machine-readable. */
  reason: string;
  /** Human-readable; says what is wrong and what to do. */
  message: string;
}

/** The parts of core/v1 PersistentVolume Stowage reads and writes. */
export interface PersistentVolume extends KubeObject {
  spec: {
    capacity?: { storage?: string };
    accessModes?: string[];
    persistentVolumeReclaimPolicy?: 'Delete' | 'Retain' | 'Recycle';
    storageClassName?: string;
    volumeMode?: 'Filesystem' | 'Block';
    mountOptions?: string[];
    local?: { path: string; fsType?: string };
    csi?: { driver: string; volumeHandle: string; fsType?: string; volumeAttributes?: Record<string, string> };
    claimRef?: { namespace?: string; name?: string; uid?: string };
    nodeAffinity?: { required?: { nodeSelectorTerms: { matchExpressions?: { key: string; operator: string; values?: string[] }[] }[] } };
  };
  status?: { phase?: 'Pending' | 'Available' | 'Bound' | 'Released' | 'Failed'; message?: string; reason?: string };
}

/** storage.k8s.io/v1 StorageClass. */
export interface StorageClass extends KubeObject {
  provisioner: string;
  parameters?: Record<string, string>;
  reclaimPolicy?: 'Delete' | 'Retain';
  volumeBindingMode?: 'WaitForFirstConsumer' | 'Immediate';
  allowVolumeExpansion?: boolean;
  mountOptions?: string[];
}

/** The parts of core/v1 Node Stowage reads. */
export interface Node extends KubeObject {
  status?: { conditions?: { type: string; status: string }[] };
}

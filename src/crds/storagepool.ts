/**
 * StoragePool: what an administrator writes to turn a set of disks into a StorageClass.
 * The TypeScript types and the OpenAPI schema live side by side so a field cannot be added to one
 * and forgotten in the other (the schema tests walk both ways).
 */
import {
  API_VERSION,
  DNS_SUBDOMAIN_PATTERN,
  PRINTABLE_PATTERN,
  conditionsSchema,
  labelSelectorSchema,
  sizeSchema,
  type Condition,
  type LabelSelector,
  type ObjectMeta,
} from './meta.js';
import { acrossNodesNeedsDynamic, fillReplicationDefaults, replicatedSchema, type PoolReplication } from './replication.js';
import type { CelRule, JSONSchema } from './schema.js';

export * from './replication.js';

export const STORAGE_POOL_KIND = 'StoragePool';
export const STORAGE_POOL_PLURAL = 'storagepools';

export type PoolMode = 'Local' | 'Dynamic';
export type VolumeMode = 'Filesystem' | 'Block';
export type FsType = 'ext4' | 'xfs';
export type CleanupMethod = 'quick' | 'zero' | 'discard';
export type ReclaimPolicy = 'Delete' | 'Retain';
export type VolumeBindingMode = 'WaitForFirstConsumer' | 'Immediate';

/** Condition types a StoragePool reports. */
export const POOL_CONDITIONS = [
  'Ready',
  'DisksHealthy',
  'ReplicationSatisfiable',
  'CapacityAvailable',
  'DriverReady',
  'SnapshotsAvailable',
] as const;

export interface PoolDisks {
  selector: LabelSelector;
  nodeSelector?: LabelSelector;
  minSize?: string;
  allowAdoption?: boolean;
}

export interface PoolLocal {
  volumeMode?: VolumeMode;
  fsType?: FsType;
  cleanup?: CleanupMethod;
}

export interface PoolStorageClass {
  name?: string;
  isDefault?: boolean;
  reclaimPolicy?: ReclaimPolicy;
  volumeBindingMode?: VolumeBindingMode;
  allowVolumeExpansion?: boolean;
  mountOptions?: string[];
}

export interface PoolCapacityPolicy {
  lowWatermarkPercent?: number;
}

export interface PoolSnapshots {
  deletionPolicy?: ReclaimPolicy;
}

export interface StoragePoolSpec {
  mode: PoolMode;
  disks: PoolDisks;
  replicated?: PoolReplication;
  local?: PoolLocal;
  storageClass?: PoolStorageClass;
  capacity?: PoolCapacityPolicy;
  snapshots?: PoolSnapshots;
}

export interface StoragePoolStatus {
  observedGeneration?: number;
  conditions?: Condition[];
  storageClassName?: string;
  counts?: {
    nodes?: number;
    disks?: { total?: number; ready?: number; unhealthy?: number; missing?: number };
    volumes?: { available?: number; bound?: number; released?: number };
  };
  capacity?: { raw?: string; usable?: string; allocated?: string; available?: string };
}

/**
 * A type alias, not an interface, on purpose: aliases get an implicit index signature, so a
 * StoragePool is assignable to the client's generic `KubeObject`.
 */
export type StoragePool = {
  apiVersion: typeof API_VERSION;
  kind: typeof STORAGE_POOL_KIND;
  metadata: ObjectMeta;
  spec: StoragePoolSpec;
  status?: StoragePoolStatus;
};

// ---------------------------------------------------------------------------------------------
// Cross-field rules. CEL for the API server, `holds` for the operator and the offline validator;
// both must say the same thing. Each `holds` treats an absent field as its default.

const isLocal = (spec: any): boolean => spec?.mode === 'Local';

const localKeepsOneCopy: CelRule = {
  rule: "!has(self.mode) || self.mode != 'Local' || !has(self.replicated) || !has(self.replicated.size) || self.replicated.size == 1",
  message:
    'mode Local turns each disk into one local PV and keeps a single copy; set replicated.size to 1, or use mode Dynamic for replicated volumes',
  field: 'replicated.size',
  holds: (spec) => !isLocal(spec) || spec.replicated?.size === undefined || spec.replicated.size === 1,
};

const localSettingsNeedLocalMode: CelRule = {
  rule: "!has(self.local) || (has(self.mode) && self.mode == 'Local')",
  message: 'spec.local applies only to mode Local; remove it, or set mode: Local',
  field: 'local',
  holds: (spec) => spec?.local === undefined || isLocal(spec),
};

const localVolumesCannotGrow: CelRule = {
  rule: "!has(self.mode) || self.mode != 'Local' || !has(self.storageClass) || !has(self.storageClass.allowVolumeExpansion) || !self.storageClass.allowVolumeExpansion",
  message: 'a local volume is a whole disk and cannot be expanded; set storageClass.allowVolumeExpansion to false, or use mode Dynamic',
  field: 'storageClass.allowVolumeExpansion',
  holds: (spec) => !isLocal(spec) || spec.storageClass?.allowVolumeExpansion !== true,
};

const blockVolumesAreNotMounted: CelRule = {
  rule: "!(has(self.local) && has(self.local.volumeMode) && self.local.volumeMode == 'Block' && has(self.storageClass) && has(self.storageClass.mountOptions) && size(self.storageClass.mountOptions) > 0)",
  message:
    'Block volumes are handed to pods as raw devices and never mounted; remove storageClass.mountOptions, or use volumeMode Filesystem',
  field: 'storageClass.mountOptions',
  holds: (spec) =>
    !(spec?.local?.volumeMode === 'Block' && Array.isArray(spec.storageClass?.mountOptions) && spec.storageClass.mountOptions.length > 0),
};

const blockHasNoFilesystem: CelRule = {
  rule: "!has(self.volumeMode) || self.volumeMode != 'Block' || !has(self.fsType)",
  message: 'a Block pool hands out raw devices without a filesystem; remove fsType, or set volumeMode: Filesystem',
  field: 'fsType',
  holds: (local) => local?.volumeMode !== 'Block' || local.fsType === undefined,
};

// ---------------------------------------------------------------------------------------------
// Schema.

const specSchema: JSONSchema = {
  type: 'object',
  description:
    'Desired state of the pool: which disks it uses, how volumes are cut from them, and the StorageClass that makes them claimable.',
  required: ['mode', 'disks'],
  'x-kubernetes-validations': [
    localKeepsOneCopy,
    localSettingsNeedLocalMode,
    localVolumesCannotGrow,
    blockVolumesAreNotMounted,
    acrossNodesNeedsDynamic,
  ],
  properties: {
    mode: {
      type: 'string',
      description:
        'How volumes are made. Local: static provisioning, every selected disk becomes exactly one local PersistentVolume pinned to its node (StorageClass provisioner kubernetes.io/no-provisioner); a PVC gets a whole disk, so use it for databases and distributed stores that replicate data themselves. Dynamic: the Stowage CSI driver (csi.stowage.dev) carves volumes of any requested size out of the selected disks of a node, optionally keeping several copies (see replicated).',
      enum: ['Local', 'Dynamic'],
      maxLength: 16,
    },
    disks: {
      type: 'object',
      description:
        'Which disks belong to the pool. A disk is used when it matches selector, its node matches nodeSelector, it is at least minSize, it is schedulable, and its Eligible condition is True (blank: no filesystem, partition table or mount, unless allowAdoption). A disk already claimed by another pool stays there; the conflict is reported on this pool.',
      required: ['selector'],
      properties: {
        selector: labelSelectorSchema(
          'Label selector over NodeDisk objects (see `kubectl get nodedisks --show-labels`). The node agent sets stowage.dev/node and stowage.dev/media (ssd, hdd, nvme, unknown); add your own labels to NodeDisks to group them. Required on purpose: an empty selector {} selects every eligible disk in the cluster.',
          'NodeDisk',
        ),
        nodeSelector: labelSelectorSchema(
          'Label selector over Node objects; only disks on matching nodes are used. Omit to use disks on all nodes.',
          'Node',
        ),
        minSize: sizeSchema('Smallest disk the pool accepts, e.g. 100Gi; smaller disks are skipped. Omit to accept any size.'),
        allowAdoption: {
          type: 'boolean',
          description:
            'DANGER: allows the pool to take disks that carry a filesystem or partition table (but are not mounted); preparing such a disk DESTROYS the data on it. Leave false (the default) unless the selected disks hold nothing you need.',
          default: false,
        },
      },
    },
    replicated: replicatedSchema,
    local: {
      type: 'object',
      description: 'Settings of mode Local only (each disk becomes one local PersistentVolume). Must be omitted for mode Dynamic.',
      'x-kubernetes-validations': [blockHasNoFilesystem],
      properties: {
        volumeMode: {
          type: 'string',
          description:
            'Filesystem (default): the disk is formatted with fsType and mounted into the pod. Block: the pod gets the raw device (volumeMode: Block in the PVC).',
          enum: ['Filesystem', 'Block'],
          default: 'Filesystem',
          maxLength: 16,
        },
        fsType: {
          type: 'string',
          description:
            'Filesystem made on each disk when volumeMode is Filesystem: ext4 (default) or xfs. Must be omitted for Block. Changing it affects only disks prepared afterwards.',
          enum: ['ext4', 'xfs'],
        },
        cleanup: {
          type: 'string',
          description:
            'How a disk is cleaned after its volume is released with reclaimPolicy Delete, before it is offered again. quick (default): erase filesystem signatures and, for Filesystem, make a fresh filesystem (seconds; old data is still readable on the raw device). zero: overwrite the whole disk with zeros (hours on large disks). discard: TRIM/UNMAP the whole disk (fast on SSDs and NVMe; fails on disks without discard support).',
          enum: ['quick', 'zero', 'discard'],
          default: 'quick',
        },
      },
    },
    storageClass: {
      type: 'object',
      description: 'The StorageClass the operator publishes for this pool; PVCs name it in spec.storageClassName.',
      default: {},
      properties: {
        name: {
          type: 'string',
          description:
            'StorageClass name (default: the pool name). Changing it later publishes a class under the new name; volumes already provisioned keep referring to the old one.',
          maxLength: 253,
          pattern: DNS_SUBDOMAIN_PATTERN,
        },
        isDefault: {
          type: 'boolean',
          description: 'Marks the class as the cluster default (used by PVCs that name no class). Make at most one class the default.',
          default: false,
        },
        reclaimPolicy: {
          type: 'string',
          description:
            'What happens to a volume when its PVC is deleted. Delete (default): the data is erased (mode Local: the disk is cleaned as local.cleanup says and offered again). Retain: the volume and its data stay until an administrator deletes the PV.',
          enum: ['Delete', 'Retain'],
          default: 'Delete',
        },
        volumeBindingMode: {
          type: 'string',
          description:
            "WaitForFirstConsumer (default): a PVC is bound only once a pod using it is scheduled, so the scheduler picks a node that has room. Immediate: bind at once; the pod must then run on the volume's node, which can leave it unschedulable. Keep the default for node-local storage.",
          enum: ['WaitForFirstConsumer', 'Immediate'],
          default: 'WaitForFirstConsumer',
        },
        allowVolumeExpansion: {
          type: 'boolean',
          description:
            'Lets users grow a volume by editing its PVC. Unset: true for mode Dynamic (volumes grow online), false for mode Local (a local volume is a whole disk and cannot grow; true is refused there).',
        },
        mountOptions: {
          type: 'array',
          description:
            'Mount options for Filesystem volumes, e.g. noatime. Not allowed for Block volumes. An unsupported option makes the mount fail when a pod starts.',
          maxItems: 32,
          'x-kubernetes-list-type': 'atomic',
          items: {
            type: 'string',
            description: 'One mount option, as for mount -o.',
            minLength: 1,
            maxLength: 256,
            pattern: PRINTABLE_PATTERN,
          },
        },
      },
    },
    snapshots: {
      type: 'object',
      description:
        'Dynamic pools: the VolumeSnapshotClass the operator publishes for this pool (named like its StorageClass) when the cluster has the snapshot.storage.k8s.io CRDs. Ignored by Local pools.',
      properties: {
        deletionPolicy: {
          type: 'string',
          description:
            "What happens to a snapshot's data when its VolumeSnapshot is deleted: Delete removes it (and frees the bytes it holds alone); Retain keeps it until its VolumeSnapshotContent is deleted. Default Delete.",
          enum: ['Delete', 'Retain'],
          maxLength: 16,
        },
      },
    },
    capacity: {
      type: 'object',
      description: 'Capacity alerting thresholds.',
      default: {},
      properties: {
        lowWatermarkPercent: {
          type: 'integer',
          description:
            'When the available capacity falls below this percentage of usable capacity, the CapacityAvailable condition turns False (reason LowCapacity) and the low-capacity alert fires. 0 disables the warning. Default 10.',
          minimum: 0,
          maximum: 100,
          default: 10,
        },
      },
    },
  },
};

const count = (description: string): JSONSchema => ({ type: 'integer', format: 'int32', minimum: 0, description });

const statusSchema: JSONSchema = {
  type: 'object',
  description: 'Observed state of the pool, written by the operator. Never edit it.',
  properties: {
    observedGeneration: {
      type: 'integer',
      format: 'int64',
      minimum: 0,
      description:
        'The metadata.generation of the spec this status describes; smaller than metadata.generation means the operator has not caught up yet.',
    },
    conditions: conditionsSchema(
      "Ready: the StorageClass exists and the pool can serve volumes (summary of the others). DisksHealthy: no selected disk is missing or failing. ReplicationSatisfiable: enough disks exist for replicated.size (failureDomain disk: on every node of the pool; host and zone: on at least size nodes or zones). CapacityAvailable: available capacity is above capacity.lowWatermarkPercent. DriverReady (Dynamic pools): the CSI node plugin runs and is registered with kubelet on every node of the pool; its message gives the node DaemonSet's rollout and names each node that is not served and why (ImagePullBackOff, CrashLoopBackOff, NotRegistered, …).",
    ),
    storageClassName: {
      type: 'string',
      description: 'Name of the StorageClass published for this pool.',
      maxLength: 253,
    },
    counts: {
      type: 'object',
      description: 'How many nodes, disks and volumes the pool has.',
      properties: {
        nodes: count('Nodes with at least one disk in the pool.'),
        disks: {
          type: 'object',
          description: 'Disks claimed by the pool.',
          properties: {
            total: count('All disks claimed by the pool.'),
            ready: count('Disks prepared and usable.'),
            unhealthy: count('Disks whose Healthy condition is False (SMART failure, I/O errors); replace them.'),
            missing: count('Disks whose node agent no longer reports them (removed, or node down).'),
          },
        },
        volumes: {
          type: 'object',
          description: 'PersistentVolumes of the pool by state.',
          properties: {
            available: count('Volumes ready to be claimed (mode Local: unbound local PVs).'),
            bound: count('Volumes bound to a PVC.'),
            released: count('Volumes whose PVC was deleted and that wait for cleanup (Delete) or for an administrator (Retain).'),
          },
        },
      },
    },
    capacity: {
      type: 'object',
      description: 'Capacity as Kubernetes quantities (exact byte counts as strings).',
      properties: {
        raw: sizeSchema('Sum of the sizes of all ready disks.'),
        usable: sizeSchema('Capacity after replication and filesystem overhead: what volumes can hold in total.'),
        allocated: sizeSchema('Capacity promised to existing volumes.'),
        available: sizeSchema('Capacity still free for new volumes (usable minus allocated).'),
      },
    },
  },
};

export const storagePoolSchema: JSONSchema = {
  type: 'object',
  description:
    'A StoragePool turns a set of disks (NodeDisk objects) into a StorageClass: either one local PersistentVolume per disk (mode Local) or dynamically provisioned, optionally replicated volumes (mode Dynamic).',
  required: ['spec'],
  properties: {
    apiVersion: { type: 'string', description: `Always ${API_VERSION}.` },
    kind: { type: 'string', description: `Always ${STORAGE_POOL_KIND}.` },
    // No description here: Kubernetes allows nothing on metadata but restrictions of name.
    metadata: {
      type: 'object',
      properties: {
        name: {
          type: 'string',
          description:
            'Pool name; at most 63 characters because it is also a label value (stowage.dev/pool) and the default StorageClass name.',
          maxLength: 63,
          pattern: DNS_SUBDOMAIN_PATTERN,
        },
      },
    },
    spec: specSchema,
    status: statusSchema,
  },
};

// ---------------------------------------------------------------------------------------------
// Defaults that depend on other fields, so no schema `default` can express them (a schema default
// for local or fsType would also make the CEL rules fire on Dynamic and Block pools).

/** Filesystem of Local Filesystem pools that name none. */
export const DEFAULT_FS_TYPE: FsType = 'ext4';

/**
 * Runs before the schema defaults: creates `spec.local` for Local pools so its fields get their
 * schema defaults. Mutates `pool`.
 */
export function expandPoolDefaults(pool: any): void {
  const spec = pool?.spec;
  if (spec && typeof spec === 'object' && spec.mode === 'Local' && spec.local === undefined) spec.local = {};
}

/**
 * Runs after the schema defaults: fsType for Local Filesystem pools and the StorageClass name
 * (the pool's name). Mutates `pool`.
 */
export function fillPoolDefaults(pool: any): void {
  const spec = pool?.spec;
  if (!spec || typeof spec !== 'object') return;
  const local = spec.local;
  if (local && typeof local === 'object' && (local.volumeMode ?? 'Filesystem') === 'Filesystem' && local.fsType === undefined) {
    local.fsType = DEFAULT_FS_TYPE;
  }
  const sc = spec.storageClass;
  if (sc && typeof sc === 'object' && sc.name === undefined && typeof pool.metadata?.name === 'string') {
    sc.name = pool.metadata.name;
  }
  fillReplicationDefaults(spec.replicated);
  // Dynamic volumes grow online; a Local volume is a whole disk and cannot.
  if (sc && typeof sc === 'object' && sc.allowVolumeExpansion === undefined && (spec.mode === 'Dynamic' || spec.mode === 'Local')) {
    sc.allowVolumeExpansion = spec.mode === 'Dynamic';
  }
}

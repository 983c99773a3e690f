/**
 * NodeDisk: one physical disk (or one filesystem mounted under a discovery directory) on one node.
 * The node agent creates it and owns `status`; the operator writes `spec.claim` and `spec.wipe`
 * (the claim protocol, DESIGN §2). Types and schema side by side, as for StoragePool.
 */
import {
  API_VERSION,
  DNS_SUBDOMAIN_PATTERN,
  conditionsSchema,
  counterSchema,
  sizeSchema,
  stringListSchema,
  textSchema,
  timeSchema,
  type Condition,
  type ObjectMeta,
} from './meta.js';
import type { CelRule, JSONSchema } from './schema.js';
import type { CleanupMethod, FsType, PoolMode, VolumeMode } from './storagepool.js';

export const NODE_DISK_KIND = 'NodeDisk';
export const NODE_DISK_PLURAL = 'nodedisks';

/** Labels the node agent and the operator put on NodeDisks, for pool selectors and kubectl. */
export const NODE_DISK_LABELS = {
  node: 'stowage.dev/node',
  media: 'stowage.dev/media',
  pool: 'stowage.dev/pool',
} as const;

/** Condition types a NodeDisk reports. */
export const NODE_DISK_CONDITIONS = ['Present', 'Eligible', 'Healthy', 'Prepared'] as const;

export type DiskMedia = 'ssd' | 'hdd' | 'nvme' | 'unknown';
export type DiskKind = 'Disk' | 'Mount';
export type HealthVerdict = 'Passed' | 'Failed' | 'Unknown';
export type WipeResult = 'Succeeded' | 'Failed';

export interface DiskClaim {
  pool: string;
  mode: PoolMode;
  volumeMode?: VolumeMode;
  fsType?: FsType;
  allowAdoption?: boolean;
}

export interface DiskWipe {
  volumeUID: string;
  method: CleanupMethod;
}

export interface NodeDiskSpec {
  nodeName: string;
  devicePath: string;
  schedulable?: boolean;
  claim?: DiskClaim;
  wipe?: DiskWipe;
  erasePreviousData?: boolean;
}

export interface DiskPartition {
  name: string;
  number?: number;
  size?: string;
  fsType?: string;
  label?: string;
}

export interface DiskHealth {
  verdict: HealthVerdict;
  temperatureCelsius?: number;
  powerOnHours?: number;
  reallocatedSectors?: number;
  pendingSectors?: number;
  mediaErrors?: number;
  percentageUsed?: number;
  checkedTime?: string;
  message?: string;
}

export interface NodeDiskStatus {
  observedGeneration?: number;
  kind?: DiskKind;
  kernelName?: string;
  links?: string[];
  capacity?: string;
  model?: string;
  vendor?: string;
  serial?: string;
  wwn?: string;
  media?: DiskMedia;
  rotational?: boolean;
  transport?: string;
  readOnly?: boolean;
  filesystem?: { type?: string; uuid?: string; label?: string };
  partitionTable?: string;
  partitions?: DiskPartition[];
  mountPoints?: string[];
  health?: DiskHealth;
  usage?: { size?: string; used?: string; available?: string };
  preparation?: { path?: string; filesystem?: string; uuid?: string };
  claim?: { pool?: string; persistentVolumeName?: string };
  lastWipe?: { volumeUID: string; method?: CleanupMethod; result: WipeResult; time?: string; message?: string };
  lastSeenTime?: string;
  conditions?: Condition[];
}

/** A type alias so it is assignable to the client's `KubeObject` (see StoragePool). */
export type NodeDisk = {
  apiVersion: typeof API_VERSION;
  kind: typeof NODE_DISK_KIND;
  metadata: ObjectMeta;
  spec: NodeDiskSpec;
  status?: NodeDiskStatus;
};

// ---------------------------------------------------------------------------------------------
// Cross-field rules on spec.claim: the agent must be told exactly how to prepare the disk.

const isLocalClaim = (claim: any): boolean => claim?.mode === 'Local';

const onlyLocalClaimsHaveVolumeSettings: CelRule = {
  rule: "(has(self.mode) && self.mode == 'Local') || (!has(self.volumeMode) && !has(self.fsType))",
  message: 'volumeMode and fsType describe Local claims only; remove them when mode is Dynamic',
  holds: (claim) => isLocalClaim(claim) || (claim?.volumeMode === undefined && claim?.fsType === undefined),
};

const localClaimNamesVolumeMode: CelRule = {
  rule: "!has(self.mode) || self.mode != 'Local' || has(self.volumeMode)",
  message: 'a Local claim must state volumeMode (Filesystem or Block)',
  field: 'volumeMode',
  holds: (claim) => !isLocalClaim(claim) || claim.volumeMode !== undefined,
};

const fsTypeExactlyForFilesystem: CelRule = {
  rule: "!has(self.volumeMode) || (self.volumeMode == 'Block') != has(self.fsType)",
  message: 'fsType is required for volumeMode Filesystem and must be absent for Block',
  field: 'fsType',
  holds: (claim) => claim?.volumeMode === undefined || (claim.volumeMode === 'Block') !== (claim.fsType !== undefined),
};

// ---------------------------------------------------------------------------------------------
// Schema.

const specSchema: JSONSchema = {
  type: 'object',
  description:
    'Intent for the disk. nodeName and devicePath are set by the node agent when it creates the object; schedulable by an administrator; claim and wipe by the operator.',
  required: ['nodeName', 'devicePath'],
  properties: {
    nodeName: {
      type: 'string',
      description: 'The Node the disk is attached to.',
      maxLength: 253,
      pattern: DNS_SUBDOMAIN_PATTERN,
    },
    devicePath: {
      type: 'string',
      description:
        'Where the node agent finds the disk. Disks: a stable /dev/disk/by-id/ link where one exists (it survives reboots and re-cabling), otherwise /dev/<kernel name>. Mounts: the mounted directory under the discovery directory, e.g. /mnt/disks/vol1.',
      maxLength: 4096,
      pattern: '^/',
    },
    schedulable: {
      type: 'boolean',
      description:
        'Set to false to cordon the disk: no pool claims it from now on. A disk already in a pool stays there and keeps serving its volume; to take it out, change the pool selector or delete the volume first.',
      default: true,
    },
    erasePreviousData: {
      type: 'boolean',
      description:
        "Set by an administrator on a disk held with Eligible=False, reason PreviouslyUsed: it came back after its NodeDisk was deleted and may hold a previous tenant's data. true: the node agent zeroes every byte of it, then it is blank and Eligible. Ignored on any other disk.",
    },
    claim: {
      type: 'object',
      description:
        'Written by the operator: the pool that owns this disk and how the node agent must prepare it. Absent: the disk belongs to no pool.',
      required: ['pool', 'mode'],
      'x-kubernetes-validations': [onlyLocalClaimsHaveVolumeSettings, localClaimNamesVolumeMode, fsTypeExactlyForFilesystem],
      properties: {
        pool: {
          type: 'string',
          description: 'Name of the StoragePool that claimed the disk.',
          maxLength: 63,
          pattern: DNS_SUBDOMAIN_PATTERN,
        },
        mode: {
          type: 'string',
          description: "The pool mode. Local: the disk becomes one local PV. Dynamic: the disk joins the node's pool filesystem.",
          enum: ['Local', 'Dynamic'],
          maxLength: 16,
        },
        volumeMode: {
          type: 'string',
          description: 'Local claims only. Filesystem: make a filesystem of fsType and mount it. Block: leave the device raw.',
          enum: ['Filesystem', 'Block'],
          maxLength: 16,
        },
        fsType: {
          type: 'string',
          description: 'Local Filesystem claims only: the filesystem to make.',
          enum: ['ext4', 'xfs'],
        },
        allowAdoption: {
          type: 'boolean',
          description:
            'Copied from the pool: the agent may prepare the disk even though it carries a filesystem or partition table, destroying its contents. Without it the agent refuses such disks (Prepared=False).',
          default: false,
        },
      },
    },
    wipe: {
      type: 'object',
      description:
        'Written by the operator when a released Local volume on this disk must be cleaned. The agent wipes, then reports status.lastWipe with the same volumeUID; the operator only recreates the volume after that.',
      required: ['volumeUID', 'method'],
      properties: {
        volumeUID: {
          type: 'string',
          description: 'metadata.uid of the released PersistentVolume the wipe is for; a result for another UID never counts.',
          minLength: 1,
          maxLength: 128,
        },
        method: {
          type: 'string',
          description: 'quick: erase signatures and remake the filesystem. zero: overwrite the whole disk. discard: TRIM the whole disk.',
          enum: ['quick', 'zero', 'discard'],
        },
      },
    },
  },
};

const statusSchema: JSONSchema = {
  type: 'object',
  description: 'What the node agent observes on the disk (claim is reported by the operator). Never edit it.',
  properties: {
    observedGeneration: {
      type: 'integer',
      format: 'int64',
      minimum: 0,
      description:
        'The metadata.generation of the spec the agent last acted on; smaller than metadata.generation means a claim or wipe is still pending.',
    },
    kind: {
      type: 'string',
      description:
        'Disk: a whole block device. Mount: a filesystem an administrator mounted under the discovery directory (used as is, never formatted).',
      enum: ['Disk', 'Mount'],
    },
    kernelName: textSchema('Current kernel device name, e.g. sdb or nvme0n1; may change across reboots, the object does not.', 64),
    links: stringListSchema('Other names of the device under /dev/disk (by-id, by-path, by-uuid).', 'One /dev/disk/... link.'),
    capacity: sizeSchema('Size of the device (or of the mounted filesystem for kind Mount).'),
    model: textSchema('Model as reported by the device.'),
    vendor: textSchema('Vendor as reported by the device.'),
    serial: textSchema('Serial number; part of the disk identity.'),
    wwn: textSchema('World Wide Name; part of the disk identity.', 64),
    media: {
      type: 'string',
      description:
        'ssd, hdd (rotational), nvme, or unknown (e.g. loop and virtual disks that do not tell). Mirrored in the stowage.dev/media label.',
      enum: ['ssd', 'hdd', 'nvme', 'unknown'],
    },
    rotational: { type: 'boolean', description: 'True for spinning disks, as the kernel reports it.' },
    transport: textSchema('How the disk is attached, e.g. sata, sas, nvme, usb, virtio, loop.', 32),
    readOnly: { type: 'boolean', description: 'The kernel reports the device read-only; such a disk is never eligible.' },
    filesystem: {
      type: 'object',
      description:
        'Filesystem signature found on the whole device, if any (a foreign one makes the disk ineligible unless the pool allows adoption).',
      properties: {
        type: textSchema('Filesystem type, e.g. ext4, xfs, btrfs, LVM2_member.', 64),
        uuid: textSchema('Filesystem UUID.', 64),
        label: textSchema('Filesystem label.', 64),
      },
    },
    partitionTable: textSchema(
      'Partition table type (gpt or dos) when the disk has one; such a disk is not eligible unless the pool allows adoption.',
      16,
    ),
    partitions: {
      type: 'array',
      description: 'Partitions on the disk, by kernel name.',
      maxItems: 128,
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['name'],
      items: {
        type: 'object',
        description: 'One partition.',
        required: ['name'],
        properties: {
          name: textSchema('Kernel name of the partition, e.g. sdb1.', 64),
          number: { type: 'integer', format: 'int32', minimum: 0, description: 'Partition number.' },
          size: sizeSchema('Partition size.'),
          fsType: textSchema('Filesystem on the partition, if any.', 64),
          label: textSchema('Partition or filesystem label, if any.'),
        },
      },
    },
    mountPoints: stringListSchema('Where the device or its partitions are mounted on the node.', 'One mount point.'),
    health: {
      type: 'object',
      description: 'SMART health as last read by the node agent.',
      required: ['verdict'],
      properties: {
        verdict: {
          type: 'string',
          description:
            'Passed, Failed (the device predicts its own failure: move data off it and replace it), or Unknown (no SMART data, e.g. virtual disks).',
          enum: ['Passed', 'Failed', 'Unknown'],
        },
        temperatureCelsius: { type: 'integer', format: 'int32', minimum: -273, description: 'Current temperature in degrees Celsius.' },
        powerOnHours: counterSchema('Hours the device has been powered on.'),
        reallocatedSectors: counterSchema('Sectors remapped after errors (SATA/SAS); a growing count means the disk is wearing out.'),
        pendingSectors: counterSchema('Sectors waiting to be remapped (SATA); non-zero means unreadable data.'),
        mediaErrors: counterSchema('Unrecovered media and data-integrity errors (NVMe).'),
        percentageUsed: {
          type: 'integer',
          format: 'int32',
          minimum: 0,
          maximum: 255,
          description: 'Vendor estimate of endurance used, in percent (NVMe); may exceed 100.',
        },
        checkedTime: timeSchema('When health was last read.'),
        message: textSchema('Details from the health check, e.g. why the verdict is Unknown.', 1024),
      },
    },
    usage: {
      type: 'object',
      description: 'Space on the prepared disk (filesystem statistics), present once the disk is prepared.',
      properties: {
        size: sizeSchema('Total space of the prepared filesystem.'),
        used: sizeSchema('Space in use.'),
        available: sizeSchema('Space still free.'),
      },
    },
    preparation: {
      type: 'object',
      description: 'What the agent made of the disk for its pool; absent while the disk is not prepared.',
      properties: {
        path: textSchema('Where the prepared disk is on the node: the mount directory (Filesystem, Dynamic) or the device (Block).', 4096),
        filesystem: textSchema('Filesystem the agent made (ext4, xfs, btrfs); empty for Block.', 64),
        uuid: textSchema('UUID of that filesystem; lets the agent recognise its own work after a restart.', 64),
      },
    },
    claim: {
      type: 'object',
      description: 'The claim as the operator sees it, for kubectl users.',
      properties: {
        pool: textSchema('Pool the disk belongs to.', 63),
        persistentVolumeName: textSchema('Local PersistentVolume made from the disk (mode Local).', 253),
      },
    },
    lastWipe: {
      type: 'object',
      description: 'Result of the last wipe the agent carried out (see spec.wipe).',
      required: ['volumeUID', 'result'],
      properties: {
        volumeUID: textSchema('UID of the PersistentVolume the wipe was for.', 128),
        method: {
          type: 'string',
          description: 'Method used.',
          enum: ['quick', 'zero', 'discard'],
        },
        result: {
          type: 'string',
          description: 'Succeeded or Failed (see message; the operator does not reuse the disk until a wipe succeeds).',
          enum: ['Succeeded', 'Failed'],
        },
        time: timeSchema('When the wipe finished.'),
        message: textSchema('Details, e.g. the error of a failed wipe.', 1024),
      },
    },
    lastSeenTime: timeSchema(
      'When the node agent last saw the disk; old values mean the disk or its node is gone (see the Present condition).',
    ),
    conditions: conditionsSchema(
      'Present: the agent currently sees the disk. Eligible: a pool may claim it; when False the reason says why (HasFilesystem, HasPartitions, Mounted, ReadOnly, TooSmall, SystemDisk, ExcludedByFilter). Healthy: SMART and I/O errors look fine. Prepared: the agent prepared the disk for its claim, or why it could not.',
    ),
  },
};

export const nodeDiskSchema: JSONSchema = {
  type: 'object',
  description:
    'A NodeDisk is one disk (or one filesystem mounted under a discovery directory) on one node, inventoried by the Stowage node agent. Pools select NodeDisks by label; the status shows why a disk is or is not used.',
  required: ['spec'],
  properties: {
    apiVersion: { type: 'string', description: `Always ${API_VERSION}.` },
    kind: { type: 'string', description: `Always ${NODE_DISK_KIND}.` },
    metadata: { type: 'object' },
    spec: specSchema,
    status: statusSchema,
  },
};

/**
 * PoolVolume: one dynamically provisioned volume of a Dynamic pool (DESIGN §2). The CSI controller
 * creates it (it cannot touch disks) and the node daemon of `spec.node` realizes it as a btrfs
 * subvolume (Filesystem) or a no-copy-on-write file (Block) and reports `status`. Deleting it
 * frees the space: the node daemon removes the data, then the finalizer.
 */
import { API_VERSION, DNS_SUBDOMAIN_PATTERN, conditionsSchema, sizeSchema, type Condition, type ObjectMeta } from './meta.js';
import type { CelRule, JSONSchema } from './schema.js';
import type { VolumeMode } from './storagepool.js';

export const POOL_VOLUME_KIND = 'PoolVolume';
export const POOL_VOLUME_PLURAL = 'poolvolumes';

/** Held by every PoolVolume until its node daemon has removed the data. */
export const POOL_VOLUME_FINALIZER = 'stowage.dev/volume-data';

/** Labels the CSI controller puts on PoolVolumes, so a node daemon watches only its own. */
export const POOL_VOLUME_LABELS = {
  node: 'stowage.dev/node',
  pool: 'stowage.dev/pool',
} as const;

export type PoolVolumePhase = 'Pending' | 'Ready' | 'Failed' | 'Deleting';

/** Condition types a PoolVolume reports. */
export const POOL_VOLUME_CONDITIONS = ['Ready', 'Degraded'] as const;

export interface PoolVolumeSpec {
  pool: string;
  node: string;
  size: string;
  volumeMode: VolumeMode;
  requestName: string;
  noDataCow?: boolean;
  /** Where the content comes from (CreateVolume's volume_content_source); absent: an empty volume. */
  source?: PoolVolumeSource;
}

/** A restore (from a PoolSnapshot) or a clone (of another PoolVolume), both on the same node. */
export interface PoolVolumeSource {
  snapshot?: string;
  volume?: string;
}

export interface PoolVolumeStatus {
  observedGeneration?: number;
  /** Where the node daemon realized the volume: spec.pool and spec.node must keep naming it. */
  location?: { pool: string; node: string };
  phase?: PoolVolumePhase;
  path?: string;
  capacity?: string;
  used?: string;
  conditions?: Condition[];
}

/** A type alias so it is assignable to the client's `KubeObject` (see StoragePool). */
export type PoolVolume = {
  apiVersion: typeof API_VERSION;
  kind: typeof POOL_VOLUME_KIND;
  metadata: ObjectMeta;
  spec: PoolVolumeSpec;
  status?: PoolVolumeStatus;
};

/**
 * A transition rule (CEL `self == oldSelf`): the API server compares with the stored object, which
 * `holds` (one object, no old one) cannot see; on servers without CEL the node daemon refuses the
 * change itself against status.location (src/node/engine/volume-location.ts).
 */
export function immutable(field: string): CelRule {
  return {
    rule: 'self == oldSelf',
    message: `${field} is immutable: the data is where it was made; create a new object to place data elsewhere`,
    holds: () => true,
  };
}

/** status.location of a PoolVolume or PoolSnapshot. */
export function locationSchema(what: string): JSONSchema {
  return {
    type: 'object',
    description: `Where the node daemon made the ${what} (its data is there). spec.pool and spec.node must keep naming it; a spec that names another place is refused (Ready=False, reason LocationImmutable).`,
    required: ['pool', 'node'],
    properties: {
      pool: { type: 'string', description: 'The pool whose filesystem holds the data.', maxLength: 63 },
      node: { type: 'string', description: 'The node whose pool filesystem holds the data.', maxLength: 253 },
    },
  };
}

const specSchema: JSONSchema = {
  type: 'object',
  description: 'What the volume is: written by the CSI controller when it creates the volume. Only size changes afterwards (expansion).',
  required: ['pool', 'node', 'size', 'volumeMode', 'requestName'],
  properties: {
    pool: {
      type: 'string',
      description: 'The Dynamic StoragePool the volume is carved from. Immutable: the data is in this pool.',
      maxLength: 63,
      pattern: DNS_SUBDOMAIN_PATTERN,
      'x-kubernetes-validations': [immutable('pool')],
    },
    node: {
      type: 'string',
      description: 'The Node whose pool filesystem holds the volume; the volume is only usable there. Immutable: the data is on this node.',
      maxLength: 253,
      pattern: DNS_SUBDOMAIN_PATTERN,
      'x-kubernetes-validations': [immutable('node')],
    },
    size: sizeSchema('Reserved size in bytes, e.g. 10Gi; the volume cannot hold more. Raising it expands the volume; it never shrinks.'),
    volumeMode: {
      type: 'string',
      description:
        'Filesystem: a btrfs subvolume with a quota of size. Block: a no-copy-on-write file of size, handed to the pod as a block device.',
      enum: ['Filesystem', 'Block'],
      maxLength: 16,
    },
    noDataCow: {
      type: 'boolean',
      description:
        'Filesystem volumes: turn off copy-on-write and data checksums for the files in the volume (StorageClass parameter nodatacow: "true"). Random and sequential writes get close to a plain filesystem, but btrfs can no longer detect corrupted data or repair it from the mirror copy. Block volumes are always without copy-on-write.',
      default: false,
    },
    requestName: {
      type: 'string',
      description:
        'The name the container orchestrator gave in CreateVolume (e.g. pvc-<uid>); repeated requests with this name return this volume.',
      maxLength: 1024,
    },
    source: {
      type: 'object',
      description:
        "Where the volume's initial content comes from (CreateVolume's volume_content_source); absent for an empty volume. Set once at creation; the new volume is independent of its source afterwards.",
      properties: {
        snapshot: {
          type: 'string',
          description: 'Restore: the PoolSnapshot (CSI snapshot ID) to copy; it lives on spec.node.',
          maxLength: 253,
          pattern: DNS_SUBDOMAIN_PATTERN,
        },
        volume: {
          type: 'string',
          description: 'Clone: the PoolVolume (CSI volume ID) to copy as it is now; it lives on spec.node.',
          maxLength: 253,
          pattern: DNS_SUBDOMAIN_PATTERN,
        },
      },
    },
  },
};

const statusSchema: JSONSchema = {
  type: 'object',
  description: 'What the node daemon observed; written only by the node daemon of spec.node.',
  properties: {
    observedGeneration: {
      type: 'integer',
      format: 'int64',
      minimum: 0,
      description: 'The metadata.generation this status describes; older than the current one means a change (expansion) is still pending.',
    },
    location: locationSchema('volume'),
    phase: {
      type: 'string',
      description:
        'Pending: not realized yet. Ready: usable at path with capacity. Failed: could not be realized (see the Ready condition). Deleting: the data is being removed.',
      enum: ['Pending', 'Ready', 'Failed', 'Deleting'],
      maxLength: 16,
    },
    path: {
      type: 'string',
      description: 'Where the volume lives on the node: the subvolume directory (Filesystem) or the backing file (Block).',
      maxLength: 4096,
    },
    capacity: sizeSchema('Size the volume has now, in bytes; equals spec.size once an expansion is done.'),
    used: sizeSchema('Bytes the volume holds now (btrfs qgroup referenced bytes, or allocated bytes of the file).'),
    conditions: conditionsSchema(
      'Ready: the volume exists with the requested size. Degraded: the pool filesystem is missing a disk and runs without full redundancy.',
    ),
  },
};

export const poolVolumeSchema: JSONSchema = {
  type: 'object',
  description: 'One volume of a Dynamic pool, created by the Stowage CSI driver and realized by the node daemon of spec.node.',
  required: ['spec'],
  properties: {
    apiVersion: { type: 'string', description: `Always ${API_VERSION}.` },
    kind: { type: 'string', description: `Always ${POOL_VOLUME_KIND}.` },
    metadata: { type: 'object' },
    spec: specSchema,
    status: statusSchema,
  },
};

/** Bytes in a quantity the CSI driver writes (a plain integer string); undefined for anything else. */
export function plainBytes(quantity: string | undefined): bigint | undefined {
  return quantity !== undefined && /^\d+$/.test(quantity) ? BigInt(quantity) : undefined;
}

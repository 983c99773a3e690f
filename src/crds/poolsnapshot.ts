/**
 * PoolSnapshot: one snapshot of a Dynamic pool's volume (issue 17). The CSI controller creates it in
 * CreateSnapshot (it cannot touch disks) and the node daemon of `spec.node` realizes it in the pool
 * filesystem there — a read-only btrfs snapshot of the volume's subvolume, or a reflinked copy of a
 * Block volume's file — and reports `status`. A snapshot lives where its volume lives, so restores
 * from it are placed on that node.
 *
 * Why an object of its own rather than a field of PoolVolume: a snapshot outlives its volume
 * (deleting a volume leaves its snapshots restorable), has its own finalizer (its data is removed
 * by the node daemon) and its own capacity (the bytes only it holds). It carries no owner reference
 * to its volume for that reason; its owner is the StoragePool, whose deletion is held while
 * snapshots exist.
 */
import { API_VERSION, DNS_SUBDOMAIN_PATTERN, conditionsSchema, sizeSchema, timeSchema, type Condition, type ObjectMeta } from './meta.js';
import type { JSONSchema } from './schema.js';
import { immutable, locationSchema } from './poolvolume.js';
import type { VolumeMode } from './storagepool.js';

export const POOL_SNAPSHOT_KIND = 'PoolSnapshot';
export const POOL_SNAPSHOT_PLURAL = 'poolsnapshots';

/** Held by every PoolSnapshot until its node daemon has removed the data. */
export const POOL_SNAPSHOT_FINALIZER = 'stowage.dev/snapshot-data';

/** Labels the CSI controller puts on PoolSnapshots: the node daemon watches its own, ListSnapshots filters by source. */
export const POOL_SNAPSHOT_LABELS = {
  node: 'stowage.dev/node',
  pool: 'stowage.dev/pool',
  sourceVolume: 'stowage.dev/source-volume',
} as const;

export type PoolSnapshotPhase = 'Pending' | 'Ready' | 'Failed';

export interface PoolSnapshotSpec {
  pool: string;
  node: string;
  /** The PoolVolume (= CSI volume ID) the snapshot was taken of; it may be gone since. */
  sourceVolume: string;
  volumeMode: VolumeMode;
  /** The source's size when the snapshot was taken: the smallest volume it can be restored to. */
  size: string;
  requestName: string;
}

export interface PoolSnapshotStatus {
  observedGeneration?: number;
  /** Where the node daemon took the snapshot: spec.pool and spec.node must keep naming it. */
  location?: { pool: string; node: string };
  phase?: PoolSnapshotPhase;
  path?: string;
  /** When the data was captured (RFC 3339), reported to the CO as creation_time. */
  creationTime?: string;
  /** Bytes only this snapshot holds: what deleting it frees. Counted against the pool's capacity. */
  exclusive?: string;
  /** How it was made: subvolume-snapshot, reflink or copy. */
  method?: string;
  conditions?: Condition[];
}

/** A type alias so it is assignable to the client's `KubeObject` (see StoragePool). */
export type PoolSnapshot = {
  apiVersion: typeof API_VERSION;
  kind: typeof POOL_SNAPSHOT_KIND;
  metadata: ObjectMeta;
  spec: PoolSnapshotSpec;
  status?: PoolSnapshotStatus;
};

const specSchema: JSONSchema = {
  type: 'object',
  description: 'What the snapshot is of: written by the CSI controller in CreateSnapshot and never changed.',
  required: ['pool', 'node', 'sourceVolume', 'volumeMode', 'size', 'requestName'],
  properties: {
    pool: {
      type: 'string',
      description: "The Dynamic StoragePool of the source volume. Immutable: the snapshot's data is in this pool.",
      maxLength: 63,
      pattern: DNS_SUBDOMAIN_PATTERN,
      'x-kubernetes-validations': [immutable('pool')],
    },
    node: {
      type: 'string',
      description:
        "The Node whose pool filesystem holds the snapshot (the source volume's node); volumes restored from it are placed there.",
      maxLength: 253,
      pattern: DNS_SUBDOMAIN_PATTERN,
      'x-kubernetes-validations': [immutable('node')],
    },
    sourceVolume: {
      type: 'string',
      description: 'The PoolVolume (CSI volume ID) the snapshot was taken of. The snapshot stays usable after that volume is deleted.',
      maxLength: 253,
      pattern: DNS_SUBDOMAIN_PATTERN,
      'x-kubernetes-validations': [immutable('sourceVolume')],
    },
    volumeMode: {
      type: 'string',
      description:
        "The source volume's mode: Filesystem (a read-only btrfs snapshot of its subvolume) or Block (a reflinked copy of its file).",
      enum: ['Filesystem', 'Block'],
      maxLength: 16,
    },
    size: sizeSchema("The source volume's size when the snapshot was taken, in bytes: volumes restored from it are at least this big."),
    requestName: {
      type: 'string',
      description:
        'The name the container orchestrator gave in CreateSnapshot (e.g. snapshot-<uid>); repeated requests with this name return this snapshot.',
      maxLength: 1024,
    },
  },
};

const statusSchema: JSONSchema = {
  type: 'object',
  description: 'What the node daemon observed; written only by the node daemon of spec.node.',
  properties: {
    observedGeneration: { type: 'integer', format: 'int64', minimum: 0, description: 'The metadata.generation this status describes.' },
    location: locationSchema('snapshot'),
    phase: {
      type: 'string',
      description: 'Pending: not taken yet. Ready: taken, restorable. Failed: could not be taken (see the Ready condition).',
      enum: ['Pending', 'Ready', 'Failed'],
      maxLength: 16,
    },
    path: { type: 'string', description: 'Where the snapshot lives on the node.', maxLength: 4096 },
    creationTime: timeSchema('When the data was captured.'),
    exclusive: sizeSchema(
      "Bytes only this snapshot holds (what deleting it frees); they count against the pool's capacity on the node. Grows as the source volume overwrites data the snapshot still holds.",
    ),
    method: {
      type: 'string',
      description:
        'How the snapshot was made: subvolume-snapshot (Filesystem), reflink (Block, extents shared) or copy (Block, a full copy where the kernel refused to share extents).',
      enum: ['subvolume-snapshot', 'reflink', 'copy'],
      maxLength: 32,
    },
    conditions: conditionsSchema('Ready: the snapshot exists on the node and can be restored.'),
  },
};

export const poolSnapshotSchema: JSONSchema = {
  type: 'object',
  description: "One snapshot of a Dynamic pool's volume, created by the Stowage CSI driver and realized by the node daemon of spec.node.",
  required: ['spec'],
  properties: {
    apiVersion: { type: 'string', description: `Always ${API_VERSION}.` },
    kind: { type: 'string', description: `Always ${POOL_SNAPSHOT_KIND}.` },
    metadata: { type: 'object' },
    spec: specSchema,
    status: statusSchema,
  },
};

/**
 * The CustomResourceDefinition objects, built from the schemas in this directory. They are the
 * only input of `make manifests` (config/crd) and of anything that installs the CRDs in tests.
 */
import { GROUP, VERSION } from './meta.js';
import { NODE_DISK_KIND, NODE_DISK_PLURAL, nodeDiskSchema } from './nodedisk.js';
import { POOL_VOLUME_KIND, POOL_VOLUME_PLURAL, poolVolumeSchema } from './poolvolume.js';
import { POOL_SNAPSHOT_KIND, POOL_SNAPSHOT_PLURAL, poolSnapshotSchema } from './poolsnapshot.js';
import { toKubernetesSchema, type JSONSchema } from './schema.js';
import { STORAGE_POOL_KIND, STORAGE_POOL_PLURAL, expandPoolDefaults, fillPoolDefaults, storagePoolSchema } from './storagepool.js';

/** A printer column (`kubectl get`); priority 1 shows only with `-o wide`. */
export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  jsonPath: string;
  description: string;
  priority?: number;
}

/** Everything that distinguishes one Stowage CRD from another. */
export interface ResourceDefinition {
  kind: string;
  plural: string;
  singular: string;
  shortName: string;
  schema: JSONSchema;
  columns: PrinterColumn[];
  /** Defaults that depend on other fields: `expand` runs before the schema defaults, `fill` after. */
  derivedDefaults?: { expand(obj: unknown): void; fill(obj: unknown): void };
}

/**
 * `apiextensions.k8s.io/v1` CustomResourceDefinition, as far as we fill it in. A type alias so it
 * is assignable to the client's generic `KubeObject`.
 */
export type CustomResourceDefinition = {
  apiVersion: 'apiextensions.k8s.io/v1';
  kind: 'CustomResourceDefinition';
  metadata: { name: string; labels: Record<string, string> };
  spec: {
    group: string;
    scope: 'Cluster';
    names: { kind: string; listKind: string; plural: string; singular: string; shortNames: string[]; categories: string[] };
    versions: {
      name: string;
      served: true;
      storage: true;
      schema: { openAPIV3Schema: Record<string, unknown> };
      subresources: { status: Record<string, never> };
      additionalPrinterColumns: PrinterColumn[];
    }[];
  };
};

const conditionStatus = (type: string): string => `.status.conditions[?(@.type=="${type}")].status`;
const age: PrinterColumn = {
  name: 'Age',
  type: 'date',
  jsonPath: '.metadata.creationTimestamp',
  description: 'Time since the object was created.',
};

export const STORAGE_POOL_DEFINITION: ResourceDefinition = {
  kind: STORAGE_POOL_KIND,
  plural: STORAGE_POOL_PLURAL,
  singular: 'storagepool',
  shortName: 'sp',
  schema: storagePoolSchema,
  derivedDefaults: { expand: expandPoolDefaults, fill: fillPoolDefaults },
  columns: [
    { name: 'Mode', type: 'string', jsonPath: '.spec.mode', description: 'Local or Dynamic.' },
    { name: 'Replicas', type: 'integer', jsonPath: '.spec.replicated.size', description: 'Copies of every block.' },
    { name: 'Ready', type: 'string', jsonPath: conditionStatus('Ready'), description: 'Whether the pool can serve volumes.' },
    { name: 'Usable', type: 'string', jsonPath: '.status.capacity.usable', description: 'Capacity after replication.' },
    { name: 'Available', type: 'string', jsonPath: '.status.capacity.available', description: 'Capacity free for new volumes.' },
    { name: 'StorageClass', type: 'string', jsonPath: '.status.storageClassName', description: 'StorageClass of the pool.', priority: 1 },
    { name: 'Disks', type: 'integer', jsonPath: '.status.counts.disks.ready', description: 'Ready disks.', priority: 1 },
    age,
  ],
};

export const NODE_DISK_DEFINITION: ResourceDefinition = {
  kind: NODE_DISK_KIND,
  plural: NODE_DISK_PLURAL,
  singular: 'nodedisk',
  shortName: 'nd',
  schema: nodeDiskSchema,
  columns: [
    { name: 'Node', type: 'string', jsonPath: '.spec.nodeName', description: 'Node the disk is attached to.' },
    { name: 'Media', type: 'string', jsonPath: '.status.media', description: 'ssd, hdd, nvme or unknown.' },
    { name: 'Size', type: 'string', jsonPath: '.status.capacity', description: 'Device size.' },
    { name: 'Eligible', type: 'string', jsonPath: conditionStatus('Eligible'), description: 'Whether a pool may claim the disk.' },
    { name: 'Pool', type: 'string', jsonPath: '.spec.claim.pool', description: 'Pool that claimed the disk.' },
    { name: 'Healthy', type: 'string', jsonPath: conditionStatus('Healthy'), description: 'SMART and I/O health.' },
    { name: 'Device', type: 'string', jsonPath: '.spec.devicePath', description: 'Stable device path.', priority: 1 },
    {
      name: 'Reason',
      type: 'string',
      jsonPath: '.status.conditions[?(@.type=="Eligible")].reason',
      description: 'Why the disk is or is not eligible.',
      priority: 1,
    },
    age,
  ],
};

export const POOL_VOLUME_DEFINITION: ResourceDefinition = {
  kind: POOL_VOLUME_KIND,
  plural: POOL_VOLUME_PLURAL,
  singular: 'poolvolume',
  shortName: 'pvol',
  schema: poolVolumeSchema,
  columns: [
    { name: 'Pool', type: 'string', jsonPath: '.spec.pool', description: 'Dynamic pool the volume is carved from.' },
    { name: 'Node', type: 'string', jsonPath: '.spec.node', description: 'Node that holds the volume.' },
    { name: 'Size', type: 'string', jsonPath: '.spec.size', description: 'Reserved size in bytes.' },
    { name: 'Mode', type: 'string', jsonPath: '.spec.volumeMode', description: 'Filesystem or Block.' },
    { name: 'Phase', type: 'string', jsonPath: '.status.phase', description: 'Pending, Ready, Failed or Deleting.' },
    { name: 'Used', type: 'string', jsonPath: '.status.used', description: 'Bytes the volume holds.', priority: 1 },
    { name: 'Request', type: 'string', jsonPath: '.spec.requestName', description: 'Name given in CreateVolume.', priority: 1 },
    age,
  ],
};

export const POOL_SNAPSHOT_DEFINITION: ResourceDefinition = {
  kind: POOL_SNAPSHOT_KIND,
  plural: POOL_SNAPSHOT_PLURAL,
  singular: 'poolsnapshot',
  shortName: 'psnap',
  schema: poolSnapshotSchema,
  columns: [
    { name: 'Pool', type: 'string', jsonPath: '.spec.pool', description: 'Dynamic pool of the source volume.' },
    { name: 'Node', type: 'string', jsonPath: '.spec.node', description: 'Node that holds the snapshot.' },
    { name: 'Source', type: 'string', jsonPath: '.spec.sourceVolume', description: 'PoolVolume the snapshot was taken of.' },
    { name: 'Size', type: 'string', jsonPath: '.spec.size', description: 'Source size in bytes: the smallest restore.' },
    { name: 'Phase', type: 'string', jsonPath: '.status.phase', description: 'Pending, Ready or Failed.' },
    { name: 'Exclusive', type: 'string', jsonPath: '.status.exclusive', description: 'Bytes only this snapshot holds.', priority: 1 },
    { name: 'Request', type: 'string', jsonPath: '.spec.requestName', description: 'Name given in CreateSnapshot.', priority: 1 },
    age,
  ],
};

export const RESOURCE_DEFINITIONS: readonly ResourceDefinition[] = [
  STORAGE_POOL_DEFINITION,
  NODE_DISK_DEFINITION,
  POOL_VOLUME_DEFINITION,
  POOL_SNAPSHOT_DEFINITION,
];

export interface BuildOptions {
  /**
   * Include the CEL rules (`x-kubernetes-validations`); default true. API servers before 1.23 do
   * not know the field: kubectl's client-side validation and server-side apply reject the whole
   * CRD ("field not declared in schema"), so installers must leave it out there (crdsForServer).
   */
  cel?: boolean;
}

/** The CRD for one resource; a pure function of its definition, so output is byte-for-byte stable. */
export function buildCrd(def: ResourceDefinition, opts: BuildOptions = {}): CustomResourceDefinition {
  const schema = toKubernetesSchema(def.schema);
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${def.plural}.${GROUP}`,
      labels: { 'app.kubernetes.io/name': 'stowage', 'app.kubernetes.io/part-of': 'stowage' },
    },
    spec: {
      group: GROUP,
      scope: 'Cluster',
      names: {
        kind: def.kind,
        listKind: `${def.kind}List`,
        plural: def.plural,
        singular: def.singular,
        shortNames: [def.shortName],
        categories: ['stowage'],
      },
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          schema: { openAPIV3Schema: opts.cel === false ? withoutCel(schema) : schema },
          subresources: { status: {} },
          additionalPrinterColumns: def.columns.map((c) => ({ ...c })),
        },
      ],
    },
  };
}

/** Every Stowage CRD, in install order, with CEL rules (what config/crd holds). */
export const ALL_CRDS: readonly CustomResourceDefinition[] = RESOURCE_DEFINITIONS.map((def) => buildCrd(def));

/** First minor version of Kubernetes 1.x whose CRD schema has `x-kubernetes-validations`. */
export const CEL_MIN_MINOR = 23;

/**
 * The CRDs to install on an API server of the given version (as /version reports it; `minor` may
 * carry a suffix such as "20+"). Without CEL before 1.23, where the field would make the install
 * fail. From 1.23 to 1.24 the rules are accepted but only enforced with the
 * CustomResourceValidationExpressions feature gate; the operator checks them either way.
 */
export function crdsForServer(version: { major: string | number; minor: string | number }): CustomResourceDefinition[] {
  const major = parseInt(String(version.major), 10);
  const minor = parseInt(String(version.minor), 10);
  const cel = major > 1 || (major === 1 && minor >= CEL_MIN_MINOR);
  return RESOURCE_DEFINITIONS.map((def) => buildCrd(def, { cel }));
}

/** A Kubernetes schema (plain JSON) with every `x-kubernetes-validations` removed. */
function withoutCel(schema: Record<string, unknown>): Record<string, unknown> {
  return JSON.parse(JSON.stringify(schema, (key, value: unknown) => (key === 'x-kubernetes-validations' ? undefined : value)));
}

/**
 * Objects for the CRD tests. The `full*` objects set every field the TypeScript types declare
 * (DeepRequired makes the compiler insist), and the schema tests check they also cover every field
 * the schema declares and pass validation: together that keeps types and schemas in step.
 */
import type { NodeDisk, PoolSnapshot, PoolVolume, StoragePool } from '../../src/crds/index.js';

type DeepRequired<T> = T extends (infer U)[] ? DeepRequired<U>[] : T extends object ? { [K in keyof T]-?: DeepRequired<T[K]> } : T;

const condition = {
  type: 'Ready',
  status: 'True' as const,
  observedGeneration: 3,
  lastTransitionTime: '2024-05-01T12:00:00Z',
  reason: 'PoolReady',
  message: 'all good',
};

export const fullStoragePool: DeepRequired<StoragePool> = {
  apiVersion: 'stowage.dev/v1alpha1',
  kind: 'StoragePool',
  metadata: {
    name: 'full',
    uid: '0b8e0f4a-1111-4222-8333-944455556666',
    resourceVersion: '42',
    generation: 3,
    creationTimestamp: '2024-05-01T12:00:00Z',
    deletionTimestamp: '2024-05-02T12:00:00Z',
    labels: { team: 'storage' },
    annotations: { note: 'x' },
    finalizers: ['stowage.dev/pool-protection'],
    ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: 'u', controller: true, blockOwnerDeletion: true }],
  },
  spec: {
    mode: 'Local',
    disks: {
      selector: {
        matchLabels: { 'stowage.dev/media': 'ssd' },
        matchExpressions: [{ key: 'stowage.dev/node', operator: 'In', values: ['node-a', 'node-b'] }],
      },
      nodeSelector: {
        matchLabels: { 'kubernetes.io/os': 'linux' },
        matchExpressions: [{ key: 'node-role.kubernetes.io/storage', operator: 'In', values: [''] }],
      },
      minSize: '100Gi',
      allowAdoption: false,
    },
    replicated: { size: 1, failureDomain: 'disk', minSize: 1 },
    local: { volumeMode: 'Filesystem', fsType: 'xfs', cleanup: 'zero' },
    storageClass: {
      name: 'fast',
      isDefault: true,
      reclaimPolicy: 'Retain',
      volumeBindingMode: 'WaitForFirstConsumer',
      allowVolumeExpansion: false,
      mountOptions: ['noatime'],
    },
    capacity: { lowWatermarkPercent: 20 },
    snapshots: { deletionPolicy: 'Retain' },
  },
  status: {
    observedGeneration: 3,
    conditions: [condition],
    storageClassName: 'fast',
    counts: {
      nodes: 2,
      disks: { total: 4, ready: 3, unhealthy: 0, missing: 1 },
      volumes: { available: 1, bound: 2, released: 0 },
    },
    capacity: { raw: '4Ti', usable: '3Ti', allocated: '2Ti', available: '1Ti' },
  },
};

export const fullNodeDisk: DeepRequired<NodeDisk> = {
  apiVersion: 'stowage.dev/v1alpha1',
  kind: 'NodeDisk',
  metadata: {
    name: 'node-a-3f9c2e1d',
    uid: 'u',
    resourceVersion: '7',
    generation: 2,
    creationTimestamp: '2024-05-01T12:00:00Z',
    deletionTimestamp: '2024-05-02T12:00:00Z',
    labels: { 'stowage.dev/node': 'node-a', 'stowage.dev/media': 'ssd', 'stowage.dev/pool': 'fast' },
    annotations: {},
    finalizers: [],
    ownerReferences: [],
  },
  spec: {
    nodeName: 'node-a',
    devicePath: '/dev/disk/by-id/wwn-0x5002538e4000abcd',
    schedulable: true,
    claim: { pool: 'fast', mode: 'Local', volumeMode: 'Filesystem', fsType: 'ext4', allowAdoption: false },
    wipe: { volumeUID: '9d1c2b3a-0000-4000-8000-000000000001', method: 'quick' },
    erasePreviousData: false,
  },
  status: {
    observedGeneration: 2,
    kind: 'Disk',
    kernelName: 'sdb',
    links: ['/dev/disk/by-id/wwn-0x5002538e4000abcd', '/dev/disk/by-path/pci-0000:00:17.0-ata-2'],
    capacity: '1000204886016',
    model: 'Samsung SSD 870 EVO 1TB',
    vendor: 'ATA',
    serial: 'S6PTNX0T123456',
    wwn: '0x5002538e4000abcd',
    media: 'ssd',
    rotational: false,
    transport: 'sata',
    readOnly: false,
    filesystem: { type: 'ext4', uuid: '1b4e28ba-2fa1-11d2-883f-0016d3cca427', label: 'stowage' },
    partitionTable: 'gpt',
    partitions: [{ name: 'sdb1', number: 1, size: '1Gi', fsType: 'vfat', label: 'EFI' }],
    mountPoints: ['/var/lib/stowage/disks/node-a-3f9c2e1d'],
    health: {
      verdict: 'Passed',
      temperatureCelsius: 34,
      powerOnHours: 12000,
      reallocatedSectors: 0,
      pendingSectors: 0,
      mediaErrors: 0,
      percentageUsed: 3,
      checkedTime: '2024-05-01T12:00:00Z',
      message: 'SMART overall-health self-assessment test result: PASSED',
    },
    usage: { size: '916Gi', used: '10Gi', available: '906Gi' },
    preparation: { path: '/var/lib/stowage/disks/node-a-3f9c2e1d', filesystem: 'ext4', uuid: '1b4e28ba-2fa1-11d2-883f-0016d3cca427' },
    claim: { pool: 'fast', persistentVolumeName: 'stowage-node-a-3f9c2e1d' },
    lastWipe: {
      volumeUID: '9d1c2b3a-0000-4000-8000-000000000000',
      method: 'quick',
      result: 'Succeeded',
      time: '2024-05-01T12:00:00Z',
      message: 'done',
    },
    lastSeenTime: '2024-05-01T12:00:00Z',
    conditions: [{ ...condition, type: 'Present', reason: 'Seen' }],
  },
};

export const fullPoolVolume: DeepRequired<PoolVolume> = {
  apiVersion: 'stowage.dev/v1alpha1',
  kind: 'PoolVolume',
  metadata: {
    name: 'pvol-0123456789abcdef0123456789abcdef',
    uid: 'u',
    resourceVersion: '9',
    generation: 2,
    creationTimestamp: '2024-05-01T12:00:00Z',
    deletionTimestamp: '2024-05-02T12:00:00Z',
    labels: { 'stowage.dev/node': 'node-a', 'stowage.dev/pool': 'fast' },
    annotations: {},
    finalizers: ['stowage.dev/volume-data'],
    ownerReferences: [],
  },
  spec: {
    pool: 'fast',
    node: 'node-a',
    size: '1073741824',
    volumeMode: 'Filesystem',
    requestName: 'pvc-0b8e0f4a-1111-4222-8333-944455556666',
    noDataCow: false,
    source: { snapshot: 'psnap-0123456789abcdef0123456789abcdef', volume: 'pvol-fedcba9876543210fedcba9876543210' },
  },
  status: {
    observedGeneration: 2,
    location: { pool: 'fast', node: 'node-a' },
    phase: 'Ready',
    path: '/var/lib/stowage/pools/fast/volumes/pvol-0123456789abcdef0123456789abcdef',
    capacity: '1073741824',
    used: '16384',
    conditions: [{ ...condition, reason: 'Realized' }],
  },
};

export const fullPoolSnapshot: DeepRequired<PoolSnapshot> = {
  apiVersion: 'stowage.dev/v1alpha1',
  kind: 'PoolSnapshot',
  metadata: {
    name: 'psnap-0123456789abcdef0123456789abcdef',
    uid: 'u',
    resourceVersion: '9',
    generation: 1,
    creationTimestamp: '2024-05-01T12:00:00Z',
    deletionTimestamp: '2024-05-02T12:00:00Z',
    labels: {
      'stowage.dev/node': 'node-a',
      'stowage.dev/pool': 'fast',
      'stowage.dev/source-volume': 'pvol-0123456789abcdef0123456789abcdef',
    },
    annotations: {},
    finalizers: ['stowage.dev/snapshot-data'],
    ownerReferences: [],
  },
  spec: {
    pool: 'fast',
    node: 'node-a',
    sourceVolume: 'pvol-0123456789abcdef0123456789abcdef',
    volumeMode: 'Filesystem',
    size: '1073741824',
    requestName: 'snapshot-0b8e0f4a-1111-4222-8333-944455556666',
  },
  status: {
    observedGeneration: 1,
    location: { pool: 'fast', node: 'node-a' },
    phase: 'Ready',
    path: '/var/lib/stowage/pools/fast/snapshots/psnap-0123456789abcdef0123456789abcdef',
    creationTime: '2024-05-01T12:00:00Z',
    exclusive: '16384',
    method: 'subvolume-snapshot',
    conditions: [{ ...condition, reason: 'Realized' }],
  },
};

/** The smallest valid StoragePool; tests copy it and break one thing. */
export function minimalPool(): StoragePool {
  return {
    apiVersion: 'stowage.dev/v1alpha1',
    kind: 'StoragePool',
    metadata: { name: 'pool' },
    spec: { mode: 'Dynamic', disks: { selector: { matchLabels: { 'stowage.dev/media': 'ssd' } } } },
  };
}

/** The smallest valid NodeDisk. */
export function minimalDisk(): NodeDisk {
  return {
    apiVersion: 'stowage.dev/v1alpha1',
    kind: 'NodeDisk',
    metadata: { name: 'node-a-1' },
    spec: { nodeName: 'node-a', devicePath: '/dev/disk/by-id/ata-X' },
  };
}

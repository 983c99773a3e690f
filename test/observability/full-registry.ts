/**
 * A registry with every collector Stowage has, as the operator, a node daemon and the CSI driver
 * register them, filled with one sample each so every label shows up in a scrape. The metrics
 * reference (docs/metrics.md) must describe exactly this.
 */
import type { Registry } from 'prom-client';
import { KubeConfig } from '../../src/kube/client-node.js';
import type { NodeDisk } from '../../src/crds/nodedisk.js';
import type { StoragePool } from '../../src/crds/storagepool.js';
import { KubeClient } from '../../src/kube/client.js';
import { AgentMetrics } from '../../src/node/agent/agent-metrics.js';
import { CsiMetrics } from '../../src/csi/csi-metrics.js';
import { registerDiskMetrics } from '../../src/node/agent/disk-metrics.js';
import { registerEngineMetrics } from '../../src/node/engine/engine-metrics.js';
import { registerPoolMetrics } from '../../src/operator/storagepool/pool-metrics.js';
import { registerSnapshotMetrics } from '../../src/operator/storagepool/snapshot-metrics.js';
import { LeaderElectionMetrics } from '../../src/runtime/leader-election.js';
import { Manager } from '../../src/runtime/manager.js';

const now = '2026-01-01T00:00:00Z';
const cond = (type: string, status: 'True' | 'False' | 'Unknown', reason = 'Fixture') => ({
  type,
  status,
  reason,
  message: '',
  lastTransitionTime: now,
});

export const FIXTURE_POOL: StoragePool = {
  apiVersion: 'stowage.dev/v1alpha1',
  kind: 'StoragePool',
  metadata: { name: 'fast' },
  spec: { mode: 'Local', disks: { selector: {} }, capacity: { lowWatermarkPercent: 15 } },
  status: {
    storageClassName: 'fast',
    counts: { nodes: 2, disks: { total: 3, ready: 2, unhealthy: 1, missing: 0 }, volumes: { available: 1, bound: 1, released: 0 } },
    capacity: { raw: '3Ti', usable: '3Ti', allocated: '1Ti', available: '2Ti' },
    conditions: [
      cond('Ready', 'True'),
      cond('DisksHealthy', 'False'),
      cond('ReplicationSatisfiable', 'True'),
      cond('CapacityAvailable', 'True'),
    ],
  },
};

export const FIXTURE_DISK: NodeDisk = {
  apiVersion: 'stowage.dev/v1alpha1',
  kind: 'NodeDisk',
  metadata: { name: 'n1-0a1b2c' },
  spec: {
    nodeName: 'n1',
    devicePath: '/dev/disk/by-id/wwn-0x5000',
    claim: { pool: 'fast', mode: 'Local', volumeMode: 'Filesystem', fsType: 'ext4' },
  },
  status: {
    kernelName: 'sdb',
    capacity: '1Ti',
    model: 'ST1000',
    serial: 'Z1X2',
    media: 'hdd',
    health: { verdict: 'Passed', temperatureCelsius: 38, reallocatedSectors: 2, pendingSectors: 0, mediaErrors: 0 },
    lastWipe: { volumeUID: 'u1', result: 'Succeeded' },
    conditions: [cond('Present', 'True'), cond('Eligible', 'False', 'Claimed'), cond('Healthy', 'True'), cond('Prepared', 'True')],
  },
};

/** A client for an address nothing listens on: collectors need one, the tests never call it. */
export async function offlineClient(): Promise<KubeClient> {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'none', server: 'https://127.0.0.1:9', skipTLSVerify: true }],
    users: [{ name: 'none' }],
    contexts: [{ name: 'none', cluster: 'none', user: 'none' }],
    currentContext: 'none',
  });
  return KubeClient.fromKubeConfig(kc);
}

/** Every collector on one registry, as the operator (Manager + pools), node daemon and CSI driver do. */
export async function fullRegistry(): Promise<Registry> {
  const manager = new Manager({ client: await offlineClient() });
  const registry = manager.registry;
  new LeaderElectionMetrics(registry).master.set({ name: 'stowage-operator' }, 1);
  registerPoolMetrics(registry, () => [FIXTURE_POOL]);
  registerSnapshotMetrics(registry, () => [
    {
      apiVersion: 'stowage.dev/v1alpha1',
      kind: 'PoolSnapshot',
      metadata: { name: 'psnap-1' },
      spec: { pool: 'dyn', node: 'n1', sourceVolume: 'pvol-1', volumeMode: 'Filesystem', size: '1073741824', requestName: 'snapshot-1' },
      status: { phase: 'Ready', exclusive: '1048576' },
    },
  ]);
  registerDiskMetrics(registry, () => [FIXTURE_DISK]);
  const agent = new AgentMetrics(registry, 'n1');
  await agent.timeWipe('quick', async () => undefined);
  await agent.timePreparation('Filesystem', async () => undefined);
  registerEngineMetrics(registry, 'n1', () => [
    {
      pool: 'dyn',
      sizeBytes: 100,
      usedBytes: 40,
      availableBytes: 60,
      volumes: 2,
      devices: [{ device: '/dev/sdc', errors: { read_io: 1 } }],
    },
  ]);
  new CsiMetrics(registry).observe('CreateVolume', 0, 0.01);
  return registry;
}

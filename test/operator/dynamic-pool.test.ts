import { expect } from 'chai';
import { STORAGE_CLASSES } from '../../src/kube/resources.js';
import type { KubeObject, StorageClass } from '../../src/kube/types.js';
import { NODE_DISKS, POOL_VOLUMES, STORAGE_POOLS } from '../../src/crds/resource-types.js';
import type { NodeDisk } from '../../src/crds/nodedisk.js';
import { waitFor } from '../support/cluster.js';
import { PoolWorld, condition } from '../support/pool-world.js';

/**
 * The operator's side of Dynamic pools: the CSI StorageClass, Dynamic claims, replication
 * feasibility per node, capacity from PoolVolumes, and deletion held by volumes. The CSI driver and
 * the btrfs engine are tested in test/csi/ and test/engine/ against real loop devices.
 */
describe('Dynamic pools: operator side (real control plane; agent side played by the protocol double)', function () {
  this.timeout(120_000);
  let world: PoolWorld;
  let name: string;
  const volume = (): string => `${world.prefix}-vol`;

  before(async () => {
    world = await PoolWorld.start({ nodes: 2 });
    const [n1, n2] = world.nodes as [string, string];
    for (const [node, letter] of [
      [n1, 'a'],
      [n1, 'b'],
      [n2, 'a'],
    ] as const) {
      await world.agent.addDisk({ name: `${node}-${letter}`, node, capacity: '100Gi', media: 'nvme' });
      await world.admin.mergePatch(NODE_DISKS, `${node}-${letter}`, { metadata: { labels: { [`test/${world.prefix}`]: 'yes' } } });
    }
    name = await world.applyPool({
      apiVersion: 'stowage.dev/v1alpha1',
      kind: 'StoragePool',
      metadata: { name: `${world.prefix}-mirror` },
      spec: { mode: 'Dynamic', replicated: { size: 2 }, disks: { selector: { matchLabels: { [`test/${world.prefix}`]: 'yes' } } } },
    });
  });
  after(async () => {
    await world.admin.mergePatch(POOL_VOLUMES, volume(), { metadata: { finalizers: null } }).catch(() => undefined);
    await world.admin.delete(POOL_VOLUMES, volume());
    await world?.close();
  });

  it('publishes a CSI StorageClass, claims the disks for Dynamic use, and names the node that cannot hold two copies', async () => {
    // Ready comes with the first prepared disk; the mirror's capacity needs both disks of node1.
    const pool = await world.waitForPool(
      name,
      'both disks of node1 counted',
      (p) =>
        condition(p, 'ReplicationSatisfiable')?.status === 'False' &&
        condition(p, 'Ready')?.status === 'True' &&
        p.status?.capacity?.usable === '90Gi',
    );
    const sc = await world.admin.get<StorageClass>(STORAGE_CLASSES, name);
    expect(sc.provisioner).to.equal('csi.stowage.dev');
    expect(sc.parameters).to.deep.equal({ pool: name });
    expect(sc.allowVolumeExpansion).to.equal(true);
    expect(sc.volumeBindingMode).to.equal('WaitForFirstConsumer');
    const disk = await world.admin.get<NodeDisk & KubeObject>(NODE_DISKS, `${world.nodes[0]}-a`);
    expect(disk.spec.claim).to.deep.include({ pool: name, mode: 'Dynamic' });
    expect(disk.spec.claim?.volumeMode).to.equal(undefined);
    expect(condition(pool, 'ReplicationSatisfiable')?.message).to.contain(`${world.nodes[1]} (1)`).and.not.contain(`${world.nodes[0]} (`);
    // node1: two 100Gi disks mirrored = 100Gi, minus the 10% metadata reserve; node2 cannot mirror.
    expect(pool.status?.capacity).to.deep.equal({ raw: '300Gi', usable: '90Gi', allocated: '0', available: '90Gi' });
    expect(await world.volumesOf(name)).to.deep.equal([], 'Dynamic pools get no local PVs');
  });

  it('counts PoolVolumes as allocated, and deletion waits for them', async () => {
    await world.admin.create(POOL_VOLUMES, {
      apiVersion: 'stowage.dev/v1alpha1',
      kind: 'PoolVolume',
      metadata: { name: volume(), finalizers: ['stowage.dev/volume-data'] },
      spec: { pool: name, node: world.nodes[0], size: '10Gi', volumeMode: 'Filesystem', requestName: 'pvc-test' },
    });
    await world.waitForPool(
      name,
      '10Gi allocated',
      (p) => p.status?.capacity?.allocated === '10Gi' && p.status?.capacity?.available === '80Gi',
    );
    await world.admin.delete(STORAGE_POOLS, name);
    await waitFor('DeletionBlocked naming the volume', async () => {
      const p = await world.getPool(name);
      return condition(p, 'Ready')?.reason === 'DeletionBlocked' && (condition(p, 'Ready')?.message ?? '').includes('volume pvc-test');
    });
    // The node daemon would remove the volume's data and its finalizer; here the test does.
    await world.admin.mergePatch(POOL_VOLUMES, volume(), { metadata: { finalizers: null } });
    await world.admin.delete(POOL_VOLUMES, volume());
    await waitFor('the pool to be gone', async () => !(await world.getPool(name)), 60_000);
    expect(await world.admin.getIfExists(STORAGE_CLASSES, name)).to.equal(undefined);
  });
});

/**
 * The operator's side of snapshots: a Dynamic pool says when the cluster has no snapshot CRDs, gets
 * a VolumeSnapshotClass (driver csi.stowage.dev, the pool's deletion policy) once they are
 * installed, counts the bytes its snapshots hold alone as allocated, and its deletion waits for its
 * snapshots, naming them; the class goes with the pool. Real control plane; the snapshot CRDs are
 * the upstream ones from the workspace's shared data; the agent side is the protocol double.
 */
import { expect } from 'chai';
import { NODE_DISKS, POOL_SNAPSHOTS, POOL_VOLUMES, STORAGE_POOLS } from '../../src/crds/resource-types.js';
import { VOLUME_SNAPSHOT_CLASSES, type VolumeSnapshotClass } from '../../src/operator/storagepool/snapshot-class.js';
import { waitFor } from '../support/cluster.js';
import { PoolWorld, condition } from '../support/pool-world.js';
import { installSnapshotCrds, removeSnapshotCrds } from '../support/snapshot-crds.js';

describe('Dynamic pools: snapshot class, snapshot capacity and deletion (real control plane)', function () {
  this.timeout(180_000);
  let world: PoolWorld;
  let name: string;
  const volume = (): string => `${world.prefix}-vol`;
  const snapshot = (): string => `${world.prefix}-snap`;

  before(async () => {
    world = await PoolWorld.start({ nodes: 1 });
    const node = world.nodes[0];
    await world.agent.addDisk({ name: `${node}-a`, node, capacity: '100Gi', media: 'nvme' });
    await world.admin.mergePatch(NODE_DISKS, `${node}-a`, { metadata: { labels: { [`test/${world.prefix}`]: 'yes' } } });
    name = await world.applyPool({
      apiVersion: 'stowage.dev/v1alpha1',
      kind: 'StoragePool',
      metadata: { name: `${world.prefix}-snaps` },
      spec: { mode: 'Dynamic', disks: { selector: { matchLabels: { [`test/${world.prefix}`]: 'yes' } } } },
    });
  });
  after(async () => {
    for (const [rt, n] of [
      [POOL_SNAPSHOTS, snapshot()],
      [POOL_VOLUMES, volume()],
    ] as const) {
      await world.admin.mergePatch(rt, n, { metadata: { finalizers: null } }).catch(() => undefined);
      await world.admin.delete(rt, n);
    }
    await world?.close();
    await removeSnapshotCrds(world.admin).catch(() => undefined);
  });

  it("says the cluster has no snapshot CRDs, then publishes the pool's VolumeSnapshotClass once they are installed", async () => {
    const missing = await world.waitForPool(
      name,
      'SnapshotsAvailable=False',
      (p) => condition(p, 'SnapshotsAvailable')?.reason === 'SnapshotCRDsMissing',
    );
    expect(condition(missing, 'SnapshotsAvailable')?.status).to.equal('False');
    expect(condition(missing, 'SnapshotsAvailable')?.message).to.include('install the external-snapshotter');

    await installSnapshotCrds(world.admin);
    const ready = await world.waitForPool(name, 'SnapshotsAvailable=True', (p) => condition(p, 'SnapshotsAvailable')?.status === 'True');
    expect(condition(ready, 'SnapshotsAvailable')?.reason).to.equal('ClassReady');
    const vsc = await world.admin.get<VolumeSnapshotClass>(VOLUME_SNAPSHOT_CLASSES, name);
    expect(vsc.driver).to.equal('csi.stowage.dev');
    expect(vsc.deletionPolicy).to.equal('Delete');
    expect(vsc.metadata.ownerReferences?.[0]).to.deep.include({ kind: 'StoragePool', name, uid: ready.metadata.uid });

    await world.admin.mergePatch(STORAGE_POOLS, name, { spec: { snapshots: { deletionPolicy: 'Retain' } } });
    await waitFor(
      "the class to follow the pool's deletion policy",
      async () => (await world.admin.get<VolumeSnapshotClass>(VOLUME_SNAPSHOT_CLASSES, name)).deletionPolicy === 'Retain' || undefined,
    );
  });

  it('counts the bytes a snapshot holds alone as allocated, and deletion waits for the snapshot, naming it; the class goes with the pool', async () => {
    await world.admin.create(POOL_VOLUMES, {
      apiVersion: 'stowage.dev/v1alpha1',
      kind: 'PoolVolume',
      metadata: { name: volume(), finalizers: ['stowage.dev/volume-data'] },
      spec: { pool: name, node: world.nodes[0], size: '10Gi', volumeMode: 'Filesystem', requestName: 'pvc-snap-test' },
    });
    await world.admin.create(POOL_SNAPSHOTS, {
      apiVersion: 'stowage.dev/v1alpha1',
      kind: 'PoolSnapshot',
      metadata: { name: snapshot(), finalizers: ['stowage.dev/snapshot-data'] },
      spec: {
        pool: name,
        node: world.nodes[0],
        sourceVolume: volume(),
        volumeMode: 'Filesystem',
        size: '10Gi',
        requestName: 'snapshot-test',
      },
    });
    // What the node daemon reports once the volume overwrote 5Gi the snapshot still holds.
    await world.admin.mergePatch(
      POOL_SNAPSHOTS,
      snapshot(),
      { status: { phase: 'Ready', exclusive: String(5 * 1024 ** 3) } },
      { subresource: 'status' },
    );
    // 100Gi minus the 10% metadata reserve = 90Gi usable; 10Gi volume + 5Gi held by the snapshot.
    await world.waitForPool(
      name,
      '15Gi allocated',
      (p) => p.status?.capacity?.allocated === '15Gi' && p.status?.capacity?.available === '75Gi',
    );

    // The volume goes; the snapshot alone still holds the pool.
    await world.admin.mergePatch(POOL_VOLUMES, volume(), { metadata: { finalizers: null } });
    await world.admin.delete(POOL_VOLUMES, volume());
    await world.admin.delete(STORAGE_POOLS, name);
    await waitFor('DeletionBlocked naming the snapshot', async () => {
      const p = await world.getPool(name);
      return (
        (condition(p, 'Ready')?.reason === 'DeletionBlocked' &&
          (condition(p, 'Ready')?.message ?? '').includes('snapshot snapshot-test')) ||
        undefined
      );
    });
    expect(await world.admin.getIfExists(VOLUME_SNAPSHOT_CLASSES, name), 'the class stays while snapshots exist').to.not.equal(undefined);
    // The node daemon would remove the snapshot's data and its finalizer; here the test does.
    await world.admin.mergePatch(POOL_SNAPSHOTS, snapshot(), { metadata: { finalizers: null } });
    await world.admin.delete(POOL_SNAPSHOTS, snapshot());
    await waitFor('the pool to be gone', async () => !(await world.getPool(name)) || undefined, 60_000);
    expect(await world.admin.getIfExists(VOLUME_SNAPSHOT_CLASSES, name)).to.equal(undefined);
  });
});

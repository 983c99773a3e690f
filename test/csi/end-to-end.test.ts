/**
 * End to end on the real control plane: a PVC of a Dynamic class is provisioned the way the
 * external-provisioner does it (the scheduler picks the node, the test calls CreateVolume for that
 * node and creates the PV), the PV controller binds it, the node stages and publishes it as kubelet
 * would, and the data survives unpublish/unstage/stage/publish and a restart of the node daemon
 * (new engine object, new realizer, new socket: nothing remembered but what the kernel and the API
 * hold). Expansion raises the quota; delete frees the space. A replicated.size 2 pool keeps data
 * readable with a disk gone, reports Degraded, and heals when a new disk joins.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'chai';
import { NAMESPACES, PERSISTENT_VOLUMES, PERSISTENT_VOLUME_CLAIMS, PODS, STORAGE_CLASSES } from '../../src/kube/resources.js';
import { POOL_VOLUMES } from '../../src/crds/resource-types.js';
import type { PoolVolume } from '../../src/crds/poolvolume.js';
import { DRIVER_NAME, TOPOLOGY_KEY } from '../../src/csi/identity.js';
import { run } from '../../src/host/command.js';
import { mountAt } from '../../src/host/mounts.js';
import { sharedControlPlane } from '../cluster/shared.js';
import { deleteNode, registerReadyNode } from '../cluster/nodes.js';
import { waitFor } from '../support/cluster.js';
import { DynamicPoolFixture, call } from './fixture.js';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const mountCap = { mount: { fs_type: '' }, access_mode: { mode: 'SINGLE_NODE_WRITER' } };

/** kubelet's part: stage then publish, with the paths kubelet would use, under the test's temp dir. */
async function attach(fx: DynamicPoolFixture, volumeId: string, podUid: string): Promise<{ staging: string; target: string }> {
  const staging = join(fx.dir, 'pods', 'plugins', 'kubernetes.io', 'csi', 'pv', volumeId, 'globalmount');
  const target = join(fx.dir, 'pods', podUid, 'volumes', 'kubernetes.io~csi', 'data', 'mount');
  await call(fx.nodeClient, 'NodeStageVolume', { volume_id: volumeId, staging_target_path: staging, volume_capability: mountCap });
  await call(fx.nodeClient, 'NodePublishVolume', {
    volume_id: volumeId,
    staging_target_path: staging,
    target_path: target,
    volume_capability: mountCap,
  });
  return { staging, target };
}

async function detach(fx: DynamicPoolFixture, volumeId: string, p: { staging: string; target: string }): Promise<void> {
  await call(fx.nodeClient, 'NodeUnpublishVolume', { volume_id: volumeId, target_path: p.target });
  await call(fx.nodeClient, 'NodeUnstageVolume', { volume_id: volumeId, staging_target_path: p.staging });
}

async function restartNodeDaemon(fx: DynamicPoolFixture): Promise<void> {
  await fx.stopNodeDaemon();
  fx.freshEngine();
  await fx.syncDisks();
  await fx.startNodeDaemon();
}

describe('CSI end to end on the real control plane', function () {
  this.timeout(300_000);

  describe('a PVC of a Dynamic class', () => {
    const fx = new DynamicPoolFixture();
    let namespace = '';
    let scName = '';

    before(async () => {
      await fx.start({ diskSizes: [2 * GiB] });
      const cp = await sharedControlPlane();
      await registerReadyNode(cp, fx.node, { [TOPOLOGY_KEY]: fx.node });
      namespace = fx.pool;
      scName = fx.pool;
      await fx.client.create(NAMESPACES, { metadata: { name: namespace } });
      // The operator's part (issue 3): the pool's StorageClass.
      await fx.client.create(STORAGE_CLASSES, {
        metadata: { name: scName },
        provisioner: DRIVER_NAME,
        parameters: { pool: fx.pool },
        volumeBindingMode: 'WaitForFirstConsumer',
        allowVolumeExpansion: true,
        reclaimPolicy: 'Delete',
      } as any);
    });

    after(async () => {
      const cp = await sharedControlPlane();
      if (namespace) await fx.client.delete(NAMESPACES, namespace).catch(() => undefined);
      if (scName) await fx.client.delete(STORAGE_CLASSES, scName).catch(() => undefined);
      for (const pv of (await fx.client.list(PERSISTENT_VOLUMES)).items.filter((p: any) => p.spec?.storageClassName === scName)) {
        await fx.client.delete(PERSISTENT_VOLUMES, pv.metadata.name!).catch(() => undefined);
      }
      await deleteNode(cp, fx.node).catch(() => undefined);
      await fx.cleanup();
    });

    it("is provisioned on the scheduler's node, bound, staged, published, survives a daemon restart, expands and frees its space", async () => {
      await fx.client.create(PERSISTENT_VOLUME_CLAIMS, {
        metadata: { name: 'data', namespace },
        spec: { accessModes: ['ReadWriteOnce'], storageClassName: scName, resources: { requests: { storage: '64Mi' } } },
      });
      await fx.client.create(PODS, {
        metadata: { name: 'app', namespace },
        spec: {
          automountServiceAccountToken: false,
          containers: [{ name: 'app', image: 'busybox', volumeMounts: [{ name: 'data', mountPath: '/data' }] }],
          volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'data' } }],
        },
      });
      // The scheduler picks the node and says so on the claim, as for any WaitForFirstConsumer class.
      const selected = await waitFor(
        'the scheduler to select a node for the claim',
        async () => {
          const pvc: any = await fx.client.get(PERSISTENT_VOLUME_CLAIMS, 'data', namespace);
          return pvc.metadata.annotations?.['volume.kubernetes.io/selected-node'];
        },
        60_000,
      );
      expect(selected).to.equal(fx.node);
      const pvc: any = await fx.client.get(PERSISTENT_VOLUME_CLAIMS, 'data', namespace);

      // external-provisioner: CreateVolume named after the claim, pinned to the selected node.
      const topology = { segments: { [TOPOLOGY_KEY]: selected } };
      const created = (
        await call(fx.controllerClient, 'CreateVolume', {
          name: `pvc-${pvc.metadata.uid}`,
          capacity_range: { required_bytes: String(64 * MiB) },
          volume_capabilities: [mountCap],
          parameters: { pool: fx.pool },
          accessibility_requirements: { requisite: [topology], preferred: [topology] },
        })
      ).volume;
      expect(created.accessible_topology[0].segments[TOPOLOGY_KEY]).to.equal(selected);
      const pvName = `pvc-${pvc.metadata.uid}`;
      await fx.client.create(PERSISTENT_VOLUMES, {
        metadata: { name: pvName, annotations: { 'pv.kubernetes.io/provisioned-by': DRIVER_NAME } },
        spec: {
          capacity: { storage: created.capacity_bytes },
          accessModes: ['ReadWriteOnce'],
          persistentVolumeReclaimPolicy: 'Delete',
          storageClassName: scName,
          claimRef: { apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace, name: 'data', uid: pvc.metadata.uid },
          csi: { driver: DRIVER_NAME, volumeHandle: created.volume_id, volumeAttributes: created.volume_context },
          nodeAffinity: {
            required: { nodeSelectorTerms: [{ matchExpressions: [{ key: TOPOLOGY_KEY, operator: 'In', values: [selected] }] }] },
          },
        },
      } as any);
      await waitFor(
        'the PV controller to bind the claim',
        async () => ((await fx.client.get(PERSISTENT_VOLUME_CLAIMS, 'data', namespace)) as any).status?.phase === 'Bound',
        60_000,
      );
      await waitFor(
        'the scheduler to bind the pod to the node',
        async () => ((await fx.client.get(PODS, 'app', namespace)) as any).spec?.nodeName === selected,
        60_000,
      );

      // kubelet on the pod's node.
      const volumeId = created.volume_id;
      let paths = await attach(fx, volumeId, 'pod-uid-1');
      await writeFile(join(paths.target, 'record.txt'), 'written before anything');
      await detach(fx, volumeId, paths);
      paths = await attach(fx, volumeId, 'pod-uid-1');
      expect(await readFile(join(paths.target, 'record.txt'), 'utf8')).to.equal('written before anything');

      // The node daemon restarts while the volume is published: the mounts stay; every call still works.
      await restartNodeDaemon(fx);
      expect(await readFile(join(paths.target, 'record.txt'), 'utf8')).to.equal('written before anything');
      await call(fx.nodeClient, 'NodePublishVolume', {
        volume_id: volumeId,
        staging_target_path: paths.staging,
        target_path: paths.target,
        volume_capability: mountCap,
      });
      await detach(fx, volumeId, paths);
      await restartNodeDaemon(fx);
      paths = await attach(fx, volumeId, 'pod-uid-2');
      expect(await readFile(join(paths.target, 'record.txt'), 'utf8')).to.equal('written before anything');

      // Expansion: the external-resizer's ControllerExpandVolume, then kubelet's NodeExpandVolume.
      const grown = await call(fx.controllerClient, 'ControllerExpandVolume', {
        volume_id: volumeId,
        capacity_range: { required_bytes: String(128 * MiB) },
        volume_capability: mountCap,
      });
      expect(grown.capacity_bytes).to.equal(String(128 * MiB));
      await call(fx.nodeClient, 'NodeExpandVolume', {
        volume_id: volumeId,
        volume_path: paths.target,
        capacity_range: { required_bytes: String(128 * MiB) },
      });
      await run('dd', ['if=/dev/zero', `of=${join(paths.target, 'big')}`, 'bs=1M', 'count=96', 'conv=fsync']);
      const stats = await call(fx.nodeClient, 'NodeGetVolumeStats', { volume_id: volumeId, volume_path: paths.target });
      expect(stats.usage.find((u: any) => u.unit === 'BYTES').total).to.equal(String(128 * MiB));

      // Delete: unpublish, the claim goes, the provisioner calls DeleteVolume, the space is free again.
      await detach(fx, volumeId, paths);
      const capacity = async () =>
        BigInt(
          (await call(fx.controllerClient, 'GetCapacity', { parameters: { pool: fx.pool }, accessible_topology: topology }))
            .available_capacity,
        );
      const before = await capacity();
      await call(fx.controllerClient, 'DeleteVolume', { volume_id: volumeId });
      expect(await capacity()).to.equal(before + BigInt(128 * MiB));
      expect(await fx.client.getIfExists(POOL_VOLUMES, volumeId)).to.equal(undefined);
      const usedAfter = (await run('btrfs', ['filesystem', 'du', '-s', '--raw', fx.engine.mountPointOf(fx.pool)])).trim();
      expect(usedAfter).to.not.contain('big');
    });
  });

  describe('replicated.size 2 over two loop devices', () => {
    const fx = new DynamicPoolFixture();
    before(async () => {
      await fx.start({ diskSizes: [GiB, GiB], copies: 2 });
    });
    after(async () => {
      await fx.cleanup();
    });

    const degradedOf = async (id: string) =>
      ((await fx.client.get<PoolVolume>(POOL_VOLUMES, id)).status?.conditions ?? []).find((c) => c.type === 'Degraded');

    it('keeps data readable with a disk gone, reports Degraded, and heals when a new disk joins', async () => {
      const profile = await run('btrfs', ['filesystem', 'df', fx.engine.mountPointOf(fx.pool)]);
      expect(profile)
        .to.match(/Data, RAID1/)
        .and.to.match(/Metadata, RAID1/);
      const v = (
        await call(fx.controllerClient, 'CreateVolume', {
          name: 'pvc-mirrored',
          capacity_range: { required_bytes: String(64 * MiB) },
          volume_capabilities: [mountCap],
          parameters: { pool: fx.pool },
        })
      ).volume;
      let paths = await attach(fx, v.volume_id, 'pod-m1');
      await run('dd', ['if=/dev/urandom', `of=${join(paths.target, 'payload')}`, 'bs=1M', 'count=16', 'conv=fsync']);
      const checksum = (await run('sha256sum', [join(paths.target, 'payload')])).split(' ')[0];
      await detach(fx, v.volume_id, paths);
      expect((await degradedOf(v.volume_id))?.status).to.equal('False');

      // The node goes down, one disk does not come back.
      await fx.stopNodeDaemon();
      await run('umount', [fx.engine.mountPointOf(fx.pool)]);
      await fx.detachDisk(1);
      fx.freshEngine();
      const outcomes = await fx.syncDisks();
      expect(outcomes.get(fx.disks[0].name), JSON.stringify(outcomes.get(fx.disks[0].name))).to.deep.include({
        prepared: true,
        reason: 'PoolDegraded',
      });
      expect(outcomes.get(fx.disks[1].name)).to.deep.include({ prepared: false, reason: 'DiskMissing' });
      expect((await mountAt(fx.engine.mountPointOf(fx.pool)))?.superOptions).to.include('degraded');
      await fx.startNodeDaemon();
      await waitFor('the volume to report Degraded', async () => (await degradedOf(v.volume_id))?.status === 'True', 30_000);
      paths = await attach(fx, v.volume_id, 'pod-m2');
      expect((await run('sha256sum', [join(paths.target, 'payload')])).split(' ')[0]).to.equal(checksum);
      const stats = await call(fx.nodeClient, 'NodeGetVolumeStats', { volume_id: v.volume_id, volume_path: paths.target });
      expect(stats.volume_condition.abnormal).to.equal(true);

      // A new disk joins the pool on this node: the missing member is rebuilt onto it.
      await fx.addDisk(GiB);
      const healed = await fx.syncDisks();
      expect(healed.get(fx.disks[2].name), JSON.stringify(healed.get(fx.disks[2].name))).to.deep.include({
        prepared: true,
        reason: 'Prepared',
      });
      await waitFor('the volume to report healthy again', async () => (await degradedOf(v.volume_id))?.status === 'False', 30_000);
      const after = await call(fx.nodeClient, 'NodeGetVolumeStats', { volume_id: v.volume_id, volume_path: paths.target });
      expect(after.volume_condition.abnormal).to.equal(false);
      const df = await run('btrfs', ['filesystem', 'df', fx.engine.mountPointOf(fx.pool)]);
      // GlobalReserve is always reported as single; data, metadata and system chunks must all be mirrored again.
      expect(df, 'no chunk left in a non-redundant profile').to.not.match(/^(Data|Metadata|System), (single|DUP)/m);
      expect((await run('sha256sum', [join(paths.target, 'payload')])).split(' ')[0]).to.equal(checksum);
      await detach(fx, v.volume_id, paths);
    });
  });
});

// Snapshots, restores and clones end to end through the real kubelet (issue 17): a pod writes to a
// Dynamic-pool volume, the test takes a VolumeSnapshot (playing the snapshot-controller and the
// csi-snapshotter from their source, snapshot-sidecars.ts), the pod overwrites the data, a claim
// restored from the snapshot is mounted by a second pod that reads the original content, and a clone
// of the live claim reads the new content; writes do not leak between any of them. The same for Block
// claims, read and written as raw devices by the pods. kubelet stages and publishes everything itself.

import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { expect } from 'chai';
import type { KubeClient } from '../../src/kube/client.js';
import { CSI_DRIVERS, NAMESPACES, PERSISTENT_VOLUMES, PERSISTENT_VOLUME_CLAIMS, PODS, STORAGE_CLASSES } from '../../src/kube/resources.js';
import { DRIVER_NAME } from '../../src/csi/identity.js';
import { startCsiNodeServer } from '../../src/csi/node-service.js';
import { startRegistrationServer } from '../../src/csi/registration.js';
import { STORAGE_POOLS } from '../../src/crds/resource-types.js';
import { withDefaults } from '../../src/crds/validation.js';
import type { StoragePool } from '../../src/crds/storagepool.js';
import { startPoolVolumeRealizer } from '../../src/node/engine/volume-realizer.js';
import { startPoolSnapshotRealizer } from '../../src/node/engine/snapshot-realizer.js';
import { renderSnapshotClass, VOLUME_SNAPSHOT_CLASSES } from '../../src/operator/storagepool/snapshot-class.js';
import type { ControlPlane } from '../cluster/control-plane.js';
import type { KubeletNode } from '../cluster/kubelet-node.js';
import { sharedKubeletNode } from '../cluster/kubelet-shared.js';
import { adminClient, createNamespace, uniqueName, waitFor } from '../support/cluster.js';
import { installSnapshotCrds, removeSnapshotCrds } from '../support/snapshot-crds.js';
import { DynamicPoolFixture } from '../csi/fixture.js';
import { deleteClaimVolume, provisionClaim } from './csi-sidecars.js';
import { deleteSnapshot, takeSnapshot, VOLUME_SNAPSHOT_CONTENTS, VOLUME_SNAPSHOTS } from './snapshot-sidecars.js';
import { busyboxPod, deletePodAndWait, waitPodPhase } from './pods.js';

const MiB = 1024 * 1024;
const DEVICE = '/dev/xvda';

/** The fixture's pool on the real kubelet node, with the node daemon's snapshot realizer as `stowage node` runs it. */
class KubeletSnapshotFixture extends DynamicPoolFixture {
  override readonly node: string;
  private registration?: { stop(): Promise<void> };

  constructor(private readonly kubelet: KubeletNode) {
    super();
    this.node = kubelet.nodeName;
  }

  override async startNodeDaemon(): Promise<void> {
    const pluginDir = path.join(this.kubelet.rootDir, 'plugins', DRIVER_NAME);
    await fsp.mkdir(pluginDir, { recursive: true });
    const endpoint = path.join(pluginDir, 'csi.sock');
    this.realizer = await startPoolVolumeRealizer({ client: this.client, engine: this.engine, nodeName: this.node });
    this.snapshotRealizer = await startPoolSnapshotRealizer({ client: this.client, engine: this.engine, nodeName: this.node });
    this.nodeServer = await startCsiNodeServer({
      endpoint: `unix://${endpoint}`,
      nodeName: this.node,
      engine: this.engine,
      client: this.client,
      kubeletDir: this.kubelet.rootDir,
    });
    this.registration = await startRegistrationServer({ dir: path.join(this.kubelet.rootDir, 'plugins_registry'), endpoint });
  }

  override async stopNodeDaemon(): Promise<void> {
    await this.registration?.stop();
    this.registration = undefined;
    await super.stopNodeDaemon();
  }
}

describe('kubelet node: snapshots, restores and clones of Dynamic-pool volumes', function () {
  this.timeout(600_000);
  let cp: ControlPlane;
  let client: KubeClient;
  let node: KubeletNode;
  let fx: KubeletSnapshotFixture;
  let ns: string;
  let storageClass: string;
  let snapshotClass: string;
  let createdDriver = false;
  const pvs: { pv: string; volumeId: string }[] = [];
  const snapshots: string[] = [];
  let restoredFsPod = '';

  const claimSpec = (name: string, size: string, extra: Record<string, unknown> = {}) => ({
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name, namespace: ns },
    spec: { accessModes: ['ReadWriteOnce'], storageClassName: storageClass, resources: { requests: { storage: size } }, ...extra },
  });

  /** A pod on the real node with `claim` mounted at /data (or, for Block, as the device DEVICE), running `script`. */
  async function runPod(claim: string, script: string, block = false): Promise<string> {
    const name = uniqueName('snap-pod');
    const pod = busyboxPod({
      name,
      namespace: ns,
      node,
      restartPolicy: 'Always',
      script,
      volumes: [{ name: 'data', persistentVolumeClaim: { claimName: claim } }],
      volumeMounts: block ? [] : [{ name: 'data', mountPath: '/data' }],
    });
    if (block) pod.spec.containers[0].volumeDevices = [{ name: 'data', devicePath: DEVICE }];
    await client.create(PODS, pod);
    return name;
  }

  /** A claim (optionally with a dataSource) provisioned the way external-provisioner does, and a pod using it. */
  async function claimWithPod(
    claim: string,
    size: string,
    script: string,
    opts: { block?: boolean; dataSource?: unknown } = {},
  ): Promise<string> {
    await client.create(
      PERSISTENT_VOLUME_CLAIMS,
      claimSpec(claim, size, {
        ...(opts.block ? { volumeMode: 'Block' } : {}),
        ...(opts.dataSource ? { dataSource: opts.dataSource } : {}),
      }) as any,
    );
    const pod = await runPod(claim, script, opts.block);
    const { pvName, volumeId } = await provisionClaim({ client, controller: fx.controllerClient, namespace: ns, claim, pool: fx.pool });
    pvs.push({ pv: pvName, volumeId });
    await waitPodPhase(client, ns, pod, ['Running']);
    return pod;
  }

  const exec = async (pod: string, script: string): Promise<string> => {
    const res = await cp.kubectl(['exec', '-n', ns, pod, '--', 'sh', '-c', script]);
    if (res.code !== 0) throw new Error(`kubectl exec ${pod}: ${res.stdout}${res.stderr}`);
    return res.stdout;
  };
  /** What a Block pod's device holds at its start: the marker written by `writeBlock`. */
  const readBlock = (pod: string): Promise<string> => exec(pod, `dd if=${DEVICE} bs=32 count=1 2>/dev/null | tr -d '\\0'`);
  const writeBlock = (pod: string, text: string): Promise<string> =>
    exec(pod, `printf '%-32s' '${text}' | dd of=${DEVICE} bs=32 count=1 conv=notrunc,fsync 2>/dev/null; sync`);
  const snapshotSource = (name: string) => ({ apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name });
  const claimSource = (name: string) => ({ kind: 'PersistentVolumeClaim', name });

  before(async function () {
    ({ cp, client } = await adminClient());
    node = await sharedKubeletNode();
    await installSnapshotCrds(client);
    ns = await createNamespace(client, 'kubelet-snap');
    await cp.waitForDefaultServiceAccount(ns);
    fx = new KubeletSnapshotFixture(node);
    await fx.start({ diskSizes: [1024 * MiB] });
    if (!(await client.getIfExists(CSI_DRIVERS, DRIVER_NAME))) {
      await client.create(CSI_DRIVERS, {
        apiVersion: 'storage.k8s.io/v1',
        kind: 'CSIDriver',
        metadata: { name: DRIVER_NAME },
        spec: { attachRequired: false, podInfoOnMount: true, volumeLifecycleModes: ['Persistent'] },
      } as any);
      createdDriver = true;
    }
    storageClass = uniqueName('snap-sc');
    await client.create(STORAGE_CLASSES, {
      apiVersion: 'storage.k8s.io/v1',
      kind: 'StorageClass',
      metadata: { name: storageClass },
      provisioner: DRIVER_NAME,
      parameters: { pool: fx.pool },
      reclaimPolicy: 'Delete',
      volumeBindingMode: 'WaitForFirstConsumer',
    } as any);
    // The class the operator renders for the pool (the operator itself is not running in this test).
    const pool = withDefaults(await client.get<StoragePool & { metadata: { uid: string } }>(STORAGE_POOLS, fx.pool)) as StoragePool;
    const vsc = renderSnapshotClass(pool);
    snapshotClass = vsc.metadata.name!;
    await client.create(VOLUME_SNAPSHOT_CLASSES, vsc);
  });

  after(async function () {
    if (!client) return;
    if (ns) {
      for (const p of (await client.list<any>(PODS, { namespace: ns }).catch(() => ({ items: [] as any[] }))).items) {
        await deletePodAndWait(client, ns, p.metadata.name).catch(() => undefined);
      }
      for (const s of snapshots)
        await deleteSnapshot({ client, controller: fx.controllerClient, namespace: ns, name: s }).catch(() => undefined);
      // The played provisioner deletes what the last test left (a failed test leaves more) ...
      for (const c of (await client.list<any>(PERSISTENT_VOLUME_CLAIMS, { namespace: ns }).catch(() => ({ items: [] as any[] }))).items) {
        await deleteClaimVolume({
          client,
          controller: fx.controllerClient,
          namespace: ns,
          claim: c.metadata.name,
          timeoutMs: 60_000,
        }).catch(() => undefined);
      }
      // ... and whatever it could not is forced away; the fixture's cleanup removes the PoolVolumes.
      for (const c of (await client.list<any>(PERSISTENT_VOLUME_CLAIMS, { namespace: ns }).catch(() => ({ items: [] as any[] }))).items) {
        await client
          .mergePatch(PERSISTENT_VOLUME_CLAIMS, c.metadata.name, { metadata: { finalizers: null } }, { namespace: ns })
          .catch(() => undefined);
        await client.delete(PERSISTENT_VOLUME_CLAIMS, c.metadata.name, { namespace: ns }).catch(() => undefined);
      }
      await client.delete(NAMESPACES, ns).catch(() => undefined);
    }
    for (const { pv } of pvs) await client.delete(PERSISTENT_VOLUMES, pv).catch(() => undefined);
    await fx?.cleanup();
    if (snapshotClass) await client.delete(VOLUME_SNAPSHOT_CLASSES, snapshotClass).catch(() => undefined);
    if (storageClass) await client.delete(STORAGE_CLASSES, storageClass).catch(() => undefined);
    if (createdDriver) await client.delete(CSI_DRIVERS, DRIVER_NAME).catch(() => undefined);
    await removeSnapshotCrds(client).catch(() => undefined);
  });

  it('Filesystem: a restore reads the content at snapshot time, a clone the content now, and no write leaks between them', async function () {
    const source = await claimWithPod('src', '64Mi', 'trap "exit 0" TERM; echo original > /data/file; sync; while true; do sleep 1; done');
    // A poll: a failed try means 'not yet'; waitFor reports the last state if it never comes.
    await waitFor(
      'the pod to write its file',
      async () => (await exec(source, 'cat /data/file').catch(() => '')) === 'original\n',
      60_000,
      250,
    );
    const taken = await takeSnapshot({
      client,
      controller: fx.controllerClient,
      namespace: ns,
      name: 'snap-fs',
      pvc: 'src',
      className: snapshotClass,
    });
    snapshots.push('snap-fs');
    expect((await client.get<any>(VOLUME_SNAPSHOTS, 'snap-fs', ns)).status).to.deep.include({
      readyToUse: true,
      boundVolumeSnapshotContentName: taken.content,
      restoreSize: String(64 * MiB),
    });
    await exec(source, 'echo changed > /data/file; sync');

    const restored = await claimWithPod('restored', '64Mi', 'trap "exit 0" TERM; while true; do sleep 1; done', {
      dataSource: snapshotSource('snap-fs'),
    });
    expect(await exec(restored, 'cat /data/file')).to.equal('original\n');
    restoredFsPod = restored;
    const clone = await claimWithPod('clone', '64Mi', 'trap "exit 0" TERM; while true; do sleep 1; done', {
      dataSource: claimSource('src'),
    });
    expect(await exec(clone, 'cat /data/file')).to.equal('changed\n');
    // external-provisioner protects a clone's source claim until the clone is no longer Pending.
    expect((await client.get<any>(PERSISTENT_VOLUME_CLAIMS, 'src', ns)).metadata.finalizers).to.include(
      'provisioner.storage.kubernetes.io/cloning-protection',
    );

    await exec(restored, 'echo restore-wrote > /data/file; sync');
    await exec(clone, 'echo clone-wrote > /data/file; sync');
    await exec(source, 'echo source-wrote > /data/file; sync');
    expect(await exec(restored, 'cat /data/file')).to.equal('restore-wrote\n');
    expect(await exec(clone, 'cat /data/file')).to.equal('clone-wrote\n');
    expect(await exec(source, 'cat /data/file')).to.equal('source-wrote\n');
  });

  it('Block: the same with raw devices the pods read and write', async function () {
    const source = await claimWithPod('blk-src', '16Mi', 'trap "exit 0" TERM; while true; do sleep 1; done', { block: true });
    await writeBlock(source, 'block-original');
    expect((await readBlock(source)).trim()).to.equal('block-original');
    await takeSnapshot({
      client,
      controller: fx.controllerClient,
      namespace: ns,
      name: 'snap-blk',
      pvc: 'blk-src',
      className: snapshotClass,
    });
    snapshots.push('snap-blk');
    await writeBlock(source, 'block-changed');

    const restored = await claimWithPod('blk-restored', '16Mi', 'trap "exit 0" TERM; while true; do sleep 1; done', {
      block: true,
      dataSource: snapshotSource('snap-blk'),
    });
    expect((await readBlock(restored)).trim()).to.equal('block-original');
    const clone = await claimWithPod('blk-clone', '16Mi', 'trap "exit 0" TERM; while true; do sleep 1; done', {
      block: true,
      dataSource: claimSource('blk-src'),
    });
    expect((await readBlock(clone)).trim()).to.equal('block-changed');

    await writeBlock(restored, 'restore-wrote');
    await writeBlock(clone, 'clone-wrote');
    expect((await readBlock(source)).trim()).to.equal('block-changed');
    expect((await readBlock(restored)).trim()).to.equal('restore-wrote');
    expect((await readBlock(clone)).trim()).to.equal('clone-wrote');
  });

  it('deleting a VolumeSnapshot deletes its data through DeleteSnapshot; the volume restored from it stays readable', async function () {
    const handle: string = (await client.get<any>(VOLUME_SNAPSHOTS, 'snap-fs', ns)).status.boundVolumeSnapshotContentName;
    const content = await client.get<any>(VOLUME_SNAPSHOT_CONTENTS, handle);
    await deleteSnapshot({ client, controller: fx.controllerClient, namespace: ns, name: 'snap-fs' });
    snapshots.splice(snapshots.indexOf('snap-fs'), 1);
    expect((await fx.poolSnapshots()).map((p) => p.metadata.name)).to.not.include(content.status.snapshotHandle);
    expect(await client.getIfExists(VOLUME_SNAPSHOT_CONTENTS, handle)).to.equal(undefined);
    expect(await exec(restoredFsPod, 'cat /data/file')).to.equal('restore-wrote\n');
  });

  it('deleting the claims deletes their volumes through DeleteVolume: sources, clones and restores alike', async function () {
    for (const p of (await client.list<any>(PODS, { namespace: ns })).items) await deletePodAndWait(client, ns, p.metadata.name);
    for (const s of [...snapshots]) {
      await deleteSnapshot({ client, controller: fx.controllerClient, namespace: ns, name: s });
      snapshots.splice(snapshots.indexOf(s), 1);
    }
    // Sources first: the source of the clones lets go once its clones are Bound.
    for (const claim of ['src', 'blk-src', 'restored', 'clone', 'blk-restored', 'blk-clone']) {
      const { pvName } = await deleteClaimVolume({ client, controller: fx.controllerClient, namespace: ns, claim });
      expect(await client.getIfExists(PERSISTENT_VOLUMES, pvName), `PV ${pvName} of ${claim}`).to.equal(undefined);
    }
    expect((await client.list<any>(PERSISTENT_VOLUME_CLAIMS, { namespace: ns })).items).to.deep.equal([]);
    expect(await fx.poolVolumes()).to.deep.equal([]);
  });
});

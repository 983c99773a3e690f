// Dynamic pools through the real kubelet (issue 8): the node daemon's CSI endpoint and its plugin-
// registration socket live under /var/lib/kubelet, kubelet registers csi.stowage.dev (CSINode), and a
// pod using a Dynamic-pool claim gets its volume from kubelet's own NodeStage/NodePublish calls —
// surviving a node-daemon restart and a pod restart, growing when the claim grows, and unpublished and
// unstaged when the pod goes. The pool side (real loop devices, real btrfs, the real CSI controller and
// node service) is test/csi/fixture.ts; the sidecars whose images cannot be pulled here (csi-provisioner,
// csi-resizer) are played from their source in csi-sidecars.ts and resizer-play.ts.

import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { expect } from 'chai';
import type { KubeClient } from '../../src/kube/client.js';
import {
  CSI_DRIVERS,
  EVENTS,
  NAMESPACES,
  PERSISTENT_VOLUMES,
  PERSISTENT_VOLUME_CLAIMS,
  PODS,
  STORAGE_CLASSES,
} from '../../src/kube/resources.js';
import { DRIVER_NAME, TOPOLOGY_KEY } from '../../src/csi/identity.js';
import { startCsiNodeServer } from '../../src/csi/node-service.js';
import { startRegistrationServer } from '../../src/csi/registration.js';
import { POOL_VOLUMES } from '../../src/crds/resource-types.js';
import { startPoolVolumeRealizer } from '../../src/node/engine/volume-realizer.js';
import type { ControlPlane } from '../cluster/control-plane.js';
import type { KubeletNode } from '../cluster/kubelet-node.js';
import { sharedKubeletNode } from '../cluster/kubelet-shared.js';
import { adminClient, createNamespace, uniqueName, waitFor } from '../support/cluster.js';
import { DynamicPoolFixture } from '../csi/fixture.js';
import { deleteClaimVolume, deleteReleasedVolume, expandClaim, provisionClaim } from './csi-sidecars.js';
import { busyboxPod, deletePodAndWait, podLog, podMounts, waitPodPhase } from './pods.js';

const CSI_NODES = { group: 'storage.k8s.io', version: 'v1', plural: 'csinodes', kind: 'CSINode', namespaced: false } as const;
const MiB = 1024 * 1024;

/**
 * The fixture's pool on the real kubelet node: the node daemon's CSI endpoint and registration socket
 * are where kubelet looks for them under /var/lib/kubelet, served by the product's own sockets (which
 * accept the socket-path `:authority` kubelet 1.20 sends; see src/csi/authority-relay.ts).
 */
class KubeletPoolFixture extends DynamicPoolFixture {
  override readonly node: string;
  readonly pluginDir: string;
  private registration?: { stop(): Promise<void> };

  constructor(private readonly kubelet: KubeletNode) {
    super();
    this.node = kubelet.nodeName;
    this.pluginDir = path.join(kubelet.rootDir, 'plugins', DRIVER_NAME);
  }

  override async startNodeDaemon(): Promise<void> {
    await fsp.mkdir(this.pluginDir, { recursive: true });
    const kubeletEndpoint = path.join(this.pluginDir, 'csi.sock');
    this.realizer = await startPoolVolumeRealizer({ client: this.client, engine: this.engine, nodeName: this.node });
    // Confined to kubelet's directory, as `stowage node --kubelet-dir`: real kubelet's paths must pass.
    this.nodeServer = await startCsiNodeServer({
      endpoint: `unix://${kubeletEndpoint}`,
      nodeName: this.node,
      engine: this.engine,
      client: this.client,
      kubeletDir: this.kubelet.rootDir,
    });
    // Last: kubelet's plugin watcher acts as soon as this socket appears.
    this.registration = await startRegistrationServer({
      dir: path.join(this.kubelet.rootDir, 'plugins_registry'),
      endpoint: kubeletEndpoint,
    });
  }

  override async stopNodeDaemon(): Promise<void> {
    await this.registration?.stop();
    this.registration = undefined;
    await super.stopNodeDaemon();
  }
}

describe('kubelet node: a Dynamic-pool volume mounted by the real kubelet', function () {
  this.timeout(300_000);
  let cp: ControlPlane;
  let client: KubeClient;
  let node: KubeletNode;
  let fx: KubeletPoolFixture;
  let ns: string;
  let storageClass: string;
  let createdDriver = false;
  const claim = 'data';
  let pvName = '';
  let volumeId = '';
  let podName = '';
  let podUid = '';

  const stagingPath = () => path.join(node.rootDir, 'plugins', 'kubernetes.io', 'csi', 'pv', pvName, 'globalmount');
  const publishPath = (uid: string) => path.join(node.rootDir, 'pods', uid, 'volumes', 'kubernetes.io~csi', pvName, 'mount');
  const mounted = async (p: string) => (await fsp.readFile('/proc/self/mounts', 'utf8')).split('\n').some((l) => l.split(' ')[1] === p);

  async function startPod(script: string): Promise<void> {
    podName = uniqueName('dyn-pod');
    const created = await client.create<any>(
      PODS,
      busyboxPod({
        name: podName,
        namespace: ns,
        node,
        restartPolicy: 'Always',
        script,
        volumes: [{ name: 'data', persistentVolumeClaim: { claimName: claim } }],
        volumeMounts: [{ name: 'data', mountPath: '/data' }],
      }),
    );
    podUid = created.metadata.uid;
  }

  before(async function () {
    ({ cp, client } = await adminClient());
    node = await sharedKubeletNode();
    ns = await createNamespace(client, 'kubelet-dyn');
    await cp.waitForDefaultServiceAccount(ns);
    fx = new KubeletPoolFixture(node);
    await fx.start({ diskSizes: [512 * MiB] });
    // Without a CSIDriver saying attachRequired: false, the attach-detach controller would wait for an attacher.
    if (!(await client.getIfExists(CSI_DRIVERS, DRIVER_NAME))) {
      await client.create(CSI_DRIVERS, {
        apiVersion: 'storage.k8s.io/v1',
        kind: 'CSIDriver',
        metadata: { name: DRIVER_NAME },
        spec: { attachRequired: false, podInfoOnMount: true, volumeLifecycleModes: ['Persistent'] },
      } as any);
      createdDriver = true;
    }
    storageClass = uniqueName('dyn-sc');
    await client.create(STORAGE_CLASSES, {
      apiVersion: 'storage.k8s.io/v1',
      kind: 'StorageClass',
      metadata: { name: storageClass },
      provisioner: DRIVER_NAME,
      parameters: { pool: fx.pool },
      reclaimPolicy: 'Delete',
      volumeBindingMode: 'WaitForFirstConsumer',
      allowVolumeExpansion: true,
    } as any);
  });

  after(async function () {
    if (!client) return;
    if (ns) {
      for (const p of (await client.list<any>(PODS, { namespace: ns }).catch(() => ({ items: [] as any[] }))).items) {
        await deletePodAndWait(client, ns, p.metadata.name).catch(() => undefined);
      }
      await client.delete(PERSISTENT_VOLUME_CLAIMS, claim, { namespace: ns }).catch(() => undefined);
      await client.delete(NAMESPACES, ns).catch(() => undefined);
    }
    // A test that failed before the claim's deletion: the namespace's deletion releases the PV and the
    // played provisioner deletes it; the fixture's cleanup removes any PoolVolume left.
    if (pvName && fx?.controllerClient)
      await deleteReleasedVolume({ client, controller: fx.controllerClient, pvName, timeoutMs: 60_000 }).catch(() => undefined);
    if (pvName) await client.delete(PERSISTENT_VOLUMES, pvName).catch(() => undefined);
    await fx?.cleanup();
    if (storageClass) await client.delete(STORAGE_CLASSES, storageClass).catch(() => undefined);
    if (createdDriver) await client.delete(CSI_DRIVERS, DRIVER_NAME).catch(() => undefined);
  });

  it("kubelet registers csi.stowage.dev from the node daemon's socket: CSINode and the topology label", async function () {
    const csiNode = await waitFor(
      `CSINode ${node.nodeName} to list ${DRIVER_NAME}`,
      async () => {
        const n = await client.getIfExists<any>(CSI_NODES, node.nodeName);
        return n?.spec?.drivers?.find((d: any) => d.name === DRIVER_NAME) ? n : undefined;
      },
      60_000,
      250,
    );
    expect(csiNode.spec.drivers.find((d: any) => d.name === DRIVER_NAME)).to.deep.include({
      nodeID: node.nodeName,
      topologyKeys: [TOPOLOGY_KEY],
    });
    const n = await client.get<any>({ group: '', version: 'v1', plural: 'nodes', kind: 'Node', namespaced: false }, node.nodeName);
    expect(n.metadata.labels[TOPOLOGY_KEY]).to.equal(node.nodeName);
  });

  it('runs a pod with a Dynamic-pool claim: kubelet stages and publishes the volume and the pod writes to it', async function () {
    await client.create(PERSISTENT_VOLUME_CLAIMS, {
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name: claim, namespace: ns },
      spec: { accessModes: ['ReadWriteOnce'], storageClassName: storageClass, resources: { requests: { storage: '64Mi' } } },
    } as any);
    await startPod('trap "exit 0" TERM; echo first-pod > /data/file; sync; while true; do sleep 1; done');
    ({ pvName, volumeId } = await provisionClaim({ client, controller: fx.controllerClient, namespace: ns, claim, pool: fx.pool }));
    await waitPodPhase(client, ns, podName, ['Running']);
    // The PV as external-provisioner writes it, bound by the PV controller.
    const pvObj = await client.get<any>(PERSISTENT_VOLUMES, pvName);
    expect(pvObj.metadata.annotations['pv.kubernetes.io/provisioned-by']).to.equal(DRIVER_NAME);
    expect(pvObj.spec.csi).to.deep.include({ driver: DRIVER_NAME, volumeHandle: volumeId });
    expect(pvObj.spec.capacity.storage).to.equal('64Mi');
    expect(pvObj.status.phase).to.equal('Bound');
    const evts = (await client.list<any>(EVENTS, { namespace: ns, fieldSelector: `involvedObject.name=${claim}` })).items.map(
      (e: any) => e.reason,
    );
    expect(evts).to.include.members(['Provisioning', 'ProvisioningSucceeded']);
    expect(await mounted(stagingPath()), `staged at ${stagingPath()}`).to.equal(true);
    expect(await podMounts(node, podUid)).to.include(publishPath(podUid));
    // The bytes are in the volume's subvolume in the pool's btrfs filesystem on the host.
    const pv = await client.get<any>(POOL_VOLUMES, volumeId);
    await waitFor(
      'the pod to write /data/file',
      () => fsp.readFile(path.join(pv.status.path, 'file'), 'utf8').then((t) => t === 'first-pod\n'),
      30_000,
      250,
    );
  });

  it('keeps the data across a node-daemon restart and a pod restart', async function () {
    await fx.stopNodeDaemon();
    fx.freshEngine();
    await fx.startNodeDaemon();
    // The mounted volume stays usable while the daemon restarts; kubelet then tears the pod down
    // through the new daemon and sets the volume up again for the next pod.
    await deletePodAndWait(client, ns, podName);
    expect(await podMounts(node, podUid)).to.deep.equal([]);
    await startPod('trap "exit 0" TERM; cat /data/file; echo second-pod >> /data/file; while true; do sleep 1; done');
    await waitPodPhase(client, ns, podName, ['Running']);
    await waitFor(
      "the second pod to print the first pod's data",
      async () => (await podLog(cp, ns, podName)) === 'first-pod\n',
      30_000,
      250,
    );
    expect(await podMounts(node, podUid)).to.include(publishPath(podUid));
  });

  it('shows an expansion inside the running pod', async function () {
    const write = (mib: number) =>
      cp.kubectl([
        'exec',
        '-n',
        ns,
        podName,
        '--',
        'sh',
        '-c',
        `rm -f /data/big; dd if=/dev/zero of=/data/big bs=1M count=${mib} conv=fsync 2>&1; r=$?; rm -f /data/big; sync; exit $r`,
      ]);
    const before = await write(96);
    expect(before.code, `writing 96 MiB into a 64 MiB volume must fail: ${before.stdout}${before.stderr}`).to.not.equal(0);
    expect(before.stdout + before.stderr).to.match(/quota|space/i);
    expect(await expandClaim({ client, controller: fx.controllerClient, namespace: ns, claim, size: '192Mi' })).to.deep.equal({
      capacity: '192Mi',
      nodeExpansionRequired: false,
    });
    const pvc = await client.get<any>(PERSISTENT_VOLUME_CLAIMS, claim, ns);
    expect(pvc.status.capacity.storage).to.equal('192Mi');
    expect(pvc.status.conditions ?? []).to.deep.equal([]);
    expect((await client.get<any>(PERSISTENT_VOLUMES, pvName)).spec.capacity.storage).to.equal('192Mi');
    const after = await write(96);
    expect(after.code, `after growing to 192 MiB, 96 MiB fit: ${after.stdout}${after.stderr}`).to.equal(0);
  });

  it('unpublishes and unstages cleanly when the pod is deleted', async function () {
    await deletePodAndWait(client, ns, podName);
    await waitFor('kubelet to unstage the volume', async () => !(await mounted(stagingPath())), 60_000, 250);
    expect(await podMounts(node, podUid)).to.deep.equal([]);
    // The data is still in the volume; nothing of it is mounted under kubelet's root any more.
    const pv = await client.get<any>(POOL_VOLUMES, volumeId);
    expect(await fsp.readFile(path.join(pv.status.path, 'file'), 'utf8')).to.equal('first-pod\nsecond-pod\n');
    const kubeletMounts = (await fsp.readFile('/proc/self/mounts', 'utf8')).split('\n').filter((l) => l.includes(pvName));
    expect(kubeletMounts).to.deep.equal([]);
  });

  it('deleting the claim deletes the volume: the PV is released, DeleteVolume removes the data, the PV goes', async function () {
    const pv = await client.get<any>(POOL_VOLUMES, volumeId);
    const dataPath: string = pv.status.path;
    expect(await deleteClaimVolume({ client, controller: fx.controllerClient, namespace: ns, claim })).to.deep.equal({ pvName, volumeId });
    expect(await client.getIfExists(PERSISTENT_VOLUME_CLAIMS, claim, ns)).to.equal(undefined);
    expect(await client.getIfExists(PERSISTENT_VOLUMES, pvName)).to.equal(undefined);
    expect(await client.getIfExists(POOL_VOLUMES, volumeId)).to.equal(undefined);
    expect(
      await fsp.stat(dataPath).then(
        () => 'still there',
        (e: NodeJS.ErrnoException) => e.code,
      ),
      `the volume's data at ${dataPath}`,
    ).to.equal('ENOENT');
    pvName = '';
    volumeId = '';
  });
});

// kubelet's root directory as a setting, on a real kubelet (issue 27, item 7): the test node is
// started with another --root-dir, as k0s and MicroK8s run kubelet, and Stowage installed with the
// operator's --kubelet-root-dir. The node plugin's pod starts (its hostPath exists), registers with
// kubelet through the registration directory under that root (CSINode lists the driver), none of its
// sockets or pods' directories appear under /var/lib/kubelet, and a Dynamic volume is staged and
// published by the plugin at the paths this kubelet chose (the CSI Node service refuses any outside
// the --kubelet-dir the DaemonSet passes), and a pod writes to it. The image comes from the loopback registry, as in installed-stack.
//
// Only one test kubelet runs per machine: the shared one is stopped first (the next test that asks
// for it starts it again).

import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import type { KubeClient } from '../../src/kube/client.js';
import { DAEMON_SETS, DEPLOYMENTS, NAMESPACES, PERSISTENT_VOLUME_CLAIMS, PODS } from '../../src/kube/resources.js';
import type { KubeObject } from '../../src/kube/types.js';
import type { NodeDisk } from '../../src/crds/nodedisk.js';
import { NODE_DISKS, POOL_VOLUMES, STORAGE_POOLS } from '../../src/crds/resource-types.js';
import { csiV1 } from '../../src/csi/grpc.js';
import type { CsiClient } from '../csi/fixture.js';
import { DEFAULT_KUBELET_ROOT_DIR } from '../../src/operator/driver-stack/host-paths.js';
import { CSI_CONTROLLER_DEPLOYMENT, DRIVER_NAME, NODE_DAEMONSET } from '../../src/operator/driver-stack/render.js';
import type { ControlPlane } from '../cluster/control-plane.js';
import { shareHostPaths } from '../cluster/host-propagation.js';
import { removeStowageImages, stowageImageArchive } from '../cluster/kubelet-images.js';
import { KubeletNode, REAL_NODE_TAINT } from '../cluster/kubelet-node.js';
import { LoopbackRegistry } from '../cluster/kubelet-registry.js';
import { stopSharedKubeletNode } from '../cluster/kubelet-shared.js';
import { adminClient, createNamespace, deletePoolForcibly, uniqueName, waitFor } from '../support/cluster.js';
import { LoopDevices, unmountAllFrom } from '../support/loop-devices.js';
import { condition, type Pool } from '../support/pool-world.js';
import { deleteClaimVolume, provisionClaim } from './csi-sidecars.js';
import { playLivenessProbe, type PlayedLivenessProbe } from './livenessprobe-play.js';
import { busyboxPod, deletePodAndWait, podMounts, waitPodPhase } from './pods.js';
import { TEST_NETWORK_FIELD_MANAGER, networkPatch, writeInstalledOverlay } from './installed-overlay.js';
import { HOST_PATHS_CREATED, PROPAGATED_HOST_PATHS, mountsBelow, rmdirTree, stowageProcesses } from './installed-host.js';

/** A root no distribution uses, so the test never meets a real kubelet's (the harness refuses one it did not make). */
const ROOT = '/var/lib/stowage-test-kubelet-root/kubelet';
const NS = 'stowage-system';
const WAIT_MS = 150_000;
const NODE_SELECTOR = 'app.kubernetes.io/name=stowage,app.kubernetes.io/component=node';
const CSI_NODES = { group: 'storage.k8s.io', version: 'v1', plural: 'csinodes', kind: 'CSINode', namespaced: false } as const;
const CONTROLLER_SELECTOR = 'app.kubernetes.io/name=stowage,app.kubernetes.io/component=csi-controller';
const MiB = 1024 * 1024;

describe("kubelet node with --root-dir elsewhere: the operator's --kubelet-root-dir", function () {
  this.timeout(600_000);
  let cp: ControlPlane;
  let admin: KubeClient;
  let node: KubeletNode | undefined;
  let registry: LoopbackRegistry | undefined;
  let untrust: (() => Promise<void>) | undefined;
  let unshare: (() => Promise<void>) | undefined;
  let work = '';
  let overlay = '';
  let refs: string[] = [];
  let createdHostPaths: string[] = [];
  const loops = new LoopDevices();
  const pool = uniqueName('rootdir-dyn');
  let poolCreated = false;
  let appNs = '';
  let volumeId = '';
  let controller: CsiClient | undefined;
  let liveness: PlayedLivenessProbe | undefined;
  /** The controller's socket for the played livenessprobe (the controller pod's probe, on the host network). */
  let controllerSocket = '/nonexistent';

  before(async function () {
    const { archive, version } = stowageImageArchive();
    if (!existsSync(archive)) throw new Error(`${archive} missing: run \`make image\` (make test does) before this test`);
    ({ cp, client: admin } = await adminClient());
    await stopSharedKubeletNode();
    node = await KubeletNode.start(cp, { rootDir: ROOT });
    createdHostPaths = HOST_PATHS_CREATED.filter((d) => !existsSync(d));
    registry = await LoopbackRegistry.start();
    untrust = await node.trustRegistry(registry.host);
    const { refs: pushed, digest } = await registry.push('stowage-dev', [version]);
    refs = [...pushed, `${registry.host}/stowage-dev/stowage@${digest}`];
    unshare = await shareHostPaths(PROPAGATED_HOST_PATHS);
    work = await mkdtemp(path.join(tmpdir(), 'stowage-kubelet-root-'));
    const disk = await loops.create(512 * MiB);
    liveness = await playLivenessProbe(() => controllerSocket);
    appNs = await createNamespace(admin, 'rootdir-app');
    await cp.waitForDefaultServiceAccount(appNs);
    const ports = { metrics: 0, probe: 0 };
    const { createServer } = await import('node:net');
    for (const key of ['metrics', 'probe'] as const) {
      ports[key] = await new Promise<number>((resolve) => {
        const s = createServer().listen(0, '127.0.0.1', () => {
          const p = (s.address() as { port: number }).port;
          s.close(() => resolve(p));
        });
      });
    }
    overlay = await writeInstalledOverlay({
      dir: path.join(work, 'overlay'),
      server: cp.server,
      nodeName: node.nodeName,
      imageDigest: refs[1],
      metricsPort: ports.metrics,
      probePort: ports.probe,
      // The test's one disk is the only one the agent may use.
      operatorArgs: ['--image', `stowage=${refs[0]}`, `--kubelet-root-dir=${ROOT}`, `--node-agent-arg=--allow-device=${disk.device}`],
    });
  });

  after(async function () {
    controller?.close();
    if (admin && appNs) {
      for (const pod of (await admin.list<any>(PODS, { namespace: appNs }).catch(() => ({ items: [] as any[] }))).items)
        await deletePodAndWait(admin, appNs, pod.metadata.name).catch(() => undefined);
      await admin.delete(PERSISTENT_VOLUME_CLAIMS, 'dyn', { namespace: appNs }).catch(() => undefined);
    }
    if (admin && volumeId) await admin.delete(POOL_VOLUMES, volumeId).catch(() => undefined);
    if (admin && poolCreated) await deletePoolForcibly(admin, pool).catch(() => undefined);
    if (cp && overlay) {
      await cp.kubectl(['delete', '-k', overlay, '--ignore-not-found', '--wait=true'], { timeoutMs: 240_000 }).catch(() => undefined);
      await waitFor(`namespace ${NS} to be gone`, async () => !(await admin.getIfExists(NAMESPACES, NS)), WAIT_MS, 500).catch(
        () => undefined,
      );
    }
    await unshare?.();
    if (node && refs.length) await removeStowageImages(node.containerdSocket, refs);
    await untrust?.();
    await registry?.stop();
    await liveness?.close();
    if (admin && node) {
      for (const d of (
        await admin
          .list<NodeDisk & KubeObject>(NODE_DISKS, { labelSelector: `stowage.dev/node=${node.nodeName}` })
          .catch(() => ({ items: [] as any[] }))
      ).items) {
        await admin.delete(NODE_DISKS, d.metadata.name).catch(() => undefined);
      }
    }
    if (admin && appNs) await admin.delete(NAMESPACES, appNs).catch(() => undefined);
    await node?.stop();
    for (const device of loops.devices()) await unmountAllFrom(device);
    await loops.cleanup();
    for (const dir of createdHostPaths) await rmdirTree(dir);
    if (work) await rm(work, { recursive: true, force: true });
    admin?.close();
  });

  it("the node plugin's pod starts with kubelet's root mounted Bidirectional, registers through its plugins_registry (CSINode lists the driver), and nothing of it is under /var/lib/kubelet", async function () {
    const r = await cp.kubectl(['apply', '-k', overlay], { timeoutMs: 180_000 });
    expect(r.code, r.stderr).to.equal(0);
    await waitFor(
      `the operator to create DaemonSet ${NS}/${NODE_DAEMONSET}`,
      () => admin.getIfExists(DAEMON_SETS, NODE_DAEMONSET, NS),
      WAIT_MS,
      500,
    );
    await admin.apply(DAEMON_SETS, networkPatch('DaemonSet', NODE_DAEMONSET, NS, ['stowage-node'], cp.server) as any, {
      fieldManager: TEST_NETWORK_FIELD_MANAGER,
      force: true,
    });
    const pod = await waitFor(
      'the node plugin to run on the node with the moved root',
      async () =>
        (await admin.list<any>(PODS, { namespace: NS, labelSelector: NODE_SELECTOR })).items.find(
          (p) =>
            p.spec.nodeName === node!.nodeName &&
            p.spec.hostNetwork &&
            (p.status?.containerStatuses ?? []).some((c: any) => c.ready && c.state?.running),
        ),
      WAIT_MS,
      500,
    );
    expect(pod.spec.volumes).to.deep.include({ name: 'kubelet-dir', hostPath: { path: ROOT, type: 'Directory' } });
    expect(pod.spec.containers[0].args).to.include.members([
      `--kubelet-dir=${ROOT}`,
      `--kubelet-registration-dir=${ROOT}/plugins_registry`,
      `--csi-endpoint=unix://${ROOT}/plugins/${DRIVER_NAME}/csi.sock`,
    ]);
    // The plugin's sockets are where this kubelet looks: it registered the driver through them.
    const csiNode = await waitFor(
      `CSINode ${node!.nodeName} to list ${DRIVER_NAME}`,
      async () => {
        const n = await admin.getIfExists<any>(CSI_NODES, node!.nodeName);
        return n?.spec?.drivers?.find((d: any) => d.name === DRIVER_NAME) ? n : undefined;
      },
      60_000,
      500,
    );
    expect(csiNode.spec.drivers.find((d: any) => d.name === DRIVER_NAME).nodeID).to.equal(node!.nodeName);
    expect(existsSync(`${ROOT}/plugins/${DRIVER_NAME}/csi.sock`), 'the CSI socket under the moved root').to.equal(true);
    // The container sees kubelet's root at the host's path, shared (Bidirectional).
    const [proc] = stowageProcesses('node');
    const { readFileSync } = await import('node:fs');
    const mount = readFileSync(`/proc/${proc.pid}/mountinfo`, 'utf8')
      .split('\n')
      .find((l) => l.split(' ')[4] === ROOT);
    expect(mount, `a ${ROOT} mount in the container`).to.match(/ shared:\d+/);
    // Nothing of Stowage's under the default root (kubelet 1.20 itself makes only its device-plugins
    // directory there, whatever its --root-dir; the harness removes it).
    for (const dir of ['plugins', 'plugins_registry', 'pods'])
      expect(existsSync(path.join(DEFAULT_KUBELET_ROOT_DIR, dir)), `${DEFAULT_KUBELET_ROOT_DIR}/${dir}`).to.equal(false);
  });
  it('a Dynamic volume: kubelet stages and publishes it through the plugin under the moved root, and a pod writes to it', async function () {
    const device = loops.devices()[0];
    const disk = await waitFor(
      "the containerised agent to report the test's disk",
      async () =>
        (await admin.list<NodeDisk & KubeObject>(NODE_DISKS, { labelSelector: `stowage.dev/node=${node!.nodeName}` })).items.find(
          (d) => d.spec.devicePath === device,
        ),
      60_000,
      500,
    );
    await admin.mergePatch(NODE_DISKS, disk.metadata.name, { metadata: { labels: { 'stowage.dev/test-role': pool } } });
    await admin.apply(
      STORAGE_POOLS,
      {
        apiVersion: 'stowage.dev/v1alpha1',
        kind: 'StoragePool',
        metadata: { name: pool },
        spec: { mode: 'Dynamic', disks: { selector: { matchLabels: { 'stowage.dev/test-role': pool } } }, replicated: { size: 1 } },
      },
      { fieldManager: 'kubectl' },
    );
    poolCreated = true;
    // The CSI controller on the host network, on the real node (installed-overlay.ts says why).
    await waitFor(
      `the operator to create Deployment ${NS}/${CSI_CONTROLLER_DEPLOYMENT}`,
      () => admin.getIfExists(DEPLOYMENTS, CSI_CONTROLLER_DEPLOYMENT, NS),
      WAIT_MS,
      500,
    );
    const patch = networkPatch('Deployment', CSI_CONTROLLER_DEPLOYMENT, NS, ['stowage-csi-controller'], cp.server) as any;
    patch.spec.template.spec.nodeSelector = { 'kubernetes.io/hostname': node!.nodeName };
    patch.spec.template.spec.tolerations = [{ ...REAL_NODE_TAINT, operator: 'Equal' }];
    await admin.apply(DEPLOYMENTS, patch, { fieldManager: TEST_NETWORK_FIELD_MANAGER, force: true });
    const ctl = await waitFor(
      'the stowage-csi-controller container to run',
      async () =>
        (await admin.list<any>(PODS, { namespace: NS, labelSelector: CONTROLLER_SELECTOR })).items.find(
          (p) =>
            p.spec.hostNetwork &&
            !p.metadata.deletionTimestamp &&
            (p.status?.containerStatuses ?? []).some((c: any) => c.name === 'stowage-csi-controller' && c.state?.running),
        ),
      WAIT_MS,
      500,
    );
    // Its socket is in the pod's emptyDir, which this kubelet keeps under ITS root.
    const podSocket = `${ROOT}/pods/${ctl.metadata.uid}/volumes/kubernetes.io~empty-dir/socket-dir/csi.sock`;
    await waitFor(`the controller's socket ${podSocket}`, () => existsSync(podSocket), 60_000, 500);
    await symlink(path.dirname(podSocket), path.join(work, 'ctl'));
    controllerSocket = path.join(work, 'ctl', 'csi.sock');
    controller = new (csiV1() as any).Controller(`unix://${controllerSocket}`, grpc.credentials.createInsecure());
    await waitFor(
      'the Dynamic pool to be Ready',
      async () => condition(await admin.getIfExists<Pool>(STORAGE_POOLS, pool), 'Ready')?.status === 'True',
      WAIT_MS,
      500,
    );
    await admin.create(PERSISTENT_VOLUME_CLAIMS, {
      metadata: { name: 'dyn', namespace: appNs },
      spec: { accessModes: ['ReadWriteOnce'], storageClassName: pool, resources: { requests: { storage: '64Mi' } } },
    } as any);
    const name = uniqueName('writer');
    const created = await admin.create<any>(
      PODS,
      busyboxPod({
        name,
        namespace: appNs,
        node: node!,
        script: 'echo written-under-a-moved-kubelet-root > /dyn/proof && sync && cat /dyn/proof && sleep 3600',
        volumes: [{ name: 'dyn', persistentVolumeClaim: { claimName: 'dyn' } }],
        volumeMounts: [{ name: 'dyn', mountPath: '/dyn' }],
      }),
    );
    const provisioned = await provisionClaim({ client: admin, controller: controller!, namespace: appNs, claim: 'dyn', pool });
    volumeId = provisioned.volumeId;
    await waitPodPhase(admin, appNs, name, ['Running']);
    const poolVolume = await admin.get<any>(POOL_VOLUMES, volumeId);
    await waitFor("the pod's write to reach the volume", () => existsSync(path.join(poolVolume.status.path, 'proof')), 30_000, 250);
    expect(readFileSync(path.join(poolVolume.status.path, 'proof'), 'utf8')).to.equal('written-under-a-moved-kubelet-root\n');
    // NodeStage and NodePublish at the paths this kubelet chose, under its root.
    expect(await podMounts(node!, created.metadata.uid)).to.include(
      path.join(ROOT, 'pods', created.metadata.uid, 'volumes', 'kubernetes.io~csi', provisioned.pvName, 'mount'),
    );
    expect(
      mountsBelow(`${ROOT}/plugins/kubernetes.io/csi/pv/${provisioned.pvName}/globalmount`),
      'staged under the moved root',
    ).to.have.length.of.at.least(1);
    await deletePodAndWait(admin, appNs, name);
    expect(mountsBelow(`${ROOT}/pods/${created.metadata.uid}/`), 'unpublished').to.deep.equal([]);
    // The played provisioner deletes the volume when its claim goes.
    expect(await deleteClaimVolume({ client: admin, controller: controller!, namespace: appNs, claim: 'dyn' })).to.deep.equal({
      pvName: provisioned.pvName,
      volumeId,
    });
    await waitFor(`PoolVolume ${volumeId} to be gone`, async () => !(await admin.getIfExists(POOL_VOLUMES, volumeId)), WAIT_MS, 500);
    volumeId = '';
    await admin.delete(STORAGE_POOLS, pool);
    await waitFor(`pool ${pool} to be gone`, async () => !(await admin.getIfExists(STORAGE_POOLS, pool)), WAIT_MS, 500);
    poolCreated = false;
  });
});

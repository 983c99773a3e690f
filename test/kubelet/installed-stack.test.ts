// Stowage as a user deploys it (issues 16, 27): the image `make image` built, pushed with `make push`
// to a loopback registry (kubelet-registry.ts) that the real node's containerd pulls it from, by
// digest (the operator) and by tag (the pods it deploys), installed with `kubectl apply -k` of an overlay of
// config/default (installed-overlay.ts says what it changes and why). The operator runs as its
// Deployment, in a container, with the in-cluster config and its own ServiceAccount token, leader
// election on; it deploys the node DaemonSet, and kubelet runs `stowage node` in a container,
// privileged, as root, with the hostPath mounts and /var/lib/kubelet Bidirectional. The node pod
// survives deletion and a roll to a new image tag. The uninstall follows docs/uninstall.md: the pools
// first (each waits until the running agent released its disk), then `kubectl delete -k`; it leaves
// no process, mount, directory, filesystem signature, held loop device or Stowage object behind.

import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import type { KubeClient } from '../../src/kube/client.js';
import {
  CSI_DRIVERS,
  CUSTOM_RESOURCE_DEFINITIONS,
  DAEMON_SETS,
  DEPLOYMENTS,
  EVENTS,
  LEASES,
  NAMESPACES,
  PERSISTENT_VOLUMES,
  PERSISTENT_VOLUME_CLAIMS,
  PODS,
  STORAGE_CLASSES,
  resourcePath,
} from '../../src/kube/resources.js';
import { MANAGED_BY_LABEL, POOL_LABEL } from '../../src/crds/labels.js';
import { run } from '../../src/host/command.js';
import { findCondition } from '../../src/runtime/conditions.js';
import type { KubeObject, PersistentVolume } from '../../src/kube/types.js';
import type { NodeDisk } from '../../src/crds/nodedisk.js';
import { NODE_DISKS, POOL_VOLUMES, STORAGE_POOLS } from '../../src/crds/resource-types.js';
import { csiV1 } from '../../src/csi/grpc.js';
import { TOPOLOGY_KEY } from '../../src/csi/identity.js';
import { AGENT_ROOT, CSI_CONTROLLER_DEPLOYMENT, DRIVER_NAME, KUBELET_DIR, NODE_DAEMONSET } from '../../src/operator/driver-stack/render.js';
import { REAL_NODE_TAINT, type KubeletNode } from '../cluster/kubelet-node.js';
import { call, codeOf, type CsiClient } from '../csi/fixture.js';
import type { ControlPlane } from '../cluster/control-plane.js';
import { shareHostPaths } from '../cluster/host-propagation.js';
import { removeStowageImages, stowageImageArchive } from '../cluster/kubelet-images.js';
import { LoopbackRegistry } from '../cluster/kubelet-registry.js';
import { sharedKubeletNode } from '../cluster/kubelet-shared.js';
import { adminClient, createNamespace, deletePoolForcibly, uniqueName, waitFor } from '../support/cluster.js';
import { LoopDevices, unmountAllFrom } from '../support/loop-devices.js';
import { condition, type Pool, type Pvc } from '../support/pool-world.js';
import { TEST_NETWORK_FIELD_MANAGER, networkPatch, writeInstalledOverlay } from './installed-overlay.js';
import {
  AGENT_STATE_DIRS,
  HOST_PATHS_CREATED,
  PROPAGATED_HOST_PATHS,
  entriesBelow,
  holdersOf,
  loopDevices,
  mountsBelow,
  mountsOfDevices,
  rmdirTree,
  stowageProcesses,
} from './installed-host.js';
import { playLivenessProbe, type PlayedLivenessProbe } from './livenessprobe-play.js';
import { deleteClaimVolume, provisionClaim } from './csi-sidecars.js';
import { busyboxPod, deletePodAndWait, podLog, podMounts, waitPodPhase } from './pods.js';

const NS = 'stowage-system';
const LEASE = 'stowage-operator';
const OPERATOR_SELECTOR = 'app.kubernetes.io/name=stowage,app.kubernetes.io/component=operator';
const NODE_SELECTOR = 'app.kubernetes.io/name=stowage,app.kubernetes.io/component=node';
const NODE_CONTAINER = 'stowage-node';
const CONTROLLER_SELECTOR = 'app.kubernetes.io/name=stowage,app.kubernetes.io/component=csi-controller';
const CONTROLLER_CONTAINER = 'stowage-csi-controller';
const MOUNT_CAPABILITY = { mount: { fs_type: '', mount_flags: [] }, access_mode: { mode: 'SINGLE_NODE_WRITER' } };
const WAIT_MS = 150_000;
const CSI_NODES = { group: 'storage.k8s.io', version: 'v1', plural: 'csinodes', kind: 'CSINode', namespaced: false } as const;
const MiB = 1024 * 1024;
const CLUSTER_ROLES = {
  group: 'rbac.authorization.k8s.io',
  version: 'v1',
  plural: 'clusterroles',
  kind: 'ClusterRole',
  namespaced: false,
} as const;
const CLUSTER_ROLE_BINDINGS = {
  group: 'rbac.authorization.k8s.io',
  version: 'v1',
  plural: 'clusterrolebindings',
  kind: 'ClusterRoleBinding',
  namespaced: false,
} as const;
/** The Local-pool writer: one numbered line every 200 ms, synced, so a gap or a reset shows. */
const WRITER = 'trap "exit 0" TERM; i=0; while true; do i=$((i+1)); echo $i >> /data/log; echo $i >> /dyn/log; sync; sleep 0.2; done';
/** Labels on the test's two NodeDisks, so each pool selects its own. */
const ROLE_LABEL = 'stowage.dev/test-role';
/** The node plugin's CSI socket as the host (and kubelet) sees it: the DaemonSet's plugin-dir hostPath. */
const PLUGIN_SOCKET = `${KUBELET_DIR}/plugins/${DRIVER_NAME}/csi.sock`;

/** JSON log lines of a pod whose `msg` is `msg`. */
function logLines(log: string, msg: string): any[] {
  return log.split('\n').flatMap((l) => {
    try {
      const j = JSON.parse(l);
      return j.msg === msg ? [j] : [];
    } catch {
      return [];
    }
  });
}

describe('kubelet node: the stack installed with kubectl apply -k, as pods of the image make image built', function () {
  this.timeout(600_000);
  let cp: ControlPlane;
  let admin: KubeClient;
  let node: KubeletNode;
  let work: string | undefined;
  let overlay: string;
  let registry: LoopbackRegistry | undefined;
  let untrustRegistry: (() => Promise<void>) | undefined;
  /** REGISTRY/stowage-dev/stowage in the loopback registry. */
  let repository: string;
  let imageRef: string;
  let rollRef: string;
  let digest: string;
  let loopsBefore: string[];
  let createdHostPaths: string[] = [];
  let unshare: (() => Promise<void>) | undefined;
  let liveness: PlayedLivenessProbe | undefined;
  /** The socket the played livenessprobe probes: the host network has one port 9808 for both pods, which run one after the other here. */
  let livenessTarget = PLUGIN_SOCKET;
  const podUids = new Set<string>();
  const dynamicPool = uniqueName('installed-dyn');
  let poolCreated = false;
  const csiClients: CsiClient[] = [];
  const ports = { metrics: 0, probe: 0 };
  /** The test's one disk, the only device the containerised agent is allowed (operator --node-agent-arg). */
  const loops = new LoopDevices();
  let allowArgs: string[] = [];
  const localPool = uniqueName('installed-local');
  let localPoolCreated = false;
  let appNs = '';
  let writer: { name: string; uid: string; hostLogs: string[]; dynPv: string } | undefined;
  const dynPool = uniqueName('installed-dynv');
  let dynPoolCreated = false;
  let dynVolumeId = '';
  let ctlLinks = 0;

  /** The writer's log as the host sees it on the prepared disk: must be 1..n, no gap, no reset. */
  const writerLines = async (): Promise<number> => {
    let min = Infinity;
    for (const log of writer!.hostLogs) {
      // The last line may be half written (busybox's echo writes the number and the newline apart).
      const lines = readFileSync(log, 'utf8').split('\n').slice(0, -1);
      lines.forEach((l, i) => expect(l, `line ${i + 1} of ${log}`).to.equal(String(i + 1)));
      min = Math.min(min, lines.length);
    }
    return min;
  };
  /** The writer keeps writing: its log grows by a few lines from now on. */
  const writerKeepsWriting = async (what: string): Promise<void> => {
    const before = await writerLines();
    await waitFor(`the writer to keep writing ${what}`, async () => (await writerLines()) >= before + 5, 30_000, 250);
  };

  const kubectl = async (...args: string[]): Promise<string> => {
    const r = await cp.kubectl(args, { timeoutMs: 180_000 });
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  };

  const podsOf = async (selector: string): Promise<any[]> =>
    (await admin.list<any>(PODS, { namespace: NS, labelSelector: selector })).items;

  /** The one pod of `selector` on the real node whose `container` runs and is ready, matching `extra`. */
  const runningPod = (selector: string, container: string, what: string, extra: (pod: any) => boolean = () => true): Promise<any> =>
    waitFor(
      what,
      async () => {
        for (const pod of await podsOf(selector)) {
          if (pod.spec.nodeName !== node.nodeName || pod.metadata.deletionTimestamp || !extra(pod)) continue;
          const status = (pod.status?.containerStatuses ?? []).find((c: any) => c.name === container);
          if (status?.ready && status.state?.running) {
            podUids.add(pod.metadata.uid);
            return pod;
          }
        }
        return undefined;
      },
      WAIT_MS,
      500,
    ).catch(async (e) => {
      // Only adds detail to the timeout error thrown below.
      const pods = await podsOf(selector).catch(() => []);
      const seen = pods.map(
        (p: any) =>
          `${p.metadata.name} on ${p.spec.nodeName}: ${p.status?.phase} ${JSON.stringify(p.status?.containerStatuses?.map((c: any) => [c.name, c.state]))}`,
      );
      throw new Error(`${(e as Error).message}\npods:\n  ${seen.join('\n  ')}`);
    });

  /** Free host ports for the operator's metrics and probes (host network: a rolling update's new
   *  pod runs beside the old one, so each roll gets ports of its own). */
  const pickOperatorPorts = async (): Promise<void> => {
    const { createServer } = await import('node:net');
    for (const key of ['metrics', 'probe'] as const) {
      ports[key] = await new Promise<number>((resolve) => {
        const s = createServer().listen(0, '127.0.0.1', () => {
          const p = (s.address() as { port: number }).port;
          s.close(() => resolve(p));
        });
      });
    }
  };

  const applyOverlay = async (operatorArgs: string[] = []): Promise<void> => {
    // The operator by digest; what it deploys by tag (its --image), a later --image overriding it.
    await writeInstalledOverlay({
      dir: overlay,
      server: cp.server,
      nodeName: node.nodeName,
      imageDigest: `${repository}@${digest}`,
      metricsPort: ports.metrics,
      probePort: ports.probe,
      operatorArgs: ['--image', `stowage=${imageRef}`, ...operatorArgs],
    });
    await kubectl('apply', '-k', overlay);
  };
  const agentArgs = (): string[] => allowArgs;

  /** The node DaemonSet on the host network (installed-overlay.ts says why), under the test's own field manager. */
  const patchNodeNetwork = async (): Promise<void> => {
    await waitFor(
      `the operator to create DaemonSet ${NS}/${NODE_DAEMONSET}`,
      () => admin.getIfExists(DAEMON_SETS, NODE_DAEMONSET, NS),
      WAIT_MS,
      500,
    );
    await admin.apply(DAEMON_SETS, networkPatch('DaemonSet', NODE_DAEMONSET, NS, [NODE_CONTAINER], cp.server) as any, {
      fieldManager: TEST_NETWORK_FIELD_MANAGER,
      force: true,
    });
  };

  /**
   * The containerised controller's socket as the sidecars reach it (/csi/csi.sock in the pod's
   * emptyDir, on the host under kubelet's pod directory), through a short symlink: that path is
   * longer than a Unix socket address may be. Follows the current pod (a roll replaces it), and
   * points the played livenessprobe (the controller pod's probe on the host network) at it.
   */
  const controllerSocket = async (image = imageRef): Promise<string> => {
    const pod = await runningPod(
      CONTROLLER_SELECTOR,
      CONTROLLER_CONTAINER,
      `the stowage-csi-controller container (${image}) to run on the real node`,
      (p) => p.spec.hostNetwork === true && p.spec.containers.some((x: any) => x.name === CONTROLLER_CONTAINER && x.image === image),
    );
    const podSocket = `${node.rootDir}/pods/${pod.metadata.uid}/volumes/kubernetes.io~empty-dir/socket-dir/csi.sock`;
    await waitFor(`the controller's socket ${podSocket}`, () => existsSync(podSocket), 60_000, 500);
    const link = path.join(work!, `ctl${ctlLinks++}`);
    await symlink(path.dirname(podSocket), link);
    livenessTarget = path.join(link, 'csi.sock');
    return livenessTarget;
  };

  /** The CSI controller Deployment on the host network, pinned to the real node (as the operator's). */
  const patchControllerNetwork = async (): Promise<void> => {
    await waitFor(
      `the operator to create Deployment ${NS}/${CSI_CONTROLLER_DEPLOYMENT}`,
      () => admin.getIfExists(DEPLOYMENTS, CSI_CONTROLLER_DEPLOYMENT, NS),
      WAIT_MS,
      500,
    );
    const patch = networkPatch('Deployment', CSI_CONTROLLER_DEPLOYMENT, NS, [CONTROLLER_CONTAINER], cp.server) as any;
    patch.spec.template.spec.nodeSelector = { 'kubernetes.io/hostname': node.nodeName };
    patch.spec.template.spec.tolerations = [{ ...REAL_NODE_TAINT, operator: 'Equal' }];
    // On the host network a new pod cannot start beside the old one on the same node (the same
    // ports), so a roll replaces the pod first; with a pod network the default surge does.
    patch.spec.strategy = { type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } };
    await admin.apply(DEPLOYMENTS, patch, { fieldManager: TEST_NETWORK_FIELD_MANAGER, force: true });
  };

  const controllerClient = async (image?: string): Promise<CsiClient> => {
    const socket = await controllerSocket(image);
    const c: CsiClient = new (csiV1() as any).Controller(`unix://${socket}`, grpc.credentials.createInsecure());
    csiClients.push(c);
    return c;
  };

  before(async function () {
    const { archive } = stowageImageArchive();
    if (!existsSync(archive)) throw new Error(`${archive} missing: run \`make image\` (make test does) before this test`);
    ({ cp, client: admin } = await adminClient());
    node = await sharedKubeletNode();
    loopsBefore = loopDevices();
    createdHostPaths = HOST_PATHS_CREATED.filter((d) => !existsSync(d));
    unshare = await shareHostPaths(PROPAGATED_HOST_PATHS);
    liveness = await playLivenessProbe(() => livenessTarget);
    const version = stowageImageArchive().version;
    registry = await LoopbackRegistry.start();
    untrustRegistry = await node.trustRegistry(registry.host);
    // `make push` of the one archive under two tags: the install's, and a "new" one to roll to.
    const pushed = await registry.push('stowage-dev', [version, `${version}-roll`]);
    repository = `${registry.host}/stowage-dev/stowage`;
    [imageRef, rollRef] = pushed.refs as [string, string];
    digest = pushed.digest;
    work = await mkdtemp(path.join(tmpdir(), 'stowage-installed-'));
    overlay = path.join(work, 'overlay');
    await pickOperatorPorts();
    const local = await loops.create(512 * MiB);
    const dyn = await loops.create(512 * MiB);
    allowArgs = [`--node-agent-arg=--allow-device=${local.device}`, `--node-agent-arg=--allow-device=${dyn.device}`];
    appNs = await createNamespace(admin, 'installed-app');
    await cp.waitForDefaultServiceAccount(appNs);
  });

  after(async function () {
    for (const c of csiClients) c.close();
    if (admin && appNs) {
      for (const pod of (await admin.list<any>(PODS, { namespace: appNs }).catch(() => ({ items: [] as any[] }))).items) {
        await deletePodAndWait(admin, appNs, pod.metadata.name).catch(() => undefined);
      }
      await admin.delete(PERSISTENT_VOLUME_CLAIMS, 'data', { namespace: appNs }).catch(() => undefined);
      await admin.delete(PERSISTENT_VOLUME_CLAIMS, 'dyn', { namespace: appNs }).catch(() => undefined);
    }
    if (admin && writer?.dynPv) await admin.delete(PERSISTENT_VOLUMES, writer.dynPv).catch(() => undefined);
    if (admin && dynVolumeId) await admin.delete(POOL_VOLUMES, dynVolumeId).catch(() => undefined);
    if (admin && dynPoolCreated) await deletePoolForcibly(admin, dynPool).catch(() => undefined);
    if (admin && localPoolCreated) await deletePoolForcibly(admin, localPool).catch(() => undefined);
    if (admin && poolCreated) await deletePoolForcibly(admin, dynamicPool).catch(() => undefined);
    if (cp && work && existsSync(path.join(overlay, 'kustomization.yaml'))) {
      await cp.kubectl(['delete', '-k', overlay, '--ignore-not-found', '--wait=true'], { timeoutMs: 240_000 }).catch(() => undefined);
      await waitFor(`namespace ${NS} to be gone`, async () => !(await admin.getIfExists(NAMESPACES, NS)), WAIT_MS, 500).catch(
        () => undefined,
      );
    }
    await liveness?.close();
    // The test's disks unmounted before the shared host paths go (a pool deleted forcibly above
    // leaves its disk mounted under AGENT_ROOT, which would keep the shared mount busy).
    for (const device of loops.devices()) await unmountAllFrom(device);
    await unshare?.();
    // What containerd pulled (by tag and by digest), so later tests on the node find none; then the registry.
    if (node && repository)
      await removeStowageImages(
        node.containerdSocket,
        [imageRef, rollRef, `${repository}@${digest}`, `${repository}:no-such-tag`].filter(Boolean),
      );
    await untrustRegistry?.();
    await registry?.stop();
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
    for (const device of loops.devices()) await unmountAllFrom(device);
    await loops.cleanup();
    for (const dir of createdHostPaths) await rmdirTree(dir);
    if (work) await rm(work, { recursive: true, force: true });
    admin?.close();
  });

  it('kubectl apply -k: the operator runs as its Deployment on the real node, with the in-cluster config and its own token, and leads', async function () {
    await applyOverlay(agentArgs());
    const pod = await runningPod(OPERATOR_SELECTOR, 'operator', 'the operator pod to run on the real node');
    const status = pod.status.containerStatuses.find((c: any) => c.name === 'operator');
    // The image kubelet ran is the one make image built, pulled from the registry by the digest kustomize pinned.
    expect(pod.spec.containers[0].image).to.equal(`${repository}@${digest}`);
    expect(status.imageID).to.contain(digest);
    expect(await registry!.resolve('stowage-dev/stowage', digest), 'the registry serves that digest').to.equal(digest);
    expect(pod.spec.serviceAccountName).to.equal('stowage-operator');
    expect(pod.spec.containers[0].args).to.not.include.members(['--kubeconfig']);
    // The process is the container's: the image's CLI, as the image's non-root user.
    const procs = stowageProcesses('operator');
    expect(procs, 'one containerised operator process on the host').to.have.length(1);
    expect(readFileSync(`/proc/${procs[0].pid}/status`, 'utf8')).to.match(/^Uid:\s+65532\s/m);
    // Its log names the server it found in the pod's environment and the identity it leads with.
    const started = await waitFor(
      'the operator to log its start',
      async () => logLines(await podLog(cp, NS, pod.metadata.name), 'stowage operator starting')[0],
      60_000,
      500,
    );
    expect(started.server).to.equal(cp.server);
    expect(started.leaderElect).to.equal(true);
    const lease = await waitFor(
      'the operator to hold its lease',
      async () => {
        const l = await admin.getIfExists<any>(LEASES, LEASE, NS);
        return l?.spec?.holderIdentity === started.identity ? l : undefined;
      },
      60_000,
      500,
    );
    expect(lease.spec.holderIdentity).to.equal(started.identity);
  });

  it('a Dynamic pool: the operator deploys the CSI controller, and the containerised `stowage csi-controller` answers on the socket in its pod', async function () {
    try {
      await dynamicPoolController();
    } finally {
      livenessTarget = PLUGIN_SOCKET;
    }
  });

  async function dynamicPoolController(): Promise<void> {
    await admin.create(STORAGE_POOLS, {
      apiVersion: 'stowage.dev/v1alpha1',
      kind: 'StoragePool',
      metadata: { name: dynamicPool },
      // No disk carries this label: the pool has no capacity anywhere, which the controller must say.
      spec: { mode: 'Dynamic', disks: { selector: { matchLabels: { 'stowage.dev/test-pool': dynamicPool } } }, replicated: { size: 1 } },
    } as any);
    poolCreated = true;
    await waitFor(
      `the operator to create Deployment ${NS}/${CSI_CONTROLLER_DEPLOYMENT}`,
      () => admin.getIfExists(DEPLOYMENTS, CSI_CONTROLLER_DEPLOYMENT, NS),
      WAIT_MS,
      500,
    );
    // The host network (installed-overlay.ts) and, as for the operator, the real node's taint: the
    // rendered Deployment has no placement of its own, and the real node is the only one with a kubelet.
    const patch = networkPatch('Deployment', CSI_CONTROLLER_DEPLOYMENT, NS, [CONTROLLER_CONTAINER], cp.server) as any;
    patch.spec.template.spec.nodeSelector = { 'kubernetes.io/hostname': node.nodeName };
    patch.spec.template.spec.tolerations = [{ ...REAL_NODE_TAINT, operator: 'Equal' }];
    await admin.apply(DEPLOYMENTS, patch, { fieldManager: TEST_NETWORK_FIELD_MANAGER, force: true });
    const pod = await runningPod(
      CONTROLLER_SELECTOR,
      CONTROLLER_CONTAINER,
      'the stowage-csi-controller container to run on the real node',
      (p) => p.spec.hostNetwork === true,
    );
    expect(pod.spec.containers.find((c: any) => c.name === CONTROLLER_CONTAINER).image).to.equal(imageRef);
    const [proc] = stowageProcesses('csi-controller');
    expect(proc, 'the containerised `stowage csi-controller` process on the host').to.not.equal(undefined);
    expect(readFileSync(`/proc/${proc.pid}/status`, 'utf8')).to.match(/^Uid:\s+65532\s/m);
    // Its socket is in the pod's emptyDir, which kubelet keeps under its pod directory on the host:
    // where the sidecars would reach it, and where this test does.
    const podSocket = `${node.rootDir}/pods/${pod.metadata.uid}/volumes/kubernetes.io~empty-dir/socket-dir/csi.sock`;
    await waitFor(`the controller's socket ${podSocket}`, () => existsSync(podSocket), 60_000, 500);
    // That path is longer than a Unix socket address may be (108 bytes); the sidecars see it as
    // /csi/csi.sock, the test through a short symlink to the same directory.
    const socket = path.join(work!, 'ctl', 'csi.sock');
    await symlink(path.dirname(podSocket), path.join(work!, 'ctl'));
    livenessTarget = socket;
    const v1 = csiV1() as any;
    const creds = grpc.credentials.createInsecure();
    const identity: CsiClient = new v1.Identity(`unix://${socket}`, creds);
    const controller: CsiClient = new v1.Controller(`unix://${socket}`, creds);
    csiClients.push(identity, controller);
    expect((await call(identity, 'GetPluginInfo', {})).name).to.equal(DRIVER_NAME);
    // Ready once its caches are synced: it lists and watches through the API with its own token.
    await waitFor('the controller to be ready', async () => (await call(identity, 'Probe', {})).ready?.value === true, 60_000, 500);
    // What the provisioner, resizer and snapshotter each check for before they start.
    const caps = (await call(controller, 'ControllerGetCapabilities', {})).capabilities.map((c: any) => c.rpc?.type);
    expect(caps).to.include.members(['CREATE_DELETE_VOLUME', 'GET_CAPACITY', 'EXPAND_VOLUME', 'CREATE_DELETE_SNAPSHOT']);
    // It sees the pool the test created (a pool that does not exist is refused differently).
    const topology = [{ segments: { [TOPOLOGY_KEY]: node.nodeName } }];
    const create = (pool: string) =>
      call(controller, 'CreateVolume', {
        name: `pvc-${uniqueName('installed')}`,
        capacity_range: { required_bytes: String(64 << 20) },
        volume_capabilities: [MOUNT_CAPABILITY],
        parameters: { pool },
        accessibility_requirements: { requisite: topology, preferred: topology },
      });
    expect(await codeOf(create(dynamicPool))).to.equal('RESOURCE_EXHAUSTED');
    expect(await codeOf(create(`${dynamicPool}-missing`))).to.equal('INVALID_ARGUMENT');
    for (const c of csiClients.splice(0)) c.close();
    // The uninstall starts with the pools (README): the operator then removes the CSI parts.
    await admin.delete(STORAGE_POOLS, dynamicPool);
    await waitFor(`pool ${dynamicPool} to be gone`, async () => !(await admin.getIfExists(STORAGE_POOLS, dynamicPool)), WAIT_MS, 500);
    poolCreated = false;
    await waitFor(
      'the operator to remove the CSI controller',
      async () => !(await admin.getIfExists(DEPLOYMENTS, CSI_CONTROLLER_DEPLOYMENT, NS)),
      WAIT_MS,
      500,
    );
    await waitFor('the CSI controller pod to be gone', async () => (await podsOf(CONTROLLER_SELECTOR)).length === 0, WAIT_MS, 500);
  }

  it('the operator deploys the node DaemonSet; kubelet runs `stowage node` privileged, as root, with /var/lib/kubelet Bidirectional', async function () {
    await patchNodeNetwork();
    const pod = await runningPod(
      NODE_SELECTOR,
      NODE_CONTAINER,
      'the stowage-node container to run on the real node',
      (p) => p.spec.hostNetwork === true,
    );
    const c = pod.spec.containers.find((x: any) => x.name === NODE_CONTAINER);
    expect(c.image).to.equal(imageRef);
    expect(c.securityContext).to.include({ privileged: true, runAsUser: 0 });
    const [proc] = stowageProcesses('node');
    expect(proc, 'the containerised `stowage node` process on the host').to.not.equal(undefined);
    const status = readFileSync(`/proc/${proc.pid}/status`, 'utf8');
    expect(status).to.match(/^Uid:\s+0\s/m);
    // privileged: every capability the host's root has.
    const capEff = (text: string) => /^CapEff:\s+(\S+)$/m.exec(text)?.[1];
    expect(capEff(status)).to.equal(capEff(readFileSync('/proc/self/status', 'utf8')));
    // Inside the container's mount namespace, /var/lib/kubelet is a shared mount (Bidirectional),
    // so mounts the plugin makes there reach the host's kubelet.
    const kubeletMount = readFileSync(`/proc/${proc.pid}/mountinfo`, 'utf8')
      .split('\n')
      .find((l) => l.split(' ')[4] === '/var/lib/kubelet');
    expect(kubeletMount, 'a /var/lib/kubelet mount in the container').to.be.a('string');
    expect(kubeletMount).to.match(/ shared:\d+/);
    // It reached the API server with its in-cluster config and its own ServiceAccount's token.
    const running = await waitFor(
      'the node agent to log that it runs',
      async () => logLines(await podLog(cp, NS, pod.metadata.name, NODE_CONTAINER), 'stowage node agent running')[0],
      60_000,
      500,
    );
    expect(running.server).to.equal(cp.server);
    expect(running.node).to.equal(node.nodeName);
    expect(pod.spec.serviceAccountName).to.equal('stowage-node');
    // registration self: kubelet's liveness probe is the plugin's own /healthz on its metrics port
    // (the host's, with hostNetwork), which fails when its CSI or registration socket is gone. (The
    // played livenessprobe answers only the CSI controller pod's probe now.)
    expect(c.livenessProbe.httpGet).to.deep.include({ path: '/healthz', port: 'metrics' });
    const healthz = await waitFor(
      "the plugin's own /healthz to answer 200",
      async () => {
        // A poll: no answer means not listening yet.
        const r = await fetch('http://127.0.0.1:8080/healthz').catch(() => undefined);
        return r?.status === 200 ? r : undefined;
      },
      60_000,
      500,
    );
    expect(healthz.status).to.equal(200);
  });

  it('registration self: the containerised plugin registers with kubelet (CSINode lists csi.stowage.dev)', async function () {
    const ds = await admin.get<any>(DAEMON_SETS, NODE_DAEMONSET, NS);
    expect(
      ds.spec.template.spec.containers.map((c: any) => c.name),
      "Stowage's image alone",
    ).to.deep.equal([NODE_CONTAINER]);
    const csiNode = await waitFor(
      `CSINode ${node.nodeName} to list ${DRIVER_NAME}`,
      async () => {
        const n = await admin.getIfExists<any>(CSI_NODES, node.nodeName);
        return n?.spec?.drivers?.find((d: any) => d.name === DRIVER_NAME) ? n : undefined;
      },
      60_000,
      500,
    );
    expect(csiNode.spec.drivers.find((d: any) => d.name === DRIVER_NAME)).to.deep.include({
      nodeID: node.nodeName,
      topologyKeys: [TOPOLOGY_KEY],
    });
  });

  it("a pod on the node mounts a Local PV (the containerised agent's disk) and a Dynamic volume (created through the containerised controller's socket, staged and published by the containerised plugin), writes, reads back", async function () {
    const [localDevice, dynDevice] = loops.devices();
    // Only the allowed devices became NodeDisks of this node; the administrator sorts them into pools.
    const disks = await waitFor(
      'the containerised agent to report the two allowed disks',
      async () => {
        const items = (await admin.list<NodeDisk & KubeObject>(NODE_DISKS, { labelSelector: `stowage.dev/node=${node.nodeName}` })).items;
        return items.length >= 2 ? items : undefined;
      },
      60_000,
      500,
    );
    expect(disks.map((d) => d.spec.devicePath).sort()).to.deep.equal([localDevice, dynDevice].sort());
    for (const d of disks)
      await admin.mergePatch(NODE_DISKS, d.metadata.name, {
        metadata: { labels: { [ROLE_LABEL]: d.spec.devicePath === localDevice ? localPool : dynPool } },
      });
    await admin.apply(
      STORAGE_POOLS,
      {
        apiVersion: 'stowage.dev/v1alpha1',
        kind: 'StoragePool',
        metadata: { name: localPool },
        spec: {
          mode: 'Local',
          disks: { selector: { matchLabels: { [ROLE_LABEL]: localPool } } },
          local: { volumeMode: 'Filesystem', fsType: 'ext4', cleanup: 'quick' },
        },
      },
      { fieldManager: 'kubectl' },
    );
    localPoolCreated = true;
    await admin.apply(
      STORAGE_POOLS,
      {
        apiVersion: 'stowage.dev/v1alpha1',
        kind: 'StoragePool',
        metadata: { name: dynPool },
        spec: { mode: 'Dynamic', disks: { selector: { matchLabels: { [ROLE_LABEL]: dynPool } } }, replicated: { size: 1 } },
      },
      { fieldManager: 'kubectl' },
    );
    dynPoolCreated = true;
    await waitFor(
      'the Local pool to be Ready with its volume',
      async () => {
        const p = await admin.getIfExists<Pool>(STORAGE_POOLS, localPool);
        return condition(p, 'Ready')?.status === 'True' && p!.status?.counts?.volumes?.available === 1 ? p : undefined;
      },
      WAIT_MS,
      500,
    );
    await patchControllerNetwork();
    const controller = await controllerClient();
    await waitFor(
      'the Dynamic pool to be Ready',
      async () => condition(await admin.getIfExists<Pool>(STORAGE_POOLS, dynPool), 'Ready')?.status === 'True',
      WAIT_MS,
      500,
    );
    for (const [claim, sc, size] of [
      ['data', localPool, '100Mi'],
      ['dyn', dynPool, '64Mi'],
    ] as const) {
      await admin.create(PERSISTENT_VOLUME_CLAIMS, {
        metadata: { name: claim, namespace: appNs },
        spec: { accessModes: ['ReadWriteOnce'], storageClassName: sc, resources: { requests: { storage: size } } },
      } as any);
    }
    const name = uniqueName('writer');
    const created = await admin.create<any>(
      PODS,
      busyboxPod({
        name,
        namespace: appNs,
        node,
        restartPolicy: 'Always',
        script: WRITER,
        volumes: [
          { name: 'data', persistentVolumeClaim: { claimName: 'data' } },
          { name: 'dyn', persistentVolumeClaim: { claimName: 'dyn' } },
        ],
        volumeMounts: [
          { name: 'data', mountPath: '/data' },
          { name: 'dyn', mountPath: '/dyn' },
        ],
      }),
    );
    // The provisioner, played against the containerised controller's socket (csi-sidecars.ts).
    const dyn = await provisionClaim({ client: admin, controller, namespace: appNs, claim: 'dyn', pool: dynPool });
    dynVolumeId = dyn.volumeId;
    await waitPodPhase(admin, appNs, name, ['Running']);
    const claim = await admin.get<Pvc>(PERSISTENT_VOLUME_CLAIMS, 'data', appNs);
    const pv = await admin.get<PersistentVolume>(PERSISTENT_VOLUMES, claim.spec.volumeName!);
    const poolVolume = await admin.get<any>(POOL_VOLUMES, dyn.volumeId);
    writer = {
      name,
      uid: created.metadata.uid,
      hostLogs: [path.join(pv.spec.local!.path, 'log'), path.join(poolVolume.status.path, 'log')],
      dynPv: dyn.pvName,
    };
    // The agent mounted the Local disk inside its container; Bidirectional propagation put it on
    // the host, where kubelet bind-mounted it into the pod.
    const source = readFileSync('/proc/self/mounts', 'utf8')
      .split('\n')
      .map((l) => l.split(' '))
      .find((f) => f[1] === pv.spec.local!.path)?.[0];
    expect(source, `the host sees ${pv.spec.local!.path} mounted from the test's disk`).to.equal(localDevice);
    const mounts = await podMounts(node, created.metadata.uid);
    expect(mounts).to.include(
      path.join(node.rootDir, 'pods', created.metadata.uid, 'volumes', 'kubernetes.io~local-volume', pv.metadata.name!),
    );
    // kubelet's NodeStage/NodePublish, answered by the containerised plugin: on the host's mounts.
    expect(mounts).to.include(path.join(node.rootDir, 'pods', created.metadata.uid, 'volumes', 'kubernetes.io~csi', dyn.pvName, 'mount'));
    expect(mountsBelow(`${KUBELET_DIR}/plugins/kubernetes.io/csi/pv/${dyn.pvName}/globalmount`), 'staged').to.have.length.of.at.least(1);
    await waitFor(
      'the writer to write to both volumes',
      async () => writer!.hostLogs.every((l) => existsSync(l)) && (await writerLines()) >= 3,
      30_000,
      250,
    );
    for (const dir of ['/data', '/dyn']) {
      const read = await cp.kubectl(['exec', '-n', appNs, name, '--', 'head', '-n', '3', `${dir}/log`]);
      expect(read.stdout, `the pod reads back what it wrote to ${dir}`).to.equal('1\n2\n3\n');
    }
  });

  it('a deleted node pod is replaced by the DaemonSet, and the replacement runs', async function () {
    const [old] = (await podsOf(NODE_SELECTOR)).filter((p) => p.spec.nodeName === node.nodeName);
    const oldPids = stowageProcesses('node').map((p) => p.pid);
    await admin.delete(PODS, old.metadata.name, { namespace: NS });
    const replacement = await runningPod(
      NODE_SELECTOR,
      NODE_CONTAINER,
      'a replacement node pod to run',
      (p) => p.metadata.uid !== old.metadata.uid,
    );
    expect(replacement.metadata.uid).to.not.equal(old.metadata.uid);
    await waitFor('the old node process to exit', () => stowageProcesses('node').every((p) => !oldPids.includes(p.pid)), 60_000, 500);
    expect(stowageProcesses('node')).to.have.length(1);
    // The published Local volume outlived the plugin: the pod kept writing through the replacement.
    await writerKeepsWriting("through the node pod's replacement");
  });

  it('rolling the node DaemonSet to a new image tag (operator --image) replaces the node pod with one of the new tag', async function () {
    const before = (await podsOf(NODE_SELECTOR)).find((p) => p.spec.nodeName === node.nodeName && !p.metadata.deletionTimestamp);
    await pickOperatorPorts();
    await applyOverlay([...agentArgs(), '--image', `stowage=${rollRef}`]);
    await waitFor(
      'the operator to roll the DaemonSet to the new tag',
      async () => {
        const ds = await admin.get<any>(DAEMON_SETS, NODE_DAEMONSET, NS);
        return ds.spec.template.spec.containers.find((x: any) => x.name === NODE_CONTAINER)?.image === rollRef;
      },
      WAIT_MS,
      500,
    );
    const rolled = await runningPod(NODE_SELECTOR, NODE_CONTAINER, 'a node pod of the new tag to run', (p) =>
      p.spec.containers.some((x: any) => x.name === NODE_CONTAINER && x.image === rollRef),
    );
    expect(rolled.metadata.uid).to.not.equal(before?.metadata.uid);
    // The roll kept the test's network fields (another field manager owns them).
    expect(rolled.spec.hostNetwork).to.equal(true);
    await writerKeepsWriting('through the roll to a new image tag');
    // The roll replaced the controller's pod too (same image table): the sidecars follow its socket.
    await waitFor(
      'the controller to roll to the new tag',
      async () =>
        (await podsOf(CONTROLLER_SELECTOR)).some((p) =>
          p.spec.containers.some((x: any) => x.name === CONTROLLER_CONTAINER && x.image === rollRef),
        ),
      WAIT_MS,
      500,
    );
    await controllerSocket(rollRef);
    // The new tag's agent still has only the test's disk.
    expect(rolled.spec.containers.find((x: any) => x.name === NODE_CONTAINER).args).to.include(
      allowArgs[0].replace('--node-agent-arg=', ''),
    );
  });

  it("a broken image reference on the node DaemonSet: the Dynamic pool says DriverReady=False naming the node and kubelet's reason within a minute, the writer keeps writing, and fixing it turns it True", async function () {
    const driverReady = async () => condition(await admin.getIfExists<Pool>(STORAGE_POOLS, dynPool), 'DriverReady');
    // The roll before this test may have just replaced the plugin: it is True once that one registered.
    await waitFor('DriverReady=True before the break', async () => (await driverReady())?.status === 'True', 60_000, 500);
    // A tag the registry does not serve: kubelet's pull fails on the real node (manifest unknown).
    const brokenRef = `${repository}:no-such-tag`;
    const brokenAt = Date.now();
    await pickOperatorPorts();
    await applyOverlay([...agentArgs(), '--image', `stowage=${brokenRef}`]);
    await waitFor(
      'the operator to roll the DaemonSet to the broken tag',
      async () => {
        const ds = await admin.get<any>(DAEMON_SETS, NODE_DAEMONSET, NS);
        return ds.spec.template.spec.containers.find((x: any) => x.name === NODE_CONTAINER)?.image === brokenRef;
      },
      WAIT_MS,
      500,
    );
    // The minute starts when kubelet reports the failed pull on the pod (what the operator watches).
    await waitFor(
      'kubelet to report the failed pull on the new node pod',
      async () =>
        (await podsOf(NODE_SELECTOR)).some(
          (p) =>
            p.spec.nodeName === node.nodeName &&
            (p.status?.containerStatuses ?? []).some((c: any) => /ErrImagePull|ImagePullBackOff/.test(c.state?.waiting?.reason ?? '')),
        ),
      WAIT_MS,
      500,
    );
    const broken = await waitFor(
      'DriverReady=False naming the node and the pull failure',
      async () => {
        const c = await driverReady();
        return c?.status === 'False' &&
          c.message.includes(node.nodeName) &&
          /ErrImagePull|ImagePullBackOff/.test(`${c.reason} ${c.message}`)
          ? c
          : undefined;
      },
      60_000,
      500,
    );
    expect(broken.reason).to.match(/ErrImagePull|ImagePullBackOff|PluginsNotRunning/);
    // Events of the pool with `reason` last seen since `since` (event times have whole seconds).
    const poolEvents = async (reason: string, since: number) =>
      (await admin.list<any>(EVENTS, { namespace: 'default' })).items.filter(
        (e) => e.involvedObject.name === dynPool && e.reason === reason && Date.parse(e.lastTimestamp ?? e.eventTime) >= since - 1000,
      );
    const warning = await waitFor(
      'a DriverNotReady event on the pool',
      async () => (await poolEvents('DriverNotReady', brokenAt))[0],
      30_000,
      500,
    );
    expect(warning.type).to.equal('Warning');
    expect(warning.message).to.include(node.nodeName);
    // The published volumes do not need the plugin process: the pod keeps writing while none runs.
    await writerKeepsWriting('while no node plugin runs');
    const fixedAt = Date.now();
    await pickOperatorPorts();
    await applyOverlay([...agentArgs(), '--image', `stowage=${rollRef}`]);
    await runningPod(NODE_SELECTOR, NODE_CONTAINER, 'the node pod of the good tag to run again', (p) =>
      p.spec.containers.some((x: any) => x.name === NODE_CONTAINER && x.image === rollRef),
    );
    const fixed = await waitFor(
      'DriverReady=True again',
      async () => {
        const c = await driverReady();
        return c?.status === 'True' ? c : undefined;
      },
      60_000,
      500,
    );
    expect(fixed.reason).to.equal('PluginsRunning');
    expect(
      (await waitFor('a DriverReady event on the pool', async () => (await poolEvents('DriverReady', fixedAt))[0], 30_000, 500)).type,
    ).to.equal('Normal');
    await waitFor(
      'the controller to run the good tag again',
      async () =>
        (await podsOf(CONTROLLER_SELECTOR)).some(
          (p) =>
            !p.metadata.deletionTimestamp && p.spec.containers.some((x: any) => x.name === CONTROLLER_CONTAINER && x.image === rollRef),
        ),
      WAIT_MS,
      500,
    );
    await writerKeepsWriting('after the plugin is back');
  });

  it('after the replacements, deleting the writer unpublishes and unstages (no stale mount); released claims wipe the Local disk and delete the Dynamic volume', async function () {
    const lines = await writerLines();
    await deletePodAndWait(admin, appNs, writer!.name);
    expect(await podMounts(node, writer!.uid), 'kubelet unmounted the volume').to.deep.equal([]);
    expect(mountsBelow(`${node.rootDir}/pods/${writer!.uid}/`)).to.deep.equal([]);
    expect(await writerLines()).to.be.at.least(lines);
    const pvName = (await admin.get<Pvc>(PERSISTENT_VOLUME_CLAIMS, 'data', appNs)).spec.volumeName!;
    const old = await admin.get<PersistentVolume>(PERSISTENT_VOLUMES, pvName);
    await admin.delete(PERSISTENT_VOLUME_CLAIMS, 'data', { namespace: appNs });
    await waitFor(
      'the containerised agent to wipe the released disk (a fresh PV)',
      async () => {
        const p = await admin.getIfExists<PersistentVolume>(PERSISTENT_VOLUMES, pvName);
        return p && p.metadata.uid !== old.metadata.uid && p.status?.phase === 'Available' ? p : undefined;
      },
      WAIT_MS,
      500,
    );
    expect(existsSync(writer!.hostLogs[0]), "the released volume's data is gone").to.equal(false);
    // kubelet unstaged the Dynamic volume through the rolled plugin; the provisioner (played against
    // the rolled controller's socket) deletes it when its claim goes.
    expect(mountsBelow(`${KUBELET_DIR}/plugins/kubernetes.io/csi/pv/${writer!.dynPv}/`), 'no stale staging mount').to.deep.equal([]);
    const controller = await controllerClient(rollRef);
    const deleted = await deleteClaimVolume({ client: admin, controller, namespace: appNs, claim: 'dyn' });
    expect(deleted).to.deep.equal({ pvName: writer!.dynPv, volumeId: dynVolumeId });
    await waitFor(`PoolVolume ${dynVolumeId} to be gone`, async () => !(await admin.getIfExists(POOL_VOLUMES, dynVolumeId)), WAIT_MS, 500);
    dynVolumeId = '';
  });

  it('the documented uninstall (docs/uninstall.md): pools first, each gone only once the running agent released its disk (Prepared=NotClaimed); then kubectl delete -k. No process, mount, directory, signature, held loop device or Stowage object is left', async function () {
    const devices = loops.devices();
    const disks = (await admin.list<NodeDisk & KubeObject>(NODE_DISKS, { labelSelector: `stowage.dev/node=${node.nodeName}` })).items;
    const poolOfDisk = new Map(disks.map((d) => [d.metadata.name, d.metadata.labels?.[ROLE_LABEL] ?? '']));
    expect([...poolOfDisk.values()].sort(), "each pool holds one of the test's disks").to.deep.equal([localPool, dynPool].sort());
    // Before the uninstall both disks carry Stowage's filesystems, mounted on the host.
    const hostMounts = () =>
      readFileSync('/proc/self/mounts', 'utf8')
        .split('\n')
        .filter((l) => l.includes(AGENT_ROOT) || devices.some((d) => l.startsWith(`${d} `)));
    const diskStates = () =>
      disks.map(
        (d) =>
          `${d.metadata.name} ${d.spec.devicePath} claim=${JSON.stringify(d.spec.claim)} labels=${JSON.stringify(d.metadata.labels)} ${JSON.stringify(findCondition(d.status?.conditions, 'Prepared'))}`,
      );
    for (const d of devices)
      expect(
        mountsOfDevices([d]),
        `${d} mounted before the uninstall; host mounts: ${hostMounts().join('; ')}; disks: ${diskStates().join('; ')}`,
      ).to.not.deep.equal([]);
    const nodePod = (await podsOf(NODE_SELECTOR)).find((p) => p.spec.nodeName === node.nodeName && !p.metadata.deletionTimestamp);
    expect(nodePod, 'a node pod runs').to.not.equal(undefined);

    // Step 1, as the user types it. Every Ready reason of every pool, from a watch opened before.
    const seen = new Map<string, Array<{ reason: string; message: string }>>();
    const gone = new Set<string>();
    const listed = await admin.list<Pool & KubeObject>(STORAGE_POOLS);
    expect(listed.items.map((p) => p.metadata.name).sort(), 'the pools left to uninstall').to.deep.equal([localPool, dynPool].sort());
    const abort = new AbortController();
    const watching = admin.watch(
      resourcePath(STORAGE_POOLS),
      { resourceVersion: listed.metadata.resourceVersion },
      (ev: any) => {
        const name = ev.object?.metadata?.name;
        if (!name) return;
        if (ev.type === 'DELETED') gone.add(name);
        const ready = condition(ev.object, 'Ready');
        const reasons = seen.get(name) ?? [];
        if (ready && reasons.at(-1)?.reason !== ready.reason) reasons.push({ reason: ready.reason, message: ready.message });
        seen.set(name, reasons);
      },
      abort.signal,
    );
    try {
      await kubectl('delete', 'storagepools', '--all', '--wait=false');
      await waitFor(
        'no StoragePool to be left',
        async () => (await kubectl('get', 'storagepools', '-o', 'name')).trim() === '',
        WAIT_MS,
        500,
      );
      await waitFor('the watch to see both pools deleted', () => gone.has(localPool) && gone.has(dynPool), 30_000, 200);
    } finally {
      abort.abort();
      await watching.catch(() => undefined);
    }
    dynPoolCreated = false;
    localPoolCreated = false;
    for (const d of disks) {
      const pool = poolOfDisk.get(d.metadata.name)!;
      // Each pool waited for its disk: seen DisksReleasing naming the disk and its node, or (the
      // agent faster than the watch) gone only with its disk released, which is checked below.
      const releasing = (seen.get(pool) ?? []).find((r) => r.reason === 'DisksReleasing');
      if (releasing)
        expect(releasing.message, `pool ${pool}'s DisksReleasing message`).to.contain(d.metadata.name).and.to.contain(node.nodeName);
    }
    // The DaemonSet is still there (step 2 has not run): the agent released the disks, nobody else.
    expect(await admin.getIfExists(DAEMON_SETS, NODE_DAEMONSET, NS), 'the node DaemonSet before step 2').to.not.equal(undefined);
    for (const d of await admin
      .list<NodeDisk & KubeObject>(NODE_DISKS, { labelSelector: `stowage.dev/node=${node.nodeName}` })
      .then((l) => l.items)) {
      const prepared = findCondition(d.status?.conditions, 'Prepared');
      expect(prepared, `${d.metadata.name}'s Prepared condition`).to.deep.include({ status: 'False', reason: 'NotClaimed' });
      expect(
        prepared!.observedGeneration ?? d.metadata.generation,
        `${d.metadata.name}: Prepared is about its cleared claim`,
      ).to.be.at.least(d.metadata.generation ?? 0);
      expect(d.spec.claim, `${d.metadata.name}'s claim`).to.equal(undefined);
      expect(d.metadata.labels?.[POOL_LABEL], `${d.metadata.name}'s pool label`).to.equal(undefined);
    }
    const hostLeftovers = async (when: string): Promise<void> => {
      expect(mountsOfDevices(devices), `mounts of the test's disks ${when}`).to.deep.equal([]);
      expect(mountsBelow(`${AGENT_ROOT}/`), `mounts under ${AGENT_ROOT} ${when}`).to.deep.equal([]);
      for (const dir of AGENT_STATE_DIRS) expect(entriesBelow(dir), `entries under ${dir} ${when}`).to.deep.equal([]);
      expect(
        entriesBelow(AGENT_ROOT).filter((e) => !AGENT_STATE_DIRS.includes(path.join(AGENT_ROOT, e))),
        `other entries under ${AGENT_ROOT} ${when}`,
      ).to.deep.equal([]);
      for (const d of devices) {
        expect((await run('wipefs', ['--no-act', '--noheadings', d])).trim(), `signatures on ${d} ${when}`).to.equal('');
      }
      expect(holdersOf(devices), `the test's loop devices held ${when}`).to.deep.equal([]);
    };
    await hostLeftovers('after step 1');
    // The node pod was not replaced meanwhile: the release was the running agent's.
    expect((await podsOf(NODE_SELECTOR)).map((p) => p.metadata.uid)).to.include(nodePod.metadata.uid);

    // Step 2 (the test's overlay of config/default).
    await kubectl('delete', '-k', overlay, '--wait=true');
    await waitFor(`namespace ${NS} to be gone`, async () => !(await admin.getIfExists(NAMESPACES, NS)), WAIT_MS, 500);
    await waitFor('every containerised Stowage process to exit', () => stowageProcesses().length === 0, 60_000, 500);
    expect(podUids.size).to.be.greaterThan(2);
    for (const uid of podUids) expect(mountsBelow(`${node.rootDir}/pods/${uid}/`), `mounts of pod ${uid}`).to.deep.equal([]);
    expect(loopDevices()).to.deep.equal(loopsBefore);
    await hostLeftovers('after step 2');
    // No Stowage object: its CRDs (with them every StoragePool, NodeDisk and PoolVolume), the PVs
    // and StorageClasses of its pools, the CSIDriver, its cluster-wide RBAC; the namespace is gone above.
    const ours = (o: KubeObject) =>
      o.metadata.name!.startsWith('stowage') ||
      o.metadata.labels?.[MANAGED_BY_LABEL] === 'stowage' ||
      o.metadata.labels?.[POOL_LABEL] !== undefined;
    await waitFor(
      'the stowage.dev CRDs to be gone',
      async () => (await admin.list<any>(CUSTOM_RESOURCE_DEFINITIONS)).items.every((c) => c.spec.group !== 'stowage.dev'),
      WAIT_MS,
      500,
    );
    const poolNames = [localPool, dynPool, dynamicPool];
    expect(
      (await admin.list<PersistentVolume & KubeObject>(PERSISTENT_VOLUMES)).items
        .filter((pv) => poolNames.includes(pv.spec.storageClassName ?? '') || (pv.spec as any).csi?.driver === DRIVER_NAME || ours(pv))
        .map((pv) => pv.metadata.name),
      'PVs of Stowage',
    ).to.deep.equal([]);
    expect(
      (await admin.list<any>(STORAGE_CLASSES)).items
        .filter((sc) => poolNames.includes(sc.metadata.name) || sc.provisioner === DRIVER_NAME || ours(sc))
        .map((sc) => sc.metadata.name),
      'StorageClasses of Stowage',
    ).to.deep.equal([]);
    expect(await admin.getIfExists(CSI_DRIVERS, DRIVER_NAME), 'the CSIDriver').to.equal(undefined);
    for (const rt of [CLUSTER_ROLES, CLUSTER_ROLE_BINDINGS]) {
      expect(
        (await admin.list<KubeObject>(rt)).items.filter(ours).map((o) => o.metadata.name),
        rt.plural,
      ).to.deep.equal([]);
    }
    // kubelet forgot the driver: the plugin's registration went with its pod.
    await waitFor(
      `CSINode ${node.nodeName} to stop listing ${DRIVER_NAME}`,
      async () => !(await admin.getIfExists<any>(CSI_NODES, node.nodeName))?.spec?.drivers?.some((d: any) => d.name === DRIVER_NAME),
      60_000,
      500,
    );
  });
});

// Acceptance of the install and the driver stack on the real control plane: `kubectl apply -k
// config/default`, the operator running with a token of its own ServiceAccount (TokenRequest API),
// the DaemonSet and its pods, the CSI parts following Dynamic pools, drift undone, least privilege
// proven call by call, and an uninstall that leaves nothing.

import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { STORAGE_POOLS, NODE_DISKS } from '../../src/crds/resource-types.js';
import { KubeClient, type ApiCall } from '../../src/kube/client.js';
import { CSI_DRIVERS, DAEMON_SETS, DEPLOYMENTS, NAMESPACES, PODS, EVENTS, PERSISTENT_VOLUMES } from '../../src/kube/resources.js';
import type { KubeObject } from '../../src/kube/types.js';
import { imageTable } from '../../src/operator/driver-stack/images.js';
import { parseServerVersion, sidecarProfile } from '../../src/operator/driver-stack/sidecars.js';
import { CSI_CONTROLLER_DEPLOYMENT, DRIVER_NAME, NODE_DAEMONSET, desiredDriverStack } from '../../src/operator/driver-stack/render.js';
import { OPERATOR_FIELD_MANAGER } from '../../src/operator/main.js';
import { isSubset } from '../../src/runtime/apply.js';
import { Manager } from '../../src/runtime/manager.js';
import { setupControllers } from '../../src/operator/setup.js';
import type { ControlPlane } from '../cluster/control-plane.js';
import { deleteNode, registerReadyNode } from '../cluster/nodes.js';
import { adminClient, uniqueName, waitFor } from '../support/cluster.js';
import { OperatorProcess } from '../support/operator-process.js';
import { AgentDouble } from '../support/agent-double.js';
import { LoopDevices } from '../support/loop-devices.js';
import { startNodeAgent, type NodeAgent } from '../../src/node/agent/agent.js';
import { csiV1 } from '../../src/csi/grpc.js';
import { startCsiControllerServer, type CsiControllerServer } from '../../src/csi/controller-main.js';
import { DynamicPoolFixture, call, type CsiClient } from '../csi/fixture.js';
import { startPoolVolumeRealizer, type RunningRealizer } from '../../src/node/engine/volume-realizer.js';
import { startPoolSnapshotRealizer, type RunningSnapshotRealizer } from '../../src/node/engine/snapshot-realizer.js';
import { startCsiNodeServer, type CsiNodeServer } from '../../src/csi/node-service.js';
import { Informer } from '../../src/runtime/informer.js';
import { CONFIG_DIR, validateModel } from './models.js';
import { grantKey, grantsOf, type Grant } from './rbac.js';
import { installSnapshotCrds, removeSnapshotCrds } from '../support/snapshot-crds.js';
import { VOLUME_SNAPSHOT_CLASSES } from '../../src/operator/storagepool/snapshot-class.js';

type Any = any;

const NS = 'stowage-system';
const LEASE = 'stowage-operator';
const RESYNC_MS = 2_000;

describe('install and driver stack (real control plane)', function () {
  this.timeout(300_000);
  let cp: ControlPlane;
  let admin: KubeClient;
  let tmp: string;
  let kubeconfig: string;
  let operator: OperatorProcess | undefined;
  let inProcess: { abort: AbortController; running: Promise<unknown>; client: KubeClient } | undefined;
  let installed = false;
  let agent: AgentDouble | undefined;
  let nodeAgent: NodeAgent | undefined;
  const loops = new LoopDevices();
  /** Every call the node daemon's parts made on their own token, across the two tests that run them. */
  const nodeCallsAll: ApiCall[] = [];
  const nodes = [uniqueName('stack-node'), uniqueName('stack-node')];
  const pools: string[] = [];

  const kubectl = async (...args: string[]): Promise<string> => {
    const r = await cp.kubectl(args, { timeoutMs: 180_000 });
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  };
  const live = (rt: typeof DAEMON_SETS, name: string, namespace?: string) => admin.getIfExists<Any>(rt, name, namespace);

  /** A kubeconfig that authenticates as `serviceAccount` with a token from the TokenRequest API. */
  async function serviceAccountKubeconfig(serviceAccount: string): Promise<string> {
    const answer = await admin.request<{ status: { token: string } }>({
      method: 'POST',
      path: `/api/v1/namespaces/${NS}/serviceaccounts/${serviceAccount}/token`,
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } },
    });
    const file = join(tmp, `${serviceAccount}.kubeconfig`);
    const config = {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'test', cluster: { server: cp.server, 'certificate-authority': cp.caCertPath } }],
      users: [{ name: serviceAccount, user: { token: answer.status.token } }],
      contexts: [{ name: 'test', context: { cluster: 'test', user: serviceAccount, namespace: NS } }],
      'current-context': 'test',
    };
    await writeFile(file, JSON.stringify(config), { mode: 0o600 });
    return file;
  }

  async function createDynamicPool(): Promise<string> {
    const name = uniqueName('stack-dyn');
    pools.push(name);
    await admin.create(STORAGE_POOLS, {
      apiVersion: 'stowage.dev/v1alpha1',
      kind: 'StoragePool',
      metadata: { name },
      spec: { mode: 'Dynamic', disks: { selector: { matchLabels: { 'stowage.dev/test-pool': name } } }, replicated: { size: 1 } },
    });
    return name;
  }

  async function createLocalPool(node: string): Promise<string> {
    const name = uniqueName('stack-local');
    pools.push(name);
    await admin.create(STORAGE_POOLS, {
      apiVersion: 'stowage.dev/v1alpha1',
      kind: 'StoragePool',
      metadata: { name },
      spec: {
        mode: 'Local',
        disks: { selector: { matchLabels: { 'stowage.dev/node': node } } },
        local: { volumeMode: 'Filesystem', fsType: 'ext4' },
      },
    });
    return name;
  }

  async function csiParts(): Promise<{ driver?: Any; deployment?: Any }> {
    return { driver: await live(CSI_DRIVERS, DRIVER_NAME), deployment: await live(DEPLOYMENTS, CSI_CONTROLLER_DEPLOYMENT, NS) };
  }

  /** The pool is deleted by the operator's own finalizer handling; the CSI parts go with the last Dynamic pool. */
  async function deletePoolAndWaitForCsiRemoval(name: string): Promise<void> {
    await admin.delete(STORAGE_POOLS, name);
    await waitFor(`pool ${name} to be gone`, async () => !(await admin.getIfExists(STORAGE_POOLS, name)), 60_000);
    await waitFor(
      'the CSIDriver and the CSI controller Deployment to be removed',
      async () => {
        const { driver, deployment } = await csiParts();
        return !driver && !deployment;
      },
      60_000,
    );
  }

  /** A hand edit of managed DaemonSet fields, then the wait until the operator has undone it. */
  async function editDaemonSetAndWaitForRepair(): Promise<void> {
    const before = await live(DAEMON_SETS, NODE_DAEMONSET, NS);
    const containers = before.spec.template.spec.containers.map((c: Any) => ({ name: c.name, image: c.image }));
    containers[0].image = 'example.invalid/tampered:1';
    // A strategic-merge patch as `kubectl edit` sends it, under kubectl's field manager.
    const edited = await admin.request<Any>({
      method: 'PATCH',
      path: `/apis/apps/v1/namespaces/${NS}/daemonsets/${NODE_DAEMONSET}`,
      query: { fieldManager: 'kubectl-edit' },
      body: { spec: { template: { spec: { containers, priorityClassName: null } } } },
      contentType: 'application/strategic-merge-patch+json',
    });
    // The edit took (the server's answer to it); the operator may undo it within milliseconds.
    expect(edited.spec.template.spec.containers[0].image).to.equal('example.invalid/tampered:1');
    expect(edited.spec.template.spec.priorityClassName).to.equal(undefined);
    await waitFor(
      'the operator to undo the hand edit',
      async () => {
        const ds = await live(DAEMON_SETS, NODE_DAEMONSET, NS);
        return (
          ds.spec.template.spec.containers[0].image === imageTable().stowage &&
          ds.spec.template.spec.priorityClassName === 'system-node-critical'
        );
      },
      RESYNC_MS * 10,
    );
  }

  before(async () => {
    ({ cp, client: admin } = await adminClient());
    tmp = await mkdtemp(join(tmpdir(), 'stowage-stack-'));
    for (const node of nodes) await registerReadyNode(cp, node);
  });

  after(async () => {
    if (inProcess) {
      inProcess.abort.abort();
      await inProcess.running.catch(() => undefined);
      inProcess.client.close();
    }
    await operator?.stop();
    if (agent) {
      await agent.stop();
      await agent.removeAll().catch(() => undefined);
    }
    for (const name of pools) {
      await admin.delete(STORAGE_POOLS, name).catch(() => undefined);
      await admin.mergePatch(STORAGE_POOLS, name, { metadata: { finalizers: null } }).catch(() => undefined);
    }
    await nodeAgent?.stop();
    // Anything still mounted under the test's directory (the agent's root) goes before the devices do.
    for (const line of (await readFile('/proc/self/mounts', 'utf8')).split('\n')) {
      const target = line.split(' ')[1];
      if (tmp && target?.startsWith(tmp)) await new Promise((r) => execFile('umount', ['-l', target], r));
    }
    await loops.cleanup();
    for (const node of nodes) {
      for (const disk of (await admin.list(NODE_DISKS, { labelSelector: `stowage.dev/node=${node}` }).catch(() => ({ items: [] }))).items) {
        await admin.delete(NODE_DISKS, disk.metadata.name!).catch(() => undefined);
      }
    }
    for (const node of nodes) await deleteNode(cp, node).catch(() => undefined);
    if (installed) await uninstall().catch((err) => console.error(`uninstall after a failure: ${String(err)}`));
    admin?.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  /**
   * `kubectl delete -k config/default`. No kubelet runs here to confirm that a pod's containers
   * stopped, so pods of the deleted namespace are removed as a kubelet would then remove them
   * (grace period 0); otherwise the namespace would wait for them forever.
   */
  async function uninstall(): Promise<void> {
    await kubectl('delete', '-k', join(CONFIG_DIR, 'default'), '--wait=false', '--ignore-not-found');
    installed = false;
    await waitFor(
      'namespace stowage-system to be gone',
      async () => {
        // A poll: the namespace may be going away under it; the check below decides.
        await kubectl('delete', 'pods', '--all', '-n', NS, '--grace-period=0', '--force', '--ignore-not-found').catch(() => undefined);
        return !(await admin.getIfExists(NAMESPACES, NS));
      },
      180_000,
      1_000,
    );
  }

  it('installs with `kubectl apply -k config/default` (kubectl v1.20.2, a server without CEL)', async () => {
    const out = await kubectl('apply', '-k', join(CONFIG_DIR, 'default'));
    installed = true;
    for (const expected of [
      'namespace/stowage-system',
      'customresourcedefinition.apiextensions.k8s.io/storagepools.stowage.dev',
      'serviceaccount/stowage-operator',
      'clusterrole.rbac.authorization.k8s.io/stowage-operator',
      'deployment.apps/stowage-operator',
      'service/stowage-operator-metrics',
    ]) {
      expect(out).to.contain(expected);
    }
    await kubectl('wait', '--for=condition=Established', '--timeout=60s', 'crd/storagepools.stowage.dev', 'crd/nodedisks.stowage.dev');
    kubeconfig = await serviceAccountKubeconfig('stowage-operator');
  });

  it('least privilege: the operator does its whole job with its own token, and uses every permission its roles grant', async () => {
    const client = await KubeClient.load({ kubeconfig, userAgent: 'stowage-operator/least-privilege-test' });
    const calls: ApiCall[] = [];
    client.observe((call) => calls.push(call));
    // Exactly what runOperator builds, on the ServiceAccount's client, with a short resync.
    const manager = new Manager({
      client,
      leaderElection: { namespace: NS, name: LEASE, identity: uniqueName('least-privilege') },
      informerDefaults: { resyncMs: RESYNC_MS },
    });
    setupControllers(manager, {
      workers: 2,
      fieldManager: OPERATOR_FIELD_MANAGER,
      driverStack: { namespace: NS, images: imageTable(), resyncMs: RESYNC_MS },
    });
    const abort = new AbortController();
    inProcess = { abort, running: manager.run(abort.signal), client };

    const deniedCalls = () => [
      ...new Set(
        calls
          .filter((c) => c.code === 403)
          .map(
            (c) => `${c.verb} ${c.group || 'core'} ${c.resource}${c.subresource ? `/${c.subresource}` : ''} in ${c.namespace ?? 'cluster'}`,
          ),
      ),
    ];
    try {
      await waitFor('DaemonSet stowage-node', () => live(DAEMON_SETS, NODE_DAEMONSET, NS), 60_000);
      // A cluster that takes snapshots: the Dynamic pool gets a VolumeSnapshotClass (created, then patched).
      await installSnapshotCrds(admin);
      const pool = await createDynamicPool();
      await waitFor(
        'the CSI parts for the Dynamic pool',
        async () => {
          const { driver, deployment } = await csiParts();
          return driver && deployment;
        },
        60_000,
      );
      await waitFor("the pool's VolumeSnapshotClass", () => admin.getIfExists(VOLUME_SNAPSHOT_CLASSES, pool), 60_000);
      await admin.mergePatch(STORAGE_POOLS, pool, { spec: { snapshots: { deletionPolicy: 'Retain' } } });
      await waitFor(
        'the class to follow the pool',
        async () => (await admin.getIfExists<Any>(VOLUME_SNAPSHOT_CLASSES, pool))?.deletionPolicy === 'Retain',
        60_000,
      );
      // Converged: several resyncs send no write to the stack (a 1.20 server drops the CSIDriver's
      // storageCapacity, so "live contains desired" alone would rewrite it every time).
      await new Promise((r) => setTimeout(r, RESYNC_MS));
      const mark = calls.length;
      await new Promise((r) => setTimeout(r, 3 * RESYNC_MS));
      const stackWrites = calls
        .slice(mark)
        .filter((c) => !['get', 'list', 'watch'].includes(c.verb) && ['daemonsets', 'deployments', 'csidrivers'].includes(c.resource));
      expect(
        stackWrites.map((c) => `${c.verb} ${c.resource}`),
        'writes to a converged stack',
      ).to.deep.equal([]);
      await editDaemonSetAndWaitForRepair();
      await deletePoolAndWaitForCsiRemoval(pool);

      // Local pools: the claim protocol with the agent's side played by the protocol double — claim
      // (NodeDisk patch), StorageClass (apply) and PV (create; a hand edit repaired by apply), release when the selector stops
      // matching (PV delete, NodeDisk patch), the same claim again (the repeated Event is patched).
      agent = new AgentDouble(admin);
      const disk = `${nodes[0]}-lp`;
      await agent.addDisk({ name: disk, node: nodes[0], capacity: '100Gi', media: 'ssd' });
      await agent.start();
      const local = await createLocalPool(nodes[0]);
      const pvCount = async () =>
        (await admin.list<KubeObject>(PERSISTENT_VOLUMES, { labelSelector: `stowage.dev/pool=${local}` })).items.length;
      await waitFor('the local PV', async () => (await pvCount()) === 1, 60_000);
      // A hand edit of the PV is undone (PV patch).
      const [localPv] = (await admin.list<Any>(PERSISTENT_VOLUMES, { labelSelector: `stowage.dev/pool=${local}` })).items;
      await admin.mergePatch(PERSISTENT_VOLUMES, localPv.metadata.name, { spec: { persistentVolumeReclaimPolicy: 'Retain' } });
      await waitFor(
        'the PV repaired',
        async () => (await admin.get<Any>(PERSISTENT_VOLUMES, localPv.metadata.name)).spec.persistentVolumeReclaimPolicy === 'Delete',
        60_000,
      );
      const select = (node: string) =>
        admin.mergePatch(STORAGE_POOLS, local, { spec: { disks: { selector: { matchLabels: { 'stowage.dev/node': node } } } } });
      await select('no-such-node');
      await waitFor(
        'the disk to be released and its PV deleted',
        async () => (await pvCount()) === 0 && agent!.live(disk)?.spec.claim === undefined,
        60_000,
      );
      await select(nodes[0]);
      await waitFor(
        'the disk claimed again, with the repeated DiskClaimed event counted',
        async () => {
          const events = await admin.list<Any>(EVENTS, { namespace: 'default', fieldSelector: `involvedObject.name=${local}` });
          return (await pvCount()) === 1 && events.items.some((e) => e.reason === 'DiskClaimed' && e.count >= 2);
        },
        60_000,
        500,
      );
      await admin.delete(STORAGE_POOLS, local);
      await waitFor(
        'the Local pool to be finalized and its PV deleted',
        async () => !(await admin.getIfExists(STORAGE_POOLS, local)) && (await pvCount()) === 0,
        60_000,
      );
      await new Promise((r) => setTimeout(r, 3 * RESYNC_MS)); // lease renewals, resyncs
    } catch (err) {
      throw new Error(`${(err as Error).message}; calls denied so far: ${deniedCalls().join('; ') || 'none'}`, { cause: err });
    } finally {
      abort.abort();
      await inProcess.running;
      inProcess = undefined;
      client.close();
      await removeSnapshotCrds(admin).catch(() => undefined);
    }

    expect(deniedCalls(), 'calls the install does not permit; add the rule to config/rbac').to.deep.equal([]);
    // A server-side apply that creates its object (201) is authorized as `patch` and `create`.
    const verbsOf = (c: ApiCall): string[] => (c.verb === 'patch' && c.code === 201 ? ['patch', 'create'] : [c.verb]);
    const used = (g: Grant): boolean =>
      calls.some(
        (c) =>
          verbsOf(c).includes(g.verb) &&
          c.group === g.group &&
          (c.subresource ? `${c.resource}/${c.subresource}` : c.resource) === g.resource &&
          (g.namespace === undefined || c.namespace === g.namespace),
      );
    const grants = await grantsOf('stowage-operator', NS);
    expect(grants.filter((g) => !used(g)).map(grantKey), 'granted but never used: remove from config/rbac').to.deep.equal([]);
  });

  it('the operator process, with its own token, creates the DaemonSet, and kube-controller-manager one pod per Node with the privileges and mounts', async () => {
    // Start from nothing, as a fresh install does.
    await admin.delete(DAEMON_SETS, NODE_DAEMONSET, { namespace: NS, propagationPolicy: 'Background' });
    await waitFor('the old DaemonSet to be gone', async () => !(await live(DAEMON_SETS, NODE_DAEMONSET, NS)), 60_000);
    // No kubelet confirms that the old pods stopped; remove them as it would.
    await kubectl(
      'delete',
      'pods',
      '-n',
      NS,
      '-l',
      'app.kubernetes.io/component=node',
      '--grace-period=0',
      '--force',
      '--ignore-not-found',
    );
    operator = await OperatorProcess.start(kubeconfig, ['--leader-elect', '--leader-election-namespace', NS, '--namespace', NS]);

    const ds = await waitFor('DaemonSet stowage-node', () => live(DAEMON_SETS, NODE_DAEMONSET, NS), 60_000);
    expect(ds.metadata.managedFields.map((f: Any) => f.manager)).to.include(OPERATOR_FIELD_MANAGER);
    const pods = await waitFor(
      'one stowage-node pod on each registered Node',
      async () => {
        const list = await admin.list<Any>(PODS, { namespace: NS, labelSelector: 'app.kubernetes.io/component=node' });
        const mine = list.items.filter(
          (p) =>
            nodes.includes(p.spec.nodeName) && !p.metadata.deletionTimestamp && p.metadata.ownerReferences?.[0]?.uid === ds.metadata.uid,
        );
        return mine.length === nodes.length && new Set(mine.map((p) => p.spec.nodeName)).size === nodes.length ? mine : undefined;
      },
      90_000,
      500,
    );
    for (const pod of pods) {
      const spec = pod.spec;
      const node = spec.containers.find((c: Any) => c.name === 'stowage-node');
      expect(node.securityContext.privileged, pod.metadata.name).to.equal(true);
      const propagation = Object.fromEntries(node.volumeMounts.map((m: Any) => [m.mountPath, m.mountPropagation]));
      expect(propagation).to.include({
        '/var/lib/kubelet': 'Bidirectional',
        '/var/lib/stowage': 'Bidirectional',
        '/dev': 'HostToContainer',
      });
      expect(node.volumeMounts.map((m: Any) => m.mountPath)).to.include.members(['/sys', '/run/udev']);
      const hostPaths = spec.volumes.filter((v: Any) => v.hostPath).map((v: Any) => v.hostPath.path);
      expect(hostPaths).to.include.members(['/dev', '/sys', '/run/udev', '/var/lib/kubelet', '/var/lib/stowage']);
      // The default registration (self): Stowage's image alone registers with kubelet through the
      // kubelet directory and serves its own liveness.
      expect(spec.containers.map((c: Any) => c.name)).to.deep.equal(['stowage-node']);
      expect(node.args).to.include('--kubelet-registration-dir=/var/lib/kubelet/plugins_registry');
      expect(spec.serviceAccountName).to.equal('stowage-node');
      expect(spec.priorityClassName).to.equal('system-node-critical');
      expect(spec.tolerations).to.deep.include({ operator: 'Exists' });
    }
  });

  it('adds the CSIDriver and the CSI controller Deployment with a Dynamic pool, as rendered, keeps them while a volume of the driver exists, and removes them with the last one', async () => {
    // A CSIDriver of the same name left with a different immutable field (say, by an older
    // install): with no volume depending on it, the operator recreates it.
    await admin.create(CSI_DRIVERS, {
      apiVersion: 'storage.k8s.io/v1',
      kind: 'CSIDriver',
      metadata: { name: DRIVER_NAME },
      spec: { attachRequired: true },
    });
    const pool = await createDynamicPool();
    const { driver, deployment } = await waitFor(
      'the CSI parts, with the CSIDriver recreated as rendered',
      async () => {
        const parts = await csiParts();
        return parts.driver && parts.deployment && parts.driver.spec.attachRequired === false ? parts : undefined;
      },
      60_000,
    );
    // The sidecars and their flags follow the server's version (a 1.20 server gets the 3.x provisioner line).
    const version = parseServerVersion(await admin.request<{ gitVersion?: string }>({ method: 'GET', path: '/version' }));
    const sidecars = sidecarProfile(version)!;
    expect(version.minor, `the profile for ${version.gitVersion}`)
      .to.be.at.least(sidecars.minMinor)
      .and.below(sidecars.maxMinor ?? Infinity);
    expect(sidecars.capacityTracking, `capacity tracking on ${version.gitVersion}`).to.equal(version.minor >= 21);
    const rendered = desiredDriverStack({ dynamicPools: 1, images: imageTable([], sidecars.images), namespace: NS, sidecars });
    expect(driver.spec).to.include({ attachRequired: false, podInfoOnMount: true, fsGroupPolicy: 'File' });
    expect(driver.spec.volumeLifecycleModes).to.deep.equal(['Persistent']);
    expect((rendered[2] as Any).spec.template.spec.containers.map((c: Any) => c.image)).to.deep.equal(
      deployment.spec.template.spec.containers.map((c: Any) => c.image),
    );
    // What the server stored still validates against the official schema, and holds every field
    // the renderer (`stowage render`) states — except, on 1.20, CSIDriver.spec.storageCapacity, which
    // a server without the CSIStorageCapacity feature gate (alpha, off, before 1.21) drops.
    const daemonSet = await live(DAEMON_SETS, NODE_DAEMONSET, NS);
    for (const obj of [driver, deployment, daemonSet]) {
      const { status: _s, ...spec } = obj;
      expect(
        () =>
          validateModel({ ...spec, metadata: { name: obj.metadata.name, namespace: obj.metadata.namespace, labels: obj.metadata.labels } }),
        obj.kind,
      ).not.to.throw();
    }
    const [dsWanted, driverWanted, deployWanted] = rendered.map(({ apiVersion: _a, kind: _k, ...rest }) => rest) as Any[];
    expect(isSubset(dsWanted, daemonSet), 'DaemonSet as rendered').to.equal(true);
    expect(isSubset(deployWanted, deployment), 'Deployment as rendered').to.equal(true);
    const { storageCapacity: dropped, ...driverSpec } = driverWanted.spec;
    expect(
      isSubset({ ...driverWanted, spec: version.minor >= 21 ? driverWanted.spec : driverSpec }, driver),
      'CSIDriver as rendered',
    ).to.equal(true);
    if (version.minor < 21)
      expect(driver.spec.storageCapacity, `${version.gitVersion} drops storageCapacity (asked: ${dropped})`).to.equal(undefined);

    // A volume of the driver keeps the CSI parts after its pool is gone; they go with the last one.
    const volume = uniqueName('stack-csi-pv');
    await admin.create(PERSISTENT_VOLUMES, {
      metadata: { name: volume },
      spec: {
        capacity: { storage: '1Gi' },
        accessModes: ['ReadWriteOnce'],
        persistentVolumeReclaimPolicy: 'Retain',
        csi: { driver: DRIVER_NAME, volumeHandle: volume },
      },
    });
    try {
      await admin.delete(STORAGE_POOLS, pool);
      await waitFor(`pool ${pool} to be gone`, async () => !(await admin.getIfExists(STORAGE_POOLS, pool)), 60_000);
      await new Promise((r) => setTimeout(r, 3_000));
      const kept = await csiParts();
      expect(Boolean(kept.driver && kept.deployment), 'CSI parts while a volume of the driver exists').to.equal(true);
    } finally {
      await admin.delete(PERSISTENT_VOLUMES, volume);
    }
    await deletePoolAndWaitForCsiRemoval(pool);
  });

  it('undoes a hand edit of the managed DaemonSet', async () => {
    await editDaemonSetAndWaitForRepair();
    // The operator process's part ends here; the component tests below bring their own parts.
    await operator?.stop();
    operator = undefined;
  });

  it('least privilege: the node agent inventories, prepares and releases a disk with its own token, using every permission its role grants', async () => {
    const client = await KubeClient.load({
      kubeconfig: await serviceAccountKubeconfig('stowage-node'),
      userAgent: 'stowage-node/least-privilege-test',
    });
    const calls: ApiCall[] = [];
    client.observe((call) => calls.push(call));
    client.observe((call) => nodeCallsAll.push(call));
    // The claim side: the real operator, on its own token too.
    const operatorClient = await KubeClient.load({ kubeconfig, userAgent: 'stowage-operator/least-privilege-test' });
    const manager = new Manager({ client: operatorClient, informerDefaults: { resyncMs: RESYNC_MS } });
    setupControllers(manager, { workers: 2, fieldManager: OPERATOR_FIELD_MANAGER });
    const abort = new AbortController();
    const running = manager.run(abort.signal);
    const node = nodes[1];
    try {
      const disk = await loops.create(256 * 1024 * 1024);
      nodeAgent = await startNodeAgent({
        client,
        nodeName: node,
        root: join(tmp, 'agent-root'),
        allowDevices: [disk.device],
        udev: false,
        discoveryIntervalMs: 1_000,
      });
      const nodeDisk = () => admin.list<Any>(NODE_DISKS, { labelSelector: `stowage.dev/node=${node}` }).then((l) => l.items[0]);
      const condition = (d: Any, type: string) => d?.status?.conditions?.find((c: Any) => c.type === type)?.status;
      await waitFor('the loop disk as an Eligible NodeDisk', async () => condition(await nodeDisk(), 'Eligible') === 'True', 60_000);
      const pool = await createLocalPool(node);
      const select = (n: string) =>
        admin.mergePatch(STORAGE_POOLS, pool, { spec: { disks: { selector: { matchLabels: { 'stowage.dev/node': n } } } } });
      const released = async () => {
        const d = await nodeDisk();
        return d.spec.claim === undefined && condition(d, 'Eligible') === 'True' && !d.status?.preparation;
      };
      // Claimed, prepared, released — twice, so the agent's repeated Released event is counted (patched).
      for (let round = 1; round <= 2; round++) {
        if (round > 1) await select(node);
        await waitFor(
          `round ${round}: the claimed disk prepared by the agent`,
          async () => condition(await nodeDisk(), 'Prepared') === 'True',
          60_000,
          250,
        );
        await select('no-such-node');
        await waitFor(`round ${round}: the disk released and Eligible again`, released, 90_000, 250);
      }
      await waitFor(
        'the repeated Released event',
        async () => {
          const events = await admin.list<Any>(EVENTS, {
            namespace: 'default',
            fieldSelector: `involvedObject.name=${(await nodeDisk()).metadata.name}`,
          });
          return events.items.some((e) => e.reason === 'Released' && e.count >= 2);
        },
        30_000,
        250,
      );
      await admin.delete(STORAGE_POOLS, pool);
      await waitFor('the pool to be gone', async () => !(await admin.getIfExists(STORAGE_POOLS, pool)), 60_000);
    } finally {
      await nodeAgent?.stop();
      nodeAgent = undefined;
      abort.abort();
      await running;
      operatorClient.close();
      client.close();
    }
    const denied = [
      ...new Set(
        calls
          .filter((c) => c.code === 403)
          .map((c) => `${c.verb} ${c.group || 'core'} ${c.resource}${c.subresource ? `/${c.subresource}` : ''}`),
      ),
    ];
    expect(denied, 'calls the install does not permit; add the rule to config/rbac').to.deep.equal([]);
    const verbsOf = (c: ApiCall): string[] => (c.verb === 'patch' && c.code === 201 ? ['patch', 'create'] : [c.verb]);
    const used = (g: Grant): boolean =>
      calls.some(
        (c) =>
          verbsOf(c).includes(g.verb) &&
          c.group === g.group &&
          (c.subresource ? `${c.resource}/${c.subresource}` : c.resource) === g.resource,
      );
    // The Dynamic-pool rules of the same role are used by the next test (realizer, CSI Node service).
    const grants = (await grantsOf('stowage-node', NS)).filter((g) => !/^(storagepools|poolvolumes|poolsnapshots)/.test(g.resource));
    expect(grants.filter((g) => !used(g)).map(grantKey), 'granted but never used: remove from config/rbac').to.deep.equal([]);
  });

  it("least privilege: Stowage's CSI controller and the node daemon's Dynamic-pool parts create, realize, stage, expand and delete a volume, each with its own token, using every permission their roles grant", async () => {
    const MiB = 1024 * 1024;
    const mountCap = { mount: { fs_type: '', mount_flags: [] }, access_mode: { mode: 'SINGLE_NODE_WRITER' } };
    // A real Dynamic pool on loop devices with the node side running (the CSI tests' fixture).
    const fx = new DynamicPoolFixture();
    const client = await KubeClient.load({
      kubeconfig: await serviceAccountKubeconfig('stowage-csi-controller'),
      userAgent: 'stowage-csi/least-privilege-test',
    });
    const calls: ApiCall[] = [];
    client.observe((c) => calls.push(c));
    const nodeClient = await KubeClient.load({
      kubeconfig: await serviceAccountKubeconfig('stowage-node'),
      userAgent: 'stowage-node/least-privilege-test',
    });
    const nodeCalls: ApiCall[] = [];
    nodeClient.observe((c) => nodeCalls.push(c));
    nodeClient.observe((c) => nodeCallsAll.push(c));
    let controller: CsiControllerServer | undefined;
    let rpc: CsiClient | undefined;
    let nodeRpc: CsiClient | undefined;
    let realizer: RunningRealizer | undefined;
    let snapshotRealizer: RunningSnapshotRealizer | undefined;
    let nodeServer: CsiNodeServer | undefined;
    const poolInformer = new Informer({ client: nodeClient, resource: STORAGE_POOLS });
    try {
      await fx.start({ diskSizes: [512 * MiB] });
      // The node daemon's Dynamic-pool parts as `stowage node` starts them, on the node's token.
      await fx.stopNodeDaemon();
      poolInformer.start();
      await poolInformer.waitForSync();
      realizer = await startPoolVolumeRealizer({ client: nodeClient, engine: fx.engine, nodeName: fx.node, refreshMs: 1_000 });
      snapshotRealizer = await startPoolSnapshotRealizer({ client: nodeClient, engine: fx.engine, nodeName: fx.node, refreshMs: 1_000 });
      const nodeEndpoint = `unix://${join(tmp, 'csi-node.sock')}`;
      nodeServer = await startCsiNodeServer({ endpoint: nodeEndpoint, nodeName: fx.node, engine: fx.engine, client: nodeClient });
      nodeRpc = new (csiV1() as Any).Node(nodeEndpoint, grpc.credentials.createInsecure()) as CsiClient;
      const endpoint = `unix://${join(tmp, 'csi-controller.sock')}`;
      controller = await startCsiControllerServer({ client, endpoint });
      rpc = new (csiV1() as Any).Controller(endpoint, grpc.credentials.createInsecure()) as CsiClient;
      await waitFor("the controller to see the pool's prepared disks", () => controller!.controller.capacities(fx.pool).length > 0, 30_000);
      const created = await call(rpc, 'CreateVolume', {
        name: uniqueName('pvc'),
        capacity_range: { required_bytes: String(64 * MiB) },
        volume_capabilities: [mountCap],
        parameters: { pool: fx.pool },
      });
      const id = created.volume.volume_id as string;
      const staging = join(tmp, 'staging');
      await waitFor(
        'the volume realized on the node and staged',
        async () => {
          try {
            await call(nodeRpc!, 'NodeStageVolume', { volume_id: id, staging_target_path: staging, volume_capability: mountCap });
            return true;
          } catch {
            return false; // UNAVAILABLE until the realizer reported it Ready
          }
        },
        30_000,
        250,
      );
      await call(nodeRpc, 'NodeUnstageVolume', { volume_id: id, staging_target_path: staging });
      await call(rpc, 'GetCapacity', { volume_capabilities: [mountCap], parameters: { pool: fx.pool } });
      await call(rpc, 'ControllerExpandVolume', {
        volume_id: id,
        capacity_range: { required_bytes: String(96 * MiB) },
        volume_capability: mountCap,
      });
      // Snapshot, restore, and both deleted: the snapshot's data is removed by the node, then its finalizer.
      const snapshot = (await call(rpc, 'CreateSnapshot', { name: uniqueName('snapshot'), source_volume_id: id })).snapshot;
      const restored = (
        await call(rpc, 'CreateVolume', {
          name: uniqueName('pvc'),
          volume_capabilities: [mountCap],
          parameters: { pool: fx.pool },
          volume_content_source: { snapshot: { snapshot_id: snapshot.snapshot_id } },
        })
      ).volume;
      await call(rpc, 'ListSnapshots', {});
      await call(rpc, 'DeleteVolume', { volume_id: restored.volume_id });
      await call(rpc, 'DeleteSnapshot', { snapshot_id: snapshot.snapshot_id });
      await call(rpc, 'DeleteVolume', { volume_id: id });
      await call(rpc, 'DeleteVolume', { volume_id: id }); // idempotent: the volume is looked up, and is gone
      await waitFor('the PoolVolume finalized by the node and gone', async () => (await fx.poolVolumes()).length === 0, 30_000, 250);
    } finally {
      rpc?.close();
      nodeRpc?.close();
      await controller?.stop();
      await nodeServer?.stop();
      await snapshotRealizer?.stop();
      await realizer?.stop();
      await poolInformer.stop();
      client.close();
      nodeClient.close();
      await fx.cleanup();
    }
    const nodeDenied = [
      ...new Set(
        nodeCalls
          .filter((c) => c.code === 403)
          .map((c) => `${c.verb} ${c.group || 'core'} ${c.resource}${c.subresource ? `/${c.subresource}` : ''}`),
      ),
    ];
    expect(nodeDenied, 'node daemon calls the install does not permit').to.deep.equal([]);
    // The whole node role, over both node tests (Local disks above, Dynamic volumes here).
    const nodeGrantUsed = (g: Grant): boolean =>
      nodeCallsAll.some(
        (c) =>
          (c.verb === 'patch' && c.code === 201 ? ['patch', 'create'] : [c.verb]).includes(g.verb) &&
          c.group === g.group &&
          (c.subresource ? `${c.resource}/${c.subresource}` : c.resource) === g.resource,
      );
    const nodeGrants = await grantsOf('stowage-node', NS);
    expect(nodeGrants.filter((g) => !nodeGrantUsed(g)).map(grantKey), 'node role: granted but never used').to.deep.equal([]);
    const denied = [
      ...new Set(
        calls
          .filter((c) => c.code === 403)
          .map((c) => `${c.verb} ${c.group || 'core'} ${c.resource}${c.subresource ? `/${c.subresource}` : ''}`),
      ),
    ];
    expect(denied, 'calls the install does not permit; add the rule to config/rbac').to.deep.equal([]);
    const verbsOf = (c: ApiCall): string[] => (c.verb === 'patch' && c.code === 201 ? ['patch', 'create'] : [c.verb]);
    const used = (g: Grant): boolean =>
      calls.some(
        (c) =>
          verbsOf(c).includes(g.verb) &&
          c.group === g.group &&
          (c.subresource ? `${c.resource}/${c.subresource}` : c.resource) === g.resource,
      );
    // The sidecars' role (upstream kubernetes-csi RBAC) cannot be exercised here: their images cannot be pulled.
    const grants = await grantsOf('stowage-csi-controller', NS, (file) => file !== 'rbac/csi_sidecars_role.yaml');
    expect(grants.filter((g) => !used(g)).map(grantKey), 'granted but never used: remove from config/rbac').to.deep.equal([]);
  });

  it('uninstalls (pools first, then `kubectl delete -k config/default`) leaving no Stowage object', async () => {
    expect((await admin.list(STORAGE_POOLS)).items.filter((p) => pools.includes(p.metadata.name!))).to.deep.equal([]);
    await operator?.stop();
    operator = undefined;
    for (const node of nodes) await deleteNode(cp, node);
    await uninstall();
    const leftovers: string[] = [];
    const check = async (what: string, path: string, match: (o: Any) => boolean): Promise<void> => {
      const list = await admin.request<{ items: Any[] }>({ method: 'GET', path });
      for (const o of list.items.filter(match))
        leftovers.push(`${what}/${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`);
    };
    const stowageNamed = (o: Any) => /^stowage/.test(o.metadata.name) || o.metadata.labels?.['app.kubernetes.io/part-of'] === 'stowage';
    await check('crd', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', (o) => o.spec.group === 'stowage.dev');
    await check('clusterrole', '/apis/rbac.authorization.k8s.io/v1/clusterroles', stowageNamed);
    await check('clusterrolebinding', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', stowageNamed);
    await check('csidriver', '/apis/storage.k8s.io/v1/csidrivers', (o) => o.metadata.name === DRIVER_NAME);
    await check('namespace', '/api/v1/namespaces', (o) => o.metadata.name === NS);
    for (const [what, path] of [
      ['daemonset', '/apis/apps/v1/daemonsets'],
      ['deployment', '/apis/apps/v1/deployments'],
      ['pod', '/api/v1/pods'],
      ['serviceaccount', '/api/v1/serviceaccounts'],
      ['lease', '/apis/coordination.k8s.io/v1/leases'],
    ] as const) {
      await check(what, path, (o) => o.metadata.namespace === NS || o.metadata.labels?.['app.kubernetes.io/part-of'] === 'stowage');
    }
    // Other tests share this control plane; what this test's pools made carries their name.
    const ofMyPools = (o: Any) => pools.includes(o.metadata.labels?.['stowage.dev/pool']);
    await check('storageclass', '/apis/storage.k8s.io/v1/storageclasses', ofMyPools);
    await check('persistentvolume', '/api/v1/persistentvolumes', (o) => ofMyPools(o) || o.spec.csi?.driver === DRIVER_NAME);
    expect(leftovers).to.deep.equal([]);
  });
});

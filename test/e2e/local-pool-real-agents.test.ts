import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { type ApiCall, type KubeClient, KubeClient as Client } from '../../src/kube/client.js';
import { NAMESPACES, NODES, PERSISTENT_VOLUMES, PERSISTENT_VOLUME_CLAIMS, PODS } from '../../src/kube/resources.js';
import type { KubeObject, PersistentVolume } from '../../src/kube/types.js';
import { installCrds } from '../../src/crds/install.js';
import { NODE_DISKS, STORAGE_POOLS } from '../../src/crds/resource-types.js';
import type { NodeDisk } from '../../src/crds/nodedisk.js';
import { startNodeAgent, type NodeAgent } from '../../src/node/agent/agent.js';
import { Manager } from '../../src/runtime/manager.js';
import { setupControllers } from '../../src/operator/setup.js';
import { registerReadyNode } from '../cluster/nodes.js';
import { adminClient, createNamespace, deletePoolForcibly, uniqueName, waitFor } from '../support/cluster.js';
import { LoopDevices, unmountAllFrom } from '../support/loop-devices.js';
import { condition, type Pool, type Pvc } from '../support/pool-world.js';

const GiB = 1024 ** 3;

/**
 * The claim protocol end to end with nothing played: the operator and one real node agent per
 * simulated node, each allowed only its own loop devices over sparse files this test made. A pool
 * claims them, the agents format and mount them, the operator publishes PVs, the scheduler and the
 * PV controller bind a claim, and after the claim is deleted the agent really wipes the disk
 * before a fresh PV appears.
 */
describe('Local pools end to end with real node agents and loop devices', function () {
  this.timeout(240_000);
  let admin: KubeClient;
  let operatorClient: KubeClient;
  let namespace: string;
  let work: string;
  let abort: AbortController | undefined;
  let running: Promise<unknown> | undefined;
  const loops = new LoopDevices();
  const agents: NodeAgent[] = [];
  const nodes: string[] = [];
  const operatorWrites: ApiCall[] = [];
  const prefix = uniqueName('e2e');
  const poolName = `${prefix}-local`;

  before(async () => {
    const { cp, client } = await adminClient();
    admin = client;
    await installCrds(admin, 'stowage-tests');
    namespace = await createNamespace(admin, 'e2e');
    await cp.waitForDefaultServiceAccount(namespace);
    work = await mkdtemp(path.join(tmpdir(), 'stowage-e2e-'));
    for (const i of [1, 2]) {
      const node = `${prefix}-node${i}`;
      nodes.push(node);
      await registerReadyNode(cp, node);
      const disks = [await loops.create(GiB), await loops.create(GiB)];
      agents.push(
        await startNodeAgent({
          client: await Client.load({ kubeconfig: cp.kubeconfigPath, userAgent: `stowage-node/${node}` }),
          nodeName: node,
          allowDevices: disks.map((d) => d.device),
          root: path.join(work, node),
          udev: false,
          discoveryIntervalMs: 1_000,
        }),
      );
    }
    operatorClient = await Client.load({ kubeconfig: cp.kubeconfigPath, userAgent: 'stowage-operator-test' });
    operatorClient.observe((call) => {
      if (!['get', 'list', 'watch'].includes(call.verb)) operatorWrites.push(call);
    });
    const manager = new Manager({ client: operatorClient, informerDefaults: { resyncMs: 3_000 } });
    setupControllers(manager, { workers: 4, fieldManager: 'stowage-operator' });
    abort = new AbortController();
    running = manager.run(abort.signal);
    await admin.apply(
      STORAGE_POOLS,
      {
        apiVersion: 'stowage.dev/v1alpha1',
        kind: 'StoragePool',
        metadata: { name: poolName },
        spec: {
          mode: 'Local',
          disks: { selector: { matchExpressions: [{ key: 'stowage.dev/node', operator: 'In', values: nodes }] } },
          local: { volumeMode: 'Filesystem', fsType: 'ext4', cleanup: 'quick' },
        },
      },
      { fieldManager: 'kubectl' },
    );
  });

  after(async () => {
    // Pool deletion while operator and agents still run: PVs go, disks are released, filesystems removed.
    if (admin) {
      for (const pod of (await admin.list(PODS, { namespace })).items) {
        await admin
          .request({ method: 'DELETE', path: `/api/v1/namespaces/${namespace}/pods/${pod.metadata.name}`, body: { gracePeriodSeconds: 0 } })
          .catch(() => undefined);
      }
      await admin.delete(PERSISTENT_VOLUME_CLAIMS, 'data', { namespace });
      await admin.delete(STORAGE_POOLS, poolName);
      await waitFor('the pool to be finalized', async () => !(await admin.getIfExists(STORAGE_POOLS, poolName)), 90_000).catch(
        () => undefined,
      );
    }
    abort?.abort();
    await running;
    for (const agent of agents) await agent.stop();
    if (admin) {
      await deletePoolForcibly(admin, poolName);
      for (const node of nodes) {
        for (const d of (await admin.list<NodeDisk & KubeObject>(NODE_DISKS, { labelSelector: `stowage.dev/node=${node}` })).items)
          await admin.delete(NODE_DISKS, d.metadata.name);
        await admin.delete(NODES, node);
      }
      if (namespace) await admin.delete(NAMESPACES, namespace);
    }
    for (const device of loops.devices()) await unmountAllFrom(device);
    await loops.cleanup();
    if (work) await rm(work, { recursive: true, force: true });
    operatorClient?.close();
    admin?.close();
  });

  it('the pool becomes Ready with one PV per real, formatted and mounted disk', async () => {
    const pool = await waitFor(
      'the pool to be Ready with 4 volumes',
      async () => {
        const p = await admin.getIfExists<Pool>(STORAGE_POOLS, poolName);
        return condition(p, 'Ready')?.status === 'True' && p!.status?.counts?.volumes?.available === 4 ? p : undefined;
      },
      120_000,
    );
    expect(pool.status?.counts?.disks).to.deep.equal({ total: 4, ready: 4, unhealthy: 0, missing: 0 });
    const pvs = (await admin.list<PersistentVolume>(PERSISTENT_VOLUMES, { labelSelector: `stowage.dev/pool=${poolName}` })).items;
    for (const pv of pvs) {
      const mountPoint = pv.spec.local!.path;
      expect(mountPoint.startsWith(work), mountPoint).to.equal(true);
      expect(existsSync(mountPoint), `${mountPoint} is mounted`).to.equal(true);
      const node = pv.metadata.labels!['stowage.dev/node'];
      expect(pv.spec.nodeAffinity?.required?.nodeSelectorTerms[0]!.matchExpressions![0]!.values).to.deep.equal([node]);
    }
  });

  it('PVC → pod scheduled → bound → data written → pod and claim deleted → disk really wiped → fresh PV', async () => {
    await admin.create(PERSISTENT_VOLUME_CLAIMS, {
      metadata: { name: 'data', namespace },
      spec: { accessModes: ['ReadWriteOnce'], storageClassName: poolName, resources: { requests: { storage: '100Mi' } } },
    });
    await admin.create(PODS, {
      metadata: { name: 'app', namespace },
      spec: {
        containers: [{ name: 'app', image: 'busybox', command: ['sleep', '3600'], volumeMounts: [{ name: 'data', mountPath: '/data' }] }],
        volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'data' } }],
        affinity: {
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: {
              nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: nodes }] }],
            },
          },
        },
      },
    });
    const claim = await waitFor(
      'the claim to bind',
      async () => {
        const c = await admin.get<Pvc>(PERSISTENT_VOLUME_CLAIMS, 'data', namespace);
        return c.status?.phase === 'Bound' ? c : undefined;
      },
      60_000,
    );
    const node = await waitFor(
      'the pod to be scheduled',
      async () => (await admin.get<KubeObject & { spec: { nodeName?: string } }>(PODS, 'app', namespace)).spec.nodeName,
    );
    const pv = await admin.get<PersistentVolume>(PERSISTENT_VOLUMES, claim.spec.volumeName!);
    expect(pv.metadata.labels?.['stowage.dev/node']).to.equal(node);
    // What the workload writes lands on the prepared disk (no kubelet here: the test writes to the
    // PV's path on the host, which is what kubelet would bind-mount into the pod).
    const file = path.join(pv.spec.local!.path, 'customer-data.txt');
    await writeFile(file, 'secret\n');

    await admin.request({ method: 'DELETE', path: `/api/v1/namespaces/${namespace}/pods/app`, body: { gracePeriodSeconds: 0 } });
    await admin.delete(PERSISTENT_VOLUME_CLAIMS, 'data', { namespace });
    const fresh = await waitFor(
      'a fresh PV for the wiped disk',
      async () => {
        const p = await admin.getIfExists<PersistentVolume>(PERSISTENT_VOLUMES, pv.metadata.name!);
        return p && p.metadata.uid !== pv.metadata.uid && p.status?.phase === 'Available' ? p : undefined;
      },
      120_000,
    );
    const disk = await admin.get<NodeDisk & KubeObject>(NODE_DISKS, pv.metadata.labels!['stowage.dev/disk']);
    expect(disk.status?.lastWipe).to.deep.include({ volumeUID: pv.metadata.uid, result: 'Succeeded' });
    expect(existsSync(file)).to.equal(false, "the released volume's data is gone");
    expect((await readdir(fresh.spec.local!.path)).filter((f) => f !== 'lost+found')).to.deep.equal([], 'the fresh volume starts empty');
  });

  it('after convergence a full resync of the operator sends no writes', async () => {
    await new Promise((r) => setTimeout(r, 2_000));
    operatorWrites.length = 0;
    await new Promise((r) => setTimeout(r, 7_000));
    expect(operatorWrites.map((w) => `${w.verb} ${w.resource}`)).to.deep.equal([]);
  });
});

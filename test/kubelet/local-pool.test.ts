// Local pools through the real kubelet (issue 8): the operator and a real node agent for the kubelet
// node, allowed only a loop device over a sparse file this test made. A pod on the real node claims a
// Local-pool PVC and writes a file, which lands on the prepared disk on the host; deleting the pod
// makes kubelet really unmount the volume, and deleting the claim leads to the agent's wipe and a
// fresh PV — the claim protocol of test/e2e/local-pool-real-agents.test.ts, with kubelet in between.

import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { type KubeClient, KubeClient as Client } from '../../src/kube/client.js';
import { NAMESPACES, PERSISTENT_VOLUMES, PERSISTENT_VOLUME_CLAIMS, PODS } from '../../src/kube/resources.js';
import type { KubeObject, PersistentVolume } from '../../src/kube/types.js';
import { installCrds } from '../../src/crds/install.js';
import { NODE_DISKS, STORAGE_POOLS } from '../../src/crds/resource-types.js';
import type { NodeDisk } from '../../src/crds/nodedisk.js';
import { startNodeAgent, type NodeAgent } from '../../src/node/agent/agent.js';
import { Manager } from '../../src/runtime/manager.js';
import { setupControllers } from '../../src/operator/setup.js';
import type { ControlPlane } from '../cluster/control-plane.js';
import type { KubeletNode } from '../cluster/kubelet-node.js';
import { sharedKubeletNode } from '../cluster/kubelet-shared.js';
import { adminClient, createNamespace, deletePoolForcibly, uniqueName, waitFor } from '../support/cluster.js';
import { LoopDevices, unmountAllFrom } from '../support/loop-devices.js';
import { condition, type Pool, type Pvc } from '../support/pool-world.js';
import { busyboxPod, deletePodAndWait, podMounts, waitPodPhase } from './pods.js';

const GiB = 1024 ** 3;

describe('kubelet node: a Local-pool volume mounted by the real kubelet', function () {
  this.timeout(300_000);
  let cp: ControlPlane;
  let admin: KubeClient;
  let operatorClient: KubeClient | undefined;
  let agentClient: KubeClient | undefined;
  let node: KubeletNode;
  let ns: string;
  let work: string;
  let agent: NodeAgent | undefined;
  let abort: AbortController | undefined;
  let running: Promise<unknown> | undefined;
  const loops = new LoopDevices();
  const poolName = uniqueName('kubelet-local');

  before(async function () {
    ({ cp, client: admin } = await adminClient());
    node = await sharedKubeletNode();
    await installCrds(admin, 'stowage-tests');
    ns = await createNamespace(admin, 'kubelet-local');
    await cp.waitForDefaultServiceAccount(ns);
    work = await mkdtemp(path.join(tmpdir(), 'stowage-kubelet-local-'));
    const disk = await loops.create(GiB);
    agentClient = await Client.load({ kubeconfig: cp.kubeconfigPath, userAgent: `stowage-node/${node.nodeName}` });
    agent = await startNodeAgent({
      client: agentClient,
      nodeName: node.nodeName,
      allowDevices: [disk.device],
      root: path.join(work, 'agent'),
      udev: false,
      discoveryIntervalMs: 1_000,
    });
    operatorClient = await Client.load({ kubeconfig: cp.kubeconfigPath, userAgent: 'stowage-operator-test' });
    const manager = new Manager({ client: operatorClient, informerDefaults: { resyncMs: 3_000 } });
    setupControllers(manager, { workers: 2, fieldManager: 'stowage-operator' });
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
          disks: { selector: { matchLabels: { 'stowage.dev/node': node.nodeName } } },
          local: { volumeMode: 'Filesystem', fsType: 'ext4', cleanup: 'quick' },
        },
      },
      { fieldManager: 'kubectl' },
    );
  });

  after(async function () {
    if (admin && ns) {
      for (const pod of (await admin.list<any>(PODS, { namespace: ns }).catch(() => ({ items: [] as any[] }))).items) {
        await deletePodAndWait(admin, ns, pod.metadata.name).catch(() => undefined);
      }
      await admin.delete(PERSISTENT_VOLUME_CLAIMS, 'data', { namespace: ns }).catch(() => undefined);
      await admin.delete(STORAGE_POOLS, poolName).catch(() => undefined);
      await waitFor('the pool to be finalized', async () => !(await admin.getIfExists(STORAGE_POOLS, poolName)), 90_000).catch(
        () => undefined,
      );
    }
    abort?.abort();
    await running?.catch(() => undefined);
    await agent?.stop();
    if (admin) {
      await deletePoolForcibly(admin, poolName).catch(() => undefined);
      if (node) {
        for (const d of (await admin.list<NodeDisk & KubeObject>(NODE_DISKS, { labelSelector: `stowage.dev/node=${node.nodeName}` })).items)
          await admin.delete(NODE_DISKS, d.metadata.name);
      }
      if (ns) await admin.delete(NAMESPACES, ns);
    }
    for (const device of loops.devices()) await unmountAllFrom(device);
    await loops.cleanup();
    if (work) await rm(work, { recursive: true, force: true });
    operatorClient?.close();
    agentClient?.close();
    admin?.close();
  });

  it('a pod on the real node writes into a Local-pool claim; the file is on the prepared disk; delete → kubelet unmounts → wipe → fresh PV', async function () {
    await waitFor(
      'the pool to be Ready with its volume',
      async () => {
        const p = await admin.getIfExists<Pool>(STORAGE_POOLS, poolName);
        return condition(p, 'Ready')?.status === 'True' && p!.status?.counts?.volumes?.available === 1 ? p : undefined;
      },
      120_000,
      250,
    );
    await admin.create(PERSISTENT_VOLUME_CLAIMS, {
      metadata: { name: 'data', namespace: ns },
      spec: { accessModes: ['ReadWriteOnce'], storageClassName: poolName, resources: { requests: { storage: '100Mi' } } },
    } as any);
    const podName = uniqueName('local-pod');
    const created = await admin.create<any>(
      PODS,
      busyboxPod({
        name: podName,
        namespace: ns,
        node,
        restartPolicy: 'Always',
        script: 'trap "exit 0" TERM; echo customer-data > /data/written-by-pod.txt; sync; while true; do sleep 1; done',
        volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'data' } }],
        volumeMounts: [{ name: 'data', mountPath: '/data' }],
      }),
    );
    await waitPodPhase(admin, ns, podName, ['Running']);
    const claim = await admin.get<Pvc>(PERSISTENT_VOLUME_CLAIMS, 'data', ns);
    const pv = await admin.get<PersistentVolume>(PERSISTENT_VOLUMES, claim.spec.volumeName!);
    const hostFile = path.join(pv.spec.local!.path, 'written-by-pod.txt');
    // kubelet bind-mounted the prepared disk's filesystem into the pod; the bytes are on that disk.
    const podVolume = path.join(node.rootDir, 'pods', created.metadata.uid, 'volumes', 'kubernetes.io~local-volume', pv.metadata.name!);
    expect(await podMounts(node, created.metadata.uid)).to.include(podVolume);
    await waitFor('the pod to write its file', () => readFile(hostFile, 'utf8').then((t) => t === 'customer-data\n'), 30_000, 250);
    const mountSource = (await readFile('/proc/self/mounts', 'utf8'))
      .split('\n')
      .map((l) => l.split(' '))
      .find((f) => f[1] === pv.spec.local!.path)?.[0];
    expect(loops.devices()).to.include(mountSource);

    await deletePodAndWait(admin, ns, podName);
    expect(await podMounts(node, created.metadata.uid), 'kubelet unmounted the volume').to.deep.equal([]);
    await admin.delete(PERSISTENT_VOLUME_CLAIMS, 'data', { namespace: ns });
    const fresh = await waitFor(
      'a fresh PV for the wiped disk',
      async () => {
        const p = await admin.getIfExists<PersistentVolume>(PERSISTENT_VOLUMES, pv.metadata.name!);
        return p && p.metadata.uid !== pv.metadata.uid && p.status?.phase === 'Available' ? p : undefined;
      },
      120_000,
      250,
    );
    const disk = await admin.get<NodeDisk & KubeObject>(NODE_DISKS, pv.metadata.labels!['stowage.dev/disk']);
    expect(disk.status?.lastWipe).to.deep.include({ volumeUID: pv.metadata.uid, result: 'Succeeded' });
    expect(existsSync(hostFile)).to.equal(false, "the released volume's data is gone");
    expect((await readdir(fresh.spec.local!.path)).filter((f) => f !== 'lost+found')).to.deep.equal([], 'the fresh volume starts empty');
  });
});

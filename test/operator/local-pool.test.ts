import { expect } from 'chai';
import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import type { ApiCall, KubeClient } from '../../src/kube/client.js';
import { KubeClient as Client } from '../../src/kube/client.js';
import { EVENTS, NAMESPACES, NODES, PERSISTENT_VOLUMES, PERSISTENT_VOLUME_CLAIMS, PODS, STORAGE_CLASSES } from '../../src/kube/resources.js';
import type { KubeObject, PersistentVolume, StorageClass } from '../../src/kube/types.js';
import { installCrds } from '../../src/crds/install.js';
import { NODE_DISKS, STORAGE_POOLS } from '../../src/crds/resource-types.js';
import type { StoragePool } from '../../src/crds/storagepool.js';
import { Manager } from '../../src/operator/runtime/manager.js';
import { setupControllers } from '../../src/operator/setup.js';
import type { ControlPlane } from '../cluster/control-plane.js';
import { registerReadyNode } from '../cluster/nodes.js';
import { AgentDouble } from '../support/agent-double.js';
import { adminClient, createNamespace, deletePoolForcibly, uniqueName, waitFor } from '../support/cluster.js';

type Pool = StoragePool & KubeObject;
type Pvc = KubeObject & { spec: { volumeName?: string }; status?: { phase?: string } };
type Pod = KubeObject & { spec: { nodeName?: string } };

const condition = (pool: Pool | undefined, type: string) => pool?.status?.conditions?.find((c) => c.type === type);

/**
 * Local pools end to end on the real control plane, with the node agent's side of the claim
 * protocol played by AgentDouble (test/node/ covers the real agent with loop devices).
 */
describe('Local pools (real control plane; agent side played by the protocol double)', function () {
  this.timeout(180_000);
  let cp: ControlPlane;
  let admin: KubeClient;
  let operatorClient: KubeClient;
  let agent: AgentDouble;
  let abort: AbortController;
  let running: Promise<unknown>;
  let namespace: string;
  const operatorWrites: ApiCall[] = [];
  const nodes: string[] = [];
  const pools: string[] = [];
  const suffix = uniqueName('lp');

  before(async () => {
    ({ cp, client: admin } = await adminClient());
    await installCrds(admin, 'stowage-tests');
    namespace = await createNamespace(admin, 'local');
    await cp.waitForDefaultServiceAccount(namespace);
    for (const i of [1, 2, 3]) {
      const node = `${suffix}-node${i}`;
      nodes.push(node);
      await registerReadyNode(cp, node);
    }
    agent = new AgentDouble(admin);
    for (const node of nodes) {
      await agent.addDisk({ name: `${node}-a`, node, capacity: '100Gi', media: 'ssd' });
      await agent.addDisk({ name: `${node}-b`, node, capacity: '100Gi', media: 'ssd' });
    }
    // Not selected by local-ssd: an HDD, a tiny SSD, and an SSD holding a filesystem.
    await agent.addDisk({ name: `${nodes[0]}-hdd`, node: nodes[0]!, capacity: '2Ti', media: 'hdd' });
    await agent.addDisk({ name: `${nodes[0]}-tiny`, node: nodes[0]!, capacity: '8Gi', media: 'ssd' });
    await agent.addDisk({ name: `${nodes[1]}-used`, node: nodes[1]!, capacity: '100Gi', media: 'ssd', ineligible: 'HasFilesystem' });
    await agent.start();

    operatorClient = await Client.load({ kubeconfig: cp.kubeconfigPath, userAgent: 'stowage-operator-test' });
    operatorClient.observe((call) => {
      if (!['get', 'list', 'watch'].includes(call.verb)) operatorWrites.push(call);
    });
    const manager = new Manager({ client: operatorClient, informerDefaults: { resyncMs: 3_000 } });
    setupControllers(manager, { workers: 4, fieldManager: 'stowage-operator' });
    abort = new AbortController();
    running = manager.run(abort.signal);
  });

  after(async () => {
    for (const name of pools) await admin.delete(STORAGE_POOLS, name);
    // Let the operator finalize what it can before it stops.
    await waitFor('test pools to be finalized', async () => {
      for (const name of pools) if (await admin.getIfExists(STORAGE_POOLS, name)) return false;
      return true;
    }, 60_000).catch(() => undefined);
    abort?.abort();
    await running;
    for (const name of pools) await deletePoolForcibly(admin, name);
    await agent?.stop();
    await agent?.removeAll();
    for (const pv of (await admin.list<PersistentVolume>(PERSISTENT_VOLUMES)).items) {
      if (nodes.includes(pv.metadata.labels?.['stowage.dev/node'] ?? '')) {
        await admin.mergePatch(PERSISTENT_VOLUMES, pv.metadata.name!, { metadata: { finalizers: null } }).catch(() => undefined);
        await admin.delete(PERSISTENT_VOLUMES, pv.metadata.name!);
      }
    }
    for (const node of nodes) await admin.delete(NODES, node);
    if (namespace) await admin.delete(NAMESPACES, namespace);
    operatorClient?.close();
  });

  async function applyPool(obj: Pool): Promise<string> {
    if (!pools.includes(obj.metadata.name)) pools.push(obj.metadata.name);
    await admin.apply(STORAGE_POOLS, obj, { fieldManager: 'kubectl-client-side-apply' });
    return obj.metadata.name;
  }

  const getPool = (name: string) => admin.getIfExists<Pool>(STORAGE_POOLS, name);
  const poolVolumes = async (pool: string) =>
    (await admin.list<PersistentVolume>(PERSISTENT_VOLUMES, { labelSelector: `stowage.dev/pool=${pool}` })).items;

  async function sample(): Promise<Pool> {
    const pool = parse(await readFile(new URL('../../../samples/local-ssd.yaml', import.meta.url), 'utf8')) as Pool;
    pool.metadata.name = `${suffix}-ssd`;
    pool.spec.storageClass = { ...pool.spec.storageClass, name: `${suffix}-ssd` };
    return pool;
  }

  async function eventsFor(pool: string): Promise<string[]> {
    const events = await admin.list<KubeObject & { involvedObject: { name: string }; reason: string; message: string }>(EVENTS, { namespace: 'default' });
    return events.items.filter((e) => e.involvedObject.name === pool).map((e) => `${e.reason}: ${e.message}`);
  }

  it('applying samples/local-ssd creates the StorageClass and one PV per eligible selected disk, pinned to its node', async () => {
    const name = await applyPool(await sample());
    const pool = await waitFor('the pool to become Ready', async () => {
      const p = await getPool(name);
      return condition(p, 'Ready')?.status === 'True' && p!.status?.counts?.volumes?.available === 6 ? p : undefined;
    }, 60_000);
    const sc = await admin.get<StorageClass>(STORAGE_CLASSES, `${suffix}-ssd`);
    expect(sc.provisioner).to.equal('kubernetes.io/no-provisioner');
    expect(sc.volumeBindingMode).to.equal('WaitForFirstConsumer');
    expect(sc.reclaimPolicy).to.equal('Delete');
    expect(sc.metadata.labels).to.include({ 'app.kubernetes.io/managed-by': 'stowage', 'stowage.dev/pool': name });
    expect(sc.metadata.ownerReferences?.[0]).to.include({ kind: 'StoragePool', name });

    const pvs = await poolVolumes(name);
    expect(pvs.map((pv) => pv.metadata.labels?.['stowage.dev/disk']).sort()).to.deep.equal(nodes.flatMap((n) => [`${n}-a`, `${n}-b`]).sort());
    for (const pv of pvs) {
      const node = pv.metadata.labels!['stowage.dev/node']!;
      expect(pv.spec.nodeAffinity?.required?.nodeSelectorTerms[0]!.matchExpressions![0]).to.deep.equal({ key: 'kubernetes.io/hostname', operator: 'In', values: [node] });
      expect(pv.spec.local?.path).to.equal(`/var/lib/stowage/disks/${pv.metadata.labels!['stowage.dev/disk']}`);
      expect(pv.spec.capacity?.storage).to.equal('98Gi');
      expect(pv.spec.storageClassName).to.equal(`${suffix}-ssd`);
      expect(pv.spec.volumeMode).to.equal('Filesystem');
    }
    // The claim protocol on the disks: selected ones claimed (label + spec.claim), the rest untouched.
    const claimed = await admin.get<KubeObject & { spec: { claim?: unknown } }>(NODE_DISKS, `${nodes[0]}-a`);
    expect(claimed.spec.claim).to.deep.equal({ pool: name, mode: 'Local', volumeMode: 'Filesystem', fsType: 'ext4', allowAdoption: false });
    expect(claimed.metadata.labels?.['stowage.dev/pool']).to.equal(name);
    for (const other of [`${nodes[0]}-hdd`, `${nodes[0]}-tiny`, `${nodes[1]}-used`]) {
      expect((await admin.get<KubeObject & { spec: { claim?: unknown } }>(NODE_DISKS, other)).spec.claim, other).to.equal(undefined);
    }
    // Capacity adds up: 6 disks of 100Gi raw, 6 × 98Gi usable, nothing allocated yet.
    expect(pool.status?.capacity).to.deep.equal({ raw: '600Gi', usable: '588Gi', allocated: '0', available: '588Gi' });
    expect(pool.status?.counts).to.deep.equal({
      nodes: 3, disks: { total: 6, ready: 6, unhealthy: 0, missing: 0 }, volumes: { available: 6, bound: 0, released: 0 },
    });
    expect(condition(pool, 'CapacityAvailable')?.status).to.equal('True');
    expect(condition(pool, 'DisksHealthy')?.status).to.equal('True');
    expect(condition(pool, 'ReplicationSatisfiable')?.status).to.equal('True');
    expect(pool.status?.storageClassName).to.equal(`${suffix}-ssd`);
    const events = await eventsFor(name);
    expect(events.filter((e) => e.startsWith('DiskClaimed'))).to.have.length(6);
    expect(events.filter((e) => e.startsWith('PersistentVolumeCreated'))).to.have.length(6);
  });

  it('a PVC and a pod: the scheduler places the pod where a free disk is and the claim binds to a PV on that node', async () => {
    const pvc = 'data';
    await admin.create(PERSISTENT_VOLUME_CLAIMS, {
      metadata: { name: pvc, namespace },
      spec: { accessModes: ['ReadWriteOnce'], storageClassName: `${suffix}-ssd`, resources: { requests: { storage: '10Gi' } } },
    });
    await admin.create(PODS, {
      metadata: { name: 'db', namespace },
      spec: {
        containers: [{ name: 'db', image: 'busybox', command: ['sleep', '3600'], volumeMounts: [{ name: 'data', mountPath: '/data' }] }],
        volumes: [{ name: 'data', persistentVolumeClaim: { claimName: pvc } }],
        // Only the test's nodes: other tests' nodes have no disks of this pool.
        affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: nodes }] }] } } },
      },
    });
    const pod = await waitFor('the pod to be scheduled', async () => {
      const p = await admin.get<Pod>(PODS, 'db', namespace);
      return p.spec.nodeName ? p : undefined;
    }, 60_000);
    const claim = await waitFor('the claim to bind', async () => {
      const c = await admin.get<Pvc>(PERSISTENT_VOLUME_CLAIMS, pvc, namespace);
      return c.status?.phase === 'Bound' ? c : undefined;
    }, 60_000);
    const pv = await admin.get<PersistentVolume>(PERSISTENT_VOLUMES, claim.spec.volumeName!);
    expect(pv.metadata.labels?.['stowage.dev/node']).to.equal(pod.spec.nodeName);
    const pool = await waitFor('the pool to count the bound volume', async () => {
      const p = await getPool(`${suffix}-ssd`);
      return p?.status?.counts?.volumes?.bound === 1 ? p : undefined;
    });
    expect(pool.status?.capacity).to.deep.equal({ raw: '600Gi', usable: '588Gi', allocated: '98Gi', available: '490Gi' });
  });

  it('deleting pod and claim: the PV is Released, wiped for its UID, and replaced by a fresh PV with a new UID', async () => {
    const claim = await admin.get<Pvc>(PERSISTENT_VOLUME_CLAIMS, 'data', namespace);
    const old = await admin.get<PersistentVolume>(PERSISTENT_VOLUMES, claim.spec.volumeName!);
    const disk = old.metadata.labels!['stowage.dev/disk']!;
    await admin.request({ method: 'DELETE', path: `/api/v1/namespaces/${namespace}/pods/db`, body: { gracePeriodSeconds: 0 } });
    await admin.delete(PERSISTENT_VOLUME_CLAIMS, 'data', { namespace });
    const fresh = await waitFor('a fresh PV for the disk', async () => {
      const pv = await admin.getIfExists<PersistentVolume>(PERSISTENT_VOLUMES, old.metadata.name!);
      return pv && pv.metadata.uid !== old.metadata.uid && pv.status?.phase === 'Available' ? pv : undefined;
    }, 90_000);
    expect(agent.disks.get(disk)!.wipes).to.deep.equal([old.metadata.uid], 'exactly one wipe, for the released volume\'s UID');
    expect(fresh.metadata.name).to.equal(old.metadata.name);
    const nd = await admin.get<KubeObject & { spec: { wipe?: unknown } }>(NODE_DISKS, disk);
    expect(nd.spec.wipe).to.equal(undefined, 'the wipe request is withdrawn once its volume is gone');
    const events = await eventsFor(`${suffix}-ssd`);
    expect(events.some((e) => e.startsWith('WipeRequested') && e.includes(old.metadata.uid!))).to.equal(true);
    expect(events.some((e) => e.startsWith('PersistentVolumeRecycled'))).to.equal(true);
  });

  it('after convergence, full resyncs send zero writes', async () => {
    await waitFor('convergence', async () => (await getPool(`${suffix}-ssd`))?.status?.counts?.volumes?.available === 6);
    await new Promise((r) => setTimeout(r, 2_000));
    operatorWrites.length = 0;
    await new Promise((r) => setTimeout(r, 7_000)); // resync every 3 s: at least two full resyncs
    expect(operatorWrites.map((w) => `${w.verb} ${w.resource}${w.subresource ? `/${w.subresource}` : ''}`)).to.deep.equal([]);
  });
});

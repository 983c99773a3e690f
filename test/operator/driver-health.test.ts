// The driver's health in the API: each Dynamic pool's DriverReady condition, from the node
// DaemonSet's rollout, its pods' container states and the nodes' CSINodes. The pure part is tested
// exhaustively; the whole path runs against the real control plane, where kube-controller-manager
// creates the DaemonSet's pods on registered nodes and the scheduler binds them. No kubelet runs
// there, so the test writes what a kubelet would: the pod's status through the status subresource
// (a container waiting in ImagePullBackOff or CrashLoopBackOff, or running and Ready) and the
// node's CSINode (kubelet lists csi.stowage.dev in it once the plugin registered).

import { expect } from 'chai';
import { NODE_DISKS, POOL_VOLUMES, STORAGE_POOLS } from '../../src/crds/resource-types.js';
import type { ApiCall } from '../../src/kube/client.js';
import { CSI_NODES, DAEMON_SETS, NODES, PODS, SERVICE_ACCOUNTS, STORAGE_CLASSES } from '../../src/kube/resources.js';
import type { KubeObject } from '../../src/kube/types.js';
import { driverCondition, driverHealth, type DaemonSetLike, type PodLike } from '../../src/operator/driver-stack/health.js';
import { DRIVER_NAME, NODE_DAEMONSET, NODE_POD_SELECTOR } from '../../src/operator/driver-stack/render.js';
import { poolStatus } from '../../src/operator/storagepool/status.js';
import { setupControllers } from '../../src/operator/setup.js';
import { ServerVersion } from '../../src/operator/driver-stack/server-version.js';
import { Manager } from '../../src/runtime/manager.js';
import { waitFor } from '../support/cluster.js';
import { PoolWorld, condition, type Pool } from '../support/pool-world.js';

type Any = any;

const NOW = '2026-12-06T20:00:00Z';
const DS_UID = 'ds-uid';
const daemonSet: DaemonSetLike = {
  apiVersion: 'apps/v1',
  kind: 'DaemonSet',
  metadata: { name: NODE_DAEMONSET, namespace: 'stowage-system', uid: DS_UID },
  status: { desiredNumberScheduled: 3, numberReady: 1, updatedNumberScheduled: 3 },
};
const pod = (node: string, status: PodLike['status'], extra: Partial<PodLike['metadata']> = {}): PodLike => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: {
    name: `${NODE_DAEMONSET}-${node}`,
    namespace: 'stowage-system',
    ownerReferences: [{ apiVersion: 'apps/v1', kind: 'DaemonSet', name: NODE_DAEMONSET, uid: DS_UID, controller: true }],
    ...extra,
  },
  spec: { nodeName: node },
  status,
});
const running = {
  phase: 'Running',
  conditions: [{ type: 'Ready', status: 'True' }],
  containerStatuses: [{ name: 'stowage-node', ready: true, state: { running: {} } }],
};
const waiting = (reason: string, message: string) => ({
  phase: 'Pending',
  conditions: [{ type: 'Ready', status: 'False' }],
  containerStatuses: [{ name: 'stowage-node', ready: false, state: { waiting: { reason, message } } }],
});
const csiNode = (node: string, drivers: string[] = [DRIVER_NAME]) => ({
  apiVersion: 'storage.k8s.io/v1',
  kind: 'CSINode',
  metadata: { name: node },
  spec: { drivers: drivers.map((name) => ({ name })) },
});

describe('driver health (pure)', () => {
  it("names each node whose plugin does not serve, with kubelet's reason, and counts the rollout", () => {
    const health = driverHealth({
      daemonSet,
      pods: [
        pod('n1', running),
        pod('n2', waiting('ImagePullBackOff', 'Back-off pulling image "example.invalid/stowage:0"')),
        pod('n3', waiting('CrashLoopBackOff', 'back-off 5m0s restarting failed container')),
        pod('n4', running),
        pod('n5', { phase: 'Pending' }),
      ],
      csiNodes: [csiNode('n1'), csiNode('n2'), csiNode('n3'), csiNode('n4', []), csiNode('n6')],
    });
    expect(health.rollout).to.deep.equal({ desired: 3, ready: 1, updated: 3 });
    expect(health.problems.map((p) => `${p.node}:${p.reason}`)).to.deep.equal([
      'n2:ImagePullBackOff',
      'n3:CrashLoopBackOff',
      'n4:NotRegistered',
      'n5:Pending',
      'n6:NoPluginPod',
    ]);
    expect(health.problems[0].detail).to.contain('example.invalid/stowage:0');
    expect(health.problems[2].detail).to.contain(`lists no such driver`);
  });

  it('ignores pods of other owners and pods being deleted, and counts a node served when either of two pods serves (a rolling update)', () => {
    const old = pod('n1', running, { name: 'old', deletionTimestamp: NOW });
    const foreign = pod('n2', waiting('ErrImagePull', 'x'), { name: 'foreign', ownerReferences: [{ uid: 'other' }] as Any });
    const next = pod('n1', waiting('ContainerCreating', ''), { name: 'next' });
    const both = [pod('n3', running, { name: 'a' }), pod('n3', waiting('CrashLoopBackOff', 'x'), { name: 'b' })];
    const health = driverHealth({ daemonSet, pods: [old, foreign, next, ...both], csiNodes: [csiNode('n1'), csiNode('n3')] });
    expect(health.problems.map((p) => `${p.node}:${p.reason}`)).to.deep.equal(['n1:Pending']);
  });

  it('gives a pool DriverReady over its own nodes: True naming the rollout, False naming the nodes and reasons, and whether none is served', () => {
    const health = driverHealth({
      daemonSet,
      pods: [pod('n1', running), pod('n2', waiting('ImagePullBackOff', 'pull failed'))],
      csiNodes: [csiNode('n1'), csiNode('n2')],
    });
    const onlyN1 = driverCondition(health, new Set(['n1']));
    expect(onlyN1).to.include({ status: 'True', reason: 'PluginsRunning', noneServing: false });
    expect(onlyN1.message).to.contain('3 desired, 1 ready, 3 updated').and.contain('1 node(s) outside the pool');
    const both = driverCondition(health, new Set(['n1', 'n2']));
    expect(both).to.include({ status: 'False', reason: 'ImagePullBackOff', noneServing: false });
    expect(both.message).to.contain('1 of 2 node(s)').and.contain('n2: ImagePullBackOff (container stowage-node: pull failed)');
    expect(driverCondition(health, new Set(['n2']))).to.include({ status: 'False', noneServing: true });
    expect(driverCondition({ ...health, deployed: false, problems: [] }, new Set(['n1']))).to.include({
      status: 'False',
      reason: 'DaemonSetMissing',
      noneServing: true,
    });
    const mixed = driverHealth({
      daemonSet,
      pods: [pod('n1', waiting('CrashLoopBackOff', 'x')), pod('n2', waiting('ImagePullBackOff', 'y'))],
      csiNodes: [],
    });
    expect(driverCondition(mixed, new Set(['n1', 'n2'])).reason).to.equal('PluginsNotRunning');
    expect(driverCondition(undefined, new Set())).to.include({ status: 'Unknown' });
    expect(driverCondition(health, new Set())).to.include({ status: 'True', reason: 'NoNodesYet', noneServing: false });
  });

  it('makes Ready False only when no node of the pool is served, and keeps DriverReady to pools that need the driver', () => {
    const pool = {
      apiVersion: 'stowage.dev/v1alpha1',
      kind: 'StoragePool',
      metadata: { name: 'p', generation: 4 },
      spec: { mode: 'Dynamic', disks: { selector: {} }, replicated: { size: 1 } },
    } as Any;
    const disk = {
      metadata: { name: 'd1' },
      spec: { nodeName: 'n1' },
      status: { capacity: '10Gi', conditions: [{ type: 'Prepared', status: 'True' }] },
    } as Any;
    const obs = (driver: Any) => ({
      pool,
      problems: [],
      plan: { claim: [], keep: [disk], release: [], held: [], conflicts: [] },
      volumes: [],
      storageClassName: 'p',
      dynamic: { usableBytes: 10n * 2n ** 30n, allocatedBytes: 0n, nodesBelowReplication: [], volumes: 0 },
      ...(driver ? { driver } : {}),
    });
    const down = poolStatus(
      obs({ status: 'False', reason: 'ImagePullBackOff', message: 'the node plugin is not serving on 1 of 1 node(s)', noneServing: true }),
      NOW,
    );
    const ready = (s: Any) => s.conditions.find((c: Any) => c.type === 'Ready');
    const driverReady = (s: Any) => s.conditions.find((c: Any) => c.type === 'DriverReady');
    expect(ready(down)).to.include({ status: 'False', reason: 'DriverNotReady', observedGeneration: 4 });
    expect(driverReady(down)).to.include({ status: 'False', reason: 'ImagePullBackOff', observedGeneration: 4 });
    expect(down.conditions!.map((c) => c.type)).to.deep.equal([
      'Ready',
      'DisksHealthy',
      'ReplicationSatisfiable',
      'CapacityAvailable',
      'DriverReady',
    ]);
    const partly = poolStatus(obs({ status: 'False', reason: 'CrashLoopBackOff', message: '1 of 2', noneServing: false }), NOW);
    expect(ready(partly)).to.include({ status: 'True' });
    expect(ready(partly).message).to.contain('see DriverReady');
    // A pool no longer needing the driver drops the condition.
    const local = poolStatus(
      { ...obs(undefined), dynamic: undefined, pool: { ...pool, spec: { ...pool.spec, mode: 'Local' }, status: down } },
      NOW,
    );
    expect(driverReady(local)).to.equal(undefined);
    // Refused on a server that is too old: Ready says why, nothing else is claimed.
    const refused = poolStatus(
      { ...obs(undefined), unsupported: 'the API server is Kubernetes v1.19.16; Stowage needs 1.20 or later' },
      NOW,
    );
    expect(ready(refused)).to.include({ status: 'False', reason: 'UnsupportedKubernetes' });
  });
});

describe("DriverReady on a Dynamic pool (real control plane; kubelet's pod status and CSINode written by the test)", function () {
  this.timeout(180_000);
  let world: PoolWorld;
  let pool: string;
  let node: string;
  let abort: AbortController | undefined;
  let running: Promise<unknown> | undefined;
  const writes: ApiCall[] = [];
  const BROKEN = 'example.invalid/stowage:does-not-exist';

  before(async () => {
    world = await PoolWorld.start({ nodes: 1, startOperator: false });
    node = world.nodes[0]!;
    // The install creates the node ServiceAccount; without it the DaemonSet cannot create pods.
    await world.admin.create(SERVICE_ACCOUNTS, { metadata: { name: 'stowage-node', namespace: world.namespace } });
    await world.agent.addDisk({ name: `${node}-a`, node, capacity: '100Gi', media: 'nvme' });
    await world.admin.mergePatch(NODE_DISKS, `${node}-a`, { metadata: { labels: { [`test/${world.prefix}`]: 'yes' } } });
    // The operator as deployed with a broken image reference for Stowage (a mirror's typo).
    world.operatorClient.observe((c) => {
      if (!['get', 'list', 'watch'].includes(c.verb)) writes.push(c);
    });
    const manager = new Manager({ client: world.operatorClient, informerDefaults: { resyncMs: 2_000 } });
    setupControllers(manager, {
      workers: 2,
      fieldManager: 'stowage-operator',
      driverStack: { namespace: world.namespace, imageOverrides: [`stowage=${BROKEN}`], resyncMs: 2_000 },
    });
    abort = new AbortController();
    running = manager.run(abort.signal);
    pool = await world.applyPool({
      apiVersion: 'stowage.dev/v1alpha1',
      kind: 'StoragePool',
      metadata: { name: `${world.prefix}-dyn` },
      spec: { mode: 'Dynamic', replicated: { size: 1 }, disks: { selector: { matchLabels: { [`test/${world.prefix}`]: 'yes' } } } },
    });
  });

  after(async () => {
    if (!world) return;
    // Pools go while the operator runs (their finalizer), then the operator stops so that it does
    // not recreate the DaemonSet, whose pods go at once (no kubelet confirms that they stopped).
    for (const name of world.pools) await world.admin.delete(STORAGE_POOLS, name).catch(() => undefined);
    await waitFor(
      'the pools to be finalized',
      async () => {
        for (const name of world.pools) if (await world.getPool(name)) return false;
        return true;
      },
      60_000,
    ).catch(() => undefined);
    abort?.abort();
    await running;
    await world.admin.delete(CSI_NODES, node).catch(() => undefined);
    await world.admin.delete(DAEMON_SETS, NODE_DAEMONSET, { namespace: world.namespace }).catch(() => undefined);
    await waitFor(
      "the DaemonSet's pods to be gone",
      async () => {
        const pods = (await world.admin.list(PODS, { namespace: world.namespace, labelSelector: NODE_POD_SELECTOR })).items;
        for (const p of pods) {
          await world.admin
            .request({
              method: 'DELETE',
              path: `/api/v1/namespaces/${world.namespace}/pods/${p.metadata.name}`,
              body: { gracePeriodSeconds: 0 },
            })
            .catch(() => undefined);
        }
        return pods.length === 0;
      },
      60_000,
      500,
    ).catch(() => undefined);
    await world.close();
  });

  /** The DaemonSet's pod on the test's node, once kube-controller-manager created and the scheduler bound it. */
  const pluginPod = () =>
    waitFor(
      `the ${NODE_DAEMONSET} pod on ${node}`,
      async () => {
        const pods = await world.admin.list<Any>(PODS, { namespace: world.namespace, labelSelector: NODE_POD_SELECTOR });
        return pods.items.find((p) => p.spec.nodeName === node && !p.metadata.deletionTimestamp);
      },
      60_000,
      250,
    );

  /** What kubelet writes for the pod: phase, Ready condition and the container's state. */
  async function kubeletReports(state: 'ImagePullBackOff' | 'CrashLoopBackOff' | 'Running'): Promise<void> {
    const p = await pluginPod();
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const image = p.spec.containers[0].image;
    const container =
      state === 'Running'
        ? { name: 'stowage-node', image, imageID: '', ready: true, restartCount: 0, started: true, state: { running: { startedAt: now } } }
        : {
            name: 'stowage-node',
            image,
            imageID: '',
            ready: false,
            restartCount: state === 'CrashLoopBackOff' ? 4 : 0,
            started: false,
            state: {
              waiting:
                state === 'ImagePullBackOff'
                  ? { reason: 'ImagePullBackOff', message: `Back-off pulling image "${image}"` }
                  : {
                      reason: 'CrashLoopBackOff',
                      message: `back-off 1m20s restarting failed container=stowage-node pod=${p.metadata.name}`,
                    },
            },
          };
    const ready = state === 'Running' ? 'True' : 'False';
    await world.admin.mergePatch(
      PODS,
      p.metadata.name,
      {
        status: {
          phase: state === 'ImagePullBackOff' ? 'Pending' : 'Running',
          hostIP: '127.0.0.1',
          podIP: '127.0.0.1',
          startTime: now,
          conditions: [
            { type: 'Initialized', status: 'True', lastTransitionTime: now },
            {
              type: 'Ready',
              status: ready,
              lastTransitionTime: now,
              ...(ready === 'False' ? { reason: 'ContainersNotReady', message: 'containers with unready status: [stowage-node]' } : {}),
            },
            { type: 'ContainersReady', status: ready, lastTransitionTime: now },
            { type: 'PodScheduled', status: 'True', lastTransitionTime: now },
          ],
          containerStatuses: [container],
        },
      },
      { namespace: world.namespace, subresource: 'status' },
    );
  }

  /** kubelet's CSINode for the node: owned by the Node, listing the drivers registered there. */
  async function kubeletRegisters(drivers: string[]): Promise<void> {
    const nodeObj = await world.admin.get<KubeObject>(NODES, node);
    const body = {
      apiVersion: 'storage.k8s.io/v1',
      kind: 'CSINode',
      metadata: { name: node, ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: node, uid: nodeObj.metadata.uid! }] },
      spec: { drivers: drivers.map((name) => ({ name, nodeID: node, topologyKeys: ['topology.stowage.dev/node'] })) },
    };
    if (await world.admin.getIfExists(CSI_NODES, node)) await world.admin.mergePatch(CSI_NODES, node, { spec: body.spec });
    else await world.admin.create(CSI_NODES, body);
  }

  const driverReady = (p: Pool) => condition(p, 'DriverReady');

  it('reports DriverReady=False naming the node and ImagePullBackOff, Ready=False, and a Warning event', async () => {
    const p = await pluginPod();
    expect(p.spec.containers.map((c: Any) => c.image)).to.deep.equal([BROKEN]); // registration: self, Stowage's image alone
    await kubeletRegisters([]);
    await kubeletReports('ImagePullBackOff');
    const seen = await world.waitForPool(
      pool,
      'DriverReady=False with ImagePullBackOff',
      (x) => driverReady(x)?.reason === 'ImagePullBackOff',
      30_000,
    );
    expect(driverReady(seen)).to.include({ status: 'False', observedGeneration: seen.metadata.generation });
    expect(driverReady(seen)!.message)
      .to.contain(`${node}: ImagePullBackOff`)
      .and.contain(BROKEN)
      .and.match(/DaemonSet rollout: \d+ desired, \d+ ready, \d+ updated/);
    expect(condition(seen, 'Ready')).to.include({ status: 'False', reason: 'DriverNotReady' });
    await waitFor(
      'the DriverNotReady event',
      async () =>
        (await world.eventsFor(pool)).some((e) => e.startsWith('DriverNotReady:') && e.includes(node) && e.includes('ImagePullBackOff')),
      15_000,
      250,
    );
  });

  it('follows kubelet to CrashLoopBackOff, then to running but not registered with kubelet', async () => {
    await kubeletReports('CrashLoopBackOff');
    const crashing = await world.waitForPool(
      pool,
      'DriverReady reason CrashLoopBackOff',
      (x) => driverReady(x)?.reason === 'CrashLoopBackOff',
      30_000,
    );
    expect(driverReady(crashing)!.message).to.contain(`${node}: CrashLoopBackOff`);
    await kubeletReports('Running');
    const unregistered = await world.waitForPool(
      pool,
      'DriverReady reason NotRegistered',
      (x) => driverReady(x)?.reason === 'NotRegistered',
      30_000,
    );
    expect(driverReady(unregistered)!.message).to.contain(`${node}: NotRegistered`).and.contain('CSINode lists no such driver');
  });

  it('turns True once the plugin runs and kubelet lists csi.stowage.dev, with Ready=True, a Normal event, and no write while nothing changes', async () => {
    await kubeletRegisters([DRIVER_NAME]);
    const ok = await world.waitForPool(
      pool,
      'DriverReady=True',
      (x) => driverReady(x)?.status === 'True' && condition(x, 'Ready')?.status === 'True',
      30_000,
    );
    expect(driverReady(ok)!.reason).to.equal('PluginsRunning');
    expect(driverReady(ok)!.message).to.contain('runs and is registered on all 1 node(s) of the pool');
    await waitFor(
      'the DriverReady event',
      async () => (await world.eventsFor(pool)).some((e) => e.startsWith('DriverReady:')),
      15_000,
      250,
    );
    // Converged: resyncs (every 2 s) and the DaemonSet's own status updates write nothing to the pool.
    await new Promise((r) => setTimeout(r, 2_000));
    const mark = writes.length;
    await new Promise((r) => setTimeout(r, 6_000));
    const poolWrites = writes.slice(mark).filter((c) => c.resource === 'storagepools');
    expect(
      poolWrites.map((c) => `${c.verb} ${c.resource}/${c.subresource ?? ''}`),
      'writes to a converged pool',
    ).to.deep.equal([]);
  });

  it("keeps reporting DriverReady while the pool's deletion waits for a volume (mounted through the driver)", async () => {
    const volume = `${world.prefix}-vol`;
    await world.admin.create(POOL_VOLUMES, {
      apiVersion: 'stowage.dev/v1alpha1',
      kind: 'PoolVolume',
      metadata: { name: volume, finalizers: ['stowage.dev/volume-data'] },
      spec: { pool, node, size: '1Gi', volumeMode: 'Filesystem', requestName: 'pvc-driver-health' },
    });
    try {
      await world.admin.delete(STORAGE_POOLS, pool);
      await kubeletReports('CrashLoopBackOff');
      const blocked = await waitFor(
        'DeletionBlocked with DriverReady=False',
        async () => {
          const p = await world.getPool(pool);
          return p && condition(p, 'Ready')?.reason === 'DeletionBlocked' && driverReady(p)?.reason === 'CrashLoopBackOff' ? p : undefined;
        },
        30_000,
        250,
      );
      expect(driverReady(blocked)!.message).to.contain(`${node}: CrashLoopBackOff`);
    } finally {
      // The node daemon would remove the volume's data and its finalizer; here the test does.
      await world.admin.mergePatch(POOL_VOLUMES, volume, { metadata: { finalizers: null } }).catch(() => undefined);
      await world.admin.delete(POOL_VOLUMES, volume).catch(() => undefined);
    }
    await waitFor('the pool to be gone', async () => !(await world.getPool(pool)), 60_000);
  });

  it('does not make Local pools report DriverReady', async () => {
    const local = await world.applyPool({
      apiVersion: 'stowage.dev/v1alpha1',
      kind: 'StoragePool',
      metadata: { name: `${world.prefix}-local` },
      spec: {
        mode: 'Local',
        disks: { selector: { matchLabels: { [`test/${world.prefix}`]: 'none' } } },
        local: { volumeMode: 'Filesystem', fsType: 'ext4' },
      },
    });
    const p = await world.waitForPool(local, 'status written', (x) => condition(x, 'Ready') !== undefined);
    expect(driverReady(p)).to.equal(undefined);
    await world.admin.delete(STORAGE_POOLS, local);
  });
});

describe('a cluster too old for Stowage (real control plane; only its /version answer is faked as v1.19.16)', function () {
  this.timeout(120_000);
  let world: PoolWorld;
  let abort: AbortController | undefined;
  let running: Promise<unknown> | undefined;

  before(async () => {
    world = await PoolWorld.start({ nodes: 1, startOperator: false });
    const node = world.nodes[0];
    await world.agent.addDisk({ name: `${node}-a`, node, capacity: '100Gi', media: 'nvme' });
    await world.admin.mergePatch(NODE_DISKS, `${node}-a`, { metadata: { labels: { [`test/${world.prefix}`]: 'yes' } } });
    const manager = new Manager({ client: world.operatorClient, informerDefaults: { resyncMs: 2_000 } });
    // The one fault: a server that says it is 1.19 (the test server is 1.20.2). Everything else is real.
    const serverVersion = new ServerVersion({ request: async <T>() => ({ major: '1', minor: '19', gitVersion: 'v1.19.16' }) as T });
    setupControllers(manager, {
      workers: 2,
      fieldManager: 'stowage-operator',
      serverVersion,
      driverStack: { namespace: world.namespace, resyncMs: 2_000 },
    });
    abort = new AbortController();
    running = manager.run(abort.signal);
  });

  after(async () => {
    if (!world) return;
    for (const name of world.pools) await world.admin.delete(STORAGE_POOLS, name).catch(() => undefined);
    await waitFor(
      'the pools to be finalized',
      async () => {
        for (const name of world.pools) if (await world.getPool(name)) return false;
        return true;
      },
      60_000,
    ).catch(() => undefined);
    abort?.abort();
    await running;
    await world.admin.delete(DAEMON_SETS, NODE_DAEMONSET, { namespace: world.namespace }).catch(() => undefined);
    await waitFor(
      "the DaemonSet's pods to be gone",
      async () => {
        const pods = (await world.admin.list(PODS, { namespace: world.namespace, labelSelector: NODE_POD_SELECTOR })).items;
        for (const p of pods) {
          await world.admin
            .request({
              method: 'DELETE',
              path: `/api/v1/namespaces/${world.namespace}/pods/${p.metadata.name}`,
              body: { gracePeriodSeconds: 0 },
            })
            .catch(() => undefined);
        }
        return pods.length === 0;
      },
      60_000,
      500,
    ).catch(() => undefined);
    await world.close();
  });

  it('refuses each pool clearly: Ready=False/UnsupportedKubernetes naming the version, a Warning event, no StorageClass and no claim', async () => {
    for (const mode of ['Dynamic', 'Local'] as const) {
      const name = await world.applyPool({
        apiVersion: 'stowage.dev/v1alpha1',
        kind: 'StoragePool',
        metadata: { name: `${world.prefix}-${mode.toLowerCase()}` },
        spec: {
          mode,
          disks: { selector: { matchLabels: { [`test/${world.prefix}`]: 'yes' } } },
          ...(mode === 'Local' ? { local: { volumeMode: 'Filesystem', fsType: 'ext4' } } : { replicated: { size: 1 } }),
        },
      });
      const pool = await world.waitForPool(name, 'refused', (p) => condition(p, 'Ready')?.reason === 'UnsupportedKubernetes');
      expect(condition(pool, 'Ready')!.message).to.contain('v1.19.16').and.contain('1.20 or later').and.contain('upgrade the cluster');
      expect(condition(pool, 'Ready')!.observedGeneration).to.equal(pool.metadata.generation);
      await waitFor(
        `the UnsupportedKubernetes event on ${name}`,
        async () => (await world.eventsFor(name)).some((e) => e.startsWith('UnsupportedKubernetes:') && e.includes('v1.19.16')),
        15_000,
        250,
      );
      expect(await world.admin.getIfExists(STORAGE_CLASSES, name), 'no StorageClass for a refused pool').to.equal(undefined);
    }
    const disk = await world.admin.get<Any>(NODE_DISKS, `${world.nodes[0]}-a`);
    expect(disk.spec.claim, 'no disk claimed for a refused pool').to.equal(undefined);
  });
});

import { readFile } from 'node:fs/promises';
import { expect } from 'chai';
import { parse } from 'yaml';
import { PERSISTENT_VOLUMES, PODS, STORAGE_CLASSES } from '../../src/kube/resources.js';
import type { KubeObject, PersistentVolume, StorageClass } from '../../src/kube/types.js';
import { NODE_DISKS } from '../../src/crds/resource-types.js';
import type { NodeDisk } from '../../src/crds/nodedisk.js';
import { isSubset } from '../../src/runtime/apply.js';
import { renderDesired } from '../../src/operator/render.js';
import { validateModel } from '../stack/models.js';
import { waitFor } from '../support/cluster.js';
import { PoolWorld, condition, type Pool } from '../support/pool-world.js';

/**
 * Local pools end to end on the real control plane, with the node agent's side of the claim
 * protocol played by AgentDouble (test/node/ covers the real agent with loop devices).
 */
describe('Local pools: samples/local-ssd end to end (real control plane; agent side played by the protocol double)', function () {
  this.timeout(180_000);
  let world: PoolWorld;
  let name: string;
  let className: string;

  before(async () => {
    world = await PoolWorld.start({ nodes: 3 });
    const [n1, n2, n3] = world.nodes as [string, string, string];
    for (const node of [n1, n2, n3]) {
      await world.agent.addDisk({ name: `${node}-a`, node, capacity: '100Gi', media: 'ssd' });
      await world.agent.addDisk({ name: `${node}-b`, node, capacity: '100Gi', media: 'ssd' });
    }
    // Not selected by local-ssd: an HDD, a tiny SSD, and an SSD holding a filesystem.
    await world.agent.addDisk({ name: `${n1}-hdd`, node: n1, capacity: '2Ti', media: 'hdd' });
    await world.agent.addDisk({ name: `${n1}-tiny`, node: n1, capacity: '8Gi', media: 'ssd' });
    await world.agent.addDisk({ name: `${n2}-used`, node: n2, capacity: '100Gi', media: 'ssd', ineligible: 'HasFilesystem' });
    const sample = parse(await readFile(new URL('../../../samples/local-ssd.yaml', import.meta.url), 'utf8')) as Pool;
    name = sample.metadata.name = `${world.prefix}-ssd`;
    className = sample.spec.storageClass!.name = `${world.prefix}-ssd`;
    await world.applyPool(sample);
  });
  after(() => world?.close());

  it('creates the StorageClass and one PV per eligible selected disk, pinned to its node, with capacity that adds up', async () => {
    const pool = await world.waitForPool(
      name,
      'Ready with 6 volumes',
      (p) => condition(p, 'Ready')?.status === 'True' && p.status?.counts?.volumes?.available === 6,
    );
    const sc = await world.admin.get<StorageClass>(STORAGE_CLASSES, className);
    expect(sc.provisioner).to.equal('kubernetes.io/no-provisioner');
    expect(sc.volumeBindingMode).to.equal('WaitForFirstConsumer');
    expect(sc.reclaimPolicy).to.equal('Delete');
    expect(sc.metadata.labels).to.include({ 'app.kubernetes.io/managed-by': 'stowage', 'stowage.dev/pool': name });
    expect(sc.metadata.ownerReferences?.[0]).to.include({ kind: 'StoragePool', name });

    const pvs = await world.volumesOf(name);
    expect(pvs.map((pv) => pv.metadata.labels?.['stowage.dev/disk']).sort()).to.deep.equal(
      world.nodes.flatMap((n) => [`${n}-a`, `${n}-b`]).sort(),
    );
    for (const pv of pvs) {
      const node = pv.metadata.labels!['stowage.dev/node'];
      expect(pv.spec.nodeAffinity?.required?.nodeSelectorTerms[0]!.matchExpressions![0]).to.deep.equal({
        key: 'kubernetes.io/hostname',
        operator: 'In',
        values: [node],
      });
      expect(pv.spec.local?.path).to.equal(`/var/lib/stowage/disks/${pv.metadata.labels!['stowage.dev/disk']}`);
      expect(pv.spec.capacity?.storage).to.equal('98Gi');
      expect(pv.spec.storageClassName).to.equal(className);
      expect(pv.spec.volumeMode).to.equal('Filesystem');
    }
    const claimed = await world.admin.get<NodeDisk & KubeObject>(NODE_DISKS, `${world.nodes[0]}-a`);
    expect(claimed.spec.claim).to.deep.equal({ pool: name, mode: 'Local', volumeMode: 'Filesystem', fsType: 'ext4', allowAdoption: false });
    expect(claimed.metadata.labels?.['stowage.dev/pool']).to.equal(name);
    for (const other of [`${world.nodes[0]}-hdd`, `${world.nodes[0]}-tiny`, `${world.nodes[1]}-used`]) {
      expect((await world.admin.get<NodeDisk & KubeObject>(NODE_DISKS, other)).spec.claim, other).to.equal(undefined);
    }
    expect(pool.status?.capacity).to.deep.equal({ raw: '600Gi', usable: '588Gi', allocated: '0', available: '588Gi' });
    expect(pool.status?.counts).to.deep.equal({
      nodes: 3,
      disks: { total: 6, ready: 6, unhealthy: 0, missing: 0 },
      volumes: { available: 6, bound: 0, released: 0 },
    });
    for (const type of ['CapacityAvailable', 'DisksHealthy', 'ReplicationSatisfiable'])
      expect(condition(pool, type)?.status, type).to.equal('True');
    expect(pool.status?.storageClassName).to.equal(className);
    // Events are aggregated per reconcile and reason; every disk is named in one of them. They are
    // written in the background, after the status: wait for the last one rather than race it.
    const events = await waitFor('a PersistentVolumeCreated event for every disk', async () => {
      const seen = await world.eventsFor(name);
      return (
        world.nodes.every((n) =>
          [`${n}-a`, `${n}-b`].every((d) => seen.some((e) => e.startsWith('PersistentVolumeCreated') && e.includes(`from disk ${d}`))),
        ) && seen
      );
    });
    for (const d of world.nodes.flatMap((n) => [`${n}-a`, `${n}-b`])) {
      expect(
        events.some((e) => e.startsWith('DiskClaimed') && e.includes(`claimed disk ${d} `)),
        `DiskClaimed ${d}`,
      ).to.equal(true);
      expect(
        events.some((e) => e.startsWith('PersistentVolumeCreated') && e.includes(`from disk ${d}`)),
        `PersistentVolumeCreated ${d}`,
      ).to.equal(true);
    }
  });

  it('a PVC and a pod: the scheduler places the pod where a free disk is and the claim binds to a PV on that node', async () => {
    const pv = await world.claimVolume('data', className);
    // Volume binding happens in the scheduler's PreBind step, just before the pod itself is bound.
    const node = await waitFor(
      'the pod to be scheduled',
      async () => (await world.admin.get<KubeObject & { spec: { nodeName?: string } }>(PODS, 'data', world.namespace)).spec.nodeName,
    );
    expect(pv.metadata.labels?.['stowage.dev/node']).to.equal(node);
    const pool = await world.waitForPool(name, 'one bound volume', (p) => p.status?.counts?.volumes?.bound === 1);
    expect(pool.status?.capacity).to.deep.equal({ raw: '600Gi', usable: '588Gi', allocated: '98Gi', available: '490Gi' });
  });

  it('deleting pod and claim: the PV is Released, wiped for its UID, and replaced by a fresh PV with a new UID', async () => {
    const old = (await world.volumesOf(name)).find((pv) => pv.status?.phase === 'Bound')!;
    const disk = old.metadata.labels!['stowage.dev/disk'];
    await world.releaseVolume('data');
    const fresh = await waitFor(
      'a fresh PV for the disk',
      async () => {
        const pv = await world.admin.getIfExists<PersistentVolume>(PERSISTENT_VOLUMES, old.metadata.name!);
        return pv && pv.metadata.uid !== old.metadata.uid && pv.status?.phase === 'Available' ? pv : undefined;
      },
      90_000,
    );
    expect(world.agent.disks.get(disk)!.wipes).to.deep.equal([old.metadata.uid], "exactly one wipe, for the released volume's UID");
    expect(fresh.metadata.name).to.equal(old.metadata.name);
    const nd = await world.admin.get<NodeDisk & KubeObject>(NODE_DISKS, disk);
    expect(nd.spec.wipe).to.equal(undefined, 'the wipe request is withdrawn once its volume is gone');
    const events = await waitFor('the PersistentVolumeRecycled event', async () => {
      const seen = await world.eventsFor(name);
      return seen.some((e) => e.startsWith('PersistentVolumeRecycled')) && seen;
    });
    expect(events.some((e) => e.startsWith('WipeRequested') && e.includes(old.metadata.uid!))).to.equal(true);
    expect(events.some((e) => e.startsWith('PersistentVolumeRecycled'))).to.equal(true);
  });

  it('after convergence, full resyncs send zero writes', async () => {
    await world.waitForPool(name, 'six available volumes', (p) => p.status?.counts?.volumes?.available === 6);
    await new Promise((r) => setTimeout(r, 2_000));
    world.operatorWrites.length = 0;
    await new Promise((r) => setTimeout(r, 7_000)); // resync every 3 s: at least two full resyncs
    expect(world.operatorWrites.map((w) => `${w.verb} ${w.resource}${w.subresource ? `/${w.subresource}` : ''}`)).to.deep.equal([]);
  });

  it('stowage render of the pool and its disks equals what the operator created, and every object passes the official schemas', async () => {
    const pool = (await world.getPool(name))!;
    const disks = (await world.admin.list<NodeDisk & KubeObject>(NODE_DISKS)).items.filter((d) => world.nodes.includes(d.spec.nodeName));
    const { objects } = renderDesired({ pools: [pool], disks });
    const rendered = objects.filter((o) => o.kind === 'StorageClass' || o.kind === 'PersistentVolume');
    // List items come without apiVersion/kind; put them back for the comparison.
    const pvs = (await world.volumesOf(name)).map((pv) => ({ ...pv, apiVersion: 'v1', kind: 'PersistentVolume' }));
    const live: KubeObject[] = [await world.admin.get<StorageClass>(STORAGE_CLASSES, className), ...pvs];
    expect(rendered.map((o) => `${o.kind}/${o.metadata.name}`).sort()).to.deep.equal(
      live.map((o) => `${o.kind}/${o.metadata.name}`).sort(),
    );
    for (const obj of rendered) {
      const match = live.find((l) => l.kind === obj.kind && l.metadata.name === obj.metadata.name)!;
      expect(isSubset(obj, match), `${obj.kind}/${obj.metadata.name} as rendered is what the cluster holds`).to.equal(true);
      validateModel(obj);
    }
    for (const obj of objects) validateModel(obj);
  });
});

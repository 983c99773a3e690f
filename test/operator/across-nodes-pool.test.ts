import { expect } from 'chai';
import { NODE_DISKS, STORAGE_POOLS } from '../../src/crds/resource-types.js';
import type { NodeDisk } from '../../src/crds/nodedisk.js';
import { NODES, STORAGE_CLASSES } from '../../src/kube/resources.js';
import type { KubeObject, StorageClass } from '../../src/kube/types.js';
import { waitFor } from '../support/cluster.js';
import { PoolWorld, condition, type Pool } from '../support/pool-world.js';

/** Resources the operator would write if it created anything for a pool (a class, claims, PVs, the CSI stack). */
const CREATION = new Set(['storageclasses', 'nodedisks', 'persistentvolumes', 'csidrivers', 'deployments', 'volumesnapshotclasses']);

/**
 * Pools whose copies go to other nodes (failureDomain host, zone) against the real control plane
 * and the real operator: the failure domains are counted up front, the verdict is in the status,
 * and nothing is created for the pool. "Nothing" is read from the operator's own API calls (every
 * write it sends is recorded from the start of the world) and from listing the cluster afterwards.
 */
describe('host and zone pools: placement up front, nothing created (real control plane, real operator)', function () {
  this.timeout(180_000);
  let world: PoolWorld;
  const label = (): string => `test/${world.prefix}`;

  /** The operator's writes so far to anything that would be created for a pool. */
  const creations = (): string[] => world.operatorWrites.filter((w) => CREATION.has(w.resource)).map((w) => `${w.verb} ${w.resource}`);

  async function assertNothingCreatedFor(name: string): Promise<void> {
    // The recorder sees the operator's writes (its status writes are there), and none of them creates anything.
    // (The observer hears of a call once its response is read, which may be just after the status is visible.)
    await waitFor("the operator's status write to be recorded", async () =>
      world.operatorWrites.some((w) => w.resource === 'storagepools' && w.subresource === 'status'),
    );
    expect(creations(), 'operator writes to classes, disks, PVs or the CSI stack').to.deep.equal([]);
    const classes = await world.admin.list<StorageClass>(STORAGE_CLASSES, { labelSelector: `stowage.dev/pool=${name}` });
    expect(classes.items.map((c) => c.metadata.name)).to.deep.equal([]);
    expect(await world.admin.getIfExists(STORAGE_CLASSES, name)).to.equal(undefined);
    const disks = await world.admin.list<NodeDisk & KubeObject>(NODE_DISKS);
    expect(
      disks.items.filter((d) => d.spec.claim !== undefined).map((d) => d.metadata.name),
      'claimed disks',
    ).to.deep.equal([]);
    const pool = await world.getPool(name);
    expect(pool?.metadata.finalizers ?? [], 'no finalizer: there is nothing to clean up').to.deep.equal([]);
  }

  const across = (name: string, replicated: object): Pool => ({
    apiVersion: 'stowage.dev/v1alpha1',
    kind: 'StoragePool',
    metadata: { name: `${world.prefix}-${name}` },
    spec: { mode: 'Dynamic', replicated, disks: { selector: { matchLabels: { [label()]: 'yes' } } } },
  });

  before(async () => {
    world = await PoolWorld.start({ nodes: 3 });
    const [n1, n2, n3] = world.nodes as [string, string, string];
    for (const [node, letter] of [
      [n1, 'a'],
      [n1, 'b'],
      [n2, 'a'],
      [n3, 'a'],
    ] as const) {
      await world.agent.addDisk({ name: `${node}-${letter}`, node, capacity: '100Gi', media: 'ssd' });
    }
    // Node 3's disk is not selected yet: two hosts hold selected disks.
    for (const disk of [`${n1}-a`, `${n1}-b`, `${n2}-a`])
      await world.admin.mergePatch(NODE_DISKS, disk, { metadata: { labels: { [label()]: 'yes' } } });
    await world.admin.mergePatch(NODES, n1, { metadata: { labels: { 'topology.kubernetes.io/zone': `${world.prefix}-a` } } });
    await world.admin.mergePatch(NODES, n2, { metadata: { labels: { 'topology.kubernetes.io/zone': `${world.prefix}-a` } } });
  });
  after(async () => {
    await world?.close();
  });

  it('size 3 over two hosts: ReplicationSatisfiable=False naming both, Ready=False, and no StorageClass, claim or finalizer', async () => {
    const [n1, n2] = world.nodes as [string, string];
    const name = await world.applyPool(across('host3', { size: 3, failureDomain: 'host' }));
    const pool = await world.waitForPool(name, 'unsatisfiable', (p) => condition(p, 'ReplicationSatisfiable')?.status === 'False');
    expect(condition(pool, 'ReplicationSatisfiable')).to.include({ reason: 'TooFewFailureDomains', observedGeneration: 1 });
    expect(condition(pool, 'ReplicationSatisfiable')?.message).to.contain(
      `2 of the 3 hosts size 3 needs hold eligible disks: ${n1}, ${n2}`,
    );
    expect(condition(pool, 'Ready')).to.include({ status: 'False', reason: 'ReplicationNotSatisfiable' });
    expect(pool.status?.storageClassName).to.equal(undefined);
    await assertNothingCreatedFor(name);
    const events = await world.eventsFor(name);
    expect(
      events.some((e) => e.startsWith('ReplicationNotSatisfiable: 2 of the 3 hosts')),
      events.join('\n'),
    ).to.equal(true);
  });

  it('a third host with an eligible disk makes it satisfiable: Ready=False CephEngineNotDeployed, still nothing created', async () => {
    const n3 = world.nodes[2];
    const name = `${world.prefix}-host3`;
    await world.admin.mergePatch(NODE_DISKS, `${n3}-a`, { metadata: { labels: { [label()]: 'yes' } } });
    const pool = await world.waitForPool(name, 'satisfiable', (p) => condition(p, 'ReplicationSatisfiable')?.status === 'True');
    expect(condition(pool, 'ReplicationSatisfiable')?.reason).to.equal('EnoughFailureDomains');
    expect(condition(pool, 'Ready')).to.include({ status: 'False', reason: 'CephEngineNotDeployed' });
    expect(condition(pool, 'Ready')?.message).to.contain('does not yet deploy the Ceph cluster');
    await assertNothingCreatedFor(name);
  });

  it('zone: nodes without the zone label are named, and labelling one makes a second zone', async () => {
    const [n1, n2, n3] = world.nodes as [string, string, string];
    const name = await world.applyPool(across('zone2', { size: 2, failureDomain: 'zone' }));
    const pool = await world.waitForPool(name, 'one zone', (p) => condition(p, 'ReplicationSatisfiable')?.status === 'False');
    expect(condition(pool, 'ReplicationSatisfiable')?.message).to.contain(
      `1 of the 2 zones size 2 needs holds eligible disks: ${world.prefix}-a (${n1}, ${n2}); eligible disks on ${n3} count for no zone`,
    );
    await world.admin.mergePatch(NODES, n3, { metadata: { labels: { 'topology.kubernetes.io/zone': `${world.prefix}-b` } } });
    const fixed = await world.waitForPool(name, 'two zones', (p) => condition(p, 'ReplicationSatisfiable')?.status === 'True');
    expect(condition(fixed, 'ReplicationSatisfiable')?.message).to.contain(
      `2 zones hold eligible disks the pool selects, size 2 needs 2: ${world.prefix}-a (${n1}, ${n2}), ${world.prefix}-b (${n3})`,
    );
    expect(condition(fixed, 'Ready')?.reason).to.equal('CephEngineNotDeployed');
    await assertNothingCreatedFor(name);
  });

  it('size 1 on host: the 1.20 server stores it (no CEL), the operator refuses it (InvalidSpec) and creates nothing', async () => {
    const name = await world.applyPool(across('single', { size: 1, failureDomain: 'host' }));
    const pool = await world.waitForPool(name, 'invalid', (p) => condition(p, 'Ready')?.reason === 'InvalidSpec');
    expect(condition(pool, 'Ready')?.message).to.contain('spec.replicated.size: failureDomain host and zone need size 2 or 3');
    await assertNothingCreatedFor(name);
  });

  it('an unknown failure domain and minSize 0 are refused by the server, at the paths stowage validate names', async () => {
    const bad = across('rack', { size: 2, failureDomain: 'rack', minSize: 0 });
    const error = await world.admin.create(STORAGE_POOLS, bad).then(
      () => undefined,
      (e: Error) => e.message,
    );
    expect(error).to.contain('spec.replicated.failureDomain').and.contain('spec.replicated.minSize');
    expect(await world.getPool(bad.metadata.name)).to.equal(undefined);
  });
});

describe('a disk pool switched to failureDomain host (real control plane, real operator)', function () {
  this.timeout(180_000);
  let world: PoolWorld;

  before(async () => {
    world = await PoolWorld.start({ nodes: 2 });
    for (const node of world.nodes) {
      await world.agent.addDisk({ name: `${node}-a`, node, capacity: '100Gi', media: 'ssd' });
      await world.admin.mergePatch(NODE_DISKS, `${node}-a`, { metadata: { labels: { [`test/${world.prefix}`]: 'yes' } } });
    }
  });
  after(async () => {
    await world?.close();
  });

  it('keeps its disks and StorageClass untouched and says so (FailureDomainChanged); back to disk, it is Ready again', async () => {
    const pool = {
      apiVersion: 'stowage.dev/v1alpha1',
      kind: 'StoragePool',
      metadata: { name: `${world.prefix}-switch` },
      spec: { mode: 'Dynamic', replicated: { size: 1 }, disks: { selector: { matchLabels: { [`test/${world.prefix}`]: 'yes' } } } },
    } as Pool;
    const name = await world.applyPool(pool);
    await world.waitForPool(
      name,
      'Ready as a disk pool',
      (p) => condition(p, 'Ready')?.status === 'True' && p.status?.counts?.disks?.total === 2,
    );
    const claimedBefore = (await world.admin.list<NodeDisk & KubeObject>(NODE_DISKS)).items
      .filter((d) => d.spec.claim?.pool === name)
      .map((d) => d.metadata.name)
      .sort();
    expect(claimedBefore).to.have.length(2);

    await world.applyPool({ ...pool, spec: { ...pool.spec, replicated: { size: 2, failureDomain: 'host' } } });
    const switched = await world.waitForPool(name, 'FailureDomainChanged', (p) => condition(p, 'Ready')?.reason === 'FailureDomainChanged');
    expect(condition(switched, 'Ready')?.message).to.contain(`2 disk(s) (${claimedBefore.join(', ')}) and StorageClass ${name}`);
    expect(condition(switched, 'ReplicationSatisfiable')?.reason).to.equal('EnoughFailureDomains');
    const writesAfterSwitch = world.operatorWrites.length;
    // The claims and the class are still there, unchanged.
    const claimedAfter = (await world.admin.list<NodeDisk & KubeObject>(NODE_DISKS)).items
      .filter((d) => d.spec.claim?.pool === name)
      .map((d) => d.metadata.name)
      .sort();
    expect(claimedAfter).to.deep.equal(claimedBefore);
    expect(await world.admin.getIfExists(STORAGE_CLASSES, name)).to.not.equal(undefined);

    await world.applyPool(pool);
    await world.waitForPool(name, 'Ready again as a disk pool', (p) => condition(p, 'Ready')?.status === 'True');
    expect(
      world.operatorWrites
        .slice(writesAfterSwitch)
        .filter((w) => w.resource === 'nodedisks' || w.resource === 'storageclasses')
        .map((w) => `${w.verb} ${w.resource}`),
      'nothing was re-created: the disks and the class stayed',
    ).to.deep.equal([]);
  });
});

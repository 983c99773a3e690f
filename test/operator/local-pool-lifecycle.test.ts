import { expect } from 'chai';
import { NODES, PERSISTENT_VOLUMES, STORAGE_CLASSES } from '../../src/kube/resources.js';
import type { KubeObject, PersistentVolume } from '../../src/kube/types.js';
import { NODE_DISKS } from '../../src/crds/resource-types.js';
import type { NodeDisk } from '../../src/crds/nodedisk.js';
import { waitFor } from '../support/cluster.js';
import { PoolWorld, condition, type Pool } from '../support/pool-world.js';

type Disk = NodeDisk & KubeObject;

/**
 * The claim protocol's harder paths for Local pools: competing pools, failing and vanishing
 * disks, a selector change and a deleted node while volumes are bound, and deletion of a pool with
 * and without bound claims. Nothing bound is ever deleted. The node agent's side is played by
 * AgentDouble.
 */
describe('Local pools: lifecycle (real control plane; agent side played by the protocol double)', function () {
  this.timeout(180_000);
  let world: PoolWorld;
  let main: string;
  const disk = (node: number, letter: 'a' | 'b'): string => `${world.nodes[node - 1]}-${letter}`;
  const pvOf = (diskName: string): string => `stowage-${diskName}`;

  const pool = (name: string, extra: Partial<Pool['spec']> = {}): Pool => ({
    apiVersion: 'stowage.dev/v1alpha1',
    kind: 'StoragePool',
    metadata: { name },
    spec: {
      mode: 'Local',
      disks: { selector: { matchLabels: { 'stowage.dev/media': 'ssd', [`test/${world.prefix}`]: 'yes' } } },
      ...extra,
    },
  });

  before(async () => {
    world = await PoolWorld.start({ nodes: 3 });
    for (const node of world.nodes) {
      for (const letter of ['a', 'b']) {
        await world.agent.addDisk({ name: `${node}-${letter}`, node, capacity: '100Gi', media: 'ssd' });
        // An administrator's label marks this test's disks, so pools of other tests never select them.
        await world.admin.mergePatch(NODE_DISKS, `${node}-${letter}`, { metadata: { labels: { [`test/${world.prefix}`]: 'yes' } } });
      }
    }
    main = await world.applyPool(pool(`${world.prefix}-main`));
    await world.waitForPool(main, 'Ready with 6 volumes', (p) => p.status?.counts?.volumes?.available === 6);
  });
  after(() => world?.close());

  it('a second pool selecting the same disks gets none of them and says why; the older claim wins', async () => {
    const rival = await world.applyPool(pool(`${world.prefix}-rival`));
    const p = await world.waitForPool(rival, 'Ready=False', (x) => condition(x, 'Ready')?.status === 'False');
    expect(condition(p, 'Ready')?.reason).to.equal('DisksClaimedByOtherPools');
    expect(condition(p, 'Ready')?.message).to.contain(`(pool ${main})`);
    await waitFor('a warning event on the rival', async () =>
      (await world.eventsFor(rival)).some((e) => e.startsWith('DiskClaimedByOtherPool')),
    );
    const mine = (await world.admin.list<Disk>(NODE_DISKS)).items.filter((d) => world.nodes.includes(d.spec.nodeName));
    expect(mine.every((d) => d.spec.claim?.pool === main)).to.equal(true);
    // Deleting the rival (it holds nothing) removes it and its StorageClass.
    await world.admin.delete(
      { group: 'stowage.dev', version: 'v1alpha1', plural: 'storagepools', kind: 'StoragePool', namespaced: false },
      rival,
    );
    await waitFor('the rival to be gone', async () => !(await world.getPool(rival)));
    await waitFor('its class to be gone', async () => !(await world.admin.getIfExists(STORAGE_CLASSES, rival)));
  });

  it('an unhealthy disk: DisksHealthy=False naming it, its unbound PV withdrawn, and back when it recovers', async () => {
    world.agent.setHealthy(disk(1, 'a'), false);
    const p = await world.waitForPool(main, 'DisksHealthy=False', (x) => condition(x, 'DisksHealthy')?.status === 'False');
    expect(condition(p, 'DisksHealthy')?.reason).to.equal('DisksUnhealthy');
    expect(condition(p, 'DisksHealthy')?.message).to.contain(disk(1, 'a'));
    await waitFor('its PV withdrawn', async () => !(await world.admin.getIfExists(PERSISTENT_VOLUMES, pvOf(disk(1, 'a')))));
    expect((await world.getPool(main))?.status?.counts?.disks?.unhealthy).to.equal(1);
    world.agent.setHealthy(disk(1, 'a'), true);
    await world.waitForPool(
      main,
      'healthy again with 6 volumes',
      (x) => condition(x, 'DisksHealthy')?.status === 'True' && x.status?.counts?.volumes?.available === 6,
    );
  });

  it('a missing disk: DisksHealthy=False (DisksMissing), its unbound PV withdrawn, the claim kept', async () => {
    world.agent.setPresent(disk(1, 'b'), false);
    const p = await world.waitForPool(main, 'DisksMissing', (x) => condition(x, 'DisksHealthy')?.reason === 'DisksMissing');
    expect(p.status?.counts?.disks?.missing).to.equal(1);
    await waitFor('its PV withdrawn', async () => !(await world.admin.getIfExists(PERSISTENT_VOLUMES, pvOf(disk(1, 'b')))));
    expect((await world.admin.get<Disk>(NODE_DISKS, disk(1, 'b'))).spec.claim?.pool).to.equal(main);
    world.agent.setPresent(disk(1, 'b'), true);
    await world.waitForPool(main, 'back to 6 volumes', (x) => x.status?.counts?.volumes?.available === 6);
  });

  it('options dropped from the pool are dropped from its class and unbound PVs; a bound PV keeps its own', async () => {
    const selector = { selector: { matchLabels: { 'stowage.dev/media': 'ssd', [`test/${world.prefix}`]: 'yes' } } };
    await world.applyPool(pool(main, { disks: selector, storageClass: { isDefault: true, mountOptions: ['noatime'] } }));
    await waitFor('every PV with noatime', async () => {
      const pvs = await world.volumesOf(main);
      return pvs.length === 6 && pvs.every((pv) => pv.spec.mountOptions?.[0] === 'noatime');
    });
    const withOptions = await world.admin.get<KubeObject & { mountOptions?: string[] }>(STORAGE_CLASSES, main);
    expect(withOptions.metadata.annotations?.['storageclass.kubernetes.io/is-default-class']).to.equal('true');
    expect(withOptions.mountOptions).to.deep.equal(['noatime']);
    const bound = await world.claimVolume('keeps-options', main, [world.nodes[0]]);

    await world.applyPool(pool(main, { disks: selector }));
    const sc = await waitFor('the class no longer the default, without mountOptions', async () => {
      const c = await world.admin.get<KubeObject & { mountOptions?: string[] }>(STORAGE_CLASSES, main);
      return c.metadata.annotations?.['storageclass.kubernetes.io/is-default-class'] === undefined && c.mountOptions === undefined
        ? c
        : undefined;
    });
    expect(sc.metadata.uid).to.equal(withOptions.metadata.uid, 'changed in place, not recreated');
    await waitFor('unbound PVs without mountOptions', async () => {
      const unbound = (await world.volumesOf(main)).filter((pv) => pv.metadata.name !== bound.metadata.name);
      return unbound.length === 5 && unbound.every((pv) => pv.spec.mountOptions === undefined);
    });
    const stillBound = await world.admin.get<PersistentVolume>(PERSISTENT_VOLUMES, bound.metadata.name!);
    expect(stillBound.metadata.resourceVersion).to.equal(bound.metadata.resourceVersion, 'a bound PV is never modified');
    expect(stillBound.spec.mountOptions).to.deep.equal(['noatime']);

    await world.releaseVolume('keeps-options');
    await world.waitForPool(
      main,
      'back to 6 available volumes',
      (x) => x.status?.counts?.volumes?.available === 6 && x.status?.counts?.volumes?.released === 0,
    );
    await waitFor('the recycled PV without mountOptions', async () =>
      (await world.volumesOf(main)).every((pv) => pv.spec.mountOptions === undefined),
    );
  });

  it('a selector change releases the disks it no longer selects, but holds a disk whose volume is bound', async () => {
    const bound = await world.claimVolume('on-node3', main, [world.nodes[2]]);
    const boundDisk = bound.metadata.labels!['stowage.dev/disk'];
    const freeDisk = boundDisk === disk(3, 'a') ? disk(3, 'b') : disk(3, 'a');
    await world.applyPool(
      pool(main, {
        disks: {
          selector: { matchLabels: { 'stowage.dev/media': 'ssd', [`test/${world.prefix}`]: 'yes' } },
          nodeSelector: { matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'NotIn', values: [world.nodes[2]] }] },
        },
      }),
    );
    await waitFor(`${freeDisk} released`, async () => (await world.admin.get<Disk>(NODE_DISKS, freeDisk)).spec.claim === undefined);
    expect(await world.admin.getIfExists(PERSISTENT_VOLUMES, pvOf(freeDisk))).to.equal(undefined);
    const held = await world.admin.get<Disk>(NODE_DISKS, boundDisk);
    expect(held.spec.claim?.pool).to.equal(main, 'a disk with a bound volume stays claimed');
    expect((await world.admin.get<PersistentVolume>(PERSISTENT_VOLUMES, bound.metadata.name!)).metadata.uid).to.equal(bound.metadata.uid);
    const p = await world.waitForPool(main, 'the held disk reported', (x) =>
      (condition(x, 'Ready')?.message ?? '').includes('cannot be released yet'),
    );
    expect(condition(p, 'Ready')?.message).to.contain(boundDisk).and.contain(`${world.namespace}/on-node3`);
    // Events are written in the background, after the status: wait for it rather than race it.
    await waitFor(`a DiskReleased event naming ${freeDisk}`, async () =>
      (await world.eventsFor(main)).some((e) => e.startsWith('DiskReleased') && e.includes(freeDisk)),
    );
  });

  it('a deleted Node: its unbound PVs go and its disks are released; a bound PV there stays and is reported', async () => {
    const bound = await world.claimVolume('on-node2', main, [world.nodes[1]]);
    const boundDisk = bound.metadata.labels!['stowage.dev/disk'];
    const freeDisk = boundDisk === disk(2, 'a') ? disk(2, 'b') : disk(2, 'a');
    await world.admin.delete(NODES, world.nodes[1]);
    await waitFor(`${freeDisk} released`, async () => (await world.admin.get<Disk>(NODE_DISKS, freeDisk)).spec.claim === undefined);
    expect(await world.admin.getIfExists(PERSISTENT_VOLUMES, pvOf(freeDisk))).to.equal(undefined);
    const pv = await world.admin.get<PersistentVolume>(PERSISTENT_VOLUMES, bound.metadata.name!);
    expect(pv.metadata.uid).to.equal(bound.metadata.uid, 'the bound PV on the deleted node is never deleted');
    const p = await world.waitForPool(main, "the node's bound disk reported", (x) =>
      (condition(x, 'Ready')?.message ?? '').includes(`${boundDisk}: its node`),
    );
    expect(condition(p, 'Ready')?.message).to.contain('is not in the cluster');
  });

  it('deleting the pool while claims are bound is blocked, naming them; once they are gone everything is cleaned up', async () => {
    await world.admin.delete(
      { group: 'stowage.dev', version: 'v1alpha1', plural: 'storagepools', kind: 'StoragePool', namespaced: false },
      main,
    );
    const p = await world
      .waitForPool(main, 'DeletionBlocked', (x) => condition(x, 'Ready')?.reason === 'DeletionBlocked', 60_000)
      .catch(async () => {
        // The deletion does not bump the generation; fall back to reading the condition directly.
        return waitFor('DeletionBlocked', async () => {
          const x = await world.getPool(main);
          return condition(x, 'Ready')?.reason === 'DeletionBlocked' ? x : undefined;
        });
      });
    expect(condition(p, 'Ready')?.message).to.contain(`${world.namespace}/on-node2`).and.contain(`${world.namespace}/on-node3`);
    const boundVolumes = (await world.volumesOf(main)).filter((pv) => pv.status?.phase === 'Bound');
    expect(boundVolumes).to.have.length(2);
    expect(await world.admin.getIfExists(STORAGE_CLASSES, main)).to.not.equal(undefined);

    await world.releaseVolume('on-node2');
    await world.releaseVolume('on-node3');
    await waitFor('the pool to be gone', async () => !(await world.getPool(main)), 120_000);
    expect(await world.volumesOf(main)).to.deep.equal([]);
    expect(await world.admin.getIfExists(STORAGE_CLASSES, main)).to.equal(undefined);
    const disks = (await world.admin.list<Disk>(NODE_DISKS)).items.filter((d) => world.nodes.includes(d.spec.nodeName));
    expect(disks.filter((d) => d.spec.claim !== undefined).map((d) => d.metadata.name)).to.deep.equal([]);
    expect(disks.every((d) => d.metadata.labels?.['stowage.dev/pool'] === undefined)).to.equal(true);
    // Both released volumes were wiped for their own UIDs before their PVs went (earlier tests' wipes are there too).
    const wiped = [...world.agent.disks.values()].flatMap((d) => d.wipes);
    expect(wiped).to.include.members(boundVolumes.map((pv) => pv.metadata.uid!));
  });
});

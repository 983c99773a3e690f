import { expect } from 'chai';
import { NODE_DISKS } from '../../src/crds/resource-types.js';
import { withDefaults } from '../../src/crds/validation.js';
import { PERSISTENT_VOLUMES } from '../../src/kube/resources.js';
import type { PersistentVolume } from '../../src/kube/types.js';
import { POOL_LABEL } from '../../src/crds/labels.js';
import { desiredClaim } from '../../src/operator/storagepool/disk-plan.js';
import { Informer } from '../../src/runtime/informer.js';
import { waitFor } from '../support/cluster.js';
import { PoolWorld, condition, type Pool } from '../support/pool-world.js';

/** More pools than the operator's 4 workers, each with several turns' worth of work. */
const POOLS = 6;
const DISKS_PER_POOL = 24;
/** Small turns, so that a pool needs several (the defaults are 4 and 64 writes). */
const TURNS = { firstTurnWrites: 2, writesPerTurn: 6 };

/**
 * Pools take turns: after an operator restart over claimed, prepared disks whose PVs are gone,
 * every pool gets its first volumes before any pool gets all of its own. (The PV controller marks
 * volumes Available in the order they were created, at its own pace: when pools went one after
 * another, the last of 20 pools over 4,000 disks stayed un-Ready for minutes.)
 */
describe('Local pools: pools take turns (real control plane; agent side played by the protocol double)', function () {
  this.timeout(180_000);
  let world: PoolWorld;
  let created: Informer<PersistentVolume> | undefined;

  after(async () => {
    await created?.stop();
    await world?.close();
  });

  it(`after a restart, each of ${POOLS} pools gets PVs before any pool has all of its own, then every pool is Ready with all`, async () => {
    world = await PoolWorld.start({ nodes: POOLS, startOperator: false });
    const pools: Pool[] = world.nodes.map((node) => ({
      apiVersion: 'stowage.dev/v1alpha1',
      kind: 'StoragePool',
      metadata: { name: `${node}-pool` },
      spec: { mode: 'Local', disks: { selector: { matchLabels: { 'stowage.dev/node': node, [`test/${world.prefix}`]: 'yes' } } } },
    }));
    // The state an earlier operator left: every disk claimed for its pool and prepared by the agent.
    for (const [i, node] of world.nodes.entries()) {
      const claim = desiredClaim(withDefaults(pools[i]));
      for (let d = 0; d < DISKS_PER_POOL; d++) {
        const name = `${node}-d${String(d).padStart(2, '0')}`;
        await world.agent.addDisk({ name, node, capacity: '100Gi', media: 'ssd' });
        await world.admin.apply(
          NODE_DISKS,
          {
            apiVersion: 'stowage.dev/v1alpha1',
            kind: 'NodeDisk',
            metadata: { name, labels: { [POOL_LABEL]: claim.pool, [`test/${world.prefix}`]: 'yes' } },
            spec: { claim },
          },
          { fieldManager: 'stowage-operator' },
        );
      }
    }
    await waitFor('the agent double to prepare every disk', () =>
      [...world.agent.disks.keys()].every((name) =>
        world.agent.live(name)?.status?.conditions?.some((c) => c.type === 'Prepared' && c.status === 'True'),
      ),
    );
    for (const pool of pools) await world.applyPool(pool);

    // Record the order in which PVs appear, then start the operator.
    const order: string[] = [];
    created = new Informer<PersistentVolume>({
      client: world.admin,
      resource: PERSISTENT_VOLUMES,
      labelSelector: 'app.kubernetes.io/managed-by=stowage',
      resyncMs: 0,
    });
    created.addHandler({
      added: (pv) => {
        if (world.nodes.includes(pv.metadata.labels?.['stowage.dev/node'] ?? '')) order.push(pv.metadata.labels![POOL_LABEL]);
      },
    });
    created.start();
    await created.waitForSync();
    world.startOperator({ poolTurns: TURNS });
    await waitFor('every PV', () => order.length === POOLS * DISKS_PER_POOL, 90_000);

    const firstOf = (pool: string): number => order.indexOf(pool);
    const lastOf = (pool: string): number => order.lastIndexOf(pool);
    const lastToStart = Math.max(...pools.map((p) => firstOf(p.metadata.name)));
    const firstToFinish = Math.min(...pools.map((p) => lastOf(p.metadata.name)));
    expect(lastToStart, `PV order by pool: ${order.map((p) => p.replace(/^.*node(\d+)-pool$/, '$1')).join('')}`).to.be.lessThan(
      firstToFinish,
    );
    for (const pool of pools) {
      await world.waitForPool(
        pool.metadata.name,
        'Ready with all its volumes',
        (p) => condition(p, 'Ready')?.status === 'True' && p.status?.counts?.volumes?.available === DISKS_PER_POOL,
      );
    }
  });
});

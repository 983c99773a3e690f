/**
 * Fault suite, hostile specs (issue 18): StoragePool and NodeDisk specs generated from the CRD
 * schemas and mutated (spec-mutations.ts), plus hand-made invalid selectors and conflicting fields,
 * applied to the real control plane with the real operator running as a child process. Every case
 * must be rejected by the API server or, once accepted, get a Ready=False/InvalidSpec condition
 * naming the field (a mutation that lands on a valid value must still be judged, Ready with a reason); the operator must never crash, and an accepted hostile NodeDisk is never claimed.
 */
import { expect } from 'chai';
import type { KubeClient } from '../../src/kube/client.js';
import { ApiError } from '../../src/kube/api-error.js';
import { installCrds } from '../../src/crds/install.js';
import { NODE_DISKS, STORAGE_POOLS } from '../../src/crds/resource-types.js';
import { storagePoolSchema, type StoragePool } from '../../src/crds/storagepool.js';
import { nodeDiskSchema, type NodeDisk } from '../../src/crds/nodedisk.js';
import { validateObject } from '../../src/crds/validation.js';
import { adminClient, deletePoolForcibly, uniqueName, waitFor } from '../support/cluster.js';
import { OperatorProcess } from '../support/operator-process.js';
import { injectFault } from './ledger.js';
import { aliveGuard } from './guards.js';
import { specMutations, type SpecMutation } from './spec-mutations.js';

const AREA = 'hostile specs';
const PARALLEL = 8;
const poolBase = (label: string) => ({ mode: 'Dynamic', disks: { selector: { matchLabels: { 'stowage.dev/fault-test': label } } } });

/** Selectors and field combinations the schema alone cannot show as wrong. */
function handMade(label: string): SpecMutation[] {
  const sel = (selector: unknown) => ({ ...poolBase(label), disks: { selector } });
  return [
    { field: 'spec.disks.selector.matchExpressions[0].operator', what: 'an unknown operator', spec: sel({ matchExpressions: [{ key: 'k', operator: 'Near', values: ['v'] }] }) },
    { field: 'spec.disks.selector.matchExpressions[0].values', what: 'In without values', spec: sel({ matchExpressions: [{ key: 'k', operator: 'In' }] }) },
    { field: 'spec.disks.selector.matchExpressions[0].values', what: 'Exists with values', spec: sel({ matchExpressions: [{ key: 'k', operator: 'Exists', values: ['v'] }] }) },
    { field: 'spec.disks.selector.matchExpressions[0].key', what: 'a key with control characters', spec: sel({ matchExpressions: [{ key: 'a\u0007b', operator: 'Exists' }] }) },
    { field: 'spec.disks.selector.matchLabels', what: 'a label value of 1 MiB', spec: sel({ matchLabels: { k: 'v'.repeat(1 << 20) } }) },
    { field: 'spec.disks.selector.matchLabels', what: 'a label key with a slash too many', spec: sel({ matchLabels: { 'a/b/c': 'v' } }) },
    { field: 'spec.disks.nodeSelector.matchExpressions[0].operator', what: 'an unknown node selector operator', spec: { ...poolBase(label), disks: { selector: { matchLabels: { k: 'v' } }, nodeSelector: { matchExpressions: [{ key: 'k', operator: 'Gt', values: ['x'] }] } } } },
    { field: 'spec.replicated.size', what: 'Local with 2 copies', spec: { ...poolBase(label), mode: 'Local', replicated: { size: 2 } } },
    { field: 'spec.local', what: 'Dynamic with Local settings', spec: { ...poolBase(label), local: { volumeMode: 'Block' } } },
    { field: 'spec.local.fsType', what: 'Block with a filesystem', spec: { ...poolBase(label), mode: 'Local', local: { volumeMode: 'Block', fsType: 'xfs' } } },
    { field: 'spec.storageClass.allowVolumeExpansion', what: 'Local volumes that grow', spec: { ...poolBase(label), mode: 'Local', storageClass: { allowVolumeExpansion: true } } },
    { field: 'spec.storageClass.mountOptions', what: 'Block with mount options', spec: { ...poolBase(label), mode: 'Local', local: { volumeMode: 'Block' }, storageClass: { mountOptions: ['noatime'] } } },
  ];
}

/** The name a message must mention: the last named segment of the field path. */
const fieldName = (field: string): string => field.replace(/\[\d+\]/g, '').split('.').pop()!;

describe('faults: hostile StoragePool and NodeDisk specs (real API server, real operator)', function () {
  this.timeout(600_000);
  const label = uniqueName('hostile');
  const node = uniqueName('hostile-node');
  let client: KubeClient;
  let operator: OperatorProcess | undefined;
  const pools: string[] = [];
  const disks: string[] = [];
  const outcomes = { rejected: 0, condition: 0, valid: 0 };

  before(async () => {
    const admin = await adminClient();
    client = admin.client;
    await installCrds(client, 'stowage-tests');
    operator = await OperatorProcess.start(admin.cp.kubeconfigPath);
    await waitFor('the operator to serve /readyz', async () => (await fetch(`${operator!.url}/readyz`)).ok, 60_000);
  });
  after(async () => {
    if (client) {
      for (const p of pools) await client.delete(STORAGE_POOLS, p).catch(() => undefined);
      await waitFor('the hostile pools to go', async () => {
        for (const p of pools) if (await client.getIfExists(STORAGE_POOLS, p)) return false;
        return true;
      }, 60_000).catch(() => undefined);
    }
    await operator?.stop();
    if (client) {
      for (const p of pools) await deletePoolForcibly(client, p).catch(() => undefined);
      for (const d of disks) await client.delete(NODE_DISKS, d).catch(() => undefined);
      client.close();
    }
  });

  const operatorAlive = () => aliveGuard({ operator: () => !operator!.exited && fetch(`${operator!.url}/healthz`).then((r) => r.ok) });

  /** Runs `cases` PARALLEL at a time. */
  async function each<T>(cases: readonly T[], body: (c: T) => Promise<void>): Promise<void> {
    const queue = [...cases];
    await Promise.all(Array.from({ length: PARALLEL }, async () => {
      for (let c = queue.shift(); c !== undefined; c = queue.shift()) await body(c);
    }));
  }

  it('rejects every mutated StoragePool at the API server or reports the field in an InvalidSpec condition', async () => {
    const cases = [...specMutations(storagePoolSchema.properties!.spec, poolBase(label)), ...handMade(label)];
    expect(cases.length).to.be.greaterThan(60);
    const failures: string[] = [];
    await each(cases, async (m) => {
      await injectFault(AREA, `StoragePool ${m.field}: ${m.what}`, async () => {
        const name = uniqueName('hostile-pool');
        try {
          await client.create(STORAGE_POOLS, { apiVersion: 'stowage.dev/v1alpha1', kind: 'StoragePool', metadata: { name }, spec: m.spec });
        } catch (err) {
          if (!(err instanceof ApiError) || err.code < 400 || err.code >= 500) throw err;
          outcomes.rejected++;
          return;
        }
        pools.push(name);
        // A mutation can land on a valid value (a mount option may look like a path): then the
        // operator must still judge the pool, as for any pool, instead of retrying in silence.
        const validAfterAll = validateObject({ apiVersion: 'stowage.dev/v1alpha1', kind: 'StoragePool', metadata: { name }, spec: m.spec }).length === 0;
        const ready = await waitFor(`pool ${name} (${m.field}: ${m.what}) to be judged`, async () => {
          const p = await client.get<StoragePool>(STORAGE_POOLS, name);
          const c = p.status?.conditions?.find((x) => x.type === 'Ready');
          return c && p.status?.observedGeneration === p.metadata.generation ? c : undefined;
        }, 60_000);
        if (validAfterAll && ready.reason !== 'InvalidSpec') {
          outcomes.valid++;
          return;
        }
        if (ready.reason !== 'InvalidSpec' || !ready.message.includes(fieldName(m.field))) {
          throw new Error(`accepted and Ready=${ready.status}/${ready.reason}: ${ready.message.slice(0, 200)}`);
        }
        outcomes.condition++;
      }, [operatorAlive()]).catch((err: Error) => failures.push(`${m.field} (${m.what}): ${err.message.split('\n').slice(1, 3).join(' ').slice(0, 300)}`));
    });
    expect(failures, failures.join('\n')).to.deep.equal([]);
    console.log(`      ${cases.length} StoragePool cases: ${outcomes.rejected} rejected by the API server, ${outcomes.condition} InvalidSpec naming the field, ${outcomes.valid} valid after all and judged`);
  });

  it('rejects every mutated NodeDisk at the API server, or the operator survives it and never claims the disk', async () => {
    const base = { nodeName: node, devicePath: '/dev/hostile-none' };
    const cases = specMutations(nodeDiskSchema.properties!.spec, base);
    expect(cases.length).to.be.greaterThan(20);
    // A pool selecting every hostile disk that gets in: the operator must not claim any of them.
    const pool = uniqueName('hostile-sel');
    pools.push(pool);
    await client.create(STORAGE_POOLS, { apiVersion: 'stowage.dev/v1alpha1', kind: 'StoragePool', metadata: { name: pool }, spec: { mode: 'Dynamic', disks: { selector: { matchLabels: { 'stowage.dev/fault-test': label } } } } });
    const accepted: string[] = [];
    let rejected = 0;
    await each(cases, async (m) => {
      await injectFault(AREA, `NodeDisk ${m.field}: ${m.what}`, async () => {
        const name = uniqueName('hostile-disk');
        try {
          await client.create(NODE_DISKS, { apiVersion: 'stowage.dev/v1alpha1', kind: 'NodeDisk', metadata: { name, labels: { 'stowage.dev/fault-test': label } }, spec: m.spec });
        } catch (err) {
          if (!(err instanceof ApiError) || err.code < 400 || err.code >= 500) throw err;
          rejected++;
          return;
        }
        disks.push(name);
        accepted.push(`${name} ${m.field}: ${m.what}`);
      }, [operatorAlive()]);
    });
    // Let the operator see them all and reconcile the pool a few times.
    await waitFor('the operator to judge the selecting pool', async () => {
      const p = await client.get<StoragePool>(STORAGE_POOLS, pool);
      return p.status?.observedGeneration === p.metadata.generation && p.status?.conditions?.some((c) => c.type === 'Ready');
    }, 60_000);
    await new Promise((r) => setTimeout(r, 5_000));
    await injectFault(AREA, 'NodeDisks accepted by the API server stay unclaimed', async () => {
      const claimed = (await client.list<NodeDisk>(NODE_DISKS, { labelSelector: `stowage.dev/fault-test=${label}` })).items.filter((d) => d.spec.claim?.pool === pool);
      expect(claimed.map((d) => d.metadata.name), 'hostile disks the operator claimed').to.deep.equal([]);
    }, [operatorAlive()]);
    console.log(`      ${cases.length} NodeDisk cases: ${rejected} rejected by the API server, ${accepted.length} accepted and left alone`);
  });
});

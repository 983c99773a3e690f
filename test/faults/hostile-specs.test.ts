/**
 * Fault suite, hostile specs (issues 18 and 25): StoragePool and NodeDisk specs generated from the
 * CRD schemas and mutated (spec-mutations.ts), plus hand-made invalid selectors and conflicting
 * fields, against the real control plane with the real operator running as a child process.
 *
 * Split honestly: each case is first sent as a server-side dry run. What the API server refuses with
 * the CRD's own schema never reaches Stowage: it is a schema test, counted apart (not a fault), and
 * must be a 422 whose message names the field path. What the server accepts is a fault row: the
 * object is made, and Stowage must judge it — a StoragePool gets Ready=False/InvalidSpec naming the
 * field (or, when the mutation landed on a valid value, a Ready verdict of its own), a NodeDisk is
 * claimed exactly when the pool's selection rules take it and never otherwise, watched from before
 * it was made until the operator has claimed a control disk made after it (the operator's NodeDisk
 * cache then holds the hostile one). The split is the one measured on the test's kube-apiserver
 * 1.20, which has no CEL: on a server with CEL (x-kubernetes-validations) more cases are refused by
 * the server and fewer reach Stowage.
 */
import { expect } from 'chai';
import type { KubeClient } from '../../src/kube/client.js';
import { ApiError } from '../../src/kube/api-error.js';
import { NODES, PERSISTENT_VOLUMES, STORAGE_CLASSES, resourcePath, type ResourceType } from '../../src/kube/resources.js';
import type { Node } from '../../src/kube/types.js';
import { installCrds } from '../../src/crds/install.js';
import { NODE_DISKS, POOL_VOLUMES, STORAGE_POOLS } from '../../src/crds/resource-types.js';
import { storagePoolSchema, type StoragePool } from '../../src/crds/storagepool.js';
import { nodeDiskSchema, type NodeDisk } from '../../src/crds/nodedisk.js';
import { validateObject } from '../../src/crds/validation.js';
import { selectionProblem } from '../../src/operator/storagepool/disk-plan.js';
import { registerReadyNode } from '../cluster/nodes.js';
import { adminClient, deletePoolForcibly, uniqueName, waitFor } from '../support/cluster.js';
import { OperatorProcess } from '../support/operator-process.js';
import { countSchemaRejection, injectFault, type FaultPlan } from './ledger.js';
import { apiObjects, nodeDiskClaims, processes, processesUp } from './fault-checks.js';
import { specMutations, type SpecMutation } from './spec-mutations.js';
import { ObjectWatch } from './watch-window.js';

const AREA = 'hostile specs';
const PARALLEL = 8;
const NO_DATA = { na: 'a pool or disk object with no disk or volume behind it: no data exists to lose' };
const poolBase = (label: string) => ({ mode: 'Dynamic', disks: { selector: { matchLabels: { 'stowage.dev/fault-test': label } } } });

/** Selectors and field combinations the schema alone cannot show as wrong. */
function handMade(label: string): SpecMutation[] {
  const sel = (selector: unknown) => ({ ...poolBase(label), disks: { selector } });
  return [
    {
      field: 'spec.disks.selector.matchExpressions[0].operator',
      what: 'an unknown operator',
      spec: sel({ matchExpressions: [{ key: 'k', operator: 'Near', values: ['v'] }] }),
    },
    {
      field: 'spec.disks.selector.matchExpressions[0].values',
      what: 'In without values',
      spec: sel({ matchExpressions: [{ key: 'k', operator: 'In' }] }),
    },
    {
      field: 'spec.disks.selector.matchExpressions[0].values',
      what: 'Exists with values',
      spec: sel({ matchExpressions: [{ key: 'k', operator: 'Exists', values: ['v'] }] }),
    },
    {
      field: 'spec.disks.selector.matchExpressions[0].key',
      what: 'a key with control characters',
      spec: sel({ matchExpressions: [{ key: 'a\u0007b', operator: 'Exists' }] }),
    },
    { field: 'spec.disks.selector.matchLabels', what: 'a label value of 1 MiB', spec: sel({ matchLabels: { k: 'v'.repeat(1 << 20) } }) },
    { field: 'spec.disks.selector.matchLabels', what: 'a label key with a slash too many', spec: sel({ matchLabels: { 'a/b/c': 'v' } }) },
    {
      field: 'spec.disks.nodeSelector.matchExpressions[0].operator',
      what: 'an unknown node selector operator',
      spec: {
        ...poolBase(label),
        disks: { selector: { matchLabels: { k: 'v' } }, nodeSelector: { matchExpressions: [{ key: 'k', operator: 'Gt', values: ['x'] }] } },
      },
    },
    { field: 'spec.replicated.size', what: 'Local with 2 copies', spec: { ...poolBase(label), mode: 'Local', replicated: { size: 2 } } },
    { field: 'spec.local', what: 'Dynamic with Local settings', spec: { ...poolBase(label), local: { volumeMode: 'Block' } } },
    {
      field: 'spec.local.fsType',
      what: 'Block with a filesystem',
      spec: { ...poolBase(label), mode: 'Local', local: { volumeMode: 'Block', fsType: 'xfs' } },
    },
    {
      field: 'spec.storageClass.allowVolumeExpansion',
      what: 'Local volumes that grow',
      spec: { ...poolBase(label), mode: 'Local', storageClass: { allowVolumeExpansion: true } },
    },
    {
      field: 'spec.storageClass.mountOptions',
      what: 'Block with mount options',
      spec: { ...poolBase(label), mode: 'Local', local: { volumeMode: 'Block' }, storageClass: { mountOptions: ['noatime'] } },
    },
  ];
}

/** The name a message must mention: the last named segment of the field path. */
const fieldName = (field: string): string =>
  field
    .replace(/\[\d+\]/g, '')
    .split('.')
    .pop()!;
/** The field path as the API server writes it (the path of the mutated field, or its parent object for a missing or extra item). */
const pathPrefixes = (field: string): string[] => {
  const parts = field.split('.');
  return parts
    .map((_, i) => parts.slice(0, i + 1).join('.'))
    .filter((p) => p.startsWith('spec.'))
    .reverse();
};

describe('faults: hostile StoragePool and NodeDisk specs (real API server, real operator)', function () {
  this.timeout(900_000);
  const label = uniqueName('hostile');
  const node = uniqueName('hostile-node');
  let client: KubeClient;
  let operator: OperatorProcess | undefined;
  const pools: string[] = [];
  const disks: string[] = [];

  before(async () => {
    const admin = await adminClient();
    client = admin.client;
    await installCrds(client, 'stowage-tests');
    // The disks' node is in the cluster, so only a disk's own spec can keep the pool from it.
    await registerReadyNode(admin.cp, node);
    operator = await OperatorProcess.start(admin.cp.kubeconfigPath);
    await waitFor('the operator to serve /readyz', async () => (await fetch(`${operator!.url}/readyz`)).ok, 60_000);
  });
  after(async () => {
    if (client) {
      for (const p of pools) await client.delete(STORAGE_POOLS, p).catch(() => undefined);
      await waitFor(
        'the hostile pools to go',
        async () => {
          for (const p of pools) if (await client.getIfExists(STORAGE_POOLS, p)) return false;
          return true;
        },
        60_000,
      ).catch(() => undefined);
    }
    await operator?.stop();
    if (client) {
      for (const p of pools) await deletePoolForcibly(client, p).catch(() => undefined);
      for (const d of disks) await client.delete(NODE_DISKS, d).catch(() => undefined);
      await client.delete(NODES, node).catch(() => undefined);
      client.close();
    }
  });

  const operatorUp = () => processesUp({ operator: () => !operator!.exited && fetch(`${operator!.url}/healthz`).then((r) => r.ok) });

  /**
   * Sends `obj` as a server-side dry run: undefined when the server accepts it; when its schema
   * refuses it, checks that the answer is 422 naming the field, counts the rejection and returns
   * its message.
   */
  async function schemaVerdict(rt: ResourceType, obj: Record<string, unknown>, m: SpecMutation): Promise<string | undefined> {
    try {
      await client.request({ method: 'POST', path: resourcePath(rt, {}), query: { dryRun: 'All' }, body: obj });
      return undefined;
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      expect(err.code, `${m.field} (${m.what}): ${err.message.slice(0, 300)}`).to.equal(422);
      const named = pathPrefixes(m.field).find((p) => err.message.includes(p));
      expect(named, `${m.field} (${m.what}): the 422 names no path of the field: ${err.message.slice(0, 400)}`).to.be.a('string');
      countSchemaRejection(rt.kind);
      return err.message;
    }
  }

  /** Runs `cases` PARALLEL at a time. */
  async function each<T>(cases: readonly T[], body: (c: T) => Promise<void>, parallel = PARALLEL): Promise<void> {
    const queue = [...cases];
    await Promise.all(
      Array.from({ length: parallel }, async () => {
        for (let c = queue.shift(); c !== undefined; c = queue.shift()) await body(c);
      }),
    );
  }

  it('StoragePools: each schema rejection is a 422 naming the field; each accepted pool gets InvalidSpec naming the field (or its own verdict when valid after all)', async () => {
    const cases = [...specMutations(storagePoolSchema.properties!.spec, poolBase(label)), ...handMade(label)];
    expect(cases.length).to.be.greaterThan(60);
    const failures: string[] = [];
    const outcomes = { rejected: 0, condition: 0, valid: 0 };
    await each(cases, async (m) => {
      const name = uniqueName('hostile-pool');
      const obj = { apiVersion: 'stowage.dev/v1alpha1', kind: 'StoragePool', metadata: { name }, spec: m.spec };
      try {
        if (await schemaVerdict(STORAGE_POOLS, obj, m)) {
          outcomes.rejected++;
          return;
        }
      } catch (err) {
        failures.push(`${m.field} (${m.what}): ${(err as Error).message.slice(0, 300)}`);
        return;
      }
      // A mutation can land on a valid value (a mount option may look like a path): then the
      // operator must still judge the pool, as for any pool, instead of retrying in silence.
      const validAfterAll = validateObject(obj).length === 0;
      const plan: FaultPlan = {
        data: NO_DATA,
        inventory: [
          apiObjects(client, STORAGE_POOLS, { filter: (p) => p.metadata.name === name }),
          apiObjects(client, STORAGE_CLASSES, { filter: (sc) => sc.metadata.name === name }),
          apiObjects(client, PERSISTENT_VOLUMES, { labelSelector: `stowage.dev/pool=${name}` }),
          apiObjects(client, POOL_VOLUMES, { labelSelector: `stowage.dev/pool=${name}` }),
          nodeDiskClaims(client, NODE_DISKS, `stowage.dev/fault-test=${label}`),
          processes(),
        ],
        survival: [operatorUp()],
        // The pool itself is the fault; a pool judged valid gets its StorageClass.
        changes: () => ({ appear: { StoragePool: [name], ...(validAfterAll ? { StorageClass: [name] } : {}) } }),
      };
      await injectFault(AREA, `StoragePool ${m.field}: ${m.what}`, plan, async () => {
        await client.create(STORAGE_POOLS, obj);
        pools.push(name);
        const ready = await waitFor(
          `pool ${name} (${m.field}: ${m.what}) to be judged`,
          async () => {
            const p = await client.get<StoragePool>(STORAGE_POOLS, name);
            const c = p.status?.conditions?.find((x) => x.type === 'Ready');
            return c && p.status?.observedGeneration === p.metadata.generation ? c : undefined;
          },
          60_000,
        );
        if (validAfterAll && ready.reason !== 'InvalidSpec') {
          expect(ready.status, 'a valid pool with no disks').to.equal('False');
          outcomes.valid++;
          return;
        }
        expect(ready.status).to.equal('False');
        expect(ready.reason, ready.message).to.equal('InvalidSpec');
        expect(ready.message, 'the condition names the field').to.include(fieldName(m.field));
        outcomes.condition++;
      }).catch((err: Error) => failures.push(`${m.field} (${m.what}): ${err.message.split('\n').slice(1, 3).join(' ').slice(0, 300)}`));
    });
    expect(failures, failures.join('\n')).to.deep.equal([]);
    console.log(
      `      ${cases.length} StoragePool cases: ${outcomes.rejected} rejected by the API server's schema (422 naming the field), ${outcomes.condition} InvalidSpec naming the field, ${outcomes.valid} valid after all and judged`,
    );
  });

  it("NodeDisks: each schema rejection is a 422 naming the field; each accepted disk is claimed exactly when the pool's rules take it, and never otherwise", async () => {
    const base = { nodeName: node, devicePath: '/dev/hostile-none' };
    const cases = specMutations(nodeDiskSchema.properties!.spec, base);
    expect(cases.length).to.be.greaterThan(20);
    // A pool selecting every hostile disk that gets in.
    const pool = uniqueName('hostile-sel');
    pools.push(pool);
    await client.create(STORAGE_POOLS, {
      apiVersion: 'stowage.dev/v1alpha1',
      kind: 'StoragePool',
      metadata: { name: pool },
      spec: { mode: 'Dynamic', disks: { selector: { matchLabels: { 'stowage.dev/fault-test': label } } } },
    });
    const poolObj = await client.get<StoragePool>(STORAGE_POOLS, pool);
    const nodeObj = await client.get<Node>(NODES, node);
    const watch = new ObjectWatch<NodeDisk>(client, NODE_DISKS, `stowage.dev/fault-test=${label}`);
    await watch.start();
    /** What the agent would report for a blank disk: eligible, 10 GiB. */
    const reportEligible = (name: string) =>
      client.mergePatch(
        NODE_DISKS,
        name,
        {
          status: {
            capacity: String(10 * 1024 ** 3),
            conditions: [
              {
                type: 'Eligible',
                status: 'True',
                reason: 'Blank',
                message: 'no signature, no partitions (set by the test)',
                lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
              },
            ],
          },
        },
        { fieldManager: 'stowage-node', subresource: 'status' },
      );
    const outcomes = { rejected: 0, claimed: 0, left: 0 };
    const failures: string[] = [];
    try {
      // One at a time: each row ends when the operator has claimed a control disk made after it.
      await each(
        cases,
        async (m) => {
          const name = uniqueName('hostile-disk');
          const control = uniqueName('hostile-control');
          const obj = {
            apiVersion: 'stowage.dev/v1alpha1',
            kind: 'NodeDisk',
            metadata: { name, labels: { 'stowage.dev/fault-test': label } },
            spec: m.spec,
          };
          try {
            if (await schemaVerdict(NODE_DISKS, obj, m)) {
              outcomes.rejected++;
              return;
            }
          } catch (err) {
            failures.push(`${m.field} (${m.what}): ${(err as Error).message.slice(0, 300)}`);
            return;
          }
          let takes = false;
          const plan: FaultPlan = {
            data: NO_DATA,
            inventory: [
              apiObjects(client, NODE_DISKS, { labelSelector: `stowage.dev/fault-test=${label}` }),
              nodeDiskClaims(client, NODE_DISKS, `stowage.dev/fault-test=${label}`),
              apiObjects(client, STORAGE_CLASSES, { filter: (sc) => sc.metadata.name === pool }),
              apiObjects(client, POOL_VOLUMES, { labelSelector: `stowage.dev/pool=${pool}` }),
              processes(),
            ],
            survival: [operatorUp()],
            changes: () => ({
              appear: { NodeDisk: [name, control], 'NodeDisk claim': [`${control}→${pool}`, ...(takes ? [`${name}→${pool}`] : [])] },
            }),
          };
          await injectFault(AREA, `NodeDisk ${m.field}: ${m.what}`, plan, async () => {
            const made = await client.create<NodeDisk>(NODE_DISKS, obj as unknown as NodeDisk);
            disks.push(name);
            const reported = (await reportEligible(name)) as NodeDisk;
            // Stowage's own rules for this spec: claimed only when the pool selects it and nobody holds it.
            takes = !made.spec.claim && selectionProblem(poolObj, reported, nodeObj, false) === undefined;
            await client.create(NODE_DISKS, {
              apiVersion: 'stowage.dev/v1alpha1',
              kind: 'NodeDisk',
              metadata: { name: control, labels: { 'stowage.dev/fault-test': label } },
              spec: { nodeName: node, devicePath: '/dev/hostile-control' },
            });
            disks.push(control);
            await reportEligible(control);
            await waitFor(
              `the operator to claim the control disk made after ${name}`,
              async () => (await client.get<NodeDisk>(NODE_DISKS, control)).spec.claim?.pool === pool,
              60_000,
            );
            const now = await client.get<NodeDisk>(NODE_DISKS, name);
            if (takes) {
              expect(now.spec.claim?.pool, 'a disk the rules take is claimed').to.equal(pool);
              outcomes.claimed++;
            } else {
              const claimedOnce = watch.events.filter(
                (e) => e.object.metadata.name === name && e.object.spec?.claim?.pool === pool && !made.spec.claim,
              );
              expect(
                claimedOnce.map((e) => `${e.type} at ${e.rv}`),
                `${name} claimed at some point though the rules refuse it: ${selectionProblem(poolObj, reported, nodeObj, false)}`,
              ).to.deep.equal([]);
              expect(watch.errors).to.deep.equal([]);
              outcomes.left++;
            }
            // The control is let go of for the next row (the claim goes with the object; the pool has no agent to release it).
            await client.delete(NODE_DISKS, control);
          }).catch((err: Error) => failures.push(`${m.field} (${m.what}): ${err.message.split('\n').slice(1, 3).join(' ').slice(0, 300)}`));
        },
        1,
      );
    } finally {
      await watch.stop();
    }
    expect(failures, failures.join('\n')).to.deep.equal([]);
    console.log(
      `      ${cases.length} NodeDisk cases: ${outcomes.rejected} rejected by the API server's schema (422 naming the field), ${outcomes.claimed} accepted and claimed by the pool's rules, ${outcomes.left} accepted and left alone`,
    );
  });
});

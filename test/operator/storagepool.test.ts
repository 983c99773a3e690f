import { expect } from 'chai';
import type { ApiCall, KubeClient } from '../../src/kube/client.js';
import { installCrds } from '../../src/crds/install.js';
import { STORAGE_POOLS } from '../../src/crds/resource-types.js';
import type { StoragePool } from '../../src/crds/storagepool.js';
import { Manager } from '../../src/runtime/manager.js';
import { setupControllers } from '../../src/operator/setup.js';
import { adminClient, deletePoolForcibly, uniqueName, waitFor } from '../support/cluster.js';
import { serverBehaviour, type ServerBehaviour } from '../support/server-behaviour.js';

type LivePool = StoragePool & { metadata: { resourceVersion?: string } };

describe('StoragePool reconciler (real control plane)', function () {
  this.timeout(120_000);
  let client: KubeClient;
  let abort: AbortController;
  let running: Promise<unknown>;
  let manager: Manager;
  const writes: ApiCall[] = [];
  const names: string[] = [];
  let server: ServerBehaviour;

  before(async () => {
    ({ client } = await adminClient());
    server = serverBehaviour(await client.request({ method: 'GET', path: '/version' }));
    await installCrds(client, 'stowage-tests');
    manager = new Manager({ client, informerDefaults: { resyncMs: 2_000 } });
    setupControllers(manager, { workers: 2, fieldManager: 'stowage-operator' });
    client.observe((call) => {
      if (!['get', 'list', 'watch'].includes(call.verb)) writes.push(call);
    });
    abort = new AbortController();
    running = manager.run(abort.signal);
  });
  after(async () => {
    abort.abort();
    await running;
    for (const name of names) await deletePoolForcibly(client, name);
    client.close();
  });

  async function create(spec: Record<string, unknown>): Promise<string> {
    const name = uniqueName('pool');
    names.push(name);
    await client.create(STORAGE_POOLS, { apiVersion: 'stowage.dev/v1alpha1', kind: 'StoragePool', metadata: { name }, spec });
    return name;
  }

  const readyOf = async (name: string) => {
    const pool = await client.get<LivePool>(STORAGE_POOLS, name);
    const ready = pool.status?.conditions?.find((c) => c.type === 'Ready');
    return pool.status?.observedGeneration === pool.metadata.generation && ready ? { pool, ready } : undefined;
  };

  it('refuses an invalid spec at admission where the server runs CEL, and otherwise reports it as Ready=False/InvalidSpec, naming the field', async () => {
    const invalid = { mode: 'Local', replicated: { size: 2 }, disks: { selector: { matchLabels: { 'stowage.dev/media': 'none' } } } };
    if (server.celAtAdmission) {
      const refused = await create(invalid).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(refused, `${server.gitVersion} enforces the CRD's CEL rules`).to.be.an('error');
      expect(refused!.message).to.contain('spec.replicated.size').and.contain('set replicated.size to 1');
      return;
    }
    const name = await create(invalid);
    const { ready } = await waitFor('Ready on the invalid pool', () => readyOf(name));
    expect(ready.status).to.equal('False');
    expect(ready.reason).to.equal('InvalidSpec');
    expect(ready.message).to.contain('spec.replicated.size');
    expect(ready.observedGeneration).to.equal(1);
  });

  it('tracks observedGeneration across spec changes; a valid pool without disks says NoDisks', async () => {
    const name = await create({
      mode: 'Local',
      replicated: { size: 2 },
      disks: { selector: { matchLabels: { 'stowage.dev/media': 'none' } } },
    });
    await waitFor('first status', () => readyOf(name));
    await client.mergePatch(STORAGE_POOLS, name, { spec: { replicated: { size: 1 } } });
    const { pool, ready } = await waitFor('status for generation 2', async () => {
      const r = await readyOf(name);
      return r && r.pool.metadata.generation === 2 ? r : undefined;
    });
    expect(pool.status?.observedGeneration).to.equal(2);
    expect(ready.reason).to.equal('NoDisks');
    expect(ready.observedGeneration).to.equal(2);
  });

  it('sends no writes when nothing changed, across several full resyncs', async () => {
    const name = await create({
      mode: 'Dynamic',
      replicated: { size: 2 },
      disks: { selector: { matchLabels: { 'stowage.dev/media': 'none' } } },
    });
    const { pool } = await waitFor('status', () => readyOf(name));
    await new Promise((r) => setTimeout(r, 1_000));
    writes.length = 0;
    await new Promise((r) => setTimeout(r, 5_000)); // resync every 2 s: at least two full resyncs
    expect(writes.map((w) => `${w.verb} ${w.resource}/${w.subresource ?? ''}`)).to.deep.equal([]);
    const after = await client.get<LivePool>(STORAGE_POOLS, name);
    expect(after.metadata.resourceVersion).to.equal(pool.metadata.resourceVersion);
  });
});

import { expect } from 'chai';
import type { KubeClient } from '../../src/kube/client.js';
import { CONFIG_MAPS, NAMESPACES } from '../../src/kube/resources.js';
import type { KubeObject } from '../../src/kube/types.js';
import { Backoff } from '../../src/runtime/backoff.js';
import { Manager } from '../../src/runtime/manager.js';
import { Informer } from '../../src/runtime/informer.js';
import { Controller, type Reconciler, type UpdatePredicate } from '../../src/runtime/controller.js';
import { objectKey } from '../../src/runtime/object-key.js';
import type { ControlPlane } from '../cluster/control-plane.js';
import { adminClient, createNamespace, waitFor } from '../support/cluster.js';
import { freePort } from '../support/operator-process.js';

describe('controller runtime on the real control plane', function () {
  this.timeout(180_000);
  let cp: ControlPlane;
  let client: KubeClient;
  let namespace: string;
  const running: Array<() => Promise<void>> = [];

  before(async () => {
    ({ cp, client } = await adminClient());
  });
  beforeEach(async () => {
    namespace = await createNamespace(client, 'runtime');
  });
  afterEach(async () => {
    for (const stop of running.splice(0).reverse()) await stop();
    await client.delete(NAMESPACES, namespace);
  });
  after(() => client.close());

  /** Starts an informer on this test's namespace and a controller with `reconciler` over it. */
  async function startController(
    reconciler: Reconciler,
    opts: { baseDelayMs?: number; debounceMs?: number; relevant?: UpdatePredicate<KubeObject> } = {},
  ): Promise<{ informer: Informer; controller: Controller }> {
    const informer = new Informer({ client, resource: CONFIG_MAPS, namespace, resyncMs: 0 });
    const controller = new Controller({
      name: 'test',
      reconciler,
      workers: 4,
      baseDelayMs: opts.baseDelayMs ?? 5,
      debounceMs: opts.debounceMs ?? 0,
    });
    controller.watch(informer, (o) => [objectKey(o)], undefined, opts.relevant);
    informer.start();
    await informer.waitForSync();
    controller.start();
    running.push(async () => {
      await controller.stop();
      await informer.stop();
    });
    return { informer, controller };
  }

  it('1,000 updates to one object during a slow reconcile cause at most two more reconciles', async () => {
    let reconciles = 0;
    let concurrent = 0;
    let maxConcurrent = 0;
    let releaseFirst!: () => void;
    const firstBlocked = new Promise<void>((r) => (releaseFirst = r));
    await startController({
      async reconcile(key) {
        if (key !== `${namespace}/busy`) return;
        reconciles += 1;
        concurrent += 1;
        maxConcurrent = Math.max(maxConcurrent, concurrent);
        if (reconciles === 1) await firstBlocked; // slow: stays busy until all updates are written
        concurrent -= 1;
      },
    });
    await client.create(CONFIG_MAPS, { metadata: { name: 'busy', namespace }, data: { n: '0' } });
    await waitFor('the first reconcile to start', () => reconciles === 1);
    for (let i = 1; i <= 1000; i++) {
      await client.mergePatch(CONFIG_MAPS, 'busy', { data: { n: String(i) } }, { namespace });
    }
    // Let the watch deliver every event before the slow reconcile ends.
    await waitFor('the cache to see the last update', async () => {
      const cm = await client.get<KubeObject>(CONFIG_MAPS, 'busy', namespace);
      return (cm.data as Record<string, string>).n === '1000';
    });
    await new Promise((r) => setTimeout(r, 1000));
    releaseFirst();
    await waitFor('a follow-up reconcile', () => reconciles >= 2);
    await new Promise((r) => setTimeout(r, 2000));
    expect(maxConcurrent).to.equal(1, 'one key is never reconciled twice at once');
    expect(reconciles - 1).to.be.within(1, 2);
  });

  it('with a debounce, a burst of 200 updates becomes one reconcile of the final state', async () => {
    const seen: string[] = [];
    const { informer } = await startController(
      {
        async reconcile(key) {
          if (key !== `${namespace}/burst`) return;
          seen.push((informer.get(key)?.data as Record<string, string>).n);
        },
      },
      { debounceMs: 3000 },
    );
    await client.create(CONFIG_MAPS, { metadata: { name: 'burst', namespace }, data: { n: '0' } });
    await waitFor('the first reconcile', () => seen.length === 1, 20_000);
    // The burst: all 200 writes land within one debounce window after the first event (a loaded
    // machine writes 200 small patches in well under 3 s; the assertion below says so if not).
    const started = Date.now();
    for (let i = 1; i <= 200; i++) await client.mergePatch(CONFIG_MAPS, 'burst', { data: { n: String(i) } }, { namespace });
    const burstMs = Date.now() - started;
    await waitFor('a reconcile of the final state', () => seen.at(-1) === '200', 20_000);
    await new Promise((r) => setTimeout(r, 3500));
    expect(seen.length - 1, `reconciles after a ${burstMs} ms burst: ${seen.join(',')}`).to.be.at.most(Math.ceil(burstMs / 3000) + 1);
    expect(seen.at(-1)).to.equal('200');
  });

  it('updates an UpdatePredicate rejects wake nothing; creates, deletes and accepted updates do', async () => {
    const reconciled: string[] = [];
    await startController(
      {
        async reconcile(key) {
          // Only this object: kube-controller-manager also publishes kube-root-ca.crt into the namespace.
          if (key === `${namespace}/node-like`) reconciled.push(key.slice(namespace.length + 1));
        },
      },
      { relevant: (old, cm) => old.metadata.labels?.tier !== cm.metadata.labels?.tier },
    );
    await client.create(CONFIG_MAPS, { metadata: { name: 'node-like', namespace, labels: { tier: 'a' } }, data: { beat: '0' } });
    await waitFor('the create reconciled', () => reconciled.length === 1);
    for (let i = 1; i <= 20; i++) await client.mergePatch(CONFIG_MAPS, 'node-like', { data: { beat: String(i) } }, { namespace });
    await client.mergePatch(CONFIG_MAPS, 'node-like', { metadata: { labels: { tier: 'b' } } }, { namespace });
    await waitFor('the label change reconciled', () => reconciled.length >= 2).catch((err) => {
      throw new Error(`${err.message}; reconciles: ${reconciled.length}`);
    });
    await client.delete(CONFIG_MAPS, 'node-like', { namespace });
    await waitFor('the delete reconciled', () => reconciled.length >= 3);
    await new Promise((r) => setTimeout(r, 500));
    expect(reconciled).to.deep.equal(['node-like', 'node-like', 'node-like'], 'the 20 heartbeat-like updates woke nothing');
  });

  it('retries a failing reconcile with growing delays, then stops once it succeeds', async () => {
    const times: number[] = [];
    await startController(
      {
        async reconcile(key) {
          if (key !== `${namespace}/flaky`) return;
          times.push(Date.now());
          if (times.length <= 5) throw new Error('injected failure');
        },
      },
      { baseDelayMs: 100 },
    );
    await client.create(CONFIG_MAPS, { metadata: { name: 'flaky', namespace }, data: {} });
    await waitFor('six attempts', () => times.length >= 6, 30_000);
    await new Promise((r) => setTimeout(r, 1500));
    expect(times).to.have.length(6, 'no retries after success');
    const gaps = times.slice(1).map((t, i) => t - times[i]);
    gaps.forEach((gap, i) => expect(gap, `gap ${i}`).to.be.at.least(100 * 2 ** i * 0.9));
    for (let i = 1; i < gaps.length; i++) expect(gaps[i]).to.be.greaterThan(gaps[i - 1]);
  });

  it('recovers after the API server is down for 10 s and reconciles an object created after it returns', async () => {
    const seen = new Set<string>();
    const { informer } = await startController({
      async reconcile(key) {
        seen.add(key);
      },
    });
    // Make informer backoff short enough for the test but still exercised.
    await client.create(CONFIG_MAPS, { metadata: { name: 'before', namespace }, data: {} });
    await waitFor('the object before the outage', () => seen.has(`${namespace}/before`));
    await cp.stopApiServer();
    await new Promise((r) => setTimeout(r, 10_000));
    await cp.startApiServer();
    await client.create(CONFIG_MAPS, { metadata: { name: 'after', namespace }, data: {} });
    await waitFor('the object created after the outage to be reconciled', () => seen.has(`${namespace}/after`), 90_000);
    expect(informer.restarts).to.be.greaterThan(0);
  });

  it('a Manager without leader election serves /healthz, /readyz and controller-runtime metrics', async () => {
    const port = await freePort();
    const manager = new Manager({ client, healthAddress: `127.0.0.1:${port}`, informerDefaults: { backoff: new Backoff(50, 500) } });
    const informer = manager.informer(CONFIG_MAPS, { namespace });
    manager.controller({ name: 'probe-test', reconciler: { reconcile: async () => ({}) } }).watchFor(informer);
    const abort = new AbortController();
    const done = manager.run(abort.signal);
    running.push(async () => {
      abort.abort();
      await done;
    });
    await client.create(CONFIG_MAPS, { metadata: { name: 'm', namespace }, data: {} });
    const base = `http://127.0.0.1:${port}`;
    await waitFor('/readyz ok', async () => (await fetch(`${base}/readyz`)).status === 200);
    expect((await fetch(`${base}/healthz`)).status).to.equal(200);
    const metrics = await waitFor('a reconcile in the metrics', async () => {
      const text = await (await fetch(`${base}/metrics`)).text();
      return /controller_runtime_reconcile_total\{controller="probe-test",result="success"\} [1-9]/.test(text) ? text : undefined;
    });
    expect(metrics).to.match(/workqueue_depth\{name="probe-test"\} \d/);
    expect(metrics).to.match(/stowage_api_requests_total\{verb="list",resource="configmaps",code="200"\}/);
    expect(metrics).to.match(/process_cpu_seconds_total/);
  });

  it('Manager warm-ups run once while the caches fill, before the first reconcile; a failing one does not stop the manager', async () => {
    await client.create(CONFIG_MAPS, { metadata: { name: 'present-at-start', namespace }, data: {} });
    const manager = new Manager({ client });
    const informer = manager.informer(CONFIG_MAPS, { namespace });
    const order: string[] = [];
    manager
      .controller({ name: 'warm-up-test', reconciler: { reconcile: async (key) => void order.push(`reconcile ${key}`) } })
      .watchFor(informer);
    manager.warmUp('broken', () => {
      order.push('broken warm-up');
      throw new Error('warm-up failure injected by the test');
    });
    manager.warmUp('validator', () => void order.push('warm-up'));
    const abort = new AbortController();
    const done = manager.run(abort.signal);
    running.push(async () => {
      abort.abort();
      await done;
    });
    await waitFor('the first reconcile', async () => order.includes(`reconcile ${namespace}/present-at-start`));
    // Each warm-up ran once, both before any reconcile (the namespace's own kube-root-ca.crt is reconciled too).
    expect(order.slice(0, 2)).to.deep.equal(['broken warm-up', 'warm-up']);
    expect(order.slice(2).every((entry) => entry.startsWith('reconcile '))).to.equal(true, order.join(', '));
  });
});

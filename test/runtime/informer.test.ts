import { expect } from 'chai';
import { Informer } from '../../src/runtime/informer.js';
import { Backoff } from '../../src/runtime/backoff.js';
import { CONFIG_MAPS } from '../../src/kube/resources.js';
import type { KubeClient } from '../../src/kube/client.js';
import type { KubeObject } from '../../src/kube/types.js';
import { FaultServer, eventually } from '../support/fault-server.js';

// Cluster-wide configmaps: the informer lists/watches /api/v1/configmaps when no namespace is given.
const PATH = '/api/v1/configmaps';

describe('Informer under injected faults (loopback fault server)', () => {
  let server: FaultServer;
  let client: KubeClient;
  let informer: Informer;
  let events: string[];

  beforeEach(async () => {
    server = new FaultServer(PATH);
    client = await server.start();
    events = [];
  });

  afterEach(async () => {
    await informer?.stop();
    client.close();
    await server.stop();
  });

  function startInformer(opts: { watchdogGraceMs?: number; watchTimeoutRangeS?: [number, number] } = {}): void {
    informer = new Informer({ client, resource: CONFIG_MAPS, resyncMs: 0, backoff: new Backoff(20, 200), ...opts });
    informer.addHandler({
      added: (o) => events.push(`added ${o.metadata.name}`),
      updated: (_old, o) => events.push(`updated ${o.metadata.name}`),
      deleted: (o) => events.push(`deleted ${o.metadata.name}`),
    });
    informer.start();
  }

  it('lists, then applies watch events to its cache', async () => {
    server.put('a', { v: '1' });
    startInformer();
    await informer.waitForSync();
    expect(informer.get('a')?.data).to.deep.equal({ v: '1' });
    await eventually(() => server.openWatches === 1, 'watch open');
    server.put('b', { v: '1' });
    server.put('a', { v: '2' });
    server.remove('b');
    await eventually(() => events.length === 4, 'four events');
    expect(events).to.deep.equal(['added a', 'added b', 'updated a', 'deleted b']);
    expect(informer.get('a')?.data).to.deep.equal({ v: '2' });
    expect(informer.get('b')).to.equal(undefined);
  });

  it('keeps its indexes in step with the cache through adds, updates, deletes and a relist', async () => {
    server.put('a', { team: 'red' });
    server.put('b', { team: 'blue' });
    server.watchPlan.push({ kind: 'reset' });
    startInformer();
    const team = (o: KubeObject): string[] => [String((o.data as Partial<Record<string, string>>).team)];
    informer.addIndex('team', team);
    informer.addIndex('team', () => ['ignored']); // a second index under the same name is a no-op
    const names = (value: string): string[] =>
      informer
        .byIndex('team', value)
        .map((o) => o.metadata.name!)
        .sort();
    await informer.waitForSync();
    expect(names('red')).to.deep.equal(['a']);
    // Missed while the watch was down: found by the relist, which rebuilds the index.
    server.putSilently('b', { team: 'red' });
    server.putSilently('c', { team: 'green' });
    await eventually(() => server.openWatches === 1 && informer.get('c') !== undefined, 'relisted after the reset');
    expect(names('red')).to.deep.equal(['a', 'b']);
    expect(names('blue')).to.deep.equal([], 'b moved from blue to red');
    server.put('a', { team: 'green' });
    server.remove('c');
    await eventually(() => informer.get('c') === undefined && names('green').length === 1, 'watch events applied');
    expect(names('green')).to.deep.equal(['a']);
    expect(names('red')).to.deep.equal(['b']);
    expect(() => informer.byIndex('colour', 'x')).to.throw(/no index colour; call addIndex first/);
  });

  it('reopens a normally ended watch from the last resourceVersion (bookmarks included) without relisting', async () => {
    startInformer();
    await eventually(() => server.openWatches === 1, 'watch open');
    server.put('a', { v: '1' });
    server.bookmark();
    await eventually(() => informer.get('a') !== undefined, 'a cached');
    await new Promise((r) => setTimeout(r, 20));
    server.endWatches();
    await eventually(() => server.watches === 2 && server.openWatches === 1, 'watch reopened');
    expect(server.lists).to.equal(1);
    // The second watch resumes after the bookmark's resourceVersion, not the list's.
    expect(Number(server.watchResourceVersions[1])).to.be.greaterThan(Number(server.watchResourceVersions[0]) + 1);
  });

  it('keeps going after a watch answers 500: backs off, relists, sees what changed meanwhile', async () => {
    server.put('a', { v: '1' });
    server.watchPlan.push({ kind: 'status', code: 500 }, { kind: 'status', code: 500 });
    startInformer();
    await informer.waitForSync();
    server.putSilently('b', { v: '1' });
    await eventually(() => server.openWatches === 1, 'healthy watch after two failures');
    expect(server.watches).to.equal(3);
    expect(server.lists).to.equal(3);
    // The first list may be served from the API server's watch cache; relists read the latest state.
    expect(server.listResourceVersions).to.deep.equal(['0', '', '']);
    expect(informer.restarts).to.equal(2);
    expect(informer.get('b')?.data).to.deep.equal({ v: '1' });
    server.put('c', { v: '1' });
    await eventually(() => informer.get('c') !== undefined, 'c arrives over the recovered watch');
  });

  it('recovers from a connection reset mid-stream, including deletions it missed', async () => {
    server.put('a', { v: '1' });
    server.put('gone', { v: '1' });
    server.watchPlan.push({ kind: 'reset' });
    startInformer();
    await informer.waitForSync();
    server.removeSilently('gone');
    server.putSilently('a', { v: '2' });
    await eventually(() => server.openWatches === 1, 'healthy watch after the reset');
    await eventually(() => informer.get('gone') === undefined, 'missed delete applied');
    expect(informer.get('a')?.data).to.deep.equal({ v: '2' });
    expect(events).to.include.members(['deleted gone', 'updated a']);
  });

  it('relists at once on an in-stream 410 Gone', async () => {
    server.watchPlan.push({ kind: 'gone-in-stream' });
    startInformer();
    await informer.waitForSync();
    server.putSilently('late', { v: '1' });
    await eventually(() => server.openWatches === 1, 'watch after relist');
    expect(server.lists).to.equal(2);
    expect(informer.get('late')).to.not.equal(undefined);
  });

  it('reopens a watch that hangs silently (watchdog)', async () => {
    server.watchPlan.push({ kind: 'silent' });
    // timeoutSeconds is 1, so the watchdog fires after 1 s + 100 ms of silence.
    startInformer({ watchTimeoutRangeS: [1, 1], watchdogGraceMs: 100 });
    await informer.waitForSync();
    await eventually(() => server.openWatches === 1, 'a healthy watch replaced the hung one', 5000);
    expect(server.watches).to.equal(2);
    expect(informer.restarts).to.equal(1);
  });

  it('stop() ends the loop and closes the watch', async () => {
    startInformer();
    await eventually(() => server.openWatches === 1, 'watch open');
    await informer.stop();
    await eventually(() => server.openWatches === 0, 'watch closed');
  });
});

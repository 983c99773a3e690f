import { expect } from 'chai';
import type { KubeClient } from '../../src/kube/client.js';
import { CONFIG_MAPS, EVENTS, NAMESPACES } from '../../src/kube/resources.js';
import type { KubeObject } from '../../src/kube/types.js';
import { EventRecorder } from '../../src/runtime/events.js';
import { adminClient, createNamespace } from '../support/cluster.js';

interface CoreEvent extends KubeObject {
  reason: string;
  message: string;
  count: number;
  involvedObject: { name: string };
}

describe('EventRecorder on the real control plane', function () {
  this.timeout(60_000);
  let client: KubeClient;
  let namespace: string;

  before(async () => {
    ({ client } = await adminClient());
  });
  beforeEach(async () => {
    namespace = await createNamespace(client, 'events');
  });
  afterEach(async () => {
    await client.delete(NAMESPACES, namespace);
  });
  after(() => client.close());

  async function eventsIn(ns: string): Promise<CoreEvent[]> {
    return (await client.list<CoreEvent>(EVENTS, { namespace: ns })).items;
  }

  it('queues events and writes them in order, aggregates repeats, and a failed write loses only that event', async () => {
    const object = await client.create<KubeObject>(CONFIG_MAPS, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'subject', namespace },
    });
    const recorder = new EventRecorder(client, 'events-test');
    // Nothing is awaited until the end: recording only queues.
    const first = recorder.emit(object, 'Normal', 'First', 'one');
    // emit never rejects (a failed write is logged); the awaits at the end wait for the queue.
    void recorder.emit(object, 'Normal', 'Second', 'two');
    void recorder.emit(object, 'Normal', 'First', 'one'); // a repeat: counted on the first event
    // An event about an object in a namespace that does not exist cannot be written.
    void recorder.emit(
      { ...object, metadata: { ...object.metadata, namespace: 'no-such-namespace-for-events' } },
      'Warning',
      'Lost',
      'cannot be written',
    );
    const batch = recorder.batch(object);
    batch.add('Normal', 'Claimed', 'disk a');
    batch.add('Normal', 'Claimed', 'disk b');
    // Likewise: flushing only queues.
    void batch.flush();
    await first;
    await recorder.drain();

    const events = await eventsIn(namespace);
    const byReason = new Map(events.map((e) => [e.reason, e]));
    expect([...byReason.keys()].sort()).to.deep.equal(['Claimed', 'First', 'Second']);
    expect(byReason.get('First')!.count).to.equal(2);
    expect(byReason.get('Second')!.count).to.equal(1);
    expect(byReason.get('Claimed')!.message).to.equal('2 times: disk a; disk b');
    expect(events.every((e) => e.involvedObject.name === 'subject')).to.equal(true);
    // Written one at a time, in the order recorded: First created, Second created, First's count
    // raised (which moves its resourceVersion past Second's), then Claimed created.
    const rv = (reason: string): number => Number(byReason.get(reason)!.metadata.resourceVersion);
    expect(rv('Second')).to.be.lessThan(rv('First'));
    expect(rv('First')).to.be.lessThan(rv('Claimed'));
  });
});

import { expect } from 'chai';
import { WorkQueue } from '../../src/runtime/work-queue.js';

describe('WorkQueue', () => {
  it('collapses duplicate adds of a waiting key', async () => {
    const q = new WorkQueue({ name: 't' });
    q.add('a');
    q.add('a');
    q.add('b');
    expect(q.length).to.equal(2);
    expect(await q.get()).to.equal('a');
    expect(await q.get()).to.equal('b');
    q.shutDown();
  });

  it('never hands out a key that is being processed; re-adds it once when done', async () => {
    const q = new WorkQueue({ name: 't' });
    q.add('a');
    const key = await q.get();
    for (let i = 0; i < 1000; i++) q.add('a');
    expect(q.length).to.equal(0, 'a key in flight is not queued a second time');
    q.done(key!);
    expect(q.length).to.equal(1, 'the changes made while processing lead to exactly one more round');
    expect(await q.get()).to.equal('a');
    q.done('a');
    expect(q.length).to.equal(0);
    q.shutDown();
  });

  it('wakes a waiting worker when a key arrives, and resolves undefined on shutdown', async () => {
    const q = new WorkQueue({ name: 't' });
    const pending = q.get();
    q.add('x');
    expect(await pending).to.equal('x');
    const waiting = q.get();
    q.shutDown();
    expect(await waiting).to.equal(undefined);
  });

  it('addAfter delays a key and keeps the earliest of two schedules', async () => {
    const q = new WorkQueue({ name: 't' });
    q.addAfter('a', 200);
    q.addAfter('a', 30);
    q.addAfter('a', 500);
    expect(q.length).to.equal(0);
    await new Promise((r) => setTimeout(r, 80));
    expect(q.length).to.equal(1);
    q.shutDown();
  });

  it('addAfter of a key already waiting, or being processed and re-added, sets no timer and adds nothing more', async () => {
    const q = new WorkQueue({ name: 't' });
    q.add('a');
    q.addAfter('a', 10);
    await new Promise((r) => setTimeout(r, 40));
    expect(q.length).to.equal(1, 'still one entry');
    expect(await q.get()).to.equal('a');
    q.add('a'); // changed while processing: goes back once when done
    q.addAfter('a', 10);
    q.done('a');
    await new Promise((r) => setTimeout(r, 40));
    expect(q.length).to.equal(1);
    q.shutDown();
  });

  it('backs off exponentially per key up to the cap, and forget resets it', () => {
    const q = new WorkQueue({ name: 't', baseDelayMs: 10, maxDelayMs: 100 });
    const delays = [1, 2, 3, 4, 5, 6].map(() => q.addRateLimited('a'));
    expect(delays).to.deep.equal([10, 20, 40, 80, 100, 100]);
    expect(q.addRateLimited('b')).to.equal(10, 'backoff is per key');
    q.forget('a');
    expect(q.addRateLimited('a')).to.equal(10);
    q.shutDown();
  });
});

import { expect } from 'chai';
import { setCondition, setConditions, nowTimestamp } from '../../src/runtime/conditions.js';
import { isSubset, jsonEqual } from '../../src/runtime/apply.js';

describe('conditions', () => {
  const t0 = '2026-01-01T00:00:00Z';
  const t1 = '2026-01-01T00:05:00Z';

  it('sets lastTransitionTime on the first write and keeps it while the status stays', () => {
    const first = setCondition(undefined, { type: 'Ready', status: 'False', reason: 'Pending', message: 'x', observedGeneration: 1 }, t0);
    const second = setCondition(first, { type: 'Ready', status: 'False', reason: 'StillPending', message: 'y', observedGeneration: 2 }, t1);
    expect(second).to.deep.equal([
      { type: 'Ready', status: 'False', reason: 'StillPending', message: 'y', observedGeneration: 2, lastTransitionTime: t0 },
    ]);
  });

  it('moves lastTransitionTime when the status flips, and keeps the order of types', () => {
    const start = setConditions(
      undefined,
      [
        { type: 'Ready', status: 'False', reason: 'A', message: '' },
        { type: 'DisksHealthy', status: 'True', reason: 'B', message: '' },
      ],
      t0,
    );
    const flipped = setCondition(start, { type: 'Ready', status: 'True', reason: 'C', message: '' }, t1);
    expect(flipped.map((c) => [c.type, c.lastTransitionTime])).to.deep.equal([
      ['Ready', t1],
      ['DisksHealthy', t0],
    ]);
  });

  it('formats timestamps as metav1.Time (seconds precision)', () => {
    expect(nowTimestamp(new Date('2026-03-04T05:06:07.891Z'))).to.equal('2026-03-04T05:06:07Z');
  });
});

describe('apply no-op detection', () => {
  it('treats server-added fields as no change, and any stated difference as a change', () => {
    const live = { metadata: { name: 'a', uid: 'u', labels: { x: '1', other: '2' } }, provisioner: 'p', parameters: { k: 'v' } };
    expect(isSubset({ metadata: { name: 'a', labels: { x: '1' } }, provisioner: 'p' }, live)).to.equal(true);
    expect(isSubset({ metadata: { name: 'a', labels: { x: '2' } } }, live)).to.equal(false);
    expect(isSubset({ parameters: { k: 'v', extra: 'e' } }, live)).to.equal(false);
  });

  it('compares lists element for element', () => {
    expect(isSubset({ l: [{ a: 1 }] }, { l: [{ a: 1, b: 2 }] })).to.equal(true);
    expect(isSubset({ l: [{ a: 1 }] }, { l: [{ a: 1 }, { a: 2 }] })).to.equal(false);
  });

  it('jsonEqual ignores key order but not extra keys', () => {
    expect(jsonEqual({ a: 1, b: [1, 2] }, { b: [1, 2], a: 1 })).to.equal(true);
    expect(jsonEqual({ a: 1 }, { a: 1, b: 2 })).to.equal(false);
  });
});

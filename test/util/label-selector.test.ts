import { expect } from 'chai';
import { matchesSelector } from '../../src/kube/label-selector.js';

describe('matchesSelector', () => {
  const labels = { 'stowage.dev/media': 'ssd', zone: 'a' };
  it('matches everything with an empty or missing selector', () => {
    expect(matchesSelector(undefined, labels)).to.equal(true);
    expect(matchesSelector({}, undefined)).to.equal(true);
  });
  it('ANDs matchLabels and every expression operator', () => {
    expect(matchesSelector({ matchLabels: { 'stowage.dev/media': 'ssd' } }, labels)).to.equal(true);
    expect(matchesSelector({ matchLabels: { 'stowage.dev/media': 'hdd' } }, labels)).to.equal(false);
    expect(matchesSelector({ matchExpressions: [{ key: 'zone', operator: 'In', values: ['a', 'b'] }] }, labels)).to.equal(true);
    expect(matchesSelector({ matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['a'] }] }, labels)).to.equal(false);
    expect(matchesSelector({ matchExpressions: [{ key: 'rack', operator: 'NotIn', values: ['1'] }] }, labels)).to.equal(true);
    expect(matchesSelector({ matchExpressions: [{ key: 'rack', operator: 'Exists' }] }, labels)).to.equal(false);
    expect(matchesSelector({ matchExpressions: [{ key: 'rack', operator: 'DoesNotExist' }] }, labels)).to.equal(true);
    expect(
      matchesSelector({ matchLabels: { zone: 'a' }, matchExpressions: [{ key: 'zone', operator: 'In', values: ['b'] }] }, labels),
    ).to.equal(false);
  });
});

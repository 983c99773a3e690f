/**
 * The pure parts of `npm run bench:churn` that decide its verdict: the before/after comparison must
 * name every kind of leak the bench promises to catch (so a leaky run cannot pass), the seeded RNG
 * must replay a run's schedule from its printed seed, and the percentiles must be nearest-rank.
 */
import { expect } from 'chai';
import { diff, percentile, seededRandom, type Picture } from '../../bench/churn-figures.js';

const baseline = (): Picture => ({
  localPvsByDisk: { 'disk-a': 'Available', 'disk-b': 'Available' },
  dynamicPvs: [],
  poolVolumes: [],
  poolSnapshots: [],
  subvolumes: [],
  mounts: ['/dev/loop7 /tmp/stowage-churn-x/node-a/disks/disk-a'],
  loops: ['/dev/loop7 /tmp/stowage-loop-x/disk-0.img'],
  pools: { local: { counts: { volumes: { available: 2 } }, capacity: { allocated: '0' } } },
});

describe('bench:churn verdict: the before/after comparison', () => {
  it('finds nothing when the picture is the same', () => {
    expect(diff(baseline(), baseline())).to.deep.equal([]);
  });

  const cases: Array<[string, (p: Picture) => void, RegExp]> = [
    [
      'a second PV for a Local disk',
      (p) => (p.localPvsByDisk['disk-a'] = 'Available + Released'),
      /Local PVs of disk disk-a: Available \+ Released/,
    ],
    ['a Local disk without its PV', (p) => delete p.localPvsByDisk['disk-b'], /Local PVs of disk disk-b: none/],
    ['a Dynamic PV left behind', (p) => p.dynamicPvs.push('pvc-1 (Released)'), /Dynamic PV left behind: pvc-1/],
    ['a PoolVolume left behind', (p) => p.poolVolumes.push('pvc-2'), /PoolVolume left behind: pvc-2/],
    ['a PoolSnapshot left behind', (p) => p.poolSnapshots.push('snap-1'), /PoolSnapshot left behind: snap-1/],
    ['a subvolume left behind', (p) => p.subvolumes.push('node-a/volumes/pvc-3'), /subvolume left behind: node-a\/volumes\/pvc-3/],
    ['a mount left behind', (p) => p.mounts.push('/dev/loop7 /tmp/stowage-churn-x/node-a/kubelet/pods/x'), /mount left behind/],
    ['a mount gone', (p) => (p.mounts = []), /mount gone/],
    [
      'a loop device left behind',
      (p) => p.loops.push('/dev/loop9 /tmp/stowage-loop-x/disk-0.img'),
      /loop device left behind: \/dev\/loop9/,
    ],
    [
      'pool figures that did not come back',
      (p) => (p.pools = { local: { counts: { volumes: { available: 1 } }, capacity: { allocated: '64Mi' } } }),
      /pool local figures .*64Mi.* \(were .*"0"/,
    ],
  ];
  for (const [what, change, expected] of cases) {
    it(`reports ${what}`, () => {
      const after = baseline();
      change(after);
      const leaks = diff(baseline(), after);
      expect(leaks).to.have.length(1);
      expect(leaks[0]).to.match(expected);
    });
  }
});

describe('bench:churn: seeded RNG and percentiles', () => {
  it('replays the same sequence for the same seed, and another for another seed', () => {
    const take = (seed: number) => Array.from({ length: 5 }, seededRandom(seed));
    expect(take(20261207)).to.deep.equal(take(20261207));
    expect(take(20261207)).to.not.deep.equal(take(20261208));
    for (const x of take(1)) expect(x).to.be.within(0, 1);
  });

  it('takes percentiles by nearest rank', () => {
    const v = Array.from({ length: 100 }, (_, i) => 100 - i);
    expect(percentile(v, 50)).to.equal(50);
    expect(percentile(v, 99)).to.equal(99);
    expect(percentile(v, 100)).to.equal(100);
    expect(percentile([7], 99)).to.equal(7);
    expect(Number.isNaN(percentile([], 50))).to.equal(true);
  });
});

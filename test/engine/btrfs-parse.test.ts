import { expect } from 'chai';
import {
  parseDeviceStats,
  parseQgroups,
  parseScrubStatus,
  parseShow,
  parseSubvolumeShow,
  parseUsage,
  profileFor,
} from '../../src/node/engine/btrfs.js';
import { scrubNote } from '../../src/node/engine/pool-outcomes.js';

describe('btrfs output parsing (pure)', () => {
  it('reads filesystem show, including a missing member', () => {
    const healthy = parseShow(`Label: 'stowage-fast'  uuid: 6c9a1e69-d082-4c09-8cd4-e8a4461c7d16
\tTotal devices 2 FS bytes used 180224
\tdevid    1 size 536870912 used 129171456 path /dev/loop0
\tdevid    2 size 536870912 used 129171456 path /dev/loop1
`);
    expect(healthy).to.deep.equal({
      label: 'stowage-fast',
      uuid: '6c9a1e69-d082-4c09-8cd4-e8a4461c7d16',
      missing: false,
      devices: [
        { devid: 1, sizeBytes: 536870912n, usedBytes: 129171456n, path: '/dev/loop0' },
        { devid: 2, sizeBytes: 536870912n, usedBytes: 129171456n, path: '/dev/loop1' },
      ],
    });
    const degraded = parseShow(`Label: 'stowage-x'  uuid: a7b96d4b-67b1-46a4-b690-e09f9651a160
\tTotal devices 2 FS bytes used 147456
\tdevid    1 size 1073741824 used 223084544 path /dev/loop0
\tdevid    2 size 0 used 0 path <missing disk> MISSING
`);
    expect(degraded?.missing).to.equal(true);
    expect(degraded?.devices[1]).to.deep.equal({ devid: 2, sizeBytes: 0n, usedBytes: 0n });
    expect(parseShow('nothing here')).to.equal(undefined);
  });

  it('reads qgroups with and without limits', () => {
    const groups = parseQgroups(`Qgroupid    Referenced    Exclusive  Max referenced  Max exclusive   Path
--------    ----------    ---------  --------------  -------------   ----
0/5              16384        16384            none           none   <toplevel>
0/256            16384        16384       104857600           none   volumes/pvol-1
`);
    expect(groups).to.deep.equal([
      { id: '0/5', referenced: 16384n, exclusive: 16384n, path: '<toplevel>' },
      { id: '0/256', referenced: 16384n, exclusive: 16384n, maxReferenced: 104857600n, path: 'volumes/pvol-1' },
    ]);
  });

  it('reads device stats error counters per device', () => {
    const stats = parseDeviceStats(`[/dev/loop0].write_io_errs    0
[/dev/loop0].read_io_errs     3
[/dev/loop0].flush_io_errs    0
[/dev/loop0].corruption_errs  1
[/dev/loop0].generation_errs  0
[/dev/loop1].write_io_errs    0
`);
    expect(stats[0]).to.deep.equal({
      device: '/dev/loop0',
      writeErrors: 0,
      readErrors: 3,
      flushErrors: 0,
      corruptionErrors: 1,
      generationErrors: 0,
    });
    expect(stats[1].device).to.equal('/dev/loop1');
  });

  it('reads filesystem usage', () => {
    const u = parseUsage(`Overall:
    Device size:\t\t        1073741824
    Device allocated:\t\t         258342912
    Used:\t\t\t            360448
    Free (estimated):\t\t         474808320\t(min: 474808320)
    Data ratio:\t\t\t              2.00
`);
    expect(u).to.deep.equal({ deviceSize: 1073741824n, used: 360448n, freeEstimated: 474808320n, dataRatio: 2 });
  });

  it('maps replicated.size to profiles', () => {
    expect(profileFor(1)).to.deep.equal({ data: 'single', metadata: 'dup' });
    expect(profileFor(2)).to.deep.equal({ data: 'raid1', metadata: 'raid1' });
    expect(profileFor(3)).to.deep.equal({ data: 'raid1c3', metadata: 'raid1c3' });
  });
  it('reads the last scrub result: never run, and finished with errors', () => {
    const never = parseScrubStatus(`UUID:             8935eb6f-ffad-4a1f-81fc-d046521fdde1
\tno stats available
\tdata_extents_scrubbed: 0
\tdata_bytes_scrubbed: 0
\tread_errors: 0
\tcsum_errors: 0
\tuncorrectable_errors: 0
\tcorrected_errors: 0
`);
    expect(never).to.deep.include({ state: 'never', uncorrectableErrors: 0 });
    expect(scrubNote('p', never)).to.equal('');
    const bad = parseScrubStatus(`UUID:             8935eb6f-ffad-4a1f-81fc-d046521fdde1
Scrub started:    Sun Nov 29 06:40:27 2026
Status:           finished
Duration:         0:00:00
\tdata_extents_scrubbed: 320
\ttree_extents_scrubbed: 22
\tdata_bytes_scrubbed: 20971520
\ttree_bytes_scrubbed: 360448
\tread_errors: 0
\tcsum_errors: 3
\tverify_errors: 0
\tno_csum: 0
\tcsum_discards: 0
\tsuper_errors: 1
\tmalloc_errors: 0
\tuncorrectable_errors: 2
\tunverified_errors: 0
\tcorrected_errors: 1
\tlast_physical: 167116800
`);
    expect(bad).to.deep.equal({
      state: 'finished',
      started: 'Sun Nov 29 06:40:27 2026',
      dataBytesScrubbed: 20971520,
      readErrors: 0,
      csumErrors: 3,
      verifyErrors: 0,
      superErrors: 1,
      correctedErrors: 1,
      uncorrectableErrors: 2,
    });
    expect(scrubNote('p', bad)).to.match(/2 uncorrectable error\(s\) in pool p/);
    expect(scrubNote('p', { ...bad, uncorrectableErrors: 0 })).to.match(/repaired 1 bad block/);
  });

  it('reads subvolume show: the path from the top level, the ID and the UUID', () => {
    expect(
      parseSubvolumeShow(`volumes/pvol-1
\tName: \t\t\tpvol-1
\tUUID: \t\t\t46bccf1f-e826-7f45-80f8-93fb532f659d
\tParent UUID: \t\t-
\tSubvolume ID: \t\t257
\tParent ID: \t\t5
`),
    ).to.deep.equal({ path: 'volumes/pvol-1', id: 257, uuid: '46bccf1f-e826-7f45-80f8-93fb532f659d' });
    expect(parseSubvolumeShow('ERROR: not a subvolume\n')).to.equal(undefined);
  });
});

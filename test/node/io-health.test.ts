import { expect } from 'chai';
import type { NodeDisk } from '../../src/crds/nodedisk.js';
import { ioProblem } from '../../src/node/agent/io-health.js';
import { desiredStatus, type DiskView } from '../../src/node/agent/status.js';
import { dynamicHandoff } from '../../src/node/agent/dynamic-pool-sync.js';
import type { Observation } from '../../src/node/agent/observation.js';
import { poolNotes, type ObservedPool } from '../../src/node/engine/pool-outcomes.js';

const view = (over: Partial<DiskView> = {}): DiskView => ({
  name: 'w1-0123456789',
  nodeName: 'w1',
  identity: 'serial:S1',
  kind: 'Disk',
  devicePath: '/dev/sdb',
  media: 'ssd',
  present: true,
  inventory: { kernelName: 'sdb', capacity: '100Gi', partitions: [], mountPoints: [] },
  eligibility: { eligible: true, reason: 'Blank', message: 'blank' },
  health: { verdict: 'Passed' },
  healthCheckedAt: '2026-01-01T00:00:00Z',
  prepared: { status: 'True', reason: 'Prepared', message: 'prepared' },
  wipedVolumes: [],
  ...over,
});

describe('disk health from the kernel (pure)', () => {
  it('says a device of size 0 has lost its medium, and names the device and its mount', () => {
    expect(ioProblem({ device: '/dev/loop3', sizeBytes: 0n, mountPoint: '/var/lib/stowage/disks/x' })).to.deep.include({
      reason: 'NoMedium',
    });
    expect(ioProblem({ device: '/dev/loop3', sizeBytes: 0n })!.message).to.contain('/dev/loop3');
  });

  it('says a filesystem with kernel-counted errors is failing, and nothing when there are none', () => {
    expect(ioProblem({ device: '/dev/sdb', sizeBytes: 1n << 30n, fsErrors: 3, mountPoint: '/m' })).to.deep.include({
      reason: 'FilesystemErrors',
    });
    expect(ioProblem({ device: '/dev/sdb', sizeBytes: 1n << 30n, fsErrors: 0 })).to.equal(undefined);
    expect(ioProblem({ device: '/dev/sdb', sizeBytes: 1n << 30n })).to.equal(undefined);
  });

  it("makes Healthy False whatever SMART said, with the kernel's reason", () => {
    const problem = ioProblem({ device: '/dev/sdb', sizeBytes: 0n })!;
    const s = desiredStatus(view({ ioProblem: problem }), undefined, new Date('2026-01-01T00:00:00Z'), 3_600_000);
    expect(s.conditions!.find((c) => c.type === 'Healthy')).to.deep.include({
      status: 'False',
      reason: 'NoMedium',
      message: problem.message,
    });
    const ok = desiredStatus(view(), undefined, new Date('2026-01-01T00:00:00Z'), 3_600_000);
    expect(ok.conditions!.find((c) => c.type === 'Healthy')).to.deep.include({ status: 'True', reason: 'SmartPassed' });
  });

  it('hands a Dynamic member that lost its medium to the engine as failed and not present, never as a blank disk', () => {
    const nd = {
      metadata: { name: 'w1-a' },
      spec: { nodeName: 'w1', devicePath: '/dev/loop3', claim: { pool: 'p', mode: 'Dynamic' } },
    } as unknown as NodeDisk;
    const o = {
      name: 'w1-a',
      kind: 'Disk',
      currentPath: '/dev/loop3',
      devicePath: '/dev/loop3',
      blank: true,
      eligibility: { eligible: false, reason: 'TooSmall', message: 'too small' },
      facts: { raw: { sizeBytes: 0n }, signatures: { types: [] } },
    } as unknown as Observation;
    const { claimed } = dynamicHandoff([nd], [o]);
    expect(claimed[0]).to.deep.include({ present: false, failed: true, devicePath: '/dev/loop3' });
  });

  it('counts a pool member whose disk failed as degraded, though btrfs still lists it', () => {
    const p: ObservedPool = {
      pool: 'p',
      mountPoint: '/m',
      uuid: 'u',
      copies: 2,
      stats: [],
      scrub: undefined,
      removalRefused: undefined,
      devices: [
        { devid: 1, path: '/dev/loop2', sizeBytes: 1n, usedBytes: 0n },
        { devid: 2, path: '/dev/loop3', sizeBytes: 1n, usedBytes: 0n },
      ] as ObservedPool['devices'],
      failed: ['/dev/loop3'],
    };
    const { degraded, notes } = poolNotes(p);
    expect(degraded).to.equal(true);
    expect(notes.join(' ')).to.contain('/dev/loop3 lost its medium');
    expect(poolNotes({ ...p, failed: [] }).degraded).to.equal(false);
  });
});

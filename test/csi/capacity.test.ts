import { expect } from 'chai';
import { mirroredBytes, nodeCapacity } from '../../src/crds/capacity.js';
import { requestedSize, volumeIdFor } from '../../src/csi/controller-service.js';
import type { NodeDisk } from '../../src/crds/nodedisk.js';
import type { PoolVolume } from '../../src/crds/poolvolume.js';
import type { PoolSnapshot } from '../../src/crds/poolsnapshot.js';

const G = 1n << 30n;
const disk = (bytes: bigint): NodeDisk => ({
  apiVersion: 'stowage.dev/v1alpha1',
  kind: 'NodeDisk',
  metadata: { name: 'd' },
  spec: { nodeName: 'n', devicePath: '/dev/x' },
  status: { capacity: bytes.toString() },
});
const volume = (size: string): PoolVolume => ({
  apiVersion: 'stowage.dev/v1alpha1',
  kind: 'PoolVolume',
  metadata: { name: 'v' },
  spec: { pool: 'p', node: 'n', size, volumeMode: 'Filesystem', requestName: 'r' },
});

describe('reservation-based capacity (pure)', () => {
  it('mirrors like btrfs allocates chunks: the largest disk is only usable as far as the others mirror it', () => {
    expect(mirroredBytes([10n * G], 1)).to.equal(10n * G);
    expect(mirroredBytes([10n * G, 10n * G], 2)).to.equal(10n * G);
    expect(mirroredBytes([10n * G, 2n * G], 2)).to.equal(2n * G);
    expect(mirroredBytes([4n * G, 4n * G, 4n * G], 2)).to.equal(6n * G);
    expect(mirroredBytes([4n * G, 4n * G, 4n * G], 3)).to.equal(4n * G);
    expect(mirroredBytes([10n * G, 1n * G, 1n * G], 3)).to.equal(1n * G);
    expect(mirroredBytes([10n * G], 2)).to.equal(0n);
  });

  it('subtracts the metadata reserve and every reservation on the node', () => {
    const cap = nodeCapacity({
      node: 'n',
      disks: [disk(10n * G), disk(10n * G)],
      volumes: [volume(String(3n * G)), volume('1Gi')],
      copies: 2,
      reservePercent: 10,
    });
    expect(cap).to.deep.equal({ node: 'n', raw: 20n * G, usable: 9n * G, allocated: 4n * G, snapshots: 0n, available: 5n * G });
    const full = nodeCapacity({ node: 'n', disks: [disk(G)], volumes: [volume(String(2n * G))], copies: 1, reservePercent: 0 });
    expect(full.available).to.equal(0n);
  });

  it('counts the bytes snapshots hold alone against the node, as their node daemons report them', () => {
    const snap = (exclusive?: string): PoolSnapshot => ({
      apiVersion: 'stowage.dev/v1alpha1',
      kind: 'PoolSnapshot',
      metadata: { name: 's' },
      spec: { pool: 'p', node: 'n', sourceVolume: 'v', volumeMode: 'Filesystem', size: String(4n * G), requestName: 'r' },
      ...(exclusive ? { status: { phase: 'Ready' as const, exclusive } } : {}),
    });
    // A snapshot not measured yet holds nothing alone (it shares everything with its volume).
    const cap = nodeCapacity({
      node: 'n',
      disks: [disk(10n * G)],
      volumes: [volume(String(4n * G))],
      snapshots: [snap(String(3n * G)), snap()],
      copies: 1,
      reservePercent: 0,
    });
    expect(cap).to.deep.equal({ node: 'n', raw: 10n * G, usable: 10n * G, allocated: 7n * G, snapshots: 3n * G, available: 3n * G });
    expect(
      nodeCapacity({ node: 'n', disks: [disk(10n * G)], volumes: [], snapshots: [snap(String(12n * G))], copies: 1, reservePercent: 0 })
        .available,
    ).to.equal(0n);
  });

  it('sizes requests in whole MiB within the limit', () => {
    expect(requestedSize({ required_bytes: '1' })).to.equal(1n << 20n);
    expect(requestedSize({})).to.equal(G);
    expect(requestedSize({ limit_bytes: String(5n << 20n) })).to.equal(5n << 20n);
    expect(requestedSize({ required_bytes: String((1n << 20n) + 1n), limit_bytes: String(3n << 20n) })).to.equal(2n << 20n);
    expect(() => requestedSize({ required_bytes: '10', limit_bytes: '5' })).to.throw(/smaller/);
  });

  it('derives volume IDs deterministically and DNS-safe from any request name', () => {
    expect(volumeIdFor('pvc-1'))
      .to.equal(volumeIdFor('pvc-1'))
      .and.to.match(/^pvol-[0-9a-f]{40}$/);
    expect(volumeIdFor('pvc-1')).to.not.equal(volumeIdFor('pvc-2'));
    expect(volumeIdFor('Ünïcode / name')).to.match(/^pvol-[0-9a-f]{40}$/);
  });
});

/**
 * The last disk of a pool leaving a node, on real btrfs over loop devices: while volumes live on the
 * pool filesystem it stays mounted and the disk is reported held (ReleaseRefused); once they are
 * gone the filesystem is unmounted and its signature removed from every member, so the disks are
 * blank (Eligible) again, as the claim protocol's release asks.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import type { ClaimedDisk } from '../../src/node/agent/dynamic-pools.js';
import { BtrfsEngine } from '../../src/node/engine/btrfs-engine.js';
import * as btrfs from '../../src/node/engine/btrfs.js';
import { run } from '../../src/host/command.js';
import { mountAt } from '../../src/host/mounts.js';
import { mountsUnder } from '../../src/csi/node-service.js';
import { LoopDevices, type LoopDevice } from '../support/loop-devices.js';

const MiB = 1024 ** 2;

describe('btrfs engine: the last disk of a pool leaves the node', function () {
  this.timeout(180_000);
  const loops = new LoopDevices();
  let dir = '';
  const claimed = (pool: string, name: string, loop: LoopDevice): ClaimedDisk => ({
    name,
    claim: { pool, mode: 'Dynamic' },
    devicePath: loop.device,
    stablePath: loop.device,
    sizeBytes: loop.sizeBytes,
    blank: true,
    present: true,
  });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-engine-retire-'));
  });
  after(async () => {
    for (const m of (await mountsUnder(dir)).sort((a, b) => b.length - a.length)) await run('umount', [m]).catch(() => undefined);
    await loops.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses while a volume lives there, then unmounts and blanks every member once it is gone', async () => {
    const a = await loops.create(320 * MiB);
    const b = await loops.create(320 * MiB);
    const engine = new BtrfsEngine({ root: join(dir, 'root'), copiesOf: (p) => (p === 'mirror' ? 2 : p === 'other' ? 1 : undefined) });
    const mnt = engine.mountPointOf('mirror');
    const c = await loops.create(320 * MiB);

    let out = await engine.sync('n1', [claimed('mirror', 'a', a), claimed('mirror', 'b', b), claimed('other', 'c', c)]);
    for (const d of ['a', 'b', 'c']) expect(out.get(d), d).to.deep.include({ prepared: true });
    const v = await engine.ensureVolume('mirror', 'keep-me', 'Filesystem', 64n * BigInt(MiB));
    await run('dd', ['if=/dev/urandom', `of=${v.path}/data`, 'bs=1M', 'count=8', 'conv=fsync']);
    const sum = (await run('sha256sum', [`${v.path}/data`])).split(' ')[0];

    // Both disks of "mirror" leave at once (pool deleted, selector changed); "other" stays.
    out = await engine.sync('n1', [claimed('other', 'c', c)]);
    expect(out.get('c')).to.deep.include({ prepared: true });
    expect((await mountAt(mnt))?.fsType, 'still mounted').to.equal('btrfs');
    for (const loop of [a, b]) {
      expect(engine.released(loop.device)).to.deep.include({ prepared: false, reason: 'ReleaseRefused' });
      expect(engine.released(loop.device)?.message).to.match(/still holds 1 volume\(s\) \(keep-me\)/);
    }
    expect(engine.state('mirror')?.removalRefused).to.match(/keep-me/);
    expect((await run('sha256sum', [`${v.path}/data`])).split(' ')[0]).to.equal(sum);
    // Repeated passes change nothing while the volume is there.
    await engine.sync('n1', [claimed('other', 'c', c)]);
    expect((await mountAt(mnt))?.fsType).to.equal('btrfs');

    await engine.removeVolume('mirror', 'keep-me', 'Filesystem');
    out = await engine.sync('n1', [claimed('other', 'c', c)]);
    expect(await mountAt(mnt), 'unmounted').to.equal(undefined);
    // Any failure to stat reads as absent, which is what the assertion checks.
    expect(
      await stat(mnt).then(
        () => true,
        () => false,
      ),
      'mount point removed',
    ).to.equal(false);
    for (const loop of [a, b]) {
      expect(await btrfs.probe(loop.device), `${loop.device} blank again`).to.deep.equal({});
      expect(engine.released(loop.device)).to.equal(undefined);
    }
    expect(engine.state('mirror')).to.equal(undefined);
    // The pool that kept its disk is untouched.
    expect(out.get('c')).to.deep.include({ prepared: true, reason: 'Prepared' });
    expect((await mountAt(engine.mountPointOf('other')))?.fsType).to.equal('btrfs');

    // The blank disks can be claimed again: a fresh filesystem is made for the pool.
    out = await engine.sync('n1', [claimed('other', 'c', c), claimed('mirror', 'a', a), claimed('mirror', 'b', b)]);
    expect(out.get('a')).to.deep.include({ prepared: true });
    expect((await btrfs.show(mnt)).devices).to.have.length(2);
  });
});

/**
 * The engine's disk lifecycle on real btrfs over loop devices, without a control plane: a disk that
 * leaves the pool is removed with its data migrated — unless the rest cannot hold the data, which
 * is refused and reported; a newly claimed disk is added and balanced in.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import type { ClaimedDisk } from '../../src/node/agent/dynamic-pools.js';
import { BtrfsEngine } from '../../src/node/engine/btrfs-engine.js';
import * as btrfs from '../../src/node/engine/btrfs.js';
import { run } from '../../src/host/command.js';
import { mountsUnder } from '../../src/csi/node-service.js';
import { LoopDevices, type LoopDevice } from '../support/loop-devices.js';

const MiB = 1024 ** 2;

describe('btrfs engine: disks joining and leaving a pool', function () {
  this.timeout(180_000);
  const loops = new LoopDevices();
  let dir = '';
  const claimed = (name: string, loop: LoopDevice): ClaimedDisk => ({
    name,
    claim: { pool: 'p1', mode: 'Dynamic' },
    devicePath: loop.device,
    stablePath: loop.device,
    sizeBytes: loop.sizeBytes,
    blank: true,
    present: true,
  });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-engine-'));
  });
  after(async () => {
    for (const m of (await mountsUnder(dir)).sort((a, b) => b.length - a.length)) await run('umount', [m]).catch(() => undefined);
    await loops.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  it('adds a new disk, refuses to remove one the rest cannot replace, removes it once the data fits', async () => {
    const a = await loops.create(320 * MiB);
    const b = await loops.create(320 * MiB);
    const engine = new BtrfsEngine({ root: join(dir, 'root'), copiesOf: () => 1 });
    const mnt = engine.mountPointOf('p1');

    let out = await engine.sync('n1', [claimed('a', a)]);
    expect(out.get('a')).to.deep.include({ prepared: true, reason: 'Prepared' });
    // Twice: idempotent, nothing formatted again.
    const uuid = (await btrfs.show(mnt)).uuid;
    await engine.sync('n1', [claimed('a', a)]);
    expect((await btrfs.show(mnt)).uuid).to.equal(uuid);

    out = await engine.sync('n1', [claimed('a', a), claimed('b', b)]);
    expect(out.get('b')).to.deep.include({ prepared: true, reason: 'Prepared' });
    expect((await btrfs.show(mnt)).devices.map((d) => d.path).sort()).to.deep.equal([a.device, b.device].sort());

    // More data than disk a alone can take.
    const v = await engine.ensureVolume('p1', 'big', 'Filesystem', 600n * BigInt(MiB));
    await run('dd', ['if=/dev/urandom', `of=${v.path}/data`, 'bs=1M', 'count=400', 'conv=fsync']);
    await run('btrfs', ['filesystem', 'sync', mnt]);
    out = await engine.sync('n1', [claimed('a', a)]);
    expect(engine.state('p1')?.removalRefused).to.match(/cannot hold/);
    expect(out.get('a')?.message).to.match(/was not removed/);
    expect((await btrfs.show(mnt)).devices).to.have.length(2);

    // Room again: the disk is removed, its data migrated, its signature gone.
    await rm(`${v.path}/data`);
    await run('btrfs', ['filesystem', 'sync', mnt]);
    await run('dd', ['if=/dev/urandom', `of=${v.path}/small`, 'bs=1M', 'count=16', 'conv=fsync']);
    const sum = (await run('sha256sum', [`${v.path}/small`])).split(' ')[0];
    await engine.sync('n1', [claimed('a', a)]);
    expect(engine.state('p1')?.removalRefused).to.equal(undefined);
    expect((await btrfs.show(mnt)).devices.map((d) => d.path)).to.deep.equal([a.device]);
    expect((await btrfs.probe(b.device)).type).to.equal(undefined);
    expect((await run('sha256sum', [`${v.path}/small`])).split(' ')[0]).to.equal(sum);
  });
});

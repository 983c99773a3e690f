/**
 * Snapshot, restore and clone primitives on real btrfs over loop devices: read-only snapshots of
 * subvolumes and reflinked snapshots of NOCOW files hold the content they were taken with while the
 * source changes; restores and clones are writable, independent and keep their own size; a
 * snapshot's exclusive bytes grow as the source overwrites what it holds and are freed when it is
 * deleted; a copy a killed daemon left half-made is redone or removed; a pool whose disks leave is not wiped
 * while snapshots remain.
 */
import { mkdtemp, readFile, rm, writeFile, rename, stat, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import type { ClaimedDisk } from '../../src/node/agent/dynamic-pools.js';
import { BtrfsEngine } from '../../src/node/engine/btrfs-engine.js';
import * as btrfs from '../../src/node/engine/btrfs.js';
import * as snapshots from '../../src/node/engine/snapshots.js';
import { run, runStatus } from '../../src/host/command.js';
import { mountsUnder } from '../../src/csi/node-service.js';
import { LoopDevices, type LoopDevice } from '../support/loop-devices.js';

const MiB = 1024 ** 2;

describe('btrfs engine: snapshots, restores and clones', function () {
  this.timeout(180_000);
  const loops = new LoopDevices();
  let dir = '';
  let engine: BtrfsEngine;
  let mnt = '';
  const pool = 'snaps';
  const claimed = (loop: LoopDevice): ClaimedDisk => ({
    name: `${pool}-disk`,
    claim: { pool, mode: 'Dynamic' },
    devicePath: loop.device,
    stablePath: loop.device,
    sizeBytes: loop.sizeBytes,
    blank: true,
    present: true,
  });
  let disk: LoopDevice;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-engine-snap-'));
    engine = new BtrfsEngine({ root: join(dir, 'root'), copiesOf: () => 1 });
    disk = await loops.create(1024 * MiB);
    const out = await engine.sync('n1', [claimed(disk)]);
    expect(out.get(`${pool}-disk`)).to.deep.include({ prepared: true });
    mnt = engine.mountPointOf(pool);
  });
  after(async () => {
    for (const device of await loopsUnder(dir)) await run('losetup', ['--detach', device]).catch(() => undefined);
    for (const m of (await mountsUnder(dir)).sort((a, b) => b.length - a.length)) await run('umount', [m]).catch(() => undefined);
    await loops.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  /** `mib` MiB of random data, written and synced to disk. */
  const randomFile = async (file: string, mib: number): Promise<void> => {
    await run('dd', ['if=/dev/urandom', `of=${file}`, 'bs=1M', `count=${mib}`, 'conv=fsync', 'status=none']);
  };
  // Any failure to stat reads as absent, which is what the assertion checks.
  const exists = (path: string): Promise<boolean> =>
    stat(path).then(
      () => true,
      () => false,
    );
  const digest = async (file: string): Promise<string> => (await run('sha256sum', [file])).split(' ')[0];
  const commit = (): Promise<string> => run('btrfs', ['filesystem', 'sync', mnt]);

  it('a Filesystem snapshot keeps the content it was taken with; a restore and a clone are writable and independent', async () => {
    const src = await engine.ensureVolume(pool, 'vol-a', 'Filesystem', 64n * BigInt(MiB));
    await writeFile(`${src.path}/data.txt`, 'original');
    const snap = await snapshots.ensureSnapshot(mnt, 'snap-a', 'vol-a', 'Filesystem');
    expect(snap.method).to.equal('subvolume-snapshot');
    expect(snap.path).to.equal(`${mnt}/snapshots/snap-a`);
    // Read-only: nothing can change what a snapshot holds.
    expect((await runStatus('touch', [`${snap.path}/new`])).code).to.not.equal(0);
    // Taking it again is a no-op that returns the same snapshot.
    expect(await snapshots.ensureSnapshot(mnt, 'snap-a', 'vol-a', 'Filesystem')).to.deep.equal({ path: snap.path });

    await writeFile(`${src.path}/data.txt`, 'overwritten');
    const restored = await snapshots.ensureRestoredVolume(mnt, 'vol-restored', 'Filesystem', { snapshot: 'snap-a' }, 32n * BigInt(MiB));
    expect(restored.method).to.equal('subvolume-snapshot');
    expect(await readFile(`${restored.path}/data.txt`, 'utf8')).to.equal('original');
    const clone = await snapshots.ensureRestoredVolume(mnt, 'vol-clone', 'Filesystem', { volume: 'vol-a' }, 64n * BigInt(MiB));
    expect(await readFile(`${clone.path}/data.txt`, 'utf8')).to.equal('overwritten');

    // Writes do not leak in any direction.
    await writeFile(`${restored.path}/data.txt`, 'restore wrote');
    await writeFile(`${clone.path}/data.txt`, 'clone wrote');
    expect(await readFile(`${src.path}/data.txt`, 'utf8')).to.equal('overwritten');
    expect(await readFile(`${snap.path}/data.txt`, 'utf8')).to.equal('original');
    expect(await readFile(`${restored.path}/data.txt`, 'utf8')).to.equal('restore wrote');

    // The restore has its own limit: it cannot take more than its size of new data.
    const groups = await btrfs.qgroups(mnt);
    expect(groups.find((g) => g.path === 'volumes/vol-restored')?.maxReferenced).to.equal(32n * BigInt(MiB));
    expect(
      (await runStatus('dd', ['if=/dev/zero', `of=${restored.path}/big`, 'bs=1M', 'count=48', 'conv=fsync'])).code,
      "writing past the restore's size fails",
    ).to.not.equal(0);
    // Restoring again is a no-op that keeps what the volume holds.
    await snapshots.ensureRestoredVolume(mnt, 'vol-restored', 'Filesystem', { snapshot: 'snap-a' }, 32n * BigInt(MiB));
    expect(await readFile(`${restored.path}/data.txt`, 'utf8')).to.equal('restore wrote');
  });

  it("a snapshot's exclusive bytes grow as the source overwrites what it holds, cover all of it once the source is gone, and are freed when it is deleted", async () => {
    const src = await engine.ensureVolume(pool, 'vol-b', 'Filesystem', 256n * BigInt(MiB));
    await randomFile(`${src.path}/blob`, 64);
    const snap = await snapshots.ensureSnapshot(mnt, 'snap-b', 'vol-b', 'Filesystem');
    await commit();
    expect(Number(await snapshots.exclusiveBytes(snap.path)), 'a fresh snapshot shares everything').to.be.below(MiB);

    // The source replaces its data: the old extents are now held by the snapshot alone.
    await randomFile(`${src.path}/blob.new`, 64);
    await rename(`${src.path}/blob.new`, `${src.path}/blob`);
    await commit();
    expect(Number(await snapshots.exclusiveBytes(snap.path))).to.be.within(63 * MiB, 65 * MiB);

    const before = (await btrfs.usage(mnt)).used;
    expect(await engine.removeVolume(pool, 'vol-b', 'Filesystem')).to.equal(true);
    await commit();
    expect(Number(await snapshots.exclusiveBytes(snap.path))).to.be.within(63 * MiB, 65 * MiB);
    // The snapshot is still restorable after its volume is gone.
    const restored = await snapshots.ensureRestoredVolume(mnt, 'vol-b2', 'Filesystem', { snapshot: 'snap-b' }, 256n * BigInt(MiB));
    expect((await stat(`${restored.path}/blob`)).size).to.equal(64 * MiB);
    await engine.removeVolume(pool, 'vol-b2', 'Filesystem');

    expect(await snapshots.removeSnapshot(mnt, 'snap-b', 'Filesystem')).to.equal(true);
    expect(await snapshots.removeSnapshot(mnt, 'snap-b', 'Filesystem'), 'deleting again finds nothing').to.equal(false);
    // Deleted subvolumes are cleaned in the background; wait for the cleaner, then look at the space.
    await run('btrfs', ['subvolume', 'sync', mnt]);
    await commit();
    const after = (await btrfs.usage(mnt)).used;
    expect(Number(before - after), "deleting the snapshot freed its 64 MiB (and the volume's other 64 MiB)").to.be.above(100 * MiB);
  });

  it('Block volumes: a reflinked snapshot holds the original blocks; restores share extents, grow to their size, and a full copy works where reflink is not used', async () => {
    const src = await engine.ensureVolume(pool, 'blk-a', 'Block', 32n * BigInt(MiB));
    await run('dd', ['if=/dev/urandom', `of=${src.path}`, 'bs=1M', 'count=16', 'conv=notrunc,fsync', 'status=none']);
    const original = await digest(src.path);
    const snap = await snapshots.ensureSnapshot(mnt, 'snap-blk', 'blk-a', 'Block');
    expect(snap.method, 'NOCOW files share extents through reflink').to.equal('reflink');
    expect(snap.path).to.equal(`${mnt}/snapshots/snap-blk.img`);
    expect((await stat(snap.path)).mode & 0o777).to.equal(0o444);
    await commit();
    expect(Number(await snapshots.exclusiveBytes(snap.path)), 'a reflinked snapshot shares its data').to.be.below(MiB);

    // A partial overwrite leaves the old extent shared (btrfs frees an extent only when no part of
    // it is referenced), so deleting the snapshot would free nothing yet; a full one makes it the snapshot's.
    await run('dd', ['if=/dev/urandom', `of=${src.path}`, 'bs=1M', 'count=8', 'conv=notrunc,fsync', 'status=none']);
    await commit();
    expect(Number(await snapshots.exclusiveBytes(snap.path))).to.be.below(MiB);
    await run('dd', ['if=/dev/urandom', `of=${src.path}`, 'bs=1M', 'count=32', 'conv=notrunc,fsync', 'status=none']);
    const changed = await digest(src.path);
    expect(changed).to.not.equal(original);
    expect(await digest(snap.path)).to.equal(original);
    await commit();
    expect(Number(await snapshots.exclusiveBytes(snap.path)), "the overwritten 32 MiB are the snapshot's own now").to.be.within(
      31 * MiB,
      33 * MiB,
    );

    const restored = await snapshots.ensureRestoredVolume(mnt, 'blk-restored', 'Block', { snapshot: 'snap-blk' }, 64n * BigInt(MiB));
    expect(restored.method).to.equal('reflink');
    expect((await stat(restored.path)).size).to.equal(64 * MiB);
    expect((await run('lsattr', ['-d', restored.path])).split(' ')[0]).to.include('C');
    // The first 32 MiB are the snapshot's, the rest is new zeroed room.
    expect((await run('sh', ['-c', `head -c ${32 * MiB} ${restored.path} | sha256sum`])).split(' ')[0]).to.equal(original);
    const clone = await snapshots.ensureRestoredVolume(mnt, 'blk-clone', 'Block', { volume: 'blk-a' }, 32n * BigInt(MiB));
    expect(await digest(clone.path)).to.equal(changed);
    await run('dd', ['if=/dev/zero', `of=${clone.path}`, 'bs=1M', 'count=1', 'conv=notrunc,fsync', 'status=none']);
    expect(await digest(src.path), 'a write to the clone does not reach the source').to.equal(changed);

    // The fallback: a full copy, still complete and NOCOW.
    const copied = join(mnt, 'blocks', 'blk-copied.img');
    expect(await snapshots.copyFile(snap.path, copied, { allowReflink: false })).to.equal('copy');
    expect(await digest(copied)).to.equal(original);
    await commit();
    expect(Number(await snapshots.exclusiveBytes(copied)), 'a full copy holds its own blocks').to.be.above(15 * MiB);
    await rm(copied);

    for (const name of ['blk-a', 'blk-restored', 'blk-clone']) await engine.removeVolume(pool, name, 'Block');
    expect(await snapshots.removeSnapshot(mnt, 'snap-blk', 'Block')).to.equal(true);
  });

  it('refuses a snapshot or restore whose source has no data, naming it', async () => {
    let message = '';
    await snapshots.ensureSnapshot(mnt, 'snap-x', 'no-such-volume', 'Filesystem').catch((err: Error) => {
      message = err.message;
    });
    expect(message).to.match(/source volume no-such-volume has no data/);
    await snapshots.ensureRestoredVolume(mnt, 'vol-x', 'Block', { snapshot: 'no-such-snap' }, BigInt(MiB)).catch((err: Error) => {
      message = err.message;
    });
    expect(message).to.match(/snapshot no-such-snap has no data/);
    expect(() => snapshots.snapshotPath(mnt, '../escape', 'Filesystem')).to.throw(/not a DNS-1123 name/);
  });

  it('a copy a killed daemon left half-made is started over by the retry, and removed when the snapshot is deleted instead', async () => {
    const src = await engine.ensureVolume(pool, 'blk-c', 'Block', 8n * BigInt(MiB));
    await run('dd', ['if=/dev/urandom', `of=${src.path}`, 'bs=1M', 'count=4', 'conv=notrunc,fsync', 'status=none']);
    // What a daemon killed in the middle of copying leaves: a partial file, and no snapshot.
    const leaveHalfMade = async (name: string): Promise<string> => {
      const partial = join(mnt, 'snapshots', `.partial-${name}.img`);
      const handle = await open(partial, 'w');
      await handle.write(Buffer.alloc(4096, 1));
      await handle.close();
      return partial;
    };
    const partial = await leaveHalfMade('snap-c');
    const snap = await snapshots.ensureSnapshot(mnt, 'snap-c', 'blk-c', 'Block');
    expect(await digest(snap.path)).to.equal(await digest(src.path));
    expect(await exists(partial)).to.equal(false);

    const abandoned = await leaveHalfMade('snap-d');
    expect(await snapshots.removeSnapshot(mnt, 'snap-d', 'Block'), 'no snapshot was ever completed').to.equal(false);
    expect(await exists(abandoned)).to.equal(false);
    await engine.removeVolume(pool, 'blk-c', 'Block');
    await snapshots.removeSnapshot(mnt, 'snap-c', 'Block');
  });

  it("replicated.size applies to snapshots: a raid1 pool keeps them mirrored, and their exclusive bytes are logical bytes, like the pool's usable capacity", async () => {
    const mirror = 'mirror';
    const mirrored = new BtrfsEngine({ root: join(dir, 'root-mirror'), copiesOf: () => 2 });
    const disks = [await loops.create(512 * MiB), await loops.create(512 * MiB)];
    const out = await mirrored.sync(
      'n1',
      disks.map((d, i) => ({ ...claimed(d), name: `${mirror}-disk-${i}`, claim: { pool: mirror, mode: 'Dynamic' as const } })),
    );
    expect([...out.values()].every((o) => o.prepared)).to.equal(true);
    const mmnt = mirrored.mountPointOf(mirror);
    const v = await mirrored.ensureVolume(mirror, 'vol-m', 'Filesystem', 128n * BigInt(MiB));
    await randomFile(`${v.path}/blob`, 32);
    const snap = await snapshots.ensureSnapshot(mmnt, 'snap-m', 'vol-m', 'Filesystem');
    expect(await mirrored.removeVolume(mirror, 'vol-m', 'Filesystem')).to.equal(true);
    await run('btrfs', ['filesystem', 'sync', mmnt]);
    // The snapshot alone holds the 32 MiB, counted once (logical), though the disks hold two copies.
    expect(Number(await snapshots.exclusiveBytes(snap.path))).to.be.within(31 * MiB, 33 * MiB);
    const df = await run('btrfs', ['filesystem', 'df', '-b', mmnt]);
    expect(df).to.match(/^Data, RAID1: total=\d+, used=(\d+)/m);
    expect(Number(/^Data, RAID1: total=\d+, used=(\d+)/m.exec(df)![1])).to.be.at.least(31 * MiB);
    expect((await btrfs.usage(mmnt)).dataRatio).to.equal(2);
    await snapshots.removeSnapshot(mmnt, 'snap-m', 'Filesystem');
    await mirrored.sync('n1', []);
    expect(await mirrored.mountedPool(mirror)).to.equal(undefined);
  });

  it('a pool whose last disk leaves stays mounted while snapshots remain, and is released once they are deleted', async () => {
    for (const name of ['vol-a', 'vol-restored', 'vol-clone']) await engine.removeVolume(pool, name, 'Filesystem');
    const held = await engine.sync('n1', []);
    expect(held.size).to.equal(0);
    expect(engine.released(disk.device)).to.deep.include({ prepared: false, reason: 'ReleaseRefused' });
    expect(engine.released(disk.device)?.message).to.include('snap-a');
    expect(await engine.mountedPool(pool)).to.equal(mnt);

    await snapshots.removeSnapshot(mnt, 'snap-a', 'Filesystem');
    await engine.sync('n1', []);
    expect(engine.released(disk.device)).to.equal(undefined);
    expect(await engine.mountedPool(pool)).to.equal(undefined);
  });
});

/** Loop devices whose backing file lies under `dir`. */
async function loopsUnder(dir: string): Promise<string[]> {
  // No output (the tool failed: nothing attached or no signature) reads as nothing found.
  const text = await run('losetup', ['--list', '--noheadings', '--output', 'NAME,BACK-FILE']).catch(() => '');
  return text
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[1]?.startsWith(dir))
    .map((f) => f[0]);
}

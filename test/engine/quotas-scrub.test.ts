/**
 * Pool filesystem health and limits on real btrfs over loop devices: simple quotas where the kernel
 * has them (full qgroups otherwise, or when asked), each volume's size limit enforced either way;
 * a scrub that finds a block without a good copy shows in the pool's state, in the volumes' health
 * (Degraded, reason UncorrectableErrors) and in the engine metrics.
 */
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { Registry } from 'prom-client';
import type { ClaimedDisk } from '../../src/node/agent/dynamic-pools.js';
import { BtrfsEngine } from '../../src/node/engine/btrfs-engine.js';
import * as btrfs from '../../src/node/engine/btrfs.js';
import { run, runStatus } from '../../src/host/command.js';
import { btrfsEngineSource } from '../../src/node/engine/btrfs-engine-source.js';
import { registerEngineMetrics } from '../../src/node/engine/engine-metrics.js';
import { mountsUnder } from '../../src/csi/node-service.js';
import { LoopDevices, type LoopDevice } from '../support/loop-devices.js';

const MiB = 1024 ** 2;

describe('btrfs engine: quotas and scrub results', function () {
  this.timeout(180_000);
  const loops = new LoopDevices();
  let dir = '';
  const claimed = (pool: string, loop: LoopDevice): ClaimedDisk => ({
    name: `${pool}-disk`,
    claim: { pool, mode: 'Dynamic' },
    devicePath: loop.device,
    stablePath: loop.device,
    sizeBytes: loop.sizeBytes,
    blank: true,
    present: true,
  });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-engine-health-'));
  });
  after(async () => {
    for (const m of (await mountsUnder(dir)).sort((a, b) => b.length - a.length)) await run('umount', [m]).catch(() => undefined);
    await loops.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  /** Writes `mib` MiB into `file`; false when the filesystem refused (quota exceeded). */
  const fill = async (file: string, mib: number): Promise<boolean> =>
    (await runStatus('dd', ['if=/dev/zero', `of=${file}`, 'bs=1M', `count=${mib}`, 'conv=fsync'])).code === 0;

  for (const simpleQuotas of [true, false]) {
    it(`enforces each volume's size with ${simpleQuotas ? 'simple quotas (where the kernel has them)' : 'full qgroup accounting'}`, async () => {
      const pool = simpleQuotas ? 'squota' : 'fullq';
      const engine = new BtrfsEngine({ root: join(dir, pool), copiesOf: () => 1, simpleQuotas });
      const out = await engine.sync('n1', [claimed(pool, await loops.create(512 * MiB))]);
      expect(out.get(`${pool}-disk`)).to.deep.include({ prepared: true });
      const expected = simpleQuotas && (await btrfs.kernelHasSimpleQuotas()) ? 'squota' : 'qgroup';
      expect(engine.state(pool)?.quotas).to.equal(expected);
      expect(await btrfs.quotaMode(engine.state(pool)!.uuid)).to.equal(expected);

      const v = await engine.ensureVolume(pool, 'capped', 'Filesystem', 32n * BigInt(MiB));
      expect(await fill(`${v.path}/a`, 24)).to.equal(true);
      expect(await fill(`${v.path}/b`, 24), 'writing past the limit fails').to.equal(false);
      await run('btrfs', ['filesystem', 'sync', engine.mountPointOf(pool)]);
      const used = (await engine.volumeUsage(pool, 'capped', 'Filesystem')).usedBytes;
      expect(Number(used)).to.be.within(24 * MiB, 33 * MiB);
      // Expansion raises the limit.
      await engine.ensureVolume(pool, 'capped', 'Filesystem', 96n * BigInt(MiB));
      await rm(`${v.path}/b`);
      expect(await fill(`${v.path}/b`, 40)).to.equal(true);
    });
  }

  it('reports a block the last scrub could not repair: pool state, volume health and metrics', async () => {
    const pool = 'scrubbed';
    const loop = await loops.create(320 * MiB);
    const engine = new BtrfsEngine({ root: join(dir, pool), copiesOf: () => 1 });
    await engine.sync('n1', [claimed(pool, loop)]);
    const mnt = engine.mountPointOf(pool);
    const registry = new Registry();
    registerEngineMetrics(
      registry,
      'n1',
      btrfsEngineSource(engine, () => [pool]),
    );
    expect(await registry.getSingleMetricAsString('stowage_engine_scrub_errors')).to.not.match(/pool="scrubbed"/);

    // A clean scrub: nothing to report.
    await run('btrfs', ['scrub', 'start', '-B', mnt]);
    const fresh = new BtrfsEngine({ root: join(dir, pool), copiesOf: () => 1 });
    await fresh.sync('n1', [claimed(pool, loop)]);
    expect(fresh.state(pool)?.scrub).to.deep.include({ state: 'finished', uncorrectableErrors: 0 });
    expect((await fresh.health(pool)).degraded).to.equal(false);

    // Data (single profile: one copy) whose block on the disk is then damaged underneath btrfs.
    const v = await fresh.ensureVolume(pool, 'victim', 'Filesystem', 64n * BigInt(MiB));
    const marker = Buffer.alloc(64 * 1024, 'STOWAGE-SCRUB-MARKER-');
    const h = await open(`${v.path}/data`, 'w');
    await h.write(marker);
    await h.sync();
    await h.close();
    await run('btrfs', ['filesystem', 'sync', mnt]);
    const offset = await find(loop.file, marker.subarray(0, 4096));
    expect(offset, 'the data block on the disk').to.be.greaterThan(0);
    const img = await open(loop.file, 'r+');
    await img.write(Buffer.alloc(4096, 0x5a), 0, 4096, offset);
    await img.sync();
    await img.close();
    await runStatus('btrfs', ['scrub', 'start', '-B', mnt]); // exits non-zero when it finds errors

    const after = new BtrfsEngine({ root: join(dir, pool), copiesOf: () => 1 });
    await after.sync('n1', [claimed(pool, loop)]);
    expect(after.state(pool)?.scrub?.uncorrectableErrors).to.be.greaterThan(0);
    expect(after.state(pool)?.message).to.match(/uncorrectable error/);
    const health = await after.health(pool);
    expect(health).to.deep.include({ degraded: true, reason: 'UncorrectableErrors' });
    const text = await registry.getSingleMetricAsString('stowage_engine_scrub_errors');
    expect(text).to.match(/stowage_engine_scrub_errors\{node="n1",pool="scrubbed",type="uncorrectable"\} [1-9]/);
    expect(await registry.getSingleMetricAsString('stowage_engine_scrub_last_start_timestamp_seconds')).to.match(
      /pool="scrubbed"\} \d{10}/,
    );
  });
});

/** Byte offset of the first 4 KiB-aligned block of `file` equal to `block`, or -1. */
async function find(file: string, block: Buffer): Promise<number> {
  const h = await open(file, 'r');
  try {
    const buf = Buffer.alloc(4 * MiB);
    for (let pos = 0; ; pos += buf.length) {
      const { bytesRead } = await h.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) return -1;
      for (let i = 0; i + 4096 <= bytesRead; i += 4096) if (buf.subarray(i, i + 4096).equals(block)) return pos + i;
    }
  } finally {
    await h.close();
  }
}

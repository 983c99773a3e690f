import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { Registry } from 'prom-client';
import { btrfsEngineSource } from '../../src/node/engine/btrfs-engine-source.js';
import { registerEngineMetrics } from '../../src/node/engine/engine-metrics.js';
import type { ClaimedDisk } from '../../src/node/agent/dynamic-pools.js';
import { BtrfsEngine } from '../../src/node/engine/btrfs-engine.js';
import { LoopDevices, unmountAllFrom } from '../support/loop-devices.js';
import { promtool } from './promtool.js';
import { lintProblems } from './reference.js';

const MiB = 1024 * 1024;

/** Engine metrics read from a real raid1 btrfs pool on two loop devices this test made. */
describe('engine metrics from a real btrfs pool (loop devices)', function () {
  this.timeout(120_000);
  const loops = new LoopDevices();
  let root: string;
  let engine: BtrfsEngine;
  const pool = 'obs-dyn';

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'stowage-obs-engine-'));
    engine = new BtrfsEngine({ root, copiesOf: (p) => (p === pool ? 2 : undefined) });
    const disks: ClaimedDisk[] = [];
    for (const i of [0, 1]) {
      const loop = await loops.create(320 * MiB);
      disks.push({
        name: `obs-node-d${i}`,
        claim: { pool, mode: 'Dynamic' },
        devicePath: loop.device,
        stablePath: loop.device,
        sizeBytes: loop.sizeBytes,
        blank: true,
        present: true,
      });
    }
    const outcomes = await engine.sync('obs-node', disks);
    for (const d of disks) expect(outcomes.get(d.name)?.prepared, `${d.name}: ${outcomes.get(d.name)?.message}`).to.equal(true);
    await engine.ensureVolume(pool, 'vol-a', 'Filesystem', 32n * BigInt(MiB));
    await engine.ensureVolume(pool, 'vol-b', 'Block', 16n * BigInt(MiB));
  });

  after(async () => {
    for (const device of loops.devices()) await unmountAllFrom(device);
    await loops.cleanup();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('reports usable size after raid1, usage, volumes and per-device error counters', async () => {
    const [stats, ...rest] = await btrfsEngineSource(engine, () => [pool, 'not-mounted-here'])();
    expect(rest, 'pools not mounted on this node are skipped').to.deep.equal([]);
    expect(stats.pool).to.equal(pool);
    // Two 320 MiB devices mirrored: about 320 MiB usable, never more.
    expect(stats.sizeBytes).to.be.within(300 * MiB, 320 * MiB);
    expect(stats.usedBytes).to.be.greaterThan(0).and.lessThan(stats.sizeBytes);
    expect(stats.availableBytes).to.be.greaterThan(0).and.at.most(stats.sizeBytes);
    expect(stats.volumes).to.equal(2);
    expect(stats.devices.map((d) => d.device).sort()).to.deep.equal(loops.devices().sort());
    for (const d of stats.devices) expect(d.errors).to.deep.equal({ write_io: 0, read_io: 0, flush_io: 0, corruption: 0, generation: 0 });
  });

  it('exports them as metrics that pass promtool check metrics', async () => {
    const registry = new Registry();
    registerEngineMetrics(
      registry,
      'obs-node',
      btrfsEngineSource(engine, () => [pool]),
    );
    const text = await registry.metrics();
    expect(text).to.match(new RegExp(`^stowage_engine_volumes\\{node="obs-node",pool="${pool}"\\} 2$`, 'm'));
    expect(text).to.match(
      new RegExp(
        `^stowage_engine_device_errors_total\\{node="obs-node",pool="${pool}",device="${loops.devices()[0]}",type="corruption"\\} 0$`,
        'm',
      ),
    );
    const result = await promtool(['check', 'metrics'], { stdin: text });
    expect(lintProblems(result.output), result.output).to.deep.equal([]);
  });
});

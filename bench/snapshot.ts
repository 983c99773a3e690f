/**
 * `npm run bench:snapshot`: snapshot and restore latency of a 1 GiB volume holding data, through
 * the CSI controller on the local control plane (CreateSnapshot until ready_to_use; CreateVolume
 * from the snapshot until the volume is Ready), ITERATIONS times each, one at a time as the
 * snapshotter and provisioner call per object; p50/p99. The baseline, measured in the same run on
 * the same pool, is the engine alone doing the same on the node (btrfs subvolume snapshot, or the
 * reflinked copy of a Block volume's file): the floor the API round trips add to. Filesystem and
 * Block volumes both.
 */
import { stopSharedControlPlane } from '../test/cluster/shared.js';
import { DynamicPoolFixture, call } from '../test/csi/fixture.js';
import { REFRESH_MS } from '../src/node/engine/volume-realizer.js';
import * as snapshots from '../src/node/engine/snapshots.js';
import { run } from '../src/host/command.js';
import type { VolumeMode } from '../src/crds/storagepool.js';

const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 50);
const GiB = 1024 ** 3;
/** Data written into the 1 GiB volume before the snapshots: most of it, random (incompressible). */
const DATA_MIB = Number(process.env.BENCH_DATA_MIB ?? 900);

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function timed(count: number, one: (i: number) => Promise<unknown>): Promise<number[]> {
  const latencies: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await one(i);
    latencies.push(performance.now() - t0);
  }
  return latencies.sort((a, b) => a - b);
}

const row = (name: string, l: readonly number[]): string =>
  `${name.padEnd(44)} p50 ${percentile(l, 50).toFixed(1).padStart(7)} ms   p99 ${percentile(l, 99).toFixed(1).padStart(7)} ms`;
const ratio = (a: readonly number[], b: readonly number[]): string =>
  `p50 ${(percentile(a, 50) / percentile(b, 50)).toFixed(1)}x, p99 ${(percentile(a, 99) / percentile(b, 99)).toFixed(1)}x`;

async function benchMode(fx: DynamicPoolFixture, mode: VolumeMode): Promise<void> {
  const cap =
    mode === 'Block'
      ? { block: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } }
      : { mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } };
  const source = (
    await call(
      fx.controllerClient,
      'CreateVolume',
      {
        name: `bench-src-${mode}`,
        capacity_range: { required_bytes: String(GiB) },
        volume_capabilities: [cap],
        parameters: { pool: fx.pool },
      },
      120_000,
    )
  ).volume;
  const path = (await fx.poolVolumes()).find((v) => v.metadata.name === source.volume_id)!.status!.path!;
  const target = mode === 'Block' ? path : `${path}/data`;
  await run('dd', ['if=/dev/urandom', `of=${target}`, 'bs=1M', `count=${DATA_MIB}`, 'conv=notrunc,fsync', 'status=none']);
  const mnt = fx.engine.mountPointOf(fx.pool);

  // Baseline: the engine alone, on the node.
  const engineSnap = await timed(ITERATIONS, (i) =>
    snapshots.ensureSnapshot(mnt, `base-snap-${mode.toLowerCase()}-${i}`, source.volume_id, mode),
  );
  const engineRestore = await timed(ITERATIONS, (i) =>
    snapshots.ensureRestoredVolume(
      mnt,
      `base-vol-${mode.toLowerCase()}-${i}`,
      mode,
      { snapshot: `base-snap-${mode.toLowerCase()}-${i}` },
      BigInt(GiB),
    ),
  );
  for (let i = 0; i < ITERATIONS; i++) {
    await fx.engine.removeVolume(fx.pool, `base-vol-${mode.toLowerCase()}-${i}`, mode);
    await snapshots.removeSnapshot(mnt, `base-snap-${mode.toLowerCase()}-${i}`, mode);
  }

  // Through the CSI controller, the API server and the node daemon.
  const ids: string[] = [];
  const csiSnap = await timed(ITERATIONS, async (i) => {
    const snap = (
      await call(fx.controllerClient, 'CreateSnapshot', { name: `bench-snap-${mode}-${i}`, source_volume_id: source.volume_id }, 120_000)
    ).snapshot;
    if (!snap.ready_to_use) throw new Error('CreateSnapshot returned a snapshot not ready to use');
    ids.push(snap.snapshot_id);
  });
  const restored: string[] = [];
  const csiRestore = await timed(ITERATIONS, async (i) => {
    const vol = (
      await call(
        fx.controllerClient,
        'CreateVolume',
        {
          name: `bench-restore-${mode}-${i}`,
          capacity_range: { required_bytes: String(GiB) },
          volume_capabilities: [cap],
          parameters: { pool: fx.pool },
          volume_content_source: { snapshot: { snapshot_id: ids[i] } },
        },
        120_000,
      )
    ).volume;
    restored.push(vol.volume_id);
  });
  const deleteSnap = await timed(ITERATIONS, async (i) => {
    await call(fx.controllerClient, 'DeleteVolume', { volume_id: restored[i] }, 120_000);
    await call(fx.controllerClient, 'DeleteSnapshot', { snapshot_id: ids[i] }, 120_000);
  });
  await call(fx.controllerClient, 'DeleteVolume', { volume_id: source.volume_id }, 120_000);

  process.stdout.write(`\n${mode}: a 1 GiB volume holding ${DATA_MIB} MiB of random data, ${ITERATIONS} times each, one at a time\n`);
  process.stdout.write(`${row('engine alone: snapshot (baseline)', engineSnap)}\n`);
  process.stdout.write(`${row('CSI CreateSnapshot to ready_to_use', csiSnap)}   ${ratio(csiSnap, engineSnap)} of the baseline\n`);
  process.stdout.write(`${row('engine alone: restore (baseline)', engineRestore)}\n`);
  process.stdout.write(
    `${row('CSI CreateVolume from snapshot to Ready', csiRestore)}   ${ratio(csiRestore, engineRestore)} of the baseline\n`,
  );
  process.stdout.write(`${row('CSI DeleteVolume + DeleteSnapshot (data gone)', deleteSnap)}\n`);
}

async function main(): Promise<void> {
  const fx = new DynamicPoolFixture();
  try {
    process.stdout.write('starting the local control plane and a Dynamic pool on a loop device…\n');
    // Sparse: every restore reserves its 1 GiB against the node (capacity is honest), though it shares its data.
    await fx.start({ diskSizes: [64 * GiB], refreshMs: REFRESH_MS });
    for (const mode of ['Filesystem', 'Block'] as const) await benchMode(fx, mode);
  } finally {
    await fx.cleanup();
    await stopSharedControlPlane();
  }
}

await main();

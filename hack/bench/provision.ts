/**
 * `npm run bench:provision`: 100 volumes through the CSI controller on the local control plane,
 * CreateVolume-to-ready latency p50/p99 (target p99 < 2 s), and as the baseline measured in the
 * same run, the engine alone realizing 100 volumes (subvolume + qgroup limit) on the same pool,
 * which is the floor no API round-trip can beat. Calls run CONCURRENCY at a time, as the
 * external-provisioner's workers do.
 */
import { stopSharedControlPlane } from '../../test/cluster/shared.js';
import { DynamicPoolFixture, call } from '../../test/csi/fixture.js';
import { REFRESH_MS } from '../../src/node/engine/volume-realizer.js';

const VOLUMES = Number(process.env.BENCH_VOLUMES ?? 100);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 10);
const SIZE = 16 * 1024 ** 2;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function timed(
  count: number,
  concurrency: number,
  one: (i: number) => Promise<unknown>,
): Promise<{ latencies: number[]; wallMs: number }> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        const t0 = performance.now();
        await one(i);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  return { latencies: latencies.sort((a, b) => a - b), wallMs: performance.now() - started };
}

async function main(): Promise<void> {
  const fx = new DynamicPoolFixture();
  try {
    process.stdout.write('starting the local control plane and a Dynamic pool on a loop device…\n');
    // The node daemon's own refresh interval, not the 1 s the tests use to see health changes quickly.
    await fx.start({ diskSizes: [8 * 1024 ** 3], refreshMs: REFRESH_MS });
    const baseline = await timed(VOLUMES, CONCURRENCY, (i) => fx.engine.ensureVolume(fx.pool, `baseline-${i}`, 'Filesystem', BigInt(SIZE)));
    for (let i = 0; i < VOLUMES; i++) await fx.engine.removeVolume(fx.pool, `baseline-${i}`, 'Filesystem');
    const csi = await timed(VOLUMES, CONCURRENCY, (i) =>
      call(
        fx.controllerClient,
        'CreateVolume',
        {
          name: `pvc-bench-${i}`,
          capacity_range: { required_bytes: String(SIZE) },
          volume_capabilities: [{ mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } }],
          parameters: { pool: fx.pool },
        },
        120_000,
      ),
    );
    const row = (name: string, r: { latencies: number[]; wallMs: number }): string =>
      `${name.padEnd(34)} p50 ${percentile(r.latencies, 50).toFixed(0).padStart(6)} ms   p99 ${percentile(r.latencies, 99).toFixed(0).padStart(6)} ms   ${(VOLUMES / (r.wallMs / 1000)).toFixed(1).padStart(6)} volumes/s`;
    process.stdout.write(`\n${VOLUMES} volumes of ${SIZE / 1024 ** 2} MiB, ${CONCURRENCY} at a time\n`);
    process.stdout.write(`${row('engine alone (baseline)', baseline)}\n`);
    process.stdout.write(`${row('CreateVolume to Ready (CSI)', csi)}\n`);
    const p99 = percentile(csi.latencies, 99);
    process.stdout.write(
      `ratio p50 CSI/baseline ${(percentile(csi.latencies, 50) / percentile(baseline.latencies, 50)).toFixed(1)}x; p99 ${p99.toFixed(0)} ms (target < 2000 ms: ${p99 < 2000 ? 'met' : 'NOT met'})\n`,
    );
  } finally {
    await fx.cleanup();
    await stopSharedControlPlane();
  }
}

await main();

/**
 * `npm run bench:ceph`: the Ceph engine's data path and recovery, on the same kind of cluster as
 * test/ceph/node-loss.test.ts (1 mon, 1 mgr, 3 played nodes with one BlueStore OSD each on a 3 GiB
 * sparse loop device; pool size 3, min_size 2, failure domain host).
 *
 *   1. Throughput through RADOS (`rados bench`, 4 MiB objects, 4 in flight: sequential write, then
 *      sequential read of what was written) against the baseline of the same run: fio with the same
 *      block size and depth, O_DIRECT, on a raw loop device over a sparse file in the same directory.
 *      The ratio is RADOS / raw. RADOS writes 3 copies, all onto the same machine's disk here.
 *   2. Recovery after a node loss: n3's OSD killed -9, BENCH_RECOVERY_MIB written while it is down,
 *      n3 restarted; the time until HEALTH_OK / every PG active+clean, and per GiB written.
 *
 * A benchmark, not a test: it prints figures and asserts nothing.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { TestCephCluster } from '../test/ceph/test-cluster.js';
import { LoopDevices } from '../test/support/loop-devices.js';

const exec = promisify(execFile);
const GiB = 1024 ** 3;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 15);
const RECOVERY_MIB = Number(process.env.BENCH_RECOVERY_MIB ?? 256);
const POOL = { pool: 'bench', failureDomain: 'host' as const, knownMonitors: ['a'] };

async function fio(device: string, rw: 'write' | 'read', sizeMiB: number): Promise<number> {
  const { stdout } = await exec(
    'fio',
    [
      '--name=raw',
      `--filename=${device}`,
      `--rw=${rw}`,
      '--bs=4M',
      '--iodepth=4',
      '--ioengine=libaio',
      '--direct=1',
      `--size=${sizeMiB}M`,
      `--runtime=${SECONDS}`,
      '--output-format=json',
    ],
    { maxBuffer: 16 * 1024 ** 2 },
  );
  const job = (JSON.parse(stdout) as { jobs: Array<Record<'read' | 'write', { bw_bytes: number }>> }).jobs[0];
  return job[rw].bw_bytes / 1024 ** 2;
}

function radosBandwidth(out: string): number {
  const m = /Bandwidth \(MB\/sec\):\s+([\d.]+)/.exec(out);
  if (!m) throw new Error(`rados bench printed no bandwidth:\n${out.slice(-800)}`);
  return Number(m[1]); // rados bench's "MB" are MiB (it divides by 1048576)
}

async function main(): Promise<void> {
  const cluster = new TestCephCluster();
  const baseline = new LoopDevices();
  try {
    const startMs = await cluster.startThreeNodePool(POOL, 3 * GiB);
    console.log(`cluster to HEALTH_OK: ${(startMs / 1000).toFixed(1)} s`);

    // 1. Throughput, RADOS first so the raw baseline runs on the same warm machine right after.
    const write = radosBandwidth(
      await cluster.rados(['bench', '-p', POOL.pool, String(SECONDS), 'write', '-b', String(4 * 1024 ** 2), '-t', '4', '--no-cleanup']),
    );
    const read = radosBandwidth(await cluster.rados(['bench', '-p', POOL.pool, String(SECONDS), 'seq', '-t', '4']));
    await cluster.rados(['-p', POOL.pool, 'cleanup']);
    const raw = await baseline.create(3 * GiB);
    const rawWrite = await fio(raw.device, 'write', 2048);
    const rawRead = await fio(raw.device, 'read', 2048);
    console.log('\nthroughput (4 MiB blocks, 4 in flight)          MiB/s    raw loop MiB/s   ratio');
    console.log(
      `  sequential write, 3 copies      ${write.toFixed(1).padStart(17)} ${rawWrite.toFixed(1).padStart(16)}   ${(write / rawWrite).toFixed(2)}x`,
    );
    console.log(
      `  sequential read                 ${read.toFixed(1).padStart(17)} ${rawRead.toFixed(1).padStart(16)}   ${(read / rawRead).toFixed(2)}x`,
    );

    // 2. Recovery after a node loss, per GiB written while the node was down.
    const n3 = cluster.osds.find((o) => o.node === 'n3')!;
    await cluster.waitForHealth(POOL, 'HEALTH_OK after cleanup', 180_000, (h) => h.redundant && h.health === 'HEALTH_OK');
    await n3.daemon.kill();
    await cluster.waitForHealth(POOL, 'n3 down', 60_000, (h) => h.domainsDown.includes('n3'));
    const objects = Math.max(1, Math.round(RECOVERY_MIB / 4));
    const file = await baseline.file(4 * 1024 ** 2);
    await exec('dd', ['if=/dev/urandom', `of=${file}`, 'bs=4M', 'count=1', 'conv=notrunc', 'status=none']);
    for (let i = 0; i < objects; i++) await cluster.rados(['-p', POOL.pool, 'put', `degraded-${i}`, file]);
    const down = await cluster.health(POOL);
    const back = Date.now();
    await cluster.restartOsd(n3);
    await cluster.waitForHealth(POOL, 'recovery to HEALTH_OK', 600_000, (h) => h.redundant && h.health === 'HEALTH_OK');
    const seconds = (Date.now() - back) / 1000;
    const gib = (objects * 4) / 1024;
    console.log(
      `\nrecovery after a node loss: ${objects * 4} MiB written while n3 was down (Ceph's count at the restart: ${down.objects.degraded} degraded copies);`,
    );
    console.log(`  n3 restarted → HEALTH_OK / active+clean in ${seconds.toFixed(1)} s = ${(seconds / gib).toFixed(1)} s per GiB`);
  } finally {
    await cluster.teardown();
    await baseline.cleanup();
  }
}

await main();

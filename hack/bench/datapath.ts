/**
 * `npm run bench:datapath`: fio on a Stowage Dynamic volume versus ext4 directly on an identical
 * loop device, in the same run. Prints IOPS / bandwidth per workload and the ratios
 * (Stowage ÷ ext4; targets: sequential ≥ 0.9, random ≥ 0.7).
 *
 * Three targets, each on its own sparse loop device of the same size on the same host disk:
 *   ext4        mkfs.ext4 on the device, fio on its root
 *   stowage     a Filesystem volume (btrfs subvolume with its qgroup limit) of a replicated.size 1
 *               pool, created by the engine exactly as the node daemon does
 *   nodatacow   the same with StorageClass parameter nodatacow: "true" (PoolVolume spec.noDataCow:
 *               the subvolume is set +C, so no copy-on-write and no data checksums)
 * Needs root, fio, btrfs-progs. Leaves nothing behind.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { BtrfsEngine } from '../../src/node/engine/btrfs-engine.js';

const exec = promisify(execFile);
const DISK_BYTES = 4 * 1024 ** 3;
const FILE_SIZE = process.env.BENCH_FILE_SIZE ?? '1g';
const RUNTIME_S = Number(process.env.BENCH_RUNTIME_S ?? 15);

interface Workload { name: string; rw: string; bs: string; iodepth: number; kind: 'random' | 'sequential' }
const WORKLOADS: Workload[] = [
  { name: '4k random read', rw: 'randread', bs: '4k', iodepth: 32, kind: 'random' },
  { name: '4k random write', rw: 'randwrite', bs: '4k', iodepth: 32, kind: 'random' },
  { name: '1MiB sequential read', rw: 'read', bs: '1m', iodepth: 8, kind: 'sequential' },
  { name: '1MiB sequential write', rw: 'write', bs: '1m', iodepth: 8, kind: 'sequential' },
];

async function fio(dir: string, w: Workload): Promise<{ iops: number; mibps: number }> {
  const { stdout } = await exec('fio', [
    '--name=bench', `--directory=${dir}`, `--rw=${w.rw}`, `--bs=${w.bs}`, `--size=${FILE_SIZE}`, `--iodepth=${w.iodepth}`,
    '--ioengine=libaio', '--direct=1', '--time_based', `--runtime=${RUNTIME_S}`, '--ramp_time=2', '--group_reporting',
    '--output-format=json', '--filename=fio.dat',
  ], { maxBuffer: 64 * 1024 * 1024 });
  const job = JSON.parse(stdout).jobs[0];
  const side = w.rw.includes('read') ? job.read : job.write;
  return { iops: side.iops, mibps: side.bw_bytes / 1024 ** 2 };
}

async function loop(dir: string, name: string): Promise<string> {
  const file = join(dir, `${name}.img`);
  const handle = await open(file, 'w');
  await handle.truncate(DISK_BYTES);
  await handle.close();
  // Both devices alike; BENCH_LOOP_DIRECT_IO=1 bypasses the host page cache under the loop devices.
  const directIo = process.env.BENCH_LOOP_DIRECT_IO === '1' ? ['--direct-io=on'] : [];
  return (await exec('losetup', ['--find', '--show', ...directIo, file])).stdout.trim();
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'stowage-bench-datapath-'));
  const devices: string[] = [];
  const mounts: string[] = [];
  try {
    const ext4Dev = await loop(dir, 'ext4');
    devices.push(ext4Dev);
    const btrfsDev = await loop(dir, 'btrfs');
    devices.push(btrfsDev);
    await exec('mkfs.ext4', ['-q', '-F', ext4Dev]);
    const ext4Dir = join(dir, 'ext4');
    await mkdir(ext4Dir);
    await exec('mount', [ext4Dev, ext4Dir]);
    mounts.push(ext4Dir);

    const engine = new BtrfsEngine({ root: join(dir, 'root'), copiesOf: () => 1 });
    const outcome = await engine.sync('bench', [{
      name: 'bench-disk', claim: { pool: 'bench', mode: 'Dynamic' }, devicePath: btrfsDev, stablePath: btrfsDev,
      sizeBytes: DISK_BYTES, blank: true, present: true,
    }]);
    if (!outcome.get('bench-disk')?.prepared) throw new Error(`the engine did not prepare the disk: ${JSON.stringify(outcome.get('bench-disk'))}`);
    mounts.push(engine.mountPointOf('bench'));
    const cow = await engine.ensureVolume('bench', 'vol-cow', 'Filesystem', 3n * 1024n ** 3n);
    const nocow = await engine.ensureVolume('bench', 'vol-nocow', 'Filesystem', 3n * 1024n ** 3n, true);

    const targets = [
      { name: 'ext4', dir: ext4Dir },
      { name: 'stowage', dir: cow.path },
      { name: 'nodatacow', dir: nocow.path },
    ];
    process.stdout.write(`fio, ${RUNTIME_S} s per workload, ${FILE_SIZE} file, O_DIRECT, libaio; loop devices of ${DISK_BYTES / 1024 ** 3} GiB on the same host disk\n\n`);
    const rows: string[][] = [['workload', 'ext4', 'stowage', 'ratio', 'nodatacow', 'ratio', 'target']];
    for (const w of WORKLOADS) {
      const results: Record<string, { iops: number; mibps: number }> = {};
      for (const t of targets) {
        results[t.name] = await fio(t.dir, w);
        await rm(join(t.dir, 'fio.dat'), { force: true });
      }
      const metric = (r: { iops: number; mibps: number }): number => (w.kind === 'random' ? r.iops : r.mibps);
      const fmt = (r: { iops: number; mibps: number }): string => (w.kind === 'random' ? `${Math.round(r.iops)} IOPS` : `${r.mibps.toFixed(1)} MiB/s`);
      rows.push([
        w.name,
        fmt(results.ext4!),
        fmt(results.stowage!),
        (metric(results.stowage!) / metric(results.ext4!)).toFixed(2),
        fmt(results.nodatacow!),
        (metric(results.nodatacow!) / metric(results.ext4!)).toFixed(2),
        w.kind === 'random' ? '≥ 0.70' : '≥ 0.90',
      ]);
    }
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    for (const r of rows) process.stdout.write(`${r.map((c, i) => c.padEnd(widths[i]!)).join('  ')}\n`);
  } finally {
    for (const m of mounts.reverse()) await exec('umount', [m]).catch(() => undefined);
    for (const d of devices) await exec('losetup', ['--detach', d]).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

await main();

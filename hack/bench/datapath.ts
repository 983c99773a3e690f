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
 *
 * Each set runs twice, once per loop-device mode, all three devices alike each time:
 *   buffered    losetup's default: the loop device's I/O goes through the host's page cache, so the
 *               "disk" runs at memory speed and what is measured is each filesystem's CPU cost
 *   direct-io   losetup --direct-io=on: the loop device reads and writes the host disk itself, as a
 *               filesystem on a real disk does (no second cache below it)
 * BENCH_LOOP_MODES=buffered or =direct-io runs one. Writes run long enough (35 s) to include a
 * btrfs transaction commit (every 30 s), where qgroup accounting is paid.
 * Needs root, fio, btrfs-progs. Leaves nothing behind.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import { loadavg, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { BtrfsEngine } from '../../src/node/engine/btrfs-engine.js';

const exec = promisify(execFile);
const DISK_BYTES = 4 * 1024 ** 3;
const FILE_SIZE = process.env.BENCH_FILE_SIZE ?? '1g';
const READ_RUNTIME_S = Number(process.env.BENCH_RUNTIME_S ?? 15);
const WRITE_RUNTIME_S = Number(process.env.BENCH_WRITE_RUNTIME_S ?? process.env.BENCH_RUNTIME_S ?? 35);
const LOOP_MODES = (process.env.BENCH_LOOP_MODES ?? 'buffered,direct-io').split(',').map((m) => m.trim()).filter(Boolean);

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
    '--ioengine=libaio', '--direct=1', '--time_based', `--runtime=${w.rw.includes('read') ? READ_RUNTIME_S : WRITE_RUNTIME_S}`, '--ramp_time=2', '--group_reporting',
    '--output-format=json', '--filename=fio.dat',
  ], { maxBuffer: 64 * 1024 * 1024 });
  const job = JSON.parse(stdout).jobs[0];
  const side = w.rw.includes('read') ? job.read : job.write;
  return { iops: side.iops, mibps: side.bw_bytes / 1024 ** 2 };
}

async function loop(dir: string, name: string, directIo: boolean): Promise<string> {
  const file = join(dir, `${name}.img`);
  const handle = await open(file, 'w');
  await handle.truncate(DISK_BYTES);
  await handle.close();
  return (await exec('losetup', ['--find', '--show', ...(directIo ? ['--direct-io=on'] : []), file])).stdout.trim();
}

const load = (): string => loadavg().map((l) => l.toFixed(2)).join(' ');

async function runSet(mode: string): Promise<void> {
  const directIo = mode === 'direct-io';
  const dir = await mkdtemp(join(tmpdir(), 'stowage-bench-datapath-'));
  const devices: string[] = [];
  const mounts: string[] = [];
  try {
    const ext4Dev = await loop(dir, 'ext4', directIo);
    devices.push(ext4Dev);
    const btrfsDev = await loop(dir, 'btrfs', directIo);
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
    mounts.push(engine.mountPointOf('bench'));
    if (!outcome.get('bench-disk')?.prepared) throw new Error(`the engine did not prepare the disk: ${JSON.stringify(outcome.get('bench-disk'))}`);
    const cow = await engine.ensureVolume('bench', 'vol-cow', 'Filesystem', 3n * 1024n ** 3n);
    const nocow = await engine.ensureVolume('bench', 'vol-nocow', 'Filesystem', 3n * 1024n ** 3n, true);

    const targets = [
      { name: 'ext4', dir: ext4Dir },
      { name: 'stowage', dir: cow.path },
      { name: 'nodatacow', dir: nocow.path },
    ];
    process.stdout.write(`\nloop devices: ${mode} (${DISK_BYTES / 1024 ** 3} GiB sparse files on the same host disk); Stowage pool quotas: ${engine.state('bench')?.quotas}; load average before: ${load()}\n`);
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
    process.stdout.write(`load average after: ${load()}\n`);
  } finally {
    for (const m of mounts.reverse()) await exec('umount', [m]).catch(() => undefined);
    for (const d of devices) await exec('losetup', ['--detach', d]).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  process.stdout.write(`fio ${READ_RUNTIME_S} s per read and ${WRITE_RUNTIME_S} s per write workload (after 2 s ramp), ${FILE_SIZE} file, O_DIRECT, libaio; kernel ${release()}\n`);
  for (const mode of LOOP_MODES) {
    if (mode !== 'buffered' && mode !== 'direct-io') throw new Error(`BENCH_LOOP_MODES: unknown mode ${mode} (buffered, direct-io)`);
    await runSet(mode);
  }
}

await main();

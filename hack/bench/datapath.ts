/**
 * `npm run bench:datapath`: fio on Stowage Dynamic volumes versus ext4 directly on an identical
 * loop device, in the same run. Prints IOPS / bandwidth per workload and the ratios
 * (Stowage ÷ ext4; targets: sequential ≥ 0.9, random ≥ 0.7).
 *
 * Targets, each on sparse loop devices of the same size on the same host disk:
 *   ext4        mkfs.ext4 on one device, fio on its root
 *   stowage     a Filesystem volume (btrfs subvolume with its quota limit) of a replicated.size 1
 *               pool on a second device, created by the engine exactly as the node daemon does
 *   nodatacow   the same pool, a volume with StorageClass parameter nodatacow: "true" (PoolVolume
 *               spec.noDataCow: the subvolume is set +C, so no copy-on-write and no data checksums)
 *   raid1       only with BENCH_TARGETS=stowage,nodatacow,raid1 (a third more time): a copy-on-write
 *               Filesystem volume of a replicated.size 2 pool over two more devices (btrfs raid1)
 *
 * Fairness: every workload runs BENCH_ROUNDS times (default 3) and each round starts with another
 * target (round r runs the targets rotated by r), so no target always runs first or right after
 * another's write; every fio run lays out a fresh file and removes it afterwards. The ratio printed
 * is the median over the rounds of (target ÷ ext4 of the same round), with the rounds' min–max.
 * BENCH_ROTATE=0 keeps the fixed order ext4, stowage, nodatacow, raid1 (to see the order's effect).
 *
 * Each run also reports what the target's loop device(s) saw (from /sys/block/<dev>/stat): average
 * request size and average requests in flight, so a ratio can be explained by what the filesystem
 * sent to the device (BENCH_VERBOSE=1 prints them per run, otherwise per workload as medians).
 *
 * Loop-device modes, all devices alike in each set:
 *   buffered    losetup's default: the loop device's I/O goes through the host's page cache, so the
 *               "disk" runs at memory speed and what is measured is each filesystem's CPU cost
 *   direct-io   losetup --direct-io=on: the loop device reads and writes the host disk itself, as a
 *               filesystem on a real disk does (no second cache below it)
 * BENCH_LOOP_MODES=buffered or =direct-io runs one. Writes run long enough (35 s) to include a
 * btrfs transaction commit (every 30 s), where quota accounting is paid.
 *
 * The machine may be shared: BENCH_LOCK=/path takes that flock(1) lock around each workload's round
 * (one to two minutes) instead of the whole run, so others can run between them. Without it, wrap
 * the whole run yourself (`flock /tmp/stowage-bench.lock npm run bench:datapath`).
 * Needs root, fio, btrfs-progs. Leaves nothing behind.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { loadavg, release, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import type { ClaimedDisk } from '../../src/node/agent/dynamic-pools.js';
import { BtrfsEngine } from '../../src/node/engine/btrfs-engine.js';

const exec = promisify(execFile);
const DISK_BYTES = 4 * 1024 ** 3;
const FILE_SIZE = process.env.BENCH_FILE_SIZE ?? '1g';
const READ_RUNTIME_S = Number(process.env.BENCH_RUNTIME_S ?? 15);
const WRITE_RUNTIME_S = Number(process.env.BENCH_WRITE_RUNTIME_S ?? process.env.BENCH_RUNTIME_S ?? 35);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const ROTATE = process.env.BENCH_ROTATE !== '0';
const VERBOSE = process.env.BENCH_VERBOSE === '1';
const LOCK = process.env.BENCH_LOCK;
const list = (v: string | undefined, d: string): string[] =>
  (v ?? d)
    .split(',')
    .map((m) => m.trim())
    .filter(Boolean);
const LOOP_MODES = list(process.env.BENCH_LOOP_MODES, 'buffered,direct-io');
const TARGETS = ['ext4', ...list(process.env.BENCH_TARGETS, 'stowage,nodatacow').filter((t) => t !== 'ext4')];

interface Workload {
  id: string;
  name: string;
  rw: string;
  bs: string;
  iodepth: number;
  kind: 'random' | 'sequential';
}
const ALL_WORKLOADS: Workload[] = [
  { id: 'randread', name: '4k random read', rw: 'randread', bs: '4k', iodepth: 32, kind: 'random' },
  { id: 'randwrite', name: '4k random write', rw: 'randwrite', bs: '4k', iodepth: 32, kind: 'random' },
  { id: 'read', name: '1MiB sequential read', rw: 'read', bs: '1m', iodepth: 8, kind: 'sequential' },
  { id: 'write', name: '1MiB sequential write', rw: 'write', bs: '1m', iodepth: 8, kind: 'sequential' },
];
const WORKLOAD_IDS = list(process.env.BENCH_WORKLOADS, ALL_WORKLOADS.map((w) => w.id).join(','));
const WORKLOADS = ALL_WORKLOADS.filter((w) => WORKLOAD_IDS.includes(w.id));

interface Target {
  name: string;
  dir: string;
  devices: string[];
}
/** What one fio run measured, and what the target's loop devices saw meanwhile. */
interface Sample {
  value: number;
  requestKiB: number;
  inFlight: number;
  extents: number;
}

/** /sys/block/<dev>/stat: reads, read sectors, writes, write sectors, time in queue (ms). */
async function devStat(device: string): Promise<number[]> {
  const f = (await readFile(`/sys/block/${basename(device)}/stat`, 'utf8')).trim().split(/\s+/).map(Number);
  return [f[0], f[2], f[4], f[6], f[10]];
}

async function fio(t: Target, w: Workload): Promise<Sample> {
  const read = w.rw.includes('read');
  const before = await Promise.all(t.devices.map(devStat));
  const started = Date.now();
  const { stdout } = await exec(
    'fio',
    [
      '--name=bench',
      `--directory=${t.dir}`,
      `--rw=${w.rw}`,
      `--bs=${w.bs}`,
      `--size=${FILE_SIZE}`,
      `--iodepth=${w.iodepth}`,
      '--ioengine=libaio',
      '--direct=1',
      '--time_based',
      `--runtime=${read ? READ_RUNTIME_S : WRITE_RUNTIME_S}`,
      '--ramp_time=2',
      '--group_reporting',
      '--output-format=json',
      '--filename=fio.dat',
    ],
    { maxBuffer: 64 * 1024 * 1024 },
  );
  const elapsedMs = Date.now() - started;
  const after = await Promise.all(t.devices.map(devStat));
  const d = after.map((a, i) => a.map((v, j) => v - before[i][j]));
  const sum = (j: number): number => d.reduce((s, x) => s + x[j], 0);
  const [ios, sectors] = read ? [sum(0), sum(1)] : [sum(2), sum(3)];
  const extents = Number(/(\d+) extents? found/.exec((await exec('filefrag', [join(t.dir, 'fio.dat')])).stdout)?.[1] ?? NaN);
  const job = JSON.parse(stdout).jobs[0];
  const side = read ? job.read : job.write;
  return {
    value: w.kind === 'random' ? side.iops : side.bw_bytes / 1024 ** 2,
    requestKiB: ios > 0 ? sectors / 2 / ios : 0,
    // Layout included: it is part of what the device saw; per device for raid1 (both legs).
    inFlight: sum(4) / elapsedMs / t.devices.length,
    extents,
  };
}

async function loop(dir: string, name: string, directIo: boolean): Promise<string> {
  const file = join(dir, `${name}.img`);
  const handle = await open(file, 'w');
  await handle.truncate(DISK_BYTES);
  await handle.close();
  return (await exec('losetup', ['--find', '--show', ...(directIo ? ['--direct-io=on'] : []), file])).stdout.trim();
}

/** Runs `fn` holding the flock(1) lock BENCH_LOCK names (a child `flock` holds it until we close its stdin). */
async function locked<T>(fn: () => Promise<T>): Promise<T> {
  if (!LOCK) return fn();
  const child = spawn('flock', [LOCK, 'sh', '-c', 'echo locked; exec cat >/dev/null'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('error', reject);
    // exited never rejects (it resolves on the child's exit); after resolve(), reject is a no-op.
    void exited.then(() => reject(new Error(`flock ${LOCK} exited before taking the lock`)));
  });
  try {
    return await fn();
  } finally {
    child.stdin.end();
    await exited;
  }
}

const load = (): string =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function runSet(mode: string): Promise<void> {
  const directIo = mode === 'direct-io';
  const dir = await mkdtemp(join(tmpdir(), 'stowage-bench-datapath-'));
  const devices: string[] = [];
  const mounts: string[] = [];
  const cleanup = async (): Promise<void> => {
    for (const m of mounts.reverse()) await exec('umount', [m]).catch(() => undefined);
    for (const d of devices) await exec('losetup', ['--detach', d]).catch(() => undefined);
    mounts.length = 0;
    devices.length = 0;
    await rm(dir, { recursive: true, force: true });
  };
  // Interrupted (Ctrl-C, timeout): still leave no mount, loop device or file behind.
  const onSignal = (): void => void cleanup().finally(() => process.exit(130));
  process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
  try {
    const targets = await locked(async () => {
      const all: Target[] = [];
      const ext4Dev = await loop(dir, 'ext4', directIo);
      devices.push(ext4Dev);
      await exec('mkfs.ext4', ['-q', '-F', ext4Dev]);
      const ext4Dir = join(dir, 'ext4');
      await mkdir(ext4Dir);
      await exec('mount', ['-o', 'noatime', ext4Dev, ext4Dir]);
      mounts.push(ext4Dir);
      all.push({ name: 'ext4', dir: ext4Dir, devices: [ext4Dev] });

      const engine = new BtrfsEngine({ root: join(dir, 'root'), copiesOf: (pool) => (pool === 'raid1' ? 2 : 1) });
      // Every sync gets every claimed disk, as the node agent passes them: a pool left out would be retired.
      const claimed: ClaimedDisk[] = [];
      const pool = async (name: string, count: number): Promise<string[]> => {
        const devs: string[] = [];
        for (let i = 0; i < count; i++) devs.push(await loop(dir, `${name}-${i}`, directIo));
        devices.push(...devs);
        claimed.push(
          ...devs.map((dev, i) => ({
            name: `${name}-disk-${i}`,
            claim: { pool: name, mode: 'Dynamic' as const },
            devicePath: dev,
            stablePath: dev,
            sizeBytes: DISK_BYTES,
            blank: true,
            present: true,
          })),
        );
        const outcome = await engine.sync('bench', claimed);
        mounts.push(engine.mountPointOf(name));
        for (const [disk, o] of outcome) if (!o.prepared) throw new Error(`the engine did not prepare ${disk}: ${JSON.stringify(o)}`);
        return devs;
      };
      if (TARGETS.includes('stowage') || TARGETS.includes('nodatacow')) {
        const devs = await pool('bench', 1);
        if (TARGETS.includes('stowage'))
          all.push({
            name: 'stowage',
            dir: (await engine.ensureVolume('bench', 'vol-cow', 'Filesystem', 3n * 1024n ** 3n)).path,
            devices: devs,
          });
        if (TARGETS.includes('nodatacow'))
          all.push({
            name: 'nodatacow',
            dir: (await engine.ensureVolume('bench', 'vol-nocow', 'Filesystem', 3n * 1024n ** 3n, true)).path,
            devices: devs,
          });
      }
      if (TARGETS.includes('raid1')) {
        const devs = await pool('raid1', 2);
        all.push({
          name: 'raid1',
          dir: (await engine.ensureVolume('raid1', 'vol-cow', 'Filesystem', 3n * 1024n ** 3n)).path,
          devices: devs,
        });
      }
      const mountOptions = (
        await exec('findmnt', [
          '-no',
          'OPTIONS',
          engine.mountPointOf(TARGETS.includes('stowage') || TARGETS.includes('nodatacow') ? 'bench' : 'raid1'),
        ])
      ).stdout.trim();
      process.stdout.write(
        `\nloop devices: ${mode} (${DISK_BYTES / 1024 ** 3} GiB sparse files on the same host disk); Stowage pool quotas: ${engine.state('bench')?.quotas ?? engine.state('raid1')?.quotas}; btrfs mount options: ${mountOptions}\n`,
      );
      return all;
    });

    const others = targets.filter((t) => t.name !== 'ext4');
    const header = ['workload', 'ext4', ...others.flatMap((t) => [t.name, 'ratio']), 'target'];
    const rows: string[][] = [header];
    const detail: string[][] = [['workload', ...targets.map((t) => `${t.name} KiB/req, in flight`)]];
    const loads: string[] = [];
    for (const w of WORKLOADS) {
      const samples = new Map<string, Sample[]>(targets.map((t) => [t.name, []]));
      for (let round = 0; round < ROUNDS; round++) {
        const shift = ROTATE ? round % targets.length : 0;
        const order = [...targets.slice(shift), ...targets.slice(0, shift)];
        await locked(async () => {
          loads.push(load());
          for (const t of order) {
            const s = await fio(t, w);
            samples.get(t.name)!.push(s);
            await rm(join(t.dir, 'fio.dat'), { force: true });
            if (VERBOSE)
              process.stdout.write(
                `  ${w.id} round ${round + 1} ${t.name}: ${s.value.toFixed(1)} ${w.kind === 'random' ? 'IOPS' : 'MiB/s'}, ${s.requestKiB.toFixed(0)} KiB/request, ${s.inFlight.toFixed(1)} in flight, file in ${s.extents} extents (load ${load()})\n`,
              );
          }
        });
      }
      const ext4 = samples.get('ext4')!;
      const fmt = (v: number): string => (w.kind === 'random' ? `${Math.round(v)} IOPS` : `${v.toFixed(1)} MiB/s`);
      const ratioCell = (name: string): string => {
        const ratios = samples.get(name)!.map((s, i) => s.value / ext4[i].value);
        return ROUNDS > 1
          ? `${median(ratios).toFixed(2)} (${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)})`
          : ratios[0].toFixed(2);
      };
      rows.push([
        w.name,
        fmt(median(ext4.map((s) => s.value))),
        ...others.flatMap((t) => [fmt(median(samples.get(t.name)!.map((s) => s.value))), ratioCell(t.name)]),
        w.kind === 'random' ? '≥ 0.70' : '≥ 0.90',
      ]);
      detail.push([
        w.name,
        ...targets.map((t) => {
          const ss = samples.get(t.name)!;
          return `${median(ss.map((s) => s.requestKiB)).toFixed(0)}, ${median(ss.map((s) => s.inFlight)).toFixed(1)}`;
        }),
      ]);
    }
    const print = (table: string[][]): void => {
      const widths = table[0].map((_, i) => Math.max(...table.map((r) => r[i].length)));
      for (const r of table) process.stdout.write(`${r.map((c, i) => c.padEnd(widths[i])).join('  ')}\n`);
    };
    process.stdout.write(
      `medians of ${ROUNDS} round(s)${ROTATE ? ', each round starting with another target' : ', fixed order'}; ratio: median of the rounds' target ÷ ext4 (min–max)\n`,
    );
    print(rows);
    process.stdout.write('what the loop devices saw (medians): average request size, average requests in flight per device\n');
    print(detail);
    process.stdout.write(`load average at the start of each round: ${loads.join(' | ')}; after: ${load()}\n`);
  } finally {
    process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
    await cleanup();
  }
}

async function main(): Promise<void> {
  process.stdout.write(
    `fio ${READ_RUNTIME_S} s per read and ${WRITE_RUNTIME_S} s per write workload (after 2 s ramp), ${FILE_SIZE} file, O_DIRECT, libaio; kernel ${release()}\n`,
  );
  for (const mode of LOOP_MODES) {
    if (mode !== 'buffered' && mode !== 'direct-io') throw new Error(`BENCH_LOOP_MODES: unknown mode ${mode} (buffered, direct-io)`);
    await runSet(mode);
  }
}

await main();

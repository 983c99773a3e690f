/**
 * Thin shell over btrfs-progs and the kernel's btrfs: every function runs one tool and parses its
 * answer, nothing more. Decisions live in pool-filesystem.ts and volumes.ts.
 */
import { readFile, stat } from 'node:fs/promises';
import { run, runStatus } from '../../host/command.js';

/** Data/metadata profiles per `replicated.size` (DESIGN §2): a disk can fail without data loss at 2 and 3. */
export function profileFor(copies: number): { data: string; metadata: string } {
  if (copies >= 3) return { data: 'raid1c3', metadata: 'raid1c3' };
  if (copies === 2) return { data: 'raid1', metadata: 'raid1' };
  return { data: 'single', metadata: 'dup' };
}

export interface BtrfsDevice {
  readonly devid: number;
  readonly sizeBytes: bigint;
  readonly usedBytes: bigint;
  /** Device path, or undefined when btrfs reports the device missing. */
  readonly path?: string;
}

export interface BtrfsShow {
  readonly label: string;
  readonly uuid: string;
  readonly devices: readonly BtrfsDevice[];
  /** btrfs says "Some devices missing". */
  readonly missing: boolean;
}

/** Parses `btrfs filesystem show --raw`. */
export function parseShow(text: string): BtrfsShow | undefined {
  const head = /Label:\s+(?:'([^']*)'|none)\s+uuid:\s+([0-9a-f-]+)/.exec(text);
  if (!head) return undefined;
  const devices: BtrfsDevice[] = [];
  for (const m of text.matchAll(/devid\s+(\d+)\s+size\s+(\d+)\s+used\s+(\d+)\s+path\s+(\S+)/g)) {
    const path = m[4];
    devices.push({
      devid: Number(m[1]),
      sizeBytes: BigInt(m[2]),
      usedBytes: BigInt(m[3]),
      ...(path.startsWith('/dev/') ? { path } : {}),
    });
  }
  const missing = /devices missing/i.test(text) || devices.some((d) => d.path === undefined);
  const label = head[1] as string | undefined; // `none` matches no group
  return { label: label ?? '', uuid: head[2], devices, missing };
}

export async function show(mountPoint: string): Promise<BtrfsShow> {
  const parsed = parseShow(await run('btrfs', ['filesystem', 'show', '--raw', mountPoint]));
  if (!parsed) throw new Error(`btrfs filesystem show ${mountPoint} gave no filesystem; is a btrfs mounted there?`);
  return parsed;
}

/** Makes one filesystem over `devices`. No `-f`: mkfs.btrfs itself refuses a device with a signature. */
export async function mkfs(devices: readonly string[], label: string, copies: number, force = false): Promise<void> {
  const { data, metadata } = profileFor(copies);
  await run('mkfs.btrfs', ['-q', ...(force ? ['-f'] : []), '-L', label, '-d', data, '-m', metadata, ...devices]);
}

/** Tells the kernel about the btrfs members among `devices`, so a multi-device mount finds them all. */
export async function scan(devices: readonly string[]): Promise<void> {
  for (const d of devices) await runStatus('btrfs', ['device', 'scan', d]);
}

export async function mount(device: string, target: string, degraded: boolean): Promise<void> {
  await run('mount', ['-t', 'btrfs', '-o', degraded ? 'degraded,noatime' : 'noatime', device, target]);
}

export async function deviceAdd(devices: readonly string[], mountPoint: string, force = false): Promise<void> {
  await run('btrfs', ['device', 'add', ...(force ? ['-f'] : []), ...devices, mountPoint]);
}

/** Removes a device (data migrates to the others first); `target` is a devid, a path or `missing`. */
export async function deviceRemove(target: string, mountPoint: string): Promise<void> {
  await run('btrfs', ['device', 'remove', target, mountPoint]);
}

/** Rebuilds the copies of device `devid` (usually a missing one) onto `newDevice`, waiting until done. */
export async function replace(devid: number, newDevice: string, mountPoint: string): Promise<void> {
  // -r: read from the old device only where no other good copy exists (it may be failing or dead).
  await run('btrfs', ['replace', 'start', '-B', '-f', '-r', String(devid), newDevice, mountPoint]);
}

/**
 * Converts every chunk not yet in the pool's profile (`soft`), e.g. the `single` chunks written while
 * degraded, and spreads data over newly added devices.
 */
export async function balance(mountPoint: string, copies: number): Promise<void> {
  const { data, metadata } = profileFor(copies);
  await run('btrfs', ['balance', 'start', `-dconvert=${data},soft`, `-mconvert=${metadata},soft`, mountPoint]);
}

/**
 * Gives nearly empty chunks back to the unallocated pool (relocating what little they hold): a
 * filesystem whose devices are fully allocated — as after heavy rewriting — has no room for the
 * chunks `btrfs replace` needs and fails it with ENOSPC although it holds little data.
 */
export async function compactChunks(mountPoint: string): Promise<void> {
  await run('btrfs', ['balance', 'start', `-dusage=${COMPACT_USAGE_PERCENT}`, `-musage=${COMPACT_USAGE_PERCENT}`, mountPoint]);
}
const COMPACT_USAGE_PERCENT = 30;

export async function resize(devid: number, mountPoint: string): Promise<void> {
  await run('btrfs', ['filesystem', 'resize', `${devid}:max`, mountPoint]);
}

/** Error counters per device from `btrfs device stats`. */
export interface DeviceStats {
  readonly device: string;
  readonly writeErrors: number;
  readonly readErrors: number;
  readonly flushErrors: number;
  readonly corruptionErrors: number;
  readonly generationErrors: number;
}

export function parseDeviceStats(text: string): DeviceStats[] {
  const byDevice = new Map<string, Partial<Record<string, number>>>();
  for (const m of text.matchAll(/^\[([^\]]+)\]\.(\w+)\s+(\d+)$/gm)) {
    const entry = byDevice.get(m[1]) ?? {};
    entry[m[2]] = Number(m[3]);
    byDevice.set(m[1], entry);
  }
  return [...byDevice].map(([device, c]) => ({
    device,
    writeErrors: c.write_io_errs ?? 0,
    readErrors: c.read_io_errs ?? 0,
    flushErrors: c.flush_io_errs ?? 0,
    corruptionErrors: c.corruption_errs ?? 0,
    generationErrors: c.generation_errs ?? 0,
  }));
}

export async function deviceStats(mountPoint: string): Promise<DeviceStats[]> {
  // Exit code 64 means "some counter is non-zero" with -c; without -c it is always 0 on success.
  const res = await runStatus('btrfs', ['device', 'stats', mountPoint]);
  if (res.code !== 0) throw new Error(`btrfs device stats ${mountPoint} failed: ${res.stderr.trim()}`);
  return parseDeviceStats(res.stdout);
}

/** The last scrub of a filesystem as `btrfs scrub status -R` reports it (progs keeps it per filesystem). */
export interface ScrubStatus {
  /** `never` when no scrub has run; else progs' word: `running`, `finished`, `aborted`, `interrupted`. */
  readonly state: string;
  /** When the last scrub started, as progs prints it (local time, C locale). */
  readonly started?: string;
  readonly dataBytesScrubbed: number;
  readonly readErrors: number;
  readonly csumErrors: number;
  readonly verifyErrors: number;
  readonly superErrors: number;
  /** Bad copies rewritten from a good one (raid1/dup): the data is intact. */
  readonly correctedErrors: number;
  /** Blocks no good copy was found for: data (or metadata) is lost. */
  readonly uncorrectableErrors: number;
}

export function parseScrubStatus(text: string): ScrubStatus {
  const n = (key: string): number => Number(new RegExp(`^\\s*${key}:\\s*(\\d+)`, 'm').exec(text)?.[1] ?? 0);
  const never = /no stats available/.test(text);
  const state = never ? 'never' : (/^Status:\s+(\S+)/m.exec(text)?.[1] ?? 'unknown');
  const started = /^Scrub started:\s+(.+)$/m.exec(text)?.[1]?.trim();
  return {
    state,
    ...(started ? { started } : {}),
    dataBytesScrubbed: n('data_bytes_scrubbed'),
    readErrors: n('read_errors'),
    csumErrors: n('csum_errors'),
    verifyErrors: n('verify_errors'),
    superErrors: n('super_errors'),
    correctedErrors: n('corrected_errors'),
    uncorrectableErrors: n('uncorrectable_errors'),
  };
}

/** Reads the last scrub's result; runs no scrub (starting one is the administrator's schedule). */
export async function scrubStatus(mountPoint: string): Promise<ScrubStatus> {
  return parseScrubStatus(await run('btrfs', ['scrub', 'status', '-R', mountPoint]));
}

/** `btrfs filesystem usage -b`: the figures Stowage reports. */
export interface Usage {
  readonly deviceSize: bigint;
  readonly used: bigint;
  readonly freeEstimated: bigint;
  readonly dataRatio: number;
}

export function parseUsage(text: string): Usage {
  const num = (label: string): string => {
    const m = new RegExp(`${label}:\\s+([\\d.]+)`).exec(text);
    if (!m) throw new Error(`btrfs filesystem usage: no "${label}" in the output`);
    return m[1];
  };
  return {
    deviceSize: BigInt(num('Device size')),
    used: BigInt(num('Used')),
    freeEstimated: BigInt(num('Free \\(estimated\\)')),
    dataRatio: Number(num('Data ratio')),
  };
}

export async function usage(mountPoint: string): Promise<Usage> {
  return parseUsage(await run('btrfs', ['filesystem', 'usage', '-b', mountPoint]));
}

/** Full qgroup accounting: every extent's sharing is resolved at each transaction commit. */
export async function quotaEnable(mountPoint: string): Promise<void> {
  await run('btrfs', ['quota', 'enable', mountPoint]);
}

/** How a mounted filesystem keeps quotas, from sysfs: `squota`, `qgroup` (full accounting) or `disabled`. */
export async function quotaMode(uuid: string): Promise<'squota' | 'qgroup' | 'disabled'> {
  const dir = `/sys/fs/btrfs/${uuid}/qgroups`;
  // No qgroups directory: quotas were never enabled on this filesystem.
  if (
    !(await stat(dir).then(
      () => true,
      () => false,
    ))
  )
    return 'disabled';
  // Kernels before 6.7 have no mode file: quotas there are always full qgroups.
  const mode = await readFile(`${dir}/mode`, 'utf8').then(
    (m) => m.trim(),
    () => 'qgroup',
  );
  return mode === 'squota' ? 'squota' : 'qgroup';
}

/** Whether the running kernel can keep simple quotas (Linux 6.7 and later list the feature). */
export async function kernelHasSimpleQuotas(): Promise<boolean> {
  // Not listed: a kernel before 6.7, which keeps full qgroups only.
  return stat('/sys/fs/btrfs/features/simple_quota').then(
    () => true,
    () => false,
  );
}

/**
 * BTRFS_IOC_QUOTA_CTL (_IOWR(0x94, 40, 16 bytes)) with BTRFS_QUOTA_CTL_ENABLE_SIMPLE_QUOTA (4): what
 * `btrfs quota enable --simple` sends. perl is in perl-base, which every Debian system has.
 */
const SIMPLE_QUOTA_IOCTL =
  'open(my $f, "<", $ARGV[0]) or die "open $ARGV[0]: $!\n"; my $a = pack("QQ", 4, 0); ioctl($f, 0xC0109428, $a) or die "BTRFS_IOC_QUOTA_CTL(ENABLE_SIMPLE_QUOTA) on $ARGV[0]: $!\n";';

/**
 * Simple quotas (Linux ≥ 6.7): each extent is charged to the subvolume that wrote it, so nothing is
 * resolved at commit time. btrfs-progs before 6.7 (Debian 12 ships 6.2) has no `--simple`; the
 * kernel takes the same request through the ioctl.
 */
export async function quotaEnableSimple(mountPoint: string): Promise<void> {
  const res = await runStatus('btrfs', ['quota', 'enable', '--simple', mountPoint]);
  if (res.code === 0) return;
  if (!/usage:|unrecognized option|invalid option/i.test(res.stderr))
    throw new Error(`btrfs quota enable --simple ${mountPoint} failed: ${res.stderr.trim()}`);
  await run('perl', ['-e', SIMPLE_QUOTA_IOCTL, mountPoint]);
}

export async function subvolumeCreate(path: string): Promise<void> {
  await run('btrfs', ['subvolume', 'create', path]);
}

/** Deletes a subvolume and, with it, its qgroup (`-c` commits so the space is really freed). */
export async function subvolumeDelete(path: string): Promise<void> {
  await run('btrfs', ['subvolume', 'delete', '-c', path]);
}

/** Caps what the subvolume at `path` may reference. */
export async function qgroupLimit(path: string, bytes: bigint): Promise<void> {
  await run('btrfs', ['qgroup', 'limit', bytes.toString(), path]);
}

export interface Qgroup {
  readonly id: string;
  readonly referenced: bigint;
  readonly exclusive: bigint;
  readonly maxReferenced?: bigint;
  /** The subvolume's path relative to the filesystem root, as btrfs prints it. */
  readonly path?: string;
}

export function parseQgroups(text: string): Qgroup[] {
  const out: Qgroup[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\d+\/\d+)\s+(\d+)\s+(\d+)\s+(\d+|none)\s+(\d+|none)(?:\s+(.*))?$/.exec(line.trim());
    if (!m) continue;
    out.push({
      id: m[1],
      referenced: BigInt(m[2]),
      exclusive: BigInt(m[3]),
      ...(m[4] !== 'none' ? { maxReferenced: BigInt(m[4]) } : {}),
      ...(m[6] ? { path: m[6].trim() } : {}),
    });
  }
  return out;
}

export async function qgroups(mountPoint: string): Promise<Qgroup[]> {
  return parseQgroups(await run('btrfs', ['qgroup', 'show', '-re', '--raw', mountPoint]));
}

/** The subvolume id of `path` (its qgroup is 0/<id>). */
export async function subvolumeId(path: string): Promise<number> {
  const text = await run('btrfs', ['inspect-internal', 'rootid', path]);
  return Number(text.trim());
}

export interface SubvolumeInfo {
  /** Its path relative to the filesystem's top level, as btrfs prints it first (`volumes/pvol-…`). */
  readonly path: string;
  readonly id: number;
  readonly uuid: string;
}

/** Parses `btrfs subvolume show`: the first line is the path, then `Key: value` lines. */
export function parseSubvolumeShow(text: string): SubvolumeInfo | undefined {
  const lines = text.split('\n');
  const field = (key: string): string | undefined =>
    lines
      .map((l) => /^\s*([^:]+):\s*(.*)$/.exec(l))
      .find((m) => m?.[1]?.trim() === key)?.[2]
      ?.trim();
  const path = lines[0]?.trim();
  const id = Number(field('Subvolume ID'));
  const uuid = field('UUID');
  if (!path || !uuid || !Number.isInteger(id)) return undefined;
  return { path, id, uuid };
}

/** What btrfs says the subvolume at `path` is (its path from the top level, ID and UUID). */
export async function subvolumeShow(path: string): Promise<SubvolumeInfo> {
  const text = await run('btrfs', ['subvolume', 'show', path]);
  const info = parseSubvolumeShow(text);
  if (!info) throw new Error(`btrfs subvolume show ${path} printed nothing Stowage can read: ${text.slice(0, 200)}`);
  return info;
}

/** blkid's view of a device: TYPE, LABEL, UUID, or nothing for a blank device. */
export async function probe(device: string): Promise<{ type?: string; label?: string; uuid?: string }> {
  const res = await runStatus('blkid', ['-p', '-o', 'export', device]);
  if (res.code !== 0) return {};
  const fields = Object.fromEntries(
    res.stdout
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  return {
    ...(fields.TYPE ? { type: fields.TYPE } : {}),
    ...(fields.LABEL ? { label: fields.LABEL } : {}),
    ...(fields.UUID ? { uuid: fields.UUID } : {}),
  };
}

/**
 * The discovery shell: asks lsblk, blkid, wipefs, sysfs and /proc what block devices and
 * discovery-directory mounts this node has right now. Only devices that pass `isCandidate` (the
 * default exclusions and the allow-list) are probed with blkid/wipefs; nothing is ever written.
 */
import { readFile, readdir, readlink, realpath, statfs } from 'node:fs/promises';
import * as path from 'node:path';
import { exec, execOk } from '../../host/exec.js';
import {
  LSBLK_COLUMNS,
  parseBlkidExport,
  parseLsblk,
  parseMountinfo,
  parseWipefs,
  type MountEntry,
  type RawDisk,
  type Signatures,
} from './host-facts.js';
import { isCandidate, type DiskFacts } from './inventory.js';

/** Mount points whose device is a system disk. */
const SYSTEM_MOUNTS = new Set(['/', '/boot', '/boot/efi', '/usr']);
const LINK_DIRS = ['/dev/disk/by-id', '/dev/disk/by-path'];

export interface MountFacts {
  /** The mounted directory, e.g. /mnt/disks/vol1. */
  readonly target: string;
  readonly source: string;
  readonly fsType: string;
  readonly sizeBytes: bigint;
  readonly usedBytes: bigint;
  readonly availableBytes: bigint;
}

export interface Discovery {
  readonly disks: DiskFacts[];
  readonly mounts: MountFacts[];
  readonly mountTable: MountEntry[];
}

export interface DiscoveryOptions {
  readonly allowDevices: readonly string[];
  readonly discoveryDirs: readonly string[];
  /** Reuses a device's signatures while nothing was written to it (see {@link ProbeCache}). */
  readonly cache?: ProbeCache;
}

/**
 * Probing signatures costs milliseconds per device (blkid reads many superblock locations), which
 * adds up on a node with dozens of disks. Content can only change through writes or discards, which
 * the kernel counts in /sys/block/<dev>/stat (partition I/O included); together with the device's
 * diskseq (new on every re-attach or media change) and size they form a key, and signatures are
 * reused while the key is unchanged and the entry younger than `maxAgeMs`.
 */
export class ProbeCache {
  private readonly entries = new Map<string, { key: string; sig: Signatures; at: number }>();
  constructor(readonly maxAgeMs = 5 * 60_000) {}

  get(path: string, key: string | undefined): Signatures | undefined {
    const e = this.entries.get(path);
    if (!e || key === undefined || e.key !== key || Date.now() - e.at > this.maxAgeMs) return undefined;
    return e.sig;
  }

  set(path: string, key: string | undefined, sig: Signatures): void {
    if (key === undefined) this.entries.delete(path);
    else this.entries.set(path, { key, sig, at: Date.now() });
  }

  /** Forget a device (after the agent itself changed it). */
  forget(path: string): void {
    this.entries.delete(path);
  }
}

/** The change key of a device: diskseq, size and the write/discard counters of /sys/block/<dev>/stat. */
async function contentKey(raw: RawDisk): Promise<string | undefined> {
  try {
    const [stat, seq] = await Promise.all([
      readFile(`/sys/block/${raw.kname}/stat`, 'utf8'),
      // Kernels before 5.15 have no diskseq: the key is then size and counters alone.
      readFile(`/sys/block/${raw.kname}/diskseq`, 'utf8').catch(() => ''),
    ]);
    const f = stat.trim().split(/\s+/);
    // Fields (Documentation/block/stat.rst): 4-7 writes, 11-14 discards.
    return [seq.trim(), raw.majMin, raw.sizeBytes, f[4], f[6], f[11], f[13]].join('|');
  } catch {
    return undefined;
  }
}

/** One discovery pass. */
export async function discover(opts: DiscoveryOptions): Promise<Discovery> {
  const [lsblkOut, mountinfo, swaps] = await Promise.all([
    execOk('lsblk', ['--json', '--bytes', '--tree', '-o', LSBLK_COLUMNS]),
    readFile('/proc/self/mountinfo', 'utf8'),
    // A kernel built without swap has no /proc/swaps: then no disk is in use as swap.
    readFile('/proc/swaps', 'utf8').catch(() => ''),
  ]);
  const mountTable = parseMountinfo(mountinfo);
  const all = parseLsblk(lsblkOut);
  const backing = new Map<string, string | undefined>();
  await Promise.all(
    all.map(async (d) =>
      backing.set(d.kname, d.type === 'loop' || d.kname.startsWith('loop') ? await loopBackingFile(d.kname) : undefined),
    ),
  );
  const candidates = all.filter((d) => isCandidate(d, backing.get(d.kname), opts.allowDevices));

  const [signatures, links, systemMajMins] = await Promise.all([
    probeCached(candidates, opts.cache),
    diskLinks(),
    systemDevices(mountTable),
  ]);
  const swapDevices = new Set(
    swaps
      .split('\n')
      .slice(1)
      .map((l) => l.split(/\s+/)[0])
      .filter((s): s is string => !!s),
  );

  const disks: DiskFacts[] = [];
  for (const raw of candidates) {
    const devs = [raw, ...raw.partitions];
    const majMins = new Set(devs.map((d) => d.majMin));
    const paths = new Set(devs.map((d) => `/dev/${d.kname}`));
    const mountPoints = [
      ...new Set([
        ...mountTable.filter((m) => majMins.has(m.majMin) || paths.has(m.source)).map((m) => m.target),
        ...[...paths].filter((p) => swapDevices.has(p)).map(() => '[SWAP]'),
      ]),
    ].sort();
    const holders = await holderMajMins(raw);
    const system = [...majMins, ...holders].some((mm) => systemMajMins.has(mm));
    const backingFile = backing.get(raw.kname);
    disks.push({
      raw,
      signatures: signatures.get(raw.path) ?? { types: [] },
      links: links.get(raw.kname) ?? [],
      ...(backingFile ? { backingFile } : {}),
      mountPoints,
      system,
    });
  }
  const mounts = await discoveryMounts(mountTable, opts.discoveryDirs);
  return { disks, mounts, mountTable };
}

async function probeCached(disks: readonly RawDisk[], cache: ProbeCache | undefined): Promise<Map<string, Signatures>> {
  if (!cache) return probeSignatures(disks);
  const keys = new Map(await Promise.all(disks.map(async (d) => [d.path, await contentKey(d)] as const)));
  const result = new Map<string, Signatures>();
  const stale: RawDisk[] = [];
  for (const d of disks) {
    const hit = cache.get(d.path, keys.get(d.path));
    if (hit) result.set(d.path, hit);
    else stale.push(d);
  }
  for (const [p, sig] of await probeSignatures(stale)) {
    result.set(p, sig);
    cache.set(p, keys.get(p), sig);
  }
  return result;
}

/**
 * Signatures of all candidates with ONE blkid process (cache bypassed with `-c /dev/null`). Not
 * `blkid -p` here: in low-level mode blkid stops at the first device without a signature. The
 * thorough probe (`blkid -p` + `wipefs -n`, every signature) runs in {@link probeOne}, right before
 * anything destructive.
 */
export async function probeSignatures(disks: readonly RawDisk[]): Promise<Map<string, Signatures>> {
  const result = new Map<string, Signatures>();
  if (disks.length === 0) return result;
  const blkid = await exec('blkid', ['-c', '/dev/null', '-o', 'export', ...disks.map((d) => d.path)]);
  // Exit 2: no device had a signature.
  if (blkid.code !== 0 && blkid.code !== 2) throw new Error(`blkid failed (exit ${blkid.code}): ${blkid.stderr.trim()}`);
  const details = parseBlkidExport(blkid.stdout);
  for (const d of disks) {
    const sig = details.get(d.path) ?? {};
    result.set(d.path, { ...sig, types: [sig.fsType, sig.ptType].filter((t): t is string => t !== undefined) });
  }
  return result;
}

/**
 * Every signature on one device, the thorough way: `blkid -p` (low-level, no cache) for type, UUID
 * and label, and `wipefs -n` for every signature it finds anywhere (backup GPT headers, RAID and
 * LVM metadata, several filesystems). Used right before formatting, wiping or mounting.
 */
export async function probeOne(devicePath: string): Promise<Signatures> {
  const [blkid, wipefs] = await Promise.all([
    exec('blkid', ['-p', '-o', 'export', devicePath]),
    exec('wipefs', ['-n', '--json', devicePath]),
  ]);
  if (wipefs.code !== 0) throw new Error(`wipefs -n ${devicePath} failed (exit ${wipefs.code}): ${wipefs.stderr.trim()}`);
  // blkid -p exits 8 when a device carries several signatures it cannot choose between.
  const ambivalent = blkid.code === 8 || /ambivalent/i.test(blkid.stderr);
  const details = parseBlkidExport(blkid.stdout).get(devicePath) ?? {};
  const types = parseWipefs(wipefs.stdout).get(path.basename(devicePath)) ?? [];
  return { ...details, types, ...(ambivalent ? { ambivalent: true } : {}) };
}

export async function loopBackingFile(kname: string): Promise<string | undefined> {
  try {
    const file = (await readFile(`/sys/block/${kname}/loop/backing_file`, 'utf8')).trim();
    return file === '' ? undefined : file.replace(/ \(deleted\)$/, '');
  } catch {
    return undefined;
  }
}

/** kname → /dev/disk/by-id and by-path links of whole disks (none on hosts without udev). */
async function diskLinks(): Promise<Map<string, string[]>> {
  const links = new Map<string, string[]>();
  for (const dir of LINK_DIRS) {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      continue;
    }
    await Promise.all(
      names.map(async (name) => {
        const link = path.join(dir, name);
        try {
          const target = path.basename(path.resolve(dir, await readlink(link)));
          links.set(target, [...(links.get(target) ?? []), link].sort());
        } catch {
          // a link that vanished while we read the directory
        }
      }),
    );
  }
  return links;
}

/** maj:min of every device that holds a system mount (/, /boot, …). */
async function systemDevices(mounts: readonly MountEntry[]): Promise<Set<string>> {
  const set = new Set<string>();
  for (const m of mounts) {
    if (!SYSTEM_MOUNTS.has(m.target)) continue;
    set.add(m.majMin);
    // btrfs and overlay report anonymous device numbers; resolve the source device instead.
    if (m.source.startsWith('/dev/')) {
      try {
        const real = await realpath(m.source);
        const dev = (await readFile(`/sys/class/block/${path.basename(real)}/dev`, 'utf8')).trim();
        set.add(dev);
      } catch {
        // not a block device we can resolve
      }
    }
  }
  return set;
}

/** maj:min of every device stacked on the disk or its partitions (device mapper, md), transitively. */
async function holderMajMins(raw: RawDisk): Promise<string[]> {
  const out: string[] = [];
  const seen = new Set<string>();
  const queue = [raw.kname, ...raw.partitions.map((p) => p.kname)];
  while (queue.length > 0) {
    const name = queue.pop()!;
    let holders: string[];
    try {
      holders = await readdir(`/sys/class/block/${name}/holders`);
    } catch {
      continue;
    }
    for (const h of holders) {
      if (seen.has(h)) continue;
      seen.add(h);
      queue.push(h);
      try {
        out.push((await readFile(`/sys/class/block/${h}/dev`, 'utf8')).trim());
      } catch {
        // gone meanwhile
      }
    }
  }
  return out;
}

/** Filesystems mounted directly under a discovery directory (e.g. /mnt/disks/vol1 for /mnt/disks). */
async function discoveryMounts(table: readonly MountEntry[], dirs: readonly string[]): Promise<MountFacts[]> {
  if (dirs.length === 0) return [];
  const wanted = new Set(dirs.map((d) => path.resolve(d)));
  const found = new Map<string, MountEntry>();
  for (const m of table) if (wanted.has(path.dirname(m.target))) found.set(m.target, m); // the last mount on a path is the visible one
  const mounts: MountFacts[] = [];
  for (const m of found.values()) {
    try {
      const s = await statfs(m.target, { bigint: true });
      mounts.push({
        target: m.target,
        source: m.source,
        fsType: m.fsType,
        sizeBytes: s.blocks * s.bsize,
        usedBytes: (s.blocks - s.bfree) * s.bsize,
        availableBytes: s.bavail * s.bsize,
      });
    } catch {
      // unmounted while we looked
    }
  }
  return mounts.sort((a, b) => a.target.localeCompare(b.target));
}

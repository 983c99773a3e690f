/**
 * The discovery shell: asks lsblk, blkid, wipefs, sysfs and /proc what block devices and
 * discovery-directory mounts this node has right now. Only devices that pass `isCandidate` (the
 * default exclusions and the allow-list) are probed with blkid/wipefs; nothing is ever written.
 */
import { readFile, readdir, readlink, realpath, statfs } from 'node:fs/promises';
import * as path from 'node:path';
import { exec, execOk } from './exec.js';
import { LSBLK_COLUMNS, parseBlkidExport, parseLsblk, parseMountinfo, parseWipefs, type MountEntry, type RawDisk, type Signatures } from './host-facts.js';
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
}

/** One discovery pass. */
export async function discover(opts: DiscoveryOptions): Promise<Discovery> {
  const [lsblkOut, mountinfo, swaps] = await Promise.all([
    execOk('lsblk', ['--json', '--bytes', '--tree', '-o', LSBLK_COLUMNS]),
    readFile('/proc/self/mountinfo', 'utf8'),
    readFile('/proc/swaps', 'utf8').catch(() => ''),
  ]);
  const mountTable = parseMountinfo(mountinfo);
  const all = parseLsblk(lsblkOut);
  const backing = new Map<string, string | undefined>();
  await Promise.all(all.map(async (d) => backing.set(d.kname, d.type === 'loop' || d.kname.startsWith('loop') ? await loopBackingFile(d.kname) : undefined)));
  const candidates = all.filter((d) => isCandidate(d, backing.get(d.kname), opts.allowDevices));

  const [signatures, links, systemMajMins] = await Promise.all([
    probeSignatures(candidates),
    diskLinks(),
    systemDevices(mountTable),
  ]);
  const swapDevices = new Set(swaps.split('\n').slice(1).map((l) => l.split(/\s+/)[0]).filter((s): s is string => !!s));

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

/** blkid -p (low-level probe, no cache) and wipefs -n for all candidates in one call each. */
export async function probeSignatures(disks: readonly RawDisk[]): Promise<Map<string, Signatures>> {
  const result = new Map<string, Signatures>();
  if (disks.length === 0) return result;
  const paths = disks.map((d) => d.path);
  const [blkid, wipefs] = await Promise.all([exec('blkid', ['-p', '-o', 'export', ...paths]), exec('wipefs', ['-n', '--json', ...paths])]);
  if (wipefs.code !== 0) throw new Error(`wipefs -n failed (exit ${wipefs.code}): ${wipefs.stderr.trim()}`);
  const details = parseBlkidExport(blkid.stdout);
  const types = parseWipefs(wipefs.stdout);
  // blkid exits 8 when a device carries several signatures it cannot choose between.
  const ambivalent = new Set<string>();
  if (blkid.code === 8 || /ambivalent/i.test(blkid.stderr)) {
    for (const line of blkid.stderr.split('\n')) {
      const m = /(\/dev\/\S+?):?\s.*ambivalent/i.exec(line);
      if (m) ambivalent.add(m[1]!);
    }
  }
  for (const d of disks) {
    result.set(d.path, { ...(details.get(d.path) ?? {}), types: types.get(d.kname) ?? [], ...(ambivalent.has(d.path) ? { ambivalent: true } : {}) });
  }
  return result;
}

/** Signatures of one device (after preparation steps, to see what is there now). */
export async function probeOne(devicePath: string): Promise<Signatures> {
  const kname = path.basename(devicePath);
  const sigs = await probeSignatures([{ kname, path: devicePath, majMin: '', type: 'disk', sizeBytes: 0n, readOnly: false, removable: false, rotational: false, partitions: [] }]);
  return sigs.get(devicePath) ?? { types: [] };
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
    let holders: string[] = [];
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

/**
 * The last check before a device becomes an OSD: it must be a whole block device that is blank
 * (no filesystem, partition table, RAID/LVM or BlueStore signature, no partitions), not mounted,
 * not swap and held by nothing. Uses the node agent's thorough probe (blkid -p + wipefs -n), the
 * same one its own formatting relies on. Reads only.
 */
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import * as path from 'node:path';
import { mountTable } from '../../host/mounts.js';
import { ifNotFound } from '../../util/errors.js';
import { probeOne } from '../agent/discovery.js';

export class DeviceNotBlankError extends Error {
  override readonly name = 'DeviceNotBlankError';
}

/** Why `device` may not become an OSD (empty: it may). */
export async function deviceProblems(device: string): Promise<string[]> {
  let real: string;
  try {
    real = await realpath(device);
  } catch {
    return [`${device} does not exist`];
  }
  const st = await stat(real);
  if (!st.isBlockDevice()) return [`${device} is not a block device`];
  const kname = path.basename(real);
  const sys = `/sys/class/block/${kname}`;
  const out: string[] = [];
  // Only a missing file means "nothing there" (no `partition` file: a whole disk; no holders
  // directory; no /proc/swaps: a kernel without swap). Any other error is thrown, so that a sysfs
  // read that failed never passes a device as blank.
  if (await readFile(path.join(sys, 'partition'), 'utf8').then(() => true, ifNotFound(false))) {
    out.push(`${device} is a partition; give the whole disk`);
  }
  const children = (await readdir(sys).catch(ifNotFound([] as string[]))).filter((e) => e.startsWith(kname));
  if (children.length > 0) out.push(`${device} has partitions (${children.join(', ')})`);
  const holders = await readdir(path.join(sys, 'holders')).catch(ifNotFound([] as string[]));
  if (holders.length > 0) out.push(`${device} is held by ${holders.join(', ')} (device-mapper, RAID or bcache)`);
  const mounts = (await mountTable()).filter((m) => m.source === device || m.source === real);
  if (mounts.length > 0) out.push(`${device} is mounted at ${mounts.map((m) => m.target).join(', ')}`);
  const swaps = (await readFile('/proc/swaps', 'utf8').catch(ifNotFound('')))
    .split('\n')
    .slice(1)
    .map((l) => l.split(/\s+/)[0]);
  if (swaps.includes(real) || swaps.includes(device)) out.push(`${device} is in use as swap`);
  const sig = await probeOne(real);
  const found = [...new Set([...sig.types, ...(sig.fsType ? [sig.fsType] : []), ...(sig.ptType ? [sig.ptType] : [])])];
  if (found.length > 0 || sig.ambivalent)
    out.push(`${device} carries ${found.length ? found.join(', ') : 'several'} signature${found.length === 1 ? '' : 's'}`);
  return out;
}

/** Throws, saying why, unless `device` is blank and unused; never writes. */
export async function assertBlankDevice(device: string): Promise<void> {
  const problems = await deviceProblems(device);
  if (problems.length > 0) {
    throw new DeviceNotBlankError(
      `refusing to turn ${device} into a Ceph OSD: ${problems.join('; ')}. Stowage only uses blank disks; ` +
        'if its contents are unwanted, wipe it yourself (wipefs --all) or release it through its NodeDisk, then try again',
    );
  }
}

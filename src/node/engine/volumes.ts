/**
 * Volumes inside a pool filesystem: a Filesystem volume is a subvolume whose qgroup limit is its
 * size; a Block volume is a no-copy-on-write file (no btrfs checksumming or CoW fragmentation under
 * a database's random writes) that the Node service attaches as a loop device.
 */
import { mkdir, rm, stat, open } from 'node:fs/promises';
import * as btrfs from './btrfs.js';
import { run } from '../../host/command.js';
import { loopDevicesOf } from '../../host/loop-devices.js';
import type { VolumeMode } from '../../crds/storagepool.js';

/** Volume names are PoolVolume names: DNS-1123, so they are safe as path components. */
const SAFE_NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

export function volumePath(mountPoint: string, name: string, mode: VolumeMode): string {
  if (!SAFE_NAME.test(name)) throw new Error(`volume name ${JSON.stringify(name)} is not a DNS-1123 name`);
  return mode === 'Block' ? `${mountPoint}/blocks/${name}.img` : `${mountPoint}/volumes/${name}`;
}

export interface RealizedVolume {
  readonly path: string;
  readonly capacityBytes: bigint;
}

// Any failure to stat reads as "not there": the callers then create the path, and that step reports a real error.
const exists = (path: string): Promise<boolean> =>
  stat(path).then(
    () => true,
    () => false,
  );

/** Creates the volume if missing and sets its size (raising it expands; it never shrinks). Idempotent. */
export async function ensureVolume(
  mountPoint: string,
  name: string,
  mode: VolumeMode,
  sizeBytes: bigint,
  noDataCow = false,
): Promise<RealizedVolume> {
  const path = volumePath(mountPoint, name, mode);
  if (mode === 'Filesystem') {
    await mkdir(`${mountPoint}/volumes`, { recursive: true });
    if (!(await exists(path))) {
      await btrfs.subvolumeCreate(path);
      // +C on the still-empty subvolume root: every file created in it inherits NOCOW.
      if (noDataCow) await run('chattr', ['+C', path]);
    }
    await btrfs.qgroupLimit(path, sizeBytes);
  } else {
    const dir = `${mountPoint}/blocks`;
    if (!(await exists(dir))) {
      await mkdir(dir, { recursive: true });
      // +C on the directory makes every file created in it NOCOW; it only applies to empty files.
      await run('chattr', ['+C', dir]);
    }
    if (!(await exists(path))) {
      const handle = await open(path, 'wx');
      await handle.close();
      await run('chattr', ['+C', path]);
    }
    const current = BigInt((await stat(path)).size);
    if (current < sizeBytes) await run('fallocate', ['-l', sizeBytes.toString(), path]);
  }
  return { path, capacityBytes: sizeBytes };
}

/**
 * Bytes the volume holds: qgroup referenced bytes of the subvolume, or allocated bytes of the file.
 * `groups` is a listing of the pool's qgroups (one listing can serve every volume of the pool).
 */
export async function usedBytes(mountPoint: string, path: string, mode: VolumeMode, groups?: readonly btrfs.Qgroup[]): Promise<bigint> {
  if (mode === 'Block') return BigInt((await stat(path)).blocks) * 512n;
  const all = groups ?? (await btrfs.qgroups(mountPoint));
  // btrfs prints each live subvolume's path relative to the filesystem root; the id is the fallback.
  const relative = path.slice(mountPoint.length + 1);
  const byPath = all.filter((q) => q.path === relative);
  if (byPath.length === 1) return byPath[0].referenced;
  const id = await btrfs.subvolumeId(path);
  return all.find((q) => q.id === `0/${id}`)?.referenced ?? 0n;
}

/** Removes the volume's data. Loop devices still attached to a Block volume's file are detached first. */
export async function removeVolume(mountPoint: string, name: string, mode: VolumeMode): Promise<boolean> {
  const path = volumePath(mountPoint, name, mode);
  if (!(await exists(path))) return false;
  if (mode === 'Filesystem') {
    await btrfs.subvolumeDelete(path);
  } else {
    for (const device of await loopDevicesOf(path)) await run('losetup', ['--detach', device]);
    await rm(path, { force: true });
  }
  return true;
}

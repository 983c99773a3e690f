/**
 * A volume's own data, checked before the CSI Node service mounts anything for it: the subvolume
 * (Filesystem) or the no-copy-on-write file (Block) at the engine's own path in the pool's mounted
 * filesystem, verified by what the kernel and btrfs say it is, never by a name or a recorded path.
 * A PoolVolume's status.path is only a record (an administrator or a hostile client with write
 * access to PoolVolume status can change it); a symlink planted inside one tenant's volume could
 * otherwise hand another pool's data to whoever stages it.
 */
import { lstat, realpath, stat } from 'node:fs/promises';
import type { VolumeMode } from '../../crds/storagepool.js';
import { mountAt } from '../../host/mounts.js';
import { ifNotFound } from '../../util/errors.js';
import * as btrfs from './btrfs.js';
import { volumePath } from './volumes.js';

/** btrfs gives every subvolume's root directory this inode number (BTRFS_FIRST_FREE_OBJECTID). */
const SUBVOLUME_ROOT_INODE = 256;

export interface OwnVolume {
  /** The real path (symlinks resolved) of the volume's subvolume or file. */
  readonly path: string;
  /** What it was identified as, for messages and logs (subvolume ID and UUID, or the file's inode). */
  readonly identity: string;
}

/**
 * The volume's own subvolume or file under `mountPoint` (the pool's mounted filesystem). Throws an
 * error saying what is wrong when it is missing, reached through a symlink, covered by another
 * mount, or not the subvolume (or file) the engine made for this volume.
 */
export async function ownVolume(mountPoint: string, name: string, mode: VolumeMode): Promise<OwnVolume> {
  const made = volumePath(mountPoint, name, mode);
  const what = mode === 'Block' ? 'file' : 'subvolume';
  const realMount = await realpath(mountPoint);
  const expected = `${realMount}${made.slice(mountPoint.length)}`;
  // Only "not found" means not there; an I/O error is thrown as itself, not called a missing volume.
  const info = await lstat(made).catch(ifNotFound(undefined));
  if (!info) throw new Error(`its ${what} ${made} does not exist in the pool's filesystem (not realized yet, or deleted)`);
  if (info.isSymbolicLink()) throw new Error(`${made} is a symlink, not the volume's ${what}`);
  const real = await realpath(made);
  if (real !== expected) throw new Error(`${made} leads to ${real} through a symlink, not to the volume's own ${what}`);
  if (await mountAt(made)) throw new Error(`something is mounted over its ${what} ${made}`);
  if (mode === 'Block') {
    // Block files live in the pool filesystem's top-level subvolume, beside nothing of another filesystem.
    const [file, top] = [await stat(real), await stat(realMount)];
    if (!file.isFile()) throw new Error(`${made} is not a regular file`);
    if (file.dev !== top.dev) throw new Error(`${made} is not on the pool's filesystem ${mountPoint}`);
    return { path: real, identity: `file ${real} (inode ${file.ino})` };
  }
  if (!info.isDirectory() || info.ino !== SUBVOLUME_ROOT_INODE) throw new Error(`${made} is not a btrfs subvolume`);
  const sub = await btrfs.subvolumeShow(real);
  const relative = made.slice(mountPoint.length + 1);
  if (sub.path !== relative) throw new Error(`${made} is the subvolume ${sub.path} (ID ${sub.id}), not ${relative}`);
  return { path: real, identity: `subvolume ${sub.path} (ID ${sub.id}, UUID ${sub.uuid})` };
}

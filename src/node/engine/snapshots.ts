/**
 * Snapshots, restores and clones inside a pool filesystem (issue 17).
 *
 * - A snapshot of a Filesystem volume is a read-only btrfs snapshot of its subvolume at
 *   <pool>/snapshots/<name>: atomic, instant, sharing every extent with the source.
 * - A snapshot of a Block volume (a no-copy-on-write file) is a reflinked copy at
 *   <pool>/snapshots/<name>.img: the kernel shares the extents (both files are NOCOW, which FICLONE
 *   requires), so it costs metadata only; where the kernel refuses the reflink, a full sparse copy
 *   (time and space proportional to the data) is made instead, and the method is reported.
 * - A restore (from a snapshot) or a clone (of a live volume) is a writable snapshot of the
 *   subvolume, or a reflinked copy of the file, at the new volume's own path, with its own size
 *   limit.
 *
 * Crash safety: a subvolume snapshot appears atomically at its final path or not at all; a file copy
 * is made under a `.partial-` name and renamed into place only when complete; the next attempt
 * starts it over, and deleting the object removes it. So a daemon killed mid-way leaves nothing a restart would not
 * finish or remove.
 */
import { chmod, mkdir, rename, rm, stat, open } from 'node:fs/promises';
import type { VolumeMode } from '../../crds/storagepool.js';
import { run, runStatus } from '../../host/command.js';
import * as btrfs from './btrfs.js';
import { volumePath } from './volumes.js';

/** Directory of a pool filesystem holding its snapshots. */
export const SNAPSHOTS_DIR = 'snapshots';
/** Prefix of a file copy in progress; never a valid object name (names start with [a-z0-9]). */
const PARTIAL_PREFIX = '.partial-';

/** Snapshot names are PoolSnapshot names: DNS-1123, so they are safe as path components. */
const SAFE_NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/** How a snapshot, restore or clone was made: what it costs is in docs/snapshots.md. */
export type CopyMethod = 'subvolume-snapshot' | 'reflink' | 'copy';

export function snapshotPath(mountPoint: string, name: string, mode: VolumeMode): string {
  if (!SAFE_NAME.test(name)) throw new Error(`snapshot name ${JSON.stringify(name)} is not a DNS-1123 name`);
  return mode === 'Block' ? `${mountPoint}/${SNAPSHOTS_DIR}/${name}.img` : `${mountPoint}/${SNAPSHOTS_DIR}/${name}`;
}

// Any failure to stat reads as "not there": the callers then create the path, and that step reports a real error.
const exists = (path: string): Promise<boolean> =>
  stat(path).then(
    () => true,
    () => false,
  );

async function ensureDir(dir: string, noCow: boolean): Promise<void> {
  if (await exists(dir)) return;
  await mkdir(dir, { recursive: true });
  // +C on a directory makes files created in it NOCOW; snapshot subvolumes keep their source's flags.
  if (noCow) await run('chattr', ['+C', dir]);
}

/**
 * Copies `from` to `to` (a file), sharing extents where the kernel allows: a NOCOW target file is
 * created first, because FICLONE refuses to share extents between a NOCOW and a checksummed file.
 * Made under a partial name and renamed, so `to` exists only complete.
 */
export async function copyFile(from: string, to: string, opts: { allowReflink?: boolean } = {}): Promise<CopyMethod> {
  // A partial copy of an earlier, killed attempt is started over.
  const partial = partialPath(to);
  await rm(partial, { force: true });
  const handle = await open(partial, 'wx');
  await handle.close();
  await run('chattr', ['+C', partial]);
  let method: CopyMethod = 'reflink';
  const reflinked = opts.allowReflink === false ? { code: 1 } : await runStatus('cp', ['--reflink=always', from, partial]);
  if (reflinked.code !== 0) {
    method = 'copy';
    await run('cp', ['--reflink=never', '--sparse=always', from, partial]);
  }
  await rename(partial, to);
  return method;
}

/**
 * Removes what a daemon killed in the middle of copying to `path` left: the partial file. A retried
 * copy removes it itself; this is for an object deleted before it was ever completed.
 */
export async function removePartial(path: string): Promise<boolean> {
  const partial = partialPath(path);
  if (!(await exists(partial))) return false;
  await rm(partial, { force: true });
  return true;
}

function partialPath(path: string): string {
  const slash = path.lastIndexOf('/');
  return `${path.slice(0, slash)}/${PARTIAL_PREFIX}${path.slice(slash + 1)}`;
}

export interface RealizedSnapshot {
  readonly path: string;
  /** How it was made; undefined when it already existed (made by an earlier attempt). */
  readonly method?: CopyMethod;
}

/** Takes a snapshot of volume `source` named `name` unless it exists. Idempotent. */
export async function ensureSnapshot(mountPoint: string, name: string, source: string, mode: VolumeMode): Promise<RealizedSnapshot> {
  const path = snapshotPath(mountPoint, name, mode);
  if (await exists(path)) return { path };
  const from = volumePath(mountPoint, source, mode);
  if (!(await exists(from)))
    throw new Error(`source volume ${source} has no data at ${from} on this node; it was deleted before the snapshot was taken`);
  await ensureDir(`${mountPoint}/${SNAPSHOTS_DIR}`, mode === 'Block');
  if (mode === 'Filesystem') {
    await run('btrfs', ['subvolume', 'snapshot', '-r', from, path]);
    return { path, method: 'subvolume-snapshot' };
  }
  const method = await copyFile(from, path);
  // Nothing may write a snapshot: a restore copies it.
  await chmod(path, 0o444);
  return { path, method };
}

/** Deletes a snapshot's data; false when there was none. A subvolume snapshot is deleted with a commit, so its space is free on return. */
export async function removeSnapshot(mountPoint: string, name: string, mode: VolumeMode): Promise<boolean> {
  const path = snapshotPath(mountPoint, name, mode);
  if (mode === 'Block') await removePartial(path);
  if (!(await exists(path))) return false;
  if (mode === 'Filesystem') await btrfs.subvolumeDelete(path);
  else await rm(path, { force: true });
  return true;
}

/** Where a new volume's content comes from: a snapshot (restore) or a live volume (clone). */
export type ContentSource = { readonly snapshot: string } | { readonly volume: string };

/** The engine's view of a PoolVolume's spec.source: a snapshot wins if both are (wrongly) set. */
export function contentSource(source: { snapshot?: string; volume?: string }): ContentSource {
  if (source.snapshot) return { snapshot: source.snapshot };
  if (source.volume) return { volume: source.volume };
  throw new Error('spec.source names neither a snapshot nor a volume');
}

/** How a status message says where a volume's content came from. */
export function sourceNote(source: { snapshot?: string; volume?: string } | undefined): string {
  if (source?.snapshot) return `, restored from snapshot ${source.snapshot}`;
  if (source?.volume) return `, cloned from volume ${source.volume}`;
  return '';
}

export function sourcePath(mountPoint: string, source: ContentSource, mode: VolumeMode): string {
  return 'snapshot' in source ? snapshotPath(mountPoint, source.snapshot, mode) : volumePath(mountPoint, source.volume, mode);
}

export interface RealizedRestore {
  readonly path: string;
  readonly capacityBytes: bigint;
  readonly method?: CopyMethod;
}

/**
 * Makes volume `name` from `source` unless it exists, then gives it its size: a qgroup limit for a
 * subvolume, the file grown for Block (it never shrinks below the source; the controller asks for
 * at least the source's size). Idempotent: a volume that exists is only resized.
 */
export async function ensureRestoredVolume(
  mountPoint: string,
  name: string,
  mode: VolumeMode,
  source: ContentSource,
  sizeBytes: bigint,
): Promise<RealizedRestore> {
  const path = volumePath(mountPoint, name, mode);
  let method: CopyMethod | undefined;
  if (!(await exists(path))) {
    const from = sourcePath(mountPoint, source, mode);
    if (!(await exists(from))) {
      const what = 'snapshot' in source ? `snapshot ${source.snapshot}` : `volume ${source.volume}`;
      throw new Error(`${what} has no data at ${from} on this node; it was deleted before the restore`);
    }
    if (mode === 'Filesystem') {
      await mkdir(`${mountPoint}/volumes`, { recursive: true });
      // Without -r: a writable snapshot. It keeps the source's files' NOCOW flags.
      await run('btrfs', ['subvolume', 'snapshot', from, path]);
      method = 'subvolume-snapshot';
    } else {
      await ensureDir(`${mountPoint}/blocks`, true);
      method = await copyFile(from, path);
      await chmod(path, 0o600);
    }
  }
  if (mode === 'Filesystem') {
    await btrfs.qgroupLimit(path, sizeBytes);
  } else {
    const current = BigInt((await stat(path)).size);
    // Growing only, preallocated as ensureVolume does; the copied range keeps its extents shared.
    if (current < sizeBytes) await run('fallocate', ['-l', sizeBytes.toString(), path]);
  }
  return { path, capacityBytes: sizeBytes, ...(method ? { method } : {}) };
}

/**
 * Bytes only this snapshot holds: what deleting it would free. `btrfs filesystem du` asks the kernel
 * (FIEMAP) which extents are shared with any other file or subvolume; the figure is the same under
 * simple quotas and full qgroup accounting. It grows as the source volume overwrites the data the
 * snapshot still holds, and covers everything once the source is deleted.
 */
export async function exclusiveBytes(path: string): Promise<bigint> {
  return parseDuExclusive(await run('btrfs', ['filesystem', 'du', '-s', '--raw', path]));
}

/** Parses `btrfs filesystem du -s --raw`: `Total Exclusive Set-shared Filename` per line. */
export function parseDuExclusive(text: string): bigint {
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+)\s+(\d+)\s+(\d+|-)\s+\S/.exec(line);
    if (m) return BigInt(m[2]);
  }
  throw new Error(`btrfs filesystem du gave no figures: ${text.trim().slice(0, 200)}`);
}

/**
 * The destructive shell: making, mounting, wiping and releasing the filesystem of a claimed Local
 * disk. Every function here is handed ONE device the agent already checked against its allow-list,
 * and re-probes that device right before each destructive step, so a disk that changed since
 * discovery is refused rather than overwritten.
 *
 * How the agent recognises its own work after a restart: the filesystem label is derived from the
 * NodeDisk name (`stw-` + 8 hex), and the filesystem UUID is derived from the NodeDisk name and
 * the wipe epoch, so an mkfs interrupted by a crash and redone yields the same UUID.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, rm, rmdir, statfs } from 'node:fs/promises';
import * as path from 'node:path';
import type { CleanupMethod, FsType } from '../../crds/storagepool.js';
import { exec, execOk } from '../../host/exec.js';
import { probeOne } from './discovery.js';
import { parseMountinfo, type Signatures } from './host-facts.js';
import { errorMessage, isNotFound } from '../../util/errors.js';
import { faultPoint } from '../../util/fault-point.js';

/** mkfs, blkdiscard and zeroing big disks take long; they must still end. */
const DESTRUCTIVE_TIMEOUT_MS = 6 * 60 * 60_000;

export interface Preparation {
  readonly path: string;
  readonly filesystem?: string;
  readonly uuid?: string;
}

/** A step that did not (and must not) happen; `reason` becomes the Prepared condition's reason. */
export class PreparationRefused extends Error {
  override readonly name = 'PreparationRefused';
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

export type Emit = (type: 'Normal' | 'Warning', reason: string, message: string) => void;

export interface DiskTarget {
  /** NodeDisk name. */
  readonly name: string;
  /** Current /dev path of the device. */
  readonly devicePath: string;
  /** Where the agent mounts prepared disks: `<root>/<name>`. */
  readonly root: string;
}

/** The filesystem label that marks a filesystem as Stowage's, for this NodeDisk (12 chars: XFS's limit). */
export function stowageLabel(nodeDiskName: string): string {
  return `stw-${createHash('sha256').update(nodeDiskName).digest('hex').slice(0, 8)}`;
}

/** A deterministic RFC 4122 (version 4 layout) UUID for the filesystem of `name` in wipe epoch `epoch`. */
export function filesystemUuid(nodeDiskName: string, epoch: string): string {
  const h = createHash('sha256').update(`${nodeDiskName}/${epoch}`).digest('hex');
  const variant = ((parseInt(h[16], 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export function mountTarget(t: DiskTarget): string {
  return path.join(t.root, t.name);
}

/** Where `device` is mounted right now (fresh from /proc/self/mountinfo). */
export async function mountsOf(device: string): Promise<string[]> {
  // A path that is no block device (or one that just went away) has no major:minor: match it by path alone.
  const dev = (await readFile(`/sys/class/block/${path.basename(device)}/dev`, 'utf8').catch(() => '')).trim();
  const table = parseMountinfo(await readFile('/proc/self/mountinfo', 'utf8'));
  return table.filter((m) => m.source === device || (dev !== '' && m.majMin === dev)).map((m) => m.target);
}

const isBlankSig = (s: Signatures): boolean => s.types.length === 0 && !s.fsType && !s.ptType && !s.ambivalent;

/**
 * Local/Filesystem: make sure the disk carries Stowage's filesystem of `fsType` and is mounted at
 * `<root>/<name>`, exactly once. Formats only a blank disk (or, with `allowAdoption`, a foreign one);
 * mounts only after the filesystem UUID matches the one expected.
 */
export async function prepareFilesystem(
  t: DiskTarget,
  opts: { fsType: FsType; allowAdoption: boolean; recordedUuid?: string | undefined; epoch: string; emit: Emit },
): Promise<Preparation> {
  const target = mountTarget(t);
  const label = stowageLabel(t.name);
  const sig = await probeOne(t.devicePath);
  const mounts = await mountsOf(t.devicePath);
  const ours = sig.label === label;
  const elsewhere = mounts.filter((m) => m !== target);
  if (elsewhere.length > 0) {
    throw new PreparationRefused(
      'MountedElsewhere',
      `${t.devicePath} is mounted at ${elsewhere.join(', ')}, not by Stowage; unmount it first`,
    );
  }
  if (opts.recordedUuid && sig.uuid !== opts.recordedUuid) {
    throw new PreparationRefused(
      'UUIDMismatch',
      `${t.devicePath} carries filesystem UUID ${sig.uuid ?? '(none)'} but this disk was prepared with ${opts.recordedUuid}; refusing to mount or format it — check that the right disk is attached`,
    );
  }
  if (opts.recordedUuid && ours && sig.fsType && sig.fsType !== opts.fsType) {
    throw new PreparationRefused(
      'FsTypeMismatch',
      `${t.devicePath} was prepared with ${sig.fsType} but the claim now asks for ${opts.fsType}; Stowage does not reformat a prepared disk — release it from the pool first`,
    );
  }
  if (mounts.includes(target)) {
    if (!ours)
      throw new PreparationRefused('UUIDMismatch', `${target} is mounted from ${t.devicePath} but the filesystem there is not Stowage's`);
    return { path: target, filesystem: sig.fsType ?? opts.fsType, uuid: sig.uuid! };
  }
  if (ours && sig.fsType === opts.fsType && sig.uuid) {
    try {
      await mountVerified(t.devicePath, target, sig.fsType, sig.uuid);
      return { path: target, filesystem: sig.fsType, uuid: sig.uuid };
    } catch (err) {
      // Our label but not mountable: an mkfs of ours that a crash cut short is redone; a disk we
      // had finished preparing (recorded) is never formatted again.
      if (opts.recordedUuid)
        throw new PreparationRefused('MountFailed', `could not mount ${t.devicePath} at ${target}: ${(err as Error).message}`);
    }
  } else if (!isBlankSig(sig) && !ours) {
    if (!opts.allowAdoption) {
      const what = sig.ptType ? `a ${sig.ptType} partition table` : `a ${sig.fsType ?? sig.types.join(', ')} signature`;
      throw new PreparationRefused(
        sig.ptType ? 'HasPartitions' : 'HasFilesystem',
        `${t.devicePath} carries ${what}; Stowage formats only blank disks unless the pool allows adoption. Nothing was changed`,
      );
    }
    opts.emit(
      'Warning',
      'AdoptingDisk',
      `erasing every signature on ${t.devicePath} (${sig.fsType ?? sig.ptType ?? sig.types.join(', ')}) because the pool allows adoption`,
    );
    await execOk('wipefs', ['--all', '--force', t.devicePath]);
  }
  const uuid = filesystemUuid(t.name, opts.epoch);
  await makeFilesystem(t, opts.fsType, uuid, opts.emit);
  await faultPoint('local/prepare'); // formatted, not mounted yet
  await mountVerified(t.devicePath, target, opts.fsType, uuid);
  return { path: target, filesystem: opts.fsType, uuid };
}

async function makeFilesystem(t: DiskTarget, fsType: FsType, uuid: string, emit: Emit): Promise<void> {
  const label = stowageLabel(t.name);
  // Re-probe right before formatting: only blank or Stowage's own filesystem for this disk may be overwritten.
  const now = await probeOne(t.devicePath);
  if (!isBlankSig(now) && now.label !== label) {
    throw new PreparationRefused(
      'HasFilesystem',
      `${t.devicePath} changed since it was checked (now ${now.fsType ?? now.ptType ?? now.types.join(', ')}); nothing was formatted`,
    );
  }
  emit('Normal', 'Formatting', `making an ${fsType} filesystem (label ${label}, UUID ${uuid}) on ${t.devicePath}`);
  const args =
    fsType === 'xfs'
      ? ['-f', '-q', '-L', label, '-m', `uuid=${uuid}`, t.devicePath]
      : ['-F', '-q', '-m', '0', '-L', label, '-U', uuid, t.devicePath];
  await execOk(fsType === 'xfs' ? 'mkfs.xfs' : 'mkfs.ext4', args, { timeoutMs: DESTRUCTIVE_TIMEOUT_MS });
  emit('Normal', 'Formatted', `made an ${fsType} filesystem with UUID ${uuid} on ${t.devicePath}`);
}

/** Mounts `device` at `target` after checking (again, right now) that it carries filesystem `uuid`. */
async function mountVerified(device: string, target: string, fsType: string, uuid: string): Promise<void> {
  const sig = await probeOne(device);
  if (sig.uuid !== uuid)
    throw new PreparationRefused('UUIDMismatch', `${device} carries UUID ${sig.uuid ?? '(none)'}, expected ${uuid}; not mounting it`);
  await mkdir(target, { recursive: true, mode: 0o755 });
  await execOk('mount', ['-t', fsType, device, target]);
}

/** Local/Block: the device must be blank (or adopted); the workload gets it raw. */
export async function prepareBlock(
  t: DiskTarget,
  opts: { stablePath: string; allowAdoption: boolean; alreadyPrepared: boolean; emit: Emit },
): Promise<Preparation> {
  const mounts = await mountsOf(t.devicePath);
  if (mounts.length > 0)
    throw new PreparationRefused(
      'MountedElsewhere',
      `${t.devicePath} is mounted at ${mounts.join(', ')}; a Block volume needs the raw device`,
    );
  if (opts.alreadyPrepared) return { path: opts.stablePath };
  const sig = await probeOne(t.devicePath);
  if (!isBlankSig(sig)) {
    if (!opts.allowAdoption) {
      throw new PreparationRefused(
        sig.ptType ? 'HasPartitions' : 'HasFilesystem',
        `${t.devicePath} is not blank (${sig.fsType ?? sig.ptType ?? sig.types.join(', ')}); nothing was changed`,
      );
    }
    opts.emit('Warning', 'AdoptingDisk', `erasing every signature on ${t.devicePath} because the pool allows adoption`);
    await execOk('wipefs', ['--all', '--force', t.devicePath]);
  }
  return { path: opts.stablePath };
}

/** Release: unmount and remove the filesystem Stowage made; a foreign filesystem is never erased. */
export async function releaseDisk(t: DiskTarget, emit: Emit): Promise<void> {
  const target = mountTarget(t);
  const mounts = await mountsOf(t.devicePath);
  if (mounts.includes(target)) await execOk('umount', [target]);
  await faultPoint('local/release'); // unmounted, filesystem not erased yet
  await removeMountPoint(target, 'release', emit);
  const sig = await probeOne(t.devicePath);
  if (sig.label === stowageLabel(t.name)) {
    if ((await mountsOf(t.devicePath)).length > 0) {
      throw new PreparationRefused('MountedElsewhere', `${t.devicePath} is still mounted elsewhere; not erasing its filesystem`);
    }
    emit(
      'Normal',
      'Releasing',
      `erasing Stowage's ${sig.fsType} filesystem (UUID ${sig.uuid}) from ${t.devicePath}: the disk left its pool`,
    );
    await execOk('wipefs', ['--all', '--force', t.devicePath]);
  }
}

/**
 * Erases a held disk (returning-disks.ts) on an administrator's request: unmounts Stowage's own
 * mount of it, zeroes every byte and removes every signature. Refused while anything else mounts it.
 */
export async function eraseDisk(t: DiskTarget, why: string, emit: Emit): Promise<void> {
  const target = mountTarget(t);
  const mounts = await mountsOf(t.devicePath);
  const foreign = mounts.filter((m) => m !== target);
  if (foreign.length > 0) {
    throw new PreparationRefused(
      'MountedElsewhere',
      `${t.devicePath} is mounted at ${foreign.join(', ')}; stop what uses it and unmount it, then the erase runs`,
    );
  }
  if (mounts.includes(target)) await execOk('umount', [target]);
  await removeMountPoint(target, 'erase', emit);
  emit('Warning', 'Erasing', `zeroing every byte of ${t.devicePath}: ${why}`);
  await zeroDevice(t.devicePath);
  await execOk('wipefs', ['--all', '--force', t.devicePath]);
  emit('Normal', 'Erased', `${t.devicePath} was zeroed and is blank`);
}

/**
 * Removes Stowage's (unmounted) mount point directory. It is only bookkeeping: an empty one left
 * behind harms nothing, so `step` goes on, but one that cannot be removed (something wrote into it
 * while unmounted) is worth a look, and says so in a Warning event.
 */
async function removeMountPoint(target: string, step: string, emit: Emit): Promise<void> {
  await rmdir(target).catch((err: unknown) => {
    if (!isNotFound(err))
      emit(
        'Warning',
        'MountPointLeft',
        `could not remove the mount point ${target} (${errorMessage(err)}); the ${step} goes on and the directory stays`,
      );
  });
}

/** Removes everything inside `dir` (the directory itself stays). */
export async function removeContents(dir: string): Promise<void> {
  for (const entry of await readdir(dir)) await rm(path.join(dir, entry), { recursive: true, force: true });
}

/**
 * Wipes the disk for a released volume. Filesystem disks end mounted again with a fresh filesystem
 * (UUID of epoch `volumeUID`); Block disks end blank.
 */
export async function wipeDisk(
  t: DiskTarget,
  opts: { method: CleanupMethod; volumeMode: 'Filesystem' | 'Block'; fsType?: FsType | undefined; volumeUID: string; emit: Emit },
): Promise<Preparation | undefined> {
  const target = mountTarget(t);
  const mounts = await mountsOf(t.devicePath);
  const foreign = mounts.filter((m) => m !== target);
  if (foreign.length > 0)
    throw new PreparationRefused('MountedElsewhere', `${t.devicePath} is mounted at ${foreign.join(', ')}; not wiping it`);
  if (mounts.includes(target)) {
    await removeContents(target);
    await execOk('umount', [target]);
  }
  switch (opts.method) {
    case 'quick':
      await execOk('wipefs', ['--all', '--force', t.devicePath]);
      if (opts.volumeMode === 'Block') await zeroRange(t.devicePath, 0, 1024 * 1024);
      break;
    case 'zero':
      await zeroDevice(t.devicePath);
      break;
    case 'discard':
      await execOk('blkdiscard', ['--force', t.devicePath], { timeoutMs: DESTRUCTIVE_TIMEOUT_MS });
      await execOk('wipefs', ['--all', '--force', t.devicePath]);
      break;
  }
  await faultPoint('local/wiping'); // old filesystem erased, the fresh one not made yet
  if (opts.volumeMode === 'Block') return undefined;
  const fsType = opts.fsType ?? 'ext4';
  const uuid = filesystemUuid(t.name, opts.volumeUID);
  await makeFilesystem(t, fsType, uuid, opts.emit);
  await mountVerified(t.devicePath, target, fsType, uuid);
  return { path: target, filesystem: fsType, uuid };
}

async function zeroDevice(device: string): Promise<void> {
  const res = await exec('blkdiscard', ['--zeroout', '--force', device], { timeoutMs: DESTRUCTIVE_TIMEOUT_MS });
  if (res.code === 0) return;
  // No write-zeroes support: overwrite it.
  await execOk('dd', ['if=/dev/zero', `of=${device}`, 'bs=4M', 'oflag=direct', 'conv=fsync', 'status=none'], {
    timeoutMs: DESTRUCTIVE_TIMEOUT_MS,
  }).catch((err: Error) => {
    // dd ends with "No space left on device" when it reaches the end: that is success.
    if (!/No space left/.test(err.message)) throw err;
  });
}

async function zeroRange(device: string, offset: number, length: number): Promise<void> {
  await execOk('dd', [
    'if=/dev/zero',
    `of=${device}`,
    'bs=64K',
    `seek=${offset / 65536}`,
    `count=${Math.ceil(length / 65536)}`,
    'oflag=direct',
    'conv=fsync,notrunc',
    'status=none',
  ]);
}

/** Filesystem statistics of a mounted directory, for status.usage. */
export async function usageOf(dir: string): Promise<{ size: bigint; used: bigint; available: bigint } | undefined> {
  try {
    const s = await statfs(dir, { bigint: true });
    return { size: s.blocks * s.bsize, used: (s.blocks - s.bfree) * s.bsize, available: s.bavail * s.bsize };
  } catch {
    return undefined;
  }
}

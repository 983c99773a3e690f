/**
 * Health the kernel shows, beside SMART's: a device whose medium is gone (it reports a size of 0,
 * as a loop device whose backing file vanished, a card reader without its card, or a disk that
 * dropped off its bus while still held open), and a prepared filesystem on which the kernel
 * counted errors (ext4's persistent error count, /sys/fs/ext4/<dev>/errors_count, which the kernel
 * raises on every I/O error it could not hide, e.g. a journal it had to abort). SMART cannot say
 * either: a vanished disk answers no SMART query, and loop or virtual disks have none at all.
 *
 * `ioProblem` is pure; `readFsErrors` is the shell (sysfs only, never writes, never throws).
 */
import { readFile } from 'node:fs/promises';
import { ifNotFound } from '../../util/errors.js';

/** Why the kernel's view says the disk is failing. */
export interface IoProblem {
  readonly reason: 'NoMedium' | 'FilesystemErrors';
  readonly message: string;
}

export interface IoFacts {
  /** The device, e.g. /dev/loop3 or /dev/sdb. */
  readonly device: string;
  /** What the device reports as its size now. */
  readonly sizeBytes: bigint;
  /** ext4's error count of the filesystem on the whole device, when one is mounted. */
  readonly fsErrors?: number | undefined;
  /** Where the filesystem is mounted (for the message). */
  readonly mountPoint?: string | undefined;
}

/** What is wrong with the device as the kernel sees it, or undefined when nothing is. */
export function ioProblem(f: IoFacts): IoProblem | undefined {
  if (f.sizeBytes === 0n) {
    return {
      reason: 'NoMedium',
      message: `${f.device} reports a size of 0: its medium is gone or it was detached while in use, and every read or write fails${f.mountPoint ? ` (its filesystem is still mounted at ${f.mountPoint})` : ''}; volumes on it are unavailable. See the StowageDiskUnhealthy runbook`,
    };
  }
  if ((f.fsErrors ?? 0) > 0) {
    return {
      reason: 'FilesystemErrors',
      message: `the kernel counted ${f.fsErrors} error(s) on the filesystem of ${f.device}${f.mountPoint ? ` mounted at ${f.mountPoint}` : ''} (I/O errors or a journal it aborted); writes there may fail or be lost. See the StowageDiskUnhealthy runbook`,
    };
  }
  return undefined;
}

/** The ext4 error count of the filesystem on `kname` (undefined: not a mounted ext4). */
export async function readFsErrors(kname: string): Promise<number | undefined> {
  // No such file: no ext4 is mounted from this device, which is what undefined means to the caller.
  const text = await readFile(`/sys/fs/ext4/${kname}/errors_count`, 'utf8').catch(ifNotFound(undefined));
  if (text === undefined) return undefined;
  const n = Number(text.trim());
  return Number.isInteger(n) && n >= 0 ? n : undefined;
}

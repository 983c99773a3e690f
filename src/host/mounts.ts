import { readFile } from 'node:fs/promises';
import { run } from './command.js';

/** One line of /proc/self/mountinfo, as far as Stowage needs it. */
export interface MountInfo {
  /** Where it is mounted. */
  readonly target: string;
  /** The path inside the source filesystem that is mounted (`/` or a subvolume/bind root). */
  readonly root: string;
  readonly fsType: string;
  /** The mount source, e.g. /dev/loop3. */
  readonly source: string;
  /** Per-mount options (rw/ro, nosuid, …). */
  readonly options: readonly string[];
  /** Filesystem-wide options (degraded, subvolid=…). */
  readonly superOptions: readonly string[];
  /** major:minor of the filesystem. */
  readonly device: string;
}

const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));

/** The mount table of this process's mount namespace. */
export async function mountTable(): Promise<MountInfo[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const out: MountInfo[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const f = left.split(' ');
    const r = right.split(' ');
    out.push({
      device: f[2],
      root: unescape(f[3]),
      target: unescape(f[4]),
      options: f[5].split(','),
      fsType: r[0],
      source: unescape(r[1]),
      superOptions: (r[2] ?? '').split(','),
    });
  }
  return out;
}

/** The topmost mount at exactly `target`, if any. */
export async function mountAt(target: string): Promise<MountInfo | undefined> {
  const matches = (await mountTable()).filter((m) => m.target === target);
  return matches[matches.length - 1];
}

/** Unmounts `target` if something is mounted there; true when it unmounted something. */
export async function unmountIfMounted(target: string): Promise<boolean> {
  if (!(await mountAt(target))) return false;
  await run('umount', [target]);
  return true;
}

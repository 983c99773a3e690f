// Mount propagation as a systemd host has it, for the host paths Stowage's node DaemonSet mounts.
// systemd makes every mount shared at boot, so on a real node `/dev`, `/sys` and `/var/lib/stowage`
// can be mounted into a container with HostToContainer or Bidirectional propagation. This machine has
// no systemd and its mounts are private, and containerd refuses such a container ("path is mounted on
// … but it is not a shared or slave mount"). kubelet makes its own root dir shared itself; for the
// others this does what systemd would, for the time of a test, and undoes it:
//   - a path that is a mount point of its own (/dev, /sys) is made shared, and private again after;
//   - a path that is not (/var/lib/stowage) is bind-mounted onto itself and that mount made shared;
//     the bind mount is removed after (only once nothing is mounted below it).

import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import { promisify } from 'node:util';

const exec = promisify(execFile);

interface MountInfo {
  mountPoint: string;
  shared: boolean;
}

function mountInfo(): MountInfo[] {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const f = line.split(' ');
      const sep = f.indexOf('-');
      return { mountPoint: f[4], shared: f.slice(6, sep).some((o) => o.startsWith('shared:')) };
    });
}

/** Makes `paths` shared mounts (creating directories that are missing); returns the undo. */
export async function shareHostPaths(paths: string[]): Promise<() => Promise<void>> {
  const undo: Array<() => Promise<void>> = [];
  try {
    for (const p of paths) {
      if (!fs.existsSync(p)) fs.mkdirSync(p, { recursive: true });
      const own = mountInfo().filter((m) => m.mountPoint === p);
      if (own.length > 0) {
        if (own[own.length - 1].shared) continue;
        await exec('mount', ['--make-shared', p]);
        undo.push(async () => {
          await exec('mount', ['--make-private', p]);
        });
      } else {
        await exec('mount', ['--bind', p, p]);
        await exec('mount', ['--make-shared', p]);
        undo.push(async () => {
          const below = mountInfo().filter((m) => m.mountPoint.startsWith(`${p}/`));
          if (below.length > 0)
            throw new Error(`host-propagation: not unmounting ${p}: still mounted below it: ${below.map((m) => m.mountPoint).join(', ')}`);
          await exec('umount', [p]);
        });
      }
    }
  } catch (e) {
    // Undo what was done as far as it goes: the error rethrown below is the one to report.
    for (const u of undo.reverse()) await u().catch(() => undefined);
    throw e;
  }
  return async () => {
    const errors: string[] = [];
    for (const u of undo.reverse()) await u().catch((e: Error) => errors.push(e.message));
    if (errors.length > 0) throw new Error(errors.join('; '));
  };
}

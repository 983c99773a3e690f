// What the installed stack does to this host, as the kubelet tests of an installed Stowage check it
// (installed-stack.test.ts, release-install.test.ts): its containerised processes, its mounts, loop
// devices, and the host directories its node DaemonSet shares or creates.

import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { AGENT_ROOT } from '../../src/operator/driver-stack/render.js';

/** The image's CLI, as every containerised role runs it. */
const CLI = '/opt/stowage/dist/src/cli/main.js';
/** Mounted HostToContainer or Bidirectional by the node DaemonSet: shared, as systemd makes them (host-propagation.ts). */
export const PROPAGATED_HOST_PATHS = ['/dev', '/sys', AGENT_ROOT];
/** Host directories the node DaemonSet's DirectoryOrCreate hostPaths make; removed (empty only) if the test made them. */
export const HOST_PATHS_CREATED = [AGENT_ROOT, '/run/udev'];

/** Host processes started from the image's CLI (a containerised role), by PID. */
export function stowageProcesses(role?: string): Array<{ pid: number; args: string[] }> {
  const out: Array<{ pid: number; args: string[] }> = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const args = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0').filter(Boolean);
      if (args.includes(CLI) && (!role || args[args.indexOf(CLI) + 1] === role)) out.push({ pid: Number(e), args });
    } catch {
      /* exited */
    }
  }
  return out;
}

/**
 * Attached loop devices, less those over the sparse files of test/support/loop-devices.ts: other test
 * processes on this machine make and remove those while this test runs. Stowage's stack attaches no
 * loop device of its own, so any other new one would be its leftover.
 */
export function loopDevices(): string[] {
  const testDisks = path.join(tmpdir(), 'stowage-loop-');
  return readdirSync('/sys/block').filter((d) => {
    if (!d.startsWith('loop')) return false;
    try {
      return !readFileSync(`/sys/block/${d}/loop/backing_file`, 'utf8').trim().startsWith(testDisks);
    } catch {
      return false; // not attached
    }
  });
}

export function mountsBelow(prefix: string): string[] {
  return readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1] ?? '').filter((m) => m.startsWith(prefix));
}

/** Removes a directory tree the DaemonSet's hostPath created: empty directories only, nothing mounted. */
export async function rmdirTree(dir: string): Promise<void> {
  if (!existsSync(dir) || mountsBelow(`${dir}/`).length > 0) return;
  const walk = async (d: string): Promise<void> => {
    for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) await walk(path.join(d, e.name));
    await rmdir(d).catch(() => undefined);
  };
  await walk(dir);
}

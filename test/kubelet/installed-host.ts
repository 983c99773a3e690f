// What the installed stack does to this host, as the kubelet tests of an installed Stowage check it
// (installed-stack.test.ts, release-install.test.ts): its containerised processes, its mounts, loop
// devices, and the host directories its node DaemonSet shares or creates.

import { readFileSync, readdirSync, readlinkSync, existsSync } from 'node:fs';
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
/** The agent's state under AGENT_ROOT (render.ts: `--root=<AGENT_ROOT>/disks`, `--pool-root=<AGENT_ROOT>`, pools at <pool-root>/pools/<pool>). */
export const AGENT_STATE_DIRS = [`${AGENT_ROOT}/disks`, `${AGENT_ROOT}/pools`];

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
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1] ?? '')
    .filter((m) => m.startsWith(prefix));
}

/** Removes a directory tree the DaemonSet's hostPath created: empty directories only, nothing mounted. */
export async function rmdirTree(dir: string): Promise<void> {
  if (!existsSync(dir) || mountsBelow(`${dir}/`).length > 0) return;
  const walk = async (d: string): Promise<void> => {
    for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) await walk(path.join(d, e.name));
    // Removes only empty directories: one that is not empty is left, on purpose.
    await rmdir(d).catch(() => undefined);
  };
  await walk(dir);
}

/** Every mount, in any process's mount namespace, whose source is one of `devices`: "mountpoint (source, pid)". */
export function mountsOfDevices(devices: readonly string[]): string[] {
  const found = new Set<string>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    let text: string;
    try {
      text = readFileSync(`/proc/${e}/mountinfo`, 'utf8');
    } catch {
      continue; // exited
    }
    for (const line of text.split('\n')) {
      // mountinfo: ... mountpoint ... - fstype source options
      const [before, after] = line.split(' - ');
      const source = after?.split(' ')[1];
      if (source && devices.includes(source)) found.add(`${before.split(' ')[4]} (${source}, pid ${e})`);
    }
  }
  return [...found].sort();
}

/** Processes with one of `devices` open (an fd on it), and what /sys says holds it (device-mapper, md). */
export function holdersOf(devices: readonly string[]): string[] {
  const held: string[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${e}/fd`);
    } catch {
      continue; // exited, or not ours to read
    }
    for (const fd of fds) {
      try {
        const target = readlinkSync(`/proc/${e}/fd/${fd}`);
        if (devices.includes(target)) held.push(`${target} open by pid ${e} (${readFileSync(`/proc/${e}/comm`, 'utf8').trim()})`);
      } catch {
        /* closed meanwhile */
      }
    }
  }
  for (const d of devices) {
    const holders = `/sys/block/${path.basename(d)}/holders`;
    if (existsSync(holders)) for (const h of readdirSync(holders)) held.push(`${d} held by ${h}`);
  }
  return held;
}

/** Every file and directory below `dir` (relative paths), or [] when `dir` does not exist. */
export function entriesBelow(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      out.push(path.relative(dir, path.join(d, e.name)));
      if (e.isDirectory()) walk(path.join(d, e.name));
    }
  };
  walk(dir);
  return out.sort();
}

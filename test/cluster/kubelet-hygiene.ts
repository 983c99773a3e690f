// Host hygiene for test runs that touch the machine itself (the real kubelet node above all):
// nothing may leave the machine, and nothing may stay behind. A HostSnapshot records, at the start of
// a run, the outgoing packet counter of every non-loopback interface, the set of network interfaces,
// every writable sysctl, the mount table, the attached loop devices and the harness's own kind of
// processes; hostChanges() lists every difference at the end. test/support/global-hooks.ts takes the
// snapshot before the first test and fails the run when anything differs after the last one, in
// `make test` (STOWAGE_TEST_HYGIENE=1) and in every run that started the real kubelet node.

import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';

/** Writable sysctls that move on their own (counters, PID cursor, per-boot randomness). */
const VOLATILE_SYSCTLS = [
  /^kernel\/ns_last_pid$/,
  /^kernel\/random\//,
  /^kernel\/hung_task_/,
  /^fs\/(dentry-state|inode-nr|inode-state|file-nr|aio-nr)$/,
  /^net\/netfilter\/nf_conntrack_count$/,
  /^vm\/(drop_caches|compact_memory|stat_refresh)$/,
  /^net\/ipv4\/route\/flush$/,
  /^net\/ipv6\/route\/flush$/,
  /\/stable_secret$/,
  /^kernel\/perf_event_max_sample_rate$/, // the kernel lowers it itself when sampling runs long
  /^kernel\/tainted$/, // set by the kernel on a WARN; an observation, nothing a test could undo
];

/** Process names of the harness's long-running components. */
const COMPONENT_COMMS = new Set([
  'etcd',
  'kube-apiserver',
  'kube-controller',
  'kube-scheduler',
  'kubelet',
  'containerd',
  'containerd-shim',
  'containerd-shim-runc-v2',
  'runc',
  'pause',
  'prometheus',
]);

export interface HostSnapshot {
  txPackets: Record<string, number>;
  interfaces: string[];
  sysctls: Map<string, string>;
  mounts: string[];
  loopDevices: string[];
  componentPids: Set<number>;
}

/** Outgoing packets per non-loopback interface, from /proc/net/dev. */
export function txPacketCounters(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of fs.readFileSync('/proc/net/dev', 'utf8').split('\n').slice(2)) {
    const m = /^\s*([^:\s]+):\s*(.*)$/.exec(line);
    if (!m || m[1] === 'lo') continue;
    const fields = m[2].trim().split(/\s+/).map(Number);
    out[m[1]] = fields[9]!; // receive: 8 fields; transmit: bytes, packets, ...
  }
  return out;
}

export function networkInterfaces(): string[] {
  return fs.readdirSync('/sys/class/net').sort();
}

function walkSysctls(dir: string, rel: string, out: Map<string, string>): void {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    const full = path.join(dir, e.name);
    const key = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) {
      walkSysctls(full, key, out);
      continue;
    }
    if (VOLATILE_SYSCTLS.some((re) => re.test(key))) continue;
    try {
      if ((fs.statSync(full).mode & 0o200) === 0) continue; // read-only: observations, not settings
      out.set(key, fs.readFileSync(full, 'utf8').trim());
    } catch {
      /* write-only or unreadable */
    }
  }
}

/** Every readable, writable sysctl under /proc/sys, keyed by its path below /proc/sys. */
export function sysctlSnapshot(): Map<string, string> {
  const out = new Map<string, string>();
  walkSysctls('/proc/sys', '', out);
  return out;
}

/** Mounts as "source target fstype", in table order. */
export function mountTable(): string[] {
  return fs
    .readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ').slice(0, 3).join(' '));
}

export function attachedLoopDevices(): string[] {
  const out: string[] = [];
  for (const name of fs.readdirSync('/sys/block')) {
    if (!name.startsWith('loop')) continue;
    try {
      const backing = fs.readFileSync(`/sys/block/${name}/loop/backing_file`, 'utf8').trim();
      out.push(`/dev/${name} ${backing}`);
    } catch {
      /* not attached */
    }
  }
  return out.sort();
}

export function componentPids(): Set<number> {
  const out = new Set<number>();
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const comm = fs.readFileSync(`/proc/${e}/comm`, 'utf8').trim();
      if (COMPONENT_COMMS.has(comm)) out.add(Number(e));
    } catch {
      /* gone */
    }
  }
  return out;
}

export function takeHostSnapshot(): HostSnapshot {
  return {
    txPackets: txPacketCounters(),
    interfaces: networkInterfaces(),
    sysctls: sysctlSnapshot(),
    mounts: mountTable(),
    loopDevices: attachedLoopDevices(),
    componentPids: componentPids(),
  };
}

function describeProcess(pid: number): string {
  try {
    return `${pid} ${fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim().slice(0, 200)}`;
  } catch {
    return `${pid} (gone)`;
  }
}

// Directories of this run's harness (state dirs of the control plane and the kubelet node, kubelet's
// root dir): processes and mounts mentioning them are this run's, whatever else runs on the machine.
const runDirs = new Set<string>();

/** Marks `dir` as this run's, so hostChanges() attributes processes and mounts under it to the run. */
export function registerRunDir(dir: string): void {
  runDirs.add(dir);
}

function commandLine(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return '';
  }
}

const underRunDir = (text: string) => [...runDirs].some((d) => text.includes(d));

/**
 * Everything that differs from `before`: one human-readable line per difference. Packet counters,
 * interfaces and sysctls are machine-wide by nature. Processes and mounts count when they belong to
 * this run (registerRunDir); with `machineWide`, every new mount and loop device counts too — right for
 * CI, where nothing else runs, too strict where other people's tests run beside this one.
 */
export function hostChanges(
  before: HostSnapshot,
  after: HostSnapshot = takeHostSnapshot(),
  opts: { machineWide?: boolean } = {},
): string[] {
  const out: string[] = [];
  for (const [iface, n] of Object.entries(after.txPackets)) {
    const was = before.txPackets[iface];
    if (was === undefined) out.push(`interface ${iface} appeared and sent ${n} packets`);
    else if (n !== was) out.push(`interface ${iface} sent ${n - was} packets (tx counter ${was} -> ${n})`);
  }
  const ifBefore = new Set(before.interfaces);
  const ifAfter = new Set(after.interfaces);
  for (const i of after.interfaces) if (!ifBefore.has(i)) out.push(`network interface ${i} left behind`);
  for (const i of before.interfaces) if (!ifAfter.has(i)) out.push(`network interface ${i} disappeared`);
  for (const [key, value] of after.sysctls) {
    const was = before.sysctls.get(key);
    if (was === undefined) {
      // Per-interface sysctls of a new interface are reported through the interface already.
      if (![...ifAfter].some((i) => !ifBefore.has(i) && key.split('/').includes(i)))
        out.push(`sysctl ${key.replace(/\//g, '.')} appeared (${value})`);
    } else if (was !== value) out.push(`sysctl ${key.replace(/\//g, '.')} changed: ${JSON.stringify(was)} -> ${JSON.stringify(value)}`);
  }
  const mountsBefore = new Set(before.mounts);
  for (const m of after.mounts) if (!mountsBefore.has(m) && (opts.machineWide || underRunDir(m))) out.push(`mount left behind: ${m}`);
  const loopsBefore = new Set(before.loopDevices);
  for (const l of after.loopDevices)
    if (!loopsBefore.has(l) && (opts.machineWide || underRunDir(l))) out.push(`loop device left attached: ${l}`);
  for (const pid of after.componentPids) {
    if (!before.componentPids.has(pid) && underRunDir(commandLine(pid))) out.push(`process left running: ${describeProcess(pid)}`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Sysctls kubelet sets on start (pkg/kubelet/cm setupKernelTunables, protectKernelDefaults=false).

export const KUBELET_TUNED_SYSCTLS = [
  'vm/overcommit_memory',
  'vm/panic_on_oom',
  'kernel/panic',
  'kernel/panic_on_oops',
  'kernel/keys/root_maxkeys',
  'kernel/keys/root_maxbytes',
];

export function readSysctls(keys: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of keys) out[k] = fs.readFileSync(path.join('/proc/sys', k), 'utf8').trim();
  return out;
}

/** Writes back every value in `saved` that differs now. Returns the keys it restored. */
export async function restoreSysctls(saved: Record<string, string>): Promise<string[]> {
  const restored: string[] = [];
  for (const [k, v] of Object.entries(saved)) {
    const file = path.join('/proc/sys', k);
    const now = (await fsp.readFile(file, 'utf8')).trim();
    if (now !== v) {
      await fsp.writeFile(file, `${v}\n`);
      restored.push(k);
    }
  }
  return restored;
}

export function restoreSysctlsSync(saved: Record<string, string>): void {
  for (const [k, v] of Object.entries(saved)) {
    try {
      const file = path.join('/proc/sys', k);
      if (fs.readFileSync(file, 'utf8').trim() !== v) fs.writeFileSync(file, `${v}\n`);
    } catch {
      /* best effort in an exit hook */
    }
  }
}

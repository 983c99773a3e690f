// One real node for the local control plane (DESIGN.md §5, issue 8): kubelet v1.20.2 built from the
// same Debian source tree as the control plane (hack/build-control-plane.sh kubelet), Debian's
// containerd and runc, and images built locally (kubelet-images.ts). Pods on it really run, and
// volumes are really mounted by kubelet under /var/lib/kubelet, the root dir CSI node plugins expect.
//
// What running it on this machine taught us, and how it is handled here:
// - runc cannot raise oom_score_adj without CAP_SYS_RESOURCE: containerd's CRI config sets
//   `restrict_oom_score_adj = true`. cgroup driver `cgroupfs` (cgroup v1, no systemd).
// - kubelet refuses a loopback --node-ip, so the node runs with `--cloud-provider=external` and the
//   harness plays the cloud-controller-manager: it creates the Node with address 127.0.0.1 before
//   kubelet registers (kubelet keeps provider-set addresses) and removes the "uninitialized" taint.
//   The API server already prefers InternalIP (control-plane.ts), so it never resolves names via DNS.
// - kubelet 1.20's AWS credential provider probes the cloud metadata address: AWS_EC2_METADATA_DISABLED.
// - Nothing may leave the machine: containerd and kubelet get a proxy that is a closed loopback port,
//   test pods use the host network and `imagePullPolicy: Never`; the CNI network (needed only for the
//   node to report NetworkReady) is a bridge with no gateway, no masquerade and no route out, and its
//   IPAM state lives in the state dir. kubelet's iptables chains are off (makeIPTablesUtilChains).
//   The host has no route to the pod subnet, so kubelet's probes of a pod-network pod (its pod IP)
//   would follow the default route off the machine: an `unreachable` route for the subnet makes
//   them fail locally, for the node's lifetime.
// - kubelet sets a few kernel tunables on start (vm.overcommit_memory, kernel.panic, ...): they are
//   saved before and restored on stop.
//
// Everything else lives in a temporary state dir (containerd root/state/socket, runc root, CNI config,
// kubelet config and certificates, logs). Processes are started and stopped by PID (under
// `setpriv --pdeathsig KILL`); containerd's shims, which outlive containerd by design, are found by the
// socket path in their command line. stop() removes every container, unmounts what kubelet and
// containerd mounted, removes cgroups, directories, the bridge and the Node, and restores sysctls.
// Only one such node can run per machine (kubelet 1.20 writes /var/log/pods whatever its root, and the
// CNI bridge is one): a lock file under /run serialises runs, and a run that died without stop() is
// cleaned up by the next start(). kubelet's root dir is /var/lib/kubelet unless a test asks for
// another (`rootDir`: distributions such as k0s keep it elsewhere, and Stowage must follow).
// Registries: containerd reads a hosts directory (certs.d) in the state dir; trustRegistry() lets it
// pull over plain HTTP from a loopback registry (kubelet-registry.ts), which is the only place it
// can pull from.
// STOWAGE_TEST_KUBELET_LOG_DIR=DIR keeps kubelet's and containerd's logs there after stop().

import { spawn, execFile, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { defaultCacheBinDir, type ControlPlane } from './control-plane.js';
import { waitNodeSchedulable } from './nodes.js';
import { isAlive, isExecutable, sleep, tail } from './host.js';
import { importTestImages, PAUSE_IMAGE } from './kubelet-images.js';
import { KUBELET_TUNED_SYSCTLS, readSysctls, registerRunDir, restoreSysctls, restoreSysctlsSync } from './kubelet-hygiene.js';

const exec = promisify(execFile);

/** kubelet's root dir unless KubeletNodeOptions.rootDir says otherwise. */
export const KUBELET_ROOT_DIR = '/var/lib/kubelet';
/** The real node stays up for the rest of a test run; this taint keeps other tests' pods (and
 *  DaemonSets) off it. Pods meant for it tolerate it (test/kubelet/pods.ts). */
export const REAL_NODE_TAINT = { key: 'stowage.dev/real-kubelet', value: 'true', effect: 'NoSchedule' } as const;
/** Directories kubelet 1.20 writes outside its root dir (hard-coded there). */
const KUBELET_LOG_DIRS = ['/var/log/pods', '/var/log/containers'];
/** containerd 1.6 keeps shim sockets under /run/containerd/s whatever its state dir is. */
const CONTAINERD_RUN_DIR = '/run/containerd';
const LOCK_FILE = '/run/stowage-kubelet-node.lock';
const MARKER = '.stowage-test-harness';
const STATE_PREFIX = 'stowage-kubelet-';
const CNI_BRIDGE = 'stowage-cni0';
/** Where CRI keeps pod network namespaces and libcni its result cache (both fixed in containerd 1.6). */
const CNI_HOST_DIRS = ['/run/netns', '/var/lib/cni'];
const CNI_SUBNET = '10.244.250.0/24';
const SETPRIV = '/usr/bin/setpriv';
const TOOLS = [
  '/usr/bin/containerd',
  '/usr/bin/ctr',
  '/usr/bin/containerd-shim-runc-v2',
  '/usr/sbin/runc',
  '/usr/lib/cni/bridge',
  '/usr/lib/cni/host-local',
  '/usr/lib/cni/loopback',
];
const READY_TIMEOUT_MS = 120_000;
const LOCK_WAIT_MS = 10 * 60_000;
const STOP_GRACE_MS = 15_000;

export interface KubeletNodeOptions {
  /** Node name (default: a unique `kubelet-xxxxxx`). */
  nodeName?: string;
  /** Directory holding `kubelet` (default: $KUBEBUILDER_ASSETS, then the build cache). */
  binDir?: string;
  /** kubelet's --root-dir (default {@link KUBELET_ROOT_DIR}); made and removed by the harness, refused if it exists without its marker. */
  rootDir?: string;
  log?: (line: string) => void;
}

interface Proc {
  name: 'containerd' | 'kubelet';
  child: ChildProcess;
  pid: number;
  exited: Promise<void>;
  hasExited: boolean;
}

interface HostBaseline {
  /** Directories that did not exist before and are removed on stop. */
  createdDirs: string[];
  /** cgroup directories `<hierarchy>/kubepods` that did not exist before. */
  createdCgroups: string[];
  /** Kernel tunables kubelet may change, as they were. */
  sysctls: Record<string, string>;
}

const live = new Set<KubeletNode>();
let exitHookInstalled = false;

/** A loopback port nobody listens on (bound, then released): the proxy that makes pulls fail locally. */
async function unusedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen({ host: '127.0.0.1', port: 0 }, () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

/** `/a/b/c` -> [`/a/b`, `/a`] (not `/`). */
function ancestors(dir: string): string[] {
  const out: string[] = [];
  for (let d = path.dirname(dir); d !== '/'; d = path.dirname(d)) out.push(d);
  return out;
}

/** PIDs whose command line mentions `needle`. */
function pidsMentioning(needle: string): number[] {
  const out: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0').join(' ').includes(needle)) out.push(Number(e));
    } catch {
      /* gone */
    }
  }
  return out;
}

/** Mount points at or below `dir`, deepest first. */
function mountsUnder(dir: string): string[] {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  return fs
    .readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ')[1].replace(/\\040/g, ' ').replace(/\\011/g, '\t').replace(/\\134/g, '\\'))
    .filter((m) => m === dir || m.startsWith(prefix))
    .sort((a, b) => b.length - a.length);
}

async function unmountUnder(dir: string): Promise<void> {
  for (let round = 0; round < 5; round++) {
    const mounts = mountsUnder(dir);
    if (mounts.length === 0) return;
    for (const m of mounts) await exec('umount', [m]).catch(() => exec('umount', ['--lazy', m]).catch(() => undefined));
  }
  const left = mountsUnder(dir);
  if (left.length > 0) throw new Error(`kubelet-node: could not unmount ${left.join(', ')}`);
}

/** rm -rf that refuses to descend into anything still mounted (it would delete a volume's data). */
async function removeTree(dir: string): Promise<void> {
  if (!fs.existsSync(dir)) return;
  await unmountUnder(dir);
  await fsp.rm(dir, { recursive: true, force: true });
}

function removeTreeSync(dir: string): void {
  try {
    for (const m of mountsUnder(dir)) {
      try {
        execFileSync('umount', ['--lazy', m], { stdio: 'ignore' });
      } catch {
        /* not mounted any more */
      }
    }
    if (mountsUnder(dir).length === 0) fs.rmSync(dir, { recursive: true, force: true });
  } catch {
    /* best effort in an exit hook */
  }
}

/** cgroup v1 hierarchies (and the v2 one), e.g. /sys/fs/cgroup/memory. */
function cgroupHierarchies(): string[] {
  return fs
    .readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[2] === 'cgroup' || f[2] === 'cgroup2')
    .map((f) => f[1]);
}

/** rmdir a cgroup tree bottom-up (cgroup directories can only be removed empty of children). */
async function removeCgroupTree(dir: string): Promise<void> {
  let entries: fs.Dirent[];
  try {
    entries = await fsp.readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) if (e.isDirectory()) await removeCgroupTree(path.join(dir, e.name));
  // Whatever still runs in a pod cgroup is a container of this node that outlived its shim.
  try {
    for (const pid of (await fsp.readFile(path.join(dir, 'cgroup.procs'), 'utf8')).split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  } catch {
    /* no such file in this hierarchy */
  }
  for (let attempt = 0; attempt < 20; attempt++) {
    try {
      await fsp.rmdir(dir);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      await sleep(100); // tasks still leaving
    }
  }
  throw new Error(`kubelet-node: could not remove cgroup ${dir} (processes still in it?)`);
}

async function deleteLinkIfPresent(name: string): Promise<void> {
  if (fs.existsSync(`/sys/class/net/${name}`)) await exec('ip', ['link', 'delete', name]);
}

/** The pod subnet's `unreachable` route: packets to pod IPs fail on the host instead of leaving it. */
async function addPodSubnetRoute(): Promise<void> {
  await exec('ip', ['route', 'replace', 'unreachable', CNI_SUBNET]);
}

async function deletePodSubnetRoute(): Promise<void> {
  const { stdout } = await exec('ip', ['route', 'show', 'type', 'unreachable', CNI_SUBNET]);
  if (stdout.trim()) await exec('ip', ['route', 'del', 'unreachable', CNI_SUBNET]);
}

/** Finds kubelet: $KUBEBUILDER_ASSETS, then the build cache. */
export function findKubelet(binDir?: string): string {
  const dirs = binDir ? [binDir] : [...(process.env.KUBEBUILDER_ASSETS ? [process.env.KUBEBUILDER_ASSETS] : []), defaultCacheBinDir()];
  const hit = dirs.map((d) => path.join(path.resolve(d), 'kubelet')).find(isExecutable);
  if (!hit) {
    throw new Error(
      `kubelet-node: no kubelet in ${dirs.join(', ')}. Run hack/install-test-deps.sh ` +
        `(or \`bash hack/build-control-plane.sh kubelet\`, about 10 minutes on two cores the first time).`,
    );
  }
  return hit;
}

// ---------------------------------------------------------------------------------------------
// The machine-wide lock, and cleaning up after a run that died.

interface LockContent {
  pid: number;
  stateDir: string;
  /** kubelet's root dir of that run (absent in locks of older harnesses: the default). */
  rootDir?: string;
}

function readLock(): LockContent | undefined {
  try {
    return JSON.parse(fs.readFileSync(LOCK_FILE, 'utf8')) as LockContent;
  } catch {
    return undefined;
  }
}

async function acquireLock(stateDir: string, rootDir: string, log: (l: string) => void): Promise<void> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  let announced = false;
  for (;;) {
    try {
      const fd = fs.openSync(LOCK_FILE, 'wx', 0o644);
      fs.writeSync(fd, JSON.stringify({ pid: process.pid, stateDir, rootDir } satisfies LockContent));
      fs.closeSync(fd);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const holder = readLock();
    if (!holder || !isAlive(holder.pid)) {
      log(`cleaning up after an earlier run that did not stop (${JSON.stringify(holder)})`);
      await cleanupDeadRun(holder);
      await fsp.rm(LOCK_FILE, { force: true });
      continue;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `kubelet-node: another test run (pid ${holder.pid}) has held ${LOCK_FILE} for ${LOCK_WAIT_MS / 60000} minutes; only one test kubelet runs per machine`,
      );
    }
    if (!announced) log(`waiting for the kubelet node of pid ${holder.pid} to stop (${LOCK_FILE})`);
    announced = true;
    await sleep(2000);
  }
}

/** Undoes what a killed run left: processes, mounts, cgroups, directories, sysctls, the bridge. */
async function cleanupDeadRun(holder: LockContent | undefined): Promise<void> {
  const stateDir = holder?.stateDir;
  let baseline: HostBaseline | undefined;
  if (stateDir) {
    try {
      baseline = JSON.parse(await fsp.readFile(path.join(stateDir, 'baseline.json'), 'utf8')) as HostBaseline;
    } catch {
      /* died before writing it */
    }
    const victims = pidsMentioning(stateDir);
    for (const pid of victims) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    const until = Date.now() + 5000;
    while (victims.some(isAlive) && Date.now() < until) await sleep(100);
  }
  const rootDir = holder?.rootDir ?? KUBELET_ROOT_DIR;
  if (fs.existsSync(path.join(rootDir, MARKER))) await removeTree(rootDir);
  if (stateDir && path.basename(stateDir).startsWith(STATE_PREFIX)) await removeTree(stateDir);
  if (baseline) {
    for (const cg of baseline.createdCgroups) await removeCgroupTree(cg).catch(() => undefined);
    for (const d of baseline.createdDirs) await removeTree(d).catch(() => undefined);
    await restoreSysctls(baseline.sysctls);
  }
  await deleteLinkIfPresent(CNI_BRIDGE).catch(() => undefined);
  await deletePodSubnetRoute().catch(() => undefined);
}

// ---------------------------------------------------------------------------------------------

export class KubeletNode {
  readonly nodeName: string;
  readonly stateDir: string;
  readonly containerdSocket: string;
  /** kubelet's --root-dir. */
  readonly rootDir: string;
  /** Port of kubelet's API (on 127.0.0.1). */
  readonly kubeletPort: number;
  readonly healthzPort: number;
  /** Cold-start time of start(), milliseconds (containerd, images, kubelet, node Ready). */
  startupMs = 0;

  private readonly cp: ControlPlane;
  private readonly kubeletBin: string;
  private readonly log: (line: string) => void;
  private readonly procs = new Map<Proc['name'], Proc>();
  private baseline: HostBaseline = { createdDirs: [], createdCgroups: [], sysctls: {} };
  private proxy = '';
  private stopped = false;

  private constructor(
    cp: ControlPlane,
    init: {
      nodeName: string;
      stateDir: string;
      rootDir: string;
      kubeletBin: string;
      kubeletPort: number;
      healthzPort: number;
      log: (l: string) => void;
    },
  ) {
    this.cp = cp;
    this.rootDir = init.rootDir;
    this.nodeName = init.nodeName;
    this.stateDir = init.stateDir;
    this.kubeletBin = init.kubeletBin;
    this.kubeletPort = init.kubeletPort;
    this.healthzPort = init.healthzPort;
    this.log = init.log;
    this.containerdSocket = path.join(init.stateDir, 'containerd', 'containerd.sock');
  }

  static async start(cp: ControlPlane, opts: KubeletNodeOptions = {}): Promise<KubeletNode> {
    const t0 = Date.now();
    const log = opts.log ?? (() => {});
    const kubeletBin = findKubelet(opts.binDir);
    const missing = TOOLS.filter((t) => !isExecutable(t));
    if (missing.length > 0)
      throw new Error(
        `kubelet-node: missing ${missing.join(', ')}; run hack/install-test-deps.sh (containerd, runc, containernetworking-plugins)`,
      );
    if (process.getuid?.() !== 0) throw new Error('kubelet-node: kubelet and containerd need root');

    const rootDir = opts.rootDir ?? KUBELET_ROOT_DIR;
    if (!path.isAbsolute(rootDir) || path.normalize(rootDir) !== rootDir || rootDir === '/')
      throw new Error(`kubelet-node: rootDir ${rootDir} must be an absolute, normalized directory other than /`);
    const stateDir = await fsp.mkdtemp(path.join(os.tmpdir(), STATE_PREFIX));
    registerRunDir(stateDir);
    registerRunDir(rootDir);
    let node: KubeletNode | undefined;
    let locked = false;
    try {
      await acquireLock(stateDir, rootDir, log);
      locked = true;
      if (fs.existsSync(rootDir) && !fs.existsSync(path.join(rootDir, MARKER))) {
        throw new Error(
          `kubelet-node: ${rootDir} exists and was not made by this harness (is a real kubelet installed here?); refusing to use it`,
        );
      }
      if (fs.existsSync(rootDir)) await removeTree(rootDir); // our own, from a dead run
      node = new KubeletNode(cp, {
        nodeName: opts.nodeName ?? `kubelet-${randomBytes(3).toString('hex')}`,
        stateDir,
        rootDir,
        kubeletBin,
        kubeletPort: await unusedPort(),
        healthzPort: await unusedPort(),
        log,
      });
      live.add(node);
      installExitHook();
      await node.recordBaseline();
      node.proxy = `http://127.0.0.1:${await unusedPort()}`;
      await node.startContainerd();
      const images = await importTestImages(node.containerdSocket, stateDir);
      log(`images imported: ${Object.keys(images).join(', ')} (${Date.now() - t0} ms)`);
      await node.writeKubeletFiles();
      await addPodSubnetRoute();
      await node.registerNode();
      await node.startKubelet();
      await node.waitReady();
      node.startupMs = Date.now() - t0;
      log(`node ${node.nodeName} ready in ${node.startupMs} ms`);
      return node;
    } catch (e) {
      if (node) await node.stop().catch((err) => log(`stop after failed start: ${(err as Error).message}`));
      else {
        if (locked) await fsp.rm(LOCK_FILE, { force: true });
        await fsp.rm(stateDir, { recursive: true, force: true });
      }
      throw e;
    }
  }

  // -------------------------------------------------------------------------------------------

  private path(...p: string[]): string {
    return path.join(this.stateDir, ...p);
  }

  private async recordBaseline(): Promise<void> {
    const createdDirs: string[] = [];
    // The root's parents too (a root such as /var/lib/k0s/kubelet): the first missing ancestor is removed on stop.
    const missingRoot = [this.rootDir, ...ancestors(this.rootDir)].filter((d) => !fs.existsSync(d)).pop();
    // kubelet 1.20 keeps its device-plugin socket in /var/lib/kubelet/device-plugins whatever its root
    // (a constant of the device-plugin API), so a moved root still creates the default one.
    const defaultRoot = this.rootDir === KUBELET_ROOT_DIR ? [] : [KUBELET_ROOT_DIR];
    for (const d of [...(missingRoot ? [missingRoot] : []), ...defaultRoot, ...KUBELET_LOG_DIRS, CONTAINERD_RUN_DIR, ...CNI_HOST_DIRS])
      if (!fs.existsSync(d)) createdDirs.push(d);
    const createdCgroups = cgroupHierarchies()
      .map((h) => path.join(h, 'kubepods'))
      .filter((d) => !fs.existsSync(d));
    this.baseline = { createdDirs, createdCgroups, sysctls: readSysctls(KUBELET_TUNED_SYSCTLS) };
    await fsp.writeFile(this.path('baseline.json'), JSON.stringify(this.baseline));
    await fsp.mkdir(this.rootDir, { recursive: true });
    await fsp.writeFile(path.join(this.rootDir, MARKER), `made by the Stowage test harness (pid ${process.pid}, ${this.stateDir})\n`);
  }

  private logFile(name: string): string {
    return this.path('logs', `${name}.log`);
  }

  private async spawnProc(name: Proc['name'], bin: string, args: string[], env: Record<string, string>): Promise<Proc> {
    await fsp.mkdir(this.path('logs'), { recursive: true });
    const fd = fs.openSync(this.logFile(name), 'a');
    let child: ChildProcess;
    try {
      const [cmd, argv] = isExecutable(SETPRIV) ? [SETPRIV, ['--pdeathsig', 'KILL', '--', bin, ...args]] : [bin, args];
      child = spawn(cmd, argv, { stdio: ['ignore', fd, fd], detached: true, cwd: this.stateDir, env });
    } finally {
      fs.closeSync(fd);
    }
    if (child.pid === undefined) {
      const err = await new Promise<Error>((r) => child.once('error', r));
      throw new Error(`kubelet-node: could not start ${name}: ${err.message}`);
    }
    const p: Proc = { name, child, pid: child.pid, hasExited: false, exited: Promise.resolve() };
    p.exited = new Promise<void>((resolve) =>
      child.once('exit', () => {
        p.hasExited = true;
        resolve();
      }),
    );
    child.on('error', () => {});
    child.unref();
    this.procs.set(name, p);
    await fsp.writeFile(this.path(`${name}.pid`), `${p.pid}\n`);
    return p;
  }

  private async stopProc(name: Proc['name']): Promise<void> {
    const p = this.procs.get(name);
    if (!p || p.hasExited) return;
    try {
      process.kill(p.pid, 'SIGTERM');
    } catch {
      /* gone */
    }
    let timer: NodeJS.Timeout | undefined;
    const graceful = await Promise.race([
      p.exited.then(() => true),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(false), STOP_GRACE_MS))),
    ]);
    clearTimeout(timer);
    if (!graceful) {
      this.log(`${name} (pid ${p.pid}) ignored SIGTERM for ${STOP_GRACE_MS / 1000} s; SIGKILL`);
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      await p.exited;
    }
  }

  private async waitUntil(name: Proc['name'], what: string, probe: () => Promise<boolean>, timeoutMs = READY_TIMEOUT_MS): Promise<void> {
    const t0 = Date.now();
    let last = '';
    while (Date.now() - t0 < timeoutMs) {
      const p = this.procs.get(name);
      if (p?.hasExited)
        throw new Error(
          `kubelet-node: ${name} exited before ${what}. Last lines of ${this.logFile(name)}:\n${await tail(this.logFile(name), 30)}`,
        );
      try {
        if (await probe()) {
          this.log(`${name}: ${what} after ${Date.now() - t0} ms`);
          return;
        }
      } catch (e) {
        last = (e as Error).message;
      }
      await sleep(250);
    }
    throw new Error(
      `kubelet-node: ${name} not ${what} within ${timeoutMs / 1000} s${last ? ` (${last})` : ''}. Last lines of ${this.logFile(name)}:\n${await tail(this.logFile(name), 30)}`,
    );
  }

  /** Environment of containerd and kubelet: any outgoing HTTP(S) goes to a closed loopback port. */
  private env(extra: Record<string, string> = {}): Record<string, string> {
    return {
      PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      HOME: this.stateDir,
      HTTP_PROXY: this.proxy,
      HTTPS_PROXY: this.proxy,
      http_proxy: this.proxy,
      https_proxy: this.proxy,
      NO_PROXY: '127.0.0.1,localhost',
      no_proxy: '127.0.0.1,localhost',
      ...extra,
    };
  }

  // -------------------------------------------------------------------------------------------
  // containerd

  private async startContainerd(): Promise<void> {
    const dir = this.path('containerd');
    const cniConf = this.path('cni', 'net.d');
    await fsp.mkdir(dir, { recursive: true });
    await fsp.mkdir(cniConf, { recursive: true });
    await fsp.writeFile(
      path.join(cniConf, '10-stowage-test.conflist'),
      JSON.stringify(
        {
          cniVersion: '0.4.0',
          name: 'stowage-test',
          plugins: [
            {
              // An isolated bridge: no gateway, no masquerade, no routes — pods on it reach each other only.
              type: 'bridge',
              bridge: CNI_BRIDGE,
              isGateway: false,
              isDefaultGateway: false,
              ipMasq: false,
              hairpinMode: false,
              ipam: { type: 'host-local', ranges: [[{ subnet: CNI_SUBNET }]], routes: [], dataDir: this.path('cni', 'ipam') },
            },
          ],
        },
        null,
        2,
      ),
    );
    const toml = `version = 2
root = ${JSON.stringify(path.join(dir, 'root'))}
state = ${JSON.stringify(path.join(dir, 'state'))}
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = ${JSON.stringify(this.containerdSocket)}

[ttrpc]
  address = ${JSON.stringify(`${this.containerdSocket}.ttrpc`)}

[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = ${JSON.stringify(path.join(dir, 'opt'))}
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = ${JSON.stringify(PAUSE_IMAGE)}
    # runc cannot raise oom_score_adj here (no CAP_SYS_RESOURCE).
    restrict_oom_score_adj = true
    disable_apparmor = true
    enable_selinux = false
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    max_container_log_line_size = 16384
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          BinaryName = "/usr/sbin/runc"
          Root = ${JSON.stringify(path.join(dir, 'runc'))}
          SystemdCgroup = false
    [plugins."io.containerd.grpc.v1.cri".registry]
      # Read at every pull: trustRegistry() adds a loopback registry while containerd runs.
      config_path = ${JSON.stringify(this.registryHostsDir)}
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = ${JSON.stringify(cniConf)}
      max_conf_num = 1
`;
    const config = path.join(dir, 'config.toml');
    await fsp.writeFile(config, toml);
    await this.spawnProc('containerd', '/usr/bin/containerd', ['--config', config, '--log-level', 'info'], this.env());
    await this.waitUntil('containerd', 'serving', async () => (await this.ctr(['version'], 5000)).code === 0);
  }

  /** containerd's hosts directory (one `<host:port>/hosts.toml` per registry). */
  private get registryHostsDir(): string {
    return this.path('containerd', 'certs.d');
  }

  /**
   * Lets containerd (and so kubelet) pull from the registry at `host` (127.0.0.1:PORT) over plain
   * HTTP, as a cluster's nodes are configured for a mirror. Returns the undo.
   */
  async trustRegistry(host: string): Promise<() => Promise<void>> {
    if (!/^127\.0\.0\.1:\d+$/.test(host)) throw new Error(`kubelet-node: trustRegistry(${host}): only a loopback registry 127.0.0.1:PORT`);
    const dir = path.join(this.registryHostsDir, host);
    await fsp.mkdir(dir, { recursive: true });
    await fsp.writeFile(
      path.join(dir, 'hosts.toml'),
      [`server = "http://${host}"`, '', `[host."http://${host}"]`, '  capabilities = ["pull", "resolve"]', ''].join('\n'),
    );
    return () => fsp.rm(dir, { recursive: true, force: true });
  }

  /** Runs `ctr` against this node's containerd (namespace k8s.io). */
  async ctr(args: string[], timeoutMs = 60_000): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const { stdout, stderr } = await exec('ctr', ['--address', this.containerdSocket, '--namespace', 'k8s.io', ...args], {
        timeout: timeoutMs,
      });
      return { code: 0, stdout, stderr };
    } catch (e) {
      const err = e as { code?: number; stdout?: string; stderr?: string; message: string };
      return { code: typeof err.code === 'number' ? err.code : 1, stdout: err.stdout ?? '', stderr: err.stderr ?? err.message };
    }
  }

  /** Kills and deletes every container containerd still has (kubelet is stopped by then). */
  private async removeAllContainers(): Promise<void> {
    const tasks = (await this.ctr(['tasks', 'list', '--quiet'])).stdout
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
    for (const id of tasks) await this.ctr(['tasks', 'kill', '--signal', 'SIGKILL', id]);
    for (const id of tasks) {
      for (let i = 0; i < 50; i++) {
        if ((await this.ctr(['tasks', 'delete', id])).code === 0) break;
        await sleep(100);
      }
    }
    const containers = (await this.ctr(['containers', 'list', '--quiet'])).stdout
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
    for (const id of containers) await this.ctr(['containers', 'delete', id]);
  }

  // -------------------------------------------------------------------------------------------
  // kubelet

  private async writeKubeletFiles(): Promise<void> {
    const pki = this.path('kubelet', 'pki');
    await fsp.mkdir(pki, { recursive: true, mode: 0o700 });
    const key = path.join(pki, 'kubelet-client.key');
    const csr = path.join(pki, 'kubelet-client.csr');
    const crt = path.join(pki, 'kubelet-client.crt');
    const ext = path.join(pki, 'kubelet-client.ext');
    // The identity the Node authorizer and NodeRestriction admission expect of this node's kubelet.
    await exec('openssl', [
      'req',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      csr,
      '-subj',
      `/O=system:nodes/CN=system:node:${this.nodeName}`,
    ]);
    await fsp.writeFile(
      ext,
      'basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature,keyEncipherment\nextendedKeyUsage = clientAuth\n',
    );
    await exec('openssl', [
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      this.cp.caCertPath,
      '-CAkey',
      this.cp.caKeyPath,
      '-set_serial',
      `0x1${randomBytes(15).toString('hex')}`,
      '-days',
      '30',
      '-out',
      crt,
      '-extfile',
      ext,
    ]);
    await fsp.chmod(key, 0o600);
    await fsp.writeFile(
      this.path('kubelet', 'kubeconfig'),
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        '- name: stowage-test',
        '  cluster:',
        `    server: ${this.cp.server}`,
        `    certificate-authority: ${JSON.stringify(this.cp.caCertPath)}`,
        'users:',
        `- name: ${this.nodeName}`,
        '  user:',
        `    client-certificate: ${JSON.stringify(crt)}`,
        `    client-key: ${JSON.stringify(key)}`,
        'contexts:',
        '- name: stowage-test',
        '  context:',
        '    cluster: stowage-test',
        `    user: ${this.nodeName}`,
        'current-context: stowage-test',
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    const config = {
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      address: '127.0.0.1',
      port: this.kubeletPort,
      readOnlyPort: 0,
      healthzBindAddress: '127.0.0.1',
      healthzPort: this.healthzPort,
      authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: this.cp.caCertPath } },
      authorization: { mode: 'Webhook' },
      cgroupDriver: 'cgroupfs',
      failSwapOn: false,
      makeIPTablesUtilChains: false,
      hairpinMode: 'none',
      // The imported images can never be pulled again: never garbage-collect them.
      imageGCHighThresholdPercent: 100,
      imageGCLowThresholdPercent: 99,
      evictionHard: { 'memory.available': '50Mi', 'nodefs.available': '1%', 'imagefs.available': '1%' },
      resolvConf: '/etc/resolv.conf',
      syncFrequency: '10s',
      fileCheckFrequency: '10s',
      nodeStatusUpdateFrequency: '10s',
      serializeImagePulls: false,
      volumeStatsAggPeriod: '10s',
    };
    await fsp.writeFile(this.path('kubelet', 'config.json'), JSON.stringify(config, null, 2));
    await fsp.mkdir(this.path('kubelet', 'volume-plugins'), { recursive: true });
  }

  /** Plays the cloud-controller-manager's part: the Node exists, with address 127.0.0.1, before kubelet registers. */
  private async registerNode(): Promise<void> {
    const node = {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        name: this.nodeName,
        labels: { 'kubernetes.io/hostname': this.nodeName, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64' },
      },
      spec: { taints: [REAL_NODE_TAINT] },
    };
    const created = await this.cp.request('POST', '/api/v1/nodes', node);
    if (created.status !== 201) throw new Error(`kubelet-node: creating Node ${this.nodeName}: HTTP ${created.status}: ${created.body}`);
    const patched = await this.cp.request(
      'PATCH',
      `/api/v1/nodes/${this.nodeName}/status`,
      {
        status: {
          addresses: [
            { type: 'InternalIP', address: '127.0.0.1' },
            { type: 'Hostname', address: this.nodeName },
          ],
          // kubelet 1.20 reconciles resources into an existing Node's maps and panics on nil ones; it
          // replaces these placeholders with what it measures.
          capacity: { pods: '0' },
          allocatable: { pods: '0' },
        },
      },
      { contentType: 'application/strategic-merge-patch+json' },
    );
    if (patched.status !== 200)
      throw new Error(`kubelet-node: setting the addresses of Node ${this.nodeName}: HTTP ${patched.status}: ${patched.body}`);
  }

  private async startKubelet(): Promise<void> {
    await this.spawnProc(
      'kubelet',
      this.kubeletBin,
      [
        `--config=${this.path('kubelet', 'config.json')}`,
        `--kubeconfig=${this.path('kubelet', 'kubeconfig')}`,
        `--root-dir=${this.rootDir}`,
        `--cert-dir=${this.path('kubelet', 'pki')}`,
        `--hostname-override=${this.nodeName}`,
        '--cloud-provider=external',
        // Without a node IP, kubelet 1.20 looks its node name up in DNS while it builds the Node to
        // register (a query to the machine's nameserver, off the machine). With one, that setter stops
        // early: kubelet rejects a loopback node IP ("Failed to set some node status fields ... can't be
        // loopback address", logged on each status update) and leaves the addresses the harness set.
        '--node-ip=127.0.0.1',
        '--container-runtime=remote',
        `--container-runtime-endpoint=unix://${this.containerdSocket}`,
        `--pod-infra-container-image=${PAUSE_IMAGE}`,
        `--volume-plugin-dir=${this.path('kubelet', 'volume-plugins')}`,
        '--v=2',
      ],
      this.env({ AWS_EC2_METADATA_DISABLED: 'true' }),
    );
  }

  private async waitReady(): Promise<void> {
    await this.waitUntil('kubelet', 'Ready', async () => {
      const res = await this.cp.request('GET', `/api/v1/nodes/${this.nodeName}`);
      return res.status === 200 && (res.json?.status?.conditions ?? []).some((c: any) => c.type === 'Ready' && c.status === 'True');
    });
    await this.removeUninitializedTaint();
    await waitNodeSchedulable(this.cp, this.nodeName, READY_TIMEOUT_MS);
  }

  /** kubelet taints a node it registers with --cloud-provider=external; the harness is that provider. */
  private async removeUninitializedTaint(): Promise<void> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const res = await this.cp.request('GET', `/api/v1/nodes/${this.nodeName}`);
      const taints: any[] = res.json?.spec?.taints ?? [];
      const keep = taints.filter((t) => t.key !== 'node.cloudprovider.kubernetes.io/uninitialized');
      if (keep.length === taints.length) return;
      const patch = [
        { op: 'test', path: '/metadata/resourceVersion', value: res.json.metadata.resourceVersion },
        { op: 'replace', path: '/spec/taints', value: keep },
      ];
      const r = await this.cp.request('PATCH', `/api/v1/nodes/${this.nodeName}`, patch, { contentType: 'application/json-patch+json' });
      if (r.status === 200) return;
      await sleep(200);
    }
    throw new Error(`kubelet-node: could not remove the uninitialized taint of ${this.nodeName}`);
  }

  /** Restarts kubelet alone (containers keep running), as an upgrade or a crash would. */
  async restartKubelet(): Promise<void> {
    await this.stopProc('kubelet');
    await this.startKubelet();
    await this.waitUntil('kubelet', 'healthy again', async () => {
      const res = await fetch(`http://127.0.0.1:${this.healthzPort}/healthz`);
      return res.status === 200;
    });
  }

  /** PIDs of containerd and kubelet while running. */
  pids(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, p] of this.procs) if (!p.hasExited) out[name] = p.pid;
    return out;
  }

  /** Last lines of kubelet's or containerd's log, for failure messages. */
  logTail(name: Proc['name'], lines = 40): Promise<string> {
    return tail(this.logFile(name), lines);
  }

  // -------------------------------------------------------------------------------------------

  /** Stops kubelet and containerd, removes every container, mount, cgroup, directory, interface and
   *  the Node it made, and restores kernel tunables. Idempotent. Throws (after doing everything it can)
   *  when something could not be cleaned. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const problems: string[] = [];
    const step = async (what: string, fn: () => Promise<unknown>) => {
      try {
        await fn();
      } catch (e) {
        problems.push(`${what}: ${(e as Error).message}`);
      }
    };
    await step('stop kubelet', () => this.stopProc('kubelet'));
    if (this.procs.get('containerd') && !this.procs.get('containerd')!.hasExited)
      await step('remove containers', () => this.removeAllContainers());
    await step('stop containerd', () => this.stopProc('containerd'));
    await step('kill shims', async () => {
      const shims = pidsMentioning(this.stateDir);
      for (const pid of shims) process.kill(pid, 'SIGKILL');
      const until = Date.now() + 5000;
      while (shims.some(isAlive) && Date.now() < until) await sleep(100);
    });
    await step(`unmount under ${this.rootDir}`, () => unmountUnder(this.rootDir));
    await step(`unmount under ${this.stateDir}`, () => unmountUnder(this.stateDir));
    for (const cg of this.baseline.createdCgroups) await step(`remove cgroup ${cg}`, () => removeCgroupTree(cg));
    for (const d of this.baseline.createdDirs) await step(`remove ${d}`, () => removeTree(d));
    await step('restore sysctls', async () => {
      const restored = await restoreSysctls(this.baseline.sysctls);
      if (restored.length) this.log(`restored sysctls kubelet changed: ${restored.join(', ')}`);
    });
    await step(`delete ${CNI_BRIDGE}`, () => deleteLinkIfPresent(CNI_BRIDGE));
    await step(`delete the route to ${CNI_SUBNET}`, deletePodSubnetRoute);
    await step('delete Node', async () => {
      const r = await this.cp.request('DELETE', `/api/v1/nodes/${this.nodeName}`).catch(() => undefined);
      if (r && r.status !== 200 && r.status !== 404) throw new Error(`HTTP ${r.status}`);
    });
    const keep = process.env.STOWAGE_TEST_KUBELET_LOG_DIR;
    if (keep) await step(`keep logs in ${keep}`, () => fsp.cp(this.path('logs'), path.join(keep, this.nodeName), { recursive: true }));
    await step(`remove ${this.stateDir}`, () => removeTree(this.stateDir));
    const lock = readLock();
    if (lock?.pid === process.pid && lock.stateDir === this.stateDir) await fsp.rm(LOCK_FILE, { force: true });
    live.delete(this);
    this.log(`node ${this.nodeName} stopped`);
    if (problems.length > 0) throw new Error(`kubelet-node: stop left things behind:\n  ${problems.join('\n  ')}`);
  }

  /** Synchronous last resort (process 'exit'): kill, unmount, remove, restore. */
  stopSync(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const p of this.procs.values()) {
      try {
        if (!p.hasExited) process.kill(p.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    for (const pid of pidsMentioning(this.stateDir)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    removeTreeSync(this.rootDir);
    removeTreeSync(this.stateDir);
    for (const d of this.baseline.createdDirs) removeTreeSync(d);
    for (const cg of this.baseline.createdCgroups) {
      try {
        execFileSync('find', [cg, '-depth', '-type', 'd', '-exec', 'rmdir', '{}', ';'], { stdio: 'ignore' });
      } catch {
        /* best effort */
      }
    }
    restoreSysctlsSync(this.baseline.sysctls);
    try {
      execFileSync('ip', ['link', 'delete', CNI_BRIDGE], { stdio: 'ignore' });
    } catch {
      /* not there */
    }
    try {
      execFileSync('ip', ['route', 'del', 'unreachable', CNI_SUBNET], { stdio: 'ignore' });
    } catch {
      /* not there */
    }
    const lock = readLock();
    if (lock?.pid === process.pid) fs.rmSync(LOCK_FILE, { force: true });
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const n of live) n.stopSync();
  });
}

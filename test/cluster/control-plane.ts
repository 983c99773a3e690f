// A real, local Kubernetes control plane for tests and the local demo (DESIGN.md §5):
// etcd + kube-apiserver + kube-controller-manager + kube-scheduler, all on 127.0.0.1, with a
// throw-away PKI made by the `openssl` CLI. No kubelet: tests register Node objects themselves
// (see nodes.ts), and the controller-manager is told to trust their Ready condition for years.
//
// Binaries: $KUBEBUILDER_ASSETS (envtest layout) and/or the cache filled by
// hack/build-control-plane.sh; etcd falls back to Debian's /usr/bin/etcd. Nothing is built here:
// if something is missing the error says to run hack/install-test-deps.sh.
//
// Processes are only ever signalled by PID. Each child is started under `setpriv --pdeathsig KILL`
// (when util-linux's setpriv exists), so it dies with the Node process even on SIGKILL; a
// process.on('exit') hook SIGKILLs survivors on ordinary exits; pid files let killLeftovers()
// clean up after anything else.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { binaryVersion, flagsFor, type ComponentVersion } from './component-flags.js';
import { isAlive, isExecutable, sleep, tail } from './host.js';

export const KUBERNETES_VERSION = 'v1.20.2';

export interface ControlPlaneOptions {
  /** Where certificates, etcd data, kubeconfigs, logs and pid files go. Kept on stop() when given;
   *  a temporary directory (removed on stop()) otherwise. Reused (PKI and etcd data) when it exists. */
  stateDir?: string;
  /** Directory with kube-apiserver, kube-controller-manager, kube-scheduler, kubectl (and maybe etcd). */
  binDir?: string;
  /** Progress lines (phases and timings). */
  log?: (line: string) => void;
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ApiResponse {
  status: number;
  body: string;
  /** body parsed as JSON when it is JSON, undefined otherwise */
  json: any;
}

type Component = 'etcd' | 'kube-apiserver' | 'kube-controller-manager' | 'kube-scheduler';

interface Binaries {
  etcd: string;
  'kube-apiserver': string;
  'kube-controller-manager': string;
  'kube-scheduler': string;
  kubectl: string;
}

interface Ports {
  etcdClient: number;
  etcdPeer: number;
  apiserver: number;
  controllerManager: number;
  scheduler: number;
}

interface Running {
  name: Component;
  child: ChildProcess;
  pid: number;
  exited: Promise<void>;
  hasExited: boolean;
}

/** gRPC's reconnect backoff tops out at 120 s; a little more for the API server's own checks. */
const ETCD_RECONNECT_TIMEOUT_MS = 180_000;
const READY_TIMEOUT_MS = 90_000;
const STOP_GRACE_MS = 10_000;
const SETPRIV = '/usr/bin/setpriv';

// ---------------------------------------------------------------------------------------------
// Process bookkeeping shared by every ControlPlane in this Node process.

const liveChildren = new Set<Running>();
const tempDirsToRemove = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const r of liveChildren) {
      if (!r.hasExited) {
        try {
          process.kill(r.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
    }
    for (const dir of tempDirsToRemove) {
      try {
        fs.rmSync(dir, { recursive: true, force: true });
      } catch {
        /* best effort */
      }
    }
  });
}

// Ports handed out in this process, so two control planes started together never collide.
const reservedPorts = new Set<number>();

async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = net.createServer();
      srv.unref();
      srv.on('error', reject);
      srv.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
        const addr = srv.address();
        const p = typeof addr === 'object' && addr ? addr.port : 0;
        srv.close(() => resolve(p));
      });
    });
    if (port > 0 && !reservedPorts.has(port)) {
      reservedPorts.add(port);
      return port;
    }
  }
  throw new Error('control-plane: could not find a free port on 127.0.0.1');
}

async function run(cmd: string, args: string[], opts: { input?: string; cwd?: string; timeoutMs?: number } = {}): Promise<KubectlResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    if (opts.timeoutMs) {
      timer = setTimeout(() => {
        if (child.pid !== undefined) {
          try {
            process.kill(child.pid, 'SIGKILL');
          } catch {
            /* gone */
          }
        }
      }, opts.timeoutMs);
    }
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8') + (signal ? `\n(killed by ${signal})` : ''),
      });
    });
    child.stdin.on('error', () => {
      /* process may exit before reading its input */
    });
    child.stdin.end(opts.input ?? '');
  });
}

// ---------------------------------------------------------------------------------------------
// Binaries

export function defaultCacheBinDir(): string {
  const cache = process.env.STOWAGE_CACHE_DIR ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'stowage');
  return path.join(cache, `kubernetes-${KUBERNETES_VERSION}`, 'bin');
}

/** Resolves every binary; throws a message pointing at hack/install-test-deps.sh when one is missing. */
export function findBinaries(binDir?: string): { binDir: string; bins: Binaries } {
  const dirs: string[] = [];
  if (binDir) dirs.push(path.resolve(binDir));
  else {
    if (process.env.KUBEBUILDER_ASSETS) dirs.push(path.resolve(process.env.KUBEBUILDER_ASSETS));
    dirs.push(defaultCacheBinDir());
  }
  const names = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubectl', 'etcd'] as const;
  const found: Partial<Binaries> = {};
  const missing: string[] = [];
  for (const name of names) {
    const candidates = dirs.map((d) => path.join(d, name));
    if (name === 'etcd') candidates.push('/usr/bin/etcd', '/usr/local/bin/etcd');
    const hit = candidates.find(isExecutable);
    if (hit) found[name] = hit;
    else missing.push(name);
  }
  if (missing.length > 0) {
    throw new Error(
      `control-plane: missing ${missing.join(', ')} (looked in ${dirs.join(', ')}${missing.includes('etcd') ? ', /usr/bin' : ''}). ` +
        `Run hack/install-test-deps.sh (it installs etcd from Debian and builds Kubernetes ${KUBERNETES_VERSION} ` +
        `into ${defaultCacheBinDir()}), or set KUBEBUILDER_ASSETS to a directory holding these binaries.`,
    );
  }
  return { binDir: path.dirname(found['kube-apiserver']!), bins: found as Binaries };
}

// ---------------------------------------------------------------------------------------------
// PKI (openssl CLI)

interface Pki {
  caCert: string;
  caKey: string;
  apiserverCert: string;
  apiserverKey: string;
  adminCert: string;
  adminKey: string;
  kubeletClientCert: string;
  kubeletClientKey: string;
  saKey: string;
  saPub: string;
  frontProxyCaCert: string;
  frontProxyClientCert: string;
  frontProxyClientKey: string;
}

async function openssl(dir: string, args: string[]): Promise<void> {
  const r = await run('openssl', args, { cwd: dir, timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`control-plane: openssl ${args.join(' ')} failed (${r.code}):\n${r.stderr}`);
}

async function makePki(stateDir: string): Promise<Pki> {
  const dir = path.join(stateDir, 'pki');
  const p = (f: string) => path.join(dir, f);
  const pki: Pki = {
    caCert: p('ca.crt'),
    caKey: p('ca.key'),
    apiserverCert: p('apiserver.crt'),
    apiserverKey: p('apiserver.key'),
    adminCert: p('admin.crt'),
    adminKey: p('admin.key'),
    kubeletClientCert: p('apiserver-kubelet-client.crt'),
    kubeletClientKey: p('apiserver-kubelet-client.key'),
    saKey: p('sa.key'),
    saPub: p('sa.pub'),
    frontProxyCaCert: p('front-proxy-ca.crt'),
    frontProxyClientCert: p('front-proxy-client.crt'),
    frontProxyClientKey: p('front-proxy-client.key'),
  };
  if (Object.values(pki).every((f) => fs.existsSync(f))) return pki; // reuse a persistent state dir's PKI
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  // Items already present (persistent state dir) are kept, unless their signing CA is new.
  const have = (base: string) => fs.existsSync(p(`${base}.crt`)) && fs.existsSync(p(`${base}.key`));
  const newCas = new Set<string>();
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

  const ca = async (base: string, cn: string) => {
    if (have(base)) return;
    newCas.add(base);
    await fsp.writeFile(
      p(`${base}.cnf`),
      [
        '[req]',
        'distinguished_name = dn',
        'prompt = no',
        'x509_extensions = v3_ca',
        '[dn]',
        `CN = ${cn}`,
        '[v3_ca]',
        'basicConstraints = critical,CA:TRUE',
        'keyUsage = critical,keyCertSign,cRLSign,digitalSignature',
        'subjectKeyIdentifier = hash',
        '',
      ].join('\n'),
    );
    await openssl(dir, [
      'req',
      '-x509',
      '-new',
      ...ec,
      '-keyout',
      `${base}.key`,
      '-out',
      `${base}.crt`,
      '-days',
      '3650',
      '-config',
      `${base}.cnf`,
    ]);
  };
  // The cluster CA, and (as kubeadm does) a separate CA for the aggregation layer's request headers.
  await Promise.all([ca('ca', 'stowage-test-ca'), ca('front-proxy-ca', 'stowage-test-front-proxy-ca')]);

  const leaf = async (base: string, subj: string, ext: string[], signer = 'ca') => {
    if (have(base) && !newCas.has(signer)) return;
    await fsp.writeFile(p(`${base}.ext`), ext.join('\n') + '\n');
    await openssl(dir, ['req', '-new', ...ec, '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', subj]);
    await openssl(dir, [
      'x509',
      '-req',
      '-in',
      `${base}.csr`,
      '-CA',
      `${signer}.crt`,
      '-CAkey',
      `${signer}.key`,
      '-set_serial',
      '0x' +
        randomBytes(16)
          .toString('hex')
          .replace(/^[89a-f]/, '1'),
      '-days',
      '3650',
      '-out',
      `${base}.crt`,
      '-extfile',
      `${base}.ext`,
    ]);
  };
  const clientExt = [
    'basicConstraints = critical,CA:FALSE',
    'keyUsage = critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage = clientAuth',
  ];
  await Promise.all([
    leaf('apiserver', '/CN=kube-apiserver', [
      'basicConstraints = critical,CA:FALSE',
      'keyUsage = critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage = serverAuth',
      'subjectAltName = IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.0.0.1',
    ]),
    leaf('admin', '/O=system:masters/CN=admin', clientExt),
    leaf('apiserver-kubelet-client', '/O=system:masters/CN=kube-apiserver-kubelet-client', clientExt),
    leaf('front-proxy-client', '/CN=front-proxy-client', clientExt, 'front-proxy-ca'),
    (async () => {
      if (fs.existsSync(pki.saKey) && fs.existsSync(pki.saPub)) return;
      await openssl(dir, ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'sa.key']);
      await openssl(dir, ['pkey', '-in', 'sa.key', '-pubout', '-out', 'sa.pub']);
    })(),
  ]);
  for (const f of await fsp.readdir(dir)) if (f.endsWith('.key')) await fsp.chmod(p(f), 0o600);
  return pki;
}

function kubeconfigYaml(server: string, pki: Pki, user: string): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: stowage-test',
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority: ${JSON.stringify(pki.caCert)}`,
    'users:',
    `- name: ${user}`,
    '  user:',
    `    client-certificate: ${JSON.stringify(pki.adminCert)}`,
    `    client-key: ${JSON.stringify(pki.adminKey)}`,
    'contexts:',
    '- name: stowage-test',
    '  context:',
    '    cluster: stowage-test',
    `    user: ${user}`,
    '    namespace: default',
    'current-context: stowage-test',
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// HTTP probes

function httpGet(url: string, timeoutMs = 3000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

// ---------------------------------------------------------------------------------------------

export class ControlPlane {
  /** Path of an admin kubeconfig (client cert CN=admin, O=system:masters). */
  readonly kubeconfigPath: string;
  /** Base URL of the API server, e.g. https://127.0.0.1:39123 */
  readonly server: string;
  readonly stateDir: string;
  /** Directory holding kube-apiserver (and kubectl). */
  readonly binDir: string;
  readonly caCertPath: string;
  /** The cluster CA's key: test/cluster/kubelet-node.ts signs the real kubelet's client certificate with it. */
  readonly caKeyPath: string;
  readonly adminCertPath: string;
  readonly adminKeyPath: string;
  /** Cold-start time of start(), milliseconds. */
  startupMs = 0;

  private readonly bins: Binaries;
  private readonly pki: Pki;
  private readonly ports: Ports;
  private readonly ownsStateDir: boolean;
  private readonly log: (line: string) => void;
  private readonly procs = new Map<Component, Running>();
  private readonly versions = new Map<Component, ComponentVersion>();
  private agent: https.Agent;
  private stopped = false;

  private constructor(init: {
    stateDir: string;
    ownsStateDir: boolean;
    binDir: string;
    bins: Binaries;
    pki: Pki;
    ports: Ports;
    log: (line: string) => void;
  }) {
    this.stateDir = init.stateDir;
    this.ownsStateDir = init.ownsStateDir;
    this.binDir = init.binDir;
    this.bins = init.bins;
    this.pki = init.pki;
    this.ports = init.ports;
    this.log = init.log;
    this.server = `https://127.0.0.1:${init.ports.apiserver}`;
    this.kubeconfigPath = path.join(init.stateDir, 'kubeconfig');
    this.caCertPath = init.pki.caCert;
    this.caKeyPath = init.pki.caKey;
    this.adminCertPath = init.pki.adminCert;
    this.adminKeyPath = init.pki.adminKey;
    this.agent = this.newAgent();
  }

  static async start(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
    const t0 = Date.now();
    const log = opts.log ?? (() => {});
    const { binDir, bins } = findBinaries(opts.binDir);
    if (!isExecutable('/usr/bin/openssl') && !(process.env.PATH ?? '').split(':').some((d) => isExecutable(path.join(d, 'openssl')))) {
      throw new Error('control-plane: openssl not found. Run hack/install-test-deps.sh.');
    }

    let stateDir: string;
    let ownsStateDir: boolean;
    if (opts.stateDir) {
      stateDir = path.resolve(opts.stateDir);
      ownsStateDir = false;
      await fsp.mkdir(stateDir, { recursive: true });
      const killed = await killLeftovers(stateDir);
      if (killed.length > 0) log(`killed leftover processes from an earlier run: ${killed.join(', ')}`);
    } else {
      stateDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'stowage-cp-'));
      ownsStateDir = true;
      installExitHook();
      tempDirsToRemove.add(stateDir);
    }
    await fsp.mkdir(path.join(stateDir, 'pids'), { recursive: true });
    await fsp.mkdir(path.join(stateDir, 'logs'), { recursive: true });

    let cp: ControlPlane | undefined;
    try {
      const pki = await makePki(stateDir);
      const ports: Ports = {
        etcdClient: await freePort(),
        etcdPeer: await freePort(),
        apiserver: await freePort(),
        controllerManager: await freePort(),
        scheduler: await freePort(),
      };
      log(`pki ready in ${Date.now() - t0} ms; state dir ${stateDir}`);
      cp = new ControlPlane({ stateDir, ownsStateDir, binDir, bins, pki, ports, log });
      await fsp.writeFile(cp.kubeconfigPath, kubeconfigYaml(cp.server, pki, 'admin'), { mode: 0o600 });
      await cp.startEtcd();
      await cp.startApiServer();
      await Promise.all([cp.startControllerManager(), cp.startScheduler()]);
      await cp.waitForDefaultServiceAccount();
      cp.startupMs = Date.now() - t0;
      log(`control plane ready in ${cp.startupMs} ms at ${cp.server}`);
      return cp;
    } catch (e) {
      // Clean-up after a failed start: the start's own error (rethrown below) is the one to report.
      if (cp) await cp.stop().catch(() => {});
      else if (ownsStateDir) {
        await fsp.rm(stateDir, { recursive: true, force: true });
        tempDirsToRemove.delete(stateDir);
      }
      throw e;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Components

  private logFile(name: Component): string {
    return path.join(this.stateDir, 'logs', `${name}.log`);
  }

  private pidFile(name: Component): string {
    return path.join(this.stateDir, 'pids', `${name}.pid`);
  }

  private async spawnComponent(name: Component, args: string[]): Promise<Running> {
    installExitHook();
    const existing = this.procs.get(name);
    if (existing && !existing.hasExited) throw new Error(`control-plane: ${name} is already running (pid ${existing.pid})`);
    const logPath = this.logFile(name);
    const fd = fs.openSync(logPath, 'a');
    fs.writeSync(fd, `\n===== ${new Date().toISOString()} starting ${name}\n`);
    let child: ChildProcess;
    try {
      const bin = this.bins[name];
      if (name !== 'etcd') args = flagsFor(name, this.componentVersion(name), args);
      const [cmd, argv] = isExecutable(SETPRIV) ? [SETPRIV, ['--pdeathsig', 'KILL', '--', bin, ...args]] : [bin, args];
      // Own process group: a Ctrl-C in the terminal reaches only Node, which then stops us in order.
      child = spawn(cmd, argv, { stdio: ['ignore', fd, fd], detached: true, cwd: this.stateDir });
    } finally {
      fs.closeSync(fd);
    }
    if (child.pid === undefined) {
      const err = await new Promise<Error>((r) => child.once('error', r));
      throw new Error(`control-plane: could not start ${name}: ${err.message}`);
    }
    const r: Running = { name, child, pid: child.pid, hasExited: false, exited: Promise.resolve() };
    r.exited = new Promise<void>((resolve) => {
      child.once('exit', () => {
        r.hasExited = true;
        liveChildren.delete(r);
        resolve();
      });
    });
    child.on('error', () => {});
    // Running components do not keep Node alive (a test run that forgets stop() still ends; the exit
    // hook then kills them). cli.ts keeps itself alive explicitly.
    child.unref();
    liveChildren.add(r);
    this.procs.set(name, r);
    await fsp.writeFile(this.pidFile(name), `${r.pid}\n`);
    return r;
  }

  /** The component binary's own version (`--version`), read once: it decides which flags it gets. */
  componentVersion(name: Exclude<Component, 'etcd'>): ComponentVersion {
    let v = this.versions.get(name);
    if (!v) {
      v = binaryVersion(this.bins[name]);
      this.versions.set(name, v);
    }
    return v;
  }

  /** Polls `probe` until it returns true; fails early when the component exits, with its log tail. */
  private async waitFor(name: Component, what: string, probe: () => Promise<boolean>, timeoutMs = READY_TIMEOUT_MS): Promise<void> {
    const t0 = Date.now();
    const r = this.procs.get(name);
    let lastError = '';
    while (Date.now() - t0 < timeoutMs) {
      if (r?.hasExited) {
        const code = r.child.exitCode ?? r.child.signalCode;
        throw new Error(
          `control-plane: ${name} exited (${code}) before ${what}. Last lines of ${this.logFile(name)}:\n${await tail(this.logFile(name), 40)}`,
        );
      }
      try {
        if (await probe()) {
          this.log(`${name}: ${what} after ${Date.now() - t0} ms`);
          return;
        }
      } catch (e) {
        lastError = (e as Error).message;
      }
      await sleep(200);
    }
    throw new Error(
      `control-plane: ${name} not ${what} within ${timeoutMs / 1000} s${lastError ? ` (last error: ${lastError})` : ''}. ` +
        `Last lines of ${this.logFile(name)}:\n${await tail(this.logFile(name), 40)}`,
    );
  }

  private async startEtcd(): Promise<void> {
    const client = `http://127.0.0.1:${this.ports.etcdClient}`;
    const peer = `http://127.0.0.1:${this.ports.etcdPeer}`;
    await this.spawnComponent('etcd', [
      '--name=stowage',
      `--data-dir=${path.join(this.stateDir, 'etcd')}`,
      `--listen-client-urls=${client}`,
      `--advertise-client-urls=${client}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=stowage=${peer}`,
      '--initial-cluster-state=new',
      '--initial-cluster-token=stowage-test',
      '--logger=zap',
      '--log-outputs=stderr',
    ]);
    await this.waitFor('etcd', 'healthy', async () => {
      const res = await httpGet(`${client}/health`);
      return res.status === 200 && /"health":\s*"true"/.test(res.body);
    });
  }

  /** Starts (or restarts, after stopApiServer()) kube-apiserver on the same port with the same certs and etcd. */
  async startApiServer(): Promise<void> {
    const p = this.pki;
    await this.spawnComponent('kube-apiserver', [
      `--etcd-servers=http://127.0.0.1:${this.ports.etcdClient}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${this.ports.apiserver}`,
      '--insecure-port=0',
      `--cert-dir=${path.join(this.stateDir, 'apiserver')}`,
      `--tls-cert-file=${p.apiserverCert}`,
      `--tls-private-key-file=${p.apiserverKey}`,
      `--client-ca-file=${p.caCert}`,
      `--kubelet-client-certificate=${p.kubeletClientCert}`,
      `--kubelet-client-key=${p.kubeletClientKey}`,
      '--kubelet-preferred-address-types=InternalIP',
      // Aggregation layer (also lets controller-manager/scheduler read a complete
      // kube-system/extension-apiserver-authentication ConfigMap).
      `--requestheader-client-ca-file=${p.frontProxyCaCert}`,
      '--requestheader-allowed-names=front-proxy-client',
      '--requestheader-username-headers=X-Remote-User',
      '--requestheader-group-headers=X-Remote-Group',
      '--requestheader-extra-headers-prefix=X-Remote-Extra-',
      `--proxy-client-cert-file=${p.frontProxyClientCert}`,
      `--proxy-client-key-file=${p.frontProxyClientKey}`,
      '--authorization-mode=Node,RBAC',
      '--enable-admission-plugins=NodeRestriction',
      `--service-account-key-file=${p.saPub}`,
      `--service-account-signing-key-file=${p.saKey}`,
      '--service-account-issuer=https://kubernetes.default.svc',
      '--api-audiences=https://kubernetes.default.svc',
      '--endpoint-reconciler-type=none',
      '--service-cluster-ip-range=10.0.0.0/24',
      '--allow-privileged=true',
      '--profiling=false',
      '--v=1',
    ]);
    await this.waitFor('kube-apiserver', 'ready (/readyz)', async () => {
      const res = await this.request('GET', '/readyz', undefined, { timeoutMs: 3000 });
      return res.status === 200;
    });
  }

  /** Stops kube-apiserver only; etcd, certs, data and port are kept for startApiServer(). It stops
   *  listening at once on SIGTERM, but would wait up to a minute for the controller-manager's and
   *  scheduler's open watches, so it gets SIGKILL after `graceMs` (default 2 s). */
  async stopApiServer(opts: { graceMs?: number } = {}): Promise<void> {
    await this.stopComponent('kube-apiserver', opts.graceMs ?? 2_000);
    // Drop pooled keep-alive connections to the old process.
    this.agent.destroy();
    this.agent = this.newAgent();
  }

  /** Stops etcd only (the API server keeps running and answers with errors); restartEtcd() brings it
   *  back on the same ports with the same data directory. */
  async stopEtcd(): Promise<void> {
    await this.stopComponent('etcd');
  }

  /** Starts etcd again after stopEtcd(): an existing data directory ignores the --initial-cluster flags. */
  async restartEtcd(): Promise<void> {
    await this.startEtcd();
    // The API server is back only when it serves again: its etcd client reconnects with gRPC's
    // backoff, which grows to two minutes over a long outage, and until then requests hang.
    await this.waitFor(
      'kube-apiserver',
      'ready again on etcd (/readyz)',
      async () => {
        // A poll: no answer means not ready yet; waitFor reports the last state if it never comes.
        const res = await this.request('GET', '/readyz', undefined, { timeoutMs: 3000 }).catch(() => undefined);
        return res?.status === 200;
      },
      ETCD_RECONNECT_TIMEOUT_MS,
    );
  }

  private componentKubeconfig(name: string): string {
    const file = path.join(this.stateDir, `${name}.kubeconfig`);
    fs.writeFileSync(file, kubeconfigYaml(this.server, this.pki, name), { mode: 0o600 });
    return file;
  }

  private async startControllerManager(): Promise<void> {
    const kc = this.componentKubeconfig('kube-controller-manager');
    const p = this.pki;
    await this.spawnComponent('kube-controller-manager', [
      `--kubeconfig=${kc}`,
      `--authentication-kubeconfig=${kc}`,
      `--authorization-kubeconfig=${kc}`,
      '--leader-elect=false',
      '--port=0',
      '--bind-address=127.0.0.1',
      `--secure-port=${this.ports.controllerManager}`,
      `--cert-dir=${path.join(this.stateDir, 'kube-controller-manager')}`,
      `--service-account-private-key-file=${p.saKey}`,
      `--root-ca-file=${p.caCert}`,
      '--use-service-account-credentials=true',
      '--controllers=*',
      `--cluster-signing-cert-file=${p.caCert}`,
      `--cluster-signing-key-file=${p.caKey}`,
      '--service-cluster-ip-range=10.0.0.0/24',
      // No kubelet: hand-registered Nodes must stay Ready and their pods must never be evicted.
      '--node-monitor-grace-period=87600h',
      '--node-startup-grace-period=87600h',
      '--pod-eviction-timeout=87600h',
      '--profiling=false',
      '--v=1',
    ]);
    await this.waitFor('kube-controller-manager', 'healthy (/healthz)', () => this.componentHealthy(this.ports.controllerManager));
  }

  private async startScheduler(): Promise<void> {
    const kc = this.componentKubeconfig('kube-scheduler');
    await this.spawnComponent('kube-scheduler', [
      `--kubeconfig=${kc}`,
      `--authentication-kubeconfig=${kc}`,
      `--authorization-kubeconfig=${kc}`,
      '--leader-elect=false',
      '--port=0',
      '--bind-address=127.0.0.1',
      `--secure-port=${this.ports.scheduler}`,
      `--cert-dir=${path.join(this.stateDir, 'kube-scheduler')}`,
      '--profiling=false',
      '--v=1',
    ]);
    await this.waitFor('kube-scheduler', 'healthy (/healthz)', () => this.componentHealthy(this.ports.scheduler));
  }

  private componentHealthy(port: number): Promise<boolean> {
    // Serving certs of controller-manager/scheduler are self-signed; /healthz needs no auth.
    return new Promise((resolve, reject) => {
      const req = https.get(
        { host: '127.0.0.1', port, path: '/healthz', rejectUnauthorized: false, timeout: 3000, agent: false },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode === 200));
        },
      );
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', reject);
    });
  }

  /** Waits until the controller-manager created ServiceAccount `default` in `namespace`; pods cannot
   *  be created in a namespace before that (ServiceAccount admission), so tests that create a
   *  namespace and immediately a pod should call this first. */
  async waitForDefaultServiceAccount(namespace = 'default', timeoutMs = READY_TIMEOUT_MS): Promise<void> {
    const ns = encodeURIComponent(namespace);
    await this.waitFor(
      'kube-controller-manager',
      `created ServiceAccount ${namespace}/default`,
      async () => {
        const res = await this.request('GET', `/api/v1/namespaces/${ns}/serviceaccounts/default`, undefined, { timeoutMs: 3000 });
        return res.status === 200;
      },
      timeoutMs,
    );
  }

  private async stopComponent(name: Component, graceMs = STOP_GRACE_MS): Promise<void> {
    const r = this.procs.get(name);
    if (!r) return;
    if (!r.hasExited) {
      try {
        process.kill(r.pid, 'SIGTERM');
      } catch {
        /* gone */
      }
      let timer: NodeJS.Timeout | undefined;
      const graceful = await Promise.race([
        r.exited.then(() => true),
        new Promise<boolean>((res) => (timer = setTimeout(() => res(false), graceMs))),
      ]);
      clearTimeout(timer);
      if (!graceful) {
        this.log(`${name} (pid ${r.pid}) still running ${graceMs / 1000} s after SIGTERM; sending SIGKILL`);
        try {
          process.kill(r.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
        await r.exited;
      }
    }
    liveChildren.delete(r);
    await fsp.rm(this.pidFile(name), { force: true });
  }

  /** PIDs of the component processes currently running (for tests that check nothing is left). */
  pids(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, r] of this.procs) if (!r.hasExited) out[name] = r.pid;
    return out;
  }

  /** Stops everything (scheduler and controller-manager, then the API server, then etcd) and removes
   *  the state dir if it was a temporary one. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.all([this.stopComponent('kube-scheduler'), this.stopComponent('kube-controller-manager')]);
    await this.stopComponent('kube-apiserver');
    await this.stopComponent('etcd');
    this.agent.destroy();
    if (this.ownsStateDir) {
      await fsp.rm(this.stateDir, { recursive: true, force: true });
      tempDirsToRemove.delete(this.stateDir);
    }
    this.log('control plane stopped');
  }

  // -------------------------------------------------------------------------------------------
  // Clients

  /** Runs the built kubectl against this control plane with the admin kubeconfig. */
  kubectl(args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<KubectlResult> {
    return run(this.bins.kubectl, [`--kubeconfig=${this.kubeconfigPath}`, ...args], {
      input: opts.input,
      timeoutMs: opts.timeoutMs ?? 120_000,
    });
  }

  private newAgent(): https.Agent {
    return new https.Agent({
      keepAlive: true,
      ca: fs.readFileSync(this.pki.caCert),
      cert: fs.readFileSync(this.pki.adminCert),
      key: fs.readFileSync(this.pki.adminKey),
    });
  }

  /** Raw HTTPS request to the API server as admin. `body` objects are sent as JSON; set
   *  `contentType` for patches (e.g. application/strategic-merge-patch+json). */
  request(method: string, apiPath: string, body?: unknown, opts: { contentType?: string; timeoutMs?: number } = {}): Promise<ApiResponse> {
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = https.request(
        {
          host: '127.0.0.1',
          port: this.ports.apiserver,
          method,
          path: apiPath,
          agent: this.agent,
          timeout: opts.timeoutMs ?? 30_000,
          headers: {
            Accept: 'application/json',
            ...(payload !== undefined
              ? { 'Content-Type': opts.contentType ?? 'application/json', 'Content-Length': Buffer.byteLength(payload) }
              : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let json: any;
            try {
              json = JSON.parse(text);
            } catch {
              json = undefined;
            }
            resolve({ status: res.statusCode ?? 0, body: text, json });
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`timeout after ${opts.timeoutMs ?? 30_000} ms: ${method} ${apiPath}`)));
      req.on('error', reject);
      req.end(payload);
    });
  }
}

/** Kills processes recorded in `<stateDir>/pids/*.pid` by an earlier run (SIGTERM, then SIGKILL after
 *  a few seconds), but only those whose /proc/<pid>/cmdline mentions stateDir, so a reused PID is never
 *  hit. Removes the pid files. Returns the PIDs it signalled. */
export async function killLeftovers(stateDir: string): Promise<number[]> {
  const dir = path.resolve(stateDir);
  const pidDir = path.join(dir, 'pids');
  let files: string[];
  try {
    files = (await fsp.readdir(pidDir)).filter((f) => f.endsWith('.pid'));
  } catch {
    return [];
  }
  const victims: number[] = [];
  for (const f of files) {
    const file = path.join(pidDir, f);
    // A pid file removed meanwhile (its process stopped) names no process to kill.
    const pid = Number.parseInt((await fsp.readFile(file, 'utf8').catch(() => '')).trim(), 10);
    if (Number.isInteger(pid) && pid > 1 && pid !== process.pid) {
      let cmdline = '';
      try {
        cmdline = (await fsp.readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').join(' ');
      } catch {
        /* not running */
      }
      if (cmdline.includes(dir) && isAlive(pid)) {
        try {
          process.kill(pid, 'SIGTERM');
          victims.push(pid);
        } catch {
          /* gone */
        }
      }
    }
    await fsp.rm(file, { force: true });
  }
  const deadline = Date.now() + 5000;
  while (victims.some(isAlive) && Date.now() < deadline) await sleep(100);
  for (const pid of victims.filter(isAlive)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  const hardDeadline = Date.now() + 5000;
  while (victims.some(isAlive) && Date.now() < hardDeadline) await sleep(100);
  return victims;
}

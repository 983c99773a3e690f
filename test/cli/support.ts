/**
 * A cluster for the kubectl plugin's tests: the shared control plane, the operator in-process,
 * real node agents over loop devices this test made (one of them a `stowage node` child process
 * whose smartctl reports one disk failing: the fault a loop device cannot produce), and helpers
 * to run `kubectl-stowage` — directly, or through the real kubectl's plugin discovery.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeClient } from '../../src/kube/client.js';
import { NAMESPACES, NODES, PERSISTENT_VOLUMES, PERSISTENT_VOLUME_CLAIMS, PODS } from '../../src/kube/resources.js';
import type { KubeObject, PersistentVolume } from '../../src/kube/types.js';
import { installCrds } from '../../src/crds/install.js';
import { NODE_DISKS, STORAGE_POOLS } from '../../src/crds/resource-types.js';
import type { NodeDisk } from '../../src/crds/nodedisk.js';
import { startNodeAgent, type NodeAgent } from '../../src/node/agent/agent.js';
import { IDENTITY_ANNOTATION } from '../../src/node/agent/status.js';
import { Manager } from '../../src/runtime/manager.js';
import { setupControllers } from '../../src/operator/setup.js';
import type { ControlPlane } from '../cluster/control-plane.js';
import { registerReadyNode } from '../cluster/nodes.js';
import { adminClient, createNamespace, deletePoolForcibly, uniqueName, waitFor } from '../support/cluster.js';
import { LoopDevices, unmountAllFrom, type LoopDevice } from '../support/loop-devices.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const PLUGIN = path.resolve(HERE, '../../src/cli/kubectl-stowage.js');
const MAIN = path.resolve(HERE, '../../src/cli/main.js');
const REAL_SMARTCTL = '/usr/sbin/smartctl';

export type Disk = NodeDisk & KubeObject;

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a program to completion with a clean environment plus `env`; never through a shell. */
export function runProgram(
  cmd: string,
  args: readonly string[],
  env: Record<string, string | undefined>,
  timeoutMs = 60_000,
  cwd?: string,
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, STOWAGE_LOG_LEVEL: 'silent', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
  });
}

/** `kubectl-stowage ARGS` with a kubeconfig (flag, or KUBECONFIG when `viaEnv`). */
export function plugin(
  kubeconfig: string | undefined,
  args: readonly string[],
  env: Record<string, string | undefined> = {},
  timeoutMs?: number,
): Promise<RunResult> {
  return runProgram(process.execPath, [PLUGIN, ...(kubeconfig ? ['--kubeconfig', kubeconfig] : []), ...args], env, timeoutMs);
}

/** A directory holding an executable `kubectl-stowage`, for kubectl's plugin discovery on PATH. */
export async function pluginOnPath(dir: string): Promise<string> {
  const bin = path.join(dir, 'bin');
  await mkdir(bin, { recursive: true });
  const file = path.join(bin, 'kubectl-stowage');
  await writeFile(file, `#!/bin/sh\nexec "${process.execPath}" "${PLUGIN}" "$@"\n`);
  await chmod(file, 0o755);
  return bin;
}

/** A `stowage node` child process (started and stopped by PID) with a smartctl on PATH that fails `failing`. */
class FaultyHealthAgent {
  readonly output: string[] = [];
  private constructor(readonly child: ChildProcess) {
    child.stdout!.on('data', (d: Buffer) => this.output.push(d.toString()));
    child.stderr!.on('data', (d: Buffer) => this.output.push(d.toString()));
  }

  static async start(opts: {
    kubeconfig: string;
    node: string;
    devices: string[];
    failing: string;
    root: string;
    shimDir: string;
  }): Promise<FaultyHealthAgent> {
    await mkdir(opts.shimDir, { recursive: true });
    // The fault: SMART overall-health FAILED for one device (what smartctl prints for a dying
    // disk); every other call goes to the real smartctl.
    const shim = path.join(opts.shimDir, 'smartctl');
    await writeFile(
      shim,
      [
        '#!/bin/sh',
        'for last in "$@"; do :; done',
        `if [ "$last" = "${opts.failing}" ]; then`,
        `  echo '{"smartctl":{"exit_status":8},"device":{"name":"${opts.failing}"},"smart_status":{"passed":false}}'`,
        '  exit 8',
        'fi',
        `exec ${REAL_SMARTCTL} "$@"`,
        '',
      ].join('\n'),
    );
    await chmod(shim, 0o755);
    const args = [
      MAIN,
      'node',
      '--kubeconfig',
      opts.kubeconfig,
      '--no-udev',
      '--root',
      opts.root,
      '--discovery-interval',
      '1',
      '--health-interval',
      '2',
      ...opts.devices.flatMap((d) => ['--allow-device', d]),
    ];
    const child = spawn(process.execPath, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PATH: `${opts.shimDir}:${process.env.PATH}`, NODE_NAME: opts.node, STOWAGE_LOG_LEVEL: 'warn' },
    });
    return new FaultyHealthAgent(child);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
  }
}

export interface WorldOptions {
  /** Disks per node, in MiB. The first node's agent runs in-process; the second (if any) as a child with the SMART fault on its first disk. */
  readonly nodes: readonly (readonly number[])[];
  /** Put an ext4 filesystem on these disks (node index, disk index) before the agents start. */
  readonly formatted?: readonly [number, number][];
  readonly failingSmart?: boolean;
}

export class PluginWorld {
  readonly nodes: string[] = [];
  readonly disks: LoopDevice[][] = [];
  readonly pools: string[] = [];
  readonly loops = new LoopDevices();
  namespace = '';
  work = '';
  private agents: NodeAgent[] = [];
  private agentClients: KubeClient[] = [];
  private childAgents: FaultyHealthAgent[] = [];
  private abort?: AbortController;
  private running?: Promise<unknown>;
  private operatorClient?: KubeClient;
  readonly prefix = uniqueName('kp');

  private constructor(
    readonly cp: ControlPlane,
    readonly admin: KubeClient,
  ) {}

  get kubeconfig(): string {
    return this.cp.kubeconfigPath;
  }

  static async start(opts: WorldOptions): Promise<PluginWorld> {
    const { cp, client } = await adminClient();
    const world = new PluginWorld(cp, client);
    try {
      await world.build(opts);
    } catch (err) {
      await world.close();
      throw err;
    }
    return world;
  }

  private async build(opts: WorldOptions): Promise<void> {
    await installCrds(this.admin, 'stowage-tests');
    this.namespace = await createNamespace(this.admin, 'kp');
    await this.cp.waitForDefaultServiceAccount(this.namespace);
    this.work = await mkdtemp(path.join(tmpdir(), 'stowage-kp-'));
    for (const [i, sizes] of opts.nodes.entries()) {
      const node = `${this.prefix}-node${i + 1}`;
      this.nodes.push(node);
      await registerReadyNode(this.cp, node);
      const disks: LoopDevice[] = [];
      for (const mib of sizes) disks.push(await this.loops.create(mib * 1024 * 1024));
      this.disks.push(disks);
    }
    for (const [n, d] of opts.formatted ?? []) {
      await runProgram('mkfs.ext4', ['-q', '-F', '-L', 'olddata', this.disks[n][d].device], {}).then((r) => {
        if (r.code !== 0) throw new Error(`mkfs.ext4 failed: ${r.stderr}`);
      });
    }
    for (const [i, node] of this.nodes.entries()) {
      const devices = this.disks[i].map((d) => d.device);
      if (i === 1 && opts.failingSmart) {
        this.childAgents.push(
          await FaultyHealthAgent.start({
            kubeconfig: this.kubeconfig,
            node,
            devices,
            failing: devices[0],
            root: path.join(this.work, node),
            shimDir: path.join(this.work, 'shim'),
          }),
        );
      } else {
        const client = await KubeClient.load({ kubeconfig: this.kubeconfig, userAgent: `stowage-node/${node}` });
        this.agentClients.push(client);
        this.agents.push(
          await startNodeAgent({
            client,
            nodeName: node,
            allowDevices: devices,
            root: path.join(this.work, node),
            udev: false,
            discoveryIntervalMs: 1_000,
          }),
        );
      }
    }
    this.operatorClient = await KubeClient.load({ kubeconfig: this.kubeconfig, userAgent: 'stowage-operator-test' });
    const manager = new Manager({ client: this.operatorClient, informerDefaults: { resyncMs: 3_000 } });
    setupControllers(manager, { workers: 4, fieldManager: 'stowage-operator' });
    this.abort = new AbortController();
    this.running = manager.run(this.abort.signal);
  }

  async applyPool(name: string, spec: Record<string, unknown>): Promise<void> {
    if (!this.pools.includes(name)) this.pools.push(name);
    await this.admin.apply(
      STORAGE_POOLS,
      { apiVersion: 'stowage.dev/v1alpha1', kind: 'StoragePool', metadata: { name }, spec },
      { fieldManager: 'kubectl' },
    );
  }

  /** The NodeDisk of loop device (node, index), once its agent reported it. */
  async diskOf(node: number, index: number): Promise<Disk> {
    const file = this.disks[node][index].file;
    return waitFor(
      `the NodeDisk of ${file}`,
      async () =>
        (await this.admin.list<Disk>(NODE_DISKS, { labelSelector: `stowage.dev/node=${this.nodes[node]}` })).items.find(
          (d) => d.metadata.annotations?.[IDENTITY_ANNOTATION] === `loop:${file}` && d.status?.conditions,
        ),
      30_000,
    );
  }

  /** A claim and a pod using it, pinned to `node`; `wait` for the claim to bind. */
  async claim(name: string, storageClass: string, size: string, node: string, wait = true): Promise<void> {
    await this.admin.create(PERSISTENT_VOLUME_CLAIMS, {
      metadata: { name, namespace: this.namespace },
      spec: { accessModes: ['ReadWriteOnce'], storageClassName: storageClass, resources: { requests: { storage: size } } },
    });
    await this.admin.create(PODS, {
      metadata: { name: `app-${name}`, namespace: this.namespace },
      spec: {
        containers: [{ name: 'app', image: 'busybox', command: ['sleep', '3600'], volumeMounts: [{ name: 'data', mountPath: '/data' }] }],
        volumes: [{ name: 'data', persistentVolumeClaim: { claimName: name } }],
        affinity: {
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: {
              nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: [node] }] }],
            },
          },
        },
      },
    });
    if (wait) {
      await waitFor(
        `claim ${name} to bind`,
        async () =>
          (await this.admin.get<KubeObject & { status?: { phase?: string } }>(PERSISTENT_VOLUME_CLAIMS, name, this.namespace)).status
            ?.phase === 'Bound',
        90_000,
      );
    }
  }

  /** What a user does to free a volume: delete the pod (at once: no kubelet here) and the claim. */
  async release(name: string): Promise<void> {
    await this.admin
      .request({ method: 'DELETE', path: `/api/v1/namespaces/${this.namespace}/pods/app-${name}`, body: { gracePeriodSeconds: 0 } })
      .catch(() => undefined);
    await this.admin.delete(PERSISTENT_VOLUME_CLAIMS, name, { namespace: this.namespace });
  }

  async close(): Promise<void> {
    const { admin } = this;
    if (this.namespace) {
      for (const pod of (await admin.list(PODS, { namespace: this.namespace })).items) {
        await admin
          .request({
            method: 'DELETE',
            path: `/api/v1/namespaces/${this.namespace}/pods/${pod.metadata.name}`,
            body: { gracePeriodSeconds: 0 },
          })
          .catch(() => undefined);
      }
      for (const pvc of (await admin.list(PERSISTENT_VOLUME_CLAIMS, { namespace: this.namespace })).items)
        await admin.delete(PERSISTENT_VOLUME_CLAIMS, pvc.metadata.name!, { namespace: this.namespace });
    }
    for (const name of this.pools) await admin.delete(STORAGE_POOLS, name);
    if (this.running) {
      await waitFor(
        'the pools to be finalized',
        async () => {
          for (const name of this.pools) if (await admin.getIfExists(STORAGE_POOLS, name)) return false;
          return true;
        },
        90_000,
      ).catch(() => undefined);
    }
    this.abort?.abort();
    await this.running;
    for (const agent of this.agents) await agent.stop();
    for (const client of this.agentClients) client.close();
    for (const agent of this.childAgents) await agent.stop();
    for (const name of this.pools) await deletePoolForcibly(admin, name);
    for (const node of this.nodes) {
      for (const d of (await admin.list<Disk>(NODE_DISKS, { labelSelector: `stowage.dev/node=${node}` })).items)
        await admin.delete(NODE_DISKS, d.metadata.name);
      for (const pv of (await admin.list<PersistentVolume>(PERSISTENT_VOLUMES, { labelSelector: `stowage.dev/node=${node}` })).items) {
        await admin.mergePatch(PERSISTENT_VOLUMES, pv.metadata.name!, { metadata: { finalizers: null } }).catch(() => undefined);
        await admin.delete(PERSISTENT_VOLUMES, pv.metadata.name!);
      }
      await admin.delete(NODES, node);
    }
    if (this.namespace) await admin.delete(NAMESPACES, this.namespace);
    for (const device of this.loops.devices()) await unmountAllFrom(device);
    await this.loops.cleanup();
    if (this.work) await rm(this.work, { recursive: true, force: true });
    this.operatorClient?.close();
    admin.close();
  }
}

/** `apiserver_request_total` summed over the write verbs for one resource (main resource, no subresource). */
export async function writeRequests(cp: ControlPlane, resource: string): Promise<number> {
  const res = await cp.request('GET', '/metrics');
  if (res.status !== 200) throw new Error(`GET /metrics: ${res.status}`);
  let total = 0;
  for (const line of res.body.split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    const labels = Object.fromEntries([...line.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (labels.resource !== resource || (labels.subresource ?? '') !== '') continue;
    if (!['POST', 'PUT', 'PATCH', 'APPLY', 'DELETE', 'DELETECOLLECTION'].includes(labels.verb ?? '')) continue;
    total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

/**
 * `make run`: the local demo. Uses the cluster your kubeconfig points at ($KUBECONFIG or
 * ~/.kube/config) or, when none is configured, starts a local control plane (test/cluster/).
 * Installs the CRDs, runs the operator and applies samples/. On the local control plane it also
 * registers three Nodes, gives each two sparse-file loop devices and runs one node agent per
 * simulated node, restricted by an explicit allow-list to that node's loop devices, plus a demo
 * pool (`demo-local`) that selects them — so NodeDisks, a Ready pool and PVs with real capacity
 * appear. Ctrl-C stops everything and removes every loop device, mount, file and demo object.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { installCrds } from '../src/crds/install.js';
import { NODE_DISKS, STORAGE_POOLS } from '../src/crds/resource-types.js';
import { KubeClient } from '../src/kube/client.js';
import { NAMESPACES, NODES } from '../src/kube/resources.js';
import type { KubeObject } from '../src/kube/types.js';
import { ControlPlane } from '../test/cluster/control-plane.js';
import { markNodeReady, registerReadyNode } from '../test/cluster/nodes.js';
import { LoopDevices, type LoopDevice } from '../test/support/loop-devices.js';

/** The operator's namespace, as config/manager creates it. */
const OPERATOR_NAMESPACE = 'stowage-system';
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const STATE_DIR = path.join(ROOT, '.stowage', 'cluster');
const FIELD_MANAGER = 'stowage-demo';
const DEMO_NODES = ['stowage-demo-1', 'stowage-demo-2', 'stowage-demo-3'];
const DISKS_PER_NODE = 2;
const DISK_BYTES = 1024 ** 3; // sparse: takes no space until written
const DEMO_POOL = 'demo-local';
const say = (line: string): void => void process.stdout.write(`[make run] ${line}\n`);

/** A Local pool over the demo's loop devices (the agent reports their media as `unknown`; the samples want SSDs). */
const demoPool: KubeObject = {
  apiVersion: 'stowage.dev/v1alpha1',
  kind: 'StoragePool',
  metadata: { name: DEMO_POOL },
  spec: {
    mode: 'Local',
    disks: { selector: { matchLabels: { 'stowage.dev/media': 'unknown' } } },
    local: { volumeMode: 'Filesystem', fsType: 'ext4', cleanup: 'quick' },
    storageClass: { name: DEMO_POOL, reclaimPolicy: 'Delete' },
  },
};

async function main(): Promise<void> {
  const configured = process.env.KUBECONFIG || existsSync(path.join(homedir(), '.kube', 'config'));
  let cp: ControlPlane | undefined;
  let kubeconfig: string | undefined;
  let kubectl = 'kubectl';
  if (configured) {
    say(`using the cluster your kubeconfig points at (${process.env.KUBECONFIG || '~/.kube/config'})`);
  } else {
    say('no cluster configured: starting a local control plane (etcd, kube-apiserver, controller-manager, scheduler) on 127.0.0.1');
    cp = await ControlPlane.start({ stateDir: STATE_DIR, log: (l) => say(l) });
    kubeconfig = cp.kubeconfigPath;
    kubectl = path.join(cp.binDir, 'kubectl');
  }
  const operators: ChildProcess[] = [];
  const agents: ChildProcess[] = [];
  const loops = new LoopDevices();
  let demoRoot: string | undefined;
  let client: KubeClient | undefined;
  let stopping = false;

  const stop = async (code: number): Promise<never> => {
    if (stopping) process.exit(code);
    stopping = true;
    try {
      if (cp && client) {
        say(`deleting the demo pool ${DEMO_POOL}; the operator releases its disks and the agents unmount and erase them`);
        await client.delete(STORAGE_POOLS, DEMO_POOL).catch(() => undefined);
        await waitUntil('the demo pool is gone', async () => !(await client!.getIfExists(STORAGE_POOLS, DEMO_POOL)), 30_000).catch((err) =>
          say(String(err)),
        );
      }
      say('stopping the node agents and the operator');
      await terminate(agents);
      await terminate(operators);
      say('removing loop devices, mounts and files');
      await loops.cleanup();
      if (demoRoot) {
        for (const line of (await readFile('/proc/self/mounts', 'utf8')).split('\n')) {
          const target = line.split(' ')[1];
          if ((target as string | undefined)?.startsWith(demoRoot)) await runQuiet('umount', ['-l', target]);
        }
        await rm(demoRoot, { recursive: true, force: true });
      }
      if (cp && client) {
        const disks = await client.list(NODE_DISKS).catch(() => ({ items: [] as KubeObject[] }));
        for (const d of disks.items) {
          if (DEMO_NODES.includes(String((d as { spec?: { nodeName?: string } }).spec?.nodeName)))
            await client.delete(NODE_DISKS, d.metadata.name!).catch(() => undefined);
        }
        for (const n of DEMO_NODES) await client.delete(NODES, n).catch(() => undefined);
      }
      client?.close();
    } finally {
      say('stopping the local control plane');
      await cp?.stop();
      process.exit(code);
    }
  };
  // stop() ends the process itself (process.exit) and logs as it goes.
  process.once('SIGINT', () => void stop(0));
  // Likewise.
  process.once('SIGTERM', () => void stop(0));

  try {
    client = await KubeClient.load({ kubeconfig, userAgent: 'stowage-demo' });
    say('installing the CRDs (server-side apply)');
    await installCrds(client, FIELD_MANAGER);
    // The operator's namespace, where it keeps the driver stack (the install creates it in a cluster).
    if (!(await client.getIfExists(NAMESPACES, OPERATOR_NAMESPACE)))
      await client.create(NAMESPACES, { metadata: { name: OPERATOR_NAMESPACE } });
    mkdirSync(path.join(ROOT, '.stowage'), { recursive: true });

    say('starting the operator (logs: .stowage/operator.log)');
    const args = [
      path.join(ROOT, 'dist/src/cli/main.js'),
      'operator',
      '--metrics-bind-address',
      '127.0.0.1:8080',
      '--health-probe-bind-address',
      '127.0.0.1:8081',
    ];
    if (kubeconfig) args.push('--kubeconfig', kubeconfig);
    const logFd = openSync(path.join(ROOT, '.stowage', 'operator.log'), 'a');
    const operator = spawnChild(args, { stdio: ['ignore', logFd, logFd] });
    operators.push(operator);
    operator.once('exit', (code) => {
      if (!stopping) {
        say(`the operator exited (code ${code}); see .stowage/operator.log`);
        // stop() ends the process itself (process.exit) and logs as it goes.
        void stop(1);
      }
    });

    if (cp) {
      demoRoot = await mkdtemp(path.join(tmpdir(), 'stowage-demo-'));
      for (const node of DEMO_NODES) {
        if (await client.getIfExists(NODES, node)) await markNodeReady(cp, node);
        else await registerReadyNode(cp, node);
        const disks: LoopDevice[] = [];
        for (let i = 0; i < DISKS_PER_NODE; i++) disks.push(await loops.create(DISK_BYTES));
        say(`node ${node}: disks ${disks.map((d) => d.device).join(', ')}; agent log .stowage/agent-${node}.log`);
        const agentArgs = [
          path.join(ROOT, 'dist/src/cli/main.js'),
          'node',
          '--kubeconfig',
          kubeconfig!,
          '--root',
          path.join(demoRoot, node),
          '--discovery-interval',
          '10',
        ];
        for (const d of disks) agentArgs.push('--allow-device', d.device);
        const fd = openSync(path.join(ROOT, '.stowage', `agent-${node}.log`), 'a');
        const agent = spawnChild(agentArgs, { stdio: ['ignore', fd, fd], env: { ...process.env, NODE_NAME: node } });
        agents.push(agent);
        agent.once('exit', (code) => {
          if (!stopping) say(`the agent of ${node} exited (code ${code}); see .stowage/agent-${node}.log`);
        });
      }
    } else {
      say("on your own cluster the node agents run as the operator's DaemonSet; the demo starts none");
    }

    const samples = [...loadSamples(path.join(ROOT, 'samples')), ...(cp ? [demoPool] : [])];
    say(`applying ${samples.length} pools (samples/${cp ? ` and ${DEMO_POOL} over the demo disks` : ''})`);
    for (const sample of samples) await client.apply(STORAGE_POOLS, sample, { fieldManager: FIELD_MANAGER });
    await waitUntil('the operator has observed every pool', async () => {
      const pools = await client!.list<KubeObject & { status?: { observedGeneration?: number } }>(STORAGE_POOLS);
      return pools.items.length >= samples.length && pools.items.every((p) => p.status?.observedGeneration === p.metadata.generation);
    });
    if (cp) {
      await waitUntil(
        'the demo disks are prepared',
        async () => {
          const disks = await client!.list<
            KubeObject & { spec?: { nodeName?: string }; status?: { conditions?: Array<{ type: string; status: string }> } }
          >(NODE_DISKS);
          const demo = disks.items.filter((d) => DEMO_NODES.includes(d.spec?.nodeName ?? ''));
          return (
            demo.length === DEMO_NODES.length * DISKS_PER_NODE &&
            demo.every((d) => d.status?.conditions?.some((c) => c.type === 'Prepared' && c.status === 'True'))
          );
        },
        120_000,
      ).catch((err) => say(`${String(err)} — see the agent logs`));
    }

    const kc = kubeconfig ? ['--kubeconfig', kubeconfig] : [];
    say('kubectl get storagepools,nodedisks,pv:');
    await run(kubectl, ['get', 'storagepools,nodedisks,pv', ...kc]);
    if (kubeconfig) {
      say('');
      say('Point kubectl at it from another terminal:');
      say(`  export KUBECONFIG=${kubeconfig}`);
      say(`  export PATH=${path.dirname(kubectl)}:$PATH   # kubectl v1.20.2, matching the server`);
      say('  kubectl get storagepools,nodedisks,pv');
      say('  kubectl describe nodedisk <name>             # conditions say why a disk is (not) used');
    }
    say('metrics: http://127.0.0.1:8080/metrics   health: http://127.0.0.1:8081/readyz');
    say('running; press Ctrl-C to stop everything');
  } catch (err) {
    say(`failed: ${err instanceof Error ? err.message : String(err)}`);
    await stop(1);
  }
}

async function terminate(children: ChildProcess[]): Promise<void> {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  await Promise.all(
    children.map(
      (c) =>
        new Promise((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve(null);
          const t = setTimeout(() => c.kill('SIGKILL'), 15_000);
          c.once('exit', () => {
            clearTimeout(t);
            resolve(null);
          });
        }),
    ),
  );
}

function loadSamples(dir: string): KubeObject[] {
  const objects: KubeObject[] = [];
  for (const file of readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml')
    .sort()) {
    for (const doc of parseAllDocuments(readFileSync(path.join(dir, file), 'utf8'))) {
      const obj = doc.toJS() as KubeObject | null;
      if (obj?.kind === 'StoragePool') objects.push(obj);
    }
  }
  return objects;
}

async function waitUntil(what: string, probe: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  // A probe that fails means not there yet; the deadline below says what never came.
  while (!(await probe().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve) => spawn(cmd, args, { stdio: 'inherit' }).once('exit', () => resolve()));
}

function runQuiet(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve) =>
    spawn(cmd, args, { stdio: 'ignore' })
      .once('exit', () => resolve())
      .once('error', () => resolve()),
  );
}

// main() catches, prints and exits on its own failure.
void main();

/**
 * Starts a Stowage process in its own process group, so that Ctrl-C reaches only this script —
 * which then deletes the demo pool while the operator and agents still run, and stops them in
 * order — and with a parent-death signal, so they still end if this script is killed outright.
 */
function spawnChild(args: string[], options: SpawnOptions): ChildProcess {
  return spawn('setpriv', ['--pdeathsig', 'TERM', process.execPath, ...args], { ...options, detached: true });
}

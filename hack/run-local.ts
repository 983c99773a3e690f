/**
 * `make run`: the local demo. Uses the cluster your kubeconfig points at ($KUBECONFIG or
 * ~/.kube/config) or, when none is configured, starts a local control plane (test/cluster/);
 * installs the CRDs, runs the operator, applies samples/, prints `kubectl get storagepools`,
 * and keeps running until Ctrl-C, then stops everything it started.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { installCrds } from '../src/crds/install.js';
import { STORAGE_POOLS } from '../src/crds/resource-types.js';
import { KubeClient } from '../src/kube/client.js';
import type { KubeObject } from '../src/kube/types.js';
import { ControlPlane } from '../test/cluster/control-plane.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const STATE_DIR = path.join(ROOT, '.stowage', 'cluster');
const FIELD_MANAGER = 'stowage-demo';
const say = (line: string): void => void process.stdout.write(`[make run] ${line}\n`);

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
  const children: ChildProcess[] = [];
  let stopping = false;
  const stop = async (code: number): Promise<never> => {
    if (stopping) process.exit(code);
    stopping = true;
    say('stopping: operator, then the local control plane');
    for (const child of children) child.kill('SIGTERM');
    await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))));
    await cp?.stop();
    process.exit(code);
  };
  process.once('SIGINT', () => void stop(0));
  process.once('SIGTERM', () => void stop(0));

  try {
    const client = await KubeClient.load({ kubeconfig, userAgent: 'stowage-demo' });
    say('installing the CRDs (server-side apply)');
    await installCrds(client, FIELD_MANAGER);

    say('starting the operator (logs: .stowage/operator.log)');
    const args = [path.join(ROOT, 'dist/src/cli/main.js'), 'operator', '--metrics-bind-address', '127.0.0.1:8080', '--health-probe-bind-address', '127.0.0.1:8081'];
    if (kubeconfig) args.push('--kubeconfig', kubeconfig);
    mkdirSync(path.join(ROOT, '.stowage'), { recursive: true });
    const logFd = openSync(path.join(ROOT, '.stowage', 'operator.log'), 'a');
    const operator = spawn(process.execPath, args, { stdio: ['ignore', logFd, logFd] });
    children.push(operator);
    operator.once('exit', (code) => {
      if (!stopping) {
        say(`the operator exited (code ${code}); see .stowage/operator.log`);
        void stop(1);
      }
    });

    const samples = loadSamples(path.join(ROOT, 'samples'));
    say(`applying ${samples.length} samples from samples/`);
    for (const sample of samples) await client.apply(STORAGE_POOLS, sample, { fieldManager: FIELD_MANAGER });
    await waitUntil('the operator has observed every sample', async () => {
      const pools = await client.list<KubeObject & { status?: { observedGeneration?: number } }>(STORAGE_POOLS);
      return pools.items.length >= samples.length && pools.items.every((p) => p.status?.observedGeneration === p.metadata.generation);
    });
    client.close();

    say('kubectl get storagepools:');
    await run(kubectl, ['get', 'storagepools', ...(kubeconfig ? ['--kubeconfig', kubeconfig] : [])]);
    if (kubeconfig) {
      say('');
      say('Point kubectl at it from another terminal:');
      say(`  export KUBECONFIG=${kubeconfig}`);
      say(`  export PATH=${path.dirname(kubectl)}:$PATH   # kubectl v1.20.2, matching the server`);
      say('  kubectl get storagepools,nodedisks');
    }
    say('metrics: http://127.0.0.1:8080/metrics   health: http://127.0.0.1:8081/readyz');
    say('running; press Ctrl-C to stop everything');
  } catch (err) {
    say(`failed: ${err instanceof Error ? err.message : String(err)}`);
    await stop(1);
  }
}

function loadSamples(dir: string): KubeObject[] {
  const objects: KubeObject[] = [];
  for (const file of readdirSync(dir).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml').sort()) {
    for (const doc of parseAllDocuments(readFileSync(path.join(dir, file), 'utf8'))) {
      const obj = doc.toJS() as KubeObject | null;
      if (obj?.kind === 'StoragePool') objects.push(obj);
    }
  }
  return objects;
}

async function waitUntil(what: string, probe: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve) => spawn(cmd, args, { stdio: 'inherit' }).once('exit', () => resolve()));
}

void main();

import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { parse as parseYaml } from 'yaml';
import { ControlPlane, findBinaries, killLeftovers } from './control-plane.js';
import { registerReadyNode } from './nodes.js';
import { sharedControlPlane, sharedControlPlaneStarted, stopSharedControlPlane } from './shared.js';

const verbose = process.env.STOWAGE_TEST_CP_VERBOSE === '1';
const log = verbose ? (line: string) => process.stderr.write(`      [control-plane] ${line}\n`) : undefined;

function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\S+ \(.*\) [ZX]/.test(stat);
  } catch {
    return false;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function waitUntil<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleep(250);
  }
}

async function ok(cp: ControlPlane, args: string[], input?: string): Promise<string> {
  const r = await cp.kubectl(args, { input });
  expect(r.code, `kubectl ${args.join(' ')}: ${r.stderr}`).to.equal(0);
  return r.stdout;
}

describe('ControlPlane: a real etcd + kube-apiserver + controller-manager + scheduler', function () {
  this.timeout(180_000);
  let cp: ControlPlane | undefined;

  before(async function () {
    this.timeout(240_000);
    const t0 = Date.now();
    cp = await ControlPlane.start({ log });
    process.stderr.write(`      cold start: ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  });

  after(async function () {
    this.timeout(60_000);
    await cp?.stop(); // no-op when the stop test already ran
  });

  it('runs every component on loopback with pid files and logs in the state dir', async () => {
    const c = cp!;
    expect(c.server).to.match(/^https:\/\/127\.0\.0\.1:\d+$/);
    const pids = c.pids();
    expect(Object.keys(pids).sort()).to.deep.equal(['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler']);
    for (const [name, pid] of Object.entries(pids)) {
      expect(fs.readFileSync(path.join(c.stateDir, 'pids', `${name}.pid`), 'utf8').trim()).to.equal(String(pid));
      expect(alive(pid), name).to.equal(true);
      expect(fs.existsSync(path.join(c.stateDir, 'logs', `${name}.log`)), name).to.equal(true);
    }
    // Every listening socket of our processes is on 127.0.0.1.
    const ss = await new Promise<string | undefined>((resolve) => {
      const child = spawn('ss', ['-H', '-l', '-t', '-u', '-n', '-p'], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (b: Buffer) => (out += b.toString()));
      child.on('error', () => resolve(undefined)); // no iproute2: skip this check
      child.on('close', () => resolve(out));
    });
    for (const [name, pid] of ss === undefined ? [] : Object.entries(pids)) {
      const mine = ss!.split('\n').filter((l) => l.includes(`pid=${pid},`));
      expect(mine, `${name} listens`).to.not.have.length(0);
      for (const line of mine) expect(line.trim().split(/\s+/)[4], `${name}: ${line}`).to.match(/^127\.0\.0\.1:\d+$/);
    }
    expect(await ok(c, ['get', '--raw', '/readyz?verbose'])).to.contain('readyz check passed');
    const kc = parseYaml(fs.readFileSync(c.kubeconfigPath, 'utf8'));
    expect(kc.clusters[0].cluster.server).to.equal(c.server);
  });

  it('kubectl get namespaces works', async () => {
    const out = await ok(cp!, ['get', 'namespaces', '-o', 'name']);
    expect(out.split('\n')).to.include.members(['namespace/default', 'namespace/kube-system', 'namespace/kube-public']);
  });

  it('supports server-side apply (managedFields with operation Apply)', async () => {
    const c = cp!;
    const cm = [
      'apiVersion: v1',
      'kind: ConfigMap',
      'metadata:',
      '  name: ssa-probe',
      '  namespace: default',
      'data:',
      '  answer: "42"',
      '',
    ].join('\n');
    await ok(c, ['apply', '--server-side', '--field-manager=stowage-test', '-f', '-'], cm);
    const got = parseYaml(await ok(c, ['get', 'configmap', 'ssa-probe', '-o', 'yaml']));
    expect(got.data).to.deep.equal({ answer: '42' });
    const entry = (got.metadata.managedFields as any[]).find((m) => m.manager === 'stowage-test');
    expect(entry, JSON.stringify(got.metadata.managedFields)).to.not.equal(undefined);
    expect(entry.operation).to.equal('Apply');
  });

  it('schedules a pod onto a hand-registered Ready node, which stays Ready', async () => {
    const c = cp!;
    // No kubelet: the controller-manager must not time hand-registered nodes out.
    const cmdline = fs.readFileSync(`/proc/${c.pids()['kube-controller-manager']}/cmdline`, 'utf8').split('\0');
    expect(cmdline).to.include('--node-monitor-grace-period=87600h');
    expect(cmdline).to.include('--pod-eviction-timeout=87600h');

    await registerReadyNode(c, 'node-a', { 'stowage.io/test': 'yes' });
    const node = JSON.parse(await ok(c, ['get', 'node', 'node-a', '-o', 'json']));
    expect(node.metadata.labels).to.include({ 'kubernetes.io/hostname': 'node-a', 'stowage.io/test': 'yes' });

    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'pinned', namespace: 'default' },
      spec: {
        nodeSelector: { 'kubernetes.io/hostname': 'node-a' },
        containers: [{ name: 'c', image: 'stowage.invalid/never-pulled:1' }],
      },
    };
    await ok(c, ['create', '-f', '-'], JSON.stringify(pod));
    const nodeName = await waitUntil('pod/pinned to be scheduled', 60_000, async () => {
      const p = JSON.parse(await ok(c, ['get', 'pod', 'pinned', '-o', 'json']));
      return p.spec.nodeName || undefined;
    });
    expect(nodeName).to.equal('node-a');

    // Past at least one node-monitor period (5 s): still Ready, still untainted.
    await sleep(6_000);
    const after = JSON.parse(await ok(c, ['get', 'node', 'node-a', '-o', 'json']));
    const ready = (after.status.conditions as any[]).find((x) => x.type === 'Ready');
    expect(ready.status).to.equal('True');
    expect(after.spec.taints ?? []).to.deep.equal([]);
    await ok(c, ['delete', 'pod', 'pinned', '--grace-period=0', '--force']);
  });

  it('takes the API server down for 10 s and brings it back on the same port with its data', async () => {
    const c = cp!;
    await ok(c, ['create', 'configmap', 'survivor', '--from-literal=k=v']);
    const server = c.server;
    const oldPid = c.pids()['kube-apiserver'];

    await c.stopApiServer();
    expect(alive(oldPid)).to.equal(false);
    expect(c.pids()['kube-apiserver']).to.equal(undefined);
    const down = await c.kubectl(['get', 'configmap', 'survivor', '--request-timeout=3s']);
    expect(down.code).to.not.equal(0);
    expect(down.stderr).to.match(/refused|connect|unable/i);
    await sleep(10_000);

    await c.startApiServer();
    expect(c.server).to.equal(server);
    const newPid = c.pids()['kube-apiserver'];
    expect(newPid).to.not.equal(oldPid);
    expect(fs.readFileSync(path.join(c.stateDir, 'pids', 'kube-apiserver.pid'), 'utf8').trim()).to.equal(String(newPid));
    const cm = JSON.parse(await ok(c, ['get', 'configmap', 'survivor', '-o', 'json']));
    expect(cm.data).to.deep.equal({ k: 'v' });
    // The node registered before the restart is still there and the scheduler still works.
    await ok(c, ['get', 'node', 'node-a']);
  });

  it('stop() leaves no process and no state dir behind', async () => {
    const c = cp!;
    const pids = Object.values(c.pids());
    expect(pids).to.have.length(4);
    await c.stop();
    for (const pid of pids) expect(alive(pid), `pid ${pid}`).to.equal(false);
    expect(fs.existsSync(c.stateDir)).to.equal(false);
    cp = undefined;
  });
});

describe('ControlPlane helpers', function () {
  this.timeout(60_000);

  it('explains how to get the binaries when they are missing', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stowage-nobin-'));
    try {
      let err: Error | undefined;
      await ControlPlane.start({ binDir: dir }).catch((e: Error) => (err = e));
      expect(err?.message).to.contain('hack/install-test-deps.sh');
      expect(err?.message).to.contain('kube-apiserver');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names the component and shows its log when it fails to start, leaving nothing behind', async () => {
    const { binDir: real } = findBinaries();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stowage-badbin-'));
    try {
      for (const b of ['kube-controller-manager', 'kube-scheduler', 'kubectl']) fs.symlinkSync(path.join(real, b), path.join(dir, b));
      fs.writeFileSync(path.join(dir, 'kube-apiserver'), '#!/bin/sh\necho "boom: this apiserver is broken" >&2\nexit 3\n', { mode: 0o755 });
      const before = new Set(fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith('stowage-cp-')));
      let err: Error | undefined;
      await ControlPlane.start({ binDir: dir }).catch((e: Error) => (err = e));
      expect(err?.message).to.match(/kube-apiserver exited \(3\)/);
      expect(err?.message).to.contain('boom: this apiserver is broken');
      const after = fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith('stowage-cp-') && !before.has(f));
      expect(after, 'temporary state dir removed').to.deep.equal([]);
      // etcd, which had started, is gone too.
      const strays = fs
        .readdirSync('/proc')
        .filter((d) => /^\d+$/.test(d))
        .map((d) => {
          try {
            return fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').join(' ');
          } catch {
            return '';
          }
        })
        .filter((cmd) => /\/stowage-cp-[^/ ]+/.test(cmd) && !before.has(/\/(stowage-cp-[^/ ]+)/.exec(cmd)![1]));
      expect(strays).to.deep.equal([]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('killLeftovers() kills recorded processes whose command line names the state dir, and only those', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stowage-leftovers-'));
    const keep = 'setInterval(() => {}, 1000)';
    const ours = spawn(process.execPath, ['-e', keep, `${dir}/etcd`], { stdio: 'ignore' });
    const stranger = spawn(process.execPath, ['-e', keep, '/somewhere/else'], { stdio: 'ignore' });
    try {
      await sleep(200);
      fs.mkdirSync(path.join(dir, 'pids'));
      fs.writeFileSync(path.join(dir, 'pids', 'etcd.pid'), `${ours.pid}\n`);
      fs.writeFileSync(path.join(dir, 'pids', 'kube-apiserver.pid'), `${stranger.pid}\n`); // a "reused" PID
      fs.writeFileSync(path.join(dir, 'pids', 'kube-scheduler.pid'), '999999999\n'); // long gone
      const exited = new Promise((r) => ours.once('exit', r));
      const killed = await killLeftovers(dir);
      expect(killed).to.deep.equal([ours.pid]);
      await exited;
      expect(alive(stranger.pid!)).to.equal(true);
      expect(fs.readdirSync(path.join(dir, 'pids'))).to.deep.equal([]);
    } finally {
      ours.kill('SIGKILL');
      stranger.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('sharedControlPlane()', function () {
  this.timeout(240_000);

  it('starts one control plane lazily, memoized, and stopSharedControlPlane() stops it', async () => {
    const wasStarted = sharedControlPlaneStarted();
    const [a, b] = await Promise.all([sharedControlPlane(), sharedControlPlane()]);
    expect(a).to.equal(b);
    expect(await sharedControlPlane()).to.equal(a);
    await ok(a, ['get', 'namespace', 'default']);
    if (wasStarted) return; // another test file owns it; the root hook stops it at the end
    const pids = Object.values(a.pids());
    await stopSharedControlPlane();
    expect(sharedControlPlaneStarted()).to.equal(false);
    for (const pid of pids) expect(alive(pid), `pid ${pid}`).to.equal(false);
    expect(fs.existsSync(a.stateDir)).to.equal(false);
  });
});

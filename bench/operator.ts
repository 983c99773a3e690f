/**
 * `npm run bench:operator`: the operator at scale on the local control plane.
 *
 * N nodes × M NodeDisks (default 500 × 8 = 4,000) split over P Local pools (default 20, one per
 * group of nodes via disks.nodeSelector). The node agents' side is simulated by this process: it
 * reports disks, and reports a claimed disk prepared as soon as it sees the claim.
 *
 * Figures, all measured in this one run against the same API server:
 *  - baseline: a minimal client (16 requests in flight) creating the same PVs directly (rendered by
 *    the operator's code);
 *  - full flow: pools applied → every disk claimed, prepared (simulated agent), PV created, pool Ready;
 *  - restart (headline): the operator starts over claimed, prepared disks whose PVs are gone and
 *    creates every PV and makes every pool Ready — the operator's own work; ratio against a
 *    baseline measured right before it, in each of BENCH_ROUNDS rounds; the median round counts;
 *  - writes during full resyncs after convergence (target 0);
 *  - the operator process's peak RSS and CPU seconds.
 *
 * Environment: BENCH_NODES, BENCH_DISKS_PER_NODE, BENCH_POOLS, BENCH_RESYNC_SECONDS, BENCH_ROUNDS (3);
 * BENCH_OPERATOR_ARGS (extra flags for `stowage operator`, e.g. `--workers 8`), BENCH_OPERATOR_NODE_ARGS
 * (flags for node, e.g. `--cpu-prof`);
 * BENCH_QUICK=1 (for working on the operator, not for reporting): no full flow (the claimed,
 * prepared state is written directly) and no waiting for kube-controller-manager's `Available`.
 */
import { spawn } from 'node:child_process';
import { openSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { installCrds } from '../src/crds/install.js';
import type { NodeDisk } from '../src/crds/nodedisk.js';
import { NODE_DISKS, STORAGE_POOLS } from '../src/crds/resource-types.js';
import type { StoragePool } from '../src/crds/storagepool.js';
import { KubeClient } from '../src/kube/client.js';
import { NAMESPACES, NODES, PERSISTENT_VOLUMES } from '../src/kube/resources.js';
import type { KubeObject, PersistentVolume } from '../src/kube/types.js';
import { withDefaults } from '../src/crds/validation.js';
import { Informer } from '../src/runtime/informer.js';
import { renderLocalPv } from '../src/operator/storagepool/persistent-volume.js';
import { forEachLimit } from '../src/util/concurrency.js';
import { ControlPlane } from '../test/cluster/control-plane.js';
import { freePort } from '../test/support/operator-process.js';

const NODES_N = Number(process.env.BENCH_NODES ?? 500);
const DISKS_PER_NODE = Number(process.env.BENCH_DISKS_PER_NODE ?? 8);
const POOLS_N = Number(process.env.BENCH_POOLS ?? 20);
const RESYNC_SECONDS = Number(process.env.BENCH_RESYNC_SECONDS ?? 20);
const QUICK = process.env.BENCH_QUICK === '1';
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CLIENT_CONCURRENCY = 16;
const GROUP_LABEL = 'bench.stowage.dev/group';
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const CLK_TCK = 100;
/** The operator's own log, for a look when a figure is off. */
const OPERATOR_LOG = process.env.BENCH_OPERATOR_LOG ?? '/tmp/stowage-bench-operator.log';

type Disk = NodeDisk & KubeObject;
type Pool = StoragePool & KubeObject;

const say = (line: string): void => void process.stdout.write(`${line}\n`);
const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

async function main(): Promise<void> {
  const total = NODES_N * DISKS_PER_NODE;
  say(`bench:operator — ${NODES_N} nodes × ${DISKS_PER_NODE} disks = ${total} NodeDisks, ${POOLS_N} Local pools`);
  const cp = await ControlPlane.start();
  const admin = await KubeClient.load({ kubeconfig: cp.kubeconfigPath, userAgent: 'bench' });
  let operator: ReturnType<typeof spawn> | undefined;
  try {
    await installCrds(admin, 'bench');
    // The install creates the operator's namespace, where the driver stack lives.
    await admin.create(NAMESPACES, { metadata: { name: 'stowage-system' } });
    say(`control plane up in ${seconds(cp.startupMs)}; creating nodes and disks (setup, not measured)`);
    const nodes = Array.from({ length: NODES_N }, (_, i) => `bench-node-${String(i).padStart(4, '0')}`);
    await forEachLimit(nodes, 32, async (name) => {
      const group = `g${nodes.indexOf(name) % POOLS_N}`;
      await admin.create(NODES, { metadata: { name, labels: { 'kubernetes.io/hostname': name, [GROUP_LABEL]: group } } });
    });
    const disks = nodes.flatMap((node) => Array.from({ length: DISKS_PER_NODE }, (_, d) => ({ node, name: `${node}-d${d}` })));
    await forEachLimit(disks, 32, async ({ node, name }) => {
      await admin.apply(
        NODE_DISKS,
        {
          apiVersion: 'stowage.dev/v1alpha1',
          kind: 'NodeDisk',
          metadata: { name, labels: { 'stowage.dev/node': node, 'stowage.dev/media': 'ssd' } },
          spec: { nodeName: node, devicePath: `/dev/disk/by-id/bench-${name}` },
        },
        { fieldManager: 'stowage-node' },
      );
      await admin.apply(
        NODE_DISKS,
        { apiVersion: 'stowage.dev/v1alpha1', kind: 'NodeDisk', metadata: { name }, status: agentStatus(false) },
        { fieldManager: 'stowage-node', subresource: 'status' },
      );
    });

    // ---- baseline (first round) ---------------------------------------------------------------
    const baseline = async (waitAvailable: boolean): Promise<{ ms: number; availableMs: number; rate: string }> => {
      const direct = new Informer<PersistentVolume>({
        client: admin,
        resource: PERSISTENT_VOLUMES,
        labelSelector: 'app.kubernetes.io/managed-by=bench',
        resyncMs: 0,
      });
      const rate = rateRecorder(direct);
      const directPvs = new Map(disks.map(({ node, name }) => [name, directPv(name, node, nodes.indexOf(node) % POOLS_N)]));
      direct.start();
      await direct.waitForSync();
      const started = Date.now();
      rate.reset();
      await forEachLimit(disks, CLIENT_CONCURRENCY, async ({ name }) => {
        await admin.create(PERSISTENT_VOLUMES, directPvs.get(name)!, { fieldManager: 'bench' });
      });
      const ms = Date.now() - started;
      if (waitAvailable)
        await until(
          () => direct.list().filter((pv) => pv.status?.phase === 'Available').length === total,
          'direct PVs Available',
          30 * 60_000,
        );
      const availableMs = Date.now() - started;
      await direct.stop();
      // Setup: without kubernetes.io/pv-protection the PVs go at once, and the controller-manager
      // is not left removing 4,000 finalizers at 20 QPS while the operator is measured.
      await forEachLimit(disks, 32, async ({ name }) => {
        await admin.mergePatch(PERSISTENT_VOLUMES, `direct-${name}`, { metadata: { finalizers: null } });
        await admin.delete(PERSISTENT_VOLUMES, `direct-${name}`);
      });
      return { ms, availableMs, rate: rate.describe() };
    };
    say(`baseline: a minimal client creates ${total} PVs directly (${CLIENT_CONCURRENCY} in flight)`);
    const first = await baseline(!QUICK);
    say(
      `  baseline: every PV exists after ${seconds(first.ms)} (${Math.round((total * 1000) / first.ms)} PVs/s)` +
        (QUICK
          ? ''
          : `; every PV Available after ${seconds(first.availableMs)} (kube-controller-manager updates PV phases at its default 20 QPS)`),
    );

    // ---- full flow ---------------------------------------------------------------------------
    const watch = await watchWorld(admin);
    const restartRate = rateRecorder(watch.volumes);
    const agent = simulateAgents(admin, watch.disks);
    const port = await freePort();
    const startOperator = (): ReturnType<typeof spawn> =>
      spawn(
        process.execPath,
        [
          ...(process.env.BENCH_OPERATOR_NODE_ARGS ?? '').split(' ').filter(Boolean),
          CLI,
          'operator',
          '--kubeconfig',
          cp.kubeconfigPath,
          '--metrics-bind-address',
          `127.0.0.1:${port}`,
          '--health-probe-bind-address',
          '0',
          '--resync-period',
          String(RESYNC_SECONDS),
          ...(process.env.BENCH_OPERATOR_ARGS ?? '').split(' ').filter(Boolean),
        ],
        {
          stdio: ['ignore', openSync(OPERATOR_LOG, 'a'), 'inherit'],
          env: { ...process.env, STOWAGE_LOG_LEVEL: process.env.STOWAGE_LOG_LEVEL ?? 'warn' },
        },
      );
    const stopOperator = async (): Promise<void> => {
      operator!.kill('SIGTERM');
      await new Promise((r) => operator!.once('exit', r));
    };
    if (QUICK) {
      say('BENCH_QUICK: writing the claimed, prepared state directly instead of the full flow');
      agent.stop();
      await forEachLimit(
        Array.from({ length: POOLS_N }, (_, i) => i),
        8,
        async (i) => {
          await admin.apply(STORAGE_POOLS, pool(i), { fieldManager: 'bench' });
        },
      );
      await forEachLimit(disks, 32, async ({ node, name }) => {
        const claim = { pool: `bench-pool-${nodes.indexOf(node) % POOLS_N}`, mode: 'Local', volumeMode: 'Filesystem', fsType: 'ext4' };
        await admin.apply(
          NODE_DISKS,
          {
            apiVersion: 'stowage.dev/v1alpha1',
            kind: 'NodeDisk',
            metadata: { name, labels: { 'stowage.dev/pool': claim.pool } },
            spec: { claim },
          },
          { fieldManager: 'stowage-operator' },
        );
        await admin.apply(
          NODE_DISKS,
          { apiVersion: 'stowage.dev/v1alpha1', kind: 'NodeDisk', metadata: { name }, status: agentStatus(true, name) },
          { fieldManager: 'stowage-node', subresource: 'status' },
        );
      });
    } else {
      operator = startOperator();
      const fullStart = Date.now();
      await forEachLimit(
        Array.from({ length: POOLS_N }, (_, i) => i),
        8,
        async (i) => {
          await admin.apply(STORAGE_POOLS, pool(i), { fieldManager: 'bench' });
        },
      );
      await until(() => converged(watch, total), 'every PV created and every pool Ready', 30 * 60_000);
      const fullMs = Date.now() - fullStart;
      say(
        `full flow (claim → simulated agent prepares → PV exists → every pool Ready): ${seconds(fullMs)}; ratio to baseline ${(fullMs / first.ms).toFixed(2)}`,
      );
      await until(() => allAvailable(watch, total), 'every PV Available', 30 * 60_000);
      agent.stop();
      await stopOperator();
    }

    // ---- restarts over prepared disks (headline), each right after a baseline -----------------
    // On a small machine one pair of figures swings with whatever else runs; each round pairs a
    // baseline with a restart measured right after it, and the headline is the median round.
    say(`restart over ${total} prepared disks (operator process start → every PV exists, every pool Ready), ${ROUNDS} rounds:`);
    const ratios: number[] = [];
    let restartCalls = new Map<string, number>();
    for (let round = 1; round <= ROUNDS; round++) {
      const base = round === 1 ? first : await baseline(false);
      // Setup: without kubernetes.io/pv-protection the PVs go at once, instead of at the controller-manager's 20 QPS.
      await forEachLimit(watch.volumes.list(), 32, async (pv) => {
        await admin.mergePatch(PERSISTENT_VOLUMES, pv.metadata.name!, { metadata: { finalizers: null } });
        await admin.delete(PERSISTENT_VOLUMES, pv.metadata.name!);
      });
      await until(() => watch.volumes.list().length === 0, 'PVs gone', 10 * 60_000);
      operator = startOperator();
      const restartStart = Date.now();
      restartRate.reset();
      const firstPv = until(() => watch.volumes.list().length > 0, 'a first PV', 30 * 60_000).then(() => Date.now() - restartStart);
      const allPvs = until(() => watch.volumes.list().length === total, 'every PV', 30 * 60_000).then(() => Date.now() - restartStart);
      await until(() => converged(watch, total), 'every PV recreated and every pool Ready', 30 * 60_000);
      const restartMs = Date.now() - restartStart;
      restartCalls = await requestsSoFar(port);
      ratios.push(restartMs / base.ms);
      say(
        `  round ${round}: baseline ${seconds(base.ms)}, restart ${seconds(restartMs)} (first PV after ${seconds(await firstPv)}: process start, informers synced; ` +
          `every PV after ${seconds(await allPvs)}); ratio ${(restartMs / base.ms).toFixed(2)}`,
      );
      say(`    PVs per second — baseline: ${base.rate}; restart: ${restartRate.describe()}`);
      if (round === 1 && !QUICK) {
        await until(() => allAvailable(watch, total), 'every PV Available', 30 * 60_000);
        const availableMs = Date.now() - restartStart;
        say(
          `  round 1: every PV Available after ${seconds(availableMs)}; ratio to the baseline's ${(availableMs / first.availableMs).toFixed(2)}`,
        );
      }
      if (round < ROUNDS) await stopOperator();
    }
    const median = [...ratios].sort((a, b) => a - b)[Math.floor(ratios.length / 2)];
    say(
      `  HEADLINE ratio to baseline, median of ${ROUNDS} rounds: ${median.toFixed(2)} (target ≤ 1.5; rounds: ${ratios.map((r) => r.toFixed(2)).join(', ')})`,
    );
    say(`  the operator's API requests in the last round: ${describeCalls(restartCalls)}`);

    // ---- resync writes ------------------------------------------------------------------------
    if (QUICK) {
      say('BENCH_QUICK: resync writes not measured (kube-controller-manager is still marking PVs Available, which changes pool status)');
      const { rssMb, cpuSeconds } = processUsage(operator!.pid!);
      say(`operator process: peak RSS ${rssMb.toFixed(0)} MB, CPU ${cpuSeconds.toFixed(1)} s since the restart`);
      await watch.stop();
      return;
    }
    await until(() => allAvailable(watch, total), 'every PV Available', 30 * 60_000);
    await new Promise((r) => setTimeout(r, 3_000));
    const before = writesOf(await requestsSoFar(port));
    await new Promise((r) => setTimeout(r, (RESYNC_SECONDS * 2 + 5) * 1000));
    const after = writesOf(await requestsSoFar(port));
    const diff = [...after].map(([k, v]) => [k, v - (before.get(k) ?? 0)] as const).filter(([, v]) => v > 0);
    const writes = diff.reduce((a, [, v]) => a + v, 0);
    say(
      `API writes during ${RESYNC_SECONDS * 2 + 5} s of full resyncs (every ${RESYNC_SECONDS} s) after convergence: ${writes} (target 0)${diff.length ? ` — ${diff.map(([k, v]) => `${k}: ${v}`).join(', ')}` : ''}`,
    );

    const { rssMb, cpuSeconds } = processUsage(operator!.pid!);
    say(`operator process: peak RSS ${rssMb.toFixed(0)} MB (target ≤ 250 MB), CPU ${cpuSeconds.toFixed(1)} s since the restart`);
    await watch.stop();
  } finally {
    if (operator && operator.exitCode === null) {
      operator.kill('SIGTERM');
      await new Promise((r) => operator!.once('exit', r));
    }
    admin.close();
    await cp.stop();
  }
}

function pool(i: number): Pool {
  return {
    apiVersion: 'stowage.dev/v1alpha1',
    kind: 'StoragePool',
    metadata: { name: `bench-pool-${i}` },
    spec: {
      mode: 'Local',
      disks: { selector: { matchLabels: { 'stowage.dev/media': 'ssd' } }, nodeSelector: { matchLabels: { [GROUP_LABEL]: `g${i}` } } },
    },
  };
}

function agentStatus(prepared: boolean, name = ''): NodeDisk['status'] {
  const t = '2026-01-01T00:00:00Z';
  const c = (type: string, status: 'True' | 'False', reason: string) => ({ type, status, reason, message: reason, lastTransitionTime: t });
  return {
    kind: 'Disk',
    capacity: '1Ti',
    media: 'ssd',
    ...(prepared
      ? { preparation: { path: `/var/lib/stowage/disks/${name}`, filesystem: 'ext4', uuid: `uuid-${name}` }, usage: { size: '1000Gi' } }
      : {}),
    conditions: [
      c('Present', 'True', 'Found'),
      c('Eligible', prepared ? 'False' : 'True', prepared ? 'Claimed' : 'Blank'),
      c('Healthy', 'True', 'Passed'),
      c('Prepared', prepared ? 'True' : 'False', prepared ? 'Mounted' : 'NotClaimed'),
    ],
  };
}

/**
 * The PV the operator makes for this disk, as the baseline's minimal client creates it: rendered by
 * the operator's own code, so both create the same objects (labels and annotation included); only
 * the name and the managed-by label differ, to keep the two sets apart.
 */
function directPv(disk: string, node: string, poolIndex: number): PersistentVolume {
  const claim = { pool: `bench-pool-${poolIndex}`, mode: 'Local' as const, volumeMode: 'Filesystem' as const, fsType: 'ext4' as const };
  const prepared = {
    apiVersion: 'stowage.dev/v1alpha1',
    kind: 'NodeDisk',
    metadata: { name: disk },
    spec: { nodeName: node, devicePath: `/dev/disk/by-id/bench-${disk}`, claim },
    status: agentStatus(true, disk),
  } as NodeDisk;
  const pv = renderLocalPv(withDefaults(pool(poolIndex)), prepared, node);
  if (!pv) throw new Error(`bench: the operator renders no PV for disk ${disk}`);
  return {
    ...pv,
    metadata: { ...pv.metadata, name: `direct-${disk}`, labels: { ...pv.metadata.labels, 'app.kubernetes.io/managed-by': 'bench' } },
  };
}

async function watchWorld(client: KubeClient) {
  const disks = new Informer<Disk>({ client, resource: NODE_DISKS, resyncMs: 0 });
  const volumes = new Informer<PersistentVolume>({
    client,
    resource: PERSISTENT_VOLUMES,
    labelSelector: 'app.kubernetes.io/managed-by=stowage',
    resyncMs: 0,
  });
  const pools = new Informer<Pool>({ client, resource: STORAGE_POOLS, resyncMs: 0 });
  for (const i of [disks, volumes, pools]) i.start();
  await Promise.all([disks.waitForSync(), volumes.waitForSync(), pools.waitForSync()]);
  return { disks, volumes, pools, stop: () => Promise.all([disks.stop(), volumes.stop(), pools.stop()]) };
}

/**
 * PVs seen per second from `since`, as `a b c …`: shows whether a run is limited by start-up, by a
 * steady rate, or by a slow tail.
 */
function rateRecorder(informer: Informer<PersistentVolume>) {
  let since = Date.now();
  let perSecond: number[] = [];
  informer.addHandler({
    added: () => {
      const second = Math.floor((Date.now() - since) / 1000);
      while (perSecond.length <= second) perSecond.push(0);
      perSecond[second] += 1;
    },
  });
  return {
    reset: () => void ((since = Date.now()), (perSecond = [])),
    describe: () => perSecond.join(' '),
  };
}

/** The issue's measure: every PV exists and every pool reports Ready=True. */
function converged(w: Awaited<ReturnType<typeof watchWorld>>, total: number): boolean {
  const pools = w.pools.list();
  return (
    w.volumes.list().length === total &&
    pools.length === POOLS_N &&
    pools.every((p) => p.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True')
  );
}

/** Every PV Available (kube-controller-manager's part) and counted so by its pool. */
function allAvailable(w: Awaited<ReturnType<typeof watchWorld>>, total: number): boolean {
  return w.pools.list().every((p) => p.status?.counts?.volumes?.available === total / POOLS_N);
}

/** The agents' side: a claimed, unprepared disk is reported prepared (one status write, as a real agent). */
function simulateAgents(client: KubeClient, disks: Informer<Disk>) {
  const done = new Set<string>();
  const queue: string[] = [];
  let running = 0;
  const pump = (): void => {
    while (running < 32 && queue.length > 0) {
      const name = queue.shift()!;
      running += 1;
      // Up to 32 writes in flight; each one's own then/catch below counts it and starts the next.
      void client
        .apply(
          NODE_DISKS,
          { apiVersion: 'stowage.dev/v1alpha1', kind: 'NodeDisk', metadata: { name }, status: agentStatus(true, name) },
          { fieldManager: 'stowage-node', subresource: 'status' },
        )
        .catch(() => done.delete(name))
        .finally(() => {
          running -= 1;
          pump();
        });
    }
  };
  const seen = (d: Disk): void => {
    if (d.spec.claim && !done.has(d.metadata.name)) {
      done.add(d.metadata.name);
      queue.push(d.metadata.name);
      pump();
    }
  };
  disks.addHandler({ added: seen, updated: (_o, n) => seen(n) });
  for (const d of disks.list()) seen(d);
  return { stop: () => queue.splice(0) };
}

/** Requests so far, by `verb resource`, from the operator's own metrics. */
async function requestsSoFar(port: number): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const counts = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^stowage_api_requests_total\{verb="(\w+)",resource="([^"]+)",[^}]*\} (\d+)/.exec(line);
    if (m) counts.set(`${m[1]} ${m[2]}`, (counts.get(`${m[1]} ${m[2]}`) ?? 0) + Number(m[3]));
  }
  return counts;
}

function writesOf(calls: Map<string, number>): Map<string, number> {
  return new Map([...calls].filter(([k]) => !/^(get|list|watch) /.test(k)));
}

function describeCalls(calls: Map<string, number>): string {
  return [...calls]
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
}

function processUsage(pid: number): { rssMb: number; cpuSeconds: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0);
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return { rssMb: hwm / 1024, cpuSeconds: ticks / CLK_TCK };
}

async function until(predicate: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

main().catch((err) => {
  process.stderr.write(`bench:operator failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});

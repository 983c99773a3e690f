/**
 * `npm run bench:churn` (issue 18): hundreds of PVCs created and deleted over a Local and a Dynamic
 * pool for STOWAGE_CHURN_SECONDS (default 600), while the node daemons and the CSI controller are
 * killed with SIGKILL and restarted at random moments (the operator too, once, when asked), all real processes
 * over loop devices (churn-world.ts). The external-provisioner is played against the CSI
 * controller's socket (churn-provisioner.ts); kube-scheduler and kube-controller-manager's PV
 * controller bind the claims. Pods are scheduled but never run (no kubelet here), so node-side
 * stage/publish is not part of the churn.
 *
 * At the end it waits for convergence and compares with the picture taken before the churn: one
 * Available Local PV per local disk, no Dynamic PV, PoolVolume, PoolSnapshot or subvolume, the same
 * mounts and loop devices, the pools' counts and capacity figures as at the start. Anything else is
 * a leak and the run fails (exit 1). The operator's RSS is sampled throughout; its end value (idle,
 * after convergence and a settle) against the baseline (idle, after the warm-up, before the churn,
 * same run) must stay within STOWAGE_CHURN_RSS_TOLERANCE. By default the operator is not killed, so both
 * readings are of the same process and the ratio is its growth over the churn; with
 * STOWAGE_CHURN_KILL_OPERATOR=1 it is killed once too, and the ratio compares two processes.
 *
 * Environment (or flags --seconds N, --seed N): STOWAGE_CHURN_SECONDS (600), STOWAGE_CHURN_SEED
 * (random, printed), STOWAGE_CHURN_MAX_LIVE (120 claims at once), STOWAGE_CHURN_MAX_CLAIMS (3000 in
 * all), STOWAGE_CHURN_RESTART_EVERY (mean seconds between kills, 30), STOWAGE_CHURN_HOLD_SECONDS
 * (longest a bound claim is kept, 20), STOWAGE_CHURN_RSS_TOLERANCE (1.5), STOWAGE_CHURN_SETTLE_SECONDS
 * (idle time before an RSS reading, 30), STOWAGE_CHURN_LOG_LEVEL (the processes' log level, info).
 */
import { parseArgs } from 'node:util';
import { randomInt } from 'node:crypto';
import { PERSISTENT_VOLUME_CLAIMS, PERSISTENT_VOLUMES, PODS } from '../src/kube/resources.js';
import type { KubeObject, PersistentVolume } from '../src/kube/types.js';
import { Informer } from '../src/runtime/informer.js';
import { waitFor } from '../test/support/cluster.js';
import { diff, mib, opsTable, percentile, seededRandom, type OpFigures, type Picture } from './churn-figures.js';
import { rssBytes } from './churn-processes.js';
import { ProvisionerPlay } from './churn-provisioner.js';
import { ChurnWorld, DYNAMIC_POOL, LOCAL_POOL, NAMESPACE } from './churn-world.js';

const { values: flags } = parseArgs({ options: { seconds: { type: 'string' }, seed: { type: 'string' } } });
const num = (v: string | undefined, d: number): number => (v === undefined || v === '' ? d : Number(v));
const DURATION_MS = num(flags.seconds ?? process.env.STOWAGE_CHURN_SECONDS, 600) * 1000;
const SEED = num(flags.seed ?? process.env.STOWAGE_CHURN_SEED, randomInt(2 ** 31));
const MAX_LIVE = num(process.env.STOWAGE_CHURN_MAX_LIVE, 120);
const MAX_CLAIMS = num(process.env.STOWAGE_CHURN_MAX_CLAIMS, 3000);
const RESTART_EVERY_MS = num(process.env.STOWAGE_CHURN_RESTART_EVERY, 30) * 1000;
const HOLD_MS = num(process.env.STOWAGE_CHURN_HOLD_SECONDS, 20) * 1000;
const RSS_TOLERANCE = num(process.env.STOWAGE_CHURN_RSS_TOLERANCE, 1.5);
/** Kill -9 the operator once as well (its restart then splits the RSS figure over two processes). */
const KILL_OPERATOR = process.env.STOWAGE_CHURN_KILL_OPERATOR === '1';
const SETTLE_MS = num(process.env.STOWAGE_CHURN_SETTLE_SECONDS, 30) * 1000;
/** A new claim at most this often (the machine has 2 shared cores). */
const SPAWN_GAP_MS = 150;
/** One create→Bound or delete→gone longer than this is a timeout (counted, and cleaned up). */
const OP_TIMEOUT_MS = 180_000;
const CONVERGE_MS = 300_000;
const WARM_UP_CLAIMS = { local: 3, dynamic: 6 };
const POLL_MS = 100;
const CLAIM_UID = 'claimUid';
const SELECTED_NODE = 'volume.kubernetes.io/selected-node';
/** Written by the 1.20 PV controller on a claim of an external provisioner's class (the play waits for it). */
const STORAGE_PROVISIONER = 'volume.beta.kubernetes.io/storage-provisioner';
const secs = (ms: number): string => (Number.isNaN(ms) ? '—' : (ms / 1000).toFixed(2));

const QUIET_CLAIMS = { local: 3, dynamic: 5 };

type Kind = 'local' | 'dynamic';
type Figures = Record<Kind, { bind: number[]; gone: number[]; bindTimeouts: number; goneTimeouts: number }>;
const emptyFigures = (): Figures => ({
  local: { bind: [], gone: [], bindTimeouts: 0, goneTimeouts: 0 },
  dynamic: { bind: [], gone: [], bindTimeouts: 0, goneTimeouts: 0 },
});
type Claim = KubeObject & { spec: { volumeName?: string }; status?: { phase?: string } };
const say = (line: string): void => void process.stdout.write(`${line}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<number> {
  say(
    `bench:churn — ${DURATION_MS / 1000} s of PVC churn over a Local and a Dynamic pool; seed ${SEED} (replay: STOWAGE_CHURN_SEED=${SEED})`,
  );
  const world = await ChurnWorld.create();
  let failed = true;
  const onSignal = (sig: string): void => {
    say(`\n${sig}: tearing down`);
    // On a signal: tear down as far as it goes, then exit whatever happened; teardown logs through say.
    void world.teardown(() => undefined).finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
  process.once('exit', () => world.killSync());
  try {
    await world.start(say);
    const code = await churn(world);
    failed = code !== 0;
    return code;
  } finally {
    process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
    await world.teardown((p) => {
      if (failed) say(`\n--- last lines of the ${p.name}'s log ---\n${p.tail()}`);
    });
    say('torn down: processes stopped, mounts and loop devices removed, control plane stopped, work directory deleted');
  }
}

async function churn(world: ChurnWorld): Promise<number> {
  const { admin } = world;
  const claims = new Informer<Claim>({ client: admin, resource: PERSISTENT_VOLUME_CLAIMS, namespace: NAMESPACE, resyncMs: 0 });
  const volumes = new Informer<PersistentVolume>({ client: admin, resource: PERSISTENT_VOLUMES, resyncMs: 0 });
  volumes.addIndex(CLAIM_UID, (pv) => (pv.spec.claimRef?.uid ? [pv.spec.claimRef.uid] : []));
  claims.start();
  volumes.start();
  await Promise.all([claims.waitForSync(), volumes.waitForSync()]);
  const play = new ProvisionerPlay({
    client: admin,
    controller: world.csi,
    claims,
    volumes,
    namespace: NAMESPACE,
    storageClass: DYNAMIC_POOL,
    pool: DYNAMIC_POOL,
  });
  play.start();
  const rngClaims = seededRandom(SEED);
  const rngKills = seededRandom(SEED ^ 0x5eed);
  let figures = emptyFigures();
  const live: Record<Kind, number> = { local: 0, dynamic: 0 };
  let serial = 0;
  /** kind/op → phase → durations (ms) of the measured operations under churn. */
  let phases = new Map<string, Map<string, number[]>>();
  const phase = (kind: Kind, op: string, names: string[], times: (number | undefined)[]): void => {
    const byPhase = phases.get(`${kind} ${op}`) ?? new Map<string, number[]>();
    phases.set(`${kind} ${op}`, byPhase);
    // A mark never seen (a Local claim is never handed to a provisioner) takes the one before it: 0 s.
    const at = times.map(
      (t, i) =>
        t ??
        times
          .slice(0, i)
          .reverse()
          .find((x) => x !== undefined)!,
    );
    for (let i = 0; i < names.length; i++) byPhase.set(names[i], [...(byPhase.get(names[i]) ?? []), at[i + 1] - at[i]]);
  };

  /** One claim's life: PVC and pod created → Bound → held → pod and PVC deleted → its PV gone. */
  const cycle = async (kind: Kind, measured: boolean, hold = rngClaims() * HOLD_MS): Promise<void> => {
    const name = `${kind}-${String(++serial).padStart(5, '0')}`;
    const storageClassName = kind === 'local' ? LOCAL_POOL : DYNAMIC_POOL;
    live[kind]++;
    const f = figures[kind];
    try {
      const t0 = Date.now();
      await admin.create(PERSISTENT_VOLUME_CLAIMS, {
        metadata: { name, namespace: NAMESPACE },
        spec: {
          accessModes: ['ReadWriteOnce'],
          storageClassName,
          resources: { requests: { storage: kind === 'local' ? '64Mi' : '16Mi' } },
        },
      });
      await admin.create(PODS, {
        metadata: { name, namespace: NAMESPACE },
        spec: {
          containers: [{ name: 'app', image: 'busybox', command: ['sleep', '3600'], volumeMounts: [{ name: 'data', mountPath: '/data' }] }],
          volumes: [{ name: 'data', persistentVolumeClaim: { claimName: name } }],
        },
      });
      // Phases: the scheduler's choice (selected-node, or a Local PV it pre-bound) → a PV for the claim → Bound.
      const marks: Partial<Record<string, number>> = {};
      const bound = await until(() => {
        const c = claims.get(`${NAMESPACE}/${name}`);
        const pv = c?.metadata.uid ? volumes.byIndex(CLAIM_UID, c.metadata.uid)[0] : undefined;
        if (c?.metadata.annotations?.[SELECTED_NODE] || pv) marks.scheduled ??= Date.now();
        if (c?.metadata.annotations?.[STORAGE_PROVISIONER] || pv) marks.handed ??= Date.now();
        if (pv) marks.pv ??= Date.now();
        return c?.status?.phase === 'Bound' ? c.spec.volumeName : undefined;
      }, OP_TIMEOUT_MS);
      if (measured) {
        if (bound) f.bind.push(Date.now() - t0);
        else f.bindTimeouts++;
      }
      if (measured && bound)
        phase(
          kind,
          'create',
          ['scheduled', 'handed over', 'PV exists', 'Bound'],
          [t0, marks.scheduled, marks.handed, marks.pv, Date.now()],
        );
      if (bound) await sleep(hold);
      const t1 = Date.now();
      // The pod may be gone already (never scheduled, or evicted); the claim's deletion below is what is measured.
      await admin
        .request({ method: 'DELETE', path: `/api/v1/namespaces/${NAMESPACE}/pods/${name}`, body: { gracePeriodSeconds: 0 } })
        .catch(() => undefined);
      await admin.delete(PERSISTENT_VOLUME_CLAIMS, name, { namespace: NAMESPACE });
      // The PV it was bound to must go (Local: wiped and replaced by a fresh one; Dynamic: deleted).
      const volumeName = bound ?? claims.get(`${NAMESPACE}/${name}`)?.spec.volumeName;
      // Phases: the claim gone (pvc-protection) → its PV Released → the PV gone (wiped and replaced, or DeleteVolume).
      const marks2: Partial<Record<string, number>> = {};
      const gone = await until(() => {
        const claimGone = !claims.get(`${NAMESPACE}/${name}`);
        const pv = volumeName ? volumes.get(volumeName) : undefined;
        if (claimGone) marks2.claim ??= Date.now();
        if (claimGone && (!pv || pv.status?.phase === 'Released')) marks2.released ??= Date.now();
        return claimGone && !pv ? true : undefined;
      }, OP_TIMEOUT_MS);
      if (measured && bound) {
        if (gone) f.gone.push(Date.now() - t1);
        else f.goneTimeouts++;
      }
      if (measured && bound && gone)
        phase(kind, 'delete', ['claim gone', 'PV Released', 'PV gone'], [t1, marks2.claim, marks2.released, Date.now()]);
    } finally {
      live[kind]--;
    }
  };

  // ---- warm-up (not measured) and baseline ------------------------------------------------------
  say(
    `warm-up: ${WARM_UP_CLAIMS.local} Local and ${WARM_UP_CLAIMS.dynamic} Dynamic claims through their whole life, then ${SETTLE_MS / 1000} s idle`,
  );
  await Promise.all([
    ...Array.from({ length: WARM_UP_CLAIMS.local }, () => cycle('local', false)),
    ...Array.from({ length: WARM_UP_CLAIMS.dynamic }, () => cycle('dynamic', false)),
  ]);
  // The same operations one at a time, with nothing killed: the latency baseline of this run.
  say(`quiet baseline: ${QUIET_CLAIMS.local} Local and ${QUIET_CLAIMS.dynamic} Dynamic claims one at a time, held 0 s, no kills`);
  const quiet = figures;
  for (const kind of ['local', 'dynamic'] as const) for (let i = 0; i < QUIET_CLAIMS[kind]; i++) await cycle(kind, true, 0);
  figures = emptyFigures();
  const quietPhases = phases;
  phases = new Map();
  const before = await settledPicture(world);
  const baselinePid = world.operator.pid;
  const { rss: baselineRss, heap: baselineHeap } = await idleMemory(world);
  say(
    `baseline: operator RSS ${mib(baselineRss)} (idle, after warm-up); ${Object.keys(before.localPvsByDisk).length} Local PVs, pools ${JSON.stringify(before.pools)}`,
  );

  // ---- churn ------------------------------------------------------------------------------------
  const start = Date.now();
  const deadline = start + DURATION_MS;
  let peakRss = baselineRss;
  // rssBytes never rejects (0 for a process that is gone).
  const sampler = setInterval(() => void rssBytes(world.operator.pid).then((r) => (peakRss = Math.max(peakRss, r))), 2_000);
  const kills: string[] = [];
  const killer = (async () => {
    const operatorAt = start + DURATION_MS * (0.1 + 0.2 * rngKills());
    let operatorKilled = !KILL_OPERATOR;
    let next = start + RESTART_EVERY_MS * (0.5 + rngKills());
    // A shuffled bag: every node daemon and the CSI controller is hit once before any is hit again.
    const victims = [...world.nodes.map((n) => n.daemon), world.controller];
    let bag: typeof victims = [];
    const draw = () => {
      if (bag.length === 0)
        bag = [...victims]
          .map((v) => [rngKills(), v] as const)
          .sort((a, b) => a[0] - b[0])
          .map(([, v]) => v);
      return bag.shift()!;
    };
    while (Date.now() < deadline) {
      const at = operatorKilled ? next : Math.min(next, operatorAt);
      if (at >= deadline) break;
      await sleep(Math.max(0, at - Date.now()));
      const victim = !operatorKilled && at === operatorAt ? world.operator : draw();
      if (victim === world.operator) operatorKilled = true;
      else next = Date.now() + RESTART_EVERY_MS * (0.5 + rngKills());
      const down = Math.round(rngKills() * 3_000);
      kills.push(
        `${((Date.now() - start) / 1000).toFixed(0).padStart(4)} s  kill -9 ${victim.name} (pid ${victim.pid}), restarted ${(down / 1000).toFixed(1)} s later`,
      );
      await victim.restart(down);
    }
  })();
  const tasks = new Set<Promise<void>>();
  const errors: string[] = [];
  let started = 0;
  say(
    `churn: at most ${MAX_LIVE} claims at once (Local at most one per local disk: ${world.localDisks.length}), ${MAX_CLAIMS} in all; a kill every ~${RESTART_EVERY_MS / 1000} s`,
  );
  while (Date.now() < deadline && started < MAX_CLAIMS) {
    const room = { local: live.local < world.localDisks.length, dynamic: live.local + live.dynamic < MAX_LIVE };
    const kind: Kind | undefined = room.local && (rngClaims() < 0.3 || !room.dynamic) ? 'local' : room.dynamic ? 'dynamic' : undefined;
    if (kind && live.local + live.dynamic < MAX_LIVE) {
      started++;
      const t = cycle(kind, true).catch((err: Error) => void errors.push(`${kind}: ${err.message}`));
      tasks.add(t);
      // t never rejects (its catch above records the error); this only forgets it once done.
      void t.finally(() => tasks.delete(t));
    }
    await sleep(SPAWN_GAP_MS);
  }
  const churnMs = Date.now() - start;
  say(
    `churn over after ${(churnMs / 1000).toFixed(0)} s (${started} claims started); waiting for the ${tasks.size} claims still in flight`,
  );
  await killer;
  await Promise.all(tasks);
  clearInterval(sampler);

  // ---- convergence and the checks ---------------------------------------------------------------
  const convergeStart = Date.now();
  const after = await settledPicture(world, before).catch(async (err: Error) => {
    errors.push(`no convergence: ${err.message}`);
    return world.picture();
  });
  say(`converged ${((Date.now() - convergeStart) / 1000).toFixed(1)} s after the last claim went`);
  const { rss: endRss, heap: endHeap } = await idleMemory(world);
  peakRss = Math.max(peakRss, endRss);
  play.stop();
  await Promise.all([claims.stop(), volumes.stop()]);
  const leaks = diff(before, after);
  for (const p of world.processes) errors.push(...p.unexpectedExits);

  // ---- report -----------------------------------------------------------------------------------
  const minutes = churnMs / 60_000;
  const ops: OpFigures[] = (['local', 'dynamic'] as const).flatMap((k) => [
    { kind: k, op: 'create → Bound', latenciesMs: figures[k].bind, timeouts: figures[k].bindTimeouts, quietMs: quiet[k].bind },
    { kind: k, op: 'delete → PV gone', latenciesMs: figures[k].gone, timeouts: figures[k].goneTimeouts, quietMs: quiet[k].gone },
  ]);
  const ratio = endRss / baselineRss;
  say('');
  say(`bench:churn figures (seed ${SEED}, ${(churnMs / 1000).toFixed(0)} s of churn, ${started} claims)`);
  for (const line of opsTable(ops, minutes)) say(`  ${line}`);
  say('');
  say('  where the time went (p50 / p99 of each phase; quiet baseline p50 in brackets):');
  for (const [op, byPhase] of phases) {
    const parts = [...byPhase].map(
      ([name, ms]) =>
        `${name} ${secs(percentile(ms, 50))} / ${secs(percentile(ms, 99))} [${secs(percentile(quietPhases.get(op)?.get(name) ?? [], 50))}]`,
    );
    say(`    ${op.padEnd(15)} ${parts.join('  →  ')}`);
  }
  say('');
  say(`  restarts injected (kill -9): ${world.processes.map((p) => `${p.name} ${p.kills}`).join(', ')}`);
  for (const k of kills) say(`    ${k}`);
  say(
    `  provisioner play: ${play.provisioned.size} provisioned, ${play.deleted.size} deleted; retried calls: ${[...play.retries].map(([w, n]) => `${w} ×${n}`).join('; ') || 'none'}`,
  );
  say('');
  say(
    `  operator RSS   baseline ${mib(baselineRss)} (pid ${baselinePid}, idle after warm-up)   peak ${mib(peakRss)}   end ${mib(endRss)} (pid ${world.operator.pid}, idle after convergence)`,
  );
  say(`  RSS end / baseline = ${ratio.toFixed(2)}× (tolerance ${RSS_TOLERANCE}×; peak / baseline ${(peakRss / baselineRss).toFixed(2)}×)`);
  say(
    `  operator V8 heap in use (idle): baseline ${mib(baselineHeap)}, end ${mib(endHeap)} = ${(endHeap / baselineHeap).toFixed(2)}× (for reading the RSS ratio; not a verdict)`,
  );
  say(`  leaks: ${leaks.length === 0 ? 'none — cluster and hosts back to the baseline' : ''}`);
  for (const l of leaks) say(`    LEAK ${l}`);
  for (const e of errors) say(`    ERROR ${e}`);
  if (ratio > RSS_TOLERANCE) say(`    FAIL the operator's RSS grew ${ratio.toFixed(2)}× over the churn (tolerance ${RSS_TOLERANCE}×)`);
  return leaks.length === 0 && errors.length === 0 && ratio <= RSS_TOLERANCE ? 0 : 1;
}

/** Polls `probe` until it returns a value, or resolves undefined after `timeoutMs`. */
async function until<T>(probe: () => T | undefined, timeoutMs: number): Promise<T | undefined> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined || Date.now() > end) return v;
    await sleep(POLL_MS);
  }
}

/**
 * The picture once the cluster is quiet: no claim or pod left, one Available Local PV per local disk,
 * and (when `baseline` is given) everything equal to it — or, after CONVERGE_MS, a rejection.
 * Two equal pictures 3 s apart count as quiet (the operator's status writes have caught up).
 */
async function settledPicture(world: ChurnWorld, baseline?: Picture): Promise<Picture> {
  let last = '';
  return waitFor(
    'the cluster and hosts to converge',
    async () => {
      const pods = (await world.admin.list(PODS, { namespace: NAMESPACE })).items.length;
      const pvcs = (await world.admin.list(PERSISTENT_VOLUME_CLAIMS, { namespace: NAMESPACE })).items.length;
      const p = await world.picture();
      const localReady =
        world.localDisks.every((d) => p.localPvsByDisk[d] === 'Available') &&
        Object.keys(p.localPvsByDisk).length === world.localDisks.length;
      const quiet =
        pods === 0 &&
        pvcs === 0 &&
        localReady &&
        p.dynamicPvs.length === 0 &&
        p.poolVolumes.length === 0 &&
        (!baseline || diff(baseline, p).length === 0);
      const now = JSON.stringify(p);
      const same = now === last;
      last = now;
      if (!quiet || !same) throw new Error(`pods ${pods}, claims ${pvcs}; ${baseline ? diff(baseline, p).join('; ') : now}`);
      return p;
    },
    CONVERGE_MS,
    3_000,
  );
}

/**
 * The operator's memory once idle: after SETTLE_MS, the lowest of five readings a second apart (V8
 * frees lazily) of its RSS (/proc) and of its V8 heap in use (its own nodejs_heap_size_used_bytes).
 */
async function idleMemory(world: ChurnWorld): Promise<{ rss: number; heap: number }> {
  await sleep(SETTLE_MS);
  let [rss, heap] = [Infinity, Infinity];
  for (let i = 0; i < 5; i++) {
    rss = Math.min(rss, await rssBytes(world.operator.pid));
    heap = Math.min(heap, await heapUsed(world.operatorMetrics));
    await sleep(1_000);
  }
  return { rss, heap };
}

async function heapUsed(url: string): Promise<number> {
  // An operator that does not answer (restarting) has no figure this time: 0, as for no match.
  const text = await fetch(url).then(
    (r) => r.text(),
    () => '',
  );
  const m = /^nodejs_heap_size_used_bytes (\S+)$/m.exec(text);
  return m ? Number(m[1]) : NaN;
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    say(`bench:churn failed: ${err.stack ?? err}`);
    process.exit(1);
  },
);

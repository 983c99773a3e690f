/**
 * Fault suite, the API server away (issue 18). A control plane of the test's own (not the shared
 * one: its kube-apiserver and etcd are stopped), the real operator and node agent as child
 * processes over two loop devices, a Local pool with a bound volume holding data. kube-apiserver,
 * then etcd, is stopped for an outage while the volume is in use: every Stowage process keeps
 * running, nothing destructive happens (the data stays, the disks stay mounted, no PV vanishes),
 * and after the API returns the same processes converge (a released volume is wiped and offered
 * again) without a restart. An operator started while the API is away says so in its log and in
 * /readyz, and becomes ready once the API returns. Data at stake in every row: the files in every
 * bound volume, written before the fault, read back (O_DIRECT) before anything is released; the
 * convergence (a released claim wiped and offered again) is checked after that, as part of "survived".
 *
 * The outage lasts STOWAGE_FAULT_OUTAGE_MS (default 20 s in `make test`; the full figure is
 * 2 minutes: STOWAGE_FAULT_OUTAGE_MS=120000).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { KubeClient } from '../../src/kube/client.js';
import { NAMESPACES, PERSISTENT_VOLUMES, PERSISTENT_VOLUME_CLAIMS, STORAGE_CLASSES } from '../../src/kube/resources.js';
import type { KubeObject, PersistentVolume } from '../../src/kube/types.js';
import type { NodeDisk } from '../../src/crds/nodedisk.js';
import { installCrds } from '../../src/crds/install.js';
import { NODE_DISKS, STORAGE_POOLS } from '../../src/crds/resource-types.js';
import { ControlPlane } from '../cluster/control-plane.js';
import { registerReadyNode } from '../cluster/nodes.js';
import { uniqueName, waitFor } from '../support/cluster.js';
import { LoopDevices, unmountAllFrom, type LoopDevice } from '../support/loop-devices.js';
import { OperatorProcess, freePort } from '../support/operator-process.js';
import type { Pvc } from '../support/pool-world.js';
import { AgentProcess } from '../node/support.js';
import { injectFault, type FaultPlan, type SurvivalCheck } from './ledger.js';
import {
  KeptData,
  driverObjects,
  allConditionsReach,
  apiObjects,
  conditionsReach,
  loopDevices,
  mounts,
  nodeDiskClaims,
  processes,
  processesUp,
} from './fault-checks.js';

const AREA = 'API server away';
const MiB = 1024 ** 2;
const OUTAGE_MS = Number(process.env.STOWAGE_FAULT_OUTAGE_MS ?? 20_000);
const CONVERGE_MS = 120_000;

describe('faults: kube-apiserver and etcd away while volumes are in use (own control plane, real processes)', function () {
  this.timeout(600_000 + 4 * OUTAGE_MS);
  let cp: ControlPlane | undefined;
  let admin: KubeClient;
  let work: string;
  let operator: OperatorProcess | undefined;
  let agent: AgentProcess | undefined;
  const loops = new LoopDevices();
  const disks: LoopDevice[] = [];
  const prefix = uniqueName('away');
  const node = `${prefix}-node`;
  const pool = `${prefix}-local`;
  const namespace = `${prefix}-ns`;
  /** Data in every bound volume, written between faults. */
  const kept = new KeptData();
  const pids: number[] = [];

  const poolPvs = async (): Promise<PersistentVolume[]> =>
    (await admin.list<PersistentVolume>(PERSISTENT_VOLUMES, { labelSelector: `stowage.dev/pool=${pool}` })).items;
  const processesAlive = (): SurvivalCheck =>
    processesUp({
      'the operator (same process)': () => !operator!.exited && operator!.child.pid === pids[0],
      'the node agent (same process)': () => !agent!.exited && agent!.child.pid === pids[1],
    });
  /**
   * Every row: the kept data; PVs, NodeDisk claims, the pool's StorageClass, the disks' mounts, loop
   * devices and processes before and after; the same processes up, the disks prepared, the pool
   * Ready, and `converge` (what the returned API must lead to) done by those processes.
   */
  const plan = (...converge: SurvivalCheck[]): FaultPlan => ({
    data: kept,
    inventory: [
      apiObjects(admin, PERSISTENT_VOLUMES, { labelSelector: `stowage.dev/pool=${pool}` }),
      nodeDiskClaims(admin, NODE_DISKS, `stowage.dev/node=${node}`),
      apiObjects(admin, STORAGE_CLASSES, { filter: (sc) => sc.metadata.name === pool }),
      ...driverObjects(admin),
      mounts([work], () => disks.map((d) => d.device)),
      loopDevices(() => [path.dirname(disks[0].file)]),
      processes(),
    ],
    survival: [
      processesAlive(),
      allConditionsReach(admin, NODE_DISKS, `stowage.dev/node=${node}`, { Present: 'True', Prepared: 'True' }, CONVERGE_MS),
      conditionsReach(admin, STORAGE_POOLS, () => pool, { Ready: 'True' }, CONVERGE_MS),
      ...converge,
    ],
  });

  /** The claim `name` released after the outage: its PV must be wiped and offered again by the same processes. */
  const recycles = async (name: string): Promise<void> => {
    const c = await admin.get<Pvc>(PERSISTENT_VOLUME_CLAIMS, name, namespace);
    const old = await admin.get<PersistentVolume>(PERSISTENT_VOLUMES, c.spec.volumeName!);
    kept.release(old.spec.local!.path);
    await admin.delete(PERSISTENT_VOLUME_CLAIMS, name, { namespace });
    await waitFor(
      `a fresh PV after ${name} was released`,
      async () => {
        const pv = await admin.getIfExists<PersistentVolume>(PERSISTENT_VOLUMES, old.metadata.name!);
        return pv && pv.metadata.uid !== old.metadata.uid && pv.status?.phase === 'Available';
      },
      CONVERGE_MS,
    );
  };
  /** Survival: after the data was read back, the released claim's volume is recycled by the same processes. */
  const recycled =
    (name: string): SurvivalCheck =>
    () =>
      recycles(name).then(
        () => [],
        (err: Error) => [`${name} not recycled: ${err.message}`],
      );
  /** Binds claim `name` to an Available PV of the pool and writes data into it (set-up between faults). */
  const bindAndWrite = async (name: string, pv: PersistentVolume): Promise<void> => {
    await admin.create(PERSISTENT_VOLUME_CLAIMS, {
      metadata: { name, namespace },
      spec: {
        accessModes: ['ReadWriteOnce'],
        storageClassName: pool,
        volumeName: pv.metadata.name,
        resources: { requests: { storage: '10Mi' } },
      },
    });
    await waitFor(
      `claim ${name} bound`,
      async () => (await admin.get<Pvc>(PERSISTENT_VOLUME_CLAIMS, name, namespace)).status?.phase === 'Bound',
      60_000,
    );
    await kept.write(path.join(pv.spec.local!.path, `in-use-${name}`), 256 * 1024);
  };

  before(async () => {
    cp = await ControlPlane.start({});
    admin = await KubeClient.load({ kubeconfig: cp.kubeconfigPath, userAgent: 'stowage-tests' });
    await installCrds(admin, 'stowage-tests');
    await admin.create(NAMESPACES, { metadata: { name: namespace } });
    work = await mkdtemp(path.join(tmpdir(), 'stowage-away-'));
    await registerReadyNode(cp, node);
    for (let i = 0; i < 2; i++) disks.push(await loops.create(256 * MiB));
    operator = await OperatorProcess.start(cp.kubeconfigPath);
    agent = AgentProcess.start(cp.kubeconfigPath, node, [
      ...disks.flatMap((d) => ['--allow-device', d.file]),
      '--root',
      path.join(work, 'disks'),
      '--discovery-interval',
      '1',
    ]);
    pids.push(operator.child.pid!, agent.child.pid!);
    await admin.apply(
      STORAGE_POOLS,
      {
        apiVersion: 'stowage.dev/v1alpha1',
        kind: 'StoragePool',
        metadata: { name: pool },
        spec: {
          mode: 'Local',
          disks: { selector: { matchLabels: { 'stowage.dev/node': node } } },
          local: { volumeMode: 'Filesystem', fsType: 'ext4', cleanup: 'quick' },
        },
      },
      { fieldManager: 'kubectl' },
    );
    await waitFor(
      'two Available PVs',
      async () => (await poolPvs()).filter((pv) => pv.status?.phase === 'Available').length === 2,
      CONVERGE_MS,
    );
    for (const [name, pv] of (await poolPvs()).map((p, i) => [['a', 'b'][i], p] as const)) await bindAndWrite(name, pv);
  });

  after(async () => {
    await operator?.stop();
    await agent?.stop();
    for (const d of disks) await unmountAllFrom(d.device);
    await loops.cleanup();
    admin?.close();
    await cp?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it(`kube-apiserver stopped for ${OUTAGE_MS / 1000} s: nothing destroyed, the same processes converge after it returns`, async () => {
    await injectFault(AREA, `kube-apiserver away ${OUTAGE_MS / 1000} s`, plan(recycled('a')), async () => {
      await cp!.stopApiServer();
      await new Promise((r) => setTimeout(r, OUTAGE_MS)); // the outage itself is the fault: its length is the point
      expect(operator!.exited || agent!.exited, 'both processes ride the outage out').to.equal(false);
      await cp!.startApiServer();
    });
  });

  it(`etcd stopped for ${OUTAGE_MS / 1000} s: nothing destroyed, the same processes converge after it returns`, async () => {
    // Set-up: the fresh volume of 'a' bound again as 'c', with data, so two volumes hold data again.
    await bindAndWrite('c', (await poolPvs()).find((pv) => pv.status?.phase === 'Available')!);
    await injectFault(AREA, `etcd away ${OUTAGE_MS / 1000} s`, plan(recycled('c')), async () => {
      await cp!.stopEtcd();
      await new Promise((r) => setTimeout(r, OUTAGE_MS));
      expect(operator!.exited || agent!.exited, 'both processes ride the outage out').to.equal(false);
      await cp!.restartEtcd();
    });
  });

  it('a node agent started while the API is away keeps running, says it retries in its log and /readyz, touches no disk, and reports once it returns', async () => {
    await injectFault(AREA, 'node agent started with the API away', plan(), async () => {
      await agent!.stop();
      await cp!.stopApiServer();
      const port = await freePort();
      // A poll: no answer yet (the agent is not listening yet) is undefined, and the poll asks again.
      const readyz = () =>
        fetch(`http://127.0.0.1:${port}/readyz`).then(
          async (r) => ({ status: r.status, body: await r.text() }),
          () => undefined,
        );
      agent = AgentProcess.start(cp!.kubeconfigPath, node, [
        ...disks.flatMap((d) => ['--allow-device', d.file]),
        '--root',
        path.join(work, 'disks'),
        '--discovery-interval',
        '1',
        '--metrics-bind-address',
        `127.0.0.1:${port}`,
      ]);
      pids[1] = agent.child.pid!;
      await waitFor(
        'the agent to log that it retries',
        () =>
          /retry/i.test(agent!.output.join('')) ||
          (agent!.exited ? Promise.reject(new Error(`the agent exited: ${agent!.output.join('').slice(-2000)}`)) : false),
        60_000,
      );
      // /readyz answers, and says not ready and why, while the API is away; /healthz says alive.
      const notReady = await waitFor(
        '/readyz to answer not ready',
        async () => {
          const r = await readyz();
          return r && r.status === 503 && /API server/.test(r.body) ? r.body : undefined;
        },
        60_000,
      );
      expect(notReady).to.match(/node-agent failed: waiting for the API server.*retrying with backoff/);
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 'alive while not ready').to.equal(200);
      await cp!.startApiServer();
      let last = '';
      await waitFor(
        '/readyz to answer ready once the API is back',
        async () => {
          const r = await readyz();
          last = r?.body ?? '(no answer)';
          return r?.status === 200;
        },
        CONVERGE_MS,
      ).catch((err: Error) => {
        throw new Error(`${err.message}; /readyz said: ${last}`);
      });
      // The restarted agent must act on a spec change made after the API returned: the operator's
      // intent is nudged (and put back by the operator); the agent reports the new generation.
      const ds = (await admin.list<NodeDisk & KubeObject>(NODE_DISKS, { labelSelector: `stowage.dev/node=${node}` })).items;
      for (const d of ds) {
        const touched = await admin.mergePatch<NodeDisk & KubeObject>(
          NODE_DISKS,
          d.metadata.name,
          { spec: { claim: { allowAdoption: true } } },
          { fieldManager: 'stowage-operator' },
        );
        await waitFor(
          `the restarted agent to report generation ${touched.metadata.generation} of ${d.metadata.name}`,
          async () =>
            ((await admin.get<NodeDisk & KubeObject>(NODE_DISKS, d.metadata.name)).status?.observedGeneration ?? 0) >=
            touched.metadata.generation!,
          CONVERGE_MS,
        );
      }
    });
  });

  it('an operator started while the API is away retries, says so in its log and /readyz, and becomes ready when it returns', async () => {
    await injectFault(AREA, 'operator started with the API away', plan(), async () => {
      await cp!.stopApiServer();
      const late = await OperatorProcess.start(cp!.kubeconfigPath);
      try {
        const notReady = await waitFor(
          '/readyz to answer not ready',
          async () => {
            const res = await fetch(`${late.url}/readyz`).catch(() => undefined); // a poll: no answer yet, ask again
            return res && res.status !== 200 ? res.text() : undefined;
          },
          60_000,
        );
        expect(notReady).to.match(/sync|API|connect/i);
        await waitFor(
          'the log to say it cannot reach the API and retries',
          () =>
            /retry/i.test(late.output.join('')) ||
            (late.exited ? Promise.reject(new Error(`the operator exited: ${late.output.join('').slice(-2000)}`)) : false),
          60_000,
        );
        expect(late.exited).to.equal(false);
        await cp!.startApiServer();
        // A poll: no answer is not ready yet.
        await waitFor(
          '/readyz to answer ready',
          async () => (await fetch(`${late.url}/readyz`).catch(() => undefined))?.status === 200,
          CONVERGE_MS,
        );
      } finally {
        await late.stop();
      }
    });
  });
});

/**
 * Fault suite, crash at every step of the Local claim protocol (issue 18). The real operator and
 * the real node agent run as child processes over two loop devices this test made. For each step
 * the process doing it is started with STOWAGE_FAULT_POINT naming that step (src/util/fault-point.ts):
 * when it prints that it reached the step, it is killed with SIGKILL, started again (armed for the
 * next step, or not at all), and the test waits for convergence and checks it: one NodeDisk and at
 * most one PV per disk, no PV for a disk that is not prepared, no PV offered before the wipe for the
 * released volume's UID succeeded, mounts exactly where the state says, the loop devices untouched,
 * the pool's counts right, and the neighbouring volume's data unchanged (bytes lost; before any
 * volume holds data, the row says n/a and why). A PV offered early is found by watching the PVs and
 * NodeDisks from before the first fault (every version, in resourceVersion order), not by polling.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import type { KubeClient } from '../../src/kube/client.js';
import { NAMESPACES, NODES, PERSISTENT_VOLUMES, PERSISTENT_VOLUME_CLAIMS, STORAGE_CLASSES } from '../../src/kube/resources.js';
import type { PersistentVolume } from '../../src/kube/types.js';
import { installCrds } from '../../src/crds/install.js';
import { NODE_DISKS, STORAGE_POOLS } from '../../src/crds/resource-types.js';
import type { NodeDisk } from '../../src/crds/nodedisk.js';
import { IDENTITY_ANNOTATION, WIPED_VOLUMES_ANNOTATION } from '../../src/node/agent/status.js';
import { FAULT_POINT_ENV, FAULT_POINT_LINE } from '../../src/util/fault-point.js';
import { registerReadyNode } from '../cluster/nodes.js';
import { adminClient, createNamespace, deletePoolForcibly, uniqueName, waitFor } from '../support/cluster.js';
import { LoopDevices, unmountAllFrom, type LoopDevice } from '../support/loop-devices.js';
import { OperatorProcess } from '../support/operator-process.js';
import { condition, type Pool, type Pvc } from '../support/pool-world.js';
import { AgentProcess, blkidUuid, mountsOfDevice, nodeDisksOf } from '../node/support.js';
import { injectFault, type ExpectedChanges, type FaultPlan, type NoDataAtStake, type SurvivalCheck } from './ledger.js';
import { KeptData, driverObjects, apiObjects, loopDevices, mounts, nodeDiskClaims, processes, processesUp } from './fault-checks.js';
import { ObjectWatch } from './watch-window.js';

const AREA = 'crash: Local claim protocol';
const MiB = 1024 ** 2;
const CONVERGE_MS = 90_000;
const NO_VOLUME: NoDataAtStake = { na: 'no volume holds data yet (the claim protocol before any PV is bound)' };

type Disk = NodeDisk & { metadata: { name: string; uid?: string; annotations?: Record<string, string> } };

describe('faults: kill -9 at every step of the Local claim protocol (real operator and agent processes)', function () {
  this.timeout(600_000);
  let admin: KubeClient;
  let kubeconfig: string;
  let namespace: string;
  let work: string;
  let operator: OperatorProcess | undefined;
  let agent: AgentProcess | undefined;
  const loops = new LoopDevices();
  const disks: LoopDevice[] = [];
  const prefix = uniqueName('crash');
  const node = `${prefix}-node`;
  const pool = `${prefix}-local`;
  const root = (): string => path.join(work, 'disks');
  /** Files written into volumes that no step may change. */
  const kept = new KeptData();
  /** Every version of the pool's PVs and of the node's NodeDisks, from before the first fault. */
  let pvWatch: ObjectWatch<PersistentVolume>;
  let diskWatch: ObjectWatch<Disk>;
  const reported = new Set<string>();

  const startOperator = async (step?: string): Promise<void> => {
    operator = await OperatorProcess.start(kubeconfig, [], step ? { [FAULT_POINT_ENV]: step } : {});
  };
  const startAgent = (step?: string): void => {
    agent = AgentProcess.start(
      kubeconfig,
      node,
      [...disks.flatMap((d) => ['--allow-device', d.file]), '--root', root(), '--discovery-interval', '1'],
      step ? { [FAULT_POINT_ENV]: step } : {},
    );
  };
  const reached = (p: { output: string[] }, step: string) => p.output.join('').includes(`${FAULT_POINT_LINE} ${step}`);
  /** Waits for `who` to reach `step`, kills it with SIGKILL there, and starts it again armed for `next`. */
  const crashAt = async (who: 'operator' | 'agent', step: string, next?: string): Promise<void> => {
    const proc = who === 'operator' ? operator! : agent!;
    await waitFor(
      `the ${who} to reach ${step}`,
      () =>
        reached(proc, step) || (proc.exited ? Promise.reject(new Error(`the ${who} exited: ${proc.output.join('').slice(-2000)}`)) : false),
      CONVERGE_MS,
    );
    if (who === 'operator') {
      operator!.kill('SIGKILL');
      expect(await operator!.wait()).to.equal('SIGKILL');
      await startOperator(next);
    } else {
      await agent!.kill('SIGKILL');
      expect(agent!.child.signalCode).to.equal('SIGKILL');
      startAgent(next);
    }
  };

  const ourDisks = async (): Promise<Disk[]> => await nodeDisksOf(admin, node);
  const poolPvs = async (): Promise<PersistentVolume[]> =>
    (await admin.list<PersistentVolume>(PERSISTENT_VOLUMES, { labelSelector: `stowage.dev/pool=${pool}` })).items;
  const prepared = (d: Disk): boolean => d.status?.conditions?.find((c) => c.type === 'Prepared')?.status === 'True';

  /**
   * The invariants that hold at every converged state; `mounted` says whether the disks should be
   * mounted (undefined: not checked, while the agent is held in the middle of a wipe).
   */
  const stateGuard =
    (mounted: boolean | undefined): SurvivalCheck =>
    async () => {
      const out: string[] = [];
      const ds = await ourDisks();
      if (ds.length !== disks.length) out.push(`${ds.length} NodeDisks for ${disks.length} devices`);
      const pvs = await poolPvs();
      const byDisk = new Map<string, number>();
      for (const pv of pvs) {
        const d = pv.metadata.labels?.['stowage.dev/disk'] ?? '?';
        byDisk.set(d, (byDisk.get(d) ?? 0) + 1);
        const disk = ds.find((x) => x.metadata.name === d);
        if (!disk) out.push(`PV ${pv.metadata.name} names no disk of this node (orphan)`);
        else if (!prepared(disk) && pv.status?.phase === 'Available') out.push(`PV ${pv.metadata.name} offered for unprepared disk ${d}`);
      }
      for (const [d, n] of byDisk) if (n > 1) out.push(`${n} PVs for disk ${d}`);
      for (const d of mounted === undefined ? [] : ds) {
        const want = mounted ? [path.join(root(), d.metadata.name)] : [];
        const dev = disks.find((l) => d.metadata.annotations?.[IDENTITY_ANNOTATION] === `loop:${l.file}`)?.device;
        const have = dev ? (await mountsOfDevice(dev)).sort() : [];
        if (JSON.stringify(have) !== JSON.stringify(want))
          out.push(`disk ${d.metadata.name}: mounted at [${have.join(', ')}], expected [${want.join(', ')}]`);
      }
      out.push(...earlyOffers());
      return out;
    };
  /**
   * PVs seen offered (Available) for a disk while a wipe for an older UID of that disk was pending:
   * each Available version of a PV is judged against the disk's last version before it (one etcd:
   * resourceVersions order all objects), so an offer that lasted a moment is still seen.
   */
  const earlyOffers = (): string[] => {
    const out = [...pvWatch.errors, ...diskWatch.errors].filter((e) => !reported.has(e));
    for (const e of pvWatch.events) {
      const pv = e.object;
      if (e.type === 'DELETED' || pv.status?.phase !== 'Available') continue;
      const diskName = pv.metadata.labels?.['stowage.dev/disk'];
      const d = diskWatch.events.filter((x) => x.object.metadata.name === diskName && x.rv < e.rv).pop()?.object;
      const wipe = d?.spec.wipe;
      if (!wipe || pv.metadata.uid === wipe.volumeUID) continue;
      const last = d.status?.lastWipe;
      const why = `PV ${pv.metadata.name} (uid ${pv.metadata.uid}, version ${e.rv}) offered before the wipe for ${wipe.volumeUID} succeeded`;
      if ((last?.volumeUID !== wipe.volumeUID || last.result !== 'Succeeded') && !reported.has(why)) out.push(why);
    }
    for (const o of out) reported.add(o);
    return out;
  };
  /**
   * Every row: the data kept so far (or why none is at stake); PVs, NodeDisk claims, the pool's
   * StorageClass, the disks' mounts, loop devices and processes before and after; both processes
   * up and the converged state of {@link stateGuard} (`mounted` as there).
   */
  const plan = (
    mounted: boolean | undefined,
    data: KeptData | NoDataAtStake,
    changes?: () => Promise<ExpectedChanges> | ExpectedChanges,
  ): FaultPlan => ({
    data,
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
      processesUp({ operator: () => !!operator && !operator.exited, 'node agent': () => !!agent && !agent.exited }),
      stateGuard(mounted),
    ],
    ...(changes ? { changes } : {}),
  });
  /** A disk's mount (the probe's "source target") may come and go while the agent wipes it. */
  const diskMount =
    (disk: () => string) =>
    (id: string): boolean =>
      id.endsWith(` ${path.join(root(), disk())}`);

  const poolCounts = async () => (await admin.getIfExists<Pool>(STORAGE_POOLS, pool))?.status?.counts;
  const pvOf = async (disk: string): Promise<PersistentVolume | undefined> =>
    (await poolPvs()).find((pv) => pv.metadata.labels?.['stowage.dev/disk'] === disk);

  before(async () => {
    const { cp, client } = await adminClient();
    admin = client;
    kubeconfig = cp.kubeconfigPath;
    await installCrds(admin, 'stowage-tests');
    namespace = await createNamespace(admin, 'crash');
    work = await mkdtemp(path.join(tmpdir(), 'stowage-crash-'));
    await registerReadyNode(cp, node);
    for (let i = 0; i < 2; i++) disks.push(await loops.create(256 * MiB));
    pvWatch = new ObjectWatch<PersistentVolume>(admin, PERSISTENT_VOLUMES, `stowage.dev/pool=${pool}`);
    diskWatch = new ObjectWatch<Disk>(admin, NODE_DISKS, `stowage.dev/node=${node}`);
    await pvWatch.start();
    await diskWatch.start();
  });

  after(async () => {
    await pvWatch?.stop();
    await diskWatch?.stop();
    if (agent && !agent.exited) await agent.kill('SIGKILL');
    if (operator) await operator.stop();
    if (admin) {
      for (const c of ['a', 'b']) await admin.delete(PERSISTENT_VOLUME_CLAIMS, c, { namespace }).catch(() => undefined);
      await deletePoolForcibly(admin, pool);
      for (const pv of await poolPvs().catch(() => [])) {
        await admin.mergePatch(PERSISTENT_VOLUMES, pv.metadata.name!, { metadata: { finalizers: null } }).catch(() => undefined);
        await admin.delete(PERSISTENT_VOLUMES, pv.metadata.name!).catch(() => undefined);
      }
      for (const d of await ourDisks().catch(() => [])) await admin.delete(NODE_DISKS, d.metadata.name);
      await admin.delete(NODES, node).catch(() => undefined);
      if (namespace) await admin.delete(NAMESPACES, namespace);
    }
    for (const d of disks) await unmountAllFrom(d.device);
    await loops.cleanup();
    if (work) await rm(work, { recursive: true, force: true });
    admin?.close();
  });

  it('operator killed right after claiming a disk: both disks end claimed once, nothing offered unprepared', async () => {
    startAgent('local/prepare');
    await startOperator('local/claim');
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
    // The pool was just made: its claims, its StorageClass and the operator's driver objects are what it converges to.
    const claims = {
      appear: {
        'NodeDisk claim': (id: string) => id.endsWith(`→${pool}`),
        StorageClass: [pool],
        CSIDriver: () => true,
        Deployment: () => true,
        DaemonSet: () => true,
      },
    };
    await injectFault(
      AREA,
      'operator killed at claim',
      plan(false, NO_VOLUME, () => claims),
      async () => {
        await crashAt('operator', 'local/claim', 'local/publish');
        await waitFor(
          'both disks claimed by the pool',
          async () => {
            const ds = await ourDisks();
            return ds.length === 2 && ds.every((d) => d.spec.claim?.pool === pool);
          },
          CONVERGE_MS,
        );
      },
    );
  });

  it('agent killed between mkfs and mount: the restarted agent mounts its own filesystem, formats nothing else', async () => {
    // Prepared disks get mounted, and the operator offers their PVs (it is then held at publish, the next row).
    const preparedDisks = async (): Promise<ExpectedChanges> => ({
      appear: {
        mount: (id) => id.startsWith('/dev/loop') && id.includes(` ${root()}/`),
        PersistentVolume: (await poolPvs()).map((pv) => pv.metadata.name!),
      },
    });
    await injectFault(AREA, 'agent killed at prepare', plan(true, NO_VOLUME, preparedDisks), async () => {
      await crashAt('agent', 'local/prepare', 'local/wiping');
      const ds = await waitFor(
        'both disks prepared',
        async () => {
          const all = await ourDisks();
          return all.length === 2 && all.every(prepared) ? all : undefined;
        },
        CONVERGE_MS,
      );
      for (const d of ds) {
        const dev = disks.find((l) => d.metadata.annotations?.[IDENTITY_ANNOTATION] === `loop:${l.file}`)!.device;
        expect(await blkidUuid(dev)).to.equal(d.status?.preparation?.uuid, `${d.metadata.name}'s filesystem is the one it reports`);
      }
    });
  });

  it('operator killed right after creating a PV: one PV per disk, all offered, the pool counts them', async () => {
    const offered = async (): Promise<ExpectedChanges> => ({
      appear: { PersistentVolume: (await poolPvs()).map((pv) => pv.metadata.name!), StorageClass: [pool] },
    });
    await injectFault(
      AREA,
      'operator killed at publish',
      plan(true, { na: 'no volume holds data yet (PVs being offered, none bound)' }, offered),
      async () => {
        await crashAt('operator', 'local/publish', 'local/wipe-requested');
        await waitFor(
          'two Available PVs and the pool counting them',
          async () => {
            const pvs = await poolPvs();
            const counts = await poolCounts();
            return (
              pvs.length === 2 &&
              pvs.every((pv) => pv.status?.phase === 'Available') &&
              counts?.volumes?.available === 2 &&
              counts.disks?.ready === 2
            );
          },
          CONVERGE_MS,
        );
        const p = await admin.get<Pool>(STORAGE_POOLS, pool);
        expect(condition(p, 'Ready')?.status).to.equal('True');
      },
    );
  });

  let diskA: string;
  let diskB: string;
  let oldUid: string;
  let fileA: string;

  it('recycle: operator killed right after requesting the wipe, agent killed mid-wipe and after the wipe, operator killed after deleting the PV and after the fresh PV', async () => {
    const pvs = await poolPvs();
    [diskA, diskB] = pvs.map((pv) => pv.metadata.labels!['stowage.dev/disk']).sort() as [string, string];
    for (const [claim, disk] of [
      ['a', diskA],
      ['b', diskB],
    ] as const) {
      const pv = (await pvOf(disk))!;
      await admin.create(PERSISTENT_VOLUME_CLAIMS, {
        metadata: { name: claim, namespace },
        spec: {
          accessModes: ['ReadWriteOnce'],
          storageClassName: pool,
          volumeName: pv.metadata.name,
          resources: { requests: { storage: '10Mi' } },
        },
      });
    }
    for (const c of ['a', 'b'])
      await waitFor(
        `claim ${c} bound`,
        async () => (await admin.get<Pvc>(PERSISTENT_VOLUME_CLAIMS, c, namespace)).status?.phase === 'Bound',
        60_000,
      );
    const pvA = (await pvOf(diskA))!;
    oldUid = pvA.metadata.uid!;
    fileA = path.join(pvA.spec.local!.path, 'released-data');
    await writeFile(fileA, randomBytes(64 * 1024));
    await kept.write(path.join((await pvOf(diskB))!.spec.local!.path, 'neighbour-data'), 256 * 1024);
    await admin.delete(PERSISTENT_VOLUME_CLAIMS, 'a', { namespace });
    // Disk A's mount comes and goes while the agent wipes it; the released PV is replaced by a fresh one of the same name.
    const wiping = (): ExpectedChanges => ({ appear: { mount: diskMount(() => diskA) }, vanish: { mount: diskMount(() => diskA) } });

    await injectFault(AREA, 'operator killed at wipe requested', plan(undefined, kept, wiping), async () => {
      await crashAt('operator', 'local/wipe-requested', 'local/pv-deleted');
      const d = await admin.get<Disk>(NODE_DISKS, diskA);
      expect(d.spec.wipe?.volumeUID).to.equal(oldUid);
      expect((await pvOf(diskA))?.metadata.uid, 'the released PV stays until its wipe is done').to.equal(oldUid);
    }); // the agent, armed, is held in the wipe it started

    await injectFault(AREA, 'agent killed while wiping', plan(undefined, kept, wiping), async () => {
      await crashAt('agent', 'local/wiping', 'local/wiped');
      expect((await pvOf(diskA))?.metadata.uid, 'the released PV is not recycled while its wipe is cut off').to.equal(oldUid);
    });

    await injectFault(AREA, 'agent killed after wiping, before reporting it', plan(true, kept, wiping), async () => {
      await crashAt('agent', 'local/wiped', 'local/release');
      const d = await waitFor(
        'the wipe for the released volume reported',
        async () => {
          const x = await admin.get<Disk>(NODE_DISKS, diskA);
          return x.status?.lastWipe?.volumeUID === oldUid && x.status.lastWipe.result === 'Succeeded' ? x : undefined;
        },
        CONVERGE_MS,
      );
      expect(d.metadata.annotations?.[WIPED_VOLUMES_ANNOTATION]?.split(',')).to.include(oldUid);
    });

    const releasedPv = pvA.metadata.name!;
    await injectFault(
      AREA,
      'operator killed after deleting the released PV',
      plan(true, kept, () => ({ vanish: { PersistentVolume: [releasedPv] }, appear: { PersistentVolume: [releasedPv] } })),
      async () => {
        await crashAt('operator', 'local/pv-deleted', 'local/publish');
        await waitFor('the released PV gone', async () => (await pvOf(diskA))?.metadata.uid !== oldUid, CONVERGE_MS);
      },
    );

    await injectFault(
      AREA,
      'operator killed right after creating the fresh PV',
      plan(true, kept, () => ({ appear: { PersistentVolume: [releasedPv] } })),
      async () => {
        await crashAt('operator', 'local/publish');
        const fresh = await waitFor(
          'a fresh Available PV for the wiped disk, the wipe request withdrawn, the pool counting it',
          async () => {
            const pv = await pvOf(diskA);
            const d = await admin.get<Disk>(NODE_DISKS, diskA);
            const counts = await poolCounts();
            return pv && pv.metadata.uid !== oldUid && pv.status?.phase === 'Available' && !d.spec.wipe && counts?.volumes?.available === 1
              ? pv
              : undefined;
          },
          CONVERGE_MS,
        );
        expect((await readdir(fresh.spec.local!.path)).filter((f) => f !== 'lost+found')).to.deep.equal(
          [],
          'the fresh volume starts empty',
        );
      },
    );
  });

  it('agent killed between unmounting and erasing while the pool is deleted: the disks end blank, unmounted, unclaimed', async () => {
    kept.release(work);
    await admin.delete(PERSISTENT_VOLUME_CLAIMS, 'b', { namespace });
    await admin.delete(STORAGE_POOLS, pool);
    const released = async (): Promise<ExpectedChanges> => ({
      vanish: {
        PersistentVolume: () => true,
        'NodeDisk claim': () => true,
        StorageClass: [pool],
        mount: (id) => id.includes(` ${root()}/`),
      },
    });
    await injectFault(
      AREA,
      'agent killed at release',
      plan(false, { na: 'every volume was released before the fault: the pool is being deleted on purpose' }, released),
      async () => {
        await crashAt('agent', 'local/release');
        await waitFor(
          'the pool finalized and both disks released',
          async () => {
            if (await admin.getIfExists(STORAGE_POOLS, pool)) return false;
            const ds = await ourDisks();
            return ds.every((d) => !d.spec.claim && d.status?.conditions?.find((c) => c.type === 'Prepared')?.reason === 'NotClaimed');
          },
          CONVERGE_MS,
        );
        expect(await poolPvs()).to.deep.equal([]);
        for (const d of disks) expect(await blkidUuid(d.device), `${d.device} is blank again`).to.equal(undefined);
      },
    );
  });
});

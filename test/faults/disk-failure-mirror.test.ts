/**
 * Fault suite, disks that fail (issue 18), a `replicated.size: 2` Dynamic pool: the real operator,
 * the real node daemon (`stowage node`: agent, btrfs engine, realizer, CSI Node service) and the
 * real CSI controller as child processes over two loop devices (btrfs raid1); the test plays the
 * sidecars' and kubelet's calls. One mirror is pulled while a volume is written: the disk is made
 * to fail as in disk-failure.test.ts (lazy `losetup --detach`, backing file truncated to 0,
 * `losetup --set-capacity`: the device answers every I/O with an error, as a pulled disk does under
 * a mounted filesystem).
 *
 * Expected, and checked: writes go on on the surviving mirror (btrfs raid1 completes a write when
 * one copy lands and counts the other's error), the NodeDisk, the pool and the volume say the pool
 * runs degraded within a minute, the alert rules fire on the metrics the processes export, every
 * byte written before and during the fault reads back from the survivor (checksums, O_DIRECT so
 * the page cache cannot answer), and the documented recovery — a new disk in the pool on that
 * node; the engine rebuilds the dead member's copies onto it with `btrfs replace` — makes the pool
 * whole again (docs/runbooks/StowagePoolDegraded.md).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import type { KubeClient } from '../../src/kube/client.js';
import { EVENTS, NODES } from '../../src/kube/resources.js';
import type { KubeObject } from '../../src/kube/types.js';
import { installCrds } from '../../src/crds/install.js';
import { NODE_DISKS, POOL_SNAPSHOTS, POOL_VOLUMES, STORAGE_POOLS } from '../../src/crds/resource-types.js';
import type { NodeDisk } from '../../src/crds/nodedisk.js';
import type { PoolVolume } from '../../src/crds/poolvolume.js';
import { csiV1 } from '../../src/csi/grpc.js';
import { mountsUnder } from '../../src/csi/node-service.js';
import { run } from '../../src/host/command.js';
import { ALERTS } from '../../src/observability/alerts.js';
import { NODE_JOB, OPERATOR_JOB } from '../../src/observability/alert-definition.js';
import { registerReadyNode } from '../cluster/nodes.js';
import { adminClient, deletePoolForcibly, uniqueName, waitFor } from '../support/cluster.js';
import { LoopDevices, type LoopDevice } from '../support/loop-devices.js';
import { OperatorProcess, freePort } from '../support/operator-process.js';
import { condition, type Pool } from '../support/pool-world.js';
import { AgentProcess, diskOfFile } from '../node/support.js';
import { call, type CsiClient } from '../csi/fixture.js';
import { injectFault, type FaultPlan } from './ledger.js';
import {
  KeptData,
  driverObjects,
  allOf,
  apiObjects,
  conditionsReach,
  loopDevices,
  mounts,
  nodeDiskClaims,
  processes,
  processesUp,
  subvolumes,
} from './fault-checks.js';
import { expectAlerts, scrapedSeries } from './alert-check.js';
import { pullDisk } from './pull-disk.js';

const AREA = 'disks that fail';
const MiB = 1024 ** 2;
const NOTICE_MS = 60_000;
const CONVERGE_MS = 120_000;
const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');
const mountCap = { mount: { fs_type: '', mount_flags: [] }, access_mode: { mode: 'SINGLE_NODE_WRITER' } };
const rule = (name: string) => ALERTS.find((a) => a.alert === name)!;
type Disk = NodeDisk & KubeObject;

describe('faults: a mirror of a replicated.size 2 Dynamic pool pulled under writes (real operator, node daemon and CSI controller)', function () {
  this.timeout(600_000);
  const node = uniqueName('mirror');
  const pool = uniqueName('mirror');
  const loops = new LoopDevices();
  let admin: KubeClient;
  let kubeconfig = '';
  let dir = '';
  let d1: LoopDevice;
  let d2: LoopDevice;
  let replacementFile = '';
  let daemonPort = 0;
  let daemon: AgentProcess | undefined;
  let operator: OperatorProcess | undefined;
  let controller: ChildProcess | undefined;
  let ctl: CsiClient;
  let nodeCsi: CsiClient;
  let volumeId = '';
  /** Files written into the volume before the fault (at stake), and during it (checked by the fault's body). */
  const kept = new KeptData();
  const during = new KeptData();
  const measured: Record<string, number | string> = {};

  const kubelet = (): string => path.join(dir, 'kubelet');
  const staging = (): string => path.join(kubelet(), 'plugins', 'staging', 'vol');
  const target = (): string => path.join(kubelet(), 'pods', 'pod-1', 'volumes', 'mount');
  const daemonMetrics = async (): Promise<string> => (await fetch(`http://127.0.0.1:${daemonPort}/metrics`)).text();
  const cond = (d: Disk | undefined, type: string) => d?.status?.conditions?.find((c) => c.type === type);
  const get = (file: string): Promise<Disk | undefined> => diskOfFile(admin, node, file);
  const retried = async <T = any>(client: CsiClient, method: string, req: unknown): Promise<T> =>
    waitFor(
      `${method} to succeed`,
      () =>
        call<T>(client, method, req, 20_000).catch((err: grpc.ServiceError) => {
          if (
            err.code === grpc.status.UNAVAILABLE ||
            err.code === grpc.status.FAILED_PRECONDITION ||
            err.code === grpc.status.RESOURCE_EXHAUSTED ||
            err.code === grpc.status.NOT_FOUND
          )
            return undefined;
          throw err;
        }),
      CONVERGE_MS,
      500,
    );
  /** Writes one checksummed file into the volume, fsynced; the digest is kept only when the write succeeded. */
  const writeOne = (name: string, bytes: number, into = kept): Promise<void> => into.write(path.join(target(), name), bytes);
  /**
   * The pull: data written before it; PoolVolumes, subvolumes, claims, mounts, loop devices and
   * processes before and after; the three processes up, the surviving mirror present and prepared.
   */
  const plan = (): FaultPlan => ({
    data: kept,
    inventory: [
      apiObjects(admin, POOL_VOLUMES, { labelSelector: `stowage.dev/pool=${pool}` }),
      apiObjects(admin, POOL_SNAPSHOTS, { labelSelector: `stowage.dev/pool=${pool}` }),
      subvolumes(() => path.join(dir, 'state', 'pools', pool, 'volumes')),
      nodeDiskClaims(admin, NODE_DISKS, `stowage.dev/node=${node}`),
      mounts([dir], () => [d1.device, d2.device]),
      loopDevices(() => [path.dirname(d1.file)]),
      ...driverObjects(admin),
      processes(),
    ],
    survival: [
      processesUp({
        operator: () => !operator!.exited,
        'node daemon': () => !daemon!.exited,
        'CSI controller': () => controller!.exitCode === null && controller!.signalCode === null,
      }),
      conditionsReach(admin, NODE_DISKS, () => disk1Name, { Present: 'True', Prepared: 'True' }),
    ],
  });
  let disk1Name = '';

  before(async () => {
    const a = await adminClient();
    admin = a.client;
    kubeconfig = a.cp.kubeconfigPath;
    await installCrds(admin, 'stowage-tests');
    dir = await mkdtemp(path.join(tmpdir(), 'stowage-mirror-'));
    await mkdir(kubelet(), { recursive: true });
    await registerReadyNode(a.cp, node);
    d1 = await loops.create(512 * MiB);
    d2 = await loops.create(512 * MiB);
    replacementFile = path.join(path.dirname(d1.file), 'replacement.img');
    daemonPort = await freePort();
    daemon = AgentProcess.start(kubeconfig, node, [
      ...[d1.file, d2.file, replacementFile].flatMap((f) => ['--allow-device', f]),
      '--root',
      path.join(dir, 'disks'),
      '--pool-root',
      path.join(dir, 'state'),
      '--csi-endpoint',
      `unix://${dir}/node.sock`,
      '--kubelet-dir',
      kubelet(),
      '--discovery-interval',
      '1',
      '--metrics-bind-address',
      `127.0.0.1:${daemonPort}`,
    ]);
    controller = spawn(
      process.execPath,
      [CLI, 'csi-controller', '--kubeconfig', kubeconfig, '--endpoint', `unix://${dir}/controller.sock`],
      { stdio: 'ignore', env: { ...process.env, STOWAGE_LOG_LEVEL: 'silent' } },
    );
    operator = await OperatorProcess.start(kubeconfig);
    await admin.apply(
      STORAGE_POOLS,
      {
        apiVersion: 'stowage.dev/v1alpha1',
        kind: 'StoragePool',
        metadata: { name: pool },
        spec: { mode: 'Dynamic', disks: { selector: { matchLabels: { 'stowage.dev/node': node } } }, replicated: { size: 2 } },
      },
      { fieldManager: 'kubectl' },
    );
    await waitFor(
      "both disks in the pool's btrfs",
      async () => {
        const ds = await Promise.all([get(d1.file), get(d2.file)]);
        return ds.every((d) => cond(d, 'Prepared')?.status === 'True');
      },
      CONVERGE_MS,
    );
    const v1 = csiV1() as any;
    ctl = new v1.Controller(`unix://${dir}/controller.sock`, grpc.credentials.createInsecure());
    nodeCsi = new v1.Node(`unix://${dir}/node.sock`, grpc.credentials.createInsecure());
    volumeId = (
      await retried(ctl, 'CreateVolume', {
        name: 'pvc-mirror',
        capacity_range: { required_bytes: String(96 * MiB) },
        volume_capabilities: [mountCap],
        parameters: { pool },
      })
    ).volume.volume_id;
    await retried(nodeCsi, 'NodeStageVolume', { volume_id: volumeId, staging_target_path: staging(), volume_capability: mountCap });
    await retried(nodeCsi, 'NodePublishVolume', {
      volume_id: volumeId,
      staging_target_path: staging(),
      target_path: target(),
      volume_capability: mountCap,
    });
    const profile = await run('btrfs', ['filesystem', 'df', path.join(dir, 'state', 'pools', pool)]);
    expect(profile)
      .to.match(/Data, RAID1/)
      .and.to.match(/Metadata, RAID1/);
    await writeOne('before.bin', 16 * MiB);
    // The operator's driver objects exist before the fault (set-up, not a leak of it).
    await waitFor(
      'the operator to report on its driver objects for the pool',
      async () => condition(await admin.get<Pool>(STORAGE_POOLS, pool), 'DriverReady') !== undefined,
      60_000,
    );
  });

  after(async () => {
    ctl?.close();
    nodeCsi?.close();
    if (volumeId) {
      await call(nodeCsi, 'NodeUnpublishVolume', { volume_id: volumeId, target_path: target() }).catch(() => undefined);
      await call(nodeCsi, 'NodeUnstageVolume', { volume_id: volumeId, staging_target_path: staging() }).catch(() => undefined);
    }
    if (admin) {
      for (const pv of (
        await admin
          .list<PoolVolume>(POOL_VOLUMES, { labelSelector: `stowage.dev/pool=${pool}` })
          .catch(() => ({ items: [] as PoolVolume[] }))
      ).items) {
        await admin.delete(POOL_VOLUMES, pv.metadata.name).catch(() => undefined);
      }
      if (daemon && !daemon.exited) {
        await waitFor(
          'the daemon to remove the volume',
          async () => (await admin.list(POOL_VOLUMES, { labelSelector: `stowage.dev/pool=${pool}` })).items.length === 0,
          30_000,
        ).catch(() => undefined);
      }
    }
    if (controller && controller.exitCode === null && controller.signalCode === null) {
      controller.kill('SIGTERM');
      await new Promise((r) => controller!.once('exit', r));
    }
    await daemon?.stop();
    await operator?.stop();
    // Unmount by target under this test's directory, never by device (a lazily detached device's number may be reused).
    if (dir)
      for (const m of (await mountsUnder(dir)).sort((x, y) => y.length - x.length))
        await run('umount', [m]).catch(() => run('umount', ['--lazy', m]).catch(() => undefined));
    await loops.cleanup();
    if (admin) {
      for (const pv of (
        await admin
          .list<PoolVolume>(POOL_VOLUMES, { labelSelector: `stowage.dev/pool=${pool}` })
          .catch(() => ({ items: [] as PoolVolume[] }))
      ).items) {
        await admin.mergePatch(POOL_VOLUMES, pv.metadata.name, { metadata: { finalizers: null } }).catch(() => undefined);
      }
      for (const d of (await admin.list<NodeDisk>(NODE_DISKS, { labelSelector: `stowage.dev/node=${node}` })).items)
        await admin.delete(NODE_DISKS, d.metadata.name);
      await deletePoolForcibly(admin, pool);
      await admin.delete(NODES, node).catch(() => undefined);
      admin.close();
    }
    if (dir) await rm(dir, { recursive: true, force: true });
    if (Object.keys(measured).length > 0) console.log(`      mirror pulled, measured: ${JSON.stringify(measured)}`);
  });

  it('keeps writing on the surviving mirror, says the pool is degraded within a minute, the alerts fire, and loses no byte', async () => {
    const disk2 = (await get(d2.file))!.metadata.name;
    const disk1 = (await get(d1.file))!.metadata.name;
    disk1Name = disk1;
    const errorsBefore = scrapedSeries(await daemonMetrics(), ['stowage_engine_device_errors_total'], {
      job: NODE_JOB,
      instance: 'node:8080',
    });
    await injectFault(AREA, 'one mirror of a replicated.size 2 pool pulled under writes', plan(), async () => {
      let writing = true;
      let written = 0;
      let writeError = '';
      // 32 files written over and over (8 MiB): the writes go on for as long as the test watches
      // without filling the volume's quota.
      const writer = (async () => {
        while (writing) {
          await writeOne(`during-${written % 32}.bin`, 256 * 1024, during).then(
            () => {
              written++;
            },
            (err: Error) => {
              writeError = err.message;
              writing = false;
            },
          );
        }
      })();
      await waitFor('the writer to be going', () => written >= 3, 30_000);
      const t0 = Date.now();
      await pullDisk(loops, d2);
      const unhealthy = await waitFor(
        "the pulled mirror's NodeDisk to say so",
        async () => {
          const d = await get(d2.file);
          return cond(d, 'Healthy')?.status === 'False' ? d : undefined;
        },
        NOTICE_MS,
      ).catch(async (err: Error) => {
        const children = await run('ps', ['--ppid', String(daemon!.child.pid), '-o', 'pid,stat,etime,args']).catch((e: Error) => e.message);
        const lsblk = await run('lsblk', ['-b', '-o', 'NAME,SIZE,TYPE', d2.device]).catch((e: Error) => e.message);
        throw new Error(
          `${err.message}; NodeDisk: ${JSON.stringify((await get(d2.file))?.status)}; lsblk: ${lsblk}; daemon's children: ${children}; daemon: ${daemon!.output.join('').slice(-3000)}`,
        );
      });
      measured.nodeDiskUnhealthyAfterMs = Date.now() - t0;
      expect(cond(unhealthy, 'Healthy')!.reason).to.equal('NoMedium');
      const p = await waitFor(
        "the pool's DisksHealthy to turn False",
        async () => {
          const x = await admin.get<Pool>(STORAGE_POOLS, pool);
          return condition(x, 'DisksHealthy')?.status === 'False' ? x : undefined;
        },
        NOTICE_MS,
      );
      measured.poolDisksHealthyFalseAfterMs = Date.now() - t0;
      expect(condition(p, 'DisksHealthy')!.message).to.contain(disk2).and.not.contain(disk1);
      await waitFor(
        'the volume to report Degraded',
        async () =>
          (await admin.get<PoolVolume>(POOL_VOLUMES, volumeId)).status?.conditions?.find((c) => c.type === 'Degraded')?.status === 'True',
        NOTICE_MS,
      );
      measured.volumeDegradedAfterMs = Date.now() - t0;
      const atNotice = written;
      await waitFor(
        'writes to go on on the surviving mirror',
        () => written >= atNotice + 10 || (writeError ? Promise.reject(new Error(`a write failed: ${writeError}`)) : false),
        30_000,
      );
      writing = false;
      await writer;
      expect(writeError, 'btrfs raid1 completes writes on the surviving mirror').to.equal('');
      measured.filesWrittenDuringFault = written;
      // What was written during the fault reads back too (the ledger checks what was written before).
      const duringBack = await during.freeze().readBack();
      expect(duringBack.lost, duringBack.notes.join('; ')).to.equal(0);
      const events = (
        await admin.list<KubeObject & { type: string; reason: string }>(EVENTS, {
          namespace: 'default',
          fieldSelector: `involvedObject.name=${disk2}`,
        })
      ).items;
      expect(events.filter((e) => e.type === 'Warning').map((e) => e.reason)).to.include('NoMedium');
      const poolEvents = (
        await admin.list<KubeObject & { type: string; reason: string; message: string }>(EVENTS, {
          namespace: 'default',
          fieldSelector: `involvedObject.name=${pool}`,
        })
      ).items;
      expect(
        poolEvents
          .filter((e) => e.type === 'Warning' && e.reason === 'DisksUnhealthy')
          .map((e) => e.message)
          .join(' '),
      ).to.contain(disk2);

      // The alerts, over exactly what the processes export now.
      const nodeText = await daemonMetrics();
      const target = { job: NODE_JOB, instance: 'node:8080' };
      await expectAlerts(
        rule('StowageDiskUnhealthy'),
        scrapedSeries(nodeText, ['stowage_disk_health_status', 'stowage_disk_condition'], target),
        [{ ...target, node, disk: disk2 }],
      );
      const errorsNow = await waitFor(
        "btrfs to count the pulled mirror's errors",
        async () => {
          const s = scrapedSeries(await daemonMetrics(), ['stowage_engine_device_errors_total'], target);
          return Object.entries(s).some(([k, v]) => k.includes(d2.device) && v > (errorsBefore[k] ?? 0)) ? s : undefined;
        },
        NOTICE_MS,
      );
      // increase() over the 30 m window: the errors counted since the scrape before the fault.
      const delta = Object.entries(errorsNow)
        .filter(([k]) => k.includes(`device="${d2.device}"`))
        .reduce((n, [k, v]) => n + v - (errorsBefore[k] ?? 0), 0);
      measured.btrfsErrorsCounted = delta;
      await expectAlerts(rule('StowageDiskIOErrors'), errorsNow, [{ ...target, node, pool, device: d2.device }], errorsBefore, delta);
      await waitFor(
        "the operator's pool metrics to count the unhealthy disk",
        async () => (await operator!.metric('stowage_pool_disks', { pool, state: 'unhealthy' })) >= 1,
        30_000,
      );
      const opSeries = scrapedSeries(await operator!.metrics(), ['stowage_pool_disks', 'stowage_pool_condition'], {
        job: OPERATOR_JOB,
        instance: 'op:8080',
      });
      await expectAlerts(rule('StowagePoolDegraded'), opSeries, [{ job: OPERATOR_JOB, instance: 'op:8080', pool }]);
    });
  });

  // The recovery is the administrator's work, not a fault: checked here, not counted in the table.
  it('recovers as the runbook says: a new disk in the pool on that node, the dead member rebuilt onto it, every byte intact', async () => {
    const disk2 = (await get(d2.file))!.metadata.name;
    const frozen = allOf(kept, during).freeze();
    {
      const t0 = Date.now();
      const fresh = await loops.createAt(replacementFile, 512 * MiB);
      const rebuilt = await waitFor(
        'the new disk in the pool and the pool whole again',
        async () => {
          const d = await get(fresh.file);
          const v = await admin.get<PoolVolume>(POOL_VOLUMES, volumeId);
          return d && cond(d, 'Prepared')?.status === 'True' && v.status?.conditions?.find((c) => c.type === 'Degraded')?.status === 'False'
            ? d
            : undefined;
        },
        CONVERGE_MS,
      ).catch(async (err: Error) => {
        const show = await run('btrfs', ['filesystem', 'show', path.join(dir, 'state', 'pools', pool)]).catch((e: Error) => e.message);
        const v = await admin.get<PoolVolume>(POOL_VOLUMES, volumeId);
        throw new Error(
          `${err.message}; new disk: ${JSON.stringify((await get(fresh.file))?.status?.conditions)}; volume: ${JSON.stringify(v.status?.conditions)}; btrfs: ${show}; daemon: ${daemon!.output.join('').slice(-4000)}`,
        );
      });
      measured.rebuiltAfterMs = Date.now() - t0;
      measured.compactedBeforeRebuild = String(daemon!.output.join('').includes('compacting nearly empty chunks'));
      expect(rebuilt.metadata.name).to.not.equal(disk2);
      const fs = await run('btrfs', ['filesystem', 'show', path.join(dir, 'state', 'pools', pool)]);
      expect(fs, 'the new disk is a member').to.contain(fresh.device);
      expect(fs.split('\n').filter((l) => /devid/.test(l)).length, `two members, the dead one replaced: ${fs}`).to.equal(2);
      expect(fs, `the dead member is gone: ${fs}`).to.not.match(new RegExp(`${d2.device}$`, 'm'));
      const df = await run('btrfs', ['filesystem', 'df', path.join(dir, 'state', 'pools', pool)]);
      expect(df, 'every chunk mirrored again').to.not.match(/^(Data|Metadata|System), (single|DUP)/m);
      await writeOne('after.bin', 4 * MiB);
      // btrfs let go of the dead device, so the kernel dropped it: its NodeDisk says it is gone; the
      // runbook's last step removes it, and the pool's disks are all healthy again.
      await waitFor(
        "the dead disk's NodeDisk to say it is gone",
        async () => cond(await admin.get<Disk>(NODE_DISKS, disk2), 'Present')?.status === 'False',
        NOTICE_MS,
      );
      await admin.delete(NODE_DISKS, disk2);
      await waitFor(
        "the pool's DisksHealthy True again",
        async () => condition(await admin.get<Pool>(STORAGE_POOLS, pool), 'DisksHealthy')?.status === 'True',
        CONVERGE_MS,
      );
      expect(await admin.getIfExists(NODE_DISKS, disk2), 'the dead disk is not re-created').to.equal(undefined);
    }
    const back = await frozen.readBack();
    expect(back.lost, `every byte written before the recovery reads back: ${back.notes.join('; ')}`).to.equal(0);
  });
});

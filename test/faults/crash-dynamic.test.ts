/**
 * Fault suite, crash at every step of the Dynamic volume life cycle (issue 18). The CSI controller
 * (`stowage csi-controller`) and the node daemon (`stowage node`: agent, btrfs engine, PoolVolume
 * realizer, CSI Node service) run as child processes over a loop device this test made; the test
 * plays the operator's claim and the sidecars' calls (retrying a call cut off by the crash, as
 * external-provisioner, external-resizer and kubelet do). At each step the process doing it is
 * armed with STOWAGE_FAULT_POINT (src/util/fault-point.ts), killed with SIGKILL when it says it
 * reached the step, and started again; then the retried call must succeed with the same answer and
 * the state must converge: one PoolVolume per request name, one subvolume per PoolVolume, mounts
 * only where the calls put them, the loop device untouched. Data at stake in every row: a neighbour
 * volume made before the first fault, and the test volume's own data from the moment it exists
 * (written into its subvolume before it is first staged), read back with O_DIRECT.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import type { KubeClient } from '../../src/kube/client.js';
import { installCrds } from '../../src/crds/install.js';
import { NODE_DISKS, POOL_SNAPSHOTS, POOL_VOLUMES, STORAGE_POOLS } from '../../src/crds/resource-types.js';
import type { NodeDisk } from '../../src/crds/nodedisk.js';
import type { PoolVolume } from '../../src/crds/poolvolume.js';
import { csiV1 } from '../../src/csi/grpc.js';
import { mountsUnder } from '../../src/csi/node-service.js';
import { run } from '../../src/host/command.js';
import { ifNotFound } from '../../src/util/errors.js';
import { FAULT_POINT_ENV, FAULT_POINT_LINE } from '../../src/util/fault-point.js';
import { adminClient, uniqueName, waitFor } from '../support/cluster.js';
import { LoopDevices, type LoopDevice } from '../support/loop-devices.js';
import { AgentProcess, condition, diskOfFile, operatorSets } from '../node/support.js';
import { call, codeOf, type CsiClient } from '../csi/fixture.js';
import { injectFault, type ExpectedChanges, type FaultPlan, type SurvivalCheck } from './ledger.js';
import {
  KeptData,
  apiObjects,
  conditionsReach,
  loopDevices,
  mounts,
  processes,
  processesUp,
  subvolumes as subvolumeProbe,
} from './fault-checks.js';

const AREA = 'crash: Dynamic volume life cycle';
const MiB = 1024 ** 2;
const CONVERGE_MS = 90_000;
/** The deadline of a call made to be cut off: a held call killed with its process must fail, not answer. */
const HELD_CALL_MS = 15_000;
/** How a call whose server was killed under it ends (grpc-js over a Unix socket may see only the deadline). */
const CUT_OFF = ['UNAVAILABLE', 'DEADLINE_EXCEEDED', 'CANCELLED'];
const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');
const mountCap = { mount: { fs_type: '', mount_flags: [] }, access_mode: { mode: 'SINGLE_NODE_WRITER' } };
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** `stowage csi-controller` as a child process. */
class ControllerProcess {
  readonly output: string[] = [];
  constructor(readonly child: ChildProcess) {
    child.stdout?.on('data', (d: Buffer) => this.output.push(d.toString()));
    child.stderr?.on('data', (d: Buffer) => this.output.push(d.toString()));
  }
  static start(kubeconfig: string, socket: string, env: Record<string, string>): ControllerProcess {
    return new ControllerProcess(
      spawn(process.execPath, [CLI, 'csi-controller', '--kubeconfig', kubeconfig, '--endpoint', `unix://${socket}`], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, STOWAGE_LOG_LEVEL: 'info', ...env },
      }),
    );
  }
  get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }
  async kill(signal: NodeJS.Signals): Promise<void> {
    if (this.exited) return;
    const done = new Promise((r) => this.child.once('exit', r));
    this.child.kill(signal);
    await done;
  }
}

describe('faults: kill -9 at every step of the Dynamic volume life cycle (real CSI controller and node daemon processes)', function () {
  this.timeout(600_000);
  const node = uniqueName('crashdyn');
  const pool = uniqueName('crashdyn');
  const loops = new LoopDevices();
  let admin: KubeClient;
  let kubeconfig = '';
  let dir = '';
  let disk: LoopDevice;
  let daemon: AgentProcess | undefined;
  let controller: ControllerProcess | undefined;
  let ctl: CsiClient;
  let nodeCsi: CsiClient;
  /** Data at stake: the neighbour volume's from the start, the test volume's once it holds some. */
  const kept = new KeptData();
  let neighbourId = '';
  let diskName = '';

  const kubelet = (): string => path.join(dir, 'kubelet');
  const staging = (): string => path.join(kubelet(), 'plugins', 'staging', 'vol');
  const target = (): string => path.join(kubelet(), 'pods', 'pod-1', 'volumes', 'mount');
  const armed = (step?: string): Record<string, string> => (step ? { [FAULT_POINT_ENV]: step } : {});
  const startDaemon = (step?: string): void => {
    daemon = AgentProcess.start(
      kubeconfig,
      node,
      [
        '--allow-device',
        disk.file,
        '--root',
        path.join(dir, 'disks'),
        '--pool-root',
        path.join(dir, 'state'),
        '--csi-endpoint',
        `unix://${dir}/node.sock`,
        '--kubelet-dir',
        kubelet(),
        '--discovery-interval',
        '2',
      ],
      armed(step),
    );
  };
  const startController = (step?: string): void => {
    controller = ControllerProcess.start(kubeconfig, path.join(dir, 'controller.sock'), armed(step));
  };
  /** Waits for `who` to reach `step`, kills it with SIGKILL there, starts it again armed for `next`. */
  const crashAt = async (who: 'controller' | 'daemon', step: string, next?: string): Promise<void> => {
    const proc = who === 'controller' ? controller! : daemon!;
    await waitFor(
      `the ${who} to reach ${step}`,
      () =>
        reached(who, step) || (proc.exited ? Promise.reject(new Error(`the ${who} exited: ${proc.output.join('').slice(-2000)}`)) : false),
      CONVERGE_MS,
    );
    if (who === 'controller') {
      await controller!.kill('SIGKILL');
      expect(controller!.child.signalCode).to.equal('SIGKILL');
      startController(next);
    } else {
      await daemon!.kill('SIGKILL');
      expect(daemon!.child.signalCode).to.equal('SIGKILL');
      startDaemon(next);
    }
  };
  /** A sidecar's retry loop: the call again until it answers (UNAVAILABLE while the process restarts). */
  const retried = async <T = any>(client: CsiClient, method: string, req: unknown): Promise<T> =>
    waitFor(
      `${method} to succeed`,
      () =>
        call<T>(client, method, req, 20_000).catch((err: grpc.ServiceError) => {
          if (err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.DEADLINE_EXCEEDED) return undefined;
          throw err;
        }),
      CONVERGE_MS,
      500,
    );
  const reached = (who: 'controller' | 'daemon', step: string): boolean =>
    (who === 'controller' ? controller! : daemon!).output.join('').includes(`${FAULT_POINT_LINE} ${step}`);
  /**
   * Makes the call the armed process is to be killed in: until that process says it is held at
   * `step`, a call that fails (service not up yet, caches not synced) is made again, as a sidecar
   * does. Returns the code the held call ends with once the process is killed (it must fail).
   */
  const cutOff = async (
    client: CsiClient,
    method: string,
    req: unknown,
    who: 'controller' | 'daemon',
    step: string,
  ): Promise<{ ended: Promise<string> }> => {
    const deadline = Date.now() + CONVERGE_MS;
    for (;;) {
      let settled = false;
      const code = codeOf(call(client, method, req, HELD_CALL_MS)).finally(() => {
        settled = true;
      });
      // Marks the held call's rejection handled while it is held: whoever awaits `ended` sees it.
      code.catch(() => undefined);
      while (!settled && !reached(who, step)) await new Promise((r) => setTimeout(r, 100));
      // Wrapped: an async function returning the bare promise would wait for it to settle, i.e. for
      // the call's deadline, before the caller could kill anything.
      if (reached(who, step)) return { ended: code };
      if (Date.now() > deadline) throw new Error(`${method} never reached ${step}: it ended with ${await code}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  };

  const poolVolumes = async (): Promise<PoolVolume[]> =>
    (await admin.list<PoolVolume>(POOL_VOLUMES, { labelSelector: `stowage.dev/pool=${pool}` })).items;
  const subvolumes = async (): Promise<string[]> =>
    (await readdir(path.join(dir, 'state', 'pools', pool, 'volumes')).catch(ifNotFound([] as string[]))).sort();
  const kubeletMounts = async (): Promise<string[]> => (await mountsUnder(kubelet())).sort();

  /** One PoolVolume per request, one subvolume per live PoolVolume, mounts only where `mounts` says. */
  const converged =
    (mounts: () => string[]): SurvivalCheck =>
    async () => {
      const out: string[] = [];
      const pvs = await poolVolumes();
      const names = pvs.map((p) => p.spec.requestName);
      if (new Set(names).size !== names.length) out.push(`duplicate PoolVolumes: ${names.join(', ')}`);
      const live = pvs
        .filter((p) => !p.metadata.deletionTimestamp)
        .map((p) => p.metadata.name)
        .sort();
      const subs = await subvolumes();
      for (const s of subs) if (!live.includes(s) && !pvs.some((p) => p.metadata.name === s)) out.push(`orphan subvolume ${s}`);
      for (const l of live) if (!subs.includes(l)) out.push(`PoolVolume ${l} has no subvolume`);
      const want = mounts().sort();
      const have = await kubeletMounts();
      if (JSON.stringify(have) !== JSON.stringify(want))
        out.push(`mounts under kubelet's directory: [${have.join(', ')}], expected [${want.join(', ')}]`);
      return out;
    };
  const volumesDir = (): string => path.join(dir, 'state', 'pools', pool, 'volumes');
  const mountProbe = () => mounts([dir], () => [disk.device]);
  /**
   * Every row: the data kept so far; PoolVolumes, subvolumes, mounts, loop devices and processes
   * before and after; both processes up, the disk prepared, the state converged with `mountsAfter`.
   */
  const plan = (mountsAfter: () => string[], changes?: () => Promise<ExpectedChanges> | ExpectedChanges): FaultPlan => ({
    data: kept,
    inventory: [
      apiObjects(admin, POOL_VOLUMES, { labelSelector: `stowage.dev/pool=${pool}` }),
      apiObjects(admin, POOL_SNAPSHOTS, { labelSelector: `stowage.dev/pool=${pool}` }),
      subvolumeProbe(volumesDir),
      mountProbe(),
      loopDevices(() => [path.dirname(disk.file), dir]),
      processes(),
    ],
    survival: [
      processesUp({ 'the node daemon': () => !!daemon && !daemon.exited, 'the CSI controller': () => !!controller && !controller.exited }),
      conditionsReach(admin, NODE_DISKS, () => diskName, { Prepared: 'True' }),
      converged(mountsAfter),
    ],
    ...(changes ? { changes } : {}),
  });
  /** The mounts (as the mount probe names them) now at `targets`: the ones a call was meant to make. */
  const mountsAt = async (...targets: string[]): Promise<string[]> =>
    (await mountProbe().list()).filter((m) => targets.some((t) => m.endsWith(` ${t}`)));

  before(async () => {
    const a = await adminClient();
    admin = a.client;
    kubeconfig = a.cp.kubeconfigPath;
    await installCrds(admin, 'stowage-tests');
    dir = await mkdtemp(path.join(tmpdir(), 'stowage-crashdyn-'));
    disk = await loops.create(1024 ** 3);
    await admin.create(STORAGE_POOLS, {
      apiVersion: 'stowage.dev/v1alpha1',
      kind: 'StoragePool',
      metadata: { name: pool },
      spec: { mode: 'Dynamic', disks: { selector: { matchLabels: { 'stowage.dev/node': node } } } },
    });
    startDaemon();
    const nd = await waitFor('the agent to report the loop device', () => diskOfFile(admin, node, disk.file), 60_000);
    diskName = nd.metadata.name!;
    await operatorSets(admin, nd.metadata.name, { claim: { pool, mode: 'Dynamic' } });
    await waitFor(
      'the engine to prepare the disk',
      async () => condition(await admin.get<NodeDisk>(NODE_DISKS, nd.metadata.name), 'Prepared')?.status === 'True',
      90_000,
    );
    const v1 = csiV1() as any;
    ctl = new v1.Controller(`unix://${dir}/controller.sock`, grpc.credentials.createInsecure());
    nodeCsi = new v1.Node(`unix://${dir}/node.sock`, grpc.credentials.createInsecure());
    // The neighbour: a volume made and written before the first fault, at stake in every row.
    startController();
    neighbourId = (await retried(ctl, 'CreateVolume', { ...createReq, name: 'pvc-crash-neighbour' })).volume.volume_id;
    const neighbourPath = await waitFor(
      'the neighbour realized',
      async () => (await admin.get<PoolVolume>(POOL_VOLUMES, neighbourId)).status?.path,
      CONVERGE_MS,
    );
    await kept.write(path.join(neighbourPath, 'neighbour'), 512 * 1024);
    await controller!.kill('SIGTERM');
    await daemon!.stop();
    startDaemon('dynamic/realize');
  });

  after(async () => {
    ctl?.close();
    nodeCsi?.close();
    await controller?.kill('SIGKILL');
    if (admin) {
      for (const pv of await poolVolumes().catch(() => [])) await admin.delete(POOL_VOLUMES, pv.metadata.name).catch(() => undefined);
      if (daemon && !daemon.exited)
        await waitFor('the daemon to remove the volumes', async () => (await poolVolumes()).length === 0, 30_000).catch(() => undefined);
    }
    await daemon?.stop();
    if (dir) for (const m of (await mountsUnder(dir)).sort((a, b) => b.length - a.length)) await run('umount', [m]).catch(() => undefined);
    await loops.cleanup();
    if (admin) {
      for (const d of (await admin.list<NodeDisk>(NODE_DISKS, { labelSelector: `stowage.dev/node=${node}` })).items)
        await admin.delete(NODE_DISKS, d.metadata.name);
      for (const pv of await poolVolumes().catch(() => [])) {
        await admin.jsonPatch(POOL_VOLUMES, pv.metadata.name, [{ op: 'remove', path: '/metadata/finalizers' }]).catch(() => undefined);
      }
      await admin.delete(STORAGE_POOLS, pool).catch(() => undefined);
      admin.close();
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  let keptFile = '';
  const createReq = {
    name: 'pvc-crash-1',
    capacity_range: { required_bytes: String(64 * MiB) },
    volume_capabilities: [mountCap],
    parameters: { pool },
  };
  let volumeId = '';

  it('CreateVolume → PoolVolume → realize: controller killed after making the PoolVolume, daemon killed after making the subvolume; the retry answers one volume', async () => {
    startController('dynamic/create-volume');
    const made = async (): Promise<ExpectedChanges> => {
      const names = (await poolVolumes()).filter((p) => p.spec.requestName === createReq.name).map((p) => p.metadata.name);
      return { appear: { PoolVolume: names, subvolume: names } };
    };
    // The daemon is held at realize, so the new PoolVolume has no subvolume until the next row.
    await injectFault(
      AREA,
      'CSI controller killed at CreateVolume (PoolVolume made, not answered)',
      {
        ...plan(() => []),
        survival: [
          processesUp({ 'the node daemon': () => !daemon!.exited, 'the CSI controller': () => !controller!.exited }),
          conditionsReach(admin, NODE_DISKS, () => diskName, { Prepared: 'True' }),
        ],
        changes: made,
      },
      async () => {
        const first = await cutOff(ctl, 'CreateVolume', createReq, 'controller', 'dynamic/create-volume');
        await crashAt('controller', 'dynamic/create-volume', 'dynamic/expand');
        expect(await first.ended).to.be.oneOf(CUT_OFF);
        const pvs = await waitFor('the PoolVolume', async () =>
          (await poolVolumes()).some((p) => p.spec.requestName === createReq.name) ? poolVolumes() : undefined,
        );
        expect(pvs.map((p) => p.spec.requestName).sort()).to.deep.equal([createReq.name, 'pvc-crash-neighbour'].sort());
      },
    );
    await injectFault(
      AREA,
      'node daemon killed at realize (subvolume made, not reported)',
      plan(() => [], made),
      async () => {
        await crashAt('daemon', 'dynamic/realize', 'dynamic/stage');
        const v = (await retried(ctl, 'CreateVolume', createReq)).volume;
        volumeId = v.volume_id;
        expect(BigInt(v.capacity_bytes)).to.equal(BigInt(64 * MiB));
        expect((await poolVolumes()).map((p) => p.metadata.name).sort()).to.deep.equal([volumeId, neighbourId].sort());
        expect(await subvolumes()).to.deep.equal([volumeId, neighbourId].sort());
      },
    );
    // The test volume's own data, written into its subvolume before it is first staged.
    const own = await waitFor(
      'the volume realized',
      async () => (await admin.get<PoolVolume>(POOL_VOLUMES, volumeId)).status?.path,
      CONVERGE_MS,
    );
    await kept.write(path.join(own, 'kept'), 256 * 1024);
    keptFile = path.join(own, 'kept');
  });

  it('stage and publish: the daemon killed after each mount; the retried calls end with one mount each, read-only where asked', async () => {
    const stageReq = { volume_id: volumeId, staging_target_path: staging(), volume_capability: mountCap };
    const publishReq = {
      volume_id: volumeId,
      staging_target_path: staging(),
      target_path: target(),
      volume_capability: mountCap,
      readonly: true,
    };
    const keptSum = sha(await readFile(keptFile));
    await injectFault(
      AREA,
      'node daemon killed at NodeStageVolume (mounted, not answered)',
      plan(
        () => [staging()],
        async () => ({ appear: { mount: await mountsAt(staging()) } }),
      ),
      async () => {
        const first = await cutOff(nodeCsi, 'NodeStageVolume', stageReq, 'daemon', 'dynamic/stage');
        await crashAt('daemon', 'dynamic/stage', 'dynamic/publish');
        expect(await first.ended).to.be.oneOf(CUT_OFF);
        await retried(nodeCsi, 'NodeStageVolume', stageReq);
        expect(await readFile(path.join(staging(), 'kept')).then(sha), 'the staged volume shows the data written before').to.equal(keptSum);
      },
    );
    await injectFault(
      AREA,
      'node daemon killed at NodePublishVolume (published read-only, not answered)',
      plan(
        () => [staging(), target()],
        async () => ({ appear: { mount: await mountsAt(target()) } }),
      ),
      async () => {
        const first = await cutOff(nodeCsi, 'NodePublishVolume', publishReq, 'daemon', 'dynamic/publish');
        await crashAt('daemon', 'dynamic/publish', 'dynamic/unpublish');
        expect(await first.ended).to.be.oneOf(CUT_OFF);
        await retried(nodeCsi, 'NodePublishVolume', publishReq);
        expect(await readFile(path.join(target(), 'kept')).then(sha)).to.equal(keptSum);
        const write = await writeFile(path.join(target(), 'x'), 'x').then(
          () => 'written',
          (err: NodeJS.ErrnoException) => err.code,
        );
        expect(write, 'a read-only publish stays read-only after the crash').to.equal('EROFS');
      },
    );
  });

  it('expand: the controller killed after asking the node for the new size; the retry answers it and the node realizes it', async () => {
    const req = { volume_id: volumeId, capacity_range: { required_bytes: String(128 * MiB) }, volume_capability: mountCap };
    await injectFault(
      AREA,
      'CSI controller killed at ControllerExpandVolume (size asked, not answered)',
      plan(() => [staging(), target()]),
      async () => {
        const first = await cutOff(ctl, 'ControllerExpandVolume', req, 'controller', 'dynamic/expand');
        await crashAt('controller', 'dynamic/expand', 'dynamic/delete');
        expect(await first.ended).to.be.oneOf(CUT_OFF);
        const res = await retried(ctl, 'ControllerExpandVolume', req);
        expect(BigInt(res.capacity_bytes)).to.equal(BigInt(128 * MiB));
        const pv = await admin.get<PoolVolume>(POOL_VOLUMES, volumeId);
        expect(BigInt(pv.status?.capacity ?? '0')).to.equal(BigInt(128 * MiB));
      },
    );
  });

  it('unpublish and unstage: the daemon killed after each unmount; the retried calls answer and leave no mount, the data intact', async () => {
    const unpublishReq = { volume_id: volumeId, target_path: target() };
    const unstageReq = { volume_id: volumeId, staging_target_path: staging() };
    const [targetMounts, stagingMounts] = [await mountsAt(target()), await mountsAt(staging())];
    await injectFault(
      AREA,
      'node daemon killed at NodeUnpublishVolume (unmounted, not answered)',
      plan(
        () => [staging()],
        async () => ({ vanish: { mount: [...targetMounts] } }),
      ),
      async () => {
        const first = await cutOff(nodeCsi, 'NodeUnpublishVolume', unpublishReq, 'daemon', 'dynamic/unpublish');
        await crashAt('daemon', 'dynamic/unpublish', 'dynamic/unstage');
        expect(await first.ended).to.be.oneOf(CUT_OFF);
        await retried(nodeCsi, 'NodeUnpublishVolume', unpublishReq);
        expect(await readdir(path.dirname(target())), 'the target removed').to.not.include(path.basename(target()));
      },
    );
    await injectFault(
      AREA,
      'node daemon killed at NodeUnstageVolume (unmounted, not answered)',
      plan(
        () => [],
        async () => ({ vanish: { mount: [...stagingMounts] } }),
      ),
      async () => {
        const first = await cutOff(nodeCsi, 'NodeUnstageVolume', unstageReq, 'daemon', 'dynamic/unstage');
        await crashAt('daemon', 'dynamic/unstage', 'dynamic/remove');
        expect(await first.ended).to.be.oneOf(CUT_OFF);
        await retried(nodeCsi, 'NodeUnstageVolume', unstageReq);
      },
    );
  });

  it('delete: the controller killed after asking for the deletion, the daemon after removing the data; the retry ends with nothing left', async () => {
    // The test volume's data goes by request; the neighbour's stays at stake.
    kept.release(path.dirname(keptFile));
    const req = { volume_id: volumeId };
    const gone = (): ExpectedChanges => ({ vanish: { PoolVolume: [volumeId], subvolume: [volumeId] } });
    await injectFault(
      AREA,
      'CSI controller killed at DeleteVolume (deletion asked, not answered)',
      {
        ...plan(() => [], gone),
        // The daemon is held after removing the data: the PoolVolume keeps its finalizer until the next row.
        survival: [
          processesUp({ 'the node daemon': () => !daemon!.exited, 'the CSI controller': () => !controller!.exited }),
          conditionsReach(admin, NODE_DISKS, () => diskName, { Prepared: 'True' }),
        ],
      },
      async () => {
        const first = await cutOff(ctl, 'DeleteVolume', req, 'controller', 'dynamic/delete');
        await crashAt('controller', 'dynamic/delete');
        expect(await first.ended).to.be.oneOf(CUT_OFF);
        const pv = await admin.getIfExists<PoolVolume>(POOL_VOLUMES, volumeId);
        expect(pv?.metadata.deletionTimestamp, 'the PoolVolume is being deleted').to.be.a('string');
      },
    );
    await injectFault(
      AREA,
      'node daemon killed after removing the data, before the finalizer',
      plan(() => [], gone),
      async () => {
        // Already held there since the PoolVolume got its deletion timestamp.
        await crashAt('daemon', 'dynamic/remove');
        await retried(ctl, 'DeleteVolume', req);
        expect((await poolVolumes()).map((p) => p.metadata.name)).to.deep.equal([neighbourId]);
        expect(await subvolumes()).to.deep.equal([neighbourId]);
      },
    );
  });
});

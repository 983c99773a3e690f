/**
 * The world of `npm run bench:churn`: a control plane of its own (etcd, kube-apiserver,
 * kube-controller-manager — whose PV controller binds the claims — and kube-scheduler, which picks
 * the node of WaitForFirstConsumer claims), two hand-registered Ready nodes, loop devices over
 * sparse files the bench created (the allow-list: each node daemon gets only its own), the real
 * `stowage operator`, one real `stowage node` daemon per node and the real `stowage csi-controller`,
 * a Local pool and a Dynamic pool. `teardown()` removes every process, mount, loop device and file,
 * also after a failure or Ctrl-C; the exit hook is the synchronous last resort.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { installCrds } from '../src/crds/install.js';
import { NODE_DISKS, POOL_SNAPSHOTS, POOL_VOLUMES, STORAGE_POOLS } from '../src/crds/resource-types.js';
import type { StoragePool } from '../src/crds/storagepool.js';
import { csiV1 } from '../src/csi/grpc.js';
import { DRIVER_NAME } from '../src/csi/identity.js';
import { KubeClient } from '../src/kube/client.js';
import { CSI_NODES, NAMESPACES, NODES, PERSISTENT_VOLUMES } from '../src/kube/resources.js';
import type { KubeObject, PersistentVolume } from '../src/kube/types.js';
import { run } from '../src/host/command.js';
import { ControlPlane } from '../test/cluster/control-plane.js';
import { registerReadyNode } from '../test/cluster/nodes.js';
import { call, type CsiClient } from '../test/csi/fixture.js';
import { waitFor } from '../test/support/cluster.js';
import { LoopDevices, type LoopDevice } from '../test/support/loop-devices.js';
import { freePort } from '../test/support/operator-process.js';
import { condition, diskOfFile } from '../test/node/support.js';
import type { Picture } from './churn-figures.js';
import { entries, loopsOver, mountsOf, StowageProcess } from './churn-processes.js';

export const NAMESPACE = 'churn';
export const LOCAL_POOL = 'churn-local';
export const DYNAMIC_POOL = 'churn-dynamic';
const ROLE_LABEL = 'bench.stowage.dev/role';
const NODE_NAMES = ['churn-node-a', 'churn-node-b'];
const MiB = 1024 ** 2;
const LOCAL_DISK_BYTES = 128 * MiB;
const DYNAMIC_DISK_BYTES = 4096 * MiB;
const LOG_LEVEL = process.env.STOWAGE_CHURN_LOG_LEVEL ?? 'info';
const SETUP_MS = 180_000;

export type Pool = StoragePool & KubeObject;

interface NodeSetup {
  readonly name: string;
  readonly dir: string;
  readonly local: LoopDevice[];
  readonly dynamic: LoopDevice;
  readonly daemon: StowageProcess;
}

export class ChurnWorld {
  readonly nodes: NodeSetup[] = [];
  readonly loops = new LoopDevices();
  operator!: StowageProcess;
  controller!: StowageProcess;
  admin!: KubeClient;
  csi!: CsiClient;
  localDisks: string[] = [];
  /** The operator's /metrics (prom-client's default process and Node.js metrics among them). */
  operatorMetrics = '';
  private cp?: ControlPlane;

  private constructor(readonly work: string) {}

  static async create(): Promise<ChurnWorld> {
    return new ChurnWorld(await mkdtemp(path.join(tmpdir(), 'stowage-churn-')));
  }

  get processes(): StowageProcess[] {
    return [this.operator, this.controller, ...this.nodes.map((n) => n.daemon)].filter(Boolean);
  }

  async start(say: (line: string) => void): Promise<void> {
    this.cp = await ControlPlane.start();
    say(`control plane up in ${(this.cp.startupMs / 1000).toFixed(1)} s (etcd, kube-apiserver, kube-controller-manager, kube-scheduler)`);
    const kubeconfig = this.cp.kubeconfigPath;
    this.admin = await KubeClient.load({ kubeconfig, userAgent: 'bench-churn' });
    await installCrds(this.admin, 'bench');
    for (const ns of ['stowage-system', NAMESPACE]) await this.admin.create(NAMESPACES, { metadata: { name: ns } });
    await this.cp.waitForDefaultServiceAccount(NAMESPACE);
    for (const name of NODE_NAMES) {
      await registerReadyNode(this.cp, name);
      const dir = path.join(this.work, name);
      const local = [];
      for (let i = 0; i < 3; i++) local.push(await this.loops.create(LOCAL_DISK_BYTES));
      const dynamic = await this.loops.create(DYNAMIC_DISK_BYTES);
      const daemon = new StowageProcess(
        `node daemon ${name}`,
        [
          'node',
          '--kubeconfig',
          kubeconfig,
          '--no-udev',
          '--node-name',
          name,
          ...[...local, dynamic].flatMap((d) => ['--allow-device', d.file]),
          '--root',
          path.join(dir, 'disks'),
          '--pool-root',
          path.join(dir, 'state'),
          '--csi-endpoint',
          `unix://${path.join(dir, 'csi.sock')}`,
          '--kubelet-dir',
          path.join(dir, 'kubelet'),
          '--discovery-interval',
          '2',
        ],
        { STOWAGE_LOG_LEVEL: LOG_LEVEL },
        path.join(this.work, `${name}.log`),
      );
      this.nodes.push({ name, dir, local, dynamic, daemon });
    }
    await run('mkdir', ['-p', ...this.nodes.map((n) => n.dir)]);
    for (const n of this.nodes) n.daemon.start();
    const port = await freePort();
    this.operatorMetrics = `http://127.0.0.1:${port}/metrics`;
    this.operator = new StowageProcess(
      'operator',
      [
        'operator',
        '--kubeconfig',
        kubeconfig,
        '--metrics-bind-address',
        `127.0.0.1:${port}`,
        '--health-probe-bind-address',
        `127.0.0.1:${port}`,
      ],
      { STOWAGE_LOG_LEVEL: LOG_LEVEL },
      path.join(this.work, 'operator.log'),
    );
    const socket = path.join(this.work, 'controller.sock');
    this.controller = new StowageProcess(
      'CSI controller',
      ['csi-controller', '--kubeconfig', kubeconfig, '--endpoint', `unix://${socket}`],
      { STOWAGE_LOG_LEVEL: LOG_LEVEL },
      path.join(this.work, 'csi-controller.log'),
    );
    this.operator.start();
    this.controller.start();
    const v1 = csiV1() as any;
    this.csi = new v1.Controller(`unix://${socket}`, grpc.credentials.createInsecure());

    // A user labels the disks for the two pools (as `kubectl label nodedisk` would), then makes the pools.
    for (const n of this.nodes) {
      for (const d of [...n.local, n.dynamic]) {
        const nd = await waitFor(`${n.name}'s daemon to report ${d.file}`, () => diskOfFile(this.admin, n.name, d.file), SETUP_MS, 500);
        const role = d === n.dynamic ? 'dynamic' : 'local';
        if (role === 'local') this.localDisks.push(nd.metadata.name);
        await this.admin.mergePatch(NODE_DISKS, nd.metadata.name, { metadata: { labels: { [ROLE_LABEL]: role } } });
      }
    }
    const pool = (name: string, role: string, spec: Record<string, unknown>) => ({
      apiVersion: 'stowage.dev/v1alpha1',
      kind: 'StoragePool',
      metadata: { name },
      spec: {
        disks: { selector: { matchLabels: { [ROLE_LABEL]: role } } },
        storageClass: { name, reclaimPolicy: 'Delete', volumeBindingMode: 'WaitForFirstConsumer' },
        ...spec,
      },
    });
    await this.admin.create(
      STORAGE_POOLS,
      pool(LOCAL_POOL, 'local', { mode: 'Local', local: { volumeMode: 'Filesystem', fsType: 'ext4', cleanup: 'quick' } }),
    );
    await this.admin.create(STORAGE_POOLS, pool(DYNAMIC_POOL, 'dynamic', { mode: 'Dynamic' }));
    await waitFor(
      'one Available Local PV per local disk',
      async () => {
        const pvs = await this.localPvs();
        return pvs.length === this.localDisks.length && pvs.every((p) => p.status?.phase === 'Available');
      },
      SETUP_MS,
      500,
    );
    await waitFor(
      "the Dynamic pool's disks prepared",
      async () => {
        for (const n of this.nodes)
          if (condition(await diskOfFile(this.admin, n.name, n.dynamic.file), 'Prepared')?.status !== 'True') return false;
        return true;
      },
      SETUP_MS,
      500,
    );
    for (const n of this.nodes) await this.registerDriver(n);
  }

  /**
   * kubelet's registration of the driver, played (no kubelet runs in the churn): kubelet's
   * pkg/volume/csi/nodeinfomanager InstallCSIDriver after NodeGetInfo on the plugin's socket —
   * updateNodeIDInNode (the `csi.volume.kubernetes.io/nodeid` annotation), updateTopologyLabels (the
   * accessible_topology segments as Node labels) and installDriverToCSINode (the driver with its
   * nodeID and topologyKeys in CSINode, owned by the Node). The provisioner play reads them.
   */
  private async registerDriver(n: NodeSetup): Promise<void> {
    const v1 = csiV1() as any;
    const client: CsiClient = new v1.Node(`unix://${path.join(n.dir, 'csi.sock')}`, grpc.credentials.createInsecure());
    try {
      // A poll: a failed try means 'not yet'; waitFor reports the last state if it never comes.
      const info = await waitFor(
        `${n.name}'s CSI Node service to answer NodeGetInfo`,
        () => call(client, 'NodeGetInfo', {}, 5_000).catch(() => undefined),
        SETUP_MS,
        500,
      );
      const segments: Record<string, string> = info.accessible_topology?.segments ?? {};
      await this.admin.mergePatch(NODES, n.name, {
        metadata: { labels: segments, annotations: { 'csi.volume.kubernetes.io/nodeid': JSON.stringify({ [DRIVER_NAME]: info.node_id }) } },
      });
      const node = await this.admin.get(NODES, n.name);
      await this.admin.create(CSI_NODES, {
        apiVersion: 'storage.k8s.io/v1',
        kind: 'CSINode',
        metadata: { name: n.name, ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: n.name, uid: node.metadata.uid! }] },
        spec: { drivers: [{ name: DRIVER_NAME, nodeID: info.node_id, topologyKeys: Object.keys(segments) }] },
      });
    } finally {
      client.close();
    }
  }

  localPvs(): Promise<PersistentVolume[]> {
    return this.admin.list<PersistentVolume>(PERSISTENT_VOLUMES, { labelSelector: `stowage.dev/pool=${LOCAL_POOL}` }).then((l) => l.items);
  }

  async picture(): Promise<Picture> {
    const localPvsByDisk: Record<string, string> = {};
    const pvs = (await this.admin.list<PersistentVolume>(PERSISTENT_VOLUMES)).items;
    for (const pv of pvs) {
      if (pv.metadata.labels?.['stowage.dev/pool'] !== LOCAL_POOL) continue;
      const disk = (pv.metadata.labels as Partial<Record<string, string>>)['stowage.dev/disk'] ?? '?';
      localPvsByDisk[disk] = localPvsByDisk[disk] ? `${localPvsByDisk[disk]} + ${pv.status?.phase}` : (pv.status?.phase ?? '?');
    }
    const subvolumes: string[] = [];
    for (const n of this.nodes) {
      for (const dir of ['volumes', 'blocks', 'snapshots']) {
        for (const e of await entries(path.join(n.dir, 'state', 'pools', DYNAMIC_POOL, dir))) subvolumes.push(`${n.name}/${dir}/${e}`);
      }
    }
    const pools: Record<string, unknown> = {};
    for (const name of [LOCAL_POOL, DYNAMIC_POOL]) {
      const p = await this.admin.getIfExists<Pool>(STORAGE_POOLS, name);
      pools[name] = { counts: p?.status?.counts, capacity: p?.status?.capacity };
    }
    const names = (l: { items: KubeObject[] }) => l.items.map((o) => o.metadata.name!).sort();
    return {
      localPvsByDisk,
      dynamicPvs: pvs
        .filter((pv) => pv.spec.csi)
        .map((pv) => `${pv.metadata.name} (${pv.status?.phase})`)
        .sort(),
      poolVolumes: names(await this.admin.list(POOL_VOLUMES)),
      poolSnapshots: names(await this.admin.list(POOL_SNAPSHOTS)),
      subvolumes,
      mounts: await mountsOf(this.work, this.loops.devices()),
      loops: await loopsOver(this.loopDir),
      pools,
    };
  }

  get loopDir(): string {
    return path.dirname(this.nodes[0].dynamic.file);
  }

  /** Everything the run made goes: processes, mounts, loop devices, files, the control plane. */
  async teardown(keepLogs: (p: StowageProcess) => void): Promise<void> {
    this.csi.close();
    for (const p of this.processes) await p.stop().catch(() => undefined);
    for (const p of this.processes) keepLogs(p);
    this.admin.close();
    const mounts = (await mountsOf(this.work, this.loops.devices()).catch(() => [] as string[]))
      .map((m) => m.slice(m.indexOf(' ') + 1))
      .sort((a, b) => b.length - a.length);
    for (const target of mounts) await run('umount', [target]).catch(() => run('umount', ['--lazy', target]).catch(() => undefined));
    await this.loops.cleanup();
    await this.cp?.stop().catch(() => undefined);
    await rm(this.work, { recursive: true, force: true });
  }

  /** Synchronous last resort when the bench is torn down by an exception or signal mid-await. */
  killSync(): void {
    for (const p of this.processes) p.killSync();
  }
}

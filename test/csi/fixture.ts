/**
 * A Dynamic pool on one simulated node, for the CSI tests: real control plane, real loop devices,
 * real btrfs, the real controller and node daemon parts over real Unix sockets. The test plays the
 * operator (it writes the StoragePool and the NodeDisks' spec.claim under `stowage-operator`) and
 * the node agent's inventory (it reports NodeDisk status under `stowage-node` from the engine's
 * DynamicPoolSync outcomes), as issue 6 allows until those parts land.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { CsiMetrics } from '../../src/csi/csi-metrics.js';
import type { KubeClient } from '../../src/kube/client.js';
import { installCrds } from '../../src/crds/install.js';
import { NODE_DISKS, POOL_SNAPSHOTS, POOL_VOLUMES, STORAGE_POOLS } from '../../src/crds/resource-types.js';
import { POOL_SNAPSHOT_FINALIZER, type PoolSnapshot } from '../../src/crds/poolsnapshot.js';
import { POOL_VOLUME_FINALIZER, type PoolVolume } from '../../src/crds/poolvolume.js';
import { csiV1 } from '../../src/csi/grpc.js';
import { startCsiControllerServer, type CsiControllerServer } from '../../src/csi/controller-main.js';
import { startCsiNodeServer, mountsUnder, type CsiNodeServer } from '../../src/csi/node-service.js';
import { BtrfsEngine } from '../../src/node/engine/btrfs-engine.js';
import { startPoolVolumeRealizer, type RunningRealizer } from '../../src/node/engine/volume-realizer.js';
import { startPoolSnapshotRealizer, type RunningSnapshotRealizer } from '../../src/node/engine/snapshot-realizer.js';
import type { ClaimedDisk } from '../../src/node/agent/dynamic-pools.js';
import { run } from '../../src/host/command.js';
import { nowTimestamp } from '../../src/runtime/conditions.js';
import { adminClient, uniqueName } from '../support/cluster.js';
import { LoopDevices, type LoopDevice } from '../support/loop-devices.js';

export type CsiClient = grpc.Client & Record<string, any>;

/** Promisified unary call with a deadline, as the sidecars make them. */
export function call<T = any>(client: CsiClient, method: string, request: unknown, timeoutMs = 60_000): Promise<T> {
  return promisify<unknown, grpc.Metadata, grpc.CallOptions, T>(client[method].bind(client))(request, new grpc.Metadata(), {
    deadline: Date.now() + timeoutMs,
  });
}

/** The gRPC status code a call fails with (throws if it succeeds). */
export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return grpc.status[(err as grpc.ServiceError).code];
  }
  throw new Error('the call succeeded but an error was expected');
}

export interface FixtureOptions {
  readonly diskSizes: readonly number[];
  readonly copies?: number;
  readonly reservePercent?: number;
  /**
   * How often the realizer re-checks each volume on disk; tests use 1 s so health changes show
   * quickly, the provisioning benchmark the daemon's own default.
   */
  readonly refreshMs?: number;
  /** Confine the Node service's staging and target paths to `<dir>/pods` (as `stowage node --kubelet-dir`). */
  readonly confinePaths?: boolean;
}

export class DynamicPoolFixture {
  readonly node = uniqueName('csi-node');
  readonly pool = uniqueName('dyn');
  readonly loops = new LoopDevices();
  client!: KubeClient;
  dir!: string;
  engine!: BtrfsEngine;
  controller?: CsiControllerServer;
  nodeServer?: CsiNodeServer;
  realizer?: RunningRealizer;
  snapshotRealizer?: RunningSnapshotRealizer;
  identity!: CsiClient;
  controllerClient!: CsiClient;
  nodeClient!: CsiClient;
  nodeIdentity!: CsiClient;
  disks: { loop: LoopDevice; name: string }[] = [];
  /** The controller's CSI metrics, fed through the servers' call observer. */
  readonly metrics = new Registry();
  private readonly csiMetrics = new CsiMetrics(this.metrics);
  private copies = 1;
  private refreshMs = 1_000;
  private kubeletDir?: string;
  /** Disks taken away: their /dev/loopN may be reused by a new disk, which must not make them present again. */
  private readonly gone = new Set<string>();

  async start(opts: FixtureOptions): Promise<void> {
    this.copies = opts.copies ?? 1;
    this.refreshMs = opts.refreshMs ?? 1_000;
    ({ client: this.client } = await adminClient());
    await installCrds(this.client, 'stowage-tests');
    this.dir = await mkdtemp(join(tmpdir(), 'stowage-csi-'));
    if (opts.confinePaths) this.kubeletDir = join(this.dir, 'pods');
    await this.client.create(STORAGE_POOLS, {
      apiVersion: 'stowage.dev/v1alpha1',
      kind: 'StoragePool',
      metadata: { name: this.pool },
      spec: {
        mode: 'Dynamic',
        disks: { selector: { matchLabels: { 'stowage.dev/pool-test': this.pool } } },
        replicated: { size: this.copies },
      },
    });
    for (const size of opts.diskSizes) await this.addDisk(size);
    this.engine = new BtrfsEngine({ root: join(this.dir, 'root'), copiesOf: (p) => (p === this.pool ? this.copies : undefined) });
    await this.syncDisks();
    await this.startNodeDaemon();
    this.controller = await startCsiControllerServer({
      client: this.client,
      endpoint: `unix://${this.dir}/controller.sock`,
      observe: (method, code, seconds) => this.csiMetrics.observe(method, code, seconds),
      ...(opts.reservePercent !== undefined ? { metadataReservePercent: opts.reservePercent } : {}),
    });
    const v1 = csiV1() as any;
    const creds = grpc.credentials.createInsecure();
    this.identity = new v1.Identity(`unix://${this.dir}/controller.sock`, creds);
    this.controllerClient = new v1.Controller(`unix://${this.dir}/controller.sock`, creds);
    this.nodeClient = new v1.Node(`unix://${this.dir}/node.sock`, creds);
    this.nodeIdentity = new v1.Identity(`unix://${this.dir}/node.sock`, creds);
    // The controller sees prepared disks through its informer.
    const deadline = Date.now() + 30_000;
    while (!(this.controller.controller.capacities(this.pool).length > 0)) {
      if (Date.now() > deadline) throw new Error('the controller never saw the prepared disks');
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** A new loop device and its NodeDisk, claimed by the pool (the operator's part of the protocol). */
  async addDisk(sizeBytes: number): Promise<{ loop: LoopDevice; name: string }> {
    const loop = await this.loops.create(sizeBytes);
    const name = uniqueName(`${this.node}-d`);
    await this.client.create(
      NODE_DISKS,
      {
        apiVersion: 'stowage.dev/v1alpha1',
        kind: 'NodeDisk',
        metadata: { name, labels: { 'stowage.dev/node': this.node, 'stowage.dev/pool-test': this.pool } },
        spec: { nodeName: this.node, devicePath: loop.device, claim: { pool: this.pool, mode: 'Dynamic' } },
      },
      { fieldManager: 'stowage-operator' },
    );
    const disk = { loop, name };
    this.disks.push(disk);
    return disk;
  }

  /** Takes a disk away from the node (its loop device is detached; its NodeDisk stays, as the agent keeps it). */
  async detachDisk(index: number): Promise<void> {
    const disk = this.disks[index];
    await this.loops.detach(disk.loop.device);
    this.gone.add(disk.name);
  }

  /** The agent's pass: hand the claimed disks to the engine and report each outcome on its NodeDisk. */
  async syncDisks(): Promise<Map<string, { prepared: boolean; reason: string; message: string }>> {
    const claimed: ClaimedDisk[] = [];
    for (const d of this.disks) {
      // Any failure to stat reads as absent, which is what the assertion checks.
      const present =
        !this.gone.has(d.name) &&
        (await stat(d.loop.device).then(
          () => this.loops.devices().includes(d.loop.device),
          () => false,
        ));
      claimed.push({
        name: d.name,
        claim: { pool: this.pool, mode: 'Dynamic' },
        devicePath: d.loop.device,
        stablePath: d.loop.device,
        sizeBytes: d.loop.sizeBytes,
        blank: true,
        present,
      });
    }
    const outcomes = await this.engine.sync(this.node, claimed);
    for (const d of this.disks) {
      const o = outcomes.get(d.name);
      if (!o) continue;
      // A merge patch (null removes preparation): a 1.20 server's apply leaves a null behind when a field is dropped.
      await this.client.mergePatch(
        NODE_DISKS,
        d.name,
        {
          status: {
            capacity: String(d.loop.sizeBytes),
            preparation: o.preparation ?? null,
            conditions: [
              {
                type: 'Prepared',
                status: o.prepared ? 'True' : 'False',
                reason: o.reason,
                message: o.message,
                lastTransitionTime: nowTimestamp(),
              },
            ],
          },
        },
        { fieldManager: 'stowage-node', subresource: 'status' },
      );
    }
    return new Map(outcomes);
  }

  async startNodeDaemon(): Promise<void> {
    this.realizer = await startPoolVolumeRealizer({
      client: this.client,
      engine: this.engine,
      nodeName: this.node,
      refreshMs: this.refreshMs,
    });
    this.snapshotRealizer = await startPoolSnapshotRealizer({
      client: this.client,
      engine: this.engine,
      nodeName: this.node,
      refreshMs: this.refreshMs,
    });
    this.nodeServer = await startCsiNodeServer({
      endpoint: `unix://${this.dir}/node.sock`,
      nodeName: this.node,
      engine: this.engine,
      client: this.client,
      ...(this.kubeletDir ? { kubeletDir: this.kubeletDir } : {}),
    });
  }

  /** Stops the node daemon's parts; mounts made by the kernel stay, as after a daemon crash. */
  async stopNodeDaemon(): Promise<void> {
    await this.nodeServer?.stop();
    await this.snapshotRealizer?.stop();
    await this.realizer?.stop();
    this.nodeServer = undefined;
    this.realizer = undefined;
    this.snapshotRealizer = undefined;
  }

  /** A fresh engine object, as a restarted daemon would have: nothing remembered. */
  freshEngine(): void {
    this.engine = new BtrfsEngine({ root: join(this.dir, 'root'), copiesOf: (p) => (p === this.pool ? this.copies : undefined) });
  }

  async poolVolumes(): Promise<PoolVolume[]> {
    return (await this.client.list<PoolVolume>(POOL_VOLUMES, { labelSelector: `stowage.dev/pool=${this.pool}` })).items;
  }

  async poolSnapshots(): Promise<PoolSnapshot[]> {
    return (await this.client.list<PoolSnapshot>(POOL_SNAPSHOTS, { labelSelector: `stowage.dev/pool=${this.pool}` })).items;
  }

  async cleanup(): Promise<void> {
    for (const c of [this.identity, this.controllerClient, this.nodeClient, this.nodeIdentity]) c?.close();
    // Unpublish/unstage anything a failed test left, deepest first.
    if (this.dir) {
      const mounts = (await mountsUnder(join(this.dir, 'pods'))).sort((a, b) => b.length - a.length);
      for (const m of mounts) await run('umount', [m]).catch(() => run('umount', ['--lazy', m]).catch(() => undefined));
      for (const loop of await loopsUnder(join(this.dir, 'root'))) await run('losetup', ['--detach', loop]).catch(() => undefined);
    }
    await this.controller?.stop().catch(() => undefined);
    // Delete the snapshots and volumes while the realizers still run, so their finalizers are honoured.
    if (this.client) {
      for (const ps of await this.poolSnapshots().catch(() => [] as PoolSnapshot[]))
        await this.client.delete(POOL_SNAPSHOTS, ps.metadata.name);
      const until = Date.now() + 30_000;
      while ((await this.poolSnapshots().catch(() => [])).length > 0 && Date.now() < until && this.snapshotRealizer)
        await new Promise((r) => setTimeout(r, 200));
      for (const ps of await this.poolSnapshots().catch(() => [] as PoolSnapshot[])) {
        const i = ps.metadata.finalizers?.indexOf(POOL_SNAPSHOT_FINALIZER) ?? -1;
        if (i >= 0)
          await this.client
            .jsonPatch(POOL_SNAPSHOTS, ps.metadata.name, [{ op: 'remove', path: `/metadata/finalizers/${i}` }])
            .catch(() => undefined);
      }
      for (const pv of await this.poolVolumes().catch(() => [] as PoolVolume[])) await this.client.delete(POOL_VOLUMES, pv.metadata.name);
      const deadline = Date.now() + 30_000;
      while ((await this.poolVolumes().catch(() => [])).length > 0 && Date.now() < deadline && this.realizer)
        await new Promise((r) => setTimeout(r, 200));
      for (const pv of await this.poolVolumes().catch(() => [] as PoolVolume[])) {
        const i = pv.metadata.finalizers?.indexOf(POOL_VOLUME_FINALIZER) ?? -1;
        if (i >= 0)
          await this.client
            .jsonPatch(POOL_VOLUMES, pv.metadata.name, [{ op: 'remove', path: `/metadata/finalizers/${i}` }])
            .catch(() => undefined);
      }
    }
    await this.stopNodeDaemon().catch(() => undefined);
    if (this.dir) {
      const mounts = (await mountsUnder(this.dir)).sort((a, b) => b.length - a.length);
      for (const m of mounts) await run('umount', [m]).catch(() => run('umount', ['--lazy', m]).catch(() => undefined));
    }
    await this.loops.cleanup();
    if (this.client) {
      for (const d of this.disks) await this.client.delete(NODE_DISKS, d.name).catch(() => undefined);
      await this.client.delete(STORAGE_POOLS, this.pool).catch(() => undefined);
      this.client.close();
    }
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }
}

/** Loop devices whose backing file lies under `dir` (Block volumes a failed test left attached). */
async function loopsUnder(dir: string): Promise<string[]> {
  // No output (the tool failed: nothing attached or no signature) reads as nothing found.
  const text = await run('losetup', ['--list', '--noheadings', '--output', 'NAME,BACK-FILE']).catch(() => '');
  return text
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[1]?.startsWith(dir))
    .map((f) => f[0]);
}

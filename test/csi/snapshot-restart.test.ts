/**
 * The real node daemon (`stowage node` as a child process) killed with SIGKILL while it takes
 * snapshots: twenty CreateSnapshot calls (Filesystem and Block volumes holding data) are in flight
 * when the daemon dies; snapshots are deleted while it is down; after a restart everything
 * converges — every remaining snapshot Ready and restorable, and on disk exactly one snapshot per
 * PoolSnapshot object: no orphan subvolume, no half-made copy. The invariant is checked whatever
 * the kill interrupted, so the test does not depend on where exactly it landed.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import type { KubeClient } from '../../src/kube/client.js';
import { installCrds } from '../../src/crds/install.js';
import { NODE_DISKS, POOL_SNAPSHOTS, POOL_VOLUMES, STORAGE_POOLS } from '../../src/crds/resource-types.js';
import type { NodeDisk } from '../../src/crds/nodedisk.js';
import type { PoolSnapshot } from '../../src/crds/poolsnapshot.js';
import type { PoolVolume } from '../../src/crds/poolvolume.js';
import { csiV1 } from '../../src/csi/grpc.js';
import { startCsiControllerServer, type CsiControllerServer } from '../../src/csi/controller-main.js';
import { snapshotIdFor } from '../../src/csi/snapshot-service.js';
import { mountsUnder } from '../../src/csi/node-service.js';
import { run } from '../../src/host/command.js';
import { adminClient, uniqueName, waitFor } from '../support/cluster.js';
import { LoopDevices } from '../support/loop-devices.js';
import { AgentProcess, condition, diskOfFile, operatorSets } from '../node/support.js';
import { call, type CsiClient } from './fixture.js';

const MiB = 1024 ** 2;
const caps = {
  Filesystem: { mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } },
  Block: { block: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } },
};

describe('stowage node killed in the middle of CreateSnapshot (child process, SIGKILL)', function () {
  this.timeout(300_000);
  const node = uniqueName('snap-kill');
  const pool = uniqueName('dyns');
  const loops = new LoopDevices();
  let client: KubeClient;
  let kubeconfig = '';
  let dir = '';
  let agent: AgentProcess | undefined;
  let controller: CsiControllerServer | undefined;
  let rpc: CsiClient | undefined;

  const startAgent = (device: string): AgentProcess =>
    AgentProcess.start(kubeconfig, node, [
      '--allow-device',
      device,
      '--root',
      join(dir, 'disks'),
      '--pool-root',
      join(dir, 'state'),
      '--csi-endpoint',
      `unix://${dir}/node.sock`,
      '--discovery-interval',
      '2',
    ]);
  const list = async <T>(rt: typeof POOL_SNAPSHOTS): Promise<T[]> =>
    (await client.list<any>(rt, { labelSelector: `stowage.dev/pool=${pool}` })).items as T[];

  before(async () => {
    const admin = await adminClient();
    client = admin.client;
    kubeconfig = admin.cp.kubeconfigPath;
    await installCrds(client, 'stowage-tests');
    dir = await mkdtemp(join(tmpdir(), 'stowage-snap-kill-'));
  });

  after(async () => {
    rpc?.close();
    if (client && agent && !agent.exited) {
      for (const rt of [POOL_SNAPSHOTS, POOL_VOLUMES]) {
        for (const o of await list<any>(rt).catch(() => [])) await client.delete(rt, o.metadata.name).catch(() => undefined);
        await waitFor('the daemon to remove the data', async () => (await list(rt)).length === 0, 60_000).catch(() => undefined);
      }
    }
    await controller?.stop().catch(() => undefined);
    await agent?.stop();
    if (dir) for (const m of (await mountsUnder(dir)).sort((a, b) => b.length - a.length)) await run('umount', [m]).catch(() => undefined);
    await loops.cleanup();
    if (client) {
      for (const rt of [POOL_SNAPSHOTS, POOL_VOLUMES]) {
        for (const o of await list<any>(rt).catch(() => [])) {
          await client.jsonPatch(rt, o.metadata.name, [{ op: 'remove', path: '/metadata/finalizers' }]).catch(() => undefined);
          await client.delete(rt, o.metadata.name).catch(() => undefined);
        }
      }
      for (const d of (await client.list<NodeDisk>(NODE_DISKS, { labelSelector: `stowage.dev/node=${node}` })).items)
        await client.delete(NODE_DISKS, d.metadata.name);
      await client.delete(STORAGE_POOLS, pool).catch(() => undefined);
      client.close();
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('converges after a SIGKILL with snapshots in flight and deletions while down: one snapshot on disk per object, every one restorable', async () => {
    const disk = await loops.create(2 * 1024 ** 3);
    await client.create(STORAGE_POOLS, {
      apiVersion: 'stowage.dev/v1alpha1',
      kind: 'StoragePool',
      metadata: { name: pool },
      spec: { mode: 'Dynamic', disks: { selector: { matchLabels: { 'stowage.dev/node': node } } } },
    });
    agent = startAgent(disk.device);
    const nd = await waitFor('the agent to report the loop device', () => diskOfFile(client, node, disk.file), 60_000);
    await operatorSets(client, nd.metadata.name, { claim: { pool, mode: 'Dynamic' } });
    await waitFor(
      'the engine to prepare the disk',
      async () => condition(await client.get<NodeDisk>(NODE_DISKS, nd.metadata.name), 'Prepared')?.status === 'True',
      90_000,
    ).catch((err) => {
      throw new Error(`${err}\n${agent?.output.join('').slice(-3000)}`);
    });
    controller = await startCsiControllerServer({ client, endpoint: `unix://${dir}/controller.sock` });
    rpc = new (csiV1() as any).Controller(`unix://${dir}/controller.sock`, grpc.credentials.createInsecure()) as CsiClient;
    await waitFor('the controller to see the prepared disk', () => controller!.controller.capacities(pool).length > 0, 30_000);

    const sources: Record<'Filesystem' | 'Block', string> = { Filesystem: '', Block: '' };
    for (const mode of ['Filesystem', 'Block'] as const) {
      const v = (
        await call(rpc, 'CreateVolume', {
          name: `src-${mode}`,
          capacity_range: { required_bytes: String(128 * MiB) },
          volume_capabilities: [caps[mode]],
          parameters: { pool },
        })
      ).volume;
      sources[mode] = v.volume_id;
      const path = (await client.get<PoolVolume>(POOL_VOLUMES, v.volume_id)).status!.path!;
      await run('dd', [
        'if=/dev/urandom',
        `of=${mode === 'Block' ? path : `${path}/data`}`,
        'bs=1M',
        'count=96',
        'conv=notrunc,fsync',
        'status=none',
      ]);
    }

    // Twenty snapshots in flight, then the daemon is killed.
    const names = Array.from({ length: 20 }, (_, i) => `snap-${i}`);
    const modeOf = (i: number): 'Filesystem' | 'Block' => (i % 2 === 0 ? 'Filesystem' : 'Block');
    const inFlight = names.map((name, i) =>
      call(rpc!, 'CreateSnapshot', { name, source_volume_id: sources[modeOf(i)] }, 20_000).then(
        () => 'OK',
        (err: grpc.ServiceError) => grpc.status[err.code],
      ),
    );
    await waitFor('the first PoolSnapshot to be recorded', async () => (await list(POOL_SNAPSHOTS)).length > 0, 20_000, 20);
    await agent.kill('SIGKILL');
    const outcomes = await Promise.all(inFlight);
    // Whatever the kill interrupted, the calls end as OK or as a retryable deadline, never as a wrong answer.
    expect(
      outcomes.every((o) => o === 'OK' || o === 'DEADLINE_EXCEEDED'),
      outcomes.join(','),
    ).to.equal(true);

    // While the daemon is down the orchestrator gives up on a quarter of them.
    const dropped = names.filter((_, i) => i % 4 === 3);
    for (const name of dropped) {
      expect(
        await call(rpc, 'DeleteSnapshot', { snapshot_id: snapshotIdFor(name) }, 1_000).then(
          () => 'OK',
          (err: grpc.ServiceError) => grpc.status[err.code],
        ),
      ).to.be.oneOf(['OK', 'DEADLINE_EXCEEDED']);
    }

    agent = startAgent(disk.device);
    // The orchestrator retries the rest (the csi-snapshotter does until it succeeds).
    const kept = names.filter((n) => !dropped.includes(n));
    for (const [i, name] of names.entries()) {
      if (!kept.includes(name)) continue;
      const snap = (await call(rpc, 'CreateSnapshot', { name, source_volume_id: sources[modeOf(i)] }, 90_000)).snapshot;
      expect(snap).to.deep.include({ snapshot_id: snapshotIdFor(name), ready_to_use: true });
    }
    await waitFor(
      'the dropped snapshots to be removed',
      async () => {
        const left = (await list<PoolSnapshot>(POOL_SNAPSHOTS)).map((p) => p.metadata.name);
        return dropped.every((n) => !left.includes(snapshotIdFor(n)));
      },
      60_000,
    );

    // On disk: exactly one snapshot per object, no orphan, nothing half-made.
    const mnt = join(dir, 'state', 'pools', pool);
    const onDisk = (await readdir(join(mnt, 'snapshots'))).sort();
    const expected = kept.map((n) => (modeOf(names.indexOf(n)) === 'Block' ? `${snapshotIdFor(n)}.img` : snapshotIdFor(n))).sort();
    expect(onDisk).to.deep.equal(expected);
    // Lines end in `path <relative path>`; deleted subvolumes the cleaner has not reached are not listed.
    const subvolumes = (await run('btrfs', ['subvolume', 'list', mnt])).split('\n').filter((l) => / path snapshots\//.test(l)).length;
    expect(subvolumes, 'one subvolume per Filesystem snapshot').to.equal(
      kept.filter((n) => modeOf(names.indexOf(n)) === 'Filesystem').length,
    );

    // Every snapshot that survived is restorable, with the data it was taken with.
    for (const mode of ['Filesystem', 'Block'] as const) {
      const name = kept.find((n) => modeOf(names.indexOf(n)) === mode)!;
      const restored = (
        await call(
          rpc,
          'CreateVolume',
          {
            name: `restore-${mode}`,
            capacity_range: { required_bytes: String(128 * MiB) },
            volume_capabilities: [caps[mode]],
            parameters: { pool },
            volume_content_source: { snapshot: { snapshot_id: snapshotIdFor(name) } },
          },
          90_000,
        )
      ).volume;
      const [src, dst] = await Promise.all(
        [sources[mode], restored.volume_id].map(async (id) => (await client.get<PoolVolume>(POOL_VOLUMES, id)).status!.path!),
      );
      const file = (p: string) => (mode === 'Block' ? p : `${p}/data`);
      expect((await run('sha256sum', [file(dst)])).split(' ')[0]).to.equal((await run('sha256sum', [file(src)])).split(' ')[0]);
    }
  });
});

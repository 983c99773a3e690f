/**
 * The real node daemon: `stowage node` as a child process (node agent + btrfs engine + PoolVolume
 * realizer + CSI Node service), a loop device allow-listed to it. The test plays only the operator
 * (StoragePool, spec.claim). The agent discovers the disk, the engine makes the pool filesystem, the
 * controller provisions, and a published volume's data survives a SIGTERM restart of the daemon.
 * When the pool's only disk leaves, the disk stays held while the volume lives, then is released.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import type { KubeClient } from '../../src/kube/client.js';
import { installCrds } from '../../src/crds/install.js';
import { NODE_DISKS, POOL_VOLUMES, STORAGE_POOLS } from '../../src/crds/resource-types.js';
import type { NodeDisk } from '../../src/crds/nodedisk.js';
import { csiV1 } from '../../src/csi/grpc.js';
import { startCsiControllerServer, type CsiControllerServer } from '../../src/csi/controller-main.js';
import { mountsUnder } from '../../src/csi/node-service.js';
import { run } from '../../src/host/command.js';
import { adminClient, uniqueName, waitFor } from '../support/cluster.js';
import { LoopDevices } from '../support/loop-devices.js';
import { AgentProcess, condition, diskOfFile, operatorSets } from '../node/support.js';
import { call, type CsiClient } from './fixture.js';

const MiB = 1024 ** 2;
const mountCap = { mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } };

describe('stowage node with Dynamic pools (child process, real agent)', function () {
  this.timeout(300_000);
  const node = uniqueName('csi-proc');
  const pool = uniqueName('dynp');
  const loops = new LoopDevices();
  let client: KubeClient;
  let kubeconfig = '';
  let dir = '';
  let agent: AgentProcess | undefined;
  let controller: CsiControllerServer | undefined;
  let controllerClient: CsiClient | undefined;
  let nodeClient: CsiClient | undefined;

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
      '--kubelet-dir',
      join(dir, 'kubelet'),
      '--discovery-interval',
      '2',
    ]);

  before(async () => {
    const admin = await adminClient();
    client = admin.client;
    kubeconfig = admin.cp.kubeconfigPath;
    await installCrds(client, 'stowage-tests');
    dir = await mkdtemp(join(tmpdir(), 'stowage-csi-proc-'));
  });

  after(async () => {
    controllerClient?.close();
    nodeClient?.close();
    if (client) {
      for (const pv of (await client.list(POOL_VOLUMES, { labelSelector: `stowage.dev/pool=${pool}` }).catch(() => ({ items: [] })))
        .items) {
        await client.delete(POOL_VOLUMES, pv.metadata.name!).catch(() => undefined);
      }
      await waitFor(
        'the daemon to remove the volumes',
        async () => (await client.list(POOL_VOLUMES, { labelSelector: `stowage.dev/pool=${pool}` })).items.length === 0,
        30_000,
      ).catch(() => undefined);
    }
    await controller?.stop().catch(() => undefined);
    await agent?.stop();
    if (dir) {
      for (const m of (await mountsUnder(dir)).sort((a, b) => b.length - a.length)) await run('umount', [m]).catch(() => undefined);
    }
    await loops.cleanup();
    if (client) {
      for (const d of (await client.list<NodeDisk>(NODE_DISKS, { labelSelector: `stowage.dev/node=${node}` })).items)
        await client.delete(NODE_DISKS, d.metadata.name);
      for (const pv of (await client.list(POOL_VOLUMES, { labelSelector: `stowage.dev/pool=${pool}` })).items) {
        await client.jsonPatch(POOL_VOLUMES, pv.metadata.name!, [{ op: 'remove', path: '/metadata/finalizers' }]).catch(() => undefined);
      }
      await client.delete(STORAGE_POOLS, pool).catch(() => undefined);
      client.close();
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('prepares a claimed disk into a pool filesystem, serves volumes, and keeps them across a daemon restart', async () => {
    const disk = await loops.create(1024 ** 3);
    await client.create(STORAGE_POOLS, {
      apiVersion: 'stowage.dev/v1alpha1',
      kind: 'StoragePool',
      metadata: { name: pool },
      spec: { mode: 'Dynamic', disks: { selector: { matchLabels: { 'stowage.dev/node': node } } } },
    });
    agent = startAgent(disk.device);
    const nd = await waitFor('the agent to report the loop device', () => diskOfFile(client, node, disk.file), 60_000);
    await operatorSets(client, nd.metadata.name, { claim: { pool, mode: 'Dynamic' } });
    const prepared = await waitFor(
      'the engine to prepare the disk',
      async () => {
        const d = await client.get<NodeDisk>(NODE_DISKS, nd.metadata.name);
        return condition(d, 'Prepared')?.status === 'True' ? d : undefined;
      },
      90_000,
    ).catch((err) => {
      throw new Error(`${err}\n${agent?.output.join('').slice(-3000)}`);
    });
    expect(prepared.status?.preparation?.filesystem).to.equal('btrfs');
    expect((await run('blkid', ['-p', '-o', 'value', '-s', 'TYPE', disk.device])).trim()).to.equal('btrfs');

    controller = await startCsiControllerServer({ client, endpoint: `unix://${dir}/controller.sock` });
    const v1 = csiV1() as any;
    controllerClient = new v1.Controller(`unix://${dir}/controller.sock`, grpc.credentials.createInsecure());
    nodeClient = new v1.Node(`unix://${dir}/node.sock`, grpc.credentials.createInsecure());
    await waitFor('the controller to see the prepared disk', () => controller!.controller.capacities(pool).length > 0, 30_000);
    const v = (
      await call(controllerClient!, 'CreateVolume', {
        name: 'pvc-proc-1',
        capacity_range: { required_bytes: String(64 * MiB) },
        volume_capabilities: [mountCap],
        parameters: { pool },
      })
    ).volume;
    expect(v.volume_context.node).to.equal(node);

    const staging = join(dir, 'kubelet', 'staging');
    const target = join(dir, 'kubelet', 'pod', 'mount');
    const stage = () =>
      call(nodeClient!, 'NodeStageVolume', { volume_id: v.volume_id, staging_target_path: staging, volume_capability: mountCap });
    const publish = () =>
      call(nodeClient!, 'NodePublishVolume', {
        volume_id: v.volume_id,
        staging_target_path: staging,
        target_path: target,
        volume_capability: mountCap,
      });
    await stage();
    await publish();
    await writeFile(join(target, 'kept.txt'), 'survives restarts');

    // SIGTERM and start again: nothing but the kernel's mounts and the API remember the volume.
    await agent.stop();
    agent = startAgent(disk.device);
    // A poll: a failed try means 'not yet'; waitFor reports the last state if it never comes.
    await waitFor(
      'the restarted daemon to serve CSI',
      () =>
        call(nodeClient!, 'NodeGetInfo', {}, 2_000).then(
          () => true,
          () => false,
        ),
      60_000,
    );
    await stage();
    await publish();
    expect(await readFile(join(target, 'kept.txt'), 'utf8')).to.equal('survives restarts');
    await call(nodeClient!, 'NodeUnpublishVolume', { volume_id: v.volume_id, target_path: target });
    await call(nodeClient!, 'NodeUnstageVolume', { volume_id: v.volume_id, staging_target_path: staging });
    await stage();
    await publish();
    expect(await readFile(join(target, 'kept.txt'), 'utf8')).to.equal('survives restarts');
    await call(nodeClient!, 'NodeUnpublishVolume', { volume_id: v.volume_id, target_path: target });
    await call(nodeClient!, 'NodeUnstageVolume', { volume_id: v.volume_id, staging_target_path: staging });

    // The pool's only disk leaves (the operator clears the claim) while the volume still lives there:
    // the engine keeps the filesystem and the agent says why the disk is not free.
    await operatorSets(client, nd.metadata.name, {});
    const held = await waitFor(
      'the agent to report the disk held by the pool filesystem',
      async () => {
        const d = await client.get<NodeDisk>(NODE_DISKS, nd.metadata.name);
        return condition(d, 'Prepared')?.reason === 'ReleaseRefused' ? d : undefined;
      },
      60_000,
    );
    expect(condition(held, 'Prepared')?.message).to.contain(v.volume_id);
    expect(condition(held, 'Eligible')?.status).to.equal('False');

    // Once the volume is gone, the filesystem is unmounted and removed: the disk is Eligible again.
    await call(controllerClient!, 'DeleteVolume', { volume_id: v.volume_id });
    expect(await client.getIfExists(POOL_VOLUMES, v.volume_id)).to.equal(undefined);
    await waitFor(
      'the released disk to be blank and Eligible',
      async () => {
        const d = await client.get<NodeDisk>(NODE_DISKS, nd.metadata.name);
        return condition(d, 'Eligible')?.status === 'True';
      },
      60_000,
    ).catch(async (err) => {
      throw new Error(
        `${err}\n${JSON.stringify((await client.get<NodeDisk>(NODE_DISKS, nd.metadata.name)).status?.conditions)}\n${agent?.output.join('').slice(-3000)}`,
      );
    });
    expect((await mountsUnder(join(dir, 'state'))).length, 'pool filesystem unmounted').to.equal(0);
    // No output (the tool failed: nothing attached or no signature) reads as nothing found.
    expect((await run('blkid', ['-p', '-o', 'value', '-s', 'TYPE', disk.device]).catch(() => '')).trim()).to.equal('');
  });
});

/**
 * The node daemon's CSI Probe tells the truth (issue 25): `stowage node` as a child process, its
 * Identity service called over its real Unix socket. Its API server is reached through a relay the
 * test holds closed at first: the daemon serves its socket, but its NodeDisk and StoragePool caches
 * cannot sync, so Probe must answer ready=false exactly while its /readyz answers 503; once the
 * relay lets the API through, both turn ready. The livenessprobe sidecar
 * (--node-registration=node-driver-registrar) reads this answer.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { csiV1 } from '../../src/csi/grpc.js';
import type { KubeClient } from '../../src/kube/client.js';
import { NODE_DISKS } from '../../src/crds/resource-types.js';
import { installCrds } from '../../src/crds/install.js';
import { adminClient, uniqueName, waitFor } from '../support/cluster.js';
import { LoopDevices } from '../support/loop-devices.js';
import { AgentProcess } from '../node/support.js';
import { call, type CsiClient } from './fixture.js';

/** A TCP relay on loopback to `port` that refuses every connection while `open` is false. */
class ApiRelay {
  open = false;
  private readonly sockets = new Set<net.Socket>();
  private readonly server = net.createServer((client) => {
    this.sockets.add(client);
    client.on('close', () => this.sockets.delete(client));
    if (!this.open) {
      client.destroy();
      return;
    }
    const upstream = net.connect(this.port, '127.0.0.1');
    this.sockets.add(upstream);
    upstream.on('close', () => this.sockets.delete(upstream));
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });

  constructor(private readonly port: number) {}

  listen(): Promise<number> {
    return new Promise((resolve) => this.server.listen(0, '127.0.0.1', () => resolve((this.server.address() as net.AddressInfo).port)));
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

describe('stowage node: the CSI Probe answers from the same facts as /readyz (child process, real socket)', function () {
  this.timeout(180_000);
  const node = uniqueName('probe');
  const loops = new LoopDevices();
  let client: KubeClient | undefined;
  let dir = '';
  let relay: ApiRelay | undefined;
  let agent: AgentProcess | undefined;
  let identity: CsiClient | undefined;

  before(async () => {
    const admin = await adminClient();
    const cp = admin.cp;
    client = admin.client;
    await installCrds(client, 'stowage-tests');
    // One allow-listed loop device, so the agent inventories nothing of this machine's own disks.
    const disk = await loops.create(64 * 1024 ** 2);
    dir = await mkdtemp(join(tmpdir(), 'stowage-probe-'));
    const kubeconfig = await readFile(cp.kubeconfigPath, 'utf8');
    const server = /server: https:\/\/127\.0\.0\.1:(\d+)/.exec(kubeconfig);
    if (!server) throw new Error(`no loopback server in ${cp.kubeconfigPath}`);
    relay = new ApiRelay(Number(server[1]));
    const relayed = join(dir, 'kubeconfig');
    await writeFile(relayed, kubeconfig.replace(server[0], `server: https://127.0.0.1:${await relay.listen()}`), { mode: 0o600 });
    agent = AgentProcess.start(relayed, node, [
      '--allow-device',
      disk.device,
      '--root',
      join(dir, 'disks'),
      '--pool-root',
      join(dir, 'state'),
      '--kubelet-dir',
      join(dir, 'kubelet'),
      '--csi-endpoint',
      `unix://${dir}/csi.sock`,
      '--metrics-bind-address',
      '127.0.0.1:0',
    ]);
    identity = new (csiV1() as any).Identity(`unix://${dir}/csi.sock`, grpc.credentials.createInsecure());
  });

  after(async () => {
    identity?.close();
    if (relay) relay.open = true; // lets the daemon finish what it started before SIGTERM
    await agent?.stop();
    await relay?.close();
    await loops.cleanup();
    if (client) {
      for (const d of (await client.list(NODE_DISKS, { labelSelector: `stowage.dev/node=${node}` })).items)
        await client.delete(NODE_DISKS, d.metadata.name!);
      client.close();
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('answers ready=false while the caches cannot sync (as /readyz answers 503), then ready=true with /readyz 200', async () => {
    const url = await waitFor(
      'the daemon to serve /readyz',
      () => /"url":"(http:\/\/127\.0\.0\.1:\d+)\/?"[^\n]*serving \/healthz/.exec(agent!.output.join(''))?.[1],
      60_000,
      200,
    ).catch((err) => {
      throw new Error(`${err}\n${agent?.output.join('').slice(-3000)}`);
    });
    const probe = async (): Promise<boolean> => (await call(identity!, 'Probe', {}, 5_000)).ready.value;
    // The socket answers, but the daemon cannot reach its API server: not ready, and it says why on /readyz.
    expect(
      await waitFor(
        'the CSI socket to answer',
        async () =>
          (await probe().then(
            () => true,
            () => false,
          )) || undefined,
        60_000,
        200,
      ),
    ).to.equal(true);
    for (let i = 0; i < 3; i++) {
      const readyz = await fetch(`${url}/readyz`);
      expect(readyz.status).to.equal(503);
      expect(await readyz.text()).to.contain('has not synced');
      expect(await probe(), 'Probe while /readyz answers 503').to.equal(false);
      await new Promise((r) => setTimeout(r, 500));
    }
    relay!.open = true;
    await waitFor('Probe to answer ready', async () => (await probe()) || undefined, 120_000, 500);
    expect((await fetch(`${url}/readyz`)).status, '/readyz once Probe answers ready').to.equal(200);
    expect(agent!.exited).to.equal(false);
  });
});

/**
 * The node daemon's own liveness, which the node DaemonSet probes with `--node-registration=self`
 * (in place of the upstream livenessprobe sidecar): `stowage node` as a child process serving the
 * CSI socket and kubelet's registration socket; /healthz answers 200 while both exist and 503,
 * naming the socket, once one is gone (kubelet could no longer reach the plugin; a restart serves
 * it again).
 */
import { mkdtemp, rm, stat, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import type { KubeClient } from '../../src/kube/client.js';
import { installCrds } from '../../src/crds/install.js';
import { NODE_DISKS } from '../../src/crds/resource-types.js';
import { adminClient, uniqueName, waitFor } from '../support/cluster.js';
import { LoopDevices } from '../support/loop-devices.js';
import { AgentProcess } from '../node/support.js';

describe('stowage node liveness: /healthz covers the CSI and registration sockets (child process)', function () {
  this.timeout(120_000);
  const node = uniqueName('liveness');
  const loops = new LoopDevices();
  let client: KubeClient | undefined;
  let dir = '';
  let agent: AgentProcess | undefined;

  before(async () => {
    const admin = await adminClient();
    client = admin.client;
    await installCrds(client, 'stowage-tests');
    dir = await mkdtemp(join(tmpdir(), 'stowage-liveness-'));
    const disk = await loops.create(64 * 1024 ** 2);
    agent = AgentProcess.start(admin.cp.kubeconfigPath, node, [
      '--allow-device',
      disk.device,
      '--root',
      join(dir, 'disks'),
      '--pool-root',
      join(dir, 'state'),
      '--csi-endpoint',
      `unix://${dir}/plugin/csi.sock`,
      '--kubelet-registration-dir',
      join(dir, 'registry'),
      '--metrics-bind-address',
      '127.0.0.1:0',
    ]);
  });

  after(async () => {
    await agent?.stop();
    await loops.cleanup();
    if (client) {
      for (const d of (await client.list(NODE_DISKS, { labelSelector: `stowage.dev/node=${node}` })).items)
        await client.delete(NODE_DISKS, d.metadata.name!);
      client.close();
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('answers 200 while both sockets exist, and 503 naming the registration socket once it is removed', async () => {
    // The daemon logs its health server's address (port 0: the kernel picked one).
    const url = await waitFor(
      'the daemon to serve /healthz',
      () => {
        const m = /"url":"(http:\/\/127\.0\.0\.1:\d+)\/?"[^\n]*serving \/healthz/.exec(agent!.output.join(''));
        return m?.[1];
      },
      60_000,
      200,
    ).catch((err) => {
      throw new Error(`${err}\n${agent?.output.join('').slice(-3000)}`);
    });
    const registration = join(dir, 'registry', 'csi.stowage.dev-reg.sock');
    // A poll: a failed try means 'not yet'; waitFor reports the last state if it never comes.
    await waitFor(
      'both sockets',
      async () =>
        (await stat(registration).catch(() => undefined))?.isSocket() &&
        (await stat(join(dir, 'plugin', 'csi.sock')).catch(() => undefined))?.isSocket(),
      30_000,
    );
    expect((await fetch(`${url}/healthz`)).status).to.equal(200);
    await unlink(registration);
    const failing = await fetch(`${url}/healthz`);
    expect(failing.status).to.equal(503); // kubelet counts anything outside 200–399 as a failed probe
    expect(await failing.text())
      .to.contain('csi-sockets')
      .and.contain(registration);
    expect(agent!.exited, 'the daemon itself keeps running; kubelet restarts the container').to.equal(false);
  });
});

/** `stowage csi-controller` as a child process: serves Identity and Controller on --endpoint, exits cleanly on SIGTERM. */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { installCrds } from '../../src/crds/install.js';
import { csiV1 } from '../../src/csi/grpc.js';
import { freePort } from '../support/operator-process.js';
import { adminClient, waitFor } from '../support/cluster.js';
import { call } from './fixture.js';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');

describe('stowage csi-controller (child process)', function () {
  this.timeout(120_000);
  let dir = '';
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('serves on the Unix socket it is given and removes it on SIGTERM', async () => {
    const { cp, client } = await adminClient();
    await installCrds(client, 'stowage-tests');
    client.close();
    dir = await mkdtemp(path.join(tmpdir(), 'stowage-csi-ctl-'));
    const socket = path.join(dir, 'csi.sock');
    const port = await freePort();
    const child = spawn(
      process.execPath,
      [
        CLI,
        'csi-controller',
        '--kubeconfig',
        cp.kubeconfigPath,
        '--endpoint',
        `unix://${socket}`,
        '--metrics-bind-address',
        `127.0.0.1:${port}`,
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, STOWAGE_LOG_LEVEL: 'info' },
      },
    );
    const output: string[] = [];
    child.stdout.on('data', (d: Buffer) => output.push(d.toString()));
    child.stderr.on('data', (d: Buffer) => output.push(d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const v1 = csiV1() as any;
    const identity = new v1.Identity(`unix://${socket}`, grpc.credentials.createInsecure());
    const controller = new v1.Controller(`unix://${socket}`, grpc.credentials.createInsecure());
    try {
      // A poll: a failed try means 'not yet'; waitFor reports the last state if it never comes.
      await waitFor(
        'the controller to answer Probe ready',
        async () => (await call(identity, 'Probe', {}, 2_000).catch(() => undefined))?.ready?.value === true,
        60_000,
      ).catch((err) => {
        throw new Error(`${err}\n${output.join('').slice(-2000)}`);
      });
      expect((await call(identity, 'GetPluginInfo', {})).name).to.equal('csi.stowage.dev');
      expect((await call(controller, 'ControllerGetCapabilities', {})).capabilities).to.have.length(7);
      // Every answered call is counted on /metrics by method and gRPC code.
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(metrics).to.match(/stowage_csi_requests_total\{method="GetPluginInfo",code="OK"\} 1\b/);
      expect(metrics).to.match(/stowage_csi_requests_total\{method="ControllerGetCapabilities",code="OK"\} 1\b/);
      expect(metrics).to.match(/stowage_csi_request_duration_seconds_count\{method="Probe"\} [1-9]/);
    } finally {
      identity.close();
      controller.close();
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      expect(await exited).to.equal(0);
      clearTimeout(timer);
    }
    // Any failure to stat reads as absent, which is what the assertion checks.
    expect(
      await stat(socket).then(
        () => 'left',
        () => 'removed',
      ),
    ).to.equal('removed');
  });
});

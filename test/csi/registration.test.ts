/** kubelet's plugin registration v1, called over the socket exactly as kubelet's plugin watcher does. */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { pluginRegistration } from '../../src/csi/grpc.js';
import { startRegistrationServer } from '../../src/csi/registration.js';
import { call } from './fixture.js';

describe('kubelet plugin registration (pluginregistration v1)', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-reg-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("tells kubelet the driver name and endpoint, and records kubelet's verdict", async () => {
    const statuses: unknown[] = [];
    const server = await startRegistrationServer({
      dir,
      endpoint: '/var/lib/kubelet/plugins/csi.stowage.dev/csi.sock',
      onStatus: (s) => statuses.push(s),
    });
    const Registration = pluginRegistration().Registration as grpc.ServiceClientConstructor;
    const client = new Registration(`unix://${dir}/csi.stowage.dev-reg.sock`, grpc.credentials.createInsecure()) as any;
    try {
      expect((await stat(join(dir, 'csi.stowage.dev-reg.sock'))).isSocket()).to.equal(true);
      const info = await call(client, 'GetInfo', {});
      expect(info).to.deep.equal({
        type: 'CSIPlugin',
        name: 'csi.stowage.dev',
        endpoint: '/var/lib/kubelet/plugins/csi.stowage.dev/csi.sock',
        supported_versions: ['1.0.0'],
      });
      await call(client, 'NotifyRegistrationStatus', { plugin_registered: false, error: 'driver name clash' });
      await call(client, 'NotifyRegistrationStatus', { plugin_registered: true });
      expect(statuses).to.deep.equal([{ registered: false, error: 'driver name clash' }, { registered: true }]);
      expect(server.lastStatus()).to.deep.equal({ registered: true });
    } finally {
      client.close();
      await server.stop();
    }
    // Any failure to stat reads as absent, which is what the assertion checks.
    expect(
      await stat(join(dir, 'csi.stowage.dev-reg.sock')).then(
        () => 'left',
        () => 'removed',
      ),
    ).to.equal('removed');
  });
});

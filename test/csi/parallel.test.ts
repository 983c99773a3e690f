/**
 * Reservation under concurrency: fifty CreateVolume calls at once against a node with room for
 * exactly forty. Exactly forty succeed (and are realized); ten get RESOURCE_EXHAUSTED.
 */
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { DynamicPoolFixture, call } from './fixture.js';

const MiB = 1n << 20n;

describe('CSI CreateVolume under concurrency', function () {
  this.timeout(300_000);
  const fx = new DynamicPoolFixture();
  before(async () => {
    await fx.start({ diskSizes: [1024 ** 3], reservePercent: 10 });
  });
  after(async () => {
    await fx.cleanup();
  });

  it('50 parallel calls against room for 40: exactly 40 succeed, none overcommits', async () => {
    const available = fx.controller!.controller.capacities(fx.pool)[0].available;
    const size = (available / 40n / MiB) * MiB;
    expect(size * 40n <= available && size * 41n > available, `room for exactly 40 volumes of ${size} bytes in ${available}`).to.equal(
      true,
    );
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, (_, i) =>
        call(
          fx.controllerClient,
          'CreateVolume',
          {
            name: `pvc-parallel-${i}`,
            capacity_range: { required_bytes: size.toString() },
            volume_capabilities: [{ mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } }],
            parameters: { pool: fx.pool },
          },
          120_000,
        ),
      ),
    );
    const ok = results.filter((r) => r.status === 'fulfilled');
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(
      failed.map((r) => grpc.status[(r.reason as grpc.ServiceError).code]),
      failed.map((r) => String(r.reason)).join('\n'),
    ).to.deep.equal(Array(10).fill('RESOURCE_EXHAUSTED'));
    expect(ok).to.have.length(40);
    const volumes = await fx.poolVolumes();
    expect(volumes).to.have.length(40);
    expect(volumes.every((v) => v.status?.phase === 'Ready')).to.equal(true);
    expect(volumes.reduce((s, v) => s + BigInt(v.spec.size), 0n) <= available).to.equal(true);
  });
});

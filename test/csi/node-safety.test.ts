/**
 * The CSI Node service never crosses tenants and never leaves a read-only volume writable (issue
 * 25): two Dynamic pools on real btrfs over loop devices, the real controller, realizer and node
 * service over Unix sockets. A PoolVolume whose status.path was turned into a symlink into the other
 * pool, or out of its pool, is refused before anything is mounted; a read-only publish found half
 * done (a writable bind at the target) is made read-only by the retry; a clone across pools says so.
 */
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { POOL_VOLUMES } from '../../src/crds/resource-types.js';
import { POOL_VOLUME_FINALIZER, POOL_VOLUME_LABELS, type PoolVolume } from '../../src/crds/poolvolume.js';
import { mountsUnder } from '../../src/csi/node-service.js';
import { mountAt } from '../../src/host/mounts.js';
import { run } from '../../src/host/command.js';
import { ifNotFound } from '../../src/util/errors.js';
import { startPoolVolumeRealizer } from '../../src/node/engine/volume-realizer.js';
import { DynamicPoolFixture, call } from './fixture.js';

const MiB = 1024 ** 2;
const mountCap = { mount: { fs_type: '', mount_flags: [] }, access_mode: { mode: 'SINGLE_NODE_WRITER' } };

/** The call's gRPC status code and message (throws if it succeeds). */
async function failure(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (err) {
    const e = err as grpc.ServiceError;
    return { code: grpc.status[e.code], message: e.details };
  }
  throw new Error('the call succeeded but an error was expected');
}

describe('CSI node safety: own subvolume only, read-only stays read-only (two pools, real btrfs)', function () {
  this.timeout(300_000);
  const a = new DynamicPoolFixture();
  const b = new DynamicPoolFixture();
  let outside = '';
  const create = (fx: DynamicPoolFixture, name: string, extra: Record<string, unknown> = {}) =>
    call(fx.controllerClient, 'CreateVolume', {
      name,
      capacity_range: { required_bytes: String(16 * MiB) },
      volume_capabilities: [mountCap],
      parameters: { pool: fx.pool },
      ...extra,
    });
  const pathOf = async (fx: DynamicPoolFixture, id: string): Promise<string> =>
    (await fx.client.get<PoolVolume>(POOL_VOLUMES, id)).status!.path!;

  /** Runs `body` with A's realizer stopped, so a hand-edited status.path stays while the node service is asked. */
  const withRealizerStopped = async (body: () => Promise<void>): Promise<void> => {
    await a.realizer!.stop();
    try {
      await body();
    } finally {
      a.realizer = await startPoolVolumeRealizer({ client: a.client, engine: a.engine, nodeName: a.node, refreshMs: 1_000 });
    }
  };

  before(async () => {
    await a.start({ diskSizes: [1024 ** 3], confinePaths: true });
    await b.start({ diskSizes: [1024 ** 3], confinePaths: true });
    outside = await mkdtemp(join(tmpdir(), 'stowage-outside-'));
    await writeFile(join(outside, 'not-yours.txt'), 'outside');
  });
  after(async () => {
    await a.cleanup();
    await b.cleanup();
    if (outside) await rm(outside, { recursive: true, force: true });
  });

  it('refuses to stage a volume whose status.path is a symlink from inside its own volume into another pool, mounting nothing', async () => {
    const victim = (await create(b, 'pvc-tenant-b')).volume.volume_id;
    const victimPath = await pathOf(b, victim);
    await writeFile(join(victimPath, 'secret.txt'), 'tenant B only');
    const attacker = (await create(a, 'pvc-tenant-a')).volume.volume_id;
    const attackerPath = await pathOf(a, attacker);
    // What a tenant of pool A can do inside its own volume: plant a symlink to B's volume.
    await symlink(victimPath, join(attackerPath, 'into-b'));
    const staging = join(a.dir, 'pods', 'staging', 'symlinked');
    const mountsBefore = [...(await mountsUnder(a.dir)), ...(await mountsUnder(b.dir))].sort();
    await withRealizerStopped(async () => {
      await a.client.mergePatch(POOL_VOLUMES, attacker, { status: { path: join(attackerPath, 'into-b') } }, { subresource: 'status' });
      const refused = await failure(
        call(a.nodeClient, 'NodeStageVolume', { volume_id: attacker, staging_target_path: staging, volume_capability: mountCap }),
      );
      expect(refused.code).to.equal('FAILED_PRECONDITION');
      expect(refused.message).to.contain(attacker).and.contain('status.path').and.contain(victimPath).and.contain('refusing to mount');
      expect(await mountAt(staging), 'nothing mounted at the staging path').to.equal(undefined);
      expect(await readdir(staging).catch(ifNotFound([] as string[])), "B's files are not visible at the staging path").to.not.include(
        'secret.txt',
      );
      expect([...(await mountsUnder(a.dir)), ...(await mountsUnder(b.dir))].sort(), 'no mount appeared anywhere').to.deep.equal(
        mountsBefore,
      );
    });
    // Once the realizer has written the true path back, the same volume stages: its own data, not B's.
    await waitForPath(a, attacker, attackerPath);
    await call(a.nodeClient, 'NodeStageVolume', { volume_id: attacker, staging_target_path: staging, volume_capability: mountCap });
    try {
      expect(await readdir(staging))
        .to.include('into-b')
        .and.not.include('secret.txt');
    } finally {
      await call(a.nodeClient, 'NodeUnstageVolume', { volume_id: attacker, staging_target_path: staging });
    }
  });

  it('refuses a status.path that leads out of the pool with FAILED_PRECONDITION, not UNAVAILABLE ("still preparing")', async () => {
    const id = (await create(a, 'pvc-out-of-pool')).volume.volume_id;
    const staging = join(a.dir, 'pods', 'staging', 'outside');
    const real = await pathOf(a, id);
    // Up to / from the volume's own path, then down into a directory outside every pool.
    for (const [what, path] of [
      ['an absolute path outside the pool', outside],
      ['a path that climbs out with ..', `${real}${'/..'.repeat(real.split('/').length - 1)}${outside}`],
    ]) {
      await withRealizerStopped(async () => {
        await a.client.mergePatch(POOL_VOLUMES, id, { status: { path } }, { subresource: 'status' });
        const refused = await failure(
          call(a.nodeClient, 'NodeStageVolume', { volume_id: id, staging_target_path: staging, volume_capability: mountCap }),
        );
        expect(refused.code, what).to.equal('FAILED_PRECONDITION');
        expect(refused.message, what).to.contain(id).and.contain('outside pool').and.not.contain('still preparing');
        expect(await mountAt(staging), what).to.equal(undefined);
      });
    }
  });

  it('makes a read-only publish found half done (a writable bind at the target) read-only on the retry', async () => {
    const id = (await create(a, 'pvc-readonly')).volume.volume_id;
    const staging = join(a.dir, 'pods', 'staging', 'ro');
    const target = join(a.dir, 'pods', 'pod-ro', 'mount');
    await call(a.nodeClient, 'NodeStageVolume', { volume_id: id, staging_target_path: staging, volume_capability: mountCap });
    try {
      await writeFile(join(staging, 'data.txt'), 'kept');
      // The state a read-only publish leaves when it is cut off after the bind, before the remount.
      await mkdir(target, { recursive: true });
      await run('mount', ['--bind', staging, target]);
      expect((await mountAt(target))?.options).to.include('rw');
      const req = { volume_id: id, staging_target_path: staging, target_path: target, volume_capability: mountCap, readonly: true };
      for (let i = 0; i < 2; i++) await call(a.nodeClient, 'NodePublishVolume', req);
      expect((await mountAt(target))?.options).to.include('ro');
      expect(
        await writeFile(join(target, 'nope'), 'x').then(
          () => 'written',
          (e: NodeJS.ErrnoException) => e.code,
        ),
      ).to.equal('EROFS');
      expect(await readdir(target)).to.include('data.txt');
      expect((await mountsUnder(target)).length, 'one mount at the target, not a second one over it').to.equal(1);
    } finally {
      await call(a.nodeClient, 'NodeUnpublishVolume', { volume_id: id, target_path: target });
      await call(a.nodeClient, 'NodeUnstageVolume', { volume_id: id, staging_target_path: staging });
    }
    expect(await mountAt(target)).to.equal(undefined);
  });

  it('refuses a clone across pools saying the source is in another pool, not that it was deleted', async () => {
    const source = (await create(b, 'pvc-clone-source')).volume.volume_id;
    const refused = await failure(create(a, 'pvc-clone-across', { volume_content_source: { volume: { volume_id: source } } }));
    expect(refused.code).to.equal('INVALID_ARGUMENT');
    expect(refused.message)
      .to.contain(source)
      .and.contain(`in pool ${b.pool}`)
      .and.not.match(/deleted/);
    expect((await a.poolVolumes()).map((v) => v.spec.requestName)).to.not.include('pvc-clone-across');
  });

  it('fails a hand-made PoolVolume cloned from another pool saying the source is in that pool, not that it was deleted', async () => {
    const source = (await create(b, 'pvc-clone-source-2')).volume.volume_id;
    const name = `pvol-handmade-${a.pool}`;
    await a.client.create<PoolVolume>(POOL_VOLUMES, {
      apiVersion: 'stowage.dev/v1alpha1',
      kind: 'PoolVolume',
      metadata: {
        name,
        labels: { [POOL_VOLUME_LABELS.node]: a.node, [POOL_VOLUME_LABELS.pool]: a.pool },
        finalizers: [POOL_VOLUME_FINALIZER],
      },
      spec: {
        pool: a.pool,
        node: a.node,
        size: String(16 * MiB),
        volumeMode: 'Filesystem',
        requestName: 'handmade',
        source: { volume: source },
      },
    });
    const deadline = Date.now() + 30_000;
    let pv = await a.client.get<PoolVolume>(POOL_VOLUMES, name);
    while (pv.status?.phase !== 'Failed') {
      if (Date.now() > deadline) throw new Error(`the realizer never failed ${name}: ${JSON.stringify(pv.status)}`);
      await new Promise((r) => setTimeout(r, 200));
      pv = await a.client.get<PoolVolume>(POOL_VOLUMES, name);
    }
    const ready = pv.status.conditions!.find((c) => c.type === 'Ready')!;
    expect(ready.message)
      .to.contain(`volume ${source} is in pool ${b.pool}`)
      .and.contain(`stays in its source's pool`)
      .and.not.match(/deleted/);
  });
});

async function waitForPath(fx: DynamicPoolFixture, id: string, path: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while ((await fx.client.get<PoolVolume>(POOL_VOLUMES, id)).status?.path !== path) {
    if (Date.now() > deadline) throw new Error(`the realizer never wrote ${id}'s true path back`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * Fault suite, hostile CSI requests (issue 18): the real CSI controller and node services over their
 * Unix sockets, a real btrfs pool on a loop device, the real control plane. Every hostile request
 * (missing fields, sizes past 2^63, unknown and path-like volume IDs, staging/target paths with
 * `..`, relative, outside kubelet's directory, through symlinks) must get the CSI spec's error code,
 * and nothing outside the pool's directories may be read or written: a sentinel tree outside stays
 * byte for byte the same, no mount or loop device appears, no PoolVolume appears or vanishes, and
 * both services still answer. Data at stake in every row: the sentinel tree and a file written into
 * the test's volume before the requests (read back with O_DIRECT from its subvolume).
 */
import { mkdir, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { POOL_SNAPSHOTS, POOL_VOLUMES, NODE_DISKS } from '../../src/crds/resource-types.js';
import type { PoolVolume } from '../../src/crds/poolvolume.js';
import { startPoolVolumeRealizer } from '../../src/node/engine/volume-realizer.js';
import { DynamicPoolFixture, call, codeOf } from '../csi/fixture.js';
import { mountsUnder } from '../../src/csi/node-service.js';
import { waitFor } from '../support/cluster.js';
import { injectFault, type FaultPlan } from './ledger.js';
import { KeptData, allOf, apiObjects, conditionsReach, loopDevices, mounts, processes, processesUp, subvolumes } from './fault-checks.js';
import { SentinelTree } from './sentinel-tree.js';

const AREA = 'hostile CSI requests';
const MiB = 1024 ** 2;
const INT64_MAX = '9223372036854775807';
const mountCap = { mount: { fs_type: '', mount_flags: [] }, access_mode: { mode: 'SINGLE_NODE_WRITER' } };

describe('faults: hostile CSI requests (real controller and node services)', function () {
  this.timeout(300_000);
  const fx = new DynamicPoolFixture();
  let outside = '';
  let sentinels: SentinelTree;
  let kubelet = '';
  let volumeId = '';
  let staging = '';

  const kept = new KeptData();
  /**
   * Every fault is checked by these: the data outside the pool and in the volume, mounts, loop
   * devices, PoolVolumes and subvolumes, processes; both services answer ready, the disk stays prepared.
   */
  const plan = (): FaultPlan => ({
    data: allOf(sentinels, kept),
    inventory: [
      sentinels.probe(),
      mounts([outside, fx.dir], () => fx.loops.devices()),
      loopDevices(() => [fx.dir, outside]),
      apiObjects(fx.client, POOL_VOLUMES, { labelSelector: `stowage.dev/pool=${fx.pool}` }),
      apiObjects(fx.client, POOL_SNAPSHOTS, { labelSelector: `stowage.dev/pool=${fx.pool}` }),
      subvolumes(() => join(fx.dir, 'root', 'pools', fx.pool, 'volumes')),
      processes(),
    ],
    survival: [
      processesUp({
        'CSI controller': () => call(fx.identity, 'Probe', {}, 5_000).then((r) => r.ready.value === true),
        'CSI node service': () => call(fx.nodeIdentity, 'Probe', {}, 5_000).then((r) => r.ready.value === true),
      }),
      conditionsReach(fx.client, NODE_DISKS, () => fx.disks[0].name, { Prepared: 'True' }),
      async () =>
        (await fx.engine.health(fx.pool)).degraded ? [`pool ${fx.pool} degraded: ${(await fx.engine.health(fx.pool)).message}`] : [],
    ],
  });
  const expectCode = async (fault: string, code: string | string[], request: () => Promise<unknown>): Promise<void> => {
    await injectFault(AREA, fault, plan(), async () => {
      const got = await codeOf(request());
      expect([code].flat(), `${fault}: got ${got}`).to.include(got);
    });
  };

  before(async () => {
    await fx.start({ diskSizes: [1024 ** 3], confinePaths: true });
    kubelet = join(fx.dir, 'pods');
    await mkdir(kubelet, { recursive: true });
    outside = await mkdtemp(join(tmpdir(), 'stowage-sentinel-'));
    sentinels = await SentinelTree.create(outside);
    // A symlink inside kubelet's directory that leads outside it: following it would write there.
    await symlink(outside, join(kubelet, 'escape'));
    volumeId = (
      await call(fx.controllerClient, 'CreateVolume', {
        name: 'pvc-hostile-1',
        capacity_range: { required_bytes: String(16 * MiB) },
        volume_capabilities: [mountCap],
        parameters: { pool: fx.pool },
      })
    ).volume.volume_id;
    staging = join(kubelet, 'staging', 'v1');
    // Data in the volume before any hostile request, written straight into its subvolume.
    const volumePath = await waitFor(
      'the volume realized',
      async () => (await fx.client.get<PoolVolume>(POOL_VOLUMES, volumeId)).status?.path,
      60_000,
    );
    await kept.write(join(volumePath, 'kept'), 256 * 1024);
  });
  after(async () => {
    await fx.cleanup();
    if (outside) await rm(outside, { recursive: true, force: true });
  });

  describe('controller', () => {
    it('refuses requests with missing fields with INVALID_ARGUMENT', async () => {
      await expectCode('CreateVolume without name', 'INVALID_ARGUMENT', () =>
        call(fx.controllerClient, 'CreateVolume', { volume_capabilities: [mountCap], parameters: { pool: fx.pool } }),
      );
      await expectCode('CreateVolume without capabilities', 'INVALID_ARGUMENT', () =>
        call(fx.controllerClient, 'CreateVolume', { name: 'pvc-x', parameters: { pool: fx.pool } }),
      );
      await expectCode('CreateVolume without parameters', 'INVALID_ARGUMENT', () =>
        call(fx.controllerClient, 'CreateVolume', { name: 'pvc-x', volume_capabilities: [mountCap] }),
      );
      await expectCode('ControllerExpandVolume without capacity_range', 'INVALID_ARGUMENT', () =>
        call(fx.controllerClient, 'ControllerExpandVolume', { volume_id: volumeId }),
      );
      await expectCode('DeleteVolume without volume_id', 'INVALID_ARGUMENT', () => call(fx.controllerClient, 'DeleteVolume', {}));
      await expectCode('ValidateVolumeCapabilities without capabilities', 'INVALID_ARGUMENT', () =>
        call(fx.controllerClient, 'ValidateVolumeCapabilities', { volume_id: volumeId }),
      );
    });

    it('refuses sizes at and past 2^63 and negative sizes, creating nothing', async () => {
      const create = (range: Record<string, string>) => () =>
        call(fx.controllerClient, 'CreateVolume', {
          name: 'pvc-huge',
          capacity_range: range,
          volume_capabilities: [mountCap],
          parameters: { pool: fx.pool },
        });
      await expectCode('CreateVolume of 2^63-1 bytes', ['RESOURCE_EXHAUSTED', 'OUT_OF_RANGE'], create({ required_bytes: INT64_MAX }));
      // 2^63 does not fit int64: on the wire it arrives as -2^63.
      await expectCode(
        'CreateVolume of 2^63 bytes',
        ['INVALID_ARGUMENT', 'OUT_OF_RANGE'],
        create({ required_bytes: '9223372036854775808' }),
      );
      await expectCode('CreateVolume of -1 bytes', ['INVALID_ARGUMENT', 'OUT_OF_RANGE'], create({ required_bytes: '-1' }));
      await expectCode(
        'CreateVolume with limit 2^63-1 below required',
        ['RESOURCE_EXHAUSTED', 'OUT_OF_RANGE'],
        create({ required_bytes: INT64_MAX, limit_bytes: String(MiB) }),
      );
      await expectCode('ControllerExpandVolume to 2^63-1 bytes', ['RESOURCE_EXHAUSTED', 'OUT_OF_RANGE'], () =>
        call(fx.controllerClient, 'ControllerExpandVolume', { volume_id: volumeId, capacity_range: { required_bytes: INT64_MAX } }),
      );
      await expectCode('ControllerExpandVolume to -5 bytes', ['INVALID_ARGUMENT', 'OUT_OF_RANGE'], () =>
        call(fx.controllerClient, 'ControllerExpandVolume', { volume_id: volumeId, capacity_range: { required_bytes: '-5' } }),
      );
    });

    it('refuses 1 MiB strings and control characters in names, parameters and IDs', async () => {
      const big = 'x'.repeat(1 << 20);
      const create =
        (name: string, pool = fx.pool) =>
        () =>
          call(fx.controllerClient, 'CreateVolume', {
            name,
            capacity_range: { required_bytes: String(MiB) },
            volume_capabilities: [mountCap],
            parameters: { pool },
          });
      await expectCode('CreateVolume with a 1 MiB name', 'INVALID_ARGUMENT', create(big));
      await expectCode('CreateVolume with control characters in the name', 'INVALID_ARGUMENT', create('pvc-\u0000\u0007\n\u001b[31m'));
      await expectCode('CreateVolume in a pool of 1 MiB', 'INVALID_ARGUMENT', create('pvc-bigpool', big));
      await expectCode('CreateVolume in a pool with control characters', 'INVALID_ARGUMENT', create('pvc-ccpool', `${fx.pool}\n`));
      await expectCode('ControllerExpandVolume of a 1 MiB volume ID', 'NOT_FOUND', () =>
        call(fx.controllerClient, 'ControllerExpandVolume', { volume_id: big, capacity_range: { required_bytes: String(MiB) } }),
      );
      await expectCode('NodeStageVolume of a 1 MiB volume ID', 'NOT_FOUND', () =>
        call(fx.nodeClient, 'NodeStageVolume', {
          volume_id: big,
          staging_target_path: join(kubelet, 'staging', 'big'),
          volume_capability: mountCap,
        }),
      );
      await expectCode('NodeStageVolume to a 1 MiB path', 'INVALID_ARGUMENT', () =>
        call(fx.nodeClient, 'NodeStageVolume', {
          volume_id: volumeId,
          staging_target_path: join(kubelet, big),
          volume_capability: mountCap,
        }),
      );
    });

    it('answers NOT_FOUND for unknown and path-like volume IDs, and deletes nothing for them', async () => {
      for (const id of ['pvol-unknown', '..', '.', '../poolvolumes', `${volumeId}/..`, '%2e%2e', '/etc/passwd']) {
        await expectCode(`ValidateVolumeCapabilities of ${JSON.stringify(id)}`, 'NOT_FOUND', () =>
          call(fx.controllerClient, 'ValidateVolumeCapabilities', { volume_id: id, volume_capabilities: [mountCap] }),
        );
        await expectCode(`ControllerExpandVolume of ${JSON.stringify(id)}`, 'NOT_FOUND', () =>
          call(fx.controllerClient, 'ControllerExpandVolume', { volume_id: id, capacity_range: { required_bytes: String(MiB) } }),
        );
        // DeleteVolume of a volume that does not exist succeeds (the spec: idempotent) and must delete nothing.
        await injectFault(AREA, `DeleteVolume of ${JSON.stringify(id)}`, plan(), async () => {
          await call(fx.controllerClient, 'DeleteVolume', { volume_id: id });
        });
      }
    });

    it('refuses a pool parameter that names a path or another pool', async () => {
      for (const pool of ['..', '../other', `${fx.pool}/../x`, 'no-such-pool', 'x'.repeat(300)]) {
        await expectCode(`CreateVolume in pool ${JSON.stringify(pool.slice(0, 40))}`, 'INVALID_ARGUMENT', () =>
          call(fx.controllerClient, 'CreateVolume', {
            name: 'pvc-elsewhere',
            capacity_range: { required_bytes: String(MiB) },
            volume_capabilities: [mountCap],
            parameters: { pool },
          }),
        );
      }
    });
  });

  describe('node', () => {
    const stage =
      (path: string, id = volumeId) =>
      () =>
        call(fx.nodeClient, 'NodeStageVolume', { volume_id: id, staging_target_path: path, volume_capability: mountCap });
    const publish =
      (target: string, stagingPath = staging) =>
      () =>
        call(fx.nodeClient, 'NodePublishVolume', {
          volume_id: volumeId,
          staging_target_path: stagingPath,
          target_path: target,
          volume_capability: mountCap,
        });
    const hostilePaths = (): [string, string][] => [
      // kubelet/../../..: back at / from kubelet's directory, then down into the sentinel tree.
      ['a path with ..', `${kubelet}${'/..'.repeat(kubelet.split('/').length - 1)}${outside}/x`],
      ['a relative path', 'relative/staging'],
      ["an absolute path outside kubelet's directory", join(outside, 'x')],
      ['a path through a symlink leading outside', join(kubelet, 'escape', 'x')],
      ['the symlink itself', join(kubelet, 'escape')],
      ["kubelet's directory itself", kubelet],
    ];

    it('answers NOT_FOUND for unknown and path-like volume IDs', async () => {
      for (const id of ['pvol-unknown', '..', '.', '../../api/v1/namespaces', `${volumeId}/..`]) {
        await expectCode(`NodeStageVolume of ${JSON.stringify(id)}`, 'NOT_FOUND', stage(join(kubelet, 'staging', 'unknown'), id));
        await expectCode(`NodePublishVolume of ${JSON.stringify(id)}`, 'NOT_FOUND', () =>
          call(fx.nodeClient, 'NodePublishVolume', {
            volume_id: id,
            staging_target_path: staging,
            target_path: join(kubelet, 'pod-u', 'mount'),
            volume_capability: mountCap,
          }),
        );
        await expectCode(`NodeGetVolumeStats of ${JSON.stringify(id)}`, 'NOT_FOUND', () =>
          call(fx.nodeClient, 'NodeGetVolumeStats', { volume_id: id, volume_path: join(kubelet, 'pod-u', 'mount') }),
        );
      }
    });

    it("refuses staging paths outside kubelet's directory with INVALID_ARGUMENT", async () => {
      for (const [what, path] of hostilePaths()) await expectCode(`NodeStageVolume to ${what}`, 'INVALID_ARGUMENT', stage(path));
    });

    it("refuses target paths outside kubelet's directory with INVALID_ARGUMENT, with the volume staged", async () => {
      await call(fx.nodeClient, 'NodeStageVolume', { volume_id: volumeId, staging_target_path: staging, volume_capability: mountCap });
      try {
        for (const [what, path] of hostilePaths()) await expectCode(`NodePublishVolume to ${what}`, 'INVALID_ARGUMENT', publish(path));
        for (const [what, path] of hostilePaths())
          await expectCode(
            `NodePublishVolume from a staging path that is ${what}`,
            'INVALID_ARGUMENT',
            publish(join(kubelet, 'pod-h', 'mount'), path),
          );
      } finally {
        await call(fx.nodeClient, 'NodeUnstageVolume', { volume_id: volumeId, staging_target_path: staging });
      }
    });

    it("never unmounts or deletes outside kubelet's directory (unpublish and unstage refuse it; stats and expand find no volume there: NOT_FOUND, as csi-sanity expects)", async () => {
      const victims: [string, string][] = [
        ...hostilePaths(),
        ['a sentinel file', sentinels.file(0)],
        ['a sentinel file through the symlink', join(kubelet, 'escape', 'sentinel-0')],
      ];
      for (const [what, path] of victims) {
        await expectCode(`NodeUnpublishVolume of ${what}`, 'INVALID_ARGUMENT', () =>
          call(fx.nodeClient, 'NodeUnpublishVolume', { volume_id: volumeId, target_path: path }),
        );
        await expectCode(`NodeUnstageVolume of ${what}`, 'INVALID_ARGUMENT', () =>
          call(fx.nodeClient, 'NodeUnstageVolume', { volume_id: volumeId, staging_target_path: path }),
        );
        await expectCode(`NodeGetVolumeStats of ${what}`, 'NOT_FOUND', () =>
          call(fx.nodeClient, 'NodeGetVolumeStats', { volume_id: volumeId, volume_path: path }),
        );
        await expectCode(`NodeExpandVolume of ${what}`, 'NOT_FOUND', () =>
          call(fx.nodeClient, 'NodeExpandVolume', {
            volume_id: volumeId,
            volume_path: path,
            capacity_range: { required_bytes: String(16 * MiB) },
          }),
        );
      }
    });

    it('refuses to stage a volume whose status.path was hand-edited to lead out of its pool', async () => {
      const id = (
        await call(fx.controllerClient, 'CreateVolume', {
          name: 'pvc-hostile-path',
          capacity_range: { required_bytes: String(8 * MiB) },
          volume_capabilities: [mountCap],
          parameters: { pool: fx.pool },
        })
      ).volume.volume_id;
      const real = (await fx.client.get<PoolVolume>(POOL_VOLUMES, id)).status!.path!;
      // The realizer would write the true path back; stopped, the hand-edited one stays while we stage.
      await fx.realizer!.stop();
      try {
        const escape = `${real}${'/..'.repeat(real.split('/').length - 1)}${outside}`;
        await fx.client.mergePatch(POOL_VOLUMES, id, { status: { path: escape } }, { subresource: 'status' });
        await expectCode('NodeStageVolume of a PoolVolume whose status.path leads out of the pool', 'FAILED_PRECONDITION', () =>
          call(fx.nodeClient, 'NodeStageVolume', {
            volume_id: id,
            staging_target_path: join(kubelet, 'staging', 'hacked'),
            volume_capability: mountCap,
          }),
        );
      } finally {
        fx.realizer = await startPoolVolumeRealizer({ client: fx.client, engine: fx.engine, nodeName: fx.node, refreshMs: 1_000 });
      }
      await call(fx.controllerClient, 'DeleteVolume', { volume_id: id });
    });

    it('still serves the volume after all of it (stage, publish, unwind; a check, not a fault)', async () => {
      const target = join(kubelet, 'pod-ok', 'mount');
      await stage(staging)();
      await publish(target)();
      const read = await readFile(join(target, 'kept'));
      expect(read.length).to.equal(256 * 1024);
      await call(fx.nodeClient, 'NodeUnpublishVolume', { volume_id: volumeId, target_path: target });
      await call(fx.nodeClient, 'NodeUnstageVolume', { volume_id: volumeId, staging_target_path: staging });
      expect(await mountsUnder(fx.dir).then((m) => m.filter((x) => x.startsWith(kubelet)))).to.deep.equal([]);
    });
  });
});

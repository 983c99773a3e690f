/**
 * CSI conformance over the Unix sockets, the way external-provisioner, external-resizer and kubelet
 * call the driver: every RPC, the spec's required error codes, and each call repeated (idempotency),
 * against real loop devices, a real btrfs pool filesystem and the real control plane.
 */
import { readFile, writeFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'chai';
import { DRIVER_NAME, TOPOLOGY_KEY } from '../../src/csi/identity.js';
import { mountAt } from '../../src/host/mounts.js';
import { run } from '../../src/host/command.js';
import { VERSION } from '../../src/util/version.js';
import { ifNotFound } from '../../src/util/errors.js';
import { DynamicPoolFixture, call, codeOf } from './fixture.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const mountCap = { mount: { fs_type: '', mount_flags: [] }, access_mode: { mode: 'SINGLE_NODE_WRITER' } };
const blockCap = { block: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } };

describe('CSI conformance (Unix socket, real btrfs on loop devices)', function () {
  this.timeout(180_000);
  const fx = new DynamicPoolFixture();
  const params = (): Record<string, string> => ({ pool: fx.pool });
  const create = (name: string, bytes: number, cap: unknown = mountCap, extra: Record<string, unknown> = {}) =>
    call(fx.controllerClient, 'CreateVolume', {
      name,
      capacity_range: { required_bytes: String(bytes) },
      volume_capabilities: [cap],
      parameters: params(),
      ...extra,
    });

  before(async () => {
    await fx.start({ diskSizes: [2 * GiB] });
  });
  after(async () => {
    await fx.cleanup();
  });

  describe('Identity', () => {
    it('names the driver and its version, the same every time, on both sockets', async () => {
      for (const client of [fx.identity, fx.nodeIdentity, fx.identity]) {
        expect(await call(client, 'GetPluginInfo', {})).to.deep.include({ name: DRIVER_NAME, vendor_version: VERSION });
      }
    });

    it('offers the controller service, topology constraints and online expansion', async () => {
      const caps = (await call(fx.identity, 'GetPluginCapabilities', {})).capabilities.map(
        (c: any) => c.service?.type ?? `expansion:${c.volume_expansion?.type}`,
      );
      expect(caps).to.have.members(['CONTROLLER_SERVICE', 'VOLUME_ACCESSIBILITY_CONSTRAINTS', 'expansion:ONLINE']);
    });

    it('answers Probe with ready', async () => {
      expect((await call(fx.identity, 'Probe', {})).ready.value).to.equal(true);
      expect((await call(fx.nodeIdentity, 'Probe', {})).ready.value).to.equal(true);
    });
  });

  describe('Controller', () => {
    it('advertises exactly what it serves', async () => {
      const caps = (await call(fx.controllerClient, 'ControllerGetCapabilities', {})).capabilities.map((c: any) => c.rpc.type);
      expect(caps).to.have.members([
        'CREATE_DELETE_VOLUME',
        'LIST_VOLUMES',
        'GET_CAPACITY',
        'EXPAND_VOLUME',
        'CREATE_DELETE_SNAPSHOT',
        'LIST_SNAPSHOTS',
        'CLONE_VOLUME',
      ]);
    });

    it('refuses CreateVolume without name, capabilities or pool with INVALID_ARGUMENT', async () => {
      expect(await codeOf(call(fx.controllerClient, 'CreateVolume', { volume_capabilities: [mountCap], parameters: params() }))).to.equal(
        'INVALID_ARGUMENT',
      );
      expect(await codeOf(call(fx.controllerClient, 'CreateVolume', { name: 'x', parameters: params() }))).to.equal('INVALID_ARGUMENT');
      expect(await codeOf(call(fx.controllerClient, 'CreateVolume', { name: 'x', volume_capabilities: [mountCap] }))).to.equal(
        'INVALID_ARGUMENT',
      );
      expect(await codeOf(create('x', MiB, { ...mountCap, access_mode: { mode: 'MULTI_NODE_MULTI_WRITER' } }))).to.equal(
        'INVALID_ARGUMENT',
      );
      expect(await codeOf(create('x', MiB, { mount: { fs_type: 'xfs' }, access_mode: { mode: 'SINGLE_NODE_WRITER' } }))).to.equal(
        'INVALID_ARGUMENT',
      );
      expect(
        await codeOf(
          call(fx.controllerClient, 'CreateVolume', { name: 'x', volume_capabilities: [mountCap], parameters: { pool: 'no-such-pool' } }),
        ),
      ).to.equal('INVALID_ARGUMENT');
      expect(
        await codeOf(
          call(fx.controllerClient, 'CreateVolume', {
            name: 'x',
            volume_capabilities: [mountCap],
            parameters: params(),
            capacity_range: { required_bytes: String(2 * MiB), limit_bytes: String(MiB) },
          }),
        ),
      ).to.equal('OUT_OF_RANGE');
    });

    let volumeId = '';
    it('creates a volume on the node with room, and returns the same volume for the same request', async () => {
      const first = (await create('pvc-conformance-1', 100 * MiB)).volume;
      expect(first.capacity_bytes).to.equal(String(100 * MiB));
      expect(first.accessible_topology).to.deep.equal([{ segments: { [TOPOLOGY_KEY]: fx.node } }]);
      expect(first.volume_context).to.deep.include({ pool: fx.pool, node: fx.node, volumeMode: 'Filesystem' });
      volumeId = first.volume_id;
      const again = (await create('pvc-conformance-1', 100 * MiB)).volume;
      expect(again.volume_id).to.equal(volumeId);
      const pv = (await fx.poolVolumes()).find((v) => v.metadata.name === volumeId)!;
      expect(pv.status?.phase).to.equal('Ready');
      expect((await stat(pv.status!.path!)).isDirectory()).to.equal(true);
    });

    it('answers ALREADY_EXISTS for the same name with an incompatible size, mode or nodatacow', async () => {
      expect(await codeOf(create('pvc-conformance-1', 200 * MiB))).to.equal('ALREADY_EXISTS');
      expect(await codeOf(create('pvc-conformance-1', 100 * MiB, blockCap))).to.equal('ALREADY_EXISTS');
      expect(await codeOf(create('pvc-conformance-1', 100 * MiB, mountCap, { parameters: { ...params(), nodatacow: 'true' } }))).to.equal(
        'ALREADY_EXISTS',
      );
    });

    it('makes nodatacow volumes when the class asks (parameter nodatacow), and refuses other values', async () => {
      const v = (await create('pvc-nocow', 8 * MiB, mountCap, { parameters: { ...params(), nodatacow: 'true' } })).volume;
      expect(v.volume_context.nodatacow).to.equal('true');
      const pv = (await fx.poolVolumes()).find((x) => x.metadata.name === v.volume_id)!;
      expect(pv.spec.noDataCow).to.equal(true);
      expect((await run('lsattr', ['-d', pv.status!.path!])).split(' ')[0]).to.contain('C');
      expect(await codeOf(create('pvc-nocow-bad', MiB, mountCap, { parameters: { ...params(), nodatacow: 'yes' } }))).to.equal(
        'INVALID_ARGUMENT',
      );
    });

    it('answers RESOURCE_EXHAUSTED when no node has room, and for topology it cannot serve', async () => {
      expect(await codeOf(create('pvc-too-big', 4 * GiB))).to.equal('RESOURCE_EXHAUSTED');
      expect(
        await codeOf(
          create('pvc-elsewhere', MiB, mountCap, {
            accessibility_requirements: { requisite: [{ segments: { [TOPOLOGY_KEY]: 'other-node' } }] },
          }),
        ),
      ).to.equal('RESOURCE_EXHAUSTED');
      const pinned = (
        await create('pvc-pinned', MiB, mountCap, {
          accessibility_requirements: {
            requisite: [{ segments: { [TOPOLOGY_KEY]: fx.node } }],
            preferred: [{ segments: { [TOPOLOGY_KEY]: fx.node } }],
          },
        })
      ).volume;
      expect(pinned.accessible_topology[0].segments[TOPOLOGY_KEY]).to.equal(fx.node);
    });

    it('validates capabilities: confirms what fits, explains what does not, NOT_FOUND for unknown volumes', async () => {
      for (let i = 0; i < 2; i++) {
        const ok = await call(fx.controllerClient, 'ValidateVolumeCapabilities', { volume_id: volumeId, volume_capabilities: [mountCap] });
        expect(ok.confirmed.volume_capabilities).to.have.length(1);
      }
      const no = await call(fx.controllerClient, 'ValidateVolumeCapabilities', { volume_id: volumeId, volume_capabilities: [blockCap] });
      expect(no.confirmed).to.equal(null);
      expect(no.message).to.match(/Filesystem/);
      expect(
        await codeOf(call(fx.controllerClient, 'ValidateVolumeCapabilities', { volume_id: 'pvol-none', volume_capabilities: [mountCap] })),
      ).to.equal('NOT_FOUND');
      expect(await codeOf(call(fx.controllerClient, 'ValidateVolumeCapabilities', { volume_capabilities: [mountCap] }))).to.equal(
        'INVALID_ARGUMENT',
      );
      expect(await codeOf(call(fx.controllerClient, 'ValidateVolumeCapabilities', { volume_id: volumeId }))).to.equal('INVALID_ARGUMENT');
    });

    it('lists volumes page by page, and ABORTED for a bad token', async () => {
      await create('pvc-list-a', MiB);
      await create('pvc-list-b', MiB);
      const seen: string[] = [];
      let token = '';
      do {
        const page = await call(fx.controllerClient, 'ListVolumes', { max_entries: 1, starting_token: token });
        expect(page.entries.length).to.be.at.most(1);
        seen.push(...page.entries.map((e: any) => e.volume.volume_id));
        token = page.next_token;
      } while (token);
      const all = (await call(fx.controllerClient, 'ListVolumes', {})).entries.map((e: any) => e.volume.volume_id);
      expect(seen).to.deep.equal(all);
      expect(all).to.include(volumeId);
      expect(all.length).to.be.at.least(4);
      expect(await codeOf(call(fx.controllerClient, 'ListVolumes', { starting_token: 'garbage' }))).to.equal('ABORTED');
      expect(await codeOf(call(fx.controllerClient, 'ListVolumes', { max_entries: -1 }))).to.equal('INVALID_ARGUMENT');
    });

    it('reports capacity per node and pool that shrinks with every reservation', async () => {
      const ask = (node?: string) =>
        call(fx.controllerClient, 'GetCapacity', {
          volume_capabilities: [mountCap],
          parameters: params(),
          ...(node ? { accessible_topology: { segments: { [TOPOLOGY_KEY]: node } } } : {}),
        });
      const before = BigInt((await ask(fx.node)).available_capacity);
      expect(before > 0n).to.equal(true);
      expect((await ask()).available_capacity).to.equal(before.toString());
      expect((await ask('other-node')).available_capacity).to.equal('0');
      await create('pvc-capacity', 64 * MiB);
      expect(BigInt((await ask(fx.node)).available_capacity)).to.equal(before - BigInt(64 * MiB));
      expect((await call(fx.controllerClient, 'GetCapacity', { parameters: {} })).available_capacity).to.equal('0');
    });

    it('expands a volume (repeatable), refuses what does not fit, NOT_FOUND for unknown volumes', async () => {
      for (let i = 0; i < 2; i++) {
        const r = await call(fx.controllerClient, 'ControllerExpandVolume', {
          volume_id: volumeId,
          capacity_range: { required_bytes: String(150 * MiB) },
          volume_capability: mountCap,
        });
        expect(r).to.deep.equal({ capacity_bytes: String(150 * MiB), node_expansion_required: false });
      }
      const pv = (await fx.poolVolumes()).find((v) => v.metadata.name === volumeId)!;
      expect(pv.status?.capacity).to.equal(String(150 * MiB));
      expect(
        await codeOf(
          call(fx.controllerClient, 'ControllerExpandVolume', { volume_id: volumeId, capacity_range: { required_bytes: String(8 * GiB) } }),
        ),
      ).to.equal('RESOURCE_EXHAUSTED');
      expect(
        await codeOf(
          call(fx.controllerClient, 'ControllerExpandVolume', { volume_id: 'pvol-none', capacity_range: { required_bytes: String(MiB) } }),
        ),
      ).to.equal('NOT_FOUND');
      expect(await codeOf(call(fx.controllerClient, 'ControllerExpandVolume', { volume_id: volumeId }))).to.equal('INVALID_ARGUMENT');
    });
  });

  describe('Node', () => {
    let volumeId = '';
    const paths = () => ({ staging: join(fx.dir, 'pods', 'staging', 'v1'), target: join(fx.dir, 'pods', 'pod-1', 'mount') });
    const stageReq = () => ({ volume_id: volumeId, staging_target_path: paths().staging, volume_capability: mountCap });
    const publishReq = (extra: Record<string, unknown> = {}) => ({
      volume_id: volumeId,
      staging_target_path: paths().staging,
      target_path: paths().target,
      volume_capability: mountCap,
      ...extra,
    });

    before(async () => {
      volumeId = (await create('pvc-node-1', 32 * MiB)).volume.volume_id;
    });

    it('reports its node ID, topology and capabilities', async () => {
      const info = await call(fx.nodeClient, 'NodeGetInfo', {});
      expect(info.node_id).to.equal(fx.node);
      expect(info.accessible_topology.segments).to.deep.equal({ [TOPOLOGY_KEY]: fx.node });
      const caps = (await call(fx.nodeClient, 'NodeGetCapabilities', {})).capabilities.map((c: any) => c.rpc.type);
      expect(caps).to.have.members(['STAGE_UNSTAGE_VOLUME', 'GET_VOLUME_STATS', 'EXPAND_VOLUME', 'VOLUME_CONDITION']);
    });

    it('refuses calls with missing fields (INVALID_ARGUMENT) and unknown volumes (NOT_FOUND)', async () => {
      const { staging, target } = paths();
      expect(await codeOf(call(fx.nodeClient, 'NodeStageVolume', { staging_target_path: staging, volume_capability: mountCap }))).to.equal(
        'INVALID_ARGUMENT',
      );
      expect(await codeOf(call(fx.nodeClient, 'NodeStageVolume', { volume_id: volumeId, volume_capability: mountCap }))).to.equal(
        'INVALID_ARGUMENT',
      );
      expect(await codeOf(call(fx.nodeClient, 'NodeStageVolume', { volume_id: volumeId, staging_target_path: staging }))).to.equal(
        'INVALID_ARGUMENT',
      );
      expect(
        await codeOf(
          call(fx.nodeClient, 'NodeStageVolume', { volume_id: 'pvol-none', staging_target_path: staging, volume_capability: mountCap }),
        ),
      ).to.equal('NOT_FOUND');
      expect(
        await codeOf(
          call(fx.nodeClient, 'NodePublishVolume', { volume_id: volumeId, staging_target_path: staging, volume_capability: mountCap }),
        ),
      ).to.equal('INVALID_ARGUMENT');
      expect(
        await codeOf(
          call(fx.nodeClient, 'NodePublishVolume', {
            volume_id: 'pvol-none',
            staging_target_path: staging,
            target_path: target,
            volume_capability: mountCap,
          }),
        ),
      ).to.equal('NOT_FOUND');
      expect(await codeOf(call(fx.nodeClient, 'NodeUnpublishVolume', { volume_id: volumeId }))).to.equal('INVALID_ARGUMENT');
      expect(await codeOf(call(fx.nodeClient, 'NodeUnstageVolume', { volume_id: volumeId }))).to.equal('INVALID_ARGUMENT');
      expect(await codeOf(call(fx.nodeClient, 'NodeGetVolumeStats', { volume_id: volumeId }))).to.equal('INVALID_ARGUMENT');
      expect(
        await codeOf(call(fx.nodeClient, 'NodeGetVolumeStats', { volume_id: volumeId, volume_path: join(fx.dir, 'nowhere') })),
      ).to.equal('NOT_FOUND');
    });

    it('stages and publishes (each twice), serves data, reports stats, and unwinds (each twice)', async () => {
      const { staging, target } = paths();
      for (let i = 0; i < 2; i++) await call(fx.nodeClient, 'NodeStageVolume', stageReq());
      expect(await mountAt(staging)).to.not.equal(undefined);
      for (let i = 0; i < 2; i++) await call(fx.nodeClient, 'NodePublishVolume', publishReq());
      expect((await mountAt(target))?.fsType).to.equal('btrfs');
      await writeFile(join(target, 'hello.txt'), 'stowage');
      await run('dd', ['if=/dev/zero', `of=${join(target, 'blob')}`, 'bs=1M', 'count=8', 'conv=fsync']);
      await run('btrfs', ['filesystem', 'sync', target]);
      const stats = await call(fx.nodeClient, 'NodeGetVolumeStats', { volume_id: volumeId, volume_path: target });
      const bytes = stats.usage.find((u: any) => u.unit === 'BYTES');
      expect(bytes.total).to.equal(String(32 * MiB));
      expect(Number(bytes.used)).to.be.at.least(8 * MiB);
      expect(stats.usage.find((u: any) => u.unit === 'INODES')).to.not.equal(undefined);
      expect(stats.volume_condition.abnormal).to.equal(false);
      // The quota holds: writing past the volume's size fails with "disk quota exceeded".
      const over = await run('dd', ['if=/dev/zero', `of=${join(target, 'too-much')}`, 'bs=1M', 'count=64', 'conv=fsync']).then(
        () => 'ok',
        (e: Error) => e.message,
      );
      expect(over).to.match(/quota/i);
      await run('rm', ['-f', join(target, 'too-much')]);
      // Read-only asked where a writable bind stands (a read-only publish cut off before its remount
      // looks the same): it converges to read-only, since that only takes rights away...
      await call(fx.nodeClient, 'NodePublishVolume', publishReq({ readonly: true }));
      expect((await mountAt(target))?.options).to.include('ro');
      expect(
        await writeFile(join(target, 'nope'), 'x').then(
          () => 'ok',
          (e: NodeJS.ErrnoException) => e.code,
        ),
      ).to.equal('EROFS');
      // ...while writable asked where a read-only bind stands would grant rights: a conflict.
      expect(await codeOf(call(fx.nodeClient, 'NodePublishVolume', publishReq()))).to.equal('ALREADY_EXISTS');
      expect((await mountAt(target))?.options).to.include('ro');
      const expanded = await call(fx.nodeClient, 'NodeExpandVolume', {
        volume_id: volumeId,
        volume_path: target,
        capacity_range: { required_bytes: String(32 * MiB) },
      });
      expect(expanded.capacity_bytes).to.equal(String(32 * MiB));
      for (let i = 0; i < 2; i++) await call(fx.nodeClient, 'NodeUnpublishVolume', { volume_id: volumeId, target_path: target });
      expect(await mountAt(target)).to.equal(undefined);
      for (let i = 0; i < 2; i++) await call(fx.nodeClient, 'NodeUnstageVolume', { volume_id: volumeId, staging_target_path: staging });
      expect(await mountAt(staging)).to.equal(undefined);
    });

    it('publishes read-only when asked, and the data written before is there', async () => {
      const { staging, target } = paths();
      await call(fx.nodeClient, 'NodeStageVolume', stageReq());
      await call(fx.nodeClient, 'NodePublishVolume', publishReq({ readonly: true }));
      expect(await readFile(join(target, 'hello.txt'), 'utf8')).to.equal('stowage');
      expect((await mountAt(target))?.options).to.include('ro');
      const write = await writeFile(join(target, 'nope'), 'x').then(
        () => 'ok',
        (e: NodeJS.ErrnoException) => e.code,
      );
      expect(write).to.equal('EROFS');
      await call(fx.nodeClient, 'NodeUnpublishVolume', { volume_id: volumeId, target_path: target });
      await call(fx.nodeClient, 'NodeUnstageVolume', { volume_id: volumeId, staging_target_path: staging });
    });

    it('serves Block volumes as a loop device bind-mounted on the target file', async () => {
      const block = (await create('pvc-block-1', 16 * MiB, blockCap)).volume;
      expect(block.volume_context.volumeMode).to.equal('Block');
      const staging = join(fx.dir, 'pods', 'staging', 'b1');
      const target = join(fx.dir, 'pods', 'pod-2', 'dev', 'block');
      const req = { volume_id: block.volume_id, staging_target_path: staging, volume_capability: blockCap };
      for (let i = 0; i < 2; i++) await call(fx.nodeClient, 'NodeStageVolume', req);
      for (let i = 0; i < 2; i++) await call(fx.nodeClient, 'NodePublishVolume', { ...req, target_path: target });
      await run('dd', ['if=/dev/urandom', `of=${target}`, 'bs=1M', 'count=4', 'oflag=direct']);
      const size = (await run('blockdev', ['--getsize64', target])).trim();
      expect(size).to.equal(String(16 * MiB));
      const pv = (await fx.poolVolumes()).find((v) => v.metadata.name === block.volume_id)!;
      expect((await run('lsattr', [pv.status!.path!])).split(' ')[0]).to.contain('C');
      // Online expansion: the controller grows the file, the node refreshes the loop device.
      const grown = await call(fx.controllerClient, 'ControllerExpandVolume', {
        volume_id: block.volume_id,
        capacity_range: { required_bytes: String(24 * MiB) },
        volume_capability: blockCap,
      });
      expect(grown.node_expansion_required).to.equal(true);
      await call(fx.nodeClient, 'NodeExpandVolume', {
        volume_id: block.volume_id,
        volume_path: target,
        capacity_range: { required_bytes: String(24 * MiB) },
      });
      expect((await run('blockdev', ['--getsize64', target])).trim()).to.equal(String(24 * MiB));
      for (let i = 0; i < 2; i++) await call(fx.nodeClient, 'NodeUnpublishVolume', { volume_id: block.volume_id, target_path: target });
      for (let i = 0; i < 2; i++)
        await call(fx.nodeClient, 'NodeUnstageVolume', { volume_id: block.volume_id, staging_target_path: staging });
      expect(await mountAt(target)).to.equal(undefined);
    });
  });

  // pkg/sanity/node.go of kubernetes-csi/csi-test (v5.3.1), spec by spec: the requests it sends and
  // the codes it asserts. A relative volume_path such as "some/path" is how the suite asks about a
  // path where nothing is published, and it expects NOT_FOUND there, not INVALID_ARGUMENT.
  describe('Node service as csi-sanity checks it (pkg/sanity/node.go)', () => {
    const unknownId = 'pvol-sanity-unknown';
    const stagingPath = () => join(fx.dir, 'pods', 'sanity', 'staging');
    const targetPath = () => join(fx.dir, 'pods', 'sanity', 'target');
    let volumeId = '';

    before(async () => {
      volumeId = (await create('sanity-node-1', 16 * MiB)).volume.volume_id;
    });

    it('NodeGetCapabilities: only capabilities the suite knows', async () => {
      const known = [
        'UNKNOWN',
        'STAGE_UNSTAGE_VOLUME',
        'GET_VOLUME_STATS',
        'EXPAND_VOLUME',
        'VOLUME_CONDITION',
        'SINGLE_NODE_MULTI_WRITER',
        'VOLUME_MOUNT_GROUP',
      ];
      for (const c of (await call(fx.nodeClient, 'NodeGetCapabilities', {})).capabilities) expect(known).to.include(c.rpc.type);
    });

    it('NodeGetInfo: a node ID, max_volumes_per_node >= 0, a topology (VOLUME_ACCESSIBILITY_CONSTRAINTS)', async () => {
      const info = await call(fx.nodeClient, 'NodeGetInfo', {});
      expect(info.node_id).to.not.equal('');
      expect(Number(info.max_volumes_per_node)).to.be.at.least(0);
      expect(info.accessible_topology).to.not.equal(null);
    });

    it('NodePublishVolume: INVALID_ARGUMENT without volume ID, target path or capability', async () => {
      expect(await codeOf(call(fx.nodeClient, 'NodePublishVolume', {}))).to.equal('INVALID_ARGUMENT');
      expect(await codeOf(call(fx.nodeClient, 'NodePublishVolume', { volume_id: unknownId }))).to.equal('INVALID_ARGUMENT');
      expect(await codeOf(call(fx.nodeClient, 'NodePublishVolume', { volume_id: unknownId, target_path: targetPath() }))).to.equal(
        'INVALID_ARGUMENT',
      );
    });

    it('NodeUnpublishVolume: INVALID_ARGUMENT without volume ID or target path', async () => {
      expect(await codeOf(call(fx.nodeClient, 'NodeUnpublishVolume', {}))).to.equal('INVALID_ARGUMENT');
      expect(await codeOf(call(fx.nodeClient, 'NodeUnpublishVolume', { volume_id: unknownId }))).to.equal('INVALID_ARGUMENT');
    });

    it('NodeStageVolume: INVALID_ARGUMENT without volume ID, staging path or capability', async () => {
      const publishContext = { device: '/dev/mock' };
      expect(
        await codeOf(
          call(fx.nodeClient, 'NodeStageVolume', {
            staging_target_path: stagingPath(),
            volume_capability: mountCap,
            publish_context: publishContext,
          }),
        ),
      ).to.equal('INVALID_ARGUMENT');
      expect(
        await codeOf(
          call(fx.nodeClient, 'NodeStageVolume', { volume_id: unknownId, volume_capability: mountCap, publish_context: publishContext }),
        ),
      ).to.equal('INVALID_ARGUMENT');
      expect(
        await codeOf(
          call(fx.nodeClient, 'NodeStageVolume', {
            volume_id: volumeId,
            staging_target_path: stagingPath(),
            publish_context: publishContext,
          }),
        ),
      ).to.equal('INVALID_ARGUMENT');
      expect(await mountAt(stagingPath())).to.equal(undefined);
    });

    it('NodeUnstageVolume: INVALID_ARGUMENT without volume ID or staging path', async () => {
      expect(await codeOf(call(fx.nodeClient, 'NodeUnstageVolume', { staging_target_path: stagingPath() }))).to.equal('INVALID_ARGUMENT');
      expect(await codeOf(call(fx.nodeClient, 'NodeUnstageVolume', { volume_id: unknownId }))).to.equal('INVALID_ARGUMENT');
    });

    it('NodeGetVolumeStats: INVALID_ARGUMENT without volume ID or path, NOT_FOUND for an unknown volume at "some/path"', async () => {
      expect(await codeOf(call(fx.nodeClient, 'NodeGetVolumeStats', { volume_path: 'some/path' }))).to.equal('INVALID_ARGUMENT');
      expect(await codeOf(call(fx.nodeClient, 'NodeGetVolumeStats', { volume_id: unknownId }))).to.equal('INVALID_ARGUMENT');
      expect(await codeOf(call(fx.nodeClient, 'NodeGetVolumeStats', { volume_id: unknownId, volume_path: 'some/path' }))).to.equal(
        'NOT_FOUND',
      );
    });

    it('NodeExpandVolume: INVALID_ARGUMENT without volume ID or path, NOT_FOUND for an unknown volume at "some/path"', async () => {
      expect(
        await codeOf(call(fx.nodeClient, 'NodeExpandVolume', { volume_path: join(fx.dir, 'pods', 'sanity'), volume_capability: mountCap })),
      ).to.equal('INVALID_ARGUMENT');
      expect(await codeOf(call(fx.nodeClient, 'NodeExpandVolume', { volume_id: volumeId, volume_capability: mountCap }))).to.equal(
        'INVALID_ARGUMENT',
      );
      expect(await codeOf(call(fx.nodeClient, 'NodeExpandVolume', { volume_id: unknownId, volume_path: 'some/path' }))).to.equal(
        'NOT_FOUND',
      );
    });

    it('stages and publishes; NOT_FOUND for stats at "some/path"; stats and expansion at the target; unpublish removes the target', async () => {
      const [staging, target] = [stagingPath(), targetPath()];
      await call(fx.nodeClient, 'NodeStageVolume', { volume_id: volumeId, staging_target_path: staging, volume_capability: mountCap });
      await call(fx.nodeClient, 'NodePublishVolume', {
        volume_id: volumeId,
        staging_target_path: staging,
        target_path: target,
        volume_capability: mountCap,
      });
      try {
        expect(await codeOf(call(fx.nodeClient, 'NodeGetVolumeStats', { volume_id: volumeId, volume_path: 'some/path' }))).to.equal(
          'NOT_FOUND',
        );
        expect((await call(fx.nodeClient, 'NodeGetVolumeStats', { volume_id: volumeId, volume_path: target })).usage).to.not.have.length(0);
        await call(fx.controllerClient, 'ControllerExpandVolume', {
          volume_id: volumeId,
          capacity_range: { required_bytes: String(24 * MiB) },
        });
        await call(fx.nodeClient, 'NodeExpandVolume', {
          volume_id: volumeId,
          volume_path: target,
          capacity_range: { required_bytes: String(24 * MiB) },
        });
      } finally {
        await call(fx.nodeClient, 'NodeUnpublishVolume', { volume_id: volumeId, target_path: target });
        await call(fx.nodeClient, 'NodeUnstageVolume', { volume_id: volumeId, staging_target_path: staging });
      }
      expect(await stat(target).then(() => 'exists', ifNotFound('gone')), 'the SP must delete what it created at the target path').to.equal(
        'gone',
      );
      expect(await mountAt(staging)).to.equal(undefined);
    });
  });

  describe('DeleteVolume', () => {
    it('deletes (repeatably), frees the space, and succeeds for unknown IDs', async () => {
      const v = (await create('pvc-delete-1', 128 * MiB)).volume;
      const pv = (await fx.poolVolumes()).find((x) => x.metadata.name === v.volume_id)!;
      const ask = async () =>
        BigInt(
          (
            await call(fx.controllerClient, 'GetCapacity', {
              parameters: params(),
              accessible_topology: { segments: { [TOPOLOGY_KEY]: fx.node } },
            })
          ).available_capacity,
        );
      const before = await ask();
      for (let i = 0; i < 2; i++) await call(fx.controllerClient, 'DeleteVolume', { volume_id: v.volume_id });
      expect(await ask()).to.equal(before + BigInt(128 * MiB));
      // Any failure to stat reads as absent, which is what the assertion checks.
      expect(
        await stat(pv.status!.path!).then(
          () => 'exists',
          () => 'gone',
        ),
      ).to.equal('gone');
      await call(fx.controllerClient, 'DeleteVolume', { volume_id: 'pvol-does-not-exist' });
      await call(fx.controllerClient, 'DeleteVolume', { volume_id: 'Not A Valid Name' });
      expect(await codeOf(call(fx.controllerClient, 'DeleteVolume', {}))).to.equal('INVALID_ARGUMENT');
    });
  });

  describe('metrics', () => {
    it('count every answered call by method and status code', async () => {
      const text = await fx.metrics.metrics();
      expect(text).to.match(/stowage_csi_requests_total\{method="CreateVolume",code="OK"\} [1-9]/);
      expect(text).to.match(/stowage_csi_requests_total\{method="CreateVolume",code="AlreadyExists"\} 3/);
      expect(text).to.match(/stowage_csi_requests_total\{method="DeleteVolume",code="InvalidArgument"\} 1/);
      expect(text).to.match(/stowage_csi_request_duration_seconds_count\{method="GetPluginInfo"\} [1-9]/);
    });
  });
});

/**
 * CSI snapshots, restores and clones over the Unix socket, against the real control plane, the real
 * node daemon parts and real btrfs on loop devices. The first three groups are the snapshot,
 * list-snapshot and content-source specs of kubernetes-csi csi-test (pkg/sanity/controller.go),
 * one `it` per upstream spec, named after it; the rest is what that suite does not cover: the data
 * itself, sizes, topology, capacity, nodatacow, Block volumes, and a node daemon restarted in the
 * middle of CreateSnapshot.
 */
import { readFile, readdir, rename, writeFile } from 'node:fs/promises';
import { expect } from 'chai';
import { TOPOLOGY_KEY } from '../../src/csi/identity.js';
import { run } from '../../src/host/command.js';
import { snapshotIdFor } from '../../src/csi/snapshot-service.js';
import * as snapshots from '../../src/node/engine/snapshots.js';
import { POOL_SNAPSHOTS } from '../../src/crds/resource-types.js';
import type { PoolSnapshot } from '../../src/crds/poolsnapshot.js';
import { waitFor } from '../support/cluster.js';
import { DynamicPoolFixture, call, codeOf } from './fixture.js';

const MiB = 1024 ** 2;
const mountCap = { mount: { fs_type: '', mount_flags: [] }, access_mode: { mode: 'SINGLE_NODE_WRITER' } };
const blockCap = { block: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } };
/** csi-test's MaxNameLength. */
const MAX_NAME_LENGTH = 128;

describe('CSI snapshots, restores and clones (Unix socket, real btrfs on loop devices)', function () {
  this.timeout(180_000);
  const fx = new DynamicPoolFixture();
  let seq = 0;
  const unique = (prefix: string): string => `${prefix}-${process.pid}-${++seq}`;
  const volumeReq = (name: string, bytes = 16 * MiB, cap: unknown = mountCap, extra: Record<string, unknown> = {}) => ({
    name,
    capacity_range: { required_bytes: String(bytes), limit_bytes: String(bytes) },
    volume_capabilities: [cap],
    parameters: { pool: fx.pool },
    ...extra,
  });
  const createVolume = async (name: string, bytes = 16 * MiB, cap: unknown = mountCap, extra: Record<string, unknown> = {}): Promise<any> =>
    (await call(fx.controllerClient, 'CreateVolume', volumeReq(name, bytes, cap, extra))).volume;
  const createSnapshot = async (name: string, source: string): Promise<any> =>
    (await call(fx.controllerClient, 'CreateSnapshot', { name, source_volume_id: source })).snapshot;
  const listSnapshots = (req: Record<string, unknown> = {}): Promise<any> => call(fx.controllerClient, 'ListSnapshots', req);
  /** Where a volume's data lives on the node (the node daemon reports it). */
  const pathOf = async (volumeId: string): Promise<string> =>
    (await fx.poolVolumes()).find((v) => v.metadata.name === volumeId)!.status!.path!;
  const fromSnapshot = (id: string) => ({ volume_content_source: { snapshot: { snapshot_id: id } } });
  const fromVolume = (id: string) => ({ volume_content_source: { volume: { volume_id: id } } });
  /** A snapshot has what csi-test's verifySnapshotInfo asks: an ID, the source, a creation time. */
  const verifySnapshotInfo = (s: any): void => {
    expect(s.snapshot_id).to.be.a('string').and.not.equal('');
    expect(s.source_volume_id).to.be.a('string').and.not.equal('');
    expect(Number(s.creation_time?.seconds ?? 0)).to.be.above(0);
  };

  before(async () => {
    await fx.start({ diskSizes: [2048 * MiB], reservePercent: 0 });
  });
  after(async () => {
    await fx.cleanup();
  });

  it('advertises CREATE_DELETE_SNAPSHOT, LIST_SNAPSHOTS and CLONE_VOLUME', async () => {
    const caps = (await call(fx.controllerClient, 'ControllerGetCapabilities', {})).capabilities.map((c: any) => c.rpc.type);
    expect(caps).to.include.members(['CREATE_DELETE_SNAPSHOT', 'LIST_SNAPSHOTS', 'CLONE_VOLUME']);
  });

  describe('csi-test: CreateVolume with a content source', () => {
    it('should create volume from an existing source snapshot', async () => {
      const vol1 = await createVolume(unique('sanity-controller-source-vol'));
      const snap = await createSnapshot(unique('sanity-controller-snap-from-vol'), vol1.volume_id);
      expect(snap.ready_to_use).to.equal(true);
      const vol2 = await createVolume(unique('sanity-controller-vol-from-snap'), 16 * MiB, mountCap, fromSnapshot(snap.snapshot_id));
      expect(vol2.content_source).to.deep.equal({ snapshot: { snapshot_id: snap.snapshot_id }, type: 'snapshot' });
    });

    it('should fail when the volume source snapshot is not found', async () => {
      expect(
        await codeOf(createVolume(unique('sanity-controller-vol-from-snap'), 16 * MiB, mountCap, fromSnapshot('non-existing-snapshot-id'))),
      ).to.equal('NOT_FOUND');
    });

    it('should create volume from an existing source volume', async () => {
      const vol1 = await createVolume(unique('sanity-controller-source-vol'));
      const vol2 = await createVolume(unique('sanity-controller-vol-from-vol'), 16 * MiB, mountCap, fromVolume(vol1.volume_id));
      expect(vol2.content_source).to.deep.equal({ volume: { volume_id: vol1.volume_id }, type: 'volume' });
    });

    it('should fail when the volume source volume is not found', async () => {
      expect(
        await codeOf(
          createVolume(
            unique('sanity-controller-vol-from-snap'),
            16 * MiB,
            mountCap,
            fromVolume('pvol-0000000000000000000000000000000000000000'),
          ),
        ),
      ).to.equal('NOT_FOUND');
    });
  });

  describe('csi-test: ListSnapshots', () => {
    it('should return appropriate values (no optional values added)', async () => {
      for (const entry of (await listSnapshots()).entries) verifySnapshotInfo(entry.snapshot);
    });

    /** csi-test's MustCreateSnapshotFromVolumeRequest: a new volume, then a snapshot of it. */
    const snapshotOfNewVolume = async (volume: string, snapshot: string): Promise<any> =>
      createSnapshot(unique(snapshot), (await createVolume(unique(volume))).volume_id);

    it('should return snapshots that match the specified snapshot id', async () => {
      await snapshotOfNewVolume('listSnapshots-volume-unrelated-s-1', 'listSnapshots-snapshot-unrelated-s-1');
      const target = await snapshotOfNewVolume('listSnapshots-volume-target-s', 'listSnapshots-snapshot-target-s');
      await snapshotOfNewVolume('listSnapshots-volume-unrelated-s-2', 'listSnapshots-snapshot-unrelated-s-2');
      const { entries } = await listSnapshots({ snapshot_id: target.snapshot_id });
      expect(entries).to.have.length(1);
      verifySnapshotInfo(entries[0].snapshot);
      expect(entries[0].snapshot.snapshot_id).to.equal(target.snapshot_id);
    });

    it('should return empty when the specified snapshot id does not exist', async () => {
      expect((await listSnapshots({ snapshot_id: 'none-exist-id' })).entries).to.deep.equal([]);
    });

    it('should return snapshots that match the specified source volume id', async () => {
      await snapshotOfNewVolume('listSnapshots-volume-unrelated-v-1', 'listSnapshots-snapshot-unrelated-v-1');
      const target = await snapshotOfNewVolume('listSnapshots-volume-target-v', 'listSnapshots-snapshot-target-v');
      await snapshotOfNewVolume('listSnapshots-volume-unrelated-v-2', 'listSnapshots-snapshot-unrelated-v-2');
      const { entries } = await listSnapshots({ source_volume_id: target.source_volume_id });
      expect(entries).to.have.length(1);
      verifySnapshotInfo(entries[0].snapshot);
      expect(entries[0].snapshot.source_volume_id).to.equal(target.source_volume_id);
    });

    it('should return empty when the specified source volume id does not exist', async () => {
      expect((await listSnapshots({ source_volume_id: 'pvol-0000000000000000000000000000000000000000' })).entries).to.deep.equal([]);
    });

    it('check the presence of new snapshots in the snapshot list', async () => {
      const total: number = (await listSnapshots()).entries.length;
      const snap = await snapshotOfNewVolume('listSnapshots-volume-3', 'listSnapshots-snapshot-3');
      verifySnapshotInfo(snap);
      expect((await listSnapshots()).entries).to.have.length(total + 1);
      await call(fx.controllerClient, 'DeleteSnapshot', { snapshot_id: snap.snapshot_id });
      expect((await listSnapshots()).entries).to.have.length(total);
    });

    it('should return next token when a limited number of entries are requested', async () => {
      const minSnapshotCount = 5;
      const maxEntries = 2;
      let total: number = (await listSnapshots()).entries.length;
      for (let i = total + 1; i <= minSnapshotCount; i++) {
        verifySnapshotInfo(await snapshotOfNewVolume(`volume${i}`, `snapshot${i}`));
        total++;
      }
      const page = await listSnapshots({ max_entries: maxEntries });
      expect(page.entries).to.have.length(maxEntries);
      expect(page.next_token).to.not.equal('');
      const rest = await listSnapshots({ starting_token: page.next_token });
      expect(rest.entries).to.have.length(total - maxEntries);
      const ids = [...page.entries, ...rest.entries].map((e: any) => e.snapshot.snapshot_id);
      expect(new Set(ids).size, 'no snapshot twice across pages').to.equal(total);
      // The spec: an invalid starting_token is ABORTED.
      expect(await codeOf(listSnapshots({ starting_token: 'invalid-token' }))).to.equal('ABORTED');
    });
  });

  describe('csi-test: DeleteSnapshot', () => {
    it('should fail when no snapshot id is provided', async () => {
      expect(await codeOf(call(fx.controllerClient, 'DeleteSnapshot', {}))).to.equal('INVALID_ARGUMENT');
    });

    it('should succeed when an invalid snapshot id is used', async () => {
      await call(fx.controllerClient, 'DeleteSnapshot', { snapshot_id: 'reallyfakesnapshotid' });
      await call(fx.controllerClient, 'DeleteSnapshot', { snapshot_id: 'Not/A Name' });
    });

    it('should return appropriate values (no optional values added)', async () => {
      const volume = await createVolume(unique('DeleteSnapshot-volume-1'));
      const snap = await createSnapshot(unique('DeleteSnapshot-snapshot-1'), volume.volume_id);
      expect(await call(fx.controllerClient, 'DeleteSnapshot', { snapshot_id: snap.snapshot_id })).to.deep.equal({});
      // Deleting returns once the data is gone: the object (and its finalizer) too, and again is a no-op.
      expect((await fx.poolSnapshots()).map((p) => p.metadata.name)).to.not.include(snap.snapshot_id);
      await call(fx.controllerClient, 'DeleteSnapshot', { snapshot_id: snap.snapshot_id });
    });
  });

  describe('csi-test: CreateSnapshot', () => {
    it('should fail when no name is provided', async () => {
      expect(await codeOf(call(fx.controllerClient, 'CreateSnapshot', { source_volume_id: 'testId' }))).to.equal('INVALID_ARGUMENT');
    });

    it('should fail when no source volume id is provided', async () => {
      expect(await codeOf(call(fx.controllerClient, 'CreateSnapshot', { name: 'name' }))).to.equal('INVALID_ARGUMENT');
    });

    it('should succeed when requesting to create a snapshot with already existing name and same source volume ID', async () => {
      const volume = await createVolume(unique('CreateSnapshot-volume-1'));
      const name = unique('CreateSnapshot-snapshot-1');
      const first = await createSnapshot(name, volume.volume_id);
      const again = await createSnapshot(name, volume.volume_id);
      expect(again).to.deep.equal(first);
      expect(first).to.deep.include({
        snapshot_id: snapshotIdFor(name),
        source_volume_id: volume.volume_id,
        ready_to_use: true,
        size_bytes: String(16 * MiB),
      });
    });

    it('should fail when requesting to create a snapshot with already existing name and different source volume ID', async () => {
      const name = unique('CreateSnapshot-snapshot-2');
      await createSnapshot(name, (await createVolume(unique('CreateSnapshot-volume-2'))).volume_id);
      const volume2 = await createVolume(unique('CreateSnapshot-volume-3'));
      expect(await codeOf(createSnapshot(name, volume2.volume_id))).to.equal('ALREADY_EXISTS');
    });

    it('should succeed when creating snapshot with maximum-length name', async () => {
      const volume = await createVolume(unique('CreateSnapshot-volume-maxlen-name'));
      const name = unique('CreateSnapshot-snapshot-maxlen').padEnd(MAX_NAME_LENGTH, 'x');
      const first = await createSnapshot(name, volume.volume_id);
      expect((await createSnapshot(name, volume.volume_id)).snapshot_id).to.equal(first.snapshot_id);
    });

    it('answers NOT_FOUND for a source volume that does not exist (beyond csi-test)', async () => {
      expect(await codeOf(createSnapshot(unique('snap-of-nothing'), 'pvol-0000000000000000000000000000000000000000'))).to.equal(
        'NOT_FOUND',
      );
    });
  });

  describe('beyond csi-test', () => {
    it('a restore reads the content at snapshot time, a clone the content now; neither shares writes with its source', async () => {
      const source = await createVolume(unique('data-src'));
      const srcPath = await pathOf(source.volume_id);
      await writeFile(`${srcPath}/file`, 'original');
      const snap = await createSnapshot(unique('data-snap'), source.volume_id);
      await writeFile(`${srcPath}/file`, 'overwritten');
      const restored = await createVolume(unique('data-restore'), 16 * MiB, mountCap, fromSnapshot(snap.snapshot_id));
      const clone = await createVolume(unique('data-clone'), 16 * MiB, mountCap, fromVolume(source.volume_id));
      const [restorePath, clonePath] = [await pathOf(restored.volume_id), await pathOf(clone.volume_id)];
      expect(await readFile(`${restorePath}/file`, 'utf8')).to.equal('original');
      expect(await readFile(`${clonePath}/file`, 'utf8')).to.equal('overwritten');
      await writeFile(`${restorePath}/file`, 'restore wrote');
      await writeFile(`${clonePath}/file`, 'clone wrote');
      await writeFile(`${srcPath}/file`, 'source wrote');
      expect(await readFile(`${restorePath}/file`, 'utf8')).to.equal('restore wrote');
      expect(await readFile(`${clonePath}/file`, 'utf8')).to.equal('clone wrote');
      // A second restore from the same snapshot still reads the original.
      const again = await createVolume(unique('data-restore-2'), 16 * MiB, mountCap, fromSnapshot(snap.snapshot_id));
      expect(await readFile(`${await pathOf(again.volume_id)}/file`, 'utf8')).to.equal('original');
    });

    it('sizes a restore at least as the source, grows it when asked, refuses a limit below the source, and is idempotent by name', async () => {
      const source = await createVolume(unique('size-src'), 32 * MiB);
      const snap = await createSnapshot(unique('size-snap'), source.volume_id);
      expect(snap.size_bytes).to.equal(String(32 * MiB));
      const noSize = (
        await call(fx.controllerClient, 'CreateVolume', {
          name: unique('size-none'),
          volume_capabilities: [mountCap],
          parameters: { pool: fx.pool },
          ...fromSnapshot(snap.snapshot_id),
        })
      ).volume;
      expect(noSize.capacity_bytes).to.equal(String(32 * MiB));
      const small = (
        await call(fx.controllerClient, 'CreateVolume', {
          name: unique('size-small'),
          capacity_range: { required_bytes: String(8 * MiB) },
          volume_capabilities: [mountCap],
          parameters: { pool: fx.pool },
          ...fromSnapshot(snap.snapshot_id),
        })
      ).volume;
      expect(small.capacity_bytes, 'never smaller than the source').to.equal(String(32 * MiB));
      const name = unique('size-big');
      const big = await createVolume(name, 64 * MiB, mountCap, fromSnapshot(snap.snapshot_id));
      expect(big.capacity_bytes).to.equal(String(64 * MiB));
      const pv = (await fx.poolVolumes()).find((v) => v.metadata.name === big.volume_id)!;
      expect(pv.status?.capacity).to.equal(String(64 * MiB));
      expect((await createVolume(name, 64 * MiB, mountCap, fromSnapshot(snap.snapshot_id))).volume_id).to.equal(big.volume_id);
      expect(
        await codeOf(createVolume(name, 64 * MiB, mountCap, fromVolume(source.volume_id))),
        'the same name from another source',
      ).to.equal('ALREADY_EXISTS');
      expect(await codeOf(createVolume(name, 64 * MiB)), 'the same name without a source').to.equal('ALREADY_EXISTS');
      expect(await codeOf(createVolume(unique('size-limit'), 16 * MiB, mountCap, fromSnapshot(snap.snapshot_id)))).to.equal('OUT_OF_RANGE');
    });

    it("places restores and clones on the source's node, and answers RESOURCE_EXHAUSTED for a topology that excludes it", async () => {
      const source = await createVolume(unique('topo-src'));
      const snap = await createSnapshot(unique('topo-snap'), source.volume_id);
      const here = { segments: { [TOPOLOGY_KEY]: fx.node } };
      const elsewhere = { segments: { [TOPOLOGY_KEY]: 'some-other-node' } };
      const restored = await createVolume(unique('topo-restore'), 16 * MiB, mountCap, {
        ...fromSnapshot(snap.snapshot_id),
        accessibility_requirements: { requisite: [elsewhere, here], preferred: [elsewhere] },
      });
      expect(restored.accessible_topology).to.deep.equal([here]);
      for (const source of [fromSnapshot(snap.snapshot_id), fromVolume(restored.volume_id)]) {
        expect(
          await codeOf(
            createVolume(unique('topo-excluded'), 16 * MiB, mountCap, {
              ...source,
              accessibility_requirements: { requisite: [elsewhere] },
            }),
          ),
        ).to.equal('RESOURCE_EXHAUSTED');
      }
    });

    it('refuses a source of another mode or pool with INVALID_ARGUMENT, naming the source', async () => {
      const source = await createVolume(unique('mode-src'));
      const snap = await createSnapshot(unique('mode-snap'), source.volume_id);
      let message = '';
      await createVolume(unique('mode-block'), 16 * MiB, blockCap, fromSnapshot(snap.snapshot_id)).catch((err: Error) => {
        message = err.message;
      });
      expect(message)
        .to.match(/INVALID_ARGUMENT/)
        .and.to.include(`snapshot ${snap.snapshot_id} is a Filesystem volume`);
      expect(
        await codeOf(
          call(fx.controllerClient, 'CreateVolume', {
            ...volumeReq(unique('pool-x'), 16 * MiB),
            parameters: { pool: 'another-pool' },
            ...fromVolume(source.volume_id),
          }),
        ),
      ).to.equal('INVALID_ARGUMENT');
    });

    it('keeps a snapshot restorable after its volume is deleted', async () => {
      const source = await createVolume(unique('gone-src'));
      await writeFile(`${await pathOf(source.volume_id)}/file`, 'kept');
      const snap = await createSnapshot(unique('gone-snap'), source.volume_id);
      await call(fx.controllerClient, 'DeleteVolume', { volume_id: source.volume_id });
      expect((await listSnapshots({ snapshot_id: snap.snapshot_id })).entries).to.have.length(1);
      const restored = await createVolume(unique('gone-restore'), 16 * MiB, mountCap, fromSnapshot(snap.snapshot_id));
      expect(await readFile(`${await pathOf(restored.volume_id)}/file`, 'utf8')).to.equal('kept');
    });

    it('nodatacow volumes: snapshots and restores keep their files without copy-on-write', async () => {
      const params = { parameters: { pool: fx.pool, nodatacow: 'true' } };
      const source = await createVolume(unique('nocow-src'), 16 * MiB, mountCap, params);
      const srcPath = await pathOf(source.volume_id);
      await writeFile(`${srcPath}/db`, 'rows');
      const snap = await createSnapshot(unique('nocow-snap'), source.volume_id);
      const restored = await createVolume(unique('nocow-restore'), 16 * MiB, mountCap, { ...params, ...fromSnapshot(snap.snapshot_id) });
      const restorePath = await pathOf(restored.volume_id);
      expect(await readFile(`${restorePath}/db`, 'utf8')).to.equal('rows');
      expect((await run('lsattr', [`${restorePath}/db`])).split(' ')[0]).to.contain('C');
    });

    it('Block volumes: a snapshot holds the blocks it was taken with; restores and clones get their own copy', async () => {
      const source = await createVolume(unique('blk-src'), 8 * MiB, blockCap);
      const srcPath = await pathOf(source.volume_id);
      await run('dd', ['if=/dev/urandom', `of=${srcPath}`, 'bs=1M', 'count=8', 'conv=notrunc,fsync', 'status=none']);
      const original = (await run('sha256sum', [srcPath])).split(' ')[0];
      const snap = await createSnapshot(unique('blk-snap'), source.volume_id);
      expect((await fx.poolSnapshots()).find((p) => p.metadata.name === snap.snapshot_id)?.status?.method).to.equal('reflink');
      await run('dd', ['if=/dev/zero', `of=${srcPath}`, 'bs=1M', 'count=8', 'conv=notrunc,fsync', 'status=none']);
      const restored = await createVolume(unique('blk-restore'), 16 * MiB, blockCap, {
        capacity_range: { required_bytes: String(16 * MiB) },
        ...fromSnapshot(snap.snapshot_id),
      });
      const restorePath = await pathOf(restored.volume_id);
      expect((await run('sh', ['-c', `head -c ${8 * MiB} ${restorePath} | sha256sum`])).split(' ')[0]).to.equal(original);
      expect((await run('stat', ['-c', '%s', restorePath])).trim()).to.equal(String(16 * MiB));
      const clone = await createVolume(unique('blk-clone'), 8 * MiB, blockCap, fromVolume(source.volume_id));
      const clonePath = await pathOf(clone.volume_id);
      expect(await run('cmp', [srcPath, clonePath]).then(() => 'same')).to.equal('same');
      await run('dd', ['if=/dev/urandom', `of=${clonePath}`, 'bs=1M', 'count=1', 'conv=notrunc,fsync', 'status=none']);
      expect(
        (await run('sh', ['-c', `head -c ${MiB} ${srcPath} | tr -d '\\0' | wc -c`])).trim(),
        "the clone's write stays in the clone",
      ).to.equal('0');
    });

    it('capacity: the bytes a snapshot holds alone reduce GetCapacity, a restore that would overcommit is RESOURCE_EXHAUSTED, deleting the snapshot frees them', async () => {
      const capacity = async (): Promise<bigint> =>
        BigInt(
          (await call(fx.controllerClient, 'GetCapacity', { volume_capabilities: [mountCap], parameters: { pool: fx.pool } }))
            .available_capacity,
        );
      const source = await createVolume(unique('cap-src'), 256 * MiB);
      const srcPath = await pathOf(source.volume_id);
      await run('dd', ['if=/dev/urandom', `of=${srcPath}/blob`, 'bs=1M', 'count=96', 'conv=fsync', 'status=none']);
      const snap = await createSnapshot(unique('cap-snap'), source.volume_id);
      const before = await capacity();
      // The volume replaces its data: the old 96 MiB are the snapshot's alone now.
      await run('dd', ['if=/dev/urandom', `of=${srcPath}/blob.new`, 'bs=1M', 'count=96', 'conv=fsync', 'status=none']);
      await rename(`${srcPath}/blob.new`, `${srcPath}/blob`);
      await run('btrfs', ['filesystem', 'sync', srcPath]);
      const held = await waitFor('the snapshot to report the bytes it holds alone', async () => {
        const ps = (await fx.poolSnapshots()).find((p) => p.metadata.name === snap.snapshot_id);
        const bytes = BigInt(ps?.status?.exclusive ?? '0');
        return bytes > 90n * BigInt(MiB) ? bytes : undefined;
      });
      const after = await waitFor('GetCapacity to count them', async () => {
        const c = await capacity();
        return c < before ? c : undefined;
      });
      expect(before - after).to.equal(held);
      // A restore that fitted before the snapshot held data does not fit any more.
      const tooBig = after + BigInt(MiB);
      expect(tooBig <= before && tooBig > 256n * BigInt(MiB)).to.equal(true);
      expect(
        await codeOf(
          call(fx.controllerClient, 'CreateVolume', {
            name: unique('cap-restore'),
            capacity_range: { required_bytes: tooBig.toString() },
            volume_capabilities: [mountCap],
            parameters: { pool: fx.pool },
            ...fromSnapshot(snap.snapshot_id),
          }),
        ),
      ).to.equal('RESOURCE_EXHAUSTED');
      await call(fx.controllerClient, 'DeleteSnapshot', { snapshot_id: snap.snapshot_id });
      expect(await capacity()).to.equal(before);
    });

    it('a node daemon restarted in the middle of CreateSnapshot converges: one snapshot, no orphan subvolume; one deleted while it was down leaves nothing', async () => {
      const source = await createVolume(unique('restart-src'));
      await writeFile(`${await pathOf(source.volume_id)}/file`, 'before the crash');
      const mnt = fx.engine.mountPointOf(fx.pool);
      // A directory that is not there (yet, or any more) holds nothing, which is what this reads.
      const listDir = async (): Promise<string[]> => (await readdir(`${mnt}/snapshots`).catch(() => [] as string[])).sort();
      const before = await listDir();

      // The daemon is down; CreateSnapshot records the snapshot and runs out of time waiting.
      await fx.stopNodeDaemon();
      const name = unique('restart-snap');
      expect(await codeOf(call(fx.controllerClient, 'CreateSnapshot', { name, source_volume_id: source.volume_id }, 2_000))).to.equal(
        'DEADLINE_EXCEEDED',
      );
      const id = snapshotIdFor(name);
      // The daemon had taken the subvolume snapshot when it was killed, before writing any status.
      await snapshots.ensureSnapshot(mnt, id, source.volume_id, 'Filesystem');
      const doomed = unique('restart-doomed');
      expect(
        await codeOf(call(fx.controllerClient, 'CreateSnapshot', { name: doomed, source_volume_id: source.volume_id }, 2_000)),
      ).to.equal('DEADLINE_EXCEEDED');
      await snapshots.ensureSnapshot(mnt, snapshotIdFor(doomed), source.volume_id, 'Filesystem');
      // ... and the orchestrator gave up on the second one while the daemon was still down.
      expect(await codeOf(call(fx.controllerClient, 'DeleteSnapshot', { snapshot_id: snapshotIdFor(doomed) }, 2_000))).to.equal(
        'DEADLINE_EXCEEDED',
      );

      fx.freshEngine();
      await fx.startNodeDaemon();
      const retried = (await call(fx.controllerClient, 'CreateSnapshot', { name, source_volume_id: source.volume_id })).snapshot;
      expect(retried).to.deep.include({ snapshot_id: id, ready_to_use: true });
      await waitFor(
        'the deleted snapshot to be gone',
        async () => !(await fx.poolSnapshots()).some((p) => p.metadata.name === snapshotIdFor(doomed)) || undefined,
      );
      expect(await listDir()).to.deep.equal([...before, id].sort());
      const ps = await fx.client.get<PoolSnapshot>(POOL_SNAPSHOTS, id);
      expect(ps.status?.phase).to.equal('Ready');
      const restored = await createVolume(unique('restart-restore'), 16 * MiB, mountCap, fromSnapshot(id));
      expect(await readFile(`${await pathOf(restored.volume_id)}/file`, 'utf8')).to.equal('before the crash');
    });
  });
});

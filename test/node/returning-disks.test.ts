/**
 * Issue 25, item 6: a disk whose NodeDisk was deleted (the dead-disk runbook,
 * docs/runbooks/StowageDiskUnhealthy.md) and that comes back — under another kernel name — is never
 * offered with the previous tenant's data. The real operator and the real node agent as child
 * processes, the real control plane, loop devices over files this test made.
 *
 * Two disks, two Local pools on one node, chosen by a label the administrator puts on NodeDisks:
 * - B, a raw Block volume: the tenant writes random bytes at offsets 0, 8 MiB and 100 MiB; the disk
 *   is pulled (detached: a raw device nothing mounts vanishes at once, its bytes stay in its file).
 * - F, an ext4 volume: the tenant writes files; the disk dies under its mounted filesystem
 *   (test/faults/pull-disk.ts) after its file was copied aside — the copy is the disk as it is when
 *   it is reseated later (pullDisk truncates the file, which would erase what this test is about).
 * The runbook then runs: delete the PVC, (F: unmount), delete the PV, delete the NodeDisk. Both disks
 * come back and the administrator puts both into the Block pool, whose tenant reads the raw device —
 * the strongest read there is. Before the fix both were offered with the old bytes readable (B
 * looks blank; F's Stowage filesystem was erased with wipefs, its data blocks left in place).
 */
import { randomBytes, createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, open, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import type { KubeClient } from '../../src/kube/client.js';
import { NAMESPACES, NODES, PERSISTENT_VOLUMES, PERSISTENT_VOLUME_CLAIMS } from '../../src/kube/resources.js';
import type { PersistentVolume } from '../../src/kube/types.js';
import { installCrds } from '../../src/crds/install.js';
import { NODE_DISKS, STORAGE_POOLS } from '../../src/crds/resource-types.js';
import type { NodeDisk } from '../../src/crds/nodedisk.js';
import { Informer } from '../../src/runtime/informer.js';
import { run } from '../../src/host/command.js';
import { IDENTITY_ANNOTATION } from '../../src/node/agent/status.js';
import { RECORDS_DIR } from '../../src/node/agent/handout-records.js';
import { registerReadyNode } from '../cluster/nodes.js';
import { adminClient, createNamespace, deletePoolForcibly, uniqueName, waitFor } from '../support/cluster.js';
import { LoopDevices, type LoopDevice } from '../support/loop-devices.js';
import { OperatorProcess } from '../support/operator-process.js';
import type { Pvc } from '../support/pool-world.js';
import { pullDisk } from '../faults/pull-disk.js';
import { AgentProcess, condition, nodeDisksOf } from './support.js';

const MiB = 1024 ** 2;
const DISK_BYTES = 160 * MiB;
const OFFSETS = [0, 8 * MiB, 100 * MiB];
const CHUNK = 64 * 1024;
/** ext4 on a disk this small uses 1 KiB blocks: file data is 1 KiB-aligned on the device. */
const BLOCK = 1024;
const CONVERGE_MS = 90_000;
const TIER = 'test.stowage.dev/tier';
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('returning disks: a disk back after its NodeDisk was deleted is never offered with old data (real operator and agent, loop devices)', function () {
  this.timeout(600_000);
  let admin: KubeClient;
  let kubeconfig: string;
  let namespace: string;
  let work: string;
  let operator: OperatorProcess | undefined;
  let agent: AgentProcess | undefined;
  let pvWatch: Informer<PersistentVolume> | undefined;
  const loops = new LoopDevices();
  const fillers: LoopDevice[] = [];
  let b: LoopDevice;
  let f: LoopDevice;
  const prefix = uniqueName('return');
  const node = `${prefix}-node`;
  const fsPool = `${prefix}-fs`;
  const blockPool = `${prefix}-blk`;
  const root = (): string => path.join(work, 'disks');
  /** Every PV the API server showed for a disk (by NodeDisk name), from a watch that runs the whole test. */
  const pvsSeen = new Map<string, Set<string>>();

  const diskOf = async (file: string): Promise<NodeDisk | undefined> =>
    (await nodeDisksOf(admin, node)).find((d) => d.metadata.annotations?.[IDENTITY_ANNOTATION] === `loop:${file}`);
  const pvsOf = async (disk: string): Promise<PersistentVolume[]> =>
    (await admin.list<PersistentVolume>(PERSISTENT_VOLUMES, { labelSelector: `stowage.dev/disk=${disk}` })).items;
  const label = (disk: string, tier: string): Promise<unknown> =>
    admin.mergePatch(NODE_DISKS, disk, { metadata: { labels: { [TIER]: tier } } });

  const pool = (name: string, tier: string, local: Record<string, string>): Promise<unknown> =>
    admin.apply(
      STORAGE_POOLS,
      {
        apiVersion: 'stowage.dev/v1alpha1',
        kind: 'StoragePool',
        metadata: { name },
        spec: { mode: 'Local', disks: { selector: { matchLabels: { 'stowage.dev/node': node, [TIER]: tier } } }, local },
      },
      { fieldManager: 'kubectl' },
    );

  /** Binds a new claim to the disk's Available PV; returns the PV. */
  const bind = async (claim: string, disk: string, volumeMode: 'Filesystem' | 'Block', storageClass: string): Promise<PersistentVolume> => {
    const pv = await waitFor(
      `an Available PV on ${disk}`,
      async () => (await pvsOf(disk)).find((p) => p.status?.phase === 'Available'),
      CONVERGE_MS,
    );
    await admin.create(PERSISTENT_VOLUME_CLAIMS, {
      metadata: { name: claim, namespace },
      spec: {
        accessModes: ['ReadWriteOnce'],
        volumeMode,
        storageClassName: storageClass,
        volumeName: pv.metadata.name,
        resources: { requests: { storage: '10Mi' } },
      },
    });
    await waitFor(
      `claim ${claim} bound`,
      async () => (await admin.get<Pvc>(PERSISTENT_VOLUME_CLAIMS, claim, namespace)).status?.phase === 'Bound',
      60_000,
    );
    return pv;
  };

  /** The runbook's steps 1 and 3 once the disk is gone: let go of the claim, delete the PV and the NodeDisk. */
  const runbook = async (claim: string, disk: string, pv: PersistentVolume): Promise<void> => {
    await admin.delete(PERSISTENT_VOLUME_CLAIMS, claim, { namespace });
    await waitFor(
      `${pv.metadata.name} no longer bound`,
      async () => (await admin.getIfExists<PersistentVolume>(PERSISTENT_VOLUMES, pv.metadata.name!))?.status?.phase !== 'Bound',
      60_000,
    );
    await admin.delete(PERSISTENT_VOLUMES, pv.metadata.name!);
    await admin.delete(NODE_DISKS, disk);
    await waitFor(`NodeDisk ${disk} gone`, async () => (await admin.getIfExists(NODE_DISKS, disk)) === undefined, 30_000);
  };

  /** Reattaches `file` under another kernel name than `old` (a filler takes the old one when it can). */
  const reseat = async (file: string, old: string): Promise<LoopDevice> => {
    // Best effort: when the old name is taken already, the disk cannot get it back anyway; should the
    // filler fail while the name is free, the expect below reports the disk back under its old name.
    const filler = await loops.attach(await loops.file(16 * MiB), old).catch(() => undefined);
    if (filler) fillers.push(filler);
    const back = await loops.attach(file);
    expect(back.device, 'the disk comes back under another kernel name').to.not.equal(old);
    return back;
  };

  /** The disk is back, held: not eligible (PreviouslyUsed), not claimed, no PV offered on it at any time since it returned. */
  const expectHeld = async (file: string, pvsBefore: number): Promise<NodeDisk> => {
    const held = await waitFor(
      'the returned disk held as PreviouslyUsed',
      async () => {
        const d = await diskOf(file);
        return condition(d, 'Eligible')?.reason === 'PreviouslyUsed' ? d : undefined;
      },
      CONVERGE_MS,
    );
    const name = held.metadata.name;
    await label(name, 'block'); // the administrator puts the disk into the Block pool
    const now = await admin.get<NodeDisk>(NODE_DISKS, name);
    expect(condition(now, 'Eligible')).to.deep.include({ status: 'False', reason: 'PreviouslyUsed' });
    expect(condition(now, 'Eligible')!.message).to.contain('erasePreviousData').and.contain('previous tenant');
    expect(condition(now, 'Prepared')).to.deep.include({ status: 'False', reason: 'PreviouslyUsed' });
    expect(now.spec.claim, 'no pool claimed the held disk').to.equal(undefined);
    expect(pvsSeen.get(name)?.size ?? 0, `no PV was ever offered on ${name} after it returned`).to.equal(pvsBefore);
    return now;
  };

  /** The administrator asks for the erase; the disk joins the Block pool; a new tenant binds its PV. Returns what that tenant reads. */
  const eraseAndRebind = async (name: string, claim: string): Promise<{ device: string; pv: PersistentVolume }> => {
    await admin.mergePatch(NODE_DISKS, name, { spec: { erasePreviousData: true } });
    const pv = await bind(claim, name, 'Block', blockPool);
    const prepared = await admin.get<NodeDisk>(NODE_DISKS, name);
    expect(prepared.spec.claim?.pool).to.equal(blockPool);
    return { device: pv.spec.local!.path, pv };
  };

  before(async () => {
    const { cp, client } = await adminClient();
    admin = client;
    kubeconfig = cp.kubeconfigPath;
    await installCrds(admin, 'stowage-tests');
    namespace = await createNamespace(admin, 'return');
    work = await mkdtemp(path.join(tmpdir(), 'stowage-return-'));
    await registerReadyNode(cp, node);
    b = await loops.create(DISK_BYTES);
    f = await loops.create(DISK_BYTES);
    pvWatch = new Informer<PersistentVolume>({
      client: admin,
      resource: PERSISTENT_VOLUMES,
      labelSelector: 'stowage.dev/disk',
      resyncMs: 0,
    });
    const note = (pv: PersistentVolume): void => {
      const disk = pv.metadata.labels?.['stowage.dev/disk'];
      if (disk) pvsSeen.set(disk, (pvsSeen.get(disk) ?? new Set()).add(pv.metadata.uid!));
    };
    pvWatch.addHandler({ added: note, updated: (_o, n) => note(n), deleted: () => undefined });
    pvWatch.start();
    await pvWatch.waitForSync(new AbortController().signal);
    operator = await OperatorProcess.start(kubeconfig);
    await mkdir(path.join(work, 'discovery', 'vol1'), { recursive: true });
    agent = AgentProcess.start(kubeconfig, node, [
      ...[b.file, f.file].flatMap((x) => ['--allow-device', x]),
      '--root',
      root(),
      '--discovery-dir',
      path.join(work, 'discovery'),
      '--discovery-interval',
      '1',
    ]);
    await pool(fsPool, 'fs', { volumeMode: 'Filesystem', fsType: 'ext4', cleanup: 'quick' });
    await pool(blockPool, 'block', { volumeMode: 'Block', cleanup: 'zero' });
    const db = await waitFor('disk B inventoried', () => diskOf(b.file), CONVERGE_MS);
    const df = await waitFor('disk F inventoried', () => diskOf(f.file), CONVERGE_MS);
    await label(db.metadata.name, 'block');
    await label(df.metadata.name, 'fs');
  });

  after(async () => {
    await pvWatch?.stop();
    await agent?.stop();
    await operator?.stop();
    if (admin) {
      for (const c of ['b1', 'b2', 'f1', 'f2', 'm1', 'm2'])
        await admin.delete(PERSISTENT_VOLUME_CLAIMS, c, { namespace }).catch(() => undefined);
      for (const p of [fsPool, blockPool]) await deletePoolForcibly(admin, p).catch(() => undefined);
      for (const d of await nodeDisksOf(admin, node).catch(() => [])) {
        for (const pv of await pvsOf(d.metadata.name).catch(() => [])) {
          await admin.mergePatch(PERSISTENT_VOLUMES, pv.metadata.name!, { metadata: { finalizers: null } }).catch(() => undefined);
          await admin.delete(PERSISTENT_VOLUMES, pv.metadata.name!).catch(() => undefined);
        }
        await admin.delete(NODE_DISKS, d.metadata.name).catch(() => undefined);
      }
      await admin.delete(NODES, node).catch(() => undefined);
      if (namespace) await admin.delete(NAMESPACES, namespace).catch(() => undefined);
    }
    if (work) {
      const targets = (await readFile('/proc/self/mounts', 'utf8'))
        .split('\n')
        .map((l) => l.split(' ')[1])
        .filter((t): t is string => !!t && t.startsWith(`${work}/`));
      for (const t of targets.sort((x, y) => y.length - x.length))
        await run('umount', [t]).catch(() => run('umount', ['--lazy', t]).catch(() => undefined));
    }
    await loops.cleanup();
    if (work) await rm(work, { recursive: true, force: true });
    admin?.close();
  });

  it("a raw Block volume's disk: held when it returns, and after the erase the next tenant reads zeros at 0, 8 MiB and 100 MiB", async () => {
    const name = (await diskOf(b.file))!.metadata.name;
    const pv = await bind('b1', name, 'Block', blockPool);
    const written = new Map<number, Buffer>();
    const dev = await open(pv.spec.local!.path, 'r+');
    try {
      for (const off of OFFSETS) {
        const data = randomBytes(CHUNK);
        await dev.write(data, 0, CHUNK, off);
        written.set(off, data);
      }
      await dev.sync();
    } finally {
      await dev.close();
    }
    // The disk is pulled: nothing mounts a raw volume, so the kernel drops it at once; its bytes stay in the file.
    const old = b.device;
    await loops.detach(old);
    await waitFor('B not present', async () => condition(await diskOf(b.file), 'Present')?.status === 'False', CONVERGE_MS);
    await runbook('b1', name, pv);
    const before = pvsSeen.get(name)?.size ?? 0;
    b = await reseat(b.file, old);
    const held = await expectHeld(b.file, before);
    expect(held.metadata.name).to.equal(name);
    expect(held.status?.kernelName).to.equal(path.basename(b.device));

    const next = await eraseAndRebind(name, 'b2');
    await run('blockdev', ['--flushbufs', next.device]);
    const h = await open(next.device, 'r');
    try {
      for (const [off, data] of written) {
        const back = Buffer.alloc(CHUNK);
        await h.read(back, 0, CHUNK, off);
        expect(back.equals(data), `the previous tenant's bytes at offset ${off}`).to.equal(false);
        expect(back.equals(Buffer.alloc(CHUNK)), `zeros at offset ${off}`).to.equal(true);
      }
    } finally {
      await h.close();
    }
  });

  it("an ext4 volume's disk that died: held when it returns, and after the erase a Block tenant finds no block of the previous tenant's files on the device", async () => {
    const name = (await diskOf(f.file))!.metadata.name;
    const pv = await bind('f1', name, 'Filesystem', fsPool);
    const blocks = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const data = randomBytes(MiB);
      await writeFile(path.join(pv.spec.local!.path, `tenant-${i}`), data);
      for (let o = 0; o < data.length; o += BLOCK) blocks.add(sha(data.subarray(o, o + BLOCK)));
    }
    await run('sync', []);
    const saved = `${f.file}.reseated`;
    await copyFile(f.file, saved); // the disk as it will be when it comes back
    const count = async (device: string): Promise<number> => {
      await run('blockdev', ['--flushbufs', device]); // read the device, not what this process's page cache kept
      const h = await open(device, 'r');
      let found = 0;
      try {
        const buf = Buffer.alloc(4 * MiB);
        for (let pos = 0; pos < DISK_BYTES; pos += buf.length) {
          const { bytesRead } = await h.read(buf, 0, buf.length, pos);
          for (let o = 0; o + BLOCK <= bytesRead; o += BLOCK) if (blocks.has(sha(buf.subarray(o, o + BLOCK)))) found++;
        }
      } finally {
        await h.close();
      }
      return found;
    };
    expect(await count(f.device), "the check finds the tenant's blocks on the device it wrote them to").to.equal(blocks.size);

    const old = f.device;
    await pullDisk(loops, f);
    await waitFor('F reported dead', async () => condition(await diskOf(f.file), 'Healthy')?.reason === 'NoMedium', CONVERGE_MS);
    await admin.delete(PERSISTENT_VOLUME_CLAIMS, 'f1', { namespace });
    await run('umount', [path.join(root(), name)]); // the runbook's step 2: the kernel then drops the device
    await waitFor('F not present', async () => condition(await diskOf(f.file), 'Present')?.status === 'False', CONVERGE_MS);
    await admin.delete(PERSISTENT_VOLUMES, pv.metadata.name!);
    await admin.delete(NODE_DISKS, name);
    await waitFor(`NodeDisk ${name} gone`, async () => (await admin.getIfExists(NODE_DISKS, name)) === undefined, 30_000);
    await rename(saved, f.file);
    const before = pvsSeen.get(name)?.size ?? 0;
    f = await reseat(f.file, old);
    await expectHeld(f.file, before);

    const next = await eraseAndRebind(name, 'f2');
    expect(await count(next.device), "blocks of the previous tenant's files the next tenant can read").to.equal(0);
  });

  it("a discovered mount's files: held when the mount returns after its NodeDisk was deleted; after the erase the next tenant finds it empty", async () => {
    const dir = path.join(work, 'discovery', 'vol1');
    const disk = await loops.create(32 * MiB);
    await run('mkfs.ext4', ['-q', '-F', disk.device]);
    await run('mount', [disk.device, dir]);
    const mountDisk = async (): Promise<NodeDisk | undefined> =>
      (await nodeDisksOf(admin, node)).find((d) => d.metadata.annotations?.[IDENTITY_ANNOTATION] === `mount:${dir}`);
    const name = (await waitFor('the mount inventoried', mountDisk, CONVERGE_MS)).metadata.name;
    await label(name, 'fs');
    const pv = await bind('m1', name, 'Filesystem', fsPool);
    await writeFile(path.join(pv.spec.local!.path, 'tenant'), randomBytes(64 * 1024));
    // The administrator takes the filesystem away and clears up as the runbook says, then mounts it again.
    await run('umount', [dir]);
    await waitFor('the mount not present', async () => condition(await mountDisk(), 'Present')?.status === 'False', CONVERGE_MS);
    await runbook('m1', name, pv);
    const before = pvsSeen.get(name)?.size ?? 0;
    await run('mount', [disk.device, dir]);
    const held = await waitFor(
      'the returned mount held as PreviouslyUsed',
      async () => {
        const d = await mountDisk();
        return condition(d, 'Eligible')?.reason === 'PreviouslyUsed' ? d : undefined;
      },
      CONVERGE_MS,
    );
    await label(name, 'fs');
    expect(condition(held, 'Eligible')!.message).to.contain('everything in it is removed');
    expect((await admin.get<NodeDisk>(NODE_DISKS, name)).spec.claim, 'no pool claimed the held mount').to.equal(undefined);
    expect(pvsSeen.get(name)?.size ?? 0, 'no PV offered on the held mount').to.equal(before);
    expect(await readdir(dir)).to.include('tenant');

    await admin.mergePatch(NODE_DISKS, name, { spec: { erasePreviousData: true } });
    const next = await bind('m2', name, 'Filesystem', fsPool);
    expect(await readdir(next.spec.local!.path), 'what the next tenant finds').to.deep.equal([]);
    await admin.delete(PERSISTENT_VOLUME_CLAIMS, 'm2', { namespace });
    await admin.delete(STORAGE_POOLS, fsPool);
    await waitFor(
      'the Filesystem pool gone (its mount released)',
      async () => (await admin.getIfExists(STORAGE_POOLS, fsPool)) === undefined,
      CONVERGE_MS,
    );
    await run('umount', [dir]);
  });

  it('leaves no hand-out record of a disk released through the claim protocol', async () => {
    // Both disks are in the Block pool now; deleting the pool's claims releases them.
    for (const c of ['b2', 'f2']) await admin.delete(PERSISTENT_VOLUME_CLAIMS, c, { namespace });
    await admin.delete(STORAGE_POOLS, blockPool);
    await waitFor(
      'the Block pool gone (its disks released)',
      async () => (await admin.getIfExists(STORAGE_POOLS, blockPool)) === undefined,
      CONVERGE_MS,
    );
    await waitFor(
      'both disks NotClaimed',
      async () => {
        const ds = await Promise.all([diskOf(b.file), diskOf(f.file)]);
        return ds.every((d) => condition(d, 'Prepared')?.reason === 'NotClaimed');
      },
      CONVERGE_MS,
    );
    const left = await stat(path.join(root(), RECORDS_DIR)).then(
      () => 'present',
      (err: NodeJS.ErrnoException) => err.code,
    );
    expect(left, `${RECORDS_DIR} under the agent's root`).to.equal('ENOENT');
  });
});

import { mkdtemp, mkdir, open, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { Registry } from 'prom-client';
import type { KubeClient } from '../../src/kube/client.js';
import { EVENTS } from '../../src/kube/resources.js';
import { installCrds } from '../../src/crds/install.js';
import { NODE_DISKS } from '../../src/crds/resource-types.js';
import type { NodeDisk } from '../../src/crds/nodedisk.js';
import { startNodeAgent, type NodeAgent, type NodeAgentOptions } from '../../src/node/agent/agent.js';
import { execOk } from '../../src/host/exec.js';
import { stowageLabel } from '../../src/node/agent/preparation.js';
import { AgentMetrics } from '../../src/node/agent/agent-metrics.js';
import { LoopDevices, unmountAllFrom } from '../support/loop-devices.js';
import { adminClient, uniqueName, waitFor } from '../support/cluster.js';
import {
  blkidUuid,
  condition,
  deleteNodeDisks,
  diskOfFile,
  localExt4,
  mbrSector,
  mountsOfDevice,
  nodeDisksOf,
  operatorSets,
  sha256File,
} from './support.js';

const MiB = 1024 * 1024;

describe('node agent (real control plane, real loop devices)', function () {
  this.timeout(180_000);
  let client: KubeClient;
  let work: string;
  const loops = new LoopDevices();
  const agents: NodeAgent[] = [];
  const nodes: string[] = [];

  before(async () => {
    ({ client } = await adminClient());
    await installCrds(client, 'stowage-tests');
    work = await mkdtemp(path.join(tmpdir(), 'stowage-agent-test-'));
  });
  afterEach(async () => {
    for (const a of agents.splice(0)) await a.stop();
  });
  after(async () => {
    for (const a of agents.splice(0)) await a.stop();
    await loops.cleanup();
    // Anything still mounted under the work dir (agent roots, test mounts) goes before the dir does.
    const mounts = (await import('node:fs/promises')).readFile('/proc/self/mounts', 'utf8');
    for (const line of (await mounts).split('\n')) {
      const target = line.split(' ')[1];
      if (target && work && target.startsWith(work)) await execOk('umount', ['-l', target]).catch(() => undefined);
    }
    if (work) await rm(work, { recursive: true, force: true });
    for (const n of nodes) await deleteNodeDisks(client, n);
    client?.close();
  });

  async function agent(
    extra: Partial<NodeAgentOptions> & { allowDevices: string[] },
  ): Promise<{ agent: NodeAgent; node: string; root: string }> {
    const node = extra.nodeName ?? uniqueName('agent-node');
    if (!nodes.includes(node)) nodes.push(node);
    const root = extra.root ?? path.join(work, `root-${node}`);
    const a = await startNodeAgent({ client, nodeName: node, root, udev: false, discoveryIntervalMs: 3_600_000, ...extra });
    agents.push(a);
    return { agent: a, node, root };
  }

  it('reports a blank allow-listed loop device as Present and Eligible, and nothing outside the allow-list', async () => {
    const disk = await loops.create(64 * MiB);
    const { node } = await agent({ allowDevices: [disk.device] });
    const all = await nodeDisksOf(client, node);
    expect(all).to.have.length(1, 'only the allow-listed device is inventoried');
    const nd = all[0];
    expect(nd.metadata.name).to.match(new RegExp(`^${node}-[0-9a-f]{10}$`));
    expect(nd.spec).to.include({ nodeName: node, devicePath: disk.device });
    expect(nd.metadata.labels).to.include({ 'stowage.dev/node': node, 'stowage.dev/media': 'unknown' });
    expect(nd.status?.kind).to.equal('Disk');
    expect(nd.status?.capacity).to.equal('64Mi');
    expect(nd.status?.transport).to.equal('loop');
    expect(condition(nd, 'Present')).to.include({ status: 'True', reason: 'Detected' });
    expect(condition(nd, 'Eligible')).to.include({ status: 'True', reason: 'Blank' });
    expect(condition(nd, 'Healthy')).to.include({ status: 'Unknown', reason: 'SmartUnavailable' });
    expect(condition(nd, 'Prepared')).to.include({ status: 'False', reason: 'NotClaimed' });
    expect(nd.status?.health?.verdict).to.equal('Unknown');
    expect(nd.status?.lastSeenTime).to.be.a('string');
  });

  it('sends no write on a second pass when nothing changed', async () => {
    const a = await loops.create(64 * MiB);
    const b = await loops.create(64 * MiB);
    const { agent: ag } = await agent({ allowDevices: [a.device, b.device] });
    await ag.pass();
    const second = await ag.pass();
    expect(second.disks).to.equal(2);
    expect(second.writes).to.equal(0);
  });

  it('marks a disk with a filesystem, a partition table or a foreign mount ineligible with the reason, and changes nothing on them when claimed anyway', async () => {
    // ext4 with a file on it.
    const fsDisk = await loops.create(64 * MiB);
    await execOk('mkfs.ext4', ['-q', '-L', 'precious', fsDisk.device]);
    const tmpMount = path.join(work, 'precious');
    await mkdir(tmpMount, { recursive: true });
    await execOk('mount', [fsDisk.device, tmpMount]);
    await writeFile(path.join(tmpMount, 'data.txt'), 'do not lose me\n');
    await execOk('umount', [tmpMount]);
    // A dos partition table.
    const ptDisk = await loops.create(64 * MiB);
    const fh = await open(ptDisk.device, 'r+');
    await fh.write(mbrSector(), 0, 512, 0);
    await fh.sync();
    await fh.close();
    // Mounted elsewhere (read-only, so the bytes on it stay still for the checksum).
    const mountedDisk = await loops.create(64 * MiB);
    await execOk('mkfs.ext4', ['-q', mountedDisk.device]);
    const elsewhere = path.join(work, 'elsewhere');
    await mkdir(elsewhere, { recursive: true });
    await execOk('mount', ['-o', 'ro', mountedDisk.device, elsewhere]);

    const disks = [fsDisk, ptDisk, mountedDisk];
    // A blank device first: blkid must still report the devices after it (low-level blkid -p stops at the first blank one).
    const blank = await loops.create(64 * MiB);
    const { agent: ag, node } = await agent({ allowDevices: [blank.device, ...disks.map((d) => d.device)] });
    const expected = ['HasFilesystem', 'HasPartitions', 'Mounted'];
    const names: string[] = [];
    for (const [i, d] of disks.entries()) {
      const nd = await diskOfFile(client, node, d.file);
      expect(condition(nd, 'Eligible'), d.device).to.include({ status: 'False', reason: expected[i] });
      names.push(nd!.metadata.name);
    }
    const fsNd = await diskOfFile(client, node, fsDisk.file);
    expect(condition(fsNd, 'Eligible')!.message).to.contain('precious');
    expect(fsNd?.status?.filesystem).to.include({ type: 'ext4', label: 'precious' });
    expect((await diskOfFile(client, node, ptDisk.file))?.status?.partitionTable).to.equal('dos');
    expect((await diskOfFile(client, node, mountedDisk.file))?.status?.mountPoints).to.deep.equal([elsewhere]);

    const before = await Promise.all(disks.map((d) => sha256File(d.file)));
    for (const name of names) await operatorSets(client, name, { claim: { ...localExt4 } });
    for (const [i, name] of names.entries()) {
      const nd = await waitFor(`Prepared=False on ${name}`, async () => {
        const d = await client.get<NodeDisk>(NODE_DISKS, name);
        const c = condition(d, 'Prepared');
        return c?.status === 'False' && c.reason !== 'NotClaimed' && c.observedGeneration === d.metadata.generation ? d : undefined;
      });
      expect(condition(nd, 'Prepared')!.reason).to.equal(i === 2 ? 'Mounted' : expected[i]);
      expect(condition(nd, 'Prepared')!.message).to.contain('nothing was changed');
    }
    await ag.pass();
    await ag.pass();
    const after = await Promise.all(disks.map((d) => sha256File(d.file)));
    expect(after).to.deep.equal(before, 'not one byte changed on the claimed non-blank disks');
    expect(await mountsOfDevice(mountedDisk.device)).to.deep.equal([elsewhere]);
    await execOk('umount', [elsewhere]);
  });

  it('keeps one NodeDisk when a loop device is detached and re-attached under another /dev/loopN', async () => {
    const disk = await loops.create(64 * MiB);
    // The allow-list names the backing file, so the device is allowed under any loop number.
    const { agent: ag, node } = await agent({ allowDevices: [disk.file] });
    const first = await diskOfFile(client, node, disk.file);
    expect(first?.spec.devicePath).to.equal(disk.device);

    await loops.detach(disk.device);
    await ag.pass();
    const gone = await diskOfFile(client, node, disk.file);
    expect(condition(gone, 'Present')).to.include({ status: 'False', reason: 'NotDetected' });
    expect(gone?.metadata.uid).to.equal(first?.metadata.uid, 'a vanished disk is reported, never deleted');

    const placeholder = await loops.create(16 * MiB); // takes the old number, so the disk comes back elsewhere
    const back = await loops.attach(disk.file);
    expect(back.device).to.not.equal(disk.device);
    await ag.pass();
    const again = await diskOfFile(client, node, disk.file);
    expect(again?.metadata.uid).to.equal(first?.metadata.uid);
    expect(again?.metadata.name).to.equal(first?.metadata.name);
    expect(again?.spec.devicePath).to.equal(back.device);
    expect(again?.status?.kernelName).to.equal(path.basename(back.device));
    expect(condition(again, 'Present')).to.include({ status: 'True' });
    expect(await nodeDisksOf(client, node)).to.have.length(1, 'no duplicate, and the placeholder is not on the allow-list');
    await loops.detach(placeholder.device);
  });

  it('formats, labels, mounts and reports a claimed blank disk, and releases it when the claim is cleared', async () => {
    const disk = await loops.create(64 * MiB);
    const registry = new Registry();
    const nodeName = uniqueName('agent-node');
    const { node, root } = await agent({ nodeName, allowDevices: [disk.device], metrics: new AgentMetrics(registry, nodeName) });
    const name = (await diskOfFile(client, node, disk.file))!.metadata.name;
    await operatorSets(client, name, { claim: { ...localExt4 } });
    const nd = await waitFor('Prepared=True', async () => {
      const d = await client.get<NodeDisk>(NODE_DISKS, name);
      return condition(d, 'Prepared')?.status === 'True' ? d : undefined;
    });
    const target = path.join(root, name);
    expect(nd.status?.preparation).to.deep.equal({ path: target, filesystem: 'ext4', uuid: await blkidUuid(disk.device) });
    expect(nd.status?.filesystem?.label).to.equal(stowageLabel(name));
    expect(nd.status?.claim).to.deep.equal({ pool: 'pool-a' });
    expect(nd.status?.usage?.size).to.be.a('string');
    expect(condition(nd, 'Eligible')).to.include({ status: 'False', reason: 'Claimed' });
    expect(await mountsOfDevice(disk.device)).to.deep.equal([target]);
    const events = await client.list<{ metadata: { name?: string }; reason?: string; involvedObject?: { name?: string } }>(EVENTS, {
      namespace: 'default',
    });
    const reasons = events.items.filter((e) => e.involvedObject?.name === name).map((e) => e.reason);
    expect(reasons).to.include.members(['Formatting', 'Formatted', 'Prepared']);
    const prepared = (await registry.getSingleMetric('stowage_disk_preparations_total')!.get()).values;
    expect(prepared).to.deep.equal(
      [{ value: 1, labels: { node, kind: 'Filesystem', result: 'success' } }],
      'one preparation, counted once',
    );

    await operatorSets(client, name, {});
    const released = await waitFor('released (Eligible again)', async () => {
      const d = await client.get<NodeDisk>(NODE_DISKS, name);
      return condition(d, 'Eligible')?.status === 'True' ? d : undefined;
    });
    expect(condition(released, 'Prepared')).to.include({ status: 'False', reason: 'NotClaimed' });
    expect(released.status?.preparation).to.equal(undefined);
    // The usage of a filesystem that no longer exists is not reported (it once lingered from memory).
    expect(released.status?.usage).to.equal(undefined);
    expect(await mountsOfDevice(disk.device)).to.deep.equal([]);
    expect(await blkidUuid(disk.device)).to.equal(undefined);
  });

  it('wipes for the requested volume UID only, and ignores a stale request for an older UID', async () => {
    const disk = await loops.create(64 * MiB);
    const { node, root } = await agent({ allowDevices: [disk.device] });
    const name = (await diskOfFile(client, node, disk.file))!.metadata.name;
    await operatorSets(client, name, { claim: { ...localExt4 } });
    await waitFor('Prepared=True', async () => condition(await client.get<NodeDisk>(NODE_DISKS, name), 'Prepared')?.status === 'True');
    const target = path.join(root, name);
    const fill = async (volume: string): Promise<void> => {
      await mkdir(path.join(target, 'dir'), { recursive: true });
      await writeFile(path.join(target, 'dir', `${volume}.bin`), Buffer.alloc(256 * 1024, 7));
      await writeFile(path.join(target, `.${volume}-hidden`), volume);
    };
    const wipedFor = (uid: string) => async () => {
      const d = await client.get<NodeDisk>(NODE_DISKS, name);
      return d.status?.lastWipe?.volumeUID === uid &&
        d.status.lastWipe.result === 'Succeeded' &&
        condition(d, 'Prepared')?.status === 'True'
        ? d
        : undefined;
    };

    await fill('volume-a');
    await operatorSets(client, name, { claim: { ...localExt4 }, wipe: { volumeUID: 'uid-a', method: 'quick' } });
    const afterA = await waitFor('wipe of uid-a', wipedFor('uid-a'));
    expect((await readdir(target)).filter((f) => f !== 'lost+found')).to.deep.equal([], 'every file of volume A is gone');
    expect(afterA.status?.lastWipe).to.include({ method: 'quick', result: 'Succeeded' });
    expect(afterA.status?.preparation?.uuid).to.equal(await blkidUuid(disk.device));
    expect(await mountsOfDevice(disk.device)).to.deep.equal([target]);

    await fill('volume-b');
    await operatorSets(client, name, { claim: { ...localExt4 }, wipe: { volumeUID: 'uid-b', method: 'zero' } });
    await waitFor('wipe of uid-b', wipedFor('uid-b'));
    expect((await readdir(target)).filter((f) => f !== 'lost+found')).to.deep.equal([]);

    // Volume C lives on the disk now; a late, stale request for volume A must not touch it.
    await fill('volume-c');
    await operatorSets(client, name, { claim: { ...localExt4 }, wipe: { volumeUID: 'uid-a', method: 'quick' } });
    await waitFor('the stale request noticed', async () => {
      const events = await client.list<{ metadata: { name?: string }; reason?: string; involvedObject?: { name?: string } }>(EVENTS, {
        namespace: 'default',
      });
      return events.items.some((e) => e.involvedObject?.name === name && e.reason === 'StaleWipeIgnored');
    });
    const d = await client.get<NodeDisk>(NODE_DISKS, name);
    expect(d.status?.lastWipe?.volumeUID).to.equal('uid-b');
    expect(await readdir(path.join(target, 'dir'))).to.deep.equal(['volume-c.bin']);
    await operatorSets(client, name, {});
    await waitFor('released', async () => condition(await client.get<NodeDisk>(NODE_DISKS, name), 'Eligible')?.status === 'True');
  });

  it('reports a wipe it finished but could not report before a restart, without wiping again', async () => {
    const disk = await loops.create(64 * MiB);
    const nodeName = uniqueName('agent-node');
    const root = path.join(work, `root-${nodeName}`);
    const first = await agent({ nodeName, root, allowDevices: [disk.device] });
    const name = (await diskOfFile(client, nodeName, disk.file))!.metadata.name;
    await operatorSets(client, name, { claim: { ...localExt4 } });
    await waitFor('Prepared=True', async () => condition(await client.get<NodeDisk>(NODE_DISKS, name), 'Prepared')?.status === 'True');
    await first.agent.stop();
    agents.splice(agents.indexOf(first.agent), 1);
    // The state a crash leaves between the agent's two writes: the wipe is in the history
    // (written first), status.lastWipe is not. The new volume's data is already on the disk.
    await client.mergePatch(
      NODE_DISKS,
      name,
      { metadata: { annotations: { 'stowage.dev/wiped-volumes': 'uid-done' } } },
      { fieldManager: 'stowage-node' },
    );
    await writeFile(path.join(root, name, 'next-volume'), 'keep');
    await operatorSets(client, name, { claim: { ...localExt4 }, wipe: { volumeUID: 'uid-done', method: 'quick' } });
    await agent({ nodeName, root, allowDevices: [disk.device] });
    const d = await waitFor('lastWipe reported', async () => {
      const nd = await client.get<NodeDisk>(NODE_DISKS, name);
      return nd.status?.lastWipe?.volumeUID === 'uid-done' ? nd : undefined;
    });
    expect(d.status?.lastWipe?.result).to.equal('Succeeded');
    expect(await readdir(path.join(root, name))).to.include('next-volume', 'not wiped a second time');
    await operatorSets(client, name, {});
    await waitFor('released', async () => condition(await client.get<NodeDisk>(NODE_DISKS, name), 'Eligible')?.status === 'True');
  });

  it('reports a failed wipe (never Succeeded), and retries it until it succeeds', async () => {
    const disk = await loops.create(64 * MiB);
    const { node, root } = await agent({ allowDevices: [disk.device], discoveryIntervalMs: 1_000 });
    const name = (await diskOfFile(client, node, disk.file))!.metadata.name;
    await operatorSets(client, name, { claim: { ...localExt4 } });
    await waitFor('Prepared=True', async () => condition(await client.get<NodeDisk>(NODE_DISKS, name), 'Prepared')?.status === 'True');
    await writeFile(path.join(root, name, 'volume-data'), 'x');
    // Someone else holds the filesystem open through a second mount: the agent must not wipe under it.
    const intruder = path.join(work, 'intruder');
    await mkdir(intruder, { recursive: true });
    await execOk('mount', [disk.device, intruder]);
    try {
      await operatorSets(client, name, { claim: { ...localExt4 }, wipe: { volumeUID: 'uid-f', method: 'quick' } });
      const failed = await waitFor('lastWipe Failed', async () => {
        const d = await client.get<NodeDisk>(NODE_DISKS, name);
        return d.status?.lastWipe?.result === 'Failed' ? d : undefined;
      });
      expect(failed.status?.lastWipe).to.include({ volumeUID: 'uid-f', method: 'quick' });
      expect(failed.status?.lastWipe?.message).to.contain(intruder);
      const events = await client.list<{ metadata: { name?: string }; reason?: string; involvedObject?: { name?: string } }>(EVENTS, {
        namespace: 'default',
      });
      expect(events.items.some((e) => e.involvedObject?.name === name && e.reason === 'WipeFailed')).to.equal(true);
      expect(await readdir(path.join(root, name))).to.include('volume-data', 'nothing was wiped');
    } finally {
      await execOk('umount', [intruder]);
    }
    await waitFor(
      'the retried wipe succeeds',
      async () => (await client.get<NodeDisk>(NODE_DISKS, name)).status?.lastWipe?.result === 'Succeeded',
      60_000,
    );
    expect((await readdir(path.join(root, name))).filter((f) => f !== 'lost+found')).to.deep.equal([]);
    await operatorSets(client, name, {});
    await waitFor('released', async () => condition(await client.get<NodeDisk>(NODE_DISKS, name), 'Eligible')?.status === 'True');
  });

  it('prepares xfs, verifies Block devices without formatting them, and adopts a used disk only when the claim allows it', async () => {
    const xfsDisk = await loops.create(320 * MiB); // xfsprogs refuses filesystems under 300 MB
    const blockDisk = await loops.create(64 * MiB);
    const usedDisk = await loops.create(64 * MiB);
    await execOk('mkfs.ext4', ['-q', '-L', 'old-data', usedDisk.device]);
    const { node, root } = await agent({ allowDevices: [xfsDisk.device, blockDisk.device, usedDisk.device] });
    const nameOf = async (file: string): Promise<string> => (await diskOfFile(client, node, file))!.metadata.name;
    const [xfsName, blockName, usedName] = [await nameOf(xfsDisk.file), await nameOf(blockDisk.file), await nameOf(usedDisk.file)];
    await operatorSets(client, xfsName, { claim: { pool: 'pool-x', mode: 'Local', volumeMode: 'Filesystem', fsType: 'xfs' } });
    await operatorSets(client, blockName, { claim: { pool: 'pool-b', mode: 'Local', volumeMode: 'Block' } });
    await operatorSets(client, usedName, { claim: { ...localExt4, allowAdoption: true } });
    const prepared = (name: string) =>
      waitFor(`Prepared=True on ${name}`, async () => {
        const d = await client.get<NodeDisk>(NODE_DISKS, name);
        return condition(d, 'Prepared')?.status === 'True' ? d : undefined;
      });

    const x = await prepared(xfsName);
    expect(x.status?.preparation).to.include({ path: path.join(root, xfsName), filesystem: 'xfs' });
    expect(await blkidUuid(xfsDisk.device)).to.equal(x.status?.preparation?.uuid);
    expect(await mountsOfDevice(xfsDisk.device)).to.deep.equal([path.join(root, xfsName)]);

    const b = await prepared(blockName);
    expect(b.status?.preparation).to.deep.equal({ path: blockDisk.device });
    expect(await blkidUuid(blockDisk.device)).to.equal(undefined, 'a Block volume gets the raw device');
    expect(await mountsOfDevice(blockDisk.device)).to.deep.equal([]);
    // The workload writes to its raw device; a quick wipe for its released volume leaves it blank.
    await execOk('mkfs.ext4', ['-q', blockDisk.device]);
    await operatorSets(client, blockName, {
      claim: { pool: 'pool-b', mode: 'Local', volumeMode: 'Block' },
      wipe: { volumeUID: 'uid-block', method: 'quick' },
    });
    await waitFor(
      'the Block wipe',
      async () => (await client.get<NodeDisk>(NODE_DISKS, blockName)).status?.lastWipe?.result === 'Succeeded',
    );
    expect(await blkidUuid(blockDisk.device)).to.equal(undefined);
    expect(condition(await client.get<NodeDisk>(NODE_DISKS, blockName), 'Prepared')?.status).to.equal('True');

    const u = await prepared(usedName);
    expect(u.status?.filesystem?.label).to.equal(stowageLabel(usedName), "the old filesystem was replaced by Stowage's");
    const events = await client.list<{ metadata: { name?: string }; reason?: string; involvedObject?: { name?: string } }>(EVENTS, {
      namespace: 'default',
    });
    expect(events.items.some((e) => e.involvedObject?.name === usedName && e.reason === 'AdoptingDisk')).to.equal(true);

    for (const n of [xfsName, blockName, usedName]) await operatorSets(client, n, {});
    for (const n of [xfsName, blockName, usedName]) {
      await waitFor(`released ${n}`, async () => condition(await client.get<NodeDisk>(NODE_DISKS, n), 'Eligible')?.status === 'True');
    }
    expect(await mountsOfDevice(xfsDisk.device)).to.deep.equal([]);
  });

  it("refuses a hand-edited claim that breaks the CRD's cross-field rules (a CEL-less API server stored it), naming the field and changing nothing", async () => {
    const disk = await loops.create(64 * MiB);
    const { node } = await agent({ allowDevices: [disk.device] });
    const name = (await diskOfFile(client, node, disk.file))!.metadata.name;
    // Block with an fsType: was a raw device or a filesystem meant? The agent must not guess.
    await operatorSets(client, name, { claim: { pool: 'pool-bad', mode: 'Local', volumeMode: 'Block', fsType: 'ext4' } });
    const refused = await waitFor('Prepared=False/InvalidClaim', async () => {
      const c = condition(await client.get<NodeDisk>(NODE_DISKS, name), 'Prepared');
      return c?.reason === 'InvalidClaim' ? c : undefined;
    });
    expect(refused.status).to.equal('False');
    expect(refused.message).to.match(/spec\.claim.*fsType/);
    expect(await blkidUuid(disk.device)).to.equal(undefined, 'nothing was formatted');
    expect(await mountsOfDevice(disk.device)).to.deep.equal([]);
    // Corrected, the same claim is prepared as the Block device it now says.
    await operatorSets(client, name, { claim: { pool: 'pool-bad', mode: 'Local', volumeMode: 'Block' } });
    await waitFor(
      'Prepared=True once corrected',
      async () => condition(await client.get<NodeDisk>(NODE_DISKS, name), 'Prepared')?.status === 'True',
    );
    await operatorSets(client, name, {});
  });

  it('inventories a filesystem mounted under a discovery directory as a Mount, uses it as is and wipes only its contents', async () => {
    const disk = await loops.create(64 * MiB);
    await execOk('mkfs.ext4', ['-q', disk.device]);
    const dir = path.join(work, 'discovery');
    const vol = path.join(dir, 'vol1');
    await mkdir(vol, { recursive: true });
    await execOk('mount', [disk.device, vol]);
    try {
      // The loop device itself is allow-listed too: it shows up as a Disk that is Mounted.
      const { node } = await agent({ allowDevices: [disk.device], discoveryDirs: [dir] });
      const all = await nodeDisksOf(client, node);
      expect(all).to.have.length(2);
      expect(
        condition(
          all.find((d) => d.status?.kind === 'Disk'),
          'Eligible',
        ),
      ).to.include({ status: 'False', reason: 'Mounted' });
      const nd = all.find((d) => d.status?.kind === 'Mount');
      expect(nd?.spec.devicePath).to.equal(vol);
      expect(condition(nd, 'Eligible')).to.include({ status: 'True', reason: 'DiscoveredMount' });
      const uuidBefore = await blkidUuid(disk.device);
      await operatorSets(client, nd!.metadata.name, { claim: { ...localExt4 } });
      await waitFor(
        'Prepared',
        async () => condition(await client.get<NodeDisk>(NODE_DISKS, nd!.metadata.name), 'Prepared')?.status === 'True',
      );
      await writeFile(path.join(vol, 'file'), 'x');
      await operatorSets(client, nd!.metadata.name, { claim: { ...localExt4 }, wipe: { volumeUID: 'uid-m', method: 'quick' } });
      await waitFor(
        'wiped',
        async () => (await client.get<NodeDisk>(NODE_DISKS, nd!.metadata.name)).status?.lastWipe?.result === 'Succeeded',
      );
      expect((await readdir(vol)).filter((f) => f !== 'lost+found')).to.deep.equal([]);
      expect(await blkidUuid(disk.device)).to.equal(uuidBefore, 'never reformatted');
      expect(await mountsOfDevice(disk.device)).to.deep.equal([vol], 'never unmounted');
    } finally {
      await unmountAllFrom(disk.device);
    }
  });
});

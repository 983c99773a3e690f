import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import type { KubeClient } from '../../src/kube/client.js';
import { installCrds } from '../../src/crds/install.js';
import { NODE_DISKS } from '../../src/crds/resource-types.js';
import type { NodeDisk } from '../../src/crds/nodedisk.js';
import { execOk } from '../../src/host/exec.js';
import { filesystemUuid } from '../../src/node/agent/preparation.js';
import { LoopDevices } from '../support/loop-devices.js';
import { adminClient, uniqueName, waitFor } from '../support/cluster.js';
import { AgentProcess, blkidUuid, condition, deleteNodeDisks, diskOfFile, localExt4, mountsOfDevice, operatorSets } from './support.js';

const MiB = 1024 * 1024;
const KILLS = 6;

describe('node agent process: SIGKILL during preparation (real control plane, real loop device)', function () {
  this.timeout(300_000);
  let client: KubeClient;
  let kubeconfig: string;
  let root: string;
  const loops = new LoopDevices();
  const node = uniqueName('restart-node');
  let proc: AgentProcess | undefined;

  before(async () => {
    let cp;
    ({ cp, client } = await adminClient());
    kubeconfig = cp.kubeconfigPath;
    await installCrds(client, 'stowage-tests');
    root = await mkdtemp(path.join(tmpdir(), 'stowage-restart-root-'));
  });
  after(async () => {
    await proc?.stop();
    await loops.cleanup();
    if (root) {
      for (const line of (await readFile('/proc/self/mounts', 'utf8')).split('\n')) {
        const target = line.split(' ')[1];
        if (target?.startsWith(root)) await execOk('umount', ['-l', target]).catch(() => undefined);
      }
      await rm(root, { recursive: true, force: true });
    }
    await deleteNodeDisks(client, node);
    client?.close();
  });

  const start = (device: string): AgentProcess =>
    AgentProcess.start(kubeconfig, node, ['--allow-device', device, '--root', root, '--discovery-interval', '2']);
  const startedPass = async (p: AgentProcess): Promise<void> => {
    await waitFor(
      'the agent to finish its first pass',
      () =>
        p.output.join('').includes('node agent started') ||
        (p.exited ? Promise.reject(new Error(`agent exited: ${p.output.join('')}`)) : false),
      60_000,
    );
  };

  it('ends prepared exactly once, mounted once, with the same UUID, however often the agent is killed', async () => {
    const disk = await loops.create(1024 * MiB); // big enough that mkfs takes a moment to interrupt
    proc = start(disk.device);
    const name = await waitFor('the NodeDisk', async () => (await diskOfFile(client, node, disk.file))?.metadata.name, 60_000);
    await operatorSets(client, name, { claim: { ...localExt4 } });

    // Each life of the agent is killed a random few milliseconds after it logs a step of the
    // preparation (or after a random time when it logs none), so kills land inside mkfs, between
    // mkfs and mount, and between mount and the status write.
    const delays: string[] = [];
    let interrupted = 0;
    for (let i = 0; i < KILLS; i++) {
      const current = proc;
      // No step within the random delay (the catch): the kill lands between steps, which is a case too.
      const step = await waitFor(
        'a preparation step',
        () => {
          const out = current.output.join('');
          return ['"reason":"Prepared"', '"reason":"Formatted"', '"reason":"Formatting"'].find((r) => out.includes(r));
        },
        2_000 + Math.floor(Math.random() * 2_000),
        5,
      ).catch(() => 'none');
      // The first kill lands as soon as formatting is seen, so at least one kill interrupts a
      // preparation in progress however fast this machine is; later ones land at random points.
      const delay = i === 0 ? 0 : Math.floor(Math.random() * 60);
      await new Promise((r) => setTimeout(r, delay));
      await current.kill('SIGKILL');
      const out = current.output.join('');
      if (out.includes('"reason":"Formatting"') && !out.includes('"reason":"Prepared"')) interrupted += 1;
      delays.push(`${step}+${delay}ms`);
      proc = start(disk.device);
    }
    expect(interrupted, `kills: ${delays.join(', ')}`).to.be.greaterThan(0, 'at least one kill interrupted a preparation in progress');
    const prepared = await waitFor(
      'Prepared=True after the kills',
      async () => {
        const d = await client.get<NodeDisk>(NODE_DISKS, name);
        return condition(d, 'Prepared')?.status === 'True' ? d : undefined;
      },
      90_000,
    );
    const target = path.join(root, name);
    const uuid = filesystemUuid(name, '');
    expect(prepared.status?.preparation, `kill delays ${delays.join(',')} ms`).to.deep.equal({ path: target, filesystem: 'ext4', uuid });
    expect(await blkidUuid(disk.device)).to.equal(uuid);
    expect(await mountsOfDevice(disk.device)).to.deep.equal([target], 'mounted exactly once');

    // From here on the filesystem holds data: more kills must never format it again.
    await writeFile(path.join(target, 'marker'), 'written after preparation');
    for (let i = 0; i < 2; i++) {
      await proc.kill('SIGKILL');
      proc = start(disk.device);
      await startedPass(proc);
    }
    expect(await mountsOfDevice(disk.device)).to.deep.equal([target]);
    expect(await readFile(path.join(target, 'marker'), 'utf8')).to.equal('written after preparation');
    expect(await blkidUuid(disk.device)).to.equal(uuid);

    // A node restart: the mount is gone when the agent starts; it mounts the same filesystem again.
    await proc.stop();
    await execOk('umount', [target]);
    expect(existsSync(path.join(target, 'marker'))).to.equal(false);
    proc = start(disk.device);
    await startedPass(proc);
    expect(await mountsOfDevice(disk.device)).to.deep.equal([target]);
    expect(await readFile(path.join(target, 'marker'), 'utf8')).to.equal('written after preparation');
    const final = await client.get<NodeDisk>(NODE_DISKS, name);
    expect(final.status?.preparation?.uuid).to.equal(uuid);
    expect(condition(final, 'Prepared')?.status).to.equal('True');

    await operatorSets(client, name, {});
    await waitFor('released', async () => condition(await client.get<NodeDisk>(NODE_DISKS, name), 'Eligible')?.status === 'True', 60_000);
    expect(await mountsOfDevice(disk.device)).to.deep.equal([]);
  });
});

/**
 * Issue 25, item 7 (the smaller ones): what the node agent says about NodeDisks edited or made by
 * hand. The real agent (`stowage node` as a child process), the real control plane, loop devices.
 * - a hand-edited spec.devicePath is set back, and the agent says so: a Warning event and a
 *   DevicePathReverted condition naming the edit, the editor and where the disk really is;
 * - a hand-made NodeDisk for a device that was never on the allow-list is not "prepared again when
 *   it returns" (it never was, and never will be): it says it is not on the allow-list and what to do.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import type { KubeClient } from '../../src/kube/client.js';
import { EVENTS } from '../../src/kube/resources.js';
import type { KubeObject } from '../../src/kube/types.js';
import { installCrds } from '../../src/crds/install.js';
import { NODE_DISKS } from '../../src/crds/resource-types.js';
import type { NodeDisk } from '../../src/crds/nodedisk.js';
import { adminClient, uniqueName, waitFor } from '../support/cluster.js';
import { LoopDevices, type LoopDevice } from '../support/loop-devices.js';
import { AgentProcess, condition, deleteNodeDisks, diskOfFile } from './support.js';

const MiB = 1024 ** 2;

describe('node agent: NodeDisks edited or made by hand say what the agent did and why (real agent process)', function () {
  this.timeout(180_000);
  const node = uniqueName('handnd');
  const loops = new LoopDevices();
  let client: KubeClient;
  let dir = '';
  let agent: AgentProcess | undefined;
  let allowed: LoopDevice;
  let other: LoopDevice;
  const handMade = uniqueName('handmade');

  const eventsOf = async (name: string): Promise<{ type: string; reason: string; message: string }[]> =>
    (
      await client.list<KubeObject & { type: string; reason: string; message: string }>(EVENTS, {
        namespace: 'default',
        fieldSelector: `involvedObject.name=${name}`,
      })
    ).items;

  before(async () => {
    const admin = await adminClient();
    client = admin.client;
    await installCrds(client, 'stowage-tests');
    dir = await mkdtemp(path.join(tmpdir(), 'stowage-handnd-'));
    allowed = await loops.create(64 * MiB);
    other = await loops.create(64 * MiB);
    agent = AgentProcess.start(admin.cp.kubeconfigPath, node, [
      '--allow-device',
      allowed.file,
      '--root',
      path.join(dir, 'disks'),
      '--discovery-interval',
      '1',
    ]);
    await waitFor('the agent to report its allowed disk', () => diskOfFile(client, node, allowed.file), 60_000);
  });

  after(async () => {
    await agent?.stop();
    if (client) {
      await client.delete(NODE_DISKS, handMade).catch(() => undefined);
      await deleteNodeDisks(client, node).catch(() => undefined);
      client.close();
    }
    await loops.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('sets a hand-edited spec.devicePath back and says so: a Warning event and a DevicePathReverted condition', async () => {
    const own = (await diskOfFile(client, node, allowed.file))!;
    const name = own.metadata.name;
    const real = own.spec.devicePath;
    await client.mergePatch(NODE_DISKS, name, { spec: { devicePath: other.device } }, { fieldManager: 'kubectl-edit' });
    const back = await waitFor(
      'the devicePath set back, with a condition saying why',
      async () => {
        const d = await client.get<NodeDisk>(NODE_DISKS, name);
        return d.spec.devicePath === real && condition(d, 'DevicePathReverted') ? d : undefined;
      },
      30_000,
    );
    const c = condition(back, 'DevicePathReverted')!;
    expect(c).to.deep.include({ status: 'True', reason: 'HandEdited' });
    expect(c.message).to.contain(other.device).and.contain(real).and.contain('kubectl-edit').and.contain('allow-list');
    const events = await waitFor(
      'a Warning event on the NodeDisk',
      async () => {
        const es = (await eventsOf(name)).filter((e) => e.type === 'Warning' && e.reason === 'DevicePathReverted');
        return es.length > 0 ? es : undefined;
      },
      30_000,
    );
    expect(events[0].message).to.contain(other.device).and.contain(real);
    // Only the edit is news: the disk itself is as it was.
    expect(condition(back, 'Present')?.status).to.equal('True');
  });

  it('says a hand-made NodeDisk for a device never allowed is not on the allow-list, not that it is "prepared again when it returns"', async () => {
    await client.create(
      NODE_DISKS,
      {
        apiVersion: 'stowage.dev/v1alpha1',
        kind: 'NodeDisk',
        metadata: { name: handMade, labels: { 'stowage.dev/node': node } },
        spec: { nodeName: node, devicePath: other.device, claim: { pool: 'some-pool', mode: 'Local', volumeMode: 'Block' } },
      },
      { fieldManager: 'stowage-operator' },
    );
    const nd = await waitFor(
      'the agent to say why nothing is done for it',
      async () => {
        const d = await client.get<NodeDisk>(NODE_DISKS, handMade);
        return condition(d, 'Prepared')?.status === 'False' ? d : undefined;
      },
      30_000,
    );
    const prepared = condition(nd, 'Prepared')!;
    expect(prepared.reason).to.equal('NotDiscovered');
    expect(prepared.message).to.not.contain('prepared again');
    expect(prepared.message).to.contain(other.device).and.contain('allow-list').and.contain(`kubectl delete nodedisk ${handMade}`);
    expect(condition(nd, 'Present')).to.deep.include({ status: 'False', reason: 'NotDiscovered' });
    expect(condition(nd, 'Present')!.message).to.not.contain('no longer sees');
  });
});

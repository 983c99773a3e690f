/**
 * Fault suite, hand-edited objects (issue 18): the real node daemon (`stowage node` as a child
 * process, one loop device on its allow-list), and a user who writes NodeDisks and PoolVolumes by
 * hand: a NodeDisk claimed for a Dynamic pool whose devicePath names a second loop device the test
 * made but did NOT allow, and PoolVolumes for another node or naming a pool that is not this one.
 * The daemon must touch nothing it should not (the forbidden disk's bytes, signature and mounts
 * unchanged; nothing made for the foreign PoolVolumes) and say why on the object.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import type { KubeClient } from '../../src/kube/client.js';
import { installCrds } from '../../src/crds/install.js';
import { NODE_DISKS, POOL_VOLUMES, STORAGE_POOLS } from '../../src/crds/resource-types.js';
import type { NodeDisk } from '../../src/crds/nodedisk.js';
import type { PoolVolume } from '../../src/crds/poolvolume.js';
import { mountsUnder } from '../../src/csi/node-service.js';
import { run } from '../../src/host/command.js';
import { adminClient, uniqueName, waitFor } from '../support/cluster.js';
import { LoopDevices, type LoopDevice } from '../support/loop-devices.js';
import { AgentProcess, condition, diskOfFile, mountsOfDevice, sha256File } from '../node/support.js';
import { injectFault, type FaultGuard } from './ledger.js';
import { aliveGuard, mountGuard } from './guards.js';

const AREA = 'hand-edited objects';
const MiB = 1024 ** 2;

describe('faults: hand-edited NodeDisks and PoolVolumes (real node daemon)', function () {
  this.timeout(300_000);
  const node = uniqueName('hand');
  const pool = uniqueName('hand-pool');
  const loops = new LoopDevices();
  let client: KubeClient;
  let dir = '';
  let agent: AgentProcess | undefined;
  let allowed: LoopDevice;
  let forbidden: LoopDevice;
  let forbiddenSum = '';
  const made: { kind: 'nd' | 'pv'; name: string }[] = [];

  /** The forbidden disk: its bytes, its (absent) signature and its mounts must not change. */
  const forbiddenGuard: FaultGuard = {
    async lostBytes() {
      return (await sha256File(forbidden.file)) === forbiddenSum ? 0 : forbidden.sizeBytes;
    },
    async leaks() {
      const out: string[] = [];
      // No output (the tool failed: nothing attached or no signature) reads as nothing found.
      const sig = (await run('blkid', ['-p', '-o', 'value', '-s', 'TYPE', forbidden.device]).catch(() => '')).trim();
      if (sig) out.push(`a ${sig} signature appeared on the forbidden ${forbidden.device}`);
      for (const m of await mountsOfDevice(forbidden.device)) out.push(`the forbidden ${forbidden.device} is mounted at ${m}`);
      return out;
    },
  };

  before(async () => {
    const admin = await adminClient();
    client = admin.client;
    await installCrds(client, 'stowage-tests');
    dir = await mkdtemp(join(tmpdir(), 'stowage-hand-'));
    allowed = await loops.create(512 * MiB);
    forbidden = await loops.create(64 * MiB);
    // Random bytes at the start, where mkfs and wipefs write first.
    const h = await open(forbidden.file, 'r+');
    await h.write(randomBytes(MiB), 0, MiB, 0);
    await h.close();
    forbiddenSum = await sha256File(forbidden.file);
    await client.create(STORAGE_POOLS, {
      apiVersion: 'stowage.dev/v1alpha1', kind: 'StoragePool', metadata: { name: pool },
      spec: { mode: 'Dynamic', disks: { selector: { matchLabels: { 'stowage.dev/hand': pool } } } },
    });
    agent = AgentProcess.start(admin.cp.kubeconfigPath, node, [
      '--allow-device', allowed.device, '--root', join(dir, 'disks'), '--pool-root', join(dir, 'state'),
      '--csi-endpoint', `unix://${dir}/node.sock`, '--kubelet-dir', join(dir, 'kubelet'), '--discovery-interval', '2',
    ]);
    await waitFor('the agent to report its allowed disk', () => diskOfFile(client, node, allowed.file), 60_000);
  });
  after(async () => {
    await agent?.stop();
    if (client) {
      for (const m of made) {
        const rt = m.kind === 'nd' ? NODE_DISKS : POOL_VOLUMES;
        await client.jsonPatch(rt, m.name, [{ op: 'remove', path: '/metadata/finalizers' }]).catch(() => undefined);
        await client.delete(rt, m.name).catch(() => undefined);
      }
      for (const d of (await client.list<NodeDisk>(NODE_DISKS, { labelSelector: `stowage.dev/node=${node}` })).items) await client.delete(NODE_DISKS, d.metadata.name);
      await client.delete(STORAGE_POOLS, pool).catch(() => undefined);
      client.close();
    }
    if (dir) for (const m of (await mountsUnder(dir)).sort((a, b) => b.length - a.length)) await run('umount', [m]).catch(() => undefined);
    await loops.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const guards = async (): Promise<FaultGuard[]> => [forbiddenGuard, await mountGuard([dir], () => loops.devices()), aliveGuard({ 'node daemon': () => !agent!.exited })];

  it('never prepares a disk off its allow-list, even when a NodeDisk claims it for a pool, and says why', async () => {
    const name = uniqueName('hand-nd');
    await injectFault(AREA, 'a hand-made NodeDisk claiming a device off the allow-list', async () => {
      await client.create(NODE_DISKS, {
        apiVersion: 'stowage.dev/v1alpha1', kind: 'NodeDisk',
        metadata: { name, labels: { 'stowage.dev/node': node, 'stowage.dev/hand': pool } },
        spec: { nodeName: node, devicePath: forbidden.device, claim: { pool, mode: 'Dynamic' } },
      }, { fieldManager: 'stowage-operator' });
      made.push({ kind: 'nd', name });
      const nd = await waitFor('the agent to say why it leaves the hand-made disk alone', async () => {
        const d = await client.get<NodeDisk>(NODE_DISKS, name);
        return condition(d, 'Prepared')?.status === 'False' && condition(d, 'Present')?.status === 'False' ? d : undefined;
      }, 60_000);
      // Several discovery passes: none of them may touch the device.
      await new Promise((r) => setTimeout(r, 6_000));
      // The agent never saw the device (it is off the allow-list), so it says it does not see it.
      const why = `${condition(nd, 'Present')?.message} / ${condition(nd, 'Prepared')?.message}`;
      expect(condition(nd, 'Present')?.message, why).to.match(/no longer sees|not attached|allow/i);
    }, await guards());
  });

  it('prepares the disk it found, not the device a hand-edited devicePath names', async () => {
    const own = (await diskOfFile(client, node, allowed.file))!;
    await injectFault(AREA, 'a NodeDisk of the agent edited to name a device off the allow-list, and claimed', async () => {
      await client.mergePatch(NODE_DISKS, own.metadata.name, {
        metadata: { labels: { 'stowage.dev/hand': pool } },
        spec: { devicePath: forbidden.device, claim: { pool, mode: 'Dynamic' } },
      }, { fieldManager: 'kubectl-edit' });
      const nd = await waitFor('the agent to prepare the disk it really found', async () => {
        const d = await client.get<NodeDisk>(NODE_DISKS, own.metadata.name);
        return condition(d, 'Prepared')?.status === 'True' ? d : undefined;
      }, 90_000);
      expect((await run('blkid', ['-p', '-o', 'value', '-s', 'TYPE', allowed.device])).trim(), 'the allowed disk became the pool filesystem').to.equal('btrfs');
      expect(nd.status?.preparation?.filesystem).to.equal('btrfs');
      // Several passes more: none of them may turn to the device the edit named.
      await new Promise((r) => setTimeout(r, 6_000));
      // The pool filesystem's mount is expected here; the forbidden device must have none.
    }, [forbiddenGuard, aliveGuard({ 'node daemon': () => !agent!.exited })]);
  });

  it('makes nothing for PoolVolumes of another node or of a pool it does not serve, and says why for the latter', async () => {
    const mkpv = async (pvName: string, spec: Record<string, unknown>) => {
      await client.create(POOL_VOLUMES, {
        apiVersion: 'stowage.dev/v1alpha1', kind: 'PoolVolume',
        metadata: { name: pvName, labels: { 'stowage.dev/node': String(spec.node), 'stowage.dev/pool': String(spec.pool) } },
        spec: { size: String(8 * MiB), volumeMode: 'Filesystem', requestName: pvName, ...spec },
      });
      made.push({ kind: 'pv', name: pvName });
    };
    const other = uniqueName('hand-pv-other');
    const foreign = uniqueName('hand-pv-pool');
    await injectFault(AREA, 'a hand-made PoolVolume for another node', async () => {
      await mkpv(other, { pool, node: `${node}-elsewhere` });
      await new Promise((r) => setTimeout(r, 6_000));
      const pv = await client.get<PoolVolume>(POOL_VOLUMES, other);
      expect(pv.status?.phase, 'another node\'s volume is not realized here').to.equal(undefined);
    }, await guards());
    await injectFault(AREA, 'a hand-made PoolVolume naming a pool this node does not have', async () => {
      await mkpv(foreign, { pool: 'not-a-pool-here', node });
      const pv = await waitFor('the daemon to say why it cannot realize the volume', async () => {
        const p = await client.get<PoolVolume>(POOL_VOLUMES, foreign);
        return p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'False') ? p : undefined;
      }, 60_000);
      expect(pv.status?.phase).to.not.equal('Ready');
      expect(JSON.stringify(pv.status?.conditions)).to.contain('not-a-pool-here');
    }, await guards());
    // Nothing was made under the daemon's pool root for either.
    const state = await readdir(join(dir, 'state')).catch(() => [] as string[]);
    expect(state.filter((n) => n !== 'pools')).to.deep.equal([]);
    // A directory that is not there (yet, or any more) holds nothing, which is what this reads.
    const volumes = await readdir(join(dir, 'state', 'pools', pool, 'volumes')).catch(() => [] as string[]);
    expect(volumes, 'volumes in the pool filesystem').to.not.include(other);
    // A directory that is not there (yet, or any more) holds nothing, which is what this reads.
    expect(await readdir(join(dir, 'state', 'pools')).catch(() => [] as string[])).to.not.include('not-a-pool-here');
  });
});

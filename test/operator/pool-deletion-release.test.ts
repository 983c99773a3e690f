/**
 * Issue 25, item 8: deleting a pool waits until the node agents released every disk it held
 * (NodeDisk Prepared=False, reason NotClaimed), and says what it waits for. Before, the finalizer
 * went as soon as the claims were cleared, so deleting the pools and then Stowage (the uninstall
 * order) could leave disks mounted with Stowage's filesystem and directories behind.
 *
 * The real operator and the real node agent as child processes, the real control plane, loop
 * devices. The agent is stopped while the pool is deleted (a node whose agent is slow or
 * restarting): the pool must stay, naming the disks; once the agent runs again it releases them,
 * the pool goes, and then the rest of the uninstall (the agent and operator stopped, Stowage's
 * objects deleted) leaves no mount, no directory under the agent's root, no signature on the disks
 * and no object of the pool.
 */
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import type { KubeClient } from '../../src/kube/client.js';
import { NODES, PERSISTENT_VOLUMES, STORAGE_CLASSES } from '../../src/kube/resources.js';
import type { PersistentVolume } from '../../src/kube/types.js';
import { installCrds } from '../../src/crds/install.js';
import { NODE_DISKS, STORAGE_POOLS } from '../../src/crds/resource-types.js';
import { run } from '../../src/host/command.js';
import { registerReadyNode } from '../cluster/nodes.js';
import { adminClient, deletePoolForcibly, uniqueName, waitFor } from '../support/cluster.js';
import { LoopDevices, type LoopDevice } from '../support/loop-devices.js';
import { OperatorProcess } from '../support/operator-process.js';
import { condition as poolCondition, type Pool } from '../support/pool-world.js';
import { AgentProcess, condition, mountsOfDevice, nodeDisksOf } from '../node/support.js';

const MiB = 1024 ** 2;
const CONVERGE_MS = 90_000;

describe('pool deletion waits for the node agents to release its disks; the uninstall order leaves nothing (real operator and agent processes)', function () {
  this.timeout(300_000);
  let admin: KubeClient;
  let kubeconfig: string;
  let work: string;
  let operator: OperatorProcess | undefined;
  let agent: AgentProcess | undefined;
  const loops = new LoopDevices();
  let disks: LoopDevice[] = [];
  const node = uniqueName('uninst-node');
  const pool = uniqueName('uninst');
  const root = (): string => path.join(work, 'disks');
  const startAgent = (): void => {
    agent = AgentProcess.start(kubeconfig, node, [
      ...disks.flatMap((d) => ['--allow-device', d.file]),
      '--root',
      root(),
      '--discovery-interval',
      '1',
    ]);
  };
  const poolPvs = async (): Promise<PersistentVolume[]> =>
    (await admin.list<PersistentVolume>(PERSISTENT_VOLUMES, { labelSelector: `stowage.dev/pool=${pool}` })).items;
  const mountsUnderWork = async (): Promise<string[]> =>
    (await readFile('/proc/self/mounts', 'utf8'))
      .split('\n')
      .map((l) => l.split(' ')[1])
      .filter((t): t is string => !!t && t.startsWith(`${work}/`));

  before(async () => {
    const { cp, client } = await adminClient();
    admin = client;
    kubeconfig = cp.kubeconfigPath;
    await installCrds(admin, 'stowage-tests');
    work = await mkdtemp(path.join(tmpdir(), 'stowage-uninst-'));
    await registerReadyNode(cp, node);
    disks = [await loops.create(64 * MiB), await loops.create(64 * MiB)];
    operator = await OperatorProcess.start(kubeconfig);
    startAgent();
    await admin.apply(
      STORAGE_POOLS,
      {
        apiVersion: 'stowage.dev/v1alpha1',
        kind: 'StoragePool',
        metadata: { name: pool },
        spec: {
          mode: 'Local',
          disks: { selector: { matchLabels: { 'stowage.dev/node': node } } },
          local: { volumeMode: 'Filesystem', fsType: 'ext4', cleanup: 'quick' },
        },
      },
      { fieldManager: 'kubectl' },
    );
    await waitFor(
      'both disks prepared and their PVs offered',
      async () => (await poolPvs()).filter((pv) => pv.status?.phase === 'Available').length === 2,
      CONVERGE_MS,
    );
  });

  after(async () => {
    await agent?.stop();
    await operator?.stop();
    if (admin) {
      await deletePoolForcibly(admin, pool).catch(() => undefined);
      for (const pv of await poolPvs().catch(() => [])) await admin.delete(PERSISTENT_VOLUMES, pv.metadata.name!).catch(() => undefined);
      for (const d of await nodeDisksOf(admin, node).catch(() => []))
        await admin.delete(NODE_DISKS, d.metadata.name).catch(() => undefined);
      await admin.delete(NODES, node).catch(() => undefined);
      admin.close();
    }
    if (work)
      for (const t of (await mountsUnderWork()).sort((x, y) => y.length - x.length)) await run('umount', [t]).catch(() => undefined);
    await loops.cleanup();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('keeps the pool, naming its disks, until the agent released them; then the rest of the uninstall leaves no mount, directory, signature or object', async () => {
    const names = (await nodeDisksOf(admin, node)).map((d) => d.metadata.name).sort();
    expect(names).to.have.length(2);
    for (const d of disks) expect(await mountsOfDevice(d.device), `${d.device} prepared`).to.have.length(1);

    await agent!.stop(); // the agent is away while the pool is deleted
    await admin.delete(STORAGE_POOLS, pool);
    const waiting = await waitFor(
      'the pool to say it waits for the agent to release its disks',
      async () => {
        const p = await admin.getIfExists<Pool>(STORAGE_POOLS, pool);
        return poolCondition(p, 'Ready')?.reason === 'DisksReleasing' ? p : undefined;
      },
      CONVERGE_MS,
    );
    const message = poolCondition(waiting, 'Ready')!.message;
    for (const n of names) expect(message).to.contain(n);
    expect(message).to.contain(node);
    expect(waiting.metadata.finalizers).to.include('stowage.dev/pool-protection');
    for (const nd of await nodeDisksOf(admin, node)) expect(nd.spec.claim, `${nd.metadata.name}'s claim cleared`).to.equal(undefined);
    for (const d of disks) expect(await mountsOfDevice(d.device), `${d.device} still mounted: nobody released it yet`).to.have.length(1);

    startAgent();
    await waitFor(
      'the pool gone once the agent released its disks',
      async () => (await admin.getIfExists(STORAGE_POOLS, pool)) === undefined,
      CONVERGE_MS,
    );
    for (const nd of await nodeDisksOf(admin, node)) {
      expect(condition(nd, 'Prepared')?.reason, nd.metadata.name).to.equal('NotClaimed');
      expect(nd.metadata.labels?.['stowage.dev/pool'], `${nd.metadata.name}'s pool label`).to.equal(undefined);
    }

    // The rest of the uninstall order: Stowage itself goes (its processes, then its objects).
    await agent!.stop();
    await operator!.stop();
    for (const nd of await nodeDisksOf(admin, node)) await admin.delete(NODE_DISKS, nd.metadata.name);
    expect(await mountsUnderWork(), "mounts under the agent's root").to.deep.equal([]);
    expect(await readdir(root()), "entries under the agent's root").to.deep.equal([]);
    for (const d of disks) {
      // No output (the tool failed: nothing attached or no signature) reads as nothing found.
      const sig = (await run('blkid', ['-p', '-o', 'value', '-s', 'TYPE', d.device]).catch(() => '')).trim();
      expect(sig, `a signature left on ${d.device}`).to.equal('');
    }
    const losetup = (await run('losetup', ['--list', '--noheadings', '--output', 'BACK-FILE'])).split('\n').map((l) => l.trim());
    expect(
      losetup.filter((f) => f.startsWith(`${work}/`)),
      "loop devices over files under the agent's directories",
    ).to.deep.equal([]);
    expect(await nodeDisksOf(admin, node)).to.deep.equal([]);
    expect(await poolPvs()).to.deep.equal([]);
    expect(await admin.getIfExists(STORAGE_CLASSES, pool), "the pool's StorageClass").to.equal(undefined);
  });
});

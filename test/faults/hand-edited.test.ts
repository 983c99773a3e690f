/**
 * Fault suite, hand-edited objects (issue 18): the real node daemon (`stowage node` as a child
 * process, one loop device on its allow-list), and a user who writes NodeDisks and PoolVolumes by
 * hand: a NodeDisk claimed for a Dynamic pool whose devicePath names a second loop device the test
 * made but did NOT allow, and PoolVolumes for another node or naming a pool that is not this one.
 * The daemon must touch nothing it should not (the forbidden disk's bytes, signature and mounts
 * unchanged; nothing made for the foreign PoolVolumes) and say why on the object. "Nothing
 * happened" is observed, not waited for: NodeDisks and PoolVolumes are watched from before each
 * fault to after it, and kube-apiserver's request counters are read at both ends of the window; the
 * window ends when the daemon has judged the hand-made object twice (a spec change by the test
 * after its first verdict, and the daemon's observedGeneration for it).
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
import { run, runStatus } from '../../src/host/command.js';
import { ifNotFound } from '../../src/util/errors.js';
import { adminClient, uniqueName, waitFor } from '../support/cluster.js';
import type { ControlPlane } from '../cluster/control-plane.js';
import { LoopDevices, type LoopDevice } from '../support/loop-devices.js';
import { AgentProcess, condition, diskOfFile, mountsOfDevice } from '../node/support.js';
import { injectFault, type ExpectedChanges, type FaultPlan, type SurvivalCheck } from './ledger.js';
import { KeptData, apiObjects, loopDevices, mounts, nodeDiskClaims, processes, processesUp, subvolumes } from './fault-checks.js';
import { ObjectWatch, eventChanges, writeCounts, writesBetween } from './watch-window.js';

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
  let cp: ControlPlane;
  const made: { kind: 'nd' | 'pv'; name: string }[] = [];
  /** The forbidden disk's bytes: the data at stake (no volume exists on this node). */
  const kept = new KeptData();

  /** The forbidden disk: no signature, no mount. */
  const forbiddenUntouched: SurvivalCheck = async () => {
    const out: string[] = [];
    // blkid exits 2 when it finds no signature; any other failure must not read as "untouched".
    const probe = await runStatus('blkid', ['-p', '-o', 'value', '-s', 'TYPE', forbidden.device]);
    if (probe.code !== 0 && probe.code !== 2)
      throw new Error(`blkid -p ${forbidden.device} failed (exit ${probe.code}): ${probe.stderr.trim()}`);
    const sig = probe.stdout.trim();
    if (sig) out.push(`a ${sig} signature appeared on the forbidden ${forbidden.device}`);
    for (const m of await mountsOfDevice(forbidden.device)) out.push(`the forbidden ${forbidden.device} is mounted at ${m}`);
    return out;
  };
  /**
   * Every row: the forbidden disk's bytes; NodeDisks (and claims), PoolVolumes, subvolumes, mounts,
   * loop devices and processes before and after; the daemon up, the forbidden disk untouched, and
   * `window` (what the watch and the request counters saw).
   */
  const plan = (window: SurvivalCheck, changes?: () => ExpectedChanges | Promise<ExpectedChanges>): FaultPlan => ({
    data: kept,
    inventory: [
      apiObjects(client, NODE_DISKS, { labelSelector: `stowage.dev/node=${node}` }),
      nodeDiskClaims(client, NODE_DISKS, `stowage.dev/node=${node}`),
      apiObjects(client, POOL_VOLUMES, { filter: (v) => made.some((m) => m.name === v.metadata.name) }),
      subvolumes(() => join(dir, 'state', 'pools', pool, 'volumes')),
      mounts([dir], () => loops.devices()),
      loopDevices(() => [join(allowed.file, '..')]),
      processes(),
    ],
    survival: [processesUp({ 'node daemon': () => !agent!.exited }), forbiddenUntouched, window],
    ...(changes ? { changes } : {}),
  });

  /** A watch on NodeDisks and PoolVolumes and the write counters, from now until `close()`. */
  /**
   * Opens the window: NodeDisks and PoolVolumes watched from a LIST, the write counters read. Closing
   * it gives every change seen (object, kind of event, the fields it changed) and the writes counted.
   */
  const openWindow = async () => {
    const disks = new ObjectWatch(client, NODE_DISKS);
    const volumes = new ObjectWatch(client, POOL_VOLUMES);
    const initialDisks = await disks.start();
    const initialVolumes = await volumes.start();
    const before = await writeCounts(cp, ['nodedisks', 'poolvolumes']);
    return {
      async close() {
        const after = await writeCounts(cp, ['nodedisks', 'poolvolumes']);
        await disks.stop();
        await volumes.stop();
        const changes = [
          ...eventChanges(initialDisks, disks.events).map((c) => ({
            kind: 'NodeDisk',
            name: c.event.object.metadata.name!,
            type: c.event.type,
            fields: c.fields,
            object: c.event.object,
          })),
          ...eventChanges(initialVolumes, volumes.events).map((c) => ({
            kind: 'PoolVolume',
            name: c.event.object.metadata.name!,
            type: c.event.type,
            fields: c.fields,
            object: c.event.object,
          })),
        ];
        return { errors: [...disks.errors, ...volumes.errors], changes, writes: writesBetween(before, after) };
      },
    };
  };
  const describeChange = (c: { kind: string; name: string; type: string; fields: string[] }): string =>
    `${c.type} ${c.kind} ${c.name} (${c.fields.join(', ')})`;
  /** The daemon judged `name` again: the test changes its spec, and waits for the daemon's observedGeneration. */
  const judgedAgain = async (rt: typeof NODE_DISKS, name: string, spec: Record<string, unknown>): Promise<void> => {
    const touched = await client.mergePatch<NodeDisk>(rt, name, { spec }, { fieldManager: 'kubectl-edit' });
    await waitFor(
      `the daemon to judge ${name} again`,
      async () => ((await client.get<NodeDisk>(rt, name)).status?.observedGeneration ?? 0) >= touched.metadata.generation!,
      60_000,
    );
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
    await kept.keepAsIs(forbidden.device);
    cp = admin.cp;
    await client.create(STORAGE_POOLS, {
      apiVersion: 'stowage.dev/v1alpha1',
      kind: 'StoragePool',
      metadata: { name: pool },
      spec: { mode: 'Dynamic', disks: { selector: { matchLabels: { 'stowage.dev/hand': pool } } } },
    });
    agent = AgentProcess.start(admin.cp.kubeconfigPath, node, [
      '--allow-device',
      allowed.device,
      '--root',
      join(dir, 'disks'),
      '--pool-root',
      join(dir, 'state'),
      '--csi-endpoint',
      `unix://${dir}/node.sock`,
      '--kubelet-dir',
      join(dir, 'kubelet'),
      '--discovery-interval',
      '2',
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
      for (const d of (await client.list<NodeDisk>(NODE_DISKS, { labelSelector: `stowage.dev/node=${node}` })).items)
        await client.delete(NODE_DISKS, d.metadata.name);
      await client.delete(STORAGE_POOLS, pool).catch(() => undefined);
      client.close();
    }
    if (dir) for (const m of (await mountsUnder(dir)).sort((a, b) => b.length - a.length)) await run('umount', [m]).catch(() => undefined);
    await loops.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('never prepares a disk off its allow-list, even when a NodeDisk claims it for a pool, and says why', async () => {
    const name = uniqueName('hand-nd');
    let window!: Awaited<ReturnType<typeof openWindow>>;
    /**
     * In the window: changes to the hand-made NodeDisk only (the test's two writes, the daemon's
     * verdict), never its devicePath or claim, never a preparation; every write counted is one the
     * watch shows.
     */
    const quiet: SurvivalCheck = async () => {
      const seen = await window.close();
      const out = [...seen.errors];
      for (const c of seen.changes) {
        if (c.name !== name) out.push(`${describeChange(c)} during the window`);
        else if (
          c.type === 'MODIFIED' &&
          c.fields.some(
            (f) =>
              f === 'status.preparation' ||
              !(f.startsWith('status.') || ['spec.schedulable', 'metadata.annotations', 'metadata.labels'].includes(f)),
          )
        )
          out.push(`${describeChange(c)}: more than the verdict`);
        else if ((c.object as NodeDisk).status?.preparation)
          out.push(`${describeChange(c)}: a preparation reported for the forbidden device`);
      }
      const counted = seen.writes.reduce((n, w) => n + Number(w.split(': ')[1]), 0);
      if (counted > seen.changes.length)
        out.push(
          `writes counted (${seen.writes.join(', ')}) beyond the ${seen.changes.length} changes seen: ${seen.changes.map(describeChange).join('; ')}`,
        );
      return out;
    };
    const made1 = (): ExpectedChanges => ({ appear: { NodeDisk: [name], 'NodeDisk claim': [`${name}→${pool}`] } });
    window = await openWindow();
    await injectFault(AREA, 'a hand-made NodeDisk claiming a device off the allow-list', plan(quiet, made1), async () => {
      await client.create(
        NODE_DISKS,
        {
          apiVersion: 'stowage.dev/v1alpha1',
          kind: 'NodeDisk',
          metadata: { name, labels: { 'stowage.dev/node': node, 'stowage.dev/hand': pool } },
          spec: { nodeName: node, devicePath: forbidden.device, claim: { pool, mode: 'Dynamic' } },
        },
        { fieldManager: 'stowage-operator' },
      );
      made.push({ kind: 'nd', name });
      const nd = await waitFor(
        'the agent to say why it leaves the hand-made disk alone',
        async () => {
          const d = await client.get<NodeDisk>(NODE_DISKS, name);
          return condition(d, 'Prepared')?.status === 'False' && condition(d, 'Present')?.status === 'False' ? d : undefined;
        },
        60_000,
      );
      // A second judgement: none of the daemon's passes may touch the device, and it says the same again.
      await judgedAgain(NODE_DISKS, name, { schedulable: false });
      // The agent never saw the device (it is off the allow-list), so it says it does not see it.
      const why = `${condition(nd, 'Present')?.message} / ${condition(nd, 'Prepared')?.message}`;
      expect(condition(nd, 'Present')?.message, why).to.match(/no longer sees|not attached|allow/i);
    });
  });

  it('prepares the disk it found, not the device a hand-edited devicePath names', async () => {
    const own = (await diskOfFile(client, node, allowed.file))!;
    let window!: Awaited<ReturnType<typeof openWindow>>;
    /**
     * In the window: the edited disk prepared as what the daemon found (never while naming the
     * forbidden device); other objects at most re-judged in their status; nothing made or deleted.
     */
    const quiet: SurvivalCheck = async () => {
      const seen = await window.close();
      const out = [...seen.errors];
      for (const c of seen.changes) {
        // The other hand-made disk's verdict may change with the pool now on the node (status only).
        if (
          c.name !== own.metadata.name &&
          !(c.kind === 'NodeDisk' && c.type === 'MODIFIED' && c.fields.every((f) => f.startsWith('status.') && f !== 'status.preparation'))
        ) {
          out.push(`${describeChange(c)} during the window`);
        } else if ((c.object as NodeDisk).spec.devicePath === forbidden.device && (c.object as NodeDisk).status?.preparation)
          out.push(`NodeDisk ${own.metadata.name} prepared while naming ${forbidden.device}`);
      }
      if (seen.writes.some((w) => w.startsWith('POST') || w.startsWith('DELETE')))
        out.push(`objects made or deleted in the window: ${seen.writes.join(', ')}`);
      return out;
    };
    // The pool's filesystem on the allowed disk: its mount is expected.
    const prepared = (): ExpectedChanges => ({
      appear: { mount: (id) => id.startsWith(`${allowed.device} `), 'NodeDisk claim': [`${own.metadata.name}→${pool}`] },
    });
    window = await openWindow();
    await injectFault(
      AREA,
      'a NodeDisk of the agent edited to name a device off the allow-list, and claimed',
      plan(quiet, prepared),
      async () => {
        await client.mergePatch(
          NODE_DISKS,
          own.metadata.name,
          {
            metadata: { labels: { 'stowage.dev/hand': pool } },
            spec: { devicePath: forbidden.device, claim: { pool, mode: 'Dynamic' } },
          },
          { fieldManager: 'kubectl-edit' },
        );
        const nd = await waitFor(
          'the agent to prepare the disk it really found',
          async () => {
            const d = await client.get<NodeDisk>(NODE_DISKS, own.metadata.name);
            return condition(d, 'Prepared')?.status === 'True' ? d : undefined;
          },
          90_000,
        );
        expect(
          (await run('blkid', ['-p', '-o', 'value', '-s', 'TYPE', allowed.device])).trim(),
          'the allowed disk became the pool filesystem',
        ).to.equal('btrfs');
        expect(nd.status?.preparation?.filesystem).to.equal('btrfs');
        // A second judgement after the preparation: it must not turn to the device the edit named.
        await judgedAgain(NODE_DISKS, own.metadata.name, { schedulable: true });
        expect((await client.get<NodeDisk>(NODE_DISKS, own.metadata.name)).status?.preparation?.filesystem).to.equal('btrfs');
      },
    );
  });

  it('makes nothing for PoolVolumes of another node or of a pool it does not serve, and says why for the latter', async () => {
    const mkpv = async (pvName: string, spec: Record<string, unknown>) => {
      await client.create(POOL_VOLUMES, {
        apiVersion: 'stowage.dev/v1alpha1',
        kind: 'PoolVolume',
        metadata: { name: pvName, labels: { 'stowage.dev/node': String(spec.node), 'stowage.dev/pool': String(spec.pool) } },
        spec: { size: String(8 * MiB), volumeMode: 'Filesystem', requestName: pvName, ...spec },
      });
      made.push({ kind: 'pv', name: pvName });
    };
    const other = uniqueName('hand-pv-other');
    const foreign = uniqueName('hand-pv-pool');
    let window!: Awaited<ReturnType<typeof openWindow>>;
    /** In the window: the test's two PoolVolumes made, the daemon's verdict on the foreign one's status, nothing on the other node's. */
    const quiet: SurvivalCheck = async () => {
      const seen = await window.close();
      const out = [...seen.errors];
      for (const c of seen.changes) {
        if (c.name === other && c.type !== 'ADDED') out.push(`${describeChange(c)}: another node's PoolVolume touched`);
        else if (![other, foreign].includes(c.name)) out.push(`${describeChange(c)} during the window`);
      }
      const spec = seen.writes.filter((w) => !w.includes('/status'));
      if (JSON.stringify(spec) !== JSON.stringify(['POST poolvolumes: 2']))
        out.push(`writes to NodeDisk/PoolVolume objects beyond the test's own: ${seen.writes.join(', ')}`);
      return out;
    };
    window = await openWindow();
    // One fault, two hand-made objects: the daemon's verdict on the second (made after the first, on
    // the same watch) ends the window in which nothing may happen to the first.
    await injectFault(
      AREA,
      'hand-made PoolVolumes for another node and for a pool this node does not have',
      plan(quiet, () => ({ appear: { PoolVolume: [other, foreign] } })),
      async () => {
        await mkpv(other, { pool, node: `${node}-elsewhere` });
        await mkpv(foreign, { pool: 'not-a-pool-here', node });
        const pv = await waitFor(
          'the daemon to say why it cannot realize the volume',
          async () => {
            const p = await client.get<PoolVolume>(POOL_VOLUMES, foreign);
            return p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'False') ? p : undefined;
          },
          60_000,
        );
        expect(pv.status?.phase).to.not.equal('Ready');
        expect(JSON.stringify(pv.status?.conditions)).to.contain('not-a-pool-here');
        expect((await client.get<PoolVolume>(POOL_VOLUMES, other)).status?.phase, "another node's volume is not realized here").to.equal(
          undefined,
        );
      },
    );
    // Nothing was made under the daemon's pool root for either.
    const state = await readdir(join(dir, 'state')).catch(ifNotFound([] as string[]));
    expect(state.filter((n) => n !== 'pools')).to.deep.equal([]);
    const volumes = await readdir(join(dir, 'state', 'pools', pool, 'volumes')).catch(ifNotFound([] as string[]));
    expect(volumes, 'volumes in the pool filesystem').to.not.include(other);
    expect(await readdir(join(dir, 'state', 'pools')).catch(ifNotFound([] as string[]))).to.not.include('not-a-pool-here');
  });
});

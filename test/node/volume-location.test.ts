/**
 * Issue 25, item 7: editing spec.pool of a live PoolVolume made the node daemon report Ready=True
 * on a new, empty subvolume in the other pool, with no error or event, and the data stayed
 * orphaned in the first pool after deletion. Where a volume lives is immutable: CEL
 * `self == oldSelf` in the CRD (checked here in the generated manifest: the test server, v1.20, has
 * no CEL), and the node daemon's own refusal, tested on that server.
 *
 * The real node daemon (`stowage node` with its Dynamic-pool engine) as a child process, two
 * Dynamic pools on two loop devices, the test in the operator's and CSI controller's place (claims
 * and the PoolVolume written by hand under their field managers).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { parse } from 'yaml';
import { DEFAULT_CRD_DIR } from '../../hack/gen-manifests.js';
import type { KubeClient } from '../../src/kube/client.js';
import { EVENTS } from '../../src/kube/resources.js';
import type { KubeObject } from '../../src/kube/types.js';
import { installCrds } from '../../src/crds/install.js';
import { NODE_DISKS, POOL_VOLUMES, STORAGE_POOLS } from '../../src/crds/resource-types.js';
import { POOL_VOLUME_FINALIZER, type PoolVolume } from '../../src/crds/poolvolume.js';
import type { NodeDisk } from '../../src/crds/nodedisk.js';
import { mountsUnder } from '../../src/csi/node-service.js';
import { run } from '../../src/host/command.js';
import { ifNotFound } from '../../src/util/errors.js';
import { adminClient, uniqueName, waitFor } from '../support/cluster.js';
import { LoopDevices, type LoopDevice } from '../support/loop-devices.js';
import { AgentProcess, condition, diskOfFile } from './support.js';

const MiB = 1024 ** 2;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const ready = (pv: PoolVolume | undefined) => pv?.status?.conditions?.find((c) => c.type === 'Ready');

describe('PoolVolume location: spec.pool and spec.node are immutable (CEL in the CRD; the node daemon refuses on servers without CEL)', function () {
  this.timeout(300_000);
  const node = uniqueName('vloc');
  const poolA = uniqueName('vloc-a');
  const poolB = uniqueName('vloc-b');
  const volume = uniqueName('pvol-vloc');
  const loops = new LoopDevices();
  let client: KubeClient;
  let dir = '';
  let agent: AgentProcess | undefined;
  let a: LoopDevice;
  let b: LoopDevice;
  const volumesOf = (pool: string): string => path.join(dir, 'state', 'pools', pool, 'volumes');

  before(async () => {
    const admin = await adminClient();
    client = admin.client;
    await installCrds(client, 'stowage-tests');
    dir = await mkdtemp(path.join(tmpdir(), 'stowage-vloc-'));
    a = await loops.create(256 * MiB);
    b = await loops.create(256 * MiB);
    for (const pool of [poolA, poolB]) {
      await client.create(STORAGE_POOLS, {
        apiVersion: 'stowage.dev/v1alpha1',
        kind: 'StoragePool',
        metadata: { name: pool },
        spec: { mode: 'Dynamic', disks: { selector: { matchLabels: { 'stowage.dev/vloc': pool } } } },
      });
    }
    agent = AgentProcess.start(admin.cp.kubeconfigPath, node, [
      '--allow-device',
      a.file,
      '--allow-device',
      b.file,
      '--root',
      path.join(dir, 'disks'),
      '--pool-root',
      path.join(dir, 'state'),
      '--csi-endpoint',
      `unix://${dir}/node.sock`,
      '--kubelet-dir',
      path.join(dir, 'kubelet'),
      '--discovery-interval',
      '1',
    ]);
    for (const [disk, pool] of [
      [a, poolA],
      [b, poolB],
    ] as const) {
      const nd = await waitFor('the agent to report its disk', () => diskOfFile(client, node, disk.file), 60_000);
      await client.mergePatch(
        NODE_DISKS,
        nd.metadata.name,
        { metadata: { labels: { 'stowage.dev/pool': pool } }, spec: { claim: { pool, mode: 'Dynamic' } } },
        { fieldManager: 'stowage-operator' },
      );
      await waitFor(
        `pool ${pool}'s filesystem on the disk`,
        async () => condition(await client.get<NodeDisk>(NODE_DISKS, nd.metadata.name), 'Prepared')?.status === 'True',
        90_000,
      );
    }
  });

  after(async () => {
    if (client) {
      await client.jsonPatch(POOL_VOLUMES, volume, [{ op: 'remove', path: '/metadata/finalizers' }]).catch(() => undefined);
      await client.delete(POOL_VOLUMES, volume).catch(() => undefined);
    }
    await agent?.stop();
    if (client) {
      for (const d of (await client.list(NODE_DISKS, { labelSelector: `stowage.dev/node=${node}` })).items)
        await client.delete(NODE_DISKS, d.metadata.name!);
      for (const pool of [poolA, poolB]) await client.delete(STORAGE_POOLS, pool).catch(() => undefined);
      client.close();
    }
    if (dir) for (const m of (await mountsUnder(dir)).sort((x, y) => y.length - x.length)) await run('umount', [m]).catch(() => undefined);
    await loops.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('the generated CRDs carry self == oldSelf on the fields that name where a volume or snapshot lives', async () => {
    for (const [file, fields] of [
      ['stowage.dev_poolvolumes.yaml', ['pool', 'node']],
      ['stowage.dev_poolsnapshots.yaml', ['pool', 'node', 'sourceVolume']],
    ] as const) {
      const crd = parse(await readFile(path.join(DEFAULT_CRD_DIR, file), 'utf8'));
      const spec = crd.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties;
      for (const f of fields) {
        expect(spec[f]['x-kubernetes-validations'], `${file} spec.${f}`).to.deep.include({
          rule: 'self == oldSelf',
          message: `${f} is immutable: the data is where it was made; create a new object to place data elsewhere`,
        });
      }
    }
  });

  it('refuses an edited spec.pool: Ready=False LocationImmutable with an event, nothing made in the other pool, the data kept; deleting removes it where it is', async () => {
    await client.create(
      POOL_VOLUMES,
      {
        apiVersion: 'stowage.dev/v1alpha1',
        kind: 'PoolVolume',
        metadata: { name: volume, labels: { 'stowage.dev/node': node, 'stowage.dev/pool': poolA }, finalizers: [POOL_VOLUME_FINALIZER] },
        spec: { pool: poolA, node, size: String(16 * MiB), volumeMode: 'Filesystem', requestName: volume },
      },
      { fieldManager: 'stowage-csi' },
    );
    const made = await waitFor(
      'the volume realized in pool A',
      async () => {
        const pv = await client.get<PoolVolume>(POOL_VOLUMES, volume);
        return ready(pv)?.status === 'True' ? pv : undefined;
      },
      90_000,
    );
    const where = made.status!.path!;
    expect(where.startsWith(volumesOf(poolA))).to.equal(true);
    const data = randomBytes(MiB);
    await writeFile(path.join(where, 'tenant'), data);

    const edited = await client.mergePatch<PoolVolume>(POOL_VOLUMES, volume, { spec: { pool: poolB } }, { fieldManager: 'kubectl-edit' });
    const refused = await waitFor(
      'the daemon to refuse the new location',
      async () => {
        const pv = await client.get<PoolVolume>(POOL_VOLUMES, volume);
        const c = ready(pv);
        return c?.reason === 'LocationImmutable' && c.observedGeneration === edited.metadata.generation ? pv : undefined;
      },
      60_000,
    );
    const c = ready(refused)!;
    expect(c.status).to.equal('False');
    expect(c.message)
      .to.contain(`spec.pool was changed from ${poolA} to ${poolB}`)
      .and.contain('immutable')
      .and.contain(`kubectl patch poolvolume ${volume}`);
    expect(refused.status?.path, 'status.path still names the data').to.equal(where);
    expect(refused.status?.location).to.deep.equal({ pool: poolA, node });
    const events = await waitFor(
      'a Warning event',
      async () => {
        const es = (
          await client.list<KubeObject & { type: string; reason: string; message: string }>(EVENTS, {
            namespace: 'default',
            fieldSelector: `involvedObject.name=${volume}`,
          })
        ).items.filter((e) => e.type === 'Warning' && e.reason === 'LocationImmutable');
        return es.length > 0 ? es : undefined;
      },
      30_000,
    );
    expect(events[0].message).to.contain(poolB);
    expect(await stat(path.join(volumesOf(poolB), volume)).then(() => 'made', ifNotFound('absent')), 'a volume in pool B').to.equal(
      'absent',
    );
    expect(sha(await readFile(path.join(where, 'tenant')))).to.equal(sha(data));

    // Set back as the message says: served again from where it is.
    await client.mergePatch(POOL_VOLUMES, volume, { spec: { pool: poolA } }, { fieldManager: 'kubectl-edit' });
    await waitFor(
      'Ready again in pool A',
      async () => ready(await client.get<PoolVolume>(POOL_VOLUMES, volume))?.status === 'True',
      60_000,
    );
    expect(sha(await readFile(path.join(where, 'tenant')))).to.equal(sha(data));

    // Edited again and deleted: the data is removed from pool A (not orphaned), nothing left in B.
    await client.mergePatch(POOL_VOLUMES, volume, { spec: { pool: poolB } }, { fieldManager: 'kubectl-edit' });
    await client.delete(POOL_VOLUMES, volume);
    await waitFor(
      'the PoolVolume gone (its data removed)',
      async () => (await client.getIfExists(POOL_VOLUMES, volume)) === undefined,
      60_000,
    );
    expect(await stat(where).then(() => 'left', ifNotFound('removed')), 'the data in pool A').to.equal('removed');
    expect(await stat(path.join(volumesOf(poolB), volume)).then(() => 'made', ifNotFound('absent')), 'a volume in pool B').to.equal(
      'absent',
    );
  });
});

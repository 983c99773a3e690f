/**
 * Fault suite, full pools (issue 18): a Dynamic pool on a real btrfs loop device filled to the brim
 * through the real CSI controller, with the real operator running beside it. CreateVolume must
 * refuse with RESOURCE_EXHAUSTED; a volume past its quota must fail its writes while its neighbour
 * keeps writing, with the data written before intact (checksums); the operator's capacity figures
 * must agree with the controller's, and the capacity alert evaluated by promtool against the
 * operator's own metrics must fire. The faults are the requests that reach Stowage with the pool
 * full (CreateVolume, writes past a quota); filling the pool and reading its figures are set-up and
 * checks, not counted. Data at stake in every row: files written into both volumes before the pool
 * was filled, read back with O_DIRECT.
 */
import { join } from 'node:path';
import { expect } from 'chai';
import { stringify as toYaml } from 'yaml';
import { TOPOLOGY_KEY } from '../../src/csi/identity.js';
import { NODE_DISKS, POOL_SNAPSHOTS, POOL_VOLUMES, STORAGE_POOLS } from '../../src/crds/resource-types.js';
import type { StoragePool } from '../../src/crds/storagepool.js';
import { ALERTS, renderPromtoolTests, renderRuleGroups } from '../../src/observability/alerts.js';
import { OPERATOR_JOB, type AlertDefinition } from '../../src/observability/alert-definition.js';
import { tryParseBytes } from '../../src/util/quantity.js';
import { run } from '../../src/host/command.js';
import { NODES, STORAGE_CLASSES } from '../../src/kube/resources.js';
import { registerReadyNode } from '../cluster/nodes.js';
import { adminClient, deletePoolForcibly, waitFor } from '../support/cluster.js';
import { OperatorProcess } from '../support/operator-process.js';
import { promtool, tempDir } from '../observability/promtool.js';
import { DynamicPoolFixture, call, codeOf } from '../csi/fixture.js';
import { injectFault, type FaultPlan } from './ledger.js';
import {
  KeptData,
  driverObjects,
  apiObjects,
  conditionsReach,
  loopDevices,
  mounts,
  processes,
  processesUp,
  subvolumes,
} from './fault-checks.js';

const AREA = 'full pools';
const MiB = 1024 ** 2;
const mountCap = { mount: { fs_type: '', mount_flags: [] }, access_mode: { mode: 'SINGLE_NODE_WRITER' } };

/** Go's humanizePercentage ("%.4g%%" of value * 100), for the alert's rendered description. */
const humanizePercentage = (v: number): string => `${Number((v * 100).toPrecision(4))}%`;

describe('faults: a full Dynamic pool (real CSI services, real operator, promtool)', function () {
  this.timeout(300_000);
  const fx = new DynamicPoolFixture();
  let operator: OperatorProcess | undefined;
  const written = new KeptData();
  const vols: { id: string; staging: string; target: string }[] = [];

  /**
   * Every row: the data written so far; PoolVolumes, subvolumes, the pool's StorageClass, mounts,
   * loop devices and processes before and after; the operator and both CSI services up, the disk
   * prepared, and the pool saying it is low on capacity.
   */
  const plan = (): FaultPlan => ({
    data: written,
    inventory: [
      apiObjects(fx.client, POOL_VOLUMES, { labelSelector: `stowage.dev/pool=${fx.pool}` }),
      apiObjects(fx.client, POOL_SNAPSHOTS, { labelSelector: `stowage.dev/pool=${fx.pool}` }),
      subvolumes(() => join(fx.dir, 'root', 'pools', fx.pool, 'volumes')),
      apiObjects(fx.client, STORAGE_CLASSES, { filter: (sc) => sc.metadata.name === fx.pool }),
      mounts([fx.dir], () => fx.loops.devices()),
      loopDevices(() => [fx.dir]),
      ...driverObjects(fx.client),
      processes(),
    ],
    survival: [
      processesUp({
        operator: () => !operator!.exited,
        'CSI controller': () => call(fx.identity, 'Probe', {}, 5_000).then((r) => r.ready.value === true),
        'CSI node service': () => call(fx.nodeIdentity, 'Probe', {}, 5_000).then((r) => r.ready.value === true),
      }),
      conditionsReach(fx.client, NODE_DISKS, () => fx.disks[0].name, { Prepared: 'True' }),
      conditionsReach(fx.client, STORAGE_POOLS, () => fx.pool, { CapacityAvailable: 'False/LowCapacity' }),
    ],
  });
  const create = (name: string, bytes: number | bigint) =>
    call(fx.controllerClient, 'CreateVolume', {
      name,
      capacity_range: { required_bytes: String(bytes) },
      volume_capabilities: [mountCap],
      parameters: { pool: fx.pool },
    });
  const available = async (): Promise<bigint> =>
    BigInt(
      (
        await call(fx.controllerClient, 'GetCapacity', {
          volume_capabilities: [mountCap],
          parameters: { pool: fx.pool },
          accessible_topology: { segments: { [TOPOLOGY_KEY]: fx.node } },
        })
      ).available_capacity,
    );
  const writeChecked = (file: string, bytes: number): Promise<void> => written.write(file, bytes);

  before(async () => {
    await fx.start({ diskSizes: [1024 ** 3], confinePaths: true });
    const { cp, client } = await adminClient();
    client.close();
    // The operator selects only disks of nodes in the cluster.
    await registerReadyNode(cp, fx.node);
    operator = await OperatorProcess.start(cp.kubeconfigPath);
    for (const name of ['pvc-full-a', 'pvc-full-b']) {
      const id = (await create(name, 32 * MiB)).volume.volume_id;
      const v = { id, staging: join(fx.dir, 'pods', 'staging', name), target: join(fx.dir, 'pods', name, 'mount') };
      await call(fx.nodeClient, 'NodeStageVolume', { volume_id: id, staging_target_path: v.staging, volume_capability: mountCap });
      await call(fx.nodeClient, 'NodePublishVolume', {
        volume_id: id,
        staging_target_path: v.staging,
        target_path: v.target,
        volume_capability: mountCap,
      });
      vols.push(v);
      await writeChecked(join(v.target, 'first.bin'), 4 * MiB);
    }
    // The operator's own objects for the pool exist before the first fault (set-up, not a leak of it).
    await waitFor("the operator to make the pool's StorageClass", () => fx.client.getIfExists(STORAGE_CLASSES, fx.pool), 60_000);
    await waitFor(
      'the operator to report on its driver objects for the pool',
      async () => (await fx.client.get<StoragePool>(STORAGE_POOLS, fx.pool)).status?.conditions?.some((c) => c.type === 'DriverReady'),
      60_000,
    );
  });
  after(async () => {
    for (const v of vols) {
      await call(fx.nodeClient, 'NodeUnpublishVolume', { volume_id: v.id, target_path: v.target }).catch(() => undefined);
      await call(fx.nodeClient, 'NodeUnstageVolume', { volume_id: v.id, staging_target_path: v.staging }).catch(() => undefined);
    }
    await fx.cleanup();
    await operator?.stop();
    const { client } = await adminClient();
    await deletePoolForcibly(client, fx.pool).catch(() => undefined);
    await client.delete(NODES, fx.node).catch(() => undefined);
    client.close();
  });

  it('refuses CreateVolume with RESOURCE_EXHAUSTED once the pool is full, and says how much is free', async () => {
    const free = await available();
    expect(free > 64n * BigInt(MiB)).to.equal(true);
    // Set-up: fill the pool to the brim.
    const rest = (free / BigInt(MiB)) * BigInt(MiB);
    await create('pvc-full-rest', rest);
    expect(await available()).to.equal(free - rest);
    for (const [what, bytes] of [
      ['1 MiB', MiB],
      ['the same again', Number(free)],
      ['1 GiB', 1024 ** 3],
    ] as const) {
      await injectFault(AREA, `CreateVolume of ${what} in the full pool`, plan(), async () => {
        let message = '';
        const code = await codeOf(
          create(`pvc-full-more-${bytes}`, bytes).catch((err: Error) => {
            message = err.message;
            throw err;
          }),
        );
        expect(code).to.equal('RESOURCE_EXHAUSTED');
        expect(message).to.match(/free|room|fit/i);
      });
    }
  });

  it("fails writes past a volume's quota while its neighbour keeps writing, and loses nothing written before", async () => {
    const [a, b] = vols;
    await writeChecked(join(a.target, 'before.bin'), 16 * MiB);
    await injectFault(AREA, 'write past the quota of a volume in a full pool', plan(), async () => {
      const over = await run('dd', ['if=/dev/urandom', `of=${join(a.target, 'too-much')}`, 'bs=1M', 'count=64', 'conv=fsync']).then(
        () => 'written',
        (e: Error) => e.message,
      );
      // btrfs reports the qgroup limit as EDQUOT ("Disk quota exceeded"); ENOSPC would say the pool itself is full.
      expect(over).to.match(/quota exceeded|no space left/i);
      await run('rm', ['-f', join(a.target, 'too-much')]);
      // The neighbour is not affected by its neighbour's full quota nor by the full pool.
      await writeChecked(join(b.target, 'neighbour.bin'), 16 * MiB);
      // And the full volume can be written again once something was removed.
      await writeChecked(join(a.target, 'after.bin'), 4 * MiB);
    });
  });

  it("keeps the pool's capacity figures true, and the capacity alert fires on the operator's metrics", async () => {
    const free = await available();
    const pool = await waitFor(
      'the operator to count every volume of the full pool',
      async () => {
        const p = await fx.client.get<StoragePool>(STORAGE_POOLS, fx.pool);
        return tryParseBytes(p.status?.capacity?.available) === free && p.status?.counts?.volumes?.bound === 3 ? p : undefined;
      },
      60_000,
    ).catch(async (err) => {
      const p = await fx.client.get<StoragePool>(STORAGE_POOLS, fx.pool);
      throw new Error(`${err}: status ${JSON.stringify(p.status)}\n${operator!.output.join('').slice(-2000)}`);
    });
    // A check of the full pool's figures, not a fault.
    {
      const figures = pool.status!.capacity!;
      const [usable, allocated, avail] = [figures.usable, figures.allocated, figures.available].map((q) => tryParseBytes(q)!);
      const volumes = await fx.poolVolumes();
      expect(allocated, 'allocated = the sum of the volumes').to.equal(volumes.reduce((s, v) => s + BigInt(v.spec.size), 0n));
      expect(avail, 'available = usable - allocated').to.equal(usable - allocated);
      expect(pool.status!.conditions!.find((c) => c.type === 'CapacityAvailable')).to.deep.include({
        status: 'False',
        reason: 'LowCapacity',
      });
      // The operator's metrics say the same, and the alert rule fires on them.
      const metric = (kind: string) => operator!.metric('stowage_pool_capacity_bytes', { pool: fx.pool, kind });
      const [mUsable, mAvailable] = [await metric('usable'), await metric('available')];
      const watermark = await operator!.metric('stowage_pool_capacity_low_watermark_ratio', { pool: fx.pool });
      expect([mUsable, mAvailable]).to.deep.equal([Number(usable), Number(avail)]);
      const rule = ALERTS.find((x) => x.alert === 'StowagePoolCapacityLow')!;
      const labels = { job: OPERATOR_JOB, instance: 'op:8080', pool: fx.pool };
      const series = (name: string, extra: Record<string, string> = {}) =>
        `${name}{${Object.entries({ ...labels, ...extra })
          .map(([k, v]) => `${k}="${v}"`)
          .join(',')}}`;
      const observed: AlertDefinition = {
        ...rule,
        cases: [
          {
            name: 'the full pool, as the operator reports it',
            series: {
              [series('stowage_pool_capacity_bytes', { kind: 'usable' })]: `${mUsable}x20`,
              [series('stowage_pool_capacity_bytes', { kind: 'available' })]: `${mAvailable}x20`,
              [series('stowage_pool_capacity_low_watermark_ratio')]: `${watermark}x20`,
            },
            at: '15m',
            expect: [
              {
                labels,
                description: rule.description
                  .replace('{{ $labels.pool }}', fx.pool)
                  .replace('{{ $value | humanizePercentage }}', humanizePercentage(mAvailable / mUsable)),
              },
            ],
          },
        ],
      };
      const tmp = await tempDir('faults-promtool');
      try {
        await tmp.write('rules.yaml', toYaml(renderRuleGroups()));
        await tmp.write('tests.yaml', toYaml(renderPromtoolTests('rules.yaml', [observed])));
        const result = await promtool(['test', 'rules', 'tests.yaml'], { cwd: tmp.dir });
        expect(result.code, result.output).to.equal(0);
      } finally {
        await tmp.cleanup();
      }
    }
  });
});

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import type { KubeClient } from '../../src/kube/client.js';
import { PERSISTENT_VOLUMES } from '../../src/kube/resources.js';
import { installCrds } from '../../src/crds/install.js';
import { NODE_DISKS } from '../../src/crds/resource-types.js';
import { adminClient, uniqueName } from '../support/cluster.js';
import { FaultLedger, ledgerTable, type FaultPlan } from './ledger.js';
import { KeptData, apiObjects, conditionsReach, processesUp } from './fault-checks.js';

const none = { inventory: [{ kind: 'thing', list: () => [] }], survival: [() => []] };

describe('fault ledger', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-ledger-'));
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('counts a fault as survived only when its body passed and its checks found nothing, with the bytes it checked', async () => {
    const l = new FaultLedger();
    const kept = new KeptData();
    await kept.write(join(dir, 'a'), 8192);
    expect(await l.inject('area', 'clean', { ...none, data: kept }, async () => 42)).to.equal(42);
    const failed = await l
      .inject('area', 'body fails', { ...none, data: { na: 'nothing written yet' } }, async () => {
        throw new Error('wrong code');
      })
      .then(
        () => 'passed',
        (e: Error) => e.message,
      );
    expect(failed).to.contain('not survived: wrong code');
    const s = l.summary()!;
    expect(l.rowList().map((r) => [r.area, r.injected, r.survived, r.bytesChecked, r.bytesLost, r.notApplicable])).to.deep.equal([
      ['area', 2, 1, 8192, 0, 1],
    ]);
    expect(s.table).to.contain('| area | 2 | 1 | 0 | 8 KiB in 1 of 2 (1 n/a) | 0 |').and.to.contain('- area: nothing written yet');
  });

  it('fails a fault that lost a byte written before it (read back with O_DIRECT), and one whose data check read nothing', async () => {
    const l = new FaultLedger();
    const kept = new KeptData();
    const file = join(dir, 'b');
    await kept.write(file, 4096);
    const lost = await l
      .inject('area', 'one byte changed', { ...none, data: kept }, async () => {
        const h = await import('node:fs/promises').then((fs) => fs.open(file, 'r+'));
        await h.write(Buffer.from([0]), 0, 1, 100);
        await h.sync();
        await h.close();
      })
      .then(
        () => 'passed',
        (e: Error) => e.message,
      );
    expect(lost).to.contain('lost 4096 of 4096 bytes').and.contain(`${file} differs`);
    // Data written inside the fault is not data at stake: the frozen set is empty, and that fails.
    const late = new KeptData();
    const empty = await l
      .inject('area', 'nothing kept before', { ...none, data: late }, async () => {
        await late.write(join(dir, 'c'), 4096);
      })
      .then(
        () => 'passed',
        (e: Error) => e.message,
      );
    expect(empty).to.contain('the data check read 0 bytes');
    expect(l.rowList()[0]).to.deep.include({ injected: 2, survived: 0, bytesLost: 4096 });
  });

  it('refuses a plan that would count nothing: no inventory, no survival check', async () => {
    const l = new FaultLedger();
    const bad = (plan: FaultPlan) =>
      l
        .inject('area', 'x', plan, async () => undefined)
        .then(
          () => 'passed',
          (e: Error) => e.message,
        );
    expect(await bad({ data: { na: 'x' }, inventory: [], survival: [() => []] })).to.contain('no inventory');
    expect(await bad({ data: { na: 'x' }, inventory: none.inventory, survival: [] })).to.contain('no survival check');
    expect(l.rowList()).to.deep.equal([]);
  });

  describe('against the real API server', () => {
    let client: KubeClient;
    const pv = uniqueName('ledger-pv');
    const pv2 = uniqueName('ledger-pv');
    const disk = uniqueName('ledger-disk');
    before(async () => {
      client = (await adminClient()).client;
      await installCrds(client, 'stowage-tests');
    });
    after(async () => {
      await client.delete(PERSISTENT_VOLUMES, pv).catch(() => undefined);
      await client.delete(PERSISTENT_VOLUMES, pv2).catch(() => undefined);
      await client.delete(NODE_DISKS, disk).catch(() => undefined);
      client.close();
    });

    it('counts a PV left behind as leaked, by kind, and a PV the fault was meant to make as not leaked', async () => {
      const l = new FaultLedger();
      const plan = (appear: string[]): FaultPlan => ({
        data: { na: 'no volume' },
        inventory: [
          apiObjects(client, PERSISTENT_VOLUMES, {
            labelSelector: `stowage.dev/ledger-test=${pv}`,
            filter: (o) => !o.metadata.deletionTimestamp,
          }),
        ],
        survival: [() => []],
        changes: () => ({ appear: { PersistentVolume: appear } }),
      });
      const leaked = await l
        .inject('area', 'a PV left behind', plan([]), async () => {
          await client.create(PERSISTENT_VOLUMES, {
            metadata: { name: pv, labels: { 'stowage.dev/ledger-test': pv } },
            spec: { capacity: { storage: '1Mi' }, accessModes: ['ReadWriteOnce'], hostPath: { path: '/nonexistent' } },
          });
        })
        .then(
          () => 'passed',
          (e: Error) => e.message,
        );
      expect(leaked).to.contain(`leaked 1 PersistentVolume: ${pv}`);
      await client.delete(PERSISTENT_VOLUMES, pv);
      const meant = new FaultLedger();
      await meant.inject('area', 'a PV the fault makes on purpose', plan([pv2]), async () => {
        await client.create(PERSISTENT_VOLUMES, {
          metadata: { name: pv2, labels: { 'stowage.dev/ledger-test': pv } },
          spec: { capacity: { storage: '1Mi' }, accessModes: ['ReadWriteOnce'], hostPath: { path: '/nonexistent' } },
        });
      });
      expect(ledgerTable(l.rowList())).to.contain('| area | 1 | 0 | 1 (1 PersistentVolume) | n/a | n/a |');
      expect(ledgerTable(meant.rowList())).to.contain('| area | 1 | 1 | 0 | n/a | n/a |');
      // A thing that vanished is not survived.
      const vanished = await meant
        .inject('area', 'a PV deleted', plan([]), async () => {
          await client.delete(PERSISTENT_VOLUMES, pv2);
        })
        .then(
          () => 'passed',
          (e: Error) => e.message,
        );
      expect(vanished).to.contain(`PersistentVolume vanished: ${pv2}`);
    });

    it('fails a fault whose disk never reaches the expected condition, or whose process is down', async () => {
      const l = new FaultLedger();
      await client.create(NODE_DISKS, {
        apiVersion: 'stowage.dev/v1alpha1',
        kind: 'NodeDisk',
        metadata: { name: disk },
        spec: { nodeName: 'nowhere', devicePath: '/dev/none' },
      });
      const missing = await l
        .inject(
          'area',
          'condition never reached',
          {
            data: { na: 'no volume' },
            inventory: none.inventory,
            survival: [
              conditionsReach(client, NODE_DISKS, () => disk, { Present: 'True' }, 1_000),
              processesUp({ 'the operator': () => false }),
            ],
          },
          async () => undefined,
        )
        .then(
          () => 'passed',
          (e: Error) => e.message,
        );
      expect(missing).to.contain(`NodeDisk ${disk} Present=undefined, expected True`).and.contain('the operator is not running');
      expect(l.rowList()[0]).to.deep.include({ injected: 1, survived: 0 });
    });
  });

  it('prints the schema rejections on a line of their own, and n/a where no data was at stake', () => {
    const l = new FaultLedger();
    l.schemaRejection('StoragePool');
    l.schemaRejection('StoragePool');
    l.schemaRejection('NodeDisk');
    expect(l.summary()!.table).to.contain('the field path): 3 (1 NodeDisk, 2 StoragePool).');
    expect(new FaultLedger().summary()).to.equal(undefined);
    expect(ledgerTable([])).to.contain('| **total** | 0 | 0 | 0 | n/a | n/a |');
  });
});

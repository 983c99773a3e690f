import { expect } from 'chai';
import { FaultLedger, ledgerTable } from './ledger.js';

describe('fault ledger', () => {
  it('counts a fault as survived only when its body passed and its guards found nothing', async () => {
    const l = new FaultLedger();
    expect(await l.inject('area', 'clean', async () => 42, [{ leaks: () => [], lostBytes: () => 0 }])).to.equal(42);
    const failed = await l.inject('area', 'body fails', async () => {
      throw new Error('wrong code');
    }).then(() => 'passed', (e: Error) => e.message);
    expect(failed).to.contain('not survived: wrong code');
    const leaked = await l.inject('area', 'leaks', async () => undefined, [{ leaks: () => ['mount appeared: /x'] }, { lostBytes: async () => 4096 }]).then(() => 'passed', (e: Error) => e.message);
    expect(leaked).to.contain('leaked: mount appeared: /x').and.to.contain('lost 4096 bytes');
    const broken = await l.inject('other', 'guard throws', async () => undefined, [{ leaks: () => { throw new Error('cannot read'); } }]).then(() => 'passed', (e: Error) => e.message);
    expect(broken).to.contain('guard failed');
    const s = l.summary()!;
    expect(l.rowList().map((r) => [r.area, r.injected, r.survived, r.leaked, r.lostBytes])).to.deep.equal([['area', 3, 1, 1, 4096], ['other', 1, 0, 1, 0]]);
    expect(s.problems).to.have.length(2);
    expect(s.table).to.contain('| area | 3 | 1 | 1 | 4096 |').and.to.contain('| **total** | 4 | 1 | 2 | 4096 |');
  });

  it('has nothing to print when no fault ran', () => {
    expect(new FaultLedger().summary()).to.equal(undefined);
    expect(ledgerTable([])).to.contain('| **total** | 0 | 0 | 0 | 0 |');
  });
});

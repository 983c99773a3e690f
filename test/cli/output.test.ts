import { expect } from 'chai';
import { capacityBar, humanBytes, renderTable, styleFor, truncate } from '../../src/cli/kubectl/output.js';

describe('kubectl stowage output', () => {
  it('colour only on a terminal, and never with NO_COLOR (any value) or TERM=dumb', () => {
    expect(styleFor({ isTTY: true, columns: 90 }, {})).to.deep.equal({ color: true, columns: 90 });
    expect(styleFor({ isTTY: true, columns: 90 }, { NO_COLOR: '' }).color).to.equal(false);
    expect(styleFor({ isTTY: true, columns: 90 }, { NO_COLOR: '1' }).color).to.equal(false);
    expect(styleFor({ isTTY: true, columns: 90 }, { TERM: 'dumb' }).color).to.equal(false);
    expect(styleFor({}, { COLUMNS: '200' })).to.deep.equal({ color: false, columns: 200 });
    expect(styleFor({}, {})).to.deep.equal({ color: false, columns: 120 });
  });

  it('tables align by visible width, with colour codes added after padding', () => {
    const plain = renderTable(
      ['A', 'BB'],
      [
        ['xxx', 'y'],
        [{ text: 'z', tone: 'bad' }, 'long value'],
      ],
      { color: false, columns: 80 },
    );
    expect(plain).to.equal('A    BB\nxxx  y\nz    long value\n');
    const coloured = renderTable(
      ['A', 'BB'],
      [
        [{ text: 'z', tone: 'bad' }, 'v'],
        ['xyz', 'w'],
      ],
      { color: true, columns: 80 },
    );
    expect(coloured).to.equal('A    BB\n\x1b[31mz  \x1b[39m  v\nxyz  w\n');
  });

  it('sizes for people and a capacity bar that shows a little use', () => {
    expect([0n, 1023n, 1024n, 1536n, 1020n * 1024n * 1024n, 5n << 30n, undefined].map(humanBytes)).to.deep.equal([
      '0B',
      '1023B',
      '1Ki',
      '1.5Ki',
      '1020Mi',
      '5Gi',
      '-',
    ]);
    expect(capacityBar(0n, 0n, 100n, 12).text).to.equal('[░░░░░░░░░░]');
    expect(capacityBar(1n, 50n, 100n, 12).text).to.equal('[█▒▒▒▒░░░░░]');
    expect(capacityBar(100n, 100n, 100n, 7).text).to.equal('[█████]');
    expect(capacityBar(0n, 0n, 0n, 6).text).to.equal('[    ]');
    expect(truncate('abcdef', 4)).to.equal('abc…');
  });
});

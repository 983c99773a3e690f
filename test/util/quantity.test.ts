import { expect } from 'chai';
import { formatBytes, parseBytes, tryParseBytes } from '../../src/util/quantity.js';

describe('quantities', () => {
  it('parse binary, decimal, exponent and plain forms exactly', () => {
    expect(parseBytes('10Gi')).to.equal(10n * 2n ** 30n);
    expect(parseBytes('1.5Ki')).to.equal(1536n);
    expect(parseBytes('2T')).to.equal(2_000_000_000_000n);
    expect(parseBytes('1e9')).to.equal(1_000_000_000n);
    expect(parseBytes('4096')).to.equal(4096n);
    expect(parseBytes('16Ei')).to.equal(2n ** 64n, 'beyond 2^53 without loss');
  });

  it('round a fractional byte up', () => {
    expect(parseBytes('0.5')).to.equal(1n);
    expect(parseBytes('1.0001k')).to.equal(1001n);
  });

  it('refuse what is not a size, saying how to write one', () => {
    expect(() => parseBytes('-1Gi')).to.throw(/not a size.*10Gi/);
    expect(() => parseBytes('10GB')).to.throw(/not a size/);
    expect(() => parseBytes('1e999999999')).to.throw(/out of range/);
    expect(tryParseBytes('nope')).to.equal(undefined);
    expect(tryParseBytes(undefined)).to.equal(undefined);
  });

  it('format in the canonical form the API server stores', () => {
    expect(formatBytes(10n * 2n ** 30n)).to.equal('10Gi');
    expect(formatBytes(1536n * 1024n)).to.equal('1536Ki');
    expect(formatBytes(4_096_000n)).to.equal('4000Ki');
    expect(formatBytes(5_000_000n)).to.equal('5M');
    expect(formatBytes(1500n)).to.equal('1500');
    expect(formatBytes(0n)).to.equal('0');
  });

  it('round-trip', () => {
    for (const n of [1n, 1023n, 1024n, 10n ** 12n, 2n ** 62n + 7n]) expect(parseBytes(formatBytes(n))).to.equal(n);
  });
});

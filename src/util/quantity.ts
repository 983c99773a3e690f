/**
 * Kubernetes resource quantities for byte sizes, as bigint: JavaScript numbers lose precision past
 * 2^53 bytes (8 PiB), and a pool can be bigger than that.
 *
 * {@link formatBytes} writes the canonical form the API server itself would store, so an object we
 * apply comes back byte for byte and a converged reconcile sees no difference.
 */

const BINARY: ReadonlyArray<[string, bigint]> = [
  ['Ei', 1n << 60n],
  ['Pi', 1n << 50n],
  ['Ti', 1n << 40n],
  ['Gi', 1n << 30n],
  ['Mi', 1n << 20n],
  ['Ki', 1n << 10n],
];
const DECIMAL: ReadonlyArray<[string, bigint]> = [
  ['E', 10n ** 18n],
  ['P', 10n ** 15n],
  ['T', 10n ** 12n],
  ['G', 10n ** 9n],
  ['M', 10n ** 6n],
  ['k', 10n ** 3n],
];
const MULTIPLIERS = new Map<string, bigint>([...BINARY, ...DECIMAL, ['', 1n]]);
/** Largest decimal exponent accepted (`1e30`). */
const MAX_EXPONENT = 30n;
const QUANTITY = /^\+?(\d+(?:\.\d*)?|\.\d+)(?:([KMGTPE]i|[kMGTPE])|[eE]([+-]?\d+))?$/;

/**
 * Parses a quantity (`10Gi`, `1.5T`, `500M`, `1e9`, `4096`) into bytes, rounding a fractional byte
 * up (as Kubernetes does). Throws, saying what is wrong, for anything else.
 */
export function parseBytes(quantity: string): bigint {
  const match = QUANTITY.exec(quantity.trim());
  if (!match) {
    throw new Error(`"${quantity}" is not a size; write a whole number of bytes or a quantity such as 500Mi, 10Gi or 2T`);
  }
  const [, number = '', suffix = '', exponent] = match as (string | undefined)[];
  const [whole = '0', fraction = ''] = number.split('.');
  let numerator = BigInt(`${whole}${fraction}` || '0');
  let denominator = 10n ** BigInt(fraction.length);
  if (exponent !== undefined) {
    const e = BigInt(exponent);
    // 10^30 bytes is far past any disk; a larger exponent is a typo or an attempt to exhaust memory.
    if (e > MAX_EXPONENT || e < -MAX_EXPONENT) throw new Error(`"${quantity}" is out of range; sizes are written like 500Mi, 10Gi or 2T`);
    if (e >= 0n) numerator *= 10n ** e;
    else denominator *= 10n ** -e;
  } else {
    numerator *= MULTIPLIERS.get(suffix)!;
  }
  return (numerator + denominator - 1n) / denominator;
}

/** Recently parsed quantities: the same few strings ('100Gi', '1Ti') recur across thousands of disks. */
const parsed = new Map<string, bigint | undefined>();
const MAX_MEMO = 4096;

/** Like {@link parseBytes}, but `undefined` (not an exception) for a missing or malformed value. */
export function tryParseBytes(quantity: string | undefined): bigint | undefined {
  if (quantity === undefined) return undefined;
  if (parsed.has(quantity)) return parsed.get(quantity);
  let value: bigint | undefined;
  try {
    value = parseBytes(quantity);
  } catch {
    value = undefined;
  }
  if (parsed.size >= MAX_MEMO) parsed.clear();
  parsed.set(quantity, value);
  return value;
}

/**
 * The canonical quantity for a byte count: the largest binary suffix that divides it exactly
 * (`10Gi`, `1536Ki`), else the largest exact decimal suffix (`4096k`), else plain bytes.
 */
export function formatBytes(bytes: bigint): string {
  if (bytes < 0n) throw new Error(`a size cannot be negative (${bytes})`);
  if (bytes === 0n) return '0';
  for (const [suffix, factor] of BINARY) if (bytes % factor === 0n) return `${bytes / factor}${suffix}`;
  for (const [suffix, factor] of DECIMAL) if (bytes % factor === 0n) return `${bytes / factor}${suffix}`;
  return bytes.toString();
}

/** Sum of byte counts. */
export function sumBytes(values: Iterable<bigint>): bigint {
  let total = 0n;
  for (const v of values) total += v;
  return total;
}

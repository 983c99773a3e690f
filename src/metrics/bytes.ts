import { tryParseBytes } from '../util/quantity.js';

/**
 * A quantity string as a Prometheus sample value (a float: exact up to 2^53 bytes, 8 PiB), or
 * undefined when absent or malformed, so the series is left out rather than exported wrong.
 */
export function quantityToNumber(quantity: string | undefined): number | undefined {
  const bytes = tryParseBytes(quantity);
  return bytes === undefined ? undefined : Number(bytes);
}

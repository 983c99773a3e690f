/**
 * Pure helpers of `npm run bench:churn`: the seeded RNG (so a run's kill schedule and claim mix can
 * be replayed from the printed seed), latency percentiles, the figures table, and the comparison of
 * the cluster's and hosts' picture before and after the churn (what counts as a leak).
 */

/** mulberry32: a tiny, well-distributed 32-bit PRNG; deterministic for a seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The p-th percentile (0..100) of `values` by nearest rank; NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

export interface OpFigures {
  readonly kind: string;
  readonly op: string;
  readonly latenciesMs: readonly number[];
  readonly timeouts: number;
  /** The same operation one at a time with nothing killed (the baseline of this run). */
  readonly quietMs: readonly number[];
}

const pad = (s: string, n: number): string => s.padEnd(n);
const lpad = (s: string, n: number): string => s.padStart(n);
const sec = (ms: number): string => (Number.isNaN(ms) ? '—' : `${(ms / 1000).toFixed(2)} s`);

/**
 * One row per pool kind and operation: count, per minute, p50, p99, max, timeouts, the quiet
 * baseline's median, and p50 and p99 as multiples of it.
 */
export function opsTable(ops: readonly OpFigures[], minutes: number): string[] {
  const head =
    `${pad('pool kind', 10)} ${pad('operation', 17)} ${lpad('count', 6)} ${lpad('/min', 7)} ${lpad('p50', 8)} ${lpad('p99', 8)} ${lpad('max', 8)} ` +
    `${lpad('timeouts', 8)} ${lpad('quiet p50', 10)} ${lpad('p50/quiet', 10)} ${lpad('p99/quiet', 10)}`;
  const times = (a: number, b: number): string => (Number.isNaN(a) || Number.isNaN(b) || b === 0 ? '—' : `${(a / b).toFixed(1)}×`);
  const rows = ops.map((o) => {
    const [p50, p99, quiet] = [percentile(o.latenciesMs, 50), percentile(o.latenciesMs, 99), percentile(o.quietMs, 50)];
    return (
      `${pad(o.kind, 10)} ${pad(o.op, 17)} ${lpad(String(o.latenciesMs.length), 6)} ${lpad((o.latenciesMs.length / minutes).toFixed(1), 7)} ` +
      `${lpad(sec(p50), 8)} ${lpad(sec(p99), 8)} ${lpad(sec(percentile(o.latenciesMs, 100)), 8)} ${lpad(String(o.timeouts), 8)} ` +
      `${lpad(sec(quiet), 10)} ${lpad(times(p50, quiet), 10)} ${lpad(times(p99, quiet), 10)}`
    );
  });
  return [head, '-'.repeat(head.length), ...rows];
}

export const mib = (bytes: number): string => `${(bytes / 1024 ** 2).toFixed(1)} MiB`;

/** What must be the same after the churn as before it. */
export interface Picture {
  localPvsByDisk: Record<string, string>;
  dynamicPvs: string[];
  poolVolumes: string[];
  poolSnapshots: string[];
  subvolumes: string[];
  mounts: string[];
  loops: string[];
  pools: Record<string, unknown>;
}

/** What differs between two pictures, as leak descriptions. */
export function diff(before: Picture, after: Picture): string[] {
  const out: string[] = [];
  const list = (what: string, a: readonly string[], b: readonly string[]) => {
    for (const x of b) if (!a.includes(x)) out.push(`${what} left behind: ${x}`);
    for (const x of a) if (!b.includes(x)) out.push(`${what} gone: ${x}`);
  };
  const disks = [...new Set([...Object.keys(before.localPvsByDisk), ...Object.keys(after.localPvsByDisk)])];
  for (const d of disks)
    if (before.localPvsByDisk[d] !== after.localPvsByDisk[d])
      out.push(`Local PVs of disk ${d}: ${after.localPvsByDisk[d] ?? 'none'} (was ${before.localPvsByDisk[d] ?? 'none'})`);
  list('Dynamic PV', before.dynamicPvs, after.dynamicPvs);
  list('PoolVolume', before.poolVolumes, after.poolVolumes);
  list('PoolSnapshot', before.poolSnapshots, after.poolSnapshots);
  list('subvolume', before.subvolumes, after.subvolumes);
  list('mount', before.mounts, after.mounts);
  list('loop device', before.loops, after.loops);
  for (const pool of Object.keys(before.pools)) {
    const [a, b] = [JSON.stringify(before.pools[pool]), JSON.stringify(after.pools[pool])];
    if (a !== b) out.push(`pool ${pool} figures ${b} (were ${a})`);
  }
  return out;
}

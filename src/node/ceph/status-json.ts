/**
 * Reads the JSON the `ceph` CLI prints (`-f json`) into the few typed fields Stowage uses, and
 * says clearly which field was missing when a Ceph release prints something else. Pure.
 *
 * Shapes checked against Ceph 16.2.15 (Debian bookworm); fixtures in test/ceph/fixtures/.
 */

type Json = unknown;

export class CephJsonError extends Error {
  override readonly name = 'CephJsonError';
}

function at(value: Json, where: string, pathParts: readonly (string | number)[]): Json {
  let v: Json = value;
  for (const p of pathParts) {
    if (v === null || typeof v !== 'object' || !(p in (v as Record<string | number, Json>))) {
      throw new CephJsonError(
        `${where}: no field ${pathParts.join('.')} in Ceph's JSON (is this a Ceph release Stowage knows? it reads 16.2)`,
      );
    }
    v = (v as Record<string | number, Json>)[p];
  }
  return v;
}

const num = (value: Json, where: string, ...p: (string | number)[]): number => {
  const v = at(value, where, p);
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw new CephJsonError(`${where}: ${p.join('.')} is ${JSON.stringify(v)}, not a number`);
  return v;
};
const optNum = (value: Json, ...p: (string | number)[]): number => {
  try {
    const v = at(value, '', p);
    return typeof v === 'number' && Number.isFinite(v) ? v : 0;
  } catch {
    return 0;
  }
};
const str = (value: Json, where: string, ...p: (string | number)[]): string => {
  const v = at(value, where, p);
  if (typeof v !== 'string') throw new CephJsonError(`${where}: ${p.join('.')} is ${JSON.stringify(v)}, not a string`);
  return v;
};
const arr = (value: Json, where: string, ...p: (string | number)[]): Json[] => {
  const v = p.length ? at(value, where, p) : value;
  if (!Array.isArray(v)) throw new CephJsonError(`${where}: ${p.join('.') || 'the answer'} is not a list`);
  return v;
};

/** Parses a CLI answer, naming the command when it is not JSON at all. */
export function parseCephJson(text: string, command: string): Json {
  try {
    return JSON.parse(text);
  } catch {
    throw new CephJsonError(`ceph ${command} -f json printed no JSON: ${text.trim().slice(0, 200) || '(nothing)'}`);
  }
}

export type HealthStatus = 'HEALTH_OK' | 'HEALTH_WARN' | 'HEALTH_ERR';

export interface CephHealthCheck {
  /** Ceph's code, e.g. OSD_DOWN, PG_DEGRADED, MON_DOWN. */
  readonly code: string;
  readonly severity: HealthStatus;
  readonly summary: string;
  readonly details: readonly string[];
}

/** `ceph health detail -f json`. */
export function readHealthDetail(j: Json): { status: HealthStatus; checks: CephHealthCheck[] } {
  const w = 'ceph health detail';
  const status = str(j, w, 'status') as HealthStatus;
  const checks = at(j, w, ['checks']) as Record<string, Json> | null;
  return {
    status,
    checks: Object.entries(checks ?? {}).map(([code, c]) => ({
      code,
      severity: str(c, w, 'severity') as HealthStatus,
      summary: str(c, w, 'summary', 'message'),
      details: Array.isArray((c as { detail?: Json[] }).detail) ? (c as { detail: Json[] }).detail.map((d) => str(d, w, 'message')) : [],
    })),
  };
}

export interface StatusFacts {
  readonly fsid: string;
  readonly quorumNames: readonly string[];
  readonly monitors: number;
}

/** `ceph status -f json`: the monitors' quorum. */
export function readStatus(j: Json): StatusFacts {
  const w = 'ceph status';
  return {
    fsid: str(j, w, 'fsid'),
    quorumNames: arr(j, w, 'quorum_names').map((n) => String(n)),
    monitors: num(j, w, 'monmap', 'num_mons'),
  };
}

export interface CrushOsd {
  readonly id: number;
  readonly up: boolean;
  /** reweight > 0: the OSD takes data. */
  readonly in: boolean;
  /** Bucket names above the OSD by type: host, zone, root. */
  readonly ancestors: Readonly<Partial<Record<string, string>>>;
}

/** `ceph osd tree -f json`: every OSD with its place (host, zone, root) and state. */
export function readOsdTree(j: Json): CrushOsd[] {
  const w = 'ceph osd tree';
  const nodes = arr(j, w, 'nodes');
  const byId = new Map<number, Json>(nodes.map((n) => [num(n, w, 'id'), n]));
  const parent = new Map<number, number>();
  for (const n of nodes) for (const c of (n as { children?: number[] }).children ?? []) parent.set(c, num(n, w, 'id'));
  const out: CrushOsd[] = [];
  for (const n of nodes) {
    if (str(n, w, 'type') !== 'osd') continue;
    const id = num(n, w, 'id');
    const ancestors: Record<string, string> = {};
    for (let p = parent.get(id); p !== undefined; p = parent.get(p)) {
      const b = byId.get(p);
      if (b) ancestors[str(b, w, 'type')] = str(b, w, 'name');
    }
    out.push({ id, up: str(n, w, 'status') === 'up', in: num(n, w, 'reweight') > 0, ancestors });
  }
  // OSDs not in the CRUSH map yet (created, never started) are listed under "stray".
  for (const n of (j as { stray?: Json[] }).stray ?? []) {
    out.push({ id: num(n, w, 'id'), up: str(n, w, 'status') === 'up', in: optNum(n, 'reweight') > 0, ancestors: {} });
  }
  return out.sort((a, b) => a.id - b.id);
}

export interface OsdMapPool {
  readonly id: number;
  readonly name: string;
  readonly size: number;
  readonly minSize: number;
  readonly pgNum: number;
  readonly crushRule: number;
}

export interface OsdMapFacts {
  readonly pools: readonly OsdMapPool[];
  readonly fullRatio: number;
  readonly nearFullRatio: number;
}

/** `ceph osd dump -f json`: pools' size and min_size, the full ratios. */
export function readOsdDump(j: Json): OsdMapFacts {
  const w = 'ceph osd dump';
  return {
    pools: arr(j, w, 'pools').map((p) => ({
      id: num(p, w, 'pool'),
      name: str(p, w, 'pool_name'),
      size: num(p, w, 'size'),
      minSize: num(p, w, 'min_size'),
      pgNum: num(p, w, 'pg_num'),
      crushRule: num(p, w, 'crush_rule'),
    })),
    fullRatio: num(j, w, 'full_ratio'),
    nearFullRatio: num(j, w, 'nearfull_ratio'),
  };
}

export interface PoolUsage {
  readonly storedBytes: number;
  readonly usedBytes: number;
  readonly objects: number;
  readonly maxAvailBytes: number;
  /** Ceph's percent_used, 0..1. */
  readonly percentUsed: number;
}

/** `ceph df -f json`: one pool's usage and MAX AVAIL (which already counts size and the full ratio). */
export function readPoolUsage(j: Json, pool: string): PoolUsage | undefined {
  const w = 'ceph df';
  const p = arr(j, w, 'pools').find((x) => str(x, w, 'name') === pool);
  if (!p) return undefined;
  return {
    storedBytes: num(p, w, 'stats', 'stored'),
    usedBytes: num(p, w, 'stats', 'bytes_used'),
    objects: num(p, w, 'stats', 'objects'),
    maxAvailBytes: num(p, w, 'stats', 'max_avail'),
    percentUsed: num(p, w, 'stats', 'percent_used'),
  };
}

export interface PoolRecovery {
  /** Object copies that should exist (objects × size) and those missing or stale. */
  readonly degradedTotal: number;
  readonly bytesPerSecond: number;
  readonly objectsPerSecond: number;
}

/** `ceph osd pool stats -f json`: one pool's recovery rate. */
export function readPoolRecovery(j: Json, pool: string): PoolRecovery | undefined {
  const w = 'ceph osd pool stats';
  const p = arr(j, w).find((x) => str(x, w, 'pool_name') === pool);
  if (!p) return undefined;
  return {
    degradedTotal: optNum(p, 'recovery', 'degraded_total'),
    bytesPerSecond: optNum(p, 'recovery_rate', 'recovering_bytes_per_sec'),
    objectsPerSecond: optNum(p, 'recovery_rate', 'recovering_objects_per_sec'),
  };
}

export interface PgFacts {
  readonly pgid: string;
  /** Ceph's state words, e.g. ['active', 'undersized', 'degraded']. */
  readonly states: readonly string[];
  readonly objects: number;
  readonly degraded: number;
  readonly misplaced: number;
  readonly unfound: number;
  readonly acting: readonly number[];
}

/** `ceph pg ls-by-pool POOL -f json`: every placement group of the pool with its object counts. */
export function readPoolPgs(j: Json): PgFacts[] {
  const w = 'ceph pg ls-by-pool';
  const list = Array.isArray(j) ? j : arr(j, w, 'pg_stats');
  return list.map((pg) => ({
    pgid: str(pg, w, 'pgid'),
    states: str(pg, w, 'state').split('+'),
    objects: num(pg, w, 'stat_sum', 'num_objects'),
    degraded: num(pg, w, 'stat_sum', 'num_objects_degraded'),
    misplaced: num(pg, w, 'stat_sum', 'num_objects_misplaced'),
    unfound: num(pg, w, 'stat_sum', 'num_objects_unfound'),
    acting: arr(pg, w, 'acting').map(Number),
  }));
}

/** `ceph osd safe-to-destroy ID -f json`: whether Ceph holds no data only that OSD has. */
export function readSafeToDestroy(j: Json, osdId: number): boolean {
  const w = 'ceph osd safe-to-destroy';
  return arr(j, w, 'safe_to_destroy').map(Number).includes(osdId);
}

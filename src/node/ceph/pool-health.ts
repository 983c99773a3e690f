/**
 * "Is my data safe right now?" for one pool, from Ceph's own word: the facts the operator turns
 * into the pool's conditions (DataRedundant, DisksHealthy, QuorumLost) and the sentences that
 * `kubectl stowage why` prints. Pure: it reads the parsed JSON of one observation.
 */
import type { FailureDomain } from './crush.js';
import {
  readHealthDetail,
  readOsdDump,
  readOsdTree,
  readPoolPgs,
  readPoolRecovery,
  readPoolUsage,
  readStatus,
  type CephHealthCheck,
  type HealthStatus,
} from './status-json.js';

/** The raw answers of one observation (`ceph … -f json`, parsed), gathered by CephCli.observe(). */
export interface CephObservation {
  readonly status: unknown;
  readonly healthDetail: unknown;
  readonly osdTree: unknown;
  readonly osdDump: unknown;
  readonly df: unknown;
  readonly poolStats: unknown;
  /** `ceph pg ls-by-pool POOL`; undefined when the pool does not exist. */
  readonly poolPgs: unknown;
}

/** One failure domain (a host, a zone or an OSD) and the OSDs in it. */
export interface FailureDomainFacts {
  readonly name: string;
  readonly osds: readonly number[];
  readonly osdsUp: number;
  readonly osdsIn: number;
  /** At least one of its OSDs is up and in: it can hold a copy now. */
  readonly holdsCopies: boolean;
}

/** Why the pool is or is not redundant, as a condition reason. */
export type RedundancyReason =
  | 'Redundant'
  | 'PoolMissing'
  | 'QuorumLost'
  | 'Inactive'
  | 'Unfound'
  | 'Degraded'
  | 'Undersized'
  | 'Misplaced'
  | 'Settling';

export interface CephPoolHealth {
  readonly pool: string;
  readonly exists: boolean;
  readonly failureDomain: FailureDomain;
  /** Copies wanted (Ceph's size) and the fewest that still take writes (min_size). */
  readonly size: number;
  readonly minSize: number;
  readonly health: HealthStatus;
  readonly checks: readonly CephHealthCheck[];
  readonly monitors: {
    readonly total: number;
    readonly inQuorum: readonly string[];
    /** Names of known monitors missing from the quorum (only those the caller named). */
    readonly outOfQuorum: readonly string[];
    readonly quorum: boolean;
  };
  readonly osds: { readonly total: number; readonly up: number; readonly in: number };
  /** Failure domains of the pool's type, in name order. */
  readonly domains: readonly FailureDomainFacts[];
  /** Names of domains with no OSD up and in. */
  readonly domainsDown: readonly string[];
  readonly pgs: {
    readonly total: number;
    readonly activeClean: number;
    /** PGs that serve no I/O (not active): writes to them block. */
    readonly inactive: number;
    /**
     * PGs whose acting set still names an OSD the OSD map says is down. PG states come from the
     * manager's statistics, several seconds behind; the OSD map is current, so a node lost a moment
     * ago shows here first.
     */
    readonly onDownOsds: number;
    readonly byState: Readonly<Record<string, number>>;
  };
  readonly objects: {
    readonly count: number;
    /** Copies Ceph wants (count × size) and those missing/stale, on the wrong OSD, or lost. */
    readonly copies: number;
    readonly degraded: number;
    readonly misplaced: number;
    readonly unfound: number;
    /** degraded / copies, 0..1. */
    readonly degradedRatio: number;
  };
  readonly recovery: {
    readonly bytesPerSecond: number;
    readonly objectsPerSecond: number;
    /** Seconds until degraded and misplaced copies are repaired at the current rate; absent when nothing recovers. */
    readonly etaSeconds?: number;
  };
  readonly capacity: {
    readonly storedBytes: number;
    /** Raw bytes used, all copies. */
    readonly usedBytes: number;
    /** What more this pool can store: Ceph's MAX AVAIL (after size and the full ratio). */
    readonly maxAvailBytes: number;
    readonly percentUsed: number;
    readonly nearFull: boolean;
    readonly full: boolean;
  };
  /** Every PG active: reads and writes go on (at least min_size copies). */
  readonly writable: boolean;
  /** Every object has `size` copies in distinct domains, nothing to repair. */
  readonly redundant: boolean;
  readonly reason: RedundancyReason;
}

export interface PoolHealthInput {
  readonly pool: string;
  readonly failureDomain: FailureDomain;
  /** Monitor names the caller runs, to name those missing from the quorum. */
  readonly knownMonitors?: readonly string[];
}

/** The facts of one pool from one observation. */
export function poolHealth(obs: CephObservation, input: PoolHealthInput): CephPoolHealth {
  const status = readStatus(obs.status);
  const { status: health, checks } = readHealthDetail(obs.healthDetail);
  const tree = readOsdTree(obs.osdTree);
  const dump = readOsdDump(obs.osdDump);
  const pool = dump.pools.find((p) => p.name === input.pool);
  const usage = readPoolUsage(obs.df, input.pool);
  const rec = readPoolRecovery(obs.poolStats, input.pool);
  const pgs = pool && obs.poolPgs !== undefined ? readPoolPgs(obs.poolPgs) : [];

  const quorum = status.quorumNames.length > status.monitors / 2;
  const monitors = {
    total: status.monitors,
    inQuorum: status.quorumNames,
    outOfQuorum: (input.knownMonitors ?? []).filter((m) => !status.quorumNames.includes(m)),
    quorum,
  };

  const byDomain = new Map<string, { osds: number[]; up: number; in: number; holds: boolean }>();
  for (const o of tree) {
    const name = input.failureDomain === 'osd' ? `osd.${o.id}` : o.ancestors[input.failureDomain];
    if (name === undefined) continue; // not placed in the map yet, or no bucket of that type above it
    const d = byDomain.get(name) ?? { osds: [], up: 0, in: 0, holds: false };
    d.osds.push(o.id);
    if (o.up) d.up += 1;
    if (o.in) d.in += 1;
    if (o.up && o.in) d.holds = true;
    byDomain.set(name, d);
  }
  const domains = [...byDomain.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, d]) => ({ name, osds: d.osds, osdsUp: d.up, osdsIn: d.in, holdsCopies: d.holds }));

  const byState: Record<string, number> = {};
  for (const pg of pgs) byState[pg.states.join('+')] = (byState[pg.states.join('+')] ?? 0) + 1;
  const activeClean = pgs.filter((pg) => pg.states.includes('active') && pg.states.includes('clean')).length;
  const inactive = pgs.filter((pg) => !pg.states.includes('active')).length;
  const downOsds = new Set(tree.filter((o) => !o.up).map((o) => o.id));
  const onDownOsds = pgs.filter((pg) => pg.acting.some((id) => downOsds.has(id))).length;
  const undersized = onDownOsds > 0 || pgs.some((pg) => pg.states.includes('undersized'));
  const sum = (f: (pg: (typeof pgs)[number]) => number): number => pgs.reduce((s, pg) => s + f(pg), 0);
  const size = pool?.size ?? 0;
  const count = usage?.objects ?? sum((pg) => pg.objects);
  const copies = rec?.degradedTotal || count * size;
  const degraded = sum((pg) => pg.degraded);
  const misplaced = sum((pg) => pg.misplaced);
  const unfound = sum((pg) => pg.unfound);
  const recovering = (rec?.objectsPerSecond ?? 0) > 0;
  const etaSeconds = recovering && degraded + misplaced > 0 ? Math.ceil((degraded + misplaced) / rec!.objectsPerSecond) : undefined;
  const full = checks.some((c) => c.code === 'OSD_FULL' || c.code === 'POOL_FULL');
  const nearFull = full || checks.some((c) => c.code === 'OSD_NEARFULL' || c.code === 'POOL_NEAR_FULL');

  const writable = !!pool && quorum && pgs.length > 0 && inactive === 0;
  let reason: RedundancyReason;
  if (!pool) reason = 'PoolMissing';
  else if (!quorum) reason = 'QuorumLost';
  else if (pgs.length === 0 || inactive > 0) reason = pgs.length === 0 ? 'Settling' : 'Inactive';
  else if (unfound > 0) reason = 'Unfound';
  else if (degraded > 0) reason = 'Degraded';
  else if (undersized) reason = 'Undersized';
  else if (misplaced > 0) reason = 'Misplaced';
  else if (activeClean < pgs.length) reason = 'Settling';
  else reason = 'Redundant';

  return {
    pool: input.pool,
    exists: !!pool,
    failureDomain: input.failureDomain,
    size,
    minSize: pool?.minSize ?? 0,
    health,
    checks,
    monitors,
    osds: { total: tree.length, up: tree.filter((o) => o.up).length, in: tree.filter((o) => o.in).length },
    domains,
    domainsDown: domains.filter((d) => !d.holdsCopies).map((d) => d.name),
    pgs: { total: pgs.length, activeClean, inactive, onDownOsds, byState },
    objects: { count, copies, degraded, misplaced, unfound, degradedRatio: copies > 0 ? degraded / copies : 0 },
    recovery: {
      bytesPerSecond: rec?.bytesPerSecond ?? 0,
      objectsPerSecond: rec?.objectsPerSecond ?? 0,
      ...(etaSeconds !== undefined ? { etaSeconds } : {}),
    },
    capacity: {
      storedBytes: usage?.storedBytes ?? 0,
      usedBytes: usage?.usedBytes ?? 0,
      maxAvailBytes: usage?.maxAvailBytes ?? 0,
      percentUsed: usage?.percentUsed ?? 0,
      nearFull,
      full,
    },
    writable,
    redundant: reason === 'Redundant',
    reason,
  };
}

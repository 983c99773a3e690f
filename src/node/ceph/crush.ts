/**
 * Where data goes: an OSD's CRUSH location (its node, and the node's zone) and the commands that
 * make a replicated pool keep its copies in distinct failure domains. Pure: argument lists only,
 * run by the shell in ceph-cli.ts.
 */

/** The CRUSH bucket type a pool's copies are spread over. */
export type FailureDomain = 'host' | 'zone' | 'osd';

export const FAILURE_DOMAINS: readonly FailureDomain[] = ['host', 'zone', 'osd'];

/** The CRUSH root every Stowage OSD hangs under. */
export const CRUSH_ROOT = 'default';

export interface CrushPlace {
  /** The node's name: the OSD's CRUSH host. */
  readonly node: string;
  /** The node's `topology.kubernetes.io/zone`, when it has one. */
  readonly zone?: string;
}

// CRUSH bucket names: letters, digits, '-', '_' and '.' (Kubernetes node names and zones fit).
const BUCKET_NAME = /^[A-Za-z0-9_.-]{1,253}$/;

/**
 * The `--crush-location` of an OSD: the same string at every start, so the OSD never moves in the
 * map by itself (osd_crush_update_on_start puts it where this says).
 */
export function crushLocation(place: CrushPlace): string {
  if (!BUCKET_NAME.test(place.node))
    throw new Error(`node name ${JSON.stringify(place.node)} cannot be a CRUSH host name (letters, digits, - _ . only)`);
  if (place.zone !== undefined && !BUCKET_NAME.test(place.zone)) {
    throw new Error(`zone ${JSON.stringify(place.zone)} cannot be a CRUSH zone name (letters, digits, - _ . only)`);
  }
  return [`root=${CRUSH_ROOT}`, ...(place.zone !== undefined ? [`zone=${place.zone}`] : []), `host=${place.node}`].join(' ');
}

export interface ReplicatedPoolSpec {
  /** The RADOS pool's name. */
  readonly name: string;
  /** Copies of each object, each in its own failure domain. */
  readonly size: number;
  /** Copies below which I/O stops (Ceph's min_size); Ceph's own default is size - 1. */
  readonly minSize?: number;
  readonly failureDomain: FailureDomain;
  /** Placement groups; small by default (see SMALL_NODE_TUNING). */
  readonly pgNum: number;
  /** The application tag (`rados`, `cephfs`, `rbd`): without one Ceph warns POOL_APP_NOT_ENABLED. */
  readonly application: string;
}

const POOL_NAME = /^[A-Za-z0-9_.-]{1,200}$/;

/** What is wrong with a pool's spec, one sentence each (empty: nothing). */
export function poolSpecProblems(p: ReplicatedPoolSpec): string[] {
  const out: string[] = [];
  if (!POOL_NAME.test(p.name) || p.name.startsWith('.'))
    out.push(`pool name ${JSON.stringify(p.name)}: use letters, digits, - _ . and do not start with '.'`);
  if (!FAILURE_DOMAINS.includes(p.failureDomain))
    out.push(`failure domain ${JSON.stringify(p.failureDomain)}: use one of ${FAILURE_DOMAINS.join(', ')}`);
  if (!Number.isInteger(p.size) || p.size < 1 || p.size > 10) out.push(`size ${p.size}: a whole number of copies from 1 to 10`);
  const minSize = minSizeOf(p);
  if (!Number.isInteger(minSize) || minSize < 1 || minSize > p.size) out.push(`minSize ${minSize}: from 1 to size (${p.size})`);
  if (!Number.isInteger(p.pgNum) || p.pgNum < 1 || (p.pgNum & (p.pgNum - 1)) !== 0) out.push(`pgNum ${p.pgNum}: a power of two`);
  if (!/^[a-z]{1,32}$/.test(p.application))
    out.push(`application ${JSON.stringify(p.application)}: lower-case letters, e.g. rados, cephfs, rbd`);
  return out;
}

/** Ceph's rule: min_size defaults to size - 1, but never below 1. */
export const minSizeOf = (p: Pick<ReplicatedPoolSpec, 'size' | 'minSize'>): number => p.minSize ?? Math.max(1, p.size - 1);

/** The pool's own CRUSH rule: one per pool, so changing one pool's domain never moves another's data. */
export const crushRuleName = (pool: string): string => `stowage-${pool}`;

/**
 * The `ceph` commands (argument vectors) that create the pool with its rule, idempotently: each
 * command succeeds when its object already exists with the same settings, and the `set`s converge
 * an existing pool to the spec.
 */
export function replicatedPoolCommands(p: ReplicatedPoolSpec): string[][] {
  const problems = poolSpecProblems(p);
  if (problems.length > 0) throw new Error(`invalid pool ${p.name}: ${problems.join('; ')}`);
  const rule = crushRuleName(p.name);
  return [
    ['osd', 'crush', 'rule', 'create-replicated', rule, CRUSH_ROOT, p.failureDomain],
    ['osd', 'pool', 'create', p.name, String(p.pgNum), String(p.pgNum), 'replicated', rule, '--size', String(p.size)],
    ['osd', 'pool', 'set', p.name, 'crush_rule', rule],
    ['osd', 'pool', 'set', p.name, 'size', String(p.size)],
    ['osd', 'pool', 'set', p.name, 'min_size', String(minSizeOf(p))],
    ['osd', 'pool', 'application', 'enable', p.name, p.application],
  ];
}

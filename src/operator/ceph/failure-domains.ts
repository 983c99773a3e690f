/**
 * Placement up front: before anything is created for a pool whose copies go to other nodes
 * (`replicated.failureDomain` host or zone), count the failure domains that hold eligible disks
 * the pool selects. Fewer than `size` and the pool cannot keep its copies apart, so it is told so
 * and nothing is made for it (Rook creates such a pool and leaves it undersized). Pure.
 */
import type { NodeDisk } from '../../crds/nodedisk.js';
import { ZONE_LABEL, type FailureDomain } from '../../crds/replication.js';
import type { StoragePool } from '../../crds/storagepool.js';
import type { Node } from '../../kube/types.js';

/** How many names a message lists before it says "and N more". */
const MAX_LISTED = 5;

/** One failure domain and what it holds. */
export interface FailureDomainHolding {
  /** The node's name (host) or the zone's name (zone). */
  readonly name: string;
  /** Nodes of the domain that hold eligible disks, sorted. */
  readonly nodes: readonly string[];
  readonly disks: number;
}

export interface Placement {
  readonly failureDomain: Exclude<FailureDomain, 'disk'>;
  readonly size: number;
  /** Domains holding at least one eligible disk the pool selects, sorted by name. */
  readonly domains: readonly FailureDomainHolding[];
  /** zone only: nodes holding eligible disks but no topology.kubernetes.io/zone label; they count for no zone. */
  readonly unzonedNodes: readonly string[];
}

/**
 * The failure domains of `disks` (the eligible disks the pool selects and nobody else holds) for a
 * defaulted host or zone pool. A node's zone is its `topology.kubernetes.io/zone` label; a disk whose
 * node is not in `nodes` counts for nothing (the selection already refuses such disks).
 */
export function placementOf(pool: StoragePool, disks: readonly NodeDisk[], nodes: ReadonlyMap<string, Node>): Placement {
  const failureDomain = pool.spec.replicated?.failureDomain === 'zone' ? 'zone' : 'host';
  const size = pool.spec.replicated?.size ?? 1;
  const byDomain = new Map<string, { nodes: Set<string>; disks: number }>();
  const unzoned = new Set<string>();
  for (const disk of disks) {
    const nodeName = disk.spec.nodeName;
    const node = nodes.get(nodeName);
    if (!node) continue;
    const zone = node.metadata.labels?.[ZONE_LABEL];
    if (failureDomain === 'zone' && !zone) {
      unzoned.add(nodeName);
      continue;
    }
    const name = failureDomain === 'zone' ? zone! : nodeName;
    const entry = byDomain.get(name) ?? { nodes: new Set<string>(), disks: 0 };
    entry.nodes.add(nodeName);
    entry.disks++;
    byDomain.set(name, entry);
  }
  const domains = [...byDomain]
    .map(([name, e]) => ({ name, nodes: [...e.nodes].sort(), disks: e.disks }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { failureDomain, size, domains, unzonedNodes: [...unzoned].sort() };
}

/** True when at least `size` failure domains hold eligible disks: the copies can be kept apart. */
export function isSatisfiable(placement: Placement): boolean {
  return placement.domains.length >= placement.size;
}

/**
 * The placement in words, e.g. "2 of the 3 hosts size 3 needs hold eligible disks: n1, n2" or
 * "3 zones hold eligible disks, size 3 needs 3: a (n1), b (n2, n3), c (n4)".
 */
export function describePlacement(placement: Placement): string {
  const { failureDomain, size, domains } = placement;
  const plural = (n: number): string => `${failureDomain === 'host' ? 'host' : 'zone'}${n === 1 ? '' : 's'}`;
  const names = list(domains.map((d) => (failureDomain === 'zone' ? `${d.name} (${list(d.nodes)})` : d.name)));
  const found =
    domains.length === 0
      ? `no ${plural(0)} hold eligible disks the pool selects; size ${size} needs ${size} ${plural(size)}`
      : isSatisfiable(placement)
        ? `${domains.length} ${plural(domains.length)} hold eligible disks the pool selects, size ${size} needs ${size}: ${names}`
        : `${domains.length} of the ${size} ${plural(size)} size ${size} needs hold${domains.length === 1 ? 's' : ''} eligible disks: ${names}`;
  const unzoned =
    placement.unzonedNodes.length > 0
      ? `; eligible disks on ${list(placement.unzonedNodes)} count for no zone: ${placement.unzonedNodes.length === 1 ? 'that node has' : 'those nodes have'} no ${ZONE_LABEL} label`
      : '';
  return `${found}${unzoned}`;
}

/** What to do when too few domains hold disks. */
export function placementFix(placement: Placement): string {
  const what =
    placement.failureDomain === 'host'
      ? 'add eligible disks on other nodes (and make them match spec.disks)'
      : `add eligible disks in other zones, or label their nodes with ${ZONE_LABEL}`;
  return `${what}, or lower replicated.size; nothing is created for the pool until then`;
}

function list(items: readonly string[]): string {
  const shown = items.slice(0, MAX_LISTED);
  const more = items.length - shown.length;
  return shown.join(', ') + (more > 0 ? `, and ${more} more` : '');
}

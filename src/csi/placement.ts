/**
 * Where a new volume may go: CSI's topology requirement over the nodes of the pool, as the
 * external-provisioner sends it (`requisite` from the StorageClass's allowedTopologies or the
 * selected node, `preferred` with the selected node first).
 */
import type { NodeCapacity } from '../crds/capacity.js';
import { TOPOLOGY_KEY } from './identity.js';

/** Requisite nodes (or all nodes of the pool), preferred ones first, then by most room. */
export function candidateNodes(caps: readonly NodeCapacity[], requirement: any): string[] {
  const nodeOf = (t: any): string | undefined => t?.segments?.[TOPOLOGY_KEY];
  const requisite: string[] = (requirement?.requisite ?? []).map(nodeOf).filter(Boolean);
  const preferred: string[] = (requirement?.preferred ?? []).map(nodeOf).filter(Boolean);
  const allowed = (requirement?.requisite ?? []).length > 0 ? caps.filter((c) => requisite.includes(c.node)) : caps;
  const rank = (node: string): number => {
    const i = preferred.indexOf(node);
    return i < 0 ? Number.MAX_SAFE_INTEGER : i;
  };
  return [...allowed]
    .sort(
      (a, b) =>
        rank(a.node) - rank(b.node) || (a.available > b.available ? -1 : a.available < b.available ? 1 : a.node.localeCompare(b.node)),
    )
    .map((c) => c.node);
}

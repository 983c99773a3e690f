/**
 * `spec.replicated` of a StoragePool: how many copies, where (disk, host, zone) and Ceph's min_size.
 * Its own file because the failure domains reach beyond one node's engine (docs/replication-across-nodes.md);
 * the types, the schema node and its cross-field rules stay together as in storagepool.ts.
 */
import type { CelRule, JSONSchema } from './schema.js';

/**
 * Where the copies of a replicated pool go: `disk` on different disks of one node (btrfs raid1 /
 * raid1c3), `host` on different nodes and `zone` on different zones (Ceph, see
 * docs/replication-across-nodes.md).
 */
export type FailureDomain = 'disk' | 'host' | 'zone';
/** The failure domains whose copies cross the network (served by Ceph, not by the node engine). */
export const ACROSS_NODES_DOMAINS: readonly FailureDomain[] = ['host', 'zone'];
/** The Node label a `zone` failure domain reads. */
export const ZONE_LABEL = 'topology.kubernetes.io/zone';

export interface PoolReplication {
  size?: number;
  failureDomain?: FailureDomain;
  /** Ceph's min_size; only host and zone pools take another value than 1. */
  minSize?: number;
}

/** True for host and zone: copies on other nodes (Ceph). Absent means disk, the default. Takes raw input. */
export const spansNodes = (replicated: any): boolean => ACROSS_NODES_DOMAINS.includes(replicated?.failureDomain);

export const acrossNodesNeedsDynamic: CelRule = {
  rule: "!has(self.replicated) || !has(self.replicated.failureDomain) || self.replicated.failureDomain == 'disk' || (has(self.mode) && self.mode == 'Dynamic')",
  message:
    'failureDomain host and zone keep copies on other nodes, which only mode Dynamic does; set mode: Dynamic, or failureDomain: disk',
  field: 'replicated.failureDomain',
  holds: (spec) => !spansNodes(spec?.replicated) || spec.mode === 'Dynamic',
};

const acrossNodesNeedsTwoCopies: CelRule = {
  rule: "!has(self.failureDomain) || self.failureDomain == 'disk' || (has(self.size) && self.size >= 2)",
  message:
    'failureDomain host and zone need size 2 or 3: size 1 would be a single copy on the network, lost with its node; set size: 2 or 3, or failureDomain: disk',
  field: 'size',
  holds: (replicated) => !spansNodes(replicated) || (typeof replicated.size === 'number' && replicated.size >= 2),
};

const minSizeAtMostSize: CelRule = {
  rule: '!has(self.minSize) || self.minSize <= (has(self.size) ? self.size : 1)',
  message: 'minSize is how many copies a write waits for and cannot exceed size; lower minSize, or raise size',
  field: 'minSize',
  holds: (replicated) =>
    typeof replicated?.minSize !== 'number' || replicated.minSize <= (typeof replicated.size === 'number' ? replicated.size : 1),
};

const diskPoolsWriteWithOneCopy: CelRule = {
  rule: "!has(self.minSize) || (has(self.failureDomain) && self.failureDomain != 'disk') || self.minSize == 1",
  message:
    "minSize is Ceph's min_size, for failureDomain host and zone; a disk pool (btrfs on one node) goes on writing while one copy is left, so its minSize can only be 1; remove minSize, or set failureDomain: host",
  field: 'minSize',
  holds: (replicated) => typeof replicated?.minSize !== 'number' || spansNodes(replicated) || replicated.minSize === 1,
};

export const replicatedSchema: JSONSchema = {
  type: 'object',
  description: 'Replication of Dynamic pools: how many copies of every block are kept, and where. See docs/replication-across-nodes.md.',
  default: {},
  'x-kubernetes-validations': [acrossNodesNeedsTwoCopies, minSizeAtMostSize, diskPoolsWriteWithOneCopy],
  properties: {
    size: {
      type: 'integer',
      description:
        'Copies of every block, 1 to 3 (default 1); usable capacity is raw capacity divided by size. failureDomain disk: 2 and 3 survive the loss of 1 and 2 disks and need at least that many selected disks on every node. failureDomain host and zone: 2 or 3 (1 is refused: it would be a single copy on the network), and at least that many nodes (zones) must hold eligible disks the pool selects. Must be 1 for mode Local.',
      minimum: 1,
      maximum: 3,
      default: 1,
    },
    failureDomain: {
      type: 'string',
      description:
        'Where the copies go: no two copies of a block share one of these, so losing one loses at most one copy. disk (default): on different disks of the same node (btrfs raid1/raid1c3 on that node); survives a failed disk, not a lost node. host: on different nodes, kept by Ceph (RADOS); survives a lost node. zone: on nodes of different zones, read from the Node label topology.kubernetes.io/zone; survives a lost zone. host and zone need mode Dynamic and size 2 or 3; before anything is created the operator counts the nodes (zones) that hold eligible disks the pool selects and, with fewer than size, reports ReplicationSatisfiable=False naming them and creates nothing (no StorageClass, no disk claims). This version checks that placement but does not deploy the Ceph cluster yet: host and zone pools stay Ready=False (CephEngineNotDeployed) and publish no StorageClass. Do not change failureDomain on a pool that holds disks: data does not move between engines.',
      enum: ['disk', 'host', 'zone'],
      default: 'disk',
    },
    minSize: {
      type: 'integer',
      description:
        "Copies that must be reachable for a block to take writes (Ceph's min_size): with fewer, I/O to that data waits for recovery instead of risking the last copy. 1 to size. Default for failureDomain host and zone: size - 1, as in Ceph (2 for size 3, 1 for size 2). failureDomain disk: btrfs goes on writing while one copy is left, so only 1 is accepted there.",
      minimum: 1,
      maximum: 3,
    },
  },
};

/** Runs after the schema defaults (from fillPoolDefaults): Ceph's default min_size for host and zone pools. Mutates `replicated`. */
export function fillReplicationDefaults(replicated: any): void {
  // Ceph's default min_size: a write waits for all but one copy (size 3: 2, size 2: 1).
  if (
    replicated &&
    typeof replicated === 'object' &&
    spansNodes(replicated) &&
    replicated.minSize === undefined &&
    typeof replicated.size === 'number'
  ) {
    replicated.minSize = Math.max(1, replicated.size - 1);
  }
}

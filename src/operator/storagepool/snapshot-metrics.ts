/**
 * Snapshot metrics of Dynamic pools, per pool and node, computed at scrape time from the operator's
 * PoolSnapshot informer: how many snapshots there are and how many bytes they hold alone (what the
 * node daemons report as `status.exclusive`; these bytes count as allocated in the pool's capacity).
 */
import type { Registry } from 'prom-client';
import type { PoolSnapshot } from '../../crds/poolsnapshot.js';
import { derivedGauge } from '../../metrics/derived.js';
import { quantityToNumber } from '../../metrics/bytes.js';

export type SnapshotSource = () => readonly PoolSnapshot[];

export function registerSnapshotMetrics(registry: Registry, source: SnapshotSource): void {
  const byPoolAndNode = (): Map<string, { pool: string; node: string; count: number; bytes: number }> => {
    const out = new Map<string, { pool: string; node: string; count: number; bytes: number }>();
    for (const s of source()) {
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- a scrape reads whatever the API server stored (old servers skip the CRD rules): a half-formed object must not fail it
      if (!s?.spec?.pool || !s.spec.node) continue;
      const key = `${s.spec.pool}\u0000${s.spec.node}`;
      const entry = out.get(key) ?? { pool: s.spec.pool, node: s.spec.node, count: 0, bytes: 0 };
      entry.count++;
      entry.bytes += quantityToNumber(s.status?.exclusive) ?? 0;
      out.set(key, entry);
    }
    return out;
  };

  derivedGauge(
    registry,
    {
      name: 'stowage_pool_snapshots',
      help: 'PoolSnapshots of a Dynamic pool on a node (deleting ones included until their data is gone)',
      labelNames: ['pool', 'node'],
    },
    function* () {
      for (const e of byPoolAndNode().values()) yield [{ pool: e.pool, node: e.node }, e.count];
    },
  );

  derivedGauge(
    registry,
    {
      name: 'stowage_pool_snapshot_bytes',
      help: 'Bytes the snapshots of a Dynamic pool on a node hold alone (what deleting them frees); counted as allocated in the pool capacity',
      labelNames: ['pool', 'node'],
    },
    function* () {
      for (const e of byPoolAndNode().values()) yield [{ pool: e.pool, node: e.node }, e.bytes];
    },
  );
}

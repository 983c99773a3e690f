/**
 * `kubectl stowage pools`: per pool its mode, replication, nodes and disks ready of total, volumes,
 * capacity as used / allocated / available with a bar scaled to the terminal, `Ready` and the first
 * failing condition's message. Pure: a snapshot in, rows and text out.
 */
import { findCondition } from '../../runtime/conditions.js';
import { sumBytes, tryParseBytes } from '../../util/quantity.js';
import { isReadyDisk } from '../../operator/storagepool/status.js';
import { POOL_CONDITIONS } from '../../crds/storagepool.js';
import { capacityBar, humanBytes, renderTable, truncate, type Style, type Tone } from './output.js';
import type { Pool, Snapshot } from './snapshot.js';

const MIN_BAR = 12;
const MAX_BAR = 42;
/** Room the narrow table keeps for the message column before the bar takes the rest. */
const MESSAGE_ROOM = 36;

export interface PoolRow {
  readonly name: string;
  readonly mode: string;
  readonly replicas: number;
  readonly storageClass?: string;
  readonly nodes: { readonly ready: number; readonly total: number };
  readonly disks: { readonly ready: number; readonly total: number; readonly unhealthy: number; readonly missing: number };
  readonly volumes: { readonly bound: number; readonly total: number };
  /** Bytes as decimal strings (JSON has no bigint). */
  readonly capacity: {
    readonly used: string;
    readonly allocated: string;
    readonly available: string;
    readonly usable: string;
    readonly raw: string;
  };
  readonly ready: string;
  readonly reason?: string;
  /** The first condition that is not as it should be (Ready first), or Ready's own message. */
  readonly message: string;
  readonly observed: boolean;
}

export function poolRows(snap: Snapshot, only?: string): PoolRow[] {
  return snap.pools
    .filter((p) => !only || p.metadata.name === only)
    .map((p) => poolRow(p, snap))
    .sort((a, b) => a.name.localeCompare(b.name));
}

function poolRow(pool: Pool, snap: Snapshot): PoolRow {
  const name = pool.metadata.name;
  const st = pool.status ?? {};
  const disks = snap.disks.filter((d) => d.spec.claim?.pool === name);
  const nodesAll = new Set(disks.map((d) => d.spec.nodeName));
  const nodesReady = new Set(disks.filter(isReadyDisk).map((d) => d.spec.nodeName));
  const bytes = (q: string | undefined): bigint => tryParseBytes(q) ?? 0n;
  let used: bigint;
  if (pool.spec.mode === 'Dynamic') {
    used = sumBytes(snap.poolVolumes.filter((v) => v.spec.pool === name).map((v) => bytes(v.status?.used)));
  } else {
    const boundDisks = new Set(
      snap.pvs
        .filter((pv) => pv.metadata.labels?.['stowage.dev/pool'] === name && pv.status?.phase === 'Bound')
        .map((pv) => pv.metadata.labels?.['stowage.dev/disk']),
    );
    used = sumBytes(disks.filter((d) => boundDisks.has(d.metadata.name)).map((d) => bytes(d.status?.usage?.used)));
  }
  const ready = findCondition(st.conditions, 'Ready');
  const failing = POOL_CONDITIONS.map((t) => findCondition(st.conditions, t)).find((c) => c && c.status !== 'True');
  const v = st.counts?.volumes ?? {};
  const observed = st.observedGeneration !== undefined && st.observedGeneration === pool.metadata.generation;
  return {
    name,
    mode: pool.spec.mode,
    replicas: pool.spec.replicated?.size ?? 1,
    ...(st.storageClassName ? { storageClass: st.storageClassName } : {}),
    nodes: { ready: nodesReady.size, total: nodesAll.size },
    disks: {
      ready: st.counts?.disks?.ready ?? 0,
      total: st.counts?.disks?.total ?? 0,
      unhealthy: st.counts?.disks?.unhealthy ?? 0,
      missing: st.counts?.disks?.missing ?? 0,
    },
    volumes: { bound: v.bound ?? 0, total: (v.available ?? 0) + (v.bound ?? 0) + (v.released ?? 0) },
    capacity: {
      used: used.toString(),
      allocated: bytes(st.capacity?.allocated).toString(),
      available: bytes(st.capacity?.available).toString(),
      usable: bytes(st.capacity?.usable).toString(),
      raw: bytes(st.capacity?.raw).toString(),
    },
    ready: ready?.status ?? 'Unknown',
    ...(failing ? { reason: failing.reason } : ready ? { reason: ready.reason } : {}),
    message: !st.conditions
      ? 'the operator has not reported on this pool yet (is it running?)'
      : failing
        ? `${failing.type}: ${failing.message}`
        : (ready?.message ?? ''),
    observed,
  };
}

const readyTone = (r: PoolRow): Tone => (r.ready === 'True' ? (r.reason === 'Ready' || !r.reason ? 'ok' : 'warn') : 'bad');

export function renderPools(rows: readonly PoolRow[], style: Style, wide: boolean): string {
  if (rows.length === 0) return 'No StoragePools found: create one (see samples/) to turn disks into a StorageClass\n';
  const b = (s: string): bigint => BigInt(s);
  const capacity = (r: PoolRow): string =>
    `${humanBytes(b(r.capacity.used))}/${humanBytes(b(r.capacity.allocated))}/${humanBytes(b(r.capacity.available))}`;
  const base = rows.map((r) => [
    r.name,
    r.mode,
    String(r.replicas),
    `${r.nodes.ready}/${r.nodes.total}`,
    `${r.disks.ready}/${r.disks.total}`,
    `${r.volumes.bound}/${r.volumes.total}`,
    capacity(r),
  ]);
  const headers = ['NAME', 'MODE', 'REPLICAS', 'NODES', 'DISKS', 'VOLUMES', 'USED/ALLOC/AVAIL'];
  // The bar gets what the other columns leave of the terminal, within bounds.
  const fixed = headers.reduce((sum, h, i) => sum + Math.max(h.length, ...base.map((row) => [...row[i]].length)) + 2, 0);
  const barWidth = Math.max(MIN_BAR, Math.min(MAX_BAR, style.columns - fixed - 'READY'.length - 2 - MESSAGE_ROOM));
  const messageWidth = Math.max(20, style.columns - fixed - barWidth - 2 - 'READY'.length - 2 - 2);
  const out = rows.map((r, i) => {
    const total = b(r.capacity.usable);
    const bar = capacityBar(b(r.capacity.used), b(r.capacity.allocated), total, barWidth);
    const fill = total > 0n ? Number((b(r.capacity.allocated) * 100n) / total) : 0;
    const barTone: Tone = r.reason === 'LowCapacity' || fill >= 90 ? 'bad' : fill >= 75 ? 'warn' : 'ok';
    const cells = [...base[i], { text: bar.text, tone: barTone }, { text: r.ready, tone: readyTone(r) }];
    if (wide) {
      return [
        ...cells,
        r.storageClass ?? '-',
        humanBytes(b(r.capacity.raw)),
        humanBytes(total),
        `${r.disks.unhealthy}/${r.disks.missing}`,
        r.reason ?? '-',
        r.message,
      ];
    }
    return [...cells, truncate(r.message, messageWidth)];
  });
  const allHeaders = wide
    ? [...headers, 'CAPACITY', 'READY', 'STORAGECLASS', 'RAW', 'USABLE', 'UNHEALTHY/MISSING', 'REASON', 'MESSAGE']
    : [...headers, 'CAPACITY', 'READY', 'MESSAGE'];
  return renderTable(allHeaders, out, style);
}

/**
 * Per-pool metrics of the operator, computed at scrape time from the StoragePool objects in the
 * operator's informer cache: what `kubectl get storagepool -o yaml` says, as numbers. Nothing is
 * kept between scrapes, so a deleted pool's series disappear with it.
 */
import type { Registry } from 'prom-client';
import { POOL_CONDITIONS, type StoragePool } from '../../crds/storagepool.js';
import { quantityToNumber } from '../../metrics/bytes.js';
import { conditionIs, conditionSamples } from '../../metrics/conditions.js';
import { derivedGauge } from '../../metrics/derived.js';

export const CAPACITY_KINDS = ['raw', 'usable', 'allocated', 'available'] as const;
export const VOLUME_PHASES = ['available', 'bound', 'released'] as const;
export const DISK_STATES = ['total', 'ready', 'unhealthy', 'missing'] as const;
/** The schema's default for spec.capacity.lowWatermarkPercent. */
export const DEFAULT_LOW_WATERMARK_PERCENT = 10;

/** Where the pools come from: the operator passes its StoragePool informer's `list`. */
export type PoolSource = () => readonly StoragePool[];

/** Registers every pool metric on `registry`; each is recomputed from `source()` on every scrape. */
export function registerPoolMetrics(registry: Registry, source: PoolSource): void {
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- a scrape reads whatever the API server stored (old servers skip the CRD rules): a half-formed object must not fail it
  const pools = (): StoragePool[] => source().filter((p) => typeof p?.metadata?.name === 'string');

  derivedGauge(
    registry,
    {
      name: 'stowage_pool_info',
      help: 'Always 1 per StoragePool; labels carry its mode and StorageClass name',
      labelNames: ['pool', 'mode', 'storage_class'],
    },
    function* () {
      for (const p of pools()) {
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- a scrape reads whatever the API server stored (old servers skip the CRD rules): a half-formed object must not fail it
        const storageClass = p.status?.storageClassName ?? p.spec?.storageClass?.name ?? p.metadata.name;
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- a scrape reads whatever the API server stored (old servers skip the CRD rules): a half-formed object must not fail it
        yield [{ pool: p.metadata.name, mode: p.spec?.mode ?? '', storage_class: storageClass }, 1];
      }
    },
  );

  derivedGauge(
    registry,
    {
      name: 'stowage_pool_capacity_bytes',
      help: 'Pool capacity in bytes by kind: raw (all disks), usable (after replication), allocated (promised to volumes), available (usable minus allocated)',
      labelNames: ['pool', 'kind'],
    },
    function* () {
      for (const p of pools()) {
        for (const kind of CAPACITY_KINDS) {
          const bytes = quantityToNumber(p.status?.capacity?.[kind]);
          if (bytes !== undefined) yield [{ pool: p.metadata.name, kind }, bytes];
        }
      }
    },
  );

  derivedGauge(
    registry,
    {
      name: 'stowage_pool_capacity_low_watermark_ratio',
      help: 'spec.capacity.lowWatermarkPercent as a ratio: below this share of usable capacity available, the pool reports low capacity (0: warning disabled)',
      labelNames: ['pool'],
    },
    function* () {
      for (const p of pools()) {
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- a scrape reads whatever the API server stored (old servers skip the CRD rules): a half-formed object must not fail it
        yield [{ pool: p.metadata.name }, (p.spec?.capacity?.lowWatermarkPercent ?? DEFAULT_LOW_WATERMARK_PERCENT) / 100];
      }
    },
  );

  derivedGauge(
    registry,
    {
      name: 'stowage_pool_volumes',
      help: 'Volumes of the pool by phase (available, bound, released)',
      labelNames: ['pool', 'phase'],
    },
    function* () {
      for (const p of pools()) {
        const counts = p.status?.counts?.volumes;
        if (counts) for (const phase of VOLUME_PHASES) yield [{ pool: p.metadata.name, phase }, counts[phase] ?? 0];
      }
    },
  );

  derivedGauge(
    registry,
    {
      name: 'stowage_pool_disks',
      help: 'Disks of the pool by state: total (selected), ready, unhealthy, missing; total is not the sum of the others',
      labelNames: ['pool', 'state'],
    },
    function* () {
      for (const p of pools()) {
        const counts = p.status?.counts?.disks;
        if (counts) for (const state of DISK_STATES) yield [{ pool: p.metadata.name, state }, counts[state] ?? 0];
      }
    },
  );

  derivedGauge(
    registry,
    {
      name: 'stowage_pool_nodes',
      help: 'Nodes contributing disks to the pool',
      labelNames: ['pool'],
    },
    function* () {
      for (const p of pools()) {
        const nodes = p.status?.counts?.nodes;
        if (nodes !== undefined) yield [{ pool: p.metadata.name }, nodes];
      }
    },
  );

  derivedGauge(
    registry,
    {
      name: 'stowage_pool_ready',
      help: "1 when the pool's Ready condition is True, else 0 (False, Unknown, or not reported yet)",
      labelNames: ['pool'],
    },
    function* () {
      for (const p of pools()) yield [{ pool: p.metadata.name }, conditionIs(p.status?.conditions, 'Ready', 'True') ? 1 : 0];
    },
  );

  derivedGauge(
    registry,
    {
      name: 'stowage_pool_condition',
      help: 'One series per pool condition and status: 1 for the status the pool reports, 0 for the others (conditions: Ready, DisksHealthy, ReplicationSatisfiable, CapacityAvailable, and DriverReady for Dynamic pools)',
      labelNames: ['pool', 'condition', 'status'],
    },
    function* () {
      for (const p of pools()) {
        for (const s of conditionSamples(p.status?.conditions, POOL_CONDITIONS)) {
          yield [{ pool: p.metadata.name, condition: s.condition, status: s.status }, s.value];
        }
      }
    },
  );
}

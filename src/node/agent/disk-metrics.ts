/**
 * Per-disk metrics of a node daemon, computed at scrape time from the NodeDisk objects of its own
 * node (the agent's informer cache or its last inventory): each daemon exports only its disks, so
 * a disk's series carry the node that sees it and vanish with the object.
 */
import type { Registry } from 'prom-client';
import { NODE_DISK_CONDITIONS, type NodeDisk } from '../../crds/nodedisk.js';
import { conditionIs, conditionOf, conditionSamples } from '../../metrics/conditions.js';
import { quantityToNumber } from '../../metrics/bytes.js';
import { derivedCounter, derivedGauge, type Sample } from '../../metrics/derived.js';

export const HEALTH_VERDICTS = ['Passed', 'Failed', 'Unknown'] as const;
export const WIPE_RESULTS = ['Succeeded', 'Failed'] as const;

/** Where this node's disks come from; the daemon filters to `spec.nodeName === NODE_NAME`. */
export type DiskSource = () => readonly NodeDisk[];

/** Registers every per-disk metric on `registry`; each is recomputed from `source()` on every scrape. */
export function registerDiskMetrics(registry: Registry, source: DiskSource): void {
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- a scrape reads whatever the API server stored (old servers skip the CRD rules): a half-formed object must not fail it
  const disks = (): NodeDisk[] => source().filter((d) => typeof d?.metadata?.name === 'string');
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- a scrape reads whatever the API server stored (old servers skip the CRD rules): a half-formed object must not fail it
  const ids = (d: NodeDisk): { node: string; disk: string } => ({ node: d.spec?.nodeName ?? '', disk: d.metadata.name });
  /** One sample per disk that reports `value` (undefined: none). */
  const perDisk = (value: (d: NodeDisk) => number | undefined) =>
    function* (): Generator<Sample<'node' | 'disk'>> {
      for (const d of disks()) {
        const v = value(d);
        if (v !== undefined) yield [ids(d), v];
      }
    };

  derivedGauge(
    registry,
    {
      name: 'stowage_disk_info',
      help: 'Always 1 per NodeDisk; labels describe the device (kernel name, model, serial, media)',
      labelNames: ['node', 'disk', 'device', 'model', 'serial', 'media'],
    },
    function* () {
      for (const d of disks()) {
        const s = d.status ?? {};
        yield [{ ...ids(d), device: s.kernelName ?? '', model: s.model ?? '', serial: s.serial ?? '', media: s.media ?? 'unknown' }, 1];
      }
    },
  );

  derivedGauge(
    registry,
    {
      name: 'stowage_disk_capacity_bytes',
      help: 'Size of the disk in bytes',
      labelNames: ['node', 'disk'],
    },
    perDisk((d) => quantityToNumber(d.status?.capacity)),
  );

  derivedGauge(
    registry,
    {
      name: 'stowage_disk_health_status',
      help: 'SMART overall verdict: 1 for the verdict the disk reports (Passed, Failed, Unknown), 0 for the others',
      labelNames: ['node', 'disk', 'verdict'],
    },
    function* () {
      for (const d of disks()) {
        const verdict = d.status?.health?.verdict;
        if (verdict) for (const v of HEALTH_VERDICTS) yield [{ ...ids(d), verdict: v }, v === verdict ? 1 : 0];
      }
    },
  );

  derivedGauge(
    registry,
    {
      name: 'stowage_disk_temperature_celsius',
      help: 'Current disk temperature reported by SMART, in degrees Celsius',
      labelNames: ['node', 'disk'],
    },
    perDisk((d) => d.status?.health?.temperatureCelsius),
  );

  derivedCounter(
    registry,
    {
      name: 'stowage_disk_media_errors_total',
      help: 'Unrecovered media and data-integrity errors reported by the device (NVMe SMART); read from the device, so it restarts when the disk is replaced',
      labelNames: ['node', 'disk'],
    },
    perDisk((d) => d.status?.health?.mediaErrors),
  );

  derivedCounter(
    registry,
    {
      name: 'stowage_disk_reallocated_sectors_total',
      help: 'Sectors the device remapped after errors (SATA/SAS SMART); a growing count means the disk is wearing out',
      labelNames: ['node', 'disk'],
    },
    perDisk((d) => d.status?.health?.reallocatedSectors),
  );

  derivedGauge(
    registry,
    {
      name: 'stowage_disk_pending_sectors',
      help: 'Sectors waiting to be remapped (SATA SMART); non-zero means data the disk cannot read',
      labelNames: ['node', 'disk'],
    },
    perDisk((d) => d.status?.health?.pendingSectors),
  );

  derivedGauge(
    registry,
    {
      name: 'stowage_disk_present',
      help: '1 when the node agent currently sees the disk (Present condition True), else 0',
      labelNames: ['node', 'disk'],
    },
    perDisk((d) => (conditionIs(d.status?.conditions, 'Present', 'True') ? 1 : 0)),
  );

  derivedGauge(
    registry,
    {
      name: 'stowage_disk_eligible',
      help: "1 when a pool may claim the disk (Eligible condition True), else 0; reason is the condition's reason (HasFilesystem, Mounted, SystemDisk, ...)",
      labelNames: ['node', 'disk', 'reason'],
    },
    function* () {
      for (const d of disks()) {
        const eligible = conditionOf(d.status?.conditions, 'Eligible');
        if (eligible) yield [{ ...ids(d), reason: eligible.reason }, eligible.status === 'True' ? 1 : 0];
      }
    },
  );

  derivedGauge(
    registry,
    {
      name: 'stowage_disk_condition',
      help: 'One series per disk condition and status: 1 for the status the disk reports, 0 for the others (conditions: Present, Eligible, Healthy, Prepared)',
      labelNames: ['node', 'disk', 'condition', 'status'],
    },
    function* () {
      for (const d of disks()) {
        for (const s of conditionSamples(d.status?.conditions, NODE_DISK_CONDITIONS))
          yield [{ ...ids(d), condition: s.condition, status: s.status }, s.value];
      }
    },
  );

  derivedGauge(
    registry,
    {
      name: 'stowage_disk_claimed',
      help: 'Always 1 per disk a pool has claimed (spec.claim); pool names the pool',
      labelNames: ['node', 'disk', 'pool'],
    },
    function* () {
      for (const d of disks()) {
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- a scrape reads whatever the API server stored (old servers skip the CRD rules): a half-formed object must not fail it
        const pool = d.spec?.claim?.pool;
        if (pool) yield [{ ...ids(d), pool }, 1];
      }
    },
  );

  derivedGauge(
    registry,
    {
      name: 'stowage_disk_last_wipe_status',
      help: 'Result of the last wipe of the disk (status.lastWipe): 1 for its result (Succeeded, Failed), 0 for the other; absent before the first wipe',
      labelNames: ['node', 'disk', 'result'],
    },
    function* () {
      for (const d of disks()) {
        const result = d.status?.lastWipe?.result;
        if (result) for (const r of WIPE_RESULTS) yield [{ ...ids(d), result: r }, r === result ? 1 : 0];
      }
    },
  );
}

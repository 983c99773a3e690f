/**
 * Per-disk metrics of a node daemon, computed at scrape time from the NodeDisk objects of its own
 * node (the agent's informer cache or its last inventory): each daemon exports only its disks, so
 * a disk's series carry the node that sees it and vanish with the object.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { NODE_DISK_CONDITIONS, type NodeDisk } from '../crds/nodedisk.js';
import { conditionIs, conditionOf, conditionSamples } from './conditions.js';
import { quantityToNumber } from './bytes.js';

export const HEALTH_VERDICTS = ['Passed', 'Failed', 'Unknown'] as const;
export const WIPE_RESULTS = ['Succeeded', 'Failed'] as const;

/** Where this node's disks come from; the daemon filters to `spec.nodeName === NODE_NAME`. */
export type DiskSource = () => readonly NodeDisk[];

/** Registers every per-disk metric on `registry`; each is recomputed from `source()` on every scrape. */
export function registerDiskMetrics(registry: Registry, source: DiskSource): void {
  const registers = [registry];
  const disks = (): NodeDisk[] => source().filter((d) => typeof d?.metadata?.name === 'string');
  const ids = (d: NodeDisk): { node: string; disk: string } => ({ node: d.spec?.nodeName ?? '', disk: d.metadata.name });

  new Gauge({
    name: 'stowage_disk_info',
    help: 'Always 1 per NodeDisk; labels describe the device (kernel name, model, serial, media)',
    labelNames: ['node', 'disk', 'device', 'model', 'serial', 'media'],
    registers,
    collect() {
      this.reset();
      for (const d of disks()) {
        const s = d.status ?? {};
        this.set({ ...ids(d), device: s.kernelName ?? '', model: s.model ?? '', serial: s.serial ?? '', media: s.media ?? 'unknown' }, 1);
      }
    },
  });

  new Gauge({
    name: 'stowage_disk_capacity_bytes',
    help: 'Size of the disk in bytes',
    labelNames: ['node', 'disk'],
    registers,
    collect() {
      this.reset();
      for (const d of disks()) {
        const bytes = quantityToNumber(d.status?.capacity);
        if (bytes !== undefined) this.set(ids(d), bytes);
      }
    },
  });

  new Gauge({
    name: 'stowage_disk_health_status',
    help: 'SMART overall verdict: 1 for the verdict the disk reports (Passed, Failed, Unknown), 0 for the others',
    labelNames: ['node', 'disk', 'verdict'],
    registers,
    collect() {
      this.reset();
      for (const d of disks()) {
        const verdict = d.status?.health?.verdict;
        if (!verdict) continue;
        for (const v of HEALTH_VERDICTS) this.set({ ...ids(d), verdict: v }, v === verdict ? 1 : 0);
      }
    },
  });

  new Gauge({
    name: 'stowage_disk_temperature_celsius',
    help: 'Current disk temperature reported by SMART, in degrees Celsius',
    labelNames: ['node', 'disk'],
    registers,
    collect() {
      this.reset();
      for (const d of disks()) {
        const t = d.status?.health?.temperatureCelsius;
        if (t !== undefined) this.set(ids(d), t);
      }
    },
  });

  new Counter({
    name: 'stowage_disk_media_errors_total',
    help: 'Unrecovered media and data-integrity errors reported by the device (NVMe SMART); read from the device, so it restarts when the disk is replaced',
    labelNames: ['node', 'disk'],
    registers,
    collect() {
      this.reset();
      for (const d of disks()) {
        const n = d.status?.health?.mediaErrors;
        if (n !== undefined) this.inc(ids(d), n);
      }
    },
  });

  new Counter({
    name: 'stowage_disk_reallocated_sectors_total',
    help: 'Sectors the device remapped after errors (SATA/SAS SMART); a growing count means the disk is wearing out',
    labelNames: ['node', 'disk'],
    registers,
    collect() {
      this.reset();
      for (const d of disks()) {
        const n = d.status?.health?.reallocatedSectors;
        if (n !== undefined) this.inc(ids(d), n);
      }
    },
  });

  new Gauge({
    name: 'stowage_disk_pending_sectors',
    help: 'Sectors waiting to be remapped (SATA SMART); non-zero means data the disk cannot read',
    labelNames: ['node', 'disk'],
    registers,
    collect() {
      this.reset();
      for (const d of disks()) {
        const n = d.status?.health?.pendingSectors;
        if (n !== undefined) this.set(ids(d), n);
      }
    },
  });

  new Gauge({
    name: 'stowage_disk_present',
    help: '1 when the node agent currently sees the disk (Present condition True), else 0',
    labelNames: ['node', 'disk'],
    registers,
    collect() {
      this.reset();
      for (const d of disks()) this.set(ids(d), conditionIs(d.status?.conditions, 'Present', 'True') ? 1 : 0);
    },
  });

  new Gauge({
    name: 'stowage_disk_eligible',
    help: '1 when a pool may claim the disk (Eligible condition True), else 0; reason is the condition\'s reason (HasFilesystem, Mounted, SystemDisk, ...)',
    labelNames: ['node', 'disk', 'reason'],
    registers,
    collect() {
      this.reset();
      for (const d of disks()) {
        const eligible = conditionOf(d.status?.conditions, 'Eligible');
        if (eligible) this.set({ ...ids(d), reason: eligible.reason }, eligible.status === 'True' ? 1 : 0);
      }
    },
  });

  new Gauge({
    name: 'stowage_disk_condition',
    help: 'One series per disk condition and status: 1 for the status the disk reports, 0 for the others (conditions: Present, Eligible, Healthy, Prepared)',
    labelNames: ['node', 'disk', 'condition', 'status'],
    registers,
    collect() {
      this.reset();
      for (const d of disks()) {
        for (const s of conditionSamples(d.status?.conditions, NODE_DISK_CONDITIONS)) {
          this.set({ ...ids(d), condition: s.condition, status: s.status }, s.value);
        }
      }
    },
  });

  new Gauge({
    name: 'stowage_disk_claimed',
    help: 'Always 1 per disk a pool has claimed (spec.claim); pool names the pool',
    labelNames: ['node', 'disk', 'pool'],
    registers,
    collect() {
      this.reset();
      for (const d of disks()) {
        const pool = d.spec?.claim?.pool;
        if (pool) this.set({ ...ids(d), pool }, 1);
      }
    },
  });

  new Gauge({
    name: 'stowage_disk_last_wipe_status',
    help: 'Result of the last wipe of the disk (status.lastWipe): 1 for its result (Succeeded, Failed), 0 for the other; absent before the first wipe',
    labelNames: ['node', 'disk', 'result'],
    registers,
    collect() {
      this.reset();
      for (const d of disks()) {
        const result = d.status?.lastWipe?.result;
        if (!result) continue;
        for (const r of WIPE_RESULTS) this.set({ ...ids(d), result: r }, r === result ? 1 : 0);
      }
    },
  });
}

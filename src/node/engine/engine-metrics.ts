/**
 * Metrics of a node's Dynamic-pool engine (one btrfs filesystem per pool and node), read at
 * scrape time through `source`, which the node daemon implements over its engine
 * (`btrfs filesystem usage`, `btrfs device stats`, `btrfs scrub status`). Device error counters are the kernel's own
 * counters, exported as counters so `increase()` sees new errors and a reset (`btrfs device stats -z`).
 */
import type { Registry } from 'prom-client';
import { derivedCounter, derivedGauge } from '../../metrics/derived.js';

/** The error kinds `btrfs device stats` reports. */
export const DEVICE_ERROR_TYPES = ['write_io', 'read_io', 'flush_io', 'corruption', 'generation'] as const;
export type DeviceErrorType = (typeof DEVICE_ERROR_TYPES)[number];

export interface EngineDeviceStats {
  /** Device path as the engine knows it, e.g. /dev/disk/by-id/... or /dev/loop3. */
  readonly device: string;
  readonly errors: Partial<Record<DeviceErrorType, number>>;
}

/** What the last scrub of a pool filesystem found, by kind (`btrfs scrub status -R`). */
export const SCRUB_ERROR_TYPES = ['read', 'csum', 'verify', 'super', 'corrected', 'uncorrectable'] as const;
export type ScrubErrorType = (typeof SCRUB_ERROR_TYPES)[number];

export interface EngineScrubStats {
  readonly errors: Partial<Record<ScrubErrorType, number>>;
  /** Unix time the last scrub started. */
  readonly lastStartSeconds?: number;
}

export interface EnginePoolStats {
  readonly pool: string;
  /** Usable bytes of the pool filesystem after its data profile (raid1 halves raw space). */
  readonly sizeBytes: number;
  readonly usedBytes: number;
  readonly availableBytes: number;
  readonly volumes: number;
  readonly devices: readonly EngineDeviceStats[];
  /** The last scrub's result; undefined when no scrub has run on the filesystem (or it cannot be read). */
  readonly scrub?: EngineScrubStats;
}

/** What the metrics need from the engine; may be async (it runs commands). */
export type EngineSource = () => Promise<readonly EnginePoolStats[]> | readonly EnginePoolStats[];

export function registerEngineMetrics(registry: Registry, node: string, source: EngineSource): void {
  // One read per scrape, shared by the metrics below: each collect() awaits the same promise.
  let pending: Promise<readonly EnginePoolStats[]> | undefined;
  const read = (): Promise<readonly EnginePoolStats[]> => {
    if (!pending) {
      pending = Promise.resolve(source()).finally(() => setImmediate(() => (pending = undefined)));
    }
    return pending;
  };

  derivedGauge(
    registry,
    {
      name: 'stowage_engine_pool_bytes',
      help: 'Space of the pool filesystem on this node in bytes by kind: size (usable after the data profile), used, available',
      labelNames: ['node', 'pool', 'kind'],
    },
    async () =>
      (await read()).flatMap(
        (p) =>
          [
            [{ node, pool: p.pool, kind: 'size' }, p.sizeBytes],
            [{ node, pool: p.pool, kind: 'used' }, p.usedBytes],
            [{ node, pool: p.pool, kind: 'available' }, p.availableBytes],
          ] as const,
      ),
  );

  derivedGauge(
    registry,
    {
      name: 'stowage_engine_volumes',
      help: 'Volumes (subvolumes and block files) in the pool filesystem on this node',
      labelNames: ['node', 'pool'],
    },
    async () => (await read()).map((p) => [{ node, pool: p.pool }, p.volumes] as const),
  );

  derivedCounter(
    registry,
    {
      name: 'stowage_engine_device_errors_total',
      help: 'I/O and integrity errors the filesystem counted per device and type (btrfs device stats: write_io, read_io, flush_io, corruption, generation)',
      labelNames: ['node', 'pool', 'device', 'type'],
    },
    async () =>
      (await read()).flatMap((p) =>
        p.devices.flatMap((d) =>
          DEVICE_ERROR_TYPES.map((type) => [{ node, pool: p.pool, device: d.device, type }, d.errors[type] ?? 0] as const),
        ),
      ),
  );

  derivedGauge(
    registry,
    {
      name: 'stowage_engine_scrub_errors',
      help: 'Errors the last scrub of the pool filesystem found, by type (read, csum, verify, super; corrected: repaired from a good copy; uncorrectable: no good copy left)',
      labelNames: ['node', 'pool', 'type'],
    },
    async () =>
      (await read()).flatMap((p) =>
        p.scrub ? SCRUB_ERROR_TYPES.map((type) => [{ node, pool: p.pool, type }, p.scrub!.errors[type] ?? 0] as const) : [],
      ),
  );

  derivedGauge(
    registry,
    {
      name: 'stowage_engine_scrub_last_start_timestamp_seconds',
      help: 'Unix time the last scrub of the pool filesystem started',
      labelNames: ['node', 'pool'],
    },
    async () =>
      (await read()).flatMap((p) =>
        p.scrub?.lastStartSeconds !== undefined ? [[{ node, pool: p.pool }, p.scrub.lastStartSeconds] as const] : [],
      ),
  );
}

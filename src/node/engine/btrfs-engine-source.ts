/**
 * The engine metrics' source for the btrfs engine: for every pool mounted on this node, the
 * filesystem's usage, the kernel's per-device error counters and the last scrub's result, read at
 * scrape time (`btrfs filesystem usage -b`, `btrfs device stats`, `btrfs scrub status -R`; all read
 * counters, none touches data or starts a scrub).
 */
import { readdir } from 'node:fs/promises';
import type { BtrfsEngine } from './btrfs-engine.js';
import * as btrfs from './btrfs.js';
import { errorMessage, ifNotFound } from '../../util/errors.js';
import { logger } from '../../util/logger.js';
import type { EnginePoolStats, EngineSource } from './engine-metrics.js';

const log = logger('engine-metrics');

/** Where the engine keeps volumes in a pool filesystem (see src/node/engine/volumes.ts volumePath). */
const VOLUME_DIRS = ['volumes', 'blocks'];

/**
 * `pools()` names the Dynamic pools this node may carry (e.g. from the claims of its NodeDisks);
 * pools not mounted here are skipped. A pool whose figures cannot be read is left out of that
 * scrape and logged, so one broken filesystem never hides the metrics of the others.
 */
export function btrfsEngineSource(engine: Pick<BtrfsEngine, 'mountedPool'>, pools: () => Iterable<string>): EngineSource {
  return async () => {
    const stats: EnginePoolStats[] = [];
    for (const pool of new Set(pools())) {
      try {
        const mountPoint = await engine.mountedPool(pool);
        if (!mountPoint) continue;
        const [usage, devices, volumes, scrub] = await Promise.all([
          btrfs.usage(mountPoint),
          btrfs.deviceStats(mountPoint),
          countVolumes(mountPoint),
          btrfs.scrubStatus(mountPoint).catch(() => undefined), // no scrub status (older btrfs-progs): the scrub series are left out, the rest stays
        ]);
        const started = scrub?.started ? Date.parse(scrub.started) : NaN;
        // usage counts raw bytes on all devices; a raid1 pool holds half of that.
        const ratio = usage.dataRatio > 0 ? usage.dataRatio : 1;
        stats.push({
          pool,
          sizeBytes: Number(usage.deviceSize) / ratio,
          usedBytes: Number(usage.used) / ratio,
          availableBytes: Number(usage.freeEstimated),
          volumes,
          devices: devices.map((d) => ({
            device: d.device,
            errors: {
              write_io: d.writeErrors,
              read_io: d.readErrors,
              flush_io: d.flushErrors,
              corruption: d.corruptionErrors,
              generation: d.generationErrors,
            },
          })),
          ...(scrub && scrub.state !== 'never'
            ? {
                scrub: {
                  errors: {
                    read: scrub.readErrors,
                    csum: scrub.csumErrors,
                    verify: scrub.verifyErrors,
                    super: scrub.superErrors,
                    corrected: scrub.correctedErrors,
                    uncorrectable: scrub.uncorrectableErrors,
                  },
                  ...(Number.isFinite(started) ? { lastStartSeconds: Math.floor(started / 1000) } : {}),
                },
              }
            : {}),
        });
      } catch (err) {
        log.warn({ pool, err: errorMessage(err) }, 'cannot read the pool filesystem for metrics; leaving it out of this scrape');
      }
    }
    return stats;
  };
}

async function countVolumes(mountPoint: string): Promise<number> {
  let count = 0;
  for (const dir of VOLUME_DIRS) {
    count += (await readdir(`${mountPoint}/${dir}`).catch(ifNotFound<string[]>([]))).filter((n) => !n.startsWith('.')).length;
  }
  return count;
}

/**
 * What a Dynamic pool's btrfs filesystem, as the engine just observed it, means for the pool and
 * for each claimed disk: the pool's summary message (missing members, a refused removal, I/O
 * errors, the last scrub) and one Prepared outcome per disk. Pure: btrfs-engine.ts observes and
 * acts, this only reads what it observed.
 */
import type { ClaimedDisk, PreparationOutcome } from '../agent/dynamic-pools.js';
import { profileFor, type BtrfsDevice, type DeviceStats, type ScrubStatus } from './btrfs.js';

/** What a scrub's result means for the pool, or '' when it found nothing. */
export function scrubNote(pool: string, scrub: ScrubStatus | undefined): string {
  if (!scrub || scrub.state === 'never') return '';
  const when = scrub.started ? ` (started ${scrub.started})` : '';
  if (scrub.uncorrectableErrors > 0) {
    return `the last scrub${when} found ${scrub.uncorrectableErrors} uncorrectable error(s) in pool ${pool}'s filesystem: some data has no good copy left (the kernel log names the files); restore them from backup and check the disks`;
  }
  if (scrub.correctedErrors > 0)
    return `the last scrub${when} repaired ${scrub.correctedErrors} bad block(s) from good copies; watch the disks' error counters`;
  return '';
}

/** All errors btrfs counted on one device. */
export function errorCount(s: DeviceStats): number {
  return s.writeErrors + s.readErrors + s.flushErrors + s.corruptionErrors + s.generationErrors;
}

/** The pool filesystem as the engine saw it at the end of a sync. */
export interface ObservedPool {
  readonly pool: string;
  readonly mountPoint: string;
  readonly uuid: string;
  readonly copies: number;
  readonly devices: readonly BtrfsDevice[];
  readonly stats: readonly DeviceStats[];
  readonly scrub: ScrubStatus | undefined;
  /** Why a disk that left the pool was not removed, if one was not. */
  readonly removalRefused: string | undefined;
  /** Member device paths whose disk lost its medium: btrfs still lists them, but they hold no good copy. */
  readonly failed?: readonly string[];
}

/** What is wrong with the pool filesystem, one note each (empty when healthy), and whether it runs degraded. */
export function poolNotes(p: ObservedPool): { notes: string[]; degraded: boolean } {
  const errored = p.stats.filter((s) => errorCount(s) > 0);
  const missingCount = p.devices.filter((d) => d.path === undefined).length;
  const failed = p.devices.filter((d) => d.path !== undefined && (p.failed ?? []).includes(d.path)).map((d) => d.path!);
  const degraded = missingCount > 0 || failed.length > 0;
  const notes = [
    missingCount > 0
      ? `${missingCount} disk(s) of the pool filesystem are missing; running degraded without full redundancy — add a new disk to the pool on this node to heal it`
      : '',
    failed.length > 0
      ? `${failed.join(', ')} lost its medium (every I/O fails); running degraded without full redundancy — add a new disk to the pool on this node to rebuild onto it`
      : '',
    p.removalRefused ?? '',
    errored.length > 0 ? `I/O errors on ${errored.map((s) => s.device).join(', ')} (btrfs device stats)` : '',
    scrubNote(p.pool, p.scrub),
  ].filter(Boolean);
  return { notes, degraded };
}

/** What the engine learned of each disk before acting: its resolved device path and signature. */
export interface DiskProbes {
  /** realpath of each present disk's device, by disk name. */
  readonly real: ReadonlyMap<string, string>;
  readonly probes: ReadonlyMap<string, { type?: string }>;
  /** Present disks carrying another filesystem than the pool's. */
  readonly foreign: readonly ClaimedDisk[];
}

/** One Prepared outcome per claimed disk of the pool. */
export function diskOutcomes(p: ObservedPool, disks: readonly ClaimedDisk[], probed: DiskProbes): Map<string, PreparationOutcome> {
  const { notes, degraded } = poolNotes(p);
  const outcomes = new Map<string, PreparationOutcome>();
  const inFs = new Set(p.devices.filter((d) => d.path).map((d) => d.path!));
  const preparation = { path: p.mountPoint, filesystem: 'btrfs', uuid: p.uuid };
  for (const d of disks) {
    if (!d.present) {
      outcomes.set(d.name, {
        prepared: false,
        reason: 'DiskMissing',
        message: `${d.failed ? 'the disk fails every I/O (no medium)' : 'the disk is gone'}; pool ${p.pool} ${degraded ? 'runs degraded' : 'is mounted without it'}`,
      });
      continue;
    }
    const path = probed.real.get(d.name)!;
    if (!inFs.has(path)) {
      outcomes.set(
        d.name,
        probed.foreign.includes(d)
          ? {
              prepared: false,
              reason: 'HasFilesystem',
              message: `the disk carries a ${probed.probes.get(d.name)?.type} filesystem that is not pool ${p.pool}'s; set disks.allowAdoption on the pool to let Stowage reuse it (destroys its data)`,
            }
          : { prepared: false, reason: 'Pending', message: `not yet part of pool ${p.pool}'s filesystem` },
      );
      continue;
    }
    const stat = p.stats.find((s) => s.device === path);
    const errors = stat ? errorCount(stat) : 0;
    const reason = errors > 0 ? 'IOErrors' : degraded ? 'PoolDegraded' : 'Prepared';
    const message =
      errors > 0
        ? `member of pool ${p.pool}'s btrfs, with I/O errors: write ${stat!.writeErrors}, read ${stat!.readErrors}, flush ${stat!.flushErrors}, corruption ${stat!.corruptionErrors}, generation ${stat!.generationErrors}`
        : `member of pool ${p.pool}'s btrfs (${profileFor(p.copies).data}) at ${p.mountPoint}${notes.length ? `; ${notes.join('; ')}` : ''}`;
    outcomes.set(d.name, { prepared: true, reason, message, preparation });
  }
  return outcomes;
}

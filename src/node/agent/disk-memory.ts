/**
 * What the agent remembers about each of its disks between passes: the preparation it made, the
 * Prepared state it concluded, SMART health, wipes done and pending retries, the last usage read.
 *
 * The NodeDisk status is the durable copy of this memory: a restarted agent seeds each disk's
 * entries from its live object once (`seed`), so it recognises its own preparations and wipes
 * instead of redoing them. Only the agent's parts (claim handling, wiping, view composition,
 * status writing) read and write it, one pass at a time.
 */
import type { NodeDisk, NodeDiskStatus } from '../../crds/nodedisk.js';
import type { IoProblem } from './io-health.js';
import type { Preparation } from './preparation.js';
import { DEVICE_PATH_REVERTED, WIPED_VOLUMES_ANNOTATION, stamp, type DiskView, type PreparedState } from './status.js';

export type LastWipe = NonNullable<NodeDiskStatus['lastWipe']>;

export interface HealthReading {
  readonly health: Omit<NonNullable<NodeDiskStatus['health']>, 'checkedTime'>;
  /** When it was read (ms since the epoch): the next read is due an interval later. */
  readonly at: number;
  readonly checkedAt: string;
}

/** A failed wipe of volume `uid`, retried no sooner than `notBefore`. */
export interface WipeRetry {
  readonly uid: string;
  readonly attempts: number;
  readonly notBefore: number;
}

export class DiskMemory {
  /** The filesystem (or raw device) made for a Local claim, by NodeDisk name. */
  readonly preparations = new Map<string, Preparation>();
  /** The Prepared condition each disk's last handling concluded. */
  readonly prepared = new Map<string, PreparedState>();
  readonly health = new Map<string, HealthReading>();
  /** What the kernel showed wrong with the device in the last pass (absent: nothing). */
  readonly io = new Map<string, IoProblem>();
  readonly lastWipes = new Map<string, LastWipe>();
  /** Volume UIDs each disk was wiped for, newest first (the wiped-volumes annotation). */
  readonly wiped = new Map<string, string[]>();
  readonly wipeRetries = new Map<string, WipeRetry>();
  /** `<disk>/<volumeUID>` of stale wipe requests already reported (one event each, not one a pass). */
  readonly staleReported = new Set<string>();
  /** The prepared filesystem's usage as last read. */
  readonly usage = new Map<string, DiskView['usage']>();
  /** Disks held because they came back without the NodeDisk they were handed out under (returning-disks.ts): why. */
  readonly held = new Map<string, string>();
  /** The last hand edit of spec.devicePath the agent set back, and why (the DevicePathReverted condition's message). */
  readonly devicePathReverted = new Map<string, string>();
  /** metadata.generation of the spec each disk was last acted on. */
  readonly actedGeneration = new Map<string, number>();
  private readonly seeded = new Set<string>();

  /** Loads a disk's entries from its live NodeDisk, once per disk per process. */
  seed(name: string, live: NodeDisk | undefined): void {
    if (this.seeded.has(name)) return;
    this.seeded.add(name);
    const st = live?.status;
    if (!live || !st) return;
    const prepared = st.conditions?.find((c) => c.type === 'Prepared');
    if (st.preparation?.path && prepared?.status === 'True' && live.spec.claim?.mode === 'Local')
      this.preparations.set(name, st.preparation as Preparation);
    if (st.lastWipe) this.lastWipes.set(name, st.lastWipe);
    const reverted = st.conditions?.find((c) => c.type === DEVICE_PATH_REVERTED);
    if (reverted?.status === 'True') this.devicePathReverted.set(name, reverted.message);
    const wiped = live.metadata.annotations?.[WIPED_VOLUMES_ANNOTATION];
    if (wiped) this.wiped.set(name, wiped.split(',').filter(Boolean));
    if (st.health) {
      const { checkedTime, ...h } = st.health;
      const at = checkedTime ? Date.parse(checkedTime) : 0;
      this.health.set(name, { health: h, at, checkedAt: checkedTime ?? stamp(new Date(at)) });
    }
  }
}

/**
 * Disks that come back after their NodeDisk was deleted (issue 25, item 6). The dead-disk runbook
 * ends with `kubectl delete nodedisk`; if that disk is later reseated, it still holds the previous
 * tenant's data — for a raw Block volume with nothing on it that looks like a signature, so it
 * would look blank and be offered to the next tenant as it is.
 *
 * The rule: a disk Stowage handed to a pool and that is seen again without the NodeDisk it was
 * handed out under is HELD — never prepared, never offered, nothing on it changed — until an
 * administrator asks for its erase (`spec.erasePreviousData: true` on its new NodeDisk); then the
 * agent zeroes every byte of it and it becomes Eligible like any blank disk. Held and not wiped,
 * because a disk that comes back may hold the only copy of a volume someone still wants (a
 * Retain volume, a recovery), and because the pool's cleanup method may be `quick`, which would
 * not remove the data anyway. Why a disk is held is in its Eligible and Prepared conditions.
 *
 * Pure: decides from the host record, the live object and the disk's label.
 */
import type { NodeDisk } from '../../crds/nodedisk.js';
import type { HandoutRecord } from './handout-records.js';

export const HELD_REASON = 'PreviouslyUsed';
/** Stowage's filesystem labels (`stw-` + 8 hex, see preparation.ts). */
const STOWAGE_LABEL = /^stw-[0-9a-f]{8}$/;

export interface DiskSeen {
  readonly name: string;
  readonly identity: string;
  /** The filesystem label on the whole device, if any. */
  readonly label?: string | undefined;
}

/**
 * The record to keep for a disk that must be held, or undefined when it is not held:
 * - a record already held stays held (until the erase removes it);
 * - a record whose NodeDisk is gone or is another object (another UID) turns held;
 * - with no record (the host's state was lost) and no NodeDisk, Stowage's own filesystem label on
 *   the disk is evidence enough.
 */
export function heldRecord(
  disk: DiskSeen,
  live: Pick<NodeDisk, 'metadata'> | undefined,
  record: HandoutRecord | undefined,
  now: string,
): HandoutRecord | undefined {
  if (record?.heldSince) return record;
  if (record) return live?.metadata.uid === record.nodeDiskUID ? undefined : { ...record, heldSince: now };
  if (!live && disk.label && STOWAGE_LABEL.test(disk.label)) {
    return {
      identity: disk.identity,
      nodeDisk: disk.name,
      nodeDiskUID: '',
      pool: '',
      volumeMode: 'Filesystem',
      since: now,
      heldSince: now,
    };
  }
  return undefined;
}

/** Why the disk is held and what to do, for its Eligible and Prepared conditions. */
export function heldMessage(r: HandoutRecord, devicePath: string, kind: 'Disk' | 'Mount' = 'Disk'): string {
  const what = r.pool
    ? `Stowage handed it to pool ${r.pool} (${r.volumeMode}) on ${r.since} under a NodeDisk that was deleted since`
    : 'it carries a filesystem Stowage made, and no NodeDisk records it';
  return (
    `${devicePath} may hold a previous tenant's data: ${what}. It is not offered to any pool and nothing on it is changed. ` +
    `To reuse it, erase it: kubectl patch nodedisk <name> --type merge -p '{"spec":{"erasePreviousData":true}}' (${kind === 'Mount' ? 'everything in it is removed' : 'every byte is zeroed'}); ` +
    "to recover its data instead, take it off the agent's allow-list first"
  );
}

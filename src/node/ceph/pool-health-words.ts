/**
 * The facts of CephPoolHealth in words, for a condition's message and `kubectl stowage why`:
 * "2 of 3 hosts hold copies; host n3 is down; 12.5 % of object copies degraded, recovering at
 * 4.0 MiB/s, about 40 s left". Pure.
 */
import type { CephPoolHealth } from './pool-health.js';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

export function bytesInWords(n: number): string {
  if (n >= GiB) return `${(n / GiB).toFixed(1)} GiB`;
  if (n >= MiB) return `${(n / MiB).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

export function durationInWords(seconds: number): string {
  if (seconds < 90) return `${Math.max(1, Math.round(seconds))} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

const percent = (ratio: number): string => `${(ratio * 100).toFixed(ratio > 0 && ratio < 0.001 ? 3 : 1)} %`;
const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

/** One sentence per fact, most urgent first. */
export function describePoolHealth(h: CephPoolHealth): string[] {
  if (!h.exists) return [`pool ${h.pool} does not exist in the Ceph cluster`];
  const out: string[] = [];
  const m = h.monitors;
  if (!m.quorum) {
    out.push(
      `monitors have no quorum (${m.inQuorum.length} of ${m.total} in): the cluster accepts no change and clients block until a majority is back` +
        (m.outOfQuorum.length ? `; missing: ${m.outOfQuorum.join(', ')}` : ''),
    );
  } else if (m.inQuorum.length < m.total) {
    out.push(`${m.inQuorum.length} of ${m.total} monitors in quorum` + (m.outOfQuorum.length ? `; ${m.outOfQuorum.join(', ')} out` : ''));
  }

  const holding = h.domains.filter((d) => d.holdsCopies).length;
  const kind = h.failureDomain;
  let domains = `${holding} of ${plural(h.domains.length, kind)} hold copies`;
  if (h.domainsDown.length > 0) domains += `; ${kind} ${h.domainsDown.join(', ')} ${h.domainsDown.length === 1 ? 'is' : 'are'} down`;
  if (holding < h.size) domains += ` (the pool wants ${h.size} copies in distinct ${kind}s)`;
  out.push(domains);

  const o = h.objects;
  if (o.unfound > 0)
    out.push(`${plural(o.unfound, 'object')} unfound: no up OSD holds a current copy; they read back when a lost OSD returns`);
  if (o.degraded > 0) out.push(`${percent(o.degradedRatio)} of object copies degraded (${o.degraded} of ${o.copies})`);
  if (o.misplaced > 0) out.push(`${plural(o.misplaced, 'object copy', 'object copies')} misplaced (moving to where CRUSH wants them)`);
  if (o.degraded + o.misplaced > 0) {
    if (h.recovery.objectsPerSecond > 0) {
      out.push(
        `recovering at ${bytesInWords(h.recovery.bytesPerSecond)}/s (${h.recovery.objectsPerSecond} objects/s)` +
          (h.recovery.etaSeconds !== undefined ? `, about ${durationInWords(h.recovery.etaSeconds)} left` : ''),
      );
    } else {
      out.push(
        h.domainsDown.length > 0 && holding < h.size
          ? `no recovery possible now: there is no other ${kind} for the missing copies; it starts when ${h.domainsDown.join(', ')} returns or another ${kind} joins`
          : 'no recovery running yet',
      );
    }
  }

  if (h.pgs.inactive > 0)
    out.push(
      `${plural(h.pgs.inactive, 'placement group')} inactive: writes to ${h.pgs.inactive === 1 ? 'it' : 'them'} block (fewer than ${h.minSize} copies up)`,
    );
  else if (h.writable && !h.redundant) out.push(`reads and writes go on (${h.minSize} of ${h.size} copies are enough)`);

  if (h.capacity.full) out.push('the cluster is full: writes fail with ENOSPC until data is deleted or disks are added');
  else if (h.capacity.nearFull) out.push('the cluster is near full');

  if (h.redundant) out.push(`all ${plural(h.objects.count, 'object')} have ${h.size} copies in distinct ${kind}s`);
  out.push(`stored ${bytesInWords(h.capacity.storedBytes)}, ${bytesInWords(h.capacity.maxAvailBytes)} more fit`);
  return out;
}

/** The sentences as one line, e.g. for a condition's message. */
export const poolHealthSummary = (h: CephPoolHealth): string => describePoolHealth(h).join('; ');

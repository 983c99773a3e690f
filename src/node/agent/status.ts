/**
 * Pure composition of a NodeDisk as the agent wants it: metadata + spec (one apply) and the whole
 * status (one status apply), from the agent's in-memory view of the disk. Everything the agent
 * writes comes out of these two functions, so with one field manager no write can drop a field
 * another code path set. Timestamps that would otherwise change on every pass (lastSeenTime,
 * health.checkedTime) are refreshed only with a real change or after `heartbeatMs`, so a converged
 * pass sends no writes.
 */
import {
  NODE_DISK_KIND,
  NODE_DISK_LABELS,
  type DiskHealth,
  type DiskKind,
  type DiskMedia,
  type NodeDisk,
  type NodeDiskStatus,
} from '../../crds/nodedisk.js';
import { API_VERSION } from '../../crds/meta.js';
import { setConditions, type ConditionInput } from '../../runtime/conditions.js';
import { jsonEqual } from '../../runtime/apply.js';
import type { ConditionStatus } from '../../kube/types.js';
import type { Eligibility } from './inventory.js';
import { healthCondition } from './smart.js';
import type { IoProblem } from './io-health.js';
import { MANAGED_BY } from '../../crds/labels.js';

/** The identity a NodeDisk's name was derived from (lets a restarted agent match disks whose identity is weak). */
export const IDENTITY_ANNOTATION = 'stowage.dev/identity';
/** Volume UIDs this disk was already wiped for, newest first: a wipe request for one of them is stale. */
export const WIPED_VOLUMES_ANNOTATION = 'stowage.dev/wiped-volumes';
export const MAX_REMEMBERED_WIPES = 16;
/** Condition type set once the agent set a hand-edited spec.devicePath back (it stays, saying when and why). */
export const DEVICE_PATH_REVERTED = 'DevicePathReverted';

export type Inventory = Pick<
  NodeDiskStatus,
  | 'kernelName'
  | 'links'
  | 'capacity'
  | 'model'
  | 'vendor'
  | 'serial'
  | 'wwn'
  | 'media'
  | 'rotational'
  | 'transport'
  | 'readOnly'
  | 'filesystem'
  | 'partitionTable'
  | 'partitions'
  | 'mountPoints'
>;

export interface PreparedState {
  readonly status: ConditionStatus;
  readonly reason: string;
  readonly message: string;
}

/** Everything the agent knows about one disk right now. */
export interface DiskView {
  readonly name: string;
  readonly nodeName: string;
  readonly identity: string;
  readonly kind: DiskKind;
  /** spec.devicePath: stable link, kernel path, or the mount directory. */
  readonly devicePath: string;
  readonly media: DiskMedia;
  readonly present: boolean;
  /** What discovery saw; for an absent disk, the last inventory the API holds. */
  readonly inventory: Inventory;
  readonly eligibility: Eligibility;
  readonly health?: Omit<DiskHealth, 'checkedTime'> | undefined;
  readonly healthCheckedAt?: string | undefined;
  /** What the kernel shows is wrong with the device (medium gone, filesystem errors): outranks SMART. */
  readonly ioProblem?: IoProblem | undefined;
  readonly prepared: PreparedState;
  readonly preparation?: NodeDiskStatus['preparation'] | undefined;
  readonly usage?: NodeDiskStatus['usage'] | undefined;
  readonly lastWipe?: NodeDiskStatus['lastWipe'] | undefined;
  readonly claimPool?: string | undefined;
  readonly wipedVolumes: readonly string[];
  /** metadata.generation of the spec this view acted on (a spec that changed since is not yet observed). */
  readonly observedGeneration?: number | undefined;
  /** Why the agent set a hand-edited spec.devicePath back, when it did. */
  readonly devicePathReverted?: string | undefined;
  /** False for a NodeDisk the agent never discovered a disk for (made by hand): its messages say so. */
  readonly discovered?: boolean | undefined;
}

/** metadata + spec, as applied under `stowage-node` (server-side apply creates it the first time). */
export function desiredNodeDisk(v: DiskView): NodeDisk {
  return {
    apiVersion: API_VERSION,
    kind: NODE_DISK_KIND,
    metadata: {
      name: v.name,
      labels: { ...MANAGED_BY, [NODE_DISK_LABELS.node]: labelValue(v.nodeName), [NODE_DISK_LABELS.media]: v.media },
      annotations: {
        [IDENTITY_ANNOTATION]: v.identity,
        ...(v.wipedVolumes.length > 0 ? { [WIPED_VOLUMES_ANNOTATION]: v.wipedVolumes.slice(0, MAX_REMEMBERED_WIPES).join(',') } : {}),
      },
    },
    spec: { nodeName: v.nodeName, devicePath: v.devicePath },
  };
}

/** Label values are at most 63 characters; node names can be longer. */
export function labelValue(value: string): string {
  return value.length <= 63 ? value : value.slice(0, 63).replace(/[^A-Za-z0-9]+$/, '');
}

/** The complete status the agent wants, given the live object (for stable timestamps and transitions). */
export function desiredStatus(v: DiskView, live: NodeDisk | undefined, now: Date, heartbeatMs: number): NodeDiskStatus {
  const prev = live?.status;
  const nowStr = stamp(now);
  const generation = v.observedGeneration ?? live?.metadata.generation;
  const fresh = (t: string | undefined): boolean => t !== undefined && now.getTime() - Date.parse(t) < heartbeatMs;

  const health: DiskHealth | undefined = v.health
    ? (() => {
        const { checkedTime: prevChecked, ...prevRest } = prev?.health ?? ({} as DiskHealth);
        const checkedTime = jsonEqual(prevRest, v.health) && fresh(prevChecked) ? prevChecked! : (v.healthCheckedAt ?? nowStr);
        return { ...v.health, checkedTime };
      })()
    : undefined;

  const gen = generation !== undefined ? { observedGeneration: generation } : {};
  // A device the kernel cannot read or write is unhealthy whatever SMART said (often: nothing).
  const hc = v.ioProblem ? { status: 'False' as const, ...v.ioProblem } : healthCondition(health);
  const conditions: ConditionInput[] = [
    v.present
      ? {
          type: 'Present',
          status: 'True',
          reason: 'Detected',
          message: `the node agent on ${v.nodeName} sees this ${v.kind === 'Mount' ? 'mount' : 'disk'}`,
          ...gen,
        }
      : v.discovered === false
        ? {
            type: 'Present',
            status: 'False',
            reason: 'NotDiscovered',
            message: `the node agent on ${v.nodeName} has never discovered a disk for this NodeDisk (it was not made by the agent): ${v.devicePath} is not a disk it was allowed to use or found on this node`,
            ...gen,
          }
        : {
            type: 'Present',
            status: 'False',
            reason: 'NotDetected',
            message: `the node agent on ${v.nodeName} no longer sees this ${v.kind === 'Mount' ? 'mount' : 'disk'}${prev?.lastSeenTime ? ` (last seen ${prev.lastSeenTime})` : ''}; the object is kept so that its pool notices`,
            ...gen,
          },
    {
      type: 'Eligible',
      status: v.eligibility.eligible ? 'True' : 'False',
      reason: v.eligibility.reason,
      message: v.eligibility.message,
      ...gen,
    },
    { type: 'Healthy', status: hc.status, reason: hc.reason, message: hc.message, ...gen },
    { type: 'Prepared', status: v.prepared.status, reason: v.prepared.reason, message: v.prepared.message, ...gen },
    ...(v.devicePathReverted
      ? [{ type: DEVICE_PATH_REVERTED, status: 'True' as const, reason: 'HandEdited', message: v.devicePathReverted, ...gen }]
      : []),
  ];

  const body: NodeDiskStatus = {
    ...gen,
    kind: v.kind,
    ...dropUndefined(v.inventory),
    ...(health ? { health } : {}),
    ...(v.usage ? { usage: v.usage } : {}),
    ...(v.preparation ? { preparation: v.preparation } : {}),
    ...(v.claimPool ? { claim: { pool: v.claimPool } } : {}),
    ...(v.lastWipe ? { lastWipe: v.lastWipe } : {}),
  };
  // lastSeenTime moves with any other change, or after the heartbeat; never while absent.
  const withoutTimes = (s: NodeDiskStatus | undefined): unknown => {
    if (!s) return undefined;
    const { lastSeenTime: _l, conditions: _c, health: h, ...rest } = s;
    const { checkedTime: _t, ...hRest } = h ?? ({} as DiskHealth);
    return { ...rest, ...(h ? { health: hRest } : {}) };
  };
  let lastSeenTime = prev?.lastSeenTime;
  if (v.present && (!fresh(lastSeenTime) || !jsonEqual(withoutTimes(body), withoutTimes(prev)))) lastSeenTime = nowStr;
  return {
    ...body,
    ...(lastSeenTime ? { lastSeenTime } : {}),
    conditions: setConditions(prev?.conditions, conditions, nowStr),
  };
}

function dropUndefined<T extends object>(obj: T): Partial<T> {
  const out: Record<string, unknown> = {};
  for (const [k, val] of Object.entries(obj)) {
    if (val === undefined) continue;
    if (Array.isArray(val) && val.length === 0) continue;
    out[k] = val;
  }
  return out as Partial<T>;
}

/** RFC 3339 with seconds precision, as metav1.Time serialises. */
export function stamp(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

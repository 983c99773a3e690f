/**
 * `kubectl stowage disks`: one row per disk, grouped by node — size, media, model, health, pool,
 * the volume on it (PV → PVC → pod) and, for a disk no pool uses, why in words. Pure: a snapshot
 * in, rows and text out.
 */
import { findCondition } from '../../runtime/conditions.js';
import { tryParseBytes } from '../../util/quantity.js';
import { DISK_LABEL, POOL_LABEL } from '../../crds/labels.js';
import { persistentVolumeName } from '../../operator/storagepool/persistent-volume.js';
import type { PersistentVolume } from '../../kube/types.js';
import { humanBytes, renderTable, truncate, type Cell, type Style, type Tone } from './output.js';
import { ELIGIBLE_REASONS, HEALTHY_REASONS, PREPARED_REASONS, reasonText } from './reasons.js';
import { podsByClaim, type Disk, type Snapshot } from './snapshot.js';

/** Longest MODEL and STATUS cells in the narrow table; `-o wide` shows them whole. */
const MAX_MODEL = 20;
const MAX_STATUS = 60;

export interface DiskFilter {
  readonly node?: string | undefined;
  readonly pool?: string | undefined;
}

export interface DiskVolume {
  readonly persistentVolume?: string;
  readonly phase?: string;
  /** `namespace/name` of the claim bound to it. */
  readonly claim?: string;
  /** `namespace/name` of the pods using the claim. */
  readonly pods: string[];
  /** Dynamic pools: how many volumes the node's pool filesystem holds (they span its disks). */
  readonly poolVolumes?: number;
}

export interface DiskRow {
  readonly node: string;
  readonly name: string;
  readonly devicePath: string;
  readonly size?: string;
  readonly media: string;
  readonly model?: string;
  readonly serial?: string;
  readonly health: { readonly status: string; readonly reason?: string; readonly words: string };
  readonly schedulable: boolean;
  readonly pool?: string;
  readonly volume?: DiskVolume;
  /** In words: for an unused disk, why it is unused (from Eligible); for a claimed one, its preparation. */
  readonly status: string;
  readonly state: 'in-use' | 'ready' | 'preparing' | 'free' | 'unusable' | 'missing';
  readonly eligible?: { readonly status: string; readonly reason: string; readonly message: string };
  readonly prepared?: { readonly status: string; readonly reason: string; readonly message: string };
}

export function diskRows(snap: Snapshot, filter: DiskFilter = {}): DiskRow[] {
  const pvByName = new Map(snap.pvs.map((pv) => [pv.metadata.name!, pv]));
  const pods = podsByClaim(snap.pods);
  return snap.disks
    .filter((d) => !filter.node || d.spec.nodeName === filter.node)
    .filter((d) => !filter.pool || d.spec.claim?.pool === filter.pool)
    .map((d) => diskRow(d, snap, pvByName, pods))
    .sort((a, b) => a.node.localeCompare(b.node) || a.devicePath.localeCompare(b.devicePath) || a.name.localeCompare(b.name));
}

function diskRow(
  d: Disk,
  snap: Snapshot,
  pvByName: Map<string, PersistentVolume>,
  pods: Map<string, { metadata: { namespace?: string; name?: string } }[]>,
): DiskRow {
  const st = d.status ?? {};
  const conditions = st.conditions;
  const present = findCondition(conditions, 'Present');
  const eligible = findCondition(conditions, 'Eligible');
  const healthy = findCondition(conditions, 'Healthy');
  const prepared = findCondition(conditions, 'Prepared');
  const pool = d.spec.claim?.pool;
  const volume = volumeOf(d, snap, pvByName, pods);
  const healthWords = reasonText(HEALTHY_REASONS, healthy?.reason)?.short ?? (healthy ? healthy.status.toLowerCase() : 'unknown');
  let status: string;
  let state: DiskRow['state'];
  if (present?.status === 'False') {
    state = 'missing';
    status = `not attached${pool ? ` (still claimed by ${pool})` : ''}`;
  } else if (pool) {
    const inUse = volume?.claim !== undefined || (volume?.poolVolumes ?? 0) > 0;
    if (prepared?.status === 'True') {
      state = inUse ? 'in-use' : 'ready';
      status = inUse ? 'in use' : 'ready, no volume bound';
    } else {
      state = 'preparing';
      const words = reasonText(PREPARED_REASONS, prepared?.reason)?.short ?? 'waiting for the node agent';
      status = `${words}${prepared?.message ? `: ${prepared.message}` : ''}`;
    }
    if (d.spec.schedulable === false)
      status = `cordoned, ${status}${inUse ? ' (held until the volume is released)' : ' (the pool releases it)'}`;
  } else if (prepared && prepared.status === 'False' && ['ReleaseRefused', 'ReleaseFailed'].includes(prepared.reason)) {
    state = 'preparing';
    status = `${reasonText(PREPARED_REASONS, prepared.reason)!.short}: ${prepared.message}`;
  } else if (eligible?.status === 'True') {
    state = 'free';
    status = reasonText(ELIGIBLE_REASONS, eligible.reason)?.short ?? 'free';
  } else if (eligible) {
    state = 'unusable';
    const words = reasonText(ELIGIBLE_REASONS, eligible.reason)?.short ?? eligible.reason;
    // The message of Cordoned and NotPresent only repeats the words; the others name paths and sizes.
    status = ['Cordoned', 'NotPresent'].includes(eligible.reason) ? words : `${words}: ${eligible.message}`;
  } else {
    state = 'unusable';
    status = 'not yet inventoried by the node agent';
  }
  return {
    node: d.spec.nodeName,
    name: d.metadata.name,
    devicePath: d.spec.devicePath,
    ...(st.capacity ? { size: st.capacity } : {}),
    media: st.media ?? d.metadata.labels?.['stowage.dev/media'] ?? 'unknown',
    ...(st.model ? { model: st.model.trim() } : {}),
    ...(st.serial ? { serial: st.serial } : {}),
    health: { status: healthy?.status ?? 'Unknown', ...(healthy ? { reason: healthy.reason } : {}), words: healthWords },
    schedulable: d.spec.schedulable !== false,
    ...(pool ? { pool } : {}),
    ...(volume ? { volume } : {}),
    status,
    state,
    ...(eligible ? { eligible: { status: eligible.status, reason: eligible.reason, message: eligible.message } } : {}),
    ...(prepared ? { prepared: { status: prepared.status, reason: prepared.reason, message: prepared.message } } : {}),
  };
}

function volumeOf(
  d: Disk,
  snap: Snapshot,
  pvByName: Map<string, PersistentVolume>,
  pods: Map<string, { metadata: { namespace?: string; name?: string } }[]>,
): DiskVolume | undefined {
  const claim = d.spec.claim;
  if (claim?.mode === 'Dynamic') {
    const count = snap.poolVolumes.filter((v) => v.spec.pool === claim.pool && v.spec.node === d.spec.nodeName).length;
    return { pods: [], poolVolumes: count };
  }
  const pv =
    pvByName.get(persistentVolumeName(d.metadata.name)) ??
    snap.pvs.find(
      (p) =>
        p.metadata.labels?.[DISK_LABEL] === d.metadata.name &&
        (p.metadata.labels as Partial<Record<string, string>>)[POOL_LABEL] !== undefined,
    );
  if (!pv) return undefined;
  const ref = pv.spec.claimRef;
  const bound = pv.status?.phase === 'Bound' && ref?.name;
  const claimKey = bound ? `${ref.namespace}/${ref.name}` : undefined;
  return {
    persistentVolume: pv.metadata.name!,
    ...(pv.status?.phase ? { phase: pv.status.phase } : {}),
    ...(claimKey ? { claim: claimKey } : {}),
    pods: claimKey ? (pods.get(claimKey) ?? []).map((p) => `${p.metadata.namespace}/${p.metadata.name}`) : [],
  };
}

/** `PV → ns/pvc → pod`, or what there is of it. */
export function volumeWords(v: DiskVolume | undefined): string {
  if (!v) return '-';
  if (v.poolVolumes !== undefined) return v.poolVolumes === 0 ? 'no volumes' : `${v.poolVolumes} volume(s) on the node's pool`;
  const parts = [v.persistentVolume ?? '-'];
  if (v.claim) parts.push(v.claim);
  else parts.push(v.phase ? v.phase.toLowerCase() : 'unbound');
  if (v.pods.length > 0) parts.push(v.pods.map((p) => p.split('/')[1]).join(','));
  return parts.join(' → ');
}

const STATE_TONES: Record<DiskRow['state'], Tone> = {
  'in-use': 'ok',
  ready: 'ok',
  preparing: 'warn',
  free: 'plain',
  unusable: 'dim',
  missing: 'bad',
};

const healthTone = (r: DiskRow): Tone => (r.health.status === 'False' ? 'bad' : r.health.status === 'True' ? 'ok' : 'dim');

export function renderDisks(rows: readonly DiskRow[], style: Style, wide: boolean): string {
  if (rows.length === 0) return 'No disks found: no node agent has reported any NodeDisk (is the stowage-node DaemonSet running?)\n';
  const size = (r: DiskRow): string => humanBytes(tryParseBytes(r.size));
  const statusCell = (r: DiskRow): Cell => ({ text: wide ? r.status : truncate(r.status, MAX_STATUS), tone: STATE_TONES[r.state] });
  if (wide) {
    return renderTable(
      [
        'NODE',
        'DISK',
        'DEVICE',
        'SIZE',
        'MEDIA',
        'MODEL',
        'SERIAL',
        'HEALTH',
        'SCHEDULABLE',
        'POOL',
        'VOLUME',
        'ELIGIBLE',
        'PREPARED',
        'STATUS',
      ],
      rows.map((r) => [
        r.node,
        r.name,
        r.devicePath,
        size(r),
        r.media,
        r.model ?? '-',
        r.serial ?? '-',
        { text: r.health.words, tone: healthTone(r) },
        r.schedulable ? 'yes' : { text: 'no', tone: 'warn' },
        r.pool ?? '-',
        volumeWords(r.volume),
        r.eligible?.reason ?? '-',
        r.prepared?.reason ?? '-',
        statusCell(r),
      ]),
      style,
    );
  }
  return renderTable(
    ['NODE', 'DISK', 'SIZE', 'MEDIA', 'MODEL', 'HEALTH', 'POOL', 'VOLUME', 'STATUS'],
    rows.map((r) => [
      r.node,
      r.name,
      size(r),
      r.media,
      truncate(r.model ?? '-', MAX_MODEL),
      { text: r.health.words, tone: healthTone(r) },
      r.pool ?? '-',
      volumeWords(r.volume),
      statusCell(r),
    ]),
    style,
  );
}

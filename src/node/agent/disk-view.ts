/**
 * Everything the agent knows about one disk, gathered into the DiskView the status is composed from
 * (status.ts): what this pass observed, what the agent remembers (preparation, health, wipes) and
 * the Dynamic-pool engine's outcome. Pure: reads the memory, changes nothing.
 */
import { NODE_DISK_LABELS, type NodeDisk } from '../../crds/nodedisk.js';
import type { DiskMemory } from './disk-memory.js';
import { ENGINE_PENDING } from './dynamic-pool-sync.js';
import type { PreparationOutcome } from './dynamic-pools.js';
import type { Observation } from './observation.js';
import { HELD_REASON } from './returning-disks.js';
import { IDENTITY_ANNOTATION, type DiskView } from './status.js';

/** The engine's report on a disk it still holds though no pool claims it (DynamicPoolSync.released). */
export type HeldByEngine = (devicePath: string) => PreparationOutcome | undefined;

/** The view of a disk this pass observed. */
export function presentView(
  o: Observation,
  live: NodeDisk | undefined,
  memory: DiskMemory,
  nodeName: string,
  dynamic: PreparationOutcome | undefined,
  heldByEngine: HeldByEngine | undefined,
): DiskView {
  const claim = live?.spec.claim;
  const h = memory.health.get(o.name);
  let prepared = memory.prepared.get(o.name) ?? { status: 'False', reason: 'NotClaimed', message: 'no pool claims this disk' };
  let preparation: DiskView['preparation'] =
    claim?.mode === 'Local' && prepared.status === 'True' ? memory.preparations.get(o.name) : undefined;
  // Released from a Dynamic pool whose filesystem still holds volumes: say why the disk is not free.
  const held = !claim ? heldByEngine?.(o.currentPath) : undefined;
  if (held) prepared = { status: 'False', reason: held.reason, message: held.message };
  if (claim?.mode === 'Dynamic') {
    const d = dynamic ?? ENGINE_PENDING;
    prepared = { status: d.prepared ? 'True' : d.reason === 'EnginePending' ? 'Unknown' : 'False', reason: d.reason, message: d.message };
    preparation = d.preparation ? { ...d.preparation } : undefined;
  }
  let e = o.eligibility;
  if (claim && (prepared.status === 'True' || e.eligible || (o.kind === 'Disk' && memory.preparations.has(o.name)))) {
    e = { eligible: false, reason: 'Claimed', message: `claimed by pool ${claim.pool}` };
  } else if (!claim && live?.spec.schedulable === false && e.eligible) {
    e = { eligible: false, reason: 'Cordoned', message: 'spec.schedulable is false: an administrator cordoned this disk' };
  }
  const heldWhy = memory.held.get(o.name);
  if (heldWhy) {
    // Came back without its NodeDisk, may hold a tenant's data: no pool may select it (returning-disks.ts).
    e = { eligible: false, reason: HELD_REASON, message: heldWhy };
    preparation = undefined;
  }
  return {
    name: o.name,
    nodeName,
    identity: o.identity,
    kind: o.kind,
    devicePath: o.devicePath,
    media: o.media,
    present: true,
    inventory: o.inventory,
    eligibility: e,
    health: h?.health,
    healthCheckedAt: h?.checkedAt,
    ioProblem: memory.io.get(o.name),
    prepared,
    preparation,
    usage: memory.usage.get(o.name),
    lastWipe: memory.lastWipes.get(o.name),
    claimPool: claim?.pool,
    wipedVolumes: memory.wiped.get(o.name) ?? [],
    observedGeneration: memory.actedGeneration.get(o.name),
    devicePathReverted: memory.devicePathReverted.get(o.name),
  };
}

/** The view of a NodeDisk of this node that this pass did not observe: its last inventory, marked absent. */
export function absentView(live: NodeDisk, memory: DiskMemory, nodeName: string, dynamic: PreparationOutcome | undefined): DiskView {
  const name = live.metadata.name;
  const st = live.status ?? {};
  const {
    kernelName,
    links,
    capacity,
    model,
    vendor,
    serial,
    wwn,
    media,
    rotational,
    transport,
    readOnly,
    filesystem,
    partitionTable,
    partitions,
  } = st;
  const claim = live.spec.claim;
  let prepared = memory.prepared.get(name) ?? { status: 'False', reason: 'NotPresent', message: 'the disk is not attached to the node' };
  if (claim?.mode === 'Dynamic' && dynamic)
    prepared = { status: dynamic.prepared ? 'True' : 'False', reason: dynamic.reason, message: dynamic.message };
  const h = memory.health.get(name);
  return {
    name,
    nodeName,
    identity: live.metadata.annotations?.[IDENTITY_ANNOTATION] ?? `name:${name}`,
    kind: st.kind ?? 'Disk',
    devicePath: live.spec.devicePath,
    media: (live.metadata.labels?.[NODE_DISK_LABELS.media] as DiskView['media'] | undefined) ?? media ?? 'unknown',
    present: false,
    inventory: {
      kernelName,
      links,
      capacity,
      model,
      vendor,
      serial,
      wwn,
      media,
      rotational,
      transport,
      readOnly,
      filesystem,
      partitionTable,
      partitions,
    },
    eligibility: { eligible: false, reason: 'NotPresent', message: 'the disk is not attached to the node' },
    health: h?.health,
    healthCheckedAt: h?.checkedAt,
    prepared,
    preparation: undefined,
    lastWipe: memory.lastWipes.get(name),
    claimPool: claim?.pool,
    wipedVolumes: memory.wiped.get(name) ?? [],
    devicePathReverted: memory.devicePathReverted.get(name),
    discovered: wasDiscovered(live),
  };
}

/** Whether the agent ever discovered a disk for this NodeDisk: it records the disk's identity when it does (a bare `name:` is only its fallback for objects it did not make). */
export function wasDiscovered(live: NodeDisk): boolean {
  const identity = live.metadata.annotations?.[IDENTITY_ANNOTATION];
  return identity !== undefined && !identity.startsWith('name:');
}

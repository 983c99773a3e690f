/**
 * `kubectl stowage cordon|uncordon|drain DISK`: the day-2 actions. They write one field a user owns
 * — NodeDisk `spec.schedulable` — by server-side apply under the plugin's own field manager, and
 * nothing else: never a claim, a PV, a PVC or a pod. Drain cordons, then waits (with progress) until
 * the disk's volume is released and the operator has handed the disk back; it deletes nothing.
 */
import type { KubeClient } from '../../kube/client.js';
import { ApiError } from '../../kube/api-error.js';
import { NODE_DISKS } from '../../crds/resource-types.js';
import { API_VERSION } from '../../crds/meta.js';
import { NODE_DISK_KIND } from '../../crds/nodedisk.js';
import { findCondition } from '../../runtime/conditions.js';
import { persistentVolumeName } from '../../operator/storagepool/persistent-volume.js';
import { PERSISTENT_VOLUMES } from '../../kube/resources.js';
import type { PersistentVolume } from '../../kube/types.js';
import { PLUGIN_FIELD_MANAGER, UserError } from './session.js';
import { podsByClaim, type Disk, type Snapshot } from './snapshot.js';

const POLL_MS = 1_000;

export interface SchedulableChange {
  readonly disk: string;
  readonly from: boolean;
  readonly to: boolean;
  /** False when the disk already is as asked: nothing is sent. */
  readonly changes: boolean;
}

export function schedulableChange(disk: Disk, to: boolean): SchedulableChange {
  const from = disk.spec.schedulable !== false;
  return { disk: disk.metadata.name, from, to, changes: from !== to };
}

export function describeChange(c: SchedulableChange, dryRun: boolean): string {
  const verb = c.to ? 'uncordoned' : 'cordoned';
  if (!c.changes) return `nodedisk/${c.disk} already ${verb} (spec.schedulable is ${c.to}); nothing to do\n`;
  return dryRun
    ? `nodedisk/${c.disk} would be ${verb}: spec.schedulable ${c.from} → ${c.to} (server-side apply, field manager ${PLUGIN_FIELD_MANAGER}) (dry run: nothing was written)\n`
    : `nodedisk/${c.disk} ${verb}\n`;
}

export async function getDisk(client: KubeClient, name: string): Promise<Disk> {
  const disk = await client.getIfExists<Disk>(NODE_DISKS, name);
  if (!disk) throw new UserError(`nodedisk ${name} not found; \`kubectl stowage disks\` lists the disks and their names`);
  return disk;
}

/** Applies spec.schedulable under the plugin's field manager; a conflict with another manager is not forced unless asked. */
export async function applySchedulable(client: KubeClient, name: string, schedulable: boolean, forceConflicts: boolean): Promise<void> {
  try {
    await client.apply(
      NODE_DISKS,
      {
        apiVersion: API_VERSION,
        kind: NODE_DISK_KIND,
        metadata: { name },
        spec: { schedulable },
      },
      { fieldManager: PLUGIN_FIELD_MANAGER, force: forceConflicts },
    );
  } catch (err) {
    if (ApiError.isConflict(err) && !forceConflicts) {
      throw new UserError(
        `spec.schedulable of nodedisk ${name} is owned by another field manager (${err.status?.message ?? err.message}); run again with --force-conflicts to take it over, or change it where that manager keeps it (e.g. the GitOps repository)`,
      );
    }
    throw err;
  }
}

/** Where a drain stands: what still holds the disk, in one line; `free` once nothing does. */
export interface DrainState {
  readonly free: boolean;
  readonly step: string;
}

export function drainState(
  disk: Disk | undefined,
  pv: PersistentVolume | undefined,
  snap: Pick<Snapshot, 'pods' | 'poolVolumes'>,
): DrainState {
  if (!disk) return { free: true, step: 'the NodeDisk is gone' };
  const claim = disk.spec.claim;
  const prepared = findCondition(disk.status?.conditions, 'Prepared');
  if (claim?.mode === 'Dynamic') {
    const vols = snap.poolVolumes.filter((v) => v.spec.pool === claim.pool && v.spec.node === disk.spec.nodeName);
    if (vols.length > 0) {
      return {
        free: false,
        step: `waiting for the ${vols.length} volume(s) of pool ${claim.pool} on ${disk.spec.nodeName} to be deleted (${vols
          .slice(0, 3)
          .map((v) => v.metadata.name)
          .join(', ')}${vols.length > 3 ? ', …' : ''}); delete or move the workloads using them`,
      };
    }
    return { free: false, step: `waiting for pool ${claim.pool} to release the disk` };
  }
  if (pv) {
    const ref = pv.spec.claimRef;
    const phase = pv.status?.phase ?? 'Pending';
    if (phase === 'Bound' && ref?.name) {
      const pods = (podsByClaim(snap.pods).get(`${ref.namespace}/${ref.name}`) ?? []).map(
        (p) => `${p.metadata.namespace}/${p.metadata.name}`,
      );
      return {
        free: false,
        step: `waiting for volume ${pv.metadata.name} to be released: it is bound to ${ref.namespace}/${ref.name}${pods.length ? `, used by pod(s) ${pods.join(', ')}` : ''}; delete the claim once its data is safe elsewhere (nothing is deleted for you)`,
      };
    }
    if (phase === 'Released') {
      return pv.spec.persistentVolumeReclaimPolicy === 'Retain'
        ? {
            free: false,
            step: `volume ${pv.metadata.name} is Released and retained (reclaimPolicy Retain): delete the PV once its data is safe`,
          }
        : {
            free: false,
            step: `volume ${pv.metadata.name} is released; waiting for the node agent to wipe the disk and the operator to remove the volume`,
          };
    }
    if (claim) return { free: false, step: `waiting for the operator to withdraw the unbound volume ${pv.metadata.name}` };
  }
  if (claim) return { free: false, step: `waiting for pool ${claim.pool} to release the disk` };
  if (prepared?.status === 'True' || (prepared && ['ReleaseRefused', 'ReleaseFailed'].includes(prepared.reason))) {
    return { free: false, step: `waiting for the node agent to remove Stowage's filesystem (${prepared.reason}: ${prepared.message})` };
  }
  return { free: true, step: `the disk is free: in no pool, no volume, cordoned` };
}

export interface DrainOptions {
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
  readonly progress: (line: string) => void;
  readonly loadPods: () => Promise<Pick<Snapshot, 'pods' | 'poolVolumes'>>;
}

/** Polls until the disk is free; reports each new step once. Resolves true when free, false on timeout. */
export async function waitUntilFree(client: KubeClient, name: string, opts: DrainOptions): Promise<boolean> {
  const deadline = opts.timeoutMs > 0 ? Date.now() + opts.timeoutMs : Infinity;
  const started = Date.now();
  let last = '';
  for (;;) {
    const disk = await client.getIfExists<Disk>(NODE_DISKS, name);
    const pv = disk ? await client.getIfExists<PersistentVolume>(PERSISTENT_VOLUMES, persistentVolumeName(name)) : undefined;
    const state = drainState(disk, pv, await opts.loadPods());
    if (state.step !== last) {
      opts.progress(`[${Math.round((Date.now() - started) / 1000)}s] ${state.step}`);
      last = state.step;
    }
    if (state.free) return true;
    if (Date.now() > deadline || opts.signal?.aborted) return false;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

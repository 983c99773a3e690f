/**
 * The PVs of a Local pool: one per ready disk the pool keeps (DESIGN §2, steps 4 and 5). A PV is
 * created when its disk is prepared, repaired when edited, withdrawn while its disk is not ready,
 * and recycled when Released: wiped for that PV's UID first (reclaimPolicy Delete), then deleted
 * and created afresh. Nothing Bound or retained is modified or deleted.
 */
import type { DiskClaim, DiskWipe, NodeDisk } from '../../crds/nodedisk.js';
import { ApiError } from '../../kube/api-error.js';
import { PERSISTENT_VOLUMES } from '../../kube/resources.js';
import type { Node, PersistentVolume } from '../../kube/types.js';
import { forEachLimit } from '../../util/concurrency.js';
import { faultPoint } from '../../util/fault-point.js';
import { HOSTNAME_LABEL } from '../../crds/labels.js';
import type { Applier } from '../../runtime/apply.js';
import type { EventBatch } from '../../runtime/events.js';
import { isInUse, isRetained, LOCAL_PV_OPTIONAL_FIELDS, persistentVolumeName, phaseOf, renderLocalPv } from './persistent-volume.js';
import type { Pool } from './pool-caches.js';
import { isReadyDisk } from './status.js';
import { WRITE_CONCURRENCY, type WriteBudget } from './write-budget.js';

/** Writes the operator's intent (claim, wipe request) on a NodeDisk: the pool reconciler's. */
export type DiskIntentWriter = (disk: NodeDisk, intent: { claim?: DiskClaim; wipe?: DiskWipe }, conditional: boolean) => Promise<void>;

/** What a PV was last found up to date against; any change to one of these means checking again. */
interface VerifiedAgainst {
  readonly disk: NodeDisk;
  readonly poolUid: string | undefined;
  readonly poolGeneration: number | undefined;
  readonly hostname: string;
}

/** The write one kept disk's PV needs. */
type VolumeWork =
  | { readonly kind: 'create'; readonly disk: NodeDisk; readonly desired: PersistentVolume }
  | { readonly kind: 'update'; readonly disk: NodeDisk; readonly desired: PersistentVolume; readonly pv: PersistentVolume }
  | { readonly kind: 'recycle' | 'withdraw'; readonly disk: NodeDisk; readonly pv: PersistentVolume }
  | { readonly kind: 'forget-wipe'; readonly disk: NodeDisk };

export class LocalVolumes {
  /**
   * PVs found equal to their rendering, keyed by the cached PV object itself: the informer replaces
   * that object on any change, so an edited PV misses here and is checked (and repaired) again, and
   * entries go away with the objects. A converged pool's reconcile then renders nothing.
   */
  private readonly verified = new WeakMap<PersistentVolume, VerifiedAgainst>();

  constructor(
    private readonly applier: Applier,
    private readonly writeIntent: DiskIntentWriter,
    /** Warnings already emitted in this operator run (shared with the pool reconciler). */
    private readonly warned: Set<string>,
    /** PVs a pool without any creates in one turn (see FIRST_TURN_WRITES). */
    private readonly firstTurnWrites: number,
  ) {}

  /**
   * One PV per ready disk the pool keeps. Decides first, from the caches alone, what each disk's
   * volume needs; then sends at most the budget's worth of those writes.
   */
  async reconcile(
    pool: Pool,
    disks: readonly NodeDisk[],
    volumes: ReadonlyMap<string, PersistentVolume>,
    nodes: ReadonlyMap<string, Node>,
    budget: WriteBudget,
    events: EventBatch,
  ): Promise<void> {
    const creates: VolumeWork[] = [];
    const others: VolumeWork[] = [];
    for (const disk of disks) {
      const work = this.volumeWork(pool, disk, volumes.get(persistentVolumeName(disk.metadata.name)), nodes);
      if (work) (work.kind === 'create' ? creates : others).push(work);
    }
    const todo = [...budget.take(others), ...budget.take(creates, volumes.size === 0 ? this.firstTurnWrites : Infinity)];
    await forEachLimit(todo, WRITE_CONCURRENCY, async (work) => {
      const { disk } = work;
      switch (work.kind) {
        case 'create':
          if (disk.spec.wipe) await this.writeIntent(disk, { claim: disk.spec.claim! }, false); // the recycled volume is gone
          // A plain create under the operator's field manager: the API server does less work for
          // it than for an apply of a new object, which counts when thousands of disks come up at
          // once. Later changes are applied (and take these fields over) as for any other PV.
          await this.applier.client
            .create(PERSISTENT_VOLUMES, work.desired, { fieldManager: this.applier.fieldManager })
            .catch(async (err: unknown) => {
              // Created meanwhile (our cache had not seen it yet): make sure it says what it should.
              if (!ApiError.isAlreadyExists(err)) throw err;
              await this.applier.client.apply(PERSISTENT_VOLUMES, work.desired, { fieldManager: this.applier.fieldManager, force: true });
            });
          await faultPoint('local/publish');
          events.add(
            'Normal',
            'PersistentVolumeCreated',
            `created PersistentVolume ${work.desired.metadata.name} (${work.desired.spec.capacity?.storage}) on node ${disk.spec.nodeName} from disk ${disk.metadata.name}`,
          );
          return;
        case 'forget-wipe':
          await this.writeIntent(disk, { claim: disk.spec.claim! }, false); // the recycled volume is gone
          return;
        case 'recycle':
          await this.retire(pool, disk, work.pv, 'its claim was deleted', events);
          return;
        case 'withdraw':
          await this.delete(
            work.pv,
            `disk ${disk.metadata.name} is not ready (missing, unhealthy or unprepared); the volume comes back when it is`,
            'VolumeWithdrawn',
            events,
          );
          return;
        case 'update':
          await this.applier.apply(PERSISTENT_VOLUMES, work.desired, work.pv, LOCAL_PV_OPTIONAL_FIELDS);
      }
    });
  }

  /** What the PV of one kept disk needs, or undefined when nothing (remembering PVs found up to date). */
  private volumeWork(
    pool: Pool,
    disk: NodeDisk,
    pv: PersistentVolume | undefined,
    nodes: ReadonlyMap<string, Node>,
  ): VolumeWork | undefined {
    const hostname = nodes.get(disk.spec.nodeName)?.metadata.labels?.[HOSTNAME_LABEL] ?? disk.spec.nodeName;
    const against: VerifiedAgainst = { disk, poolUid: pool.metadata.uid, poolGeneration: pool.metadata.generation, hostname };
    if (pv && isSameVerification(this.verified.get(pv), against)) return undefined;
    const desired = isReadyDisk(disk) ? renderLocalPv(pool, disk, hostname) : undefined;
    if (!pv) {
      if (desired) return { kind: 'create', disk, desired };
      return disk.spec.wipe ? { kind: 'forget-wipe', disk } : undefined;
    }
    const phase = phaseOf(pv);
    if (pv.metadata.deletionTimestamp || isInUse(pv) || isRetained(pv) || phase === 'Failed') return undefined;
    if (phase === 'Released') return { kind: 'recycle', disk, pv };
    if (!desired) return { kind: 'withdraw', disk, pv };
    if (this.applier.isCurrent(desired, pv, LOCAL_PV_OPTIONAL_FIELDS)) {
      this.verified.set(pv, against);
      return undefined;
    }
    return { kind: 'update', disk, desired, pv };
  }

  /**
   * Takes an unused PV out of service. A Released PV with reclaimPolicy Delete is wiped first: the
   * wipe request carries the PV's UID and only a wipe result for that UID counts, so a recreated
   * PV can never skip its wipe. Returns true once the PV is gone.
   */
  async retire(pool: Pool, disk: NodeDisk, pv: PersistentVolume, why: string, events: EventBatch): Promise<boolean> {
    if (pv.metadata.deletionTimestamp) return false; // going; the deletion event brings us back
    if (phaseOf(pv) === 'Released' && pv.spec.persistentVolumeReclaimPolicy === 'Delete') {
      const uid = pv.metadata.uid!;
      const last = disk.status?.lastWipe;
      if (last?.volumeUID !== uid || last.result !== 'Succeeded') {
        if (disk.spec.wipe?.volumeUID !== uid) {
          const method = pool.spec.local?.cleanup ?? 'quick';
          await this.writeIntent(disk, { claim: disk.spec.claim!, wipe: { volumeUID: uid, method } }, false);
          await faultPoint('local/wipe-requested');
          events.add(
            'Normal',
            'WipeRequested',
            `requested a ${method} wipe of disk ${disk.metadata.name} for PersistentVolume ${pv.metadata.name} (uid ${uid}): ${why}`,
          );
        } else if (last?.volumeUID === uid && last.result === 'Failed' && !this.warned.has(`wipe/${uid}/${last.time}`)) {
          this.warned.add(`wipe/${uid}/${last.time}`);
          events.add(
            'Warning',
            'WipeFailed',
            `the wipe of disk ${disk.metadata.name} for PersistentVolume ${pv.metadata.name} failed: ${last.message ?? 'no details'}; the agent retries and the volume is not reused until it succeeds`,
          );
        }
        return false;
      }
    }
    await this.delete(pv, why, phaseOf(pv) === 'Released' ? 'PersistentVolumeRecycled' : 'PersistentVolumeDeleted', events);
    await faultPoint('local/pv-deleted');
    return true;
  }

  async delete(pv: PersistentVolume, why: string, reason: string, events: EventBatch): Promise<void> {
    // Already on its way out (held by the pv-protection finalizer for a moment): nothing to do.
    if (pv.metadata.deletionTimestamp) return;
    // uid + resourceVersion: if the PV was bound (or recreated) since our cache saw it, the API server refuses.
    const deleted = await this.applier.client.delete(PERSISTENT_VOLUMES, pv.metadata.name!, {
      uid: pv.metadata.uid!,
      resourceVersion: pv.metadata.resourceVersion!,
    });
    if (deleted) events.add('Normal', reason, `deleted PersistentVolume ${pv.metadata.name}: ${why}`);
  }
}

function isSameVerification(a: VerifiedAgainst | undefined, b: VerifiedAgainst): boolean {
  return (
    a !== undefined && a.disk === b.disk && a.poolUid === b.poolUid && a.poolGeneration === b.poolGeneration && a.hostname === b.hostname
  );
}

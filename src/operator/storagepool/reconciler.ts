import { API_VERSION, type Problem } from '../../crds/meta.js';
import type { DiskClaim, DiskWipe, NodeDisk } from '../../crds/nodedisk.js';
import { NODE_DISKS, STORAGE_POOLS } from '../../crds/resource-types.js';
import { validateObject, withDefaults } from '../../crds/validation.js';
import { ApiError } from '../../kube/api-error.js';
import type { KubeClient } from '../../kube/client.js';
import { PERSISTENT_VOLUMES, STORAGE_CLASSES } from '../../kube/resources.js';
import type { Node, PersistentVolume } from '../../kube/types.js';
import { forEachLimit } from '../../util/concurrency.js';
import { logger } from '../../util/logger.js';
import { HOSTNAME_LABEL, POOL_FINALIZER, POOL_LABEL } from '../../crds/labels.js';
import type { Applier } from '../../runtime/apply.js';
import { jsonEqual } from '../../runtime/apply.js';
import { nowTimestamp } from '../../runtime/conditions.js';
import type { ReconcileResult, Reconciler } from '../../runtime/controller.js';
import type { EventBatch, EventRecorder } from '../../runtime/events.js';
import { addFinalizer, hasFinalizer, removeFinalizer } from '../../runtime/finalizers.js';
import { claimRefName, desiredClaim, planDisks, sameClaim, type DiskPlan } from './disk-plan.js';
import { isInUse, isRetained, LOCAL_PV_OPTIONAL_FIELDS, persistentVolumeName, phaseOf, renderLocalPv } from './persistent-volume.js';
import { observeDynamicPool } from './dynamic.js';
import { candidateDisks, disksOf, indexPoolCaches, volumesOf, type Pool, type PoolCaches } from './pool-caches.js';
import { isReadyDisk, poolStatus, type PoolObservation } from './status.js';
import { immutableDifferences, isOwnedBy, renderStorageClass, STORAGE_CLASS_OPTIONAL_FIELDS, storageClassName } from './storage-class.js';
import { faultPoint } from '../../util/fault-point.js';

/**
 * Writes one reconcile sends at once (claims, PVs). The client's connection pool (32 sockets)
 * bounds what all reconciles send together, so a big pool's turn is a couple of round trips.
 */
const WRITE_CONCURRENCY = 32;
/**
 * Claims, releases and PV writes one reconcile of a pool sends before it yields its worker and
 * goes to the back of the queue: pools take turns, so one pool of thousands of disks does not
 * make every other pool wait.
 */
export const WRITES_PER_TURN = 64;
/**
 * A pool that holds no disk yet claims only this many in its first turn, and a pool without any
 * PV creates only this many: after a restart or a fresh install every pool gets its first volumes
 * within the first few hundred writes, instead of the last pool waiting behind thousands of others'
 * (the PV controller then marks volumes Available in the order they were created, at its own pace).
 */
export const FIRST_TURN_WRITES = 4;

/** How much a pool does per turn (tests make turns small to watch pools take them). */
export interface PoolTurns {
  readonly writesPerTurn: number;
  readonly firstTurnWrites: number;
}

export type { Disk, Pool, PoolCaches } from './pool-caches.js';

/** What a PV was last found up to date against; any change to one of these means checking again. */
interface VerifiedAgainst {
  readonly disk: NodeDisk;
  readonly poolUid: string | undefined;
  readonly poolGeneration: number | undefined;
  readonly hostname: string;
}

/**
 * Reconciles one StoragePool by the claim protocol (DESIGN §2): validates the spec (older API
 * servers drop the CRD's CEL rules), keeps the pool's StorageClass, claims and releases disks on
 * their NodeDisks, publishes one local PV per prepared disk (Local pools), recycles Released PVs
 * through a wipe tied to the PV's UID, guards deletion with a finalizer, and reports status.
 * Nothing a workload uses — a Bound PV, or a Released one it asked to retain — is ever modified or
 * deleted.
 */
export class StoragePoolReconciler implements Reconciler {
  private readonly log = logger('storagepool');
  /** Warnings about standing situations (conflicts) are emitted once per operator run, not per resync. */
  private readonly warned = new Set<string>();
  /**
   * PVs found equal to their rendering, keyed by the cached PV object itself: the informer replaces
   * that object on any change, so an edited PV misses here and is checked (and repaired) again, and
   * entries go away with the objects. A converged pool's reconcile then renders nothing.
   */
  private readonly verified = new WeakMap<PersistentVolume, VerifiedAgainst>();

  constructor(
    private readonly caches: PoolCaches,
    private readonly applier: Applier,
    private readonly events: EventRecorder,
    private readonly now: () => string = nowTimestamp,
    private readonly turns: PoolTurns = { writesPerTurn: WRITES_PER_TURN, firstTurnWrites: FIRST_TURN_WRITES },
  ) {
    indexPoolCaches(caches);
  }

  private get client(): KubeClient {
    return this.applier.client;
  }

  async reconcile(name: string): Promise<ReconcileResult> {
    const live = this.caches.pools.get(name);
    if (!live) return {};
    const problems = validateObject(live).filter((p) => !p.path.startsWith('status'));
    const pool = withDefaults(live) as Pool;

    const events = this.events.batch(pool);
    try {
      return await this.reconcilePool(live, pool, problems, events);
    } finally {
      // Written in the background: the pool's next turn need not wait for its events.
      void events.flush();
    }
  }

  private async reconcilePool(live: Pool, pool: Pool, problems: Problem[], events: EventBatch): Promise<ReconcileResult> {
    const name = pool.metadata.name;
    if (live.metadata.deletionTimestamp) return this.finalize(live, pool, events);
    if (problems.length > 0) {
      // An invalid spec changes nothing in the cluster: the last valid state stays until it is fixed.
      await this.writeStatus(live, { pool, problems, volumes: [], storageClassName: storageClassName(pool) });
      return {};
    }
    await addFinalizer(this.client, STORAGE_POOLS, live, POOL_FINALIZER);

    const classConflict = await this.ensureStorageClass(pool, events);
    const volumes = volumesOf(this.caches, name);
    const nodes = this.nodeMap();
    const plan = planDisks({ pool, disks: candidateDisks(this.caches, pool, nodes), nodes, volumes });
    const budget = new WriteBudget(this.turns.writesPerTurn);
    const claimedNow = await this.claimDisks(pool, plan, budget, events);
    await this.releaseDisks(pool, budget.take(plan.release), volumes, events);
    if (pool.spec.mode === 'Local') await this.reconcileLocalVolumes(pool, plan.keep, volumes, nodes, budget, events);
    this.warnAboutConflicts(pool, plan, events);

    const claimed = [...plan.keep, ...plan.held.map((h) => h.disk)];
    await this.writeStatus(live, {
      // Status counts the claims made, not those left for the pool's next turn.
      pool, problems, plan: { ...plan, claim: claimedNow }, volumes: [...volumesOf(this.caches, name).values()], storageClassName: storageClassName(pool),
      ...(classConflict ? { storageClassConflict: classConflict } : {}),
      ...(pool.spec.mode === 'Dynamic' ? { dynamic: observeDynamicPool(pool, claimed, this.caches.poolVolumes.list()) } : {}),
    });
    // Work left over: this pool's turn is up; it continues after the pools already waiting.
    return budget.deferred ? { requeue: true } : {};
  }

  // ---- StorageClass -------------------------------------------------------------------------

  /** Applies the pool's class; returns a message when the name belongs to someone else. */
  private async ensureStorageClass(pool: Pool, events: EventBatch): Promise<string | undefined> {
    const desired = renderStorageClass(pool);
    const name = desired.metadata.name!;
    // A class renamed in the spec: the old one goes (bound PVs keep working; they hold the name).
    for (const old of this.caches.classes.list()) {
      if (old.metadata.name !== name && isOwnedBy(old, pool)) {
        await this.client.delete(STORAGE_CLASSES, old.metadata.name!, { uid: old.metadata.uid! });
        events.add('Normal', 'StorageClassDeleted', `deleted StorageClass ${old.metadata.name}: spec.storageClass.name is now ${name}`);
      }
    }
    const live = this.caches.classes.get(name);
    if (live && !isOwnedBy(live, pool)) {
      return `StorageClass ${name} already exists and is not this pool's; set spec.storageClass.name to a free name, or delete that class`;
    }
    if (live) {
      const changed = immutableDifferences(desired, live);
      if (changed.length > 0) {
        await this.client.delete(STORAGE_CLASSES, name, { uid: live.metadata.uid! });
        await this.applier.client.apply(STORAGE_CLASSES, desired, { fieldManager: this.applier.fieldManager });
        events.add('Normal', 'StorageClassRecreated',
          `recreated StorageClass ${name} because ${changed.join(', ')} cannot be changed in place; volumes already bound are unaffected`);
        return undefined;
      }
    }
    const created = !live;
    await this.applier.apply(STORAGE_CLASSES, desired, live, STORAGE_CLASS_OPTIONAL_FIELDS);
    if (created) events.add('Normal', 'StorageClassCreated', `created StorageClass ${name}`);
    return undefined;
  }

  // ---- claims -------------------------------------------------------------------------------

  /** Claims what the plan says, as far as the budget allows; returns the disks claimed now. */
  private async claimDisks(pool: Pool, plan: DiskPlan, budget: WriteBudget, events: EventBatch): Promise<NodeDisk[]> {
    const claim = desiredClaim(pool);
    const firstTurn = plan.keep.length === 0 && plan.held.length === 0;
    const now = budget.take(plan.claim, firstTurn ? this.turns.firstTurnWrites : Infinity);
    await forEachLimit(now, WRITE_CONCURRENCY, async (disk) => {
      // The resourceVersion makes the claim conditional: if another pool claimed the disk since our
      // cache saw it, the API server refuses (409) and the next reconcile sees the older claim.
      await this.applyIntent(disk, { claim }, true);
      await faultPoint('local/claim');
      events.add('Normal', 'DiskClaimed', `claimed disk ${disk.metadata.name} on node ${disk.spec.nodeName} (${describeClaim(claim)})`);
    });
    // Keep the intent on disks we hold up to date (e.g. allowAdoption changed).
    const outdated = plan.keep.filter((disk) => !sameClaim(disk.spec.claim, claim) || Boolean(disk.spec.claim?.allowAdoption) !== Boolean(claim.allowAdoption));
    await forEachLimit(budget.take(outdated), WRITE_CONCURRENCY, async (disk) => {
      await this.applyIntent(disk, { claim, ...(disk.spec.wipe ? { wipe: disk.spec.wipe } : {}) }, false);
    });
    return now;
  }

  /**
   * Hands disks back: their unbound PV goes first (a Released one with reclaimPolicy Delete is wiped
   * before, so the next owner never sees its data), then the claim is cleared and the agent removes
   * the filesystem it made.
   */
  private async releaseDisks(pool: Pool, disks: readonly NodeDisk[], volumes: ReadonlyMap<string, PersistentVolume>, events: EventBatch): Promise<void> {
    await forEachLimit(disks, WRITE_CONCURRENCY, async (disk) => {
      const pv = volumes.get(persistentVolumeName(disk.metadata.name));
      if (pv && !(await this.retireVolume(pool, disk, pv, 'the disk leaves the pool', events))) return;
      await this.applyIntent(disk, {}, false);
      events.add('Normal', 'DiskReleased', `released disk ${disk.metadata.name} on node ${disk.spec.nodeName}; the agent removes Stowage's filesystem from it`);
    });
  }

  /**
   * The operator's intent on a NodeDisk — claim, wipe request and pool label — under the operator's
   * field manager. Fields are set with server-side apply; fields given up (a released claim, a
   * withdrawn wipe) are removed with a JSON merge patch that nulls them, because server-side apply
   * on older API servers (1.20) leaves a `null` behind when an applier drops a field it owned, and
   * the schema-defaulted `claim.allowAdoption` belongs to no manager at all.
   * `conditional` adds the cached resourceVersion as a precondition (409 if the disk changed).
   */
  private async applyIntent(disk: NodeDisk, intent: { claim?: DiskClaim; wipe?: DiskWipe }, conditional: boolean): Promise<void> {
    const name = disk.metadata.name;
    const precondition = conditional && disk.metadata.resourceVersion ? { resourceVersion: disk.metadata.resourceVersion } : {};
    const dropClaim = !intent.claim && disk.spec.claim !== undefined;
    const dropWipe = !intent.wipe && disk.spec.wipe !== undefined;
    if (dropClaim || dropWipe) {
      await this.client.mergePatch(NODE_DISKS, name, {
        metadata: { ...precondition, ...(dropClaim ? { labels: { [POOL_LABEL]: null } } : {}) },
        spec: { ...(dropClaim ? { claim: null } : {}), ...(dropWipe ? { wipe: null } : {}) },
      }, { fieldManager: this.applier.fieldManager });
      if (!intent.claim) return;
    }
    await this.client.apply(NODE_DISKS, {
      apiVersion: API_VERSION,
      kind: 'NodeDisk',
      metadata: { name, labels: { [POOL_LABEL]: intent.claim!.pool }, ...(dropClaim || dropWipe ? {} : precondition) },
      spec: { claim: intent.claim, ...(intent.wipe ? { wipe: intent.wipe } : {}) },
    }, { fieldManager: this.applier.fieldManager, force: true });
  }

  // ---- local volumes ------------------------------------------------------------------------

  /**
   * One PV per ready disk the pool keeps. Decides first, from the caches alone, what each disk's
   * volume needs; then sends at most the budget's worth of those writes.
   */
  private async reconcileLocalVolumes(
    pool: Pool, disks: readonly NodeDisk[], volumes: ReadonlyMap<string, PersistentVolume>, nodes: ReadonlyMap<string, Node>,
    budget: WriteBudget, events: EventBatch,
  ): Promise<void> {
    const creates: VolumeWork[] = [];
    const others: VolumeWork[] = [];
    for (const disk of disks) {
      const work = this.volumeWork(pool, disk, volumes.get(persistentVolumeName(disk.metadata.name)), nodes);
      if (work) (work.kind === 'create' ? creates : others).push(work);
    }
    const todo = [...budget.take(others), ...budget.take(creates, volumes.size === 0 ? this.turns.firstTurnWrites : Infinity)];
    await forEachLimit(todo, WRITE_CONCURRENCY, async (work) => {
      const { disk } = work;
      switch (work.kind) {
        case 'create':
          if (disk.spec.wipe) await this.applyIntent(disk, { claim: disk.spec.claim! }, false); // the recycled volume is gone
          // A plain create under the operator's field manager: the API server does less work for
          // it than for an apply of a new object, which counts when thousands of disks come up at
          // once. Later changes are applied (and take these fields over) as for any other PV.
          await this.client.create(PERSISTENT_VOLUMES, work.desired, { fieldManager: this.applier.fieldManager }).catch(async (err: unknown) => {
            // Created meanwhile (our cache had not seen it yet): make sure it says what it should.
            if (!ApiError.isAlreadyExists(err)) throw err;
            await this.client.apply(PERSISTENT_VOLUMES, work.desired, { fieldManager: this.applier.fieldManager, force: true });
          });
          await faultPoint('local/publish');
          events.add('Normal', 'PersistentVolumeCreated',
            `created PersistentVolume ${work.desired.metadata.name} (${work.desired.spec.capacity?.storage}) on node ${disk.spec.nodeName} from disk ${disk.metadata.name}`);
          return;
        case 'forget-wipe':
          await this.applyIntent(disk, { claim: disk.spec.claim! }, false); // the recycled volume is gone
          return;
        case 'recycle':
          await this.retireVolume(pool, disk, work.pv, 'its claim was deleted', events);
          return;
        case 'withdraw':
          await this.deleteVolume(work.pv, `disk ${disk.metadata.name} is not ready (missing, unhealthy or unprepared); the volume comes back when it is`, 'VolumeWithdrawn', events);
          return;
        case 'update':
          await this.applier.apply(PERSISTENT_VOLUMES, work.desired, work.pv, LOCAL_PV_OPTIONAL_FIELDS);
      }
    });
  }

  /** What the PV of one kept disk needs, or undefined when nothing (remembering PVs found up to date). */
  private volumeWork(pool: Pool, disk: NodeDisk, pv: PersistentVolume | undefined, nodes: ReadonlyMap<string, Node>): VolumeWork | undefined {
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
  private async retireVolume(pool: Pool, disk: NodeDisk, pv: PersistentVolume, why: string, events: EventBatch): Promise<boolean> {
    if (pv.metadata.deletionTimestamp) return false; // going; the deletion event brings us back
    if (phaseOf(pv) === 'Released' && pv.spec.persistentVolumeReclaimPolicy === 'Delete') {
      const uid = pv.metadata.uid!;
      const last = disk.status?.lastWipe;
      if (last?.volumeUID !== uid || last.result !== 'Succeeded') {
        if (disk.spec.wipe?.volumeUID !== uid) {
          const method = pool.spec.local?.cleanup ?? 'quick';
          await this.applyIntent(disk, { claim: disk.spec.claim!, wipe: { volumeUID: uid, method } }, false);
          await faultPoint('local/wipe-requested');
          events.add('Normal', 'WipeRequested',
            `requested a ${method} wipe of disk ${disk.metadata.name} for PersistentVolume ${pv.metadata.name} (uid ${uid}): ${why}`);
        } else if (last?.volumeUID === uid && last.result === 'Failed' && !this.warned.has(`wipe/${uid}/${last.time}`)) {
          this.warned.add(`wipe/${uid}/${last.time}`);
          events.add('Warning', 'WipeFailed',
            `the wipe of disk ${disk.metadata.name} for PersistentVolume ${pv.metadata.name} failed: ${last.message ?? 'no details'}; the agent retries and the volume is not reused until it succeeds`);
        }
        return false;
      }
    }
    await this.deleteVolume(pv, why, phaseOf(pv) === 'Released' ? 'PersistentVolumeRecycled' : 'PersistentVolumeDeleted', events);
    await faultPoint('local/pv-deleted');
    return true;
  }

  private async deleteVolume(pv: PersistentVolume, why: string, reason: string, events: EventBatch): Promise<void> {
    // Already on its way out (held by the pv-protection finalizer for a moment): nothing to do.
    if (pv.metadata.deletionTimestamp) return;
    // uid + resourceVersion: if the PV was bound (or recreated) since our cache saw it, the API server refuses.
    const deleted = await this.client.delete(PERSISTENT_VOLUMES, pv.metadata.name!, { uid: pv.metadata.uid!, resourceVersion: pv.metadata.resourceVersion! });
    if (deleted) events.add('Normal', reason, `deleted PersistentVolume ${pv.metadata.name}: ${why}`);
  }

  // ---- deletion -----------------------------------------------------------------------------

  /**
   * A pool being deleted stays while any of its volumes is in use or retained (Ready=False,
   * DeletionBlocked, naming the claims). Then unbound PVs are retired (wiped where the policy says
   * Delete), disks released, the StorageClass deleted, and the finalizer removed last.
   */
  private async finalize(live: Pool, pool: Pool, events: EventBatch): Promise<ReconcileResult> {
    if (!hasFinalizer(live, POOL_FINALIZER)) return {};
    const volumes = volumesOf(this.caches, pool.metadata.name);
    const blockers = [...volumes.values()].filter((pv) => isInUse(pv) || isRetained(pv));
    const dynamicVolumes = this.caches.poolVolumes.list().filter((v) => v.spec.pool === pool.metadata.name);
    if (blockers.length > 0 || dynamicVolumes.length > 0) {
      const by = [
        ...blockers.map((pv) => (isInUse(pv) ? claimRefName(pv) : `retained PV ${pv.metadata.name}`)),
        ...dynamicVolumes.map((v) => `volume ${v.spec.requestName}`),
      ].sort();
      if (!this.warned.has(`deletion/${pool.metadata.uid}/${by.join(',')}`)) {
        this.warned.add(`deletion/${pool.metadata.uid}/${by.join(',')}`);
        events.add('Warning', 'DeletionBlocked', `deletion waits for volumes in use by ${by.join(', ')}`);
      }
      await this.writeStatus(live, {
        pool, problems: [], plan: { claim: [], keep: disksOf(this.caches, pool.metadata.name), release: [], held: [], conflicts: [] },
        volumes: [...volumes.values()], storageClassName: storageClassName(pool), deletionBlockedBy: by,
      });
      return {};
    }
    const disks = disksOf(this.caches, pool.metadata.name);
    const byDisk = new Map(disks.map((d) => [persistentVolumeName(d.metadata.name), d]));
    let pending = false;
    await forEachLimit([...volumes.values()], WRITE_CONCURRENCY, async (pv) => {
      const disk = byDisk.get(pv.metadata.name!);
      if (disk) pending = !(await this.retireVolume(pool, disk, pv, 'the pool is being deleted', events)) || pending;
      else await this.deleteVolume(pv, 'the pool is being deleted', 'PersistentVolumeDeleted', events);
    });
    if (pending) return {}; // waiting for wipes; the agent's report wakes us
    await this.releaseDisks(pool, disks.filter((d) => !volumes.has(persistentVolumeName(d.metadata.name))), new Map(), events);
    for (const sc of this.caches.classes.list().filter((c) => isOwnedBy(c, pool))) {
      await this.client.delete(STORAGE_CLASSES, sc.metadata.name!, { uid: sc.metadata.uid! });
      events.add('Normal', 'StorageClassDeleted', `deleted StorageClass ${sc.metadata.name}: the pool is being deleted`);
    }
    if (disks.some((d) => volumes.has(persistentVolumeName(d.metadata.name)))) return {}; // PVs just deleted; release next round
    await removeFinalizer(this.client, STORAGE_POOLS, live, POOL_FINALIZER);
    this.log.info({ pool: pool.metadata.name }, 'pool deleted; everything it created is gone or handed back');
    return {};
  }

  // ---- status and helpers -------------------------------------------------------------------

  private async writeStatus(live: Pool, obs: PoolObservation): Promise<void> {
    const status = poolStatus({ ...obs, pool: { ...obs.pool, status: live.status } as Pool }, this.now());
    if (live.status && jsonEqual(status, live.status)) return;
    await this.applier.applyStatus(STORAGE_POOLS, { apiVersion: API_VERSION, kind: 'StoragePool', metadata: { name: live.metadata.name }, status }, live);
  }

  private warnAboutConflicts(pool: Pool, plan: DiskPlan, events: EventBatch): void {
    for (const { disk, pool: owner } of plan.conflicts) {
      const key = `conflict/${pool.metadata.uid}/${disk.metadata.uid}`;
      if (this.warned.has(key)) continue;
      this.warned.add(key);
      events.add('Warning', 'DiskClaimedByOtherPool',
        `disk ${disk.metadata.name} matches this pool but belongs to pool ${owner}, which claimed it first; narrow one of the selectors`);
    }
  }

  private nodeMap(): Map<string, Node> {
    return new Map(this.caches.nodes.list().map((n) => [n.metadata.name!, n]));
  }
}

/** The write one kept disk's PV needs. */
type VolumeWork =
  | { readonly kind: 'create'; readonly disk: NodeDisk; readonly desired: PersistentVolume }
  | { readonly kind: 'update'; readonly disk: NodeDisk; readonly desired: PersistentVolume; readonly pv: PersistentVolume }
  | { readonly kind: 'recycle' | 'withdraw'; readonly disk: NodeDisk; readonly pv: PersistentVolume }
  | { readonly kind: 'forget-wipe'; readonly disk: NodeDisk };

/** How many writes a reconcile may still send; remembers whether it had to leave work for later. */
class WriteBudget {
  deferred = false;

  constructor(private left: number) {}

  /** The first items the budget (and `limit`) allows, spending it. */
  take<T>(items: readonly T[], limit = Infinity): T[] {
    const n = Math.max(0, Math.min(items.length, this.left, limit));
    this.left -= n;
    if (n < items.length) this.deferred = true;
    return items.slice(0, n);
  }
}

function isSameVerification(a: VerifiedAgainst | undefined, b: VerifiedAgainst): boolean {
  return a !== undefined && a.disk === b.disk && a.poolUid === b.poolUid && a.poolGeneration === b.poolGeneration && a.hostname === b.hostname;
}

function describeClaim(claim: NonNullable<NodeDisk['spec']['claim']>): string {
  return claim.mode === 'Local' ? `Local ${claim.volumeMode}${claim.fsType ? ` ${claim.fsType}` : ''}` : 'Dynamic';
}

import { API_VERSION, type Problem } from '../../crds/meta.js';
import type { DiskClaim, DiskWipe, NodeDisk } from '../../crds/nodedisk.js';
import { NODE_DISKS, STORAGE_POOLS } from '../../crds/resource-types.js';
import type { StoragePoolStatus } from '../../crds/storagepool.js';
import { validateObject, withDefaults } from '../../crds/validation.js';
import type { KubeClient } from '../../kube/client.js';
import { STORAGE_CLASSES } from '../../kube/resources.js';
import type { Condition, Node, PersistentVolume } from '../../kube/types.js';
import { forEachLimit } from '../../util/concurrency.js';
import { logger } from '../../util/logger.js';
import { POOL_FINALIZER, POOL_LABEL } from '../../crds/labels.js';
import { type Applier, jsonEqual } from '../../runtime/apply.js';
import { nowTimestamp } from '../../runtime/conditions.js';
import type { ReconcileResult, Reconciler } from '../../runtime/controller.js';
import type { EventBatch, EventRecorder } from '../../runtime/events.js';
import { addFinalizer, hasFinalizer, removeFinalizer } from '../../runtime/finalizers.js';
import { claimRefName, desiredClaim, planDisks, sameClaim, type DiskPlan } from './disk-plan.js';
import { isInUse, isRetained, persistentVolumeName } from './persistent-volume.js';
import { observeDynamicPool } from './dynamic.js';
import { LocalVolumes } from './local-volumes.js';
import { WRITE_CONCURRENCY, WriteBudget } from './write-budget.js';
import { candidateDisks, disksOf, indexPoolCaches, volumesOf, type Pool, type PoolCaches } from './pool-caches.js';
import { poolStatus, type PoolObservation } from './status.js';
import { immutableDifferences, isOwnedBy, renderStorageClass, STORAGE_CLASS_OPTIONAL_FIELDS, storageClassName } from './storage-class.js';
import { driverCondition, type DriverHealth } from '../driver-stack/health.js';
import { unsupportedReason, type KubernetesVersion } from '../driver-stack/sidecars.js';
import {
  isSnapshotClassOf,
  renderSnapshotClass,
  VOLUME_SNAPSHOT_CLASSES,
  type SnapshotClassObservation,
  type VolumeSnapshotClass,
} from './snapshot-class.js';
import { faultPoint } from '../../util/fault-point.js';
import { spansNodes } from '../../crds/replication.js';
import { observeAcrossNodes } from '../ceph/across-nodes.js';
import { acrossNodesStatus, placementEvents } from '../ceph/placement-status.js';
import { releaseProgress } from './disk-release.js';

/** What the pool controller learns of the driver stack and the cluster (absent: it runs without the stack). */
export interface DriverSource {
  health(): DriverHealth;
  serverVersion(): Promise<KubernetesVersion>;
}

/** A pool being deleted looks again this often while node agents release its disks (their reports also wake it). */
const RELEASE_POLL_MS = 2_000;

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
  private readonly localVolumes: LocalVolumes;
  constructor(
    private readonly caches: PoolCaches,
    private readonly applier: Applier,
    private readonly events: EventRecorder,
    private readonly now: () => string = nowTimestamp,
    private readonly turns: PoolTurns = { writesPerTurn: WRITES_PER_TURN, firstTurnWrites: FIRST_TURN_WRITES },
    private readonly driver?: DriverSource,
  ) {
    indexPoolCaches(caches);
    this.localVolumes = new LocalVolumes(
      applier,
      (disk, intent, conditional) => this.applyIntent(disk, intent, conditional),
      this.warned,
      turns.firstTurnWrites,
    );
  }

  private get client(): KubeClient {
    return this.applier.client;
  }

  async reconcile(name: string): Promise<ReconcileResult> {
    const live = this.caches.pools.get(name);
    if (!live) return {};
    const problems = validateObject(live).filter((p) => !p.path.startsWith('status'));
    const pool = withDefaults(live);

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
    const unsupported = this.driver ? unsupportedReason(await this.driver.serverVersion(), pool.spec.mode) : undefined;
    if (unsupported) {
      // Refused before anything is created: nothing of the pool would work on this server.
      await this.writeStatus(live, { pool, problems, volumes: [], storageClassName: storageClassName(pool), unsupported }, events);
      return {};
    }
    if (spansNodes(pool.spec.replicated)) {
      // Copies on other nodes (Ceph, operator/ceph/): placement is checked up front, and nothing is created here.
      const status = acrossNodesStatus(observeAcrossNodes(pool, this.caches, this.nodeMap()), live.status, this.now());
      for (const e of placementEvents(live.status?.conditions, status.conditions)) events.add(e.type, e.reason, e.message);
      await this.putStatus(live, status);
      return {};
    }
    await addFinalizer(this.client, STORAGE_POOLS, live, POOL_FINALIZER);

    const classConflict = await this.ensureStorageClass(pool, events);
    const snapshotClass = pool.spec.mode === 'Dynamic' ? await this.ensureSnapshotClass(pool, events) : undefined;
    const volumes = volumesOf(this.caches, name);
    const nodes = this.nodeMap();
    const plan = planDisks({ pool, disks: candidateDisks(this.caches, pool, nodes), nodes, volumes });
    const budget = new WriteBudget(this.turns.writesPerTurn);
    const claimedNow = await this.claimDisks(pool, plan, budget, events);
    await this.releaseDisks(pool, budget.take(plan.release), volumes, events);
    if (pool.spec.mode === 'Local') await this.localVolumes.reconcile(pool, plan.keep, volumes, nodes, budget, events);
    this.warnAboutConflicts(pool, plan, events);

    const claimed = [...plan.keep, ...plan.held.map((h) => h.disk)];
    const dynamic = pool.spec.mode === 'Dynamic';
    const driver = this.driverObservation(pool, [...claimed, ...claimedNow]);
    await this.writeStatus(
      live,
      {
        // Status counts the claims made, not those left for the pool's next turn.
        pool,
        problems,
        plan: { ...plan, claim: claimedNow },
        volumes: [...volumesOf(this.caches, name).values()],
        storageClassName: storageClassName(pool),
        ...(classConflict ? { storageClassConflict: classConflict } : {}),
        ...(dynamic
          ? { dynamic: observeDynamicPool(pool, claimed, this.caches.poolVolumes.list(), this.caches.poolSnapshots.list()) }
          : {}),
        ...(driver ? { driver } : {}),
        ...(snapshotClass ? { snapshotClass } : {}),
      },
      events,
    );
    // Work left over: this pool's turn is up; it continues after the pools already waiting.
    return budget.deferred ? { requeue: true } : {};
  }

  // ---- VolumeSnapshotClass ------------------------------------------------------------------

  /**
   * Applies a Dynamic pool's VolumeSnapshotClass when the cluster has the snapshot CRDs. No cache
   * watches the classes (their CRD may be missing, and an informer on a missing resource only
   * retries): one GET per reconcile of a Dynamic pool, and no write when it is up to date.
   */
  private async ensureSnapshotClass(pool: Pool, events: EventBatch): Promise<SnapshotClassObservation> {
    const desired = renderSnapshotClass(pool);
    const name = desired.metadata.name!;
    const observed = { name, deletionPolicy: desired.deletionPolicy };
    if (this.caches.snapshotCrds.list().length === 0) return { ...observed, state: 'CRDsMissing' };
    const live = await this.client.getIfExists<VolumeSnapshotClass>(VOLUME_SNAPSHOT_CLASSES, name);
    if (live && !isSnapshotClassOf(live, pool)) return { ...observed, state: 'Conflict' };
    if (live && live.deletionPolicy !== desired.deletionPolicy) {
      // deletionPolicy is changeable in place; driver is not, but ours never changes.
      events.add('Normal', 'SnapshotClassUpdated', `VolumeSnapshotClass ${name}: deletionPolicy is now ${desired.deletionPolicy}`);
    }
    await this.applier.apply(VOLUME_SNAPSHOT_CLASSES, desired, live);
    if (!live) events.add('Normal', 'SnapshotClassCreated', `created VolumeSnapshotClass ${name}`);
    return { ...observed, state: 'Ready' };
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
        events.add(
          'Normal',
          'StorageClassRecreated',
          `recreated StorageClass ${name} because ${changed.join(', ')} cannot be changed in place; volumes already bound are unaffected`,
        );
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
    const outdated = plan.keep.filter(
      (disk) => !sameClaim(disk.spec.claim, claim) || Boolean(disk.spec.claim?.allowAdoption) !== Boolean(claim.allowAdoption),
    );
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
  /** `keepPoolLabel`: the pool is being deleted and waits for the agents' confirmation (disk-release.ts). */
  private async releaseDisks(
    pool: Pool,
    disks: readonly NodeDisk[],
    volumes: ReadonlyMap<string, PersistentVolume>,
    events: EventBatch,
    keepPoolLabel = false,
  ): Promise<void> {
    await forEachLimit(disks, WRITE_CONCURRENCY, async (disk) => {
      const pv = volumes.get(persistentVolumeName(disk.metadata.name));
      if (pv && !(await this.localVolumes.retire(pool, disk, pv, 'the disk leaves the pool', events))) return;
      await this.applyIntent(disk, {}, false, keepPoolLabel);
      events.add(
        'Normal',
        'DiskReleased',
        `released disk ${disk.metadata.name} on node ${disk.spec.nodeName}; the agent removes Stowage's filesystem from it`,
      );
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
  private async applyIntent(
    disk: NodeDisk,
    intent: { claim?: DiskClaim; wipe?: DiskWipe },
    conditional: boolean,
    keepPoolLabel = false,
  ): Promise<void> {
    const name = disk.metadata.name;
    const precondition = conditional && disk.metadata.resourceVersion ? { resourceVersion: disk.metadata.resourceVersion } : {};
    const dropClaim = !intent.claim && disk.spec.claim !== undefined;
    const dropWipe = !intent.wipe && disk.spec.wipe !== undefined;
    if (dropClaim || dropWipe) {
      await this.client.mergePatch(
        NODE_DISKS,
        name,
        {
          metadata: { ...precondition, ...(dropClaim && !keepPoolLabel ? { labels: { [POOL_LABEL]: null } } : {}) },
          spec: { ...(dropClaim ? { claim: null } : {}), ...(dropWipe ? { wipe: null } : {}) },
        },
        { fieldManager: this.applier.fieldManager },
      );
      if (!intent.claim) return;
    }
    await this.client.apply(
      NODE_DISKS,
      {
        apiVersion: API_VERSION,
        kind: 'NodeDisk',
        metadata: { name, labels: { [POOL_LABEL]: intent.claim!.pool }, ...(dropClaim || dropWipe ? {} : precondition) },
        spec: { claim: intent.claim, ...(intent.wipe ? { wipe: intent.wipe } : {}) },
      },
      { fieldManager: this.applier.fieldManager, force: true },
    );
  }

  // ---- local volumes ------------------------------------------------------------------------

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
    // Snapshots live in the pool's filesystems: the pool goes only after them.
    const dynamicSnapshots = this.caches.poolSnapshots.list().filter((s) => s.spec.pool === pool.metadata.name);
    if (blockers.length > 0 || dynamicVolumes.length > 0 || dynamicSnapshots.length > 0) {
      const by = [
        ...blockers.map((pv) => (isInUse(pv) ? claimRefName(pv) : `retained PV ${pv.metadata.name}`)),
        ...dynamicVolumes.map((v) => `volume ${v.spec.requestName}`),
        ...dynamicSnapshots.map((s) => `snapshot ${s.spec.requestName}`),
      ].sort();
      if (!this.warned.has(`deletion/${pool.metadata.uid}/${by.join(',')}`)) {
        this.warned.add(`deletion/${pool.metadata.uid}/${by.join(',')}`);
        events.add('Warning', 'DeletionBlocked', `deletion waits for volumes in use by ${by.join(', ')}`);
      }
      const keep = disksOf(this.caches, pool.metadata.name);
      // The driver still matters while volumes in use wait: they are mounted through it.
      const driver = this.driverObservation(pool, keep);
      await this.writeStatus(live, {
        pool,
        problems: [],
        plan: { claim: [], keep, release: [], held: [], conflicts: [] },
        volumes: [...volumes.values()],
        storageClassName: storageClassName(pool),
        deletionBlockedBy: by,
        ...(driver ? { driver } : {}),
      });
      return {};
    }
    const disks = disksOf(this.caches, pool.metadata.name);
    const byDisk = new Map(disks.map((d) => [persistentVolumeName(d.metadata.name), d]));
    let pending = false;
    await forEachLimit([...volumes.values()], WRITE_CONCURRENCY, async (pv) => {
      const disk = byDisk.get(pv.metadata.name!);
      if (disk) pending = !(await this.localVolumes.retire(pool, disk, pv, 'the pool is being deleted', events)) || pending;
      else await this.localVolumes.delete(pv, 'the pool is being deleted', 'PersistentVolumeDeleted', events);
    });
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- set by the callbacks of forEachLimit
    if (pending) return {}; // waiting for wipes; the agent's report wakes us
    await this.releaseDisks(
      pool,
      disks.filter((d) => !volumes.has(persistentVolumeName(d.metadata.name))),
      new Map(),
      events,
      true,
    );
    if (pool.spec.mode === 'Dynamic' && this.caches.snapshotCrds.list().length > 0) {
      const vsc = await this.client.getIfExists<VolumeSnapshotClass>(VOLUME_SNAPSHOT_CLASSES, renderSnapshotClass(pool).metadata.name!);
      if (vsc && isSnapshotClassOf(vsc, pool)) {
        await this.client.delete(VOLUME_SNAPSHOT_CLASSES, vsc.metadata.name!, { uid: vsc.metadata.uid! });
        events.add('Normal', 'SnapshotClassDeleted', `deleted VolumeSnapshotClass ${vsc.metadata.name}: the pool is being deleted`);
      }
    }
    for (const sc of this.caches.classes.list().filter((c) => isOwnedBy(c, pool))) {
      await this.client.delete(STORAGE_CLASSES, sc.metadata.name!, { uid: sc.metadata.uid! });
      events.add('Normal', 'StorageClassDeleted', `deleted StorageClass ${sc.metadata.name}: the pool is being deleted`);
    }
    if (disks.some((d) => volumes.has(persistentVolumeName(d.metadata.name)))) return {}; // PVs just deleted; release next round
    // The finalizer stays until every node agent confirmed the release of its disks.
    const nodes = this.nodeMap();
    const progress = releaseProgress(pool.metadata.name, this.caches.disks.list(), (n) => nodes.has(n));
    await forEachLimit(progress.done, WRITE_CONCURRENCY, (d) =>
      this.client
        .mergePatch(
          NODE_DISKS,
          d.metadata.name,
          { metadata: { labels: { [POOL_LABEL]: null } } },
          { fieldManager: this.applier.fieldManager },
        )
        .then(() => undefined),
    );
    if (progress.waiting.length > 0) {
      const waiting = progress.waiting.map((w) => w.why).sort();
      await this.writeStatus(live, {
        pool,
        problems: [],
        plan: { claim: [], keep: [], release: [], held: [], conflicts: [] },
        volumes: [],
        storageClassName: storageClassName(pool),
        releasingDisks: waiting,
      });
      return { requeueAfterMs: RELEASE_POLL_MS };
    }
    await removeFinalizer(this.client, STORAGE_POOLS, live, POOL_FINALIZER);
    this.log.info({ pool: pool.metadata.name }, 'pool deleted; everything it created is gone or handed back');
    return {};
  }

  // ---- status and helpers -------------------------------------------------------------------

  private async writeStatus(live: Pool, obs: PoolObservation, events?: EventBatch): Promise<void> {
    await this.putStatus(live, poolStatus({ ...obs, pool: { ...obs.pool, status: live.status } }, this.now()), events);
  }

  private async putStatus(live: Pool, status: StoragePoolStatus, events?: EventBatch): Promise<void> {
    if (live.status && jsonEqual(status, live.status)) return;
    if (events) announceTransitions(live.status?.conditions, status.conditions, events);
    await this.applier.applyStatus(
      STORAGE_POOLS,
      { apiVersion: API_VERSION, kind: 'StoragePool', metadata: { name: live.metadata.name }, status },
      live,
    );
  }

  /** DriverReady of a pool that needs the driver (Dynamic), over the nodes of `disks`; undefined otherwise. */
  private driverObservation(pool: Pool, disks: readonly NodeDisk[]): ReturnType<typeof driverCondition> | undefined {
    if (pool.spec.mode !== 'Dynamic' || !this.driver) return undefined;
    return driverCondition(this.driver.health(), new Set(disks.map((d) => d.spec.nodeName)));
  }

  private warnAboutConflicts(pool: Pool, plan: DiskPlan, events: EventBatch): void {
    for (const { disk, pool: owner } of plan.conflicts) {
      const key = `conflict/${pool.metadata.uid}/${disk.metadata.uid}`;
      if (this.warned.has(key)) continue;
      this.warned.add(key);
      events.add(
        'Warning',
        'DiskClaimedByOtherPool',
        `disk ${disk.metadata.name} matches this pool but belongs to pool ${owner}, which claimed it first; narrow one of the selectors`,
      );
    }
  }

  private nodeMap(): Map<string, Node> {
    return new Map(this.caches.nodes.list().map((n) => [n.metadata.name!, n]));
  }
}

/**
 * Events for conditions an administrator must hear about when they change: the driver's health
 * (every flip, with the nodes and reasons) and a refusal for an unsupported cluster.
 */
function announceTransitions(before: readonly Condition[] | undefined, after: readonly Condition[] | undefined, events: EventBatch): void {
  const was = before?.find((c) => c.type === 'DriverReady');
  const now = after?.find((c) => c.type === 'DriverReady');
  if (now && now.status !== 'Unknown' && (was?.status !== now.status || (now.status === 'False' && was.reason !== now.reason))) {
    if (now.status === 'False') events.add('Warning', 'DriverNotReady', now.message);
    else if (was) events.add('Normal', 'DriverReady', now.message);
  }
  // A disk of the pool failing or vanishing is news worth an event, once per change (and its end).
  const disks = after?.find((c) => c.type === 'DisksHealthy');
  const wereDisks = before?.find((c) => c.type === 'DisksHealthy');
  if (disks?.status === 'False' && (wereDisks?.status !== 'False' || wereDisks.reason !== disks.reason))
    events.add('Warning', disks.reason, disks.message);
  else if (disks?.status === 'True' && wereDisks?.status === 'False') events.add('Normal', 'DisksHealthy', disks.message);
  const ready = after?.find((c) => c.type === 'Ready');
  const wasReady = before?.find((c) => c.type === 'Ready');
  if (ready?.reason === 'UnsupportedKubernetes' && wasReady?.reason !== 'UnsupportedKubernetes')
    events.add('Warning', 'UnsupportedKubernetes', ready.message);
}

function describeClaim(claim: NonNullable<NodeDisk['spec']['claim']>): string {
  return claim.mode === 'Local' ? `Local ${claim.volumeMode}${claim.fsType ? ` ${claim.fsType}` : ''}` : 'Dynamic';
}

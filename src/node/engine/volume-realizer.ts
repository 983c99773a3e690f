/**
 * The node daemon's PoolVolume loop: every PoolVolume whose spec.node is this node becomes a
 * subvolume or NOCOW file in its pool filesystem with the requested size (raised on expansion);
 * a deleted one has its data removed, then its finalizer. Status is written under `stowage-node`.
 */
import { stat } from 'node:fs/promises';
import type { KubeClient } from '../../kube/client.js';
import { POOL_SNAPSHOTS, POOL_VOLUMES } from '../../crds/resource-types.js';
import type { PoolSnapshot } from '../../crds/poolsnapshot.js';
import { POOL_VOLUME_FINALIZER, POOL_VOLUME_LABELS, type PoolVolume, type PoolVolumeStatus } from '../../crds/poolvolume.js';
import { API_VERSION } from '../../crds/meta.js';
import { Applier } from '../../runtime/apply.js';
import { nowTimestamp, setConditions } from '../../runtime/conditions.js';
import { runRealizer, type RunningRealizerOf } from './run-realizer.js';
import type { Reconciler, ReconcileResult } from '../../runtime/controller.js';
import { removeFinalizer, hasFinalizer } from '../../runtime/finalizers.js';
import type { Informer } from '../../runtime/informer.js';
import { parseBytes } from '../../util/quantity.js';
import { errorMessage } from '../../util/errors.js';
import { logger } from '../../util/logger.js';
import type { BtrfsEngine } from './btrfs-engine.js';
import { contentSource, ensureRestoredVolume, removePartial, sourceNote } from './snapshots.js';
import { volumePath } from './volumes.js';
import { faultPoint } from '../../util/fault-point.js';
import { NODE_FIELD_MANAGER } from '../field-manager.js';
import { EventRecorder } from '../../runtime/events.js';
import { locationChange } from './volume-location.js';

const log = logger('volume-realizer');

/** Used bytes and health are refreshed this often (the node daemon's setting). */
export const REFRESH_MS = 30_000;
/** The periodic refresh of many volumes shares one qgroup listing of at most this age. */
const USAGE_LISTING_MAX_AGE_MS = 5_000;
/** A volume waiting for its pool filesystem is retried this often. */
const POOL_WAIT_MS = 1_000;

/** What this process last realized for a PoolVolume, so the reconciles its own status writes trigger stay in memory. */
interface Realized {
  readonly uid: string;
  readonly poolUuid: string | undefined;
  readonly size: bigint;
  readonly noDataCow: boolean;
  readonly path: string;
  readonly capacity: bigint;
  readonly used: bigint;
  /** When the volume was last checked on disk (created or limit set, used bytes read). */
  readonly checkedAt: number;
}

export class PoolVolumeRealizer implements Reconciler {
  private readonly applier: Applier;
  private readonly realized = new Map<string, Realized>();
  /** The generation of each refused location change already reported (one event per edit, not per reconcile). */
  private readonly refused = new Map<string, number | undefined>();
  private readonly events: EventRecorder;

  constructor(
    private readonly client: KubeClient,
    private readonly informer: Informer<PoolVolume>,
    private readonly engine: BtrfsEngine,
    private readonly nodeName: string,
    private readonly refreshMs = REFRESH_MS,
  ) {
    this.applier = new Applier(client, NODE_FIELD_MANAGER);
    this.events = new EventRecorder(client, NODE_FIELD_MANAGER, nodeName);
  }

  async reconcile(key: string): Promise<ReconcileResult | void> {
    const pv = this.informer.get(key);
    const recorded = pv?.status?.location;
    // The node holding the data answers for it, also when spec.node was edited away from it.
    if (!pv || (pv.spec.node !== this.nodeName && recorded?.node !== this.nodeName)) {
      this.realized.delete(key);
      return;
    }
    const moved = locationChange('PoolVolume', key, recorded, { pool: pv.spec.pool, node: pv.spec.node });
    // Deleting removes the data where it is, whatever the spec was edited to name.
    const pool = recorded?.pool ?? pv.spec.pool;
    const { volumeMode } = pv.spec;
    if (pv.metadata.deletionTimestamp && recorded && recorded.node !== this.nodeName) return; // that node's daemon removes it
    if (!pv.metadata.deletionTimestamp && moved) {
      this.realized.delete(key);
      if (this.refused.get(key) !== pv.metadata.generation) {
        this.refused.set(key, pv.metadata.generation);
        log.warn({ volume: key, fields: moved.fields }, moved.message);
        // emit never rejects (the recorder logs an event it could not write), and the status below does not wait for it.
        void this.events.emit(pv, 'Warning', 'LocationImmutable', moved.message);
      }
      await this.writeStatus(pv, { phase: pv.status?.phase ?? 'Failed', ready: ['False', 'LocationImmutable', moved.message] });
      return;
    }
    this.refused.delete(key);
    if (pv.metadata.deletionTimestamp) {
      if (!hasFinalizer(pv, POOL_VOLUME_FINALIZER)) return;
      if (!(await this.engine.mountedPool(pool))) {
        log.warn({ volume: key, pool }, 'cannot remove the data yet: the pool filesystem is not mounted');
        return { requeueAfterMs: POOL_WAIT_MS };
      }
      const removed = await this.engine.removeVolume(pool, pv.metadata.name, volumeMode);
      // A restore or clone killed mid-copy and deleted before it was retried leaves a partial file.
      if (pv.spec.source && volumeMode === 'Block')
        await removePartial(volumePath((await this.engine.mountedPool(pool))!, pv.metadata.name, volumeMode));
      this.realized.delete(key);
      if (removed) log.warn({ volume: key, pool }, 'removed the volume data');
      await faultPoint('dynamic/remove'); // data removed, finalizer still on
      await removeFinalizer(this.client, POOL_VOLUMES, pv, POOL_VOLUME_FINALIZER);
      return;
    }
    if (!(await this.engine.mountedPool(pool))) {
      await this.writeStatus(pv, {
        phase: 'Pending',
        ready: ['False', 'PoolNotReady', `pool ${pool}'s filesystem is not mounted on node ${this.nodeName} yet`],
      });
      return { requeueAfterMs: POOL_WAIT_MS };
    }
    try {
      const size = parseBytes(pv.spec.size);
      const noDataCow = pv.spec.noDataCow === true;
      const uid = pv.metadata.uid ?? '';
      const poolUuid = this.engine.state(pool)?.uuid;
      const last = this.realized.get(key);
      const now = Date.now();
      // Every status write of ours comes back as an update event. When this process realized the same
      // spec on the same filesystem less than a refresh ago, the disk is not asked again (two tool runs
      // and a listing of every qgroup per event kept new volumes queued behind old ones): the periodic
      // refresh checks the disk and reads used bytes.
      let current: Realized;
      if (
        last &&
        last.uid === uid &&
        last.poolUuid === poolUuid &&
        last.size === size &&
        last.noDataCow === noDataCow &&
        now - last.checkedAt < this.refreshMs
      ) {
        current = last;
      } else {
        if (pv.spec.source) await this.refuseSourceOfAnotherPool(pv);
        const realized = pv.spec.source
          ? await ensureRestoredVolume(
              (await this.engine.mountedPool(pool))!,
              pv.metadata.name,
              volumeMode,
              contentSource(pv.spec.source),
              size,
            )
          : await this.engine.ensureVolume(pool, pv.metadata.name, volumeMode, size, noDataCow);
        await faultPoint('dynamic/realize'); // made on disk, not reported yet
        // Reading used bytes lists every qgroup: skipped for a volume this reconcile just created (it
        // holds nothing), so CreateVolume is not slowed by the number of volumes.
        const used =
          pv.status?.phase === 'Ready' || last
            ? (await this.engine.volumeUsage(pool, pv.metadata.name, volumeMode, USAGE_LISTING_MAX_AGE_MS)).usedBytes
            : 0n;
        current = { uid, poolUuid, size, noDataCow, path: realized.path, capacity: realized.capacityBytes, used, checkedAt: now };
      }
      const health = await this.engine.health(pool);
      await this.writeStatus(pv, {
        phase: 'Ready',
        location: { pool, node: this.nodeName },
        path: current.path,
        capacity: current.capacity.toString(),
        used: current.used.toString(),
        ready: [
          'True',
          'Realized',
          `${volumeMode === 'Block' ? 'NOCOW file' : 'subvolume'} of ${size} bytes in pool ${pool}${sourceNote(pv.spec.source)}`,
        ],
        degraded: health.degraded
          ? ['True', health.reason ?? 'PoolDegraded', health.message]
          : ['False', 'PoolHealthy', 'the pool filesystem has all its disks'],
      });
      this.realized.set(key, current);
      return { requeueAfterMs: Math.max(1, this.refreshMs - (Date.now() - current.checkedAt)) };
    } catch (err) {
      this.realized.delete(key);
      await this.writeStatus(pv, { phase: 'Failed', ready: ['False', 'RealizeFailed', errorMessage(err)] });
      throw err;
    }
  }

  /**
   * A restore or clone is a btrfs snapshot or copy inside one pool filesystem: a source in another
   * pool has no data in this one. Said as such, instead of "it was deleted" (the controller refuses
   * such a CreateVolume; a PoolVolume made by hand gets here). Only asked while the volume's data
   * does not exist yet, so a made volume costs no lookup.
   */
  private async refuseSourceOfAnotherPool(pv: PoolVolume): Promise<void> {
    const mnt = await this.engine.mountedPool(pv.spec.pool);
    // The stat only saves a lookup: if it fails for any reason, the source is looked up, which is harmless.
    if (
      !mnt ||
      (await stat(volumePath(mnt, pv.metadata.name, pv.spec.volumeMode)).then(
        () => true,
        () => false,
      ))
    )
      return;
    const { snapshot, volume } = pv.spec.source!;
    const source = snapshot
      ? await this.client.getIfExists<PoolSnapshot>(POOL_SNAPSHOTS, snapshot)
      : volume
        ? await this.client.getIfExists<PoolVolume>(POOL_VOLUMES, volume)
        : undefined;
    if (source && source.spec.pool !== pv.spec.pool) {
      const what = snapshot ? `snapshot ${snapshot}` : `volume ${volume}`;
      throw new Error(
        `its source ${what} is in pool ${source.spec.pool}, not in pool ${pv.spec.pool}: a restore or clone stays in its source's pool (make it with a StorageClass of pool ${source.spec.pool})`,
      );
    }
  }

  private async writeStatus(
    pv: PoolVolume,
    s: {
      phase: PoolVolumeStatus['phase'];
      location?: PoolVolumeStatus['location'];
      path?: string;
      capacity?: string;
      used?: string;
      ready: [string, string, string];
      degraded?: [string, string, string];
    },
  ): Promise<void> {
    const generation = pv.metadata.generation;
    const conds = [
      {
        type: 'Ready',
        status: s.ready[0] as 'True' | 'False',
        reason: s.ready[1],
        message: s.ready[2],
        ...(generation !== undefined ? { observedGeneration: generation } : {}),
      },
      ...(s.degraded
        ? [
            {
              type: 'Degraded',
              status: s.degraded[0] as 'True' | 'False',
              reason: s.degraded[1],
              message: s.degraded[2],
              ...(generation !== undefined ? { observedGeneration: generation } : {}),
            },
          ]
        : []),
    ];
    const status: PoolVolumeStatus = {
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
      ...(s.location ? { location: s.location } : pv.status?.location ? { location: pv.status.location } : {}),
      phase: s.phase,
      ...(s.path ? { path: s.path } : pv.status?.path ? { path: pv.status.path } : {}),
      ...(s.capacity ? { capacity: s.capacity } : pv.status?.capacity ? { capacity: pv.status.capacity } : {}),
      ...(s.used ? { used: s.used } : pv.status?.used ? { used: pv.status.used } : {}),
      conditions: setConditions(pv.status?.conditions, conds, nowTimestamp()),
    };
    await this.applier.applyStatus(
      POOL_VOLUMES,
      { apiVersion: API_VERSION, kind: 'PoolVolume', metadata: { name: pv.metadata.name }, status },
      pv,
    );
  }
}

export type RunningRealizer = RunningRealizerOf<PoolVolume>;

/** Watches this node's PoolVolumes (by label) and realizes them; resolves once the cache is synced. */
export function startPoolVolumeRealizer(opts: {
  client: KubeClient;
  engine: BtrfsEngine;
  nodeName: string;
  workers?: number;
  refreshMs?: number;
  waitForSync?: boolean;
}): Promise<RunningRealizer> {
  return runRealizer<PoolVolume>({
    client: opts.client,
    resource: POOL_VOLUMES,
    labelSelector: `${POOL_VOLUME_LABELS.node}=${opts.nodeName}`,
    name: 'poolvolume',
    workers: opts.workers ?? 8,
    waitForSync: opts.waitForSync,
    reconciler: (informer) => new PoolVolumeRealizer(opts.client, informer, opts.engine, opts.nodeName, opts.refreshMs),
  });
}

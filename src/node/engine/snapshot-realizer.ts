/**
 * The node daemon's PoolSnapshot loop (like volume-realizer.ts): every PoolSnapshot whose spec.node
 * is this node becomes a snapshot in its pool filesystem; a deleted one has its data removed, then
 * its finalizer. Status (phase, creation time, exclusive bytes) is written under `stowage-node`, and
 * the exclusive bytes are re-read every refresh, because they grow as the source volume overwrites
 * what the snapshot holds.
 *
 * A daemon killed in the middle converges: a subvolume snapshot exists completely or not at all, a
 * Block copy is redone from the start, and a snapshot that exists already is only reported (its
 * creation time read from the filesystem), so no subvolume is left without an object, nor an object
 * without its data.
 */
import { stat } from 'node:fs/promises';
import type { KubeClient } from '../../kube/client.js';
import { POOL_SNAPSHOTS } from '../../crds/resource-types.js';
import { POOL_SNAPSHOT_FINALIZER, POOL_SNAPSHOT_LABELS, type PoolSnapshot, type PoolSnapshotStatus } from '../../crds/poolsnapshot.js';
import { API_VERSION } from '../../crds/meta.js';
import { Applier } from '../../runtime/apply.js';
import { nowTimestamp, setConditions } from '../../runtime/conditions.js';
import { runRealizer, type RunningRealizerOf } from './run-realizer.js';
import type { Reconciler, ReconcileResult } from '../../runtime/controller.js';
import { removeFinalizer, hasFinalizer } from '../../runtime/finalizers.js';
import type { Informer } from '../../runtime/informer.js';
import { errorMessage } from '../../util/errors.js';
import { logger } from '../../util/logger.js';
import type { BtrfsEngine } from './btrfs-engine.js';
import { REFRESH_MS } from './volume-realizer.js';
import { NODE_FIELD_MANAGER } from '../field-manager.js';
import * as snapshots from './snapshots.js';
import { EventRecorder } from '../../runtime/events.js';
import { locationChange } from './volume-location.js';

const log = logger('snapshot-realizer');

/** A snapshot waiting for its pool filesystem is retried this often. */
const POOL_WAIT_MS = 1_000;

interface Realized {
  readonly uid: string;
  readonly exclusive: bigint;
  readonly checkedAt: number;
}

export class PoolSnapshotRealizer implements Reconciler {
  private readonly applier: Applier;
  private readonly realized = new Map<string, Realized>();
  /** The generation of each refused location change already reported (one event per edit). */
  private readonly refused = new Map<string, number | undefined>();
  private readonly events: EventRecorder;

  constructor(
    private readonly client: KubeClient,
    private readonly informer: Informer<PoolSnapshot>,
    private readonly engine: BtrfsEngine,
    private readonly nodeName: string,
    private readonly refreshMs = REFRESH_MS,
  ) {
    this.applier = new Applier(client, NODE_FIELD_MANAGER);
    this.events = new EventRecorder(client, NODE_FIELD_MANAGER, nodeName);
  }

  async reconcile(key: string): Promise<ReconcileResult | void> {
    const ps = this.informer.get(key);
    const recorded = ps?.status?.location;
    // The node holding the data answers for it, also when spec.node was edited away from it.
    if (!ps || (ps.spec.node !== this.nodeName && recorded?.node !== this.nodeName)) {
      this.realized.delete(key);
      return;
    }
    if (ps.metadata.deletionTimestamp && recorded && recorded.node !== this.nodeName) return; // that node's daemon removes it
    const moved = locationChange('PoolSnapshot', key, recorded, { pool: ps.spec.pool, node: ps.spec.node });
    if (!ps.metadata.deletionTimestamp && moved) {
      this.realized.delete(key);
      if (this.refused.get(key) !== ps.metadata.generation) {
        this.refused.set(key, ps.metadata.generation);
        log.warn({ snapshot: key, fields: moved.fields }, moved.message);
        // emit never rejects (the recorder logs an event it could not write), and the status below does not wait for it.
        void this.events.emit(ps, 'Warning', 'LocationImmutable', moved.message);
      }
      await this.writeStatus(ps, { phase: ps.status?.phase ?? 'Failed', ready: ['False', 'LocationImmutable', moved.message] });
      return;
    }
    this.refused.delete(key);
    // Deleting removes the snapshot where it is, whatever the spec was edited to name.
    const pool = recorded?.pool ?? ps.spec.pool;
    const { volumeMode } = ps.spec;
    const mnt = await this.engine.mountedPool(pool);
    if (ps.metadata.deletionTimestamp) {
      if (!hasFinalizer(ps, POOL_SNAPSHOT_FINALIZER)) return;
      if (!mnt) {
        log.warn({ snapshot: key, pool }, 'cannot remove the snapshot yet: the pool filesystem is not mounted');
        return { requeueAfterMs: POOL_WAIT_MS };
      }
      const removed = await snapshots.removeSnapshot(mnt, ps.metadata.name, volumeMode);
      this.realized.delete(key);
      if (removed) log.warn({ snapshot: key, pool }, 'removed the snapshot data');
      await removeFinalizer(this.client, POOL_SNAPSHOTS, ps, POOL_SNAPSHOT_FINALIZER);
      return;
    }
    if (!mnt) {
      await this.writeStatus(ps, {
        phase: 'Pending',
        ready: ['False', 'PoolNotReady', `pool ${pool}'s filesystem is not mounted on node ${this.nodeName} yet`],
      });
      return { requeueAfterMs: POOL_WAIT_MS };
    }
    const uid = ps.metadata.uid ?? '';
    const last = this.realized.get(key);
    // Our own status write comes back as an update: within a refresh, nothing is asked of the disk.
    if (last && last.uid === uid && ps.status?.phase === 'Ready' && Date.now() - last.checkedAt < this.refreshMs) {
      return { requeueAfterMs: Math.max(1, this.refreshMs - (Date.now() - last.checkedAt)) };
    }
    if (ps.status?.phase === 'Failed' && ps.metadata.generation === ps.status.observedGeneration && !last) {
      // A failure (the source was gone) is final: the spec never changes and the source cannot come back.
      return;
    }
    try {
      const made = await snapshots.ensureSnapshot(mnt, ps.metadata.name, ps.spec.sourceVolume, volumeMode);
      if (made.method) log.info({ snapshot: key, pool, source: ps.spec.sourceVolume, method: made.method }, 'took a snapshot');
      // The capture time: the filesystem's birth time of the snapshot, so a restarted daemon reports the same one.
      const creationTime = ps.status?.creationTime ?? nowTimestamp((await stat(made.path)).birthtime);
      const exclusive = await snapshots.exclusiveBytes(made.path);
      await this.writeStatus(ps, {
        phase: 'Ready',
        location: { pool, node: this.nodeName },
        path: made.path,
        creationTime,
        exclusive: exclusive.toString(),
        ...(made.method ? { method: made.method } : {}),
        ready: ['True', 'Realized', `snapshot of ${ps.spec.sourceVolume} in pool ${pool}`],
      });
      this.realized.set(key, { uid, exclusive, checkedAt: Date.now() });
      return { requeueAfterMs: this.refreshMs };
    } catch (err) {
      this.realized.delete(key);
      const message = errorMessage(err);
      // A source without data on this node will not get any: report it and stop; anything else is retried.
      const final = /has no data at/.test(message);
      await this.writeStatus(ps, {
        phase: final ? 'Failed' : 'Pending',
        ready: ['False', final ? 'SourceGone' : 'SnapshotFailed', message],
      });
      if (final) return;
      throw err;
    }
  }

  private async writeStatus(
    ps: PoolSnapshot,
    s: {
      phase: PoolSnapshotStatus['phase'];
      location?: PoolSnapshotStatus['location'];
      path?: string;
      creationTime?: string;
      exclusive?: string;
      method?: string;
      ready: [string, string, string];
    },
  ): Promise<void> {
    const generation = ps.metadata.generation;
    const old = ps.status;
    const status: PoolSnapshotStatus = {
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
      ...((s.location ?? old?.location) ? { location: s.location ?? old?.location } : {}),
      phase: s.phase,
      ...((s.path ?? old?.path) ? { path: s.path ?? old?.path } : {}),
      ...((s.creationTime ?? old?.creationTime) ? { creationTime: s.creationTime ?? old?.creationTime } : {}),
      ...((s.exclusive ?? old?.exclusive) ? { exclusive: s.exclusive ?? old?.exclusive } : {}),
      ...((s.method ?? old?.method) ? { method: s.method ?? old?.method } : {}),
      conditions: setConditions(
        old?.conditions,
        [
          {
            type: 'Ready',
            status: s.ready[0] as 'True' | 'False',
            reason: s.ready[1],
            message: s.ready[2],
            ...(generation !== undefined ? { observedGeneration: generation } : {}),
          },
        ],
        nowTimestamp(),
      ),
    };
    await this.applier.applyStatus(
      POOL_SNAPSHOTS,
      { apiVersion: API_VERSION, kind: 'PoolSnapshot', metadata: { name: ps.metadata.name }, status },
      ps,
    );
  }
}

export type RunningSnapshotRealizer = RunningRealizerOf<PoolSnapshot>;

/** Watches this node's PoolSnapshots (by label) and realizes them. */
export function startPoolSnapshotRealizer(opts: {
  client: KubeClient;
  engine: BtrfsEngine;
  nodeName: string;
  workers?: number;
  refreshMs?: number;
  waitForSync?: boolean;
}): Promise<RunningSnapshotRealizer> {
  return runRealizer<PoolSnapshot>({
    client: opts.client,
    resource: POOL_SNAPSHOTS,
    labelSelector: `${POOL_SNAPSHOT_LABELS.node}=${opts.nodeName}`,
    name: 'poolsnapshot',
    workers: opts.workers ?? 4,
    waitForSync: opts.waitForSync,
    reconciler: (informer) => new PoolSnapshotRealizer(opts.client, informer, opts.engine, opts.nodeName, opts.refreshMs),
  });
}

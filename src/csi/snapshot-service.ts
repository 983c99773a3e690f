/**
 * The CSI Controller's snapshot RPCs (issue 17). Like CreateVolume, CreateSnapshot cannot touch
 * disks: it records the snapshot as a PoolSnapshot on the source volume's node and waits, within
 * the call's deadline, until that node's daemon reports it taken — so the snapshot is cut while the
 * call runs, as the spec requires, and the response says ready_to_use. Snapshot IDs are derived from
 * the request name, so a retried call finds the snapshot it made.
 */
import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { KubeClient } from '../kube/client.js';
import { ApiError } from '../kube/api-error.js';
import { POOL_SNAPSHOTS } from '../crds/resource-types.js';
import { POOL_SNAPSHOT_FINALIZER, POOL_SNAPSHOT_LABELS, type PoolSnapshot } from '../crds/poolsnapshot.js';
import type { PoolVolume } from '../crds/poolvolume.js';
import { API_VERSION } from '../crds/meta.js';
import { MANAGED_BY } from '../crds/labels.js';
import type { Informer } from '../runtime/informer.js';
import { logger } from '../util/logger.js';
import { CsiError, invalidArgument, msUntilDeadline, notFound } from './grpc.js';
import { pageOf } from './pagination.js';

const log = logger('csi-snapshots');

/** How long a call without a deadline waits for the node daemon. */
const DEFAULT_WAIT_MS = 120_000;
/** Object names Stowage could have made: anything else is not ours and cannot exist. */
const OBJECT_NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/** The snapshot ID (= PoolSnapshot name) for a CreateSnapshot name: deterministic, DNS-safe, any input. */
export function snapshotIdFor(name: string): string {
  return `psnap-${createHash('sha256').update(name).digest('hex').slice(0, 40)}`;
}

/** What the snapshot service needs of the controller: its caches and how to wait for a volume. */
export interface SnapshotHost {
  readonly client: KubeClient;
  readonly fieldManager: string;
  readonly snapshots: Informer<PoolSnapshot>;
  /** A volume from the cache or this process's reservations. */
  volume(id: string): PoolVolume | undefined;
  /** The UID of a StoragePool, for the owner reference; undefined when the pool is not known. */
  poolUid(pool: string): string | undefined;
  /** Resolves with the volume once Ready, within the call's deadline. */
  waitVolumeReady(pv: PoolVolume, call: grpc.ServerUnaryCall<any, any>): Promise<PoolVolume>;
}

type Check = (ps: PoolSnapshot | undefined, deleted: boolean) => boolean;

export class SnapshotService {
  private readonly waiters = new Set<{ id: string; check: Check; resolve: () => void }>();

  constructor(private readonly host: SnapshotHost) {
    const notify = (ps: PoolSnapshot, gone: boolean): void => {
      for (const w of [...this.waiters]) {
        if (w.id === ps.metadata.name && w.check(gone ? undefined : ps, gone)) {
          this.waiters.delete(w);
          w.resolve();
        }
      }
    };
    host.snapshots.addHandler({
      added: (ps) => notify(ps, false),
      updated: (_old, ps) => notify(ps, false),
      deleted: (ps) => notify(ps, true),
    });
  }

  async createSnapshot(req: any, call: grpc.ServerUnaryCall<any, any>): Promise<unknown> {
    const name: string = req.name ?? '';
    const sourceId: string = req.source_volume_id ?? '';
    if (!name) throw invalidArgument('name is required');
    if (!sourceId) throw invalidArgument('source_volume_id is required');
    const id = snapshotIdFor(name);
    let ps = this.host.snapshots.get(id);
    if (ps && ps.spec.sourceVolume !== sourceId) {
      throw new CsiError(
        grpc.status.ALREADY_EXISTS,
        `a snapshot named ${name} already exists of volume ${ps.spec.sourceVolume}, not ${sourceId}; use another name`,
      );
    }
    if (!ps) {
      const source = this.host.volume(sourceId);
      if (!source || source.metadata.deletionTimestamp) throw notFound(`source volume ${sourceId} does not exist`);
      const ready = await this.host.waitVolumeReady(source, call);
      ps = await this.create(id, name, ready, call);
    }
    return { snapshot: snapshotOf(await this.waitTaken(ps, call)) };
  }

  private async create(id: string, name: string, source: PoolVolume, call: grpc.ServerUnaryCall<any, any>): Promise<PoolSnapshot> {
    const { pool, node, volumeMode, size } = source.spec;
    const poolUid = this.host.poolUid(pool);
    const draft: PoolSnapshot = {
      apiVersion: API_VERSION,
      kind: 'PoolSnapshot',
      metadata: {
        name: id,
        labels: {
          [POOL_SNAPSHOT_LABELS.node]: node,
          [POOL_SNAPSHOT_LABELS.pool]: pool,
          [POOL_SNAPSHOT_LABELS.sourceVolume]: source.metadata.name,
          ...MANAGED_BY,
        },
        finalizers: [POOL_SNAPSHOT_FINALIZER],
        // The pool, not the volume, owns it: a snapshot outlives its volume, and the pool's deletion waits for it.
        ...(poolUid ? { ownerReferences: [{ apiVersion: API_VERSION, kind: 'StoragePool', name: pool, uid: poolUid }] } : {}),
      },
      spec: { pool, node, sourceVolume: source.metadata.name, volumeMode, size, requestName: name },
    };
    try {
      const made = await this.host.client.create<PoolSnapshot>(POOL_SNAPSHOTS, draft, { fieldManager: this.host.fieldManager });
      log.info({ snapshot: id, name, volume: source.metadata.name, pool, node }, 'recorded a snapshot');
      return made;
    } catch (err) {
      if (!ApiError.isAlreadyExists(err)) throw err;
      // Raced in (a retry, another replica): the cache will have it in a moment.
      await this.waitFor(id, (ps, deleted) => deleted || ps !== undefined, call, 'known');
      const raced = this.host.snapshots.get(id);
      if (!raced) throw new CsiError(grpc.status.ABORTED, `snapshot ${id} was created by another caller and is gone again; retry`);
      if (raced.spec.sourceVolume !== source.metadata.name) {
        throw new CsiError(
          grpc.status.ALREADY_EXISTS,
          `a snapshot named ${name} already exists of volume ${raced.spec.sourceVolume}; use another name`,
        );
      }
      return raced;
    }
  }

  /** Waits until the node daemon has taken the snapshot (or failed to). */
  private async waitTaken(ps: PoolSnapshot, call: grpc.ServerUnaryCall<any, any>): Promise<PoolSnapshot> {
    const id = ps.metadata.name;
    await this.waitFor(id, (v, deleted) => deleted || v?.status?.phase === 'Ready' || v?.status?.phase === 'Failed', call, 'taken');
    const now = this.host.snapshots.get(id);
    if (!now) throw new CsiError(grpc.status.ABORTED, `snapshot ${id} was deleted while it was being taken`);
    if (now.status?.phase === 'Failed') {
      const why = now.status.conditions?.find((c) => c.type === 'Ready')?.message ?? 'the node daemon could not take it';
      throw new CsiError(grpc.status.INTERNAL, `snapshot ${id} failed on node ${now.spec.node}: ${why}; delete it and take a new one`);
    }
    return now;
  }

  async deleteSnapshot(req: any, call: grpc.ServerUnaryCall<any, any>): Promise<unknown> {
    const id: string = req.snapshot_id ?? '';
    if (!id) throw invalidArgument('snapshot_id is required');
    if (!OBJECT_NAME.test(id) || id.length > 253) return {}; // never ours: nothing to delete
    const existed = await this.host.client.delete(POOL_SNAPSHOTS, id);
    if (existed) {
      log.info({ snapshot: id }, 'deleting a snapshot');
      // The data is gone (and its space free) only once the node daemon removed it and its finalizer.
      await this.waitFor(id, (ps) => ps === undefined, call, 'deleted');
    }
    return {};
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- async: its throws become rejections the gRPC handler answers
  async listSnapshots(req: any): Promise<unknown> {
    // The spec: a snapshot being taken but not cut yet is not listed; nor is one being deleted.
    let all = this.host.snapshots.list().filter((ps) => !ps.metadata.deletionTimestamp && ps.status?.phase === 'Ready');
    if (req.snapshot_id) all = all.filter((ps) => ps.metadata.name === req.snapshot_id);
    if (req.source_volume_id) all = all.filter((ps) => ps.spec.sourceVolume === req.source_volume_id);
    all.sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
    const page = pageOf(all, req);
    return { entries: page.entries.map((ps) => ({ snapshot: snapshotOf(ps) })), next_token: page.nextToken };
  }

  /** A Ready snapshot for CreateVolume's content source; NOT_FOUND when there is none. */
  restorable(id: string): PoolSnapshot {
    const ps = this.host.snapshots.get(id);
    if (!ps || ps.metadata.deletionTimestamp) throw notFound(`snapshot ${id} does not exist`);
    if (ps.status?.phase !== 'Ready')
      throw new CsiError(grpc.status.UNAVAILABLE, `snapshot ${id} is not taken yet (phase ${ps.status?.phase ?? 'Pending'}); retry`);
    return ps;
  }

  private async waitFor(id: string, check: Check, call: grpc.ServerUnaryCall<any, any>, what: string): Promise<void> {
    if (check(this.host.snapshots.get(id), false)) return;
    const left = msUntilDeadline(call);
    const budget = left === Infinity ? DEFAULT_WAIT_MS : Math.max(0, left - 250);
    await new Promise<void>((resolve, reject) => {
      const waiter = {
        id,
        check,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(
          new CsiError(grpc.status.DEADLINE_EXCEEDED, `snapshot ${id} is not ${what} yet; the node daemon may be slow or down — retry`),
        );
      }, budget);
      this.waiters.add(waiter);
      if (check(this.host.snapshots.get(id), false)) {
        this.waiters.delete(waiter);
        waiter.resolve();
      }
    });
  }
}

/** The CSI Snapshot message for a PoolSnapshot. */
export function snapshotOf(ps: PoolSnapshot): unknown {
  const created = Date.parse(ps.status?.creationTime ?? ps.metadata.creationTimestamp ?? '') || Date.now();
  return {
    size_bytes: ps.spec.size,
    snapshot_id: ps.metadata.name,
    source_volume_id: ps.spec.sourceVolume,
    creation_time: { seconds: String(Math.floor(created / 1000)), nanos: (created % 1000) * 1_000_000 },
    ready_to_use: ps.status?.phase === 'Ready',
  };
}

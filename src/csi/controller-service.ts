/**
 * The CSI Controller service (`stowage csi-controller`). It cannot touch disks: CreateVolume picks a
 * node with room, records the volume as a PoolVolume and waits, within the call's deadline, until
 * that node's daemon reports it Ready. Capacity is reservation-based (capacity.ts) and every
 * reservation on a node happens under that node's lock, against the informer cache plus the
 * reservations this process made that the cache has not seen yet — so parallel calls can never
 * overcommit a node. One controller runs at a time (leader election of the provisioner sidecar).
 */
import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { KubeClient } from '../kube/client.js';
import { ApiError } from '../kube/api-error.js';
import { NODE_DISKS, POOL_SNAPSHOTS, POOL_VOLUMES, STORAGE_POOLS } from '../crds/resource-types.js';
import type { NodeDisk } from '../crds/nodedisk.js';
import type { StoragePool } from '../crds/storagepool.js';
import { POOL_VOLUME_FINALIZER, POOL_VOLUME_LABELS, type PoolVolume, type PoolVolumeSource } from '../crds/poolvolume.js';
import type { PoolSnapshot } from '../crds/poolsnapshot.js';
import { API_VERSION } from '../crds/meta.js';
import { Informer } from '../runtime/informer.js';
import { tryParseBytes } from '../util/quantity.js';
import { logger } from '../util/logger.js';
import { DEFAULT_METADATA_RESERVE_PERCENT, nodeCapacity, preparedDisksByNode, type NodeCapacity } from '../crds/capacity.js';
import { requireVolumeMode, unsupportedReason, volumeModeOf, type VolumeCapability } from './capabilities.js';
import {
  CsiError,
  csiV1,
  invalidArgument,
  notFound,
  serviceDefinition,
  unaryHandlers,
  type CallObserver,
  type GrpcService,
} from './grpc.js';
import { pageOf } from './pagination.js';
import { TOPOLOGY_KEY } from './identity.js';
import { candidateNodes } from './placement.js';
import { SnapshotService } from './snapshot-service.js';
import { VolumeWaits } from './volume-waits.js';
import { resolveSource, sizeFromSource, sourceText, type ResolvedSource } from './content-source.js';
import { MANAGED_BY } from '../crds/labels.js';
import { faultPoint } from '../util/fault-point.js';

const log = logger('csi-controller');

export const CSI_FIELD_MANAGER = 'stowage-csi';
const MiB = 1n << 20n;
/** Size of a volume whose request names none. */
export const DEFAULT_VOLUME_BYTES = 1n << 30n;
/** Longest CreateVolume name (PoolVolume spec.requestName's maxLength). */
const MAX_REQUEST_NAME = 1024;

/** The volume ID (= PoolVolume name) for a CreateVolume name: deterministic, DNS-safe, any input. */
export function volumeIdFor(name: string): string {
  return `pvol-${createHash('sha256').update(name).digest('hex').slice(0, 40)}`;
}

export interface ControllerServiceOptions {
  readonly client: KubeClient;
  /** Share of each node's mirrored space kept for btrfs metadata (default 10). */
  readonly metadataReservePercent?: number;
  /** Told about every answered call (CsiMetrics.observe). */
  readonly observe?: CallObserver;
}

/** Someone waiting for a PoolVolume to reach a state; `deleted` is true for the watch's DELETED event. */

/** Capabilities the Controller service advertises; what it leaves out and why is in docs/features.md (Snapshots). */
export const CONTROLLER_CAPABILITIES = [
  'CREATE_DELETE_VOLUME',
  'LIST_VOLUMES',
  'GET_CAPACITY',
  'EXPAND_VOLUME',
  'CREATE_DELETE_SNAPSHOT',
  'LIST_SNAPSHOTS',
  'CLONE_VOLUME',
] as const;

export class CsiController {
  readonly pools: Informer<StoragePool>;
  readonly disks: Informer<NodeDisk>;
  readonly volumes: Informer<PoolVolume>;
  readonly snapshots: Informer<PoolSnapshot>;
  private readonly snapshotService: SnapshotService;
  private readonly reserved = new Map<string, PoolVolume>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly waits: VolumeWaits;
  private readonly reservePercent: number;

  constructor(private readonly options: ControllerServiceOptions) {
    const client = options.client;
    this.pools = new Informer<StoragePool>({ client, resource: STORAGE_POOLS });
    this.disks = new Informer<NodeDisk>({ client, resource: NODE_DISKS });
    this.volumes = new Informer<PoolVolume>({ client, resource: POOL_VOLUMES });
    this.snapshots = new Informer<PoolSnapshot>({ client, resource: POOL_SNAPSHOTS });
    this.snapshotService = new SnapshotService({
      client,
      fieldManager: CSI_FIELD_MANAGER,
      snapshots: this.snapshots,
      volume: (id) => this.volumes.get(id) ?? this.reserved.get(id),
      poolUid: (pool) => this.pools.get(pool)?.metadata.uid,
      waitVolumeReady: (pv, call) => this.waitReady(pv, BigInt(pv.spec.size), call),
    });
    this.reservePercent = options.metadataReservePercent ?? DEFAULT_METADATA_RESERVE_PERCENT;
    this.waits = new VolumeWaits((id) => this.volumes.get(id));
    const notify = (pv: PoolVolume, gone: boolean): void => {
      if (!gone) this.reserved.delete(pv.metadata.name);
      this.waits.notify(pv, gone);
    };
    this.volumes.addHandler({
      added: (pv) => notify(pv, false),
      updated: (_old, pv) => notify(pv, false),
      deleted: (pv) => {
        this.reserved.delete(pv.metadata.name);
        notify(pv, true);
      },
    });
  }

  async start(signal?: AbortSignal): Promise<void> {
    for (const i of this.informers()) i.start();
    await Promise.all(this.informers().map((i) => i.waitForSync(signal)));
  }

  async stop(): Promise<void> {
    await Promise.all(this.informers().map((i) => i.stop()));
  }

  ready(): boolean {
    return this.informers().every((i) => i.hasSynced());
  }

  private informers(): Informer<any>[] {
    return [this.pools, this.disks, this.volumes, this.snapshots];
  }

  service(): GrpcService {
    return {
      definition: serviceDefinition(csiV1(), 'Controller'),
      implementation: unaryHandlers(
        'Controller',
        {
          CreateVolume: (req, call) => this.createVolume(req, call),
          DeleteVolume: (req, call) => this.deleteVolume(req, call),
          ValidateVolumeCapabilities: (req) => this.validateVolumeCapabilities(req),
          ListVolumes: (req) => this.listVolumes(req),
          GetCapacity: (req) => this.getCapacity(req),
          ControllerGetCapabilities: () => Promise.resolve({ capabilities: CONTROLLER_CAPABILITIES.map((type) => ({ rpc: { type } })) }),
          CreateSnapshot: (req, call) => this.snapshotService.createSnapshot(req, call),
          DeleteSnapshot: (req, call) => this.snapshotService.deleteSnapshot(req, call),
          ListSnapshots: (req) => this.snapshotService.listSnapshots(req),
          ControllerExpandVolume: (req, call) => this.expandVolume(req, call),
        },
        this.options.observe,
      ),
    };
  }

  // ---- capacity --------------------------------------------------------------------------------

  private volumesOn(pool: string, node: string): PoolVolume[] {
    const byName = new Map<string, PoolVolume>();
    for (const pv of [...this.volumes.list(), ...this.reserved.values()]) {
      if (pv.spec.pool === pool && pv.spec.node === node) byName.set(pv.metadata.name, pv);
    }
    return [...byName.values()];
  }

  /** Capacity of `pool` on every node that has prepared disks of it. */
  capacities(pool: string): NodeCapacity[] {
    const sp = this.pools.get(pool);
    if (!sp || sp.spec.mode !== 'Dynamic') return [];
    const copies = sp.spec.replicated?.size ?? 1;
    const snapshots = this.snapshots.list().filter((s) => s.spec.pool === pool);
    return [...preparedDisksByNode(pool, this.disks.list())].map(([node, disks]) =>
      nodeCapacity({
        node,
        disks,
        volumes: this.volumesOn(pool, node),
        snapshots: snapshots.filter((s) => s.spec.node === node),
        copies,
        reservePercent: this.reservePercent,
      }),
    );
  }

  /** Runs `fn` with node `node` locked: reservations on one node happen one at a time. */
  private async withNodeLock<T>(node: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(node) ?? Promise.resolve();
    const current = previous.then(fn, fn);
    // The next holder waits for this one to end, not to succeed; this caller gets the rejection from `current`.
    const tail = current.catch(() => undefined);
    this.locks.set(node, tail);
    try {
      return await current;
    } finally {
      if (this.locks.get(node) === tail) this.locks.delete(node);
    }
  }

  // ---- RPCs ------------------------------------------------------------------------------------

  private async createVolume(req: any, call: grpc.ServerUnaryCall<any, any>): Promise<unknown> {
    const name: string = req.name ?? '';
    if (!name) throw invalidArgument('name is required');
    // The name is kept as the PoolVolume's spec.requestName (at most 1024 characters).
    if (
      name.length > MAX_REQUEST_NAME ||
      /[\u0000-\u001f\u007f]/.test(name) /* eslint-disable-line no-control-regex -- control characters are what this refuses */
    ) {
      throw invalidArgument(
        `name must be at most ${MAX_REQUEST_NAME} characters without control characters (got ${name.length} characters)`,
      );
    }
    const mode = requireVolumeMode(req.volume_capabilities);
    const pool: string | undefined = req.parameters?.pool;
    if (!pool) throw invalidArgument('parameters.pool is required: the StorageClass of a Dynamic pool sets it');
    const noDataCow = booleanParameter(req.parameters?.nodatacow, 'nodatacow');
    const limit = positive(req.capacity_range?.limit_bytes);
    const required = positive(req.capacity_range?.required_bytes) ?? 0n;
    const source = req.volume_content_source
      ? resolveSource(req.volume_content_source, pool, mode, {
          snapshot: (id) => this.snapshotService.restorable(id),
          volume: (id) => this.volumes.get(id) ?? this.reserved.get(id),
        })
      : undefined;
    const size = source
      ? sizeFromSource(
          limit,
          positive(req.capacity_range?.required_bytes) !== undefined ? requestedSize(req.capacity_range) : undefined,
          source,
        )
      : requestedSize(req.capacity_range);
    const id = volumeIdFor(name);

    // The informer cache is synced before the service answers, so a name it does not know is new: no
    // GET first. One that raced in anyway (another controller replica) shows as AlreadyExists below.
    let pv = this.volumes.get(id) ?? this.reserved.get(id);
    if (!pv)
      pv =
        (await this.reserve(id, name, pool, mode, size, req.accessibility_requirements, noDataCow, source)) ?? (await this.raced(id, call));
    this.checkCompatible(pv, name, pool, mode, required, limit, noDataCow, source?.spec);
    await faultPoint('dynamic/create-volume'); // the PoolVolume exists, not answered yet
    const ready = await this.waitReady(pv, BigInt(pv.spec.size), call);
    return { volume: this.volumeOf(ready) };
  }

  private checkCompatible(
    pv: PoolVolume,
    name: string,
    pool: string,
    mode: string,
    required: bigint,
    limit: bigint | undefined,
    noDataCow: boolean,
    source?: PoolVolumeSource,
  ): void {
    const size = BigInt(pv.spec.size);
    const problems = [
      pv.spec.requestName !== name ? `volume ID ${pv.metadata.name} belongs to request ${pv.spec.requestName}` : '',
      pv.spec.pool !== pool ? `it is in pool ${pv.spec.pool}, not ${pool}` : '',
      pv.spec.volumeMode !== mode ? `it is a ${pv.spec.volumeMode} volume, not ${mode}` : '',
      size < required ? `it has ${size} bytes, less than the required ${required}` : '',
      limit !== undefined && size > limit ? `it has ${size} bytes, more than the limit ${limit}` : '',
      (pv.spec.noDataCow === true) !== noDataCow ? `it has nodatacow ${pv.spec.noDataCow === true}, not ${noDataCow}` : '',
      sourceText(pv.spec.source) !== sourceText(source)
        ? `its content source is ${sourceText(pv.spec.source)}, not ${sourceText(source)}`
        : '',
    ].filter(Boolean);
    if (problems.length)
      throw new CsiError(grpc.status.ALREADY_EXISTS, `a volume named ${name} already exists and is incompatible: ${problems.join('; ')}`);
  }

  /** Reserves room on a node and creates the PoolVolume; undefined when another caller created it first. */
  private async reserve(
    id: string,
    name: string,
    pool: string,
    mode: 'Filesystem' | 'Block',
    size: bigint,
    topology: any,
    noDataCow: boolean,
    source?: ResolvedSource,
  ): Promise<PoolVolume | undefined> {
    const sp = this.pools.get(pool);
    if (!sp) throw invalidArgument(`StoragePool ${pool} does not exist`);
    if (sp.spec.mode !== 'Dynamic')
      throw invalidArgument(`StoragePool ${pool} has mode ${sp.spec.mode}; the CSI driver serves Dynamic pools only`);
    let nodes = candidateNodes(this.capacities(pool), topology);
    if (source) {
      // A restore or clone is made from data on the source's node, so it can only live there.
      if (!nodes.includes(source.node)) {
        throw new CsiError(
          grpc.status.RESOURCE_EXHAUSTED,
          `${source.what} lives on node ${source.node}, which the topology requirement excludes (or which has no prepared disks of pool ${pool}); a restore or clone can only be placed there`,
        );
      }
      nodes = [source.node];
    }
    if (nodes.length === 0)
      throw new CsiError(grpc.status.RESOURCE_EXHAUSTED, `no node with prepared disks of pool ${pool} matches the topology requirement`);
    for (const node of nodes) {
      // Only the capacity check and the in-memory reservation run under the node's lock; the API
      // create runs outside it, so parallel calls for one node do not queue behind each other's round trips.
      // eslint-disable-next-line @typescript-eslint/require-await -- withNodeLock takes a promise; the body is synchronous on purpose (no await while holding the lock)
      const draft = await this.withNodeLock(node, async () => {
        const cap = this.capacities(pool).find((c) => c.node === node);
        if (!cap || cap.available < size) return undefined;
        const pv: PoolVolume = {
          apiVersion: API_VERSION,
          kind: 'PoolVolume',
          metadata: {
            name: id,
            labels: { [POOL_VOLUME_LABELS.node]: node, [POOL_VOLUME_LABELS.pool]: pool, ...MANAGED_BY },
            finalizers: [POOL_VOLUME_FINALIZER],
          },
          spec: {
            pool,
            node,
            size: size.toString(),
            volumeMode: mode,
            requestName: name,
            ...(noDataCow ? { noDataCow } : {}),
            ...(source ? { source: source.spec } : {}),
          },
        };
        this.reserved.set(id, pv);
        return pv;
      });
      if (!draft) continue;
      try {
        const made = await this.options.client.create<PoolVolume>(POOL_VOLUMES, draft, { fieldManager: CSI_FIELD_MANAGER });
        if (this.reserved.get(id) === draft) this.reserved.set(id, made);
        log.info({ volume: id, name, pool, node, size: size.toString() }, 'reserved a volume');
        return made;
      } catch (err) {
        if (this.reserved.get(id) === draft) this.reserved.delete(id);
        // The same name raced in (a retry, another replica): the existing object is the answer, if
        // compatible; the caller takes it from the cache (the role grants no GET).
        if (ApiError.isAlreadyExists(err)) return undefined;
        throw err;
      }
    }
    throw new CsiError(grpc.status.RESOURCE_EXHAUSTED, `no node has ${size} bytes free in pool ${pool} (checked ${nodes.join(', ')})`);
  }

  /** A volume another caller created meanwhile: the API server has it, the cache will in a moment. */
  private async raced(id: string, call: grpc.ServerUnaryCall<any, any>): Promise<PoolVolume> {
    await this.waits.until(id, (v, deleted) => deleted || v !== undefined, call, 'known');
    const pv = this.volumes.get(id);
    if (!pv) throw new CsiError(grpc.status.ABORTED, `volume ${id} was created by another caller and is gone again; retry`);
    return pv;
  }

  private async waitReady(pv: PoolVolume, size: bigint, call: grpc.ServerUnaryCall<any, any>): Promise<PoolVolume> {
    const id = pv.metadata.name;
    let failed: string | undefined;
    // Not in the cache yet is not "gone": a fresh reservation reaches the informer a moment later.
    await this.waits.until(
      id,
      (v, deleted) => {
        if (deleted) return true;
        if (!v) return false;
        if (v.status?.phase === 'Failed') {
          failed = v.status.conditions?.find((c) => c.type === 'Ready')?.message ?? 'the node daemon could not realize it';
          return true;
        }
        return v.status?.phase === 'Ready' && (tryParseBytes(v.status.capacity) ?? 0n) >= size;
      },
      call,
      'ready',
    );
    const now = this.volumes.get(id);
    if (!now) throw new CsiError(grpc.status.ABORTED, `volume ${id} was deleted while it was being created`);
    if (failed) throw new CsiError(grpc.status.INTERNAL, `volume ${id} failed on node ${now.spec.node}: ${failed}`);
    return now;
  }

  private volumeOf(pv: PoolVolume): unknown {
    return {
      capacity_bytes: pv.spec.size,
      volume_id: pv.metadata.name,
      volume_context: {
        pool: pv.spec.pool,
        node: pv.spec.node,
        volumeMode: pv.spec.volumeMode,
        ...(pv.spec.noDataCow ? { nodatacow: 'true' } : {}),
      },
      accessible_topology: [{ segments: { [TOPOLOGY_KEY]: pv.spec.node } }],
      ...(pv.spec.source?.snapshot ? { content_source: { snapshot: { snapshot_id: pv.spec.source.snapshot } } } : {}),
      ...(pv.spec.source?.volume ? { content_source: { volume: { volume_id: pv.spec.source.volume } } } : {}),
    };
  }

  private async deleteVolume(req: any, call: grpc.ServerUnaryCall<any, any>): Promise<unknown> {
    const id: string = req.volume_id ?? '';
    if (!id) throw invalidArgument('volume_id is required');
    if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(id) || id.length > 253) return {}; // never ours: nothing to delete
    const existed = await this.options.client.delete(POOL_VOLUMES, id);
    this.reserved.delete(id);
    if (existed) {
      log.info({ volume: id }, 'deleting a volume');
      await faultPoint('dynamic/delete'); // deletion requested, not answered yet
      await this.waits.until(id, (pv) => pv === undefined, call, 'deleted');
    }
    return {};
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- async: its throws become rejections the gRPC handler answers
  private async findVolume(id: string): Promise<PoolVolume> {
    if (!id) throw invalidArgument('volume_id is required');
    const pv = this.volumes.get(id) ?? this.reserved.get(id);
    if (!pv) throw notFound(`volume ${id} does not exist`);
    return pv;
  }

  private async validateVolumeCapabilities(req: any): Promise<unknown> {
    if (!req.volume_id) throw invalidArgument('volume_id is required');
    const caps: VolumeCapability[] = req.volume_capabilities ?? [];
    if (caps.length === 0) throw invalidArgument('volume_capabilities is required');
    const pv = await this.findVolume(req.volume_id);
    for (const cap of caps) {
      const reason =
        unsupportedReason(cap) ??
        (volumeModeOf(cap) !== pv.spec.volumeMode
          ? `the volume is ${pv.spec.volumeMode}, the capability asks for ${volumeModeOf(cap)}`
          : undefined);
      if (reason) return { message: reason };
    }
    return {
      confirmed: {
        volume_context: req.volume_context ?? {},
        volume_capabilities: caps,
        parameters: req.parameters ?? {},
        mutable_parameters: {},
      },
    };
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- async: its throws become rejections the gRPC handler answers
  private async listVolumes(req: any): Promise<unknown> {
    const all = this.volumes
      .list()
      .filter((pv) => !pv.metadata.deletionTimestamp)
      .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
    const page = pageOf(all, req);
    return { entries: page.entries.map((pv) => ({ volume: this.volumeOf(pv) })), next_token: page.nextToken };
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- async: its throws become rejections the gRPC handler answers
  private async getCapacity(req: any): Promise<unknown> {
    const pool: string | undefined = req.parameters?.pool;
    const caps: VolumeCapability[] = req.volume_capabilities ?? [];
    if (!pool || caps.some((c) => unsupportedReason(c))) return { available_capacity: '0' };
    const node: string | undefined = req.accessible_topology?.segments?.[TOPOLOGY_KEY];
    const list = this.capacities(pool).filter((c) => node === undefined || c.node === node);
    const total = list.reduce((s, c) => s + c.available, 0n);
    const largest = list.reduce((m, c) => (c.available > m ? c.available : m), 0n);
    return {
      available_capacity: total.toString(),
      maximum_volume_size: { value: largest.toString() },
      minimum_volume_size: { value: MiB.toString() },
    };
  }

  private async expandVolume(req: any, call: grpc.ServerUnaryCall<any, any>): Promise<unknown> {
    if (!req.volume_id) throw invalidArgument('volume_id is required');
    if (!req.capacity_range) throw invalidArgument('capacity_range is required');
    const pv = await this.findVolume(req.volume_id);
    const wanted = requestedSize(req.capacity_range);
    const current = BigInt(pv.spec.size);
    const nodeExpansion = pv.spec.volumeMode === 'Block';
    if (wanted > current) {
      await this.withNodeLock(pv.spec.node, async () => {
        const cap = this.capacities(pv.spec.pool).find((c) => c.node === pv.spec.node);
        if (!cap || cap.available < wanted - current) {
          throw new CsiError(
            grpc.status.RESOURCE_EXHAUSTED,
            `node ${pv.spec.node} has ${cap?.available ?? 0n} bytes free in pool ${pv.spec.pool}; growing ${pv.metadata.name} by ${wanted - current} does not fit`,
          );
        }
        const updated = await this.options.client.mergePatch<PoolVolume>(
          POOL_VOLUMES,
          pv.metadata.name,
          { spec: { size: wanted.toString() } },
          { fieldManager: CSI_FIELD_MANAGER },
        );
        this.reserved.set(pv.metadata.name, updated);
      });
    }
    const size = wanted > current ? wanted : current;
    await faultPoint('dynamic/expand'); // the new size is asked of the node, not answered yet
    await this.waitReady(pv, size, call);
    return { capacity_bytes: size.toString(), node_expansion_required: nodeExpansion };
  }
}

function booleanParameter(value: string | undefined, name: string): boolean {
  if (value === undefined || value === '' || value === 'false') return false;
  if (value === 'true') return true;
  throw invalidArgument(`parameters.${name} must be "true" or "false", not ${JSON.stringify(value)}`);
}

function positive(value: unknown): bigint | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  // eslint-disable-next-line @typescript-eslint/no-base-to-string -- proto-loader gives int64 as a string or a number; BigInt rejects anything else with a clear error
  const n = BigInt(String(value));
  if (n < 0n) throw invalidArgument('capacity_range bytes must not be negative');
  return n === 0n ? undefined : n;
}

/** The size to make: required_bytes rounded up to MiB, within limit_bytes; the default when neither is set. */
export function requestedSize(range: any): bigint {
  const required = positive(range?.required_bytes);
  const limit = positive(range?.limit_bytes);
  if (required !== undefined && limit !== undefined && limit < required) {
    throw new CsiError(grpc.status.OUT_OF_RANGE, `limit_bytes ${limit} is smaller than required_bytes ${required}`);
  }
  let size = required !== undefined ? ((required + MiB - 1n) / MiB) * MiB : DEFAULT_VOLUME_BYTES;
  if (limit !== undefined && size > limit) size = required !== undefined && limit >= required ? limit : limit;
  if (size < MiB) throw new CsiError(grpc.status.OUT_OF_RANGE, `Stowage volumes are at least 1 MiB; limit_bytes ${limit} is smaller`);
  return size;
}

/**
 * The CSI Node service, served by the node daemon (`stowage node`) next to the node agent. Stage
 * bind-mounts the volume's subvolume (or binds the loop device of a Block volume) to the staging
 * path; publish binds that into the pod's target path with the requested flags. Every call checks
 * the kernel's mount table instead of remembering anything, so all of them are idempotent and right
 * after a restart of the daemon.
 */
import { lstat, mkdir, realpath, rm, rmdir, stat, statfs, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { KubeClient } from '../kube/client.js';
import { POOL_VOLUMES } from '../crds/resource-types.js';
import type { PoolVolume } from '../crds/poolvolume.js';
import { DNS_SUBDOMAIN_PATTERN } from '../crds/meta.js';
import type { VolumeMode } from '../crds/storagepool.js';
import { run } from '../host/command.js';
import { mountAt, mountTable } from '../host/mounts.js';
import { loopDevicesOf } from '../host/loop-devices.js';
import { tryParseBytes } from '../util/quantity.js';
import { logger } from '../util/logger.js';
import { errorMessage, ifNotFound, isNotFound } from '../util/errors.js';
import {
  CsiError,
  csiV1,
  invalidArgument,
  notFound,
  serveOnSocket,
  serviceDefinition,
  unaryHandlers,
  type CallObserver,
  type GrpcService,
  type SocketServer,
} from './grpc.js';
import { identityService, TOPOLOGY_KEY } from './identity.js';
import { unsupportedReason, volumeModeOf } from './capabilities.js';
import { startRegistrationServer } from './registration.js';
import { faultPoint } from '../util/fault-point.js';

const log = logger('csi-node');

/** Name of the device node a staged Block volume gets inside its staging directory. */
const STAGED_DEVICE = 'device';

/**
 * What the Node service needs from the node's volume engine (the btrfs engine in src/node/engine/
 * implements it). Declared here, not imported, so the CSI services depend on no role: the node
 * daemon hands its engine in.
 */
export interface NodeVolumeEngine {
  /** Where the pool's filesystem is mounted on this node, if it is. */
  mountedPool(pool: string): Promise<string | undefined>;
  health(pool: string): Promise<{ degraded: boolean; message: string; reason?: string }>;
  volumeUsage(pool: string, name: string, mode: VolumeMode): Promise<{ path: string; usedBytes: bigint }>;
  /**
   * The volume's own subvolume (Filesystem) or file (Block) in the pool's mounted filesystem,
   * verified on disk by what it is, not by its name; throws saying what is wrong.
   */
  ownVolume(pool: string, name: string, mode: VolumeMode): Promise<{ path: string; identity: string }>;
}

export interface NodeServiceOptions {
  readonly nodeName: string;
  readonly engine: NodeVolumeEngine;
  readonly client: KubeClient;
  /** Told about every answered call (CsiMetrics.observe). */
  readonly observe?: CallObserver;
  /** kubelet's directory: staging and target paths must lie inside it. */
  readonly kubeletDir?: string;
  /**
   * Why the node daemon is not ready (the facts its /readyz serves: caches synced, first disk pass
   * done, sockets served), or undefined when it is; Probe answers `ready` from it. Absent: ready.
   */
  readonly notReady?: () => string | undefined;
}

// Any failure to stat reads as "not there": the callers then create the path, and that step reports a real error.
const exists = (path: string): Promise<boolean> =>
  stat(path).then(
    () => true,
    () => false,
  );
const VOLUME_ID = new RegExp(DNS_SUBDOMAIN_PATTERN);
/** Linux's limits on a path and on one name in it. */
const PATH_MAX = 4096;
const NAME_MAX = 255;

/**
 * Why `path` (a staging, target or volume path from kubelet) is not one kubelet could have made, or
 * undefined when it is fine: absolute, without `.` or `..` segments and, when kubelet's directory is
 * known, inside it, also after following symlinks. Every mkdir, mount, unmount and delete of the
 * Node service happens at such a path, so a hostile or broken request cannot reach anything else.
 */
export async function unsafePathReason(path: string, kubeletDir?: string): Promise<string | undefined> {
  if (!isAbsolute(path) || path.includes('\0')) return 'is not an absolute path';
  if (path.split('/').some((seg) => seg === '.' || seg === '..')) return "contains '.' or '..' segments";
  if (path.length >= PATH_MAX || path.split('/').some((seg) => Buffer.byteLength(seg) > NAME_MAX))
    return `is longer than Linux allows (${PATH_MAX} bytes, ${NAME_MAX} per name)`;
  if (!kubeletDir) return undefined;
  const base = kubeletDir.replace(/\/+$/, '');
  if (!path.startsWith(`${base}/`)) return `is outside kubelet's directory ${base}`;
  // The deepest part that exists must still be inside kubelet's directory once symlinks are followed.
  let existing = path;
  // Any failure to lstat reads as "not there": the walk goes up to the deepest part that is.
  while (
    existing !== base &&
    !(await lstat(existing).then(
      () => true,
      () => false,
    ))
  )
    existing = dirname(existing);
  // A part that vanished between lstat and realpath: compare the path as written.
  const [real, realBase] = [await realpath(existing).catch(() => existing), await realpath(base).catch(() => base)];
  if (!real.startsWith(`${realBase}/`) && !(existing === base && real === realBase))
    return `leads out of kubelet's directory ${base} through a symlink (to ${real})`;
  if (existing === path && real === realBase) return `is kubelet's directory itself`;
  return undefined;
}

export class CsiNode {
  constructor(private readonly options: NodeServiceOptions) {}

  service(): GrpcService {
    return {
      definition: serviceDefinition(csiV1(), 'Node'),
      implementation: unaryHandlers(
        'Node',
        {
          NodeStageVolume: (req) => this.stage(req),
          NodeUnstageVolume: (req) => this.unstage(req),
          NodePublishVolume: (req) => this.publish(req),
          NodeUnpublishVolume: (req) => this.unpublish(req),
          NodeGetVolumeStats: (req) => this.volumeStats(req),
          NodeExpandVolume: (req) => this.expand(req),
          NodeGetCapabilities: () =>
            Promise.resolve({
              capabilities: ['STAGE_UNSTAGE_VOLUME', 'GET_VOLUME_STATS', 'EXPAND_VOLUME', 'VOLUME_CONDITION'].map((type) => ({
                rpc: { type },
              })),
            }),
          NodeGetInfo: () =>
            Promise.resolve({
              node_id: this.options.nodeName,
              max_volumes_per_node: '0',
              accessible_topology: { segments: { [TOPOLOGY_KEY]: this.options.nodeName } },
            }),
        },
        this.options.observe,
      ),
    };
  }

  /** INVALID_ARGUMENT unless `path` is one kubelet could have made (see unsafePathReason). */
  private async checkPath(field: string, path: string): Promise<void> {
    const reason = await unsafePathReason(path, this.options.kubeletDir);
    if (reason) throw invalidArgument(`${field} ${JSON.stringify(path)} ${reason}; kubelet passes absolute paths inside its own directory`);
  }

  /**
   * For the calls that only look a volume up by where it is published (NodeGetVolumeStats,
   * NodeExpandVolume): NOT_FOUND unless `path` is one kubelet could have made. Nothing of ours is
   * published at any other path, and that is the answer the CSI spec and csi-sanity expect
   * ("volume does not exist on the specified path"); the path is never looked at.
   */
  private async checkPublishedPath(field: string, path: string): Promise<void> {
    const reason = await unsafePathReason(path, this.options.kubeletDir);
    if (reason)
      throw notFound(
        `no volume is published at ${field} ${JSON.stringify(path)}: it ${reason}; kubelet passes absolute paths inside its own directory`,
      );
  }

  /** The PoolVolume, which must live on this node and be realized. */
  private async volume(id: string, mustBeReady = true): Promise<PoolVolume> {
    // Not a PoolVolume name (e.g. '..', which an API URL would resolve): never a volume of ours.
    if (id.length > 253 || !VOLUME_ID.test(id))
      throw notFound(`volume ${JSON.stringify(id)} does not exist: Stowage volume IDs are PoolVolume names`);
    const pv = await this.options.client.getIfExists<PoolVolume>(POOL_VOLUMES, id);
    if (!pv || pv.spec.node !== this.options.nodeName) throw notFound(`volume ${id} does not exist on node ${this.options.nodeName}`);
    if (mustBeReady && (pv.status?.phase !== 'Ready' || !pv.status.path)) {
      throw new CsiError(grpc.status.UNAVAILABLE, `volume ${id} is not ready on this node yet (phase ${pv.status?.phase ?? 'Pending'})`);
    }
    return pv;
  }

  /**
   * The volume's data path: its own subvolume or file, only while its pool filesystem is really
   * mounted (never a bare directory of the root disk), and only when the recorded status.path
   * resolves to exactly that. The verified path is what gets mounted, never status.path itself.
   * FAILED_PRECONDITION when the record and the disk disagree: the request is fine, the volume's
   * state is not, and no retry of the same request can succeed until it is put right.
   */
  private async dataPath(pv: PoolVolume): Promise<string> {
    const { pool } = pv.spec;
    const name = pv.metadata.name;
    const mnt = await this.options.engine.mountedPool(pool);
    if (!mnt)
      throw new CsiError(
        grpc.status.UNAVAILABLE,
        `pool ${pool}'s filesystem is not mounted on this node; the node daemon is still preparing it`,
      );
    const own = await this.options.engine.ownVolume(pool, name, pv.spec.volumeMode).catch((err: unknown) => {
      throw new CsiError(
        grpc.status.FAILED_PRECONDITION,
        `volume ${name} in pool ${pool}: ${errorMessage(err)}; refusing to mount anything for it`,
      );
    });
    const recorded = pv.status?.path ?? '';
    // Any failure to resolve the recorded path is a refusal like any other mismatch (nothing gets
    // mounted); the refusal says why it did not resolve, not just "does not exist".
    let unresolved = '';
    const resolved = await realpath(recorded).catch((err: unknown) => {
      unresolved = isNotFound(err) ? 'does not exist' : `cannot be resolved (${errorMessage(err)})`;
      return undefined;
    });
    if (resolved !== own.path) {
      // Only picks the wording of the refusal below: the mount point as given words it well enough.
      const realMnt = await realpath(mnt).catch(() => mnt);
      const where =
        resolved === undefined
          ? unresolved
          : resolved !== realMnt && !resolved.startsWith(`${realMnt}/`)
            ? `resolves to ${resolved}, outside pool ${pool}'s filesystem (${mnt})`
            : `resolves to ${resolved}, which is not the volume's own ${own.identity}`;
      log.warn({ volume: name, pool, recorded, resolved, own: own.path }, "refused: status.path is not the volume's own data");
      throw new CsiError(
        grpc.status.FAILED_PRECONDITION,
        `volume ${name}: its status.path ${JSON.stringify(recorded)} ${where}; refusing to mount it. ` +
          `The node daemon records the path there and writes the true one back on its next refresh of the volume; if this persists, something else edits PoolVolume status`,
      );
    }
    return own.path;
  }

  private checkCapability(cap: any, pv?: PoolVolume): void {
    if (!cap) throw invalidArgument('volume_capability is required');
    const reason = unsupportedReason(cap);
    if (reason) throw invalidArgument(reason);
    if (pv && volumeModeOf(cap) !== pv.spec.volumeMode)
      throw invalidArgument(`volume ${pv.metadata.name} is ${pv.spec.volumeMode}, the capability asks for ${volumeModeOf(cap)}`);
  }

  private async stage(req: any): Promise<unknown> {
    if (!req.volume_id) throw invalidArgument('volume_id is required');
    if (!req.staging_target_path) throw invalidArgument('staging_target_path is required');
    await this.checkPath('staging_target_path', req.staging_target_path);
    this.checkCapability(req.volume_capability);
    const pv = await this.volume(req.volume_id);
    this.checkCapability(req.volume_capability, pv);
    const source = await this.dataPath(pv);
    const staging: string = req.staging_target_path;
    await mkdir(staging, { recursive: true });
    if (pv.spec.volumeMode === 'Filesystem') {
      const current = await mountAt(staging);
      if (current) {
        if (await this.isMountOf(staging, source)) return {};
        throw new CsiError(grpc.status.ALREADY_EXISTS, `${staging} already has something else mounted (${current.source} ${current.root})`);
      }
      await run('mount', ['--bind', source, staging]);
      await faultPoint('dynamic/stage'); // mounted, not answered yet
    } else {
      const deviceFile = `${staging}/${STAGED_DEVICE}`;
      if (await mountAt(deviceFile)) return {};
      const loop = (await loopDevicesOf(source))[0] ?? (await run('losetup', ['--find', '--show', '--direct-io=on', source])).trim();
      if (!(await exists(deviceFile))) await writeFile(deviceFile, '');
      await run('mount', ['--bind', loop, deviceFile]);
    }
    log.info({ volume: req.volume_id, staging }, 'staged');
    return {};
  }

  /** True when `target` shows the same directory as `source` (same filesystem and root). */
  private async isMountOf(target: string, source: string): Promise<boolean> {
    const [t, s] = [await mountAt(target), await stat(source)];
    const ts = await stat(target);
    return !!t && ts.dev === s.dev && ts.ino === s.ino;
  }

  private async unstage(req: any): Promise<unknown> {
    if (!req.volume_id) throw invalidArgument('volume_id is required');
    if (!req.staging_target_path) throw invalidArgument('staging_target_path is required');
    await this.checkPath('staging_target_path', req.staging_target_path);
    const staging: string = req.staging_target_path;
    const deviceFile = `${staging}/${STAGED_DEVICE}`;
    const deviceMount = await mountAt(deviceFile);
    if (deviceMount) {
      await run('umount', [deviceFile]);
      if (deviceMount.source.startsWith('/dev/loop')) {
        await run('losetup', ['--detach', deviceMount.source]).catch((err: unknown) => {
          // Autoclear may have detached it at the umount already; a loop device left attached holds no mount.
          log.warn(
            { volume: req.volume_id, device: deviceMount.source, err: errorMessage(err) },
            'could not detach the loop device; unstaging goes on',
          );
        });
      }
    }
    await rm(deviceFile, { force: true });
    while (await mountAt(staging)) await run('umount', [staging]);
    await faultPoint('dynamic/unstage'); // unmounted, not answered yet
    log.info({ volume: req.volume_id, staging }, 'unstaged');
    return {};
  }

  private async publish(req: any): Promise<unknown> {
    if (!req.volume_id) throw invalidArgument('volume_id is required');
    if (!req.target_path) throw invalidArgument('target_path is required');
    if (!req.staging_target_path)
      throw invalidArgument('staging_target_path is required: the volume is staged first (STAGE_UNSTAGE_VOLUME)');
    await this.checkPath('target_path', req.target_path);
    await this.checkPath('staging_target_path', req.staging_target_path);
    this.checkCapability(req.volume_capability);
    const pv = await this.volume(req.volume_id);
    this.checkCapability(req.volume_capability, pv);
    const target: string = req.target_path;
    const staging: string = req.staging_target_path;
    const readonly = req.readonly === true || req.volume_capability?.access_mode?.mode === 'SINGLE_NODE_READER_ONLY';
    const flags: string[] = req.volume_capability?.mount?.mount_flags ?? [];
    if (pv.spec.volumeMode === 'Filesystem') {
      if (!(await mountAt(staging)))
        throw new CsiError(
          grpc.status.FAILED_PRECONDITION,
          `volume ${pv.metadata.name} is not staged at ${staging}; call NodeStageVolume first`,
        );
      const current = await mountAt(target);
      if (current) {
        if (!(await this.isMountOf(target, staging)))
          throw new CsiError(
            grpc.status.ALREADY_EXISTS,
            `${target} already has something else mounted (${current.source} ${current.root})`,
          );
        return this.convergeReadOnly(pv.metadata.name, target, current.options.includes('ro'), readonly, flags);
      }
      await mkdir(target, { recursive: true });
      // One mount(8) run binds and applies read-only and the flags: as two runs, a daemon killed
      // between them left the target read-write and every retry answered ALREADY_EXISTS (found by
      // the fault suite, test/faults/crash-dynamic.test.ts).
      await run('mount', [
        '--bind',
        ...(readonly || flags.length > 0 ? ['-o', [readonly ? 'ro' : 'rw', ...flags].join(',')] : []),
        staging,
        target,
      ]);
      await faultPoint('dynamic/publish'); // published, not answered yet
    } else {
      const deviceFile = `${staging}/${STAGED_DEVICE}`;
      if (!(await mountAt(deviceFile)))
        throw new CsiError(
          grpc.status.FAILED_PRECONDITION,
          `volume ${pv.metadata.name} is not staged at ${staging}; call NodeStageVolume first`,
        );
      const current = await mountAt(target);
      if (current) {
        if (!(await this.isDeviceOf(target, deviceFile)))
          throw new CsiError(
            grpc.status.ALREADY_EXISTS,
            `${target} already has something else mounted (${current.source} ${current.root})`,
          );
        return this.convergeReadOnly(pv.metadata.name, target, current.options.includes('ro'), readonly, []);
      }
      await mkdir(dirname(target), { recursive: true });
      if (!(await exists(target))) await writeFile(target, '');
      await run('mount', ['--bind', ...(readonly ? ['-o', 'ro'] : []), deviceFile, target]);
    }
    log.info({ volume: req.volume_id, target, readonly }, 'published');
    return {};
  }

  /**
   * A retry of NodePublishVolume at a target that already shows this volume. Read-only asked and
   * the bind is writable: a publish cut off between mount(8)'s bind and its read-only remount (a
   * killed daemon, a killed mount) left it so, and answering ALREADY_EXISTS would leave a read-only
   * volume writable for ever; remounting read-only only takes rights away, so it converges. The
   * other way round (writable asked, read-only there) would hand out rights nobody granted this
   * target: ALREADY_EXISTS, as the CSI spec says for an incompatible publish.
   */
  private async convergeReadOnly(
    volume: string,
    target: string,
    isRo: boolean,
    readonly: boolean,
    flags: readonly string[],
  ): Promise<unknown> {
    if (isRo === readonly) return {};
    if (!readonly)
      throw new CsiError(
        grpc.status.ALREADY_EXISTS,
        `${target} is already published read-only; unpublish it before publishing it writable`,
      );
    log.warn(
      { volume, target },
      'target found writable where read-only was asked (a publish cut off before its read-only remount); remounting it read-only',
    );
    await run('mount', ['-o', ['remount', 'bind', 'ro', ...flags].join(','), target]);
    if (!(await mountAt(target))?.options.includes('ro'))
      throw new CsiError(
        grpc.status.INTERNAL,
        `${target} stays writable after a read-only remount; unpublish it (NodeUnpublishVolume) before using volume ${volume}`,
      );
    log.info({ volume, target, readonly }, 'published');
    return {};
  }

  /** True when `target` is a bind of the device node at `deviceFile` (same device number). */
  private async isDeviceOf(target: string, deviceFile: string): Promise<boolean> {
    // A path gone meanwhile is no device of ours; any other stat failure goes back to kubelet, which
    // retries, instead of reading as "something else is mounted" (ALREADY_EXISTS).
    const [t, d] = [await stat(target).catch(ifNotFound(undefined)), await stat(deviceFile).catch(ifNotFound(undefined))];
    return !!t && !!d && t.isBlockDevice() && d.isBlockDevice() && t.rdev === d.rdev;
  }

  private async unpublish(req: any): Promise<unknown> {
    if (!req.volume_id) throw invalidArgument('volume_id is required');
    if (!req.target_path) throw invalidArgument('target_path is required');
    await this.checkPath('target_path', req.target_path);
    const target: string = req.target_path;
    while (await mountAt(target)) await run('umount', [target]);
    await faultPoint('dynamic/unpublish'); // unmounted, target not removed, not answered yet
    // CSI: NodeUnpublishVolume removes the target path. Only a path that is gone already is no error;
    // any other failure goes back to kubelet, which retries, instead of reporting a path left behind as done.
    const s = await stat(target).catch(ifNotFound(undefined));
    if (s?.isDirectory()) await rmdir(target).catch(ifNotFound(undefined));
    else if (s) await rm(target, { force: true });
    log.info({ volume: req.volume_id, target }, 'unpublished');
    return {};
  }

  private async volumeStats(req: any): Promise<unknown> {
    if (!req.volume_id) throw invalidArgument('volume_id is required');
    if (!req.volume_path) throw invalidArgument('volume_path is required');
    await this.checkPublishedPath('volume_path', req.volume_path);
    const pv = await this.volume(req.volume_id, false);
    if (!(await exists(req.volume_path))) throw notFound(`volume path ${req.volume_path} does not exist`);
    if (!(await mountAt(req.volume_path))) throw notFound(`volume ${req.volume_id} is not published at ${req.volume_path}`);
    const health = await this.options.engine.health(pv.spec.pool);
    const condition = { abnormal: health.degraded, message: health.degraded ? health.message : 'volume is healthy' };
    const total = tryParseBytes(pv.spec.size) ?? 0n;
    if (pv.spec.volumeMode === 'Block') {
      return { usage: [{ unit: 'BYTES', total: total.toString(), used: '0', available: '0' }], volume_condition: condition };
    }
    const { usedBytes } = await this.options.engine.volumeUsage(pv.spec.pool, pv.metadata.name, 'Filesystem');
    const fs = await statfs(req.volume_path, { bigint: true });
    const available = total > usedBytes ? total - usedBytes : 0n;
    return {
      usage: [
        { unit: 'BYTES', total: total.toString(), used: usedBytes.toString(), available: available.toString() },
        { unit: 'INODES', total: fs.files.toString(), used: (fs.files - fs.ffree).toString(), available: fs.ffree.toString() },
      ],
      volume_condition: condition,
    };
  }

  private async expand(req: any): Promise<unknown> {
    if (!req.volume_id) throw invalidArgument('volume_id is required');
    if (!req.volume_path) throw invalidArgument('volume_path is required');
    await this.checkPublishedPath('volume_path', req.volume_path);
    const pv = await this.volume(req.volume_id);
    if (!(await exists(req.volume_path))) throw notFound(`volume path ${req.volume_path} does not exist`);
    if (pv.spec.volumeMode === 'Block') {
      // The file grew on the pool; tell the loop device to pick up its new size.
      for (const loop of await loopDevicesOf(await this.dataPath(pv))) await run('losetup', ['--set-capacity', loop]);
    }
    return { capacity_bytes: (tryParseBytes(pv.status?.capacity) ?? 0n).toString() };
  }
}

export interface CsiNodeServer {
  stop(): Promise<void>;
}

/**
 * Starts the node daemon's CSI endpoint (Identity + Node) and, when `registrationDir` is given
 * (kubelet's /var/lib/kubelet/plugins_registry), the kubelet plugin-registration socket there.
 */
export async function startCsiNodeServer(
  opts: NodeServiceOptions & { endpoint: string; registrationDir?: string },
): Promise<CsiNodeServer> {
  const node = new CsiNode(opts);
  let lastReason: string | undefined;
  const ready = (): boolean => {
    const reason = opts.notReady?.();
    if (reason !== lastReason) log.info({ ready: reason === undefined, reason }, 'Probe answers a new readiness');
    lastReason = reason;
    return reason === undefined;
  };
  const server: SocketServer = await serveOnSocket(opts.endpoint, [identityService(ready, opts.observe), node.service()]);
  const registration = opts.registrationDir
    ? await startRegistrationServer({ dir: opts.registrationDir, endpoint: server.socketPath })
    : undefined;
  return {
    async stop() {
      await registration?.stop();
      await server.stop();
    },
  };
}

/** Mounts under `dir` (tests use it to prove they left nothing behind). */
export async function mountsUnder(dir: string): Promise<string[]> {
  return (await mountTable()).filter((m) => m.target === dir || m.target.startsWith(`${dir}/`)).map((m) => m.target);
}

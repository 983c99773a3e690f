/**
 * The Dynamic-pool half of `stowage node`: the btrfs engine (handed to the node agent as its
 * DynamicPoolSync), the PoolVolume realizer, the CSI Node + Identity services on --csi-endpoint and,
 * optionally, kubelet's plugin registration socket. The agent's disk loop drives engine.sync; this
 * module runs everything else and stops it on shutdown.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { KubeClient } from '../../kube/client.js';
import { STORAGE_POOLS } from '../../crds/resource-types.js';
import type { StoragePool } from '../../crds/storagepool.js';
import { Informer } from '../../runtime/informer.js';
import { startCsiNodeServer, type CsiNodeServer } from '../../csi/node-service.js';
import { socketPathOf, type CallObserver } from '../../csi/grpc.js';
import { DRIVER_NAME } from '../../csi/identity.js';
import { logger } from '../../util/logger.js';
import { BtrfsEngine } from './btrfs-engine.js';
import { startPoolVolumeRealizer, type RunningRealizer } from './volume-realizer.js';
import { startPoolSnapshotRealizer, type RunningSnapshotRealizer } from './snapshot-realizer.js';

const log = logger('node-daemon');

/** Pool filesystems are mounted at <DEFAULT_POOL_ROOT>/pools/<pool>. */
export const DEFAULT_POOL_ROOT = '/var/lib/stowage';

export interface DynamicPoolsOptions {
  readonly client: KubeClient;
  readonly nodeName: string;
  readonly poolRoot?: string;
  /** The CSI endpoint kubelet calls; empty: no CSI Node service (engine and realizer only). */
  readonly csiEndpoint?: string;
  /** kubelet's directory: the CSI Node service works only at staging and target paths inside it. */
  readonly kubeletDir?: string;
  /** kubelet's plugins_registry directory; empty: no registration socket (node-driver-registrar does it). */
  readonly registrationDir?: string;
  /** Told about every CSI call answered (CsiMetrics.observe of the daemon's metrics registry). */
  readonly observe?: CallObserver;
  /**
   * Why the whole daemon is not ready: the checks its /readyz serves, which include this module's
   * own notReady(). The CSI Probe answers from it; absent, Probe answers from notReady() alone.
   */
  readonly notReady?: () => string | undefined;
}

export interface RunningDynamicPools {
  readonly engine: BtrfsEngine;
  /**
   * A liveness check (the health server's form: a problem, or undefined): the CSI socket and the
   * kubelet registration socket still exist. A socket removed under a running daemon (a cleaned
   * plugin directory) leaves kubelet unable to reach the plugin until it restarts; the upstream
   * livenessprobe sidecar catches the same case by failing to connect.
   */
  socketsCheck(): string | undefined;
  /** Why the Dynamic-pool side is not ready yet (its StoragePool cache not synced), or undefined. */
  notReady(): string | undefined;
  stop(): Promise<void>;
}

export async function startDynamicPools(opts: DynamicPoolsOptions): Promise<RunningDynamicPools> {
  const pools = new Informer<StoragePool>({ client: opts.client, resource: STORAGE_POOLS });
  // Not waiting for the caches: the agent must start even where the CRDs are not installed yet; the
  // engine reports PoolUnknown and the realizer has nothing to do until they are.
  pools.start();
  const engine = new BtrfsEngine({
    root: opts.poolRoot || DEFAULT_POOL_ROOT,
    copiesOf: (pool) => {
      const sp = pools.get(pool);
      return sp && sp.spec.mode === 'Dynamic' ? (sp.spec.replicated?.size ?? 1) : undefined;
    },
  });
  let realizer: RunningRealizer | undefined;
  let snapshotRealizer: RunningSnapshotRealizer | undefined;
  let server: CsiNodeServer | undefined;
  const poolsNotReady = (): string | undefined => {
    if (pools.hasSynced()) return undefined;
    return `waiting for the API server, the StoragePool cache has not synced yet (retrying with backoff)${pools.lastError ? `: ${pools.lastError}` : ''}`;
  };
  try {
    realizer = await startPoolVolumeRealizer({ client: opts.client, engine, nodeName: opts.nodeName, waitForSync: false });
    snapshotRealizer = await startPoolSnapshotRealizer({ client: opts.client, engine, nodeName: opts.nodeName, waitForSync: false });
    if (opts.csiEndpoint) {
      server = await startCsiNodeServer({
        endpoint: opts.csiEndpoint,
        nodeName: opts.nodeName,
        engine,
        client: opts.client,
        ...(opts.kubeletDir ? { kubeletDir: opts.kubeletDir } : {}),
        ...(opts.registrationDir ? { registrationDir: opts.registrationDir } : {}),
        ...(opts.observe ? { observe: opts.observe } : {}),
        notReady: opts.notReady ?? poolsNotReady,
      });
    }
  } catch (err) {
    await snapshotRealizer?.stop();
    await realizer?.stop();
    await pools.stop();
    throw err;
  }
  log.info(
    { node: opts.nodeName, csiEndpoint: opts.csiEndpoint, registrationDir: opts.registrationDir },
    'Dynamic pools: engine, PoolVolume realizer and CSI Node service running',
  );
  const sockets = [
    ...(opts.csiEndpoint ? [socketPathOf(opts.csiEndpoint)] : []),
    ...(opts.csiEndpoint && opts.registrationDir ? [join(opts.registrationDir, `${DRIVER_NAME}-reg.sock`)] : []),
  ];
  return {
    engine,
    socketsCheck() {
      const missing = sockets.filter((path) => {
        try {
          return !statSync(path).isSocket();
        } catch {
          return true;
        }
      });
      return missing.length > 0 ? `socket(s) gone: ${missing.join(', ')}; restart the daemon to serve them again` : undefined;
    },
    notReady: poolsNotReady,
    async stop() {
      await server?.stop();
      await snapshotRealizer.stop();
      await realizer.stop();
      await pools.stop();
    },
  };
}

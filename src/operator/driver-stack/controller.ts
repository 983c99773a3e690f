import { STORAGE_POOLS } from '../../crds/resource-types.js';
import type { StoragePool } from '../../crds/storagepool.js';
import { ApiError } from '../../kube/api-error.js';
import type { KubeClient } from '../../kube/client.js';
import { CSI_DRIVERS, CSI_NODES, DAEMON_SETS, DEPLOYMENTS, PERSISTENT_VOLUMES, PODS, type ResourceType } from '../../kube/resources.js';
import type { KubeObject } from '../../kube/types.js';
import { logger } from '../../util/logger.js';
import { isSubset } from '../../runtime/apply.js';
import type { Controller, ReconcileResult, Reconciler } from '../../runtime/controller.js';
import { DEFAULT_RESYNC_MS, type Informer } from '../../runtime/informer.js';
import type { Manager } from '../../runtime/manager.js';
import { imageTable, type ImageTable } from './images.js';
import { driverHealth, type CsiNodeLike, type DaemonSetLike, type DriverHealth, type PodLike } from './health.js';
import {
  CSI_CONTROLLER_DEPLOYMENT,
  DRIVER_NAME,
  NODE_DAEMONSET,
  NODE_POD_SELECTOR,
  desiredDriverStack,
  needsCsiController,
  type NodeRegistration,
} from './render.js';
import { SIDECAR_PROFILES, sidecarProfile, type SidecarProfile } from './sidecars.js';
import type { ServerVersion } from './server-version.js';

/** The stack is one unit: every event maps to this single key, so it is never reconciled twice at once. */
export const DRIVER_STACK_KEY = 'driver-stack';

const log = logger('driver-stack');

type Named = KubeObject & { metadata: { name: string } };
type PersistentVolume = Named & { spec?: { csi?: { driver?: string } } };

export interface DriverStackOptions {
  readonly namespace: string;
  /** A fixed image table, used as is for every server version (tests). */
  readonly images?: ImageTable;
  /** `NAME=REF` overrides (`--image`) applied to the defaults for the server's version. */
  readonly imageOverrides?: readonly string[];
  /** Who registers the node plugin with kubelet (`--node-registration`). */
  readonly registration?: NodeRegistration;
  /** Discovery flags for the node agent (`--node-agent-arg`, node-agent-args.ts). */
  readonly nodeAgentArgs?: readonly string[];
  /** kubelet's root directory on the nodes (`--kubelet-root-dir`, host-paths.ts). */
  readonly kubeletDir?: string;
  /** The server's version; the sidecars and their flags follow it. Without it: the newest servers'. */
  readonly serverVersion?: ServerVersion;
  readonly fieldManager: string;
  /** How often the stack is re-checked even when no event arrived; drift is undone at the latest then. */
  readonly resyncMs?: number;
}

/** Index of PVs by the CSI driver that serves them. */
const BY_CSI_DRIVER = 'spec.csi.driver';

/** True for a PersistentVolume served by Stowage's CSI driver. */
export function isDriverVolume(pv: PersistentVolume): boolean {
  return pv.spec?.csi?.driver === DRIVER_NAME;
}

/**
 * Keeps the driver stack as {@link desiredDriverStack} says: server-side applies each object when
 * the live one differs (so a converged resync sends nothing and a hand edit is undone on the next
 * event or resync), and deletes the CSIDriver and the CSI controller once the last Dynamic pool and
 * the last volume of the driver are gone.
 */
export class DriverStackReconciler implements Reconciler {
  /**
   * What was last applied per object and the resourceVersion the server answered. Older servers
   * drop fields they do not know (a 1.20 server drops CSIDriver.spec.storageCapacity), so "live
   * contains desired" can stay false forever; an object nobody touched since our own apply of the
   * same content needs no write either.
   */
  private readonly applied = new Map<string, { desired: string; resourceVersion: string | undefined }>();

  constructor(
    private readonly client: KubeClient,
    private readonly options: DriverStackOptions,
    private readonly informers: {
      readonly pools: Informer<StoragePool & Named>;
      readonly volumes: Informer<PersistentVolume>;
      readonly daemonSets: Informer<Named>;
      readonly deployments: Informer<Named>;
      readonly csiDrivers: Informer<Named>;
    },
  ) {}

  async reconcile(): Promise<ReconcileResult> {
    const { pools, volumes } = this.informers;
    const volumeCount = volumes.byIndex(BY_CSI_DRIVER, DRIVER_NAME).length;
    const sidecars = await this.sidecars();
    const images = this.options.images ?? imageTable(this.options.imageOverrides, sidecars.images);
    const input = {
      dynamicPools: pools.list(),
      volumes: volumeCount,
      images,
      namespace: this.options.namespace,
      sidecars,
      ...(this.options.registration ? { registration: this.options.registration } : {}),
      ...(this.options.nodeAgentArgs ? { nodeAgentArgs: this.options.nodeAgentArgs } : {}),
      ...(this.options.kubeletDir ? { kubeletDir: this.options.kubeletDir } : {}),
    };
    for (const desired of desiredDriverStack(input)) await this.apply(desired, volumeCount);
    if (!needsCsiController(input)) await this.removeCsiParts();
    return { requeueAfterMs: this.options.resyncMs ?? DEFAULT_RESYNC_MS };
  }

  /**
   * The sidecar profile for the server. A server older than every profile gets the oldest one for
   * the DaemonSet's sake (Local pools); its Dynamic pools are refused by the pool controller.
   */
  private async sidecars(): Promise<SidecarProfile> {
    const version = await this.options.serverVersion?.get();
    return sidecarProfile(version) ?? SIDECAR_PROFILES[SIDECAR_PROFILES.length - 1];
  }

  private async apply(desired: KubeObject, volumeCount: number): Promise<void> {
    const rt = resourceOf(desired);
    const name = desired.metadata.name!;
    const live = this.liveOf(rt, name);
    const key = `${rt.plural}/${name}`;
    const text = JSON.stringify(desired);
    const last = this.applied.get(key);
    if (live) {
      const { apiVersion: _a, kind: _k, ...fields } = desired;
      if (isSubset(fields, live)) return;
      if (last && last.desired === text && last.resourceVersion === live.metadata.resourceVersion) return;
    }
    let result: KubeObject;
    try {
      result = await this.client.apply(rt, desired, { fieldManager: this.options.fieldManager, force: true });
    } catch (err) {
      // A CSIDriver's spec is immutable. Recreate it only while no volume depends on it.
      if (!(rt === CSI_DRIVERS && live && ApiError.is(err, 422))) throw err;
      if (volumeCount > 0) {
        throw new Error(
          `CSIDriver ${name} differs from what Stowage needs in an immutable field, and ${volumeCount} volume(s) of the driver exist, ` +
            `so it is not recreated; delete those volumes or fix the CSIDriver by hand (kubectl delete csidriver ${name}): ${(err as Error).message}`,
          { cause: err },
        );
      }
      log.warn({ name }, 'CSIDriver differs in an immutable field and no volume uses it; deleting and recreating it');
      await this.client.delete(CSI_DRIVERS, name, { uid: live.metadata.uid });
      result = await this.client.apply(rt, desired, { fieldManager: this.options.fieldManager, force: true });
    }
    this.applied.set(key, { desired: text, resourceVersion: result.metadata.resourceVersion });
    log.info(
      { kind: desired.kind, name, created: !live },
      live ? 'driver stack object drifted; re-applied' : 'driver stack object created',
    );
  }

  private async removeCsiParts(): Promise<void> {
    const { namespace } = this.options;
    const deployment = this.informers.deployments.get(`${namespace}/${CSI_CONTROLLER_DEPLOYMENT}`);
    if (deployment) {
      log.info({ name: CSI_CONTROLLER_DEPLOYMENT }, 'no Dynamic pool and no CSI volume left; deleting the CSI controller');
      await this.client.delete(DEPLOYMENTS, CSI_CONTROLLER_DEPLOYMENT, {
        namespace,
        uid: deployment.metadata.uid,
        propagationPolicy: 'Background',
      });
    }
    const driver = this.informers.csiDrivers.get(DRIVER_NAME);
    if (driver) {
      log.info({ name: DRIVER_NAME }, 'no Dynamic pool and no CSI volume left; deleting the CSIDriver');
      await this.client.delete(CSI_DRIVERS, DRIVER_NAME, { uid: driver.metadata.uid });
    }
    this.applied.delete(`${DEPLOYMENTS.plural}/${CSI_CONTROLLER_DEPLOYMENT}`);
    this.applied.delete(`${CSI_DRIVERS.plural}/${DRIVER_NAME}`);
  }

  private liveOf(rt: ResourceType, name: string): KubeObject | undefined {
    if (rt === DAEMON_SETS) return this.informers.daemonSets.get(`${this.options.namespace}/${name}`);
    if (rt === DEPLOYMENTS) return this.informers.deployments.get(`${this.options.namespace}/${name}`);
    return this.informers.csiDrivers.get(name);
  }
}

function resourceOf(obj: KubeObject): ResourceType {
  switch (obj.kind) {
    case 'DaemonSet':
      return DAEMON_SETS;
    case 'Deployment':
      return DEPLOYMENTS;
    case 'CSIDriver':
      return CSI_DRIVERS;
    default:
      throw new Error(`the driver stack has no resource type for kind ${obj.kind}`);
  }
}

/**
 * Registers the driver-stack controller: informers limited to the stack's own objects (by name, in
 * the operator's namespace, which is all the install's RBAC lets the operator see), all mapped to
 * one key, and a first reconcile at start so the DaemonSet exists before any pool does.
 */
export function setupDriverStack(manager: Manager, options: DriverStackOptions): DriverStack {
  const { namespace } = options;
  const byName = (name: string) => ({ fieldSelector: `metadata.name=${name}` });
  const informers = {
    pools: manager.informer<StoragePool & Named>(STORAGE_POOLS),
    volumes: manager.informer<PersistentVolume>(PERSISTENT_VOLUMES),
    daemonSets: manager.informer<Named & DaemonSetLike>(DAEMON_SETS, { namespace, ...byName(NODE_DAEMONSET) }),
    deployments: manager.informer<Named>(DEPLOYMENTS, { namespace, ...byName(CSI_CONTROLLER_DEPLOYMENT) }),
    csiDrivers: manager.informer<Named>(CSI_DRIVERS, byName(DRIVER_NAME)),
  };
  // The PV cache is the operator's one cache of every PV; the index makes counting the driver's cheap.
  informers.volumes.addIndex(BY_CSI_DRIVER, (pv) => (pv.spec?.csi?.driver ? [pv.spec.csi.driver] : []));
  const toKey = (): string[] => [DRIVER_STACK_KEY];
  // Only Dynamic pools need the CSI parts; a pool leaving Dynamic mode wakes us through its old state.
  const ifDynamic = (pool: StoragePool): string[] => (pool.spec.mode === 'Dynamic' ? [DRIVER_STACK_KEY] : []);
  const controller = manager
    .controller({ name: 'driver-stack', reconciler: new DriverStackReconciler(manager.client, options, informers), workers: 1 })
    .watch(informers.pools, ifDynamic)
    .watch(informers.volumes, (pv) => (isDriverVolume(pv) ? [DRIVER_STACK_KEY] : []))
    .watch(informers.daemonSets, toKey)
    .watch(informers.deployments, toKey)
    .watch(informers.csiDrivers, toKey);
  controller.queue.add(DRIVER_STACK_KEY);
  // The plugin's health: only the node DaemonSet's own pods (by label, in the operator's
  // namespace) and the CSINodes (one small object per node), never every pod of the cluster.
  const nodePods = manager.informer<PodLike>(PODS, { namespace, labelSelector: NODE_POD_SELECTOR });
  const csiNodes = manager.informer<CsiNodeLike>(CSI_NODES);
  return {
    controller,
    watchHealth: (target, keys) => {
      target.watch(informers.daemonSets, keys).watch(nodePods, keys).watch(csiNodes, keys);
    },
    health: () =>
      driverHealth({
        daemonSet: informers.daemonSets.get(`${namespace}/${NODE_DAEMONSET}`),
        pods: nodePods.list(),
        csiNodes: csiNodes.list(),
      }),
  };
}

/** The driver-stack controller and what the pool controller reads of the driver's health. */
export interface DriverStack {
  readonly controller: Controller;
  /** Makes every change that can change {@link health} enqueue `keys()` on `target` (the pools needing the driver). */
  watchHealth(target: Controller, keys: () => string[]): void;
  health(): DriverHealth;
}

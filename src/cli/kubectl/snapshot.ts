/**
 * One read of everything the views join: disks, pools, volumes, claims, the pods that use them,
 * and (for `why`) events and the driver. Lists run in parallel; what the user may not list (pods,
 * say) is left out with a warning instead of failing the whole view.
 */
import type { KubeClient } from '../../kube/client.js';
import { ApiError } from '../../kube/api-error.js';
import {
  CSI_DRIVERS,
  DAEMON_SETS,
  DEPLOYMENTS,
  EVENTS,
  NODES,
  PERSISTENT_VOLUMES,
  PERSISTENT_VOLUME_CLAIMS,
  PODS,
  STORAGE_CLASSES,
  type ResourceType,
} from '../../kube/resources.js';
import type { KubeObject, Node, PersistentVolume, StorageClass } from '../../kube/types.js';
import { NODE_DISKS, POOL_VOLUMES, STORAGE_POOLS } from '../../crds/resource-types.js';
import type { NodeDisk } from '../../crds/nodedisk.js';
import type { StoragePool } from '../../crds/storagepool.js';
import type { PoolVolume } from '../../crds/poolvolume.js';
import { CSI_DRIVER_NAME } from '../../crds/labels.js';

export type Disk = NodeDisk & KubeObject;
export type Pool = StoragePool & KubeObject;
export type Volume = PoolVolume & KubeObject;

export interface Claim extends KubeObject {
  spec: { storageClassName?: string; volumeName?: string; resources?: { requests?: { storage?: string } }; volumeMode?: string };
  status?: { phase?: 'Pending' | 'Bound' | 'Lost'; capacity?: { storage?: string } };
}

export interface Pod extends KubeObject {
  spec: { nodeName?: string; volumes?: { name: string; persistentVolumeClaim?: { claimName: string } }[] };
  status?: { phase?: string; conditions?: { type: string; status: string; reason?: string; message?: string }[] };
}

export interface KubeEvent extends KubeObject {
  involvedObject: { kind?: string; name?: string; namespace?: string; uid?: string };
  reason?: string;
  message?: string;
  type?: string;
  count?: number;
  lastTimestamp?: string;
  eventTime?: string;
  firstTimestamp?: string;
  source?: { component?: string };
}

export interface Workload extends KubeObject {
  status?: { readyReplicas?: number; replicas?: number; numberReady?: number; desiredNumberScheduled?: number };
}

export interface Snapshot {
  readonly disks: Disk[];
  readonly pools: Pool[];
  readonly pvs: PersistentVolume[];
  readonly claims: Claim[];
  readonly pods: Pod[];
  readonly poolVolumes: Volume[];
  readonly nodes: Node[];
  readonly storageClasses: StorageClass[];
  /** What could not be read, in words (printed on stderr by the commands). */
  readonly warnings: string[];
}

/** Extra reads `why` needs beyond the tables. */
export interface DriverState {
  readonly csiDriver?: KubeObject | undefined;
  readonly controller?: Workload | undefined;
  readonly nodeDaemon?: Workload | undefined;
}

const CSI_CONTROLLER = 'stowage-csi-controller';
const NODE_DAEMON = 'stowage-node';

export async function loadSnapshot(client: KubeClient): Promise<Snapshot> {
  const warnings: string[] = [];
  // The Stowage lists are required: without them there is no view. The rest is best effort.
  const [disks, pools, poolVolumes] = await Promise.all([
    client.listAll<Disk>(NODE_DISKS),
    client.listAll<Pool>(STORAGE_POOLS),
    client.listAll<Volume>(POOL_VOLUMES),
  ]);
  const optional = async <T extends KubeObject>(rt: ResourceType, what: string): Promise<T[]> => {
    try {
      return (await client.listAll<T>(rt)).items;
    } catch (err) {
      if (ApiError.is(err, 403)) {
        warnings.push(`${what} are left out: this user may not list ${rt.plural}${rt.group ? `.${rt.group}` : ''} cluster-wide`);
        return [];
      }
      throw err;
    }
  };
  const [pvs, claims, pods, nodes, storageClasses] = await Promise.all([
    optional<PersistentVolume>(PERSISTENT_VOLUMES, 'volumes'),
    optional<Claim>(PERSISTENT_VOLUME_CLAIMS, 'claims'),
    optional<Pod>(PODS, 'pods using the volumes'),
    optional<Node>(NODES, 'nodes'),
    optional<StorageClass>(STORAGE_CLASSES, 'storage classes'),
  ]);
  return {
    disks: disks.items,
    pools: pools.items,
    poolVolumes: poolVolumes.items,
    pvs,
    claims,
    pods,
    nodes,
    storageClasses,
    warnings,
  };
}

/** Recent events about one object, newest last (events of cluster-scoped objects live in `default`). */
export async function eventsAbout(client: KubeClient, kind: string, name: string, namespace = 'default'): Promise<KubeEvent[]> {
  try {
    const list = await client.list<KubeEvent>(EVENTS, {
      namespace,
      fieldSelector: `involvedObject.kind=${kind},involvedObject.name=${name}`,
    });
    return [...list.items].sort((a, b) => eventTime(a).localeCompare(eventTime(b)));
  } catch (err) {
    if (ApiError.is(err, 403)) return [];
    throw err;
  }
}

export function eventTime(e: KubeEvent): string {
  return e.lastTimestamp ?? e.eventTime ?? e.firstTimestamp ?? e.metadata.creationTimestamp ?? '';
}

/** The CSI driver's parts, wherever the operator put them (their names are fixed, the namespace is not). */
export async function loadDriverState(client: KubeClient): Promise<DriverState> {
  const byName = async (rt: ResourceType, name: string): Promise<Workload | undefined> => {
    try {
      return (await client.list<Workload>(rt, { fieldSelector: `metadata.name=${name}` })).items[0];
    } catch (err) {
      if (ApiError.is(err, 403)) return undefined;
      throw err;
    }
  };
  const [csiDriver, controller, nodeDaemon] = await Promise.all([
    client.getIfExists(CSI_DRIVERS, CSI_DRIVER_NAME).catch((err: unknown) => {
      if (ApiError.is(err, 403)) return undefined; // may not read CSIDrivers: reported as unknown, not as an error
      throw err;
    }),
    byName(DEPLOYMENTS, CSI_CONTROLLER),
    byName(DAEMON_SETS, NODE_DAEMON),
  ]);
  return { csiDriver, controller, nodeDaemon };
}

/** The claims' pods, by `namespace/claim`. */
export function podsByClaim(pods: readonly Pod[]): Map<string, Pod[]> {
  const out = new Map<string, Pod[]>();
  for (const pod of pods) {
    for (const v of pod.spec.volumes ?? []) {
      if (!v.persistentVolumeClaim) continue;
      const key = `${pod.metadata.namespace}/${v.persistentVolumeClaim.claimName}`;
      out.set(key, [...(out.get(key) ?? []), pod]);
    }
  }
  return out;
}

import { type ApiCall, type KubeClient, KubeClient as Client } from '../../src/kube/client.js';
import { EVENTS, NAMESPACES, NODES, PERSISTENT_VOLUMES, PERSISTENT_VOLUME_CLAIMS, PODS } from '../../src/kube/resources.js';
import type { KubeObject, PersistentVolume } from '../../src/kube/types.js';
import { installCrds } from '../../src/crds/install.js';
import { STORAGE_POOLS } from '../../src/crds/resource-types.js';
import type { StoragePool } from '../../src/crds/storagepool.js';
import { Manager } from '../../src/runtime/manager.js';
import { setupControllers } from '../../src/operator/setup.js';
import type { PoolTurns } from '../../src/operator/storagepool/reconciler.js';
import type { ControlPlane } from '../cluster/control-plane.js';
import { registerReadyNode } from '../cluster/nodes.js';
import { AgentDouble } from './agent-double.js';
import { adminClient, createNamespace, deletePoolForcibly, uniqueName, waitFor } from './cluster.js';

export type Pool = StoragePool & KubeObject;
export type Pvc = KubeObject & { spec: { volumeName?: string }; status?: { phase?: string } };

export const condition = (pool: Pool | undefined, type: string) => pool?.status?.conditions?.find((c) => c.type === type);

/**
 * A small world for operator tests: registered Ready nodes, a namespace for claims and pods, the
 * node agent's side played by AgentDouble, and the operator running in-process on its own client
 * (so its API writes can be counted). `close()` removes everything, also after a failure.
 */
export class PoolWorld {
  readonly nodes: string[] = [];
  readonly pools: string[] = [];
  readonly operatorWrites: ApiCall[] = [];
  namespace = '';
  private abort?: AbortController;
  private running?: Promise<unknown>;

  private constructor(
    readonly cp: ControlPlane,
    readonly admin: KubeClient,
    readonly operatorClient: KubeClient,
    readonly agent: AgentDouble,
    readonly prefix: string,
  ) {}

  /** `startOperator: false` leaves the operator stopped until {@link startOperator} (a restart over existing state). */
  static async start(opts: { nodes: number; resyncMs?: number; startOperator?: boolean } = { nodes: 3 }): Promise<PoolWorld> {
    const { cp, client: admin } = await adminClient();
    await installCrds(admin, 'stowage-tests');
    const operatorClient = await Client.load({ kubeconfig: cp.kubeconfigPath, userAgent: 'stowage-operator-test' });
    const world = new PoolWorld(cp, admin, operatorClient, new AgentDouble(admin), uniqueName('pw'));
    world.namespace = await createNamespace(admin, 'pools');
    await cp.waitForDefaultServiceAccount(world.namespace);
    for (let i = 1; i <= opts.nodes; i++) {
      const node = `${world.prefix}-node${i}`;
      world.nodes.push(node);
      await registerReadyNode(cp, node);
    }
    await world.agent.start();
    operatorClient.observe((call) => {
      if (!['get', 'list', 'watch'].includes(call.verb)) world.operatorWrites.push(call);
    });
    world.resyncMs = opts.resyncMs ?? 3_000;
    if (opts.startOperator !== false) world.startOperator();
    return world;
  }

  private resyncMs = 3_000;

  /** Runs the operator in-process (4 workers, as the CLI's default). */
  startOperator(opts: { poolTurns?: PoolTurns } = {}): void {
    if (this.running) throw new Error('the operator already runs');
    const manager = new Manager({ client: this.operatorClient, informerDefaults: { resyncMs: this.resyncMs } });
    setupControllers(manager, { workers: 4, fieldManager: 'stowage-operator', ...opts });
    this.abort = new AbortController();
    this.running = manager.run(this.abort.signal);
  }

  async applyPool(pool: Pool): Promise<string> {
    if (!this.pools.includes(pool.metadata.name)) this.pools.push(pool.metadata.name);
    await this.admin.apply(STORAGE_POOLS, pool, { fieldManager: 'kubectl-client-side-apply' });
    return pool.metadata.name;
  }

  getPool(name: string): Promise<Pool | undefined> {
    return this.admin.getIfExists<Pool>(STORAGE_POOLS, name);
  }

  /** Waits until `predicate` holds for the pool's status (after the operator observed its generation). */
  waitForPool(name: string, what: string, predicate: (pool: Pool) => boolean, timeoutMs = 60_000): Promise<Pool> {
    return waitFor(
      `pool ${name}: ${what}`,
      async () => {
        const pool = await this.getPool(name);
        return pool && pool.status?.observedGeneration === pool.metadata.generation && predicate(pool) ? pool : undefined;
      },
      timeoutMs,
    );
  }

  async volumesOf(pool: string): Promise<PersistentVolume[]> {
    return (await this.admin.list<PersistentVolume>(PERSISTENT_VOLUMES, { labelSelector: `stowage.dev/pool=${pool}` })).items;
  }

  async eventsFor(name: string): Promise<string[]> {
    const events = await this.admin.list<KubeObject & { involvedObject: { name: string }; reason: string; message: string }>(EVENTS, {
      namespace: 'default',
    });
    return events.items.filter((e) => e.involvedObject.name === name).map((e) => `${e.reason}: ${e.message}`);
  }

  /** A PVC of `storageClass` and a pod using it, limited to this world's nodes; resolves with the bound PV. */
  async claimVolume(name: string, storageClass: string, nodes = this.nodes): Promise<PersistentVolume> {
    await this.admin.create(PERSISTENT_VOLUME_CLAIMS, {
      metadata: { name, namespace: this.namespace },
      spec: { accessModes: ['ReadWriteOnce'], storageClassName: storageClass, resources: { requests: { storage: '1Gi' } } },
    });
    await this.admin.create(PODS, {
      metadata: { name, namespace: this.namespace },
      spec: {
        containers: [{ name: 'app', image: 'busybox', command: ['sleep', '3600'], volumeMounts: [{ name: 'data', mountPath: '/data' }] }],
        volumes: [{ name: 'data', persistentVolumeClaim: { claimName: name } }],
        affinity: {
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: {
              nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: nodes }] }],
            },
          },
        },
      },
    });
    const claim = await waitFor(
      `claim ${name} to bind`,
      async () => {
        const c = await this.admin.get<Pvc>(PERSISTENT_VOLUME_CLAIMS, name, this.namespace);
        return c.status?.phase === 'Bound' ? c : undefined;
      },
      60_000,
    );
    return this.admin.get<PersistentVolume>(PERSISTENT_VOLUMES, claim.spec.volumeName!);
  }

  /** Deletes the pod (at once: there is no kubelet to confirm) and its claim. */
  async releaseVolume(name: string): Promise<void> {
    await this.admin
      .request({ method: 'DELETE', path: `/api/v1/namespaces/${this.namespace}/pods/${name}`, body: { gracePeriodSeconds: 0 } })
      .catch(() => undefined);
    await this.admin.delete(PERSISTENT_VOLUME_CLAIMS, name, { namespace: this.namespace });
  }

  async close(): Promise<void> {
    const { admin } = this;
    for (const name of this.pools) await admin.delete(STORAGE_POOLS, name).catch(() => undefined);
    // Pods and claims go first so pools can finalize while the operator still runs.
    if (this.namespace) {
      for (const pod of (await admin.list(PODS, { namespace: this.namespace })).items) await this.releaseVolume(pod.metadata.name!);
    }
    await waitFor(
      'pools to be finalized',
      async () => {
        for (const name of this.pools) if (await admin.getIfExists(STORAGE_POOLS, name)) return false;
        return true;
      },
      60_000,
    ).catch(() => undefined);
    this.abort?.abort();
    await this.running;
    for (const name of this.pools) await deletePoolForcibly(admin, name);
    await this.agent.stop();
    await this.agent.removeAll();
    for (const pv of (await admin.list<PersistentVolume>(PERSISTENT_VOLUMES)).items) {
      if (this.nodes.includes(pv.metadata.labels?.['stowage.dev/node'] ?? '')) {
        await admin.mergePatch(PERSISTENT_VOLUMES, pv.metadata.name!, { metadata: { finalizers: null } }).catch(() => undefined);
        await admin.delete(PERSISTENT_VOLUMES, pv.metadata.name!);
      }
    }
    for (const node of this.nodes) await admin.delete(NODES, node);
    if (this.namespace) await admin.delete(NAMESPACES, this.namespace);
    this.operatorClient.close();
    admin.close();
  }
}

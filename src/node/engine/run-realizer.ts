/**
 * How the node daemon runs a realizer: an informer over this node's objects of one kind (by label),
 * a controller with the node's retry timing, started once the cache is synced. PoolVolumes and
 * PoolSnapshots are both realized this way.
 */
import type { KubeClient } from '../../kube/client.js';
import type { KubeObject } from '../../kube/types.js';
import type { ResourceType } from '../../kube/resources.js';
import { Controller, type Reconciler } from '../../runtime/controller.js';
import { Informer } from '../../runtime/informer.js';

export interface RunningRealizerOf<T extends KubeObject> {
  readonly informer: Informer<T>;
  stop(): Promise<void>;
}

export async function runRealizer<T extends KubeObject>(opts: {
  readonly client: KubeClient;
  readonly resource: ResourceType;
  readonly labelSelector: string;
  readonly name: string;
  readonly workers: number;
  readonly waitForSync?: boolean;
  readonly reconciler: (informer: Informer<T>) => Reconciler;
}): Promise<RunningRealizerOf<T>> {
  const informer = new Informer<T>({ client: opts.client, resource: opts.resource, labelSelector: opts.labelSelector });
  const controller = new Controller({
    name: opts.name,
    reconciler: opts.reconciler(informer),
    workers: opts.workers,
    baseDelayMs: 200,
    maxDelayMs: 10_000,
  }).watchFor(informer);
  informer.start();
  if (opts.waitForSync ?? true) await informer.waitForSync();
  controller.start();
  return {
    informer,
    async stop() {
      await controller.stop();
      await informer.stop();
    },
  };
}

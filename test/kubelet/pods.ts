// Pods on the real kubelet node, for the tests in test/kubelet/: host network (no packet needs a pod
// network), locally imported images with imagePullPolicy Never, and waits that explain themselves
// (phase, container states, recent events) when they time out.

import type { KubeClient } from '../../src/kube/client.js';
import { EVENTS, PODS } from '../../src/kube/resources.js';
import type { ControlPlane } from '../cluster/control-plane.js';
import { BUSYBOX_IMAGE } from '../cluster/kubelet-images.js';
import { REAL_NODE_TAINT, type KubeletNode } from '../cluster/kubelet-node.js';
import { waitFor } from '../support/cluster.js';

export interface BusyboxPodOptions {
  name: string;
  namespace: string;
  node: KubeletNode;
  /** Shell script run by `sh -c` in the container. */
  script: string;
  volumes?: unknown[];
  volumeMounts?: unknown[];
  restartPolicy?: 'Never' | 'Always' | 'OnFailure';
  image?: string;
  imagePullPolicy?: 'Never' | 'IfNotPresent' | 'Always';
}

export function busyboxPod(o: BusyboxPodOptions): any {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: o.name, namespace: o.namespace, labels: { 'app.kubernetes.io/part-of': 'stowage-tests' } },
    spec: {
      // The scheduler places it; only the real node carries this hostname label.
      nodeSelector: { 'kubernetes.io/hostname': o.node.nodeName },
      tolerations: [{ key: REAL_NODE_TAINT.key, operator: 'Equal', value: REAL_NODE_TAINT.value, effect: REAL_NODE_TAINT.effect }],
      hostNetwork: true,
      restartPolicy: o.restartPolicy ?? 'Never',
      terminationGracePeriodSeconds: 2,
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      containers: [
        {
          name: 'main',
          image: o.image ?? BUSYBOX_IMAGE,
          imagePullPolicy: o.imagePullPolicy ?? 'Never',
          command: ['sh', '-c', o.script],
          volumeMounts: o.volumeMounts ?? [],
        },
      ],
      volumes: o.volumes ?? [],
    },
  };
}

async function describePod(client: KubeClient, namespace: string, name: string): Promise<string> {
  // describePod only adds detail to an error already being thrown.
  const pod = await client.getIfExists<any>(PODS, name, namespace).catch(() => undefined);
  // Likewise.
  const events = await client
    .list<any>(EVENTS, { namespace, fieldSelector: `involvedObject.name=${name}` })
    .catch(() => ({ items: [] as any[] }));
  return (
    `phase=${pod?.status?.phase} node=${pod?.spec?.nodeName} containers=${JSON.stringify(pod?.status?.containerStatuses?.map((c: any) => c.state))}\n` +
    `events:\n${events.items.map((e: any) => `  ${e.type} ${e.reason}: ${e.message}`).join('\n')}`
  );
}

/** Waits until the pod reaches one of `phases` (or, for 'Running', until its containers are ready). */
export async function waitPodPhase(
  client: KubeClient,
  namespace: string,
  name: string,
  phases: string[],
  timeoutMs = 120_000,
): Promise<any> {
  try {
    return await waitFor(
      `pod ${namespace}/${name} to be ${phases.join(' or ')}`,
      async () => {
        const pod = await client.get<any>(PODS, name, namespace);
        const phase = pod.status?.phase;
        if (!phases.includes(phase)) return undefined;
        if (phase === 'Running' && !(pod.status?.containerStatuses ?? []).every((c: any) => c.ready)) return undefined;
        return pod;
      },
      timeoutMs,
      250,
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${await describePod(client, namespace, name)}`, { cause: e });
  }
}

/** Waits until a condition on the pod's status holds, e.g. a container waiting with a reason. */
export async function waitPod<T>(
  client: KubeClient,
  namespace: string,
  name: string,
  what: string,
  probe: (pod: any) => T | undefined | false,
  timeoutMs = 120_000,
): Promise<T> {
  try {
    return await waitFor(
      `pod ${namespace}/${name}: ${what}`,
      async () => probe(await client.get<any>(PODS, name, namespace)),
      timeoutMs,
      250,
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${await describePod(client, namespace, name)}`, { cause: e });
  }
}

/** Deletes the pod and waits until kubelet confirmed it is gone (the API object disappears only then). */
export async function deletePodAndWait(client: KubeClient, namespace: string, name: string, timeoutMs = 120_000): Promise<void> {
  await client.delete(PODS, name, { namespace });
  await waitFor(
    `pod ${namespace}/${name} to be deleted by kubelet`,
    async () => (await client.getIfExists(PODS, name, namespace)) === undefined,
    timeoutMs,
    250,
  );
}

/** The container log, read through the API server, which fetches it from kubelet at 127.0.0.1. */
export async function podLog(cp: ControlPlane, namespace: string, name: string, container?: string): Promise<string> {
  const res = await cp.request(
    'GET',
    `/api/v1/namespaces/${namespace}/pods/${name}/log${container ? `?container=${encodeURIComponent(container)}` : ''}`,
  );
  if (res.status !== 200) throw new Error(`log of ${namespace}/${name}: HTTP ${res.status}: ${res.body}`);
  return res.body;
}

/** Mount points under a pod's directory in kubelet's root dir, from the host's mount table. */
export async function podMounts(node: KubeletNode, podUid: string): Promise<string[]> {
  const { readFile } = await import('node:fs/promises');
  const prefix = `${node.rootDir}/pods/${podUid}/`;
  return (await readFile('/proc/self/mounts', 'utf8'))
    .split('\n')
    .map((l) => l.split(' ')[1] ?? '')
    .filter((m) => m.startsWith(prefix));
}

/**
 * Whether the node plugin runs where a pool needs it, from what the API already says: the node
 * DaemonSet's rollout (its status), its pods' container states (what kubelet reports: waiting in
 * ImagePullBackOff, CrashLoopBackOff, …) and each node's CSINode (kubelet lists a driver there
 * once the plugin registered). Pure: the same objects give the same answer.
 */
import type { KubeObject } from '../../kube/types.js';
import { DRIVER_NAME } from './render.js';

/** How many nodes a message names before it says "and N more". */
const MAX_LISTED = 5;

export interface DaemonSetLike extends KubeObject {
  metadata: KubeObject['metadata'] & { name: string };
  status?: {
    desiredNumberScheduled?: number;
    numberReady?: number;
    updatedNumberScheduled?: number;
    numberAvailable?: number;
    observedGeneration?: number;
  };
}

interface ContainerState {
  waiting?: { reason?: string; message?: string };
  running?: { startedAt?: string };
  terminated?: { reason?: string; exitCode?: number; message?: string };
}

export interface PodLike extends KubeObject {
  spec?: { nodeName?: string };
  status?: {
    phase?: string;
    reason?: string;
    message?: string;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
    containerStatuses?: { name: string; ready?: boolean; restartCount?: number; state?: ContainerState }[];
  };
}

export interface CsiNodeLike extends KubeObject {
  spec?: { drivers?: { name: string }[] | null };
}

export interface NodeProblem {
  readonly node: string;
  /** ImagePullBackOff, CrashLoopBackOff, NotRegistered, NoPluginPod, Pending, … */
  readonly reason: string;
  readonly detail?: string;
}

export interface DriverRollout {
  readonly desired: number;
  readonly ready: number;
  readonly updated: number;
}

export interface DriverHealth {
  /** False when the DaemonSet does not exist (yet). */
  readonly deployed: boolean;
  readonly rollout: DriverRollout;
  /** Nodes whose plugin is not serving, sorted by node name. */
  readonly problems: readonly NodeProblem[];
}

/**
 * The plugin's state per node. A node counts as serving when its DaemonSet pod runs with every
 * container ready and kubelet lists the driver in the node's CSINode; a node with a CSINode but no
 * plugin pod counts as `NoPluginPod` (e.g. evicted, or the DaemonSet cannot create it).
 */
export function driverHealth(input: {
  readonly daemonSet: DaemonSetLike | undefined;
  readonly pods: readonly PodLike[];
  readonly csiNodes: readonly CsiNodeLike[];
}): DriverHealth {
  const { daemonSet } = input;
  const rollout: DriverRollout = {
    desired: daemonSet?.status?.desiredNumberScheduled ?? 0,
    ready: daemonSet?.status?.numberReady ?? 0,
    updated: daemonSet?.status?.updatedNumberScheduled ?? 0,
  };
  if (!daemonSet) return { deployed: false, rollout, problems: [] };
  const uid = daemonSet.metadata.uid;
  const pods = input.pods.filter(
    (p) => !p.metadata.deletionTimestamp && (uid === undefined || p.metadata.ownerReferences?.some((o) => o.uid === uid)),
  );
  const registered = new Set(
    input.csiNodes.filter((c) => (c.spec?.drivers ?? []).some((d) => d.name === DRIVER_NAME)).map((c) => c.metadata.name!),
  );
  // A node may have two pods during a rolling update; it is served when either serves.
  const byNode = new Map<string, (NodeProblem | undefined)[]>();
  for (const pod of pods) {
    const node = pod.spec?.nodeName;
    if (!node) continue;
    const problem = podProblem(pod, node) ?? (registered.has(node) ? undefined : notRegistered(node));
    byNode.set(node, [...(byNode.get(node) ?? []), problem]);
  }
  const problems = new Map<string, NodeProblem>();
  for (const [node, found] of byNode) {
    if (found.some((p) => p === undefined)) continue;
    problems.set(node, found[0]!);
  }
  for (const csiNode of input.csiNodes) {
    const node = csiNode.metadata.name!;
    if (!byNode.has(node))
      problems.set(node, { node, reason: 'NoPluginPod', detail: `no ${daemonSet.metadata.name} pod runs on the node` });
  }
  return { deployed: true, rollout, problems: [...problems.values()].sort((a, b) => a.node.localeCompare(b.node)) };
}

function notRegistered(node: string): NodeProblem {
  return { node, reason: 'NotRegistered', detail: `kubelet has not registered ${DRIVER_NAME} (its CSINode lists no such driver)` };
}

/** Why a plugin pod is not serving, as kubelet reports it; undefined when it is running and ready. */
function podProblem(pod: PodLike, node: string): NodeProblem | undefined {
  const status = pod.status ?? {};
  for (const c of status.containerStatuses ?? []) {
    const waiting = c.state?.waiting;
    if (waiting?.reason && waiting.reason !== 'ContainerCreating' && waiting.reason !== 'PodInitializing') {
      return { node, reason: waiting.reason, detail: `container ${c.name}: ${waiting.message ?? waiting.reason}` };
    }
    const terminated = c.state?.terminated;
    if (terminated)
      return {
        node,
        reason: terminated.reason ?? 'Terminated',
        detail: `container ${c.name} exited with code ${terminated.exitCode ?? '?'}`,
      };
  }
  if (status.phase === 'Failed') return { node, reason: status.reason ?? 'Failed', detail: status.message ?? 'the pod failed' };
  if (status.phase !== 'Running') {
    const scheduled = status.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False');
    return { node, reason: 'Pending', detail: scheduled?.message ?? 'the pod has not started yet' };
  }
  const ready = status.conditions?.find((c) => c.type === 'Ready');
  if (ready?.status !== 'True') {
    const notReady = (status.containerStatuses ?? []).filter((c) => !c.ready).map((c) => c.name);
    return {
      node,
      reason: 'NotReady',
      detail: notReady.length > 0 ? `container(s) not ready: ${notReady.join(', ')}` : (ready?.message ?? 'the pod is not ready'),
    };
  }
  return undefined;
}

/** The `DriverReady` condition of a pool over `nodes` (the nodes of its disks), and whether none of them is served. */
export function driverCondition(
  health: DriverHealth | undefined,
  nodes: ReadonlySet<string>,
): {
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  /** Every node of the pool lacks a serving plugin (or the DaemonSet is missing): nothing can be served. */
  noneServing: boolean;
} {
  if (!health)
    return {
      status: 'Unknown',
      reason: 'NotObserved',
      message: 'the operator does not watch the driver stack (started without it)',
      noneServing: false,
    };
  const { desired, ready, updated } = health.rollout;
  const figures = `DaemonSet rollout: ${desired} desired, ${ready} ready, ${updated} updated`;
  if (!health.deployed) {
    return {
      status: 'False',
      reason: 'DaemonSetMissing',
      message: 'the node DaemonSet does not exist yet; the operator creates it (see its log if this lasts)',
      noneServing: true,
    };
  }
  const mine = health.problems.filter((p) => nodes.has(p.node));
  const others = health.problems.length - mine.length;
  const elsewhere = others > 0 ? `; ${others} node(s) outside the pool also lack a working plugin` : '';
  if (nodes.size === 0) {
    return {
      status: 'True',
      reason: 'NoNodesYet',
      message: `the pool holds no disk yet, so no node needs the plugin; ${figures}${elsewhere}`,
      noneServing: false,
    };
  }
  if (mine.length === 0) {
    return {
      status: 'True',
      reason: 'PluginsRunning',
      message: `the node plugin runs and is registered on all ${nodes.size} node(s) of the pool; ${figures}${elsewhere}`,
      noneServing: false,
    };
  }
  const shown = mine.slice(0, MAX_LISTED).map((p) => `${p.node}: ${p.reason}${p.detail ? ` (${p.detail})` : ''}`);
  const more = mine.length > MAX_LISTED ? `, and ${mine.length - MAX_LISTED} more` : '';
  const reasons = [...new Set(mine.map((p) => p.reason))];
  return {
    status: 'False',
    reason: reasons.length === 1 ? reasons[0] : 'PluginsNotRunning',
    message: `the node plugin is not serving on ${mine.length} of ${nodes.size} node(s) of the pool: ${shown.join('; ')}${more}; ${figures}${elsewhere}. See \`kubectl -n <operator namespace> describe pod\` on those nodes`,
    noneServing: mine.length === nodes.size,
  };
}

// Hand-registered Nodes for a control plane without kubelets (DESIGN.md §5): a Node object is
// created with kubectl, then its status is patched (as a kubelet would, via the /status
// subresource — kubectl 1.20 has no --subresource) to Ready=True with capacity, so the scheduler
// places pods on it and the PV controller can bind node-affine volumes.

import type { ControlPlane } from './control-plane.js';

export interface RegisterNodeOptions {
  /** Extra status.capacity / allocatable entries (defaults: cpu 4, memory 8Gi, pods 110, ephemeral-storage 100Gi). */
  capacity?: Record<string, string>;
  /** Extra taints on the Node spec. */
  taints?: Array<{ key: string; value?: string; effect: 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute' }>;
  /** Wait until the controller-manager removed the node.kubernetes.io/not-ready taint (default true). */
  waitSchedulable?: boolean;
}

function readyStatus(name: string, capacity: Record<string, string>): unknown {
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const cond = (type: string, status: string, reason: string, message: string) => ({
    type,
    status,
    reason,
    message,
    lastHeartbeatTime: now,
    lastTransitionTime: now,
  });
  return {
    status: {
      capacity,
      allocatable: capacity,
      addresses: [
        { type: 'InternalIP', address: '127.0.0.1' },
        { type: 'Hostname', address: name },
      ],
      conditions: [
        cond('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'registered by the Stowage test harness'),
        cond('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'registered by the Stowage test harness'),
        cond('PIDPressure', 'False', 'KubeletHasSufficientPID', 'registered by the Stowage test harness'),
        cond('Ready', 'True', 'KubeletReady', 'registered by the Stowage test harness'),
      ],
      nodeInfo: {
        architecture: 'amd64',
        operatingSystem: 'linux',
        kubeletVersion: 'v1.20.2',
        kubeProxyVersion: 'v1.20.2',
        containerRuntimeVersion: 'fake://0.0.0',
        osImage: 'Stowage test node',
        kernelVersion: '',
        bootID: '',
        machineID: '',
        systemUUID: '',
      },
    },
  };
}

/** Creates Node `name` (labels: kubernetes.io/hostname=name, os/arch, plus `labels`) and marks it
 *  Ready=True through the status subresource. Resolves once the node is schedulable. */
export async function registerReadyNode(
  cp: ControlPlane,
  name: string,
  labels: Record<string, string> = {},
  opts: RegisterNodeOptions = {},
): Promise<void> {
  const capacity = { cpu: '4', memory: '8Gi', pods: '110', 'ephemeral-storage': '100Gi', ...(opts.capacity ?? {}) };
  const node = {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name,
      labels: {
        'kubernetes.io/hostname': name,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': 'amd64',
        'beta.kubernetes.io/os': 'linux',
        'beta.kubernetes.io/arch': 'amd64',
        ...labels,
      },
    },
    spec: opts.taints ? { taints: opts.taints } : {},
  };
  const created = await cp.kubectl(['create', '-f', '-'], { input: JSON.stringify(node) });
  if (created.code !== 0) throw new Error(`registerReadyNode(${name}): kubectl create failed: ${created.stderr}`);
  await markNodeReady(cp, name, capacity);
  if (opts.waitSchedulable ?? true) await waitNodeSchedulable(cp, name);
}

/** (Re)sets Ready=True and fresh heartbeats on an existing Node via PATCH /api/v1/nodes/NAME/status. */
export async function markNodeReady(cp: ControlPlane, name: string, capacity?: Record<string, string>): Promise<void> {
  const cap = capacity ?? { cpu: '4', memory: '8Gi', pods: '110', 'ephemeral-storage': '100Gi' };
  const res = await cp.request('PATCH', `/api/v1/nodes/${encodeURIComponent(name)}/status`, readyStatus(name, cap), {
    contentType: 'application/strategic-merge-patch+json',
  });
  if (res.status !== 200) throw new Error(`markNodeReady(${name}): HTTP ${res.status}: ${res.body}`);
}

/** Sets the Ready condition to False/Unknown (to simulate a node going away). */
export async function markNodeNotReady(cp: ControlPlane, name: string, status: 'False' | 'Unknown' = 'Unknown'): Promise<void> {
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const patch = {
    status: {
      conditions: [
        {
          type: 'Ready',
          status,
          reason: 'StowageTestHarness',
          message: 'marked not ready by a test',
          lastHeartbeatTime: now,
          lastTransitionTime: now,
        },
      ],
    },
  };
  const res = await cp.request('PATCH', `/api/v1/nodes/${encodeURIComponent(name)}/status`, patch, {
    contentType: 'application/strategic-merge-patch+json',
  });
  if (res.status !== 200) throw new Error(`markNodeNotReady(${name}): HTTP ${res.status}: ${res.body}`);
}

/** Waits until the Node is Ready and carries no NoSchedule/NoExecute not-ready/unreachable taint. */
export async function waitNodeSchedulable(cp: ControlPlane, name: string, timeoutMs = 60_000): Promise<void> {
  const t0 = Date.now();
  let last = '';
  while (Date.now() - t0 < timeoutMs) {
    const res = await cp.request('GET', `/api/v1/nodes/${encodeURIComponent(name)}`);
    if (res.status === 200) {
      const n = res.json;
      const ready = (n.status?.conditions ?? []).some((c: any) => c.type === 'Ready' && c.status === 'True');
      const taints: any[] = (n.spec?.taints ?? []).filter((t: any) =>
        ['node.kubernetes.io/not-ready', 'node.kubernetes.io/unreachable'].includes(t.key),
      );
      if (ready && taints.length === 0) return;
      last = `ready=${ready} taints=${JSON.stringify(taints)}`;
    } else last = `HTTP ${res.status}`;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`node ${name} not schedulable within ${timeoutMs / 1000} s (${last})`);
}

/** Deletes the Node (pods bound to it are then garbage-collected by the controller-manager). */
export async function deleteNode(cp: ControlPlane, name: string): Promise<void> {
  const r = await cp.kubectl(['delete', 'node', name, '--ignore-not-found', '--wait=false']);
  if (r.code !== 0) throw new Error(`deleteNode(${name}): ${r.stderr}`);
}

// The kustomize overlay the installed-stack test applies with `kubectl apply -k`: config/default as a
// user installs it, with only what this machine differs in changed, each change said here:
//
// - images: config/default's ghcr.io/stowage-dev/stowage replaced by the loopback registry's copy of
//   the archive `make image` built (`make push`), pinned to its digest (kustomize's `images:`
//   transformer): the node's containerd pulls it from there, as a cluster pulls from a mirror.
// - The network. This node has no pod network that reaches anything and no kube-proxy (the CNI
//   bridge exists only so kubelet reports NetworkReady; kubelet-node.ts), so the ClusterIP in
//   KUBERNETES_SERVICE_HOST leads nowhere. The operator pod runs with hostNetwork and is told the
//   API server's real address through the two variables client-node's in-cluster loader reads; it
//   still authenticates with its own ServiceAccount token and CA from the pod's token volume.
//   With hostNetwork its ports are the host's, so metrics and probes move to free ones.
// - Placement: the real node carries a taint that keeps other tests' pods off it; the operator
//   tolerates it and is pinned there (the control plane's other Nodes have no kubelet).
//
// The node DaemonSet and the CSI controller Deployment are not in config/default: the operator
// renders them. Their network needs the same change, which the test applies to the live objects
// under a field manager of its own (networkPatch below); the operator's server-side applies own
// every other field and leave those alone.

import { mkdir, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { REAL_NODE_TAINT } from '../cluster/kubelet-node.js';
import { STOWAGE_REPOSITORY } from '../../src/operator/driver-stack/images.js';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const CONFIG_DEFAULT = path.join(REPO_ROOT, 'config', 'default');
export const TEST_NETWORK_FIELD_MANAGER = 'stowage-test-network';

export interface OverlayOptions {
  dir: string;
  /** https://127.0.0.1:PORT of the test control plane. */
  server: string;
  nodeName: string;
  /** REGISTRY/PATH/stowage@sha256:… or REGISTRY/PATH/stowage:TAG */
  imageDigest: string;
  metricsPort: number;
  probePort: number;
  /** Extra operator arguments, e.g. --image stowage=… for a roll of the node DaemonSet. */
  operatorArgs?: string[];
}

function apiServerEnv(server: string): Array<{ name: string; value: string }> {
  const url = new URL(server);
  return [
    { name: 'KUBERNETES_SERVICE_HOST', value: url.hostname },
    { name: 'KUBERNETES_SERVICE_PORT', value: url.port || '443' },
  ];
}

/**
 * The operator Deployment's changes for this machine (the list at the top), as JSON-patch operations:
 * what the overlay applies, and what a test that installs with `kubectl apply -f` patches in
 * (release-install.test.ts). `args` replaces the operator's arguments whole.
 */
export function operatorNetworkOps(o: {
  server: string;
  nodeName: string;
  metricsPort: number;
  probePort: number;
  args: string[];
}): unknown[] {
  const container = '/spec/template/spec/containers/0';
  return [
    { op: 'add', path: '/spec/template/spec/hostNetwork', value: true },
    { op: 'add', path: '/spec/template/spec/dnsPolicy', value: 'ClusterFirstWithHostNet' },
    { op: 'add', path: '/spec/template/spec/nodeSelector', value: { 'kubernetes.io/hostname': o.nodeName } },
    { op: 'add', path: '/spec/template/spec/tolerations', value: [{ ...REAL_NODE_TAINT, operator: 'Equal' }] },
    { op: 'replace', path: '/spec/template/spec/terminationGracePeriodSeconds', value: 5 },
    { op: 'replace', path: `${container}/args`, value: o.args },
    {
      op: 'replace',
      path: `${container}/ports`,
      value: [
        { name: 'metrics', containerPort: o.metricsPort, protocol: 'TCP' },
        { name: 'probes', containerPort: o.probePort, protocol: 'TCP' },
      ],
    },
    ...apiServerEnv(o.server).map((value) => ({ op: 'add', path: `${container}/env/-`, value })),
  ];
}

/** The operator's arguments on this machine: its metrics and probes on free host ports, then `extra`. */
export function operatorArgs(metricsPort: number, probePort: number, extra: string[] = []): string[] {
  return [
    'operator',
    '--leader-elect',
    `--metrics-bind-address=127.0.0.1:${metricsPort}`,
    `--health-probe-bind-address=127.0.0.1:${probePort}`,
    ...extra,
  ];
}

/** Writes kustomization.yaml and its patch into `dir`; returns `dir` for `kubectl apply -k`. */
export async function writeInstalledOverlay(o: OverlayOptions): Promise<string> {
  await mkdir(o.dir, { recursive: true });
  const base = path.relative(o.dir, CONFIG_DEFAULT);
  const patch = operatorNetworkOps({ ...o, args: operatorArgs(o.metricsPort, o.probePort, o.operatorArgs) });
  const [name, digest] = o.imageDigest.split('@');
  const [repo, tag] = name.split(/:(?=[^/:]*$)/);
  const kustomization = [
    '# Written by test/kubelet/installed-overlay.ts (see there for why each change).',
    'apiVersion: kustomize.config.k8s.io/v1beta1',
    'kind: Kustomization',
    'bases:',
    `  - ${base}`,
    'images:',
    `  - name: ${STOWAGE_REPOSITORY}`,
    `    newName: ${repo}`,
    ...(digest ? [`    digest: ${digest}`] : tag ? [`    newTag: ${tag}`] : []),
    'patchesJson6902:',
    '  - target:',
    '      group: apps',
    '      version: v1',
    '      kind: Deployment',
    '      name: stowage-operator',
    '      namespace: stowage-system',
    '    path: operator-network.json',
    '',
  ].join('\n');
  await writeFile(path.join(o.dir, 'kustomization.yaml'), kustomization);
  await writeFile(path.join(o.dir, 'operator-network.json'), JSON.stringify(patch, null, 2));
  return o.dir;
}

/** The same network change for an operator-rendered workload (DaemonSet or Deployment), as an apply body. */
export function networkPatch(
  kind: 'DaemonSet' | 'Deployment',
  name: string,
  namespace: string,
  containers: string[],
  server: string,
): unknown {
  return {
    apiVersion: 'apps/v1',
    kind,
    metadata: { name, namespace },
    spec: {
      template: {
        spec: {
          hostNetwork: true,
          dnsPolicy: 'ClusterFirstWithHostNet',
          containers: containers.map((c) => ({ name: c, env: apiServerEnv(server) })),
        },
      },
    },
  };
}

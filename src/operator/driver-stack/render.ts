/**
 * The driver stack the operator deploys and keeps (DESIGN §2): the node DaemonSet always, and the
 * CSIDriver plus the CSI controller Deployment while a Dynamic pool exists. Pure functions of their
 * input, so `stowage render`, the controller and the tests all see the same objects, byte for byte.
 */
import type { StoragePool } from '../../crds/storagepool.js';
import type { KubeObject } from '../../kube/types.js';
import type { ImageTable } from './images.js';
import { NEWEST_PROFILE, type SidecarProfile } from './sidecars.js';
import { MANAGED_BY } from '../../crds/labels.js';
import { AGENT_ROOT, DEFAULT_KUBELET_ROOT_DIR } from './host-paths.js';
import { spansNodes } from '../../crds/replication.js';

export const DRIVER_NAME = 'csi.stowage.dev';
export const NODE_DAEMONSET = 'stowage-node';
export const CSI_CONTROLLER_DEPLOYMENT = 'stowage-csi-controller';
/** ServiceAccounts of the deployed components; created by the install (config/rbac), never by the operator. */
export const NODE_SERVICE_ACCOUNT = 'stowage-node';
export const CSI_CONTROLLER_SERVICE_ACCOUNT = 'stowage-csi-controller';
/** Storage must survive memory pressure: the node plugin is evicted last, as kube-proxy is. */
export const NODE_PRIORITY_CLASS = 'system-node-critical';
export const CONTROLLER_PRIORITY_CLASS = 'system-cluster-critical';

/**
 * kubelet's root directory (its `--root-dir`) where the distribution does not move it. k0s, MicroK8s
 * and others keep it elsewhere: the operator's `--kubelet-root-dir` (host-paths.ts) says where.
 */
export const KUBELET_DIR = DEFAULT_KUBELET_ROOT_DIR;
export { AGENT_ROOT };
/** The node plugin's directory and kubelet's plugin-registration directory under a kubelet root. */
export const pluginDir = (kubeletDir: string): string => `${kubeletDir}/plugins/${DRIVER_NAME}`;
export const registrationDir = (kubeletDir: string): string => `${kubeletDir}/plugins_registry`;

/**
 * Who registers the node plugin with kubelet and answers its liveness probe:
 * - `self`: `stowage node` serves kubelet's registration socket itself (src/csi/registration.ts)
 *   and its liveness on its own /healthz, so the DaemonSet runs Stowage's image alone. Its CSI
 *   socket then lives at the host's path (under the kubelet directory it already mounts), because
 *   the endpoint it announces is the path kubelet dials.
 * - `node-driver-registrar`: the upstream `node-driver-registrar` and `livenessprobe` sidecars do it.
 */
export const NODE_REGISTRATIONS = ['self', 'node-driver-registrar'] as const;
export type NodeRegistration = (typeof NODE_REGISTRATIONS)[number];
/** The tested path (test/kubelet runs it against a real kubelet) and one image fewer to mirror; see docs/install.md (Node plugin registration). */
export const DEFAULT_NODE_REGISTRATION: NodeRegistration = 'self';
const SOCKET_DIR = '/csi';
const CSI_ENDPOINT = `unix://${SOCKET_DIR}/csi.sock`;
const CSI_ADDRESS = `${SOCKET_DIR}/csi.sock`;
/** Ports of the health endpoints inside the pods (the node pods share the host's ports only if hostNetwork; they do not). */
const NODE_LIVENESS_PORT = 9808;
/** The node daemon's /metrics (config/prometheus's PodMonitor scrapes the port named `metrics`). */
const NODE_METRICS_PORT = 8080;
const REGISTRAR_HEALTH_PORT = 9809;
const CONTROLLER_LIVENESS_PORT = 9808;
const PROVISIONER_HEALTH_PORT = 9810;
const RESIZER_HEALTH_PORT = 9811;
const SNAPSHOTTER_HEALTH_PORT = 9812;
/** The non-root user of the image (Dockerfile); sidecars run as the same user so they can use the socket. */
const NON_ROOT_UID = 65532;

export interface DriverStackInput {
  /** The number of Dynamic pools, or the pools themselves (the Dynamic ones are counted). */
  readonly dynamicPools: number | readonly Pick<StoragePool, 'spec'>[];
  /**
   * Volumes of the CSI driver that still exist (PersistentVolumes of `csi.stowage.dev`). The CSI
   * parts stay while any exists, so a volume is never stranded without the driver that deletes it.
   */
  readonly volumes?: number;
  readonly images: ImageTable;
  /** Namespace of the DaemonSet and the Deployment: the operator's own (stowage-system). */
  readonly namespace: string;
  /** Who registers the node plugin with kubelet; default {@link DEFAULT_NODE_REGISTRATION}. */
  readonly registration?: NodeRegistration;
  /** The sidecars' flags for the server's version (sidecars.ts); default: the newest servers'. */
  readonly sidecars?: SidecarProfile;
  /** Discovery flags for `stowage node` (`--node-agent-arg`, checked by node-agent-args.ts). */
  readonly nodeAgentArgs?: readonly string[];
  /** kubelet's root directory on the nodes (`--kubelet-root-dir`, checked by host-paths.ts); default {@link KUBELET_DIR}. */
  readonly kubeletDir?: string;
}

/** Whether the CSIDriver and the CSI controller belong to the desired stack. */
export function needsCsiController(input: Pick<DriverStackInput, 'dynamicPools' | 'volumes'>): boolean {
  // Pools whose copies go to other nodes are Ceph's, not the CSI driver's: they need none of it yet.
  const pools =
    typeof input.dynamicPools === 'number'
      ? input.dynamicPools
      : input.dynamicPools.filter((p) => p.spec.mode === 'Dynamic' && !spansNodes(p.spec.replicated)).length;
  return pools > 0 || (input.volumes ?? 0) > 0;
}

/**
 * Every object of the driver stack, in apply order: DaemonSet `stowage-node`, then — while a
 * Dynamic pool or one of its volumes exists — CSIDriver `csi.stowage.dev` and Deployment
 * `stowage-csi-controller`.
 */
export function desiredDriverStack(input: DriverStackInput): KubeObject[] {
  const objects: KubeObject[] = [nodeDaemonSet(input)];
  if (needsCsiController(input)) objects.push(csiDriver(input.sidecars ?? NEWEST_PROFILE), csiControllerDeployment(input));
  return objects;
}

function labels(component: string): Record<string, string> {
  return { ...selector(component), 'app.kubernetes.io/part-of': 'stowage', ...MANAGED_BY };
}

/** Selects the node DaemonSet's pods (the operator watches only those). */
export const NODE_POD_SELECTOR = 'app.kubernetes.io/name=stowage,app.kubernetes.io/component=node';

/** Selectors are immutable, so they hold only what never changes. */
function selector(component: string): Record<string, string> {
  return { 'app.kubernetes.io/name': 'stowage', 'app.kubernetes.io/component': component };
}

const hostPath = (name: string, path: string, type: 'Directory' | 'DirectoryOrCreate') => ({ name, hostPath: { path, type } });
const fieldEnv = (name: string, fieldPath: string) => ({ name, valueFrom: { fieldRef: { fieldPath } } });
const httpProbe = (port: string, extra: Record<string, number> = {}) => ({
  httpGet: { path: '/healthz', port },
  initialDelaySeconds: 10,
  periodSeconds: 10,
  timeoutSeconds: 3,
  failureThreshold: 5,
  ...extra,
});
const sidecarResources = { requests: { cpu: '10m', memory: '32Mi' }, limits: { memory: '128Mi' } };
const restricted = {
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ['ALL'] },
};

/**
 * The disk agent and CSI node service on every node; kubelet registration and liveness either by
 * `stowage node` itself or by the upstream sidecars (see {@link NodeRegistration}).
 */
function nodeDaemonSet({
  images,
  namespace,
  registration = DEFAULT_NODE_REGISTRATION,
  nodeAgentArgs = [],
  kubeletDir = KUBELET_DIR,
}: DriverStackInput): KubeObject {
  const component = 'node';
  const self = registration === 'self';
  // Every path kubelet knows (the plugin's socket, the registration directory, pods' volumes) is
  // under its root, and the container sees it at the host's path: the socket kubelet is told
  // about and the staging and target paths kubelet passes must mean the same file inside and out.
  const plugin = pluginDir(kubeletDir);
  const registry = registrationDir(kubeletDir);
  // With `self`, the socket's path in the container is the host's (kubelet dials what is announced).
  const csiEndpoint = self ? `unix://${plugin}/csi.sock` : CSI_ENDPOINT;
  const nodeContainer = {
    name: 'stowage-node',
    image: images.stowage,
    // Local disks under <root>/disks, Dynamic pools' btrfs under <root>/pools, the CSI Node
    // service on the socket kubelet is told about, /metrics (and /healthz) for the PodMonitor.
    args: [
      'node',
      `--root=${AGENT_ROOT}/disks`,
      `--pool-root=${AGENT_ROOT}`,
      `--csi-endpoint=${csiEndpoint}`,
      // Said, not defaulted: the CSI Node service refuses staging and target paths outside it, and
      // it must be the directory the kubelet-dir volume mounts.
      `--kubelet-dir=${kubeletDir}`,
      ...(self ? [`--kubelet-registration-dir=${registry}`] : []),
      `--metrics-bind-address=:${NODE_METRICS_PORT}`,
      ...nodeAgentArgs,
    ],
    env: [fieldEnv('NODE_NAME', 'spec.nodeName'), fieldEnv('POD_NAMESPACE', 'metadata.namespace')],
    // Formatting, mounting and loop devices need root, the host's devices and its mount
    // namespace; the image's default user is the operator's non-root one.
    securityContext: { privileged: true, runAsUser: 0 },
    ports: [
      ...(self ? [] : [{ name: 'healthz', containerPort: NODE_LIVENESS_PORT, protocol: 'TCP' }]),
      { name: 'metrics', containerPort: NODE_METRICS_PORT, protocol: 'TCP' },
    ],
    // `self`: the daemon's own /healthz; otherwise the livenessprobe sidecar's, which calls Probe.
    livenessProbe: httpProbe(self ? 'metrics' : 'healthz'),
    // Ready once its caches synced (the API answered) and its CSI sockets are served: a rolling
    // update waits for it, and an agent that cannot reach the API shows as not ready, not dead.
    readinessProbe: {
      ...httpProbe('metrics', { initialDelaySeconds: 2, failureThreshold: 3 }),
      httpGet: { path: '/readyz', port: 'metrics' },
    },
    resources: { requests: { cpu: '50m', memory: '128Mi' }, limits: { memory: '512Mi' } },
    volumeMounts: [
      ...(self ? [] : [{ name: 'plugin-dir', mountPath: SOCKET_DIR }]),
      // Bidirectional: mounts the agent makes for pods must reach the host's kubelet.
      { name: 'kubelet-dir', mountPath: kubeletDir, mountPropagation: 'Bidirectional' },
      { name: 'agent-root', mountPath: AGENT_ROOT, mountPropagation: 'Bidirectional' },
      { name: 'dev', mountPath: '/dev', mountPropagation: 'HostToContainer' },
      { name: 'sys', mountPath: '/sys', mountPropagation: 'HostToContainer' },
      { name: 'udev', mountPath: '/run/udev', readOnly: true },
    ],
  };
  const sidecars = self
    ? []
    : [
        {
          name: 'node-driver-registrar',
          image: images['csi-node-driver-registrar'],
          args: [
            `--csi-address=${CSI_ADDRESS}`,
            `--kubelet-registration-path=${plugin}/csi.sock`,
            `--http-endpoint=:${REGISTRAR_HEALTH_PORT}`,
          ],
          ports: [{ name: 'registrar', containerPort: REGISTRAR_HEALTH_PORT, protocol: 'TCP' }],
          livenessProbe: httpProbe('registrar'),
          securityContext: restricted,
          resources: sidecarResources,
          volumeMounts: [
            { name: 'plugin-dir', mountPath: SOCKET_DIR },
            { name: 'registration-dir', mountPath: '/registration' },
          ],
        },
        {
          name: 'liveness-probe',
          image: images.livenessprobe,
          args: [`--csi-address=${CSI_ADDRESS}`, `--health-port=${NODE_LIVENESS_PORT}`],
          securityContext: restricted,
          resources: sidecarResources,
          volumeMounts: [{ name: 'plugin-dir', mountPath: SOCKET_DIR }],
        },
      ];
  return {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name: NODE_DAEMONSET, namespace, labels: labels(component) },
    spec: {
      selector: { matchLabels: selector(component) },
      updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } },
      template: {
        metadata: { labels: labels(component) },
        spec: {
          serviceAccountName: NODE_SERVICE_ACCOUNT,
          priorityClassName: NODE_PRIORITY_CLASS,
          // The agent inventories every node's disks and serves volumes wherever pods land, so it
          // tolerates every taint, as kube-proxy and CSI node plugins do.
          tolerations: [{ operator: 'Exists' }],
          containers: [nodeContainer, ...sidecars],
          volumes: [
            // `self` reaches both directories through the kubelet directory (and creates the plugin's).
            ...(self ? [] : [hostPath('plugin-dir', plugin, 'DirectoryOrCreate'), hostPath('registration-dir', registry, 'Directory')]),
            hostPath('kubelet-dir', kubeletDir, 'Directory'),
            hostPath('agent-root', AGENT_ROOT, 'DirectoryOrCreate'),
            hostPath('dev', '/dev', 'Directory'),
            hostPath('sys', '/sys', 'Directory'),
            hostPath('udev', '/run/udev', 'DirectoryOrCreate'),
          ],
        },
      },
    },
  };
}

/**
 * How kubelet and the scheduler treat the driver; every field here is immutable after creation
 * (storageCapacity is mutable from 1.23). The scheduler waits for CSIStorageCapacity objects only
 * when storageCapacity is true, so it is true only where the provisioner publishes them.
 */
function csiDriver(profile: SidecarProfile): KubeObject {
  return {
    apiVersion: 'storage.k8s.io/v1',
    kind: 'CSIDriver',
    metadata: { name: DRIVER_NAME, labels: labels('csi-driver') },
    spec: {
      attachRequired: false,
      podInfoOnMount: true,
      storageCapacity: profile.capacityTracking,
      fsGroupPolicy: 'File',
      volumeLifecycleModes: ['Persistent'],
    },
  };
}

/** The CSI controller service and the kubernetes-csi controller sidecars, one leader at a time. */
function csiControllerDeployment({ images, namespace, sidecars: profile = NEWEST_PROFILE }: DriverStackInput): KubeObject {
  const component = 'csi-controller';
  const sidecar = (name: string, image: string, port: number, args: string[]) => ({
    name,
    image,
    args: [
      `--csi-address=$(ADDRESS)`,
      '--leader-election',
      `--leader-election-namespace=$(POD_NAMESPACE)`,
      `--http-endpoint=:${port}`,
      ...args,
    ],
    // NAMESPACE and POD_NAME: csi-provisioner finds the owner of its CSIStorageCapacity objects by them.
    env: [
      { name: 'ADDRESS', value: CSI_ADDRESS },
      fieldEnv('POD_NAMESPACE', 'metadata.namespace'),
      fieldEnv('NAMESPACE', 'metadata.namespace'),
      fieldEnv('POD_NAME', 'metadata.name'),
    ],
    ports: [{ name: name.replace(/^csi-/, ''), containerPort: port, protocol: 'TCP' }],
    livenessProbe: httpProbe(name.replace(/^csi-/, ''), { initialDelaySeconds: 10 }),
    securityContext: restricted,
    resources: sidecarResources,
    volumeMounts: [{ name: 'socket-dir', mountPath: SOCKET_DIR }],
  });
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: CSI_CONTROLLER_DEPLOYMENT, namespace, labels: labels(component) },
    spec: {
      replicas: 1,
      selector: { matchLabels: selector(component) },
      template: {
        metadata: { labels: labels(component) },
        spec: {
          serviceAccountName: CSI_CONTROLLER_SERVICE_ACCOUNT,
          priorityClassName: CONTROLLER_PRIORITY_CLASS,
          securityContext: {
            runAsNonRoot: true,
            runAsUser: NON_ROOT_UID,
            runAsGroup: NON_ROOT_UID,
            seccompProfile: { type: 'RuntimeDefault' },
          },
          containers: [
            {
              name: 'stowage-csi-controller',
              image: images.stowage,
              args: ['csi-controller', `--endpoint=${CSI_ENDPOINT}`],
              env: [fieldEnv('POD_NAMESPACE', 'metadata.namespace')],
              ports: [{ name: 'healthz', containerPort: CONTROLLER_LIVENESS_PORT, protocol: 'TCP' }],
              livenessProbe: httpProbe('healthz'),
              securityContext: restricted,
              resources: { requests: { cpu: '20m', memory: '96Mi' }, limits: { memory: '384Mi' } },
              volumeMounts: [{ name: 'socket-dir', mountPath: SOCKET_DIR }],
            },
            // Topology: the driver reports topology.stowage.dev/node; strict topology passes only
            // the selected node to CreateVolume, because a volume lives on one node's disks.
            // Capacity (where the server has CSIStorageCapacity): one object per node from
            // GetCapacity, owned by this Deployment, so the scheduler sees free space. The flags
            // follow the server's version (sidecars.ts).
            sidecar('csi-provisioner', images['csi-provisioner'], PROVISIONER_HEALTH_PORT, [...profile.provisionerArgs]),
            sidecar('csi-resizer', images['csi-resizer'], RESIZER_HEALTH_PORT, ['--timeout=60s']),
            sidecar('csi-snapshotter', images['csi-snapshotter'], SNAPSHOTTER_HEALTH_PORT, ['--extra-create-metadata', '--timeout=60s']),
            {
              name: 'liveness-probe',
              image: images.livenessprobe,
              args: [`--csi-address=${CSI_ADDRESS}`, `--health-port=${CONTROLLER_LIVENESS_PORT}`],
              securityContext: restricted,
              resources: sidecarResources,
              volumeMounts: [{ name: 'socket-dir', mountPath: SOCKET_DIR }],
            },
          ],
          volumes: [{ name: 'socket-dir', emptyDir: {} }],
        },
      },
    },
  };
}

import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { KubeClient } from '../kube/client.js';
import { logger } from '../util/logger.js';
import { VERSION } from '../util/version.js';
import { Manager } from '../runtime/manager.js';
import { setupControllers } from './setup.js';
import { imageTable } from './driver-stack/images.js';
import { nodeAgentArgs } from './driver-stack/node-agent-args.js';
import { kubeletRootDir } from './driver-stack/host-paths.js';
import type { NodeRegistration } from './driver-stack/render.js';

/** The field manager of everything the operator writes (DESIGN §3). */
export const OPERATOR_FIELD_MANAGER = 'stowage-operator';
const IN_CLUSTER_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';
const DEFAULT_NAMESPACE = 'stowage-system';

export interface OperatorOptions {
  readonly kubeconfig?: string | undefined;
  readonly context?: string | undefined;
  readonly metricsAddress: string;
  readonly healthAddress: string;
  readonly leaderElect: boolean;
  readonly leaderElectionNamespace?: string | undefined;
  readonly leaderElectionId: string;
  readonly workers: number;
  /** Full resync period; default 600 s. */
  readonly resyncSeconds?: number;
  /** `NAME=REF` overrides of the driver stack's image table (`--image`). */
  readonly images?: readonly string[];
  /** Namespace of the driver stack (default: this pod's namespace, or stowage-system). */
  readonly namespace?: string | undefined;
  /** Who registers the node plugin with kubelet (`--node-registration`). */
  readonly nodeRegistration?: NodeRegistration | undefined;
  /** Discovery flags for the node agent in the node DaemonSet (`--node-agent-arg`). */
  readonly nodeAgentArgs?: readonly string[] | undefined;
  /** kubelet's root directory on the nodes (`--kubelet-root-dir`); default /var/lib/kubelet. */
  readonly kubeletRootDir?: string | undefined;
}

/** Runs the operator until SIGTERM/SIGINT (exit code 0) or until leadership is lost (exit code 1). */
export async function runOperator(opts: OperatorOptions): Promise<number> {
  const log = logger('operator');
  // Checked now, so a typo fails at start-up; applied per server version by the driver stack.
  imageTable(opts.images);
  const agentArgs = nodeAgentArgs(opts.nodeAgentArgs);
  const kubeletDir = kubeletRootDir(opts.kubeletRootDir);
  const client = await KubeClient.load({ kubeconfig: opts.kubeconfig, context: opts.context, userAgent: `stowage-operator/${VERSION}` });
  const identity = `${hostname()}_${randomUUID().slice(0, 8)}`;
  const manager = new Manager({
    client,
    ...(opts.resyncSeconds ? { informerDefaults: { resyncMs: opts.resyncSeconds * 1000 } } : {}),
    metricsAddress: opts.metricsAddress,
    healthAddress: opts.healthAddress,
    leaderElection: opts.leaderElect
      ? { namespace: opts.leaderElectionNamespace ?? ownNamespace(), name: opts.leaderElectionId, identity }
      : undefined,
  });
  const { events } = setupControllers(manager, {
    workers: opts.workers,
    fieldManager: OPERATOR_FIELD_MANAGER,
    driverStack: {
      namespace: opts.namespace ?? ownNamespace(),
      imageOverrides: opts.images ?? [],
      ...(opts.nodeRegistration ? { registration: opts.nodeRegistration } : {}),
      ...(agentArgs.length > 0 ? { nodeAgentArgs: agentArgs } : {}),
      kubeletDir,
    },
  });

  const abort = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    log.info({ signal }, 'shutting down: finishing in-flight reconciles');
    abort.abort();
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  log.info({ version: VERSION, server: client.server, identity, leaderElect: opts.leaderElect }, 'stowage operator starting');
  try {
    const reason = await manager.run(abort.signal);
    if (reason === 'lost-leadership') {
      log.error('leadership lost; exiting so that a restart begins from a clean state');
      return 1;
    }
    log.info('stopped');
    return 0;
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    await events.drain();
    client.close();
  }
}

function ownNamespace(): string {
  if (process.env.POD_NAMESPACE) return process.env.POD_NAMESPACE;
  try {
    return readFileSync(IN_CLUSTER_NAMESPACE_FILE, 'utf8').trim();
  } catch {
    return DEFAULT_NAMESPACE;
  }
}

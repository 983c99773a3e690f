import { KubeClient } from '../kube/client.js';
import { logger } from '../util/logger.js';
import { VERSION } from '../util/version.js';
import { parseBytes } from '../util/quantity.js';
import { DEFAULT_ROOT, createNodeAgent, type NodeAgent } from './agent/agent.js';
import { startNodeMetrics, type NodeMetrics } from './node-metrics.js';
import type { Check } from '../runtime/health-server.js';
import { btrfsEngineSource } from './engine/btrfs-engine-source.js';
import type { BtrfsEngine } from './engine/btrfs-engine.js';
import type { DynamicPoolSync } from './agent/dynamic-pools.js';

export interface NodeCommandOptions {
  readonly kubeconfig?: string | undefined;
  readonly context?: string | undefined;
  readonly nodeName?: string | undefined;
  readonly allowDevice: readonly string[];
  readonly root: string;
  readonly discoveryDir: readonly string[];
  readonly includePath: readonly string[];
  readonly excludePath: readonly string[];
  readonly includeVendor: readonly string[];
  readonly excludeVendor: readonly string[];
  readonly includeModel: readonly string[];
  readonly excludeModel: readonly string[];
  readonly minSize?: string | undefined;
  readonly discoveryInterval: number;
  readonly healthInterval: number;
  readonly udev: boolean;
  /** `HOST:PORT` for /metrics and /healthz; "0" or absent: off. */
  readonly metricsBindAddress?: string | undefined;
}

/**
 * `stowage node`: runs the node agent until SIGTERM/SIGINT. The node name comes from --node-name or
 * NODE_NAME (the DaemonSet passes spec.nodeName through the downward API).
 */
export async function runNodeCommand(
  opts: NodeCommandOptions,
  dynamicPools?: DynamicPoolSync & Partial<Pick<BtrfsEngine, 'mountedPool'>>,
  onMetrics?: (metrics: NodeMetrics) => void,
  healthChecks?: Readonly<Record<string, Check>>,
  readyChecks?: Readonly<Record<string, Check>>,
  onReadiness?: (notReady: Check) => void,
): Promise<number> {
  const log = logger('node-agent');
  const nodeName = opts.nodeName ?? process.env.NODE_NAME;
  if (!nodeName) throw new Error('the node name is unknown: set NODE_NAME (from the downward API, spec.nodeName) or pass --node-name');
  const client = await KubeClient.load({ kubeconfig: opts.kubeconfig, context: opts.context, userAgent: `stowage-node/${VERSION}` });
  const filter = (paths: readonly string[], vendors: readonly string[], models: readonly string[]) =>
    paths.length + vendors.length + models.length > 0 ? { paths, vendors, models } : undefined;
  const include = filter(opts.includePath, opts.includeVendor, opts.includeModel);
  const exclude = filter(opts.excludePath, opts.excludeVendor, opts.excludeModel);
  let running: NodeAgent | undefined;
  // The engine's pool filesystems (usage, device errors) for every Dynamic pool with a disk here.
  const dynamicPoolsHere = (): string[] =>
    (running?.disks() ?? []).filter((d) => d.spec.claim?.mode === 'Dynamic').map((d) => d.spec.claim!.pool);
  const engine = dynamicPools?.mountedPool
    ? btrfsEngineSource(dynamicPools as Pick<BtrfsEngine, 'mountedPool'>, dynamicPoolsHere)
    : undefined;
  // /readyz: not ready until the agent's cache synced and its first pass is done (while the API is
  // away it says so and why), nor while a CSI socket is gone; /healthz stays the liveness.
  let starting: { notReady(): string | undefined } | undefined;
  const allReadyChecks: Record<string, Check> = {
    'node-agent': () => (starting ? starting.notReady() : 'the node agent has not started yet'),
    ...healthChecks,
    ...readyChecks,
  };
  // The CSI Probe answers from the very same checks, so it never says ready where /readyz does not.
  onReadiness?.(() => {
    const failing = Object.entries(allReadyChecks)
      .map(([name, check]) => [name, check()] as const)
      .filter(([, reason]) => reason !== undefined);
    return failing.length > 0 ? failing.map(([name, reason]) => `${name}: ${reason}`).join('; ') : undefined;
  });
  const metrics = await startNodeMetrics({
    client,
    nodeName,
    address: opts.metricsBindAddress,
    disks: () => running?.disks() ?? [],
    ...(engine ? { engine } : {}),
    ...(healthChecks ? { healthChecks } : {}),
    readyChecks: allReadyChecks,
  });
  onMetrics?.(metrics);
  const agent = createNodeAgent({
    metrics: metrics.agent,
    client,
    nodeName,
    allowDevices: opts.allowDevice,
    root: opts.root || DEFAULT_ROOT,
    discoveryDirs: opts.discoveryDir,
    ...(include ? { include } : {}),
    ...(exclude ? { exclude } : {}),
    ...(opts.minSize ? { minSizeBytes: parseBytes(opts.minSize) } : {}),
    discoveryIntervalMs: opts.discoveryInterval * 1000,
    healthIntervalMs: opts.healthInterval * 1000,
    udev: opts.udev,
    ...(dynamicPools ? { dynamicPools } : {}),
  });
  starting = agent;
  await agent.start();
  running = agent;
  log.info({ version: VERSION, node: nodeName, server: client.server, metrics: metrics.url }, 'stowage node agent running');
  await new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      log.info({ signal }, 'shutting down');
      resolve();
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  });
  await agent.stop();
  await metrics.close();
  client.close();
  return 0;
}

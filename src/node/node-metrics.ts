/**
 * Everything a node daemon exports, in one call: process and Node.js defaults, its API client's
 * request metrics, the disks of its node, its engine (when it runs Dynamic pools), and the objects
 * its agent and CSI node service record into, served on `/metrics` (plus `/healthz`, `/readyz`).
 *
 * @example  (in `stowage node`)
 *   const metrics = await startNodeMetrics({ client, nodeName, address: opts.metricsBindAddress,
 *     disks: () => agentInformer.list(), engine: () => engine.stats() });
 *   await metrics.agent.timeWipe(wipe.method, () => wipeDisk(...));
 *   await metrics.close();   // on shutdown
 */
import { Registry, collectDefaultMetrics } from 'prom-client';
import type { KubeClient } from '../kube/client.js';
import { instrumentClient } from '../runtime/api-metrics.js';
import { HealthServer, type Check } from '../runtime/health-server.js';
import { AgentMetrics } from './agent/agent-metrics.js';
import { CsiMetrics } from '../csi/csi-metrics.js';
import { registerDiskMetrics, type DiskSource } from './agent/disk-metrics.js';
import { registerEngineMetrics, type EngineSource } from './engine/engine-metrics.js';

export interface NodeMetricsOptions {
  readonly client: KubeClient;
  readonly nodeName: string;
  /** `HOST:PORT` to serve on; undefined or "0": build the registry but serve nothing. */
  readonly address?: string | undefined;
  /** The NodeDisks to export; only those whose spec.nodeName is this node are used. */
  readonly disks: DiskSource;
  readonly engine?: EngineSource;
  /** Further liveness checks served on /healthz (e.g. the CSI sockets). */
  readonly healthChecks?: Readonly<Record<string, Check>>;
  /** Checks served on /readyz (caches synced, sockets served). */
  readonly readyChecks?: Readonly<Record<string, Check>>;
}

export interface NodeMetrics {
  readonly registry: Registry;
  readonly agent: AgentMetrics;
  readonly csi: CsiMetrics;
  /** Base URL of the server (`http://127.0.0.1:8080`), or undefined when not serving. */
  readonly url: string | undefined;
  close(): Promise<void>;
}

export async function startNodeMetrics(opts: NodeMetricsOptions): Promise<NodeMetrics> {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  instrumentClient(opts.client, registry);
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- a scrape reads whatever the API server stored (old servers skip the CRD rules): a half-formed object must not fail it
  registerDiskMetrics(registry, () => opts.disks().filter((d) => d.spec?.nodeName === opts.nodeName));
  if (opts.engine) registerEngineMetrics(registry, opts.nodeName, opts.engine);
  const agent = new AgentMetrics(registry, opts.nodeName);
  const csi = new CsiMetrics(registry);
  let server: HealthServer | undefined;
  let url: string | undefined;
  if (opts.address !== undefined && opts.address !== '0') {
    server = new HealthServer(registry);
    server.addHealthCheck('ping', () => undefined);
    for (const [name, check] of Object.entries(opts.healthChecks ?? {})) server.addHealthCheck(name, check);
    for (const [name, check] of Object.entries(opts.readyChecks ?? {})) server.addReadyCheck(name, check);
    url = (await server.listen(opts.address)).replace(/\/$/, '');
  }
  return { registry, agent, csi, url, close: async () => server?.close() };
}

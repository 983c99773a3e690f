/** `stowage csi-controller`: the Identity and Controller services on a Unix socket, until SIGTERM. */
import { Registry, collectDefaultMetrics } from 'prom-client';
import { KubeClient } from '../kube/client.js';
import { CsiMetrics } from './csi-metrics.js';
import { instrumentClient } from '../runtime/api-metrics.js';
import { HealthServer } from '../runtime/health-server.js';
import { logger } from '../util/logger.js';
import { VERSION } from '../util/version.js';
import { CsiController } from './controller-service.js';
import { serveOnSocket, type CallObserver, type SocketServer } from './grpc.js';
import { identityService } from './identity.js';

export interface CsiControllerServer {
  readonly controller: CsiController;
  stop(): Promise<void>;
}

/** Starts the controller's caches and serves it on `endpoint` (unix:///path). */
export async function startCsiControllerServer(opts: {
  client: KubeClient;
  endpoint: string;
  metadataReservePercent?: number;
  observe?: CallObserver;
}): Promise<CsiControllerServer> {
  const controller = new CsiController({
    client: opts.client,
    ...(opts.metadataReservePercent !== undefined ? { metadataReservePercent: opts.metadataReservePercent } : {}),
    ...(opts.observe ? { observe: opts.observe } : {}),
  });
  await controller.start();
  let server: SocketServer;
  try {
    server = await serveOnSocket(opts.endpoint, [identityService(() => controller.ready(), opts.observe), controller.service()]);
  } catch (err) {
    await controller.stop();
    throw err;
  }
  return {
    controller,
    async stop() {
      await server.stop();
      await controller.stop();
    },
  };
}

export async function runCsiController(opts: {
  endpoint: string;
  kubeconfig?: string;
  context?: string;
  metadataReservePercent?: number;
  metricsBindAddress?: string;
}): Promise<number> {
  const log = logger('csi-controller');
  const client = await KubeClient.load({
    kubeconfig: opts.kubeconfig,
    context: opts.context,
    userAgent: `stowage-csi-controller/${VERSION}`,
  });
  // CSI call counts and latencies, API calls and process metrics on /metrics (plus /healthz).
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  instrumentClient(client, registry);
  const csi = new CsiMetrics(registry);
  const health = opts.metricsBindAddress && opts.metricsBindAddress !== '0' ? new HealthServer(registry) : undefined;
  if (health) {
    health.addHealthCheck('ping', () => undefined);
    await health.listen(opts.metricsBindAddress!);
  }
  const running = await startCsiControllerServer({
    client,
    endpoint: opts.endpoint,
    observe: (method, code, seconds) => csi.observe(method, code, seconds),
    ...(opts.metadataReservePercent !== undefined ? { metadataReservePercent: opts.metadataReservePercent } : {}),
  });
  log.info({ version: VERSION, endpoint: opts.endpoint }, 'CSI controller serving');
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
  });
  await running.stop();
  await health?.close();
  client.close();
  return 0;
}

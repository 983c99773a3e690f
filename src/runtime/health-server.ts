import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { logger } from '../util/logger.js';
import { errorMessage } from '../util/errors.js';

/** A named check; returns a reason when it fails. */
export type Check = () => string | undefined;

/** `HOST:PORT` (`:8080` means all interfaces; port 0 picks a free one). */
export function parseAddress(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  const port = Number(address.slice(colon + 1));
  if (colon < 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`"${address}" is not a listen address; use HOST:PORT, e.g. 127.0.0.1:8080 or :8080`);
  }
  const host = address.slice(0, colon).replace(/^\[|\]$/g, '');
  return { host: host === '' ? '0.0.0.0' : host, port };
}

/**
 * Serves `/healthz` (the process is alive and its loops turn), `/readyz` (ready for traffic:
 * caches synced) and `/metrics` (Prometheus text format) on one port, like controller-runtime's
 * probe and metrics endpoints.
 */
export class HealthServer {
  private readonly log = logger('health-server');
  private readonly server: http.Server;
  private readonly liveness = new Map<string, Check>();
  private readonly readiness = new Map<string, Check>();

  constructor(private readonly registry: Registry) {
    // handle() answers every failure with a 500 itself: nothing is left to reject.
    this.server = http.createServer((req, res) => void this.handle(req, res));
  }

  addHealthCheck(name: string, check: Check): void {
    this.liveness.set(name, check);
  }

  addReadyCheck(name: string, check: Check): void {
    this.readiness.set(name, check);
  }

  async listen(address: string): Promise<string> {
    const { host, port } = parseAddress(address);
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve());
    });
    const bound = this.server.address() as AddressInfo;
    const url = `http://${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`;
    this.log.info({ url }, 'serving /healthz, /readyz and /metrics');
    return url;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    try {
      if (path === '/metrics') {
        const body = await this.registry.metrics();
        res.writeHead(200, { 'Content-Type': this.registry.contentType }).end(body);
      } else if (path === '/healthz' || path === '/livez') {
        this.answerChecks(res, this.liveness);
      } else if (path === '/readyz') {
        this.answerChecks(res, this.readiness);
      } else {
        res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found: try /healthz, /readyz or /metrics\n');
      }
    } catch (err) {
      res.writeHead(500, { 'Content-Type': 'text/plain' }).end(`${errorMessage(err)}\n`);
    }
  }

  private answerChecks(res: http.ServerResponse, checks: Map<string, Check>): void {
    const failures: string[] = [];
    for (const [name, check] of checks) {
      const reason = check();
      if (reason !== undefined) failures.push(`[-]${name} failed: ${reason}`);
    }
    if (failures.length === 0) res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok\n');
    else res.writeHead(503, { 'Content-Type': 'text/plain' }).end(`${failures.join('\n')}\n`);
  }
}

import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '../../src/kube/client-node.js';
import { KubeClient } from '../../src/kube/client.js';
import type { KubeObject } from '../../src/kube/types.js';

/** What the next watch request gets. */
export type WatchBehaviour =
  | { kind: 'stream' } // stays open; events are pushed with `emit`
  | { kind: 'status'; code: number } // an HTTP error answer
  | { kind: 'reset' } // headers, then the TCP connection is destroyed
  | { kind: 'gone-in-stream' } // an in-stream ERROR event with code 410
  | { kind: 'silent' }; // headers, then nothing at all (a hung connection)

/**
 * A loopback HTTP server that speaks just enough of the Kubernetes list/watch protocol for one
 * cluster-scoped resource (`/api/v1/configmaps`-shaped path given at construction) and misbehaves
 * on demand: the faults a real API server cannot be made to produce when a test wants them.
 */
export class FaultServer {
  readonly objects = new Map<string, KubeObject>();
  readonly watchPlan: WatchBehaviour[] = [];
  lists = 0;
  /** The resourceVersion parameter of each list ('' when absent). */
  readonly listResourceVersions: string[] = [];
  watches = 0;
  readonly watchResourceVersions: string[] = [];
  private rv = 100;
  private readonly streams = new Set<http.ServerResponse>();
  private readonly server: http.Server;

  constructor(readonly path: string) {
    this.server = http.createServer((req, res) => this.handle(req, res));
  }

  async start(): Promise<KubeClient> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    const port = (this.server.address() as AddressInfo).port;
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'fault', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
      users: [{ name: 'anon' }],
      contexts: [{ name: 'fault', cluster: 'fault', user: 'anon' }],
      currentContext: 'fault',
    });
    return KubeClient.fromKubeConfig(kc);
  }

  async stop(): Promise<void> {
    for (const s of this.streams) s.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Changes an object and streams the event to every open watch. */
  put(name: string, data: Record<string, string>): void {
    const existed = this.objects.has(name);
    const obj: KubeObject = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, resourceVersion: String(++this.rv) }, data };
    this.objects.set(name, obj);
    this.emit({ type: existed ? 'MODIFIED' : 'ADDED', object: obj });
  }

  remove(name: string): void {
    const obj = this.objects.get(name);
    if (!obj) return;
    this.objects.delete(name);
    this.emit({ type: 'DELETED', object: { ...obj, metadata: { ...obj.metadata, resourceVersion: String(++this.rv) } } });
  }

  /** Changes state without telling open watches (as if the events were lost with a dropped connection). */
  putSilently(name: string, data: Record<string, string>): void {
    this.objects.set(name, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, resourceVersion: String(++this.rv) }, data });
  }

  removeSilently(name: string): void {
    this.objects.delete(name);
    ++this.rv;
  }

  bookmark(): void {
    this.emit({ type: 'BOOKMARK', object: { kind: 'ConfigMap', apiVersion: 'v1', metadata: { resourceVersion: String(++this.rv) } } });
  }

  /** Ends every open watch normally, as the server does when timeoutSeconds elapses. */
  endWatches(): void {
    for (const s of this.streams) s.end();
    this.streams.clear();
  }

  get openWatches(): number {
    return this.streams.size;
  }

  emit(event: unknown): void {
    for (const s of this.streams) s.write(`${JSON.stringify(event)}\n`);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== this.path) {
      res.writeHead(404).end(JSON.stringify({ kind: 'Status', code: 404, reason: 'NotFound', message: 'no such path' }));
      return;
    }
    if (url.searchParams.get('watch') !== 'true') {
      this.lists += 1;
      this.listResourceVersions.push(url.searchParams.get('resourceVersion') ?? '');
      const list = {
        kind: 'ConfigMapList',
        apiVersion: 'v1',
        metadata: { resourceVersion: String(this.rv) },
        items: [...this.objects.values()],
      };
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(list));
      return;
    }
    this.watches += 1;
    this.watchResourceVersions.push(url.searchParams.get('resourceVersion') ?? '');
    const behaviour = this.watchPlan.shift() ?? { kind: 'stream' };
    switch (behaviour.kind) {
      case 'status':
        res
          .writeHead(behaviour.code, { 'Content-Type': 'application/json' })
          .end(JSON.stringify({ kind: 'Status', code: behaviour.code, reason: 'InternalError', message: 'injected fault' }));
        return;
      case 'reset':
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.flushHeaders();
        setTimeout(() => req.socket.destroy(), 20);
        return;
      case 'gone-in-stream':
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(
          `${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version' } })}\n`,
        );
        return;
      case 'silent':
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.flushHeaders();
        this.silent.add(res);
        res.on('close', () => this.silent.delete(res));
        return;
      case 'stream':
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.flushHeaders();
        this.streams.add(res);
        res.on('close', () => this.streams.delete(res));
        return;
    }
  }

  private readonly silent = new Set<http.ServerResponse>();
}

/** Polls `predicate` every 10 ms until it holds, or fails after `timeoutMs` with `what`. */
export async function eventually(predicate: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

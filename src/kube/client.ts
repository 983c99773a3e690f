import * as http from 'node:http';
import * as https from 'node:https';
import { KubeConfig } from './client-node.js';
import { ApiError } from './api-error.js';
import { parseResourcePath, resourcePath, apiVersionOf, type ResourceType } from './resources.js';
import type { KubeObject, ObjectList, Status, WatchEvent } from './types.js';
import { readWatchStream } from './watch-stream.js';

/** Ordinary requests give up after this long; watches have their own server-side timeout. */
const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/** Authorization headers (bearer tokens from files or exec plugins) are re-read this often. */
const AUTH_REFRESH_MS = 60_000;
/**
 * Requests in flight at once (HTTP/1.1: one connection each): enough for a busy operator without
 * flooding a small API server. Watches have their own connections, outside this limit: each holds
 * one for minutes, and they must never take the places requests need.
 */
const MAX_SOCKETS = 32;

/** One finished API call, as reported to observers (metrics, the least-privilege audit in tests). */
export interface ApiCall {
  /** RBAC verb: get, list, watch, create, update, patch, delete, deletecollection. */
  readonly verb: string;
  readonly group: string;
  readonly resource: string;
  readonly subresource?: string | undefined;
  readonly namespace?: string | undefined;
  /** HTTP status code, or 0 when no response arrived (connection refused, reset, timeout). */
  readonly code: number;
  readonly durationSeconds: number;
}

export type ApiCallObserver = (call: ApiCall) => void;

export interface RequestSpec {
  readonly method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  readonly path: string;
  readonly query?: Record<string, string | number | boolean | undefined>;
  readonly body?: unknown;
  /** Defaults to application/json when there is a body. */
  readonly contentType?: string;
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal | undefined;
}

export interface ListOptions {
  readonly namespace?: string;
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
  readonly limit?: number;
  readonly continue?: string;
  readonly resourceVersion?: string;
}

export interface ApplyOptions {
  /** The component's field manager, e.g. `stowage-operator`. */
  readonly fieldManager: string;
  /** Take ownership of fields another manager set (the controller's intent wins over drift). */
  readonly force?: boolean;
  readonly subresource?: 'status';
}

export interface DeleteOptions {
  readonly namespace?: string;
  /** Only delete the object with this UID: protects against deleting a recreated namesake. */
  readonly uid?: string;
  readonly resourceVersion?: string;
  readonly propagationPolicy?: 'Foreground' | 'Background' | 'Orphan';
}

export type JsonPatchOperation = { op: 'add' | 'replace' | 'test'; path: string; value: unknown } | { op: 'remove'; path: string };

export interface KubeClientOptions {
  /** Sent as User-Agent, so audit logs tell the components apart. */
  readonly userAgent?: string;
}

/**
 * A small Kubernetes REST client: typed verbs over one keep-alive connection pool, watch streams,
 * errors as {@link ApiError}, and observers for every call. Configuration and authentication come
 * from client-node's KubeConfig (kubeconfig files, in-cluster service-account tokens, exec plugins).
 *
 * @example
 *   const client = await KubeClient.load();
 *   const pv = await client.get(PERSISTENT_VOLUMES, 'pv-1');
 */
export class KubeClient {
  readonly server: string;
  private readonly agent: http.Agent;
  private readonly watchAgent: http.Agent;
  private readonly observers = new Set<ApiCallObserver>();
  private headers: Record<string, string> = {};
  private headersAt = 0;

  private constructor(
    private readonly kubeConfig: KubeConfig,
    private readonly userAgent: string,
    tls: https.AgentOptions,
  ) {
    const cluster = kubeConfig.getCurrentCluster();
    if (!cluster) throw new Error('the kubeconfig has no current cluster; set one with `kubectl config use-context NAME`');
    this.server = cluster.server.replace(/\/+$/, '');
    const agent = (maxSockets: number): http.Agent =>
      this.server.startsWith('https:')
        ? new https.Agent({ ...tls, keepAlive: true, maxSockets })
        : new http.Agent({ keepAlive: true, maxSockets });
    this.agent = agent(MAX_SOCKETS);
    this.watchAgent = agent(Infinity);
  }

  /**
   * Loads configuration the way kubectl does: `kubeconfig` if given, else `$KUBECONFIG`,
   * else `~/.kube/config`, else the in-cluster service account.
   */
  static async load(opts: KubeClientOptions & { kubeconfig?: string | undefined; context?: string | undefined } = {}): Promise<KubeClient> {
    const kc = new KubeConfig();
    if (opts.kubeconfig) kc.loadFromFile(opts.kubeconfig);
    else kc.loadFromDefault();
    if (opts.context) kc.setCurrentContext(opts.context);
    return KubeClient.fromKubeConfig(kc, opts);
  }

  static async fromKubeConfig(kc: KubeConfig, opts: KubeClientOptions = {}): Promise<KubeClient> {
    const tls: https.RequestOptions = {};
    await kc.applyToHTTPSOptions(tls);
    const agentOptions: https.AgentOptions = {};
    for (const key of ['ca', 'cert', 'key', 'pfx', 'passphrase', 'rejectUnauthorized', 'servername'] as const) {
      if (tls[key] !== undefined) (agentOptions as Record<string, unknown>)[key] = tls[key];
    }
    return new KubeClient(kc, opts.userAgent ?? 'stowage', agentOptions);
  }

  /** Registers an observer for every finished call; returns a function that removes it. */
  observe(observer: ApiCallObserver): () => void {
    this.observers.add(observer);
    return () => this.observers.delete(observer);
  }

  /** Closes idle keep-alive connections; in-flight requests finish. */
  close(): void {
    this.agent.destroy();
    this.watchAgent.destroy();
  }

  // ---- typed verbs -------------------------------------------------------------------------

  async get<T extends KubeObject>(rt: ResourceType, name: string, namespace?: string): Promise<T> {
    return this.request<T>({ method: 'GET', path: resourcePath(rt, { name, namespace }) });
  }

  /** Like {@link get}, but `undefined` instead of a NotFound error. */
  async getIfExists<T extends KubeObject>(rt: ResourceType, name: string, namespace?: string): Promise<T | undefined> {
    try {
      return await this.get<T>(rt, name, namespace);
    } catch (err) {
      if (ApiError.isNotFound(err)) return undefined;
      throw err;
    }
  }

  async list<T extends KubeObject>(rt: ResourceType, opts: ListOptions = {}): Promise<ObjectList<T>> {
    return this.request<ObjectList<T>>({
      method: 'GET',
      path: resourcePath(rt, { namespace: opts.namespace }),
      query: {
        labelSelector: opts.labelSelector,
        fieldSelector: opts.fieldSelector,
        limit: opts.limit,
        continue: opts.continue,
        resourceVersion: opts.resourceVersion,
      },
    });
  }

  /** Every object of a type, following `continue` tokens page by page. */
  async listAll<T extends KubeObject>(rt: ResourceType, opts: ListOptions = {}): Promise<ObjectList<T>> {
    const items: T[] = [];
    let page = await this.list<T>(rt, { limit: 500, ...opts });
    items.push(...page.items);
    while (page.metadata.continue) {
      // A continue token carries its own resourceVersion; the server refuses both at once.
      const { resourceVersion: _rv, ...rest } = opts;
      page = await this.list<T>(rt, { limit: 500, ...rest, continue: page.metadata.continue });
      items.push(...page.items);
    }
    return { ...page, items, metadata: { resourceVersion: page.metadata.resourceVersion } };
  }

  async create<T extends KubeObject>(rt: ResourceType, obj: T, opts: { fieldManager?: string } = {}): Promise<T> {
    return this.request<T>({
      method: 'POST',
      path: resourcePath(rt, { namespace: obj.metadata.namespace }),
      query: { fieldManager: opts.fieldManager },
      body: withTypeMeta(rt, obj),
    });
  }

  async replace<T extends KubeObject>(rt: ResourceType, obj: T, opts: { subresource?: 'status'; fieldManager?: string } = {}): Promise<T> {
    return this.request<T>({
      method: 'PUT',
      path: resourcePath(rt, { namespace: obj.metadata.namespace, name: requireName(obj), subresource: opts.subresource }),
      query: { fieldManager: opts.fieldManager },
      body: withTypeMeta(rt, obj),
    });
  }

  /** Server-side apply: the object states every field this field manager owns, nothing else. */
  async apply<T extends KubeObject>(rt: ResourceType, obj: KubeObject, opts: ApplyOptions): Promise<T> {
    return this.request<T>({
      method: 'PATCH',
      path: resourcePath(rt, { namespace: obj.metadata.namespace, name: requireName(obj), subresource: opts.subresource }),
      query: { fieldManager: opts.fieldManager, force: opts.force ?? true },
      body: withTypeMeta(rt, obj),
      contentType: 'application/apply-patch+yaml',
    });
  }

  async mergePatch<T extends KubeObject>(
    rt: ResourceType,
    name: string,
    patch: unknown,
    opts: { namespace?: string; subresource?: 'status'; fieldManager?: string } = {},
  ): Promise<T> {
    return this.request<T>({
      method: 'PATCH',
      path: resourcePath(rt, { namespace: opts.namespace, name, subresource: opts.subresource }),
      query: { fieldManager: opts.fieldManager },
      body: patch,
      contentType: 'application/merge-patch+json',
    });
  }

  async jsonPatch<T extends KubeObject>(
    rt: ResourceType,
    name: string,
    ops: readonly JsonPatchOperation[],
    opts: { namespace?: string; subresource?: 'status'; fieldManager?: string } = {},
  ): Promise<T> {
    return this.request<T>({
      method: 'PATCH',
      path: resourcePath(rt, { namespace: opts.namespace, name, subresource: opts.subresource }),
      query: { fieldManager: opts.fieldManager },
      body: ops,
      contentType: 'application/json-patch+json',
    });
  }

  /** Deletes an object; NotFound is success (the goal state is reached). Returns whether it existed. */
  async delete(rt: ResourceType, name: string, opts: DeleteOptions = {}): Promise<boolean> {
    const preconditions: Record<string, string> = {};
    if (opts.uid) preconditions.uid = opts.uid;
    if (opts.resourceVersion) preconditions.resourceVersion = opts.resourceVersion;
    try {
      await this.request({
        method: 'DELETE',
        path: resourcePath(rt, { namespace: opts.namespace, name }),
        body: {
          apiVersion: 'v1',
          kind: 'DeleteOptions',
          ...(Object.keys(preconditions).length > 0 ? { preconditions } : {}),
          ...(opts.propagationPolicy ? { propagationPolicy: opts.propagationPolicy } : {}),
        },
      });
      return true;
    } catch (err) {
      if (ApiError.isNotFound(err)) return false;
      throw err;
    }
  }

  // ---- transport ---------------------------------------------------------------------------

  /** Sends one request and parses the JSON answer; non-2xx answers throw {@link ApiError}. */
  async request<T = unknown>(spec: RequestSpec): Promise<T> {
    const started = process.hrtime.bigint();
    let code = 0;
    try {
      const res = await this.send(spec, spec.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS);
      code = res.statusCode ?? 0;
      const text = await readBody(res);
      if (code < 200 || code >= 300) throw ApiError.fromResponse(spec.method, spec.path, code, text);
      return (text === '' ? undefined : JSON.parse(text)) as T;
    } finally {
      this.report(spec, code, started, false);
    }
  }

  /**
   * Opens a watch and calls `onEvent` for every event until the server ends the stream (resolves),
   * the connection fails (rejects), or `signal` aborts (resolves). A non-200 answer rejects with
   * {@link ApiError}; an in-stream ERROR event is passed to `onEvent` like any other.
   */
  async watch(
    path: string,
    query: Record<string, string | number | boolean | undefined>,
    onEvent: (event: WatchEvent) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const started = process.hrtime.bigint();
    const spec: RequestSpec = { method: 'GET', path, query: { ...query, watch: true }, signal };
    let code = 0;
    try {
      const res = await this.send(spec, 0, this.watchAgent);
      code = res.statusCode ?? 0;
      if (code !== 200) throw ApiError.fromResponse('WATCH', path, code, await readBody(res));
      await readWatchStream(res, path, onEvent, signal);
    } catch (err) {
      if (signal.aborted) return;
      throw err;
    } finally {
      this.report(spec, code, started, true);
    }
  }

  private async send(spec: RequestSpec, timeoutMs: number, agent = this.agent): Promise<http.IncomingMessage> {
    const url = new URL(this.server + spec.path);
    for (const [key, value] of Object.entries(spec.query ?? {})) {
      if (value !== undefined && value !== '') url.searchParams.set(key, String(value));
    }
    const body = spec.body === undefined ? undefined : Buffer.from(JSON.stringify(spec.body));
    const headers: Record<string, string | number> = {
      ...(await this.authHeaders()),
      Accept: 'application/json',
      'User-Agent': this.userAgent,
    };
    if (body) {
      headers['Content-Type'] = spec.contentType ?? 'application/json';
      headers['Content-Length'] = body.length;
    }
    const transport = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = transport.request(url, { method: spec.method, headers, agent }, resolve);
      // Destroying without an error (rather than passing the signal to node) keeps an abort from
      // surfacing as an unhandled AbortError on the response stream; callers check signal.aborted.
      const signal = spec.signal;
      if (signal) {
        const onAbort = (): void => void req.destroy();
        if (signal.aborted) onAbort();
        else signal.addEventListener('abort', onAbort, { once: true });
        req.once('close', () => signal.removeEventListener('abort', onAbort));
      }
      if (timeoutMs > 0) {
        req.setTimeout(timeoutMs, () =>
          req.destroy(new Error(`${spec.method} ${spec.path}: no answer from ${this.server} within ${timeoutMs} ms`)),
        );
      }
      req.on('error', (err) => reject(describeTransportError(err, spec, this.server)));
      req.end(body);
    });
  }

  private async authHeaders(): Promise<Record<string, string>> {
    if (Date.now() - this.headersAt < AUTH_REFRESH_MS) return this.headers;
    const opts: https.RequestOptions = {};
    await this.kubeConfig.applyToHTTPSOptions(opts);
    const headers: Record<string, string> = {};
    for (const [key, value] of Object.entries(opts.headers ?? {})) if (typeof value === 'string') headers[key] = value;
    if (opts.auth) headers.Authorization = `Basic ${Buffer.from(opts.auth).toString('base64')}`;
    this.headers = headers;
    this.headersAt = Date.now();
    return headers;
  }

  private report(spec: RequestSpec, code: number, started: bigint, isWatch: boolean): void {
    if (this.observers.size === 0) return;
    const parsed = parseResourcePath(spec.path);
    if (!parsed) return;
    const call: ApiCall = {
      verb: verbOf(spec, parsed.name !== undefined, isWatch),
      group: parsed.group,
      resource: parsed.resource,
      subresource: parsed.subresource,
      namespace: parsed.namespace,
      code,
      durationSeconds: Number(process.hrtime.bigint() - started) / 1e9,
    };
    for (const observer of this.observers) observer(call);
  }
}

function verbOf(spec: RequestSpec, named: boolean, isWatch: boolean): string {
  switch (spec.method) {
    case 'GET':
      return isWatch ? 'watch' : named ? 'get' : 'list';
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return named ? 'delete' : 'deletecollection';
  }
}

function withTypeMeta<T extends KubeObject>(rt: ResourceType, obj: T): T {
  return { ...obj, apiVersion: obj.apiVersion ?? apiVersionOf(rt), kind: obj.kind ?? rt.kind };
}

function requireName(obj: KubeObject): string {
  if (!obj.metadata.name) throw new Error('the object has no metadata.name; every object Stowage writes needs one');
  return obj.metadata.name;
}

function readBody(res: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.on('error', reject);
  });
}

function describeTransportError(err: Error, spec: RequestSpec, server: string): Error {
  if (err.name === 'AbortError') return err;
  const code = (err as NodeJS.ErrnoException).code;
  const hint = code === 'ECONNREFUSED' ? ' (is the API server running, and is the kubeconfig pointing at it?)' : '';
  return new Error(`${spec.method} ${spec.path} on ${server} failed: ${err.message}${hint}`, { cause: err });
}

export type { Status };

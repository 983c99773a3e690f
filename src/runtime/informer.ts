import { Counter, type Registry } from 'prom-client';
import type { KubeClient } from '../kube/client.js';
import { ApiError } from '../kube/api-error.js';
import { resourcePath, type ResourceType } from '../kube/resources.js';
import type { KubeObject, Status, WatchEvent } from '../kube/types.js';
import { logger, type Logger } from '../util/logger.js';
import { errorMessage } from '../util/errors.js';
import { sleep } from '../util/sleep.js';
import { Backoff } from './backoff.js';
import { objectKey } from './object-key.js';

/** Every object is handed to handlers again this often, so a missed or mishandled event heals. */
export const DEFAULT_RESYNC_MS = 10 * 60_000;
/** Watches are re-opened after a random time in this window (seconds), as client-go's reflector does. */
export const WATCH_TIMEOUT_RANGE_S: readonly [number, number] = [300, 600];
/** A watch that has been silent this much longer than its own timeout is presumed hung and reopened. */
const WATCHDOG_GRACE_MS = 30_000;

export interface EventHandler<T extends KubeObject> {
  added?(obj: T): void;
  /** Also called with `oldObj === newObj` on every periodic resync. */
  updated?(oldObj: T, newObj: T): void;
  deleted?(obj: T): void;
}

/** Derives the values an object is filed under in an index (client-go's IndexFunc). */
export type IndexFunc<T extends KubeObject> = (obj: T) => readonly string[];

export interface InformerOptions {
  readonly client: KubeClient;
  readonly resource: ResourceType;
  readonly namespace?: string;
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
  /** 0 disables the periodic resync. */
  readonly resyncMs?: number;
  /** Server-side watch timeout window in seconds; tests shorten it. */
  readonly watchTimeoutRangeS?: readonly [number, number];
  readonly watchdogGraceMs?: number;
  readonly backoff?: Backoff;
  readonly metrics?: InformerMetrics;
}

/**
 * A supervised list-and-watch cache of one resource type.
 *
 * Unlike client-node's informer, it never gives up: after ANY list or watch failure (HTTP errors,
 * connection resets, a hung stream caught by the watchdog) it backs off with a cap and relists;
 * a `410 Gone` (the requested resourceVersion was compacted) relists at once. A watch that ends
 * normally is reopened from the last resourceVersion seen, bookmarks included, without a relist.
 * Relisting diffs against the cache, so handlers see adds, updates and deletes they missed.
 * Handlers must be cheap and must not throw: they only enqueue keys.
 */
export class Informer<T extends KubeObject = KubeObject> {
  private readonly store = new Map<string, T>();
  /** index name → value → keys of the objects filed under it; kept in step with `store`. */
  private readonly indexes = new Map<string, { fn: IndexFunc<T>; byValue: Map<string, Set<string>> }>();
  private readonly handlers: EventHandler<T>[] = [];
  private readonly log: Logger;
  private readonly backoff: Backoff;
  private resourceVersion = '';
  private synced = false;
  private readonly syncWaiters: Array<() => void> = [];
  private abort?: AbortController;
  private loop?: Promise<void>;
  private resyncTimer?: NodeJS.Timeout;
  /** How many times the list-and-watch cycle has been restarted after a failure (for tests and health). */
  restarts = 0;
  lastError?: string;

  constructor(private readonly options: InformerOptions) {
    this.log = logger('informer', { resource: options.resource.plural });
    this.backoff = options.backoff ?? new Backoff(200, 30_000);
  }

  get resource(): ResourceType {
    return this.options.resource;
  }

  addHandler(handler: EventHandler<T>): void {
    this.handlers.push(handler);
  }

  /**
   * Files every cached object under the values `fn` gives, so {@link byIndex} finds them without a
   * scan. Adding an index under a name that exists is a no-op (informers are shared).
   *
   * @example
   *   disks.addIndex('pool', (d) => (d.spec.claim ? [d.spec.claim.pool] : []));
   *   disks.byIndex('pool', 'fast'); // the disks pool `fast` holds
   */
  addIndex(name: string, fn: IndexFunc<T>): void {
    if (this.indexes.has(name)) return;
    const index = { fn, byValue: new Map<string, Set<string>>() };
    this.indexes.set(name, index);
    for (const [key, obj] of this.store) fileUnder(index.byValue, fn(obj), key);
  }

  /** The cached objects an index files under `value`. */
  byIndex(name: string, value: string): T[] {
    const index = this.indexes.get(name);
    if (!index) throw new Error(`informer for ${this.options.resource.plural} has no index ${name}; call addIndex first`);
    const keys = index.byValue.get(value);
    if (!keys) return [];
    const found: T[] = [];
    for (const key of keys) {
      const obj = this.store.get(key);
      if (obj) found.push(obj);
    }
    return found;
  }

  /** The cached object with this key (`name` or `namespace/name`). */
  get(key: string): T | undefined {
    return this.store.get(key);
  }

  list(): T[] {
    return [...this.store.values()];
  }

  hasSynced(): boolean {
    return this.synced;
  }

  /** Resolves once the first list has filled the cache, or when `signal` aborts. */
  waitForSync(signal?: AbortSignal): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => {
      const onAbort = (): void => resolve();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.syncWaiters.push(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      });
    });
  }

  start(): void {
    if (this.loop) return;
    this.abort = new AbortController();
    this.loop = this.run(this.abort.signal);
    const resyncMs = this.options.resyncMs ?? DEFAULT_RESYNC_MS;
    if (resyncMs > 0) {
      this.resyncTimer = setInterval(() => this.resync(), resyncMs);
      this.resyncTimer.unref();
    }
  }

  async stop(): Promise<void> {
    this.abort?.abort();
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    await this.loop;
    this.loop = undefined;
  }

  private async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        await this.listAndReplace(signal);
        this.backoff.reset();
        // Watch until the server says our resourceVersion is too old (410) — then relist — or fails.
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- the signal may abort during the await
        while (!signal.aborted && (await this.watchOnce(signal)) === 'ended');
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- the signal may abort during the await above
        if (!signal.aborted) this.countRestart('expired');
      } catch (err) {
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- the signal may abort during the await above
        if (signal.aborted) break;
        this.lastError = errorMessage(err);
        this.countRestart(ApiError.isGone(err) ? 'expired' : 'error');
        const delay = ApiError.isGone(err) ? 0 : this.backoff.next();
        this.log.warn({ err: this.lastError, retryInMs: delay }, 'list/watch failed; restarting');
        await sleep(delay, signal);
      }
    }
  }

  private async listAndReplace(signal: AbortSignal): Promise<void> {
    const { client, resource, namespace, labelSelector, fieldSelector } = this.options;
    if (signal.aborted) return;
    const list = await client.listAll<T>(resource, {
      // The first list may come from the API server's watch cache (resourceVersion "0", as
      // client-go's reflector does): one answer instead of pages read from etcd, which is most of
      // an operator's start-up at thousands of objects. Relists after a failure or a 410 read
      // the latest state, so the cache never goes back in time.
      ...(this.synced ? {} : { resourceVersion: '0' }),
      ...(namespace !== undefined ? { namespace } : {}),
      ...(labelSelector !== undefined ? { labelSelector } : {}),
      ...(fieldSelector !== undefined ? { fieldSelector } : {}),
    });
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- the signal may abort during the await above
    if (signal.aborted) return;
    const fresh = new Map<string, T>();
    for (const item of list.items) fresh.set(objectKey(item), withTypeMeta(item, resource));
    const previous = new Map(this.store);
    this.store.clear();
    for (const index of this.indexes.values()) index.byValue.clear();
    for (const [key, obj] of fresh) this.put(key, obj);
    this.resourceVersion = list.metadata.resourceVersion ?? '';
    for (const [key, obj] of fresh) {
      const old = previous.get(key);
      if (!old) this.emit('added', obj);
      else if (old.metadata.resourceVersion !== obj.metadata.resourceVersion) this.emit('updated', obj, old);
    }
    for (const [key, old] of previous) if (!fresh.has(key)) this.emit('deleted', old);
    if (!this.synced) {
      this.synced = true;
      for (const waiter of this.syncWaiters.splice(0)) waiter();
    }
  }

  /** One watch request. Returns 'ended' when the server closed it normally, 'expired' on an in-stream 410. */
  private async watchOnce(signal: AbortSignal): Promise<'ended' | 'expired'> {
    const { client, resource, namespace, labelSelector, fieldSelector } = this.options;
    const [min, max] = this.options.watchTimeoutRangeS ?? WATCH_TIMEOUT_RANGE_S;
    const timeoutSeconds = Math.round(min + Math.random() * (max - min));
    const watchAbort = new AbortController();
    const onStop = (): void => watchAbort.abort();
    signal.addEventListener('abort', onStop, { once: true });
    const watchdogMs = timeoutSeconds * 1000 + (this.options.watchdogGraceMs ?? WATCHDOG_GRACE_MS);
    let hung = false;
    let watchdog = setTimeout(fire, watchdogMs);
    function fire(): void {
      hung = true;
      watchAbort.abort();
    }
    let expired = false;
    let streamError: Error | undefined;
    try {
      await client.watch(
        resourcePath(resource, { namespace }),
        { resourceVersion: this.resourceVersion, allowWatchBookmarks: true, timeoutSeconds, labelSelector, fieldSelector },
        (event) => {
          clearTimeout(watchdog);
          watchdog = setTimeout(fire, watchdogMs);
          if (expired || streamError) return;
          const outcome = this.handleEvent(event);
          if (outcome === 'expired') {
            expired = true;
            watchAbort.abort();
          } else if (outcome instanceof Error) {
            streamError = outcome;
            watchAbort.abort();
          }
        },
        watchAbort.signal,
      );
    } finally {
      clearTimeout(watchdog);
      signal.removeEventListener('abort', onStop);
    }
    if (streamError) throw streamError;
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- set by the watchdog timer during the await
    if (hung && !signal.aborted) throw new Error(`watch of ${resource.plural} was silent for ${watchdogMs} ms; reopening`);
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- set by the event callback during the await
    return expired ? 'expired' : 'ended';
  }

  private handleEvent(event: WatchEvent): 'ok' | 'expired' | Error {
    if (event.type === 'ERROR') {
      const status = event.object as Status;
      if (status.code === 410) return 'expired';
      return new Error(
        `watch of ${this.options.resource.plural} returned an error: ${status.code ?? ''} ${status.reason ?? ''} ${status.message ?? ''}`.trim(),
      );
    }
    const obj = withTypeMeta(event.object as T, this.options.resource);
    if (obj.metadata.resourceVersion) this.resourceVersion = obj.metadata.resourceVersion;
    if (event.type === 'BOOKMARK') return 'ok';
    const key = objectKey(obj);
    if (event.type === 'DELETED') {
      this.remove(key);
      this.emit('deleted', obj);
    } else {
      const old = this.store.get(key);
      this.put(key, obj);
      if (old) this.emit('updated', obj, old);
      else this.emit('added', obj);
    }
    return 'ok';
  }

  private put(key: string, obj: T): void {
    const old = this.store.get(key);
    this.store.set(key, obj);
    for (const { fn, byValue } of this.indexes.values()) {
      if (old) unfile(byValue, fn(old), key);
      fileUnder(byValue, fn(obj), key);
    }
  }

  private remove(key: string): void {
    const old = this.store.get(key);
    if (!old) return;
    this.store.delete(key);
    for (const { fn, byValue } of this.indexes.values()) unfile(byValue, fn(old), key);
  }

  private resync(): void {
    if (!this.synced) return;
    for (const obj of this.store.values()) this.emit('updated', obj, obj);
  }

  private emit(kind: 'added' | 'updated' | 'deleted', obj: T, old?: T): void {
    for (const handler of this.handlers) {
      try {
        if (kind === 'added') handler.added?.(obj);
        else if (kind === 'updated') handler.updated?.(old ?? obj, obj);
        else handler.deleted?.(obj);
      } catch (err) {
        this.log.error({ err: errorMessage(err) }, 'an event handler threw; handlers must only enqueue');
      }
    }
  }

  private countRestart(reason: 'expired' | 'error'): void {
    this.restarts += 1;
    this.options.metrics?.restarts.inc({ resource: this.options.resource.plural, reason });
  }
}

function fileUnder(byValue: Map<string, Set<string>>, values: readonly string[], key: string): void {
  for (const value of values) {
    let keys = byValue.get(value);
    if (!keys) byValue.set(value, (keys = new Set()));
    keys.add(key);
  }
}

function unfile(byValue: Map<string, Set<string>>, values: readonly string[], key: string): void {
  for (const value of values) {
    const keys = byValue.get(value);
    if (!keys) continue;
    keys.delete(key);
    if (keys.size === 0) byValue.delete(value);
  }
}

/**
 * Lists and watch events omit apiVersion/kind on items; put them back so cached objects are whole.
 * managedFields are dropped, as controller-runtime's cache does by default: nothing here reads
 * them, and they are often half of an object's size (the operator caches thousands of disks).
 */
function withTypeMeta<T extends KubeObject>(obj: T, rt: ResourceType): T {
  delete obj.metadata.managedFields;
  if (obj.apiVersion && obj.kind) return obj;
  obj.apiVersion = rt.group === '' ? rt.version : `${rt.group}/${rt.version}`;
  obj.kind = rt.kind;
  return obj;
}

export class InformerMetrics {
  readonly restarts: Counter<'resource' | 'reason'>;

  constructor(registry: Registry) {
    this.restarts = new Counter({
      name: 'stowage_informer_restarts_total',
      help: 'List-and-watch cycles restarted, by resource and reason (expired: 410 Gone, relisted; error: failed, backed off)',
      labelNames: ['resource', 'reason'],
      registers: [registry],
    });
  }
}

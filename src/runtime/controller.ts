import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { KubeObject } from '../kube/types.js';
import { logger, type Logger } from '../util/logger.js';
import { errorMessage } from '../util/errors.js';
import type { Informer } from './informer.js';
import { objectKey } from './object-key.js';
import { WorkQueue, type WorkQueueMetrics } from './work-queue.js';

/** What a reconcile asks for next. An empty result means "done until something changes". */
export interface ReconcileResult {
  /** Reconcile this key again after this many milliseconds (polling something not watched). */
  readonly requeueAfterMs?: number;
  /**
   * Reconcile this key again after the keys already waiting: the reconcile did a bounded share of
   * its work and yields the worker, so keys take turns. Not a failure: no backoff.
   */
  readonly requeue?: boolean;
}

/**
 * A level-based reconciler: given a key, read the current state and move the world one step
 * toward the desired state. It must be idempotent; it is never run twice at once for one key.
 * Throwing retries the key with exponential backoff; throwing {@link TerminalError} does not.
 */
export interface Reconciler {
  reconcile(key: string, signal: AbortSignal): Promise<ReconcileResult | void>;
}

/**
 * An error retrying cannot fix (an invalid spec, say). The key is not retried until it changes;
 * the reconciler should have reported the problem on the object's status before throwing.
 */
export class TerminalError extends Error {
  override readonly name = 'TerminalError';
}

/** Maps an object of a watched type to the keys of the objects to reconcile. */
export type KeyMapper<T extends KubeObject> = (obj: T) => readonly string[];

/**
 * Whether an update matters to the reconciler (controller-runtime's predicates), e.g. only label
 * changes of Nodes, whose status kubelets rewrite every few seconds.
 */
export type UpdatePredicate<T extends KubeObject> = (oldObj: T, newObj: T) => boolean;

export interface ControllerOptions {
  readonly name: string;
  readonly reconciler: Reconciler;
  readonly workers?: number;
  readonly metrics?: ControllerMetrics;
  readonly queueMetrics?: WorkQueueMetrics;
  /**
   * Events for a key are collected for this long before it is reconciled (kube-runtime's
   * `debounce`): a burst — thousands of PVs changing phase, say — becomes one reconcile of the
   * latest state instead of one per event. The first event's deadline stands; later ones do not
   * push it back, so a steady stream of events cannot starve a key. 0 (the default) reconciles at once.
   */
  readonly debounceMs?: number;
  /** Retry backoff of the queue; tests shorten it. */
  readonly baseDelayMs?: number;
  readonly maxDelayMs?: number;
}

/**
 * Connects informers to a reconciler through a work queue: event handlers only enqueue keys,
 * `workers` loops take keys and reconcile them, the queue guarantees one reconcile per key at a time.
 */
export class Controller {
  readonly queue: WorkQueue;
  private readonly log: Logger;
  private workers: Promise<void>[] = [];
  private abort?: AbortController;

  constructor(private readonly options: ControllerOptions) {
    this.log = logger('controller', { controller: options.name });
    this.queue = new WorkQueue({
      name: options.name,
      ...(options.queueMetrics ? { metrics: options.queueMetrics } : {}),
      ...(options.baseDelayMs !== undefined ? { baseDelayMs: options.baseDelayMs } : {}),
      ...(options.maxDelayMs !== undefined ? { maxDelayMs: options.maxDelayMs } : {}),
    });
  }

  get name(): string {
    return this.options.name;
  }

  /** Reconciles each object of the informer's type under its own key. */
  watchFor<T extends KubeObject>(informer: Informer<T>): this {
    return this.watch(informer, (obj) => [objectKey(obj)]);
  }

  /** Reconciles the owner of each object whose controller owner reference has the given kind. */
  watchOwned<T extends KubeObject>(informer: Informer<T>, ownerKind: string): this {
    return this.watch(informer, (obj) =>
      (obj.metadata.ownerReferences ?? []).filter((ref) => ref.kind === ownerKind).map((ref) => ref.name),
    );
  }

  /**
   * Reconciles whatever keys `map` derives from each changed object. On an update the old state is
   * mapped too (with `mapOld` when given), so an object that moves from one owner to another
   * wakes both. With `relevant`, updates it rejects wake nothing (adds and deletes always do).
   */
  watch<T extends KubeObject>(informer: Informer<T>, map: KeyMapper<T>, mapOld: KeyMapper<T> = map, relevant?: UpdatePredicate<T>): this {
    const debounceMs = this.options.debounceMs ?? 0;
    const enqueue = (keys: Iterable<string>): void => {
      for (const key of keys) this.queue.addAfter(key, debounceMs);
    };
    informer.addHandler({
      added: (obj) => enqueue(map(obj)),
      updated: (oldObj, newObj) => {
        // A periodic resync (oldObj === newObj) always passes: it is how a missed event heals.
        if (relevant && oldObj !== newObj && !relevant(oldObj, newObj)) return;
        // One set: a key both states map to is added once, not picked up by an idle worker and
        // then added again while it is being reconciled (a second, pointless reconcile).
        enqueue(oldObj === newObj ? map(newObj) : new Set([...map(newObj), ...mapOld(oldObj)]));
      },
      deleted: (obj) => enqueue(map(obj)),
    });
    return this;
  }

  start(): void {
    if (this.abort) return;
    this.abort = new AbortController();
    const count = this.options.workers ?? 2;
    this.options.metrics?.maxConcurrent.set({ controller: this.name }, count);
    this.workers = Array.from({ length: count }, () => this.work(this.abort!.signal));
  }

  /** Stops taking keys and waits for in-flight reconciles to finish. */
  async stop(): Promise<void> {
    this.abort?.abort();
    this.queue.shutDown();
    await Promise.all(this.workers);
    this.workers = [];
  }

  private async work(signal: AbortSignal): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      try {
        await this.reconcileOne(key, signal);
      } finally {
        this.queue.done(key);
      }
    }
  }

  private async reconcileOne(key: string, signal: AbortSignal): Promise<void> {
    const metrics = this.options.metrics;
    const labels = { controller: this.name };
    const started = process.hrtime.bigint();
    metrics?.activeWorkers.inc(labels);
    try {
      const result = (await this.options.reconciler.reconcile(key, signal)) ?? {};
      this.queue.forget(key);
      if (result.requeue) {
        this.queue.add(key); // still processing: goes to the back of the queue when done
        metrics?.total.inc({ ...labels, result: 'requeue' });
      } else if (result.requeueAfterMs !== undefined && result.requeueAfterMs > 0) {
        this.queue.addAfter(key, result.requeueAfterMs);
        metrics?.total.inc({ ...labels, result: 'requeue_after' });
      } else {
        metrics?.total.inc({ ...labels, result: 'success' });
      }
    } catch (err) {
      metrics?.total.inc({ ...labels, result: 'error' });
      metrics?.errors.inc(labels);
      if (err instanceof TerminalError) {
        metrics?.terminalErrors.inc(labels);
        this.queue.forget(key);
        this.log.error({ key, err: err.message }, 'reconcile failed; not retrying until the object changes');
      } else if (!signal.aborted) {
        const delay = this.queue.addRateLimited(key);
        this.log.warn({ key, err: errorMessage(err), retryInMs: delay }, 'reconcile failed; retrying');
      }
    } finally {
      metrics?.activeWorkers.dec(labels);
      metrics?.duration.observe(labels, Number(process.hrtime.bigint() - started) / 1e9);
    }
  }
}

/** Reconcile metrics under controller-runtime's names. */
export class ControllerMetrics {
  readonly total: Counter<'controller' | 'result'>;
  readonly errors: Counter<'controller'>;
  readonly terminalErrors: Counter<'controller'>;
  readonly duration: Histogram<'controller'>;
  readonly activeWorkers: Gauge<'controller'>;
  readonly maxConcurrent: Gauge<'controller'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.total = new Counter({
      name: 'controller_runtime_reconcile_total',
      help: 'Total number of reconciliations per controller',
      labelNames: ['controller', 'result'],
      registers,
    });
    this.errors = new Counter({
      name: 'controller_runtime_reconcile_errors_total',
      help: 'Total number of reconciliation errors per controller',
      labelNames: ['controller'],
      registers,
    });
    this.terminalErrors = new Counter({
      name: 'controller_runtime_terminal_reconcile_errors_total',
      help: 'Total number of terminal reconciliation errors per controller',
      labelNames: ['controller'],
      registers,
    });
    this.duration = new Histogram({
      name: 'controller_runtime_reconcile_time_seconds',
      help: 'Length of time per reconciliation per controller',
      labelNames: ['controller'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.activeWorkers = new Gauge({
      name: 'controller_runtime_active_workers',
      help: 'Number of currently used workers per controller',
      labelNames: ['controller'],
      registers,
    });
    this.maxConcurrent = new Gauge({
      name: 'controller_runtime_max_concurrent_reconciles',
      help: 'Maximum number of concurrent reconciles per controller',
      labelNames: ['controller'],
      registers,
    });
  }
}

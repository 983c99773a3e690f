import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** First retry delay after a failed reconcile, doubled per consecutive failure (client-go's default). */
export const DEFAULT_BASE_DELAY_MS = 5;
/** Longest retry delay: a persistently failing key is still retried, but at most this rarely. */
export const DEFAULT_MAX_DELAY_MS = 1000 * 60 * 5;

export interface WorkQueueOptions {
  /** Used as the `name` label of the workqueue_* metrics. */
  readonly name: string;
  readonly baseDelayMs?: number;
  readonly maxDelayMs?: number;
  readonly metrics?: WorkQueueMetrics;
}

/**
 * A rate-limited work queue with client-go semantics:
 * - a key is never handed to two workers at once (the `processing` set);
 * - adding a key that is already waiting does nothing (the `dirty` set collapses duplicates);
 * - a key added while it is being processed is queued again when `done` is called, so no change is lost;
 * - `addRateLimited` retries a key with per-key exponential backoff, `forget` resets it.
 *
 * Keys are object keys (`name` or `namespace/name`): the reconciler reads current state itself, so
 * any number of events for one object become one reconcile of its latest state.
 */
export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly delayed = new Map<string, { readyAt: number; timer: NodeJS.Timeout }>();
  private readonly addedAt = new Map<string, number>();
  private readonly startedAt = new Map<string, number>();
  private readonly waiters: Array<(key: string | undefined) => void> = [];
  private shuttingDown = false;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;

  constructor(private readonly options: WorkQueueOptions) {
    this.baseDelayMs = options.baseDelayMs ?? DEFAULT_BASE_DELAY_MS;
    this.maxDelayMs = options.maxDelayMs ?? DEFAULT_MAX_DELAY_MS;
    options.metrics?.register(this);
  }

  get name(): string {
    return this.options.name;
  }

  /** Keys waiting to be processed (not counting delayed or in-flight ones). */
  get length(): number {
    return this.queue.length;
  }

  get isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.options.metrics?.adds.inc({ name: this.name });
    this.dirty.add(key);
    this.addedAt.set(key, Date.now());
    if (this.processing.has(key)) return;
    this.push(key);
  }

  /**
   * Adds `key` after `delayMs`; if it is already scheduled sooner, the sooner time stands, and a key
   * already waiting to be processed needs no timer (it will be processed with the latest state).
   */
  addAfter(key: string, delayMs: number): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    if (delayMs <= 0) return this.add(key);
    const readyAt = Date.now() + delayMs;
    const existing = this.delayed.get(key);
    if (existing && existing.readyAt <= readyAt) return;
    if (existing) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.delayed.set(key, { readyAt, timer });
  }

  /** Retries `key` after a delay that doubles with each consecutive failure, up to the cap. */
  addRateLimited(key: string): number {
    const failures = this.failures.get(key) ?? 0;
    this.failures.set(key, failures + 1);
    const delay = Math.min(this.baseDelayMs * 2 ** failures, this.maxDelayMs);
    this.options.metrics?.retries.inc({ name: this.name });
    this.addAfter(key, delay);
    return delay;
  }

  /** Clears the failure count of `key` (after a successful reconcile). */
  forget(key: string): void {
    this.failures.delete(key);
  }

  /** Consecutive failures of `key` so far. */
  numRequeues(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /**
   * Waits for the next key and marks it as processing. Resolves `undefined` once the queue shuts down.
   * Every key returned must be handed back with {@link done}.
   */
  get(): Promise<string | undefined> {
    const key = this.queue.shift();
    if (key !== undefined) return Promise.resolve(this.take(key));
    if (this.shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Marks `key` as no longer processing; if it changed meanwhile it goes back in the queue. */
  done(key: string): void {
    const started = this.startedAt.get(key);
    if (started !== undefined) {
      this.options.metrics?.workDuration.observe({ name: this.name }, (Date.now() - started) / 1000);
      this.startedAt.delete(key);
    }
    this.processing.delete(key);
    if (this.dirty.has(key)) this.push(key);
  }

  /** Stops handing out keys; waiting `get` calls resolve `undefined`. Delayed adds are dropped. */
  shutDown(): void {
    this.shuttingDown = true;
    for (const { timer } of this.delayed.values()) clearTimeout(timer);
    this.delayed.clear();
    for (const waiter of this.waiters.splice(0)) waiter(undefined);
  }

  /** Seconds the longest-running key has been processing, and the total over all in-flight keys. */
  inFlightSeconds(now = Date.now()): { longest: number; total: number } {
    let longest = 0;
    let total = 0;
    for (const started of this.startedAt.values()) {
      const s = (now - started) / 1000;
      longest = Math.max(longest, s);
      total += s;
    }
    return { longest, total };
  }

  private push(key: string): void {
    const waiter = this.waiters.shift();
    if (waiter) waiter(this.take(key));
    else this.queue.push(key);
  }

  private take(key: string): string {
    this.processing.add(key);
    this.dirty.delete(key);
    const added = this.addedAt.get(key);
    if (added !== undefined) {
      this.options.metrics?.queueDuration.observe({ name: this.name }, (Date.now() - added) / 1000);
      this.addedAt.delete(key);
    }
    this.startedAt.set(key, Date.now());
    return key;
  }
}

/**
 * The work-queue metrics under controller-runtime's names, so existing dashboards and alerts work.
 * One instance per registry; every queue registers itself for the gauges.
 */
export class WorkQueueMetrics {
  readonly adds: Counter<'name'>;
  readonly retries: Counter<'name'>;
  readonly queueDuration: Histogram<'name'>;
  readonly workDuration: Histogram<'name'>;
  private readonly queues = new Set<WorkQueue>();

  constructor(registry: Registry) {
    const queues = this.queues;
    const registers = [registry];
    const buckets = [1e-4, 1e-3, 0.01, 0.1, 1, 10, 100, 1000];
    this.adds = new Counter({
      name: 'workqueue_adds_total',
      help: 'Total number of adds handled by workqueue',
      labelNames: ['name'],
      registers,
    });
    this.retries = new Counter({
      name: 'workqueue_retries_total',
      help: 'Total number of retries handled by workqueue',
      labelNames: ['name'],
      registers,
    });
    this.queueDuration = new Histogram({
      name: 'workqueue_queue_duration_seconds',
      help: 'How long in seconds an item stays in workqueue before being requested',
      labelNames: ['name'],
      buckets,
      registers,
    });
    this.workDuration = new Histogram({
      name: 'workqueue_work_duration_seconds',
      help: 'How long in seconds processing an item from workqueue takes',
      labelNames: ['name'],
      buckets,
      registers,
    });
    new Gauge({
      name: 'workqueue_depth',
      help: 'Current depth of workqueue',
      labelNames: ['name'],
      registers,
      collect() {
        for (const q of queues) this.set({ name: q.name }, q.length);
      },
    });
    new Gauge({
      name: 'workqueue_unfinished_work_seconds',
      help: "How many seconds of work has been done that is in progress and hasn't been observed by work_duration",
      labelNames: ['name'],
      registers,
      collect() {
        for (const q of queues) this.set({ name: q.name }, q.inFlightSeconds().total);
      },
    });
    new Gauge({
      name: 'workqueue_longest_running_processor_seconds',
      help: 'How many seconds has the longest running processor for workqueue been running',
      labelNames: ['name'],
      registers,
      collect() {
        for (const q of queues) this.set({ name: q.name }, q.inFlightSeconds().longest);
      },
    });
  }

  register(queue: WorkQueue): void {
    this.queues.add(queue);
  }
}

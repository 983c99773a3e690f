import { randomBytes } from 'node:crypto';
import type { KubeClient } from '../kube/client.js';
import { EVENTS } from '../kube/resources.js';
import type { KubeObject } from '../kube/types.js';
import { logger } from '../util/logger.js';
import { errorMessage } from '../util/errors.js';
import { nowTimestamp } from './conditions.js';

/** Events about cluster-scoped objects live here, as kubectl expects (`kubectl describe` finds them). */
const CLUSTER_SCOPED_EVENT_NAMESPACE = 'default';
/** The same event repeated within this window bumps the count of the first instead of adding one. */
const AGGREGATION_WINDOW_MS = 10 * 60_000;
const MAX_REMEMBERED = 4096;
/** Events waiting to be written; beyond this (an API server that does not answer) new ones are dropped, as client-go does. */
const MAX_PENDING = 1000;
/** How long a stopping process waits for its last events. */
const DRAIN_TIMEOUT_MS = 5_000;

export type EventType = 'Normal' | 'Warning';

/**
 * Records Kubernetes Events (core/v1) about objects, as client-go's recorder does: a repeat of the
 * same (object, type, reason, message) within ten minutes updates the first event's count and
 * lastTimestamp. Recording never throws: an event that cannot be written is logged and dropped,
 * so it never fails a reconcile.
 *
 * Events are written in the background, one at a time in the order recorded (which keeps the
 * aggregation exact), so a reconcile never waits for its events: callers may await the returned
 * promise (tests do) but need not.
 */
export class EventRecorder {
  private readonly log = logger('events');
  private readonly recent = new Map<string, { name: string; namespace: string; count: number; at: number; first: string }>();
  private queue: Promise<void> = Promise.resolve();
  private pending = 0;
  private dropped = 0;

  constructor(
    private readonly client: KubeClient,
    private readonly component: string,
    private readonly instance = process.env.HOSTNAME ?? 'local',
  ) {}

  /** Starts a batch of events about `object` (see {@link EventBatch}). */
  batch(object: KubeObject): EventBatch {
    return new EventBatch(this, object);
  }

  /** Queues one event; the promise settles (never rejects) once it is written or given up. */
  emit(object: KubeObject, type: EventType, reason: string, message: string, opts: { quiet?: boolean } = {}): Promise<void> {
    if (!opts.quiet) this.log.info({ object: `${object.kind}/${object.metadata.name}`, type, reason }, message);
    if (this.pending >= MAX_PENDING) {
      if (this.dropped++ % 100 === 0)
        this.log.warn({ pending: this.pending, dropped: this.dropped, reason }, 'too many events waiting to be written; dropping new ones');
      return Promise.resolve();
    }
    this.pending += 1;
    const at = nowTimestamp(); // when it happened, not when the queue got to it
    const written = this.queue.then(() => this.write(object, type, reason, message, at)).finally(() => void (this.pending -= 1));
    this.queue = written;
    return written;
  }

  /**
   * Resolves once every event recorded so far is written or given up, or after `timeoutMs`
   * (shutdown must not hang on an API server that does not answer).
   */
  async drain(timeoutMs = DRAIN_TIMEOUT_MS): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.queue, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
  }

  private async write(object: KubeObject, type: EventType, reason: string, message: string, now: string): Promise<void> {
    const { name, uid } = object.metadata;
    const namespace = object.metadata.namespace ?? CLUSTER_SCOPED_EVENT_NAMESPACE;
    const key = JSON.stringify([uid ?? name, type, reason, message]);
    try {
      const seen = this.recent.get(key);
      if (seen && Date.now() - seen.at < AGGREGATION_WINDOW_MS) {
        seen.count += 1;
        seen.at = Date.now();
        await this.client.mergePatch(EVENTS, seen.name, { count: seen.count, lastTimestamp: now }, { namespace: seen.namespace });
        return;
      }
      const eventName = `${name}.${randomBytes(8).toString('hex')}`;
      await this.client.create(EVENTS, {
        metadata: { name: eventName, namespace },
        involvedObject: {
          apiVersion: object.apiVersion,
          kind: object.kind,
          name,
          uid,
          ...(object.metadata.namespace ? { namespace } : {}),
        },
        type,
        reason,
        message,
        source: { component: this.component },
        reportingComponent: this.component,
        reportingInstance: this.instance,
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      });
      if (this.recent.size >= MAX_REMEMBERED) this.recent.delete(this.recent.keys().next().value!);
      this.recent.set(key, { name: eventName, namespace, count: 1, at: Date.now(), first: now });
    } catch (err) {
      this.recent.delete(key);
      this.log.warn({ err: errorMessage(err), reason }, 'could not record an event');
    }
  }
}

/** How many items an aggregated event names before it says "and N more". */
const MAX_ITEMS_PER_EVENT = 10;

/**
 * Collects the events of one reconcile and records them per (type, reason) when flushed: one item
 * as its own message, several as one event that counts and names them. A pool that claims 200 disks
 * gets one `DiskClaimed` event, not 200 — readable in `kubectl describe`, and 200 fewer writes.
 * Every item is still logged on its own.
 */
export class EventBatch {
  private readonly log = logger('events');
  private readonly groups = new Map<string, { type: EventType; reason: string; messages: string[] }>();

  constructor(
    private readonly recorder: EventRecorder,
    private readonly object: KubeObject,
  ) {}

  add(type: EventType, reason: string, message: string): void {
    this.log.info({ object: `${this.object.kind}/${this.object.metadata.name}`, type, reason }, message);
    const key = `${type}/${reason}`;
    const group = this.groups.get(key) ?? { type, reason, messages: [] };
    group.messages.push(message);
    this.groups.set(key, group);
  }

  /** Hands the collected events to the recorder; the promise settles once they are written. */
  flush(): Promise<void> {
    const groups = [...this.groups.values()];
    this.groups.clear();
    return Promise.all(
      groups.map(({ type, reason, messages }) => {
        const shown = messages.slice(0, MAX_ITEMS_PER_EVENT);
        const more = messages.length - shown.length;
        const message =
          messages.length === 1 ? messages[0] : `${messages.length} times: ${shown.join('; ')}${more > 0 ? `; and ${more} more` : ''}`;
        return this.recorder.emit(this.object, type, reason, message, { quiet: true });
      }),
    ).then(() => undefined);
  }
}

/**
 * Proof of absence without a fixed sleep (issue 25): where a fault test claims "nothing happened",
 * it watches the objects from before the fault to after it (a watch stream opened from a LIST's
 * resourceVersion, so no change in between is missed, and a transient object is seen even if it is
 * gone again by the time anyone looks) and reads the API server's own request counters
 * (`apiserver_request_total` by verb and resource, from kube-apiserver's /metrics) at both ends of
 * the window. Errors of the stream are kept and reported, never dropped.
 */
import type { KubeClient } from '../../src/kube/client.js';
import { resourcePath, type ResourceType } from '../../src/kube/resources.js';
import type { KubeObject, WatchEvent } from '../../src/kube/types.js';
import type { ControlPlane } from '../cluster/control-plane.js';

export interface SeenEvent<T> {
  readonly type: string;
  readonly object: T;
  /** The object's resourceVersion as a number (one etcd: a total order over all objects). */
  readonly rv: number;
}

/** Every event of `rt` (narrowed by `labelSelector`) from start() to stop(). */
export class ObjectWatch<T extends KubeObject = KubeObject> {
  readonly events: SeenEvent<T>[] = [];
  readonly errors: string[] = [];
  private readonly abort = new AbortController();
  private running: Promise<void> | undefined;

  constructor(
    private readonly client: KubeClient,
    private readonly rt: ResourceType,
    private readonly labelSelector?: string,
  ) {}

  /** Lists (the state before) and opens the watch from the list's resourceVersion. */
  async start(): Promise<T[]> {
    const list = await this.client.list<T>(this.rt, this.labelSelector ? { labelSelector: this.labelSelector } : {});
    let rv = list.metadata?.resourceVersion ?? '';
    const path = resourcePath(this.rt, {});
    this.running = (async () => {
      // The server ends a watch after its timeout: open it again from the last version seen.
      while (!this.abort.signal.aborted) {
        try {
          await this.client.watch(
            path,
            { resourceVersion: rv, labelSelector: this.labelSelector, allowWatchBookmarks: false },
            (e: WatchEvent) => {
              if (e.type === 'ERROR') {
                this.errors.push(`watch ${this.rt.plural}: ${JSON.stringify(e.object).slice(0, 300)}`);
                this.abort.abort();
                return;
              }
              const o = e.object as T;
              rv = o.metadata.resourceVersion ?? rv;
              this.events.push({ type: e.type, object: o, rv: Number(o.metadata.resourceVersion ?? 0) });
            },
            this.abort.signal,
          );
        } catch (err) {
          if (!this.abort.signal.aborted) this.errors.push(`watch ${this.rt.plural} failed: ${String(err)}`);
          return;
        }
      }
    })();
    return list.items;
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.running;
  }
}

/** apiserver_request_total as "VERB resource[/subresource]" → count, for the write verbs. */
export async function writeCounts(cp: ControlPlane, resources: readonly string[]): Promise<Map<string, number>> {
  const res = await cp.request('GET', '/metrics');
  if (res.status !== 200) throw new Error(`GET /metrics: ${res.status}`);
  const out = new Map<string, number>();
  for (const line of res.body.split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    const labels = Object.fromEntries([...line.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (!resources.includes(labels.resource ?? '')) continue;
    if (!['POST', 'PUT', 'PATCH', 'APPLY', 'DELETE', 'DELETECOLLECTION'].includes(labels.verb ?? '')) continue;
    if (labels.dry_run) continue; // a server-side dry run writes nothing
    const key = `${labels.verb} ${labels.resource}${labels.subresource ? `/${labels.subresource}` : ''}`;
    out.set(key, (out.get(key) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return out;
}

/** The writes counted between two readings of {@link writeCounts}, as "VERB resource: n" lines. */
export function writesBetween(before: ReadonlyMap<string, number>, after: ReadonlyMap<string, number>): string[] {
  const out: string[] = [];
  for (const [k, n] of after) {
    const d = n - (before.get(k) ?? 0);
    if (d > 0) out.push(`${k}: ${d}`);
  }
  return out.sort();
}

/** The top-level fields (`spec.claim`, `status.conditions`, `metadata.labels`…) that differ between two versions of an object. */
export function changedFields(before: KubeObject | undefined, after: KubeObject): string[] {
  if (!before) return ['(new)'];
  const out: string[] = [];
  const a = before as unknown as Record<string, Record<string, unknown> | undefined>;
  const b = after as unknown as Record<string, Record<string, unknown> | undefined>;
  for (const part of ['metadata', 'spec', 'status']) {
    const keys = new Set([...Object.keys(a[part] ?? {}), ...Object.keys(b[part] ?? {})]);
    for (const k of keys) {
      if (part === 'metadata' && ['resourceVersion', 'managedFields', 'generation'].includes(k)) continue;
      if (JSON.stringify(a[part]?.[k]) !== JSON.stringify(b[part]?.[k])) out.push(`${part}.${k}`);
    }
  }
  return out;
}

/** Each event of `watch` with the fields it changed against the object's previous version (or the `initial` list). */
export function eventChanges<T extends KubeObject>(
  initial: readonly T[],
  events: readonly SeenEvent<T>[],
): { event: SeenEvent<T>; fields: string[] }[] {
  const last = new Map(initial.map((o) => [o.metadata.name!, o as KubeObject]));
  return events.map((event) => {
    const fields = event.type === 'DELETED' ? ['(deleted)'] : changedFields(last.get(event.object.metadata.name!), event.object);
    last.set(event.object.metadata.name!, event.object);
    return { event, fields };
  });
}

import type { KubeClient } from '../kube/client.js';
import type { ResourceType } from '../kube/resources.js';
import type { KubeObject } from '../kube/types.js';

/**
 * True when every field `desired` states has the same value in `live`. Fields the server added
 * (defaults, metadata, other managers' fields) do not matter; lists must match element for element.
 * This is how a reconcile decides that server-side apply would change nothing and sends no write.
 */
export function isSubset(desired: unknown, live: unknown): boolean {
  if (desired === live) return true;
  if (Array.isArray(desired)) {
    return Array.isArray(live) && desired.length === live.length && desired.every((d, i) => isSubset(d, live[i]));
  }
  if (desired !== null && typeof desired === 'object') {
    if (live === null || typeof live !== 'object' || Array.isArray(live)) return false;
    const liveRecord = live as Record<string, unknown>;
    return Object.entries(desired as Record<string, unknown>).every(([k, v]) => v === undefined || isSubset(v, liveRecord[k]));
  }
  return false;
}

/** A field by its path, e.g. `['spec', 'mountOptions']` or `['metadata', 'annotations', KEY]`. */
export type FieldPath = readonly string[];

/**
 * The `optional` fields that `live` has but `desired` leaves out. {@link isSubset} cannot see a
 * field the desired object dropped (a pool's mountOptions removed, a class no longer the default),
 * and server-side apply only removes such a field when this manager set it by apply: these are
 * removed explicitly (see {@link Applier.apply}).
 */
export function droppedFields(desired: unknown, live: unknown, optional: readonly FieldPath[]): FieldPath[] {
  return optional.filter((path) => valueAt(live, path) !== undefined && valueAt(desired, path) === undefined);
}

function valueAt(obj: unknown, path: FieldPath): unknown {
  let cur = obj;
  for (const key of path) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur)) return undefined;
    cur = (cur as Record<string, unknown>)[key];
  }
  return cur;
}

/** A JSON merge patch that removes `paths`. */
function removalPatch(paths: readonly FieldPath[]): Record<string, unknown> {
  const patch: Record<string, unknown> = {};
  for (const path of paths) {
    let cur = patch;
    path.forEach((key, i) => {
      if (i === path.length - 1) cur[key] = null;
      else cur = (cur[key] ??= {}) as Record<string, unknown>;
    });
  }
  return patch;
}

/** Deep equality of JSON values (key order ignored). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  return isSubset(a, b) && isSubset(b, a);
}

/**
 * Server-side apply under one field manager, skipping the write when the live object already says
 * everything the desired object says — so a converged reconcile sends nothing.
 *
 * @example
 *   const applier = new Applier(client, 'stowage-operator');
 *   await applier.apply(STORAGE_CLASSES, desiredClass, informer.get(name));
 */
export class Applier {
  constructor(
    readonly client: KubeClient,
    readonly fieldManager: string,
  ) {}

  /**
   * True when `live` already says everything `desired` says, and has none of the `optional` fields
   * `desired` leaves out: applying it would change nothing.
   */
  isCurrent(desired: KubeObject, live: KubeObject, optional: readonly FieldPath[] = []): boolean {
    return isSubset(stripTypeMeta(desired), live) && droppedFields(desired, live, optional).length === 0;
  }

  /**
   * Applies `desired` unless `live` already matches it; returns the resulting object. `optional`
   * names fields `desired` may leave out that this manager sets when it has them: `live`'s copies
   * of those are removed first (a JSON merge patch), whoever set them.
   */
  async apply<T extends KubeObject>(
    rt: ResourceType,
    desired: KubeObject,
    live: T | undefined,
    optional: readonly FieldPath[] = [],
  ): Promise<T> {
    if (live && this.isCurrent(desired, live, optional)) return live;
    const dropped = live ? droppedFields(desired, live, optional) : [];
    if (dropped.length > 0) {
      // The cached resourceVersion is a precondition: if the object changed since (a PV got bound,
      // say), the API server refuses (409) and the reconcile retries with what it is now.
      const patch = removalPatch(dropped);
      patch.metadata = { ...(patch.metadata as Record<string, unknown> | undefined), resourceVersion: live!.metadata.resourceVersion };
      await this.client.mergePatch(rt, live!.metadata.name!, patch, {
        namespace: live!.metadata.namespace,
        fieldManager: this.fieldManager,
      });
    }
    return this.client.apply<T>(rt, desired, { fieldManager: this.fieldManager, force: true });
  }

  /**
   * Applies the `status` of `desired` through the status subresource unless `live.status` is equal
   * to it. This manager owns the whole status, so equality, not a subset, is the test.
   */
  async applyStatus<T extends KubeObject>(
    rt: ResourceType,
    desired: KubeObject & { status: unknown },
    live: T | undefined,
  ): Promise<T | undefined> {
    if (live && jsonEqual(desired.status, live.status)) return live;
    return this.client.apply<T>(rt, desired, { fieldManager: this.fieldManager, force: true, subresource: 'status' });
  }
}

function stripTypeMeta(obj: KubeObject): Omit<KubeObject, 'apiVersion' | 'kind'> {
  const { apiVersion: _a, kind: _k, ...rest } = obj;
  return rest;
}

import type { KubeClient } from '../../kube/client.js';
import type { ResourceType } from '../../kube/resources.js';
import type { KubeObject } from '../../kube/types.js';

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

  /** True when `live` already says everything `desired` says, so applying it would change nothing. */
  isCurrent(desired: KubeObject, live: KubeObject): boolean {
    return isSubset(stripTypeMeta(desired), live);
  }

  /** Applies `desired` unless `live` already matches it; returns the resulting object. */
  async apply<T extends KubeObject>(rt: ResourceType, desired: KubeObject, live: T | undefined): Promise<T> {
    if (live && this.isCurrent(desired, live)) return live;
    return this.client.apply<T>(rt, desired, { fieldManager: this.fieldManager, force: true });
  }

  /**
   * Applies the `status` of `desired` through the status subresource unless `live.status` is equal
   * to it. This manager owns the whole status, so equality, not a subset, is the test.
   */
  async applyStatus<T extends KubeObject>(rt: ResourceType, desired: KubeObject & { status: unknown }, live: T | undefined): Promise<T | undefined> {
    if (live && jsonEqual(desired.status, live.status)) return live;
    return this.client.apply<T>(rt, desired, { fieldManager: this.fieldManager, force: true, subresource: 'status' });
  }
}

function stripTypeMeta(obj: KubeObject): Omit<KubeObject, 'apiVersion' | 'kind'> {
  const { apiVersion: _a, kind: _k, ...rest } = obj;
  return rest;
}

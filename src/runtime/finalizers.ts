import { ApiError } from '../kube/api-error.js';
import type { JsonPatchOperation, KubeClient } from '../kube/client.js';
import type { ResourceType } from '../kube/resources.js';
import type { KubeObject } from '../kube/types.js';

/**
 * Finalizer helpers that can never clobber another controller's finalizers: they send JSON patches
 * whose `test` operations make the API server refuse (409/422) if the list changed since it was read,
 * instead of writing back a whole list that may be stale.
 */

export function hasFinalizer(obj: KubeObject, finalizer: string): boolean {
  return obj.metadata.finalizers?.includes(finalizer) ?? false;
}

/** Adds `finalizer` to `obj` if missing; returns the updated object (or `obj` when nothing changed). */
export async function addFinalizer<T extends KubeObject>(client: KubeClient, rt: ResourceType, obj: T, finalizer: string): Promise<T> {
  if (hasFinalizer(obj, finalizer)) return obj;
  const ops: JsonPatchOperation[] = obj.metadata.finalizers
    ? [{ op: 'add', path: '/metadata/finalizers/-', value: finalizer }]
    : [
        // Creating the list: only if nobody created it since we read the object.
        { op: 'test', path: '/metadata/resourceVersion', value: obj.metadata.resourceVersion },
        { op: 'add', path: '/metadata/finalizers', value: [finalizer] },
      ];
  return patch(client, rt, obj, ops);
}

/** Removes `finalizer` from `obj` if present, leaving every other finalizer untouched. */
export async function removeFinalizer<T extends KubeObject>(client: KubeClient, rt: ResourceType, obj: T, finalizer: string): Promise<T> {
  const index = obj.metadata.finalizers?.indexOf(finalizer) ?? -1;
  if (index < 0) return obj;
  return patch(client, rt, obj, [
    { op: 'test', path: `/metadata/finalizers/${index}`, value: finalizer },
    { op: 'remove', path: `/metadata/finalizers/${index}` },
  ]);
}

async function patch<T extends KubeObject>(client: KubeClient, rt: ResourceType, obj: T, ops: JsonPatchOperation[]): Promise<T> {
  try {
    return await client.jsonPatch<T>(rt, obj.metadata.name!, ops, obj.metadata.namespace ? { namespace: obj.metadata.namespace } : {});
  } catch (err) {
    // A failed `test` (422) means the list moved under us; the caller's reconcile retries with fresh state.
    if (err instanceof ApiError && err.code === 422) {
      throw new ApiError(
        409,
        'Conflict',
        `finalizers of ${obj.metadata.name} changed concurrently; will retry with the current list`,
        err.status,
      );
    }
    throw err;
  }
}

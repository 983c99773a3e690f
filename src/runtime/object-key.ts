import type { KubeObject } from '../kube/types.js';

/** The work-queue key of an object: `name` for cluster-scoped objects, `namespace/name` otherwise. */
export function objectKey(obj: Pick<KubeObject, 'metadata'>): string {
  const { namespace, name } = obj.metadata;
  if (!name) throw new Error('an object without metadata.name has no key');
  return namespace ? `${namespace}/${name}` : name;
}

/** Splits a key made by {@link objectKey}. */
export function splitKey(key: string): { namespace?: string; name: string } {
  const slash = key.indexOf('/');
  return slash < 0 ? { name: key } : { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

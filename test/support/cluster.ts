import { randomBytes } from 'node:crypto';
import { KubeClient } from '../../src/kube/client.js';
import { NAMESPACES } from '../../src/kube/resources.js';
import { sharedControlPlane } from '../cluster/shared.js';
import type { ControlPlane } from '../cluster/control-plane.js';

/** The shared control plane plus an admin client for it (closed by the caller's `after`). */
export async function adminClient(): Promise<{ cp: ControlPlane; client: KubeClient }> {
  const cp = await sharedControlPlane();
  const client = await KubeClient.load({ kubeconfig: cp.kubeconfigPath, userAgent: 'stowage-tests' });
  return { cp, client };
}

/** A short random suffix, so tests sharing one control plane never collide on names. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(3).toString('hex')}`;
}

export async function createNamespace(client: KubeClient, prefix = 'test'): Promise<string> {
  const name = uniqueName(prefix);
  await client.create(NAMESPACES, { metadata: { name } });
  return name;
}

/** Polls `probe` until it returns a value other than undefined/false, or fails naming `what`. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 30_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      // eslint-disable-next-line @typescript-eslint/no-base-to-string -- whatever the poll threw is shown as it comes
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${String(lastError)})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * Deletes a StoragePool a test made, also when no operator is running any more to finalize it:
 * the test's own operator is gone by `after`, so the finalizer is dropped here (the API server's
 * garbage collector still removes the StorageClass it owned).
 */
export async function deletePoolForcibly(client: KubeClient, name: string): Promise<void> {
  const { STORAGE_POOLS } = await import('../../src/crds/resource-types.js');
  await client.delete(STORAGE_POOLS, name);
  try {
    await client.mergePatch(STORAGE_POOLS, name, { metadata: { finalizers: null } });
  } catch {
    // already gone
  }
}

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
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000, intervalMs = 100): Promise<T> {
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
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${String(lastError)})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

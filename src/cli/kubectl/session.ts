/**
 * The connection a `kubectl stowage` command works on: the user's kubeconfig and context (flags
 * first, then $KUBECONFIG, then ~/.kube/config, as kubectl), the namespace from `-n` or the context,
 * and errors turned into what to do about them.
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import * as path from 'node:path';
import { KubeConfig } from '../../kube/client-node.js';
import { KubeClient } from '../../kube/client.js';
import { ApiError } from '../../kube/api-error.js';
import { GROUP, VERSION } from '../../crds/meta.js';

/** Field manager of every write the plugin makes (server-side apply), and its User-Agent. */
export const PLUGIN_FIELD_MANAGER = 'kubectl-stowage';

export interface GlobalFlags {
  readonly kubeconfig?: string | undefined;
  readonly context?: string | undefined;
  readonly namespace?: string | undefined;
}

export interface Session {
  readonly client: KubeClient;
  /** `-n`, else the context's namespace, else `default` (kubectl's rule). */
  readonly namespace: string;
  readonly server: string;
}

/** A problem the user can fix; printed without a stack trace, exit code 1. */
export class UserError extends Error {
  override readonly name = 'UserError';
}

export async function openSession(flags: GlobalFlags): Promise<Session> {
  const kc = new KubeConfig();
  if (flags.kubeconfig) {
    if (!existsSync(flags.kubeconfig)) throw new UserError(`--kubeconfig ${flags.kubeconfig}: no such file`);
    kc.loadFromFile(flags.kubeconfig);
  } else {
    // kubectl's order: every file $KUBECONFIG names (missing ones skipped), else ~/.kube/config.
    const named = (process.env.KUBECONFIG ?? '').split(path.delimiter).filter((f) => f !== '');
    if (named.length > 0 && !named.some((f) => existsSync(f))) {
      throw new UserError(
        `no cluster configured: KUBECONFIG names ${named.join(', ')}, and none of it exists; set KUBECONFIG to your kubeconfig file or pass --kubeconfig FILE (and --context NAME), as for kubectl`,
      );
    }
    const existing = named.filter((f) => existsSync(f));
    if (existing.length > 0) process.env.KUBECONFIG = existing.join(path.delimiter);
    // With no file and no in-cluster account, client-node falls back to http://localhost:8080,
    // which it then refuses ("HTTP protocol is not allowed"); kubectl says nothing is configured.
    const home = path.join(homedir(), '.kube', 'config');
    if (existing.length === 0 && !existsSync(home) && !process.env.KUBERNETES_SERVICE_HOST) {
      throw new UserError(
        `no cluster configured: KUBECONFIG is not set and ${home} does not exist; set KUBECONFIG to your kubeconfig file or pass --kubeconfig FILE (and --context NAME), as for kubectl`,
      );
    }
    kc.loadFromDefault();
  }
  if (flags.context) {
    if (!kc.getContextObject(flags.context)) {
      const known = kc.getContexts().map((c) => c.name);
      throw new UserError(
        `--context ${flags.context}: no such context in the kubeconfig${known.length ? ` (it has: ${known.join(', ')})` : ''}`,
      );
    }
    kc.setCurrentContext(flags.context);
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster || !cluster.server) {
    throw new UserError(
      'no cluster configured: set KUBECONFIG or pass --kubeconfig FILE (and --context NAME), as for kubectl; `kubectl config current-context` shows what kubectl would use',
    );
  }
  const contextNamespace = kc.getContextObject(kc.getCurrentContext())?.namespace;
  const client = await KubeClient.fromKubeConfig(kc, { userAgent: PLUGIN_FIELD_MANAGER });
  return { client, namespace: flags.namespace ?? contextNamespace ?? 'default', server: client.server };
}

/**
 * Fails early, naming the fix, when Stowage's API is not served: discovery of stowage.dev answers
 * 404 until the CRDs are installed.
 */
export async function requireStowageApi(session: Session): Promise<void> {
  try {
    await session.client.request({ method: 'GET', path: `/apis/${GROUP}/${VERSION}` });
  } catch (err) {
    if (ApiError.isNotFound(err)) {
      throw new UserError(
        `the cluster at ${session.server} does not serve ${GROUP}/${VERSION}: Stowage's CRDs are not installed. Install them with \`kubectl apply -k config/default\` (or \`make install\` for the CRDs alone), then try again`,
      );
    }
    throw err;
  }
}

const FORBIDDEN = /cannot (\w+) resource "([^"]+)"(?: in API group "([^"]*)")?(?: in the namespace "([^"]+)"| at the cluster scope)?/;
const USER = /User "([^"]+)"/;

/** Turns transport and API errors into one sentence that says what failed and what to do. */
export function explainError(err: unknown, server?: string): string {
  if (err instanceof UserError) return err.message;
  server ??= err instanceof Error ? /on (https?:\/\/\S+) failed/.exec(err.message)?.[1] : undefined;
  if (err instanceof ApiError) {
    if (err.code === 403) {
      const m = FORBIDDEN.exec(err.message);
      if (m) {
        const [, verb, resource, group, namespace] = m as (string | undefined)[];
        const qualified = group ? `${resource}.${group}` : resource;
        const user = USER.exec(err.message)?.[1] ?? 'you';
        const where = namespace ? `in namespace ${namespace}` : 'cluster-wide';
        const kind = namespace ? 'Role' : 'ClusterRole';
        return `RBAC denied: ${user} may not ${verb} ${qualified} (${where}). Ask a cluster administrator for a ${kind} granting "${verb}" on "${resource}" in apiGroup "${group ?? ''}" (docs/kubectl-plugin.md lists every rule the plugin needs), or use a --context that has it`;
      }
      return `RBAC denied: ${err.status?.message ?? err.message}`;
    }
    if (err.code === 401) {
      return `the API server at ${server ?? 'the cluster'} did not accept the credentials of this kubeconfig (401 Unauthorized): refresh them (e.g. log in again) or pick another --context`;
    }
    return err.status?.message ? `${err.status.message} (${err.code} ${err.reason})` : err.message;
  }
  const cause = (err as { cause?: NodeJS.ErrnoException } | undefined)?.cause;
  const code = cause?.code;
  if (code && ['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ETIMEDOUT', 'ECONNRESET', 'EAI_AGAIN'].includes(code)) {
    return `no cluster reachable at ${server ?? 'the configured server'} (${code}): is the cluster running, and do --kubeconfig/--context (or KUBECONFIG) point at it? \`kubectl cluster-info\` checks the same connection`;
  }
  if (err instanceof Error && /no answer from/.test(err.message)) {
    return `no cluster reachable at ${server ?? 'the configured server'}: ${err.message}; is the cluster running, and do --kubeconfig/--context point at it?`;
  }
  return err instanceof Error ? err.message : String(err);
}

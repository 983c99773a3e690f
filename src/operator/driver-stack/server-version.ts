import type { KubeClient } from '../../kube/client.js';
import { logger } from '../../util/logger.js';
import { parseServerVersion, type KubernetesVersion } from './sidecars.js';

const log = logger('server-version');

/**
 * The API server's version, asked once (GET /version, which every authenticated client may read)
 * and kept: the sidecar set and what pools may do follow it. A failed ask is retried on the next
 * call, so a reconcile that needs it fails and is retried rather than guessing.
 */
export class ServerVersion {
  private known?: KubernetesVersion;
  private pending?: Promise<KubernetesVersion>;

  constructor(private readonly client: Pick<KubeClient, 'request'>) {}

  /** The version if already known (synchronous, for status computations). */
  current(): KubernetesVersion | undefined {
    return this.known;
  }

  async get(): Promise<KubernetesVersion> {
    if (this.known) return this.known;
    this.pending ??= this.client
      .request<{ major?: string; minor?: string; gitVersion?: string }>({ method: 'GET', path: '/version' })
      .then((info) => {
        this.known = parseServerVersion(info);
        log.info({ version: this.known.gitVersion }, 'Kubernetes server version');
        return this.known;
      })
      .finally(() => {
        this.pending = undefined;
      });
    return this.pending;
  }
}

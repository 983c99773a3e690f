import type { KubeClient } from '../kube/client.js';
import { CUSTOM_RESOURCE_DEFINITIONS } from '../kube/resources.js';
import type { KubeObject } from '../kube/types.js';
import { sleep } from '../util/sleep.js';
import { crdsForServer } from './crd.js';

type LiveCrd = KubeObject & { status?: { conditions?: { type: string; status: string }[] } };

/**
 * Applies Stowage's CRDs with server-side apply and waits until the API server serves them
 * (`Established=True`), for `make run` and tests. Servers older than 1.23 refuse CRDs carrying CEL
 * rules, so {@link crdsForServer} leaves them out there — the operator checks the same rules itself.
 */
export async function installCrds(client: KubeClient, fieldManager: string, timeoutMs = 60_000): Promise<void> {
  const crds = crdsForServer(await client.request<{ major: string; minor: string }>({ method: 'GET', path: '/version' }));
  for (const crd of crds) await client.apply(CUSTOM_RESOURCE_DEFINITIONS, crd, { fieldManager });
  const deadline = Date.now() + timeoutMs;
  for (const crd of crds) {
    for (;;) {
      const live = await client.get<LiveCrd>(CUSTOM_RESOURCE_DEFINITIONS, crd.metadata.name);
      if (live.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) break;
      if (Date.now() > deadline)
        throw new Error(`CRD ${crd.metadata.name} was not established within ${timeoutMs} ms; see the API server's log`);
      await sleep(200);
    }
  }
}

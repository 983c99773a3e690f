/**
 * The cluster's snapshot API for tests: the three upstream snapshot.storage.k8s.io CRDs
 * (external-snapshotter v6.2.2) read from the workspace's shared data directory — never copied into
 * the project, because in a real cluster they belong to the cluster, not to Stowage. Installed by
 * server-side apply, waited for until Established, and removed again so other tests see the
 * control plane as they found it.
 */
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import type { KubeClient } from '../../src/kube/client.js';
import { CUSTOM_RESOURCE_DEFINITIONS } from '../../src/kube/resources.js';
import type { KubeObject } from '../../src/kube/types.js';
import { waitFor } from './cluster.js';

/** `../shared/snapshot-crds` beside the checkout (compiled, this file is dist/test/support/); STOWAGE_SNAPSHOT_CRDS overrides it. */
export function snapshotCrdDir(): string {
  return process.env.STOWAGE_SNAPSHOT_CRDS || resolve(dirname(fileURLToPath(import.meta.url)), '../../../../shared/snapshot-crds');
}

async function crds(): Promise<KubeObject[]> {
  const dir = snapshotCrdDir();
  const files = (
    await readdir(dir).catch(() => {
      throw new Error(
        `the snapshot CRDs are not at ${dir}; set STOWAGE_SNAPSHOT_CRDS to the directory holding external-snapshotter's client/config/crd/*.yaml`,
      );
    })
  )
    .filter((f) => f.endsWith('.yaml'))
    .sort();
  const out: KubeObject[] = [];
  for (const f of files)
    for (const doc of parseAllDocuments(await readFile(join(dir, f), 'utf8'))) if (doc.contents) out.push(doc.toJS() as KubeObject);
  return out;
}

export async function installSnapshotCrds(client: KubeClient): Promise<void> {
  for (const crd of await crds()) await client.apply(CUSTOM_RESOURCE_DEFINITIONS, crd, { fieldManager: 'stowage-tests' });
  for (const crd of await crds()) {
    await waitFor(
      `CRD ${crd.metadata.name} established`,
      async () => {
        const live = await client.get<KubeObject & { status?: { conditions?: { type: string; status: string }[] } }>(
          CUSTOM_RESOURCE_DEFINITIONS,
          crd.metadata.name!,
        );
        return live.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') || undefined;
      },
      30_000,
    );
  }
}

export async function removeSnapshotCrds(client: KubeClient): Promise<void> {
  for (const crd of await crds()) await client.delete(CUSTOM_RESOURCE_DEFINITIONS, crd.metadata.name!);
  for (const crd of await crds())
    await waitFor(
      `CRD ${crd.metadata.name} gone`,
      async () => !(await client.getIfExists(CUSTOM_RESOURCE_DEFINITIONS, crd.metadata.name!)) || undefined,
      60_000,
    );
}

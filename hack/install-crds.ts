/**
 * `make install`: installs Stowage's CRDs into the cluster your kubeconfig points at, with CEL rules
 * where the server understands them (1.23+) and without them on older servers.
 */
import { installCrds } from '../src/crds/install.js';
import { KubeClient } from '../src/kube/client.js';

const client = await KubeClient.load({ userAgent: 'stowage-install' });
try {
  await installCrds(client, 'stowage-install');
  process.stdout.write(`CRDs installed and established on ${client.server}\n`);
} catch (err) {
  process.stderr.write(`installing the CRDs failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
} finally {
  client.close();
}

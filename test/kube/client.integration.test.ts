import { expect } from 'chai';
import { KubeClient } from '../../src/kube/client.js';
import { CONFIG_MAPS, NAMESPACES } from '../../src/kube/resources.js';
import type { KubeObject } from '../../src/kube/types.js';
import { Informer } from '../../src/runtime/informer.js';
import type { ControlPlane } from '../cluster/control-plane.js';
import { adminClient, createNamespace } from '../support/cluster.js';

describe('KubeClient on the real control plane', function () {
  this.timeout(60_000);
  let cp: ControlPlane;
  let admin: KubeClient;
  let namespace: string;

  before(async () => {
    ({ cp, client: admin } = await adminClient());
    namespace = await createNamespace(admin, 'client');
  });
  after(async () => {
    await admin.delete(NAMESPACES, namespace);
    admin.close();
  });

  it('watches do not take the connections requests need: with 40 watches open, reads and writes still go through', async () => {
    // A client of its own: its request connections are limited (32); 40 informers hold 40 watches.
    const client = await KubeClient.load({ kubeconfig: cp.kubeconfigPath, userAgent: 'client-test' });
    const informers = Array.from(
      { length: 40 },
      (_, i) => new Informer<KubeObject>({ client, resource: CONFIG_MAPS, namespace, labelSelector: `watch=w${i}`, resyncMs: 0 }),
    );
    try {
      for (const informer of informers) informer.start();
      await Promise.all(informers.map((i) => i.waitForSync()));
      // Every informer has listed and now holds a watch open.
      await client.create(CONFIG_MAPS, { metadata: { name: 'through', namespace, labels: { watch: 'w39' } }, data: { a: '1' } });
      const read = await client.get<KubeObject & { data?: Record<string, string> }>(CONFIG_MAPS, 'through', namespace);
      expect(read.data).to.deep.equal({ a: '1' });
      // The watch of the last informer delivers the object too.
      const deadline = Date.now() + 10_000;
      while (!informers[39].get(`${namespace}/through`) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(informers[39].get(`${namespace}/through`)?.metadata.name).to.equal('through');
    } finally {
      await Promise.all(informers.map((i) => i.stop()));
      client.close();
    }
  });
});

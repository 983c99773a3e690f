// Changing --node-registration on a running install (a GitOps change of the operator's args): the
// operator re-applies the node DaemonSet, and server-side apply removes what the old mode needed
// (the upstream sidecars, their volumes and ports) or adds it back. Real control plane; no
// ServiceAccount for the node pods exists in the test's namespace, so no pod is created.

import { expect } from 'chai';
import { installCrds } from '../../src/crds/install.js';
import { DAEMON_SETS, NAMESPACES } from '../../src/kube/resources.js';
import { KubeClient } from '../../src/kube/client.js';
import { NODE_DAEMONSET, type NodeRegistration } from '../../src/operator/driver-stack/render.js';
import { setupControllers } from '../../src/operator/setup.js';
import { Manager } from '../../src/runtime/manager.js';
import type { ControlPlane } from '../cluster/control-plane.js';
import { adminClient, createNamespace, waitFor } from '../support/cluster.js';

type Any = any;

describe('switching the node plugin registration on a live DaemonSet (real control plane)', function () {
  this.timeout(120_000);
  let cp: ControlPlane;
  let admin: KubeClient;
  let namespace = '';

  before(async () => {
    ({ cp, client: admin } = await adminClient());
    await installCrds(admin, 'stowage-tests');
    namespace = await createNamespace(admin, 'regswitch');
  });

  after(async () => {
    if (!admin) return;
    await admin.delete(DAEMON_SETS, NODE_DAEMONSET, { namespace }).catch(() => undefined);
    if (namespace) await admin.delete(NAMESPACES, namespace).catch(() => undefined);
    admin.close();
  });

  async function runOperatorWith(registration: NodeRegistration, until: (ds: Any) => boolean): Promise<Any> {
    const client = await KubeClient.load({ kubeconfig: cp.kubeconfigPath, userAgent: 'stowage-operator-test' });
    const manager = new Manager({ client, informerDefaults: { resyncMs: 2_000 } });
    setupControllers(manager, { workers: 1, fieldManager: 'stowage-operator', driverStack: { namespace, registration, resyncMs: 2_000 } });
    const abort = new AbortController();
    const running = manager.run(abort.signal);
    try {
      return await waitFor(
        `the DaemonSet with registration ${registration}`,
        async () => {
          const ds = await admin.getIfExists<Any>(DAEMON_SETS, NODE_DAEMONSET, namespace);
          return ds && until(ds) ? ds : undefined;
        },
        30_000,
        200,
      );
    } finally {
      abort.abort();
      await running;
      client.close();
    }
  }

  const names = (ds: Any): string[] => ds.spec.template.spec.containers.map((c: Any) => c.name);
  const volumes = (ds: Any): string[] => ds.spec.template.spec.volumes.map((v: Any) => v.name).sort();

  it('goes from the upstream sidecars to self and back, leaving nothing of the other mode behind', async () => {
    const upstream = await runOperatorWith('node-driver-registrar', (ds) => names(ds).length === 3);
    expect(names(upstream)).to.deep.equal(['stowage-node', 'node-driver-registrar', 'liveness-probe']);
    expect(volumes(upstream)).to.include.members(['plugin-dir', 'registration-dir']);

    const self = await runOperatorWith('self', (ds) => names(ds).length === 1);
    expect(names(self)).to.deep.equal(['stowage-node']);
    expect(volumes(self)).to.deep.equal(['agent-root', 'dev', 'kubelet-dir', 'sys', 'udev']);
    const node = self.spec.template.spec.containers[0];
    expect(node.ports.map((p: Any) => p.name)).to.deep.equal(['metrics']);
    expect(node.livenessProbe.httpGet.port).to.equal('metrics');
    expect(node.volumeMounts.map((m: Any) => m.name)).not.to.include('plugin-dir');
    expect(node.args).to.include('--kubelet-registration-dir=/var/lib/kubelet/plugins_registry');

    const back = await runOperatorWith('node-driver-registrar', (ds) => names(ds).length === 3);
    expect(back.spec.template.spec.containers[0].args).not.to.include('--kubelet-registration-dir=/var/lib/kubelet/plugins_registry');
    expect(volumes(back)).to.include.members(['plugin-dir', 'registration-dir']);
  });
});

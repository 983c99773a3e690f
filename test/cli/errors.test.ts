import * as http from 'node:http';
import * as https from 'node:https';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { parse as parseYaml } from 'yaml';
import type { KubeObject } from '../../src/kube/types.js';
import { NODE_DISKS } from '../../src/crds/resource-types.js';
import { installCrds } from '../../src/crds/install.js';
import { NAMESPACES, PERSISTENT_VOLUME_CLAIMS, SERVICE_ACCOUNTS } from '../../src/kube/resources.js';
import type { KubeClient } from '../../src/kube/client.js';
import type { ControlPlane } from '../cluster/control-plane.js';
import { adminClient, createNamespace, uniqueName } from '../support/cluster.js';
import { plugin } from './support.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/**
 * Errors that say what to do: no cluster, no kubeconfig, Stowage's CRDs missing, and RBAC denied
 * naming the verb and the resource — the last with a real ServiceAccount token that lacks the right.
 */
describe('kubectl stowage: errors name the problem and the fix', function () {
  this.timeout(120_000);
  let cp: ControlPlane;
  let admin: KubeClient;
  let tmp: string;
  let namespace: string;
  const roleName = uniqueName('kp-reader');
  const docRoleName = uniqueName('kp-doc-role');
  const diskName = uniqueName('kp-rbac-disk');

  before(async () => {
    ({ cp, client: admin } = await adminClient());
    await installCrds(admin, 'stowage-tests');
    tmp = await mkdtemp(path.join(tmpdir(), 'stowage-kp-errors-'));
    namespace = await createNamespace(admin, 'kp-rbac');
    await cp.waitForDefaultServiceAccount(namespace);
  });

  after(async () => {
    if (admin) {
      await admin
        .request({ method: 'DELETE', path: `/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${roleName}` })
        .catch(() => undefined);
      await admin.request({ method: 'DELETE', path: `/apis/rbac.authorization.k8s.io/v1/clusterroles/${roleName}` }).catch(() => undefined);
      await admin
        .request({ method: 'DELETE', path: `/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${docRoleName}` })
        .catch(() => undefined);
      await admin
        .request({ method: 'DELETE', path: `/apis/rbac.authorization.k8s.io/v1/clusterroles/${docRoleName}` })
        .catch(() => undefined);
      await admin.delete(NODE_DISKS, diskName);
      if (namespace) await admin.delete(NAMESPACES, namespace);
      admin.close();
    }
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  async function kubeconfig(file: string, server: string, user: Record<string, string | boolean>, withCa = true): Promise<string> {
    const full = path.join(tmp, file);
    await writeFile(
      full,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [
          {
            name: 'c',
            cluster: { server, ...(withCa ? { 'certificate-authority': cp.caCertPath } : { 'insecure-skip-tls-verify': true }) },
          },
        ],
        users: [{ name: 'u', user }],
        contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'u' } }],
        'current-context': 'ctx',
      }),
      { mode: 0o600 },
    );
    return full;
  }

  async function serviceAccountKubeconfig(sa: string): Promise<string> {
    const answer = await admin.request<{ status: { token: string } }>({
      method: 'POST',
      path: `/api/v1/namespaces/${namespace}/serviceaccounts/${sa}/token`,
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } },
    });
    return kubeconfig(`${sa}.kubeconfig`, cp.server, { token: answer.status.token });
  }

  it('no cluster reachable: names the server and what to check', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = http.createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const kc = await kubeconfig('closed.kubeconfig', `https://127.0.0.1:${port}`, { token: 'x' });
    const r = await plugin(kc, ['pools']);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.equal(
      `kubectl-stowage: no cluster reachable at https://127.0.0.1:${port} (ECONNREFUSED): is the cluster running, and do --kubeconfig/--context (or KUBECONFIG) point at it? \`kubectl cluster-info\` checks the same connection\n`,
    );
  });

  it('no kubeconfig at all, or a context that does not exist', async () => {
    const none = await plugin(undefined, ['disks'], { KUBECONFIG: path.join(tmp, 'missing'), HOME: tmp });
    expect(none.code).to.equal(1);
    expect(none.stderr).to.equal(
      `kubectl-stowage: no cluster configured: KUBECONFIG names ${path.join(tmp, 'missing')}, and none of it exists; set KUBECONFIG to your kubeconfig file or pass --kubeconfig FILE (and --context NAME), as for kubectl\n`,
    );
    const ctx = await plugin(cp.kubeconfigPath, ['--context', 'nope', 'disks']);
    expect(ctx.code).to.equal(1);
    expect(ctx.stderr).to.match(/--context nope: no such context in the kubeconfig \(it has: .+\)/);
  });

  it('CRDs not installed: says how to install them', async () => {
    // The fault: a cluster without Stowage's CRDs. A proxy in front of the real API server answers
    // the stowage.dev group as an API server without those CRDs does (404); everything else passes.
    const agent = new https.Agent({
      ca: readFileSync(cp.caCertPath),
      cert: readFileSync(cp.adminCertPath),
      key: readFileSync(cp.adminKeyPath),
    });
    const upstream = new URL(cp.server);
    const proxy = http.createServer((req, res) => {
      if (req.url?.startsWith('/apis/stowage.dev')) {
        res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('404 page not found\n');
        return;
      }
      const out = https.request(
        {
          host: upstream.hostname,
          port: upstream.port,
          path: req.url,
          method: req.method,
          headers: { ...req.headers, host: upstream.host },
          agent,
        },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      out.on('error', () => res.destroy());
      req.pipe(out);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const kc = await kubeconfig('nocrds.kubeconfig', `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`, {}, false);
      for (const args of [['disks'], ['pools'], ['why', 'x'], ['cordon', 'x', '--dry-run']]) {
        const r = await plugin(kc, args);
        expect(r.code, args.join(' ')).to.equal(1);
        expect(r.stderr, args.join(' ')).to.match(
          /does not serve stowage.dev\/v1alpha1: Stowage's CRDs are not installed\. Install them with `kubectl apply -k config\/default`/,
        );
      }
    } finally {
      proxy.closeAllConnections();
      await new Promise((r) => proxy.close(r));
      agent.destroy();
    }
  });

  it('RBAC denied: a ServiceAccount token without the right gets the verb and resource named', async () => {
    const sa = 'kp-nobody';
    await admin.create(SERVICE_ACCOUNTS, { metadata: { name: sa, namespace } });
    const kc = await serviceAccountKubeconfig(sa);
    const r = await plugin(kc, ['disks']);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.match(
      new RegExp(
        `RBAC denied: system:serviceaccount:${namespace}:${sa} may not list (nodedisks|storagepools|poolvolumes)\\.stowage\\.dev \\(cluster-wide\\)\\. Ask a cluster administrator for a ClusterRole granting "list" on "(nodedisks|storagepools|poolvolumes)" in apiGroup "stowage.dev"`,
      ),
    );

    // Read-only rights: the views work (what it may not list is left out, with a warning); cordon is denied for patch.
    await admin.request({
      method: 'POST',
      path: '/apis/rbac.authorization.k8s.io/v1/clusterroles',
      body: {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRole',
        metadata: { name: roleName },
        rules: [{ apiGroups: ['stowage.dev'], resources: ['nodedisks', 'storagepools', 'poolvolumes'], verbs: ['get', 'list', 'watch'] }],
      },
    });
    await admin.request({
      method: 'POST',
      path: '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings',
      body: {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        metadata: { name: roleName },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: roleName },
        subjects: [{ kind: 'ServiceAccount', name: sa, namespace }],
      },
    });
    const { waitFor } = await import('../support/cluster.js');
    const pools = await waitFor(
      'the role to take effect',
      async () => {
        const p = await plugin(kc, ['pools']);
        return p.code === 0 ? p : undefined;
      },
      30_000,
    );
    expect(pools.stderr).to.include('warning: volumes are left out: this user may not list persistentvolumes cluster-wide');
    // An object to cordon (no agent, no device: the write is refused before anything could act on it).
    await admin.create(NODE_DISKS, {
      apiVersion: 'stowage.dev/v1alpha1',
      kind: 'NodeDisk',
      metadata: { name: diskName },
      spec: { nodeName: 'kp-nowhere', devicePath: '/dev/kp-none' },
    });
    const cordon = await plugin(kc, ['cordon', diskName]);
    expect(cordon.code).to.equal(1);
    expect(cordon.stderr).to.include(
      `RBAC denied: system:serviceaccount:${namespace}:${sa} may not patch nodedisks.stowage.dev (cluster-wide). Ask a cluster administrator for a ClusterRole granting "patch" on "nodedisks" in apiGroup "stowage.dev"`,
    );
    expect((await admin.get<KubeObject & { spec: { schedulable?: boolean } }>(NODE_DISKS, diskName)).spec.schedulable).to.not.equal(false);
  });

  it('the ClusterRole in docs/kubectl-plugin.md is enough for every command: no denial, no warning', async () => {
    const doc = readFileSync(path.join(REPO, 'docs/kubectl-plugin.md'), 'utf8');
    const block = /```yaml\n(kind: ClusterRole[\s\S]*?|apiVersion: rbac[\s\S]*?)```/.exec(doc)?.[1];
    expect(block, 'a ClusterRole yaml block in docs/kubectl-plugin.md').to.be.a('string');
    const role = parseYaml(block!) as { kind: string; metadata: { name: string } };
    expect(role.kind).to.equal('ClusterRole');
    role.metadata.name = docRoleName;
    await admin.request({ method: 'POST', path: '/apis/rbac.authorization.k8s.io/v1/clusterroles', body: role });
    const sa = 'kp-operator-of-disks';
    await admin.create(SERVICE_ACCOUNTS, { metadata: { name: sa, namespace } });
    await admin.request({
      method: 'POST',
      path: '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings',
      body: {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        metadata: { name: docRoleName },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: docRoleName },
        subjects: [{ kind: 'ServiceAccount', name: sa, namespace }],
      },
    });
    await admin.create(PERSISTENT_VOLUME_CLAIMS, {
      metadata: { name: 'orphan', namespace },
      spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'kp-no-such-class', resources: { requests: { storage: '1Gi' } } },
    });
    if (!(await admin.getIfExists(NODE_DISKS, diskName))) {
      await admin.create(NODE_DISKS, {
        apiVersion: 'stowage.dev/v1alpha1',
        kind: 'NodeDisk',
        metadata: { name: diskName },
        spec: { nodeName: 'kp-nowhere', devicePath: '/dev/kp-none' },
      });
    }
    const kc = await serviceAccountKubeconfig(sa);
    const { waitFor } = await import('../support/cluster.js');
    await waitFor('the role to take effect', async () => (await plugin(kc, ['disks'])).code === 0, 30_000);
    // The disk was created by a plain create (an Update), whose manager owns the defaulted
    // spec.schedulable; the agent's server-side apply would not. The plugin does not take it silently.
    const conflict = await plugin(kc, ['cordon', diskName]);
    expect(conflict.code).to.equal(1);
    expect(conflict.stderr).to.match(
      /spec.schedulable of nodedisk \S+ is owned by another field manager \(.*conflict with "stowage-tests".*\); run again with --force-conflicts to take it over/,
    );
    for (const args of [
      ['disks', '-o', 'wide'],
      ['pools'],
      ['why', diskName],
      ['why', 'orphan', '-n', namespace],
      ['cordon', diskName, '--dry-run'],
      ['cordon', diskName, '--force-conflicts'],
      ['uncordon', diskName],
      ['drain', diskName, '--timeout', '5'],
    ]) {
      const r = await plugin(kc, args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).to.equal(0);
      expect(r.stderr, args.join(' ')).to.equal('');
    }
  });
});

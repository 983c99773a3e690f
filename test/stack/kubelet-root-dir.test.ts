// kubelet's root directory as a setting (issue 27, item 7): with a non-default root, every place the
// node DaemonSet names kubelet's directory follows it, in both registration modes, and nothing
// still says /var/lib/kubelet; a bad value stops the operator (and `stowage render`) at start.

import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { parseAllDocuments } from 'yaml';
import { DEFAULT_IMAGES } from '../../src/operator/driver-stack/images.js';
import { DEFAULT_KUBELET_ROOT_DIR, kubeletRootDir } from '../../src/operator/driver-stack/host-paths.js';
import { DRIVER_NAME, NODE_REGISTRATIONS, desiredDriverStack } from '../../src/operator/driver-stack/render.js';
import { validateModel } from './models.js';

type Any = any;

const K0S = '/var/lib/k0s/kubelet';
const input = { dynamicPools: 1, images: DEFAULT_IMAGES, namespace: 'stowage-system' };
const nodeDaemonSet = (registration: (typeof NODE_REGISTRATIONS)[number], kubeletDir?: string): Any =>
  desiredDriverStack({ ...input, registration, ...(kubeletDir ? { kubeletDir } : {}) }).find((o) => o.kind === 'DaemonSet');
const cli = join(process.cwd(), 'dist', 'src', 'cli', 'main.js');
const run = (...args: string[]) =>
  promisify(execFile)(process.execPath, [cli, ...args]).then(
    (r) => ({ code: 0, ...r }),
    (e: Any) => ({ code: e.code as number, stdout: e.stdout as string, stderr: e.stderr as string }),
  );

describe('kubelet root directory (--kubelet-root-dir)', () => {
  for (const registration of NODE_REGISTRATIONS) {
    it(`registration ${registration}: a non-default root moves every kubelet path of the node DaemonSet, and none names /var/lib/kubelet`, () => {
      const ds = nodeDaemonSet(registration, K0S);
      expect(() => validateModel(ds)).not.to.throw();
      const pod = ds.spec.template.spec;
      const node = pod.containers[0];
      expect(node.args).to.include(`--kubelet-dir=${K0S}`);
      expect(node.volumeMounts).to.deep.include({ name: 'kubelet-dir', mountPath: K0S, mountPropagation: 'Bidirectional' });
      const hostPaths = Object.fromEntries(pod.volumes.filter((v: Any) => v.hostPath).map((v: Any) => [v.name, v.hostPath.path]));
      expect(hostPaths['kubelet-dir']).to.equal(K0S);
      if (registration === 'self') {
        expect(node.args).to.include.members([
          `--csi-endpoint=unix://${K0S}/plugins/${DRIVER_NAME}/csi.sock`,
          `--kubelet-registration-dir=${K0S}/plugins_registry`,
        ]);
      } else {
        expect(hostPaths).to.include({ 'plugin-dir': `${K0S}/plugins/${DRIVER_NAME}`, 'registration-dir': `${K0S}/plugins_registry` });
        const registrar = pod.containers.find((c: Any) => c.name === 'node-driver-registrar');
        expect(registrar.args).to.include(`--kubelet-registration-path=${K0S}/plugins/${DRIVER_NAME}/csi.sock`);
      }
      expect(JSON.stringify(ds), 'no path of the default root is left').not.to.contain(DEFAULT_KUBELET_ROOT_DIR);
      // The default root renders exactly what an omitted one does.
      expect(JSON.stringify(nodeDaemonSet(registration, DEFAULT_KUBELET_ROOT_DIR))).to.equal(JSON.stringify(nodeDaemonSet(registration)));
    });
  }

  it("accepts the known distributions' roots (a trailing slash dropped) and refuses what no kubelet root can be, saying why", () => {
    for (const dir of [DEFAULT_KUBELET_ROOT_DIR, K0S, '/var/snap/microk8s/common/var/lib/kubelet', '/var/lib/rancher/k3s/agent/kubelet'])
      expect(kubeletRootDir(dir)).to.equal(dir);
    expect(kubeletRootDir(`${K0S}/`)).to.equal(K0S);
    expect(kubeletRootDir()).to.equal(DEFAULT_KUBELET_ROOT_DIR);
    expect(() => kubeletRootDir('var/lib/kubelet')).to.throw(
      /--kubelet-root-dir "var\/lib\/kubelet" is not an absolute path; pass kubelet's --root-dir/,
    );
    expect(() => kubeletRootDir('/var/lib/../kubelet')).to.throw(/is not in normal form \(write \/var\/kubelet\)/);
    expect(() => kubeletRootDir('/var/lib/my kubelet')).to.throw(/has a character other than/);
    expect(() => kubeletRootDir('/')).to.throw(/is the root directory/);
    expect(() => kubeletRootDir('/var/lib/stowage/kubelet')).to.throw(
      /overlaps \/var\/lib\/stowage, which the node DaemonSet mounts separately/,
    );
    expect(() => kubeletRootDir('/dev')).to.throw(/overlaps \/dev/);
  });

  it('`stowage render --kubelet-root-dir` renders the DaemonSet for that root; `stowage operator` with a bad root stops at start, naming the flag', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stowage-kubelet-root-'));
    try {
      const pool = join(dir, 'pool.yaml');
      await writeFile(
        pool,
        'apiVersion: stowage.dev/v1alpha1\nkind: StoragePool\nmetadata:\n  name: fast\nspec:\n  mode: Dynamic\n  disks:\n    selector: {}\n',
      );
      const rendered = await run('render', '-f', pool, '--kubelet-root-dir', K0S);
      expect(rendered.code, rendered.stderr).to.equal(0);
      const ds = parseAllDocuments(rendered.stdout)
        .map((d) => d.toJS())
        .find((o: Any) => o?.kind === 'DaemonSet');
      expect(ds.spec.template.spec.volumes).to.deep.include({ name: 'kubelet-dir', hostPath: { path: K0S, type: 'Directory' } });
      const badRender = await run('render', '-f', pool, '--kubelet-root-dir', 'kubelet');
      expect(badRender.code).to.equal(1);
      expect(badRender.stderr).to.match(/--kubelet-root-dir "kubelet" is not an absolute path/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    const operator = await run('operator', '--kubelet-root-dir=/var/lib/stowage', '--kubeconfig', '/nonexistent/kubeconfig');
    expect(operator.code, 'exit code').to.equal(1);
    expect(operator.stderr).to.match(/--kubelet-root-dir "\/var\/lib\/stowage" overlaps \/var\/lib\/stowage/);
  });
});

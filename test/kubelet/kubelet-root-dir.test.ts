// kubelet's root directory as a setting, on a real kubelet (issue 27, item 7): the test node is
// started with another --root-dir, as k0s and MicroK8s run kubelet, and Stowage installed with the
// operator's --kubelet-root-dir. The node plugin's pod starts (its hostPath exists), registers with
// kubelet through the registration directory under that root (CSINode lists the driver), and none of
// its sockets or pods' directories appear under /var/lib/kubelet. The image comes from the loopback registry, as in installed-stack.
//
// Only one test kubelet runs per machine: the shared one is stopped first (the next test that asks
// for it starts it again).

import { expect } from 'chai';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { KubeClient } from '../../src/kube/client.js';
import { DAEMON_SETS, NAMESPACES, PODS } from '../../src/kube/resources.js';
import { DEFAULT_KUBELET_ROOT_DIR } from '../../src/operator/driver-stack/host-paths.js';
import { DRIVER_NAME, NODE_DAEMONSET } from '../../src/operator/driver-stack/render.js';
import type { ControlPlane } from '../cluster/control-plane.js';
import { shareHostPaths } from '../cluster/host-propagation.js';
import { removeStowageImages, stowageImageArchive } from '../cluster/kubelet-images.js';
import { KubeletNode } from '../cluster/kubelet-node.js';
import { LoopbackRegistry } from '../cluster/kubelet-registry.js';
import { stopSharedKubeletNode } from '../cluster/kubelet-shared.js';
import { adminClient, waitFor } from '../support/cluster.js';
import { TEST_NETWORK_FIELD_MANAGER, networkPatch, writeInstalledOverlay } from './installed-overlay.js';
import { HOST_PATHS_CREATED, PROPAGATED_HOST_PATHS, rmdirTree, stowageProcesses } from './installed-host.js';

/* eslint-disable @typescript-eslint/no-explicit-any */

/** A root no distribution uses, so the test never meets a real kubelet's (the harness refuses one it did not make). */
const ROOT = '/var/lib/stowage-test-kubelet-root/kubelet';
const NS = 'stowage-system';
const WAIT_MS = 150_000;
const NODE_SELECTOR = 'app.kubernetes.io/name=stowage,app.kubernetes.io/component=node';
const CSI_NODES = { group: 'storage.k8s.io', version: 'v1', plural: 'csinodes', kind: 'CSINode', namespaced: false } as const;

describe('kubelet node with --root-dir elsewhere: the operator\'s --kubelet-root-dir', function () {
  this.timeout(600_000);
  let cp: ControlPlane;
  let admin: KubeClient;
  let node: KubeletNode | undefined;
  let registry: LoopbackRegistry | undefined;
  let untrust: (() => Promise<void>) | undefined;
  let unshare: (() => Promise<void>) | undefined;
  let work = '';
  let overlay = '';
  let refs: string[] = [];
  let createdHostPaths: string[] = [];

  before(async function () {
    const { archive, version } = stowageImageArchive();
    if (!existsSync(archive)) throw new Error(`${archive} missing: run \`make image\` (make test does) before this test`);
    ({ cp, client: admin } = await adminClient());
    await stopSharedKubeletNode();
    node = await KubeletNode.start(cp, { rootDir: ROOT });
    createdHostPaths = HOST_PATHS_CREATED.filter((d) => !existsSync(d));
    registry = await LoopbackRegistry.start();
    untrust = await node.trustRegistry(registry.host);
    const { refs: pushed, digest } = await registry.push('stowage-dev', [version]);
    refs = [...pushed, `${registry.host}/stowage-dev/stowage@${digest}`];
    unshare = await shareHostPaths(PROPAGATED_HOST_PATHS);
    work = await mkdtemp(path.join(tmpdir(), 'stowage-kubelet-root-'));
    const ports = { metrics: 0, probe: 0 };
    const { createServer } = await import('node:net');
    for (const key of ['metrics', 'probe'] as const) {
      ports[key] = await new Promise<number>((resolve) => {
        const s = createServer().listen(0, '127.0.0.1', () => {
          const p = (s.address() as { port: number }).port;
          s.close(() => resolve(p));
        });
      });
    }
    overlay = await writeInstalledOverlay({
      dir: path.join(work, 'overlay'), server: cp.server, nodeName: node.nodeName, imageDigest: refs[1]!, metricsPort: ports.metrics, probePort: ports.probe,
      // No disk is allowed: this test is about where the plugin meets kubelet.
      operatorArgs: ['--image', `stowage=${refs[0]}`, `--kubelet-root-dir=${ROOT}`, '--node-agent-arg=--allow-device=/dev/stowage-no-such-disk'],
    });
  });

  after(async function () {
    if (cp && overlay) {
      await cp.kubectl(['delete', '-k', overlay, '--ignore-not-found', '--wait=true'], { timeoutMs: 240_000 }).catch(() => undefined);
      await waitFor(`namespace ${NS} to be gone`, async () => !(await admin.getIfExists(NAMESPACES, NS)), WAIT_MS, 500).catch(() => undefined);
    }
    await unshare?.();
    if (node && refs.length) await removeStowageImages(node.containerdSocket, refs);
    await untrust?.();
    await registry?.stop();
    await node?.stop();
    for (const dir of createdHostPaths) await rmdirTree(dir);
    if (work) await rm(work, { recursive: true, force: true });
    admin?.close();
  });

  it('the node plugin\'s pod starts with kubelet\'s root mounted Bidirectional, registers through its plugins_registry (CSINode lists the driver), and nothing of it is under /var/lib/kubelet', async function () {
    const r = await cp.kubectl(['apply', '-k', overlay], { timeoutMs: 180_000 });
    expect(r.code, r.stderr).to.equal(0);
    await waitFor(`the operator to create DaemonSet ${NS}/${NODE_DAEMONSET}`, () => admin.getIfExists(DAEMON_SETS, NODE_DAEMONSET, NS), WAIT_MS, 500);
    await admin.apply(DAEMON_SETS, networkPatch('DaemonSet', NODE_DAEMONSET, NS, ['stowage-node'], cp.server) as any, { fieldManager: TEST_NETWORK_FIELD_MANAGER, force: true });
    const pod = await waitFor('the node plugin to run on the node with the moved root', async () =>
      (await admin.list<any>(PODS, { namespace: NS, labelSelector: NODE_SELECTOR })).items.find((p) =>
        p.spec.nodeName === node!.nodeName && p.spec.hostNetwork && (p.status?.containerStatuses ?? []).some((c: any) => c.ready && c.state?.running)), WAIT_MS, 500);
    expect(pod.spec.volumes).to.deep.include({ name: 'kubelet-dir', hostPath: { path: ROOT, type: 'Directory' } });
    expect(pod.spec.containers[0].args).to.include.members([`--kubelet-dir=${ROOT}`, `--kubelet-registration-dir=${ROOT}/plugins_registry`, `--csi-endpoint=unix://${ROOT}/plugins/${DRIVER_NAME}/csi.sock`]);
    // The plugin's sockets are where this kubelet looks: it registered the driver through them.
    const csiNode = await waitFor(`CSINode ${node!.nodeName} to list ${DRIVER_NAME}`, async () => {
      const n = await admin.getIfExists<any>(CSI_NODES, node!.nodeName);
      return n?.spec?.drivers?.find((d: any) => d.name === DRIVER_NAME) ? n : undefined;
    }, 60_000, 500);
    expect(csiNode.spec.drivers.find((d: any) => d.name === DRIVER_NAME).nodeID).to.equal(node!.nodeName);
    expect(existsSync(`${ROOT}/plugins/${DRIVER_NAME}/csi.sock`), 'the CSI socket under the moved root').to.equal(true);
    // The container sees kubelet's root at the host's path, shared (Bidirectional).
    const [proc] = stowageProcesses('node');
    const { readFileSync } = await import('node:fs');
    const mount = readFileSync(`/proc/${proc!.pid}/mountinfo`, 'utf8').split('\n').find((l) => l.split(' ')[4] === ROOT);
    expect(mount, `a ${ROOT} mount in the container`).to.match(/ shared:\d+/);
    // Nothing of Stowage's under the default root (kubelet 1.20 itself makes only its device-plugins
    // directory there, whatever its --root-dir; the harness removes it).
    for (const dir of ['plugins', 'plugins_registry', 'pods']) expect(existsSync(path.join(DEFAULT_KUBELET_ROOT_DIR, dir)), `${DEFAULT_KUBELET_ROOT_DIR}/${dir}`).to.equal(false);
  });
});

// The done-when of issue 27: Stowage installed from a release's stowage.yaml on the real kubelet node.
// `make release`'s script writes build/release/ (here into a temporary directory), `make push` copies
// the image to a loopback registry, and the manifest is applied with `kubectl apply -f` after only its
// registry host is rewritten, as a user mirroring the release would: the operator and the node
// plugin it deploys are pulled from that registry BY DIGEST. Then a Local pool becomes Ready and a pod
// writes to a claim on it, and `kubectl delete -f` removes it all.
//
// This machine's network (no pod network, no kube-proxy) still needs the changes installed-overlay.ts
// explains; with `kubectl apply -f` they are a JSON patch of the operator Deployment and an apply of
// the node DaemonSet's network fields under the test's field manager.

import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect } from 'chai';
import type { KubeClient } from '../../src/kube/client.js';
import { DAEMON_SETS, DEPLOYMENTS, NAMESPACES, PERSISTENT_VOLUMES, PERSISTENT_VOLUME_CLAIMS, PODS } from '../../src/kube/resources.js';
import type { KubeObject } from '../../src/kube/types.js';
import type { NodeDisk } from '../../src/crds/nodedisk.js';
import { NODE_DISKS, STORAGE_POOLS } from '../../src/crds/resource-types.js';
import { NODE_DAEMONSET } from '../../src/operator/driver-stack/render.js';
import { STOWAGE_REPOSITORY } from '../../src/operator/driver-stack/images.js';
import type { ControlPlane } from '../cluster/control-plane.js';
import { shareHostPaths } from '../cluster/host-propagation.js';
import { removeStowageImages, stowageImageArchive } from '../cluster/kubelet-images.js';
import type { KubeletNode } from '../cluster/kubelet-node.js';
import { LoopbackRegistry } from '../cluster/kubelet-registry.js';
import { sharedKubeletNode } from '../cluster/kubelet-shared.js';
import { adminClient, createNamespace, deletePoolForcibly, uniqueName, waitFor } from '../support/cluster.js';
import { LoopDevices, unmountAllFrom } from '../support/loop-devices.js';
import { condition, type Pool } from '../support/pool-world.js';
import { TEST_NETWORK_FIELD_MANAGER, networkPatch, operatorArgs, operatorNetworkOps } from './installed-overlay.js';
import { HOST_PATHS_CREATED, PROPAGATED_HOST_PATHS, loopDevices, rmdirTree, stowageProcesses } from './installed-host.js';
import { busyboxPod, deletePodAndWait, waitPodPhase } from './pods.js';

const exec = promisify(execFile);
const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const NS = 'stowage-system';
const WAIT_MS = 150_000;
const MiB = 1024 * 1024;
const OPERATOR_SELECTOR = 'app.kubernetes.io/name=stowage,app.kubernetes.io/component=operator';
const NODE_SELECTOR = 'app.kubernetes.io/name=stowage,app.kubernetes.io/component=node';
/** The registry host of the release's manifests, which a mirror replaces. */
const RELEASE_HOST = STOWAGE_REPOSITORY.slice(0, STOWAGE_REPOSITORY.indexOf('/'));

describe("kubelet node: Stowage installed from a release (make release's stowage.yaml, the image pulled from a registry by digest)", function () {
  this.timeout(600_000);
  let cp: ControlPlane;
  let admin: KubeClient;
  let node: KubeletNode;
  let registry: LoopbackRegistry | undefined;
  let untrust: (() => Promise<void>) | undefined;
  let unshare: (() => Promise<void>) | undefined;
  let work = '';
  let manifest = '';
  let pinned = '';
  let digest = '';
  let installed = false;
  let loopsBefore: string[] = [];
  let createdHostPaths: string[] = [];
  let appNs = '';
  const loops = new LoopDevices();
  const pool = uniqueName('release-local');
  let poolCreated = false;

  const kubectl = async (...args: string[]): Promise<string> => {
    const r = await cp.kubectl(args, { timeoutMs: 180_000 });
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  };
  const freePort = async (): Promise<number> => {
    const { createServer } = await import('node:net');
    return new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
  };
  /** The one running, ready pod of `selector` on the real node. */
  const runningPod = (selector: string, what: string): Promise<any> =>
    waitFor(
      what,
      async () => {
        for (const pod of (await admin.list<any>(PODS, { namespace: NS, labelSelector: selector })).items) {
          if (pod.spec.nodeName !== node.nodeName || pod.metadata.deletionTimestamp) continue;
          if ((pod.status?.containerStatuses ?? []).every((c: any) => c.ready && c.state?.running) && pod.status?.containerStatuses?.length)
            return pod;
        }
        return undefined;
      },
      WAIT_MS,
      500,
    );

  before(async function () {
    const { archive, version } = stowageImageArchive();
    if (!existsSync(archive)) throw new Error(`${archive} missing: run \`make image\` (make test does) before this test`);
    ({ cp, client: admin } = await adminClient());
    node = await sharedKubeletNode();
    loopsBefore = loopDevices();
    createdHostPaths = HOST_PATHS_CREATED.filter((d) => !existsSync(d));
    work = await mkdtemp(path.join(tmpdir(), 'stowage-release-install-'));
    // make release (its script, over the archive make image built): the manifests name the release's registry.
    const release = path.join(work, 'release');
    await exec('bash', ['hack/release.sh'], {
      cwd: REPO_ROOT,
      env: { ...process.env, VERSION: version, RELEASE_DIR: release },
      maxBuffer: 16 << 20,
      timeout: 300_000,
    });
    registry = await LoopbackRegistry.start();
    untrust = await node.trustRegistry(registry.host);
    ({ digest } = await registry.push('stowage-dev', [version]));
    // The mirror: only the registry host changes, the path and the digest are the release's.
    const original = await readFile(path.join(release, 'stowage.yaml'), 'utf8');
    const occurrences =
      original
        .split('\n')
        .filter((l) => !l.startsWith('#'))
        .join('\n')
        .split(`${RELEASE_HOST}/`).length - 1;
    expect(occurrences, `${RELEASE_HOST}/ in stowage.yaml's objects (the operator's image and its --image)`).to.equal(2);
    manifest = path.join(work, 'stowage.yaml');
    await writeFile(manifest, original.split(`${RELEASE_HOST}/`).join(`${registry.host}/`));
    pinned = `${registry.host}/stowage-dev/stowage@${digest}`;
    unshare = await shareHostPaths(PROPAGATED_HOST_PATHS);
    await loops.create(512 * MiB);
    appNs = await createNamespace(admin, 'release-app');
    await cp.waitForDefaultServiceAccount(appNs);
  });

  after(async function () {
    if (admin && appNs) {
      for (const pod of (await admin.list<any>(PODS, { namespace: appNs }).catch(() => ({ items: [] as any[] }))).items)
        await deletePodAndWait(admin, appNs, pod.metadata.name).catch(() => undefined);
      await admin.delete(PERSISTENT_VOLUME_CLAIMS, 'data', { namespace: appNs }).catch(() => undefined);
    }
    if (admin && poolCreated) await deletePoolForcibly(admin, pool).catch(() => undefined);
    if (cp && installed) {
      await cp.kubectl(['delete', '-f', manifest, '--ignore-not-found', '--wait=true'], { timeoutMs: 240_000 }).catch(() => undefined);
      await waitFor(`namespace ${NS} to be gone`, async () => !(await admin.getIfExists(NAMESPACES, NS)), WAIT_MS, 500).catch(
        () => undefined,
      );
    }
    await unshare?.();
    if (node && registry) await removeStowageImages(node.containerdSocket, [pinned]);
    await untrust?.();
    await registry?.stop();
    if (admin && node) {
      for (const d of (
        await admin
          .list<NodeDisk & KubeObject>(NODE_DISKS, { labelSelector: `stowage.dev/node=${node.nodeName}` })
          .catch(() => ({ items: [] as any[] }))
      ).items) {
        await admin.delete(NODE_DISKS, d.metadata.name).catch(() => undefined);
      }
    }
    if (admin && appNs) await admin.delete(NAMESPACES, appNs).catch(() => undefined);
    for (const device of loops.devices()) await unmountAllFrom(device);
    await loops.cleanup();
    for (const dir of createdHostPaths) await rmdirTree(dir);
    if (work) await rm(work, { recursive: true, force: true });
    admin?.close();
  });

  it('kubectl apply -f stowage.yaml: the operator and the node plugin it deploys run the image pulled from the registry by digest', async function () {
    await kubectl('apply', '-f', manifest);
    installed = true;
    const release = await waitFor(
      'the operator Deployment',
      () => admin.getIfExists<any>(DEPLOYMENTS, 'stowage-operator', NS),
      30_000,
      500,
    );
    const releaseArgs: string[] = release.spec.template.spec.containers[0].args;
    expect(releaseArgs).to.include(`--image=stowage=${pinned}`);
    // This machine's network, and the test's one disk as the only device the agent may use.
    const extra = [
      ...releaseArgs.filter((a) => !/^(operator|--leader-elect|--metrics-bind-address=.*|--health-probe-bind-address=.*)$/.test(a)),
      `--node-agent-arg=--allow-device=${loops.devices()[0]}`,
    ];
    const [metricsPort, probePort] = [await freePort(), await freePort()];
    const ops = operatorNetworkOps({
      server: cp.server,
      nodeName: node.nodeName,
      metricsPort,
      probePort,
      args: operatorArgs(metricsPort, probePort, extra),
    });
    await kubectl('patch', 'deployment', 'stowage-operator', '-n', NS, '--type', 'json', '-p', JSON.stringify(ops));
    const operator = await runningPod(OPERATOR_SELECTOR, 'the operator pod to run on the real node');
    expect(operator.spec.containers[0].image).to.equal(pinned);
    expect(operator.status.containerStatuses[0].imageID).to.contain(digest);
    await waitFor(
      `the operator to create DaemonSet ${NS}/${NODE_DAEMONSET}`,
      () => admin.getIfExists(DAEMON_SETS, NODE_DAEMONSET, NS),
      WAIT_MS,
      500,
    );
    await admin.apply(DAEMON_SETS, networkPatch('DaemonSet', NODE_DAEMONSET, NS, ['stowage-node'], cp.server) as any, {
      fieldManager: TEST_NETWORK_FIELD_MANAGER,
      force: true,
    });
    const plugin = await runningPod(NODE_SELECTOR, 'the node plugin pod to run on the real node');
    expect(plugin.spec.containers[0].image, "the node plugin by the same digest (the operator's --image)").to.equal(pinned);
    expect(plugin.status.containerStatuses[0].imageID).to.contain(digest);
    expect(await registry!.resolve('stowage-dev/stowage', digest)).to.equal(digest);
  });

  it('a Local pool becomes Ready and a pod writes to a claim on it', async function () {
    const device = loops.devices()[0];
    const disk = await waitFor(
      "the containerised agent to report the test's disk",
      async () =>
        (await admin.list<NodeDisk & KubeObject>(NODE_DISKS, { labelSelector: `stowage.dev/node=${node.nodeName}` })).items.find(
          (d) => d.spec.devicePath === device,
        ),
      60_000,
      500,
    );
    await admin.mergePatch(NODE_DISKS, disk.metadata.name, { metadata: { labels: { 'stowage.dev/test-role': pool } } });
    await admin.apply(
      STORAGE_POOLS,
      {
        apiVersion: 'stowage.dev/v1alpha1',
        kind: 'StoragePool',
        metadata: { name: pool },
        spec: {
          mode: 'Local',
          disks: { selector: { matchLabels: { 'stowage.dev/test-role': pool } } },
          local: { volumeMode: 'Filesystem', fsType: 'ext4', cleanup: 'quick' },
        },
      },
      { fieldManager: 'kubectl' },
    );
    poolCreated = true;
    const ready = await waitFor(
      'the pool to be Ready with its volume',
      async () => {
        const p = await admin.getIfExists<Pool>(STORAGE_POOLS, pool);
        return condition(p, 'Ready')?.status === 'True' && p!.status?.counts?.volumes?.available === 1 ? p : undefined;
      },
      WAIT_MS,
      500,
    );
    expect(ready.status?.storageClassName).to.equal(pool);
    await admin.create(PERSISTENT_VOLUME_CLAIMS, {
      metadata: { name: 'data', namespace: appNs },
      spec: { accessModes: ['ReadWriteOnce'], storageClassName: pool, resources: { requests: { storage: '100Mi' } } },
    } as any);
    const name = uniqueName('writer');
    await admin.create<any>(
      PODS,
      busyboxPod({
        name,
        namespace: appNs,
        node,
        script: 'echo written-by-a-release-install > /data/proof && sync && cat /data/proof',
        volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'data' } }],
        volumeMounts: [{ name: 'data', mountPath: '/data' }],
      }),
    );
    await waitPodPhase(admin, appNs, name, ['Succeeded']);
    const claim = await admin.get<any>(PERSISTENT_VOLUME_CLAIMS, 'data', appNs);
    const pv = await admin.get<any>(PERSISTENT_VOLUMES, claim.spec.volumeName);
    // On the host, the file is on the disk the agent prepared (the PV's local path).
    expect(readFileSync(path.join(pv.spec.local.path, 'proof'), 'utf8')).to.equal('written-by-a-release-install\n');
    await deletePodAndWait(admin, appNs, name);
  });

  it('deleting the claim and the pool, then kubectl delete -f stowage.yaml, leaves no Stowage process and no new loop device', async function () {
    await admin.delete(PERSISTENT_VOLUME_CLAIMS, 'data', { namespace: appNs });
    await admin.delete(STORAGE_POOLS, pool);
    await waitFor(`pool ${pool} to be gone`, async () => !(await admin.getIfExists(STORAGE_POOLS, pool)), WAIT_MS, 500);
    poolCreated = false;
    await kubectl('delete', '-f', manifest, '--wait=true');
    await waitFor(`namespace ${NS} to be gone`, async () => !(await admin.getIfExists(NAMESPACES, NS)), WAIT_MS, 500);
    installed = false;
    await waitFor('every containerised Stowage process to exit', () => stowageProcesses().length === 0, 60_000, 500);
    expect(loopDevices()).to.deep.equal(loopsBefore);
  });
});

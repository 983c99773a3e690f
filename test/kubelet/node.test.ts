// The real kubelet node (test/cluster/kubelet-node.ts): it registers Ready at 127.0.0.1, runs pods
// from the locally built images through containerd and runc, serves their logs to the API server,
// mounts and unmounts their volumes, and cannot pull anything from outside the machine.

import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import type { KubeClient } from '../../src/kube/client.js';
import { NAMESPACES, NODES, PODS } from '../../src/kube/resources.js';
import type { ControlPlane } from '../cluster/control-plane.js';
import { BUSYBOX_IMAGE, PAUSE_IMAGE } from '../cluster/kubelet-images.js';
import { REAL_NODE_TAINT, type KubeletNode } from '../cluster/kubelet-node.js';
import { sharedKubeletNode } from '../cluster/kubelet-shared.js';
import { adminClient, createNamespace, uniqueName } from '../support/cluster.js';
import { busyboxPod, deletePodAndWait, podLog, podMounts, waitPod, waitPodPhase } from './pods.js';

describe('kubelet node: a real kubelet with containerd and runc', function () {
  this.timeout(300_000);
  let cp: ControlPlane;
  let client: KubeClient;
  let node: KubeletNode;
  let ns: string;
  let hostDir: string;

  before(async function () {
    ({ cp, client } = await adminClient());
    node = await sharedKubeletNode();
    ns = await createNamespace(client, 'kubelet');
    await cp.waitForDefaultServiceAccount(ns);
    hostDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'stowage-kubelet-test-'));
  });

  after(async function () {
    if (client && ns) await client.delete(NAMESPACES, ns);
    if (hostDir) await fsp.rm(hostDir, { recursive: true, force: true });
    client?.close();
  });

  it("registers the node Ready at 127.0.0.1 with kubelet v1.20.2 and containerd, tainted only for other tests' pods", async function () {
    const n = await client.get<any>(NODES, node.nodeName);
    expect(n.status.nodeInfo.kubeletVersion).to.equal('v1.20.2');
    expect(n.status.nodeInfo.containerRuntimeVersion).to.match(/^containerd:\/\/1\.6\./);
    expect(n.status.addresses).to.deep.include({ type: 'InternalIP', address: '127.0.0.1' });
    expect(n.status.addresses.filter((a: any) => a.type === 'InternalIP').map((a: any) => a.address)).to.deep.equal(['127.0.0.1']);
    expect(n.status.daemonEndpoints.kubeletEndpoint.Port).to.equal(node.kubeletPort);
    expect(n.status.conditions.find((c: any) => c.type === 'Ready')).to.include({ status: 'True', reason: 'KubeletReady' });
    // Only the harness's own taint, which keeps other tests' pods off the real node.
    expect(n.spec.taints).to.deep.equal([REAL_NODE_TAINT]);
    // The locally built images are what containerd has, and nothing else.
    const images = (await node.ctr(['images', 'list', '--quiet'])).stdout
      .split('\n')
      .filter((l) => l && !l.startsWith('sha256:') && !l.includes('@'));
    expect(images).to.have.members([PAUSE_IMAGE, BUSYBOX_IMAGE]);
  });

  it('runs a busybox pod that writes to the host through a hostPath volume, with its log served by kubelet', async function () {
    const name = uniqueName('busybox');
    await client.create(
      PODS,
      busyboxPod({
        name,
        namespace: ns,
        node,
        script: 'echo "hello from $(hostname) uid=$(id -u)"; echo written-by-pod > /host/out.txt; ls /bin/busybox',
        volumes: [{ name: 'host', hostPath: { path: hostDir, type: 'Directory' } }],
        volumeMounts: [{ name: 'host', mountPath: '/host' }],
      }),
    );
    const pod = await waitPodPhase(client, ns, name, ['Succeeded', 'Failed']);
    expect(pod.status.phase, JSON.stringify(pod.status.containerStatuses)).to.equal('Succeeded');
    expect(pod.spec.nodeName).to.equal(node.nodeName);
    expect(pod.status.containerStatuses[0].state.terminated.exitCode).to.equal(0);
    expect(await fsp.readFile(path.join(hostDir, 'out.txt'), 'utf8')).to.equal('written-by-pod\n');
    // Host network: the pod sees the host's name; the API server reaches kubelet's log endpoint at 127.0.0.1.
    const log = await podLog(cp, ns, name);
    expect(log).to.equal(`hello from ${os.hostname()} uid=0\n/bin/busybox\n`);
    await deletePodAndWait(client, ns, name);
  });

  it("mounts a running pod's volumes under /var/lib/kubelet and unmounts them when the pod is deleted", async function () {
    const name = uniqueName('sleeper');
    const created = await client.create<any>(
      PODS,
      busyboxPod({
        name,
        namespace: ns,
        node,
        restartPolicy: 'Always',
        script: 'trap "exit 0" TERM; echo ready > /scratch/state; while true; do sleep 1; done',
        volumes: [{ name: 'scratch', emptyDir: { medium: 'Memory' } }],
        volumeMounts: [{ name: 'scratch', mountPath: '/scratch' }],
      }),
    );
    const uid = created.metadata.uid as string;
    await waitPodPhase(client, ns, name, ['Running']);
    const volumeDir = path.join(node.rootDir, 'pods', uid, 'volumes', 'kubernetes.io~empty-dir', 'scratch');
    expect(await podMounts(node, uid)).to.include(volumeDir);
    expect(await fsp.readFile(path.join(volumeDir, 'state'), 'utf8')).to.equal('ready\n');
    const containerId = (await client.get<any>(PODS, name, ns)).status.containerStatuses[0].containerID.replace('containerd://', '');
    expect((await node.ctr(['containers', 'list', '--quiet'])).stdout).to.include(containerId);

    await deletePodAndWait(client, ns, name);
    // kubelet tore the pod down: its container is gone from containerd and its volume unmounted.
    expect((await node.ctr(['containers', 'list', '--quiet'])).stdout).not.to.include(containerId);
    const deadline = Date.now() + 60_000;
    while ((await podMounts(node, uid)).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
    expect(await podMounts(node, uid)).to.deep.equal([]);
  });

  it('gives a pod-network pod an address on the isolated bridge and no route off the machine', async function () {
    const name = uniqueName('podnet');
    const pod = busyboxPod({
      name,
      namespace: ns,
      node,
      script:
        'ip -4 addr show eth0 | grep inet; ip route; if wget -q -T 2 -O /dev/null http://192.0.2.1/ 2>/dev/null; then echo reached; else echo unreachable; fi',
    });
    pod.spec.hostNetwork = false;
    await client.create(PODS, pod);
    const done = await waitPodPhase(client, ns, name, ['Succeeded', 'Failed']);
    expect(done.status.phase).to.equal('Succeeded');
    expect(done.status.podIP).to.match(/^10\.244\.250\./);
    const log = await podLog(cp, ns, name);
    expect(log).to.include(`inet ${done.status.podIP}/24`);
    expect(log).not.to.match(/^default/m);
    expect(log.trim().split('\n').pop()).to.equal('unreachable');
    await deletePodAndWait(client, ns, name);
  });

  it('cannot pull images: a pull fails locally and no packet leaves the machine', async function () {
    const name = uniqueName('nopull');
    await client.create(
      PODS,
      busyboxPod({ name, namespace: ns, node, script: 'true', image: 'stowage.test/not-imported:1', imagePullPolicy: 'IfNotPresent' }),
    );
    const waiting = await waitPod(client, ns, name, 'image pull failed', (pod) => {
      const w = pod.status?.containerStatuses?.[0]?.state?.waiting;
      return w && ['ErrImagePull', 'ImagePullBackOff'].includes(w.reason) ? w : undefined;
    });
    // The proxy is a closed loopback port: the failure comes from 127.0.0.1, not from a registry.
    expect(waiting.message).to.match(/127\.0\.0\.1|proxyconnect|connection refused/);
    await deletePodAndWait(client, ns, name);
  });
});

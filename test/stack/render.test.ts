import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { parse } from 'yaml';
import { NO_CEL_CRD_DIR, renderCrdManifests } from '../../hack/gen-manifests.js';
import { DEFAULT_IMAGES, IMAGE_NAMES, imageTable } from '../../src/operator/driver-stack/images.js';
import {
  AGENT_ROOT,
  CSI_CONTROLLER_DEPLOYMENT,
  DRIVER_NAME,
  KUBELET_DIR,
  NODE_DAEMONSET,
  desiredDriverStack,
  needsCsiController,
} from '../../src/operator/driver-stack/render.js';
import { nodeAgentArgs } from '../../src/operator/driver-stack/node-agent-args.js';
import type { KubeObject } from '../../src/kube/types.js';
import { CONFIG_DIR, configObjects, validateModel } from './models.js';

type Any = any;

const input = { dynamicPools: 0, images: DEFAULT_IMAGES, namespace: 'stowage-system' };
const byKind = (objects: KubeObject[], kind: string): Any => objects.find((o) => o.kind === kind);

describe('driver stack rendering', () => {
  it('is the node DaemonSet alone without Dynamic pools, and adds CSIDriver + controller Deployment with one', () => {
    expect(desiredDriverStack(input).map((o) => `${o.kind}/${o.metadata.name}`)).to.deep.equal([`DaemonSet/${NODE_DAEMONSET}`]);
    expect(desiredDriverStack({ ...input, dynamicPools: 2 }).map((o) => `${o.kind}/${o.metadata.name}`)).to.deep.equal([
      `DaemonSet/${NODE_DAEMONSET}`,
      `CSIDriver/${DRIVER_NAME}`,
      `Deployment/${CSI_CONTROLLER_DEPLOYMENT}`,
    ]);
  });

  it('counts only Dynamic pools when given the pools, and keeps the CSI parts while a volume of the driver exists', () => {
    const local = { spec: { mode: 'Local' } } as Any;
    const dynamic = { spec: { mode: 'Dynamic' } } as Any;
    expect(needsCsiController({ dynamicPools: [local, local] })).to.equal(false);
    expect(needsCsiController({ dynamicPools: [local, dynamic] })).to.equal(true);
    expect(needsCsiController({ dynamicPools: [], volumes: 1 })).to.equal(true);
    expect(desiredDriverStack({ ...input, dynamicPools: [], volumes: 3 })).to.have.length(3);
  });

  it('validates every object against the official Kubernetes schemas', () => {
    for (const obj of desiredDriverStack({ ...input, dynamicPools: 1 })) expect(() => validateModel(obj), `${obj.kind}`).not.to.throw();
    const broken = { ...desiredDriverStack(input)[0], spec: { selector: 'everything' } } as KubeObject;
    expect(() => validateModel(broken), 'the check itself must be able to fail').to.throw();
  });

  it('is deterministic and carries the managed-by label on every object and pod template', () => {
    const a = desiredDriverStack({ ...input, dynamicPools: 1 });
    expect(JSON.stringify(a)).to.equal(JSON.stringify(desiredDriverStack({ ...input, dynamicPools: 1 })));
    for (const obj of a) {
      expect(obj.metadata.labels?.['app.kubernetes.io/managed-by'], obj.kind).to.equal('stowage');
      const template = (obj as Any).spec?.template;
      if (template) expect(template.metadata.labels['app.kubernetes.io/managed-by']).to.equal('stowage');
    }
  });

  it('with registration by node-driver-registrar: gives the node plugin privilege, the host paths and Bidirectional propagation for the kubelet dir and the agent root, beside the registrar and livenessprobe sidecars', () => {
    const ds = byKind(desiredDriverStack({ ...input, registration: 'node-driver-registrar' }), 'DaemonSet');
    expect(ds.metadata.namespace).to.equal('stowage-system');
    const pod = ds.spec.template.spec;
    expect(pod.serviceAccountName).to.equal('stowage-node');
    expect(pod.priorityClassName).to.equal('system-node-critical');
    expect(pod.tolerations).to.deep.equal([{ operator: 'Exists' }]);
    expect(pod.containers.map((c: Any) => c.name)).to.deep.equal(['stowage-node', 'node-driver-registrar', 'liveness-probe']);
    const node = pod.containers[0];
    expect(node.securityContext).to.deep.equal({ privileged: true, runAsUser: 0 });
    expect(node.env.map((e: Any) => [e.name, e.valueFrom.fieldRef.fieldPath])).to.deep.include(['NODE_NAME', 'spec.nodeName']);
    expect(node.args).to.deep.equal([
      'node',
      '--root=/var/lib/stowage/disks',
      '--pool-root=/var/lib/stowage',
      '--csi-endpoint=unix:///csi/csi.sock',
      '--kubelet-dir=/var/lib/kubelet',
      '--metrics-bind-address=:8080',
    ]);
    expect(node.ports.map((p: Any) => p.name)).to.include('metrics'); // what config/prometheus's PodMonitor scrapes
    // Liveness stays the livenessprobe sidecar's; readiness is the daemon's own /readyz in both modes.
    expect([node.livenessProbe.httpGet, node.readinessProbe.httpGet]).to.deep.equal([
      { path: '/healthz', port: 'healthz' },
      { path: '/readyz', port: 'metrics' },
    ]);
    const mounts = Object.fromEntries(node.volumeMounts.map((m: Any) => [m.mountPath, m.mountPropagation ?? (m.readOnly ? 'ro' : 'None')]));
    expect(mounts).to.deep.equal({
      '/csi': 'None',
      [KUBELET_DIR]: 'Bidirectional',
      [AGENT_ROOT]: 'Bidirectional',
      '/dev': 'HostToContainer',
      '/sys': 'HostToContainer',
      '/run/udev': 'ro',
    });
    const volumes = Object.fromEntries(pod.volumes.map((v: Any) => [v.name, v.hostPath.path]));
    expect(volumes).to.include({
      'plugin-dir': `${KUBELET_DIR}/plugins/${DRIVER_NAME}`,
      'registration-dir': `${KUBELET_DIR}/plugins_registry`,
      'kubelet-dir': KUBELET_DIR,
      'agent-root': AGENT_ROOT,
      dev: '/dev',
      sys: '/sys',
      udev: '/run/udev',
    });
    const registrar = pod.containers[1];
    expect(registrar.args).to.include(`--kubelet-registration-path=${KUBELET_DIR}/plugins/${DRIVER_NAME}/csi.sock`);
    expect(registrar.volumeMounts.map((m: Any) => m.mountPath)).to.deep.equal(['/csi', '/registration']);
    for (const sidecar of pod.containers.slice(1)) expect(sidecar.securityContext.privileged, sidecar.name).to.equal(undefined);
  });

  it('declares the CSIDriver exactly as the design says', () => {
    const driver = byKind(desiredDriverStack({ ...input, dynamicPools: 1 }), 'CSIDriver');
    expect(driver.spec).to.deep.equal({
      attachRequired: false,
      podInfoOnMount: true,
      storageCapacity: true,
      fsGroupPolicy: 'File',
      volumeLifecycleModes: ['Persistent'],
    });
  });

  it('runs the CSI controller with provisioner (topology, capacity, metadata, leader election), resizer, snapshotter and livenessprobe, non-root', () => {
    const deploy = byKind(desiredDriverStack({ ...input, dynamicPools: 1 }), 'Deployment');
    const pod = deploy.spec.template.spec;
    expect(pod.serviceAccountName).to.equal('stowage-csi-controller');
    expect(pod.securityContext.runAsNonRoot).to.equal(true);
    expect(pod.containers.map((c: Any) => c.name)).to.deep.equal([
      'stowage-csi-controller',
      'csi-provisioner',
      'csi-resizer',
      'csi-snapshotter',
      'liveness-probe',
    ]);
    const args = (name: string): string[] => pod.containers.find((c: Any) => c.name === name).args;
    expect(args('csi-provisioner')).to.include.members([
      '--strict-topology',
      '--enable-capacity',
      '--capacity-ownerref-level=2',
      '--extra-create-metadata',
      '--leader-election',
    ]);
    expect(args('csi-provisioner'), 'the Topology gate is on by default from external-provisioner v5.0').not.to.include(
      '--feature-gates=Topology=true',
    );
    expect(args('csi-resizer')).to.include('--leader-election');
    expect(args('csi-snapshotter')).to.include('--leader-election');
    const provisionerEnv = pod.containers.find((c: Any) => c.name === 'csi-provisioner').env.map((e: Any) => e.name);
    expect(provisionerEnv).to.include.members(['POD_NAME', 'NAMESPACE']); // capacity tracking finds its owner through these (external-provisioner ≥ v3.0)
    for (const c of pod.containers) {
      expect(c.securityContext, c.name).to.deep.equal({
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'] },
      });
      expect(c.resources.limits.memory, c.name).to.be.a('string');
    }
  });

  it('with registration self: the node container alone gets what `stowage node` needs to register with a real kubelet', () => {
    const ds: Any = byKind(desiredDriverStack(input), 'DaemonSet');
    const spec = ds.spec.template.spec;
    expect(spec.containers.map((c: Any) => c.name)).to.deep.equal(['stowage-node']);
    const c = spec.containers[0];
    // kubelet dials the endpoint the registration socket announces: the host's path, which the
    // container sees at the same place through the kubelet-dir mount.
    expect(c.args).to.include.members([
      `--csi-endpoint=unix://${KUBELET_DIR}/plugins/${DRIVER_NAME}/csi.sock`,
      `--kubelet-registration-dir=${KUBELET_DIR}/plugins_registry`,
      `--kubelet-dir=${KUBELET_DIR}`,
    ]);
    expect(c.volumeMounts).to.deep.include({ name: 'kubelet-dir', mountPath: KUBELET_DIR, mountPropagation: 'Bidirectional' });
    expect(spec.volumes).to.deep.include({ name: 'kubelet-dir', hostPath: { path: KUBELET_DIR, type: 'Directory' } });
    // Its own /healthz (CSI and registration sockets) is the liveness probe; no sidecar port.
    expect(c.livenessProbe.httpGet).to.deep.equal({ path: '/healthz', port: 'metrics' });
    // Readiness is its /readyz (caches synced, sockets served) on the same port, liveness unchanged.
    expect(c.readinessProbe.httpGet).to.deep.equal({ path: '/readyz', port: 'metrics' });
    expect(c.ports.map((p: Any) => p.name)).to.deep.equal(['metrics']);
  });

  it("passes the operator's --node-agent-arg discovery flags to the node agent, in order, and refuses any other flag", () => {
    const args = nodeAgentArgs(['--allow-device=/dev/loop7', '--include-path=/dev/disk/by-id/nvme-*', '--allow-device=/dev/loop8']);
    const ds: Any = byKind(desiredDriverStack({ ...input, nodeAgentArgs: args }), 'DaemonSet');
    const agentArgs: string[] = ds.spec.template.spec.containers[0].args;
    expect(agentArgs.slice(-3)).to.deep.equal(args);
    // Without any, the node container's command line is the plain one.
    const plain: Any = byKind(desiredDriverStack(input), 'DaemonSet');
    expect(plain.spec.template.spec.containers[0].args).to.deep.equal(agentArgs.slice(0, -3));
    expect(() => nodeAgentArgs(['--csi-endpoint=unix:///tmp/x.sock'])).to.throw(
      /--csi-endpoint is not a discovery flag of stowage node.*allow-device/,
    );
    expect(() => nodeAgentArgs(['/dev/sdb'])).to.throw(/"\/dev\/sdb" is not of the form --FLAG=VALUE/);
    expect(() => nodeAgentArgs(['--allow-device'])).to.throw(/not of the form --FLAG=VALUE/);
  });

  it('`stowage operator --node-agent-arg` reaches the check at start-up: a bad flag stops it with what to pass instead', async () => {
    const cli = join(process.cwd(), 'dist', 'src', 'cli', 'main.js');
    const run = promisify(execFile)(process.execPath, [
      cli,
      'operator',
      '--node-agent-arg=--csi-endpoint=unix:///x.sock',
      '--kubeconfig',
      '/nonexistent/kubeconfig',
    ]);
    const err: Any = await run.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err?.code, 'exit code').to.equal(1);
    expect(err.stderr).to.match(/--node-agent-arg: --csi-endpoint is not a discovery flag of stowage node.*allow-device/);
  });

  it('takes every image from the one table, and --image overrides replace exactly the named entry', () => {
    const images = imageTable([
      'csi-provisioner=mirror.example:5000/sig-storage/csi-provisioner:v6.4.0',
      'stowage=mirror.example:5000/stowage@sha256:' + 'a'.repeat(64),
    ]);
    const used = desiredDriverStack({ ...input, images, dynamicPools: 1, registration: 'node-driver-registrar' }).flatMap(
      (o: Any) => o.spec.template?.spec.containers.map((c: Any) => c.image) ?? [],
    );
    expect(new Set(used)).to.deep.equal(new Set(Object.values(images)));
    expect(images['csi-provisioner']).to.equal('mirror.example:5000/sig-storage/csi-provisioner:v6.4.0');
    expect(images['csi-resizer']).to.equal(DEFAULT_IMAGES['csi-resizer']);
    for (const name of IMAGE_NAMES) expect(DEFAULT_IMAGES[name], name).to.match(/:v?\d+\.\d+\.\d+$/);
    expect(() => imageTable(['csi-attacher=x/y:1'])).to.throw(/unknown image "csi-attacher"; use one of stowage, csi-provisioner/);
    expect(() => imageTable(['stowage=not an image'])).to.throw(/is not an image reference/);
    expect(() => imageTable(['stowage'])).to.throw(/is not an image reference/);
  });
});

describe('install manifests (config/)', () => {
  it('validate against the official Kubernetes schemas', async () => {
    for (const dir of ['rbac', 'manager', 'crd', 'crd-no-cel']) {
      for (const { file, obj } of await configObjects(dir)) expect(() => validateModel(obj), file).not.to.throw();
    }
  });

  it('grant no wildcard and no access to Secrets, and bind every role to a Stowage ServiceAccount', async () => {
    for (const { file, obj } of await configObjects('rbac')) {
      const rules: Any[] = (obj as Any).rules ?? [];
      for (const rule of rules) {
        for (const field of ['apiGroups', 'resources', 'verbs', 'resourceNames'])
          expect(rule[field] ?? [], `${file} ${field}`).not.to.include('*');
        expect(rule.resources.join(','), file).not.to.match(/secrets/);
      }
      if (obj.kind?.endsWith('Binding')) {
        expect(
          (obj as Any).subjects.map((s: Any) => `${s.kind}/${s.namespace}/${s.name}`),
          file,
        ).to.satisfy((subjects: string[]) =>
          subjects.every((s) => /^ServiceAccount\/stowage-system\/stowage-(operator|node|csi-controller)$/.test(s)),
        );
      }
    }
  });

  it('run the operator non-root, read-only, without privilege escalation, leader-elected, with probes on :8081 and metrics on :8080', async () => {
    const objects = (await configObjects('manager')).map((o) => o.obj as Any);
    const deploy = objects.find((o) => o.kind === 'Deployment');
    const pod = deploy.spec.template.spec;
    const c = pod.containers[0];
    expect(deploy.metadata.namespace).to.equal('stowage-system');
    expect(pod.serviceAccountName).to.equal('stowage-operator');
    expect(pod.securityContext.runAsNonRoot).to.equal(true);
    expect(c.securityContext).to.deep.equal({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
    expect(c.args).to.include('--leader-elect');
    expect(c.args).to.include.members(['--metrics-bind-address=:8080', '--health-probe-bind-address=:8081']);
    const port = (name: string) => c.ports.find((p: Any) => p.name === name).containerPort;
    expect([c.livenessProbe.httpGet.path, port(c.livenessProbe.httpGet.port)]).to.deep.equal(['/healthz', 8081]);
    expect([c.readinessProbe.httpGet.path, port(c.readinessProbe.httpGet.port)]).to.deep.equal(['/readyz', 8081]);
    expect(c.resources.requests).to.have.keys('cpu', 'memory');
    expect(c.resources.limits).to.have.keys('cpu', 'memory');
    const service = objects.find((o) => o.kind === 'Service');
    expect(service.spec.ports).to.deep.equal([{ name: 'metrics', port: 8080, targetPort: 'metrics', protocol: 'TCP' }]);
    expect(objects.find((o) => o.kind === 'Namespace').metadata.name).to.equal('stowage-system');
  });

  it('ship config/crd-no-cel exactly as `make manifests` generates it, without any CEL rule', async () => {
    const expected = renderCrdManifests({ cel: false });
    for (const [name, content] of expected) {
      // A file not written yet reads as missing, which the assertion below reports by name.
      const onDisk = await readFile(join(NO_CEL_CRD_DIR, name), 'utf8').catch(() => undefined);
      expect(onDisk, `config/crd-no-cel/${name} is stale or missing; run \`make manifests\``).to.equal(content);
      expect(content).not.to.contain('x-kubernetes-validations');
    }
    expect((await readdir(NO_CEL_CRD_DIR)).sort()).to.deep.equal([...expected.keys()].sort());
  });

  it('compose config/default from the CEL-free CRDs, RBAC and manager, and config/default-cel from the CEL ones', async () => {
    const kustomization = async (dir: string) => parse(await readFile(join(CONFIG_DIR, dir, 'kustomization.yaml'), 'utf8'));
    expect((await kustomization('default')).bases).to.deep.equal(['../crd-no-cel', '../rbac', '../manager']);
    expect((await kustomization('default-cel')).bases).to.deep.equal(['../crd', '../rbac', '../manager']);
    const rbacFiles = (await kustomization('rbac')).resources as string[];
    expect(rbacFiles.sort()).to.deep.equal((await readdir(join(CONFIG_DIR, 'rbac'))).filter((f) => f !== 'kustomization.yaml').sort());
  });
});

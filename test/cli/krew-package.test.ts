import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { parse as parseYaml } from 'yaml';
import { runProgram } from './support.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/**
 * The krew package: plugins/package.mjs bundles the plugin into one file, archives it with its
 * launcher and writes the manifest. Checked against krew's rules for manifests (name = file name,
 * v-prefixed semantic version, a platform whose sha256 is the archive's and whose bin and files are
 * in it), and the unpacked archive runs on its own, outside the repository.
 */
describe('kubectl stowage: the krew package', function () {
  this.timeout(120_000);
  let unpacked: string;

  before(async () => {
    unpacked = await mkdtemp(path.join(tmpdir(), 'stowage-krew-'));
  });
  after(async () => {
    if (unpacked) await rm(unpacked, { recursive: true, force: true });
  });

  it('builds an archive and a manifest krew accepts, and the unpacked plugin runs on its own', async () => {
    const pkgVersion = (JSON.parse(await readFile(path.join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
    const version = `v${pkgVersion}`;
    const built = await runProgram(process.execPath, ['plugins/package.mjs', '--version', version, '--base-url', 'https://downloads.example.org/stowage/', '--homepage', 'https://example.org/stowage'], {}, 110_000, REPO);
    expect(built.code, built.stderr).to.equal(0);
    const archive = path.join(REPO, 'dist/krew', `kubectl-stowage-${version}.tar.gz`);
    const manifest = parseYaml(await readFile(path.join(REPO, 'dist/krew/stowage.yaml'), 'utf8'));

    expect(manifest.apiVersion).to.equal('krew.googlecontainertools.github.com/v1alpha2');
    expect(manifest.kind).to.equal('Plugin');
    expect(manifest.metadata.name).to.equal(path.basename('plugins/stowage.yaml', '.yaml'));
    expect(manifest.spec.version).to.equal(version).and.match(/^v\d+\.\d+\.\d+/);
    expect(manifest.spec.homepage).to.equal('https://example.org/stowage');
    expect(manifest.spec.shortDescription.length).to.be.within(1, 60);
    expect(JSON.stringify(manifest)).to.not.include('${', 'every placeholder filled');
    const [platform, ...others] = manifest.spec.platforms;
    expect(others).to.deep.equal([]);
    expect(platform.selector.matchExpressions[0]).to.deep.equal({ key: 'os', operator: 'In', values: ['linux', 'darwin'] });
    expect(platform.uri).to.equal(`https://downloads.example.org/stowage/kubectl-stowage-${version}.tar.gz`);
    expect(platform.sha256).to.equal(createHash('sha256').update(await readFile(archive)).digest('hex'));

    const listed = await runProgram('tar', ['-tzf', archive], {});
    expect(listed.stdout.trim().split('\n').sort()).to.deep.equal(platform.files.map((f: { from: string }) => f.from).sort());
    expect(platform.files.map((f: { from: string }) => f.from)).to.include(platform.bin);
    expect((await runProgram('tar', ['-xzf', archive, '-C', unpacked], {})).code).to.equal(0);
    const bin = path.join(unpacked, platform.bin);
    expect((await stat(bin)).mode & 0o111, 'the bin is executable').to.not.equal(0);

    // Outside the repository, with no node_modules: the bundle carries its dependencies.
    const v = await runProgram(bin, ['--version'], {}, 30_000, unpacked);
    expect(v.stdout.trim()).to.equal(pkgVersion);
    const missing = await runProgram(bin, ['disks'], { KUBECONFIG: path.join(unpacked, 'missing') }, 30_000, unpacked);
    expect(missing.code).to.equal(1);
    expect(missing.stderr).to.include('no cluster configured');
    const help = await runProgram(bin, ['--help'], {}, 30_000, unpacked);
    for (const cmd of ['disks', 'pools', 'why', 'cordon', 'uncordon', 'drain']) expect(help.stdout).to.match(new RegExp(`^\\s+${cmd}\\b`, 'm'));
  });
});

import { createHash } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseJs } from 'acorn';
import { expect } from 'chai';
import { parse as parseYaml } from 'yaml';
import { installCrds } from '../../src/crds/install.js';
import { STORAGE_POOLS } from '../../src/crds/resource-types.js';
import { isExecutable } from '../cluster/host.js';
import { adminClient, deletePoolForcibly, uniqueName } from '../support/cluster.js';
import { runProgram, type RunResult } from './support.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const ENTRY_CHECK = path.join(REPO, 'plugins/kubectl-stowage-entry.cjs');
const { MINIMUM, tooOldMessage } = createRequire(import.meta.url)(ENTRY_CHECK) as {
  MINIMUM: { major: number; minor: number; patch: number };
  tooOldMessage: (version: string, execPath?: string) => string | null;
};
/** What a workstation's shell has: no repository, no node_modules, no pinned Node.js first. */
const MACHINE_PATH = '/usr/local/bin:/usr/bin:/bin';

/** The machine's own `node` on MACHINE_PATH (Debian's nodejs, from hack/install-test-deps.sh). */
function machineNode(): string {
  const found = MACHINE_PATH.split(':')
    .map((d) => path.join(d, 'node'))
    .find(isExecutable);
  if (!found) throw new Error(`no node on ${MACHINE_PATH}: run hack/install-test-deps.sh (it installs Debian's nodejs)`);
  return found;
}

/** `env -i PATH=<machine's PATH> <args>`: nothing of this process's environment gets through. */
function cleanRun(args: readonly string[], extraEnv: readonly string[], cwd: string, timeoutMs = 30_000): Promise<RunResult> {
  return runProgram('/usr/bin/env', ['-i', `PATH=${MACHINE_PATH}`, ...extraEnv, ...args], {}, timeoutMs, cwd);
}

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
    const built = await runProgram(
      process.execPath,
      [
        'plugins/package.mjs',
        '--version',
        version,
        '--base-url',
        'https://downloads.example.org/stowage/',
        '--homepage',
        'https://example.org/stowage',
      ],
      {},
      110_000,
      REPO,
    );
    expect(built.code, built.stderr).to.equal(0);
    const archive = path.join(REPO, 'dist/krew', `kubectl-stowage-${version}.tar.gz`);
    const manifest = parseYaml(await readFile(path.join(REPO, 'dist/krew/stowage.yaml'), 'utf8'));

    expect(manifest.apiVersion).to.equal('krew.googlecontainertools.github.com/v1alpha2');
    expect(manifest.kind).to.equal('Plugin');
    expect(manifest.metadata.name).to.equal(path.basename('plugins/stowage.yaml', '.yaml'));
    expect(manifest.spec.version)
      .to.equal(version)
      .and.match(/^v\d+\.\d+\.\d+/);
    expect(manifest.spec.homepage).to.equal('https://example.org/stowage');
    expect(manifest.spec.shortDescription.length).to.be.within(1, 60);
    expect(JSON.stringify(manifest)).to.not.include('${', 'every placeholder filled');
    const [platform, ...others] = manifest.spec.platforms;
    expect(others).to.deep.equal([]);
    expect(platform.selector.matchExpressions[0]).to.deep.equal({ key: 'os', operator: 'In', values: ['linux', 'darwin'] });
    expect(platform.uri).to.equal(`https://downloads.example.org/stowage/kubectl-stowage-${version}.tar.gz`);
    expect(platform.sha256).to.equal(
      createHash('sha256')
        .update(await readFile(archive))
        .digest('hex'),
    );

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
    for (const cmd of ['disks', 'pools', 'why', 'cordon', 'uncordon', 'drain'])
      expect(help.stdout).to.match(new RegExp(`^\\s+${cmd}\\b`, 'm'));
  });

  it("runs from a clean environment on the machine's own Node.js, against the real control plane", async () => {
    const node = machineNode();
    const real = realpathSync(node);
    expect(real.startsWith(REPO), `${real} is the machine's, not the repository's pinned Node.js`).to.equal(false);
    const nodeVersion = (await cleanRun(['node', '--version'], [], unpacked)).stdout.trim();
    expect(tooOldMessage(nodeVersion), `the machine's ${nodeVersion} is one the plugin supports`).to.equal(null);
    process.stderr.write(`      the machine's node: ${real} ${nodeVersion}\n`);

    const version = await cleanRun(['./kubectl-stowage', '--version'], [], unpacked);
    expect(version.code, version.stderr).to.equal(0);
    expect(version.stdout.trim()).to.match(/^\d+\.\d+\.\d+/);
    // No KUBECONFIG and no ~/.kube/config: said as kubectl would, not as client-node's localhost fallback.
    const none = await cleanRun(['./kubectl-stowage', 'pools'], ['HOME=/nonexistent'], unpacked);
    expect(none.code).to.equal(1);
    expect(none.stderr).to.match(
      /^kubectl-stowage: no cluster configured: KUBECONFIG is not set and \/nonexistent\/\.kube\/config does not exist/,
    );

    const { cp, client } = await adminClient();
    await installCrds(client, 'stowage-tests');
    const pool = uniqueName('krew-pool');
    await client.create(STORAGE_POOLS, {
      apiVersion: 'stowage.dev/v1alpha1',
      kind: 'StoragePool',
      metadata: { name: pool },
      spec: { mode: 'Local', disks: { selector: { matchLabels: { 'stowage.dev/media': 'none' } } } },
    });
    try {
      const kubeconfig = `KUBECONFIG=${cp.kubeconfigPath}`;
      const pools = await cleanRun(['./kubectl-stowage', 'pools'], [kubeconfig], unpacked);
      expect(pools.code, pools.stderr).to.equal(0);
      expect(pools.stdout)
        .to.match(/^NAME\s+MODE\s+/m)
        .and.match(new RegExp(`^${pool}\\s+Local\\s`, 'm'));
      const why = await cleanRun(['./kubectl-stowage', 'why', pool], [kubeconfig], unpacked);
      expect(why.code, why.stderr).to.equal(0);
      expect(why.stdout).to.contain(pool);
      const disks = await cleanRun(['./kubectl-stowage', 'disks', '--pool', pool], [kubeconfig], unpacked);
      expect(disks.code, disks.stderr).to.equal(0);
    } finally {
      await deletePoolForcibly(client, pool);
      client.close();
    }
  });

  it('says which Node.js it needs, before loading anything, on one that is too old', async () => {
    const need = `${MINIMUM.major}.${MINIMUM.minor}.${MINIMUM.patch}`;
    for (const old of ['v18.20.4', 'v20.11.1', 'v16.0.0', 'v0.10.48', 'not a version']) {
      expect(tooOldMessage(old, '/usr/bin/node'), old).to.equal(
        `kubectl-stowage needs Node.js ${need} or later; this is Node.js ${old} (/usr/bin/node). ` +
          'Install a current Node.js and put it first on PATH, then run the command again.',
      );
    }
    for (const ok of [`v${need}`, 'v20.20.2', 'v21.7.0', 'v22.19.0', 'v24.0.0', 'v26.12.1']) expect(tooOldMessage(ok), ok).to.equal(null);

    // The shipped entry on the machine's node, told it is an old one: the message and exit 1, and
    // the bundle never starts (no usage text).
    const pretend = path.join(unpacked, 'pretend-old-node.cjs');
    await writeFile(pretend, "Object.defineProperty(process, 'version', { value: 'v18.20.4' });\n");
    const refused = await cleanRun(['node', '--require', pretend, './kubectl-stowage.cjs', '--help'], [], unpacked);
    expect(refused.code).to.equal(1);
    expect(refused.stdout).to.equal('');
    expect(refused.stderr).to.equal(`kubectl-stowage: ${tooOldMessage('v18.20.4', realpathSync(machineNode()))}\n`);

    // ES5 (2009): a Node.js of any age parses the entry and can print that message.
    const source = await readFile(path.join(unpacked, 'kubectl-stowage.cjs'), 'utf8');
    expect(source).to.equal(await readFile(ENTRY_CHECK, 'utf8'));
    expect(() => parseJs(source, { ecmaVersion: 5, sourceType: 'script' })).to.not.throw();
  });
});

// Packages `kubectl stowage` for krew: bundles dist/src/cli/kubectl-stowage.js and its dependencies
// into one ES module (esbuild), adds a launcher named as kubectl expects, tars both, and writes the
// concrete krew manifest from plugins/stowage.yaml with the archive's URI and SHA-256.
//
//   npm run build && node plugins/package.mjs --version v0.1.0 --base-url https://example.org/releases/v0.1.0 --homepage https://example.org/stowage
//
// Output: dist/krew/kubectl-stowage-<version>.tar.gz and dist/krew/stowage.yaml.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';

const ENTRY = 'dist/src/cli/kubectl-stowage.js';
const OUT = 'dist/krew';
const STAGE = `${OUT}/stage`;

const { values } = parseArgs({ options: { version: { type: 'string' }, 'base-url': { type: 'string' }, homepage: { type: 'string' } } });
const version = values.version ?? `v${JSON.parse(readFileSync('package.json', 'utf8')).version}`;
if (!/^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(version)) throw new Error(`--version ${version}: krew wants a semantic version with a leading v, e.g. v0.1.0`);
for (const flag of ['base-url', 'homepage']) {
  if (!values[flag]) throw new Error(`--${flag} is required: the manifest must say where the archive is published and where the project lives`);
}
if (!existsSync(ENTRY)) throw new Error(`${ENTRY} does not exist; run \`npm run build\` first`);

rmSync(OUT, { recursive: true, force: true });
mkdirSync(STAGE, { recursive: true });
await build({
  entryPoints: [ENTRY],
  outfile: `${STAGE}/kubectl-stowage.mjs`,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // CommonJS dependencies call require() for Node's built-ins; an ES module has none of its own.
  banner: { js: "import { createRequire as __pluginCreateRequire } from 'node:module';\nconst require = __pluginCreateRequire(import.meta.url);" },
  logLevel: 'error',
  // version.ts reads package.json beside dist/; the bundle travels alone, so it gets the version baked in.
  plugins: [{
    name: 'baked-version',
    setup(b) {
      b.onLoad({ filter: /[\\/]dist[\\/]src[\\/]util[\\/]version\.js$/ }, () => ({ contents: `export const VERSION = ${JSON.stringify(version.slice(1))};`, loader: 'js' }));
    },
  }],
});
// kubectl runs `kubectl-stowage` from the PATH (krew links it there); it starts the bundle beside it.
writeFileSync(`${STAGE}/kubectl-stowage`, '#!/bin/sh\nhere="$(dirname "$(readlink -f "$0")")"\nexec node "$here/kubectl-stowage.mjs" "$@"\n');
chmodSync(`${STAGE}/kubectl-stowage`, 0o755);
const archive = `${OUT}/kubectl-stowage-${version}.tar.gz`;
execFileSync('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '-C', STAGE, '-czf', archive, 'kubectl-stowage', 'kubectl-stowage.mjs']);
const sha256 = createHash('sha256').update(readFileSync(archive)).digest('hex');
const manifest = readFileSync('plugins/stowage.yaml', 'utf8')
  .replace(/^#.*\n/gm, '')
  .replaceAll('${VERSION}', version)
  .replaceAll('${HOMEPAGE}', values.homepage)
  .replaceAll('${URI}', `${values['base-url'].replace(/\/+$/, '')}/kubectl-stowage-${version}.tar.gz`)
  .replaceAll('${SHA256}', sha256);
writeFileSync(`${OUT}/stowage.yaml`, manifest);
rmSync(STAGE, { recursive: true, force: true });
process.stdout.write(`${archive}\n${OUT}/stowage.yaml (sha256 ${sha256})\n`);

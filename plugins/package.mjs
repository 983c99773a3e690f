// Packages `kubectl stowage` for krew: bundles dist/src/cli/kubectl-stowage.js and its dependencies
// into one ES module (esbuild) for the oldest Node.js the plugin supports, adds the version check
// that runs first (plugins/kubectl-stowage-entry.cjs) and a launcher named as kubectl expects, tars
// them, and writes the concrete krew manifest from plugins/stowage.yaml with the archive's URI and
// SHA-256.
//
//   npm run build && node plugins/package.mjs --version v0.1.0 --base-url https://example.org/releases/v0.1.0 --homepage https://example.org/stowage
//
// Output: dist/krew/kubectl-stowage-<version>.tar.gz and dist/krew/stowage.yaml.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';

const ENTRY = 'dist/src/cli/kubectl-stowage.js';
const OUT = 'dist/krew';
const STAGE = `${OUT}/stage`;
const ENTRY_CHECK = 'plugins/kubectl-stowage-entry.cjs';
const { MINIMUM } = createRequire(import.meta.url)('./kubectl-stowage-entry.cjs');
// The plugin reaches the API server through node:https (src/kube/client.ts) and takes only KubeConfig
// from @kubernetes/client-node. The package's index also loads undici 8 (its fetch-based API
// clients), which needs Node.js 22.19 and fails to load on 20 (zlib.createZstdDecompress,
// worker_threads.markAsUncloneable). So the plugin is bundled from client-node's source, not from the
// operator's prebundled dist/src/kube/client-node.js, with undici left out: what KubeConfig would
// build with it (a fetch Agent) is never asked for here, and says so if it ever is.
const UNDICI_LEFT_OUT = [
  "const leftOut = (what) => new Error(`kubectl-stowage: undici's ${what} is left out of the plugin, which talks to the API server through node:https`);",
  'export function fetch() { return Promise.reject(leftOut("fetch")); }',
  'export class Agent { constructor() { throw leftOut("Agent"); } }',
  'export class ProxyAgent { constructor() { throw leftOut("ProxyAgent"); } }',
].join('\n');

const { values } = parseArgs({ options: { version: { type: 'string' }, 'base-url': { type: 'string' }, homepage: { type: 'string' } } });
const version = values.version ?? `v${JSON.parse(readFileSync('package.json', 'utf8')).version}`;
if (!/^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(version))
  throw new Error(`--version ${version}: krew wants a semantic version with a leading v, e.g. v0.1.0`);
for (const flag of ['base-url', 'homepage']) {
  if (!values[flag])
    throw new Error(`--${flag} is required: the manifest must say where the archive is published and where the project lives`);
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
  // Syntax every supported Node.js parses; the entry check refuses anything older first.
  target: `node${MINIMUM.major}.${MINIMUM.minor}`,
  // CommonJS dependencies call require() for Node's built-ins; an ES module has none of its own.
  banner: {
    js: "import { createRequire as __pluginCreateRequire } from 'node:module';\nconst require = __pluginCreateRequire(import.meta.url);",
  },
  logLevel: 'error',
  // version.ts reads package.json beside dist/; the bundle travels alone, so it gets the version baked in.
  plugins: [
    {
      name: 'baked-version',
      setup(b) {
        b.onLoad({ filter: /[\\/]dist[\\/]src[\\/]util[\\/]version\.js$/ }, () => ({
          contents: `export const VERSION = ${JSON.stringify(version.slice(1))};`,
          loader: 'js',
        }));
      },
    },
    {
      name: 'client-node-without-undici',
      setup(b) {
        b.onLoad({ filter: /[\\/]dist[\\/]src[\\/]kube[\\/]client-node\.js$/ }, () => ({
          contents: "export { KubeConfig } from '@kubernetes/client-node';",
          loader: 'js',
          resolveDir: process.cwd(),
        }));
        b.onResolve({ filter: /^undici$/ }, () => ({ path: 'undici', namespace: 'undici-left-out' }));
        b.onLoad({ filter: /.*/, namespace: 'undici-left-out' }, () => ({ contents: UNDICI_LEFT_OUT, loader: 'js' }));
      },
    },
  ],
});
// kubectl runs `kubectl-stowage` from the PATH (krew links it there); it starts the version check,
// which starts the bundle beside it.
copyFileSync(ENTRY_CHECK, `${STAGE}/kubectl-stowage.cjs`);
writeFileSync(
  `${STAGE}/kubectl-stowage`,
  '#!/bin/sh\nhere="$(dirname "$(readlink -f "$0")")"\nexec node "$here/kubectl-stowage.cjs" "$@"\n',
);
chmodSync(`${STAGE}/kubectl-stowage`, 0o755);
const archive = `${OUT}/kubectl-stowage-${version}.tar.gz`;
execFileSync('tar', [
  '--sort=name',
  '--owner=0',
  '--group=0',
  '--numeric-owner',
  '--mtime=@0',
  '-C',
  STAGE,
  '-czf',
  archive,
  'kubectl-stowage',
  'kubectl-stowage.cjs',
  'kubectl-stowage.mjs',
]);
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

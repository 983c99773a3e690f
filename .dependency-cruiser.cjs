/**
 * The layering of src/, checked by `make lint-deps` (part of `make test`) with dependency-cruiser.
 * Each folder may import only the folders listed for it; anything else is a wrong-way import.
 * docs/architecture.md draws the same graph (`make architecture` regenerates it).
 *
 *   cli ─────────────────────────────────────────────► everything (the composition root: one CLI, every role)
 *   operator ─┐          node ──► csi ──┐
 *             ├──► runtime, metrics, host, crds ──► kube ──► util
 *   observability (alert rules, monitors: generated artefacts, import nothing of ours)
 */
/** folder → the folders it may import (besides itself). */
const LAYERS = {
  util: [],
  kube: ['util'],
  crds: ['kube', 'util'],
  runtime: ['kube', 'util'],
  host: ['util'],
  metrics: ['kube', 'util'],
  observability: [],
  csi: ['runtime', 'metrics', 'host', 'crds', 'kube', 'util'],
  node: ['csi', 'runtime', 'metrics', 'host', 'crds', 'kube', 'util'],
  operator: ['runtime', 'metrics', 'crds', 'kube', 'util'],
};

const layerRules = Object.entries(LAYERS).map(([layer, allowed]) => ({
  name: `layer-${layer}`,
  severity: 'error',
  comment: `src/${layer}/ may import only ${allowed.length ? allowed.map((l) => `src/${l}/`).join(', ') : 'nothing else in src/'} (see .dependency-cruiser.cjs and docs/architecture.md)`,
  from: { path: `^src/${layer}/` },
  to: { path: '^src/', pathNot: [`^src/${layer}/`, ...allowed.map((l) => `^src/${l}/`)] },
}));

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'Import cycles make modules impossible to read, load or test on their own: move the shared part down a layer.',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'src-not-to-tests-or-tools',
      severity: 'error',
      comment: 'Shipped code must not import tests, benchmarks or build scripts.',
      from: { path: '^src/' },
      to: { path: '^(test|bench|hack)/' },
    },
    {
      name: 'src-not-to-dev-deps',
      severity: 'error',
      comment: 'Shipped code must not import devDependencies: they are not in the image.',
      from: { path: '^src/' },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      comment: 'An import that resolves to nothing.',
      from: { path: '^src/' },
      to: { couldNotResolve: true },
    },
    {
      name: 'no-unknown-top-level-folder',
      severity: 'error',
      comment: 'A new folder under src/ needs its place in the layers (LAYERS in .dependency-cruiser.cjs) before code goes in it.',
      from: { path: '^src/', pathNot: [`^src/(${[...Object.keys(LAYERS), 'cli'].join('|')})/`] },
      to: {},
    },
    ...layerRules,
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default'],
      extensions: ['.ts', '.js', '.d.ts'],
    },
    moduleSystems: ['es6', 'cjs'],
    reporterOptions: {
      dot: {
        collapsePattern: '^src/[^/]+/',
      },
    },
  },
};

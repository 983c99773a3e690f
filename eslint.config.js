// ESLint (flat config): typescript-eslint's type-checked rule sets on every TypeScript file of the
// build (tsconfig.json: src/, test/, bench/, hack/), plus the plain JavaScript build scripts.
// `make lint` runs it with the formatter check; `make fix` applies what both can fix.
// Why these rules, and how to run them: docs/development.md, "Lint and format".
import eslint from '@eslint/js';
import comments from '@eslint-community/eslint-plugin-eslint-comments/configs';
import { defineConfig, globalIgnores } from 'eslint/config';
import importX from 'eslint-plugin-import-x';
import tseslint from 'typescript-eslint';
import stowage from './hack/eslint-rules.js';

export default defineConfig(
  globalIgnores(['dist/', 'build/', 'node_modules/', '.stowage/', 'config/']),
  eslint.configs.recommended,
  comments.recommended,
  {
    linterOptions: { reportUnusedDisableDirectives: 'error', reportUnusedInlineConfigs: 'error' },
    rules: {
      // A disable says why: `// eslint-disable-next-line rule -- the reason`.
      '@eslint-community/eslint-comments/require-description': ['error', { ignore: [] }],
      // Whole-file disables hide every later finding in the file: disable a line, with its reason.
      '@eslint-community/eslint-comments/disable-enable-pair': 'error',
      '@eslint-community/eslint-comments/no-unlimited-disable': 'error',
    },
  },
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.strictTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { 'import-x': importX, stowage },
    rules: {
      // The ones an operator cannot do without (docs/development.md): a promise nobody awaits is an
      // error nobody sees, or an unhandled rejection that ends the process.
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/require-await': 'error',
      '@typescript-eslint/no-unnecessary-condition': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-import-type-side-effects': 'error',
      // A rejection silenced with `.catch(() => undefined)` or a bare `void promise` says why.
      'stowage/explained-swallow': 'error',
      '@typescript-eslint/restrict-template-expressions': [
        'error',
        { allowNumber: true, allowBoolean: true, allowRegExp: true, allowAny: true, allowNullish: true, allowNever: false },
      ],
      // Turned off, one reason each:
      // Kubernetes types make metadata.name and the like optional, though the API server always sets
      // them on what it returns; `!` says so where it is read (no-unnecessary-type-assertion still
      // removes the `!` the types do not need).
      '@typescript-eslint/no-non-null-assertion': 'off',
      // (allowNullish above, for the same reason: `${pv.metadata.name}` is set, whatever the type says.)
      // Error helpers (errorMessage, isApiError) take `unknown` already; annotating every callback's
      // `err: unknown` adds nothing they do not check.
      '@typescript-eslint/use-unknown-in-catch-callback-variable': 'off',
      // The CSI gRPC messages (proto-loader, no generated types), smartctl's JSON, the JSON Schemas of
      // src/crds and API JSON in tests are untyped by nature and checked field by field at run time;
      // typing them (generated CSI message types) is a change of its own, not a lint fix.
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      // Arrow shorthand that returns a void call (`(t) => io.stdout.write(t)`) is how callbacks are
      // written here; the rule's fix would only wrap them in braces.
      '@typescript-eslint/no-confusing-void-expression': 'off',
      // `const { apiVersion: _a, ...rest } = obj` is how a field is left out of a copy.
      '@typescript-eslint/no-unused-vars': ['error', { varsIgnorePattern: '^_', argsIgnorePattern: '^_', ignoreRestSiblings: true }],
      // `Promise<ReconcileResult | void>`: a reconciler that has nothing to ask for returns nothing,
      // and implementations typed Promise<void> must still fit the interface.
      '@typescript-eslint/no-invalid-void-type': 'off',
      // `[...text]` on a string is on purpose: it counts code points, not UTF-16 units, for column widths.
      '@typescript-eslint/no-misused-spread': 'off',
      // `let x; … () => x …; x = value` is how a callback reads what is set after it is made.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      'import-x/first': 'error',
      'import-x/no-duplicates': ['error', { 'prefer-inline': true }],
      'import-x/order': [
        'error',
        { groups: ['builtin', 'external', ['internal', 'parent', 'sibling', 'index']], 'newlines-between': 'never' },
      ],
    },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts', 'hack/**/*.ts'],
    rules: { 'stowage/explained-swallow': ['error', { cleanup: true }] },
  },
  {
    files: ['test/**/*.ts'],
    rules: {
      // Tests read objects back from a real API server and check fields the static types call
      // always present: there the "unnecessary" condition is the check.
      '@typescript-eslint/no-unnecessary-condition': 'off',
      // Test doubles implement async interfaces (Reconciler, fault guards, timed callbacks) with
      // bodies that have nothing to await; the interface, not the body, makes them async.
      '@typescript-eslint/require-await': 'off',
      // chai's property assertions (`expect(x).to.be.empty`) are expressions by design.
      '@typescript-eslint/no-unused-expressions': 'off',
    },
  },
  {
    files: ['**/*.js', '**/*.mjs', '**/*.cjs'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly', URL: 'readonly', module: 'writable', require: 'readonly' },
    },
  },
  {
    // CommonJS files (plugins/kubectl-stowage-entry.cjs, which any old Node.js must parse) also get
    // what Node's module wrapper passes in; require, module and exports come with ESLint's default
    // sourceType for .cjs, 'commonjs'.
    files: ['**/*.cjs'],
    languageOptions: { globals: { __dirname: 'readonly', __filename: 'readonly' } },
  },
);

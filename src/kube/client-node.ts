/**
 * The one import of `@kubernetes/client-node`: its kubeconfig loading and authentication
 * (kubeconfig files, in-cluster service accounts, exec and auth-provider plugins).
 *
 * Why a module of its own: importing the package evaluates its ~970 files (every generated API
 * model), about 0.6 s on a small machine, at every start of every role. `npm run build` replaces
 * the compiled form of this file with one esbuild bundle of it (hack/bundle-client-node.mjs),
 * which loads in about 0.15 s. A plain `tsc` build leaves the re-export as it is, which behaves
 * the same, only slower to load.
 */
export { KubeConfig } from '@kubernetes/client-node';

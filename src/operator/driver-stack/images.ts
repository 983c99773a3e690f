import { VERSION } from '../../util/version.js';

/**
 * Every container image the driver stack runs, in one table. The sidecars are pinned to the
 * kubernetes-csi releases current when this table was last updated (release notes in each project's
 * CHANGELOG/): external-provisioner 6.4.0 (needs Kubernetes ≥ 1.24: it writes
 * storage.k8s.io/v1 CSIStorageCapacity), external-resizer 2.3.0, external-snapshotter 8.7.0,
 * node-driver-registrar 2.17.0, livenessprobe 2.20.0. Air-gapped clusters point each entry at a
 * mirror with `stowage operator --image NAME=REF`.
 */
export interface ImageTable {
  /** Stowage itself: the node agent, the CSI node and controller services. */
  readonly stowage: string;
  readonly 'csi-provisioner': string;
  readonly 'csi-resizer': string;
  readonly 'csi-snapshotter': string;
  readonly 'csi-node-driver-registrar': string;
  readonly livenessprobe: string;
}

export type ImageName = keyof ImageTable;

const SIG_STORAGE = 'registry.k8s.io/sig-storage';

/**
 * The defaults. Stowage's own image is what `make docker-build` tags; there is no public registry
 * for it yet, so a real cluster needs `--image stowage=YOUR/REGISTRY/stowage:TAG`.
 */
export const DEFAULT_IMAGES: ImageTable = Object.freeze({
  stowage: `localhost/stowage:${VERSION}`,
  'csi-provisioner': `${SIG_STORAGE}/csi-provisioner:v6.4.0`,
  'csi-resizer': `${SIG_STORAGE}/csi-resizer:v2.3.0`,
  'csi-snapshotter': `${SIG_STORAGE}/csi-snapshotter:v8.7.0`,
  'csi-node-driver-registrar': `${SIG_STORAGE}/csi-node-driver-registrar:v2.17.0`,
  livenessprobe: `${SIG_STORAGE}/livenessprobe:v2.20.0`,
});

export const IMAGE_NAMES: readonly ImageName[] = Object.keys(DEFAULT_IMAGES) as ImageName[];

/** An image reference: optional registry/path, a name, and a tag and/or digest. No whitespace. */
const IMAGE_REF = /^[a-z0-9]+([._/:-][a-zA-Z0-9_.-]+)*(@sha256:[a-f0-9]{64})?$/;

/**
 * The default table with `overrides` (`NAME=REF`, as given to `--image`) applied. Throws on an
 * unknown name or a malformed reference, naming the flag and the valid names, so a typo in a
 * mirror's address fails at start-up instead of as ImagePullBackOff on every node.
 */
export function imageTable(overrides: readonly string[] = []): ImageTable {
  const table: Record<string, string> = { ...DEFAULT_IMAGES };
  for (const entry of overrides) {
    const eq = entry.indexOf('=');
    const name = eq < 0 ? entry : entry.slice(0, eq);
    const ref = eq < 0 ? '' : entry.slice(eq + 1);
    if (!(IMAGE_NAMES as readonly string[]).includes(name)) {
      throw new Error(`--image ${entry}: unknown image "${name}"; use one of ${IMAGE_NAMES.join(', ')}`);
    }
    if (!IMAGE_REF.test(ref)) {
      throw new Error(`--image ${entry}: "${ref}" is not an image reference; write NAME=REGISTRY/PATH:TAG, e.g. ${name}=${DEFAULT_IMAGES[name as ImageName]}`);
    }
    table[name] = ref;
  }
  return Object.freeze(table) as unknown as ImageTable;
}

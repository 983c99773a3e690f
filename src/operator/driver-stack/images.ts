import { VERSION } from '../../util/version.js';
import { NEWEST_PROFILE, type SidecarImages } from './sidecars.js';

/**
 * Every container image the driver stack runs, in one table. The sidecars' defaults depend on the
 * Kubernetes server (sidecars.ts: the releases per server range, with their release notes); this
 * table is what one deployment uses. Air-gapped clusters point each entry at a mirror with
 * `stowage operator --image NAME=REF`; an override replaces the image for every server version.
 */
export interface ImageTable extends SidecarImages {
  /** Stowage itself: the node agent, the CSI node and controller services. */
  readonly stowage: string;
}

export type ImageName = keyof ImageTable;

/**
 * Where a release publishes Stowage's image (`make release`, .github/workflows/release.yml), and so
 * what config/manager and the node DaemonSet name by default. The release's stowage.yaml pins it by
 * digest (the operator's image and its `--image stowage=…`); a mirror or a build of one's own is
 * `--image stowage=REGISTRY/PATH:TAG` here and a kustomize `images:` entry for the operator.
 */
export const STOWAGE_REPOSITORY = 'ghcr.io/stowage-dev/stowage';
export const STOWAGE_IMAGE = `${STOWAGE_REPOSITORY}:${VERSION}`;

/** The defaults for the newest servers (sidecars.ts has those of older ones). */
export const DEFAULT_IMAGES: ImageTable = Object.freeze({ stowage: STOWAGE_IMAGE, ...NEWEST_PROFILE.images });

export const IMAGE_NAMES: readonly ImageName[] = Object.keys(DEFAULT_IMAGES) as ImageName[];

/** An image reference: optional registry/path, a name, and a tag and/or digest. No whitespace. */
const IMAGE_REF = /^[a-z0-9]+([._/:-][a-zA-Z0-9_.-]+)*(@sha256:[a-f0-9]{64})?$/;

/**
 * The default table with `overrides` (`NAME=REF`, as given to `--image`) applied. Throws on an
 * unknown name or a malformed reference, naming the flag and the valid names, so a typo in a
 * mirror's address fails at start-up instead of as ImagePullBackOff on every node.
 */
export function imageTable(overrides: readonly string[] = [], sidecars: SidecarImages = NEWEST_PROFILE.images): ImageTable {
  const table: Record<string, string> = { stowage: STOWAGE_IMAGE, ...sidecars };
  for (const entry of overrides) {
    const eq = entry.indexOf('=');
    const name = eq < 0 ? entry : entry.slice(0, eq);
    const ref = eq < 0 ? '' : entry.slice(eq + 1);
    if (!(IMAGE_NAMES as readonly string[]).includes(name)) {
      throw new Error(`--image ${entry}: unknown image "${name}"; use one of ${IMAGE_NAMES.join(', ')}`);
    }
    if (!IMAGE_REF.test(ref)) {
      throw new Error(
        `--image ${entry}: "${ref}" is not an image reference; write NAME=REGISTRY/PATH:TAG, e.g. ${name}=${DEFAULT_IMAGES[name as ImageName]}`,
      );
    }
    table[name] = ref;
  }
  return Object.freeze(table) as unknown as ImageTable;
}

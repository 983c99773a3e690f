/**
 * The kubernetes-csi sidecars Stowage runs, as a function of the Kubernetes server it finds: each
 * sidecar release supports a range of servers (the APIs it reads and writes), so one fixed set
 * cannot serve "1.20 and later". Each profile below names a server range, the releases for it and
 * the flags those releases take; the operator picks the profile from the server's /version and
 * refuses (a condition and an event on the pool) what no profile covers.
 *
 * Release notes, read in each project's CHANGELOG/ folder (github.com/kubernetes-csi/<project>):
 *
 * | sidecar | current (≥ 1.24) | legacy (1.20–1.23) |
 * | --- | --- | --- |
 * | external-provisioner | v6.4.0, CHANGELOG-6.4.md: "requires at least Kubernetes 1.24" (v1beta1 CSIStorageCapacity removed) | v3.6.4, CHANGELOG-3.6.md; CHANGELOG-3.0.md: "requires minimum Kubernetes version 1.20" (snapshot v1 client) |
 * | external-resizer | v2.3.0, CHANGELOG-2.3.md (2.0 notes: VolumeAttributesClass needs 1.34, disabled below) | v1.9.3, CHANGELOG-1.9.md (Kubernetes 1.28 client libraries) |
 * | external-snapshotter | v8.7.0, CHANGELOG-8.7.md (the stored notes do list v8.7.0) | v6.3.1, CHANGELOG-6.3.md (snapshot v1 API, GA in 1.20) |
 * | node-driver-registrar | v2.17.0, CHANGELOG-2.17.md; it speaks kubelet's plugin API only, never the API server | the same |
 * | livenessprobe | v2.20.0, CHANGELOG-2.20.md; it calls the driver's Probe only | the same |
 *
 * Flags that differ by release: external-provisioner before v5.0 has the Topology feature gate off
 * by default (CHANGELOG-5.0.md: "Feature gate Topology is enabled by default"), so the legacy set
 * passes `--feature-gates=Topology=true`; capacity tracking needs CSIStorageCapacity, which is
 * v1alpha1 behind an alpha gate on 1.20, v1beta1 on 1.21–1.23 and v1 from 1.24, so the 1.20
 * profile leaves `--enable-capacity` out. The owner of CSIStorageCapacity objects is found from
 * `NAMESPACE` and `POD_NAME` (CHANGELOG-3.0.md: "Fix env name from POD_NAMESPACE to NAMESPACE").
 */
const SIG_STORAGE = 'registry.k8s.io/sig-storage';

export interface KubernetesVersion {
  readonly major: number;
  readonly minor: number;
  /** As the server reported it, e.g. v1.20.2 or v1.27.3-gke.100. */
  readonly gitVersion: string;
}

/** The oldest server the operator and Local pools support (CRD v1 with structural schemas, server-side apply, CSIDriver v1). */
export const MIN_OPERATOR_MINOR = 20;

/** The kubernetes-csi images of one profile (images.ts adds Stowage's own to make the full table). */
export interface SidecarImages {
  readonly 'csi-provisioner': string;
  readonly 'csi-resizer': string;
  readonly 'csi-snapshotter': string;
  readonly 'csi-node-driver-registrar': string;
  readonly livenessprobe: string;
}

export interface SidecarProfile {
  /** A name for messages and docs. */
  readonly name: string;
  /** Servers 1.<minMinor> up to, not including, 1.<maxMinor> (open-ended without it). */
  readonly minMinor: number;
  readonly maxMinor?: number;
  readonly images: SidecarImages;
  /** Extra flags of csi-provisioner for this range. */
  readonly provisionerArgs: readonly string[];
  /** Whether CSIStorageCapacity objects are published (the scheduler's view of free space). */
  readonly capacityTracking: boolean;
}

const COMMON_PROVISIONER_ARGS = ['--strict-topology', '--extra-create-metadata', '--timeout=60s'];
// The owner of CSIStorageCapacity objects: pod → ReplicaSet → Deployment.
const CAPACITY_ARGS = ['--enable-capacity', '--capacity-ownerref-level=2'];
const CURRENT_NODE_SIDECARS = {
  'csi-node-driver-registrar': `${SIG_STORAGE}/csi-node-driver-registrar:v2.17.0`,
  livenessprobe: `${SIG_STORAGE}/livenessprobe:v2.20.0`,
};
const LEGACY_IMAGES: SidecarImages = {
  'csi-provisioner': `${SIG_STORAGE}/csi-provisioner:v3.6.4`,
  'csi-resizer': `${SIG_STORAGE}/csi-resizer:v1.9.3`,
  'csi-snapshotter': `${SIG_STORAGE}/csi-snapshotter:v6.3.1`,
  ...CURRENT_NODE_SIDECARS,
};
const LEGACY_PROVISIONER_ARGS = [...COMMON_PROVISIONER_ARGS, '--feature-gates=Topology=true'];

/** Newest first. */
export const SIDECAR_PROFILES: readonly SidecarProfile[] = Object.freeze([
  {
    name: 'current',
    minMinor: 24,
    images: {
      'csi-provisioner': `${SIG_STORAGE}/csi-provisioner:v6.4.0`,
      'csi-resizer': `${SIG_STORAGE}/csi-resizer:v2.3.0`,
      'csi-snapshotter': `${SIG_STORAGE}/csi-snapshotter:v8.7.0`,
      ...CURRENT_NODE_SIDECARS,
    },
    provisionerArgs: [...COMMON_PROVISIONER_ARGS, ...CAPACITY_ARGS],
    capacityTracking: true,
  },
  {
    name: 'legacy',
    minMinor: 21,
    maxMinor: 24,
    images: LEGACY_IMAGES,
    provisionerArgs: [...LEGACY_PROVISIONER_ARGS, ...CAPACITY_ARGS],
    capacityTracking: true,
  },
  {
    name: 'legacy-without-capacity',
    minMinor: 20,
    maxMinor: 21,
    images: LEGACY_IMAGES,
    provisionerArgs: LEGACY_PROVISIONER_ARGS,
    capacityTracking: false,
  },
]);

export const NEWEST_PROFILE: SidecarProfile = SIDECAR_PROFILES[0];

/** The profile for a server, or undefined when the server is older than every profile. */
export function sidecarProfile(version: Pick<KubernetesVersion, 'major' | 'minor'> | undefined): SidecarProfile | undefined {
  if (!version) return NEWEST_PROFILE;
  if (version.major > 1) return NEWEST_PROFILE;
  return SIDECAR_PROFILES.find((p) => version.minor >= p.minMinor && (p.maxMinor === undefined || version.minor < p.maxMinor));
}

/** "1.20–1.23", "1.24 and later". */
export function describeRange(profile: Pick<SidecarProfile, 'minMinor' | 'maxMinor'>): string {
  if (profile.maxMinor === undefined) return `1.${profile.minMinor} and later`;
  return profile.maxMinor - 1 === profile.minMinor ? `1.${profile.minMinor}` : `1.${profile.minMinor}–1.${profile.maxMinor - 1}`;
}

/**
 * The server's version from its /version answer. Managed offerings write minors like "27+", and
 * gitVersion is the most reliable field, so it is read first.
 */
export function parseServerVersion(info: { major?: string; minor?: string; gitVersion?: string }): KubernetesVersion {
  const git = /^v?(\d+)\.(\d+)/.exec(info.gitVersion ?? '');
  const major = git ? Number(git[1]) : Number.parseInt(info.major ?? '', 10);
  const minor = git ? Number(git[2]) : Number.parseInt(info.minor ?? '', 10);
  if (!Number.isInteger(major) || !Number.isInteger(minor)) {
    throw new Error(`cannot tell the Kubernetes version from the server's /version answer ${JSON.stringify(info)}`);
  }
  return { major, minor, gitVersion: info.gitVersion ?? `v${major}.${minor}` };
}

/** Why a server is too old for the operator or for what a pool needs; undefined when it is not. */
export function unsupportedReason(version: KubernetesVersion | undefined, mode: 'Local' | 'Dynamic'): string | undefined {
  if (!version || version.major > 1) return undefined;
  if (version.minor < MIN_OPERATOR_MINOR) {
    return `the API server is Kubernetes ${version.gitVersion}; Stowage needs 1.${MIN_OPERATOR_MINOR} or later for any pool (CRD v1 schemas, server-side apply, CSIDriver v1); upgrade the cluster`;
  }
  if (mode === 'Dynamic' && !sidecarProfile(version)) {
    const oldest = SIDECAR_PROFILES[SIDECAR_PROFILES.length - 1];
    return `the API server is Kubernetes ${version.gitVersion}; Dynamic pools need ${describeRange({ minMinor: oldest.minMinor })} (no kubernetes-csi sidecar release supports it); use a Local pool or upgrade the cluster`;
  }
  return undefined;
}

import type { NodeDisk } from '../crds/nodedisk.js';
import type { StoragePool } from '../crds/storagepool.js';
import { validateObject, withDefaults } from '../crds/validation.js';
import type { KubeObject, Node, PersistentVolume } from '../kube/types.js';
import { HOSTNAME_LABEL } from '../crds/labels.js';
import { DEFAULT_IMAGES, type ImageTable } from './driver-stack/images.js';
import { desiredDriverStack, type NodeRegistration } from './driver-stack/render.js';
import type { SidecarProfile } from './driver-stack/sidecars.js';
import { desiredClaim, planDisks } from './storagepool/disk-plan.js';
import { persistentVolumeName, renderLocalPv } from './storagepool/persistent-volume.js';
import { isReadyDisk } from './storagepool/status.js';
import { renderStorageClass } from './storagepool/storage-class.js';
import { renderSnapshotClass } from './storagepool/snapshot-class.js';
import { spansNodes } from '../crds/replication.js';
import { describePlacement, isSatisfiable, placementOf } from './ceph/failure-domains.js';

export interface RenderInput {
  readonly pools: readonly StoragePool[];
  readonly disks: readonly NodeDisk[];
  /** Nodes, for nodeSelectors and hostnames; without them every disk's node is assumed to exist, named as its hostname. */
  readonly nodes?: readonly Node[];
  /** The driver stack's namespace and images; omitted: stowage-system and the default images. */
  readonly namespace?: string;
  readonly images?: ImageTable;
  readonly registration?: NodeRegistration;
  /** kubelet's root directory on the nodes (`--kubelet-root-dir`); default /var/lib/kubelet. */
  readonly kubeletDir?: string;
  /** The sidecars' flags for the server version rendered for; default: the newest servers'. */
  readonly sidecars?: SidecarProfile;
}

export interface RenderOutput {
  /** Every object the operator would create or keep, in apply order. */
  readonly objects: KubeObject[];
  /** One line per decision a reviewer should see: claims, conflicts, problems. */
  readonly notes: string[];
}

/**
 * What the operator would create for these manifests, offline, through the same pure functions
 * the reconcilers use: the driver stack, each valid pool's StorageClass (and, for Dynamic pools, its
 * VolumeSnapshotClass), and a local PV for every disk a Local pool holds and the agent reported prepared. Pools are considered oldest first (by
 * creationTimestamp, then name), as claims are first come, first served.
 */
export function renderDesired(input: RenderInput): RenderOutput {
  const notes: string[] = [];
  const objects: KubeObject[] = [];
  const nodes = new Map((input.nodes ?? impliedNodes(input.disks)).map((n) => [n.metadata.name!, n]));
  // Claims made by earlier pools in this render are visible to later ones.
  const disks = new Map(input.disks.map((d) => [d.metadata.name, structuredClone(d)]));
  const pools = [...input.pools].sort(
    (a, b) =>
      (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? '') ||
      a.metadata.name.localeCompare(b.metadata.name),
  );
  const valid: StoragePool[] = [];
  for (const raw of pools) {
    const problems = validateObject(raw).filter((p) => !p.path.startsWith('status'));
    if (problems.length > 0) {
      notes.push(
        `pool ${raw.metadata.name}: invalid, nothing is created for it (${problems.map((p) => `${p.path}: ${p.message}`).join('; ')})`,
      );
      continue;
    }
    valid.push(withDefaults(raw));
  }
  objects.push(
    ...desiredDriverStack({
      dynamicPools: valid,
      images: input.images ?? DEFAULT_IMAGES,
      namespace: input.namespace ?? 'stowage-system',
      ...(input.registration ? { registration: input.registration } : {}),
      ...(input.sidecars ? { sidecars: input.sidecars } : {}),
      ...(input.kubeletDir ? { kubeletDir: input.kubeletDir } : {}),
    }),
  );
  for (const pool of valid) {
    if (spansNodes(pool.spec.replicated)) {
      // As the operator does (operator/ceph/): placement checked up front, nothing created in this version.
      const plan = planDisks({ pool, disks: [...disks.values()], nodes, volumes: new Map<string, PersistentVolume>() });
      const placement = placementOf(pool, [...plan.keep, ...plan.claim], nodes);
      notes.push(
        `pool ${pool.metadata.name}: failureDomain ${placement.failureDomain}: ${describePlacement(placement)}; nothing is created for it (${isSatisfiable(placement) ? 'CephEngineNotDeployed: this version does not deploy the Ceph cluster yet' : 'ReplicationSatisfiable=False'})`,
      );
      continue;
    }
    objects.push(renderStorageClass(pool));
    if (pool.spec.mode === 'Dynamic') {
      objects.push(renderSnapshotClass(pool));
      notes.push(
        `pool ${pool.metadata.name}: VolumeSnapshotClass ${renderSnapshotClass(pool).metadata.name} is created only where the cluster has the snapshot.storage.k8s.io/v1 CRDs`,
      );
    }
    const plan = planDisks({ pool, disks: [...disks.values()], nodes, volumes: new Map<string, PersistentVolume>() });
    const claim = desiredClaim(pool);
    for (const disk of plan.claim) disks.get(disk.metadata.name)!.spec.claim = claim;
    if (plan.claim.length > 0) notes.push(`pool ${pool.metadata.name}: claims ${plan.claim.map((d) => d.metadata.name).join(', ')}`);
    for (const { disk, pool: owner } of plan.conflicts)
      notes.push(`pool ${pool.metadata.name}: disk ${disk.metadata.name} belongs to pool ${owner}`);
    for (const disk of plan.release) notes.push(`pool ${pool.metadata.name}: releases disk ${disk.metadata.name}`);
    if (pool.spec.mode !== 'Local') continue;
    for (const disk of plan.keep) {
      const hostname = nodes.get(disk.spec.nodeName)?.metadata.labels?.[HOSTNAME_LABEL] ?? disk.spec.nodeName;
      const pv = isReadyDisk(disk) ? renderLocalPv(pool, disk, hostname) : undefined;
      if (pv) objects.push(pv);
      else
        notes.push(
          `pool ${pool.metadata.name}: disk ${disk.metadata.name} is not prepared yet; its PV ${persistentVolumeName(disk.metadata.name)} follows once it is`,
        );
    }
  }
  return { objects, notes };
}

function impliedNodes(disks: readonly NodeDisk[]): Node[] {
  const names = [...new Set(disks.map((d) => d.spec.nodeName))];
  return names.map((name) => ({ apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { [HOSTNAME_LABEL]: name } } }));
}

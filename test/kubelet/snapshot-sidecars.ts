// The cluster's snapshot-controller and the csi-snapshotter sidecar, played by the test the way they
// work (neither image can be pulled here), plus the external-provisioner's restore and clone paths.
// Read from kubernetes-csi/external-snapshotter and external-provisioner with the search tool; each
// step names what it plays:
//
//   external-snapshotter pkg/common-controller/snapshot_controller.go
//     syncUnreadySnapshot / createSnapshotContent  → takeSnapshot: a VolumeSnapshotContent named
//       `snapcontent-<VolumeSnapshot UID>` (pkg/utils/util.go GetDynamicSnapshotContentNameForSnapshot)
//       with spec.volumeSnapshotRef (kind, namespace, name, uid), spec.source.volumeHandle (the PV's
//       csi.volumeHandle), driver, deletionPolicy and volumeSnapshotClassName from the class
//     checkandAddSnapshotFinalizers / addContentFinalizer → finalizers
//       snapshot.storage.kubernetes.io/volumesnapshot-as-source-protection and
//       …/volumesnapshot-bound-protection on the VolumeSnapshot, …/volumesnapshotcontent-bound-protection
//       on the content, …/pvc-as-source-protection on the source PVC while the snapshot is being cut
//     updateSnapshotStatus → VolumeSnapshot status: boundVolumeSnapshotContentName, creationTime,
//       readyToUse, restoreSize (from the content's status)
//   external-snapshotter pkg/sidecar-controller/snapshot_controller.go
//     createSnapshotWrapper → annotation snapshot.storage.kubernetes.io/volumesnapshot-being-created
//       set before the call; CreateSnapshot named `snapshot-<VolumeSnapshot UID>` (utils.MakeSnapshotName
//       with the default --snapshot-name-prefix) for the content's volumeHandle, with the class's
//       parameters; the annotation removed after a success
//     updateSnapshotContentStatus → content status: snapshotHandle, creationTime (Unix ns),
//       restoreSize (size_bytes), readyToUse
//     deleteCSISnapshotOperation (content deleted, deletionPolicy Delete) → DeleteSnapshot, then the
//       content's finalizer removed
//   external-provisioner pkg/controller/controller.go (the rest of its play is csi-sidecars.ts)
//     getSnapshotSource → restore: the VolumeSnapshot must not be being deleted, must be bound to a
//       content that points back at it and belongs to the class's driver, readyToUse, with a
//       snapshotHandle, which becomes volume_content_source.snapshot; a request below the
//       snapshot's restoreSize is an error
//     getPVCSource → clone: the source PVC (the claim's namespace) must be Bound, not being deleted,
//       have a class, request no more than the new claim; its PV must be the class's driver's, bound
//       to it, and of the same volume mode; the PV's volumeHandle becomes volume_content_source.volume
//       (the cloning-protection finalizer is set in csi-sidecars.ts)

import type { KubeClient } from '../../src/kube/client.js';
import type { KubeObject } from '../../src/kube/types.js';
import { PERSISTENT_VOLUMES, PERSISTENT_VOLUME_CLAIMS, STORAGE_CLASSES, type ResourceType } from '../../src/kube/resources.js';
import { parseBytes } from '../../src/util/quantity.js';
import { VOLUME_SNAPSHOT_CLASSES } from '../../src/operator/storagepool/snapshot-class.js';
import { call, type CsiClient } from '../csi/fixture.js';

export const VOLUME_SNAPSHOTS: ResourceType = {
  group: 'snapshot.storage.k8s.io',
  version: 'v1',
  plural: 'volumesnapshots',
  kind: 'VolumeSnapshot',
  namespaced: true,
};
export const VOLUME_SNAPSHOT_CONTENTS: ResourceType = {
  group: 'snapshot.storage.k8s.io',
  version: 'v1',
  plural: 'volumesnapshotcontents',
  kind: 'VolumeSnapshotContent',
  namespaced: false,
};

const FINALIZER = {
  content: 'snapshot.storage.kubernetes.io/volumesnapshotcontent-bound-protection',
  bound: 'snapshot.storage.kubernetes.io/volumesnapshot-bound-protection',
  asSource: 'snapshot.storage.kubernetes.io/volumesnapshot-as-source-protection',
  pvc: 'snapshot.storage.kubernetes.io/pvc-as-source-protection',
} as const;
const BEING_CREATED = 'snapshot.storage.kubernetes.io/volumesnapshot-being-created';

type Any = KubeObject & Record<string, any>;

/** A user's VolumeSnapshot of `pvc`, then the snapshot-controller's and csi-snapshotter's work until it is ready to use. */
export async function takeSnapshot(opts: {
  client: KubeClient;
  controller: CsiClient;
  namespace: string;
  name: string;
  pvc: string;
  className: string;
}): Promise<{ content: string; snapshotHandle: string; restoreSize: string }> {
  const { client, namespace } = opts;
  // The user.
  const vs = await client.create<Any>(VOLUME_SNAPSHOTS, {
    apiVersion: 'snapshot.storage.k8s.io/v1',
    kind: 'VolumeSnapshot',
    metadata: { name: opts.name, namespace },
    spec: { volumeSnapshotClassName: opts.className, source: { persistentVolumeClaimName: opts.pvc } },
  });
  // snapshot-controller: finalizers, then the content.
  await client.mergePatch(VOLUME_SNAPSHOTS, opts.name, { metadata: { finalizers: [FINALIZER.asSource, FINALIZER.bound] } }, { namespace });
  const pvc = await client.get<Any>(PERSISTENT_VOLUME_CLAIMS, opts.pvc, namespace);
  await client.mergePatch(
    PERSISTENT_VOLUME_CLAIMS,
    opts.pvc,
    { metadata: { finalizers: [...(pvc.metadata.finalizers ?? []), FINALIZER.pvc] } },
    { namespace },
  );
  const pv = await client.get<Any>(PERSISTENT_VOLUMES, pvc.spec.volumeName);
  const cls = await client.get<Any>(VOLUME_SNAPSHOT_CLASSES, opts.className);
  const contentName = `snapcontent-${vs.metadata.uid}`;
  await client.create(VOLUME_SNAPSHOT_CONTENTS, {
    apiVersion: 'snapshot.storage.k8s.io/v1',
    kind: 'VolumeSnapshotContent',
    metadata: { name: contentName, finalizers: [FINALIZER.content] },
    spec: {
      volumeSnapshotRef: {
        apiVersion: 'snapshot.storage.k8s.io/v1',
        kind: 'VolumeSnapshot',
        namespace,
        name: opts.name,
        uid: vs.metadata.uid,
      },
      source: { volumeHandle: pv.spec.csi.volumeHandle },
      driver: cls.driver,
      deletionPolicy: cls.deletionPolicy,
      volumeSnapshotClassName: opts.className,
    },
  } as Any);
  // csi-snapshotter: annotate, call, report.
  await client.mergePatch(VOLUME_SNAPSHOT_CONTENTS, contentName, { metadata: { annotations: { [BEING_CREATED]: 'yes' } } });
  const res = await call(opts.controller, 'CreateSnapshot', {
    name: `snapshot-${vs.metadata.uid}`,
    source_volume_id: pv.spec.csi.volumeHandle,
    parameters: cls.parameters ?? {},
  });
  const snap = res.snapshot;
  await client.mergePatch(VOLUME_SNAPSHOT_CONTENTS, contentName, { metadata: { annotations: { [BEING_CREATED]: null } } });
  const creationNs = (BigInt(snap.creation_time.seconds) * 1_000_000_000n + BigInt(snap.creation_time.nanos)).toString();
  await client.mergePatch(
    VOLUME_SNAPSHOT_CONTENTS,
    contentName,
    {
      status: {
        snapshotHandle: snap.snapshot_id,
        creationTime: Number(creationNs),
        restoreSize: Number(snap.size_bytes),
        readyToUse: snap.ready_to_use,
      },
    },
    { subresource: 'status' },
  );
  // snapshot-controller: the snapshot is bound and ready; the PVC is no longer a source being cut.
  await client.mergePatch(
    VOLUME_SNAPSHOTS,
    opts.name,
    {
      status: {
        boundVolumeSnapshotContentName: contentName,
        creationTime: new Date(Number(BigInt(creationNs) / 1_000_000n)).toISOString().replace(/\.\d{3}Z$/, 'Z'),
        readyToUse: snap.ready_to_use,
        restoreSize: String(snap.size_bytes),
      },
    },
    { namespace, subresource: 'status' },
  );
  const after = await client.get<Any>(PERSISTENT_VOLUME_CLAIMS, opts.pvc, namespace);
  await client.mergePatch(
    PERSISTENT_VOLUME_CLAIMS,
    opts.pvc,
    { metadata: { finalizers: (after.metadata.finalizers ?? []).filter((f: string) => f !== FINALIZER.pvc) } },
    { namespace },
  );
  return { content: contentName, snapshotHandle: snap.snapshot_id, restoreSize: String(snap.size_bytes) };
}

/** The user deletes the VolumeSnapshot; the controllers delete the content and (deletionPolicy Delete) the snapshot. */
export async function deleteSnapshot(opts: { client: KubeClient; controller: CsiClient; namespace: string; name: string }): Promise<void> {
  const { client, namespace } = opts;
  const vs = await client.get<Any>(VOLUME_SNAPSHOTS, opts.name, namespace);
  await client.delete(VOLUME_SNAPSHOTS, opts.name, { namespace });
  const contentName: string = vs.status.boundVolumeSnapshotContentName;
  const content = await client.get<Any>(VOLUME_SNAPSHOT_CONTENTS, contentName);
  if (content.spec.deletionPolicy === 'Delete') {
    await client.delete(VOLUME_SNAPSHOT_CONTENTS, contentName);
    await call(opts.controller, 'DeleteSnapshot', { snapshot_id: content.status.snapshotHandle });
    await client.mergePatch(VOLUME_SNAPSHOT_CONTENTS, contentName, { metadata: { finalizers: null } });
  }
  await client.mergePatch(VOLUME_SNAPSHOTS, opts.name, { metadata: { finalizers: null } }, { namespace });
}

/**
 * external-provisioner's content source for a claim with `spec.dataSource`: a VolumeSnapshot
 * (restore, getSnapshotSource) or a PersistentVolumeClaim (clone, getPVCSource), with the checks
 * those functions make. Returned as CreateVolume's volume_content_source.
 */
export async function contentSourceOf(client: KubeClient, claim: Any, requiredBytes: bigint): Promise<Record<string, unknown> | undefined> {
  const ds = claim.spec.dataSource;
  if (!ds) return undefined;
  const namespace = claim.metadata.namespace;
  const sc = await client.get<Any>(STORAGE_CLASSES, claim.spec.storageClassName);
  if (ds.kind === 'VolumeSnapshot') {
    if (ds.apiGroup !== 'snapshot.storage.k8s.io')
      throw new Error(`the PVC source does not belong to the right APIGroup. Expected snapshot.storage.k8s.io, Got ${ds.apiGroup}`);
    const vs = await client.get<Any>(VOLUME_SNAPSHOTS, ds.name, namespace);
    if (vs.metadata.deletionTimestamp) throw new Error(`snapshot ${ds.name} is currently being deleted`);
    if (!vs.status?.boundVolumeSnapshotContentName) throw new Error(`snapshot ${ds.name} not bound`);
    const content = await client.get<Any>(VOLUME_SNAPSHOT_CONTENTS, vs.status.boundVolumeSnapshotContentName);
    const ref = content.spec.volumeSnapshotRef ?? {};
    if (ref.uid !== vs.metadata.uid || ref.namespace !== namespace || ref.name !== ds.name)
      throw new Error(`snapshot ${ds.name} not bound`);
    if (content.spec.driver !== sc.provisioner) throw new Error(`snapshot ${ds.name} not bound`);
    if (!vs.status.readyToUse) throw new Error(`snapshot ${ds.name} is not Ready`);
    if (!content.status?.snapshotHandle) throw new Error(`snapshot handle ${ds.name} is not available`);
    const restoreSize = vs.status.restoreSize === undefined ? undefined : parseBytes(String(vs.status.restoreSize));
    if (restoreSize !== undefined && requiredBytes < restoreSize)
      throw new Error(`requested volume size ${requiredBytes} is less than the size ${restoreSize} for the source snapshot ${ds.name}`);
    return { snapshot: { snapshot_id: content.status.snapshotHandle } };
  }
  if (ds.kind === 'PersistentVolumeClaim') {
    const source = await client.get<Any>(PERSISTENT_VOLUME_CLAIMS, ds.name, namespace);
    if (source.status?.phase !== 'Bound') throw new Error(`the PVC DataSource ${ds.name} must have a status of Bound`);
    if (source.metadata.deletionTimestamp) throw new Error(`the PVC DataSource ${ds.name} is currently being deleted`);
    if (!source.spec.storageClassName) throw new Error(`the source PVC (${ds.name}) storageclass cannot be empty`);
    const sourceSize = parseBytes(source.spec.resources.requests.storage);
    if (requiredBytes < sourceSize)
      throw new Error(
        `error, new PVC request must be greater than or equal in size to the specified PVC data source, requested ${requiredBytes} but source is ${sourceSize}`,
      );
    const pv = await client.get<Any>(PERSISTENT_VOLUMES, source.spec.volumeName);
    const bound =
      pv.spec.csi?.driver === sc.provisioner &&
      pv.spec.claimRef?.uid === source.metadata.uid &&
      pv.spec.claimRef?.namespace === namespace &&
      pv.status?.phase === 'Bound';
    if (!bound) throw new Error('claim in dataSource not bound or invalid');
    const wanted = claim.spec.volumeMode ?? 'Filesystem';
    if ((pv.spec.volumeMode ?? 'Filesystem') !== wanted)
      throw new Error(
        `the source PVC and destination PVCs must have the same volume mode for cloning. Source is ${pv.spec.volumeMode ?? 'Filesystem'}, but new PVC requested ${wanted}`,
      );
    return { volume: { volume_id: pv.spec.csi.volumeHandle } };
  }
  throw new Error(`dataSource kind ${ds.kind} is not played here (external-provisioner leaves it to an external populator)`);
}

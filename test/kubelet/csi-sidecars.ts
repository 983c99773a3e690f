// The csi-provisioner sidecar, played by the test the way it works (its image cannot be pulled here),
// against the real Stowage CSI controller socket; kubelet itself does everything on the node. Read
// from kubernetes-csi/external-provisioner (pkg/controller/controller.go, topology.go,
// cmd/csi-provisioner/csi-provisioner.go) and the library it drives, kubernetes-sigs/
// sig-storage-lib-external-provisioner (controller/controller.go, volume_store.go), with the search
// tool. The release and flags are the ones the operator deploys for the API server found
// (src/operator/driver-stack/sidecars.ts): on the local v1.20 server csi-provisioner v3.6.4 with
// `--strict-topology --extra-create-metadata --timeout=60s --feature-gates=Topology=true`, on 1.24+
// v6.4.0 with the same flags plus capacity tracking. Each step names what it plays:
//
//   lib controller.go shouldProvision + csi controller.go ShouldProvision/Provision
//     → waitForClaimToProvision: act only on an unbound claim whose `volume.kubernetes.io/storage-provisioner`
//       (else `volume.beta.kubernetes.io/storage-provisioner`, the only one a 1.20 PV controller
//       writes) names csi.stowage.dev; for WaitForFirstConsumer only once the scheduler wrote
//       `volume.kubernetes.io/selected-node`. A claim annotated for another provisioner is ignored
//       upstream; the play fails at once instead of waiting for nothing.
//   lib provisionClaimOperation → the class must exist and name csi.stowage.dev; the PV name is
//       `pvc-<claim UID>` (makeVolumeName, default --volume-name-prefix=pvc, --volume-name-uuid-length=-1);
//       event Normal `Provisioning` on the claim before the call
//   csi controller.go prepareProvision → createVolumeRequest:
//     - fsType from `csi.storage.k8s.io/fstype` (or the deprecated `fstype`; both is an error),
//       else --default-fstype, which the operator leaves at its default "" (no fs_type)
//     - one capability per claim access mode (getVolumeCapabilities; ReadWriteOnce → SINGLE_NODE_WRITER
//       since Stowage does not report SINGLE_NODE_MULTI_WRITER), Block for a Block claim, else mount
//       with the fsType and the class's mountOptions as mount_flags
//     - capacity_range.required_bytes = the claim's request, no limit
//     - volume_content_source from the claim's dataSource (snapshot-sidecars.ts contentSourceOf,
//       getSnapshotSource/getPVCSource); a clone sets the finalizer
//       `provisioner.storage.kubernetes.io/cloning-protection` on the source claim (setCloneFinalizer)
//     - accessibility_requirements (topology.go GenerateAccessibilityRequirements with --strict-topology
//       and a selected node): the keys are the selected node's CSINode topologyKeys for the driver,
//       the values that Node's labels; requisite = preferred = [that one segment]
//     - parameters: the class's parameters minus the reserved `csi.storage.k8s.io/` keys
//       (removePrefixedParameters; an unknown reserved key is an error), plus, for
//       --extra-create-metadata, `csi.storage.k8s.io/pvc/name`, `…/pvc/namespace`, `…/pv/name`
//     - secrets: Stowage's classes name none; a class that does is refused here (not played)
//   csi controller.go Provision → CreateVolume with the 60 s timeout (--timeout=60s); a response
//       below the request, or without content_source for a dataSource claim, is deleted again
//       (cleanupVolume) and is an error; a capacity of 0 means the request
//   csi controller.go Provision + lib provisionClaimOperation → provisionedVolume: the PV with
//       claimRef (ref.GetReference: apiVersion, kind, namespace, name, uid, resourceVersion),
//       annotation `pv.kubernetes.io/provisioned-by: csi.stowage.dev` and the deletion-secret
//       annotations (empty: no provisioner secret), spec.storageClassName, accessModes,
//       mountOptions and persistentVolumeReclaimPolicy from the class, capacity as a BinarySI
//       quantity of capacity_bytes, volumeMode from the claim, csi {driver, volumeHandle = volume_id,
//       volumeAttributes = volume_context + `storage.kubernetes.io/csiProvisionerIdentity`, fsType
//       (Filesystem only)}, nodeAffinity from accessible_topology (GenerateVolumeNodeAffinity);
//       finalizer `external-provisioner.volume.kubernetes.io/finalizer` only where the release has
//       HonorPVReclaimPolicy on (beta, on by default from v5.0, CHANGELOG-5.0.md; alpha and off in
//       v3.x, CHANGELOG-3.1.md), i.e. not on the local 1.20 server
//   lib volume_store.go StoreVolume → create the PV; event Normal `ProvisioningSucceeded`
//   lib provisionVolumeErrorHandling → event Warning `ProvisioningFailed` with the error; for
//       RESOURCE_EXHAUSTED with a selected node (checkError → ProvisioningReschedule) the
//       selected-node annotation is removed so the scheduler picks again (rescheduleProvisioning)
//   lib syncVolume/shouldDelete + csi controller.go Delete + lib deleteVolumeOperation
//     → deleteClaimVolume/deleteReleasedVolume: only a PV whose provisioned-by names the driver, in
//       phase Released with reclaimPolicy Delete (and, without the finalizer option, no
//       deletionTimestamp); DeleteVolume with its volumeHandle; then the PV is deleted; with the
//       finalizer option its finalizer is removed after that (failure: event Warning `VolumeFailedDelete`)
//   clone_controller.go syncClaim (CloningProtection) → a deleted source claim loses the
//       cloning-protection finalizer once no claim cloning from it is still Pending
//
// Deliberate differences: one instance, no leader election, no informers (reads go to the API
// server); the lookups before CreateVolume, and CreateVolume after a non-final error (isFinalError),
// are retried with backoff as the work queue would, until the claim's 120 s; a final CreateVolume
// error and any DeleteVolume error throw after the event is recorded; no capacity tracking (CSIStorageCapacity), no secrets, no
// in-tree migration. The resizer's play is resizer-play.ts (re-exported here).

import { randomInt } from 'node:crypto';
import type { KubeClient } from '../../src/kube/client.js';
import type { KubeObject } from '../../src/kube/types.js';
import {
  type ResourceType,
  CSI_NODES,
  NODES,
  PERSISTENT_VOLUMES,
  PERSISTENT_VOLUME_CLAIMS,
  STORAGE_CLASSES,
} from '../../src/kube/resources.js';
import { ApiError } from '../../src/kube/api-error.js';
import { DRIVER_NAME } from '../../src/csi/identity.js';
import { EventRecorder } from '../../src/runtime/events.js';
import { formatBytes, parseBytes } from '../../src/util/quantity.js';
import { parseServerVersion, sidecarProfile } from '../../src/operator/driver-stack/sidecars.js';
import { waitFor } from '../support/cluster.js';
import { call, type CsiClient } from '../csi/fixture.js';
import { contentSourceOf } from './snapshot-sidecars.js';

export { expandClaim } from './resizer-play.js';

const ANN = {
  storageProvisioner: 'volume.kubernetes.io/storage-provisioner',
  betaStorageProvisioner: 'volume.beta.kubernetes.io/storage-provisioner',
  selectedNode: 'volume.kubernetes.io/selected-node',
  provisionedBy: 'pv.kubernetes.io/provisioned-by',
  deletionSecretName: 'volume.kubernetes.io/provisioner-deletion-secret-name',
  deletionSecretNamespace: 'volume.kubernetes.io/provisioner-deletion-secret-namespace',
} as const;
const PV_FINALIZER = 'external-provisioner.volume.kubernetes.io/finalizer';
const CLONE_FINALIZER = 'provisioner.storage.kubernetes.io/cloning-protection';
const PROVISIONER_ID_KEY = 'storage.kubernetes.io/csiProvisionerIdentity';
const RESERVED_PREFIX = 'csi.storage.k8s.io/';
const FSTYPE_KEY = `${RESERVED_PREFIX}fstype`;
/** Reserved keys external-provisioner knows (removePrefixedParameters): fstype and the secret references. */
const KNOWN_RESERVED = new Set([
  FSTYPE_KEY,
  ...['provisioner', 'controller-publish', 'node-stage', 'node-publish', 'controller-expand', 'node-expand', ''].flatMap((op) => [
    `${RESERVED_PREFIX}${op ? `${op}-` : ''}secret-name`,
    `${RESERVED_PREFIX}${op ? `${op}-` : ''}secret-namespace`,
  ]),
]);
const EXTRA_METADATA = {
  pvcName: `${RESERVED_PREFIX}pvc/name`,
  pvcNamespace: `${RESERVED_PREFIX}pvc/namespace`,
  pvName: `${RESERVED_PREFIX}pv/name`,
} as const;
const ACCESS_MODES: Record<string, string> = {
  ReadWriteOnce: 'SINGLE_NODE_WRITER',
  ReadOnlyMany: 'MULTI_NODE_READER_ONLY',
  ReadWriteMany: 'MULTI_NODE_MULTI_WRITER',
};
const CLAIM_WAIT_MS = 120_000;
/** --timeout=60s: each CSI call's deadline. */
const CSI_TIMEOUT_MS = 60_000;

type Any = KubeObject & Record<string, any>;

/** What the deployed release does, from the flags and image the operator picks for this server. */
export interface ProvisionerFlavour {
  readonly image: string;
  readonly strictTopology: boolean;
  readonly extraCreateMetadata: boolean;
  /** HonorPVReclaimPolicy on: the PV finalizer is added at creation and removed after DeleteVolume. */
  readonly addFinalizer: boolean;
}

export async function provisionerFlavour(client: KubeClient): Promise<ProvisionerFlavour> {
  const version = parseServerVersion(await client.request<{ gitVersion?: string }>({ method: 'GET', path: '/version' }));
  const profile = sidecarProfile(version);
  if (!profile) throw new Error(`no csi-provisioner release supports Kubernetes ${version.gitVersion}`);
  const image = profile.images['csi-provisioner'];
  const major = Number(/:v(\d+)\./.exec(image)?.[1] ?? 0);
  const gate = profile.provisionerArgs.find((a) => a.includes('HonorPVReclaimPolicy='));
  return {
    image,
    strictTopology: profile.provisionerArgs.includes('--strict-topology'),
    extraCreateMetadata: profile.provisionerArgs.includes('--extra-create-metadata'),
    addFinalizer: gate ? gate.includes('HonorPVReclaimPolicy=true') : major >= 5,
  };
}

let identity: string | undefined;
/** csi-provisioner.go: `<start ms>-<rand 0..9999>-<driver>`, one per process. */
function provisionerIdentity(): string {
  identity ??= `${Date.now()}-${randomInt(10_000)}-${DRIVER_NAME}`;
  return identity;
}
const recorders = new WeakMap<KubeClient, EventRecorder>();
function events(client: KubeClient): EventRecorder {
  let r = recorders.get(client);
  if (!r) recorders.set(client, (r = new EventRecorder(client, 'external-provisioner', provisionerIdentity())));
  return r;
}

/** CreateVolume's parameters from a class's (prepareProvision: removePrefixedParameters, then --extra-create-metadata). */
export function createVolumeParameters(
  classParameters: Record<string, string> | undefined,
  claim: { name: string; namespace: string },
  pvName: string,
  extraCreateMetadata: boolean,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(classParameters ?? {})) {
    if (!k.startsWith(RESERVED_PREFIX)) out[k] = v;
    else if (!KNOWN_RESERVED.has(k))
      throw new Error(
        `failed to strip CSI Parameters of prefixed keys: found unknown parameter key "${k}" with reserved namespace ${RESERVED_PREFIX}`,
      );
    else if (k !== FSTYPE_KEY) throw new Error(`the class sets ${k}: secrets are not played here (Stowage's classes name none)`);
  }
  if (extraCreateMetadata)
    Object.assign(out, {
      [EXTRA_METADATA.pvcName]: claim.name,
      [EXTRA_METADATA.pvcNamespace]: claim.namespace,
      [EXTRA_METADATA.pvName]: pvName,
    });
  return out;
}

/** prepareProvision's fsType: `csi.storage.k8s.io/fstype` or the deprecated `fstype`, not both; --default-fstype is "". */
export function fsTypeOf(classParameters: Record<string, string> | undefined): string {
  const found = Object.entries(classParameters ?? {}).filter(([k]) => k.toLowerCase() === 'fstype' || k === FSTYPE_KEY);
  if (found.length > 1) throw new Error(`fstype specified in parameters with both "fstype" and "${FSTYPE_KEY}" keys`);
  return found[0]?.[1] ?? '';
}

/** The claim external-provisioner would act on: unbound, annotated for the driver, and (WaitForFirstConsumer) with a selected node. */
async function waitForClaimToProvision(client: KubeClient, namespace: string, name: string): Promise<{ claim: Any; sc: Any }> {
  return waitFor(
    `claim ${namespace}/${name} to be handed to ${DRIVER_NAME} (the scheduler's node choice and the PV controller's provisioner annotation)`,
    async () => {
      const claim = await client.get<Any>(PERSISTENT_VOLUME_CLAIMS, name, namespace);
      if (claim.spec.volumeName)
        throw new Error(
          `claim ${namespace}/${name} is already bound to ${claim.spec.volumeName}; external-provisioner does not provision it`,
        );
      const ann = claim.metadata.annotations ?? {};
      const provisioner = ann[ANN.storageProvisioner] ?? ann[ANN.betaStorageProvisioner];
      if (provisioner === undefined) return undefined;
      if (provisioner !== DRIVER_NAME)
        throw new Error(
          `claim ${namespace}/${name} is annotated for provisioner ${provisioner}, not ${DRIVER_NAME}: external-provisioner ignores it`,
        );
      const sc = await client.get<Any>(STORAGE_CLASSES, claim.spec.storageClassName);
      if (sc.provisioner !== DRIVER_NAME)
        throw new Error(`StorageClass ${sc.metadata.name} names provisioner ${sc.provisioner}, not ${DRIVER_NAME}`);
      if (sc.volumeBindingMode === 'WaitForFirstConsumer' && !ann[ANN.selectedNode]) return undefined;
      return { claim, sc };
    },
    CLAIM_WAIT_MS,
    250,
  );
}

/** topology.go GenerateAccessibilityRequirements with --strict-topology and a selected node. */
async function accessibilityRequirements(client: KubeClient, node: string): Promise<unknown> {
  const csiNode = await client.getIfExists<Any>(CSI_NODES, node);
  const keys: string[] = csiNode?.spec?.drivers?.find((d: any) => d.name === DRIVER_NAME)?.topologyKeys ?? [];
  if (keys.length === 0) throw new Error(`no topology key found on CSINode ${node}`);
  const labels = (await client.get<Any>(NODES, node)).metadata.labels ?? {};
  const missing = keys.filter((k) => labels[k] === undefined);
  if (missing.length)
    throw new Error(`topology labels from selected node ${node} do not match topology keys from CSINode ${keys.join(',')}`);
  const term = [{ segments: Object.fromEntries(keys.map((k) => [k, labels[k]])) }];
  return { requisite: term, preferred: term };
}

/**
 * Plays external-provisioner for one claim: waits until the claim is handed to csi.stowage.dev,
 * calls CreateVolume as the deployed release would and creates the PV (the PV controller binds it).
 * `pool`, when given, must be the class's `pool` parameter (a guard against a mixed-up class).
 */
export async function provisionClaim(opts: {
  client: KubeClient;
  controller: CsiClient;
  namespace: string;
  claim: string;
  pool?: string;
}): Promise<{ pvName: string; volumeId: string }> {
  const { client, namespace } = opts;
  const flavour = await provisionerFlavour(client);
  if (!flavour.strictTopology) throw new Error('the operator no longer passes --strict-topology; this play only knows that mode');
  const { claim, sc } = await waitForClaimToProvision(client, namespace, opts.claim);
  if (opts.pool !== undefined && sc.parameters?.pool !== opts.pool)
    throw new Error(`StorageClass ${sc.metadata.name} is for pool ${sc.parameters?.pool}, not ${opts.pool}`);
  const pvName = `pvc-${claim.metadata.uid}`;
  const rec = events(client);
  await rec.emit(claim, 'Normal', 'Provisioning', `External provisioner is provisioning volume for claim "${namespace}/${opts.claim}"`, {
    quiet: true,
  });
  const node: string = claim.metadata.annotations![ANN.selectedNode];
  const required = parseBytes(claim.spec.resources.requests.storage);
  let res: any;
  try {
    const block = claim.spec.volumeMode === 'Block';
    const fsType = fsTypeOf(sc.parameters);
    const parameters = createVolumeParameters(sc.parameters, { name: opts.claim, namespace }, pvName, flavour.extraCreateMetadata);
    // prepareProvision's lookups fail until their objects are ready (a CSINode without the driver's
    // keys yet, a snapshot not ready to use): upstream requeues the claim with backoff and records
    // ProvisioningFailed each time, and so does the play, until the claim's deadline.
    const { source, topology } = await retrying(rec, claim, async () => {
      const found = await contentSourceOf(client, claim, required);
      if (claim.spec.dataSource?.kind === 'PersistentVolumeClaim') await addCloneFinalizer(client, namespace, claim.spec.dataSource.name);
      return { source: found, topology: await accessibilityRequirements(client, node) };
    });
    const capabilities = (claim.spec.accessModes as string[]).map((mode) => {
      if (!ACCESS_MODES[mode]) throw new Error(`access mode ${mode} has no CSI equivalent here`);
      return {
        ...(block ? { block: {} } : { mount: { fs_type: fsType, mount_flags: sc.mountOptions ?? [] } }),
        access_mode: { mode: ACCESS_MODES[mode] },
      };
    });
    const request = {
      name: pvName,
      parameters,
      volume_capabilities: capabilities,
      capacity_range: { required_bytes: required.toString() },
      ...(source ? { volume_content_source: source } : {}),
      accessibility_requirements: topology,
    };
    // A non-final error (controller.go isFinalError: CANCELLED, DEADLINE_EXCEEDED, UNAVAILABLE,
    // ABORTED, RESOURCE_EXHAUSTED) leaves the volume "in background": the claim is requeued and
    // CreateVolume is called again with the same name, which the driver must answer idempotently.
    // RESOURCE_EXHAUSTED with a selected node is the reschedule below instead; any other code is final.
    res = await retrying(rec, claim, () => call(opts.controller, 'CreateVolume', request, CSI_TIMEOUT_MS), isNonFinal);
    const v = res.volume;
    const capacity = BigInt(v.capacity_bytes ?? 0) === 0n ? required : BigInt(v.capacity_bytes);
    const problem =
      capacity < required
        ? `created volume capacity ${capacity} less than requested capacity ${required}`
        : claim.spec.dataSource && !v.content_source
          ? 'volume content source missing'
          : undefined;
    if (problem) {
      await call(opts.controller, 'DeleteVolume', { volume_id: v.volume_id }, CSI_TIMEOUT_MS); // cleanupVolume
      throw new Error(problem);
    }
    await client.create(
      PERSISTENT_VOLUMES,
      provisionedVolume({ claim, sc, pvName, capacity, volume: v, fsType: block ? undefined : fsType, addFinalizer: flavour.addFinalizer }),
    );
    await rec.emit(claim, 'Normal', 'ProvisioningSucceeded', `Successfully provisioned volume ${pvName}`, { quiet: true });
    return { pvName, volumeId: v.volume_id };
  } catch (err) {
    await rec.emit(claim, 'Warning', 'ProvisioningFailed', err instanceof Error ? err.message : String(err), { quiet: true });
    if ((err as { code?: number }).code === 8 /* RESOURCE_EXHAUSTED */) {
      const { [ANN.selectedNode]: _dropped, ...rest } = claim.metadata.annotations ?? {};
      // Best effort, as external-provisioner's reschedule: the claim changed meanwhile is retried on the next error.
      await client
        .replace(PERSISTENT_VOLUME_CLAIMS, { ...claim, metadata: { ...claim.metadata, annotations: rest } })
        .catch(() => undefined);
    }
    throw err;
  }
}

/** Runs `attempt` until it succeeds, as the provisioner's rate-limited requeue (1 s doubling, capped here at 8 s). */
/** gRPC codes external-provisioner's isFinalError treats as "still in progress": retried. */
const NON_FINAL_CODES = new Set([1 /* CANCELLED */, 4 /* DEADLINE_EXCEEDED */, 10 /* ABORTED */, 14 /* UNAVAILABLE */]);
const isNonFinal = (err: unknown): boolean => NON_FINAL_CODES.has((err as { code?: number }).code ?? -1);

async function retrying<T>(
  rec: EventRecorder,
  claim: Any,
  attempt: () => Promise<T>,
  retryable: (err: unknown) => boolean = () => true,
): Promise<T> {
  const deadline = Date.now() + CLAIM_WAIT_MS;
  for (let delay = 1_000; ; delay = Math.min(delay * 2, 8_000)) {
    try {
      return await attempt();
    } catch (err) {
      if (!retryable(err) || Date.now() + delay > deadline) throw err;
      await rec.emit(claim, 'Warning', 'ProvisioningFailed', err instanceof Error ? err.message : String(err), { quiet: true });
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

/** The PV external-provisioner (Provision) and its library (provisionClaimOperation) write. */
export function provisionedVolume(p: {
  claim: Any;
  sc: Any;
  pvName: string;
  capacity: bigint;
  volume: any;
  fsType: string | undefined;
  addFinalizer: boolean;
}): Any {
  const { claim, sc, volume } = p;
  const terms = (volume.accessible_topology ?? [])
    .filter((t: any) => Object.keys(t.segments ?? {}).length > 0)
    .map((t: any) => ({ matchExpressions: Object.entries(t.segments).map(([key, value]) => ({ key, operator: 'In', values: [value] })) }));
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolume',
    metadata: {
      name: p.pvName,
      annotations: { [ANN.provisionedBy]: sc.provisioner, [ANN.deletionSecretName]: '', [ANN.deletionSecretNamespace]: '' },
      ...(p.addFinalizer ? { finalizers: [PV_FINALIZER] } : {}),
    },
    spec: {
      accessModes: claim.spec.accessModes,
      ...(sc.mountOptions ? { mountOptions: sc.mountOptions } : {}),
      capacity: { storage: formatBytes(p.capacity) },
      csi: {
        driver: DRIVER_NAME,
        volumeHandle: volume.volume_id,
        volumeAttributes: { [PROVISIONER_ID_KEY]: provisionerIdentity(), ...(volume.volume_context ?? {}) },
        ...(p.fsType ? { fsType: p.fsType } : {}),
      },
      persistentVolumeReclaimPolicy: sc.reclaimPolicy ?? 'Delete',
      ...(terms.length ? { nodeAffinity: { required: { nodeSelectorTerms: terms } } } : {}),
      ...(claim.spec.volumeMode ? { volumeMode: claim.spec.volumeMode } : {}),
      claimRef: {
        kind: 'PersistentVolumeClaim',
        namespace: claim.metadata.namespace,
        name: claim.metadata.name,
        uid: claim.metadata.uid,
        apiVersion: 'v1',
        resourceVersion: claim.metadata.resourceVersion,
      },
      storageClassName: claim.spec.storageClassName,
    },
  };
}

async function addCloneFinalizer(client: KubeClient, namespace: string, source: string): Promise<void> {
  await updateFinalizers(client, PERSISTENT_VOLUME_CLAIMS, source, namespace, (f) =>
    f.includes(CLONE_FINALIZER) ? undefined : [...f, CLONE_FINALIZER],
  );
}

/**
 * Read-modify-write of an object's finalizers (the sidecars' Update/Patch); a conflict (someone
 * else wrote in between) is tried again on the fresh object, as the work queue's requeue would.
 * `change` returns undefined when there is nothing to change.
 */
async function updateFinalizers(
  client: KubeClient,
  rt: ResourceType,
  name: string,
  namespace: string | undefined,
  change: (finalizers: string[]) => string[] | undefined,
): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const obj = await client.getIfExists<Any>(rt, name, namespace);
    const next = obj && change(obj.metadata.finalizers ?? []);
    if (!obj || !next) return;
    try {
      await client.replace(rt, { ...obj, metadata: { ...obj.metadata, finalizers: next } });
      return;
    } catch (err) {
      if (!ApiError.isConflict(err) || attempt >= 10) throw err;
    }
  }
}

/** CloningProtection's syncClaim for a deleted claim: drop the finalizer once no clone of it is Pending. */
async function releaseCloneFinalizer(client: KubeClient, namespace: string, name: string): Promise<void> {
  const src = await client.getIfExists<Any>(PERSISTENT_VOLUME_CLAIMS, name, namespace);
  if (!src?.metadata.deletionTimestamp || !(src.metadata.finalizers ?? []).includes(CLONE_FINALIZER)) return;
  await waitFor(
    `the clones of ${namespace}/${name} to leave Pending`,
    async () => {
      const claims = await client.list<Any>(PERSISTENT_VOLUME_CLAIMS, { namespace });
      return !claims.items.some(
        (c) => c.spec.dataSource?.kind === 'PersistentVolumeClaim' && c.spec.dataSource.name === name && c.status?.phase === 'Pending',
      );
    },
    CLAIM_WAIT_MS,
    250,
  );
  await updateFinalizers(client, PERSISTENT_VOLUME_CLAIMS, name, namespace, (f) =>
    f.includes(CLONE_FINALIZER) ? f.filter((x) => x !== CLONE_FINALIZER) : undefined,
  );
}

/**
 * The user deletes the claim; kube-controller-manager releases its PV (pvc-protection waits for the
 * claim's pods to be gone) and external-provisioner deletes the volume and the PV. Resolves once
 * the PV is gone.
 */
export async function deleteClaimVolume(opts: {
  client: KubeClient;
  controller: CsiClient;
  namespace: string;
  claim: string;
  timeoutMs?: number;
}): Promise<{ pvName: string; volumeId: string }> {
  const { client, namespace } = opts;
  const claim = await client.get<Any>(PERSISTENT_VOLUME_CLAIMS, opts.claim, namespace);
  const pvName: string = claim.spec.volumeName;
  if (!pvName) throw new Error(`claim ${namespace}/${opts.claim} is not bound; there is no volume to delete`);
  await client.delete(PERSISTENT_VOLUME_CLAIMS, opts.claim, { namespace });
  await releaseCloneFinalizer(client, namespace, opts.claim);
  return deleteReleasedVolume({ client, controller: opts.controller, pvName, timeoutMs: opts.timeoutMs });
}

/** external-provisioner's delete path for one PV whose claim is gone (or going): see the header. */
export async function deleteReleasedVolume(opts: {
  client: KubeClient;
  controller: CsiClient;
  pvName: string;
  timeoutMs?: number;
}): Promise<{ pvName: string; volumeId: string }> {
  const { client, pvName } = opts;
  const timeout = opts.timeoutMs ?? CLAIM_WAIT_MS;
  const flavour = await provisionerFlavour(client);
  const pv = await waitFor(
    `PV ${pvName} to be Released by the PV controller`,
    async () => {
      const v = await client.get<Any>(PERSISTENT_VOLUMES, pvName);
      if (v.metadata.annotations?.[ANN.provisionedBy] !== DRIVER_NAME)
        throw new Error(`PV ${pvName} was not provisioned by ${DRIVER_NAME}; external-provisioner leaves it alone`);
      if (v.spec.persistentVolumeReclaimPolicy !== 'Delete')
        throw new Error(
          `PV ${pvName} has reclaimPolicy ${v.spec.persistentVolumeReclaimPolicy}; external-provisioner deletes only Delete volumes`,
        );
      return v.status?.phase === 'Released' ? v : undefined;
    },
    timeout,
    250,
  );
  const volumeId: string = pv.spec.csi.volumeHandle;
  if (!flavour.addFinalizer && pv.metadata.deletionTimestamp) return { pvName, volumeId }; // shouldDelete: someone else deletes it
  try {
    await call(opts.controller, 'DeleteVolume', { volume_id: volumeId }, CSI_TIMEOUT_MS);
  } catch (err) {
    await events(client).emit(pv, 'Warning', 'VolumeFailedDelete', err instanceof Error ? err.message : String(err), { quiet: true });
    throw err;
  }
  await client.delete(PERSISTENT_VOLUMES, pvName);
  if (flavour.addFinalizer) {
    await updateFinalizers(client, PERSISTENT_VOLUMES, pvName, undefined, (f) =>
      f.includes(PV_FINALIZER) ? f.filter((x) => x !== PV_FINALIZER) : undefined,
    );
  }
  // kubernetes.io/pv-protection lets go of a Released PV at once.
  await waitFor(`PV ${pvName} to be gone`, async () => !(await client.getIfExists(PERSISTENT_VOLUMES, pvName)), timeout, 250);
  return { pvName, volumeId };
}

// The csi-resizer sidecar, played by the test the way it works (its image cannot be pulled here),
// against the real Stowage CSI controller socket. Read from kubernetes-csi/external-resizer
// (pkg/controller/controller.go, pkg/resizer/csi_resizer.go, pkg/util/util.go) with the search tool.
// The operator deploys v1.9.3 on 1.20–1.23 and v2.3.0 on 1.24+ with `--timeout=60s`
// (src/operator/driver-stack/render.ts); their default path (RecoverVolumeExpansionFailure off, so
// no status.allocatedResources, which a 1.20 server does not even have) is the one played:
//
//   controller.go updatePVC/syncPVC + pvcNeedResize → the claim must be Bound to a PV and request
//       more than status.capacity
//   csi_resizer.go CanSupport + controller.go pvNeedResize → the PV is a CSI volume of
//       csi.stowage.dev bound to this claim (claimRef namespace and uid) and smaller than the
//       request, or as big but without FileSystemResizePending
//   controller.go markPVCResizeInProgress → claim status condition Resizing=True (other resize
//       conditions replaced, MergeResizeConditionsOfPVC), then event Normal `Resizing`
//       "External resizer is resizing volume <pv>"
//   csi_resizer.go Resize → ControllerExpandVolume {volume_id = the PV's volumeHandle,
//       capacity_range.required_bytes = the request, volume_capability from the PV
//       (GetVolumeCapabilities: block for a Block PV, else mount with the PV's fsType and
//       mountOptions; access mode from the PV's first access mode), no secrets}, 60 s deadline
//   util.UpdatePVCapacity → PV spec.capacity.storage = capacity_bytes (a BinarySI quantity)
//   node_expansion_required → markPVCAsFSResizeRequired: condition FileSystemResizePending=True
//       "Waiting for user to (re-)start a pod to finish file system resize of volume on node.",
//       event Normal `FileSystemResizeRequired`; kubelet's NodeExpandVolume then finishes it and
//       sets status.capacity (the hand-off; this play stops there)
//     else → markPVCResizeFinished: status.capacity = capacity_bytes, resize conditions dropped,
//       event Normal `VolumeResizeSuccessful` "Resize volume succeeded"
//   any failure → event Warning `VolumeResizeFailed` "resize volume <pv> failed: <error>"
//
// Deliberate differences: no informers or work queue (one attempt; a failure throws), no leader
// election, no in-use (FAILED_PRECONDITION) bookkeeping, no migration, no pre-resize-capacity
// annotation (the AnnotateFsResize gate is off by default).

import type { KubeClient } from '../../src/kube/client.js';
import type { KubeObject } from '../../src/kube/types.js';
import { PERSISTENT_VOLUMES, PERSISTENT_VOLUME_CLAIMS } from '../../src/kube/resources.js';
import { DRIVER_NAME } from '../../src/csi/identity.js';
import { EventRecorder } from '../../src/runtime/events.js';
import { nowTimestamp } from '../../src/runtime/conditions.js';
import { formatBytes, parseBytes, tryParseBytes } from '../../src/util/quantity.js';
import { waitFor } from '../support/cluster.js';
import { call, type CsiClient } from '../csi/fixture.js';

const RESIZE_CONDITIONS = new Set(['Resizing', 'FileSystemResizePending', 'ControllerResizeError', 'NodeResizeError']);
const ACCESS_MODES: Record<string, string> = {
  ReadWriteOnce: 'SINGLE_NODE_WRITER',
  ReadOnlyMany: 'MULTI_NODE_READER_ONLY',
  ReadWriteMany: 'MULTI_NODE_MULTI_WRITER',
};
const CSI_TIMEOUT_MS = 60_000;

type Any = KubeObject & Record<string, any>;

/** util.MergeResizeConditionsOfPVC: non-resize conditions kept, resize ones replaced by `next`. */
function mergeResizeConditions(old: any[] | undefined, next: any[]): any[] {
  return [...(old ?? []).filter((c) => !RESIZE_CONDITIONS.has(c.type)), ...next];
}

/** csi_resizer.go GetVolumeCapabilities. */
function capabilityOf(pv: Any): unknown {
  const mode = ACCESS_MODES[pv.spec.accessModes?.[0]];
  if (!mode) throw new Error(`PV ${pv.metadata.name} has access modes ${pv.spec.accessModes} with no CSI equivalent here`);
  const type =
    pv.spec.volumeMode === 'Block'
      ? { block: {} }
      : { mount: { fs_type: pv.spec.csi.fsType ?? '', mount_flags: pv.spec.mountOptions ?? [] } };
  return { ...type, access_mode: { mode } };
}

/**
 * The user asks for `size`; the external-resizer grows the volume and the PV, and either finishes
 * the claim (status.capacity) or hands it to kubelet (FileSystemResizePending).
 */
export async function expandClaim(opts: {
  client: KubeClient;
  controller: CsiClient;
  namespace: string;
  claim: string;
  size: string;
}): Promise<{ capacity: string; nodeExpansionRequired: boolean }> {
  const { client, namespace } = opts;
  // The user.
  await client.mergePatch(
    PERSISTENT_VOLUME_CLAIMS,
    opts.claim,
    { spec: { resources: { requests: { storage: opts.size } } } },
    { namespace },
  );
  const requested = parseBytes(opts.size);
  // pvcNeedResize: a Bound claim asking for more than it has.
  const pvc = await waitFor(
    `claim ${namespace}/${opts.claim} to be Bound`,
    async () => {
      const c = await client.get<Any>(PERSISTENT_VOLUME_CLAIMS, opts.claim, namespace);
      return c.status?.phase === 'Bound' && c.spec.volumeName ? c : undefined;
    },
    60_000,
    250,
  );
  if ((tryParseBytes(pvc.status.capacity?.storage) ?? 0n) >= requested)
    throw new Error(`claim ${namespace}/${opts.claim} already has ${pvc.status.capacity?.storage}; the resizer has nothing to do`);
  const pv = await client.get<Any>(PERSISTENT_VOLUMES, pvc.spec.volumeName);
  // CanSupport + pvNeedResize.
  if (pv.spec.csi?.driver !== DRIVER_NAME) throw new Error(`PV ${pv.metadata.name} is not a ${DRIVER_NAME} volume`);
  if (pv.spec.claimRef?.uid !== pvc.metadata.uid || pv.spec.claimRef?.namespace !== namespace)
    throw new Error(`PV ${pv.metadata.name} is not bound to claim ${namespace}/${opts.claim}`);
  const pending = (pvc.status.conditions ?? []).some((c: any) => c.type === 'FileSystemResizePending' && c.status === 'True');
  if ((tryParseBytes(pv.spec.capacity?.storage) ?? 0n) >= requested && pending)
    throw new Error(`PV ${pv.metadata.name} is grown already and waits for kubelet`);

  const rec = new EventRecorder(client, `external-resizer ${DRIVER_NAME}`, 'stowage-test');
  const setConditions = (conditions: any[] | null, extra: Record<string, unknown> = {}) =>
    client.mergePatch<Any>(
      PERSISTENT_VOLUME_CLAIMS,
      opts.claim,
      { status: { conditions, ...extra } },
      { namespace, subresource: 'status' },
    );
  const claimNow = await setConditions(
    mergeResizeConditions(pvc.status.conditions, [{ type: 'Resizing', status: 'True', lastTransitionTime: nowTimestamp() }]),
  );
  await rec.emit(claimNow, 'Normal', 'Resizing', `External resizer is resizing volume ${pv.metadata.name}`, { quiet: true });
  try {
    const res = await call(
      opts.controller,
      'ControllerExpandVolume',
      {
        volume_id: pv.spec.csi.volumeHandle,
        capacity_range: { required_bytes: requested.toString() },
        volume_capability: capabilityOf(pv),
      },
      CSI_TIMEOUT_MS,
    ).catch((err: Error) => {
      throw new Error(`resize volume ${pv.metadata.name} failed: ${err.message}`);
    });
    const capacity = formatBytes(BigInt(res.capacity_bytes));
    await client.mergePatch(PERSISTENT_VOLUMES, pvc.spec.volumeName, { spec: { capacity: { storage: capacity } } });
    if (res.node_expansion_required) {
      await setConditions(
        mergeResizeConditions(claimNow.status.conditions, [
          {
            type: 'FileSystemResizePending',
            status: 'True',
            lastTransitionTime: nowTimestamp(),
            message: 'Waiting for user to (re-)start a pod to finish file system resize of volume on node.',
          },
        ]),
      );
      await rec.emit(claimNow, 'Normal', 'FileSystemResizeRequired', 'Require file system resize of volume on node', { quiet: true });
    } else {
      const rest = mergeResizeConditions(claimNow.status.conditions, []);
      await setConditions(rest.length ? rest : null, { capacity: { ...claimNow.status.capacity, storage: capacity } });
      await rec.emit(claimNow, 'Normal', 'VolumeResizeSuccessful', 'Resize volume succeeded', { quiet: true });
    }
    return { capacity, nodeExpansionRequired: res.node_expansion_required === true };
  } catch (err) {
    await rec.emit(claimNow, 'Warning', 'VolumeResizeFailed', err instanceof Error ? err.message : String(err), { quiet: true });
    throw err;
  }
}

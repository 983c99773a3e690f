// The parts of the CSI sidecars no Debian package ships, played by the test the way the sidecars do
// them (issue 6 allows it): the external-provisioner turns a claim the scheduler picked a node for into
// CreateVolume with that node's topology and a PersistentVolume bound to the claim; the
// external-resizer turns a bigger request into ControllerExpandVolume and new capacities. kubelet itself
// does everything on the node: registration, stage, publish, unpublish, unstage. A claim with a
// dataSource (restore or clone) gets its content source as external-provisioner resolves it
// (snapshot-sidecars.ts contentSourceOf), and a Block claim a block capability and a Block PV.

import type { KubeClient } from '../../src/kube/client.js';
import { PERSISTENT_VOLUMES, PERSISTENT_VOLUME_CLAIMS } from '../../src/kube/resources.js';
import { DRIVER_NAME, TOPOLOGY_KEY } from '../../src/csi/identity.js';
import { waitFor } from '../support/cluster.js';
import { call, type CsiClient } from '../csi/fixture.js';
import { contentSourceOf } from './snapshot-sidecars.js';

const SELECTED_NODE = 'volume.kubernetes.io/selected-node';

const MOUNT_CAPABILITY = { mount: { fs_type: '', mount_flags: [] }, access_mode: { mode: 'SINGLE_NODE_WRITER' } };
const BLOCK_CAPABILITY = { block: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } };

function bytesOf(quantity: string): bigint {
  const m = /^(\d+)(Ki|Mi|Gi)?$/.exec(quantity);
  if (!m) throw new Error(`unsupported quantity ${quantity} in a test claim`);
  const unit = { Ki: 1n << 10n, Mi: 1n << 20n, Gi: 1n << 30n }[m[2] as 'Ki' | 'Mi' | 'Gi'] ?? 1n;
  return BigInt(m[1]!) * unit;
}

/** Waits for the scheduler's node choice on a WaitForFirstConsumer claim, provisions it, and binds a PV. */
export async function provisionClaim(opts: { client: KubeClient; controller: CsiClient; namespace: string; claim: string; pool: string }): Promise<{ pvName: string; volumeId: string }> {
  const { client, namespace } = opts;
  const pvc = await waitFor(
    `the scheduler to pick a node for claim ${namespace}/${opts.claim}`,
    async () => {
      const c = await client.get<any>(PERSISTENT_VOLUME_CLAIMS, opts.claim, namespace);
      return c.metadata.annotations?.[SELECTED_NODE] ? c : undefined;
    },
    120_000,
    250,
  );
  const node: string = pvc.metadata.annotations[SELECTED_NODE];
  const name = `pvc-${pvc.metadata.uid}`;
  const topology = [{ segments: { [TOPOLOGY_KEY]: node } }];
  const required = bytesOf(pvc.spec.resources.requests.storage);
  const block = pvc.spec.volumeMode === 'Block';
  const source = await contentSourceOf(client, pvc, required);
  const res = await call(opts.controller, 'CreateVolume', {
    name,
    capacity_range: { required_bytes: required.toString() },
    volume_capabilities: [block ? BLOCK_CAPABILITY : MOUNT_CAPABILITY],
    parameters: { pool: opts.pool },
    accessibility_requirements: { requisite: topology, preferred: topology },
    ...(source ? { volume_content_source: source } : {}),
  });
  const v = res.volume;
  await client.create(PERSISTENT_VOLUMES, {
    apiVersion: 'v1',
    kind: 'PersistentVolume',
    metadata: { name, annotations: { 'pv.kubernetes.io/provisioned-by': DRIVER_NAME } },
    spec: {
      capacity: { storage: String(v.capacity_bytes) },
      accessModes: pvc.spec.accessModes,
      persistentVolumeReclaimPolicy: 'Delete',
      storageClassName: pvc.spec.storageClassName,
      volumeMode: block ? 'Block' : 'Filesystem',
      claimRef: { apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace, name: opts.claim, uid: pvc.metadata.uid },
      csi: { driver: DRIVER_NAME, volumeHandle: v.volume_id, volumeAttributes: v.volume_context },
      nodeAffinity: {
        required: {
          nodeSelectorTerms: v.accessible_topology.map((t: any) => ({
            matchExpressions: Object.entries(t.segments).map(([key, value]) => ({ key, operator: 'In', values: [value] })),
          })),
        },
      },
    },
  } as any);
  return { pvName: name, volumeId: v.volume_id };
}

/** Grows a bound claim: ControllerExpandVolume, then the PV's and (no node step for Filesystem) the claim's capacity. */
export async function expandClaim(opts: { client: KubeClient; controller: CsiClient; namespace: string; claim: string; size: string }): Promise<void> {
  const { client, namespace } = opts;
  await client.mergePatch(PERSISTENT_VOLUME_CLAIMS, opts.claim, { spec: { resources: { requests: { storage: opts.size } } } }, { namespace });
  const pvc = await client.get<any>(PERSISTENT_VOLUME_CLAIMS, opts.claim, namespace);
  const pv = await client.get<any>(PERSISTENT_VOLUMES, pvc.spec.volumeName);
  const res = await call(opts.controller, 'ControllerExpandVolume', {
    volume_id: pv.spec.csi.volumeHandle,
    capacity_range: { required_bytes: bytesOf(opts.size).toString() },
    volume_capability: MOUNT_CAPABILITY,
  });
  if (res.node_expansion_required) throw new Error('a Filesystem volume of Stowage should not need NodeExpandVolume; this helper does not play that part');
  await client.mergePatch(PERSISTENT_VOLUMES, pv.metadata.name, { spec: { capacity: { storage: String(res.capacity_bytes) } } });
  await client.mergePatch(PERSISTENT_VOLUME_CLAIMS, opts.claim, { status: { capacity: { storage: String(res.capacity_bytes) } } }, { namespace, subresource: 'status' });
}

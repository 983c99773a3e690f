/**
 * The kubernetes-csi external-provisioner, played by `npm run bench:churn` against the real CSI
 * controller's socket (no sidecar image can run here: there is no kubelet/container runtime in the
 * churn). It keeps the upstream mapping (kubernetes-csi/external-provisioner v2, on
 * sig-storage-lib-external-provisioner v6 controller/controller.go):
 *
 *  - `ProvisionController.shouldProvision`: a claim of our StorageClass with no `spec.volumeName`, not
 *    being deleted, and (WaitForFirstConsumer) the scheduler's `volume.kubernetes.io/selected-node`
 *    annotation → `provisionClaimOperation`: CreateVolume named `pvc-<claim UID>` with that node's
 *    topology, then a PV pre-bound to the claim (both done by test/kubelet/csi-sidecars.ts
 *    `provisionClaim`, the play the kubelet tests use). A failed call is requeued with exponential
 *    backoff (the controller's rate-limited queue), which is what carries it over a CSI controller
 *    restart (UNAVAILABLE while the socket is gone).
 *  - `shouldDelete`: a PV with `pv.kubernetes.io/provisioned-by: csi.stowage.dev`, phase Released and
 *    reclaim policy Delete → `deleteVolumeOperation`: DeleteVolume(volumeHandle), then delete the PV
 *    (pv-protection lets it go once kube-controller-manager sees it unused).
 *  - Worker threads: upstream defaults to 100; the play keeps at most WORKERS calls in flight, as the
 *    machine has 2 cores shared with the control plane and the Stowage processes.
 *
 * Not played: the `external-provisioner.volume.kubernetes.io/finalizer` on PVs (v3+), capacity
 * tracking (CSIStorageCapacity), and retrying a claim whose PV creation failed other than with
 * AlreadyExists (the API server is up throughout the churn).
 */
import type { KubeClient } from '../src/kube/client.js';
import { ApiError } from '../src/kube/api-error.js';
import { PERSISTENT_VOLUMES } from '../src/kube/resources.js';
import type { PersistentVolume } from '../src/kube/types.js';
import type { Informer } from '../src/runtime/informer.js';
import { DRIVER_NAME } from '../src/csi/identity.js';
import { call, type CsiClient } from '../test/csi/fixture.js';
import { provisionClaim } from '../test/kubelet/csi-sidecars.js';

const SELECTED_NODE = 'volume.kubernetes.io/selected-node';
const PROVISIONED_BY = 'pv.kubernetes.io/provisioned-by';
const WORKERS = 16;
const SCAN_MS = 200;
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 10_000;

type Claim = PersistentVolume & { spec: { storageClassName?: string; volumeName?: string } };

export class ProvisionerPlay {
  private timer?: NodeJS.Timeout;
  private readonly inFlight = new Set<string>();
  /** key → { failures, not before } : the rate-limited queue's backoff. */
  private readonly backoff = new Map<string, { failures: number; notBefore: number }>();
  /** Failed calls (retried), by gRPC/API message prefix: shows the restarts the play rode over. */
  readonly retries = new Map<string, number>();
  /** Claim UIDs provisioned and PV UIDs deleted (sets: a retry racing the cache is not counted twice). */
  readonly provisioned = new Set<string>();
  readonly deleted = new Set<string>();

  constructor(
    private readonly opts: {
      client: KubeClient;
      controller: CsiClient;
      claims: Informer<any>;
      volumes: Informer<PersistentVolume>;
      namespace: string;
      storageClass: string;
      pool: string;
    },
  ) {}

  start(): void {
    this.timer = setInterval(() => this.scan(), SCAN_MS);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  get busy(): number {
    return this.inFlight.size;
  }

  private scan(): void {
    const { claims, volumes, storageClass, namespace } = this.opts;
    const pvNames = new Set(volumes.list().map((v) => v.metadata.name));
    for (const c of claims.list() as Claim[]) {
      if (c.metadata.namespace !== namespace || c.spec.storageClassName !== storageClass) continue;
      if (c.spec.volumeName || c.metadata.deletionTimestamp || !c.metadata.annotations?.[SELECTED_NODE]) continue;
      if (pvNames.has(`pvc-${c.metadata.uid}`)) continue; // provisioned; the PV controller binds it
      this.launch(`provision/${c.metadata.uid}`, () => this.provision(c.metadata.name!, c.metadata.uid!));
    }
    for (const pv of volumes.list()) {
      if (pv.metadata.annotations?.[PROVISIONED_BY] !== DRIVER_NAME || pv.status?.phase !== 'Released') continue;
      if (pv.spec.persistentVolumeReclaimPolicy !== 'Delete' || pv.metadata.deletionTimestamp) continue;
      this.launch(`delete/${pv.metadata.name}`, () => this.remove(pv));
    }
  }

  private launch(key: string, work: () => Promise<void>): void {
    if (this.inFlight.has(key) || this.inFlight.size >= WORKERS) return;
    const b = this.backoff.get(key);
    if (b && Date.now() < b.notBefore) return;
    this.inFlight.add(key);
    work().then(
      () => this.backoff.delete(key),
      (err: Error) => {
        const failures = (b?.failures ?? 0) + 1;
        this.backoff.set(key, { failures, notBefore: Date.now() + Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (failures - 1)) });
        const what = `${key.split('/')[0]}: ${String(err.message ?? err).split(/[:\n]/)[0]!.slice(0, 60)}`;
        this.retries.set(what, (this.retries.get(what) ?? 0) + 1);
      },
    ).finally(() => this.inFlight.delete(key));
  }

  private async provision(claim: string, uid: string): Promise<void> {
    const { client, controller, namespace, pool } = this.opts;
    try {
      await provisionClaim({ client, controller, namespace, claim, pool });
    } catch (err) {
      // A retry after CreateVolume answered but before the bench saw the PV: the PV is there already.
      if (!ApiError.isAlreadyExists(err)) throw err;
    }
    this.provisioned.add(uid);
  }

  private async remove(pv: PersistentVolume): Promise<void> {
    const { client, controller } = this.opts;
    await call(controller, 'DeleteVolume', { volume_id: pv.spec.csi!.volumeHandle }, 60_000);
    await client.delete(PERSISTENT_VOLUMES, pv.metadata.name!, { uid: pv.metadata.uid });
    this.deleted.add(pv.metadata.uid!);
  }
}

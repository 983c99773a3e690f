/**
 * The kubernetes-csi external-provisioner, played by `npm run bench:churn` against the real CSI
 * controller's socket (no sidecar image can run here: there is no container runtime in the churn).
 * Each claim's and each PV's step is the shared play of test/kubelet/csi-sidecars.ts, which keeps
 * the line-by-line mapping to the deployed release (`provisionClaim`: shouldProvision →
 * provisionClaimOperation → CreateVolume → the PV; `deleteReleasedVolume`: shouldDelete →
 * deleteVolumeOperation → DeleteVolume → the PV deleted). This file plays what runs those steps
 * upstream (sig-storage-lib-external-provisioner controller/controller.go `ProvisionController`):
 *
 *  - the claim and volume informers' event handlers → a scan of the bench's informer caches every
 *    SCAN_MS: an unbound claim of our class, not being deleted, with the scheduler's
 *    `volume.kubernetes.io/selected-node` and no PV `pvc-<uid>` yet; a PV provisioned by
 *    csi.stowage.dev in phase Released with reclaim policy Delete and no deletion timestamp;
 *  - the rate-limited work queues (`claimQueue`, `volumeQueue`, exponential failure backoff) →
 *    one key in flight at a time, a failed key retried after 0.5 s doubling to 10 s: what carries a
 *    claim over a CSI controller restart (UNAVAILABLE while its socket is gone);
 *  - `--worker-threads` (upstream default 100) → at most WORKERS steps in flight, as the machine has
 *    2 cores shared with the control plane and the Stowage processes.
 *
 * A retry that finds the PV already created (CreateVolume answered, the cache not yet updated) ends
 * there, as upstream's `volume_store` treats AlreadyExists.
 */
import type { KubeClient } from '../src/kube/client.js';
import { ApiError } from '../src/kube/api-error.js';
import type { PersistentVolume } from '../src/kube/types.js';
import type { Informer } from '../src/runtime/informer.js';
import { DRIVER_NAME } from '../src/csi/identity.js';
import type { CsiClient } from '../test/csi/fixture.js';
import { deleteReleasedVolume, provisionClaim } from '../test/kubelet/csi-sidecars.js';

const SELECTED_NODE = 'volume.kubernetes.io/selected-node';
const PROVISIONED_BY = 'pv.kubernetes.io/provisioned-by';
const WORKERS = 16;
const SCAN_MS = 200;
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 10_000;
/** A PV seen Released that the play then finds gone (a retry racing the cache) frees its worker after this. */
const DELETE_WAIT_MS = 30_000;

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
    work()
      .then(
        () => this.backoff.delete(key),
        (err: Error) => {
          const failures = (b?.failures ?? 0) + 1;
          this.backoff.set(key, { failures, notBefore: Date.now() + Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (failures - 1)) });
          // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition, @typescript-eslint/no-unnecessary-type-conversion -- a rejection may carry a non-Error despite the annotation
          const what = `${key.split('/')[0]}: ${String(err.message ?? err)
            .split(/[:\n]/)[0]
            .slice(0, 60)}`;
          this.retries.set(what, (this.retries.get(what) ?? 0) + 1);
        },
      )
      .finally(() => this.inFlight.delete(key));
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
    await deleteReleasedVolume({ client, controller, pvName: pv.metadata.name!, timeoutMs: DELETE_WAIT_MS });
    this.deleted.add(pv.metadata.uid!);
  }
}

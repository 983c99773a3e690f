/**
 * Calls that wait for the node daemon: CreateVolume until its PoolVolume is Ready, DeleteVolume until
 * it is gone. Waits are woken by the PoolVolume informer's events (`notify`), never by polling, and
 * end within the call's gRPC deadline with DEADLINE_EXCEEDED, which the sidecars retry.
 */
import * as grpc from '@grpc/grpc-js';
import type { PoolVolume } from '../crds/poolvolume.js';
import { CsiError, msUntilDeadline } from './grpc.js';

/** How long a call without a deadline waits for the node daemon. */
const DEFAULT_WAIT_MS = 120_000;

/** Whether the wait is over, for the volume as cached now (undefined, with `deleted`, once it is gone). */
export type VolumeCheck = (pv: PoolVolume | undefined, deleted: boolean) => boolean;
type Waiter = { id: string; check: VolumeCheck; resolve: () => void };

export class VolumeWaits {
  private readonly waiters = new Set<Waiter>();

  /** `current` reads the cache: a wait whose check already holds returns at once. */
  constructor(private readonly current: (id: string) => PoolVolume | undefined) {}

  /** Called for every informer event on a PoolVolume. */
  notify(pv: PoolVolume, gone: boolean): void {
    for (const w of [...this.waiters]) {
      if (w.id === pv.metadata.name && w.check(gone ? undefined : pv, gone)) {
        this.waiters.delete(w);
        w.resolve();
      }
    }
  }

  /** Resolves once `check` holds for the volume (or undefined: it is gone), within the call's deadline. */
  async until(id: string, check: VolumeCheck, call: grpc.ServerUnaryCall<any, any>, what: string): Promise<void> {
    if (check(this.current(id), false)) return;
    const left = msUntilDeadline(call);
    const budget = left === Infinity ? DEFAULT_WAIT_MS : Math.max(0, left - 250);
    await new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        id,
        check,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new CsiError(grpc.status.DEADLINE_EXCEEDED, `volume ${id} is not ${what} yet; the node daemon may be slow or down — retry`));
      }, budget);
      this.waiters.add(waiter);
      // Re-check after registering: the event may have arrived in between.
      if (check(this.current(id), false)) {
        this.waiters.delete(waiter);
        waiter.resolve();
      }
    });
  }
}

/**
 * The agent's half of the recycle protocol (DESIGN §2): the operator writes `spec.wipe` with the
 * released volume's UID; the agent wipes once and reports `status.lastWipe` with that same UID; the
 * operator reuses the disk only after a Succeeded result for it.
 *
 * Each wipe is remembered newest-first in the wiped-volumes annotation BEFORE its status report, so
 * an agent restarted between the two reports the wipe instead of wiping again, and a request for a
 * volume wiped earlier (a newer volume may live on the disk now) is refused as stale.
 */
import type { DiskClaim, DiskWipe } from '../../crds/nodedisk.js';
import { errorMessage } from '../../util/errors.js';
import type { AgentMetrics } from './agent-metrics.js';
import type { DiskMemory, LastWipe } from './disk-memory.js';
import type { Observation } from './observation.js';
import { removeContents, wipeDisk, type DiskTarget, type Emit, type Preparation } from './preparation.js';
import { MAX_REMEMBERED_WIPES, stamp } from './status.js';
import { faultPoint } from '../../util/fault-point.js';

/** A failed wipe is retried no sooner than this (doubling up to the cap). */
const WIPE_RETRY_BASE_MS = 5_000;
const WIPE_RETRY_MAX_MS = 5 * 60_000;
/** status.lastWipe.message is bounded by the schema. */
const MAX_MESSAGE = 1000;

/** How long to wait before attempt `attempts + 1` after `attempts` failed ones. */
export function wipeRetryDelayMs(attempts: number): number {
  return Math.min(WIPE_RETRY_MAX_MS, WIPE_RETRY_BASE_MS * 2 ** (attempts - 1));
}

function wipeResult(wipe: DiskWipe, result: LastWipe['result'], message: string): LastWipe {
  return { volumeUID: wipe.volumeUID, method: wipe.method, result, time: stamp(new Date()), message };
}

export class Wiper {
  constructor(
    private readonly memory: DiskMemory,
    private readonly metrics: AgentMetrics | undefined,
  ) {}

  /**
   * Wipes a prepared Local disk for `wipe` unless that was done or is stale; a failure is retried
   * with backoff. Returns true when the disk changed or a result is newly reported.
   */
  async wipeClaimedDisk(o: Observation, target: DiskTarget, claim: DiskClaim, wipe: DiskWipe, emit: Emit): Promise<boolean> {
    const m = this.memory;
    const last = m.lastWipes.get(o.name);
    if (last?.volumeUID === wipe.volumeUID && last.result === 'Succeeded') return false;
    const history = m.wiped.get(o.name) ?? [];
    if (history[0] === wipe.volumeUID) {
      // Our newest wipe, done before a restart cut off its report (the history is written first).
      m.lastWipes.set(o.name, wipeResult(wipe, 'Succeeded', `wiped with ${wipe.method} (reported after an agent restart)`));
      return true;
    }
    if (history.includes(wipe.volumeUID)) {
      const key = `${o.name}/${wipe.volumeUID}`;
      if (!m.staleReported.has(key)) {
        m.staleReported.add(key);
        emit(
          'Warning',
          'StaleWipeIgnored',
          `ignoring a wipe request for volume ${wipe.volumeUID}: that volume was already wiped, a newer volume may be on the disk now`,
        );
      }
      return false;
    }
    const retry = m.wipeRetries.get(o.name);
    if (retry?.uid === wipe.volumeUID && Date.now() < retry.notBefore) return false;
    const prep = m.preparations.get(o.name);
    const mode = claim.volumeMode ?? 'Filesystem';
    emit('Normal', 'Wiping', `wiping ${o.currentPath} (${wipe.method}) for released volume ${wipe.volumeUID}`);
    try {
      if (!prep) throw new Error('the disk was never prepared, so there is no volume of it to wipe');
      const run = (): Promise<Preparation | undefined> =>
        wipeDisk(target, { method: wipe.method, volumeMode: mode, fsType: claim.fsType, volumeUID: wipe.volumeUID, emit });
      const next = await (this.metrics ? this.metrics.timeWipe(wipe.method, run) : run());
      if (next) m.preparations.set(o.name, next);
      m.lastWipes.set(o.name, wipeResult(wipe, 'Succeeded', `wiped with ${wipe.method}`));
      m.wiped.set(o.name, [wipe.volumeUID, ...history].slice(0, MAX_REMEMBERED_WIPES));
      m.wipeRetries.delete(o.name);
      await faultPoint('local/wiped'); // wiped and remembered, not reported yet
      emit('Normal', 'Wiped', `wiped ${o.currentPath} (${wipe.method}) for released volume ${wipe.volumeUID}`);
    } catch (err) {
      const attempts = retry?.uid === wipe.volumeUID ? retry.attempts + 1 : 1;
      m.wipeRetries.set(o.name, { uid: wipe.volumeUID, attempts, notBefore: Date.now() + wipeRetryDelayMs(attempts) });
      const message = `wipe attempt ${attempts} failed (retrying): ${errorMessage(err)}`;
      m.lastWipes.set(o.name, wipeResult(wipe, 'Failed', message.slice(0, MAX_MESSAGE)));
      emit('Warning', 'WipeFailed', `wiping ${o.currentPath} for volume ${wipe.volumeUID}: ${message}`);
    }
    return true;
  }

  /**
   * A discovered mount is never reformatted: a wipe removes the volume's contents only. A failure
   * is reported and retried on the next pass.
   */
  async wipeMountContents(o: Observation, wipe: DiskWipe, emit: Emit): Promise<void> {
    const m = this.memory;
    const last = m.lastWipes.get(o.name);
    const history = m.wiped.get(o.name) ?? [];
    if (history[0] === wipe.volumeUID && last?.volumeUID !== wipe.volumeUID) {
      m.lastWipes.set(o.name, wipeResult(wipe, 'Succeeded', "removed the volume's contents (reported after an agent restart)"));
    } else if (!(last?.volumeUID === wipe.volumeUID && last.result === 'Succeeded') && !history.includes(wipe.volumeUID)) {
      try {
        emit('Normal', 'Wiping', `removing the contents of ${o.devicePath} for released volume ${wipe.volumeUID}`);
        const run = (): Promise<void> => removeContents(o.devicePath);
        await (this.metrics ? this.metrics.timeWipe(wipe.method, run) : run());
        m.lastWipes.set(o.name, wipeResult(wipe, 'Succeeded', "removed the volume's contents (a discovered mount is never reformatted)"));
        m.wiped.set(o.name, [wipe.volumeUID, ...history].slice(0, MAX_REMEMBERED_WIPES));
        emit('Normal', 'Wiped', `removed the contents of ${o.devicePath} for volume ${wipe.volumeUID}`);
      } catch (err) {
        m.lastWipes.set(o.name, wipeResult(wipe, 'Failed', errorMessage(err).slice(0, MAX_MESSAGE)));
      }
    }
  }
}

/**
 * Acting on a disk's Local claim (the claim protocol, DESIGN §2): prepare a claimed disk (mkfs +
 * mount, or verify the raw device), wipe it when the operator asks, and release it — remove
 * Stowage's filesystem — once its claim is cleared. A discovered mount is used as it is and never
 * formatted or unmounted. Dynamic claims belong to the pool engine (see dynamic-pool-sync.ts).
 *
 * The outcome of every step lands in the agent's memory (`prepared`, `preparations`); the status
 * is composed from there. Whether a claim may be acted on at all is decided by the pure
 * `localBlocker`; the destructive steps themselves are in preparation.ts.
 */
import type { DiskClaim, NodeDisk } from '../../crds/nodedisk.js';
import { ruleProblems, schemaForKind } from '../../crds/rules.js';
import { errorMessage } from '../../util/errors.js';
import type { AgentMetrics } from './agent-metrics.js';
import type { DiskMemory } from './disk-memory.js';
import type { HandoutRecord, HandoutRecords } from './handout-records.js';
import { HELD_REASON, heldMessage, heldRecord } from './returning-disks.js';
import type { Observation } from './observation.js';
import {
  PreparationRefused,
  eraseDisk,
  mountTarget,
  prepareBlock,
  removeContents,
  prepareFilesystem,
  releaseDisk,
  stowageLabel,
  type DiskTarget,
  type Emit,
  type Preparation,
} from './preparation.js';
import { stamp, type PreparedState } from './status.js';
import type { Wiper } from './wiping.js';

/** Prepared condition messages are bounded like every condition message. */
const MAX_MESSAGE = 1000;
const NOT_CLAIMED: PreparedState = { status: 'False', reason: 'NotClaimed', message: 'no pool claims this disk' };

/** Why a Local claim must not be prepared on this disk, or undefined when it may. */
export function localBlocker(
  o: Pick<Observation, 'eligibility'>,
  claim: DiskClaim,
  ours: boolean,
  prepared: boolean,
): PreparedState | undefined {
  const e = o.eligibility;
  if (e.reason === 'SystemDisk' || e.reason === 'ExcludedByFilter' || e.reason === 'ReadOnly')
    return { status: 'False', reason: e.reason, message: `not preparing: ${e.message}` };
  if (ours || prepared || e.eligible) return undefined;
  if ((e.reason === 'HasFilesystem' || e.reason === 'HasPartitions') && claim.allowAdoption) return undefined;
  return { status: 'False', reason: e.reason, message: `not preparing, nothing was changed: ${e.message}` };
}

/**
 * Why a claim breaks the NodeDisk's cross-field rules (e.g. a Block claim that names an fsType), or
 * undefined when it keeps them. The CRD states these rules in CEL, which API servers before 1.25
 * drop without a word, so a hand-edited claim may reach the agent unchecked: it refuses to act on
 * one rather than guess which of the conflicting fields was meant.
 */
export function invalidClaim(disk: Pick<NodeDisk, 'spec'>): PreparedState | undefined {
  const schema = schemaForKind('NodeDisk')!;
  const problems = ruleProblems(schema, { spec: disk.spec }).filter((p) => p.path.startsWith('spec.claim'));
  if (problems.length === 0) return undefined;
  const what = problems.map((p) => `${p.path}: ${p.message}`).join('; ');
  return {
    status: 'False',
    reason: 'InvalidClaim',
    message: `not preparing, nothing was changed: ${what}; correct or remove the claim`.slice(0, MAX_MESSAGE),
  };
}

/** The Prepared state after a failed step: a refusal keeps its reason, anything else is retried. */
export function refusal(err: unknown, fallbackReason: string): PreparedState {
  if (err instanceof PreparationRefused) return { status: 'False', reason: err.reason, message: err.message };
  return { status: 'False', reason: fallbackReason, message: `${errorMessage(err)} (retrying on the next pass)`.slice(0, MAX_MESSAGE) };
}

export class LocalClaims {
  constructor(
    private readonly memory: DiskMemory,
    private readonly wiper: Wiper,
    /** Where prepared disks are mounted: `<root>/<nodedisk>`. */
    private readonly root: string,
    private readonly metrics: AgentMetrics | undefined,
    /** The host's record of the disks handed to pools (survives the NodeDisk's deletion). */
    private readonly records: HandoutRecords,
  ) {}

  /** Acts on the disk's claim and wipe request. Returns true when something on the host changed. */
  async act(o: Observation, live: NodeDisk | undefined, emit: Emit): Promise<boolean> {
    const m = this.memory;
    const claim = live?.spec.claim;
    if (o.kind === 'Mount') return this.actOnMount(o, claim, live, emit);
    const f = o.facts!;
    // A device that answers every I/O with an error is neither prepared, wiped nor released: each
    // would fail, and a blank-looking dead device must never be mistaken for a disk to format.
    const dead = m.io.get(o.name);
    if (dead?.reason === 'NoMedium') {
      m.prepared.set(o.name, {
        status: 'False',
        reason: 'NoMedium',
        message: `nothing is done on the disk until it works again: ${dead.message}`,
      });
      return false;
    }
    const target: DiskTarget = { name: o.name, devicePath: o.currentPath, root: this.root };
    // A disk that held a tenant's data and lost its NodeDisk: held until an administrator asks for its erase.
    const record = await this.records.get(o.identity);
    const held = heldRecord({ name: o.name, identity: o.identity, label: f.signatures.label }, live, record, stamp(new Date()));
    if (held) return this.hold(o, held, record, live, emit, (why) => eraseDisk(target, why, emit));
    m.held.delete(o.name);
    const ours = f.signatures.label === stowageLabel(o.name) || f.mountPoints.includes(mountTarget(target));

    if (!claim || claim.mode !== 'Local') {
      if (claim?.mode === 'Dynamic') return false; // the engine's
      if (!m.preparations.has(o.name) && !ours) {
        // Nothing of ours on it (a Block disk, or never prepared): the claim protocol released it.
        if (record) await this.records.remove(o.identity);
        m.prepared.set(o.name, NOT_CLAIMED);
        return false;
      }
      return this.release(o, target, record !== undefined, emit);
    }

    // Local claim. Never touch what we may not, nor act on a claim that contradicts itself.
    const blocker = invalidClaim(live) ?? localBlocker(o, claim, ours, m.preparations.has(o.name));
    if (blocker) {
      m.prepared.set(o.name, blocker);
      return false;
    }
    let changed = false;
    const wipe = live.spec.wipe;
    if (wipe) changed = (await this.wiper.wipeClaimedDisk(o, target, claim, wipe, emit)) || changed;
    return (await this.prepare(o, target, claim, live, emit)) || changed;
  }

  /**
   * Holds a disk that came back without its NodeDisk (returning-disks.ts): nothing on it is changed,
   * it is never prepared; `spec.erasePreviousData` on its new NodeDisk zeroes it, and then it is blank.
   */
  private async hold(
    o: Observation,
    held: HandoutRecord,
    record: HandoutRecord | undefined,
    live: NodeDisk | undefined,
    emit: Emit,
    erase: (why: string) => Promise<void>,
  ): Promise<boolean> {
    const m = this.memory;
    const message = heldMessage(held, o.devicePath, o.kind).slice(0, MAX_MESSAGE);
    if (held !== record) {
      await this.records.put(held);
      emit('Warning', HELD_REASON, message);
    }
    if (live?.spec.erasePreviousData !== true) {
      m.held.set(o.name, message);
      m.prepared.set(o.name, { status: 'False', reason: HELD_REASON, message });
      return false;
    }
    try {
      const why = held.pool
        ? `an administrator asked for it (spec.erasePreviousData); it held data of pool ${held.pool} handed out on ${held.since}`
        : 'an administrator asked for it (spec.erasePreviousData); it carried a filesystem Stowage made';
      await erase(why);
      await this.records.remove(o.identity);
      m.preparations.delete(o.name);
      m.held.delete(o.name);
      m.prepared.set(o.name, {
        status: 'False',
        reason: 'NotClaimed',
        message: `erased on request (${o.kind === 'Mount' ? 'its contents removed' : 'every byte zeroed'}); no pool claims this ${o.kind === 'Mount' ? 'mount' : 'disk'} yet`,
      });
    } catch (err) {
      const state = refusal(err, 'EraseFailed');
      const prev = m.prepared.get(o.name);
      if (prev?.reason !== state.reason || prev.message !== state.message) emit('Warning', state.reason, state.message);
      m.held.set(o.name, message);
      m.prepared.set(o.name, state);
    }
    return true;
  }

  /** The claim was cleared on a disk that carries Stowage's filesystem: remove it. */
  private async release(o: Observation, target: DiskTarget, recorded: boolean, emit: Emit): Promise<boolean> {
    const m = this.memory;
    try {
      await releaseDisk(target, emit);
      if (recorded) await this.records.remove(o.identity);
      m.preparations.delete(o.name);
      m.prepared.set(o.name, {
        status: 'False',
        reason: 'NotClaimed',
        message: "released: the claim was cleared, Stowage's filesystem was removed",
      });
      emit('Normal', 'Released', `${o.currentPath} was released from its pool and is blank again`);
    } catch (err) {
      m.prepared.set(o.name, refusal(err, 'ReleaseFailed'));
    }
    return true;
  }

  /** Makes (or re-checks) the disk's filesystem or raw device for its pool. Returns true when it changed. */
  private async prepare(o: Observation, target: DiskTarget, claim: DiskClaim, live: NodeDisk, emit: Emit): Promise<boolean> {
    const m = this.memory;
    const before = m.preparations.get(o.name);
    let changed = false;
    try {
      const kind = claim.volumeMode === 'Block' ? 'Block' : 'Filesystem';
      await this.recordHandout(o, live, claim, kind);
      // Only a disk not prepared yet is an attempt worth counting; re-checking a prepared one is not.
      const timed = <T>(step: () => Promise<T>): Promise<T> =>
        before || !this.metrics ? step() : this.metrics.timePreparation(kind, step);
      let prep: Preparation;
      if (claim.volumeMode === 'Block') {
        prep = await timed(() =>
          prepareBlock(target, {
            stablePath: o.devicePath,
            allowAdoption: claim.allowAdoption === true,
            alreadyPrepared: before !== undefined,
            emit,
          }),
        );
      } else {
        const lastWipe = m.lastWipes.get(o.name);
        prep = await timed(() =>
          prepareFilesystem(target, {
            fsType: claim.fsType ?? 'ext4',
            allowAdoption: claim.allowAdoption === true,
            recordedUuid: before?.uuid,
            epoch: lastWipe?.result === 'Succeeded' ? lastWipe.volumeUID : '',
            emit,
          }),
        );
      }
      if (!before || before.uuid !== prep.uuid || before.path !== prep.path) {
        changed = true;
        emit(
          'Normal',
          'Prepared',
          `prepared for pool ${claim.pool}: ${prep.filesystem ? `${prep.filesystem} mounted at ${prep.path}` : `raw device ${prep.path}`}`,
        );
      }
      m.preparations.set(o.name, prep);
      m.prepared.set(o.name, {
        status: 'True',
        reason: 'Prepared',
        message: prep.filesystem
          ? `${prep.filesystem} filesystem ${prep.uuid} mounted at ${prep.path} for pool ${claim.pool}`
          : `raw device ${prep.path} verified for pool ${claim.pool}`,
      });
    } catch (err) {
      const state = refusal(err, 'PreparationFailed');
      const prev = m.prepared.get(o.name);
      if (prev?.reason !== state.reason || prev.message !== state.message) emit('Warning', state.reason, state.message);
      m.prepared.set(o.name, state);
    }
    return changed;
  }

  /** Records on the host, before anything is prepared (so before any PV is offered), that this disk is handed to the claim's pool. */
  private async recordHandout(o: Observation, live: NodeDisk, claim: DiskClaim, volumeMode: 'Filesystem' | 'Block'): Promise<void> {
    const uid = live.metadata.uid ?? '';
    const now = await this.records.get(o.identity);
    if (now && now.nodeDiskUID === uid && now.pool === claim.pool && now.volumeMode === volumeMode) return;
    await this.records.put({
      identity: o.identity,
      nodeDisk: o.name,
      nodeDiskUID: uid,
      pool: claim.pool,
      volumeMode,
      since: stamp(new Date()),
    });
  }

  /** Discovery-directory mounts: used as they are; a wipe removes the volume's contents only. */
  private async actOnMount(o: Observation, claim: DiskClaim | undefined, live: NodeDisk | undefined, emit: Emit): Promise<boolean> {
    const m = this.memory;
    // A mount whose NodeDisk was deleted still holds its tenant's files: held like a disk (returning-disks.ts).
    const record = await this.records.get(o.identity);
    const held = heldRecord({ name: o.name, identity: o.identity }, live, record, stamp(new Date()));
    if (held) {
      return this.hold(o, held, record, live, emit, async (why) => {
        emit('Warning', 'Erasing', `removing everything in ${o.devicePath}: ${why}`);
        await removeContents(o.devicePath);
        emit('Normal', 'Erased', `${o.devicePath} is empty`);
      });
    }
    m.held.delete(o.name);
    if (!claim) {
      if (record) await this.records.remove(o.identity); // released through the claim protocol
      m.preparations.delete(o.name);
      m.prepared.set(o.name, { status: 'False', reason: 'NotClaimed', message: 'no pool claims this mount' });
      return false;
    }
    if (claim.mode !== 'Local' || claim.volumeMode === 'Block') {
      m.prepared.set(o.name, {
        status: 'False',
        reason: 'NotABlockDevice',
        message: `${o.devicePath} is a mounted filesystem; only Local Filesystem pools can use it`,
      });
      return false;
    }
    try {
      await this.recordHandout(o, live!, claim, 'Filesystem');
    } catch (err) {
      m.prepared.set(o.name, refusal(err, 'PreparationFailed'));
      return false;
    }
    const wipe = live?.spec.wipe;
    if (wipe) await this.wiper.wipeMountContents(o, wipe, emit);
    m.preparations.set(o.name, { path: o.devicePath, filesystem: o.mount!.fsType });
    m.prepared.set(o.name, { status: 'True', reason: 'Prepared', message: `${o.devicePath} is used as is for pool ${claim.pool}` });
    return false;
  }
}

/**
 * The agent's side of the Dynamic-pool seam (dynamic-pools.ts): which of this node's disks to hand
 * the pool engine (pure: `dynamicHandoff`), and one `sync` call with all of them (the shell). The
 * engine formats and mounts; the agent only folds each outcome into the disk's status.
 */
import type { NodeDisk } from '../../crds/nodedisk.js';
import { errorMessage } from '../../util/errors.js';
import type { ClaimedDisk, DynamicPoolSync, PreparationOutcome } from './dynamic-pools.js';
import { filesystemOf, type Observation } from './observation.js';

/** Engine errors become condition messages, which are bounded. */
const MAX_MESSAGE = 1000;
/** Eligibility reasons that keep a disk from the engine even though a Dynamic pool claims it. */
const NEVER_HANDED_OVER = ['SystemDisk', 'ExcludedByFilter', 'ReadOnly'];

export const ENGINE_PENDING: PreparationOutcome = {
  prepared: false,
  reason: 'EnginePending',
  message: 'the pool engine has not reported on this disk yet',
};

export interface DynamicHandoff {
  /** Disks for the engine, present or not (the engine decides what a missing member means). */
  readonly claimed: ClaimedDisk[];
  /** Outcomes the agent decided itself: disks it will not hand over, and why. */
  readonly refused: Map<string, PreparationOutcome>;
}

/** This node's Dynamic-claimed disks, split into those for the engine and those refused here. */
export function dynamicHandoff(live: readonly NodeDisk[], observations: readonly Observation[]): DynamicHandoff {
  const refused = new Map<string, PreparationOutcome>();
  const claimed: ClaimedDisk[] = [];
  const present = new Map(observations.map((o) => [o.name, o]));
  for (const nd of live) {
    const claim = nd.spec.claim;
    if (claim?.mode !== 'Dynamic') continue;
    const o = present.get(nd.metadata.name);
    if (o?.kind === 'Mount') {
      refused.set(o.name, { prepared: false, reason: 'NotABlockDevice', message: 'a discovered mount cannot join a Dynamic pool' });
      continue;
    }
    if (o && !o.eligibility.eligible && NEVER_HANDED_OVER.includes(o.eligibility.reason)) {
      refused.set(o.name, {
        prepared: false,
        reason: o.eligibility.reason,
        message: `not handing the disk to the pool engine: ${o.eligibility.message}`,
      });
      continue;
    }
    // A device that reports a size of 0 has lost its medium (pulled, dead, its backing gone): for
    // the engine it is a missing member, never a blank disk to format, add or rebuild onto.
    const noMedium = o?.facts?.raw.sizeBytes === 0n;
    const filesystem = o?.facts && !noMedium ? filesystemOf(o.facts) : undefined;
    claimed.push({
      name: nd.metadata.name,
      claim,
      devicePath: o?.currentPath ?? nd.spec.devicePath,
      stablePath: o?.devicePath ?? nd.spec.devicePath,
      sizeBytes: Number(o?.facts?.raw.sizeBytes ?? 0n),
      blank: o?.blank ?? false,
      ...(filesystem ? { filesystem } : {}),
      present: o !== undefined && !noMedium,
      ...(noMedium ? { failed: true } : {}),
    });
  }
  return { claimed, refused };
}

/**
 * Hands the engine every Dynamic-claimed disk (also none: it notices disks that left) and returns
 * one outcome per claimed disk. Without an engine, or when it throws, every disk says so.
 */
export async function syncDynamicPools(
  engine: DynamicPoolSync | undefined,
  nodeName: string,
  live: readonly NodeDisk[],
  observations: readonly Observation[],
): Promise<Map<string, PreparationOutcome>> {
  const { claimed, refused: result } = dynamicHandoff(live, observations);
  if (!engine) {
    for (const d of claimed)
      result.set(d.name, { prepared: false, reason: 'EngineUnavailable', message: 'this agent runs without the Dynamic-pool engine' });
    return result;
  }
  try {
    const outcomes = await engine.sync(nodeName, claimed);
    for (const d of claimed) result.set(d.name, outcomes.get(d.name) ?? ENGINE_PENDING);
  } catch (err) {
    for (const d of claimed)
      result.set(d.name, { prepared: false, reason: 'EngineError', message: errorMessage(err).slice(0, MAX_MESSAGE) });
  }
  return result;
}

import type { Problem } from '../../crds/meta.js';
import type { StoragePool, StoragePoolStatus } from '../../crds/storagepool.js';
import { setCondition } from '../runtime/conditions.js';

/** How many spec problems the Ready message lists before it says "and N more". */
const MAX_PROBLEMS_IN_MESSAGE = 5;

/**
 * The status a pool should have given its spec problems. Pure: same pool, problems and time give the
 * same status, and an unchanged outcome keeps lastTransitionTime — so an unchanged pool is not rewritten.
 */
export function poolStatus(pool: StoragePool, problems: readonly Problem[], now: string): StoragePoolStatus {
  const generation = pool.metadata.generation;
  const previous = pool.status ?? {};
  const ready =
    problems.length > 0
      ? {
          type: 'Ready',
          status: 'False' as const,
          reason: 'InvalidSpec',
          message: `the spec is invalid; fix it and apply again: ${describeProblems(problems)}`,
        }
      : {
          type: 'Ready',
          status: 'Unknown' as const,
          reason: 'SpecValid',
          message: `the spec is valid; this operator version does not provision ${pool.spec.mode} pools yet`,
        };
  return {
    ...previous,
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
    conditions: setCondition(previous.conditions, { ...ready, ...(generation !== undefined ? { observedGeneration: generation } : {}) }, now),
  };
}

export function describeProblems(problems: readonly Problem[]): string {
  const shown = problems.slice(0, MAX_PROBLEMS_IN_MESSAGE).map((p) => `${p.path}: ${p.message}`);
  const more = problems.length - shown.length;
  return shown.join('; ') + (more > 0 ? `; and ${more} more` : '');
}

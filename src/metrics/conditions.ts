import type { Condition } from '../kube/types.js';

/** The three values a condition's status can take; every one is exported so `== 0` works too. */
export const CONDITION_STATUSES = ['True', 'False', 'Unknown'] as const;

/**
 * One sample per (condition type, status) in kube-state-metrics' style: 1 for the status the
 * object reports now, 0 for the others. Conditions the object does not report yield nothing.
 */
export function conditionSamples(
  conditions: readonly Condition[] | undefined,
  types: readonly string[],
): { condition: string; status: string; value: number }[] {
  const samples: { condition: string; status: string; value: number }[] = [];
  for (const type of types) {
    const current = conditions?.find((c) => c.type === type);
    if (!current) continue;
    for (const status of CONDITION_STATUSES) samples.push({ condition: type, status, value: current.status === status ? 1 : 0 });
  }
  return samples;
}

export function conditionIs(conditions: readonly Condition[] | undefined, type: string, status: string): boolean {
  return conditions?.some((c) => c.type === type && c.status === status) ?? false;
}

export function conditionOf(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

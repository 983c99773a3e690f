/**
 * metav1.Condition handling. Pure: callers pass "now", so the same input gives the same output and
 * an unchanged condition keeps its lastTransitionTime — which is what makes a no-op status write
 * detectable and skippable.
 */

import type { Condition } from '../kube/types.js';

export type { Condition, ConditionStatus } from '../kube/types.js';

export type ConditionInput = Omit<Condition, 'lastTransitionTime'>;

/**
 * Returns `conditions` with `next` set: lastTransitionTime moves only when the status flips;
 * reason, message and observedGeneration are always updated. Order is kept; new types are appended.
 */
export function setCondition(conditions: readonly Condition[] | undefined, next: ConditionInput, now: string): Condition[] {
  const list = [...(conditions ?? [])];
  const index = list.findIndex((c) => c.type === next.type);
  const existing = index >= 0 ? list[index] : undefined;
  const lastTransitionTime = existing && existing.status === next.status ? existing.lastTransitionTime : now;
  const updated: Condition = {
    type: next.type,
    status: next.status,
    ...(next.observedGeneration !== undefined ? { observedGeneration: next.observedGeneration } : {}),
    lastTransitionTime,
    reason: next.reason,
    message: next.message,
  };
  if (index >= 0) list[index] = updated;
  else list.push(updated);
  return list;
}

/** Sets several conditions at once (see {@link setCondition}). */
export function setConditions(conditions: readonly Condition[] | undefined, next: readonly ConditionInput[], now: string): Condition[] {
  return next.reduce<Condition[]>((acc, c) => setCondition(acc, c, now), [...(conditions ?? [])]);
}

export function findCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

export function isConditionTrue(conditions: readonly Condition[] | undefined, type: string): boolean {
  return findCondition(conditions, type)?.status === 'True';
}

/** RFC 3339 with seconds precision, as metav1.Time serialises. */
export function nowTimestamp(date = new Date()): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

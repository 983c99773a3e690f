/**
 * Crash points for the fault suite (issue 18, test/faults/crash-steps.test.ts). Off unless the
 * environment variable STOWAGE_FAULT_POINT names a step: then the process, on reaching that step,
 * prints one line to stderr and halts that piece of work for good, so the suite can kill -9 it at
 * exactly that step (found by the line, never by a sleep) and check what a restart makes of it.
 * Nothing in a real deployment sets the variable; unset, a point costs one string compare.
 */

/** The variable that arms one step, e.g. STOWAGE_FAULT_POINT=local/prepare. */
export const FAULT_POINT_ENV = 'STOWAGE_FAULT_POINT';
/** The line printed when the armed step is reached (the suite waits for it). */
export const FAULT_POINT_LINE = 'stowage fault point reached:';

const never = new Promise<never>(() => undefined);

/** Returns at once, unless `step` is armed: then it never returns (until the process is killed). */
export function faultPoint(step: string): Promise<void> {
  if (process.env[FAULT_POINT_ENV] !== step) return Promise.resolve();
  process.stderr.write(`${FAULT_POINT_LINE} ${step}\n`);
  return never;
}

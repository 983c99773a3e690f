// One control plane per test run, started lazily by the first test that needs it and stopped by
// the root hook in test/support/global-hooks.ts. Tests that never call sharedControlPlane() start
// nothing.
//
// Environment:
//   STOWAGE_TEST_STATE_DIR   keep the shared control plane's state here (default: a temp dir, removed)
//   STOWAGE_TEST_CP_VERBOSE  =1 prints the control plane's startup progress on stderr

import { ControlPlane } from './control-plane.js';

let shared: Promise<ControlPlane> | undefined;

export function sharedControlPlane(): Promise<ControlPlane> {
  if (!shared) {
    const verbose = process.env.STOWAGE_TEST_CP_VERBOSE === '1';
    const starting = ControlPlane.start({
      stateDir: process.env.STOWAGE_TEST_STATE_DIR || undefined,
      log: verbose ? (line) => process.stderr.write(`[control-plane] ${line}\n`) : undefined,
    });
    // A failed start is not memoized: the next caller retries (and sees its own error).
    starting.catch(() => {
      if (shared === starting) shared = undefined;
    });
    shared = starting;
  }
  return shared;
}

/** True once sharedControlPlane() has been called (and not stopped since). */
export function sharedControlPlaneStarted(): boolean {
  return shared !== undefined;
}

export async function stopSharedControlPlane(): Promise<void> {
  const p = shared;
  shared = undefined;
  if (!p) return;
  let cp: ControlPlane;
  try {
    cp = await p;
  } catch {
    return; // start failed; it cleaned up after itself
  }
  await cp.stop();
}

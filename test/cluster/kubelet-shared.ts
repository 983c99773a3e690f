// One real kubelet node per test run (like sharedControlPlane()): started by the first test that
// asks for it, on the shared control plane, and stopped by the root hook in
// test/support/global-hooks.ts before the control plane stops. Tests that never call it start nothing.
//
//   STOWAGE_TEST_CP_VERBOSE=1   also prints the kubelet node's start-up progress on stderr

import { sharedControlPlane } from './shared.js';
import { KubeletNode } from './kubelet-node.js';

let shared: Promise<KubeletNode> | undefined;
let requested = false;

export function sharedKubeletNode(): Promise<KubeletNode> {
  if (!shared) {
    const verbose = process.env.STOWAGE_TEST_CP_VERBOSE === '1';
    const starting = sharedControlPlane().then((cp) =>
      KubeletNode.start(cp, { log: verbose ? (line) => process.stderr.write(`[kubelet-node] ${line}\n`) : undefined }),
    );
    // A failed start is not memoized: the next caller retries (and sees its own error).
    starting.catch(() => {
      if (shared === starting) shared = undefined;
    });
    shared = starting;
  }
  return shared;
}

/** True once sharedKubeletNode() has been called in this run (even if it was stopped since). */
export function sharedKubeletNodeRequested(): boolean {
  return requested || shared !== undefined;
}

export async function stopSharedKubeletNode(): Promise<void> {
  const p = shared;
  shared = undefined;
  if (!p) return;
  requested = true;
  let node: KubeletNode;
  try {
    node = await p;
  } catch {
    return; // start failed; it cleaned up after itself
  }
  await node.stop();
}

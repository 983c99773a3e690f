// Mocha root hook plugin (loaded through .mocharc.json "require"). Stops the shared kubelet node and
// then the shared control plane after all tests, if some test started them; starts nothing itself.
// Host hygiene (test/cluster/kubelet-hygiene.ts): a snapshot before the first test, and a failure
// listing every packet sent off the machine and every interface, sysctl, mount, loop device or
// component process left behind — in `make test` (STOWAGE_TEST_HYGIENE=1) and whenever the real
// kubelet node ran. The fault suite's ledger (test/faults/ledger.ts) is printed as a table at the
// end (docs/faults.md), and the run fails if any fault was not survived, leaked objects or lost bytes.

import { sharedControlPlane, sharedControlPlaneStarted, stopSharedControlPlane } from '../cluster/shared.js';
import { sharedKubeletNodeRequested, stopSharedKubeletNode } from '../cluster/kubelet-shared.js';
import { hostChanges, registerRunDir, takeHostSnapshot, type HostSnapshot } from '../cluster/kubelet-hygiene.js';
import { ledgerSummary } from '../faults/ledger.js';

let hostBefore: HostSnapshot | undefined;

export const mochaHooks = {
  beforeAll(): void {
    hostBefore = takeHostSnapshot();
  },
  async afterAll(this: Mocha.Context): Promise<void> {
    this.timeout(180_000);
    // The fault suite's table (test/faults/ledger.ts): printed whenever a fault test ran.
    const faults = ledgerSummary();
    if (faults) console.log(`\n  Fault suite:\n\n${faults.table}\n`);
    const kubeletRan = sharedKubeletNodeRequested();
    let kubeletStopError: unknown;
    await stopSharedKubeletNode().catch((e) => (kubeletStopError = e));
    if (sharedControlPlaneStarted()) {
      const cp = await sharedControlPlane().catch(() => undefined); // started already: this only awaits it
      if (cp) registerRunDir(cp.stateDir);
      await stopSharedControlPlane();
    }
    // eslint-disable-next-line @typescript-eslint/only-throw-error -- rethrows what stopping the kubelet threw, as it was
    if (kubeletStopError) throw kubeletStopError;
    if (faults && faults.problems.length > 0)
      throw new Error(`fault suite: faults not survived, objects leaked or bytes lost:\n  ${faults.problems.join('\n  ')}`);
    if (hostBefore && (process.env.STOWAGE_TEST_HYGIENE === '1' || kubeletRan)) {
      const changes = hostChanges(hostBefore, undefined, { machineWide: process.env.STOWAGE_TEST_HYGIENE === '1' });
      if (changes.length > 0) throw new Error(`host hygiene: the test run changed the machine:\n  ${changes.join('\n  ')}`);
    }
  },
};

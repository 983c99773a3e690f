// Mocha root hook plugin (loaded through .mocharc.json "require"). Stops the shared control plane
// after all tests, if some test started it; starts nothing itself.

import { sharedControlPlaneStarted, stopSharedControlPlane } from '../cluster/shared.js';

export const mochaHooks = {
  async afterAll(this: Mocha.Context): Promise<void> {
    if (!sharedControlPlaneStarted()) return;
    this.timeout(60_000);
    await stopSharedControlPlane();
  },
};

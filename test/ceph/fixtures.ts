import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CephObservation } from '../../src/node/ceph/pool-health.js';

/**
 * JSON captured from a real test cluster (Ceph 16.2.15, Debian bookworm: one mon, one mgr, three
 * BlueStore OSDs on 3 GiB loop devices, CRUSH hosts n1..n3, pool p1 size 3 min_size 2, host domain):
 *   healthy     200 objects of 1 MiB, HEALTH_OK
 *   host-down   osd.2 (host n3) killed -9, 100 more objects written, undersized+degraded
 *   recovering  osd.2 back, recovery under way
 *   recovered   HEALTH_OK again
 *   host-out    osd.2 killed again and marked out: no fourth host for the third copies
 */
export const FIXTURE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../test/ceph/fixtures');

export type FixtureState = 'healthy' | 'host-down' | 'recovering' | 'recovered' | 'host-out';

export function fixtureJson(state: FixtureState, file: string): unknown {
  return JSON.parse(readFileSync(path.join(FIXTURE_DIR, state, `${file}.json`), 'utf8'));
}

export function fixtureObservation(state: FixtureState): CephObservation {
  const j = (f: string) => fixtureJson(state, f);
  return {
    status: j('status'),
    healthDetail: j('health-detail'),
    osdTree: j('osd-tree'),
    osdDump: j('osd-dump'),
    df: j('df'),
    poolStats: j('osd-pool-stats'),
    poolPgs: j('pg-ls-by-pool'),
  };
}

import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { ELIGIBLE_REASONS, HEALTHY_REASONS, POOL_REASONS, PREPARED_REASONS } from '../../src/cli/kubectl/reasons.js';
import { explainPool } from '../../src/cli/kubectl/why.js';
import type { Pool, Snapshot } from '../../src/cli/kubectl/snapshot.js';
import { POOL_CONDITIONS } from '../../src/crds/storagepool.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** Every `.ts` file under a source directory, so a file split off later is still read. */
function sourcesUnder(dir: string): string[] {
  return readdirSync(path.join(REPO, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => path.join(dir, f));
}

/** Every `reason: 'X'` literal, `no('X', …)`, `new PreparationRefused('X', …)` and `refusal(err, 'X')` in the files. */
function reasonsIn(files: readonly string[]): string[] {
  const found = new Set<string>();
  for (const file of files) {
    const text = readFileSync(path.join(REPO, file), 'utf8');
    // Whitespace-tolerant: the formatter may break any of these over lines.
    for (const re of [
      /reason:\s*'([A-Za-z]+)'/g,
      /\bno\(\s*'([A-Za-z]+)'/g,
      /PreparationRefused\(\s*'([A-Za-z]+)'/g,
      /refusal\(\s*err,\s*'([A-Za-z]+)'\s*\)/g,
      /\?\s*'(HasPartitions)'\s*:\s*'(HasFilesystem)'/g,
    ]) {
      for (const m of text.matchAll(re)) for (const g of m.slice(1)) if (g) found.add(g);
    }
  }
  return [...found].sort();
}

/** The Present condition's own reasons: the tables say "not attached" from Present=False directly. */
const PRESENT_REASONS = ['Detected', 'NotDetected'];

/**
 * `why` and the tables explain reasons in words. These tests read the sources of the node agent,
 * the Dynamic-pool engine and the operator, so a reason added there without words here fails.
 */
describe('kubectl stowage: every reason the agent and the operator report has words', () => {
  it('pool conditions (src/operator/storagepool/, src/operator/ceph/)', () => {
    const reasons = reasonsIn([...sourcesUnder('src/operator/storagepool'), ...sourcesUnder('src/operator/ceph')]);
    expect(reasons).to.include.members([
      'InvalidSpec',
      'NoDisks',
      'TooFewDisks',
      'LowCapacity',
      'DeletionBlocked',
      'TooFewFailureDomains',
      'CephEngineNotDeployed',
      'ReplicationNotSatisfiable',
    ]);
    expect(reasons.filter((r) => !POOL_REASONS[r])).to.deep.equal([]);
  });

  it("disk eligibility (the agent's inventory) and health (SMART)", () => {
    const eligible = reasonsIn(sourcesUnder('src/node/agent').filter((f) => f.endsWith('inventory.ts')));
    expect(eligible).to.include.members(['SystemDisk', 'HasFilesystem', 'Blank', 'TooSmall']);
    expect(eligible.filter((r) => !ELIGIBLE_REASONS[r])).to.deep.equal([]);
    const health = reasonsIn(sourcesUnder('src/node/agent').filter((f) => f.endsWith('smart.ts')));
    expect(health).to.include.members(['SmartFailed', 'SmartUnavailable']);
    expect(health.filter((r) => !HEALTHY_REASONS[r])).to.deep.equal([]);
  });

  it('everything else the node agent and the Dynamic-pool engine report (src/node/)', () => {
    const reasons = reasonsIn(sourcesUnder('src/node'));
    expect(reasons).to.include.members([
      'NotClaimed',
      'PreparationFailed',
      'ReleaseFailed',
      'UUIDMismatch',
      'ReleaseRefused',
      'EngineUnavailable',
      'Claimed',
      'Cordoned',
    ]);
    const words = (r: string): boolean =>
      PRESENT_REASONS.includes(r) || !!(PREPARED_REASONS[r] ?? ELIGIBLE_REASONS[r] ?? HEALTHY_REASONS[r]);
    expect(reasons.filter((r) => !words(r))).to.deep.equal([]);
  });

  it("why POOL turns each pool reason into its sentence, with the operator's message", () => {
    const empty: Snapshot = {
      disks: [],
      pools: [],
      pvs: [],
      claims: [],
      pods: [],
      poolVolumes: [],
      nodes: [],
      storageClasses: [],
      warnings: [],
    };
    for (const [reason, text] of Object.entries(POOL_REASONS)) {
      const failing = !['Ready', 'AllHealthy', 'SingleCopy', 'EnoughDisks', 'EnoughFailureDomains', 'Sufficient'].includes(reason);
      const type =
        reason === 'AllHealthy' || reason === 'DisksMissing' || reason === 'DisksUnhealthy'
          ? 'DisksHealthy'
          : ['SingleCopy', 'EnoughDisks', 'TooFewDisks', 'EnoughFailureDomains', 'TooFewFailureDomains'].includes(reason)
            ? 'ReplicationSatisfiable'
            : ['NoCapacity', 'LowCapacity', 'Sufficient'].includes(reason)
              ? 'CapacityAvailable'
              : 'Ready';
      expect(POOL_CONDITIONS).to.include(type);
      const pool = {
        apiVersion: 'stowage.dev/v1alpha1',
        kind: 'StoragePool',
        metadata: { name: 'p', generation: 1 },
        spec: { mode: 'Local', disks: { selector: {} } },
        status: {
          observedGeneration: 1,
          conditions: [
            {
              type,
              status: failing ? 'False' : 'True',
              reason,
              message: `message of ${reason}`,
              lastTransitionTime: '2026-01-01T00:00:00Z',
            },
          ],
        },
      } as Pool;
      const lines = explainPool(pool, { ...empty, pools: [pool] }, []).reasons.join('\n');
      if (failing) {
        expect(lines, reason).to.include(text.sentence.charAt(0).toUpperCase() + text.sentence.slice(1));
        expect(lines, reason).to.include(`(${reason}: message of ${reason})`);
      }
    }
  });
});

import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ELIGIBLE_REASONS, HEALTHY_REASONS, POOL_REASONS, PREPARED_REASONS } from '../../src/cli/kubectl/reasons.js';
import { explainPool } from '../../src/cli/kubectl/why.js';
import type { Pool, Snapshot } from '../../src/cli/kubectl/snapshot.js';
import { POOL_CONDITIONS } from '../../src/crds/storagepool.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const source = (file: string): string => readFileSync(path.join(REPO, file), 'utf8');

/** Every `reason: 'X'` literal, `no('X', …)`, `new PreparationRefused('X', …)` and `refusal(err, 'X')` in a source file. */
function reasonsIn(file: string): string[] {
  const text = source(file);
  const found = new Set<string>();
  for (const re of [/reason: '([A-Za-z]+)'/g, /\bno\('([A-Za-z]+)'/g, /PreparationRefused\(\s*'([A-Za-z]+)'/g, /refusal\(err, '([A-Za-z]+)'\)/g, /\? '(HasPartitions)' : '(HasFilesystem)'/g]) {
    for (const m of text.matchAll(re)) for (const g of m.slice(1)) if (g) found.add(g);
  }
  return [...found].sort();
}

/**
 * `why` and the tables explain reasons in words. These tests read the sources of the node agent,
 * the Dynamic-pool engine and the operator, so a reason added there without words here fails.
 */
describe('kubectl stowage: every reason the agent and the operator report has words', () => {
  it('pool conditions (src/operator/storagepool/status.ts)', () => {
    const reasons = reasonsIn('src/operator/storagepool/status.ts');
    expect(reasons).to.include.members(['InvalidSpec', 'NoDisks', 'TooFewDisks', 'LowCapacity']);
    expect(reasons.filter((r) => !POOL_REASONS[r])).to.deep.equal([]);
  });

  it('disk eligibility (inventory.ts, agent.ts)', () => {
    const reasons = [...reasonsIn('src/node/agent/inventory.ts'), 'Claimed', 'Cordoned', 'NotPresent', 'DiscoveredMount'];
    expect(reasons).to.include.members(['SystemDisk', 'HasFilesystem', 'Blank']);
    expect(reasons.filter((r) => !ELIGIBLE_REASONS[r])).to.deep.equal([]);
  });

  it('disk health (smart.ts)', () => {
    const reasons = reasonsIn('src/node/agent/smart.ts');
    expect(reasons).to.include.members(['SmartFailed', 'SmartUnavailable']);
    expect(reasons.filter((r) => !HEALTHY_REASONS[r])).to.deep.equal([]);
  });

  it('disk preparation (agent.ts, preparation.ts, btrfs-engine.ts)', () => {
    const agent = reasonsIn('src/node/agent/agent.ts').filter((r) => !['Claimed', 'Cordoned', 'Detected', 'NotDetected'].includes(r));
    const reasons = [...agent, ...reasonsIn('src/node/agent/preparation.ts'), ...reasonsIn('src/node/engine/btrfs-engine.ts')];
    expect(reasons).to.include.members(['NotClaimed', 'PreparationFailed', 'UUIDMismatch', 'ReleaseRefused']);
    expect(reasons.filter((r) => !PREPARED_REASONS[r] && !ELIGIBLE_REASONS[r])).to.deep.equal([]);
  });

  it('why POOL turns each pool reason into its sentence, with the operator\'s message', () => {
    const empty: Snapshot = { disks: [], pools: [], pvs: [], claims: [], pods: [], poolVolumes: [], nodes: [], storageClasses: [], warnings: [] };
    for (const [reason, text] of Object.entries(POOL_REASONS)) {
      const failing = !['Ready', 'AllHealthy', 'SingleCopy', 'EnoughDisks', 'Sufficient'].includes(reason);
      const type = reason === 'AllHealthy' || reason === 'DisksMissing' || reason === 'DisksUnhealthy' ? 'DisksHealthy'
        : ['SingleCopy', 'EnoughDisks', 'TooFewDisks'].includes(reason) ? 'ReplicationSatisfiable'
          : ['NoCapacity', 'LowCapacity', 'Sufficient'].includes(reason) ? 'CapacityAvailable' : 'Ready';
      expect(POOL_CONDITIONS).to.include(type);
      const pool = {
        apiVersion: 'stowage.dev/v1alpha1', kind: 'StoragePool', metadata: { name: 'p', generation: 1 },
        spec: { mode: 'Local', disks: { selector: {} } },
        status: { observedGeneration: 1, conditions: [{ type, status: failing ? 'False' : 'True', reason, message: `message of ${reason}`, lastTransitionTime: '2026-01-01T00:00:00Z' }] },
      } as Pool;
      const lines = explainPool(pool, { ...empty, pools: [pool] }, []).reasons.join('\n');
      if (failing) {
        expect(lines, reason).to.include(text.sentence.charAt(0).toUpperCase() + text.sentence.slice(1));
        expect(lines, reason).to.include(`(${reason}: message of ${reason})`);
      }
    }
  });
});

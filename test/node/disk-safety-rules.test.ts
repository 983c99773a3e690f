/**
 * The pure rules behind issue 25's disk-safety fixes, exhaustively: when a returning disk is held
 * (returning-disks.ts), when a volume's location changed (volume-location.ts), and which released
 * disks a deleted pool still waits for (operator/storagepool/disk-release.ts). The real-part
 * tests are returning-disks, volume-location and operator/pool-deletion-release.
 */
import { expect } from 'chai';
import type { NodeDisk } from '../../src/crds/nodedisk.js';
import type { HandoutRecord } from '../../src/node/agent/handout-records.js';
import { heldMessage, heldRecord } from '../../src/node/agent/returning-disks.js';
import { locationChange } from '../../src/node/engine/volume-location.js';
import { releaseProgress } from '../../src/operator/storagepool/disk-release.js';

const NOW = '2026-12-07T04:00:00Z';
const record: HandoutRecord = {
  identity: 'loop:/x.img',
  nodeDisk: 'n-1',
  nodeDiskUID: 'uid-1',
  pool: 'p',
  volumeMode: 'Block',
  since: '2026-12-01T00:00:00Z',
};
const seen = { name: 'n-1', identity: 'loop:/x.img' };
const live = (uid: string) => ({ metadata: { name: 'n-1', uid } });

describe('disk safety rules (pure)', () => {
  describe('heldRecord: a disk back without the NodeDisk it was handed out under', () => {
    it('is not held while its NodeDisk is the one it was handed out under', () => {
      expect(heldRecord(seen, live('uid-1'), record, NOW)).to.equal(undefined);
    });
    it('is held when the NodeDisk is gone or is another object (same name, new UID)', () => {
      expect(heldRecord(seen, undefined, record, NOW)).to.deep.equal({ ...record, heldSince: NOW });
      expect(heldRecord(seen, live('uid-2'), record, NOW)).to.deep.equal({ ...record, heldSince: NOW });
    });
    it('stays held once held, whatever NodeDisk exists now', () => {
      const held = { ...record, heldSince: '2026-12-02T00:00:00Z' };
      expect(heldRecord(seen, live('uid-1'), held, NOW)).to.equal(held);
    });
    it("without a record, is held for Stowage's filesystem label and no NodeDisk, and only then", () => {
      expect(heldRecord({ ...seen, label: 'stw-0123abcd' }, undefined, undefined, NOW)).to.include({
        identity: seen.identity,
        heldSince: NOW,
        pool: '',
      });
      expect(heldRecord({ ...seen, label: 'stw-0123abcd' }, live('uid-9'), undefined, NOW)).to.equal(undefined);
      expect(heldRecord({ ...seen, label: 'data' }, undefined, undefined, NOW)).to.equal(undefined);
      expect(heldRecord(seen, undefined, undefined, NOW)).to.equal(undefined);
    });
    it('says why and how to erase or recover it', () => {
      const m = heldMessage({ ...record, heldSince: NOW }, '/dev/disk/by-id/x');
      expect(m).to.contain('/dev/disk/by-id/x').and.contain('pool p').and.contain('erasePreviousData').and.contain('allow-list');
      expect(heldMessage({ ...record, pool: '' }, '/dev/x')).to.contain('carries a filesystem Stowage made');
    });
  });

  describe('locationChange', () => {
    const at = { pool: 'a', node: 'n1' };
    it('is nothing before the object was realized, or while the spec names where it is', () => {
      expect(locationChange('PoolVolume', 'v', undefined, { pool: 'b', node: 'n2' })).to.equal(undefined);
      expect(locationChange('PoolVolume', 'v', at, at)).to.equal(undefined);
    });
    it('names each changed field, where the data is, and the patch that sets it back', () => {
      const c = locationChange('PoolVolume', 'v', at, { pool: 'b', node: 'n1' })!;
      expect(c.fields).to.deep.equal(['spec.pool']);
      expect(c.message)
        .to.contain('spec.pool was changed from a to b')
        .and.contain('is immutable')
        .and.contain('kubectl patch poolvolume v')
        .and.contain('"pool":"a"');
      const both = locationChange('PoolSnapshot', 's', at, { pool: 'b', node: 'n2' })!;
      expect(both.fields).to.deep.equal(['spec.pool', 'spec.node']);
      expect(both.message).to.contain('are immutable').and.contain('kubectl patch poolsnapshot s');
    });
  });

  describe('releaseProgress: what a deleted pool waits for', () => {
    const disk = (
      name: string,
      o: {
        label?: string;
        claim?: boolean;
        node?: string;
        generation?: number;
        prepared?: { reason: string; observedGeneration?: number };
      },
    ): NodeDisk => ({
      apiVersion: 'stowage.dev/v1alpha1',
      kind: 'NodeDisk',
      metadata: { name, generation: o.generation ?? 3, labels: o.label ? { 'stowage.dev/pool': o.label } : {} },
      spec: {
        nodeName: o.node ?? 'n1',
        devicePath: '/dev/x',
        ...(o.claim ? { claim: { pool: 'p', mode: 'Local', volumeMode: 'Block' } } : {}),
      },
      status: o.prepared
        ? {
            conditions: [
              {
                type: 'Prepared',
                status: 'False',
                reason: o.prepared.reason,
                message: 'm',
                lastTransitionTime: NOW,
                ...(o.prepared.observedGeneration !== undefined ? { observedGeneration: o.prepared.observedGeneration } : {}),
              },
            ],
          }
        : {},
    });
    const nodes = (n: string) => n === 'n1';
    it('waits for a released disk until its agent reports NotClaimed for the current generation', () => {
      const r = releaseProgress(
        'p',
        [
          disk('done', { label: 'p', prepared: { reason: 'NotClaimed', observedGeneration: 3 } }),
          disk('stale', { label: 'p', prepared: { reason: 'NotClaimed', observedGeneration: 2 } }),
          disk('failing', { label: 'p', prepared: { reason: 'ReleaseFailed', observedGeneration: 3 } }),
          disk('silent', { label: 'p', prepared: { reason: 'Prepared', observedGeneration: 2 } }),
        ],
        nodes,
      );
      expect(r.done.map((d) => d.metadata.name)).to.deep.equal(['done']);
      expect(r.waiting.map((w) => w.disk.metadata.name)).to.deep.equal(['stale', 'failing', 'silent']);
      expect(r.waiting[1].why).to.contain('failing on node n1').and.contain('ReleaseFailed');
      expect(r.waiting[2].why).to.contain('has not reported');
    });
    it("does not wait for a node that is gone, a disk no agent ever reported on, or other pools' disks", () => {
      const r = releaseProgress(
        'p',
        [
          disk('gone', { label: 'p', node: 'n9', prepared: { reason: 'Prepared', observedGeneration: 2 } }),
          disk('never-reported', { label: 'p' }),
          disk('other', { label: 'q' }),
        ],
        nodes,
      );
      expect(r.done.map((d) => d.metadata.name)).to.deep.equal(['gone', 'never-reported']);
      expect(r.waiting).to.deep.equal([]);
    });
    it('waits for a disk whose claim is not cleared yet (the write budget clears claims over several rounds), naming it', () => {
      const r = releaseProgress(
        'p',
        [
          disk('claimed', { label: 'p', claim: true }),
          disk('done', { label: 'p', prepared: { reason: 'NotClaimed', observedGeneration: 3 } }),
        ],
        nodes,
      );
      expect(r.done.map((d) => d.metadata.name)).to.deep.equal(['done']);
      expect(r.waiting.map((w) => w.why)).to.deep.equal(['claimed on node n1 (its claim is being cleared)']);
    });
  });
});

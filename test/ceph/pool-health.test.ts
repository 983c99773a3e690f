import { expect } from 'chai';
import { poolHealth } from '../../src/node/ceph/pool-health.js';
import { describePoolHealth, durationInWords, poolHealthSummary } from '../../src/node/ceph/pool-health-words.js';
import { parseCephJson, readOsdTree, readSafeToDestroy } from '../../src/node/ceph/status-json.js';
import { fixtureJson, fixtureObservation } from './fixtures.js';

const P1 = { pool: 'p1', failureDomain: 'host' as const, knownMonitors: ['a'] };

describe('Ceph pool health from Ceph 16.2.15 JSON (pure, fixtures from a real test cluster)', () => {
  it('a healthy pool: 3 hosts hold copies, every PG active+clean, MAX AVAIL as capacity', () => {
    const h = poolHealth(fixtureObservation('healthy'), P1);
    expect(h).to.deep.include({
      exists: true,
      size: 3,
      minSize: 2,
      health: 'HEALTH_OK',
      redundant: true,
      writable: true,
      reason: 'Redundant',
    });
    expect(h.monitors).to.deep.equal({ total: 1, inQuorum: ['a'], outOfQuorum: [], quorum: true });
    expect(h.domains.map((d) => [d.name, d.osds, d.holdsCopies])).to.deep.equal([
      ['n1', [0], true],
      ['n2', [1], true],
      ['n3', [2], true],
    ]);
    expect(h.domainsDown).to.deep.equal([]);
    expect(h.pgs).to.deep.equal({ total: 8, activeClean: 8, inactive: 0, onDownOsds: 0, byState: { 'active+clean': 8 } });
    expect(h.objects).to.deep.equal({ count: 200, copies: 600, degraded: 0, misplaced: 0, unfound: 0, degradedRatio: 0 });
    expect(h.capacity).to.deep.include({
      storedBytes: 209715200,
      usedBytes: 629145600,
      maxAvailBytes: 2545600000,
      nearFull: false,
      full: false,
    });
    expect(h.recovery).to.deep.equal({ bytesPerSecond: 0, objectsPerSecond: 0 });
    expect(describePoolHealth(h)).to.deep.equal([
      '3 of 3 hosts hold copies',
      'all 200 objects have 3 copies in distinct hosts',
      'stored 200.0 MiB, 2.4 GiB more fit',
    ]);
  });

  it('a host down: degraded, writable, which host is missing, and why nothing recovers', () => {
    const h = poolHealth(fixtureObservation('host-down'), P1);
    expect(h).to.deep.include({ health: 'HEALTH_WARN', redundant: false, writable: true, reason: 'Degraded' });
    expect(h.checks.map((c) => c.code)).to.deep.equal(['OSD_DOWN', 'OSD_HOST_DOWN', 'PG_DEGRADED']);
    expect(h.checks[1].details).to.deep.equal(['host n3 (root=default) (1 osds) is down']);
    expect(h.osds).to.deep.equal({ total: 3, up: 2, in: 3 });
    expect(h.domainsDown).to.deep.equal(['n3']);
    expect(h.pgs.byState).to.deep.equal({ 'active+undersized+degraded': 8 });
    expect(h.objects).to.deep.include({ count: 300, copies: 900, degraded: 300, unfound: 0 });
    expect(h.objects.degradedRatio).to.be.closeTo(1 / 3, 1e-9);
    expect(h.recovery.etaSeconds).to.equal(undefined);
    expect(poolHealthSummary(h)).to.equal(
      '2 of 3 hosts hold copies; host n3 is down (the pool wants 3 copies in distinct hosts); ' +
        '33.3 % of object copies degraded (300 of 900); ' +
        'no recovery possible now: there is no other host for the missing copies; it starts when n3 returns or another host joins; ' +
        'reads and writes go on (2 of 3 copies are enough); stored 400.0 MiB, 3.4 GiB more fit',
    );
  });

  it("recovering: the rate from the pool's own stats and an ETA over degraded + misplaced copies", () => {
    const h = poolHealth(fixtureObservation('recovering'), P1);
    expect(h).to.deep.include({ redundant: false, writable: true, reason: 'Degraded' });
    expect(h.domainsDown).to.deep.equal([]);
    expect(h.objects.degraded).to.equal(20);
    expect(h.recovery).to.deep.equal({ bytesPerSecond: 7288003, objectsPerSecond: 6, etaSeconds: 4 });
    expect(describePoolHealth(h)).to.include('recovering at 7.0 MiB/s (6 objects/s), about 4 s left');
  });

  it('a node lost a moment ago: the OSD map says so before the PG statistics do', () => {
    // The healthy observation with osd.2 down in the OSD map; the PG states still say active+clean.
    const obs = fixtureObservation('healthy');
    const tree = obs.osdTree as { nodes: Array<{ id: number; status?: string }> };
    const osdTree = { ...tree, nodes: tree.nodes.map((n) => (n.id === 2 ? { ...n, status: 'down' } : n)) };
    const h = poolHealth({ ...obs, osdTree }, P1);
    expect(h.pgs).to.deep.include({ activeClean: 8, onDownOsds: 8 });
    expect(h).to.deep.include({ redundant: false, writable: true, reason: 'Undersized' });
    expect(h.domainsDown).to.deep.equal(['n3']);
  });

  it('recovered: redundant again', () => {
    expect(poolHealth(fixtureObservation('recovered'), P1)).to.deep.include({ health: 'HEALTH_OK', redundant: true, reason: 'Redundant' });
  });

  it('a host marked out with no fourth host: its OSD out, data stays degraded, safe-to-destroy says no', () => {
    const h = poolHealth(fixtureObservation('host-out'), P1);
    expect(h.osds).to.deep.equal({ total: 3, up: 2, in: 2 });
    expect(h.domains.find((d) => d.name === 'n3')).to.deep.equal({ name: 'n3', osds: [2], osdsUp: 0, osdsIn: 0, holdsCopies: false });
    expect(h.reason).to.equal('Degraded');
    expect(readSafeToDestroy(fixtureJson('host-out', 'safe-to-destroy'), 2)).to.equal(false);
    expect(readSafeToDestroy({ safe_to_destroy: [2], active: [], missing_stats: [], stored_pgs: [] }, 2)).to.equal(true);
  });

  it('the same observation read per OSD domain and for a pool that does not exist', () => {
    const byOsd = poolHealth(fixtureObservation('host-down'), { ...P1, failureDomain: 'osd' });
    expect(byOsd.domains.map((d) => d.name)).to.deep.equal(['osd.0', 'osd.1', 'osd.2']);
    expect(byOsd.domainsDown).to.deep.equal(['osd.2']);
    const missing = poolHealth(fixtureObservation('healthy'), { ...P1, pool: 'nope' });
    expect(missing).to.deep.include({ exists: false, writable: false, redundant: false, reason: 'PoolMissing' });
    expect(describePoolHealth(missing)).to.deep.equal(['pool nope does not exist in the Ceph cluster']);
  });

  it('quorum lost and zones: derived from the same shapes', () => {
    const obs = fixtureObservation('healthy');
    const status = { ...(obs.status as object), quorum_names: ['a'], monmap: { epoch: 3, num_mons: 3 } };
    const lost = poolHealth({ ...obs, status }, { ...P1, knownMonitors: ['a', 'b', 'c'] });
    expect(lost.monitors).to.deep.equal({ total: 3, inQuorum: ['a'], outOfQuorum: ['b', 'c'], quorum: false });
    expect(lost).to.deep.include({ writable: false, reason: 'QuorumLost' });
    expect(describePoolHealth(lost)[0]).to.match(/^monitors have no quorum \(1 of 3 in\).*missing: b, c$/);

    // A tree with zones: n1 in z1, n2 and n3 in z2.
    const tree = {
      nodes: [
        { id: -1, name: 'default', type: 'root', children: [-10, -11] },
        { id: -10, name: 'z1', type: 'zone', children: [-3] },
        { id: -11, name: 'z2', type: 'zone', children: [-5, -7] },
        { id: -3, name: 'n1', type: 'host', children: [0] },
        { id: -5, name: 'n2', type: 'host', children: [1] },
        { id: -7, name: 'n3', type: 'host', children: [2] },
        { id: 0, name: 'osd.0', type: 'osd', status: 'down', reweight: 1 },
        { id: 1, name: 'osd.1', type: 'osd', status: 'up', reweight: 1 },
        { id: 2, name: 'osd.2', type: 'osd', status: 'up', reweight: 1 },
      ],
      stray: [{ id: 3, name: 'osd.3', type: 'osd', status: 'down', reweight: 0 }],
    };
    expect(readOsdTree(tree).map((o) => [o.id, o.ancestors])).to.deep.equal([
      [0, { host: 'n1', zone: 'z1', root: 'default' }],
      [1, { host: 'n2', zone: 'z2', root: 'default' }],
      [2, { host: 'n3', zone: 'z2', root: 'default' }],
      [3, {}],
    ]);
    const zones = poolHealth({ ...obs, osdTree: tree }, { ...P1, failureDomain: 'zone' });
    expect(zones.domains.map((d) => [d.name, d.osds, d.holdsCopies])).to.deep.equal([
      ['z1', [0], false],
      ['z2', [1, 2], true],
    ]);
    expect(describePoolHealth(zones)[0]).to.equal('1 of 2 zones hold copies; zone z1 is down (the pool wants 3 copies in distinct zones)');
  });

  it('JSON that is not what Ceph 16.2 prints is refused with the missing field named', () => {
    expect(() => parseCephJson('Error EACCES: access denied', 'status')).to.throw(/ceph status -f json printed no JSON: Error EACCES/);
    const obs = fixtureObservation('healthy');
    expect(() => poolHealth({ ...obs, osdDump: { pools: [] } }, P1)).to.throw(/ceph osd dump: no field full_ratio/);
    expect(() => poolHealth({ ...obs, status: { fsid: 'x', quorum_names: 'a' } }, P1)).to.throw(/ceph status: quorum_names is not a list/);
  });

  it('durations in words', () => {
    expect([0.2, 40, 89, 600, 7200].map(durationInWords)).to.deep.equal(['1 s', '40 s', '89 s', '10 min', '2.0 h']);
  });
});

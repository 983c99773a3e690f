import { expect } from 'chai';
import type { NodeDisk } from '../../src/crds/nodedisk.js';
import { healthCondition, parseSmartctl } from '../../src/node/agent/smart.js';
import { desiredNodeDisk, desiredStatus, type DiskView } from '../../src/node/agent/status.js';

const HOUR = 3_600_000;

const view = (over: Partial<DiskView> = {}): DiskView => ({
  name: 'w1-0123456789',
  nodeName: 'w1',
  identity: 'serial:S1',
  kind: 'Disk',
  devicePath: '/dev/disk/by-id/ata-X_S1',
  media: 'ssd',
  present: true,
  inventory: {
    kernelName: 'sdb',
    capacity: '100Gi',
    serial: 'S1',
    media: 'ssd',
    rotational: false,
    transport: 'sata',
    readOnly: false,
    partitions: [],
    mountPoints: [],
  },
  eligibility: { eligible: true, reason: 'Blank', message: 'blank' },
  health: { verdict: 'Passed', temperatureCelsius: 31 },
  healthCheckedAt: '2026-01-01T00:00:00Z',
  prepared: { status: 'False', reason: 'NotClaimed', message: 'no pool claims this disk' },
  wipedVolumes: [],
  ...over,
});

const live = (status: NodeDisk['status'], generation = 1): NodeDisk => ({
  apiVersion: 'stowage.dev/v1alpha1',
  kind: 'NodeDisk',
  metadata: { name: 'w1-0123456789', generation },
  spec: { nodeName: 'w1', devicePath: '/dev/sdb' },
  status,
});

describe('NodeDisk composition (pure)', () => {
  it("states labels, identity and spec the agent owns, nothing of the operator's", () => {
    const nd = desiredNodeDisk(view({ wipedVolumes: ['b', 'a'] }));
    expect(nd.metadata.labels).to.deep.equal({
      'app.kubernetes.io/managed-by': 'stowage',
      'stowage.dev/node': 'w1',
      'stowage.dev/media': 'ssd',
    });
    expect(nd.metadata.annotations).to.deep.equal({ 'stowage.dev/identity': 'serial:S1', 'stowage.dev/wiped-volumes': 'b,a' });
    expect(nd.spec).to.deep.equal({ nodeName: 'w1', devicePath: '/dev/disk/by-id/ata-X_S1' });
  });

  it('reports all four conditions with observedGeneration, and drops empty lists', () => {
    const t0 = new Date('2026-01-01T00:00:00Z');
    const s = desiredStatus(view(), live(undefined, 3), t0, HOUR);
    expect(s.conditions!.map((c) => [c.type, c.status, c.reason, c.observedGeneration])).to.deep.equal([
      ['Present', 'True', 'Detected', 3],
      ['Eligible', 'True', 'Blank', 3],
      ['Healthy', 'True', 'SmartPassed', 3],
      ['Prepared', 'False', 'NotClaimed', 3],
    ]);
    expect(s.partitions).to.equal(undefined);
    expect(s.lastSeenTime).to.equal('2026-01-01T00:00:00Z');
    expect(s.health).to.deep.equal({ verdict: 'Passed', temperatureCelsius: 31, checkedTime: '2026-01-01T00:00:00Z' });
  });

  it('keeps timestamps when nothing changed within the heartbeat, so a converged pass writes nothing', () => {
    const t0 = new Date('2026-01-01T00:00:00Z');
    const first = desiredStatus(view(), live(undefined), t0, HOUR);
    const later = new Date(t0.getTime() + 10 * 60_000);
    const second = desiredStatus(view({ healthCheckedAt: '2026-01-01T00:10:00Z' }), live(first), later, HOUR);
    expect(second).to.deep.equal(first);
    // A real change moves lastSeenTime along with it…
    const changed = desiredStatus(view({ inventory: { ...view().inventory, kernelName: 'sdc' } }), live(first), later, HOUR);
    expect(changed.lastSeenTime).to.equal('2026-01-01T00:10:00Z');
    // …and so does the heartbeat.
    const beat = desiredStatus(view(), live(first), new Date(t0.getTime() + 2 * HOUR), HOUR);
    expect(beat.lastSeenTime).to.equal('2026-01-01T02:00:00Z');
    expect(beat.conditions![0].lastTransitionTime).to.equal('2026-01-01T00:00:00Z');
  });

  it('reports a vanished disk as Present=False and keeps its last lastSeenTime', () => {
    const t0 = new Date('2026-01-01T00:00:00Z');
    const first = desiredStatus(view(), live(undefined), t0, HOUR);
    const gone = desiredStatus(view({ present: false }), live(first), new Date(t0.getTime() + 3 * HOUR), HOUR);
    expect(gone.lastSeenTime).to.equal('2026-01-01T00:00:00Z');
    expect(gone.conditions![0]).to.include({ status: 'False', reason: 'NotDetected', lastTransitionTime: '2026-01-01T03:00:00Z' });
  });

  it('reads SMART verdicts and counters from smartctl --json', () => {
    expect(
      parseSmartctl(
        JSON.stringify({
          smartctl: { exit_status: 1, messages: [{ string: '/dev/loop0: Unable to detect device type', severity: 'error' }] },
        }),
      ),
    ).to.deep.equal({ verdict: 'Unknown', message: 'no SMART data: /dev/loop0: Unable to detect device type' });
    const ata = parseSmartctl(
      JSON.stringify({
        smartctl: { exit_status: 0 },
        smart_status: { passed: true },
        temperature: { current: 34 },
        power_on_time: { hours: 12000 },
        ata_smart_attributes: {
          table: [
            { id: 5, raw: { value: 8 } },
            { id: 197, raw: { value: 2 } },
          ],
        },
      }),
    );
    expect(ata).to.deep.equal({ verdict: 'Passed', temperatureCelsius: 34, powerOnHours: 12000, reallocatedSectors: 8, pendingSectors: 2 });
    expect(healthCondition(ata)).to.include({ status: 'False', reason: 'PendingSectors' });
    const nvme = parseSmartctl(
      JSON.stringify({
        smart_status: { passed: false },
        nvme_smart_health_information_log: { media_errors: 0, percentage_used: 104 },
        temperature: { current: 40 },
      }),
    );
    expect(nvme).to.include({ verdict: 'Failed', mediaErrors: 0, percentageUsed: 104 });
    expect(healthCondition(nvme)).to.include({ status: 'False', reason: 'SmartFailed' });
    expect(healthCondition({ verdict: 'Passed' })).to.include({ status: 'True', reason: 'SmartPassed' });
    expect(healthCondition(undefined)).to.include({ status: 'Unknown', reason: 'NotChecked' });
    expect(parseSmartctl('not json').verdict).to.equal('Unknown');
  });
});

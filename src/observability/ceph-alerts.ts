/**
 * The Ceph cluster under host and zone pools: degraded data, near-full OSDs, lost monitor quorum,
 * OSDs down. The series are the ones ceph-mgr's Prometheus module exports (ceph's
 * src/pybind/mgr/prometheus/module.py: `ceph_pg_<state>` and `ceph_pool_metadata` per `pool_id`,
 * `ceph_osd_up` and `ceph_mon_quorum_status` per `ceph_daemon`, `ceph_osd_stat_bytes[_used]` from
 * the OSDs' perf counters, `ceph_{osd,mon}_metadata` with the daemon's `hostname`), scraped under
 * the job the ServiceMonitor in monitors.ts sets; docs/metrics.md lists them. Per-daemon alerts
 * name the node from the daemon's metadata (`hostname` becomes `node`), per-pool ones the Ceph
 * pool's name (`pool`).
 */
import { CEPH_MGR_JOB, ceph, type RuleGroup } from './alert-definition.js';

const mgr = `job="${CEPH_MGR_JOB}"`;
/** `series` (one per ceph_daemon) with the daemon's host as `node`, from `metadata` (ceph_osd_metadata or ceph_mon_metadata). */
const onNode = (series: string, metadata: string): string =>
  `max by (job, ceph_daemon, node) (label_replace(${series} * on (job, ceph_daemon) group_left (hostname) max by (job, ceph_daemon, hostname) (${metadata}{${mgr}}), "node", "$1", "hostname", "(.*)"))`;

const osdMeta = (daemon: string, host: string): Record<string, string> => ({
  [ceph('ceph_osd_metadata', { ceph_daemon: daemon, hostname: host, device_class: 'ssd', objectstore: 'bluestore' })]: '1x30',
});
const monMeta = (daemon: string, host: string): Record<string, string> => ({
  [ceph('ceph_mon_metadata', { ceph_daemon: daemon, hostname: host, rank: daemon.slice(-1) })]: '1x30',
});

const NEAR_FULL = 0.85;

export const CEPH_ALERTS: RuleGroup = {
  name: 'stowage-ceph',
  alerts: [
    {
      alert: 'StowageCephDataDegraded',
      expr: `max by (job, pool) (label_replace(sum by (job, pool_id) (ceph_pg_degraded{${mgr}}) * on (job, pool_id) group_left (name) max by (job, pool_id, name) (ceph_pool_metadata{${mgr}}), "pool", "$1", "name", "(.*)")) > 0`,
      for: '5m',
      severity: 'warning',
      summary: 'Placement groups of a Ceph pool have fewer copies than its size.',
      description:
        '{{ $value }} placement group(s) of Ceph pool {{ $labels.pool }} are degraded: some objects have fewer copies than replicated.size, so one more failure can lose them. Ceph recovers by itself once the missing OSDs return or are marked out (10 minutes after they went down) if the other nodes have room. `kubectl stowage why {{ $labels.pool }}` and `kubectl get nodedisks -o wide` show which disks and nodes are missing.',
      cases: [
        {
          name: 'degraded placement groups for 10m fire, named by the pool',
          series: {
            [ceph('ceph_pg_degraded', { pool_id: '1' })]: '0x2 4x15',
            [ceph('ceph_pg_degraded', { pool_id: '2' })]: '0x17',
            [ceph('ceph_pool_metadata', { pool_id: '1', name: 'safe' })]: '1x17',
            [ceph('ceph_pool_metadata', { pool_id: '2', name: 'other' })]: '1x17',
          },
          at: '12m',
          expect: [
            {
              labels: { job: CEPH_MGR_JOB, pool: 'safe' },
              description:
                '4 placement group(s) of Ceph pool safe are degraded: some objects have fewer copies than replicated.size, so one more failure can lose them. Ceph recovers by itself once the missing OSDs return or are marked out (10 minutes after they went down) if the other nodes have room. `kubectl stowage why safe` and `kubectl get nodedisks -o wide` show which disks and nodes are missing.',
            },
          ],
        },
        {
          name: 'a short degradation (an OSD restart) does not fire',
          series: {
            [ceph('ceph_pg_degraded', { pool_id: '1' })]: '0x8 4x2 0x8',
            [ceph('ceph_pool_metadata', { pool_id: '1', name: 'safe' })]: '1x17',
          },
          at: '12m',
          expect: [],
        },
        {
          name: 'clean placement groups do not fire',
          series: {
            [ceph('ceph_pg_degraded', { pool_id: '1' })]: '0x17',
            [ceph('ceph_pool_metadata', { pool_id: '1', name: 'safe' })]: '1x17',
          },
          at: '12m',
          expect: [],
        },
      ],
    },
    {
      alert: 'StowageCephNearFull',
      expr: `${onNode(`(ceph_osd_stat_bytes_used{${mgr}} / ceph_osd_stat_bytes{${mgr}})`, 'ceph_osd_metadata')} >= ${NEAR_FULL}`,
      for: '5m',
      severity: 'warning',
      summary: 'A Ceph OSD is past the 85 % nearfull ratio.',
      description:
        "OSD {{ $labels.ceph_daemon }} on node {{ $labels.node }} is {{ $value | humanizePercentage }} full, past Ceph's nearfull ratio (85 %); at the full ratio (95 %) Ceph stops every write to the pools with data on it. Add disks to the pool (on other nodes too: copies must stay on different nodes), or delete data.",
      cases: [
        {
          name: 'an OSD at 90 % fires with its node',
          series: {
            [ceph('ceph_osd_stat_bytes_used', { ceph_daemon: 'osd.0' })]: '90x10',
            [ceph('ceph_osd_stat_bytes', { ceph_daemon: 'osd.0' })]: '100x10',
            [ceph('ceph_osd_stat_bytes_used', { ceph_daemon: 'osd.1' })]: '50x10',
            [ceph('ceph_osd_stat_bytes', { ceph_daemon: 'osd.1' })]: '100x10',
            ...osdMeta('osd.0', 'n1'),
            ...osdMeta('osd.1', 'n2'),
          },
          at: '8m',
          expect: [
            {
              labels: { job: CEPH_MGR_JOB, ceph_daemon: 'osd.0', node: 'n1' },
              description:
                "OSD osd.0 on node n1 is 90% full, past Ceph's nearfull ratio (85 %); at the full ratio (95 %) Ceph stops every write to the pools with data on it. Add disks to the pool (on other nodes too: copies must stay on different nodes), or delete data.",
            },
          ],
        },
        {
          name: 'an OSD at 84 % does not fire',
          series: {
            [ceph('ceph_osd_stat_bytes_used', { ceph_daemon: 'osd.0' })]: '84x10',
            [ceph('ceph_osd_stat_bytes', { ceph_daemon: 'osd.0' })]: '100x10',
            ...osdMeta('osd.0', 'n1'),
          },
          at: '8m',
          expect: [],
        },
      ],
    },
    {
      alert: 'StowageCephQuorumLost',
      expr:
        `${onNode(`(ceph_mon_quorum_status{${mgr}} == 0)`, 'ceph_mon_metadata')}\n` +
        'and on (job)\n' +
        `(sum by (job) (ceph_mon_quorum_status{${mgr}}) < floor(count by (job) (ceph_mon_quorum_status{${mgr}}) / 2) + 1)`,
      for: '5m',
      severity: 'critical',
      summary: 'The Ceph monitors have lost their quorum.',
      description:
        "Monitor {{ $labels.ceph_daemon }} on node {{ $labels.node }} is out of quorum, and fewer than a majority of the monitors remain in it: the Ceph cluster under the host and zone pools takes no writes and no changes until a majority is back. Bring the monitors' nodes back first; never recreate a monitor's data by hand.",
      cases: [
        {
          name: 'two of three monitors out fire, one alert per missing monitor',
          series: {
            [ceph('ceph_mon_quorum_status', { ceph_daemon: 'mon.a' })]: '1x10',
            [ceph('ceph_mon_quorum_status', { ceph_daemon: 'mon.b' })]: '1x2 0x8',
            [ceph('ceph_mon_quorum_status', { ceph_daemon: 'mon.c' })]: '1x2 0x8',
            ...monMeta('mon.a', 'n1'),
            ...monMeta('mon.b', 'n2'),
            ...monMeta('mon.c', 'n3'),
          },
          at: '9m',
          expect: ['b', 'c'].map((m, i) => ({
            labels: { job: CEPH_MGR_JOB, ceph_daemon: `mon.${m}`, node: `n${i + 2}` },
            description: `Monitor mon.${m} on node n${i + 2} is out of quorum, and fewer than a majority of the monitors remain in it: the Ceph cluster under the host and zone pools takes no writes and no changes until a majority is back. Bring the monitors' nodes back first; never recreate a monitor's data by hand.`,
          })),
        },
        {
          name: 'one of three monitors out keeps the quorum and does not fire',
          series: {
            [ceph('ceph_mon_quorum_status', { ceph_daemon: 'mon.a' })]: '1x10',
            [ceph('ceph_mon_quorum_status', { ceph_daemon: 'mon.b' })]: '1x10',
            [ceph('ceph_mon_quorum_status', { ceph_daemon: 'mon.c' })]: '1x2 0x8',
            ...monMeta('mon.a', 'n1'),
            ...monMeta('mon.b', 'n2'),
            ...monMeta('mon.c', 'n3'),
          },
          at: '9m',
          expect: [],
        },
      ],
    },
    {
      alert: 'StowageCephOSDDown',
      expr: onNode(`(ceph_osd_up{${mgr}} == 0)`, 'ceph_osd_metadata'),
      for: '5m',
      severity: 'warning',
      summary: 'A Ceph OSD (one disk of a host or zone pool) is down.',
      description:
        'OSD {{ $labels.ceph_daemon }} on node {{ $labels.node }} has been down for 5 minutes: the copies on its disk are missing and the data they belong to is degraded. 10 minutes after it went down Ceph marks it out and copies that data to other disks if there is room. `kubectl get nodedisks -o wide` shows whether its disk or node is gone.',
      cases: [
        {
          name: 'an OSD down for 6m fires with its node',
          series: {
            [ceph('ceph_osd_up', { ceph_daemon: 'osd.0' })]: '1x10',
            [ceph('ceph_osd_up', { ceph_daemon: 'osd.1' })]: '1x2 0x8',
            ...osdMeta('osd.0', 'n1'),
            ...osdMeta('osd.1', 'n2'),
          },
          at: '9m',
          expect: [
            {
              labels: { job: CEPH_MGR_JOB, ceph_daemon: 'osd.1', node: 'n2' },
              description:
                'OSD osd.1 on node n2 has been down for 5 minutes: the copies on its disk are missing and the data they belong to is degraded. 10 minutes after it went down Ceph marks it out and copies that data to other disks if there is room. `kubectl get nodedisks -o wide` shows whether its disk or node is gone.',
            },
          ],
        },
        {
          name: 'an OSD restarted within minutes does not fire',
          series: { [ceph('ceph_osd_up', { ceph_daemon: 'osd.1' })]: '1x2 0x2 1x6', ...osdMeta('osd.1', 'n2') },
          at: '9m',
          expect: [],
        },
      ],
    },
  ],
};

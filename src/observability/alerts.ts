/**
 * Stowage's alert rules: the ONE source of config/prometheus/ (the PrometheusRule and the plain
 * rules file are both rendered from ALERTS by `make manifests`, so they cannot drift) and of the
 * promtool unit tests (every alert carries a case that fires and one that must not).
 */

/** Job names the rules expect; the ServiceMonitor/PodMonitor and the plain scrape config set them. */
export const OPERATOR_JOB = 'stowage-operator';
export const NODE_JOB = 'stowage-node';
/** Where `runbook_url` points; the runbooks are docs/runbooks/<Alert>.md in this repository. */
export const RUNBOOK_BASE_URL = 'https://github.com/stowage-dev/stowage/blob/main/docs/runbooks/';

export type Severity = 'critical' | 'warning';

/** One promtool case: input series (`values` in promtool's expanding notation, 1m apart), and what must fire at `at`. */
export interface AlertCase {
  readonly name: string;
  readonly series: Readonly<Record<string, string>>;
  readonly at: string;
  /** Alerts expected at `at`: their labels (without alertname/severity) and rendered description. Empty: must not fire. */
  readonly expect: readonly { readonly labels: Readonly<Record<string, string>>; readonly description: string }[];
}

export interface AlertDefinition {
  readonly alert: string;
  readonly expr: string;
  /** Prometheus duration; realistic for production (the e2e test renders a copy with shorter ones). */
  readonly for?: string;
  readonly severity: Severity;
  readonly summary: string;
  /** Go template naming the object (`{{ $labels.pool }}`, `{{ $labels.disk }}`). */
  readonly description: string;
  readonly cases: readonly AlertCase[];
}

export interface RuleGroup {
  readonly name: string;
  readonly interval?: string;
  readonly alerts: readonly AlertDefinition[];
}

const opLabels = { job: OPERATOR_JOB, instance: 'op:8080' };
const nodeLabels = { job: NODE_JOB, instance: 'n1:8080', node: 'n1' };
const sel = (name: string, labels: Record<string, string>): string =>
  `${name}{${Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(',')}}`;
const pool = (name: string, labels: Record<string, string> = {}): string => sel(name, { ...opLabels, pool: 'fast', ...labels });
const disk = (name: string, labels: Record<string, string> = {}): string => sel(name, { ...nodeLabels, disk: 'n1-abc', ...labels });
const POOL_LABELS = { ...opLabels, pool: 'fast' };
const DISK_LABELS = { ...nodeLabels, disk: 'n1-abc' };

export const RULE_GROUPS: readonly RuleGroup[] = [
  {
    name: 'stowage-pools',
    alerts: [
      {
        alert: 'StowagePoolNotReady',
        expr: 'stowage_pool_ready == 0',
        for: '15m',
        severity: 'warning',
        summary: 'A StoragePool has not been Ready for 15 minutes.',
        description:
          'StoragePool {{ $labels.pool }} is not Ready; new volumes may not be provisioned from it. `kubectl describe storagepool {{ $labels.pool }}` shows the conditions and why.',
        cases: [
          {
            name: 'not ready for 20m fires',
            series: { [pool('stowage_pool_ready')]: '0x25' },
            at: '20m',
            expect: [
              {
                labels: POOL_LABELS,
                description:
                  'StoragePool fast is not Ready; new volumes may not be provisioned from it. `kubectl describe storagepool fast` shows the conditions and why.',
              },
            ],
          },
          { name: 'ready does not fire', series: { [pool('stowage_pool_ready')]: '1x25' }, at: '20m', expect: [] },
          { name: 'not ready for only 10m does not fire', series: { [pool('stowage_pool_ready')]: '1x10 0x15' }, at: '20m', expect: [] },
        ],
      },
      {
        alert: 'StowagePoolDegraded',
        expr:
          'max by (job, instance, pool) (stowage_pool_disks{state=~"unhealthy|missing"}) > 0\n' +
          'or\n' +
          'max by (job, instance, pool) (stowage_pool_condition{condition="DisksHealthy",status="False"}) == 1',
        for: '5m',
        severity: 'warning',
        summary: 'A StoragePool has unhealthy or missing disks.',
        description:
          'StoragePool {{ $labels.pool }} has unhealthy or missing disks (DisksHealthy is False); replicated volumes run with less redundancy and Local volumes on those disks may be unusable. `kubectl get nodedisks -l stowage.dev/pool={{ $labels.pool }}` lists its disks.',
        cases: [
          {
            name: 'a missing disk fires',
            series: { [pool('stowage_pool_disks', { state: 'missing' })]: '0x5 1x10', [pool('stowage_pool_disks', { state: 'unhealthy' })]: '0x15' },
            at: '12m',
            expect: [
              {
                labels: POOL_LABELS,
                description:
                  'StoragePool fast has unhealthy or missing disks (DisksHealthy is False); replicated volumes run with less redundancy and Local volumes on those disks may be unusable. `kubectl get nodedisks -l stowage.dev/pool=fast` lists its disks.',
              },
            ],
          },
          {
            name: 'DisksHealthy False fires',
            series: { [pool('stowage_pool_condition', { condition: 'DisksHealthy', status: 'False' })]: '1x15' },
            at: '10m',
            expect: [
              {
                labels: POOL_LABELS,
                description:
                  'StoragePool fast has unhealthy or missing disks (DisksHealthy is False); replicated volumes run with less redundancy and Local volumes on those disks may be unusable. `kubectl get nodedisks -l stowage.dev/pool=fast` lists its disks.',
              },
            ],
          },
          {
            name: 'all disks healthy does not fire',
            series: {
              [pool('stowage_pool_disks', { state: 'missing' })]: '0x15',
              [pool('stowage_pool_disks', { state: 'unhealthy' })]: '0x15',
              [pool('stowage_pool_condition', { condition: 'DisksHealthy', status: 'False' })]: '0x15',
            },
            at: '10m',
            expect: [],
          },
        ],
      },
      {
        alert: 'StowagePoolReplicationNotSatisfiable',
        expr: 'stowage_pool_condition{condition="ReplicationSatisfiable",status="False"} == 1',
        for: '5m',
        severity: 'critical',
        summary: 'A StoragePool has fewer disks than its replication needs.',
        description:
          'StoragePool {{ $labels.pool }} cannot keep replicated.size copies with the disks it has; new volumes cannot be provisioned and existing ones may run without redundancy. `kubectl describe storagepool {{ $labels.pool }}` says how many disks are missing.',
        cases: [
          {
            name: 'unsatisfiable fires',
            series: { [pool('stowage_pool_condition', { condition: 'ReplicationSatisfiable', status: 'False' })]: '1x10' },
            at: '8m',
            expect: [
              {
                labels: { ...POOL_LABELS, condition: 'ReplicationSatisfiable', status: 'False' },
                description:
                  'StoragePool fast cannot keep replicated.size copies with the disks it has; new volumes cannot be provisioned and existing ones may run without redundancy. `kubectl describe storagepool fast` says how many disks are missing.',
              },
            ],
          },
          {
            name: 'satisfiable does not fire',
            series: { [pool('stowage_pool_condition', { condition: 'ReplicationSatisfiable', status: 'False' })]: '0x10' },
            at: '8m',
            expect: [],
          },
        ],
      },
      {
        alert: 'StowagePoolCapacityLow',
        expr:
          'stowage_pool_capacity_bytes{kind="available"} / ignoring (kind) (stowage_pool_capacity_bytes{kind="usable"} > 0)\n' +
          '< ignoring (kind) (stowage_pool_capacity_low_watermark_ratio > 0)',
        for: '10m',
        severity: 'warning',
        summary: 'A StoragePool is below its low-capacity watermark.',
        description:
          'StoragePool {{ $labels.pool }} has only {{ $value | humanizePercentage }} of its usable capacity available, below spec.capacity.lowWatermarkPercent; volumes that do not fit will stay Pending. Add disks to the pool or free space.',
        cases: [
          {
            name: '5% available with a 10% watermark fires',
            series: {
              [pool('stowage_pool_capacity_bytes', { kind: 'usable' })]: '1000x20',
              [pool('stowage_pool_capacity_bytes', { kind: 'available' })]: '500x5 50x15',
              [pool('stowage_pool_capacity_low_watermark_ratio')]: '0.1x20',
            },
            at: '18m',
            expect: [
              {
                labels: POOL_LABELS,
                description:
                  'StoragePool fast has only 5% of its usable capacity available, below spec.capacity.lowWatermarkPercent; volumes that do not fit will stay Pending. Add disks to the pool or free space.',
              },
            ],
          },
          {
            name: '20% available does not fire',
            series: {
              [pool('stowage_pool_capacity_bytes', { kind: 'usable' })]: '1000x20',
              [pool('stowage_pool_capacity_bytes', { kind: 'available' })]: '200x20',
              [pool('stowage_pool_capacity_low_watermark_ratio')]: '0.1x20',
            },
            at: '18m',
            expect: [],
          },
          {
            name: 'watermark 0 (disabled) does not fire',
            series: {
              [pool('stowage_pool_capacity_bytes', { kind: 'usable' })]: '1000x20',
              [pool('stowage_pool_capacity_bytes', { kind: 'available' })]: '0x20',
              [pool('stowage_pool_capacity_low_watermark_ratio')]: '0x20',
            },
            at: '18m',
            expect: [],
          },
          {
            name: 'an empty pool (usable 0) does not fire',
            series: {
              [pool('stowage_pool_capacity_bytes', { kind: 'usable' })]: '0x20',
              [pool('stowage_pool_capacity_bytes', { kind: 'available' })]: '0x20',
              [pool('stowage_pool_capacity_low_watermark_ratio')]: '0.1x20',
            },
            at: '18m',
            expect: [],
          },
        ],
      },
      {
        alert: 'StowagePoolSnapshotsLarge',
        expr:
          'sum by (pool) (stowage_pool_snapshot_bytes)\n' +
          '/ on (pool) group_left () max by (pool) (stowage_pool_capacity_bytes{kind="usable"} > 0)\n' +
          '> 0.5',
        for: '30m',
        severity: 'warning',
        summary: 'Snapshots hold a large share of a StoragePool.',
        description:
          'Snapshots of StoragePool {{ $labels.pool }} hold {{ $value | humanizePercentage }} of its usable capacity alone (data their volumes overwrote or deleted since); that space is not available to volumes. Delete snapshots that are no longer needed, or add disks.',
        cases: [
          {
            name: '60% held by snapshots fires',
            series: {
              [pool('stowage_pool_capacity_bytes', { kind: 'usable' })]: '1000x40',
              [pool('stowage_pool_snapshot_bytes', { node: 'n1' })]: '400x40',
              [pool('stowage_pool_snapshot_bytes', { node: 'n2' })]: '100x5 200x35',
            },
            at: '38m',
            expect: [
              {
                labels: { pool: 'fast' },
                description:
                  'Snapshots of StoragePool fast hold 60% of its usable capacity alone (data their volumes overwrote or deleted since); that space is not available to volumes. Delete snapshots that are no longer needed, or add disks.',
              },
            ],
          },
          {
            name: '30% held does not fire',
            series: {
              [pool('stowage_pool_capacity_bytes', { kind: 'usable' })]: '1000x40',
              [pool('stowage_pool_snapshot_bytes', { node: 'n1' })]: '300x40',
            },
            at: '38m',
            expect: [],
          },
          {
            name: 'an empty pool (usable 0) does not fire',
            series: {
              [pool('stowage_pool_capacity_bytes', { kind: 'usable' })]: '0x40',
              [pool('stowage_pool_snapshot_bytes', { node: 'n1' })]: '0x40',
            },
            at: '38m',
            expect: [],
          },
        ],
      },
      {
        alert: 'StowagePoolFillingUp',
        expr:
          'predict_linear(stowage_pool_capacity_bytes{kind="available"}[6h], 4 * 24 * 3600) < 0\n' +
          'and ignoring (kind)\n' +
          'stowage_pool_capacity_bytes{kind="available"} / ignoring (kind) (stowage_pool_capacity_bytes{kind="usable"} > 0) < 0.5',
        for: '1h',
        severity: 'warning',
        summary: 'A StoragePool is predicted to fill up within 4 days.',
        description:
          'At the rate of the last 6 hours StoragePool {{ $labels.pool }} will have no available capacity within 4 days ({{ $value | humanize1024 }}B predicted); plan to add disks now.',
        cases: [
          {
            name: 'steady consumption fires',
            // 1 TiB usable, available falls by 2 GiB a minute from 480 GiB: empty in 4 hours.
            series: {
              [pool('stowage_pool_capacity_bytes', { kind: 'usable' })]: '1099511627776x180',
              [pool('stowage_pool_capacity_bytes', { kind: 'available' })]: '515396075520-2147483648x180',
            },
            at: '3h',
            expect: [
              {
                labels: { ...POOL_LABELS, kind: 'available' },
                description:
                  'At the rate of the last 6 hours StoragePool fast will have no available capacity within 4 days (-11.13TiB predicted); plan to add disks now.',
              },
            ],
          },
          {
            name: 'flat usage does not fire',
            series: {
              [pool('stowage_pool_capacity_bytes', { kind: 'usable' })]: '1099511627776x180',
              [pool('stowage_pool_capacity_bytes', { kind: 'available' })]: '107374182400x180',
            },
            at: '3h',
            expect: [],
          },
        ],
      },
    ],
  },
  {
    name: 'stowage-disks',
    alerts: [
      {
        alert: 'StowageDiskUnhealthy',
        expr:
          'max by (job, instance, node, disk) (stowage_disk_health_status{verdict="Failed"}) == 1\n' +
          'or\n' +
          'max by (job, instance, node, disk) (stowage_disk_condition{condition="Healthy",status="False"}) == 1',
        for: '5m',
        severity: 'critical',
        summary: 'A disk reports that it is failing.',
        description:
          'Disk {{ $labels.disk }} on node {{ $labels.node }} is unhealthy (SMART verdict Failed or Healthy=False); the device predicts its own failure. Move data off it and replace it: `kubectl get nodedisk {{ $labels.disk }} -o yaml` shows its serial and health.',
        cases: [
          {
            name: 'SMART Failed fires',
            series: { [disk('stowage_disk_health_status', { verdict: 'Failed' })]: '0x2 1x10', [disk('stowage_disk_health_status', { verdict: 'Passed' })]: '1x2 0x10' },
            at: '10m',
            expect: [
              {
                labels: DISK_LABELS,
                description:
                  'Disk n1-abc on node n1 is unhealthy (SMART verdict Failed or Healthy=False); the device predicts its own failure. Move data off it and replace it: `kubectl get nodedisk n1-abc -o yaml` shows its serial and health.',
              },
            ],
          },
          {
            name: 'SMART Passed does not fire',
            series: {
              [disk('stowage_disk_health_status', { verdict: 'Failed' })]: '0x12',
              [disk('stowage_disk_health_status', { verdict: 'Passed' })]: '1x12',
              [disk('stowage_disk_condition', { condition: 'Healthy', status: 'False' })]: '0x12',
            },
            at: '10m',
            expect: [],
          },
        ],
      },
      {
        alert: 'StowageDiskMissing',
        expr: '(stowage_disk_present == 0) * on (job, instance, node, disk) group_left (pool) stowage_disk_claimed',
        for: '5m',
        severity: 'critical',
        summary: 'A disk claimed by a pool has disappeared from its node.',
        description:
          'Disk {{ $labels.disk }} on node {{ $labels.node }}, claimed by StoragePool {{ $labels.pool }}, is no longer seen by the node agent; volumes on it are unavailable. Check the node and the disk: `kubectl describe nodedisk {{ $labels.disk }}`.',
        cases: [
          {
            name: 'claimed disk gone fires',
            series: { [disk('stowage_disk_present')]: '1x2 0x10', [disk('stowage_disk_claimed', { pool: 'fast' })]: '1x12' },
            at: '10m',
            expect: [
              {
                labels: { ...DISK_LABELS, pool: 'fast' },
                description:
                  'Disk n1-abc on node n1, claimed by StoragePool fast, is no longer seen by the node agent; volumes on it are unavailable. Check the node and the disk: `kubectl describe nodedisk n1-abc`.',
              },
            ],
          },
          { name: 'unclaimed disk gone does not fire', series: { [disk('stowage_disk_present')]: '0x12' }, at: '10m', expect: [] },
          {
            name: 'claimed disk present does not fire',
            series: { [disk('stowage_disk_present')]: '1x12', [disk('stowage_disk_claimed', { pool: 'fast' })]: '1x12' },
            at: '10m',
            expect: [],
          },
        ],
      },
      {
        alert: 'StowageDiskIOErrors',
        expr: 'sum by (job, instance, node, pool, device) (increase(stowage_engine_device_errors_total[30m])) > 0',
        severity: 'warning',
        summary: 'A pool filesystem is counting new I/O errors on a device.',
        description:
          'The pool filesystem of StoragePool {{ $labels.pool }} on node {{ $labels.node }} counted {{ printf "%.0f" $value }} new I/O or checksum errors on {{ $labels.device }} in 30 minutes; the disk or its cabling is failing.',
        cases: [
          {
            name: 'new read errors fire',
            series: {
              [sel('stowage_engine_device_errors_total', { ...nodeLabels, pool: 'fast', device: '/dev/sdb', type: 'read_io' })]: '0x10 0+1x10',
              [sel('stowage_engine_device_errors_total', { ...nodeLabels, pool: 'fast', device: '/dev/sdb', type: 'write_io' })]: '0x20',
            },
            at: '20m',
            expect: [
              {
                labels: { ...nodeLabels, pool: 'fast', device: '/dev/sdb' },
                description:
                  'The pool filesystem of StoragePool fast on node n1 counted 9 new I/O or checksum errors on /dev/sdb in 30 minutes; the disk or its cabling is failing.',
              },
            ],
          },
          {
            name: 'old errors that stopped do not fire',
            series: { [sel('stowage_engine_device_errors_total', { ...nodeLabels, pool: 'fast', device: '/dev/sdb', type: 'read_io' })]: '7x80' },
            at: '70m',
            expect: [],
          },
        ],
      },
      {
        alert: 'StowageDiskMediaErrors',
        expr: 'increase(stowage_disk_media_errors_total[1h]) > 0 or increase(stowage_disk_reallocated_sectors_total[1h]) > 0',
        severity: 'warning',
        summary: 'A disk is reporting new media errors or reallocated sectors.',
        description:
          'Disk {{ $labels.disk }} on node {{ $labels.node }} reported {{ printf "%.0f" $value }} new media errors or reallocated sectors in the last hour; it is wearing out. `kubectl get nodedisk {{ $labels.disk }} -o jsonpath={.status.health}` shows the counters.',
        cases: [
          {
            name: 'growing reallocated sectors fire',
            series: { [disk('stowage_disk_reallocated_sectors_total')]: '8x30 10x30' },
            at: '50m',
            expect: [
              {
                labels: DISK_LABELS,
                description:
                  'Disk n1-abc on node n1 reported 2 new media errors or reallocated sectors in the last hour; it is wearing out. `kubectl get nodedisk n1-abc -o jsonpath={.status.health}` shows the counters.',
              },
            ],
          },
          {
            name: 'constant counters do not fire',
            series: { [disk('stowage_disk_reallocated_sectors_total')]: '8x60', [disk('stowage_disk_media_errors_total')]: '3x60' },
            at: '50m',
            expect: [],
          },
        ],
      },
      {
        alert: 'StowageDiskWipeFailing',
        expr: 'stowage_disk_last_wipe_status{result="Failed"} == 1',
        for: '15m',
        severity: 'warning',
        summary: 'Cleaning a released disk keeps failing.',
        description:
          'The last wipe of disk {{ $labels.disk }} on node {{ $labels.node }} failed and has not succeeded since; its volume is not offered again until it does. `kubectl get nodedisk {{ $labels.disk }} -o jsonpath={.status.lastWipe}` shows the error.',
        cases: [
          {
            name: 'failed wipe for 20m fires',
            series: { [disk('stowage_disk_last_wipe_status', { result: 'Failed' })]: '1x25' },
            at: '20m',
            expect: [
              {
                labels: { ...DISK_LABELS, result: 'Failed' },
                description:
                  'The last wipe of disk n1-abc on node n1 failed and has not succeeded since; its volume is not offered again until it does. `kubectl get nodedisk n1-abc -o jsonpath={.status.lastWipe}` shows the error.',
              },
            ],
          },
          {
            name: 'a failure followed by success does not fire',
            series: { [disk('stowage_disk_last_wipe_status', { result: 'Failed' })]: '1x5 0x20' },
            at: '20m',
            expect: [],
          },
        ],
      },
    ],
  },
  {
    name: 'stowage-components',
    alerts: [
      {
        alert: 'StowageReconcileErrors',
        expr: 'sum by (job, instance, controller) (rate(controller_runtime_reconcile_errors_total[5m])) > 0',
        for: '15m',
        severity: 'warning',
        summary: 'A Stowage controller keeps failing to reconcile.',
        description:
          'Controller {{ $labels.controller }} of {{ $labels.job }} ({{ $labels.instance }}) has been failing reconciles for 15 minutes; objects it manages are not kept up to date. Its log and the objects\' events say why.',
        cases: [
          {
            name: 'errors for 30m fire',
            series: { [sel('controller_runtime_reconcile_errors_total', { ...opLabels, controller: 'storagepool' })]: '0+2x40' },
            at: '30m',
            expect: [
              {
                labels: { ...opLabels, controller: 'storagepool' },
                description:
                  "Controller storagepool of stowage-operator (op:8080) has been failing reconciles for 15 minutes; objects it manages are not kept up to date. Its log and the objects' events say why.",
              },
            ],
          },
          {
            name: 'a burst that stopped does not fire',
            series: { [sel('controller_runtime_reconcile_errors_total', { ...opLabels, controller: 'storagepool' })]: '0+2x5 10x35' },
            at: '30m',
            expect: [],
          },
        ],
      },
      {
        alert: 'StowageOperatorDown',
        expr: `absent(up{job="${OPERATOR_JOB}"} == 1)`,
        for: '5m',
        severity: 'critical',
        summary: 'No Stowage operator is up.',
        description:
          'No replica of the Stowage operator (job ' + OPERATOR_JOB + ') has been scraped successfully for 5 minutes: pools are not reconciled and their metrics are stale. `kubectl -n stowage-system get pods,events` shows why.',
        cases: [
          {
            name: 'operator down fires',
            series: { [sel('up', opLabels)]: '1x2 0x10' },
            at: '10m',
            expect: [
              {
                labels: {},
                description:
                  'No replica of the Stowage operator (job stowage-operator) has been scraped successfully for 5 minutes: pools are not reconciled and their metrics are stale. `kubectl -n stowage-system get pods,events` shows why.',
              },
            ],
          },
          {
            name: 'operator never scraped fires',
            series: { [sel('up', { job: 'other', instance: 'x:1' })]: '1x12' },
            at: '10m',
            expect: [
              {
                labels: {},
                description:
                  'No replica of the Stowage operator (job stowage-operator) has been scraped successfully for 5 minutes: pools are not reconciled and their metrics are stale. `kubectl -n stowage-system get pods,events` shows why.',
              },
            ],
          },
          {
            name: 'one of two replicas up does not fire',
            series: { [sel('up', opLabels)]: '1x12', [sel('up', { job: OPERATOR_JOB, instance: 'op2:8080' })]: '0x12' },
            at: '10m',
            expect: [],
          },
        ],
      },
      {
        alert: 'StowageNodeDaemonDown',
        expr: `up{job="${NODE_JOB}"} == 0`,
        for: '5m',
        severity: 'critical',
        summary: 'A Stowage node daemon cannot be scraped.',
        description:
          'The Stowage node daemon on node {{ $labels.node }} ({{ $labels.instance }}) has been down or unreachable for 5 minutes: its disks are not inventoried, prepared or health-checked, and CSI volumes on that node cannot be mounted. `kubectl -n stowage-system get pods -o wide --field-selector spec.nodeName={{ $labels.node }}` shows it.',
        cases: [
          {
            name: 'daemon down fires',
            series: { [sel('up', nodeLabels)]: '1x2 0x10' },
            at: '10m',
            expect: [
              {
                labels: nodeLabels,
                description:
                  'The Stowage node daemon on node n1 (n1:8080) has been down or unreachable for 5 minutes: its disks are not inventoried, prepared or health-checked, and CSI volumes on that node cannot be mounted. `kubectl -n stowage-system get pods -o wide --field-selector spec.nodeName=n1` shows it.',
              },
            ],
          },
          { name: 'daemon up does not fire', series: { [sel('up', nodeLabels)]: '1x12' }, at: '10m', expect: [] },
        ],
      },
      {
        alert: 'StowageNodeDaemonNotScraped',
        expr: `absent(up{job="${NODE_JOB}"})`,
        for: '15m',
        severity: 'warning',
        summary: 'Prometheus scrapes no Stowage node daemon at all.',
        description:
          'Prometheus has no target for job ' + NODE_JOB + ' for 15 minutes: either the node daemon DaemonSet is missing or its PodMonitor is not picked up, and no disk alert can fire. `kubectl -n stowage-system get daemonset,podmonitor` shows which.',
        cases: [
          {
            name: 'no node target fires',
            series: { [sel('up', opLabels)]: '1x20' },
            at: '18m',
            expect: [
              {
                labels: { job: NODE_JOB },
                description:
                  'Prometheus has no target for job stowage-node for 15 minutes: either the node daemon DaemonSet is missing or its PodMonitor is not picked up, and no disk alert can fire. `kubectl -n stowage-system get daemonset,podmonitor` shows which.',
              },
            ],
          },
          { name: 'a node target (even down) does not fire', series: { [sel('up', nodeLabels)]: '0x20' }, at: '18m', expect: [] },
        ],
      },
    ],
  },
];

export const ALERTS: readonly AlertDefinition[] = RULE_GROUPS.flatMap((g) => g.alerts);

export function runbookUrl(alert: string): string {
  return `${RUNBOOK_BASE_URL}${alert}.md`;
}

export interface RenderOptions {
  /** Replaces every `for:` (tests only: a real Prometheus cannot wait 15 minutes in a test). */
  readonly forOverride?: string;
}

/** The `groups:` document Prometheus loads (`rule_files`), and the PrometheusRule's spec. */
export function renderRuleGroups(opts: RenderOptions = {}): { groups: unknown[] } {
  return {
    groups: RULE_GROUPS.map((g) => ({
      name: g.name,
      ...(g.interval ? { interval: g.interval } : {}),
      rules: g.alerts.map((a) => ({
        alert: a.alert,
        expr: a.expr,
        ...(a.for ? { for: opts.forOverride ?? a.for } : {}),
        labels: { severity: a.severity },
        annotations: { summary: a.summary, description: a.description, runbook_url: runbookUrl(a.alert) },
      })),
    })),
  };
}

/** The same groups as a PrometheusRule for the Prometheus Operator (its ruleSelector must match these labels). */
export function renderPrometheusRule(namespace = 'stowage-system'): Record<string, unknown> {
  return {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: {
      name: 'stowage',
      namespace,
      labels: { 'app.kubernetes.io/name': 'stowage', 'app.kubernetes.io/component': 'alerts', 'app.kubernetes.io/managed-by': 'stowage' },
    },
    spec: renderRuleGroups(),
  };
}

/** promtool's unit-test file for `alerts` (each case one test group), loading `ruleFile`. */
export function renderPromtoolTests(ruleFile: string, alerts: readonly AlertDefinition[] = ALERTS): Record<string, unknown> {
  return {
    rule_files: [ruleFile],
    evaluation_interval: '1m',
    tests: alerts.flatMap((a) =>
      a.cases.map((c) => ({
        name: `${a.alert}: ${c.name}`,
        interval: '1m',
        input_series: Object.entries(c.series).map(([series, values]) => ({ series, values })),
        alert_rule_test: [
          {
            eval_time: c.at,
            alertname: a.alert,
            exp_alerts: c.expect.map((e) => ({
              exp_labels: { ...e.labels, severity: a.severity },
              exp_annotations: { summary: a.summary, description: e.description, runbook_url: runbookUrl(a.alert) },
            })),
          },
        ],
      })),
    ),
  };
}

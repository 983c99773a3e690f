/** Pools: readiness, disks, replication, the CSI node plugin, capacity and its trend (the operator's metrics). */
import { POOL_LABELS, pool, type RuleGroup } from './alert-definition.js';

export const POOL_ALERTS: RuleGroup = {
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
          series: {
            [pool('stowage_pool_disks', { state: 'missing' })]: '0x5 1x10',
            [pool('stowage_pool_disks', { state: 'unhealthy' })]: '0x15',
          },
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
      alert: 'StowageDriverNotReady',
      expr: 'stowage_pool_condition{condition="DriverReady",status="False"} == 1',
      for: '10m',
      severity: 'critical',
      summary: 'The CSI node plugin does not serve some nodes of a Dynamic pool.',
      description:
        'StoragePool {{ $labels.pool }} reports DriverReady=False: on some of its nodes the stowage-node pod is not running or not registered with kubelet, so volumes there cannot be mounted. `kubectl describe storagepool {{ $labels.pool }}` names the nodes and why (ImagePullBackOff, CrashLoopBackOff, NotRegistered).',
      cases: [
        {
          name: 'not ready for 12m fires',
          series: { [pool('stowage_pool_condition', { condition: 'DriverReady', status: 'False' })]: '0x2 1x15' },
          at: '14m',
          expect: [
            {
              labels: { ...POOL_LABELS, condition: 'DriverReady', status: 'False' },
              description:
                'StoragePool fast reports DriverReady=False: on some of its nodes the stowage-node pod is not running or not registered with kubelet, so volumes there cannot be mounted. `kubectl describe storagepool fast` names the nodes and why (ImagePullBackOff, CrashLoopBackOff, NotRegistered).',
            },
          ],
        },
        {
          name: 'a rollout shorter than 10m does not fire',
          series: { [pool('stowage_pool_condition', { condition: 'DriverReady', status: 'False' })]: '1x5 0x10' },
          at: '14m',
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
};

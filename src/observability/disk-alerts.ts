/** Disks: SMART health, presence, I/O and media errors, wipes (the node daemons' metrics). */
import { DISK_LABELS, disk, nodeLabels, sel, type RuleGroup } from './alert-definition.js';

export const DISK_ALERTS: RuleGroup = {
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
          series: {
            [disk('stowage_disk_health_status', { verdict: 'Failed' })]: '0x2 1x10',
            [disk('stowage_disk_health_status', { verdict: 'Passed' })]: '1x2 0x10',
          },
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
            [sel('stowage_engine_device_errors_total', { ...nodeLabels, pool: 'fast', device: '/dev/sdb', type: 'read_io' })]:
              '0x10 0+1x10',
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
          series: {
            [sel('stowage_engine_device_errors_total', { ...nodeLabels, pool: 'fast', device: '/dev/sdb', type: 'read_io' })]: '7x80',
          },
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
};

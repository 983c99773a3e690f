/** Stowage's own processes: reconcile errors, and the operator and node daemons being scraped and up. */
import { NODE_JOB, OPERATOR_JOB, nodeLabels, opLabels, sel, type RuleGroup } from './alert-definition.js';

export const COMPONENT_ALERTS: RuleGroup = {
  name: 'stowage-components',
  alerts: [
    {
      alert: 'StowageReconcileErrors',
      expr: 'sum by (job, instance, controller) (rate(controller_runtime_reconcile_errors_total[5m])) > 0',
      for: '15m',
      severity: 'warning',
      summary: 'A Stowage controller keeps failing to reconcile.',
      description:
        "Controller {{ $labels.controller }} of {{ $labels.job }} ({{ $labels.instance }}) has been failing reconciles for 15 minutes; objects it manages are not kept up to date. Its log and the objects' events say why.",
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
        'No replica of the Stowage operator (job ' +
        OPERATOR_JOB +
        ') has been scraped successfully for 5 minutes: pools are not reconciled and their metrics are stale. `kubectl -n stowage-system get pods,events` shows why.',
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
        'Prometheus has no target for job ' +
        NODE_JOB +
        ' for 15 minutes: either the node daemon DaemonSet is missing or its PodMonitor is not picked up, and no disk alert can fire. `kubectl -n stowage-system get daemonset,podmonitor` shows which.',
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
};

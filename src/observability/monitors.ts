/**
 * The Prometheus Operator objects that scrape Stowage: a ServiceMonitor for the operator (through
 * the `stowage-operator-metrics` Service of config/manager) and a PodMonitor for the node daemons
 * (a DaemonSet: one target per node, labelled with the node's name). Both set the job names the
 * alert rules expect, whatever the Service or monitor is called.
 */
import { NODE_JOB, OPERATOR_JOB } from './alerts.js';

export const MONITOR_NAMESPACE = 'stowage-system';
/** The named container port both components serve /metrics on. */
export const METRICS_PORT_NAME = 'metrics';
const LABELS = { 'app.kubernetes.io/name': 'stowage', 'app.kubernetes.io/part-of': 'stowage', 'app.kubernetes.io/managed-by': 'stowage' };

export function renderOperatorServiceMonitor(namespace = MONITOR_NAMESPACE): Record<string, unknown> {
  return {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'ServiceMonitor',
    metadata: { name: 'stowage-operator', namespace, labels: { ...LABELS, 'app.kubernetes.io/component': 'operator' } },
    spec: {
      selector: { matchLabels: { 'app.kubernetes.io/name': 'stowage', 'app.kubernetes.io/component': 'operator' } },
      namespaceSelector: { matchNames: [namespace] },
      endpoints: [
        {
          port: METRICS_PORT_NAME,
          path: '/metrics',
          interval: '30s',
          relabelings: [{ action: 'replace', targetLabel: 'job', replacement: OPERATOR_JOB }],
        },
      ],
    },
  };
}

export function renderNodePodMonitor(namespace = MONITOR_NAMESPACE): Record<string, unknown> {
  return {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PodMonitor',
    metadata: { name: 'stowage-node', namespace, labels: { ...LABELS, 'app.kubernetes.io/component': 'node' } },
    spec: {
      selector: { matchLabels: { 'app.kubernetes.io/name': 'stowage', 'app.kubernetes.io/component': 'node' } },
      namespaceSelector: { matchNames: [namespace] },
      podMetricsEndpoints: [
        {
          port: METRICS_PORT_NAME,
          path: '/metrics',
          interval: '30s',
          // Disk metrics carry the node they were read on; keep it rather than renaming it to exported_node.
          honorLabels: true,
          relabelings: [
            { action: 'replace', targetLabel: 'job', replacement: NODE_JOB },
            { action: 'replace', sourceLabels: ['__meta_kubernetes_pod_node_name'], targetLabel: 'node' },
          ],
        },
      ],
    },
  };
}

/**
 * The Prometheus Operator objects that scrape Stowage: a ServiceMonitor for the operator (through
 * the `stowage-operator-metrics` Service of config/manager) and a PodMonitor for the node daemons
 * (a DaemonSet: one target per node, labelled with the node's name). Both set the job names the
 * alert rules expect, whatever the Service or monitor is called. A third, for the Ceph cluster under
 * host and zone pools, scrapes ceph-mgr's Prometheus module.
 */
import { CEPH_MGR_JOB, NODE_JOB, OPERATOR_JOB } from './alerts.js';

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

/**
 * The name of the port on the ceph-mgr Service the ServiceMonitor selects (Rook's name for it); the
 * Service maps it to 9283, where ceph-mgr's Prometheus module listens (its registered default port).
 */
export const CEPH_MGR_METRICS_PORT_NAME = 'http-metrics';
/** The labels of that Service: it belongs to the Ceph cluster the operator keeps for host and zone pools. */
export const CEPH_MGR_SERVICE_LABELS = { 'app.kubernetes.io/name': 'stowage', 'app.kubernetes.io/component': 'ceph-mgr' };

/**
 * Scrapes ceph-mgr's Prometheus module (port 9283) through the `stowage-ceph-mgr` Service, under the
 * job the Ceph alerts select. Only the active manager answers with metrics; a standby's empty
 * answer adds no series. The module puts the daemon in `ceph_daemon` and the host in
 * `hostname`/`instance` labels of some series, so the scrape keeps the target's own labels
 * (honorLabels false): theirs become `exported_instance`.
 */
export function renderCephMgrServiceMonitor(namespace = MONITOR_NAMESPACE): Record<string, unknown> {
  return {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'ServiceMonitor',
    metadata: { name: 'stowage-ceph-mgr', namespace, labels: { ...LABELS, 'app.kubernetes.io/component': 'ceph-mgr' } },
    spec: {
      selector: { matchLabels: CEPH_MGR_SERVICE_LABELS },
      namespaceSelector: { matchNames: [namespace] },
      endpoints: [
        {
          port: CEPH_MGR_METRICS_PORT_NAME,
          path: '/metrics',
          // The module refreshes its cache every 15 s (its scrape_interval); scraping faster reads the same numbers.
          interval: '30s',
          relabelings: [{ action: 'replace', targetLabel: 'job', replacement: CEPH_MGR_JOB }],
        },
      ],
    },
  };
}

/**
 * The shape of one Stowage alert: its rule, its runbook, and the promtool cases that prove it fires
 * when it should and stays quiet when it should not. The rule groups (pool-alerts.ts,
 * disk-alerts.ts, component-alerts.ts) are written in this shape; alerts.ts renders them.
 */

/** Job names the rules expect; the ServiceMonitor/PodMonitor and the plain scrape config set them. */
export const OPERATOR_JOB = 'stowage-operator';
export const NODE_JOB = 'stowage-node';
/** The job of ceph-mgr's Prometheus module (the ServiceMonitor in monitors.ts sets it); ceph-alerts.ts selects it. */
export const CEPH_MGR_JOB = 'stowage-ceph-mgr';
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

// Series selectors for the promtool cases: the labels a real scrape of each component carries.
export const opLabels = { job: OPERATOR_JOB, instance: 'op:8080' };
export const nodeLabels = { job: NODE_JOB, instance: 'n1:8080', node: 'n1' };
export const sel = (name: string, labels: Record<string, string>): string =>
  `${name}{${Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .join(',')}}`;
export const pool = (name: string, labels: Record<string, string> = {}): string => sel(name, { ...opLabels, pool: 'fast', ...labels });
export const disk = (name: string, labels: Record<string, string> = {}): string => sel(name, { ...nodeLabels, disk: 'n1-abc', ...labels });
export const cephLabels = { job: CEPH_MGR_JOB, instance: 'mgr:9283' };
export const ceph = (name: string, labels: Record<string, string> = {}): string => sel(name, { ...cephLabels, ...labels });
export const POOL_LABELS = { ...opLabels, pool: 'fast' };
export const DISK_LABELS = { ...nodeLabels, disk: 'n1-abc' };

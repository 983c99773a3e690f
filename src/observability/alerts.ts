/**
 * Stowage's alert rules: the ONE source of config/prometheus/ (the PrometheusRule and the plain
 * rules file are both rendered from ALERTS by `make manifests`, so they cannot drift) and of the
 * promtool unit tests (every alert carries a case that fires and one that must not). The rules
 * themselves are in pool-alerts.ts, disk-alerts.ts, component-alerts.ts and ceph-alerts.ts; their runbooks in
 * docs/runbooks/<Alert>.md.
 */
import { RUNBOOK_BASE_URL, type AlertDefinition, type RuleGroup } from './alert-definition.js';
import { CEPH_ALERTS } from './ceph-alerts.js';
import { COMPONENT_ALERTS } from './component-alerts.js';
import { DISK_ALERTS } from './disk-alerts.js';
import { POOL_ALERTS } from './pool-alerts.js';

export {
  CEPH_MGR_JOB,
  NODE_JOB,
  OPERATOR_JOB,
  RUNBOOK_BASE_URL,
  type AlertCase,
  type AlertDefinition,
  type RuleGroup,
  type Severity,
} from './alert-definition.js';

export const RULE_GROUPS: readonly RuleGroup[] = [POOL_ALERTS, DISK_ALERTS, COMPONENT_ALERTS, CEPH_ALERTS];

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

/**
 * Whether an alert rule fires on the metrics a fault really produced: the series a real process
 * exports on /metrics (scraped after the fault) are fed, held steady, to the real `promtool test
 * rules` together with the rules Stowage ships, and promtool must find exactly the expected alerts
 * (labels and rendered description) — so a rule that would not fire, or that fires for a disk the
 * fault did not touch, fails the test.
 */
import { stringify as toYaml } from 'yaml';
import { renderPromtoolTests, renderRuleGroups } from '../../src/observability/alerts.js';
import type { AlertDefinition } from '../../src/observability/alert-definition.js';
import { promtool, tempDir } from '../observability/promtool.js';

/**
 * The samples of the metrics `names` in Prometheus text `exposition`, as promtool input series with
 * the scrape's `job` and `instance` added (what Prometheus attaches to every scraped series).
 */
export function scrapedSeries(
  exposition: string,
  names: readonly string[],
  target: { job: string; instance: string },
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of exposition.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || !names.includes(m[1])) continue;
    const labels = [`job="${target.job}"`, `instance="${target.instance}"`, ...(m[2] ? [m[2]] : [])].join(',');
    out[`${m[1]}{${labels}}`] = Number(m[3]);
  }
  return out;
}

/** The rule's description with `{{ $labels.x }}` and `{{ printf "%.0f" $value }}` filled in (the rules checked here use nothing else). */
function describe(rule: AlertDefinition, labels: Record<string, string>, value?: number): string {
  return rule.description
    .replace(/\{\{ \$labels\.(\w+) \}\}/g, (_, k: string) => labels[k] ?? '')
    .replace('{{ printf "%.0f" $value }}', value === undefined ? '' : value.toFixed(0));
}

/**
 * Runs promtool over `series` held for 20 minutes and checks, at 15 minutes (past every `for:`),
 * that `rule` fires exactly for `expected` (the alert's labels, without severity). With `before`
 * (a scrape from before the fault; a series absent there counts as 0) the first 5 minutes hold the
 * values from before and the rest those after, so rate and increase rules see the change the fault
 * made; `value` is the alert's value where its description prints it. Throws with promtool's own
 * report when it does not.
 */
export async function expectAlerts(
  rule: AlertDefinition,
  series: Record<string, number>,
  expected: readonly Record<string, string>[],
  before?: Record<string, number>,
  value?: number,
): Promise<void> {
  const values = (s: string, v: number): string => (before ? `${before[s] ?? 0}x5 ${v}x15` : `${v}x20`);
  const observed: AlertDefinition = {
    ...rule,
    cases: [
      {
        name: 'the metrics the fault produced',
        series: Object.fromEntries(Object.entries(series).map(([s, v]) => [s, values(s, v)])),
        at: '15m',
        expect: expected.map((labels) => ({ labels, description: describe(rule, labels, value) })),
      },
    ],
  };
  const tmp = await tempDir('faults-alerts');
  try {
    await tmp.write('rules.yaml', toYaml(renderRuleGroups()));
    await tmp.write('tests.yaml', toYaml(renderPromtoolTests('rules.yaml', [observed])));
    const result = await promtool(['test', 'rules', 'tests.yaml'], { cwd: tmp.dir });
    if (result.code !== 0) throw new Error(`promtool: ${rule.alert} on the fault's metrics is not as expected:\n${result.output}`);
  } finally {
    await tmp.cleanup();
  }
}

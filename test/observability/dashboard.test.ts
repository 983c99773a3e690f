import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import { stringify } from 'yaml';
import { promtool, tempDir } from './promtool.js';
import { REPO, SYNTHETIC_METRICS, metricNamesIn, readReference } from './reference.js';

const DASHBOARD = `${REPO}config/grafana/stowage-dashboard.json`;

interface Target {
  expr?: string;
  refId?: string;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  targets?: Target[];
  panels?: Panel[];
}

/** Grafana's own variables and ours, replaced by values PromQL accepts, to check the queries' syntax. */
function substituteVariables(expr: string): string {
  return expr.replace(/\$__rate_interval|\$__interval|\$__range/g, '5m').replace(/\$\{?(pool|node|datasource)\}?/g, '.*');
}

describe('Grafana dashboard (config/grafana)', () => {
  const raw = readFileSync(DASHBOARD, 'utf8');
  let dashboard: {
    uid: string;
    title: string;
    schemaVersion: number;
    panels: Panel[];
    templating: { list: { name: string; type: string; query?: unknown }[] };
  };
  let panels: Panel[];
  let exprs: { panel: string; expr: string }[];

  before(() => {
    dashboard = JSON.parse(raw);
    panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
    exprs = panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr ?? '' })));
  });

  it('is valid dashboard JSON: uid, title, schema version, unique panel ids, a grid position and queries for each panel', () => {
    expect(dashboard.uid).to.match(/^[a-z0-9-]{1,40}$/);
    expect(dashboard.title).to.equal('Stowage');
    expect(dashboard.schemaVersion).to.be.a('number');
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size, 'panel ids are unique').to.equal(ids.length);
    for (const p of panels) {
      expect(p.gridPos.x + p.gridPos.w, `${p.title} fits the 24-column grid`).to.be.at.most(24);
      if (p.type === 'row') continue;
      expect(p.targets, `${p.title} has queries`).to.be.an('array').that.is.not.empty;
      for (const t of p.targets!) expect(t.expr, `${p.title} query ${t.refId}`).to.be.a('string').and.not.empty;
    }
    expect(exprs.length).to.be.greaterThan(15);
  });

  it("shows pools' capacity and trend, disks' health and operator health", () => {
    const all = exprs.map((e) => e.expr).join('\n');
    for (const metric of [
      'stowage_pool_capacity_bytes',
      'predict_linear',
      'stowage_disk_health_status',
      'stowage_disk_present',
      'controller_runtime_reconcile_total',
      'up{',
    ]) {
      expect(all, metric).to.contain(metric);
    }
  });

  it('every query (and variable) uses only metrics from the reference (docs/metrics.md)', () => {
    const reference = readReference();
    const families = new Set(reference.keys());
    const queries = [
      ...exprs,
      ...dashboard.templating.list
        .filter((v) => v.type === 'query')
        .map((v) => ({
          panel: `variable ${v.name}`,
          expr: String((v.query as { query?: string }).query).replace(/^label_values\((.*),\s*\w+\)$/, '$1'),
        })),
    ];
    const unknown: string[] = [];
    for (const { panel, expr } of queries) {
      const names = metricNamesIn(expr, families);
      expect(names.size, `${panel}: no metric found in ${expr}`).to.be.greaterThan(0);
      for (const n of names) if (!families.has(n) && !SYNTHETIC_METRICS.has(n)) unknown.push(`${panel}: ${n}`);
    }
    expect(unknown).to.deep.equal([]);
  });

  it('every query is valid PromQL (promtool check rules on them as recording rules)', async () => {
    const tmp = await tempDir('dashboard');
    try {
      const rules = {
        groups: [
          { name: 'dashboard', rules: exprs.map((e, i) => ({ record: `dashboard:query_${i}`, expr: substituteVariables(e.expr) })) },
        ],
      };
      const file = await tmp.write('dashboard-rules.yaml', stringify(rules, { lineWidth: 0 }));
      const result = await promtool(['check', 'rules', file]);
      expect(result.code, result.output).to.equal(0);
    } finally {
      await tmp.cleanup();
    }
  });

  it('the metric check can fail: an unknown metric is found', () => {
    expect([...metricNamesIn('sum by (pool) (rate(stowage_pool_bogus_total{pool=~"$pool"}[$__rate_interval]))')]).to.deep.equal([
      'stowage_pool_bogus_total',
    ]);
    expect([
      ...metricNamesIn(
        'histogram_quantile(0.99, sum by (le) (rate(stowage_csi_request_duration_seconds_bucket[5m])))',
        new Set(['stowage_csi_request_duration_seconds']),
      ),
    ]).to.deep.equal(['stowage_csi_request_duration_seconds']);
  });
});

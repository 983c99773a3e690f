import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { parse } from 'yaml';
import { PodMonitor, PrometheusRule, ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { DEFAULT_PROMETHEUS_DIR, RULES_FILE, renderPrometheusManifests, toYaml } from '../../hack/gen-observability.js';
import { ALERTS, renderPromtoolTests, renderRuleGroups, runbookUrl, type AlertDefinition } from '../../src/observability/alerts.js';
import { promtool, tempDir } from './promtool.js';
import { REPO, SYNTHETIC_METRICS, metricNamesIn, readCephReference, readReference } from './reference.js';

const RUNBOOK_SECTIONS = ['## Meaning', '## Impact', '## Diagnosis', '## Fix'];

describe('alert rules (config/prometheus)', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  before(async () => {
    tmp = await tempDir('rules');
  });
  after(async () => {
    await tmp?.cleanup();
  });

  it('config/prometheus is what `make manifests` generates from src/metrics (not stale)', () => {
    for (const [name, content] of renderPrometheusManifests()) {
      const path = join(DEFAULT_PROMETHEUS_DIR, name);
      expect(existsSync(path), `${path} missing: run make manifests`).to.equal(true);
      expect(readFileSync(path, 'utf8'), `${path} is stale: run make manifests`).to.equal(content);
    }
  });

  it("the PrometheusRule, ServiceMonitor and PodMonitor pass the Prometheus Operator's schemas (kubernetes-models)", () => {
    const read = (name: string) => parse(readFileSync(join(DEFAULT_PROMETHEUS_DIR, name), 'utf8'));
    new PrometheusRule(read('prometheus-rule.yaml')).validate();
    const sm = read('service-monitor-operator.yaml');
    new ServiceMonitor(sm).validate();
    const pm = read('pod-monitor-node.yaml');
    new PodMonitor(pm).validate();
    const cephMgr = read('service-monitor-ceph-mgr.yaml');
    new ServiceMonitor(cephMgr).validate();
    expect(cephMgr.spec.endpoints[0].relabelings).to.deep.include({
      action: 'replace',
      targetLabel: 'job',
      replacement: 'stowage-ceph-mgr',
    });
    expect(cephMgr.spec.endpoints[0].port).to.equal('http-metrics');
    expect(cephMgr.spec.selector.matchLabels).to.deep.equal({
      'app.kubernetes.io/name': 'stowage',
      'app.kubernetes.io/component': 'ceph-mgr',
    });
    // They set the job names the rules use, whatever the Service or monitor is called.
    expect(sm.spec.endpoints[0].relabelings).to.deep.include({ action: 'replace', targetLabel: 'job', replacement: 'stowage-operator' });
    expect(pm.spec.podMetricsEndpoints[0].relabelings).to.deep.include({
      action: 'replace',
      targetLabel: 'job',
      replacement: 'stowage-node',
    });
    expect(
      () => new ServiceMonitor({ ...sm, spec: { ...sm.spec, endpoints: [{ port: 7 }] } }).validate(),
      'a wrong type is caught',
    ).to.throw();
  });

  it('the PrometheusRule and the plain rules file carry the same groups', () => {
    const plain = parse(readFileSync(join(DEFAULT_PROMETHEUS_DIR, RULES_FILE), 'utf8'));
    const crd = parse(readFileSync(join(DEFAULT_PROMETHEUS_DIR, 'prometheus-rule.yaml'), 'utf8'));
    expect(crd.kind).to.equal('PrometheusRule');
    expect(crd.spec).to.deep.equal(plain);
  });

  it("promtool check rules accepts the plain file and the PrometheusRule's spec", async () => {
    const plain = await promtool(['check', 'rules', join(DEFAULT_PROMETHEUS_DIR, RULES_FILE)]);
    expect(plain.code, plain.output).to.equal(0);
    expect(plain.output).to.contain(`SUCCESS: ${ALERTS.length} rules found`);
    const crd = parse(readFileSync(join(DEFAULT_PROMETHEUS_DIR, 'prometheus-rule.yaml'), 'utf8'));
    const spec = await tmp.write('from-crd.yaml', toYaml(crd.spec));
    const fromCrd = await promtool(['check', 'rules', spec]);
    expect(fromCrd.code, fromCrd.output).to.equal(0);
  });

  it('the scrape configuration in docs/metrics.md is valid and uses the job names the rules expect', async () => {
    const doc = readFileSync(join(REPO, 'docs/metrics.md'), 'utf8');
    const block = /```yaml\n([\s\S]*?)```/.exec(doc)?.[1];
    expect(block, 'a yaml block in docs/metrics.md').to.be.a('string');
    const config = parse(block!);
    expect(config.scrape_configs.map((j: { job_name: string }) => j.job_name)).to.deep.equal(['stowage-operator', 'stowage-node']);
    await tmp.write(RULES_FILE, readFileSync(join(DEFAULT_PROMETHEUS_DIR, RULES_FILE), 'utf8'));
    // Debian's Prometheus is built without Kubernetes service discovery; everything else
    // (rule file, relabelling) is checked as written, with a static target in its place.
    for (const job of config.scrape_configs) {
      expect(job.kubernetes_sd_configs, job.job_name).to.be.an('array');
      delete job.kubernetes_sd_configs;
      job.static_configs = [{ targets: ['127.0.0.1:8080'] }];
    }
    const file = await tmp.write('prometheus.yml', toYaml(config));
    const result = await promtool(['check', 'config', file]);
    expect(result.code, result.output).to.equal(0);
  });

  it('ships every alert the issue asks for', () => {
    expect(ALERTS.map((a) => a.alert)).to.include.members([
      'StowagePoolNotReady',
      'StowagePoolDegraded',
      'StowagePoolReplicationNotSatisfiable',
      'StowagePoolCapacityLow',
      'StowagePoolFillingUp',
      'StowageDiskUnhealthy',
      'StowageDiskMissing',
      'StowageDiskIOErrors',
      'StowageDiskMediaErrors',
      'StowageDiskWipeFailing',
      'StowageReconcileErrors',
      'StowageOperatorDown',
      'StowageNodeDaemonDown',
      'StowageNodeDaemonNotScraped',
      'StowageCephDataDegraded',
      'StowageCephNearFull',
      'StowageCephQuorumLost',
      'StowageCephOSDDown',
    ]);
    expect(ALERTS.find((a) => a.alert === 'StowageCephNearFull')!.expr, "Ceph's nearfull ratio").to.match(/>= 0\.85$/);
    expect(ALERTS.find((a) => a.alert === 'StowagePoolFillingUp')!.expr).to.contain('predict_linear');
  });

  it('every alert has a severity, a summary, a description naming the object and a runbook with kubectl diagnosis', () => {
    for (const a of ALERTS) {
      expect(a.severity, a.alert).to.be.oneOf(['critical', 'warning']);
      expect(a.summary.length, a.alert).to.be.greaterThan(10);
      // Alerts about a missing job name the job (there is no object); all others name theirs.
      if (!/absent\(/.test(a.expr)) expect(a.description, a.alert).to.match(/\{\{ \$labels\.(pool|disk|node|controller) \}\}/);
      expect(runbookUrl(a.alert)).to.match(new RegExp(`/docs/runbooks/${a.alert}\\.md$`));
      const path = join(REPO, 'docs/runbooks', `${a.alert}.md`);
      expect(existsSync(path), `${path} missing`).to.equal(true);
      const runbook = readFileSync(path, 'utf8');
      expect(runbook, path).to.match(new RegExp(`^# ${a.alert}\\n`));
      for (const section of RUNBOOK_SECTIONS) expect(runbook, `${path} lacks "${section}"`).to.contain(`${section}\n`);
      expect(runbook, `${path} has no kubectl command`).to.match(/```sh\n(.*\n)*?kubectl /);
    }
  });

  it('ships realistic for: durations (minutes, not the seconds the e2e copy uses)', () => {
    const seconds = (d: string): number => Number(d.slice(0, -1)) * ({ s: 1, m: 60, h: 3600 } as Record<string, number>)[d.slice(-1)];
    for (const a of ALERTS) if (a.for) expect(seconds(a.for), `${a.alert} for: ${a.for}`).to.be.at.least(300);
    const shortened = renderRuleGroups({ forOverride: '2s' }).groups as { rules: { for?: string }[] }[];
    expect(
      shortened
        .flatMap((g) => g.rules)
        .filter((r) => r.for)
        .every((r) => r.for === '2s'),
    ).to.equal(true);
  });

  it('alerts use only metrics from the reference (docs/metrics.md; the Ceph alerts its ceph-mgr table)', () => {
    const reference = readReference();
    const families = new Set(reference.keys());
    const cephSeries = readCephReference();
    expect([...cephSeries]).to.include.members(['ceph_pg_degraded', 'ceph_osd_up', 'ceph_mon_quorum_status', 'ceph_osd_stat_bytes_used']);
    for (const a of ALERTS) {
      const ceph = a.alert.startsWith('StowageCeph');
      const unknown = [...metricNamesIn(a.expr, families)].filter(
        (n) => !(ceph ? cephSeries : families).has(n) && !SYNTHETIC_METRICS.has(n),
      );
      expect(unknown, `${a.alert} uses unknown metrics`).to.deep.equal([]);
      // The Ceph alerts read only the ceph-mgr scrape, so another Ceph scraped by the same Prometheus (Rook's) never trips them.
      if (!ceph) continue;
      for (const name of metricNamesIn(a.expr)) {
        for (const m of a.expr.matchAll(new RegExp(`\\b${name}\\b(\\{[^}]*\\})?`, 'g'))) {
          expect(m[1] ?? '', `${a.alert}: ${name} without the job selector`).to.contain('job="stowage-ceph-mgr"');
        }
      }
    }
  });

  describe('promtool test rules: one case that fires and one that must not, per alert', () => {
    for (const alert of ALERTS) {
      it(alert.alert, async () => {
        expect(
          alert.cases.some((c) => c.expect.length > 0),
          'a case that fires',
        ).to.equal(true);
        expect(
          alert.cases.some((c) => c.expect.length === 0),
          'a case that must not fire',
        ).to.equal(true);
        const result = await runPromtoolTests(tmp, [alert]);
        expect(result.code, result.output).to.equal(0);
        expect(result.output).to.contain('SUCCESS');
      });
    }
  });

  it('promtool test rules can fail: a wrong expectation is reported', async () => {
    const notReady = ALERTS.find((a) => a.alert === 'StowagePoolNotReady')!;
    const wrong: AlertDefinition = { ...notReady, cases: [{ ...notReady.cases[1], expect: notReady.cases[0].expect }] };
    const result = await runPromtoolTests(tmp, [wrong]);
    expect(result.code).not.to.equal(0);
    expect(result.output).to.contain('FAILED');
  });
});

async function runPromtoolTests(tmp: Awaited<ReturnType<typeof tempDir>>, alerts: readonly AlertDefinition[]) {
  await tmp.write('rules.yaml', toYaml(renderRuleGroups()));
  const name = `tests-${alerts.map((a) => a.alert).join('-')}.yaml`;
  await tmp.write(name, toYaml(renderPromtoolTests('rules.yaml', alerts)));
  return promtool(['test', 'rules', name], { cwd: tmp.dir });
}

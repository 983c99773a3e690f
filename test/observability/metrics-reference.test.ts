import { expect } from 'chai';
import { HealthServer } from '../../src/runtime/health-server.js';
import { fullRegistry } from './full-registry.js';
import { promtool } from './promtool.js';
import { lintProblems, parseScrape, readReference, type ScrapedFamily } from './reference.js';

describe('metrics reference (docs/metrics.md)', () => {
  let scrape: string;
  let families: Map<string, ScrapedFamily>;
  let declaredLabels: Map<string, string[]>;
  const reference = readReference();

  before(async () => {
    const registry = await fullRegistry();
    // Scraped over HTTP from the same server the components use, not read from the registry object.
    const server = new HealthServer(registry);
    const url = await server.listen('127.0.0.1:0');
    try {
      scrape = await (await fetch(`${url.replace(/\/$/, '')}/metrics`)).text();
    } finally {
      await server.close();
    }
    families = parseScrape(scrape);
    declaredLabels = new Map(
      registry.getMetricsAsArray().map((m) => [m.name, [...((m as unknown as { labelNames?: string[] }).labelNames ?? [])]]),
    );
  });

  it('documents every metric the code registers', () => {
    const undocumented = [...families.keys()].filter((n) => !reference.has(n));
    expect(undocumented, 'registered but missing from docs/metrics.md').to.deep.equal([]);
  });

  it('documents no metric the code does not register', () => {
    const stale = [...reference.keys()].filter((n) => !families.has(n));
    expect(stale, 'in docs/metrics.md but not registered by any collector').to.deep.equal([]);
  });

  it('gives every metric its real type and exactly its labels', () => {
    const wrong: string[] = [];
    for (const [name, family] of families) {
      const doc = reference.get(name);
      if (!doc) continue;
      if (doc.type !== family.type) wrong.push(`${name}: documented as ${doc.type}, is ${family.type}`);
      const labels = new Set([...family.labels, ...(declaredLabels.get(name) ?? [])]);
      const want = [...labels].sort().join(',');
      const have = [...doc.labels].sort().join(',');
      if (want !== have) wrong.push(`${name}: documented labels [${have}], real labels [${want}]`);
      if (doc.meaning.length < 10) wrong.push(`${name}: meaning missing`);
    }
    expect(wrong).to.deep.equal([]);
  });

  it('follows the naming rules: stowage_ prefix, counters end in _total, base units', () => {
    const external = /^(process_|nodejs_|controller_runtime_|workqueue_|leader_election_)/;
    for (const [name, family] of families) {
      if (external.test(name)) continue;
      expect(name, name).to.match(/^stowage_/);
      if (family.type === 'counter') expect(name, name).to.match(/_total$/);
      else expect(name, name).not.to.match(/_total$/);
      expect(name, `${name} uses a non-base unit`).not.to.match(/_(milliseconds|ms|kilobytes|megabytes|gigabytes|percent)(_|$)/);
    }
  });

  it("passes promtool check metrics (but for prom-client's three known gauges named _total)", async () => {
    const result = await promtool(['check', 'metrics'], { stdin: scrape });
    expect(lintProblems(result.output), result.output).to.deep.equal([]);
  });

  it('the check can fail: the parser sees a metric the reference lacks', () => {
    const extra = parseScrape(`${scrape}# HELP stowage_bogus_total x\n# TYPE stowage_bogus_total counter\nstowage_bogus_total 1\n`);
    expect([...extra.keys()].filter((n) => !reference.has(n))).to.deep.equal(['stowage_bogus_total']);
  });
});

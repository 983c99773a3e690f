/**
 * Reading the metrics contract: the tables of docs/metrics.md, the metric families of a scrape,
 * and the metric names a PromQL expression uses.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export const METRICS_DOC = `${REPO}docs/metrics.md`;

export interface MetricDoc {
  readonly name: string;
  readonly type: string;
  readonly labels: readonly string[];
  readonly meaning: string;
}

/** Every table row of docs/metrics.md whose first cell is a `metric_name`. */
export function readReference(path = METRICS_DOC): Map<string, MetricDoc> {
  const docs = new Map<string, MetricDoc>();
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const cells = line
      .split('|')
      .slice(1, -1)
      .map((c) => c.trim());
    const name = /^`([a-zA-Z_:][\w:]*)`$/.exec(cells[0] ?? '')?.[1];
    if (!name || cells.length !== 4) continue;
    if (docs.has(name)) throw new Error(`docs/metrics.md lists ${name} twice`);
    const labels = [...cells[2].matchAll(/`([^`]+)`/g)].map((m) => m[1]);
    docs.set(name, { name, type: cells[1], labels, meaning: cells[3] });
  }
  return docs;
}

/**
 * The ceph-mgr series of docs/metrics.md (its "## Ceph" table: Metric | Labels | Meaning): what
 * ceph-mgr's Prometheus module exports and the Ceph alerts may use. Not part of the stable
 * reference above, which lists what Stowage itself registers.
 */
export function readCephReference(path = METRICS_DOC): Set<string> {
  const names = new Set<string>();
  const text = readFileSync(path, 'utf8');
  const section = text.slice(text.indexOf('\n## Ceph'), text.indexOf('\n## ', text.indexOf('\n## Ceph') + 1));
  for (const line of section.split('\n')) {
    const cells = line
      .split('|')
      .slice(1, -1)
      .map((c) => c.trim());
    const name = /^`(ceph_[\w:]+)`$/.exec(cells[0] ?? '')?.[1];
    if (name && cells.length === 3) names.add(name);
  }
  return names;
}

export interface ScrapedFamily {
  type: string;
  help: string;
  labels: Set<string>;
  samples: number;
}

/** Metric families of a text-format scrape, with the label names their samples carry (not le/quantile). */
export function parseScrape(text: string): Map<string, ScrapedFamily> {
  const families = new Map<string, ScrapedFamily>();
  const familyOf = (sample: string): ScrapedFamily | undefined =>
    families.get(sample) ?? families.get(sample.replace(/_(bucket|sum|count)$/, ''));
  for (const line of text.split('\n')) {
    let m: RegExpExecArray | null;
    if ((m = /^# HELP (\S+) (.*)$/.exec(line))) {
      families.set(m[1], { type: 'untyped', help: m[2], labels: new Set(), samples: 0 });
    } else if ((m = /^# TYPE (\S+) (\S+)$/.exec(line))) {
      const f = families.get(m[1]) ?? { type: 'untyped', help: '', labels: new Set<string>(), samples: 0 };
      f.type = m[2]!;
      families.set(m[1], f);
    } else if (line && !line.startsWith('#')) {
      const s = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s/.exec(line);
      if (!s) throw new Error(`unparsable sample line: ${line}`);
      const family = familyOf(s[1]);
      if (!family) throw new Error(`sample ${s[1]} has no # TYPE line`);
      family.samples++;
      for (const l of (s[2] ?? '').matchAll(/([a-zA-Z_]\w*)="/g)) if (l[1] !== 'le' && l[1] !== 'quantile') family.labels.add(l[1]);
    }
  }
  return families;
}

const KEYWORDS = new Set([
  'and',
  'or',
  'unless',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'offset',
  'inf',
  'nan',
  'atan2',
]);
/** Series Prometheus makes itself, not exported by any component. */
export const SYNTHETIC_METRICS = new Set(['up', 'scrape_duration_seconds', 'scrape_samples_scraped']);

/**
 * The metric names a PromQL expression selects. Strings, label matchers, ranges, grouping lists
 * and Grafana variables are removed first; what is left that is an identifier not followed by `(`
 * and not a keyword is a metric name. Histogram series (`_bucket`, `_sum`, `_count`) are mapped to
 * their family when `families` knows it.
 */
export function metricNamesIn(expr: string, families?: ReadonlySet<string>): Set<string> {
  let e = expr
    .replace(/\$\{[^}]*\}|\$\w+/g, '1')
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  e = e.replace(/\boffset\s+\S+/g, ' ');
  const names = new Set<string>();
  for (const m of e.matchAll(/[a-zA-Z_:][\w:]*|\d[\w.]*/g)) {
    const token = m[0];
    if (/^\d/.test(token) || KEYWORDS.has(token)) continue;
    const after = e.slice(m.index + token.length);
    if (/^\s*\(/.test(after)) continue; // a function or aggregation
    const base = token.replace(/_(bucket|sum|count)$/, '');
    names.add(families && base !== token && families.has(base) ? base : token);
  }
  return names;
}

/**
 * prom-client's default metrics include three gauges named `_total` (nodejs_active_handles_total,
 * nodejs_active_requests_total, nodejs_active_resources_total) that `promtool check metrics` flags.
 * They are external names (docs/metrics.md) that dashboards built for prom-client use, so they are
 * kept; every other finding of promtool is returned.
 */
export const KNOWN_EXTERNAL_LINT = /^nodejs_active_(handles|requests|resources)_total non-counter metrics should not have "_total" suffix$/;

export function lintProblems(promtoolOutput: string): string[] {
  return promtoolOutput
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !KNOWN_EXTERNAL_LINT.test(l));
}

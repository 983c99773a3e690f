/**
 * The layering check and the architecture picture, both from dependency-cruiser's reading of src/.
 *
 * `make lint-deps` (part of `make test`) fails on an import that runs against the layers declared in
 * .dependency-cruiser.cjs, or on an import cycle. `make architecture` rewrites the generated graph in
 * docs/architecture.md from the imports as they are; test/architecture/layering.test.ts fails when the
 * file is stale, so the picture cannot drift from the code.
 *
 * Usage: node dist/hack/architecture.js check | write
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { cruise, type ICruiseResult } from 'dependency-cruiser';
import extractDepcruiseOptions from 'dependency-cruiser/config-utl/extract-depcruise-options';
import extractTSConfig from 'dependency-cruiser/config-utl/extract-ts-config';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const ARCHITECTURE_DOC = join(REPO, 'docs/architecture.md');
const BEGIN = '<!-- BEGIN GENERATED: make architecture (hack/architecture.ts) -->';
const END = '<!-- END GENERATED -->';

/** What each top-level folder of src/ is, for the picture's labels. */
export const FOLDER_ROLES: Readonly<Record<string, string>> = {
  cli: 'cli — stowage, kubectl-stowage',
  operator: 'operator — role',
  node: 'node — role: agent, btrfs and Ceph engines',
  csi: 'csi — CSI services',
  runtime: 'runtime — controller library',
  metrics: 'metrics — shared helpers',
  host: 'host — commands, mounts, loops',
  crds: 'crds — API types, schemas, labels',
  kube: 'kube — API client',
  util: 'util',
  observability: 'observability — alert rules, monitors',
};

/** Cruise `dirs` (relative to `baseDir`) with the project's rules; the raw result. */
export async function cruiseProject(baseDir = REPO, dirs: readonly string[] = ['src']): Promise<ICruiseResult> {
  const options = await extractDepcruiseOptions(join(REPO, '.dependency-cruiser.cjs'));
  const tsConfig = baseDir === REPO ? extractTSConfig(join(REPO, 'tsconfig.json')) : undefined;
  const { tsConfig: _ignored, ...rest } = options as typeof options & { tsConfig?: unknown };
  const out = await cruise(
    [...dirs],
    { ...rest, baseDir, ...(tsConfig ? { tsConfig: { fileName: join(REPO, 'tsconfig.json') } } : {}) },
    undefined,
    { tsConfig },
  );
  return out.output as ICruiseResult;
}

/** One line per broken rule: `rule: from → to (why)`. */
export function describeViolations(result: ICruiseResult): string[] {
  return result.summary.violations.map((v) => {
    const path = v.cycle?.length ? v.cycle.map((c) => (typeof c === 'string' ? c : c.name)).join(' → ') : `${v.from} → ${v.to}`;
    return `${v.rule.name}: ${path}`;
  });
}

const folderOf = (source: string): string | undefined => /^src\/([^/]+)\//.exec(source)?.[1];

/** folder → folder → number of imports, over src/ (imports inside one folder left out). */
export function folderGraph(result: ICruiseResult): Map<string, Map<string, number>> {
  const graph = new Map<string, Map<string, number>>();
  for (const module of result.modules) {
    const from = folderOf(module.source);
    if (!from) continue;
    if (!graph.has(from)) graph.set(from, new Map());
    for (const dep of module.dependencies) {
      const to = folderOf(dep.resolved);
      if (!to || to === from) continue;
      const edges = graph.get(from)!;
      edges.set(to, (edges.get(to) ?? 0) + 1);
    }
  }
  return graph;
}

/** The graph as a Mermaid flowchart (GitHub renders it), every edge labelled with its import count. */
export function renderMermaid(graph: Map<string, Map<string, number>>, fileCounts: Map<string, number>): string {
  const folders = [...new Set([...graph.keys(), ...[...graph.values()].flatMap((e) => [...e.keys()])])].sort();
  const lines = ['```mermaid', 'flowchart TD'];
  for (const f of folders) lines.push(`  ${f}["${FOLDER_ROLES[f] ?? f}<br/>${fileCounts.get(f) ?? 0} files"]`);
  for (const from of folders) {
    for (const [to, n] of [...(graph.get(from) ?? new Map<string, number>())].sort(([a], [b]) => a.localeCompare(b))) {
      lines.push(`  ${from} -->|${n}| ${to}`);
    }
  }
  lines.push('```');
  return lines.join('\n');
}

/** The generated block of docs/architecture.md for this cruise. */
export function renderGeneratedBlock(result: ICruiseResult): string {
  const counts = new Map<string, number>();
  for (const m of result.modules) {
    const f = folderOf(m.source);
    if (f) counts.set(f, (counts.get(f) ?? 0) + 1);
  }
  return `${BEGIN}\n${renderMermaid(folderGraph(result), counts)}\n${END}`;
}

/** `doc` with its generated block replaced by `block`. */
export function withGeneratedBlock(doc: string, block: string): string {
  const start = doc.indexOf(BEGIN);
  const end = doc.indexOf(END);
  if (start < 0 || end < start)
    throw new Error(`docs/architecture.md has no generated block: put the lines "${BEGIN}" and "${END}" where the graph goes`);
  return doc.slice(0, start) + block + doc.slice(end + END.length);
}

async function main(mode: string | undefined): Promise<void> {
  const result = await cruiseProject();
  const problems = describeViolations(result);
  if (mode === 'check') {
    if (problems.length > 0) {
      console.error(
        `Layering check failed: ${problems.length} import(s) break the rules in .dependency-cruiser.cjs (see docs/architecture.md):`,
      );
      for (const p of problems) console.error(`  ${p}`);
      process.exit(1);
    }
    console.log(
      `Layering check: ${result.summary.totalCruised} modules, ${result.summary.totalDependenciesCruised} imports, no violations.`,
    );
    return;
  }
  if (mode === 'write') {
    const doc = await readFile(ARCHITECTURE_DOC, 'utf8');
    await writeFile(ARCHITECTURE_DOC, withGeneratedBlock(doc, renderGeneratedBlock(result)));
    console.log(`wrote the generated graph in ${ARCHITECTURE_DOC}`);
    return;
  }
  console.error('usage: node dist/hack/architecture.js check | write');
  process.exit(2);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv[2]).catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  });
}

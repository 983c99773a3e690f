/**
 * `stowage validate -f FILE|DIR…`: checks StoragePool and NodeDisk manifests offline with exactly
 * the validator the operator uses, so a GitOps pipeline can reject a bad pool before it reaches a
 * cluster (where an older API server would accept it and only the pool's status would complain).
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { LineCounter, parseAllDocuments } from 'yaml';
import { GROUP, STOWAGE_KINDS, validateObject, withDefaults, type Problem } from '../crds/index.js';
import { errorMessage } from '../util/errors.js';

const MANIFEST_EXTENSIONS = new Set(['.yaml', '.yml', '.json']);

/** One object found in a file, with enough context to name it in output. */
interface FoundObject {
  file: string;
  index: number;
  object: unknown;
}

/** A line of output about a file or an object; `failed` lines make the exit code 1. */
interface Finding {
  text: string;
  failed: boolean;
}

/**
 * Validates every StoragePool and NodeDisk in `paths` (files or directories, searched recursively
 * for .yaml/.yml/.json; `-` reads standard input). Prints one line per problem as
 * `FILE: Kind/name: field.path: message`, an OK line per valid object, a note per ignored object,
 * and a summary. Returns 0 when everything is valid, 1 otherwise.
 */
export async function validateCommand(paths: string[], out: NodeJS.WritableStream): Promise<number> {
  const findings: Finding[] = [];
  const objects: FoundObject[] = [];
  let files = 0;
  let checked = 0;
  let invalid = 0;

  for (const path of paths) {
    let found: string[];
    try {
      found = await manifestFiles(path);
    } catch (err) {
      findings.push({ text: `${path}: cannot read: ${errorMessage(err)}`, failed: true });
      continue;
    }
    if (found.length === 0) {
      findings.push({ text: `${path}: no .yaml, .yml or .json files found`, failed: true });
    }
    for (const file of found) {
      files++;
      const text = await readText(file).catch((err: unknown) => {
        findings.push({ text: `${file}: cannot read: ${errorMessage(err)}`, failed: true });
        return undefined;
      });
      if (text === undefined) continue;
      for (const object of parseManifests(file, text, findings)) {
        objects.push(object);
        const result = checkObject(object);
        if (result.checked) {
          checked++;
          if (result.findings.some((f) => f.failed)) invalid++;
        }
        findings.push(...result.findings);
      }
    }
  }
  const conflicts = conflictFindings(objects);
  findings.push(...conflicts);

  for (const f of findings) out.write(`${f.text}\n`);
  const failed = findings.some((f) => f.failed);
  out.write(
    `${failed ? 'FAILED' : 'PASSED'}: ${checked} Stowage object${checked === 1 ? '' : 's'} in ${files} file${files === 1 ? '' : 's'}, ${invalid} invalid${conflicts.length ? `, ${conflicts.length} conflict${conflicts.length === 1 ? '' : 's'}` : ''}\n`,
  );
  return failed ? 1 : 0;
}

/** A file as is; a directory as its manifest files, recursively, in a stable (sorted) order. */
async function manifestFiles(path: string): Promise<string[]> {
  if (path === '-') return ['-'];
  const info = await stat(path);
  if (!info.isDirectory()) return [path];
  const files: string[] = [];
  for (const entry of (await readdir(path, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    const child = join(path, entry.name);
    if (entry.isDirectory()) files.push(...(await manifestFiles(child)));
    else if (MANIFEST_EXTENSIONS.has(extname(entry.name).toLowerCase())) files.push(child);
  }
  return files;
}

async function readText(file: string): Promise<string> {
  if (file !== '-') return readFile(file, 'utf8');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Every object in a multi-document YAML (or JSON) file; `kind: List` / `*List` objects are
 * unpacked as kubectl does. YAML 1.1 on purpose: kubectl and the API server read `yes`/`no` as
 * booleans, and the validator must see what they see.
 */
function parseManifests(file: string, text: string, findings: Finding[]): FoundObject[] {
  const lines = new LineCounter();
  const objects: FoundObject[] = [];
  const docs = parseAllDocuments(text, { version: '1.1', prettyErrors: false, lineCounter: lines, uniqueKeys: true });
  docs.forEach((doc, i) => {
    if (doc.errors.length > 0) {
      for (const error of doc.errors) {
        const { line, col } = lines.linePos(error.pos[0]);
        findings.push({
          text: `${file}:${line}:${col}: YAML syntax error: ${error.message}; fix the file (document ${i + 1} was not checked)`,
          failed: true,
        });
      }
      return;
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      findings.push({ text: `${file}: document ${i + 1}: ${errorMessage(err)}`, failed: true });
      return;
    }
    if (value === null || value === undefined) return; // empty document, e.g. after a trailing ---
    if (isRecord(value) && typeof value.kind === 'string' && value.kind.endsWith('List') && Array.isArray(value.items)) {
      value.items.forEach((item) => objects.push({ file, index: i + 1, object: item }));
    } else {
      objects.push({ file, index: i + 1, object: value });
    }
  });
  return objects;
}

function checkObject({ file, index, object }: FoundObject): { checked: boolean; findings: Finding[] } {
  const label = `${file}: ${describe(object, index)}`;
  if (!isRecord(object)) {
    return { checked: false, findings: [{ text: `${label}: not a Kubernetes object (expected a mapping with apiVersion and kind)`, failed: true }] };
  }
  if (!isStowageDocument(object)) {
    return { checked: false, findings: [{ text: `${label}: ignored (not a Stowage resource)`, failed: false }] };
  }
  const problems: Problem[] = validateObject(object);
  if (problems.length === 0) return { checked: true, findings: [{ text: `${label}: OK`, failed: false }] };
  return {
    checked: true,
    findings: problems.map((p) => ({ text: `${label}: ${p.path ? `${p.path}: ` : ''}${p.message}`, failed: true })),
  };
}

/**
 * Problems only visible across objects: the same object twice (the later one silently wins on
 * apply), and two pools publishing one StorageClass name (the operator can serve only one).
 */
function conflictFindings(objects: FoundObject[]): Finding[] {
  const findings: Finding[] = [];
  const byName = new Map<string, FoundObject>();
  const byClass = new Map<string, FoundObject>();
  for (const found of objects) {
    const obj = found.object;
    if (!isRecord(obj) || !isStowageDocument(obj)) continue;
    const name = isRecord(obj.metadata) && typeof obj.metadata.name === 'string' ? obj.metadata.name : undefined;
    if (!name) continue;
    const key = `${String(obj.kind)}/${name}`;
    const first = byName.get(key);
    if (first) {
      findings.push({ text: `${found.file}: ${key}: defined again (first in ${first.file}); keep one definition`, failed: true });
    } else {
      byName.set(key, found);
    }
    if (obj.kind !== 'StoragePool' || first) continue;
    const className = (withDefaults(obj) as { spec?: { storageClass?: { name?: unknown } } }).spec?.storageClass?.name;
    if (typeof className !== 'string') continue;
    const owner = byClass.get(className);
    if (owner) {
      findings.push({
        text: `${found.file}: ${key}: spec.storageClass.name: StorageClass ${className} is also published by ${describe(owner.object, owner.index)} (${owner.file}); give one pool another storageClass.name`,
        failed: true,
      });
    } else {
      byClass.set(className, found);
    }
  }
  return findings;
}

/** `Kind/name`, with a stand-in for objects that lack either. */
function describe(object: unknown, index: number): string {
  if (!isRecord(object)) return `document ${index}`;
  const kind = typeof object.kind === 'string' && object.kind ? object.kind : '(no kind)';
  const name = isRecord(object.metadata) && typeof object.metadata.name === 'string' ? object.metadata.name : '';
  return name ? `${kind}/${name}` : `${kind} (document ${index}, no name)`;
}

/**
 * Our group, or one of our kinds with a missing or mistyped group (then reported as an apiVersion
 * problem); a StoragePool of some other project's API group is none of our business.
 */
function isStowageDocument(object: Record<string, unknown>): boolean {
  const group = typeof object.apiVersion === 'string' && object.apiVersion.includes('/') ? object.apiVersion.split('/')[0]! : '';
  return group === GROUP || (STOWAGE_KINDS.includes(String(object.kind)) && (group === '' || group.includes('stowage')));
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Reading Kubernetes manifests from files, directories and standard input, as kubectl does:
 * shared by `stowage validate` and `stowage render`.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { LineCounter, parseAllDocuments } from 'yaml';
import { errorMessage } from '../util/errors.js';

const MANIFEST_EXTENSIONS = new Set(['.yaml', '.yml', '.json']);

/** One object found in a file, with enough context to name it in output. */
export interface FoundObject {
  file: string;
  index: number;
  object: unknown;
}

/** A line of output about a file or an object; `failed` lines make the exit code 1. */
export interface Finding {
  text: string;
  failed: boolean;
}

/** A file as is; a directory as its manifest files, recursively, in a stable (sorted) order. */
export async function manifestFiles(path: string): Promise<string[]> {
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

export async function readText(file: string): Promise<string> {
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
export function parseManifests(file: string, text: string, findings: Finding[]): FoundObject[] {
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

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * `stowage validate -f FILE|DIR…`: checks StoragePool and NodeDisk manifests offline with exactly
 * the validator the operator uses, so a GitOps pipeline can reject a bad pool before it reaches a
 * cluster (where an older API server would accept it and only the pool's status would complain).
 */
import { GROUP, STOWAGE_KINDS, validateObject, withDefaults, type Problem } from '../crds/index.js';
import { errorMessage } from '../util/errors.js';
import { manifestFiles, parseManifests, readText, type Finding, type FoundObject } from './manifests.js';

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

function checkObject({ file, index, object }: FoundObject): { checked: boolean; findings: Finding[] } {
  const label = `${file}: ${describe(object, index)}`;
  if (!isRecord(object)) {
    return {
      checked: false,
      findings: [{ text: `${label}: not a Kubernetes object (expected a mapping with apiVersion and kind)`, failed: true }],
    };
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
  const group = typeof object.apiVersion === 'string' && object.apiVersion.includes('/') ? object.apiVersion.split('/')[0] : '';
  return group === GROUP || (STOWAGE_KINDS.includes(String(object.kind)) && (group === '' || group.includes('stowage')));
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The one validator for Stowage objects: ajv compiled from the CRD schemas themselves (so it can
 * never disagree with what the API server enforces), plus the cross-field rules, plus the checks a
 * structural schema leaves to pruning (unknown fields are reported here instead of dropped).
 * Problems carry dotted field paths and say what to do.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { RESOURCE_DEFINITIONS, type ResourceDefinition } from './crd.js';
import { API_VERSION, PATTERN_HINTS, type Problem } from './meta.js';
import { crossFieldProblems } from './rules.js';
import { joinPath, type JSONSchema } from './schema.js';

// ajv-formats is CommonJS with `exports.default`; under NodeNext the default import is the module.
const addFormats = addFormatsModule.default;

export type { Problem } from './meta.js';

/** Kinds this validator knows. */
export const STOWAGE_KINDS: readonly string[] = RESOURCE_DEFINITIONS.map((d) => d.kind);

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

// ---------------------------------------------------------------------------------------------
// Schema conversion: our Kubernetes dialect → plain JSON Schema for ajv.

/**
 * Translates the `x-kubernetes-*` extensions: int-or-string becomes a type union, list-type set
 * becomes uniqueItems, list-type map becomes our `listMapKeys` keyword; CEL rules are dropped (their
 * TypeScript twins run separately). Every object that does not declare additionalProperties gets
 * `additionalProperties: false`, because the API server would silently prune those fields and the
 * user should hear about them. The root's `metadata` accepts any ObjectMeta field and keeps only
 * the name restrictions, as the API server does.
 */
export function toAjvSchema(schema: JSONSchema, atRoot = true): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema)) {
    switch (key) {
      case 'properties': {
        const props: Record<string, unknown> = {};
        for (const [name, child] of Object.entries(value as Record<string, JSONSchema>)) {
          props[name] = atRoot && name === 'metadata' ? metadataSchema(child) : toAjvSchema(child, false);
        }
        out.properties = props;
        break;
      }
      case 'items':
      case 'additionalProperties':
        out[key] = toAjvSchema(value as JSONSchema, false);
        break;
      case 'anyOf':
        out.anyOf = (value as JSONSchema[]).map((s) => toAjvSchema(s, false));
        break;
      case 'x-kubernetes-int-or-string':
        if (!schema.type && !schema.anyOf) out.type = ['integer', 'string'];
        break;
      case 'x-kubernetes-list-type':
        if (value === 'set') out.uniqueItems = true;
        if (value === 'map') out.listMapKeys = schema['x-kubernetes-list-map-keys'] ?? [];
        break;
      case 'description':
      case 'x-kubernetes-list-map-keys':
      case 'x-kubernetes-map-type':
      case 'x-kubernetes-validations':
      case 'x-stowage-check':
        break;
      default:
        out[key] = structuredClone(value);
    }
  }
  if (schema.type === 'object' && !schema.additionalProperties) out.additionalProperties = false;
  return out;
}

function metadataSchema(schema: JSONSchema): Record<string, unknown> {
  const name = schema.properties?.name;
  return { type: 'object', ...(name ? { properties: { name: toAjvSchema(name, false) } } : {}) };
}

// ---------------------------------------------------------------------------------------------
// Compiled validators, one set for checking and one that applies defaults (ajv mutates the data
// for defaults, so checking must not share it).

function newAjv(useDefaults: boolean): Ajv {
  const ajv = new Ajv({ allErrors: true, verbose: true, strict: true, useDefaults });
  addFormats(ajv, ['date-time', 'int32', 'int64']);
  ajv.addKeyword({
    keyword: 'listMapKeys',
    type: 'array',
    schemaType: 'array',
    errors: true,
    // Entries of a list-type map must be unique by their keys, like map keys; server-side apply
    // cannot merge the list otherwise and the API server rejects it.
    validate: function uniqueByKeys(keys: string[], data: unknown[], _parent?: unknown, cxt?: { instancePath: string }): boolean {
      const seen = new Map<string, number>();
      const errors: Partial<ErrorObject>[] = [];
      data.forEach((item, index) => {
        if (!isPlainObject(item)) return;
        const id = JSON.stringify(keys.map((k) => item[k]));
        const first = seen.get(id);
        if (first === undefined) seen.set(id, index);
        else {
          errors.push({
            instancePath: `${cxt?.instancePath ?? ''}/${index}`,
            keyword: 'listMapKeys',
            params: { keys, first },
            message: `duplicate entry: ${keys.map((k) => `${k} ${JSON.stringify(item[k])}`).join(', ')} already appears at index ${first}; merge the two entries or remove one`,
          });
        }
      });
      (uniqueByKeys as unknown as { errors: Partial<ErrorObject>[] }).errors = errors;
      return errors.length === 0;
    },
  });
  return ajv;
}

interface Compiled {
  def: ResourceDefinition;
  check: ValidateFunction;
  defaults: ValidateFunction;
}

/** One ajv instance per mode, shared by every kind (schemas compile into it one by one). */
let ajvs: { checker: Ajv; defaulter: Ajv } | undefined;
const compiled = new Map<string, Compiled>();

/**
 * Compiled lazily, one kind at a time: a kind costs tens of milliseconds to compile, most importers
 * never validate, and the operator only validates StoragePools.
 */
function compiledFor(kind: string): Compiled | undefined {
  let entry = compiled.get(kind);
  if (entry) return entry;
  const def = RESOURCE_DEFINITIONS.find((d) => d.kind === kind);
  if (!def) return undefined;
  ajvs ??= { checker: newAjv(false), defaulter: newAjv(true) };
  const schema = toAjvSchema(def.schema);
  entry = { def, check: ajvs.checker.compile(schema), defaults: ajvs.defaulter.compile(schema) };
  compiled.set(kind, entry);
  return entry;
}

/**
 * Compiles the validator of `kind` now instead of on first use. A process that knows it will
 * validate (the operator) calls this while it waits for its caches, so the first reconcile does not
 * pay for it.
 *
 * @example
 *   precompileValidator('StoragePool');
 */
export function precompileValidator(kind: string): void {
  if (!compiledFor(kind))
    throw new Error(`precompileValidator: unknown kind ${JSON.stringify(kind)}; Stowage kinds are ${STOWAGE_KINDS.join(', ')}`);
}

// ---------------------------------------------------------------------------------------------
// Public API.

/**
 * Every problem with a StoragePool or NodeDisk: schema violations (types, enums, bounds, patterns,
 * required and unknown fields), the cross-field rules, apiVersion and metadata.name. An empty list
 * means the API server would accept the object as is. Objects of other kinds yield one problem.
 */
export function validateObject(raw: unknown): Problem[] {
  const obj = withoutNullFields(raw);
  if (!isPlainObject(obj))
    return [{ path: '', message: 'not an object; a Kubernetes object is a mapping with apiVersion, kind, metadata and spec' }];
  const entry = typeof obj.kind === 'string' ? compiledFor(obj.kind) : undefined;
  if (!entry) {
    return [{ path: 'kind', message: `unknown kind ${JSON.stringify(obj.kind)}; Stowage kinds are ${STOWAGE_KINDS.join(', ')}` }];
  }
  const problems: Problem[] = [];
  if (obj.apiVersion !== API_VERSION) {
    problems.push({ path: 'apiVersion', message: `must be ${API_VERSION} (got ${JSON.stringify(obj.apiVersion)})` });
  }
  // Only absence is ours to report; a wrong type or spelling is reported by the schema check.
  if (!isPlainObject(obj.metadata) || obj.metadata.name === undefined) {
    problems.push({ path: 'metadata.name', message: 'is required; give the object a name' });
  }
  if (!entry.check(obj)) {
    for (const error of entry.check.errors ?? []) problems.push(describeError(error, obj, entry.def));
  }
  problems.push(...crossFieldProblems(obj));
  return dedupe(problems);
}

/**
 * A deep copy of `obj` with every default filled in: the schema defaults the API server applies
 * (on write and on read), plus the ones that depend on other fields (Local pools get `local` with
 * fsType ext4 for Filesystem; the StorageClass name defaults to the pool name). Lets the operator
 * read `pool.spec.replicated.size` etc. without repeating defaults, even for objects stored before a
 * default existed. The result is for reading only: never write it back into a user's spec.
 * Objects of other kinds are returned as an unchanged copy.
 */
export function withDefaults<T>(obj: T): T {
  const copy = withoutNullFields(obj) as T;
  const entry = isPlainObject(copy) && typeof copy.kind === 'string' ? compiledFor(copy.kind) : undefined;
  if (!entry) return copy;
  entry.def.derivedDefaults?.expand(copy);
  entry.defaults(copy); // fills defaults as a side effect; validity is validateObject()'s business
  entry.def.derivedDefaults?.fill(copy);
  return copy;
}

/**
 * A deep copy without object fields whose value is null. Since Kubernetes 1.20 the API server
 * drops such fields (then applies their defaults) instead of rejecting them, so an empty YAML key
 * like `capacity:` is valid and must validate and default the same here. Nulls inside lists
 * remain errors there and here.
 */
function withoutNullFields(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutNullFields);
  if (!isPlainObject(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) {
    if (field !== null) out[key] = withoutNullFields(field);
  }
  return out;
}

/** True when `validateObject(obj)` finds nothing. */
export function isValid(obj: unknown): boolean {
  return validateObject(obj).length === 0;
}

// ---------------------------------------------------------------------------------------------
// Turning ajv errors into problems a storage administrator can act on.

function describeError(error: ErrorObject, root: unknown, def: ResourceDefinition): Problem {
  const path = pointerToPath(error.instancePath, root);
  const p = error.params;
  const got = error.data;
  switch (error.keyword) {
    case 'required': {
      const field = joinPath(path, p.missingProperty);
      return { path: field, message: `is required; add it (see kubectl explain ${explainPath(def, field)})` };
    }
    case 'additionalProperties': {
      const field = joinPath(path, p.additionalProperty);
      const known = Object.keys((error.parentSchema as { properties?: object } | undefined)?.properties ?? {});
      const guess = closest(p.additionalProperty, known);
      return {
        path: field,
        message: `unknown field ${field}; remove it or check spelling${guess ? ` (did you mean ${guess}?)` : ''}`,
      };
    }
    case 'type':
      return { path, message: typeMessage(String(p.type), got) };
    case 'enum': {
      const allowed = (p.allowedValues as unknown[]).map(String);
      const guess = typeof got === 'string' ? allowed.find((a) => a.toLowerCase() === got.toLowerCase()) : undefined;
      return {
        path,
        message: `must be one of ${allowed.join(', ')} (got ${JSON.stringify(got)})${guess ? `; did you mean ${guess}? Values are case-sensitive` : ''}`,
      };
    }
    case 'maximum':
    case 'minimum':
      return { path, message: `must be ${p.comparison} ${p.limit} (got ${JSON.stringify(got)})` };
    case 'pattern':
      return { path, message: `${PATTERN_HINTS[p.pattern] ?? `must match the pattern ${p.pattern}`} (got ${JSON.stringify(got)})` };
    case 'minLength':
      return { path, message: p.limit === 1 ? 'must not be empty' : `must be at least ${p.limit} characters long` };
    case 'maxLength':
      return { path, message: `must be at most ${p.limit} characters long (got ${String(got).length})` };
    case 'minItems':
      return { path, message: `must have at least ${p.limit} entries` };
    case 'maxItems':
      return { path, message: `must have at most ${p.limit} entries (got ${(got as unknown[]).length}); remove some` };
    case 'maxProperties':
      return { path, message: `must have at most ${p.limit} entries; remove some` };
    case 'format':
      return { path, message: formatMessage(String(p.format), got) };
    case 'uniqueItems':
      return { path, message: `entries must be unique; entries ${p.j} and ${p.i} are the same, remove one` };
    default:
      return { path, message: error.message ?? `fails ${error.keyword}` };
  }
}

function typeMessage(expected: string, got: unknown): string {
  const article = (t: string) => (t === 'object' || t === 'array' || t === 'integer' ? `an ${t}` : `a ${t}`);
  const gotText = got === null ? 'an empty value (null)' : Array.isArray(got) ? 'a list' : `${typeof got} ${JSON.stringify(got)}`;
  let hint = '';
  if (got === null) hint = '; give the key a value or remove it';
  else if (expected === 'string' && (typeof got === 'number' || typeof got === 'boolean')) hint = `; put it in quotes ("${String(got)}")`;
  else if ((expected === 'integer' || expected === 'number') && typeof got === 'string') hint = '; write the number without quotes';
  else if (expected === 'boolean' && typeof got === 'string') hint = '; write true or false without quotes';
  else if (expected === 'object' && Array.isArray(got)) hint = '; remove the leading "-" so the entries form a mapping';
  else if (expected === 'array' && isPlainObject(got)) hint = '; write the entries as a list, each starting with "-"';
  return `must be ${article(expected)}, not ${gotText}${hint}`;
}

function formatMessage(format: string, got: unknown): string {
  if (format === 'date-time') return `must be an RFC 3339 time such as 2024-05-01T12:00:00Z (got ${JSON.stringify(got)})`;
  if (format === 'int32') return `must be a whole number between -2147483648 and 2147483647 (got ${JSON.stringify(got)})`;
  if (format === 'int64') return `must be a whole number that fits in 64 bits (got ${JSON.stringify(got)})`;
  return `must be a valid ${format} (got ${JSON.stringify(got)})`;
}

/** `/spec/disks/selector/matchExpressions/0/key` → `spec.disks.selector.matchExpressions[0].key`. */
export function pointerToPath(pointer: string, root: unknown): string {
  let path = '';
  let node: unknown = root;
  for (const raw of pointer.split('/').slice(1)) {
    const step = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(node)) {
      path = joinPath(path, Number(step));
      node = node[Number(step)];
    } else {
      path = joinPath(path, step);
      node = isPlainObject(node) ? node[step] : undefined;
    }
  }
  return path;
}

/** `spec.disks.selector.matchExpressions[0].key` → `storagepool.spec.disks.selector.matchExpressions.key`. */
function explainPath(def: ResourceDefinition, path: string): string {
  return `${def.singular}.${path.replace(/\[[^\]]*\]/g, '')}`;
}

/** The known name closest to a misspelt one, if it is plausibly a typo. */
function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = c.toLowerCase() === word.toLowerCase() ? 0 : editDistance(word, c);
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return bestDistance <= Math.max(1, Math.floor(word.length / 3)) ? best : undefined;
}

/** Optimal-string-alignment distance: Levenshtein plus swapped neighbours (szie → size is 1). */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2][j - 2] + 1);
      d[i][j] = best;
    }
  }
  return d[a.length][b.length];
}

function dedupe(problems: Problem[]): Problem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const key = `${p.path}\u0000${p.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

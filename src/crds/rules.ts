/**
 * Runs the cross-field rules of a schema (the TypeScript twins of its CEL rules, plus the
 * `x-stowage-check` hooks) over an object. API servers before 1.25 drop CEL rules silently, so the
 * operator cannot rely on the API server having enforced them and runs this itself.
 */
import { RESOURCE_DEFINITIONS } from './crd.js';
import type { Problem } from './meta.js';
import { joinPath, type JSONSchema } from './schema.js';

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Problems found by the rules of `schema` and of every schema node below it, evaluated wherever the
 * object has a value, exactly where the API server would evaluate the CEL rules. Rules on a node
 * of the wrong type are skipped: the schema validation reports the type error instead.
 */
export function ruleProblems(schema: JSONSchema, value: unknown, path = ''): Problem[] {
  const problems: Problem[] = [];
  if (value === undefined || value === null) return problems;

  for (const rule of schema['x-kubernetes-validations'] ?? []) {
    if (schema.type === 'object' && !isPlainObject(value)) continue;
    let ok: boolean;
    try {
      ok = rule.holds(value);
    } catch {
      continue; // malformed input the schema check reports on its own
    }
    if (!ok) problems.push({ path: (rule.field ?? '').split('.').filter(Boolean).reduce(joinPath, path), message: rule.message });
  }
  const check = schema['x-stowage-check'];
  if (check) problems.push(...check(value, path));

  if (isPlainObject(value)) {
    for (const [name, child] of Object.entries(schema.properties ?? {})) {
      problems.push(...ruleProblems(child, value[name], joinPath(path, name)));
    }
    if (schema.additionalProperties) {
      for (const [key, child] of Object.entries(value)) {
        problems.push(...ruleProblems(schema.additionalProperties, child, joinPath(path, key)));
      }
    }
  }
  if (Array.isArray(value) && schema.items) {
    value.forEach((item, i) => problems.push(...ruleProblems(schema.items!, item, joinPath(path, i))));
  }
  return problems;
}

/** The schema of a Stowage kind, or undefined for anything else. */
export function schemaForKind(kind: unknown): JSONSchema | undefined {
  return RESOURCE_DEFINITIONS.find((d) => d.kind === kind)?.schema;
}

/**
 * The cross-field rules of a StoragePool or NodeDisk, as `x-kubernetes-validations` states them
 * on the CRD (e.g. mode Local requires replicated.size 1). Accepts objects with or without schema
 * defaults applied. Objects of other kinds have no rules and yield no problems.
 */
export function crossFieldProblems(obj: unknown /* a StoragePool or a NodeDisk, unchecked */): Problem[] {
  const schema = isPlainObject(obj) ? schemaForKind(obj.kind) : undefined;
  return schema ? ruleProblems(schema, obj) : [];
}

/**
 * The JSON-schema dialect the CRDs are written in: the structural subset of OpenAPI v3 that
 * `apiextensions.k8s.io/v1` accepts, plus the `x-kubernetes-*` extensions we use.
 *
 * Schemas are plain object literals of this type, so one definition feeds the CRD manifests, the
 * ajv validator and the defaulting helper. The only non-JSON part is `holds` on a CEL rule: the
 * TypeScript twin of the rule, kept next to the CEL text so the two cannot drift apart unnoticed,
 * and `x-stowage-check` for the few checks CEL cannot afford. `toKubernetesSchema` strips both
 * before anything is sent to an API server.
 */

/** One thing wrong with an object: a dotted field path (`spec.replicated.size`) and what to do. */
export interface Problem {
  path: string;
  message: string;
}

export type SchemaType = 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';

/**
 * One `x-kubernetes-validations` entry. Only `rule` and `message` reach the CRD: `fieldPath` and
 * `reason` exist only since Kubernetes 1.28 and a strict client rejects them on older servers.
 */
export interface CelRule {
  /** CEL expression over `self` (the node carrying the rule); true means valid. */
  rule: string;
  /** What is wrong and what to do, shown by the API server and by our own validator. */
  message: string;
  /**
   * Dotted path, relative to the node carrying the rule, of the field the problem is reported on
   * (e.g. `replicated.size`); empty or absent means the node itself.
   */
  field?: string;
  /**
   * The same rule in TypeScript, for API servers without CEL (before 1.25, e.g. the 1.20 used in
   * tests) and for offline validation. Receives the raw node, which may not be defaulted yet or even
   * well-typed, so it must treat absent fields as their defaults and never throw on odd input.
   */
  holds(self: any): boolean;
}

export interface JSONSchema {
  type?: SchemaType;
  description?: string;
  properties?: Record<string, JSONSchema>;
  required?: string[];
  /** Only where arbitrary keys are intended (label maps); never to accept unknown fields. */
  additionalProperties?: JSONSchema;
  items?: JSONSchema;
  anyOf?: JSONSchema[];
  enum?: (string | number | boolean)[];
  default?: unknown;
  format?: 'date-time' | 'int32' | 'int64';
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxItems?: number;
  maxProperties?: number;
  'x-kubernetes-int-or-string'?: true;
  'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-map-type'?: 'granular' | 'atomic';
  'x-kubernetes-validations'?: CelRule[];
  /**
   * A check the CRD cannot express, run only by our own validator and the operator (never sent to
   * the API server). Receives the raw node and its dotted path; returns problems with full paths.
   */
  'x-stowage-check'?: (self: unknown, path: string) => Problem[];
}

/** A schema node together with its dotted path from the root, e.g. `spec.disks.selector`. */
export interface SchemaNode {
  path: string;
  schema: JSONSchema;
}

/**
 * Every node of a schema, depth first, parents before children. Array items get the path suffix
 * `[]` and map values `{}` (no concrete index or key exists at schema level).
 */
export function* walkSchema(schema: JSONSchema, path = ''): Generator<SchemaNode> {
  yield { path, schema };
  for (const [name, child] of Object.entries(schema.properties ?? {})) {
    yield* walkSchema(child, path ? `${path}.${name}` : name);
  }
  if (schema.items) yield* walkSchema(schema.items, `${path}[]`);
  if (schema.additionalProperties) yield* walkSchema(schema.additionalProperties, `${path}{}`);
}

/** The schema node at a dotted property path (`spec.local.fsType`), or undefined. */
export function schemaAt(schema: JSONSchema, dotted: string): JSONSchema | undefined {
  let node: JSONSchema | undefined = schema;
  for (const part of dotted.split('.').filter(Boolean)) {
    node = node?.properties?.[part];
  }
  return node;
}

/**
 * The schema as the API server should see it: plain JSON, CEL rules reduced to `rule` + `message`.
 * Returns a fresh object, so callers may serialise or mutate it freely.
 */
export function toKubernetesSchema(schema: JSONSchema): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key === 'properties') {
      out[key] = Object.fromEntries(Object.entries(value as Record<string, JSONSchema>).map(([k, v]) => [k, toKubernetesSchema(v)]));
    } else if (key === 'items' || key === 'additionalProperties') {
      out[key] = toKubernetesSchema(value as JSONSchema);
    } else if (key === 'anyOf') {
      out[key] = (value as JSONSchema[]).map(toKubernetesSchema);
    } else if (key.startsWith('x-stowage-')) {
      continue;
    } else if (key === 'x-kubernetes-validations') {
      out[key] = (value as CelRule[]).map(({ rule, message }) => ({ rule, message }));
    } else {
      out[key] = structuredClone(value);
    }
  }
  return out;
}

/**
 * Appends one step to a dotted field path the way the problems print it: `spec.disks`,
 * `matchExpressions[0]`, and `matchLabels["stowage.dev/media"]` for keys that are not identifiers.
 */
export function joinPath(base: string, step: string | number): string {
  if (typeof step === 'number') return `${base}[${step}]`;
  if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(step)) return base ? `${base}.${step}` : step;
  return `${base}[${JSON.stringify(step)}]`;
}

/**
 * Hostile specs generated from the CRD schemas (src/crds/): every field the schema declares under
 * `spec` is found by walking the schema object, and each gets the mutations its type invites —
 * wrong types, huge and negative numbers, 1 MiB strings, control characters, values outside the
 * enum, too many items — applied to a valid base object. A small generator over our own schema
 * dialect, because a faker library makes *valid* data and what is wanted here is the invalid kind.
 */
import type { JSONSchema } from '../../src/crds/schema.js';

export interface SpecMutation {
  /** Dotted path of the field the mutation hits (`spec.replicated.size`), as problems name it. */
  readonly field: string;
  readonly what: string;
  /** Applies the mutation to a deep copy of the base object's spec. */
  readonly spec: Record<string, unknown>;
}

const MiB = 1 << 20;
const ONE_MIB_STRING = 'x'.repeat(MiB);
const CONTROL_CHARS = 'a\u0000b\u0007c\n\u001b[31md\u007f';

interface Leaf {
  readonly path: string[];
  readonly schema: JSONSchema;
}

/** Every field under `schema`, depth first; array items appear as index 0. */
export function fieldsOf(schema: JSONSchema, path: string[] = []): Leaf[] {
  const out: Leaf[] = [];
  if (path.length > 0) out.push({ path, schema });
  if (schema.properties) for (const [name, child] of Object.entries(schema.properties)) out.push(...fieldsOf(child, [...path, name]));
  if (schema.items && !Array.isArray(schema.items)) out.push(...fieldsOf(schema.items, [...path, '0']));
  return out;
}

function valuesFor(schema: JSONSchema): [string, unknown][] {
  const out: [string, unknown][] = [];
  const type = schema.type;
  if (type !== 'string' && !schema['x-kubernetes-int-or-string']) out.push(['a string instead', 'not-a-' + (type ?? 'value')]);
  if (type !== 'integer' && type !== 'number') out.push(['a number instead', 12345]);
  if (type === 'string' || schema['x-kubernetes-int-or-string']) {
    out.push(['a 1 MiB string', ONE_MIB_STRING], ['control characters', CONTROL_CHARS], ['a path', '../../etc/passwd']);
    if (schema.enum) out.push(['a value outside the enum', 'Bogus']);
    if (schema['x-kubernetes-int-or-string']) out.push(['a negative quantity', '-5Gi'], ['a quantity past 2^63', '99999999999999999999Ei']);
  }
  if (type === 'integer' || type === 'number') out.push(['2^63', 9223372036854775808], ['-1', -1], ['1e308', 1e308], ['a fraction', 1.5]);
  if (type === 'boolean') out.push(['a number instead of true', 1]);
  if (type === 'array')
    out.push(
      ['an object instead', { a: 1 }],
      ['too many items', Array.from({ length: (schema.maxItems ?? 1000) + 1 }, (_, i) => `item-${i}`)],
    );
  if (type === 'object') out.push(['an array instead', []]);
  return out;
}

function setAt(obj: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node: any = obj;
  for (let i = 0; i < path.length - 1; i++) {
    const key = path[i];
    const nextIsIndex = /^\d+$/.test(path[i + 1]);
    if (node[key] === undefined || node[key] === null || typeof node[key] !== 'object') node[key] = nextIsIndex ? [] : {};
    node = node[key];
  }
  node[path[path.length - 1]] = value;
}

/** The mutations of every field of `specSchema`, each on a copy of `base`. */
export function specMutations(specSchema: JSONSchema, base: Record<string, unknown>): SpecMutation[] {
  const out: SpecMutation[] = [];
  for (const leaf of fieldsOf(specSchema)) {
    for (const [what, value] of valuesFor(leaf.schema)) {
      const spec = structuredClone(base);
      setAt(spec, leaf.path, value);
      out.push({ field: ['spec', ...leaf.path].join('.').replace(/\.(\d+)(?=\.|$)/g, '[$1]'), what, spec });
    }
  }
  return out;
}

import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { expect } from 'chai';
import { CustomResourceDefinition as KubeCrd } from 'kubernetes-models/apiextensions.k8s.io/v1';
import {
  ALL_CRDS,
  RESOURCE_DEFINITIONS,
  crdsForServer,
  schemaAt,
  toAjvSchema,
  validateObject,
  walkSchema,
  type JSONSchema,
  type ResourceDefinition,
} from '../../src/crds/index.js';
import { fullNodeDisk, fullPoolSnapshot, fullPoolVolume, fullStoragePool } from './fixtures.js';

const addFormats = addFormatsModule.default;

const FULL_OBJECTS: Record<string, unknown> = {
  StoragePool: fullStoragePool,
  NodeDisk: fullNodeDisk,
  PoolVolume: fullPoolVolume,
  PoolSnapshot: fullPoolSnapshot,
};

/** Only label maps may take arbitrary keys. */
const MAPS_BY_KIND: Record<string, string[]> = {
  StoragePool: ['spec.disks.selector.matchLabels', 'spec.disks.nodeSelector.matchLabels'],
  NodeDisk: [],
  PoolVolume: [],
  PoolSnapshot: [],
};

/** Schema nodes with `[]`/`{}` path steps for items and map values (see walkSchema). */
function nodes(def: ResourceDefinition) {
  // The root's metadata may carry nothing but name restrictions, not even a description.
  return [...walkSchema(def.schema)].filter((n) => n.path !== 'metadata');
}

/** Schema paths for which `value` holds nothing, walking both together. */
function missingInSample(schema: JSONSchema, value: unknown, path = ''): string[] {
  if (value === undefined) return [path];
  const missing: string[] = [];
  if (schema.properties && path !== 'metadata') {
    for (const [name, child] of Object.entries(schema.properties)) {
      missing.push(...missingInSample(child, (value as Record<string, unknown>)[name], path ? `${path}.${name}` : name));
    }
  }
  if (schema.items) {
    const items = value as unknown[];
    if (items.length === 0) missing.push(`${path}[]`);
    for (const item of items) missing.push(...missingInSample(schema.items, item, `${path}[]`));
  }
  if (schema.additionalProperties) {
    const values = Object.values(value as Record<string, unknown>);
    if (values.length === 0) missing.push(`${path}{}`);
    for (const v of values) missing.push(...missingInSample(schema.additionalProperties, v, `${path}{}`));
  }
  return [...new Set(missing)];
}

/** The schema node a printer column's JSONPath reads; filters like [?(@.type=="Ready")] step into items. */
function resolveColumn(schema: JSONSchema, jsonPath: string): JSONSchema | undefined {
  let node: JSONSchema | undefined = schema;
  for (const part of jsonPath
    .replace(/\[\?\([^\]]*\)\]/g, '')
    .split('.')
    .filter(Boolean)) {
    if (node?.type === 'array') node = node.items;
    node = node?.properties?.[part];
  }
  return node;
}

for (const def of RESOURCE_DEFINITIONS) {
  describe(`${def.kind} schema`, () => {
    it('documents every field, for kubectl explain', () => {
      const undocumented = nodes(def)
        .filter((n) => !n.schema.description?.trim())
        .map((n) => n.path || '(root)');
      expect(undocumented, 'fields without a description').to.deep.equal([]);
    });

    it('is structural: every node has a type, nothing hides in anyOf, metadata is untouched', () => {
      const problems: string[] = [];
      for (const { path, schema } of walkSchema(def.schema)) {
        if (!schema.type && !schema['x-kubernetes-int-or-string']) problems.push(`${path}: no type`);
        for (const branch of schema.anyOf ?? []) {
          if (branch.description !== undefined || branch.default !== undefined || branch.properties || branch.items) {
            problems.push(`${path}: anyOf branch sets more than a value validation`);
          }
        }
        if (schema.properties && schema.additionalProperties) problems.push(`${path}: both properties and additionalProperties`);
        if (schema.type === 'array' && !schema.items) problems.push(`${path}: array without items`);
        if (schema.type === 'object' && !schema.properties && !schema.additionalProperties && path !== 'metadata') {
          problems.push(`${path}: object without properties (everything would be pruned)`);
        }
        if (schema['x-kubernetes-list-type'] === 'map') {
          for (const key of schema['x-kubernetes-list-map-keys'] ?? []) {
            const keySchema = schema.items?.properties?.[key];
            if (!keySchema) problems.push(`${path}: list-map key ${key} is not a property of the items`);
            else if (!schema.items?.required?.includes(key) && keySchema.default === undefined) {
              problems.push(`${path}: list-map key ${key} must be required or defaulted`);
            }
          }
          if (!schema['x-kubernetes-list-map-keys']?.length) problems.push(`${path}: list-type map without keys`);
        }
        for (const required of schema.required ?? []) {
          if (!schema.properties?.[required]) problems.push(`${path}: requires undeclared ${required}`);
        }
        for (const value of schema.enum ?? []) {
          if (typeof value !== 'string' || schema.type !== 'string') problems.push(`${path}: enum value ${String(value)} is not a string`);
        }
      }
      const metadata = def.schema.properties?.metadata;
      if (metadata) {
        expect(Object.keys(metadata).sort(), 'metadata keys').to.satisfy((keys: string[]) =>
          keys.every((k) => ['type', 'properties'].includes(k)),
        );
        expect(Object.keys(metadata.properties ?? {}).every((k) => k === 'name' || k === 'generateName')).to.equal(true);
      }
      expect(problems).to.deep.equal([]);
    });

    it('allows arbitrary keys only in label maps', () => {
      const maps = [...walkSchema(def.schema)].filter((n) => n.schema.additionalProperties).map((n) => n.path);
      expect(maps).to.deep.equal(MAPS_BY_KIND[def.kind]);
    });

    it('has defaults that are valid against their own schema', () => {
      const ajv = new Ajv({ allErrors: true, strict: true });
      addFormats(ajv, ['date-time', 'int32', 'int64']);
      ajv.addKeyword({ keyword: 'listMapKeys', type: 'array', schemaType: 'array' });
      const problems: string[] = [];
      for (const { path, schema } of walkSchema(def.schema)) {
        if (schema.default === undefined) continue;
        const check = ajv.compile(toAjvSchema(schema, false));
        if (!check(structuredClone(schema.default))) problems.push(`${path}: ${ajv.errorsText(check.errors)}`);
        if (schema.enum && !schema.enum.includes(schema.default as string)) problems.push(`${path}: default not in enum`);
      }
      expect(problems).to.deep.equal([]);
    });

    it('has CEL rules with a message, a TypeScript twin, and only references to declared fields', () => {
      const problems: string[] = [];
      for (const { path, schema } of walkSchema(def.schema)) {
        for (const rule of schema['x-kubernetes-validations'] ?? []) {
          if (!rule.message.trim()) problems.push(`${path}: rule without message`);
          if (typeof rule.holds !== 'function') problems.push(`${path}: rule without TypeScript twin`);
          // Without a CEL evaluator at hand, at least catch misspelt field names.
          for (const match of rule.rule.matchAll(/self((?:\.[A-Za-z_][A-Za-z0-9_]*)+)/g)) {
            if (!schemaAt(schema, match[1])) problems.push(`${path}: rule refers to undeclared self${match[1]}`);
          }
          if (rule.field && !schemaAt(schema, rule.field)) problems.push(`${path}: rule reports on undeclared ${rule.field}`);
          if (/\\/.test(rule.rule)) problems.push(`${path}: backslash in CEL (escape rules differ from JS)`);
        }
      }
      expect(problems).to.deep.equal([]);
    });

    it('is matched field for field by the TypeScript types (full fixture)', () => {
      const full = FULL_OBJECTS[def.kind];
      expect(missingInSample(def.schema, full), 'schema fields the typed fixture lacks (add them to the types)').to.deep.equal([]);
      expect(validateObject(full), 'typed fixture fields the schema lacks').to.deep.equal([]);
    });
  });
}

describe('CustomResourceDefinitions', () => {
  it('pass the official apiextensions.k8s.io/v1 schema (kubernetes-models)', () => {
    for (const crd of ALL_CRDS) {
      expect(() => new KubeCrd(crd).validate(), crd.metadata.name).not.to.throw();
    }
  });

  it('are cluster-scoped with a status subresource, short names and the stowage category', () => {
    const summary = ALL_CRDS.map((c) => ({
      name: c.metadata.name,
      scope: c.spec.scope,
      shortNames: c.spec.names.shortNames,
      categories: c.spec.names.categories,
      status: c.spec.versions.map((v) => [v.name, v.served, v.storage, v.subresources.status]),
    }));
    expect(summary).to.deep.equal([
      {
        name: 'storagepools.stowage.dev',
        scope: 'Cluster',
        shortNames: ['sp'],
        categories: ['stowage'],
        status: [['v1alpha1', true, true, {}]],
      },
      {
        name: 'nodedisks.stowage.dev',
        scope: 'Cluster',
        shortNames: ['nd'],
        categories: ['stowage'],
        status: [['v1alpha1', true, true, {}]],
      },
      {
        name: 'poolvolumes.stowage.dev',
        scope: 'Cluster',
        shortNames: ['pvol'],
        categories: ['stowage'],
        status: [['v1alpha1', true, true, {}]],
      },
      {
        name: 'poolsnapshots.stowage.dev',
        scope: 'Cluster',
        shortNames: ['psnap'],
        categories: ['stowage'],
        status: [['v1alpha1', true, true, {}]],
      },
    ]);
  });

  it('print the promised columns, each pointing at a declared field', () => {
    const columns = ALL_CRDS.map((c) => c.spec.versions[0].additionalPrinterColumns.filter((p) => !p.priority).map((p) => p.name));
    expect(columns).to.deep.equal([
      ['Mode', 'Replicas', 'Ready', 'Usable', 'Available', 'Age'],
      ['Node', 'Media', 'Size', 'Eligible', 'Pool', 'Healthy', 'Age'],
      ['Pool', 'Node', 'Size', 'Mode', 'Phase', 'Age'],
      ['Pool', 'Node', 'Source', 'Size', 'Phase', 'Age'],
    ]);
    for (const [i, def] of RESOURCE_DEFINITIONS.entries()) {
      for (const column of ALL_CRDS[i].spec.versions[0].additionalPrinterColumns) {
        if (column.jsonPath.startsWith('.metadata.')) continue;
        expect(resolveColumn(def.schema, column.jsonPath), column.jsonPath).to.not.equal(undefined);
      }
    }
    const ready = ALL_CRDS[0].spec.versions[0].additionalPrinterColumns.find((c) => c.name === 'Ready');
    expect(ready?.jsonPath).to.equal('.status.conditions[?(@.type=="Ready")].status');
  });

  it('leave CEL out for API servers that reject the field (before 1.23)', () => {
    const cel = (crds: unknown) => JSON.stringify(crds).includes('x-kubernetes-validations');
    for (const version of [
      { major: '1', minor: '20' },
      { major: '1', minor: '22+' },
      { major: '', minor: '' },
    ]) {
      const crds = crdsForServer(version);
      expect(cel(crds), JSON.stringify(version)).to.equal(false);
      for (const crd of crds) new KubeCrd(crd).validate();
    }
    expect(crdsForServer({ major: 1, minor: 23 })).to.deep.equal(ALL_CRDS);
    expect(crdsForServer({ major: '1', minor: '31' })).to.deep.equal(ALL_CRDS);
    expect(cel(ALL_CRDS)).to.equal(true);
  });

  it('carry no TypeScript-only parts (plain JSON, CEL reduced to rule and message)', () => {
    for (const crd of ALL_CRDS) {
      expect(JSON.parse(JSON.stringify(crd))).to.deep.equal(crd);
      const text = JSON.stringify(crd);
      expect(text).not.to.contain('x-stowage-');
      expect(text).not.to.contain('"holds"');
      expect(text).not.to.contain('"field"');
    }
  });
});

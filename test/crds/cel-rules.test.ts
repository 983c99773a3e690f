import { evaluate } from '@marcbachmann/cel-js';
import { expect } from 'chai';
import { RESOURCE_DEFINITIONS, withDefaults, type CelRule, type JSONSchema } from '../../src/crds/index.js';
import { minimalDisk, minimalPool } from './fixtures.js';

/**
 * The CEL text of every rule against its TypeScript twin. The test API server (1.20) has no CEL, so
 * the expressions the CRDs send to newer servers are evaluated here with a CEL interpreter
 * (@marcbachmann/cel-js), over a corpus that makes every rule both hold and fail, on objects with
 * the defaults applied as the API server applies them before it evaluates rules. Any disagreement,
 * or a rule the interpreter cannot evaluate, fails.
 */

/** Integers as CEL ints (the schema's `integer` is int64 on the server); other values as they are. */
function toCel(value: unknown): unknown {
  if (typeof value === 'number' && Number.isInteger(value)) return BigInt(value);
  if (Array.isArray(value)) return value.map(toCel);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toCel(v)]));
  return value;
}

interface Verdict {
  kind: string;
  path: string;
  rule: CelRule;
  cel: boolean;
  twin: boolean;
}

/** Every rule evaluated wherever the object has a value for its node, both ways. */
function verdicts(kind: string, schema: JSONSchema, value: unknown, path = ''): Verdict[] {
  if (value === undefined || value === null) return [];
  const out: Verdict[] = [];
  for (const rule of schema['x-kubernetes-validations'] ?? []) {
    let cel: boolean;
    try {
      cel = evaluate(rule.rule, { self: toCel(value) }) as boolean;
    } catch (err) {
      throw new Error(
        `${kind} ${path}: CEL rule ${JSON.stringify(rule.rule)} cannot be evaluated on ${JSON.stringify(value)}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    out.push({ kind, path, rule, cel, twin: rule.holds(value) });
  }
  if (typeof value === 'object' && !Array.isArray(value)) {
    for (const [name, child] of Object.entries(schema.properties ?? {}))
      out.push(...verdicts(kind, child, (value as Record<string, unknown>)[name], `${path}.${name}`));
  }
  if (Array.isArray(value) && schema.items) value.forEach((item, i) => out.push(...verdicts(kind, schema.items!, item, `${path}[${i}]`)));
  return out;
}

const pool = (edit: (p: any) => void): unknown => {
  const p = minimalPool() as any;
  edit(p);
  return p;
};
const disk = (edit: (d: any) => void): unknown => {
  const d = minimalDisk() as any;
  edit(d);
  return d;
};

const CORPUS: unknown[] = [
  minimalPool(),
  minimalDisk(),
  // mode Local and its settings
  pool((p) => ((p.spec.mode = 'Local'), (p.spec.replicated = { size: 2 }))),
  pool((p) => ((p.spec.mode = 'Local'), (p.spec.replicated = { size: 1 }))),
  pool((p) => (p.spec.local = { cleanup: 'zero' })),
  pool((p) => ((p.spec.mode = 'Local'), (p.spec.local = { volumeMode: 'Block', fsType: 'xfs' }))),
  pool((p) => ((p.spec.mode = 'Local'), (p.spec.local = { volumeMode: 'Block' }), (p.spec.storageClass = { mountOptions: ['noatime'] }))),
  pool((p) => ((p.spec.mode = 'Local'), (p.spec.storageClass = { allowVolumeExpansion: true }))),
  pool((p) => (p.spec.storageClass = { allowVolumeExpansion: true, mountOptions: ['noatime'] })),
  // failure domains and minSize
  pool((p) => (p.spec.replicated = { failureDomain: 'host' })),
  pool((p) => (p.spec.replicated = { size: 1, failureDomain: 'zone' })),
  pool((p) => (p.spec.replicated = { size: 2, failureDomain: 'host' })),
  pool((p) => (p.spec.replicated = { size: 3, failureDomain: 'zone', minSize: 1 })),
  pool((p) => (p.spec.replicated = { size: 3, failureDomain: 'host', minSize: 3 })),
  pool((p) => (p.spec.replicated = { size: 2, failureDomain: 'host', minSize: 3 })),
  pool((p) => (p.spec.replicated = { size: 3, minSize: 2 })),
  pool((p) => (p.spec.replicated = { size: 2, failureDomain: 'disk', minSize: 1 })),
  pool((p) => ((p.spec.mode = 'Local'), (p.spec.replicated = { size: 1, failureDomain: 'host' }))),
  pool((p) => ((p.spec.mode = 'Local'), (p.spec.replicated = { size: 2, failureDomain: 'zone' }))),
  // label selector requirements
  pool(
    (p) =>
      (p.spec.disks.selector = {
        matchExpressions: [
          { key: 'a', operator: 'Exists', values: ['x'] },
          { key: 'b', operator: 'In', values: ['x'] },
        ],
      }),
  ),
  pool(
    (p) =>
      (p.spec.disks.nodeSelector = {
        matchExpressions: [
          { key: 'a', operator: 'NotIn' },
          { key: 'c', operator: 'DoesNotExist' },
        ],
      }),
  ),
  // NodeDisk claims
  disk((d) => (d.spec.claim = { pool: 'p', mode: 'Dynamic' })),
  disk((d) => (d.spec.claim = { pool: 'p', mode: 'Dynamic', volumeMode: 'Block' })),
  disk((d) => (d.spec.claim = { pool: 'p', mode: 'Local' })),
  disk((d) => (d.spec.claim = { pool: 'p', mode: 'Local', volumeMode: 'Filesystem' })),
  disk((d) => (d.spec.claim = { pool: 'p', mode: 'Local', volumeMode: 'Filesystem', fsType: 'xfs' })),
  disk((d) => (d.spec.claim = { pool: 'p', mode: 'Local', volumeMode: 'Block', fsType: 'ext4' })),
  disk((d) => (d.spec.claim = { pool: 'p', mode: 'Local', volumeMode: 'Block' })),
];

describe("CEL rules and their TypeScript twins agree (a CEL interpreter runs the CRDs' expressions)", () => {
  const all: Verdict[] = [];
  before(() => {
    for (const raw of CORPUS) {
      // The API server applies the schema defaults before it evaluates rules.
      const obj = withDefaults(raw) as { kind: string };
      const def = RESOURCE_DEFINITIONS.find((d) => d.kind === obj.kind)!;
      all.push(...verdicts(def.kind, def.schema, obj));
    }
  });

  it('on every object of the corpus, at every node a rule applies to', () => {
    const disagreements = all
      .filter((v) => v.cel !== v.twin)
      .map((v) => `${v.kind}${v.path}: CEL ${v.cel}, TypeScript ${v.twin}: ${v.rule.rule}`);
    expect(disagreements).to.deep.equal([]);
  });

  it('with every rule of every kind both holding and failing somewhere in the corpus', () => {
    const rules = RESOURCE_DEFINITIONS.flatMap((d) => walkRules(d.schema)).filter((r) => !isTransitionRule(r));
    const seen = (rule: CelRule, outcome: boolean): boolean => all.some((v) => v.rule === rule && v.cel === outcome);
    expect(
      rules.filter((r) => !seen(r, true)).map((r) => r.rule),
      'rules never holding',
    ).to.deep.equal([]);
    expect(
      rules.filter((r) => !seen(r, false)).map((r) => r.rule),
      'rules never failing',
    ).to.deep.equal([]);
  });

  it('with every transition rule (oldSelf) holding for an unchanged field and failing for a changed one', () => {
    // Transition rules compare with the stored object, which one object cannot show: they are
    // evaluated here with an old value, equal and different.
    const transitions = RESOURCE_DEFINITIONS.flatMap((d) =>
      walkRules(d.schema)
        .filter(isTransitionRule)
        .map((rule) => ({ kind: d.kind, rule })),
    );
    expect(transitions.map((t) => t.kind)).to.include.members(['PoolVolume', 'PoolSnapshot']);
    for (const { kind, rule } of transitions) {
      expect(evaluate(rule.rule, { self: 'pool-a', oldSelf: 'pool-a' }), `${kind}: ${rule.rule} unchanged`).to.equal(true);
      expect(evaluate(rule.rule, { self: 'pool-b', oldSelf: 'pool-a' }), `${kind}: ${rule.rule} changed`).to.equal(false);
    }
  });

  it('the interpreter is strict enough to catch a wrong rule', () => {
    expect(
      evaluate("!has(self.failureDomain) || self.failureDomain == 'disk' || self.size >= 2", {
        self: toCel({ failureDomain: 'host', size: 1 }),
      }),
    ).to.equal(false);
    expect(() => evaluate('self.minSize <= self.size', { self: toCel({ size: 2 }) })).to.throw();
  });
});

function isTransitionRule(rule: CelRule): boolean {
  return /\boldSelf\b/.test(rule.rule);
}

function walkRules(schema: JSONSchema): CelRule[] {
  return [
    ...(schema['x-kubernetes-validations'] ?? []),
    ...Object.values(schema.properties ?? {}).flatMap(walkRules),
    ...(schema.items ? walkRules(schema.items) : []),
    ...(schema.additionalProperties ? walkRules(schema.additionalProperties) : []),
  ];
}

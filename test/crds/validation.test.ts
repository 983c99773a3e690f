import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { parseAllDocuments } from 'yaml';
import { validateCommand } from '../../src/cli/validate.js';
import {
  crossFieldProblems,
  precompileValidator,
  validateObject,
  withDefaults,
  type NodeDisk,
  type Problem,
  type StoragePool,
} from '../../src/crds/index.js';
import { minimalDisk, minimalPool } from './fixtures.js';

const SAMPLES_DIR = fileURLToPath(new URL('../../../samples/', import.meta.url));

/** A pool built from the minimal one, changed by `edit`. */
function pool(edit: (p: any) => void): StoragePool {
  const p = minimalPool();
  edit(p);
  return p;
}

function disk(edit: (d: any) => void): NodeDisk {
  const d = minimalDisk();
  edit(d);
  return d;
}

/** The one problem reported at `path`, failing with the full list if there is not exactly one. */
function problemAt(problems: Problem[], path: string): Problem {
  const found = problems.filter((p) => p.path === path);
  expect(found, `problems at ${path} among ${JSON.stringify(problems, null, 1)}`).to.have.length(1);
  return found[0];
}

/** Collects what validateCommand prints. */
function capture(): { out: Writable; text: () => string } {
  let buffer = '';
  const out = new Writable({
    write(chunk, _encoding, done) {
      buffer += String(chunk);
      done();
    },
  });
  return { out, text: () => buffer };
}

describe('validateObject', () => {
  it('accepts every sample in samples/', async () => {
    const files = (await readdir(SAMPLES_DIR)).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
    expect(files).to.include.members(['local-ssd.yaml', 'local-block.yaml', 'dynamic-replicated.yaml']);
    for (const file of files) {
      for (const doc of parseAllDocuments(await readFile(join(SAMPLES_DIR, file), 'utf8'))) {
        expect(validateObject(doc.toJS()), file).to.deep.equal([]);
      }
    }
  });

  it('accepts the minimal objects', () => {
    expect(validateObject(minimalPool())).to.deep.equal([]);
    expect(validateObject(minimalDisk())).to.deep.equal([]);
  });

  it('names the field and the allowed values for a wrong enum', () => {
    const p = problemAt(validateObject(pool((p) => (p.spec.mode = 'local'))), 'spec.mode');
    expect(p.message).to.contain('must be one of Local, Dynamic').and.to.contain('did you mean Local');
    problemAt(validateObject(pool((p) => (p.spec.storageClass = { volumeBindingMode: 'Lazy' }))), 'spec.storageClass.volumeBindingMode');
  });

  it('rejects negative, malformed and sub-byte quantities', () => {
    for (const size of ['-10Gi', '10GB', '100m', 'lots', '']) {
      const p = problemAt(validateObject(pool((p) => (p.spec.disks.minSize = size))), 'spec.disks.minSize');
      expect(p.message, size).to.contain('must be a size such as 100Gi');
    }
    for (const size of ['10Gi', '500G', '1.5Ti', '1e12', '1073741824', '+5Mi']) {
      expect(validateObject(pool((p) => (p.spec.disks.minSize = size))), size).to.deep.equal([]);
    }
  });

  it('asks for quotes when a size is written as a number', () => {
    const p = problemAt(validateObject(pool((p) => (p.spec.disks.minSize = 100))), 'spec.disks.minSize');
    expect(p.message).to.contain('must be a string').and.to.contain('quotes');
  });

  it('bounds replicated.size to 1..3', () => {
    expect(problemAt(validateObject(pool((p) => (p.spec.replicated = { size: 4 }))), 'spec.replicated.size').message).to.contain(
      'must be <= 3',
    );
    expect(problemAt(validateObject(pool((p) => (p.spec.replicated = { size: 0 }))), 'spec.replicated.size').message).to.contain(
      'must be >= 1',
    );
    expect(problemAt(validateObject(pool((p) => (p.spec.replicated = { size: 1.5 }))), 'spec.replicated.size').message).to.contain(
      'integer',
    );
  });

  it('knows the failure domains disk, host and zone, and bounds minSize to 1..3', () => {
    expect(
      problemAt(validateObject(pool((p) => (p.spec.replicated = { size: 2, failureDomain: 'rack' }))), 'spec.replicated.failureDomain')
        .message,
    ).to.equal('must be one of disk, host, zone (got "rack")');
    expect(
      problemAt(validateObject(pool((p) => (p.spec.replicated = { size: 2, failureDomain: 'Host' }))), 'spec.replicated.failureDomain')
        .message,
    ).to.contain('did you mean host?');
    expect(
      problemAt(
        validateObject(pool((p) => (p.spec.replicated = { size: 3, failureDomain: 'host', minSize: 0 }))),
        'spec.replicated.minSize',
      ).message,
    ).to.contain('must be >= 1');
    // 4 is beyond the schema's bound and beyond size: both are said.
    expect(
      validateObject(pool((p) => (p.spec.replicated = { size: 3, failureDomain: 'host', minSize: 4 }))).map(
        (p) => `${p.path}: ${p.message}`,
      ),
    ).to.deep.equal([
      'spec.replicated.minSize: must be <= 3 (got 4)',
      'spec.replicated.minSize: minSize is how many copies a write waits for and cannot exceed size; lower minSize, or raise size',
    ]);
  });

  it('reports unknown fields, with a spelling suggestion', () => {
    expect(problemAt(validateObject(pool((p) => (p.spec.foo = 1))), 'spec.foo').message).to.equal(
      'unknown field spec.foo; remove it or check spelling',
    );
    expect(problemAt(validateObject(pool((p) => (p.spec.replicated = { szie: 2 }))), 'spec.replicated.szie').message).to.contain(
      'did you mean size?',
    );
    problemAt(validateObject({ ...minimalPool(), extra: true }), 'extra');
  });

  it('accepts any metadata an API server returns', () => {
    const p = pool((p) => {
      p.metadata = { name: 'pool', namespace: '', managedFields: [{ manager: 'kubectl' }], labels: { a: 'b' }, uid: 'x' };
    });
    expect(validateObject(p)).to.deep.equal([]);
  });

  it('requires spec fields, saying where to read about them', () => {
    const p = problemAt(validateObject(pool((p) => delete p.spec.disks)), 'spec.disks');
    expect(p.message).to.contain('is required').and.to.contain('kubectl explain storagepool.spec.disks');
    problemAt(validateObject(pool((p) => delete p.spec)), 'spec');
    problemAt(validateObject(pool((p) => delete p.metadata.name)), 'metadata.name');
  });

  it('refuses pool names that cannot be label values', () => {
    problemAt(validateObject(pool((p) => (p.metadata.name = 'a'.repeat(64)))), 'metadata.name');
    problemAt(validateObject(pool((p) => (p.metadata.name = 'Fast_SSD'))), 'metadata.name');
  });

  it('checks apiVersion and kind', () => {
    problemAt(validateObject(pool((p) => (p.apiVersion = 'stowage.dev/v1'))), 'apiVersion');
    expect(validateObject({ ...minimalPool(), kind: 'PoolVolumeX' })).to.deep.equal([
      { path: 'kind', message: 'unknown kind "PoolVolumeX"; Stowage kinds are StoragePool, NodeDisk, PoolVolume, PoolSnapshot' },
    ]);
  });

  it('points into lists and label maps', () => {
    const expr = pool(
      (p) =>
        (p.spec.disks.selector = {
          matchExpressions: [
            { key: 'a', operator: 'In', values: [] },
            { key: 'b', operator: 'Has' },
          ],
        }),
    );
    const problems = validateObject(expr);
    problemAt(problems, 'spec.disks.selector.matchExpressions[0].values');
    problemAt(problems, 'spec.disks.selector.matchExpressions[1].operator');
    const labels = pool((p) => (p.spec.disks.selector = { matchLabels: { 'bad key!': 'x', ok: 'bad value!' } }));
    problemAt(validateObject(labels), 'spec.disks.selector.matchLabels["bad key!"]');
    problemAt(validateObject(labels), 'spec.disks.selector.matchLabels.ok');
  });

  it('treats empty YAML keys (null) as absent, as the API server does since 1.20', () => {
    expect(validateObject(pool((p) => (p.spec.capacity = null)))).to.deep.equal([]);
    expect(withDefaults(pool((p) => (p.spec.capacity = null))).spec.capacity).to.deep.equal({ lowWatermarkPercent: 10 });
    expect(problemAt(validateObject(pool((p) => (p.spec.disks = null))), 'spec.disks').message).to.contain('is required');
    expect(
      problemAt(validateObject(pool((p) => (p.spec.storageClass = { mountOptions: [null] }))), 'spec.storageClass.mountOptions[0]').message,
    ).to.contain('must be a string');
  });

  it('reports duplicate conditions of one type', () => {
    const c = { type: 'Ready', status: 'True', reason: 'Ok', message: '', lastTransitionTime: '2024-01-01T00:00:00Z' };
    const problems = validateObject(pool((p) => (p.status = { conditions: [c, { ...c, status: 'False' }] })));
    expect(problemAt(problems, 'status.conditions[1]').message).to.contain('duplicate entry: type "Ready"');
  });
});

describe('cross-field rules (CEL on the CRD, crossFieldProblems in TypeScript)', () => {
  const cases: { name: string; obj: StoragePool | NodeDisk; path?: string }[] = [
    {
      name: 'Local with replicated.size 2',
      obj: pool((p) => ((p.spec.mode = 'Local'), (p.spec.replicated = { size: 2 }))),
      path: 'spec.replicated.size',
    },
    { name: 'local settings on a Dynamic pool', obj: pool((p) => (p.spec.local = { cleanup: 'zero' })), path: 'spec.local' },
    {
      name: 'fsType on a Block pool',
      obj: pool((p) => ((p.spec.mode = 'Local'), (p.spec.local = { volumeMode: 'Block', fsType: 'xfs' }))),
      path: 'spec.local.fsType',
    },
    {
      name: 'expansion of Local volumes',
      obj: pool((p) => ((p.spec.mode = 'Local'), (p.spec.storageClass = { allowVolumeExpansion: true }))),
      path: 'spec.storageClass.allowVolumeExpansion',
    },
    {
      name: 'mount options on Block volumes',
      obj: pool(
        (p) => ((p.spec.mode = 'Local'), (p.spec.local = { volumeMode: 'Block' }), (p.spec.storageClass = { mountOptions: ['noatime'] })),
      ),
      path: 'spec.storageClass.mountOptions',
    },
    {
      name: 'Exists with values',
      obj: pool((p) => (p.spec.disks.selector = { matchExpressions: [{ key: 'a', operator: 'Exists', values: ['x'] }] })),
      path: 'spec.disks.selector.matchExpressions[0].values',
    },
    {
      name: 'NotIn without values',
      obj: pool((p) => (p.spec.disks.nodeSelector = { matchExpressions: [{ key: 'a', operator: 'NotIn' }] })),
      path: 'spec.disks.nodeSelector.matchExpressions[0].values',
    },
    {
      name: 'Dynamic claim with volumeMode',
      obj: disk((d) => (d.spec.claim = { pool: 'p', mode: 'Dynamic', volumeMode: 'Block' })),
      path: 'spec.claim',
    },
    {
      name: 'Local claim without volumeMode',
      obj: disk((d) => (d.spec.claim = { pool: 'p', mode: 'Local' })),
      path: 'spec.claim.volumeMode',
    },
    {
      name: 'Local Filesystem claim without fsType',
      obj: disk((d) => (d.spec.claim = { pool: 'p', mode: 'Local', volumeMode: 'Filesystem' })),
      path: 'spec.claim.fsType',
    },
    {
      name: 'failureDomain host with the default size 1',
      obj: pool((p) => (p.spec.replicated = { failureDomain: 'host' })),
      path: 'spec.replicated.size',
    },
    {
      name: 'failureDomain zone with size 1',
      obj: pool((p) => (p.spec.replicated = { size: 1, failureDomain: 'zone' })),
      path: 'spec.replicated.size',
    },
    {
      name: 'minSize above size',
      obj: pool((p) => (p.spec.replicated = { size: 2, failureDomain: 'host', minSize: 3 })),
      path: 'spec.replicated.minSize',
    },
    { name: 'minSize 2 on a disk pool', obj: pool((p) => (p.spec.replicated = { size: 3, minSize: 2 })), path: 'spec.replicated.minSize' },
    {
      name: 'Local Block claim with fsType',
      obj: disk((d) => (d.spec.claim = { pool: 'p', mode: 'Local', volumeMode: 'Block', fsType: 'ext4' })),
      path: 'spec.claim.fsType',
    },
  ];
  for (const c of cases) {
    it(`rejects ${c.name} at ${c.path}`, () => {
      expect(crossFieldProblems(c.obj).map((p) => p.path)).to.deep.equal([c.path]);
      problemAt(validateObject(c.obj), c.path!);
    });
  }

  it('accepts the valid combinations', () => {
    const ok = [
      pool((p) => ((p.spec.mode = 'Local'), (p.spec.replicated = { size: 1 }))),
      pool((p) => ((p.spec.mode = 'Local'), (p.spec.local = { volumeMode: 'Block' }))),
      pool((p) => ((p.spec.replicated = { size: 3 }), (p.spec.storageClass = { allowVolumeExpansion: true, mountOptions: ['noatime'] }))),
      pool(
        (p) =>
          (p.spec.disks.selector = {
            matchExpressions: [
              { key: 'a', operator: 'DoesNotExist' },
              { key: 'b', operator: 'In', values: ['x'] },
            ],
          }),
      ),
      pool((p) => (p.spec.replicated = { size: 2, failureDomain: 'host' })),
      pool((p) => (p.spec.replicated = { size: 3, failureDomain: 'zone', minSize: 1 })),
      pool((p) => (p.spec.replicated = { size: 3, failureDomain: 'host', minSize: 3 })),
      pool((p) => (p.spec.replicated = { size: 2, failureDomain: 'disk', minSize: 1 })),
      disk((d) => (d.spec.claim = { pool: 'p', mode: 'Dynamic' })),
      disk((d) => (d.spec.claim = { pool: 'p', mode: 'Local', volumeMode: 'Block' })),
      disk((d) => (d.spec.claim = { pool: 'p', mode: 'Local', volumeMode: 'Filesystem', fsType: 'xfs' })),
    ];
    for (const obj of ok) {
      expect(crossFieldProblems(obj), JSON.stringify(obj.spec)).to.deep.equal([]);
      expect(validateObject(obj), JSON.stringify(obj.spec)).to.deep.equal([]);
    }
  });

  it('refuse host and zone on a Local pool at failureDomain (and its single copy at size)', () => {
    for (const failureDomain of ['host', 'zone']) {
      const local = pool((p) => ((p.spec.mode = 'Local'), (p.spec.replicated = { size: 1, failureDomain })));
      const problems = validateObject(local);
      expect(problemAt(problems, 'spec.replicated.failureDomain').message).to.contain('only mode Dynamic');
      expect(problemAt(problems, 'spec.replicated.size').message).to.contain('a single copy on the network');
      expect(
        crossFieldProblems(local)
          .map((p) => p.path)
          .sort(),
      ).to.deep.equal(['spec.replicated.failureDomain', 'spec.replicated.size']);
    }
  });

  it('say why size 1 is refused for host and zone, and what to write instead', () => {
    const p = problemAt(validateObject(pool((p) => (p.spec.replicated = { size: 1, failureDomain: 'host' }))), 'spec.replicated.size');
    expect(p.message).to.equal(
      'failureDomain host and zone need size 2 or 3: size 1 would be a single copy on the network, lost with its node; set size: 2 or 3, or failureDomain: disk',
    );
  });

  it('hold for defaulted objects as for raw ones', () => {
    for (const c of cases)
      expect(
        crossFieldProblems(withDefaults(c.obj)).map((p) => p.path),
        c.name,
      ).to.deep.equal([c.path]);
  });

  it('ignore other kinds and malformed input instead of throwing', () => {
    expect(crossFieldProblems({ kind: 'ConfigMap' })).to.deep.equal([]);
    expect(crossFieldProblems(pool((p) => (p.spec.local = 'oops')))).to.be.an('array');
    expect(crossFieldProblems(null)).to.deep.equal([]);
  });
});

describe('precompileValidator', () => {
  it('compiles a kind ahead of use (validation then behaves the same) and names the kinds it knows when given another', () => {
    precompileValidator('NodeDisk');
    expect(validateObject(minimalDisk())).to.deep.equal([]);
    expect(() => precompileValidator('StorgePool')).to.throw(/unknown kind "StorgePool"; Stowage kinds are StoragePool, NodeDisk/);
  });
});

describe('withDefaults', () => {
  it('fills schema and derived defaults without touching the input', () => {
    const input = pool((p) => (p.spec.mode = 'Local'));
    const before = structuredClone(input);
    const d = withDefaults(input);
    expect(input).to.deep.equal(before);
    expect(d.spec).to.deep.equal({
      mode: 'Local',
      disks: { selector: { matchLabels: { 'stowage.dev/media': 'ssd' } }, allowAdoption: false },
      replicated: { size: 1, failureDomain: 'disk' },
      local: { volumeMode: 'Filesystem', fsType: 'ext4', cleanup: 'quick' },
      storageClass: {
        name: 'pool',
        isDefault: false,
        reclaimPolicy: 'Delete',
        volumeBindingMode: 'WaitForFirstConsumer',
        allowVolumeExpansion: false,
      },
      capacity: { lowWatermarkPercent: 10 },
    });
    expect(validateObject(d)).to.deep.equal([]);
    expect(withDefaults(d)).to.deep.equal(d);
  });

  it('keeps what the user wrote and adds nothing the rules forbid', () => {
    const dynamic = withDefaults(pool((p) => (p.spec.storageClass = { name: 'other', reclaimPolicy: 'Retain' })));
    expect(dynamic.spec.local).to.equal(undefined);
    expect(dynamic.spec.storageClass).to.include({ name: 'other', reclaimPolicy: 'Retain' });
    const block = withDefaults(pool((p) => ((p.spec.mode = 'Local'), (p.spec.local = { volumeMode: 'Block' }))));
    expect(block.spec.local).to.deep.equal({ volumeMode: 'Block', cleanup: 'quick' });
    expect(validateObject(block)).to.deep.equal([]);
  });

  it('defaults minSize to size - 1 for host and zone pools, as Ceph does, and leaves disk pools without one', () => {
    const of = (replicated: object) => withDefaults(pool((p) => (p.spec.replicated = replicated))).spec.replicated;
    expect(of({ size: 3, failureDomain: 'host' })).to.deep.equal({ size: 3, failureDomain: 'host', minSize: 2 });
    expect(of({ size: 2, failureDomain: 'zone' })).to.deep.equal({ size: 2, failureDomain: 'zone', minSize: 1 });
    expect(of({ size: 3, failureDomain: 'host', minSize: 3 })).to.deep.equal({ size: 3, failureDomain: 'host', minSize: 3 });
    expect(of({ size: 2 })).to.deep.equal({ size: 2, failureDomain: 'disk' });
    // An invalid host pool (size 1) gets minSize 1, so the defaulted object reports only the size.
    expect(crossFieldProblems(withDefaults(pool((p) => (p.spec.replicated = { failureDomain: 'host' })))).map((p) => p.path)).to.deep.equal(
      ['spec.replicated.size'],
    );
  });

  it('defaults NodeDisks too', () => {
    const d = withDefaults(disk((d) => (d.spec.claim = { pool: 'p', mode: 'Dynamic' })));
    expect(d.spec.schedulable).to.equal(true);
    expect(d.spec.claim?.allowAdoption).to.equal(false);
  });
});

describe('validateCommand', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-validate-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('passes samples/ with an OK line per pool and a note for the kustomization', async () => {
    const { out, text } = capture();
    expect(await validateCommand([SAMPLES_DIR], out)).to.equal(0);
    expect(text()).to.contain('local-ssd.yaml: StoragePool/local-ssd: OK');
    expect(text()).to.contain('local-block.yaml: StoragePool/local-block: OK');
    expect(text()).to.contain('dynamic-replicated.yaml: StoragePool/replicated: OK');
    expect(text()).to.match(/kustomization\.yaml: Kustomization .*: ignored \(not a Stowage resource\)/);
    expect(text()).to.contain('PASSED: 3 Stowage objects in 4 files, 0 invalid');
  });

  it('prints FILE: Kind/name: path: message for every problem and exits 1', async () => {
    const file = join(dir, 'pools.yaml');
    await writeFile(
      file,
      [
        '# one good, one bad, one other kind',
        'apiVersion: stowage.dev/v1alpha1',
        'kind: StoragePool',
        'metadata: {name: good}',
        'spec: {mode: Dynamic, disks: {selector: {}}}',
        '---',
        'apiVersion: stowage.dev/v1alpha1',
        'kind: StoragePool',
        'metadata: {name: bad}',
        'spec:',
        '  mode: Local',
        '  disks: {selector: {}, minSize: -1Gi}',
        '  replicated: {size: 4}',
        '  foo: bar',
        '---',
        'apiVersion: v1',
        'kind: ConfigMap',
        'metadata: {name: cm}',
        '---',
      ].join('\n'),
    );
    const { out, text } = capture();
    expect(await validateCommand([file], out)).to.equal(1);
    const lines = text().split('\n');
    expect(lines).to.include(`${file}: StoragePool/good: OK`);
    expect(lines).to.include(`${file}: StoragePool/bad: spec.replicated.size: must be <= 3 (got 4)`);
    expect(lines).to.include(`${file}: StoragePool/bad: spec.foo: unknown field spec.foo; remove it or check spelling`);
    expect(lines.some((l) => l.startsWith(`${file}: StoragePool/bad: spec.disks.minSize: must be a size`))).to.equal(true);
    expect(lines.some((l) => l.startsWith(`${file}: StoragePool/bad: spec.replicated.size: mode Local`))).to.equal(true);
    expect(lines).to.include(`${file}: ConfigMap/cm: ignored (not a Stowage resource)`);
    expect(lines).to.include('FAILED: 2 Stowage objects in 1 file, 1 invalid');
  });

  it('reports a failure domain the pool cannot have, with its field path', async () => {
    const file = join(dir, 'across.yaml');
    await writeFile(
      file,
      [
        'apiVersion: stowage.dev/v1alpha1',
        'kind: StoragePool',
        'metadata: {name: across}',
        'spec: {mode: Dynamic, disks: {selector: {}}, replicated: {size: 3, failureDomain: host}}',
        '---',
        'apiVersion: stowage.dev/v1alpha1',
        'kind: StoragePool',
        'metadata: {name: single}',
        'spec: {mode: Dynamic, disks: {selector: {}}, replicated: {failureDomain: zone, minSize: 2}}',
      ].join('\n'),
    );
    const { out, text } = capture();
    expect(await validateCommand([file], out)).to.equal(1);
    const lines = text().split('\n');
    expect(lines).to.include(`${file}: StoragePool/across: OK`);
    expect(lines).to.include(
      `${file}: StoragePool/single: spec.replicated.size: failureDomain host and zone need size 2 or 3: size 1 would be a single copy on the network, lost with its node; set size: 2 or 3, or failureDomain: disk`,
    );
    expect(
      lines.some((l) => l.startsWith(`${file}: StoragePool/single: spec.replicated.minSize: minSize is how many copies a write waits for`)),
    ).to.equal(true);
    expect(lines).to.include('FAILED: 2 Stowage objects in 1 file, 1 invalid');
  });

  it('reports a YAML syntax error with file and line, and still checks the other files', async () => {
    await writeFile(join(dir, 'a-broken.yaml'), 'apiVersion: stowage.dev/v1alpha1\nkind: StoragePool\nspec:\n  mode: [Local\n');
    await writeFile(
      join(dir, 'b-good.yml'),
      'apiVersion: stowage.dev/v1alpha1\nkind: StoragePool\nmetadata: {name: ok}\nspec: {mode: Dynamic, disks: {selector: {}}}\n',
    );
    await writeFile(join(dir, 'notes.txt'), 'not a manifest');
    const { out, text } = capture();
    expect(await validateCommand([dir], out)).to.equal(1);
    expect(text()).to.match(
      new RegExp(`${join(dir, 'a-broken.yaml').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: YAML syntax error: `),
    );
    expect(text()).to.contain(`${join(dir, 'b-good.yml')}: StoragePool/ok: OK`);
    expect(text()).not.to.contain('notes.txt');
  });

  it('reads JSON and List objects, and YAML 1.1 booleans (yes/no/y/n) like kubectl', async () => {
    const list = {
      apiVersion: 'v1',
      kind: 'List',
      items: [{ ...minimalPool(), spec: { ...minimalPool().spec, storageClass: { isDefault: true } } }, minimalDisk()],
    };
    await writeFile(join(dir, 'list.json'), JSON.stringify(list));
    await writeFile(
      join(dir, 'yes.yaml'),
      'apiVersion: stowage.dev/v1alpha1\nkind: StoragePool\nmetadata: {name: yes-pool}\nspec: {mode: Dynamic, disks: {selector: {}, allowAdoption: no}}\n---\napiVersion: stowage.dev/v1alpha1\nkind: StoragePool\nmetadata: {name: n}\nspec: {mode: Dynamic, disks: {selector: {}}}\n',
    );
    const { out, text } = capture();
    expect(await validateCommand([dir], out), text()).to.equal(1);
    expect(text()).to.contain('StoragePool/pool: OK').and.to.contain('NodeDisk/node-a-1: OK').and.to.contain('StoragePool/yes-pool: OK');
    // kubectl reads an unquoted n as false too; the name must be quoted.
    expect(text()).to.contain('metadata.name: must be a string, not boolean false; put it in quotes ("false")');
  });

  it('fails on duplicate objects and on two pools publishing one StorageClass', async () => {
    const doc = (name: string, cls?: string) =>
      `apiVersion: stowage.dev/v1alpha1\nkind: StoragePool\nmetadata: {name: ${name}}\nspec: {mode: Dynamic, disks: {selector: {}}${cls ? `, storageClass: {name: ${cls}}` : ''}}\n`;
    await writeFile(join(dir, 'a.yaml'), `${doc('one')}---\n${doc('two', 'one')}`);
    await writeFile(join(dir, 'b.yaml'), doc('one'));
    const { out, text } = capture();
    expect(await validateCommand([dir], out)).to.equal(1);
    expect(text()).to.contain(
      `${join(dir, 'a.yaml')}: StoragePool/two: spec.storageClass.name: StorageClass one is also published by StoragePool/one`,
    );
    expect(text()).to.contain(`${join(dir, 'b.yaml')}: StoragePool/one: defined again (first in ${join(dir, 'a.yaml')})`);
  });

  it('fails on paths that do not exist or hold no manifests', async () => {
    const { out, text } = capture();
    expect(await validateCommand([join(dir, 'missing.yaml'), dir], out)).to.equal(1);
    expect(text()).to.contain(`${join(dir, 'missing.yaml')}: cannot read:`);
    expect(text()).to.contain(`${dir}: no .yaml, .yml or .json files found`);
  });
});

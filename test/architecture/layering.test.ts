import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { expect } from 'chai';
import { ARCHITECTURE_DOC, cruiseProject, describeViolations, renderGeneratedBlock, withGeneratedBlock } from '../../hack/architecture.js';

/** A throw-away tree shaped like src/, cruised with the project's own rules. */
async function cruiseTree(files: Record<string, string>): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), 'stowage-layering-'));
  try {
    for (const [name, content] of Object.entries(files)) {
      await mkdir(dirname(join(dir, name)), { recursive: true });
      await writeFile(join(dir, name), content);
    }
    return describeViolations(await cruiseProject(dir, ['src']));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('layering of src/ (.dependency-cruiser.cjs)', function () {
  this.timeout(60_000);

  it('holds on the code as it is: no cycle, no import against the layers', async () => {
    const result = await cruiseProject();
    expect(result.summary.totalCruised).to.be.greaterThan(50);
    expect(describeViolations(result)).to.deep.equal([]);
  });

  it('fails when the runtime imports a role (the library must not know the operator)', async () => {
    const problems = await cruiseTree({
      'src/runtime/informer.ts': "import { reconcilePool } from '../operator/reconciler.js';\nexport const informer = reconcilePool;\n",
      'src/operator/reconciler.ts': 'export const reconcilePool = 1;\n',
    });
    expect(problems).to.deep.equal(['layer-runtime: src/runtime/informer.ts → src/operator/reconciler.ts']);
  });

  it('fails when one role imports another, or a lower layer a higher one', async () => {
    const problems = await cruiseTree({
      'src/node/agent.ts': "import { x } from '../operator/setup.js';\nexport const agent = x;\n",
      'src/operator/setup.ts': 'export const x = 1;\n',
      'src/kube/client.ts': "import { t } from '../crds/types.js';\nexport const c = t;\n",
      'src/crds/types.ts': 'export const t = 1;\n',
    });
    expect(problems).to.have.members([
      'layer-node: src/node/agent.ts → src/operator/setup.ts',
      'layer-kube: src/kube/client.ts → src/crds/types.ts',
    ]);
  });

  it('fails on an import cycle, even inside one folder', async () => {
    const problems = await cruiseTree({
      'src/crds/meta.ts': "import { s } from './schema.js';\nexport const m = s;\n",
      'src/crds/schema.ts': "import { m } from './meta.js';\nexport const s = () => m;\n",
    });
    expect(problems.filter((p) => p.startsWith('no-circular:'))).to.have.length.greaterThan(0);
    expect(problems.join('\n')).to.include('src/crds/meta.ts').and.include('src/crds/schema.ts');
  });

  it('fails on a new top-level folder that has no place in the layers', async () => {
    const problems = await cruiseTree({
      'src/shiny/thing.ts': "import { u } from '../util/u.js';\nexport const t = u;\n",
      'src/util/u.ts': 'export const u = 1;\n',
    });
    expect(problems).to.deep.equal(['no-unknown-top-level-folder: src/shiny/thing.ts → src/util/u.ts']);
  });

  it('docs/architecture.md shows the graph of the code as it is (make architecture regenerates it)', async () => {
    const doc = await readFile(ARCHITECTURE_DOC, 'utf8');
    const fresh = withGeneratedBlock(doc, renderGeneratedBlock(await cruiseProject()));
    expect(doc, 'docs/architecture.md is stale: run `make architecture` and commit the result').to.equal(fresh);
  });
});

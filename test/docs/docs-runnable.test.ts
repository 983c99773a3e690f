import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { checkMarkdown, docFiles, repoFacts } from './docs-check.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** README.md and docs/**: every relative link resolves and every shell command names what exists. */
describe('docs: every link resolves and every command runs', function () {
  this.timeout(120_000);

  it('README.md is at most 200 lines', () => {
    expect(readFileSync(path.join(ROOT, 'README.md'), 'utf8').trimEnd().split('\n').length).to.be.at.most(200);
  });

  it('README.md and docs/ have no broken link, unknown target, script, file, subcommand or flag', () => {
    const facts = repoFacts(ROOT);
    const files = docFiles(ROOT);
    expect(files).to.include.members([
      'README.md',
      'docs/install.md',
      'docs/operations.md',
      'docs/performance.md',
      'docs/testing.md',
      'docs/development.md',
    ]);
    const problems = files.flatMap((file) => checkMarkdown(file, readFileSync(path.join(ROOT, file), 'utf8'), facts));
    expect(problems.map((p) => `${p.file}:${p.line}: ${p.message}`)).to.deep.equal([]);
  });
});

import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { anchorsOf, checkMarkdown, linksOf, repoFacts, shellCommandsOf, slug } from './docs-check.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** The checker itself, on samples that must fail and samples that must pass. */
describe('docs check: the checker', function () {
  this.timeout(60_000);
  const facts = repoFacts(ROOT);

  it('makes GitHub anchors from headings, with -1 for a repeated one', () => {
    expect(slug('Node.js')).to.equal('nodejs');
    expect(slug('Dynamic pools: datapath and provisioning')).to.equal('dynamic-pools-datapath-and-provisioning');
    expect(slug('`kubectl stowage`: the kubectl plugin')).to.equal('kubectl-stowage-the-kubectl-plugin');
    expect(slug('Known limits of the v1.20 test server')).to.equal('known-limits-of-the-v120-test-server');
    expect([...anchorsOf('# A\n\n## Faults\n\n```sh\n# not a heading\n```\n\n## Faults\n')]).to.deep.equal(['a', 'faults', 'faults-1']);
  });

  it('reads only the prompted lines of a console transcript as commands', () => {
    const md = '```console\n$ kubectl stowage pools\nNAME  MODE\nfast  Local\n$ make build\n```\n';
    expect(shellCommandsOf(md)).to.deep.equal([
      { line: 2, words: ['kubectl', 'stowage', 'pools'] },
      { line: 5, words: ['make', 'build'] },
    ]);
  });

  it('finds links outside code, and commands in shell blocks only', () => {
    const md =
      'See [a](docs/a.md#x) and `[b](not-a-link.md)`.\n\n```sh\nmake build && FOO=1 npm run bench:churn -- --seconds 5  # comment\nkubectl stowage \\\n  drain d1 --timeout 5\n```\n\n```yaml\nmake: not-a-command\n```\n';
    expect(linksOf(md)).to.deep.equal([{ line: 1, target: 'docs/a.md#x' }]);
    expect(shellCommandsOf(md)).to.deep.equal([
      { line: 4, words: ['make', 'build'] },
      { line: 4, words: ['npm', 'run', 'bench:churn', '--', '--seconds', '5'] },
      { line: 5, words: ['kubectl', 'stowage', 'drain', 'd1', '--timeout', '5'] },
    ]);
  });

  it('fails a broken link, a missing heading, an unknown target, script, file, subcommand or flag', () => {
    const bad = [
      '# Bad sample',
      '',
      '[gone](docs/no-such-page.md), [no heading](docs/install.md#no-such-heading), [self](#nowhere).',
      '',
      '```sh',
      'make no-such-target',
      'npm run no-such-script',
      'hack/no-such-script.sh',
      'kubectl stowage disks --no-such-flag',
      'kubectl stowage no-such-command',
      'node dist/src/cli/main.js operator --leader-elect --no-such-operator-flag=1',
      '```',
      '',
    ].join('\n');
    expect(checkMarkdown('README.md', bad, facts).map((p) => `${p.line}: ${p.message}`)).to.deep.equal([
      '3: link docs/no-such-page.md: docs/no-such-page.md does not exist',
      '3: link docs/install.md#no-such-heading: docs/install.md has no heading #no-such-heading',
      '3: link #nowhere: README.md has no heading #nowhere',
      '6: `make no-such-target`: no such target in the Makefile',
      '7: `npm run no-such-script`: no such script in package.json',
      '8: `hack/no-such-script.sh`: no such file or directory in the repository',
      '9: `kubectl-stowage disks --no-such-flag`: no such flag (not in its --help)',
      `10: \`kubectl-stowage no-such-command\`: no such subcommand (kubectl-stowage --help lists: ${[...'disks pools why cordon uncordon drain help'.split(' ')].join(', ')})`,
      '11: `stowage operator --no-such-operator-flag`: no such flag (not in its --help)',
    ]);
  });

  it('passes links, targets, scripts, files, subcommands and flags that exist', () => {
    const good = [
      '# Good sample',
      '',
      '[install](docs/install.md#support-matrix), [samples](samples/), [top](#good-sample), [web](https://example.org/x#y).',
      '',
      '```sh',
      'make build test',
      'npm run package:kubectl-plugin -- --version v1.2.3',
      'hack/install-test-deps.sh',
      'kubectl apply -k config/default',
      'kubectl stowage --context kind disks --node n1 -o wide',
      'node dist/src/cli/main.js operator --leader-elect --node-agent-arg=--include-path=/dev/disk/by-id/nvme-*',
      '```',
      '',
    ].join('\n');
    expect(checkMarkdown('README.md', good, facts)).to.deep.equal([]);
  });
});

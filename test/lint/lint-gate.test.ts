import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { ESLint } from 'eslint';

/** The checkout; compiled, this file lives in dist/test/lint/. */
const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const BIOME = join(REPO, 'node_modules/@biomejs/biome/bin/biome');
const run = promisify(execFile);

/** A file name the tree does not hold: the probe is linted from memory and never written. */
const PROBE = 'lint-gate-probe.ts';

/**
 * Lints `code` with the project's own eslint.config.js, as `make lint` runs it; the type
 * information for the in-memory file comes from the project service's default project, with the
 * compiler options of tsconfig.json.
 */
async function lintAsSource(code: string): Promise<string[]> {
  const eslint = new ESLint({
    cwd: REPO,
    overrideConfig: {
      files: [PROBE],
      languageOptions: { parserOptions: { projectService: { allowDefaultProject: [PROBE], defaultProject: 'tsconfig.json' } } },
    },
  });
  const [result] = await eslint.lintText(code, { filePath: join(REPO, PROBE) });
  return result.messages.map((m) => `${m.ruleId ?? 'parse'}: ${m.message}`);
}

/** Checks `code` with the project's formatter settings (biome.json) in a temporary directory. */
async function formatCheck(code: string): Promise<{ ok: boolean; output: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'stowage-lint-'));
  try {
    await writeFile(join(dir, 'probe.ts'), code);
    const args = [BIOME, 'format', '--config-path', REPO, join(dir, 'probe.ts')];
    try {
      const { stdout, stderr } = await run(process.execPath, args, { cwd: dir });
      return { ok: true, output: stdout + stderr };
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string };
      return { ok: false, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const CLEAN = `import { readFile } from 'node:fs/promises';

export async function firstLine(path: string): Promise<string> {
  const text = await readFile(path, 'utf8');
  return text.split('\\n')[0];
}
`;

describe('the lint and format gate (make lint)', function () {
  // The first type-checked lint builds the TypeScript program of the project: seconds, not minutes.
  this.timeout(120_000);

  it('passes clean code: no finding from ESLint, nothing to change for the formatter', async () => {
    expect(await lintAsSource(CLEAN)).to.deep.equal([]);
    const format = await formatCheck(CLEAN);
    expect(format.ok, format.output).to.equal(true);
  });

  it('fails on a floating promise (a rejection nobody would see)', async () => {
    const code = CLEAN.replace(
      "  const text = await readFile(path, 'utf8');",
      "  readFile(path, 'utf8');\n  const text = await readFile(path, 'utf8');",
    );
    const findings = await lintAsSource(code);
    expect(
      findings.some((f) => f.startsWith('@typescript-eslint/no-floating-promises:')),
      findings.join('\n'),
    ).to.equal(true);
  });

  it('fails on a rejection swallowed without a reason, and passes it once a comment says why', async () => {
    const swallowed = CLEAN.replace("await readFile(path, 'utf8');", "await readFile(path, 'utf8').catch(() => '');");
    expect(await lintAsSource(swallowed)).to.include(
      'stowage/explained-swallow: This handler drops the rejection without a word: log what failed and why it is safe to go on, turn it into a condition or event, or add a comment saying why silence is right.',
    );
    const explained = swallowed.replace(
      '  const text =',
      '  // An unreadable file reads as empty: the caller treats both alike.\n  const text =',
    );
    expect(await lintAsSource(explained)).to.deep.equal([]);
  });

  it('fails on a misformatted file', async () => {
    const format = await formatCheck(
      CLEAN.replace("const text = await readFile(path, 'utf8');", 'const text   =   await readFile(path, "utf8")'),
    );
    expect(format.ok, format.output).to.equal(false);
    expect(format.output).to.match(/probe\.ts/);
  });
});

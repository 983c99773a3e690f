import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface PromtoolResult {
  readonly code: number;
  readonly output: string;
}

/** Runs `promtool ARGS` (Debian's prometheus package), feeding `stdin` when given. */
export function promtool(args: readonly string[], opts: { cwd?: string; stdin?: string } = {}): Promise<PromtoolResult> {
  return new Promise((resolve, reject) => {
    const child = execFile('promtool', [...args], { cwd: opts.cwd, timeout: 60_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const output = `${stdout}${stderr}`;
      if (err && typeof (err as NodeJS.ErrnoException).code === 'string') {
        reject(new Error(`cannot run promtool (${err.message}); install Debian's prometheus package (hack/install-test-deps.sh)`));
        return;
      }
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, output });
    });
    if (opts.stdin !== undefined) child.stdin?.end(opts.stdin);
  });
}

/** A temporary directory for one test, removed by `cleanup()` (call it in after/afterEach). */
export async function tempDir(
  prefix: string,
): Promise<{ dir: string; write(name: string, content: string): Promise<string>; cleanup(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), `stowage-${prefix}-`));
  return {
    dir,
    async write(name, content) {
      const path = join(dir, name);
      await writeFile(path, content);
      return path;
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

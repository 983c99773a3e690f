#!/usr/bin/env node
/**
 * `kubectl-stowage`: the kubectl plugin (kubectl runs any `kubectl-NAME` on the PATH as `kubectl
 * NAME`). Views of disks and pools, `why`, and the safe day-2 actions; the user's kubeconfig and
 * context, as kubectl uses them. Sub-commands load their modules lazily.
 */
import { Command, Option } from 'commander';
import { VERSION } from '../util/version.js';
import { parseOutputFormat, type OutputFormat } from './kubectl/output.js';

interface Global {
  kubeconfig?: string;
  context?: string;
  namespace?: string;
}

const program = new Command()
  .name('kubectl stowage')
  .description("Stowage's disks, pools and volumes at a glance, why something is not used, and safe day-2 actions on disks")
  .version(VERSION, '--version', 'print the version')
  .option('--kubeconfig <path>', 'kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)')
  .option('--context <name>', 'kubeconfig context to use')
  .option('-n, --namespace <ns>', "namespace of a PersistentVolumeClaim for `why` (default: the context's, else default)")
  .showHelpAfterError();

const outputOption = (): Option =>
  // Validated while parsing, so a typo fails before any API call.
  new Option('-o, --output <format>', 'wide, json or yaml').argParser((v) => parseOutputFormat(v));

const globals = (): Global => program.opts<Global>();

function io() {
  const abort = new AbortController();
  const stop = (): void => abort.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return { stdout: process.stdout, stderr: process.stderr, env: process.env, signal: abort.signal };
}

async function run(fn: () => Promise<number>): Promise<void> {
  const { explainError } = await import('./kubectl/session.js');
  try {
    process.exitCode = await fn();
  } catch (err) {
    process.stderr.write(`kubectl-stowage: ${explainError(err)}\n`);
    process.exitCode = 1;
  }
  // Nothing may keep the process up once the command is done (a watch still closing, say); exit
  // once stdout has taken everything written to it, so a big -o json is never cut short.
  const code = process.exitCode;
  process.stdout.write('', () => process.exit(code));
}

program
  .command('disks')
  .description(
    'one row per disk, grouped by node: size, media, model, health, pool, volume (PV → PVC → pod), and why an unused disk is unused',
  )
  .option('--node <name>', 'only the disks of this node')
  .option('--pool <name>', 'only the disks of this pool')
  .addOption(outputOption())
  .option('-w, --watch', 'keep the view open and redraw it on every change')
  .action((opts: { node?: string; pool?: string; output?: OutputFormat; watch?: boolean }) =>
    run(async () => {
      const { disksCommand } = await import('./kubectl/commands.js');
      return disksCommand({ ...globals(), ...opts, output: opts.output ?? 'table' }, io());
    }),
  );

program
  .command('pools')
  .description(
    'per pool: mode, replication, nodes and disks ready/total, volumes, capacity used/allocated/available with a bar, Ready and the first failing condition',
  )
  .addOption(outputOption())
  .option('-w, --watch', 'keep the view open and redraw it on every change')
  .action((opts: { output?: OutputFormat; watch?: boolean }) =>
    run(async () => {
      const { poolsCommand } = await import('./kubectl/commands.js');
      return poolsCommand({ ...globals(), ...opts, output: opts.output ?? 'table' }, io());
    }),
  );

program
  .command('why')
  .argument('<target>', 'a NodeDisk, StoragePool or PersistentVolumeClaim name; prefix with disk/, pool/ or pvc/ when names clash')
  .description('the chain of reasons, in sentences: why a disk is not in a pool, why a pool is not Ready, why a claim is Pending')
  .addOption(outputOption())
  .action((target: string, opts: { output?: OutputFormat }) =>
    run(async () => {
      const { whyCommand } = await import('./kubectl/commands.js');
      return whyCommand(target, { ...globals(), output: opts.output ?? 'table' }, io());
    }),
  );

for (const [verb, schedulable, what] of [
  [
    'cordon',
    false,
    'stop pools from claiming the disk (spec.schedulable: false); a disk in a pool is handed back once no workload uses it',
  ],
  ['uncordon', true, 'let pools claim the disk again (spec.schedulable: true)'],
] as const) {
  program
    .command(verb)
    .argument('<disk>', 'NodeDisk name (see `kubectl stowage disks`)')
    .description(what)
    .option('--dry-run', 'print what would change and write nothing')
    .option('--force-conflicts', 'take over spec.schedulable when another field manager owns it')
    .action((disk: string, opts: { dryRun?: boolean; forceConflicts?: boolean }) =>
      run(async () => {
        const { cordonCommand } = await import('./kubectl/commands.js');
        return cordonCommand(disk, schedulable, { ...globals(), ...opts }, io());
      }),
    );
}

program
  .command('drain')
  .argument('<disk>', 'NodeDisk name (see `kubectl stowage disks`)')
  .description(
    'cordon the disk, then wait, showing progress, until its volume is released and the disk is free; deletes nothing a workload uses',
  )
  .option('--dry-run', 'print what would change and what drain would wait for; write nothing')
  .option('--force-conflicts', 'take over spec.schedulable when another field manager owns it')
  .addOption(
    new Option('--timeout <seconds>', 'give up waiting after this long (the disk stays cordoned); 0 waits forever')
      .default(0)
      .argParser((v) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 0) throw new Error(`--timeout must be a whole number of seconds, not "${v}"`);
        return n;
      }),
  )
  .action((disk: string, opts: { dryRun?: boolean; forceConflicts?: boolean; timeout: number }) =>
    run(async () => {
      const { drainCommand } = await import('./kubectl/commands.js');
      return drainCommand(disk, { ...globals(), ...opts, timeoutSeconds: opts.timeout }, io());
    }),
  );

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`kubectl-stowage: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});

// For humans debugging: run the test control plane in the foreground.
//
//   node dist/test/cluster/cli.js up [--state-dir DIR] [--bin-dir DIR]
//       starts etcd + kube-apiserver + kube-controller-manager + kube-scheduler on 127.0.0.1,
//       prints `export KUBECONFIG=...`, stays up until SIGINT/SIGTERM, then stops everything.
//       With --state-dir, certificates and etcd data are kept there and reused next time
//       (the API server port changes, the kubeconfig is rewritten).
//   node dist/test/cluster/cli.js down --state-dir DIR
//       kills processes left behind in DIR by a run that did not stop cleanly.

import { ControlPlane, killLeftovers } from './control-plane.js';

function usage(code: number): never {
  process.stderr.write('usage: cli.js up [--state-dir DIR] [--bin-dir DIR]\n' + '       cli.js down --state-dir DIR\n');
  process.exit(code);
}

function parse(argv: string[]): { cmd: string; stateDir?: string; binDir?: string } {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '-h' || cmd === '--help') usage(cmd ? 0 : 2);
  const out: { cmd: string; stateDir?: string; binDir?: string } = { cmd };
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = () => inline ?? rest[++i] ?? usage(2);
    if (flag === '--state-dir') out.stateDir = value();
    else if (flag === '--bin-dir') out.binDir = value();
    else usage(2);
  }
  return out;
}

async function main(): Promise<void> {
  const args = parse(process.argv.slice(2));
  const log = (line: string) => process.stderr.write(`[control-plane] ${line}\n`);
  if (args.cmd === 'down') {
    if (!args.stateDir) usage(2);
    const killed = await killLeftovers(args.stateDir);
    log(killed.length ? `killed ${killed.join(', ')}` : 'nothing running');
    return;
  }
  if (args.cmd !== 'up') usage(2);

  const cp = await ControlPlane.start({ stateDir: args.stateDir, binDir: args.binDir, log });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: stopping`);
    cp.stop().then(
      () => process.exit(0),
      (e) => {
        log(`stop failed: ${(e as Error).message}`);
        process.exit(1);
      },
    );
  };
  const keepAlive = setInterval(() => {}, 1 << 30); // components are unref'd child processes
  process.on('exit', () => clearInterval(keepAlive));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.stdout.write(
    `# control plane up in ${(cp.startupMs / 1000).toFixed(1)} s: ${cp.server} (state ${cp.stateDir}, logs in ${cp.stateDir}/logs)\n` +
      `export KUBECONFIG=${cp.kubeconfigPath}\n` +
      `# kubectl: ${cp.binDir}/kubectl — Ctrl-C to stop\n`,
  );
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).message}\n`);
  process.exit(1);
});

import { spawn, type ChildProcess } from 'node:child_process';
import * as net from 'node:net';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');

/** A `stowage operator` child process with its own metrics/health port and captured output. */
export class OperatorProcess {
  readonly output: string[] = [];
  private constructor(
    readonly child: ChildProcess,
    readonly port: number,
  ) {
    child.stdout?.on('data', (d: Buffer) => this.output.push(d.toString()));
    child.stderr?.on('data', (d: Buffer) => this.output.push(d.toString()));
  }

  static async start(kubeconfig: string, extraArgs: string[] = [], env: Record<string, string> = {}): Promise<OperatorProcess> {
    const port = await freePort();
    const address = `127.0.0.1:${port}`;
    const child = spawn(
      process.execPath,
      [
        CLI,
        'operator',
        '--kubeconfig',
        kubeconfig,
        '--metrics-bind-address',
        address,
        '--health-probe-bind-address',
        address,
        ...extraArgs,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, STOWAGE_LOG_LEVEL: 'info', ...env } },
    );
    return new OperatorProcess(child, port);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  async metrics(): Promise<string> {
    return (await fetch(`${this.url}/metrics`)).text();
  }

  /** The value of a metric line with exactly these labels, or 0 when it is absent. */
  async metric(name: string, labels: Record<string, string>): Promise<number> {
    const text = await this.metrics();
    const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
    for (const line of text.split('\n')) {
      if (!line.startsWith(`${name}{`)) continue;
      const inside = line.slice(name.length + 1, line.indexOf('}'));
      const have = inside.split(',');
      if (want.every((w) => have.includes(w))) return Number(line.slice(line.lastIndexOf(' ') + 1));
    }
    return 0;
  }

  kill(signal: NodeJS.Signals): void {
    if (!this.exited) this.child.kill(signal);
  }

  /** Resolves with the exit code (or the signal's name) once the process has ended. */
  wait(): Promise<number | string> {
    if (this.exited) return Promise.resolve(this.child.exitCode ?? this.child.signalCode!);
    return new Promise((resolve) => this.child.once('exit', (code, signal) => resolve(code ?? signal!)));
  }

  /** Stops the process for certain: SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.exited) return;
    this.kill('SIGTERM');
    const timer = setTimeout(() => this.kill('SIGKILL'), graceMs);
    await this.wait();
    clearTimeout(timer);
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

import { spawn, type ChildProcess } from 'node:child_process';
import { freePort } from '../support/operator-process.js';
import { waitFor } from '../support/cluster.js';
import { tempDir } from './promtool.js';

export interface PrometheusAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: 'pending' | 'firing';
  activeAt: string;
}

/**
 * A real Prometheus (Debian's `prometheus` binary) on 127.0.0.1 with its own temporary data
 * directory, started and stopped by PID.
 */
export class PrometheusProcess {
  readonly output: string[] = [];
  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    private readonly tmp: Awaited<ReturnType<typeof tempDir>>,
  ) {
    child.stdout?.on('data', (d: Buffer) => this.output.push(d.toString()));
    child.stderr?.on('data', (d: Buffer) => this.output.push(d.toString()));
  }

  /** Starts Prometheus with `config` (YAML text) and extra `files` beside it (rule files), and waits until it is ready. */
  static async start(config: string, files: Record<string, string>): Promise<PrometheusProcess> {
    const tmp = await tempDir('prometheus');
    try {
      for (const [name, content] of Object.entries(files)) await tmp.write(name, content);
      const configPath = await tmp.write('prometheus.yml', config);
      const port = await freePort();
      const child = spawn(
        'prometheus',
        [
          `--config.file=${configPath}`,
          `--storage.tsdb.path=${tmp.dir}/data`,
          `--web.listen-address=127.0.0.1:${port}`,
          '--storage.tsdb.retention.time=1h',
          '--log.level=warn',
        ],
        { cwd: tmp.dir, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      const prom = new PrometheusProcess(child, port, tmp);
      try {
        await waitFor(
          'Prometheus to be ready',
          async () => {
            if (prom.exited) throw new Error(`prometheus exited: ${prom.output.join('')}`);
            return (await fetch(`${prom.url}/-/ready`)).ok;
          },
          60_000,
          200,
        );
      } catch (err) {
        await prom.stop();
        throw err;
      }
      return prom;
    } catch (err) {
      await tmp.cleanup();
      throw err;
    }
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  async alerts(): Promise<PrometheusAlert[]> {
    const body = (await (await fetch(`${this.url}/api/v1/alerts`)).json()) as { data: { alerts: PrometheusAlert[] } };
    return body.data.alerts;
  }

  /** Active targets with their health (`up`, `down`, `unknown`). */
  async targets(): Promise<{ labels: Record<string, string>; health: string; lastError: string }[]> {
    const body = (await (await fetch(`${this.url}/api/v1/targets?state=active`)).json()) as {
      data: { activeTargets: { labels: Record<string, string>; health: string; lastError: string }[] };
    };
    return body.data.activeTargets;
  }

  async query(expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
    const body = (await (await fetch(`${this.url}/api/v1/query?query=${encodeURIComponent(expr)}`)).json()) as {
      status: string;
      error?: string;
      data: { result: { metric: Record<string, string>; value: [number, string] }[] };
    };
    if (body.status !== 'success') throw new Error(`query ${expr} failed: ${body.error}`);
    return body.data.result;
  }

  /** SIGTERM, SIGKILL after `graceMs`, then removes the data directory. */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.exited) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    }
    await this.tmp.cleanup();
  }
}

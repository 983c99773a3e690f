// A real OCI registry on loopback for the real kubelet node (issue 27): Debian's `docker-registry`
// (the CNCF distribution registry), listening on 127.0.0.1 at a port it picks, storing in a temporary
// directory. Images reach it the way a release does (`make push`, hack/push-image.sh, skopeo), and the
// node's containerd pulls from it by tag and by digest as a cluster pulls from a public registry
// (kubelet-node.ts trusts it over plain HTTP through containerd's hosts directory).
//
// Started and stopped by the test that needs it, by PID (under `setpriv --pdeathsig KILL`, so it dies
// with the test process); stop() removes its storage. Nothing listens beyond loopback.

import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { isExecutable, sleep, tail } from './host.js';
import { registerRunDir } from './kubelet-hygiene.js';

const exec = promisify(execFile);
const REGISTRY_BIN = '/usr/bin/docker-registry';
const SETPRIV = '/usr/bin/setpriv';
const READY_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 10_000;
const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export interface PushResult {
  /** REGISTRY/stowage:TAG for each tag pushed. */
  refs: string[];
  /** The manifest digest the registry serves (sha256:…), the archive's own. */
  digest: string;
}

export class LoopbackRegistry {
  private stopped = false;

  private constructor(
    /** 127.0.0.1:PORT */
    readonly host: string,
    private readonly dir: string,
    private readonly child: ChildProcess,
    private readonly exited: Promise<void>,
  ) {}

  static async start(): Promise<LoopbackRegistry> {
    if (!isExecutable(REGISTRY_BIN))
      throw new Error(`kubelet-registry: ${REGISTRY_BIN} missing; run hack/install-test-deps.sh (Debian's docker-registry)`);
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'stowage-registry-'));
    registerRunDir(dir);
    const config = path.join(dir, 'config.yml');
    // Port 0: the registry binds a free one and logs it; no race with another test's port.
    await fsp.writeFile(
      config,
      [
        'version: 0.1',
        'log:',
        '  level: info',
        '  accesslog:',
        '    disabled: true',
        'storage:',
        '  filesystem:',
        `    rootdirectory: ${JSON.stringify(path.join(dir, 'data'))}`,
        '  delete:',
        '    enabled: true',
        'http:',
        '  addr: 127.0.0.1:0',
        `  secret: ${randomBytes(16).toString('hex')}`,
        '',
      ].join('\n'),
    );
    const logFile = path.join(dir, 'registry.log');
    const fd = fs.openSync(logFile, 'a');
    let child: ChildProcess;
    try {
      const argv = ['serve', config];
      child = isExecutable(SETPRIV)
        ? spawn(SETPRIV, ['--pdeathsig', 'KILL', '--', REGISTRY_BIN, ...argv], { stdio: ['ignore', fd, fd], cwd: dir })
        : spawn(REGISTRY_BIN, argv, { stdio: ['ignore', fd, fd], cwd: dir });
    } finally {
      fs.closeSync(fd);
    }
    let hasExited = false;
    const exited = new Promise<void>((resolve) => child.once('exit', () => ((hasExited = true), resolve())));
    child.on('error', () => {});
    const t0 = Date.now();
    try {
      for (;;) {
        if (hasExited) throw new Error(`kubelet-registry: docker-registry exited at start:\n${await tail(logFile, 20)}`);
        // A poll: the log may not exist yet, and the loop ends on the timeout below with the log's tail.
        const port = /listening on 127\.0\.0\.1:(\d+)/.exec(await fsp.readFile(logFile, 'utf8').catch(() => ''))?.[1];
        if (port) {
          // Not answering yet is what this poll waits out; the timeout below says so.
          const res = await fetch(`http://127.0.0.1:${port}/v2/`).catch(() => undefined);
          if (res?.status === 200) return new LoopbackRegistry(`127.0.0.1:${port}`, dir, child, exited);
        }
        if (Date.now() - t0 > READY_TIMEOUT_MS)
          throw new Error(`kubelet-registry: not serving /v2/ within ${READY_TIMEOUT_MS / 1000} s:\n${await tail(logFile, 20)}`);
        await sleep(100);
      }
    } catch (e) {
      child.kill('SIGKILL');
      await exited;
      await fsp.rm(dir, { recursive: true, force: true });
      throw e;
    }
  }

  /** PID of the registry process (the test checks it is gone after stop()). */
  get pid(): number {
    return this.child.pid!;
  }

  /**
   * `make push` of the archive `make image` built, to `<host>/<path>` with each tag: the target a
   * release runs, with skopeo, over plain HTTP (loopback). Returns the references and the digest.
   */
  async push(repositoryPath: string, tags: string[]): Promise<PushResult> {
    const registry = `${this.host}/${repositoryPath}`;
    let stdout: string;
    try {
      ({ stdout } = await exec(
        'make',
        ['--no-print-directory', '-s', 'push', `REGISTRY=${registry}`, `PUSH_TAGS=${tags.join(' ')}`, 'PUSH_TLS_VERIFY=false'],
        { cwd: REPO_ROOT, timeout: 300_000, maxBuffer: 16 << 20 },
      ));
    } catch (e) {
      const err = e as { stdout?: string; stderr?: string; message: string };
      throw new Error(`kubelet-registry: make push REGISTRY=${registry} failed: ${err.stderr || err.message}\n${err.stdout ?? ''}`, {
        cause: e,
      });
    }
    // hack/push-image.sh prints one "pushed REF@DIGEST" line per tag.
    const pushed = stdout.split('\n').flatMap((l) => (/^pushed (\S+)@(sha256:[a-f0-9]{64})$/.exec(l) ? [l.slice('pushed '.length)] : []));
    if (pushed.length !== tags.length)
      throw new Error(`kubelet-registry: make push printed ${pushed.length} pushed lines for ${tags.length} tags:\n${stdout}`);
    const digests = new Set(pushed.map((p) => p.slice(p.indexOf('@') + 1)));
    if (digests.size !== 1) throw new Error(`kubelet-registry: the tags were pushed with different digests: ${pushed.join(', ')}`);
    return { refs: pushed.map((p) => p.slice(0, p.indexOf('@'))), digest: [...digests][0] };
  }

  /** The manifest digest the registry serves for `name:reference`, as a client resolving it sees it (HEAD, Docker-Content-Digest). */
  async resolve(name: string, reference: string): Promise<string | undefined> {
    const res = await fetch(`http://${this.host}/v2/${name}/manifests/${reference}`, {
      method: 'HEAD',
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' },
    });
    return res.status === 200 ? (res.headers.get('docker-content-digest') ?? undefined) : undefined;
  }

  /** Stops the registry by PID and removes its storage. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const graceful = await Promise.race([
      this.exited.then(() => true),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(false), STOP_GRACE_MS))),
    ]);
    clearTimeout(timer);
    if (!graceful) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
    await fsp.rm(this.dir, { recursive: true, force: true });
  }
}

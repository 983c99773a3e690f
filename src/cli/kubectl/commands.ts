/**
 * The thin shells of `kubectl stowage`: open the session, read, render, write. Each returns the
 * process exit code; errors a user can act on are printed as one sentence by the entry point.
 */
import { PERSISTENT_VOLUME_CLAIMS, PERSISTENT_VOLUMES } from '../../kube/resources.js';
import { applySchedulable, describeChange, drainState, getDisk, schedulableChange, waitUntilFree } from './cordon.js';
import { diskRows, renderDisks, type DiskFilter } from './disks.js';
import { renderStructured, styleFor, type OutputFormat, type Style } from './output.js';
import { poolRows, renderPools } from './pools.js';
import { openSession, requireStowageApi, UserError, type GlobalFlags, type Session } from './session.js';
import { eventsAbout, loadDriverState, loadSnapshot, type Claim, type Snapshot } from './snapshot.js';
import { watchView } from './watch.js';
import { explainClaim, explainDisk, explainPool, renderExplanation } from './why.js';
import { persistentVolumeName } from '../../operator/storagepool/persistent-volume.js';
import type { PersistentVolume } from '../../kube/types.js';

export interface Io {
  readonly stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  readonly stderr: NodeJS.WritableStream;
  readonly env: NodeJS.ProcessEnv;
  /** Aborted on Ctrl-C (ends --watch and drain). */
  readonly signal: AbortSignal;
}

export interface ViewFlags extends GlobalFlags {
  readonly output: OutputFormat;
  readonly watch?: boolean;
}

async function withSession<T>(flags: GlobalFlags, fn: (s: Session) => Promise<T>): Promise<T> {
  const session = await openSession(flags);
  try {
    await requireStowageApi(session);
    return await fn(session);
  } finally {
    session.client.close();
  }
}

function warn(io: Io, snap: Snapshot): void {
  for (const w of snap.warnings) io.stderr.write(`warning: ${w}\n`);
}

async function view(
  flags: ViewFlags,
  io: Io,
  kind: string,
  render: (snap: Snapshot, style: Style) => { text: string; items: unknown[] },
): Promise<number> {
  return withSession(flags, async (s) => {
    const style = styleFor(io.stdout, io.env);
    const once = async (): Promise<string> => {
      const snap = await loadSnapshot(s.client);
      const { text, items } = render(snap, style);
      if (flags.output === 'json' || flags.output === 'yaml') return renderStructured(kind, items, flags.output);
      return text;
    };
    if (!flags.watch) {
      const snap = await loadSnapshot(s.client);
      warn(io, snap);
      const { text, items } = render(snap, style);
      io.stdout.write(flags.output === 'json' || flags.output === 'yaml' ? renderStructured(kind, items, flags.output) : text);
      return 0;
    }
    await watchView({
      client: s.client,
      render: once,
      write: (t) => io.stdout.write(t),
      tty: io.stdout.isTTY === true,
      title: `kubectl stowage ${kind === 'DiskList' ? 'disks' : 'pools'} --watch`,
      signal: io.signal,
    });
    return 0;
  });
}

export function disksCommand(flags: ViewFlags & DiskFilter, io: Io): Promise<number> {
  return view(flags, io, 'DiskList', (snap, style) => {
    const rows = diskRows(snap, flags);
    return { text: renderDisks(rows, style, flags.output === 'wide'), items: rows };
  });
}

export function poolsCommand(flags: ViewFlags, io: Io): Promise<number> {
  return view(flags, io, 'PoolList', (snap, style) => {
    const rows = poolRows(snap);
    return { text: renderPools(rows, style, flags.output === 'wide'), items: rows };
  });
}

/** `TYPE/NAME` or a bare name, looked up as a disk, then a pool, then a claim in the namespace. */
export async function whyCommand(target: string, flags: GlobalFlags & { output: OutputFormat }, io: Io): Promise<number> {
  return withSession(flags, async (s) => {
    const [type, rawName] =
      target.includes('/') &&
      !target.includes('/', target.indexOf('/') + 1) &&
      /^(nodedisks?|nd|disks?|storagepools?|sp|pools?|pvc|persistentvolumeclaims?)\//.test(target)
        ? [target.slice(0, target.indexOf('/')), target.slice(target.indexOf('/') + 1)]
        : [undefined, target];
    const name = rawName;
    const kindOf = (t: string | undefined): 'disk' | 'pool' | 'pvc' | undefined =>
      t === undefined ? undefined : /^(nodedisks?|nd|disks?)$/.test(t) ? 'disk' : /^(storagepools?|sp|pools?)$/.test(t) ? 'pool' : 'pvc';
    const kind = kindOf(type);
    const snap = await loadSnapshot(s.client);
    warn(io, snap);
    const disk = kind === undefined || kind === 'disk' ? snap.disks.find((d) => d.metadata.name === name) : undefined;
    const pool = !disk && (kind === undefined || kind === 'pool') ? snap.pools.find((p) => p.metadata.name === name) : undefined;
    let explanation;
    if (disk) explanation = explainDisk(disk, snap, await eventsAbout(s.client, 'NodeDisk', name));
    else if (pool) explanation = explainPool(pool, snap, await eventsAbout(s.client, 'StoragePool', name));
    else if (kind === undefined || kind === 'pvc') {
      const pvc = await s.client.getIfExists<Claim>(PERSISTENT_VOLUME_CLAIMS, name, s.namespace);
      if (!pvc) {
        throw new UserError(
          `nothing named ${name}: no NodeDisk, no StoragePool, and no PersistentVolumeClaim in namespace ${s.namespace} (use -n NAMESPACE for a claim elsewhere; \`kubectl stowage disks\` and \`kubectl stowage pools\` list the others)`,
        );
      }
      const podEvents = (
        await Promise.all(
          snap.pods
            .filter((p) => p.metadata.namespace === s.namespace && p.spec.volumes?.some((v) => v.persistentVolumeClaim?.claimName === name))
            .map((p) => eventsAbout(s.client, 'Pod', p.metadata.name!, s.namespace)),
        )
      ).flat();
      explanation = explainClaim(
        pvc,
        snap,
        await eventsAbout(s.client, 'PersistentVolumeClaim', name, s.namespace),
        podEvents,
        await loadDriverState(s.client),
      );
    } else {
      throw new UserError(
        `${kind === 'disk' ? 'nodedisk' : 'storagepool'} ${name} not found; \`kubectl stowage ${kind === 'disk' ? 'disks' : 'pools'}\` lists them`,
      );
    }
    if (flags.output === 'json' || flags.output === 'yaml') io.stdout.write(renderStructured('Explanation', [explanation], flags.output));
    else io.stdout.write(renderExplanation(explanation));
    return 0;
  });
}

export interface ActionFlags extends GlobalFlags {
  readonly dryRun?: boolean;
  readonly forceConflicts?: boolean;
}

export function cordonCommand(name: string, schedulable: boolean, flags: ActionFlags, io: Io): Promise<number> {
  return withSession(flags, async (s) => {
    const disk = await getDisk(s.client, name);
    const change = schedulableChange(disk, schedulable);
    if (change.changes && !flags.dryRun) await applySchedulable(s.client, name, schedulable, flags.forceConflicts === true);
    io.stdout.write(describeChange(change, flags.dryRun === true));
    return 0;
  });
}

export interface DrainFlags extends ActionFlags {
  /** 0: wait as long as it takes. */
  readonly timeoutSeconds: number;
}

export function drainCommand(name: string, flags: DrainFlags, io: Io): Promise<number> {
  return withSession(flags, async (s) => {
    const disk = await getDisk(s.client, name);
    const change = schedulableChange(disk, false);
    const loadPods = async (): Promise<Pick<Snapshot, 'pods' | 'poolVolumes'>> => loadSnapshot(s.client);
    if (flags.dryRun) {
      io.stdout.write(describeChange(change, true));
      const pv = await s.client.getIfExists<PersistentVolume>(PERSISTENT_VOLUMES, persistentVolumeName(name));
      const state = drainState(disk, pv, await loadPods());
      io.stdout.write(
        state.free
          ? `nodedisk/${name}: nothing holds the disk; drain would return at once (dry run)\n`
          : `then drain would wait: ${state.step} (dry run)\n`,
      );
      return 0;
    }
    if (change.changes) await applySchedulable(s.client, name, false, flags.forceConflicts === true);
    io.stdout.write(describeChange(change, false));
    const free = await waitUntilFree(s.client, name, {
      timeoutMs: flags.timeoutSeconds * 1000,
      signal: io.signal,
      loadPods,
      progress: (line) => io.stdout.write(`${line}\n`),
    });
    if (free) {
      io.stdout.write(
        `nodedisk/${name} drained: it is in no pool and holds no volume; it stays cordoned until \`kubectl stowage uncordon ${name}\`\n`,
      );
      return 0;
    }
    io.stderr.write(
      `kubectl-stowage: nodedisk/${name} is not drained yet${io.signal.aborted ? ' (interrupted)' : ` after ${flags.timeoutSeconds}s`}; it stays cordoned. Run drain again to keep waiting\n`,
    );
    return 1;
  });
}

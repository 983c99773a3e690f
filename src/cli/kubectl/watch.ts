/**
 * `--watch` for `disks` and `pools`: API watches on the objects the views join trigger a fresh
 * read and a redraw. On a terminal the screen is redrawn in place; into a pipe each changed view is
 * printed again, after a blank line (as `kubectl get -w` appends).
 */
import type { KubeClient } from '../../kube/client.js';
import { resourcePath, PERSISTENT_VOLUMES, PERSISTENT_VOLUME_CLAIMS, type ResourceType } from '../../kube/resources.js';
import { NODE_DISKS, POOL_VOLUMES, STORAGE_POOLS } from '../../crds/resource-types.js';
import { ApiError } from '../../kube/api-error.js';
import { logger } from '../../util/logger.js';

const log = logger('kubectl-stowage-watch');
/** Events come in bursts (a reconcile writes several objects); one redraw per burst. */
const DEBOUNCE_MS = 250;
/** A redraw at least this often, should a watch miss something. */
const REFRESH_MS = 15_000;
const RETRY_MS = 2_000;
const CLEAR_SCREEN = '\x1b[H\x1b[2J';

const WATCHED: readonly ResourceType[] = [STORAGE_POOLS, NODE_DISKS, PERSISTENT_VOLUMES, PERSISTENT_VOLUME_CLAIMS, POOL_VOLUMES];

export interface WatchOptions {
  readonly client: KubeClient;
  /** Reads and renders the view. */
  readonly render: () => Promise<string>;
  readonly write: (text: string) => void;
  readonly tty: boolean;
  readonly title: string;
  readonly signal: AbortSignal;
}

export async function watchView(opts: WatchOptions): Promise<void> {
  let last: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  let drawing = Promise.resolve();
  const draw = (): void => {
    drawing = drawing
      .then(async () => {
        if (opts.signal.aborted) return;
        const text = await opts.render();
        if (text === last) return;
        const first = last === undefined;
        last = text;
        const stamp = new Date().toISOString().slice(11, 19);
        if (opts.tty) opts.write(`${CLEAR_SCREEN}${opts.title}  (updated ${stamp} UTC; Ctrl-C stops)\n\n${text}`);
        else opts.write(`${first ? '' : '\n'}${text}`);
      })
      .catch((err: unknown) => {
        if (!opts.signal.aborted)
          opts.write(`\nkubectl-stowage: refreshing failed, retrying: ${err instanceof Error ? err.message : String(err)}\n`);
      });
  };
  const schedule = (): void => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = undefined;
      draw();
    }, DEBOUNCE_MS);
  };
  draw();
  await drawing;
  const refresh = setInterval(draw, REFRESH_MS);
  const loops = WATCHED.map((rt) => watchForever(opts.client, rt, schedule, opts.signal));
  try {
    await Promise.all(loops);
  } finally {
    clearInterval(refresh);
    if (timer) clearTimeout(timer);
    await drawing;
  }
}

/** Keeps one watch open until aborted; every event (including the initial ADDED burst) schedules a redraw. */
async function watchForever(client: KubeClient, rt: ResourceType, onChange: () => void, signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    try {
      await client.watch(resourcePath(rt), { allowWatchBookmarks: false, timeoutSeconds: 300 }, () => onChange(), signal);
    } catch (err) {
      if (ApiError.is(err, 403)) return; // the redraw's own read names what is denied
      log.debug({ resource: rt.plural, err: String(err) }, 'watch ended; reopening');
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- the signal may abort during the watch
      if (signal.aborted) return;
      await new Promise((r) => setTimeout(r, RETRY_MS));
    }
  }
}

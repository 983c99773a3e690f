/**
 * Block-device events from `udevadm monitor`, so a disk attached or changed is inventoried within
 * a moment instead of at the next discovery interval. Without udevadm the agent still works; it
 * only notices changes later.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Logger } from '../../util/logger.js';

/** udev sends bursts of events for one change; wait for the burst to end. */
const UDEV_DEBOUNCE_MS = 300;

export interface UdevWatch {
  stop(): void;
}

/** Calls `onChange` once after each burst of udev block events. */
export function watchUdev(onChange: () => void, log: Logger): UdevWatch {
  let timer: NodeJS.Timeout | undefined;
  const child = spawn('udevadm', ['monitor', '--udev', '--subsystem-match=block'], { stdio: ['ignore', 'pipe', 'ignore'] });
  child.on('error', () => log.info('udevadm is not available: discovery runs on its interval only'));
  child.stdout.setEncoding('utf8');
  createInterface({ input: child.stdout }).on('line', (line) => {
    if (!/^UDEV\s/.test(line)) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(onChange, UDEV_DEBOUNCE_MS);
  });
  return {
    stop(): void {
      if (timer) clearTimeout(timer);
      child.kill('SIGTERM');
    },
  };
}

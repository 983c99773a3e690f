/**
 * A watch response as the API server streams it: one JSON event per line, for as long as the
 * connection lives. Reading it is kept apart from the client's requests so the framing rules (and
 * how a stream ends) sit in one place.
 */
import type * as http from 'node:http';
import type { WatchEvent } from './types.js';

/**
 * Calls `onEvent` for each event of `res` until the server ends the stream (resolves), the
 * connection fails or a line is not JSON (rejects), or `signal` aborts (resolves). An `onEvent` that
 * throws ends the stream with its error.
 */
export function readWatchStream(
  res: http.IncomingMessage,
  path: string,
  onEvent: (event: WatchEvent) => void,
  signal: AbortSignal,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let buffered = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      buffered += chunk;
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (line === '') continue;
        let event: WatchEvent;
        try {
          event = JSON.parse(line) as WatchEvent;
        } catch {
          res.destroy(new Error(`watch ${path}: the server sent a line that is not JSON: ${line.slice(0, 200)}`));
          return;
        }
        try {
          onEvent(event);
        } catch (err) {
          res.destroy(err as Error);
          return;
        }
      }
    });
    res.on('end', () => resolve());
    res.on('error', (err) => (signal.aborted ? resolve() : reject(err)));
    res.on('aborted', () => (signal.aborted ? resolve() : reject(new Error(`watch ${path}: the connection was reset`))));
    res.on('close', () => (signal.aborted ? resolve() : reject(new Error(`watch ${path}: the connection closed mid-stream`))));
  });
}

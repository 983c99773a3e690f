// The kubernetes-csi livenessprobe sidecar, played on the host for a node plugin on the host network.
// The node DaemonSet's `stowage-node` container has a livenessProbe on its `healthz` port, which the
// upstream livenessprobe sidecar serves; that image cannot be pulled here, and without something on
// the port kubelet would restart the plugin every ~40 s. Mapping to upstream
// (kubernetes-csi/livenessprobe, cmd/livenessprobe/main.go):
//   - `--health-port` (default 9808), HTTP `GET /healthz`       → the server below, same port and path;
//   - healthProbe.checkProbe: connect to `--csi-address`, call
//     Identity.Probe with the probe timeout                     → one Probe per request over the plugin's socket;
//   - a failed call, or `ready` false                           → HTTP 500 with the reason; otherwise 200 "ok".
// It says nothing by itself: every answer is the plugin's own Probe answer.

import { createServer, type Server } from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { csiV1 } from '../../src/csi/grpc.js';
import { call, type CsiClient } from '../csi/fixture.js';

export const LIVENESS_PORT = 9808;
const PROBE_TIMEOUT_MS = 3_000;

export interface PlayedLivenessProbe {
  /** HTTP answers given so far: [status, ...]. */
  readonly answers: number[];
  close(): Promise<void>;
}

/** `socketPath` is read per request: on the host network one port stands for the pod whose plugin is being probed. */
export async function playLivenessProbe(socketPath: () => string, host = '127.0.0.1', port = LIVENESS_PORT): Promise<PlayedLivenessProbe> {
  const v1 = csiV1() as any;
  const answers: number[] = [];
  const server: Server = createServer((req, res) => {
    if (req.url !== '/healthz') {
      res.writeHead(404).end();
      return;
    }
    const client: CsiClient = new v1.Identity(`unix://${socketPath()}`, grpc.credentials.createInsecure());
    // Each branch ends in the answer below; finally closes the client whatever happened.
    void call(client, 'Probe', {}, PROBE_TIMEOUT_MS)
      .then((r: any) => (r?.ready?.value === false ? [500, 'driver responded but is not ready'] : [200, 'ok']))
      .catch((e: Error) => [500, `probe failed: ${e.message}`])
      .then(([status, body]) => {
        answers.push(status as number);
        res.writeHead(status as number, { 'content-type': 'text/plain' }).end(String(body));
      })
      .finally(() => client.close());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        new Error(
          `livenessprobe play: cannot listen on ${host}:${port} (${e.code}); the node plugin's liveness port must be free on the host network`,
        ),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  return {
    answers,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

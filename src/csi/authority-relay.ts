// kubelet before v1.26 (its gRPC client, grpc-go 1.27 in v1.20) sends the Unix socket's *path* as the
// HTTP/2 `:authority` of every call it makes over a Unix socket (plugin registration, CSI). Node's
// HTTP/2 server (nghttp2) rejects an authority containing '/' with RST_STREAM PROTOCOL_ERROR, so such a
// kubelet cannot talk to any @grpc/grpc-js server directly (kubernetes/kubernetes#112597 changed
// kubelet to "localhost"; nodejs/node#32326). serveOnSocket (grpc.ts) therefore puts this relay on the
// socket clients dial and forwards bytes to the real server, rewriting only the `:authority` value of
// each request's header block to "localhost".
//
// HPACK state stays consistent: the representation (and whether it enters the dynamic table) is kept,
// only its value changes, to a string no longer than any socket path, so the server's table can never
// evict an entry the client still refers to. Everything else passes through byte for byte.

import * as fs from 'node:fs';
import * as net from 'node:net';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const HEADERS = 0x1;
const CONTINUATION = 0x9;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY = 0x20;
const MAX_FRAME = 16384;
const AUTHORITY_STATIC_INDEX = 1;
const NEW_AUTHORITY = Buffer.from('localhost');

/** Decodes an HPACK integer with an N-bit prefix at `pos`; returns [value, next position]. */
function readInt(buf: Buffer, pos: number, prefixBits: number): [number, number] {
  const max = (1 << prefixBits) - 1;
  let value = buf[pos] & max;
  pos++;
  if (value < max) return [value, pos];
  let shift = 0;
  for (;;) {
    const b = buf[pos++];
    value += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if ((b & 0x80) === 0) return [value, pos];
  }
}

/** Position after an HPACK string literal starting at `pos`. */
function skipString(buf: Buffer, pos: number): number {
  const [len, next] = readInt(buf, pos, 7);
  return next + len;
}

/** Returns the header block with every `:authority` value replaced by "localhost". */
export function rewriteAuthority(block: Buffer): Buffer {
  const out: Buffer[] = [];
  let pos = 0;
  while (pos < block.length) {
    const start = pos;
    const b = block[pos];
    if (b & 0x80) {
      pos = readInt(block, pos, 7)[1]; // indexed field
    } else if ((b & 0xe0) === 0x20) {
      pos = readInt(block, pos, 5)[1]; // dynamic table size update
    } else {
      const prefix = (b & 0xc0) === 0x40 ? 6 : 4; // incremental indexing : without / never indexed
      const [nameIndex, afterIndex] = readInt(block, pos, prefix);
      const afterName = nameIndex === 0 ? skipString(block, afterIndex) : afterIndex;
      pos = skipString(block, afterName);
      if (nameIndex === AUTHORITY_STATIC_INDEX) {
        out.push(block.subarray(start, afterName), Buffer.from([NEW_AUTHORITY.length]), NEW_AUTHORITY);
        continue;
      }
    }
    out.push(block.subarray(start, pos));
  }
  return Buffer.concat(out);
}

function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId, 5);
  return Buffer.concat([h, payload]);
}

/** Client-to-server byte stream transformer: frames pass through, header blocks are rewritten. */
class RequestRewriter {
  private buf = Buffer.alloc(0);
  private prefaceSeen = false;
  private pending?: { streamId: number; flags: number; priority: Buffer; fragments: Buffer[] };

  push(chunk: Buffer): Buffer {
    this.buf = Buffer.concat([this.buf, chunk]);
    const out: Buffer[] = [];
    if (!this.prefaceSeen) {
      if (this.buf.length < PREFACE.length) return Buffer.alloc(0);
      out.push(this.buf.subarray(0, PREFACE.length));
      this.buf = this.buf.subarray(PREFACE.length);
      this.prefaceSeen = true;
    }
    while (this.buf.length >= 9) {
      const len = this.buf.readUIntBE(0, 3);
      if (this.buf.length < 9 + len) break;
      const type = this.buf[3];
      const flags = this.buf[4];
      const streamId = this.buf.readUInt32BE(5) & 0x7fffffff;
      const payload = this.buf.subarray(9, 9 + len);
      const whole = this.buf.subarray(0, 9 + len);
      this.buf = this.buf.subarray(9 + len);
      if (type === HEADERS) {
        let p = 0;
        let end = payload.length;
        if (flags & PADDED) {
          end -= payload[0];
          p = 1;
        }
        const priority = flags & PRIORITY ? payload.subarray(p, p + 5) : Buffer.alloc(0);
        p += priority.length;
        this.pending = {
          streamId,
          flags: flags & ~PADDED & ~END_HEADERS,
          priority: Buffer.from(priority),
          fragments: [Buffer.from(payload.subarray(p, end))],
        };
      } else if (type === CONTINUATION && this.pending) {
        this.pending.fragments.push(Buffer.from(payload));
      } else {
        out.push(Buffer.from(whole));
        continue;
      }
      if (flags & END_HEADERS) {
        const block = rewriteAuthority(Buffer.concat(this.pending.fragments));
        const first = Buffer.concat([this.pending.priority, block]);
        const { streamId: id, flags: f } = this.pending;
        this.pending = undefined;
        if (first.length <= MAX_FRAME) out.push(frame(HEADERS, f | END_HEADERS, id, first));
        else {
          out.push(frame(HEADERS, f, id, first.subarray(0, MAX_FRAME)));
          for (let at = MAX_FRAME; at < first.length; at += MAX_FRAME) {
            const last = at + MAX_FRAME >= first.length;
            out.push(frame(CONTINUATION, last ? END_HEADERS : 0, id, first.subarray(at, at + MAX_FRAME)));
          }
        }
      }
    }
    return Buffer.concat(out);
  }
}

export interface GrpcAuthorityRelay {
  readonly socketPath: string;
  close(): Promise<void>;
}

/** Listens on `socketPath` and relays every connection to the gRPC server on `targetPath`. */
export async function startGrpcAuthorityRelay(socketPath: string, targetPath: string): Promise<GrpcAuthorityRelay> {
  fs.rmSync(socketPath, { force: true });
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPath);
    sockets.add(client);
    sockets.add(upstream);
    const rewriter = new RequestRewriter();
    client.on('data', (chunk: Buffer) => {
      const out = rewriter.push(chunk);
      if (out.length > 0) upstream.write(out);
    });
    upstream.pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', end);
    upstream.on('error', end);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  return {
    socketPath,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      fs.rmSync(socketPath, { force: true });
    },
  };
}

/**
 * gRPC plumbing shared by the CSI services: loading Stowage's own protocol files, serving them on a
 * Unix socket, and turning thrown errors into the gRPC status codes the CSI spec prescribes.
 */
import { existsSync } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { logger } from '../util/logger.js';
import { startGrpcAuthorityRelay } from './authority-relay.js';
import { errorMessage, ifNotFound } from '../util/errors.js';

const log = logger('csi-grpc');

/** How protobuf values look in JavaScript: field names as in the .proto, int64 as decimal strings, enums by name. */
export const LOADER_OPTIONS: protoLoader.Options = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };

/**
 * The directory holding csi.proto. Compiled code lives in dist/src/csi/, the .proto files stay in
 * src/csi/proto/ (tsc does not copy them), so both places are tried; a container image must ship
 * src/csi/proto/ next to dist/.
 */
export function protoDir(): string {
  const candidates = [new URL('./proto/', import.meta.url), new URL('../../../src/csi/proto/', import.meta.url)];
  for (const url of candidates) {
    const dir = fileURLToPath(url);
    if (existsSync(`${dir}csi.proto`)) return dir;
  }
  throw new Error(`csi.proto not found in ${candidates.map((u) => fileURLToPath(u)).join(' or ')}; ship src/csi/proto/ with the build`);
}

let csiPackage: grpc.GrpcObject | undefined;
let registrationPackage: grpc.GrpcObject | undefined;

/** The loaded `csi.v1` package (service constructors and definitions). */
export function csiV1(): grpc.GrpcObject {
  if (!csiPackage) {
    const def = protoLoader.loadSync(`${protoDir()}csi.proto`, LOADER_OPTIONS);
    csiPackage = (grpc.loadPackageDefinition(def).csi as grpc.GrpcObject).v1 as grpc.GrpcObject;
  }
  return csiPackage;
}

/** The loaded `pluginregistration` package (kubelet's plugin registration API v1). */
export function pluginRegistration(): grpc.GrpcObject {
  if (!registrationPackage) {
    const def = protoLoader.loadSync(`${protoDir()}pluginregistration.proto`, LOADER_OPTIONS);
    registrationPackage = grpc.loadPackageDefinition(def).pluginregistration as grpc.GrpcObject;
  }
  return registrationPackage;
}

export function serviceDefinition(pkg: grpc.GrpcObject, name: string): grpc.ServiceDefinition {
  return (pkg[name] as grpc.ServiceClientConstructor).service;
}

/** An error with the gRPC status code the CSI spec asks for in this situation. */
export class CsiError extends Error {
  override readonly name = 'CsiError';
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

export const invalidArgument = (msg: string): CsiError => new CsiError(grpc.status.INVALID_ARGUMENT, msg);
export const notFound = (msg: string): CsiError => new CsiError(grpc.status.NOT_FOUND, msg);

/**
 * Told about every answered call: method, gRPC status code (0 = OK) and seconds taken. Matches
 * `CsiMetrics.observe` (src/metrics/csi-metrics.ts), so the daemons pass that in.
 */
export type CallObserver = (method: string, code: number, seconds: number) => void;

/** Any method of a service: receives the request and the call, returns the response. */
export type UnaryHandler = (request: any, call: grpc.ServerUnaryCall<any, any>) => Promise<unknown>;

/**
 * Adapts promise-returning handlers to grpc-js callbacks. A {@link CsiError} keeps its code; anything
 * else becomes INTERNAL with the message (the CO retries; the log has the detail).
 */
export function unaryHandlers(
  service: string,
  handlers: Record<string, UnaryHandler>,
  observe?: CallObserver,
): grpc.UntypedServiceImplementation {
  const impl: grpc.UntypedServiceImplementation = {};
  for (const [method, handler] of Object.entries(handlers)) {
    impl[method] = (call: grpc.ServerUnaryCall<any, any>, callback: grpc.sendUnaryData<any>) => {
      const started = Date.now();
      handler(call.request, call).then(
        (response) => {
          log.debug({ service, method, ms: Date.now() - started }, 'call ok');
          observe?.(method, grpc.status.OK, (Date.now() - started) / 1000);
          callback(null, response);
        },
        (err: unknown) => {
          const code = err instanceof CsiError ? err.code : grpc.status.INTERNAL;
          const level = code === grpc.status.INTERNAL ? 'warn' : 'debug';
          const details = statusMessage(errorMessage(err));
          log[level]({ service, method, code: grpc.status[code], err: details }, 'call failed');
          observe?.(method, code, (Date.now() - started) / 1000);
          callback({ code, details, metadata: new grpc.Metadata() }, null);
        },
      );
    };
  }
  return impl;
}

/**
 * The status message travels in an HTTP/2 trailer: one echoing a huge request field (a 1 MiB name
 * the API server quotes back) exceeds the peer's header limit, the call never completes and the
 * connection breaks for every other call on it. Messages are cut to a size any peer accepts.
 */
export const MAX_STATUS_MESSAGE = 2048;

export function statusMessage(message: string): string {
  if (message.length <= MAX_STATUS_MESSAGE) return message;
  return `${message.slice(0, MAX_STATUS_MESSAGE)}… (${message.length - MAX_STATUS_MESSAGE} more characters cut)`;
}

/** `unix:///run/csi/csi.sock` or a plain absolute path → the socket path. */
export function socketPathOf(endpoint: string): string {
  if (endpoint.startsWith('unix://')) return endpoint.slice('unix://'.length);
  if (endpoint.startsWith('/')) return endpoint;
  throw new Error(`endpoint ${JSON.stringify(endpoint)} is not a Unix socket; use unix:///path/to/csi.sock`);
}

export interface GrpcService {
  readonly definition: grpc.ServiceDefinition;
  readonly implementation: grpc.UntypedServiceImplementation;
}

/** A running gRPC server on a Unix socket; `stop()` closes it and removes the socket file. */
export interface SocketServer {
  readonly socketPath: string;
  stop(): Promise<void>;
}

/**
 * Serves `services` on the Unix socket of `endpoint`. A stale socket file from a previous run (the
 * daemon was killed) is removed first; anything else at that path is refused, never deleted.
 */
export async function serveOnSocket(endpoint: string, services: readonly GrpcService[]): Promise<SocketServer> {
  const socketPath = socketPathOf(endpoint);
  // gRPC itself listens on a hidden socket beside the public one (kubelet's plugin watcher ignores
  // dot-files); the public socket is an HTTP/2 relay that fixes the `:authority` kubelets before 1.26
  // send, which Node's HTTP/2 server would otherwise refuse (see authority-relay.ts).
  const grpcPath = join(dirname(socketPath), `.${basename(socketPath)}.grpc`);
  await mkdir(dirname(socketPath), { recursive: true });
  for (const path of [socketPath, grpcPath]) {
    const existing = await stat(path).catch(ifNotFound(undefined));
    if (!existing) continue;
    if (!existing.isSocket()) throw new Error(`${path} exists and is not a socket; refusing to replace it`);
    await rm(path);
  }
  const server = new grpc.Server();
  for (const s of services) server.addService(s.definition, s.implementation);
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix://${grpcPath}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
  );
  const relay = await startGrpcAuthorityRelay(socketPath, grpcPath);
  log.info({ socketPath, services: services.length }, 'serving gRPC');
  return {
    socketPath,
    async stop() {
      await relay.close();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => server.forceShutdown(), 5_000);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      await rm(grpcPath, { force: true });
    },
  };
}

/** Milliseconds left before the call's deadline (Infinity when the client set none). */
export function msUntilDeadline(call: grpc.ServerUnaryCall<any, any>): number {
  const deadline = call.getDeadline();
  if (deadline === Infinity) return Infinity;
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  return at - Date.now();
}

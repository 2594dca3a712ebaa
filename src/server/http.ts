// The front end of `packferry serve`: Git's smart HTTP protocol
// (gitprotocol-http: GET info/refs?service=..., POST git-upload-pack and
// git-receive-pack) and its plain "dumb" file reads over the repositories of
// a store, plus /healthz, /metrics and the admin API (src/server/admin.ts).
// Every request is authenticated (client certificate, token, or anonymous)
// and anything not allowed is answered exactly like a repository that does
// not exist (docs/security.md, "The 404 rule"), decided from the repository's
// settings alone, before anything else of it is read.
//
// All input is hostile (docs/security.md "Limits"): request bodies are read
// as bounded streams with timeouts (body.ts), requests in progress are
// bounded per client and in total and shed with 503 before memory runs out
// (admission.ts), a client that stops reading its response is cut off, and
// Git's requests are answered the way Git's clients show errors: HTTP 200
// with an "ERR" pkt-line.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { Readable } from 'node:stream';
import type { ServerOptions as TlsServerOptions } from 'node:https';
import type { Logger } from 'pino';
import { PackferryError, ErrorCode, isPackferryError } from '../core/errors.js';
import { DEFAULT_UPLOAD_PACK_LIMITS, encodeErrorPacket } from '../protocol/upload-pack-server.js';
import { flushPkt, pktLineText } from '../protocol/pkt-line.js';
import { StoreRepository } from '../store/repository.js';
import { checkRepositoryName, readSettings, repositoryFsckOptions, type RepositorySettings, type StoreRoot } from '../store/root.js';
import { authenticate, authorize, denial, type Action, type Identity, type TokenStore } from './auth/index.js';
import { handleAdmin } from './admin.js';
import type { HookSettings } from './hooks.js';
import { Admission, DEFAULT_ADMISSION_LIMITS, type AdmissionLimits } from './admission.js';
import { checkDeclaredLength, DEFAULT_BODY_LIMITS, isBodyTimeout, readRequestBody, type BodyLimits } from './body.js';
import { createMetrics, type ServerMetrics } from './metrics.js';
import { advertiseReceivePack, serveReceivePack } from './receive-pack.js';
import { advertiseUploadPack, serveUploadPack } from './upload-pack.js';

export interface ServeOptions {
  root: StoreRoot;
  /** HTTPS (with client certificates) when given; plain HTTP otherwise. */
  tls?: TlsServerOptions;
  /** Token verification; without it only certificates and public reads work. */
  tokens?: TokenStore;
  /** This node's region, for region-scoped rights. */
  region?: string;
  /** Local cache of layers and hooks. */
  cacheDir: string;
  logger: Logger;
  /** Largest push accepted, in bytes (default 4 GiB). */
  maxPushBytes?: number;
  /** Largest upload-pack request (wants and haves), in bytes after gzip (default 32 MiB). */
  maxRequestBytes?: number;
  /** Bounds on what clients may make the server spend (defaults: DEFAULT_SERVER_LIMITS). */
  limits?: Partial<ServerLimits>;
  /** How hooks are run and who may manage them (hooks.ts prepareHookSettings). */
  hooks: HookSettings;
}

/** Everything one request, one client and all of them may make the server spend. */
export interface ServerLimits extends AdmissionLimits, BodyLimits {
  /** Longest wait for a client to take more of its response before it is cut off (ms). */
  sendStallMs: number;
  /** Open connections at once; more are closed as they arrive. */
  maxConnections: number;
  /** Time a client has to send its request headers (ms). */
  headersTimeoutMs: number;
}

export const DEFAULT_SERVER_LIMITS: Readonly<Omit<ServerLimits, 'maxMemoryBytes'>> = Object.freeze({
  ...DEFAULT_ADMISSION_LIMITS,
  ...DEFAULT_BODY_LIMITS,
  sendStallMs: 60_000,
  maxConnections: 1024,
  headersTimeoutMs: 30_000,
});

export interface PackferryServer {
  readonly server: http.Server | https.Server;
  readonly metrics: ServerMetrics;
  /** Starts listening; resolves with the base URL. */
  listen(host: string, port: number): Promise<string>;
  /** Stops: requests in progress are answered first, for at most `graceMs` (default 30 s). */
  close(graceMs?: number): Promise<void>;
}

/** Context every handler gets. */
export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  identity: Identity;
  options: ServeOptions;
  limits: ServerLimits;
  metrics: ServerMetrics;
  log: Logger;
}

const DUMB_FILE = /^(HEAD|info\/refs|objects\/info\/packs|objects\/info\/alternates|objects\/pack\/pack-[0-9a-f]{40}\.(pack|idx)|objects\/[0-9a-f]{2}\/[0-9a-f]{38})$/;

export function createPackferryServer(options: ServeOptions): PackferryServer {
  const metrics = createMetrics();
  const admission = new Admission(options.limits);
  const limits: ServerLimits = { ...DEFAULT_SERVER_LIMITS, ...admission.limits, ...options.limits };
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    void handle(req, res, options, limits, admission, metrics);
  };
  const server = options.tls ? https.createServer(options.tls, handler) : http.createServer(handler);
  // Long pushes and clones: no overall request timeout (bodies have their own, body.ts); idle sockets are closed.
  server.requestTimeout = 0;
  server.headersTimeout = limits.headersTimeoutMs;
  server.keepAliveTimeout = 5_000;
  server.maxConnections = limits.maxConnections;
  metrics.setInFlight(() => admission.active);
  return {
    server,
    metrics,
    async listen(host, port) {
      server.listen(port, host);
      await once(server, 'listening');
      const address = server.address() as AddressInfo;
      const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      return `${options.tls ? 'https' : 'http'}://${shownHost}:${address.port}`;
    },
    async close(graceMs = 30_000) {
      // No new connections; idle ones go now, busy ones when their request is
      // answered (a push in progress finishes), all of them after `graceMs`.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const timer = setTimeout(() => server.closeAllConnections(), graceMs);
      await closed;
      clearTimeout(timer);
    },
  };
}

/** Who counts as one client for the per-client bound: an authenticated user, or the address of an anonymous one. */
function clientKey(req: IncomingMessage, identity: Identity): string {
  if (identity.kind === 'cert' || identity.kind === 'token') return `${identity.kind}:${identity.user}`;
  if (identity.kind === 'node') return `node:${identity.node}`;
  return `address:${req.socket.remoteAddress ?? '?'}`;
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  options: ServeOptions,
  limits: ServerLimits,
  admission: Admission,
  metrics: ServerMetrics,
): Promise<void> {
  const started = process.hrtime.bigint();
  // Metric labels come from known values only: anything else a client sends would make a new series.
  let route: Route = 'other';
  let ticket: { leave(): void } | undefined;
  // Parsed only once found plain: `new URL` throws on some targets (an
  // unhandled rejection here stopped the whole server) and resolves others.
  const target = plainRequestTarget(req.url ?? '/');
  const url = new URL(target ?? '/', 'http://packferry.invalid');
  const log = options.logger.child({ method: req.method, path: target === undefined ? (req.url ?? '').slice(0, 200) : url.pathname });
  let identity: Identity = { kind: 'anonymous' };
  try {
    identity = await authenticate(req, { tokens: options.tokens });
    const ctx: RequestContext = { req, res, url, identity, options, limits, metrics, log };
    if (target === undefined) return refuse(ctx);
    const path = url.pathname;
    if (path === '/healthz') {
      route = 'healthz';
      return send(res, 200, 'ok\n');
    }
    if (path === '/metrics') {
      route = 'metrics';
      res.setHeader('content-type', metrics.registry.contentType);
      return send(res, 200, await metrics.registry.metrics());
    }
    // Shed load before anything is read for the request.
    const admitted = admission.enter(clientKey(req, identity));
    if (typeof admitted === 'string') {
      route = 'shed';
      metrics.shed.inc({ reason: admitted });
      log.warn({ reason: admitted, active: admission.active }, 'request shed');
      res.setHeader('connection', 'close');
      return send(res, 503, 'the server is busy: try again later\n', { 'retry-after': String(limits.retryAfterSeconds) });
    }
    ticket = admitted;
    if (path === '/api/v1' || path.startsWith('/api/v1/')) {
      route = 'admin';
      return await handleAdmin(ctx);
    }
    const m = /^\/(.+?)\.git(\/.*)?$/.exec(path);
    if (!m) return refuse(ctx);
    const name = m[1];
    const rest = (m[2] ?? '/').slice(1);
    try {
      checkRepositoryName(name);
    } catch {
      return refuse(ctx);
    }
    const service = url.searchParams.get('service');
    if (req.method === 'GET' && rest === 'info/refs' && service !== null) {
      if (service !== 'git-upload-pack' && service !== 'git-receive-pack') return refuse(ctx);
      route = `${service}-advertisement`;
      return await advertise(ctx, name, service);
    }
    if (req.method === 'POST' && (rest === 'git-upload-pack' || rest === 'git-receive-pack')) {
      route = rest;
      return await serviceRequest(ctx, name, rest);
    }
    if ((req.method === 'GET' || req.method === 'HEAD') && DUMB_FILE.test(rest)) {
      route = 'dumb';
      return await dumbFile(ctx, name, rest);
    }
    return refuse(ctx);
  } catch (err) {
    const e = isPackferryError(err) ? err : new PackferryError(ErrorCode.Internal, String(err instanceof Error ? err.message : err), { cause: err });
    if (e.code === ErrorCode.Internal) log.error({ err }, 'request failed');
    else log.warn({ code: e.code, message: e.message }, 'request failed');
    if (isBodyTimeout(e)) metrics.timeouts.inc({ kind: 'body' });
    if (!res.headersSent && !res.destroyed) {
      const status = isBodyTimeout(e) ? 408 : e.code === ErrorCode.LimitExceeded ? 413 : CLIENT_ERRORS.has(e.code) ? 400 : 500;
      // A body not read to its end is not read at all: the connection goes with the answer.
      if (!req.complete) res.setHeader('connection', 'close');
      send(res, status, `${e.message}\n`);
    } else {
      res.destroy();
    }
  } finally {
    ticket?.leave();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    metrics.requests.inc({ route, method: KNOWN_METHODS.has(req.method ?? '') ? req.method! : 'other', status: String(res.statusCode) });
    metrics.duration.observe({ route }, seconds);
    log.info({ status: res.statusCode, route, ms: Math.round(seconds * 1000), user: 'user' in identity ? identity.user : undefined }, 'request');
  }
}

type Route =
  | 'other'
  | 'healthz'
  | 'metrics'
  | 'shed'
  | 'admin'
  | 'git-upload-pack-advertisement'
  | 'git-receive-pack-advertisement'
  | 'git-upload-pack'
  | 'git-receive-pack'
  | 'dumb';

const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/**
 * Resolves when the response can take more, or is gone; leaves no listener
 * behind. With `stallMs`, a client that takes nothing for that long is cut
 * off (the response destroyed; resolves true), so that a reader that stopped
 * reading does not hold what its response needs for ever.
 */
export function drained(res: ServerResponse, stallMs?: number): Promise<boolean> {
  return new Promise((resolve) => {
    let stalled = false;
    const timer =
      stallMs === undefined
        ? undefined
        : setTimeout(() => {
            stalled = true;
            res.destroy();
          }, stallMs);
    const done = () => {
      clearTimeout(timer);
      res.off('drain', done);
      res.off('close', done);
      resolve(stalled);
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/** Errors in what the client sent: 400. */
const CLIENT_ERRORS = new Set<string>([ErrorCode.Protocol, ErrorCode.PktLineLength, ErrorCode.PktLineTruncated, ErrorCode.UnsupportedCapability]);

/**
 * The request target (path and query) when it is a plain path, as Git
 * sends: origin-form (or absolute-form, whose path is taken), with no dot
 * segments ("." or "..", percent-encoded too), no empty segments ("//"),
 * no backslashes, encoded slashes or backslashes, or control characters.
 * undefined otherwise: WHATWG URL parsing would resolve such a path ("\" is
 * "/" to it, "//x" a host) so that it named something other than what it
 * says, which a proxy in front deciding by the raw path would not see.
 */
export function plainRequestTarget(raw: string): string | undefined {
  let target = raw;
  const absolute = /^https?:\/\/[^/?#]*/i.exec(target);
  if (absolute) target = target.slice(absolute[0].length) || '/';
  if (!target.startsWith('/')) return undefined;
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  // eslint-disable-next-line no-control-regex
  if (/[\\#\x00-\x1f\x7f]/.test(path) || /%(?:2f|5c|[01][0-9a-f]|7f)/i.test(path)) return undefined;
  const segments = path.slice(1).split('/');
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i].replace(/%2e/gi, '.');
    if (segment === '.' || segment === '..') return undefined;
    if (segment === '' && i < segments.length - 1) return undefined;
  }
  return target;
}

function send(res: ServerResponse, status: number, body: string | Buffer, headers: Record<string, string> = {}): void {
  res.statusCode = status;
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  if (!res.hasHeader('content-type')) res.setHeader('content-type', 'text/plain; charset=utf-8');
  res.end(body);
}

/** The 404 rule: refuse exactly as for a repository that does not exist. */
export function refuse(ctx: RequestContext): void {
  const d = denial(ctx.identity, { challenge: ctx.options.tokens !== undefined });
  send(ctx.res, d.status, d.body, d.headers);
}

/**
 * The repository and its settings when it exists and `identity` may do
 * `action` there; undefined (after refusing) otherwise. A repository that
 * does not exist is refused to everyone, admins included (the 404 rule's
 * other half): repositories are made by the admin API, never by a push.
 *
 * The rights are decided from the settings alone (one small read, the same
 * for a repository that does not exist: its settings read as a private
 * repository's), and only then is the repository opened: a refusal costs the
 * same whether the repository exists or not, and however many refs it has.
 */
export async function openAuthorized(ctx: RequestContext, name: string, action: Action): Promise<{ repo: StoreRepository; settings: RepositorySettings } | undefined> {
  const store = ctx.options.root.repositoryStore(name);
  const settings = await readSettings(store);
  if (!authorize(ctx.identity, action, name, settings, { region: ctx.options.region })) {
    refuse(ctx);
    return undefined;
  }
  const repo = await StoreRepository.open(store, { cacheDir: ctx.options.cacheDir });
  if (!repo.exists) {
    await repo.close();
    refuse(ctx);
    return undefined;
  }
  return { repo, settings };
}

async function advertise(ctx: RequestContext, name: string, service: string): Promise<void> {
  const opened = await openAuthorized(ctx, name, service === 'git-receive-pack' ? 'write' : 'read');
  if (!opened) return;
  try {
    const version = protocolVersion(ctx.req);
    const body = service === 'git-upload-pack' ? advertiseUploadPack(opened.repo, { protocolVersion: version }) : advertiseReceivePack(opened.repo);
    const preamble = Buffer.concat([pktLineText(`# service=${service}`), flushPkt]);
    ctx.res.setHeader('cache-control', 'no-cache, max-age=0, must-revalidate');
    send(ctx.res, 200, Buffer.concat([preamble, body]), { 'content-type': `application/x-${service}-advertisement` });
    ctx.metrics.bytesSent.inc({ route: `${service}-advertisement` }, preamble.length + body.length);
  } finally {
    await opened.repo.close();
  }
}

/** The Git-Protocol header's version (gitprotocol-v2 "HTTP Transport"), 0 when absent. */
function protocolVersion(req: IncomingMessage): 0 | 1 | 2 {
  const header = req.headers['git-protocol'];
  const text = Array.isArray(header) ? header.join(':') : (header ?? '');
  const versions = text.split(':').filter((p) => p.startsWith('version=')).map((p) => Number(p.slice(8)));
  if (versions.includes(2)) return 2;
  if (versions.includes(1)) return 1;
  return 0;
}

/** The request body: gunzipped when Git compressed it, counted, bounded in size and time (body.ts). */
function requestBody(ctx: RequestContext, route: Route, limit: number): AsyncGenerator<Uint8Array> {
  return readRequestBody(ctx.req, { limit, limits: ctx.limits, onChunk: (n) => ctx.metrics.bytesReceived.inc({ route }, n) });
}

async function serviceRequest(ctx: RequestContext, name: string, service: 'git-upload-pack' | 'git-receive-pack'): Promise<void> {
  const opened = await openAuthorized(ctx, name, service === 'git-receive-pack' ? 'write' : 'read');
  if (!opened) return;
  const { repo, settings } = opened;
  const res = ctx.res;
  const abort = new AbortController();
  const onClose = () => {
    if (!res.writableFinished) abort.abort(new PackferryError(ErrorCode.Aborted, 'client went away'));
  };
  res.on('close', onClose);
  let pushCounted = false;
  try {
    const limit = service === 'git-upload-pack' ? (ctx.options.maxRequestBytes ?? DEFAULT_UPLOAD_PACK_LIMITS.maxRequestBytes) : (ctx.options.maxPushBytes ?? 4 * 1024 ** 3);
    checkDeclaredLength(ctx.req, limit);
    let output: AsyncIterable<Buffer>;
    if (service === 'git-upload-pack') {
      const body = requestBody(ctx, service, limit);
      output = serveUploadPack(repo, body, { protocolVersion: protocolVersion(ctx.req), signal: abort.signal, limits: { maxRequestBytes: ctx.options.maxRequestBytes } });
    } else {
      const body = requestBody(ctx, service, limit);
      output = serveReceivePack(
        {
          repo,
          store: ctx.options.root.repositoryStore(name),
          name,
          user: 'user' in ctx.identity ? ctx.identity.user : undefined,
          denyNonFastForwards: settings.denyNonFastForwards === true,
          mayForce: authorize(ctx.identity, 'admin', name, settings, { region: ctx.options.region }),
          cacheDir: ctx.options.cacheDir,
          hooks: ctx.options.hooks,
          fsck: repositoryFsckOptions(settings),
          signal: abort.signal,
          onReport: (report) => {
            pushCounted = true;
            ctx.metrics.pushes.inc({ result: report.unpack === 'ok' && report.refs.every((r) => r.ok) ? 'ok' : 'refused' });
            for (const r of report.refs) ctx.metrics.refUpdates.inc({ result: r.ok ? 'ok' : 'refused' });
          },
        },
        body,
      );
    }
    res.statusCode = 200;
    res.setHeader('content-type', `application/x-${service}-result`);
    res.setHeader('cache-control', 'no-cache, max-age=0, must-revalidate');
    // A request the service refuses before answering anything (a malformed or oversized request, a want
    // the store lacks, a body that does not inflate) is answered as Git's http-backend answers it: 200 and
    // an "ERR" line, which git prints ("remote error: ..."); an HTTP error status it shows only as "RPC failed".
    const iterator = output[Symbol.asyncIterator]();
    let first: IteratorResult<Buffer>;
    try {
      first = await iterator.next();
    } catch (err) {
      if (!answerableInBand(err) || res.destroyed) throw err;
      ctx.log.warn({ code: isPackferryError(err) ? err.code : ErrorCode.Internal, message: (err as Error).message }, 'request refused');
      if (!isPackferryError(err)) ctx.log.error({ err }, 'request failed');
      ctx.metrics.refusals.inc({ route: service });
      if (service === 'git-receive-pack' && !pushCounted) ctx.metrics.pushes.inc({ result: 'error' });
      pushCounted = true;
      if (!ctx.req.complete) res.setHeader('connection', 'close');
      res.end(encodeErrorPacket(serviceErrorMessage(service, err)));
      return;
    }
    const rest = async function* (): AsyncGenerator<Buffer> {
      try {
        if (first.done) return;
        yield first.value;
        for (let r = await iterator.next(); !r.done; r = await iterator.next()) yield r.value;
      } finally {
        // Stopped early (the client went away): the service's own clean-up (a push's lock, its staged layer) runs now.
        await iterator.return?.();
      }
    };
    let sent = 0;
    let stalled = false;
    // A few chunks made ahead while the last is sent (chunks of a pack are up to 1 MiB: Readable.from's default of 16, per slow reader, adds up).
    for await (const chunk of Readable.from(rest(), { highWaterMark: 4 })) {
      // A client that went away before the answer (a push cut off while its pack
      // arrived): its 'close' has been emitted already, so waiting for it would
      // hang here forever, with the push's writer lock held.
      if (res.destroyed) break;
      sent += chunk.length;
      if (!res.write(chunk) && !res.destroyed) stalled = await drained(res, ctx.limits.sendStallMs);
      if (res.destroyed) break;
    }
    ctx.metrics.bytesSent.inc({ route: service }, sent);
    if (stalled) {
      ctx.metrics.timeouts.inc({ kind: 'send' });
      ctx.log.warn({ sent }, 'client stopped reading: cut off');
    }
    res.end();
  } catch (err) {
    // A push that ended without a report (malformed, too large, cut off, a server error).
    if (service === 'git-receive-pack' && !pushCounted) ctx.metrics.pushes.inc({ result: 'error' });
    throw err;
  } finally {
    res.off('close', onClose);
    await repo.close();
  }
}

/** Errors told to the client in its protocol rather than by an HTTP status: all but a body's timeout and the client going away. */
function answerableInBand(err: unknown): boolean {
  if (isBodyTimeout(err)) return false;
  return !isPackferryError(err, ErrorCode.Aborted);
}

function serviceErrorMessage(service: string, err: unknown): string {
  if (isPackferryError(err)) return err.code === ErrorCode.Internal ? `${service.slice(4)}: internal error: ${err.message}` : err.message;
  return `${service.slice(4)}: internal error${err instanceof Error ? `: ${err.message}` : ''}`;
}

async function dumbFile(ctx: RequestContext, name: string, path: string): Promise<void> {
  const opened = await openAuthorized(ctx, name, 'read');
  if (!opened) return;
  try {
    const store = ctx.options.root.repositoryStore(name);
    const info = await store.head(path);
    if (!info) return refuse(ctx);
    const types: Record<string, string> = { pack: 'application/x-git-packed-objects', idx: 'application/x-git-packed-objects-toc' };
    const ext = path.slice(path.lastIndexOf('.') + 1);
    ctx.res.statusCode = 200;
    ctx.res.setHeader('content-type', types[ext] ?? 'text/plain; charset=utf-8');
    ctx.res.setHeader('content-length', String(info.size));
    // Layers never change; the files naming them do.
    ctx.res.setHeader('cache-control', path.startsWith('objects/pack/') ? 'public, max-age=31536000, immutable' : 'no-cache');
    if (ctx.req.method === 'HEAD') return void ctx.res.end();
    const body = await store.getStream(path);
    if (!body) return refuse(ctx);
    for await (const chunk of body) {
      if (ctx.res.destroyed) return;
      if (!ctx.res.write(chunk) && !ctx.res.destroyed && (await drained(ctx.res, ctx.limits.sendStallMs))) ctx.metrics.timeouts.inc({ kind: 'send' });
      if (ctx.res.destroyed) return;
    }
    ctx.res.end();
  } finally {
    await opened.repo.close();
  }
}

// The smart HTTP transport: git-upload-pack and git-receive-pack over http://
// and https://, as gitprotocol-http(5) describes ("Smart Clients", "Smart
// Service git-upload-pack", "Smart Service git-receive-pack"), on undici.
//
// A session is stateless (gitprotocol-http, "Smart Clients"): `open` sends
//   GET $GIT_URL/info/refs?service=<service>
// (with `Git-Protocol: version=2` when asked, gitprotocol-v2(5) "HTTP
// Transport"), checks the Content-Type application/x-<service>-advertisement
// (anything else is a dumb server), and skips the "# service=<service>"
// pkt-line and the flush after it ("Smart Server Response"), tolerating
// servers that leave them out. Each `request` is then one
//   POST $GIT_URL/<service>
// with Content-Type application/x-<service>-request, whose body streams in
// and whose response (application/x-<service>-result) streams out with
// backpressure: a pack of any size passes through in bounded memory.
//
// Beyond the document, the behaviour of Git's own client (http.c,
// remote-curl.c in Git 2.39) where it matters:
//   - redirects are followed for the info/refs GET only (http.followRedirects
//     "initial", up to 5); later POSTs go to the redirected base, which is the
//     final URL with "/info/refs?service=..." taken off; an https URL is never
//     redirected to http, and credentials never follow a redirect to another
//     origin (see http-credentials.ts);
//   - the User-Agent starts with "git/", which some servers require before
//     they speak the smart protocol;
//   - 401/403 are ERR_TRANSPORT_AUTH, 404 ERR_NOT_FOUND, other failures
//     ERR_HTTP_STATUS with the status.
// Unlike Git, requests that are safe to repeat (the GET; upload-pack POSTs
// the caller marks idempotent; never receive-pack) are retried on 429, 502,
// 503, 504 and on connections refused or dropped before the first response
// byte, with full-jitter backoff and Retry-After (http-retry.ts). A body that
// stops in the middle is ERR_TRANSPORT_INTERRUPTED: only the caller knows
// whether starting again is right.
//
// Proxies: HTTP_PROXY/http_proxy for http:// (forwarded with an absolute URI,
// as curl does), HTTPS_PROXY/https_proxy for https:// (tunnelled with
// CONNECT), ALL_PROXY/all_proxy for both, NO_PROXY/no_proxy exceptions;
// options.proxy overrides the environment.
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, ProxyAgent, type Dispatcher } from 'undici';
import { throwIfAborted } from '../core/abort.js';
import { ErrorCode, PackferryError, isPackferryError } from '../core/errors.js';
import { lineText } from '../protocol/pkt-line.js';
import { PktLineReader } from '../protocol/pkt-line-reader.js';
import {
  authorizationHeader,
  credentialsFor,
  describeCredentials,
  type CredentialSources,
  type HttpCredentials,
} from './http-credentials.js';
import { DEFAULT_RETRY_POLICY, errorCode, RETRYABLE_NETWORK_CODES, RETRYABLE_STATUSES, parseRetryAfter, retryDelayMs, type RetryPolicy } from './http-retry.js';
import { parseHttpUrl, redactUrl, repositoryUrl, sameOrigin } from './http-url.js';
import { readNetrcFile, type NetrcEntry } from './netrc.js';
import type { GitServiceName, OpenServiceOptions, RequestOptions, ServiceSession, Transport } from './types.js';

/** Sent as User-Agent: the "git/" prefix is what servers look for before speaking the smart protocol. */
export const DEFAULT_USER_AGENT = 'git/2.39-packferry/0.1.0';
/** Redirects followed for one info/refs GET (Git, through curl's CURLOPT_MAXREDIRS). */
export const DEFAULT_MAX_REDIRECTS = 5;
/** Bytes of an error response's body kept for the message. */
const ERROR_BODY_LIMIT = 1024;

export interface HttpTlsOptions {
  /** Trusted certificate authorities (PEM), replacing the system's. */
  ca?: string | Buffer | (string | Buffer)[];
  /** A client certificate and its key (PEM). */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** Default true. */
  rejectUnauthorized?: boolean;
  servername?: string;
}

/** Information about a retry, for logs. */
export interface HttpRetryEvent {
  /** 1 for the first retry. */
  attempt: number;
  delayMs: number;
  /** "HTTP 503", "ECONNRESET", ... */
  reason: string;
  /** The request URL, without credentials. */
  url: string;
}

export interface HttpTransportOptions {
  /** A token for the server (default: the environment's PACKFERRY_TOKEN). */
  token?: string;
  /** How the token is sent: Basic with a user name (default) or as a Bearer token. */
  tokenScheme?: 'basic' | 'bearer';
  /** A netrc file to read credentials from; default ~/.netrc when it exists; false reads none. */
  netrc?: string | false;
  /** Retries after the first attempt, for requests that may be repeated (default 4). */
  retries?: number;
  /** Ceiling of the first retry's random delay, doubling each time (default 250 ms). */
  retryBaseDelayMs?: number;
  /** Longest delay before a retry, Retry-After included (default 10 s). */
  retryMaxDelayMs?: number;
  /** Called before each retry. */
  onRetry?: (event: HttpRetryEvent) => void;
  /** Establishing a connection (TCP and TLS; default undici's 10 s). */
  connectTimeoutMs?: number;
  /** From sending a request to the end of the response headers (default undici's 300 s). */
  headersTimeoutMs?: number;
  /** Longest silence while a response body is arriving (default undici's 300 s). */
  bodyTimeoutMs?: number;
  /** A proxy URL for every request (NO_PROXY still applies), or null for none; default from the environment. */
  proxy?: string | null;
  /** Where PACKFERRY_TOKEN, HOME and the proxy variables are read (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Default DEFAULT_USER_AGENT. */
  userAgent?: string;
  /** Redirects followed for info/refs (default 5). */
  maxRedirects?: number;
  tls?: HttpTlsOptions;
  /** Send every request through this undici dispatcher instead (proxy and TLS options are then the dispatcher's business). */
  dispatcher?: Dispatcher;
}

interface ProxySettings {
  http: string | undefined;
  https: string | undefined;
  noProxy: NoProxyEntry[] | '*';
}

interface NoProxyEntry {
  host: string;
  port: number | undefined;
}

/** Reads the proxy variables as curl does (lowercase first). */
export function proxySettingsFromEnv(env: NodeJS.ProcessEnv, override?: string | null): ProxySettings {
  const pick = (...names: string[]): string | undefined => {
    for (const name of names) {
      const value = env[name];
      if (value !== undefined && value !== '') return value;
    }
    return undefined;
  };
  const all = pick('all_proxy', 'ALL_PROXY');
  const noProxyText = pick('no_proxy', 'NO_PROXY') ?? '';
  const noProxy = noProxyText.trim() === '*' ? '*' : parseNoProxy(noProxyText);
  if (override !== undefined) {
    const proxy = override ?? undefined;
    return { http: proxy, https: proxy, noProxy };
  }
  return { http: pick('http_proxy', 'HTTP_PROXY') ?? all, https: pick('https_proxy', 'HTTPS_PROXY') ?? all, noProxy };
}

function parseNoProxy(text: string): NoProxyEntry[] {
  const entries: NoProxyEntry[] = [];
  for (const raw of text.split(/[\s,]+/)) {
    if (raw === '') continue;
    const m = /^(.*?)(?::(\d+))?$/.exec(raw.toLowerCase()) as RegExpExecArray;
    const host = m[1].replace(/^\*?\./, '').replace(/^\[(.*)\]$/, '$1');
    entries.push({ host, port: m[2] === undefined ? undefined : Number.parseInt(m[2], 10) });
  }
  return entries;
}

/** Should a request to `url` bypass the proxy? (NO_PROXY: exact host, or a domain suffix, optionally with a port.) */
export function bypassesProxy(url: URL, noProxy: ProxySettings['noProxy']): boolean {
  if (noProxy === '*') return true;
  const host = url.hostname.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  const port = url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number.parseInt(url.port, 10);
  return noProxy.some((e) => (e.port === undefined || e.port === port) && (host === e.host || host.endsWith(`.${e.host}`)));
}

/** A media type without parameters, lowercased: "application/x-git-upload-pack-result". */
export function mediaType(value: string | string[] | undefined): string {
  return (headerText(value) ?? '').split(';')[0].trim().toLowerCase();
}

/** A header's (first) value. */
export function headerText(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

const TIMEOUTS: Record<string, 'connect' | 'headers' | 'body'> = {
  UND_ERR_CONNECT_TIMEOUT: 'connect',
  UND_ERR_HEADERS_TIMEOUT: 'headers',
  UND_ERR_BODY_TIMEOUT: 'body',
};

/** Where in an exchange an error happened: before the response headers, or while reading the body. */
type Phase = 'request' | 'body';

interface ExchangeRequest {
  method: 'GET' | 'POST';
  url: URL;
  headers: Record<string, string>;
  body?: Uint8Array | AsyncIterable<Uint8Array>;
  /** May it be sent again after a failure before any response byte? */
  retryable: boolean;
  followRedirects: boolean;
  /** The Content-Type a successful response must have. */
  expectedType: string;
  /** For messages: "info/refs", "git-upload-pack". */
  what: string;
  signal: AbortSignal | undefined;
  /** Open response bodies of the session, destroyed by close(). */
  bodies: Set<Readable>;
}

interface ExchangeResponse {
  /** The URL that answered (after redirects). */
  url: URL;
  body: ResponseBody;
}

/**
 * A response body as an async iterator of chunks, pulled with backpressure.
 * Errors become PackferryErrors; stopping early (`return()`, even before the
 * first `next()`) destroys the underlying stream, so its connection is freed.
 */
class ResponseBody implements AsyncIterableIterator<Uint8Array> {
  private first: IteratorResult<Uint8Array> | undefined;
  private finished = false;

  constructor(
    first: IteratorResult<Uint8Array>,
    private readonly iterator: AsyncIterator<Uint8Array>,
    private readonly readable: Readable,
    private readonly open: Set<Readable>,
    private readonly mapError: (err: unknown) => PackferryError,
  ) {
    this.first = first;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<Uint8Array>> {
    if (this.first !== undefined) {
      const first = this.first;
      this.first = undefined;
      if (first.done === true) this.finish(false);
      return first;
    }
    if (this.finished) return { done: true, value: undefined };
    let result: IteratorResult<Uint8Array>;
    try {
      result = await this.iterator.next();
    } catch (err) {
      this.finish(true);
      throw this.mapError(err);
    }
    if (result.done === true) this.finish(false);
    return result;
  }

  async return(): Promise<IteratorResult<Uint8Array>> {
    this.first = undefined;
    this.finish(true);
    return { done: true, value: undefined };
  }

  private finish(destroy: boolean): void {
    if (this.finished) return;
    this.finished = true;
    this.open.delete(this.readable);
    if (destroy) this.readable.destroy();
  }
}

/** A request body that can be read once; remembers whether reading started (then it cannot be replayed). */
class OnceBody {
  started = false;
  constructor(private readonly source: AsyncIterable<Uint8Array>) {}

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    this.started = true;
    yield* this.source;
  }
}

/**
 * HTTP(S) transport for one remote repository URL. Holds its own connection
 * pool (undici Agent, or proxy agents); `close()` releases it.
 */
export class HttpTransport implements Transport {
  readonly displayUrl: string;
  /** The repository URL without credentials. */
  readonly baseUrl: URL;
  private readonly credentialSources: CredentialSources;
  private readonly retryPolicy: RetryPolicy;
  private readonly dispatchers: DispatcherPool;
  private netrcEntries: readonly NetrcEntry[] | undefined;
  private closed = false;

  constructor(url: string, private readonly options: HttpTransportOptions = {}) {
    const parsed = parseHttpUrl(url);
    this.baseUrl = parsed.base;
    this.displayUrl = redactUrl(parsed.base);
    const env = options.env ?? process.env;
    const netrcPath = options.netrc === false ? undefined : (options.netrc ?? join(env.HOME ?? homedir(), '.netrc'));
    this.credentialSources = {
      origin: parsed.base,
      username: parsed.username,
      password: parsed.password,
      token: options.token ?? env.PACKFERRY_TOKEN,
      tokenScheme: options.tokenScheme,
      netrc:
        netrcPath === undefined
          ? undefined
          : () => (this.netrcEntries ??= readNetrcFile(netrcPath) ?? []),
    };
    this.retryPolicy = {
      retries: options.retries ?? DEFAULT_RETRY_POLICY.retries,
      baseDelayMs: options.retryBaseDelayMs ?? DEFAULT_RETRY_POLICY.baseDelayMs,
      maxDelayMs: options.retryMaxDelayMs ?? DEFAULT_RETRY_POLICY.maxDelayMs,
    };
    for (const [name, value] of Object.entries({ retries: this.retryPolicy.retries, ...timeoutOptions(options) })) {
      if (value !== undefined && !(Number.isFinite(value) && value >= 0)) {
        throw new PackferryError(ErrorCode.Usage, `HttpTransport: ${name} must be a number >= 0, not ${value}`);
      }
    }
    this.dispatchers = new DispatcherPool(options, proxySettingsFromEnv(env, options.proxy));
  }

  async open(service: GitServiceName, options: OpenServiceOptions): Promise<ServiceSession> {
    if (this.closed) throw new PackferryError(ErrorCode.Usage, `HTTP transport for ${this.displayUrl} used after close()`);
    if (service !== 'git-upload-pack' && service !== 'git-receive-pack') {
      throw new PackferryError(ErrorCode.Usage, `unknown Git service ${JSON.stringify(service)}`);
    }
    throwIfAborted(options.signal);
    const bodies = new Set<Readable>();
    const response = await this.exchange({
      method: 'GET',
      url: repositoryUrl(this.baseUrl, 'info/refs', { service }),
      headers: {
        accept: `application/x-${service}-advertisement, */*;q=0.1`,
        'cache-control': 'no-cache',
        pragma: 'no-cache',
        ...gitProtocolHeader(options.protocolVersion),
      },
      retryable: true,
      followRedirects: true,
      expectedType: `application/x-${service}-advertisement`,
      what: 'info/refs',
      signal: options.signal,
      bodies,
    });
    const base = redirectedBase(response.url, service);
    const advertisement = new PktLineReader(response.body, { signal: options.signal });
    try {
      await skipServiceHeader(advertisement, service, this.displayUrl);
    } catch (err) {
      await advertisement.close().catch(() => {});
      throw err;
    }
    return new HttpServiceSession((r) => this.exchange(r), service, base, advertisement, options, bodies);
  }

  /** Closes the connection pools this transport made. Open sessions' bodies fail. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.dispatchers.close();
  }

  /** Sends one request, following redirects and retrying as allowed; returns the streaming body. */
  private async exchange(request: ExchangeRequest): Promise<ExchangeResponse> {
    const once = request.body !== undefined && !(request.body instanceof Uint8Array) ? new OnceBody(request.body) : undefined;
    let url = request.url;
    let redirects = 0;
    let retry = 0;
    const maxRedirects = this.options.maxRedirects ?? DEFAULT_MAX_REDIRECTS;
    /** Waits before the next attempt if one is allowed; false when the failure must be reported. */
    const mayRetry = async (reason: string, retryAfterMs?: number): Promise<boolean> => {
      if (!request.retryable || retry >= this.retryPolicy.retries || once?.started === true) return false;
      const delayMs = retryDelayMs(this.retryPolicy, retry, retryAfterMs);
      retry++;
      this.options.onRetry?.({ attempt: retry, delayMs, reason, url: redactUrl(url) });
      try {
        await sleep(delayMs, undefined, { signal: request.signal });
      } catch (err) {
        throw abortedError(err);
      }
      return true;
    };

    for (;;) {
      throwIfAborted(request.signal);
      if (this.closed) throw new PackferryError(ErrorCode.Usage, `HTTP transport for ${this.displayUrl} used after close()`);
      const credentials = credentialsFor(url, this.credentialSources);
      const headers: Record<string, string> = { 'user-agent': this.options.userAgent ?? DEFAULT_USER_AGENT, ...request.headers };
      if (credentials !== undefined) headers.authorization = authorizationHeader(credentials);
      let body: Uint8Array | Readable | undefined;
      if (request.body instanceof Uint8Array) body = request.body;
      else if (once !== undefined) body = Readable.from(once, { objectMode: false });

      let response: Dispatcher.ResponseData;
      try {
        response = await this.dispatchers.for(url).request({
          origin: url.origin,
          path: url.pathname + url.search,
          method: request.method,
          headers,
          body,
          signal: request.signal,
          headersTimeout: this.options.headersTimeoutMs,
          bodyTimeout: this.options.bodyTimeoutMs,
        });
      } catch (err) {
        const code = errorCode(err);
        if (!request.signal?.aborted && code !== undefined && RETRYABLE_NETWORK_CODES.has(code) && (await mayRetry(code))) continue;
        throw this.networkError(err, 'request', url, request);
      }

      const status = response.statusCode;
      if (status >= 300 && status < 400 && status !== 304) {
        const location = headerText(response.headers.location);
        await discard(response.body);
        if (!request.followRedirects) {
          throw new PackferryError(ErrorCode.HttpStatus, `${request.what} at ${redactUrl(url)} answered with a redirect (HTTP ${status}); Git follows redirects only for info/refs`, {
            details: { status, url: redactUrl(url), location: location === undefined ? undefined : redactUrl(location) },
          });
        }
        url = this.followRedirect(url, location, status, ++redirects, maxRedirects);
        continue;
      }
      if (RETRYABLE_STATUSES.has(status)) {
        const retryAfter = parseRetryAfter(headerText(response.headers['retry-after']));
        const text = await readErrorText(response.body);
        if (await mayRetry(`HTTP ${status}`, retryAfter)) continue;
        throw this.statusError(status, text, url, request, credentials, retry);
      }
      if (status < 200 || status >= 300) {
        throw this.statusError(status, await readErrorText(response.body), url, request, credentials, retry);
      }
      const type = mediaType(response.headers['content-type']);
      if (type !== request.expectedType) {
        await discard(response.body);
        throw contentTypeError(request, url, type);
      }

      // Read the first chunk here, so a connection that drops before any
      // body byte can still be retried.
      const readable = response.body;
      request.bodies.add(readable);
      const iterator = readable[Symbol.asyncIterator]() as AsyncIterator<Uint8Array>;
      let first: IteratorResult<Uint8Array>;
      try {
        first = await iterator.next();
      } catch (err) {
        request.bodies.delete(readable);
        readable.destroy();
        const code = errorCode(err);
        if (!request.signal?.aborted && code !== undefined && RETRYABLE_NETWORK_CODES.has(code) && (await mayRetry(`${code} before the response body`))) {
          continue;
        }
        throw this.networkError(err, 'body', url, request);
      }
      const answered = url;
      const stream = new ResponseBody(first, iterator, readable, request.bodies, (err) => this.networkError(err, 'body', answered, request));
      return { url, body: stream };
    }
  }

  private followRedirect(from: URL, location: string | undefined, status: number, count: number, max: number): URL {
    const details = { status, url: redactUrl(from) };
    if (location === undefined || location === '') {
      throw new PackferryError(ErrorCode.HttpStatus, `HTTP ${status} redirect without a Location from ${redactUrl(from)}`, { details });
    }
    if (count > max) {
      throw new PackferryError(ErrorCode.HttpStatus, `too many redirects (more than ${max}) from ${this.displayUrl}`, { details });
    }
    let next: URL;
    try {
      next = new URL(location, from);
    } catch {
      throw new PackferryError(ErrorCode.Protocol, `bad redirect Location ${JSON.stringify(redactUrl(location))} from ${redactUrl(from)}`, { details });
    }
    if (next.protocol !== 'http:' && next.protocol !== 'https:') {
      throw new PackferryError(ErrorCode.Protocol, `refusing a redirect to ${next.protocol} (${redactUrl(next)})`, { details });
    }
    if (from.protocol === 'https:' && next.protocol === 'http:') {
      throw new PackferryError(ErrorCode.Protocol, `refusing a redirect from https to http (${redactUrl(next)})`, {
        details,
        hint: 'a redirect may not downgrade the connection to plain text; use the final URL directly if this is intended',
      });
    }
    // Credentials in a Location are not ours to send.
    next.username = '';
    next.password = '';
    next.hash = '';
    return next;
  }

  private statusError(
    status: number,
    text: string,
    url: URL,
    request: ExchangeRequest,
    credentials: HttpCredentials | undefined,
    retries: number,
  ): PackferryError {
    const details: Record<string, unknown> = { status, url: redactUrl(url), service: request.what };
    if (text !== '') details.body = text;
    if (retries > 0) details.retries = retries;
    const said = text === '' ? '' : `: ${text.split('\n')[0].slice(0, 200)}`;
    if (status === 401 || status === 403) {
      const ways =
        'give credentials in the URL (https://USER:PASSWORD@host/...), in a netrc file ' +
        '("machine HOST login USER password SECRET"), or as a token (the token option or PACKFERRY_TOKEN)';
      const onOrigin = sameOrigin(url, this.baseUrl);
      let hint: string;
      if (credentials !== undefined) hint = `the server refused ${describeCredentials(credentials)}; check them, or ${ways}`;
      else if (!onOrigin) hint = `the request was redirected to ${url.origin}, where packferry sends no credentials except a netrc entry for that host`;
      else hint = `the server wants credentials: ${ways}`;
      const message = status === 401 ? `authentication failed for ${this.displayUrl} (HTTP 401)` : `access denied to ${this.displayUrl} (HTTP 403)${said}`;
      return new PackferryError(ErrorCode.TransportAuth, message, { hint, details });
    }
    if (status === 404) {
      return new PackferryError(ErrorCode.NotFound, `repository not found: ${this.displayUrl}`, {
        hint: 'check the URL; some servers also answer 404 for a private repository when the credentials do not give access',
        details,
      });
    }
    const after = retries > 0 ? ` after ${retries} ${retries === 1 ? 'retry' : 'retries'}` : '';
    return new PackferryError(ErrorCode.HttpStatus, `HTTP ${status} from ${request.what} at ${redactUrl(url)}${after}${said}`, { details });
  }

  private networkError(err: unknown, phase: Phase, url: URL, request: ExchangeRequest): PackferryError {
    if (isPackferryError(err)) return err;
    if (request.signal?.aborted) return abortedError(request.signal.reason ?? err);
    const code = errorCode(err);
    const where = `${request.what} at ${redactUrl(url)}`;
    const details = { url: redactUrl(url), code };
    const reason = err instanceof Error ? err.message : String(err);
    const timeout = code === undefined ? undefined : TIMEOUTS[code];
    if (timeout !== undefined) {
      const ms = timeout === 'connect' ? this.options.connectTimeoutMs : timeout === 'headers' ? this.options.headersTimeoutMs : this.options.bodyTimeoutMs;
      const what = { connect: 'connecting', headers: 'waiting for the response headers', body: 'waiting for more of the response body' }[timeout];
      return new PackferryError(ErrorCode.TransportTimeout, `timed out ${what} from ${where}${ms === undefined ? '' : ` (${ms} ms)`}`, {
        cause: err,
        details: { ...details, timeout, ms },
      });
    }
    if (code === 'UND_ERR_ABORTED' || code === 'ABORT_ERR' || (err instanceof Error && err.name === 'AbortError')) return abortedError(err);
    if (phase === 'body') {
      return new PackferryError(ErrorCode.TransportInterrupted, `the connection to ${url.host} dropped in the middle of the response from ${where} (${reason})`, {
        cause: err,
        details,
        hint: 'the transfer was cut off; running the operation again starts it over',
      });
    }
    return new PackferryError(ErrorCode.TransportConnect, `cannot reach ${where}: ${reason}`, { cause: err, details });
  }

}

/** One conversation with a service: the info/refs advertisement, then POSTs to the (possibly redirected) base URL. */
export class HttpServiceSession implements ServiceSession {
  readonly stateless = true;
  private closed = false;

  /** Made by HttpTransport.open. */
  constructor(
    private readonly exchange: (request: ExchangeRequest) => Promise<ExchangeResponse>,
    readonly service: GitServiceName,
    /** The repository URL the POSTs go to, after any redirect of info/refs (no credentials). */
    readonly baseUrl: URL,
    readonly advertisement: PktLineReader,
    private readonly openOptions: OpenServiceOptions,
    private readonly bodies: Set<Readable>,
  ) {}

  async request(body: Uint8Array | AsyncIterable<Uint8Array>, options: RequestOptions = {}): Promise<PktLineReader> {
    if (this.closed) throw new PackferryError(ErrorCode.Usage, `HTTP ${this.service} session used after close()`);
    const signal = combineSignals(this.openOptions.signal, options.signal);
    const service = this.service;
    const response = await this.exchange({
      method: 'POST',
      url: repositoryUrl(this.baseUrl, service),
      headers: {
        'content-type': `application/x-${service}-request`,
        accept: `application/x-${service}-result`,
        ...gitProtocolHeader(this.openOptions.protocolVersion),
      },
      body,
      // A push changes refs: never sent twice, whatever the caller says.
      retryable: options.idempotent === true && service === 'git-upload-pack',
      followRedirects: false,
      expectedType: `application/x-${service}-result`,
      what: service,
      signal,
      bodies: this.bodies,
    });
    if (this.closed) {
      await response.body.return();
      throw new PackferryError(ErrorCode.Usage, `HTTP ${this.service} session closed during a request`);
    }
    return new PktLineReader(response.body, { signal });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const closedError = new PackferryError(ErrorCode.Aborted, `the HTTP ${this.service} session was closed`);
    for (const body of this.bodies) body.destroy(closedError);
    this.bodies.clear();
  }
}

function timeoutOptions(options: HttpTransportOptions): Record<string, number | undefined> {
  return {
    connectTimeoutMs: options.connectTimeoutMs,
    headersTimeoutMs: options.headersTimeoutMs,
    bodyTimeoutMs: options.bodyTimeoutMs,
    retryBaseDelayMs: options.retryBaseDelayMs,
    retryMaxDelayMs: options.retryMaxDelayMs,
  };
}

function gitProtocolHeader(version: 0 | 1 | 2): Record<string, string> {
  return version === 0 ? {} : { 'git-protocol': `version=${version}` };
}

function combineSignals(a: AbortSignal | undefined, b: AbortSignal | undefined): AbortSignal | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return AbortSignal.any([a, b]);
}

function abortedError(cause: unknown): PackferryError {
  if (isPackferryError(cause)) return cause;
  return new PackferryError(ErrorCode.Aborted, 'operation aborted', { cause });
}

/**
 * The repository base after info/refs: the URL that answered, less
 * "/info/refs" and the query (Git's update_url_from_redirect). A redirect
 * that lost that tail leaves no base to POST to.
 */
function redirectedBase(answered: URL, service: GitServiceName): URL {
  if (!answered.pathname.endsWith('/info/refs') || answered.searchParams.get('service') !== service) {
    throw new PackferryError(ErrorCode.Protocol, `unable to update the URL base from the redirection to ${redactUrl(answered)}`, {
      hint: 'the server redirected info/refs to a URL that does not end in /info/refs?service=...; use the repository\'s final URL directly',
      details: { url: redactUrl(answered) },
    });
  }
  const base = new URL(answered.href);
  base.pathname = base.pathname.slice(0, -'/info/refs'.length);
  base.search = '';
  return base;
}

/**
 * Consumes "# service=<service>" and the pkt-lines after it up to the flush
 * (Git skips any extra metadata lines there too). A server that starts
 * directly with the v2 capability advertisement or the v0 refs is tolerated.
 */
async function skipServiceHeader(reader: PktLineReader, service: GitServiceName, displayUrl: string): Promise<void> {
  const first = await reader.tryPeek();
  if (first === undefined) {
    throw new PackferryError(ErrorCode.Protocol, `invalid server response from ${displayUrl}: empty advertisement`);
  }
  if (first.type !== 'data') return;
  const text = lineText(first.data);
  if (!text.startsWith('# service=')) return;
  if (text !== `# service=${service}`) {
    throw new PackferryError(ErrorCode.Protocol, `invalid server response from ${displayUrl}: expected "# service=${service}", got ${JSON.stringify(text)}`);
  }
  await reader.read();
  for (;;) {
    const packet = await reader.read();
    if (packet.type === 'flush') return;
    if (packet.type !== 'data') {
      throw new PackferryError(ErrorCode.Protocol, `invalid server response from ${displayUrl}: expected a flush after "# service=${service}", got ${packet.type}`);
    }
  }
}

function contentTypeError(request: ExchangeRequest, url: URL, type: string): PackferryError {
  const shown = type === '' ? 'no Content-Type' : `Content-Type ${type}`;
  const details = { url: redactUrl(url), contentType: type, expected: request.expectedType };
  if (request.method === 'GET') {
    return new PackferryError(ErrorCode.Protocol, `${redactUrl(url)} is not a Git smart HTTP server (${shown}, expected ${request.expectedType})`, {
      details,
      hint:
        'this looks like a "dumb" HTTP server (static files) or a web page; packferry speaks the smart protocol only. ' +
        'Check the URL, or serve the repository with git http-backend (or packferry serve)',
    });
  }
  return new PackferryError(ErrorCode.Protocol, `unexpected ${shown} from ${request.what} at ${redactUrl(url)} (expected ${request.expectedType})`, { details });
}

/** Reads and drops a small body (a redirect's), so its connection can be reused; a large one is cut off. */
async function discard(body: Dispatcher.ResponseData['body']): Promise<void> {
  await body.dump({ limit: 64 * 1024 }).catch(() => {});
}

/** Up to `limit` bytes of an error response, as printable text. */
export async function readErrorText(body: Readable, limit = ERROR_BODY_LIMIT): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= limit) break;
    }
  } catch {
    // The message is a courtesy; the status says what matters.
  } finally {
    body.destroy();
  }
  return Buffer.concat(chunks)
    .subarray(0, limit)
    .toString('utf8')
    .replace(/[^\x20-\x7e\n\u00a0-\uffff]/g, '')
    .trim();
}

/**
 * The connection pools of one client, one per proxy route (direct, or each
 * proxy by scheme), made on first use; or the dispatcher the caller gave.
 */
export class DispatcherPool {
  private readonly pools = new Map<string, Dispatcher>();

  constructor(
    private readonly options: Pick<HttpTransportOptions, 'dispatcher' | 'tls' | 'connectTimeoutMs'>,
    private readonly proxy: ProxySettings,
  ) {}

  for(url: URL): Dispatcher {
    if (this.options.dispatcher !== undefined) return this.options.dispatcher;
    const proxy = bypassesProxy(url, this.proxy.noProxy) ? undefined : url.protocol === 'https:' ? this.proxy.https : this.proxy.http;
    const key = proxy === undefined ? 'direct' : `${url.protocol}${proxy}`;
    let dispatcher = this.pools.get(key);
    if (dispatcher === undefined) {
      const tls = { ...this.options.tls, timeout: this.options.connectTimeoutMs };
      if (proxy === undefined) {
        dispatcher = new Agent({ connect: tls });
      } else {
        let uri: URL;
        try {
          uri = new URL(proxy);
        } catch {
          throw new PackferryError(ErrorCode.InvalidUrl, `invalid proxy URL ${JSON.stringify(redactUrl(proxy))}`);
        }
        // Plain http:// goes through the proxy with an absolute URI (as curl
        // does); https:// is tunnelled with CONNECT.
        dispatcher = new ProxyAgent({
          uri: uri.href,
          proxyTunnel: url.protocol === 'https:',
          requestTls: tls,
          proxyTls: { timeout: this.options.connectTimeoutMs },
        });
      }
      this.pools.set(key, dispatcher);
    }
    return dispatcher;
  }

  /** Closes the pools it made (not a dispatcher the caller gave). */
  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((d) => d.destroy()));
  }
}

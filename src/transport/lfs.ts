// A client of the Git LFS API, for downloads: the Batch API (git-lfs
// docs/api/batch.md) and the "basic" transfer adapter
// (docs/api/basic-transfers.md), at the endpoint Git LFS's server discovery
// gives a remote (docs/api/server-discovery.md).
//
// Endpoint: <repository URL>/info/lfs, where a repository URL not ending in
// ".git" gets ".git" first (server discovery: https://host/foo/bar ->
// https://host/foo/bar.git/info/lfs), or the `lfsUrl` option (Git LFS's
// lfs.url). Only http(s) remotes: for ssh remotes Git LFS asks the server
// through `git-lfs-authenticate` (or the ssh transfer protocol) for an
// endpoint and a token; that is not implemented — give `lfsUrl` instead.
//
// Batch: POST <endpoint>/objects/batch with Accept and Content-Type
// application/vnd.git-lfs+json and
//   {"operation":"download","transfers":["basic"],"objects":[{"oid","size"}],"hash_algo":"sha256"}
// at most `batchSize` (default 100, Git LFS's lfs.transfer.batchSize)
// objects per request. The answer's objects each carry either
// actions.download {href, header, expires_in | expires_at} or an error
// {code, message} (404 missing, 410 removed, 422 invalid), reported per
// object; an object asked for and not answered is an error too.
// Download: GET href with the action's headers.
//
// Credentials are the Git remote's (http-credentials.ts: URL userinfo, token,
// netrc), sent to the endpoint only when it has the remote's origin (netrc
// entries for other hosts, as after a redirect). A download action that
// brings its own Authorization header gets exactly that header; otherwise the
// same rule applies to its href (Git LFS likewise sends its credentials for
// the href's host). Redirects are followed for downloads only (up to
// maxRedirects, never https to http; the action's headers and credentials do
// not follow to another origin).
//
// Retries, with full-jitter backoff and Retry-After (http-retry.ts): both
// requests only read, so each is repeated on 429, 500, 502, 503, 504 and on
// connections refused or dropped before the response; a download body that
// stops in the middle is ERR_TRANSPORT_INTERRUPTED, for the caller to retry
// (mirror/lfs.ts does). 401/403 are ERR_TRANSPORT_AUTH, a 404 of the batch
// endpoint ERR_NOT_FOUND (no LFS server there), other statuses
// ERR_HTTP_STATUS with the server's JSON "message".
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Dispatcher } from 'undici';
import { throwIfAborted } from '../core/abort.js';
import { ErrorCode, PackferryError, isPackferryError } from '../core/errors.js';
import { authorizationHeader, credentialsFor, describeCredentials, type CredentialSources, type HttpCredentials } from './http-credentials.js';
import { DEFAULT_RETRY_POLICY, errorCode, RETRYABLE_NETWORK_CODES, RETRYABLE_STATUSES, parseRetryAfter, retryDelayMs, type RetryPolicy } from './http-retry.js';
import { parseHttpUrl, redactUrl, repositoryUrl, sameOrigin } from './http-url.js';
import { DEFAULT_MAX_REDIRECTS, DispatcherPool, headerText, mediaType, proxySettingsFromEnv, readErrorText, type HttpTransportOptions } from './http.js';
import { readNetrcFile, type NetrcEntry } from './netrc.js';

export const LFS_MEDIA_TYPE = 'application/vnd.git-lfs+json';
/** Objects per batch request (Git LFS's lfs.transfer.batchSize default). */
export const DEFAULT_LFS_BATCH_SIZE = 100;
/** Sent as User-Agent. */
export const LFS_USER_AGENT = 'git-lfs/3.3.0 (packferry/0.1.0)';
/** Largest batch response read (100 objects take a few KiB). */
const MAX_BATCH_RESPONSE = 8 * 1024 * 1024;
const ERROR_BODY_LIMIT = 2048;
/** Batch and download requests only read: 500 is worth another try too. */
const LFS_RETRYABLE_STATUSES: ReadonlySet<number> = new Set([...RETRYABLE_STATUSES, 500]);

export interface LfsClientOptions extends HttpTransportOptions {
  /** The LFS server's URL (Git LFS's lfs.url), instead of the one discovered from the repository URL. */
  lfsUrl?: string;
  /** Objects per batch request (default 100). */
  batchSize?: number;
}

export interface LfsObjectSpec {
  oid: string;
  size: number;
}

export interface LfsDownloadAction {
  href: string;
  header: Record<string, string>;
  /** When the href stops working (ms since the epoch), if the server said. */
  expiresAt?: number;
}

/** One object of a batch response. */
export type LfsBatchEntry =
  | { kind: 'download'; oid: string; size: number; action: LfsDownloadAction }
  | { kind: 'error'; oid: string; size: number; error: PackferryError };

export interface LfsDownload {
  body: AsyncIterable<Uint8Array>;
  /** The Content-Length, when the server sent one. */
  contentLength?: number;
  /** Releases the connection (safe after the body was read, and twice). */
  cancel(): void;
}

/** What mirroring needs of an LFS server. */
export interface LfsBatchClient {
  /** The endpoint, without credentials, for messages. */
  readonly displayEndpoint: string;
  readonly batchSize: number;
  batchDownload(objects: LfsObjectSpec[], signal?: AbortSignal): Promise<LfsBatchEntry[]>;
  download(action: LfsDownloadAction, signal?: AbortSignal): Promise<LfsDownload>;
  close(): Promise<void>;
}

/** Git LFS server discovery for an http(s) remote: <url>[.git]/info/lfs. */
export function lfsEndpointFor(repository: URL): URL {
  const url = new URL(repository.href);
  url.username = '';
  url.password = '';
  url.pathname = url.pathname.replace(/\/+$/, '');
  if (!url.pathname.endsWith('.git')) url.pathname += '.git';
  return repositoryUrl(url, 'info/lfs');
}

interface LfsRequest {
  method: 'GET' | 'POST';
  url: URL;
  headers: Record<string, string>;
  body?: Buffer;
  /** Credentials to use instead of the remote's (an action's own Authorization header). */
  ownAuthorization: boolean;
  followRedirects: boolean;
  /** For messages: "the LFS batch API", "the download of <oid>". */
  what: string;
  signal: AbortSignal | undefined;
}

export class LfsClient implements LfsBatchClient {
  readonly endpoint: URL;
  readonly displayEndpoint: string;
  readonly batchSize: number;
  private readonly sources: CredentialSources;
  private readonly retryPolicy: RetryPolicy;
  private readonly dispatchers: DispatcherPool;
  private netrcEntries: readonly NetrcEntry[] | undefined;
  private closed = false;

  /** `repositoryUrl`: the Git remote's http(s) URL, credentials and all. */
  constructor(repositoryUrl: string, private readonly options: LfsClientOptions = {}) {
    const parsed = parseHttpUrl(repositoryUrl);
    if (options.lfsUrl !== undefined) {
      const lfs = parseHttpUrl(options.lfsUrl);
      this.endpoint = lfs.base;
    } else {
      this.endpoint = lfsEndpointFor(parsed.base);
    }
    this.displayEndpoint = redactUrl(this.endpoint);
    this.batchSize = options.batchSize ?? DEFAULT_LFS_BATCH_SIZE;
    if (!Number.isInteger(this.batchSize) || this.batchSize < 1) throw new PackferryError(ErrorCode.Usage, `LfsClient: batchSize must be a positive integer, not ${options.batchSize}`);
    const env = options.env ?? process.env;
    const netrcPath = options.netrc === false ? undefined : (options.netrc ?? join(env.HOME ?? homedir(), '.netrc'));
    this.sources = {
      origin: parsed.base,
      username: parsed.username,
      password: parsed.password,
      token: options.token ?? env.PACKFERRY_TOKEN,
      tokenScheme: options.tokenScheme,
      netrc: netrcPath === undefined ? undefined : () => (this.netrcEntries ??= readNetrcFile(netrcPath) ?? []),
    };
    this.retryPolicy = {
      retries: options.retries ?? DEFAULT_RETRY_POLICY.retries,
      baseDelayMs: options.retryBaseDelayMs ?? DEFAULT_RETRY_POLICY.baseDelayMs,
      maxDelayMs: options.retryMaxDelayMs ?? DEFAULT_RETRY_POLICY.maxDelayMs,
    };
    this.dispatchers = new DispatcherPool(options, proxySettingsFromEnv(env, options.proxy));
  }

  /** One batch request for up to `batchSize` objects; per-object problems come back as entries of kind 'error'. */
  async batchDownload(objects: LfsObjectSpec[], signal?: AbortSignal): Promise<LfsBatchEntry[]> {
    if (objects.length === 0) return [];
    if (objects.length > this.batchSize) throw new PackferryError(ErrorCode.Usage, `batchDownload: ${objects.length} objects, more than the batch size ${this.batchSize}`);
    const body = Buffer.from(
      JSON.stringify({ operation: 'download', transfers: ['basic'], objects: objects.map((o) => ({ oid: o.oid, size: o.size })), hash_algo: 'sha256' }),
    );
    const url = repositoryUrl(this.endpoint, 'objects/batch');
    const response = await this.exchange({
      method: 'POST',
      url,
      headers: { accept: LFS_MEDIA_TYPE, 'content-type': LFS_MEDIA_TYPE },
      body,
      ownAuthorization: false,
      followRedirects: false,
      what: 'the Git LFS batch API',
      signal,
    });
    const type = mediaType(response.data.headers['content-type']);
    if (type !== LFS_MEDIA_TYPE && type !== 'application/json') {
      response.data.body.destroy();
      throw new PackferryError(ErrorCode.Protocol, `the Git LFS batch API at ${redactUrl(url)} answered with ${type === '' ? 'no Content-Type' : `Content-Type ${type}`}, not ${LFS_MEDIA_TYPE}`, {
        details: { url: redactUrl(url), contentType: type },
        hint: 'is there a Git LFS server at this address? Give its URL with the lfs URL option if it is elsewhere',
      });
    }
    const text = await readLimited(response.data.body, MAX_BATCH_RESPONSE, () => this.protocolError(url, `a batch response larger than ${MAX_BATCH_RESPONSE} bytes`), (err) =>
      this.networkError(err, url, 'the Git LFS batch API', signal, 'body'),
    );
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw this.protocolError(url, 'the batch response is not JSON');
    }
    return this.parseBatch(json, objects, url);
  }

  private parseBatch(json: unknown, asked: LfsObjectSpec[], url: URL): LfsBatchEntry[] {
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw this.protocolError(url, 'the batch response is not a JSON object');
    const r = json as { transfer?: unknown; objects?: unknown; hash_algo?: unknown };
    if (r.transfer !== undefined && r.transfer !== null && r.transfer !== 'basic') {
      throw this.protocolError(url, `the server chose the transfer adapter ${JSON.stringify(r.transfer)}; only "basic" was offered`);
    }
    if (r.hash_algo !== undefined && r.hash_algo !== null && r.hash_algo !== 'sha256') {
      throw this.protocolError(url, `the server uses the hash algorithm ${JSON.stringify(r.hash_algo)}; only sha256 is supported`);
    }
    if (!Array.isArray(r.objects)) throw this.protocolError(url, 'the batch response has no "objects" array');
    const wanted = new Map(asked.map((o) => [o.oid, o]));
    const out = new Map<string, LfsBatchEntry>();
    const now = Date.now();
    for (const item of r.objects as unknown[]) {
      if (typeof item !== 'object' || item === null) throw this.protocolError(url, 'an entry of "objects" is not an object');
      const o = item as { oid?: unknown; error?: unknown; actions?: unknown };
      if (typeof o.oid !== 'string') throw this.protocolError(url, 'an object without an "oid"');
      const spec = wanted.get(o.oid);
      if (spec === undefined || out.has(o.oid)) continue; // not asked for, or answered twice: ignored
      const { oid, size } = spec;
      if (o.error !== undefined && o.error !== null) {
        out.set(oid, { kind: 'error', oid, size, error: objectError(oid, o.error, this.displayEndpoint) });
        continue;
      }
      const download = (o.actions as { download?: unknown } | undefined | null)?.download;
      if (typeof download !== 'object' || download === null) {
        out.set(oid, {
          kind: 'error',
          oid,
          size,
          error: new PackferryError(ErrorCode.LfsObject, `Git LFS object ${oid}: the server gave no download action`, { details: { oid, endpoint: this.displayEndpoint } }),
        });
        continue;
      }
      out.set(oid, { kind: 'download', oid, size, action: this.parseAction(download as Record<string, unknown>, oid, url, now) });
    }
    return asked.map(
      ({ oid, size }) =>
        out.get(oid) ?? {
          kind: 'error' as const,
          oid,
          size,
          error: new PackferryError(ErrorCode.LfsObject, `Git LFS object ${oid}: missing from the batch response`, { details: { oid, endpoint: this.displayEndpoint } }),
        },
    );
  }

  private parseAction(a: Record<string, unknown>, oid: string, url: URL, now: number): LfsDownloadAction {
    if (typeof a.href !== 'string') throw this.protocolError(url, `the download action of ${oid} has no href`);
    let href: URL;
    try {
      href = new URL(a.href, url);
    } catch {
      throw this.protocolError(url, `the download action of ${oid} has a bad href ${JSON.stringify(redactUrl(a.href))}`);
    }
    if (href.protocol !== 'http:' && href.protocol !== 'https:') throw this.protocolError(url, `the download action of ${oid} is not http(s): ${href.protocol}`);
    const header: Record<string, string> = {};
    if (a.header !== undefined && a.header !== null) {
      if (typeof a.header !== 'object' || Array.isArray(a.header)) throw this.protocolError(url, `the download action of ${oid} has a bad "header"`);
      for (const [name, value] of Object.entries(a.header as Record<string, unknown>)) {
        if (typeof value !== 'string' || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name) || /[\r\n\0]/.test(value)) {
          throw this.protocolError(url, `the download action of ${oid} has a bad header ${JSON.stringify(name)}`);
        }
        header[name] = value;
      }
    }
    let expiresAt: number | undefined;
    if (typeof a.expires_in === 'number' && Number.isFinite(a.expires_in)) expiresAt = now + a.expires_in * 1000;
    else if (typeof a.expires_at === 'string') {
      const t = Date.parse(a.expires_at);
      if (!Number.isNaN(t) && t > 0) expiresAt = t;
    }
    return { href: href.href, header, expiresAt };
  }

  /** Starts the download of an object (GET href with the action's headers). */
  async download(action: LfsDownloadAction, signal?: AbortSignal): Promise<LfsDownload> {
    const url = new URL(action.href);
    const own = Object.keys(action.header).some((h) => h.toLowerCase() === 'authorization');
    const response = await this.exchange({
      method: 'GET',
      url,
      headers: { ...action.header },
      ownAuthorization: own,
      followRedirects: true,
      what: 'a Git LFS download',
      signal,
    });
    const readable = response.data.body;
    const length = headerText(response.data.headers['content-length']);
    const answered = response.url;
    const mapError = (err: unknown) => this.networkError(err, answered, 'a Git LFS download', signal, 'body');
    return {
      body: (async function* stream() {
        try {
          for await (const chunk of readable as AsyncIterable<Uint8Array>) yield chunk;
        } catch (err) {
          throw mapError(err);
        } finally {
          readable.destroy();
        }
      })(),
      contentLength: length !== undefined && /^\d+$/.test(length) ? Number(length) : undefined,
      cancel: () => readable.destroy(),
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.dispatchers.close();
  }

  /** One request: credentials, retries, redirects (downloads); resolves with a 2xx response. */
  private async exchange(request: LfsRequest): Promise<{ url: URL; data: Dispatcher.ResponseData }> {
    let url = request.url;
    let headers = request.headers;
    let ownAuthorization = request.ownAuthorization;
    let redirects = 0;
    let retry = 0;
    const maxRedirects = this.options.maxRedirects ?? DEFAULT_MAX_REDIRECTS;
    const mayRetry = async (reason: string, retryAfterMs?: number): Promise<boolean> => {
      if (retry >= this.retryPolicy.retries) return false;
      const delayMs = retryDelayMs(this.retryPolicy, retry, retryAfterMs);
      retry++;
      this.options.onRetry?.({ attempt: retry, delayMs, reason, url: redactUrl(url) });
      try {
        await sleep(delayMs, undefined, { signal: request.signal });
      } catch (err) {
        throw aborted(request.signal?.reason ?? err);
      }
      return true;
    };
    for (;;) {
      throwIfAborted(request.signal);
      if (this.closed) throw new PackferryError(ErrorCode.Usage, `Git LFS client for ${this.displayEndpoint} used after close()`);
      const credentials = ownAuthorization ? undefined : credentialsFor(url, this.sources);
      const sent: Record<string, string> = { 'user-agent': this.options.userAgent ?? LFS_USER_AGENT, ...headers };
      if (credentials !== undefined) sent.authorization = authorizationHeader(credentials);
      let data: Dispatcher.ResponseData;
      try {
        data = await this.dispatchers.for(url).request({
          origin: url.origin,
          path: url.pathname + url.search,
          method: request.method,
          headers: sent,
          body: request.body,
          signal: request.signal,
          headersTimeout: this.options.headersTimeoutMs,
          bodyTimeout: this.options.bodyTimeoutMs,
        });
      } catch (err) {
        const code = errorCode(err);
        if (!request.signal?.aborted && code !== undefined && RETRYABLE_NETWORK_CODES.has(code) && (await mayRetry(code))) continue;
        throw this.networkError(err, url, request.what, request.signal, 'request');
      }
      // Destroying a body nobody reads any more must not become an unhandled 'error' event (readers still see real errors).
      data.body.on('error', () => {});
      const status = data.statusCode;
      if (status >= 300 && status < 400 && status !== 304) {
        const location = headerText(data.headers.location);
        await data.body.dump({ limit: 64 * 1024 }).catch(() => {});
        if (!request.followRedirects) {
          throw new PackferryError(ErrorCode.HttpStatus, `${request.what} at ${redactUrl(url)} answered with a redirect (HTTP ${status})`, {
            details: { status, url: redactUrl(url), location: location === undefined ? undefined : redactUrl(location) },
            hint: 'give the Git LFS server\'s final URL (the lfs URL option)',
          });
        }
        const next = this.redirectTarget(url, location, status, ++redirects, maxRedirects);
        if (!sameOrigin(next, url)) {
          // Another origin gets neither the action's headers nor the remote's credentials (only its own netrc entry).
          headers = {};
          ownAuthorization = false;
        }
        url = next;
        continue;
      }
      if (LFS_RETRYABLE_STATUSES.has(status)) {
        const retryAfter = parseRetryAfter(headerText(data.headers['retry-after']));
        const text = await readErrorText(data.body, ERROR_BODY_LIMIT);
        if (await mayRetry(`HTTP ${status}`, retryAfter)) continue;
        throw this.statusError(status, text, url, request, credentials, retry);
      }
      if (status < 200 || status >= 300) throw this.statusError(status, await readErrorText(data.body, ERROR_BODY_LIMIT), url, request, credentials, retry);
      return { url, data };
    }
  }

  private redirectTarget(from: URL, location: string | undefined, status: number, count: number, max: number): URL {
    const details = { status, url: redactUrl(from) };
    if (location === undefined || location === '') throw new PackferryError(ErrorCode.HttpStatus, `HTTP ${status} redirect without a Location from ${redactUrl(from)}`, { details });
    if (count > max) throw new PackferryError(ErrorCode.HttpStatus, `too many redirects (more than ${max}) from ${redactUrl(from)}`, { details });
    let next: URL;
    try {
      next = new URL(location, from);
    } catch {
      throw new PackferryError(ErrorCode.Protocol, `bad redirect Location ${JSON.stringify(redactUrl(location))} from ${redactUrl(from)}`, { details });
    }
    if (next.protocol !== 'http:' && next.protocol !== 'https:') throw new PackferryError(ErrorCode.Protocol, `refusing a redirect to ${next.protocol} (${redactUrl(next)})`, { details });
    if (from.protocol === 'https:' && next.protocol === 'http:') {
      throw new PackferryError(ErrorCode.Protocol, `refusing a redirect from https to http (${redactUrl(next)})`, { details });
    }
    next.username = '';
    next.password = '';
    next.hash = '';
    return next;
  }

  private statusError(status: number, text: string, url: URL, request: LfsRequest, credentials: HttpCredentials | undefined, retries: number): PackferryError {
    const message = serverMessage(text);
    const details: Record<string, unknown> = { status, url: redactUrl(url), endpoint: this.displayEndpoint };
    if (text !== '') details.body = text;
    if (retries > 0) details.retries = retries;
    const said = message === '' ? '' : `: ${message}`;
    if (status === 401 || status === 403) {
      const hint =
        credentials !== undefined
          ? `the server refused ${describeCredentials(credentials)}`
          : request.ownAuthorization
            ? 'the server refused the Authorization header of its own download action (it may have expired)'
            : 'the LFS server wants the Git remote\'s credentials: give them in the URL, a netrc file, or as a token';
      return new PackferryError(ErrorCode.TransportAuth, `${status === 401 ? 'authentication failed' : 'access denied'} for ${request.what} at ${redactUrl(url)} (HTTP ${status})${said}`, {
        hint,
        details,
      });
    }
    if (status === 404 && request.method === 'POST') {
      return new PackferryError(ErrorCode.NotFound, `no Git LFS server at ${this.displayEndpoint} (HTTP 404)${said}`, {
        details,
        hint: 'the source has no Git LFS API here; mirror with --no-lfs, or give the LFS server\'s URL',
      });
    }
    const after = retries > 0 ? ` after ${retries} ${retries === 1 ? 'retry' : 'retries'}` : '';
    return new PackferryError(ErrorCode.HttpStatus, `HTTP ${status} from ${request.what} at ${redactUrl(url)}${after}${said}`, { details });
  }

  private networkError(err: unknown, url: URL, what: string, signal: AbortSignal | undefined, phase: 'request' | 'body'): PackferryError {
    if (isPackferryError(err)) return err;
    if (signal?.aborted) return aborted(signal.reason ?? err);
    const code = errorCode(err);
    const reason = err instanceof Error ? err.message : String(err);
    const details = { url: redactUrl(url), code };
    if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
      return new PackferryError(ErrorCode.TransportTimeout, `timed out in ${what} at ${redactUrl(url)} (${reason})`, { cause: err, details });
    }
    if (code === 'UND_ERR_ABORTED' || code === 'ABORT_ERR' || (err instanceof Error && err.name === 'AbortError')) return aborted(err);
    if (phase === 'body') {
      return new PackferryError(ErrorCode.TransportInterrupted, `the connection to ${url.host} dropped in the middle of ${what} (${reason})`, { cause: err, details });
    }
    if (code === 'UND_ERR_INVALID_ARG') return new PackferryError(ErrorCode.Protocol, `cannot send ${what} to ${redactUrl(url)}: ${reason}`, { cause: err, details });
    return new PackferryError(ErrorCode.TransportConnect, `cannot reach ${what} at ${redactUrl(url)}: ${reason}`, { cause: err, details });
  }

  private protocolError(url: URL, why: string): PackferryError {
    return new PackferryError(ErrorCode.Protocol, `invalid answer from the Git LFS batch API at ${redactUrl(url)}: ${why}`, { details: { url: redactUrl(url) } });
  }
}

/** A per-object error of a batch response, as a PackferryError (spec "Response Errors" per object). */
function objectError(oid: string, error: unknown, endpoint: string): PackferryError {
  const e = (typeof error === 'object' && error !== null ? error : {}) as { code?: unknown; message?: unknown };
  const code = typeof e.code === 'number' ? e.code : undefined;
  const said = typeof e.message === 'string' ? e.message.replace(/[^\x20-\x7e\u00a0-\uffff]/g, '').slice(0, 200) : '';
  const meaning =
    code === 404 ? 'not on the LFS server (never uploaded, or deleted)' : code === 410 ? 'removed from the LFS server' : code === 422 ? 'refused by the LFS server as invalid' : 'the server reported an error';
  return new PackferryError(ErrorCode.LfsObject, `Git LFS object ${oid}: ${meaning}${code === undefined ? '' : ` (${code})`}${said === '' ? '' : `: ${said}`}`, {
    details: { oid, code, serverMessage: said, endpoint },
  });
}

/** The "message" of a JSON error body (Git LFS servers send {message, documentation_url, request_id}), else the text's first line. */
function serverMessage(text: string): string {
  if (text === '') return '';
  try {
    const json = JSON.parse(text) as { message?: unknown };
    if (typeof json.message === 'string') return json.message.slice(0, 200);
  } catch {
    // not JSON
  }
  return text.split('\n')[0].slice(0, 200);
}

function aborted(cause: unknown): PackferryError {
  if (isPackferryError(cause)) return cause;
  return new PackferryError(ErrorCode.Aborted, 'operation aborted', { cause });
}

async function readLimited(body: Readable, limit: number, tooLarge: () => PackferryError, mapError: (err: unknown) => PackferryError): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > limit) throw tooLarge();
      chunks.push(chunk);
    }
  } catch (err) {
    throw isPackferryError(err) ? err : mapError(err);
  } finally {
    body.destroy();
  }
  return Buffer.concat(chunks).toString('utf8');
}

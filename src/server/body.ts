// Reading a request body as a stream (gitprotocol-http(5): Git's POSTs to
// git-upload-pack and git-receive-pack, gzip-compressed when the client
// chose "Content-Encoding: gzip"), with what the server must bound itself:
// - the decoded size (a 32 KiB gzip body can hold 32 MiB of pkt-lines);
// - time: an allowance for the whole body that grows with every byte
//   received (Apache's mod_reqtimeout "body=60,MinRate=1024"), and a longest
//   silence, so that a client trickling a byte every few seconds, or sending
//   headers and nothing more, is cut off instead of holding its request (and
//   a push's resources) for ever;
// - the client going away: the end of the connection ends the stream with
//   ERR_ABORTED, through the gunzip stream too, so that everything the
//   request held is released at once.
// The request itself is never destroyed here, so that the caller can still
// answer (an "ERR" line, 408); it answers with "Connection: close" when the
// body was not read to its end.
import type { IncomingMessage } from 'node:http';
import { PassThrough, type Transform } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { ErrorCode, PackferryError } from '../core/errors.js';

export interface BodyLimits {
  /** Time a body may take before the bytes it brought earn it more (ms). */
  bodyTimeoutMs: number;
  /** Bytes a second that extend the allowance: each `bodyMinRate` bytes received add one second. */
  bodyMinRate: number;
  /** Longest silence inside a body (ms). */
  bodyIdleMs: number;
}

export const DEFAULT_BODY_LIMITS: Readonly<BodyLimits> = Object.freeze({
  bodyTimeoutMs: 60_000,
  bodyMinRate: 1024,
  bodyIdleMs: 60_000,
});

export interface ReadBodyOptions {
  /** Largest decoded body (bytes). */
  limit: number;
  limits?: Partial<BodyLimits>;
  /** Told the size of every decoded chunk (metrics). */
  onChunk?: (bytes: number) => void;
}

/** A body that ran out of time: ERR_TRANSPORT_TIMEOUT, answered 408. */
export function isBodyTimeout(err: unknown): boolean {
  return err instanceof PackferryError && err.code === ErrorCode.TransportTimeout && err.details.body === true;
}

function limitError(limit: number): PackferryError {
  return new PackferryError(ErrorCode.LimitExceeded, `request body is larger than ${limit} bytes`, { details: { limit } });
}

/** A body whose Content-Length says up front that it is over `limit` (decoded bytes) is refused before it is read: 413. */
export function checkDeclaredLength(req: IncomingMessage, limit: number): void {
  const encoding = req.headers['content-encoding'];
  if (encoding !== 'gzip' && encoding !== 'x-gzip' && Number(req.headers['content-length']) > limit) throw limitError(limit);
}

/**
 * The body of `req`, decoded (gzip) and bounded as the module header says.
 * Throws ERR_LIMIT_EXCEEDED (a Content-Length over the limit is refused
 * before anything is read), ERR_TRANSPORT_TIMEOUT (details.body), ERR_ABORTED
 * (the client went away) or ERR_PROTOCOL (a gzip body that does not inflate).
 */
export async function* readRequestBody(req: IncomingMessage, options: ReadBodyOptions): AsyncGenerator<Uint8Array> {
  const limits = { ...DEFAULT_BODY_LIMITS, ...options.limits };
  const encoding = req.headers['content-encoding'];
  const gzip = encoding === 'gzip' || encoding === 'x-gzip';
  if (encoding !== undefined && !gzip && encoding !== 'identity') {
    throw new PackferryError(ErrorCode.Protocol, `unsupported Content-Encoding ${JSON.stringify(String(encoding).slice(0, 40))}`);
  }
  checkDeclaredLength(req, options.limit);

  const decoded: Transform = gzip ? createGunzip() : new PassThrough();
  const fail = (err: PackferryError) => {
    if (!decoded.destroyed) decoded.destroy(err);
  };
  const gone = () => fail(new PackferryError(ErrorCode.Aborted, 'client went away'));
  const onClose = () => {
    if (!req.complete) gone();
  };
  const started = Date.now();
  let received = 0;
  let lastAt = started;
  const onData = (chunk: Buffer) => {
    received += chunk.length;
    lastAt = Date.now();
  };
  let timer: NodeJS.Timeout | undefined;
  const check = () => {
    const now = Date.now();
    const idleEnds = lastAt + limits.bodyIdleMs;
    const allowanceEnds = started + limits.bodyTimeoutMs + (received * 1000) / limits.bodyMinRate;
    if (now >= idleEnds || now >= allowanceEnds) {
      const why = now >= idleEnds ? `nothing received for ${Math.round(limits.bodyIdleMs / 1000)} s` : `slower than ${limits.bodyMinRate} bytes/s`;
      fail(new PackferryError(ErrorCode.TransportTimeout, `request body timed out: ${why} (${received} bytes in ${Math.round((now - started) / 1000)} s)`, { details: { body: true, received } }));
      return;
    }
    timer = setTimeout(check, Math.max(10, Math.min(idleEnds, allowanceEnds) - now));
  };
  req.on('data', onData);
  req.once('error', gone);
  req.once('close', onClose);
  req.pipe(decoded);
  timer = setTimeout(check, Math.min(limits.bodyIdleMs, limits.bodyTimeoutMs));
  let total = 0;
  try {
    for await (const chunk of decoded as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > options.limit) throw limitError(options.limit);
      options.onChunk?.(chunk.length);
      yield chunk;
    }
  } catch (err) {
    if (err instanceof PackferryError) throw err;
    // zlib's own errors: the client sent a body that is not gzip.
    throw new PackferryError(ErrorCode.Protocol, `request body is not valid gzip: ${(err as Error).message}`, { cause: err });
  } finally {
    clearTimeout(timer);
    req.off('data', onData);
    req.off('error', gone);
    req.off('close', onClose);
    req.unpipe(decoded);
    if (!decoded.destroyed) decoded.destroy();
  }
}

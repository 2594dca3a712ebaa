// S3 failures as PackferryErrors: the SDK's service exceptions (by S3 error
// code, https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html)
// and Node's network errors, each with a message that names the bucket and
// key and a hint that names what to check. Errors that are neither (a body
// iterator's own failure, a PackferryError) pass through unchanged.
import { PackferryError, ErrorCode } from '../core/errors.js';

export interface S3ErrorContext {
  /** What was being done: "get", "put", "list"... */
  op: string;
  bucket: string;
  /** The full object key (with the store's prefix), if the operation had one. */
  key?: string;
  /** The endpoint URL, or undefined for AWS. */
  endpoint?: string;
  region: string;
  requestTimeoutMs: number;
  signal?: AbortSignal;
}

interface SdkLikeError {
  name?: string;
  code?: string;
  message?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number; requestId?: string; attempts?: number };
  errors?: unknown[];
}

const AUTH_CODES = new Set([
  'AccessDenied',
  'AllAccessDisabled',
  'AccountProblem',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'InvalidToken',
  'TokenRefreshRequired',
  'InvalidSecurity',
  'Forbidden',
  'CredentialsProviderError',
]);

const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'CERT_HAS_EXPIRED', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'ERR_TLS_CERT_ALTNAME_INVALID']);
const INTERRUPTED_CODES = new Set(['ECONNRESET', 'EPIPE', 'ERR_STREAM_PREMATURE_CLOSE']);
const REGION_CODES = new Set(['PermanentRedirect', 'AuthorizationHeaderMalformed', 'IllegalLocationConstraintException', 'IncorrectEndpoint']);

const CREDENTIALS_HINT = 'check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), or AWS_PROFILE and its entry in ~/.aws';

function authHint(code: string): string {
  switch (code) {
    case 'InvalidAccessKeyId':
      return `the service does not know this access key id: ${CREDENTIALS_HINT}, and that the endpoint is the service the key belongs to`;
    case 'SignatureDoesNotMatch':
      return `the secret key does not match the access key id: ${CREDENTIALS_HINT}`;
    case 'ExpiredToken':
    case 'TokenRefreshRequired':
    case 'InvalidToken':
      return 'the session token expired or is invalid: refresh AWS_SESSION_TOKEN or log in again (e.g. aws sso login)';
    case 'CredentialsProviderError':
      return `no AWS credentials were found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE`;
    default:
      return `the credentials lack permission on this bucket (s3:GetObject, s3:PutObject, s3:DeleteObject, s3:ListBucket, s3:AbortMultipartUpload): check the bucket or IAM policy, or ${CREDENTIALS_HINT}`;
  }
}

/** Node's error code, looking into AggregateErrors (a connect to every address of a name failed). */
function networkCode(err: SdkLikeError): string | undefined {
  if (typeof err.code === 'string') return err.code;
  for (const inner of err.errors ?? []) {
    const code = (inner as SdkLikeError | undefined)?.code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/** Whether `err` says the object (not the bucket) is missing. */
export function isNoSuchKey(err: unknown): boolean {
  const e = err as SdkLikeError | undefined;
  if (e === undefined || e === null || typeof e !== 'object') return false;
  const code = e.Code ?? e.name;
  return code === 'NoSuchKey' || code === 'NotFound' || (e.$metadata?.httpStatusCode === 404 && code !== 'NoSuchBucket' && code !== 'NoSuchUpload');
}

function where(ctx: S3ErrorContext): string {
  return ctx.endpoint === undefined ? `AWS S3 (region ${ctx.region})` : ctx.endpoint;
}

function what(ctx: S3ErrorContext): string {
  return ctx.key === undefined ? `${ctx.op} in s3://${ctx.bucket}` : `${ctx.op} s3://${ctx.bucket}/${ctx.key}`;
}

/** `err` as a PackferryError if it is an S3 or network failure; anything else is returned as it is. */
export function mapS3Error(err: unknown, ctx: S3ErrorContext): unknown {
  if (err instanceof PackferryError) return err;
  const e = (err ?? {}) as SdkLikeError;
  const baseDetails = { bucket: ctx.bucket, key: ctx.key, op: ctx.op };
  if (ctx.signal?.aborted || e.name === 'AbortError') {
    return new PackferryError(ErrorCode.Aborted, `${what(ctx)}: operation aborted`, { cause: ctx.signal?.reason ?? err, details: baseDetails });
  }
  if (typeof err !== 'object' || err === null) return err;
  const status = e.$metadata?.httpStatusCode;
  const code = e.Code ?? e.name ?? 'Error';
  const attempts = e.$metadata?.attempts;
  const details = { ...baseDetails, s3Code: code, status, requestId: e.$metadata?.requestId, attempts };
  const after = attempts !== undefined && attempts > 1 ? ` after ${attempts} attempts` : '';

  if (code === 'NoSuchBucket') {
    return new PackferryError(ErrorCode.NotFound, `S3 bucket "${ctx.bucket}" does not exist (at ${where(ctx)})`, {
      cause: err,
      hint: `create it (e.g. aws s3 mb s3://${ctx.bucket}) or check the bucket name and the endpoint (AWS_ENDPOINT_URL_S3)`,
      details,
    });
  }
  if (code === 'NoSuchKey' || (status === 404 && isNoSuchKey(err))) {
    return new PackferryError(ErrorCode.NotFound, `${what(ctx)}: no such object`, { cause: err, details });
  }
  if (AUTH_CODES.has(code) || status === 401 || status === 403) {
    return new PackferryError(ErrorCode.TransportAuth, `${what(ctx)}: S3 refused the request (${code}${status ? `, HTTP ${status}` : ''})`, {
      cause: err,
      hint: authHint(code),
      details,
    });
  }
  if (REGION_CODES.has(code) || status === 301) {
    return new PackferryError(ErrorCode.HttpStatus, `${what(ctx)}: the bucket is not where the request went (${code}${status ? `, HTTP ${status}` : ''})`, {
      cause: err,
      hint: `the bucket is probably in another region than ${ctx.region}: set AWS_REGION (or the store's region), or check the endpoint`,
      details,
    });
  }
  // Before the timeout test: the SDK names a reset connection "TimeoutError" too.
  const net = networkCode(e);
  if (net !== undefined && CONNECT_CODES.has(net)) {
    return new PackferryError(ErrorCode.TransportConnect, `${what(ctx)}: cannot reach ${where(ctx)} (${net})${after}`, {
      cause: err,
      hint: 'check the endpoint URL (AWS_ENDPOINT_URL_S3) and that the service is running and reachable',
      details: { ...details, s3Code: undefined, errno: net },
    });
  }
  if (net !== undefined && INTERRUPTED_CODES.has(net)) {
    return new PackferryError(ErrorCode.TransportInterrupted, `${what(ctx)}: the connection to ${where(ctx)} dropped (${net})${after}`, {
      cause: err,
      hint: 'check the network and the service; the request was tried as often as maxAttempts allows',
      details: { ...details, s3Code: undefined, errno: net },
    });
  }
  if (e.name === 'TimeoutError' || net === 'ETIMEDOUT' || code === 'RequestTimeout') {
    return new PackferryError(ErrorCode.TransportTimeout, `${what(ctx)}: no answer from ${where(ctx)} within ${ctx.requestTimeoutMs} ms${after}`, {
      cause: err,
      hint: 'check the endpoint and the network, or allow more time (requestTimeoutMs)',
      details,
    });
  }
  if (status !== undefined) {
    const throttled = status === 503 || status === 429 || code === 'SlowDown';
    return new PackferryError(ErrorCode.HttpStatus, `${what(ctx)}: S3 answered HTTP ${status} ${code}${after}${e.message && e.message !== code ? `: ${e.message}` : ''}`, {
      cause: err,
      hint: throttled
        ? 'the service is throttling or unavailable: try again later, or allow more attempts (maxAttempts)'
        : status >= 500
          ? 'the service failed: try again later'
          : undefined,
      details,
    });
  }
  return err;
}

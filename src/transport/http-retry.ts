// When and how long to wait before retrying an HTTP request: exponential
// backoff with "full jitter" (a uniformly random delay between 0 and the
// exponential ceiling, so many clients retrying at once spread out), and the
// server's Retry-After header (RFC 9110, section 10.2.3: delay-seconds or an
// HTTP-date), capped so a hostile or confused server cannot park us for hours.
//
// Which failures are worth a retry is the caller's decision (http.ts, lfs.ts):
// only requests that are safe to repeat, and only before any response byte;
// the network failures that qualify are listed here, for both.

export interface RetryPolicy {
  /** Retries after the first attempt. */
  readonly retries: number;
  /** Ceiling of the first retry's delay; doubles for each further retry. */
  readonly baseDelayMs: number;
  /** No delay, Retry-After included, is longer than this. */
  readonly maxDelayMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = Object.freeze({ retries: 4, baseDelayMs: 250, maxDelayMs: 10_000 });

/** HTTP statuses that mean "try again later": Too Many Requests, Bad Gateway, Service Unavailable, Gateway Timeout. */
export const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([429, 502, 503, 504]);

/**
 * The delay before retry number `retry` (0 for the first retry): a Retry-After
 * value when the server gave one (capped at maxDelayMs), else full jitter,
 * random in [0, min(maxDelayMs, baseDelayMs * 2^retry)).
 */
export function retryDelayMs(
  policy: RetryPolicy,
  retry: number,
  retryAfterMs: number | undefined,
  random: () => number = Math.random,
): number {
  if (retryAfterMs !== undefined) return Math.min(policy.maxDelayMs, Math.max(0, retryAfterMs));
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** retry);
  return Math.floor(random() * ceiling);
}

/**
 * A Retry-After header in milliseconds from `now`: "120" (seconds) or an
 * HTTP-date. Undefined when absent or unreadable; a date in the past is 0.
 */
export function parseRetryAfter(value: string | undefined, now: number = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number.parseInt(text, 10) * 1000;
  if (!/^[A-Za-z]{3},/.test(text)) return undefined;
  const date = Date.parse(text);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

/** Connection failures where nothing of the response arrived: safe to retry if the request is. */
export const RETRYABLE_NETWORK_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** The first errno-like code on an error, its cause or the errors it aggregates. */
export function errorCode(err: unknown, depth = 0): string | undefined {
  if (typeof err !== 'object' || err === null || depth > 4) return undefined;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && code !== '') return code;
  const nested = (err as { errors?: unknown }).errors;
  if (Array.isArray(nested)) {
    for (const e of nested) {
      const c = errorCode(e, depth + 1);
      if (c !== undefined) return c;
    }
  }
  return errorCode((err as { cause?: unknown }).cause, depth + 1);
}

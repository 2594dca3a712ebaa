// Identities: the "Name <email> 1700000000 +0100" value of a commit's author
// and committer lines and a tag's tagger line.
//
// Reading is as lenient as Git's `split_ident_line()` (ident.c): broken
// identities exist in real histories and must still be read. Checking is
// fsck.c's `fsck_ident()`, rule for rule. The original bytes are kept in
// `raw`, and serialization writes `raw`, so a round trip is always exact even
// when the name is not UTF-8 or the line is malformed.
import { PackferryError, ErrorCode } from './errors.js';
import type { ProblemReporter } from './object-problem.js';

export interface Identity {
  /** The name, decoded as UTF-8 (lossy if it is not UTF-8; `raw` is exact). */
  readonly name: string;
  /** The email, without the angle brackets. */
  readonly email: string;
  /** Seconds since the epoch; 0 when the line carries no readable date (as Git shows it). Exact up to 2^53. */
  readonly timestamp: number;
  /** Offset from UTC in minutes (+0130 is 90). A "-0000" zone reads as -0. */
  readonly tzOffset: number;
  /** The identity's bytes exactly as in the object, without the header name and newline. */
  readonly raw: Buffer;
}

export interface IdentityFields {
  name: string;
  email: string;
  timestamp: number;
  tzOffset: number;
}

const LT = 0x3c; // <
const GT = 0x3e; // >
const SP = 0x20;
const LF = 0x0a;

// Git's isspace() (sane_ctype GIT_SPACE): space, \t, \n, \r.
function isGitSpace(c: number): boolean {
  return c === SP || c === 0x09 || c === LF || c === 0x0d;
}

function isDigit(c: number | undefined): boolean {
  return c !== undefined && c >= 0x30 && c <= 0x39;
}

function toView(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

/**
 * Reads an identity as Git's `split_ident_line()` does. Never throws: a line
 * without "<...>" has an empty name and email (as `git log` shows it), a
 * missing or malformed date reads as 0.
 */
export function parseIdentity(bytes: Uint8Array): Identity {
  const raw = toView(bytes);
  const len = raw.length;
  const lt = raw.indexOf(LT);
  if (lt < 0) return { name: '', email: '', timestamp: 0, tzOffset: 0, raw };

  const mailEnd = raw.indexOf(GT, lt + 1);
  if (mailEnd < 0) return { name: '', email: '', timestamp: 0, tzOffset: 0, raw };
  let nameEnd = lt;
  while (nameEnd > 0 && isGitSpace(raw[nameEnd - 1])) nameEnd--;
  const name = raw.toString('utf8', 0, nameEnd);
  const email = raw.toString('utf8', lt + 1, mailEnd);

  // The date follows the *last* '>', which tolerates a stray '>' in the email.
  let p = raw.lastIndexOf(GT) + 1;
  while (p < len && isGitSpace(raw[p])) p++;
  const dateStart = p;
  while (p < len && isDigit(raw[p])) p++;
  if (p === dateStart) return { name, email, timestamp: 0, tzOffset: 0, raw };
  const dateEnd = p;
  while (p < len && isGitSpace(raw[p])) p++;
  if (p >= len || (raw[p] !== 0x2b && raw[p] !== 0x2d)) return { name, email, timestamp: 0, tzOffset: 0, raw };
  const sign = raw[p] === 0x2d ? -1 : 1;
  const tzStart = ++p;
  while (p < len && isDigit(raw[p])) p++;
  if (p === tzStart) return { name, email, timestamp: 0, tzOffset: 0, raw };

  const timestamp = Number(raw.toString('latin1', dateStart, dateEnd));
  // Git reads the zone as a decimal number hhmm ("+0130" is 1 h 30 min).
  const tz = p - tzStart > 15 ? 0 : Number(raw.toString('latin1', tzStart, p));
  const tzOffset = sign * (Math.floor(tz / 100) * 60 + (tz % 100));
  return { name, email, timestamp, tzOffset, raw };
}

/** Formats a zone offset in minutes as Git writes it: "+0100", "-0530" (-0 gives "-0000"). */
export function formatTimezone(tzOffset: number): string {
  if (!Number.isInteger(tzOffset) || Math.abs(tzOffset) >= 100 * 60) {
    throw new PackferryError(ErrorCode.Usage, `time zone offset out of range: ${tzOffset} minutes`);
  }
  const negative = tzOffset < 0 || Object.is(tzOffset, -0);
  const abs = Math.abs(tzOffset);
  const hhmm = Math.floor(abs / 60) * 100 + (abs % 60);
  return `${negative ? '-' : '+'}${String(hhmm).padStart(4, '0')}`;
}

/**
 * Makes an identity from its fields, as Git's `fmt_ident()` writes it:
 * "Name <email> timestamp +hhmm". Refuses names and emails that would not
 * read back (containing '<', '>', a newline or NUL), instead of silently
 * stripping them as Git does.
 */
export function createIdentity(fields: IdentityFields): Identity {
  const { name, email, timestamp, tzOffset } = fields;
  for (const [what, value] of [['name', name], ['email', email]] as const) {
    if (typeof value !== 'string' || /[<>\n\0]/.test(value)) {
      throw new PackferryError(ErrorCode.Usage, `identity ${what} must not contain '<', '>', newline or NUL: ${JSON.stringify(value)}`);
    }
  }
  if (!Number.isSafeInteger(timestamp) || timestamp < 0) {
    throw new PackferryError(ErrorCode.Usage, `identity timestamp must be a non-negative integer: ${timestamp}`);
  }
  const prefix = name === '' ? '' : `${name} `;
  const raw = Buffer.from(`${prefix}<${email}> ${timestamp} ${formatTimezone(tzOffset)}`, 'utf8');
  return parseIdentity(raw);
}

// fsck.c: date_overflows() with a 64-bit signed time_t; parse_timestamp_from_buf()
// gives up (TIME_MAX) beyond 23 digits.
const TIME_T_MAX = 2n ** 63n - 1n;
function dateOverflows(digits: string): boolean {
  if (digits.length > 23) return true;
  return BigInt(digits) > TIME_T_MAX;
}

/**
 * Checks one identity line as fsck.c's `fsck_ident()`. `data[start..eol)` is
 * the value after "author "/"committer "/"tagger ", and `data[eol]` is its
 * newline. Reports at most one problem; returns true if it was an error.
 */
export function checkIdentity(data: Uint8Array, start: number, eol: number, reporter: ProblemReporter): boolean {
  // Bytes past the line read as the newline that ends it, as in fsck.c.
  const at = (i: number): number => (i < eol ? data[i] : LF);
  let p = start;
  if (at(p) === LT) return reporter.report('missingNameBeforeEmail', 'invalid author/committer line - missing space before email', p);
  for (;;) {
    const c = at(p);
    if (c === LF) return reporter.report('missingEmail', 'invalid author/committer line - missing email', p);
    if (c === GT) return reporter.report('badName', 'invalid author/committer line - bad name', p);
    if (c === LT) break;
    p++;
  }
  if (at(p - 1) !== SP) return reporter.report('missingSpaceBeforeEmail', 'invalid author/committer line - missing space before email', p);
  p++;
  for (;;) {
    const c = at(p);
    if (c === LT || c === LF) return reporter.report('badEmail', 'invalid author/committer line - bad email', p);
    if (c === GT) break;
    p++;
  }
  p++;
  if (at(p) !== SP) return reporter.report('missingSpaceBeforeDate', 'invalid author/committer line - missing space before date', p);
  p++;
  while (at(p) === SP || at(p) === 0x09) p++;
  if (!isDigit(at(p))) return reporter.report('badDate', 'invalid author/committer line - bad date', p);
  if (at(p) === 0x30 && at(p + 1) !== SP) return reporter.report('zeroPaddedDate', 'invalid author/committer line - zero-padded date', p);
  const dateStart = p;
  while (isDigit(at(p))) p++;
  if (dateOverflows(Buffer.from(data.buffer, data.byteOffset + dateStart, p - dateStart).toString('latin1'))) {
    return reporter.report('badDateOverflow', 'invalid author/committer line - date causes integer overflow', dateStart);
  }
  if (at(p) !== SP) return reporter.report('badDate', 'invalid author/committer line - bad date', p);
  p++;
  const sign = at(p);
  if ((sign !== 0x2b && sign !== 0x2d) || !isDigit(at(p + 1)) || !isDigit(at(p + 2)) || !isDigit(at(p + 3)) || !isDigit(at(p + 4)) || p + 5 !== eol) {
    return reporter.report('badTimezone', 'invalid author/committer line - bad time zone', p);
  }
  return false;
}

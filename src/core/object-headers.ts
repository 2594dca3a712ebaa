// The header block shared by commits and tags: "key SP value LF" lines, where
// a line starting with a space continues the previous value (how mergetag and
// gpgsig carry multi-line values), ended by an empty line before the message.
//
// Reference: gitformat-signature ("Commit signatures", "Tag signatures");
// commit.c `read_commit_extra_header_lines()` and `add_extra_header()`.
import { PackferryError, ErrorCode } from './errors.js';
import type { HashAlgorithm } from './hash.js';
import { invalidObject, type FsckMsgId, type ProblemReporter } from './object-problem.js';
import type { ObjectType } from './object-type.js';
import type { ObjectId } from './oid.js';

/**
 * One header that packferry does not interpret (mergetag, gpgsig, ...), in
 * object order. `value` is the value with continuation lines joined by "\n"
 * (their leading space removed). `value` is undefined for a bare "key" line
 * without a space, which is distinct from "key " with an empty value.
 * A `key` of "" holds continuation lines that follow no header of their own.
 */
export interface HeaderField {
  readonly key: string;
  readonly value: Buffer | undefined;
}

const LF = 0x0a;
const SP = 0x20;

/** A header line: `data[start..eol)`, `data[eol]` being its newline. */
export interface HeaderLine {
  readonly start: number;
  readonly eol: number;
}

/** Splits an object into header lines and the message, as Git reads commits and tags. */
export interface HeaderBlock {
  readonly lines: HeaderLine[];
  /** The bytes after the empty line, or undefined when the object has no empty line at all. */
  readonly message: Buffer | undefined;
}

export function splitHeaderBlock(type: ObjectType, data: Buffer): HeaderBlock {
  const lines: HeaderLine[] = [];
  const len = data.length;
  let pos = 0;
  while (pos < len) {
    if (data[pos] === LF) return { lines, message: data.subarray(pos + 1) };
    const eol = data.indexOf(LF, pos);
    if (eol < 0) throw invalidObject(type, 'unterminatedHeader', 'unterminated header', pos);
    lines.push({ start: pos, eol });
    pos = eol + 1;
  }
  if (len === 0) throw invalidObject(type, 'unterminatedHeader', 'unterminated header', 0);
  return { lines, message: undefined };
}

/** True if the line starts with `prefix` (ASCII). */
export function lineStartsWith(data: Buffer, line: HeaderLine, prefix: string): boolean {
  if (line.eol - line.start < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) {
    if (data[line.start + i] !== prefix.charCodeAt(i)) return false;
  }
  return true;
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46);
}

/**
 * Reads "<prefix><hex id>" filling the whole line, as fsck's
 * `parse_oid_hex() || *p != '\n'` check; ids are returned in lowercase
 * (Git accepts uppercase hex here but never writes it).
 */
export function readIdLine(
  type: ObjectType,
  data: Buffer,
  line: HeaderLine,
  prefixLength: number,
  algo: HashAlgorithm,
  problem: FsckMsgId,
): ObjectId {
  const start = line.start + prefixLength;
  if (line.eol - start !== algo.hexLength) throw invalidObject(type, problem, `bad object id in "${data.toString('latin1', line.start, line.start + prefixLength - 1)}" line`, line.start);
  let upper = false;
  for (let i = start; i < line.eol; i++) {
    const c = data[i];
    if (!isHex(c)) throw invalidObject(type, problem, `bad object id in "${data.toString('latin1', line.start, line.start + prefixLength - 1)}" line`, line.start);
    if (c >= 0x41 && c <= 0x46) upper = true;
  }
  const hex = data.toString('latin1', start, line.eol);
  return upper ? hex.toLowerCase() : hex;
}

/** True if `data[start..end)` is exactly a hex id of the given algorithm (either case, as Git's parse_oid_hex). */
export function isHexIdAt(data: Uint8Array, start: number, end: number, algo: HashAlgorithm): boolean {
  if (end - start !== algo.hexLength) return false;
  for (let i = start; i < end; i++) if (!isHex(data[i])) return false;
  return true;
}

/** Groups the remaining header lines into fields, joining continuation lines. */
export function readHeaderFields(data: Buffer, lines: readonly HeaderLine[], from: number): HeaderField[] {
  const fields: HeaderField[] = [];
  let key: string | undefined;
  let parts: Buffer[] = [];
  const flush = (): void => {
    if (key === undefined) return;
    fields.push({ key, value: parts.length === 0 ? undefined : parts.length === 1 ? parts[0] : joinLines(parts) });
    key = undefined;
    parts = [];
  };
  for (let i = from; i < lines.length; i++) {
    const { start, eol } = lines[i];
    if (data[start] === SP) {
      // A continuation line that follows no value (first header line, or a
      // bare "key" line) is kept as a field of its own with key "".
      if (key === undefined || (parts.length === 0 && key !== '')) {
        flush();
        key = '';
      }
      parts.push(data.subarray(start + 1, eol));
      continue;
    }
    flush();
    // (indexOf would scan on past the line: quadratic over many lines)
    let space = start;
    while (space < eol && data[space] !== SP) space++;
    if (space === eol) {
      key = data.toString('latin1', start, eol);
    } else {
      key = data.toString('latin1', start, space);
      parts.push(data.subarray(space + 1, eol));
    }
  }
  flush();
  return fields;
}

function joinLines(parts: Buffer[]): Buffer {
  let size = parts.length - 1;
  for (const p of parts) size += p.length;
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (let i = 0; i < parts.length; i++) {
    if (i > 0) out[at++] = LF;
    at += parts[i].copy(out, at);
  }
  return out;
}

/** Bytes of a header field as it appears in an object, continuation lines included. */
export function encodeHeaderField(field: HeaderField, out: Buffer[]): void {
  const { key, value } = field;
  // A space or newline in a key would change how the line reads back; other
  // bytes (even NUL, which fsck flags) are written as read.
  if (typeof key !== 'string' || /[ \n]/.test(key) || (key === '' && value === undefined)) {
    throw new PackferryError(ErrorCode.InvalidObject, `cannot write header with key ${JSON.stringify(key)}`, { details: { key } });
  }
  const keyBytes = Buffer.from(key, 'latin1');
  if (keyBytes.toString('latin1') !== key) {
    throw new PackferryError(ErrorCode.InvalidObject, `header key must be 8-bit text: ${JSON.stringify(key)}`, { details: { key } });
  }
  out.push(keyBytes);
  if (value === undefined) {
    out.push(NEWLINE);
    return;
  }
  out.push(SPACE);
  // Each line of the value after the first is written as a continuation line.
  let from = 0;
  for (;;) {
    const nl = value.indexOf(LF, from);
    if (nl < 0) break;
    out.push(value.subarray(from, nl + 1), SPACE);
    from = nl + 1;
  }
  out.push(value.subarray(from), NEWLINE);
}

/** Finds the first header with this key. */
export function findHeader(headers: readonly HeaderField[], key: string): Buffer | undefined {
  for (const h of headers) if (h.key === key) return h.value ?? EMPTY;
  return undefined;
}

// ---- fsck.c helpers shared by commit and tag checks -----------------------

/**
 * fsck.c `verify_headers()`: the header region (up to the first empty line)
 * holds no NUL and ends with a newline. Returns true if it reported an error.
 */
export function verifyHeaders(data: Buffer, reporter: ProblemReporter): boolean {
  const len = data.length;
  for (let i = 0; i < len; i++) {
    const c = data[i];
    if (c === 0) return reporter.report('nulInHeader', `unterminated header: NUL at offset ${i}`, i);
    if (c === LF && i + 1 < len && data[i + 1] === LF) return false;
  }
  if (len > 0 && data[len - 1] === LF) return false;
  return reporter.report('unterminatedHeader', 'unterminated header', len);
}

export function startsWithAt(data: Buffer, at: number, prefix: string): boolean {
  if (data.length - at < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (data[at + i] !== prefix.charCodeAt(i)) return false;
  return true;
}

export function endOfLine(data: Buffer, from: number): number {
  const eol = data.indexOf(LF, from);
  return eol < 0 ? data.length : eol;
}

export const NEWLINE = Buffer.from('\n');
export const SPACE = Buffer.from(' ');
export const EMPTY = Buffer.alloc(0);

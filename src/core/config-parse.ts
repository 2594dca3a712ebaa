// Git's configuration file syntax, read as Git reads it: config.c
// git_parse_source() with get_next_char(), get_base_var(),
// get_extended_base_var(), get_value() and parse_value() (Git 2.39), and
// ctype.c's character classes (Git's isspace is only SP, HT, LF and CR).
// fsck reads .gitmodules blobs this way (fsck.c fsck_blob, through
// git_config_from_mem), so the same bytes must give the same variables here
// as there — including Git's quirks: a key before any section has no section,
// "[section.Sub]" lowercases the subsection, a NUL byte is an ordinary byte
// (callers that compare C strings cut names and values at it), a CR alone is
// whitespace, a partial UTF-8 byte order mark is an error.
//
// Pure: bytes in, one call per variable, then success or the line of the
// first error. Never throws for any input. Names and values are latin1
// strings, one character per byte, so no byte is lost.

export interface ConfigParseResult {
  /** False when Git would stop with "bad config line N". */
  ok: boolean;
  /** The line of the error (1-based), when not ok. */
  line?: number;
}

/**
 * Called once per variable: `name` is "section.key" or
 * "section.subsection.key" with the section and key lowercased (as
 * `git config --list` prints them); `value` is null for a key without "="
 * (which Git reads as true).
 */
export type ConfigEntryHandler = (name: string, value: string | null) => void;

const LF = 0x0a;
const CR = 0x0d;
const TAB = 0x09;
const SP = 0x20;
const EOF = -1;

function isSpace(c: number): boolean {
  return c === SP || c === TAB || c === LF || c === CR;
}

function isAlpha(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

function isKeyChar(c: number): boolean {
  return isAlpha(c) || (c >= 0x30 && c <= 0x39) || c === 0x2d;
}

function lower(c: number): number {
  return c >= 0x41 && c <= 0x5a ? c + 0x20 : c;
}

/** Bytes gathered one at a time, read out as a latin1 string. */
class Bytes {
  private buf = new Uint8Array(64);
  length = 0;

  push(c: number): void {
    if (this.length === this.buf.length) {
      const grown = new Uint8Array(this.buf.length * 2);
      grown.set(this.buf);
      this.buf = grown;
    }
    this.buf[this.length++] = c;
  }

  truncate(length: number): void {
    this.length = length;
  }

  toString(): string {
    return Buffer.from(this.buf.buffer, 0, this.length).toString('latin1');
  }
}

/** config.c's config_source over a buffer: get_next_char() turns CRLF into LF and the end into LF (setting `eof`). */
class Source {
  private pos = 0;
  eof = false;
  line = 1;

  constructor(private readonly data: Uint8Array) {}

  next(): number {
    const data = this.data;
    let c = this.pos < data.length ? data[this.pos++] : EOF;
    if (c === CR) {
      if (this.pos < data.length && data[this.pos] === LF) {
        this.pos++;
        c = LF;
      }
    }
    if (c === LF) this.line++;
    if (c === EOF) {
      this.eof = true;
      this.line++;
      c = LF;
    }
    return c;
  }
}

/** "[section]", "[section.sub]" (lowercased) or '[section "sub"]' after the '['; false on a malformed header. */
function getBaseVar(src: Source, name: Bytes): boolean {
  for (;;) {
    const c = src.next();
    if (src.eof) return false;
    if (c === 0x5d) return true; // ']'
    if (isSpace(c)) return getExtendedBaseVar(src, name, c);
    if (!isKeyChar(c) && c !== 0x2e) return false;
    name.push(lower(c));
  }
}

function getExtendedBaseVar(src: Source, name: Bytes, first: number): boolean {
  let c = first;
  do {
    if (c === LF) return false;
    c = src.next();
  } while (isSpace(c));
  if (c !== 0x22) return false; // '"'
  name.push(0x2e);
  for (;;) {
    let d = src.next();
    if (d === LF) return false;
    if (d === 0x22) break;
    if (d === 0x5c) {
      d = src.next();
      if (d === LF) return false;
    }
    name.push(d);
  }
  return src.next() === 0x5d;
}

/** The value after '=': quotes, escapes, comments and whitespace as Git reads them; undefined when malformed. */
function parseValue(src: Source, value: Bytes): string | undefined {
  value.truncate(0);
  let quote = false;
  let comment = false;
  let space = 0;
  for (;;) {
    let c = src.next();
    if (c === LF) return quote ? undefined : value.toString();
    if (comment) continue;
    if (isSpace(c) && !quote) {
      if (value.length > 0) space++;
      continue;
    }
    if (!quote && (c === 0x3b || c === 0x23)) {
      comment = true;
      continue;
    }
    for (; space > 0; space--) value.push(SP);
    if (c === 0x5c) {
      c = src.next();
      switch (c) {
        case LF:
          continue;
        case 0x74: // t
          c = TAB;
          break;
        case 0x62: // b
          c = 0x08;
          break;
        case 0x6e: // n
          c = LF;
          break;
        case 0x5c:
        case 0x22:
          break;
        default:
          return undefined;
      }
      value.push(c);
      continue;
    }
    if (c === 0x22) {
      quote = !quote;
      continue;
    }
    value.push(c);
  }
}

const BOM = [0xef, 0xbb, 0xbf];

/** Reads a configuration file as Git does, calling `onEntry` for each variable up to the first error. */
export function parseGitConfig(data: Uint8Array, onEntry: ConfigEntryHandler): ConfigParseResult {
  const src = new Source(data);
  const name = new Bytes();
  const value = new Bytes();
  let baseLength = 0;
  let bom = 0;
  let comment = false;
  for (;;) {
    let c = src.next();
    if (bom < BOM.length) {
      // A UTF-8 byte order mark at the very start is skipped; part of one is an error.
      if (c === BOM[bom]) {
        bom++;
        continue;
      }
      if (bom !== 0) break;
      bom = BOM.length;
    }
    if (c === LF) {
      if (src.eof) return { ok: true };
      comment = false;
      continue;
    }
    if (comment || isSpace(c)) continue;
    if (c === 0x23 || c === 0x3b) {
      comment = true;
      continue;
    }
    if (c === 0x5b) {
      name.truncate(0);
      if (!getBaseVar(src, name) || name.length < 1) break;
      name.push(0x2e);
      baseLength = name.length;
      continue;
    }
    if (!isAlpha(c)) break;
    // get_value(): the key, blanks, then '=' and a value or the end of the line.
    name.truncate(baseLength);
    name.push(lower(c));
    for (;;) {
      c = src.next();
      if (src.eof || !isKeyChar(c)) break;
      name.push(lower(c));
    }
    while (c === SP || c === TAB) c = src.next();
    let entryValue: string | null = null;
    if (c !== LF) {
      if (c !== 0x3d) break;
      const parsed = parseValue(src, value);
      if (parsed === undefined) break;
      entryValue = parsed;
    }
    onEntry(name.toString(), entryValue);
  }
  // Git counts the line the error is on; an error at the end of a line has already passed it.
  return { ok: false, line: Math.max(1, src.line - (src.eof ? 1 : 0)) };
}

// The netrc file: credentials per host, as curl (and so Git's HTTP transport)
// reads them. Format from ftp(1) / netrc(5) and curl's lib/netrc.c:
//
//   machine <host> login <user> password <secret> [account <acct>]
//   default login <user> password <secret>
//   macdef <name>   (a macro: its body runs to the next empty line, skipped)
//
// Tokens are separated by any whitespace, newlines included. As in curl
// 7.84+, a token may be "double-quoted" with \" \\ \n \r \t escapes, and a
// '#' at the start of a token comments out the rest of its line. Unknown
// tokens are skipped. The parser is pure; readNetrcFile does the I/O.
import { readFileSync } from 'node:fs';
import { ErrorCode, PackferryError } from '../core/errors.js';

export interface NetrcEntry {
  /** The host name; undefined for the `default` entry. */
  readonly machine: string | undefined;
  readonly login: string | undefined;
  readonly password: string | undefined;
  readonly account: string | undefined;
}

interface Token {
  text: string;
  /** Index just after the token. */
  end: number;
}

const ESCAPES: Record<string, string> = { n: '\n', r: '\r', t: '\t' };

function isSpace(c: string): boolean {
  return c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f' || c === '\v';
}

/** The next token at or after `pos`, or undefined at the end of the text. */
function nextToken(text: string, pos: number): Token | undefined {
  for (;;) {
    while (pos < text.length && isSpace(text[pos])) pos++;
    if (pos >= text.length) return undefined;
    if (text[pos] !== '#') break;
    const eol = text.indexOf('\n', pos);
    if (eol < 0) return undefined;
    pos = eol + 1;
  }
  if (text[pos] === '"') {
    let out = '';
    let i = pos + 1;
    while (i < text.length && text[i] !== '"') {
      if (text[i] === '\\' && i + 1 < text.length) {
        const c = text[i + 1];
        out += ESCAPES[c] ?? c;
        i += 2;
      } else {
        out += text[i++];
      }
    }
    return { text: out, end: Math.min(i + 1, text.length) };
  }
  let end = pos;
  while (end < text.length && !isSpace(text[end])) end++;
  return { text: text.slice(pos, end), end };
}

/** Parses the text of a netrc file into its entries, in file order. */
export function parseNetrc(text: string): NetrcEntry[] {
  const entries: NetrcEntry[] = [];
  let current: { machine: string | undefined; login?: string; password?: string; account?: string } | undefined;
  const finish = (): void => {
    if (current !== undefined) {
      entries.push({ machine: current.machine, login: current.login, password: current.password, account: current.account });
    }
    current = undefined;
  };
  let pos = 0;
  for (let token = nextToken(text, pos); token !== undefined; token = nextToken(text, pos)) {
    pos = token.end;
    const keyword = token.text;
    if (keyword === 'default') {
      finish();
      current = { machine: undefined };
      continue;
    }
    if (keyword === 'macdef') {
      finish();
      // The macro name, then the body up to an empty line (two newlines in a row).
      const name = nextToken(text, pos);
      pos = name?.end ?? text.length;
      const blank = text.slice(pos).search(/\n[ \t]*\r?\n/);
      pos = blank < 0 ? text.length : pos + blank + 1;
      continue;
    }
    const value = nextToken(text, pos);
    if (keyword === 'machine') {
      finish();
      if (value === undefined) break;
      pos = value.end;
      current = { machine: value.text };
      continue;
    }
    if (keyword === 'login' || keyword === 'password' || keyword === 'account') {
      if (value === undefined) break;
      pos = value.end;
      if (current !== undefined) current[keyword] = value.text;
    }
    // Anything else (a stray word) is skipped, as curl does.
  }
  finish();
  return entries;
}

export interface NetrcLookup {
  /** Only entries with this login (the user name given in the URL) match. */
  login?: string;
  /** Consider the `default` entry (default true). */
  allowDefault?: boolean;
}

/**
 * The entry for `host` (compared case-insensitively): the first `machine`
 * entry naming it, else `default` when allowed. With `login`, only entries
 * for that login match, as curl does when the URL names the user.
 */
export function findNetrcEntry(entries: readonly NetrcEntry[], host: string, lookup: NetrcLookup = {}): NetrcEntry | undefined {
  const wanted = host.toLowerCase();
  const loginMatches = (e: NetrcEntry): boolean => lookup.login === undefined || e.login === lookup.login;
  const exact = entries.find((e) => e.machine !== undefined && e.machine.toLowerCase() === wanted && loginMatches(e));
  if (exact !== undefined || lookup.allowDefault === false) return exact;
  return entries.find((e) => e.machine === undefined && loginMatches(e));
}

/** Reads and parses a netrc file; undefined when it does not exist. Other read errors are ERR_USAGE. */
export function readNetrcFile(path: string): NetrcEntry[] | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new PackferryError(ErrorCode.Usage, `cannot read netrc file ${path}: ${(err as Error).message}`, { cause: err });
  }
  return parseNetrc(text);
}

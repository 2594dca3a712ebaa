// Git remote URLs: git-clone(1) / git-fetch(1), section "GIT URLS", parsed
// the way Git's connect.c does (parse_connect_url, url_is_local_not_ssh,
// host_end, get_host_and_port, get_port in Git 2.39) and transport.c picks a
// transport (transport_get). `git fetch-pack --diag-url URL` prints Git's own
// reading; test/transport/url.test.ts compares ours with it.
//
// The forms:
//   ssh://[user@]host[:port]/path     also git+ssh:// and ssh+git://
//   ssh://[user@][ipv6]:port/path     brackets for an IPv6 address
//   [user@]host:path                  "scp-like": only when no '/' comes
//                                     before the first ':'; also
//                                     [user@][host:port]:path
//   file:///path                      and file://localhost/path
//   /path, ./path, path               local paths (absolute or relative)
//   http://... https://...            smart (or dumb) HTTP
//
// Git's behaviour we keep: URLs with "://" are percent-decoded as a whole
// before they are split (so %2F in the host becomes a path separator, as in
// Git); scp-like URLs and local paths are not decoded. A path "/~user/repo"
// (or any path whose second character is '~': Git only looks at that one) is
// passed as "~user/repo", which git-upload-pack expands on the server.
//
// Where we are stricter than Git, on purpose (all ERR_INVALID_URL):
//   - a host or user starting with '-' (Git blocks only "-" at the start of
//     the whole "user@host"; ssh would read either as an option, the
//     CVE-2017-1000117 family), and a path starting with '-';
//   - NUL, CR or LF anywhere (also when they come from %-decoding), and
//     whitespace or control characters in a host or user;
//   - an empty host, user or path; a port that is not 1-65535 in plain
//     digits (Git passes "h:abc" to ssh as the host, and accepts " 22");
//   - a password in an ssh URL ("user:secret@host"): ssh never reads it;
//   - a file:// URL naming a host other than localhost (Git ignores it);
//   - git:// (the unauthenticated daemon protocol) and remote helpers
//     ("<helper>::<address>"), which packferry does not speak.
import { ErrorCode, PackferryError } from '../core/errors.js';

export interface SshUrl {
  readonly scheme: 'ssh';
  readonly user?: string;
  /** Host name or address; an IPv6 address without its brackets. */
  readonly host: string;
  readonly port?: number;
  /** The path as the server's git-upload-pack receives it: absolute, "~user/..." or relative to the login home. */
  readonly path: string;
}

export interface FileUrl {
  readonly scheme: 'file';
  /** A local path, absolute or relative to the current directory, as written. */
  readonly path: string;
}

export interface HttpUrl {
  readonly scheme: 'http' | 'https';
  /** The normalized URL, credentials included (they are for the HTTP transport to use, never to print). */
  readonly url: string;
}

/** A parsed Git remote URL: which transport, and what it needs. */
export type GitUrl = SshUrl | FileUrl | HttpUrl;

function invalid(input: string, reason: string, hint?: string): PackferryError {
  return new PackferryError(ErrorCode.InvalidUrl, `invalid Git URL ${JSON.stringify(scrub(input))}: ${reason}`, {
    hint,
    details: { url: scrub(input), reason },
  });
}

/** The input with any "user:password@" replaced, for messages. */
function scrub(input: string): string {
  return input.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^/@]*@/, '$1***@');
}

/** Git's is_urlschemechar: a letter first, then letters, digits, '+', '-', '.'. */
const URL_PREFIX = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;
const HELPER_PREFIX = /^[A-Za-z][A-Za-z0-9+.-]*::/;

/**
 * Git's url_decode: %XX becomes the byte it names (the result is read as
 * UTF-8); a '%' not followed by two hex digits stays as it is, and so does
 * "%00" (Git never decodes a NUL).
 */
function percentDecode(text: string): string {
  if (!text.includes('%')) return text;
  const bytes = Buffer.from(text, 'utf8');
  const out = Buffer.allocUnsafe(bytes.length);
  let n = 0;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] === 0x25 && i + 2 < bytes.length) {
      const hex = bytes.subarray(i + 1, i + 3).toString('latin1');
      const value = Number.parseInt(hex, 16);
      if (/^[0-9A-Fa-f]{2}$/.test(hex) && value > 0) {
        out[n++] = value;
        i += 2;
        continue;
      }
    }
    out[n++] = bytes[i];
  }
  return out.subarray(0, n).toString('utf8');
}

/** Git's url_is_local_not_ssh (POSIX): no ':' at all, or a '/' before the first ':'. */
export function isLocalPath(url: string): boolean {
  const colon = url.indexOf(':');
  const slash = url.indexOf('/');
  return colon < 0 || (slash >= 0 && slash < colon);
}

/**
 * Git's host_end without removing brackets: where the host part of
 * "[user@]host..." ends if it is bracketed ("[...]" or "user@[...]"), else 0
 * (the host runs to the separator).
 */
function bracketEnd(hostStart: string): number {
  const at = hostStart.indexOf('@[');
  const start = at >= 0 ? at + 1 : 0;
  if (hostStart[start] !== '[') return 0;
  const close = hostStart.indexOf(']', start + 1);
  return close < 0 ? 0 : close + 1;
}

const PORT_DIGITS = /^[0-9]{1,5}$/;

/**
 * Git's get_host_and_port followed by get_port: splits "[user@]host[:port]"
 * (the host possibly in brackets) into "[user@]host" and a port.
 */
function splitHostAndPort(
  input: string,
  hostPort: string,
): { userAndHost: string; port: string | undefined; bracketed: boolean } {
  const at = hostPort.indexOf('@[');
  const start = at >= 0 ? at + 1 : 0;
  if (hostPort[start] === '[') {
    const close = hostPort.indexOf(']', start + 1);
    if (close < 0) throw invalid(input, "unbalanced '[' in the host");
    let userAndHost = hostPort.slice(0, start) + hostPort.slice(start + 1, close);
    const tail = hostPort.slice(close + 1);
    // Git cuts the host at ']' and skips anything before a ':' ("[h]x:22"); we refuse it.
    if (tail !== '' && !tail.startsWith(':')) throw invalid(input, `unexpected ${JSON.stringify(tail)} after ']'`);
    let port = portAfterColon(input, tail.slice(1));
    if (port === undefined) {
      // get_port: "[myhost:123]:path" carries the port inside the brackets.
      const inner = userAndHost.indexOf(':', userAndHost.lastIndexOf('@') + 1);
      if (inner >= 0 && PORT_DIGITS.test(userAndHost.slice(inner + 1))) {
        port = userAndHost.slice(inner + 1);
        userAndHost = userAndHost.slice(0, inner);
      }
    }
    return { userAndHost, port, bracketed: true };
  }
  // The port's ':' comes after the user's '@' (a ':' before it would be a password).
  const colon = hostPort.indexOf(':', hostPort.lastIndexOf('@') + 1);
  if (colon < 0) return { userAndHost: hostPort, port: undefined, bracketed: false };
  return { userAndHost: hostPort.slice(0, colon), port: portAfterColon(input, hostPort.slice(colon + 1)), bracketed: false };
}

/** The port after "host:": undefined when empty (Git drops a bare ':'); ERR_INVALID_URL unless plain digits. */
function portAfterColon(input: string, text: string): string | undefined {
  if (text === '') return undefined;
  if (!PORT_DIGITS.test(text)) throw invalid(input, `bad port ${JSON.stringify(text)}`);
  return text;
}

// eslint-disable-next-line no-control-regex
const CONTROL_OR_SPACE = /[\u0000-\u0020\u007f]/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
// eslint-disable-next-line no-control-regex
const LINE_BREAK_OR_NUL = /[\u0000\n\r]/;

function sshUrl(input: string, hostPort: string, rawPath: string): SshUrl {
  // Git: "ssh://host.xz/~user/repo" means "~user/repo" (its test is path[1] == '~').
  const path = rawPath[1] === '~' ? rawPath.slice(1) : rawPath;
  if (path === '') throw invalid(input, 'no path specified');
  if (path.startsWith('-')) throw invalid(input, `a path may not start with '-': ${JSON.stringify(path)}`);
  if (LINE_BREAK_OR_NUL.test(path)) throw invalid(input, 'the path contains NUL, CR or LF');
  const { userAndHost, port, bracketed } = splitHostAndPort(input, hostPort);
  const at = userAndHost.lastIndexOf('@');
  const user = at >= 0 ? userAndHost.slice(0, at) : undefined;
  const host = userAndHost.slice(at + 1);
  if (host === '') throw invalid(input, 'no host specified');
  if (host.startsWith('-')) {
    throw invalid(input, `a host may not start with '-' (ssh would read it as an option): ${JSON.stringify(host)}`);
  }
  if (CONTROL_OR_SPACE.test(host)) throw invalid(input, 'the host contains whitespace or control characters');
  if (!bracketed && host.includes(':')) throw invalid(input, `bad host ${JSON.stringify(host)}`);
  if (user !== undefined) {
    if (user === '') throw invalid(input, 'empty user name before @');
    if (user.startsWith('-')) {
      throw invalid(input, `a user may not start with '-' (ssh would read it as an option): ${JSON.stringify(user)}`);
    }
    if (CONTROL_OR_SPACE.test(user)) throw invalid(input, 'the user contains whitespace or control characters');
    if (user.includes(':')) {
      throw invalid(input, 'ssh URLs cannot carry a password', 'use a key (--ssh-key) or ssh-agent instead');
    }
  }
  let portNumber: number | undefined;
  if (port !== undefined) {
    portNumber = Number(port);
    if (portNumber < 1 || portNumber > 65535) throw invalid(input, `port ${port} is outside 1-65535`);
  }
  return {
    scheme: 'ssh',
    ...(user !== undefined ? { user } : {}),
    host,
    ...(portNumber !== undefined ? { port: portNumber } : {}),
    path,
  };
}

/**
 * Parses a Git remote URL (see the module header for the forms). Throws
 * ERR_INVALID_URL for input Git would refuse and for hostile input Git lets
 * through (hosts or users that ssh would take for options, line breaks).
 */
export function parseGitUrl(input: string): GitUrl {
  if (typeof input !== 'string' || input === '') throw invalid(String(input), 'empty URL');
  if (LINE_BREAK_OR_NUL.test(input)) throw invalid(input, 'the URL contains NUL, CR or LF');
  const scheme = URL_PREFIX.exec(input)?.[1];
  if (scheme === undefined && HELPER_PREFIX.test(input)) {
    throw invalid(input, 'remote helpers ("<helper>::<address>") are not supported');
  }
  if (scheme !== undefined) {
    switch (scheme) {
      case 'http':
      case 'https':
        return httpUrl(input, scheme);
      case 'ssh':
      case 'git+ssh':
      case 'ssh+git': {
        const decoded = percentDecode(input.slice(scheme.length + 3));
        if (LINE_BREAK_OR_NUL.test(decoded)) throw invalid(input, 'the URL contains NUL, CR or LF');
        const slash = decoded.indexOf('/', bracketEnd(decoded));
        if (slash < 0) throw invalid(input, 'no path specified');
        return sshUrl(input, decoded.slice(0, slash), decoded.slice(slash));
      }
      case 'file': {
        const decoded = percentDecode(input.slice('file://'.length));
        if (LINE_BREAK_OR_NUL.test(decoded)) throw invalid(input, 'the URL contains NUL, CR or LF');
        const slash = decoded.indexOf('/');
        if (slash < 0) throw invalid(input, 'no path specified');
        const host = decoded.slice(0, slash);
        if (host !== '' && host !== 'localhost') {
          throw invalid(input, `file:// URLs name a local path; host ${JSON.stringify(host)} is not this machine`);
        }
        return { scheme: 'file', path: decoded.slice(slash) };
      }
      case 'git':
        throw invalid(input, 'git:// (the unauthenticated Git daemon protocol) is not supported', 'use https:// or ssh://');
      default:
        throw invalid(input, `protocol '${scheme}' is not supported`);
    }
  }
  if (isLocalPath(input)) {
    if (input.startsWith('-')) throw invalid(input, "a path may not start with '-' (write ./-name)");
    return { scheme: 'file', path: input };
  }
  // scp-like: [user@]host:path, the host possibly in brackets.
  const colon = input.indexOf(':', bracketEnd(input));
  if (colon < 0) throw invalid(input, 'no path specified');
  return sshUrl(input, input.slice(0, colon), input.slice(colon + 1));
}

function httpUrl(input: string, scheme: 'http' | 'https'): HttpUrl {
  let parsed: URL;
  try {
    parsed = new URL(input);
  } catch {
    throw invalid(input, 'not a valid URL');
  }
  if (parsed.hostname === '') throw invalid(input, 'no host specified');
  if (CONTROL.test(input)) throw invalid(input, 'the URL contains control characters');
  return { scheme, url: parsed.href };
}

function bracketHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/**
 * The URL for messages and logs, without credentials: for HTTP the whole
 * user-info part is dropped (a token is often the user name), as Git's
 * transport_anonymize_url does. ssh URLs have no secrets: an absolute or "~"
 * path is shown as ssh://, a path relative to the login home in scp-like form.
 */
export function displayUrl(url: GitUrl): string {
  switch (url.scheme) {
    case 'http':
    case 'https': {
      const parsed = new URL(url.url);
      parsed.username = '';
      parsed.password = '';
      return parsed.href;
    }
    case 'file':
      return url.path;
    case 'ssh': {
      const user = url.user !== undefined ? `${url.user}@` : '';
      if (url.path.startsWith('/') || url.path.startsWith('~')) {
        const port = url.port !== undefined ? `:${url.port}` : '';
        const path = url.path.startsWith('~') ? `/${url.path}` : url.path;
        return `ssh://${user}${bracketHost(url.host)}${port}${path}`;
      }
      const host = url.port !== undefined ? `[${url.host}:${url.port}]` : bracketHost(url.host);
      return `${user}${host}:${url.path}`;
    }
  }
}

// http:// and https:// remote URLs: validation, the userinfo credentials they
// may carry, and their display form with every secret removed.
//
// As in Git (gitprotocol-http(5), "URL Format"), the repository URL is a base:
// the smart protocol appends "/info/refs?service=..." and "/git-upload-pack"
// or "/git-receive-pack" to it, so a trailing slash is dropped, and a query
// or fragment (which would end up in the middle of those URLs) is refused.
import { ErrorCode, PackferryError } from '../core/errors.js';

export interface HttpRemoteUrl {
  /** The repository base URL: no userinfo, query, fragment or trailing slash. */
  readonly base: URL;
  /** The user name from the URL's userinfo, percent-decoded. */
  readonly username: string | undefined;
  /** The password from the URL's userinfo, percent-decoded. */
  readonly password: string | undefined;
}

function invalid(url: string, why: string, hint?: string): PackferryError {
  return new PackferryError(ErrorCode.InvalidUrl, `invalid HTTP remote URL ${redactUrl(url)}: ${why}`, {
    hint,
    details: { url: redactUrl(url) },
  });
}

function decode(component: string, url: string): string {
  try {
    return decodeURIComponent(component);
  } catch {
    throw invalid(url, 'bad percent-encoding in the user name or password');
  }
}

/** Parses and validates an http(s) repository URL. Throws ERR_INVALID_URL. */
export function parseHttpUrl(url: string): HttpRemoteUrl {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalid(url, 'not a URL');
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw invalid(url, `scheme ${parsed.protocol} is not http: or https:`);
  }
  if (parsed.hostname === '') throw invalid(url, 'no host');
  if (parsed.search !== '' || parsed.hash !== '') {
    throw invalid(url, 'a repository URL cannot have a query or fragment', 'remove the part from "?" or "#" on');
  }
  const username = parsed.username === '' ? undefined : decode(parsed.username, url);
  const password = parsed.password === '' ? undefined : decode(parsed.password, url);
  const base = new URL(parsed.href);
  base.username = '';
  base.password = '';
  base.pathname = base.pathname.replace(/\/+$/, '');
  return { base, username, password };
}

/**
 * The URL without userinfo or secret-looking query parameters, for messages
 * and logs. Text that is not a URL is returned with anything between "//"
 * and "@" removed.
 */
export function redactUrl(url: string | URL): string {
  let parsed: URL;
  try {
    parsed = typeof url === 'string' ? new URL(url) : new URL(url.href);
  } catch {
    return String(url).replace(/\/\/[^/@]*@/, '//');
  }
  parsed.username = '';
  parsed.password = '';
  for (const key of [...parsed.searchParams.keys()]) {
    if (/token|key|secret|password|signature|credential|auth/i.test(key)) parsed.searchParams.set(key, 'REDACTED');
  }
  return parsed.href;
}

/** `base` + "/" + `path` (path relative to the repository, e.g. "info/refs"), with an optional query. */
export function repositoryUrl(base: URL, path: string, query?: Record<string, string>): URL {
  const url = new URL(base.href);
  url.pathname = `${base.pathname.replace(/\/+$/, '')}/${path}`;
  if (query !== undefined) url.search = new URLSearchParams(query).toString();
  return url;
}

/** True when two URLs have the same scheme, host and port: credentials may go from one to the other. */
export function sameOrigin(a: URL, b: URL): boolean {
  return a.origin === b.origin;
}

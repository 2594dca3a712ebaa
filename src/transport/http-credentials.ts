// Which credentials an HTTP request carries, and to which hosts.
//
// Sources, first match wins (Git's order, without credential helpers or
// prompts): the password in the URL's userinfo; a token (options.token or
// PACKFERRY_TOKEN), sent as Basic with the URL's user name or
// "x-access-token" (what GitHub, Gitea and GitLab accept), or as a Bearer
// token; a netrc entry for the host (with the URL's user name as login, when
// it names one).
//
// After a redirect to another origin (scheme, host or port: curl's rule since
// CVE-2022-27776) none of those are sent: only a netrc `machine` entry naming
// the new host itself, never the `default` entry, since that would hand a
// catch-all secret to whichever host the redirect chose.
import { findNetrcEntry, type NetrcEntry } from './netrc.js';
import { sameOrigin } from './http-url.js';

export type CredentialSource = 'url' | 'token' | 'netrc';

export type HttpCredentials =
  | { readonly scheme: 'basic'; readonly username: string; readonly password: string; readonly source: CredentialSource }
  | { readonly scheme: 'bearer'; readonly token: string; readonly source: 'token' };

export interface CredentialSources {
  /** The repository's own URL: its origin is where URL and token credentials may go. */
  origin: URL;
  username?: string;
  password?: string;
  token?: string;
  tokenScheme?: 'basic' | 'bearer';
  /** Parsed netrc entries (loaded on first use). */
  netrc?: () => readonly NetrcEntry[];
}

/** User name sent with a token when the URL has none (accepted by the common forges). */
export const TOKEN_USERNAME = 'x-access-token';

/** The credentials for a request to `target`, or undefined to send none. */
export function credentialsFor(target: URL, sources: CredentialSources): HttpCredentials | undefined {
  if (!sameOrigin(target, sources.origin)) {
    const entry = sources.netrc === undefined ? undefined : findNetrcEntry(sources.netrc(), target.hostname, { allowDefault: false });
    return fromNetrc(entry);
  }
  if (sources.password !== undefined) {
    return { scheme: 'basic', username: sources.username ?? '', password: sources.password, source: 'url' };
  }
  if (sources.token !== undefined && sources.token !== '') {
    if (sources.tokenScheme === 'bearer') return { scheme: 'bearer', token: sources.token, source: 'token' };
    return { scheme: 'basic', username: sources.username ?? TOKEN_USERNAME, password: sources.token, source: 'token' };
  }
  if (sources.netrc === undefined) return undefined;
  return fromNetrc(findNetrcEntry(sources.netrc(), target.hostname, { login: sources.username }));
}

function fromNetrc(entry: NetrcEntry | undefined): HttpCredentials | undefined {
  if (entry === undefined || entry.password === undefined) return undefined;
  return { scheme: 'basic', username: entry.login ?? '', password: entry.password, source: 'netrc' };
}

/** The Authorization header value for credentials. */
export function authorizationHeader(credentials: HttpCredentials): string {
  if (credentials.scheme === 'bearer') return `Bearer ${credentials.token}`;
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`, 'utf8').toString('base64')}`;
}

/** Where credentials come from, in words, for error messages (never the secret itself). */
export function describeCredentials(credentials: HttpCredentials): string {
  switch (credentials.source) {
    case 'url':
      return `the user name and password in the URL (user ${JSON.stringify(credentials.scheme === 'basic' ? credentials.username : '')})`;
    case 'token':
      return credentials.scheme === 'bearer' ? 'the token (as a Bearer token)' : `the token (as user ${JSON.stringify(credentials.username)})`;
    case 'netrc':
      return `the netrc entry (login ${JSON.stringify(credentials.scheme === 'basic' ? credentials.username : '')})`;
  }
}

// Authenticating a request (docs/security.md "Authentication"), in order:
//  1. a client certificate that verified against the cluster CA (mutual
//     TLS; see tls.ts): user and rights from the certificate;
//  2. an access token, as `Authorization: Bearer pft_...` or
//     `Authorization: Basic base64(user:pft_...)` (Git sends the latter
//     from its credential helpers; the user name is not checked, the
//     token alone decides, and a token given as the user name with an
//     empty password is accepted too);
//  3. nothing usable: anonymous, which reads public repositories only.
// A verified certificate wins over an Authorization header. Rejected
// credentials (unverified, expired or wrong-CA certificates, unknown or
// expired tokens, malformed headers) give an anonymous identity whose
// `rejected` says why, for the log: never an error, never a hint to the
// client about what exists.
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { ANONYMOUS, type Identity } from './identity.js';
import { identityFromSocket } from './tls.js';
import { isTokenShaped, type TokenStore } from './tokens.js';

/** The credentials in an Authorization header. */
export type Credentials =
  | { kind: 'none' }
  | { kind: 'bearer'; token: string }
  | { kind: 'basic'; user: string; password: string }
  | { kind: 'malformed'; reason: string };

/** Longest Authorization header looked at; a token-bearing one is far shorter. */
const MAX_AUTHORIZATION = 4096;

/** Parses an Authorization header (RFC 9110 §11.6.2; Basic: RFC 7617; Bearer: RFC 6750). */
export function parseAuthorization(header: string | string[] | undefined): Credentials {
  if (header === undefined) return { kind: 'none' };
  if (Array.isArray(header)) return { kind: 'malformed', reason: 'several Authorization headers' };
  if (header.length > MAX_AUTHORIZATION) return { kind: 'malformed', reason: 'Authorization header too long' };
  const m = /^([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*) +(\S+) *$/.exec(header);
  if (!m) return { kind: 'malformed', reason: 'Authorization header is not "<scheme> <credentials>"' };
  const scheme = m[1].toLowerCase();
  if (scheme === 'bearer') return { kind: 'bearer', token: m[2] };
  if (scheme === 'basic') {
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(m[2])) return { kind: 'malformed', reason: 'Basic credentials are not base64' };
    const decoded = Buffer.from(m[2], 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return { kind: 'malformed', reason: 'Basic credentials have no ":"' };
    return { kind: 'basic', user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  return { kind: 'malformed', reason: `unsupported Authorization scheme ${JSON.stringify(m[1].slice(0, 20))}` };
}

/** The token in parsed credentials, if any. */
export function tokenOf(credentials: Credentials): string | undefined {
  switch (credentials.kind) {
    case 'bearer':
      return credentials.token;
    case 'basic':
      if (credentials.password === '' && isTokenShaped(credentials.user)) return credentials.user;
      return credentials.password;
    default:
      return undefined;
  }
}

export interface AuthenticateOptions {
  /** The token store; without one, Authorization headers are ignored (and noted in `rejected`). */
  tokens?: TokenStore;
  /** "Now", for certificate validity (tests). */
  now?: Date;
  signal?: AbortSignal;
}

/** Who sent `req`: see the module comment for the order and the rules. */
export async function authenticate(req: IncomingMessage, options: AuthenticateOptions = {}): Promise<Identity> {
  const fromCert = identityFromSocket(req.socket as TLSSocket, options.now);
  if (fromCert.kind !== 'anonymous') return fromCert;
  const credentials = parseAuthorization(req.headers.authorization);
  const rejected = (why: string): Identity => ({ kind: 'anonymous', rejected: fromCert.rejected ? `${fromCert.rejected}; ${why}` : why });
  if (credentials.kind === 'none') return fromCert.rejected ? fromCert : ANONYMOUS;
  if (credentials.kind === 'malformed') return rejected(credentials.reason);
  if (options.tokens === undefined) return rejected('tokens are not enabled on this server');
  const check = await options.tokens.verify(tokenOf(credentials) ?? '', options.signal);
  if (!check.ok) return rejected(`token ${check.reason}`);
  const { info } = check;
  return { kind: 'token', user: info.user, rights: info.rights, tokenId: info.id, ...(info.expires ? { expires: info.expires } : {}) };
}

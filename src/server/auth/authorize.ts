// Authorizing a request, and how a refusal must look (docs/security.md
// "The 404 rule"). A refusal never reveals whether a repository exists:
// the server answers a request it does not allow exactly as it answers a
// request for a repository that does not exist. Use it like this:
//
//   const identity = await authenticate(req, { tokens });
//   const settings = await readSettings(store);   // a missing repository reads as a private one
//   if (!authorize(identity, action, name, settings, { region })) {
//     return send(denial(identity, { challenge: tokensEnabled }));
//   }
//   // only now open the repository (and refuse the same way if it does not exist)
//
// Decide before reading anything else of the repository, and do not let the
// time taken or the error path differ (no "repository missing" log line at
// a level the client can see, no different body).
import { DEFAULT_REGION, allows, isServerAdmin, type Action } from './rights.js';
import type { Identity } from './identity.js';

/** What authorization needs from a repository's settings (src/store/root.ts RepositorySettings fits). */
export interface AccessSettings {
  /** Readable without credentials. */
  public: boolean;
}

export interface AuthorizeOptions {
  /** The serving node's region (default DEFAULT_REGION). */
  region?: string;
}

/**
 * Whether `identity` may do `action` on `repo` (undefined: the node as a
 * whole, e.g. listing or status). `settings` undefined means the repository
 * does not exist; the answer is then computed as for a private repository,
 * so callers may also use it to decide whether a creation is allowed.
 * - Anyone (anonymous too) may read a public repository.
 * - Anything else needs a certificate or token whose rights allow it
 *   (rights.ts `allows`: flags, region globs, repository globs).
 * - `node` identities (cluster peers) get nothing here.
 */
export function authorize(identity: Identity, action: Action, repo: string | undefined, settings: AccessSettings | undefined, options: AuthorizeOptions = {}): boolean {
  if (action === 'read' && repo !== undefined && settings?.public === true) return true;
  if (identity.kind !== 'cert' && identity.kind !== 'token') return false;
  return allows(identity.rights, { action, repo, region: options.region ?? DEFAULT_REGION });
}

/**
 * Whether `identity` may install, read, change or delete `repo`'s hooks:
 * code the server runs on every push. A server-wide admin may (rights.ts
 * `isServerAdmin`: admin on every region and repository); with
 * `repositoryAdmins` (serve --repository-admins-manage-hooks) so may anyone
 * `authorize` lets administer the repository. As for `authorize`,
 * `settings` undefined means the repository does not exist: refused.
 */
export function authorizeHooks(
  identity: Identity,
  repo: string,
  settings: AccessSettings | undefined,
  options: AuthorizeOptions & { repositoryAdmins?: boolean } = {},
): boolean {
  if (settings === undefined || (identity.kind !== 'cert' && identity.kind !== 'token')) return false;
  if (isServerAdmin(identity.rights)) return true;
  return options.repositoryAdmins === true && authorize(identity, 'admin', repo, settings, options);
}

/** The response to send for anything not allowed (and for anything that does not exist). */
export interface Denial {
  status: 401 | 404;
  headers: Record<string, string>;
  body: string;
}

export const NOT_FOUND_BODY = 'Repository not found\n';

/**
 * How to refuse. Always 404 with the same body, whatever the reason, with one
 * exception: when `challenge` is set (the server accepts tokens) and the
 * client presented no usable credentials, 401 with `WWW-Authenticate: Basic`,
 * because Git sends the user name and token from its credential helper only
 * after such a challenge. That 401 is given for every refused anonymous
 * request, existing repository or not, so it reveals nothing either.
 */
export function denial(identity: Identity, options: { challenge?: boolean; realm?: string } = {}): Denial {
  if (options.challenge === true && identity.kind === 'anonymous') {
    const realm = (options.realm ?? 'packferry').replace(/["\\]/g, '');
    return { status: 401, headers: { 'www-authenticate': `Basic realm="${realm}", charset="UTF-8"`, 'content-type': 'text/plain; charset=utf-8' }, body: 'Authentication required\n' };
  }
  return { status: 404, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: NOT_FOUND_BODY };
}

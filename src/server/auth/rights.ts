// What an identity may do (docs/security.md "Rights"): repoSpanner's model of
// admin/read/write flags scoped by region and repository globs, as carried by
// a client certificate's packferry rights extension or by an access token.
//
// Decisions:
// - `write` does not imply `read` (as in repoSpanner): a push-only robot can
//   push (receive-pack, whose advertisement lists the refs) but not fetch
//   objects. Give both flags to people.
// - `admin` implies `read` and `write`, and the admin API, but only within
//   the rights' region and repository globs.
// - Globs: `*` matches any run of characters, '/' included (so `team/*`
//   covers `team/a/b`, and the default `*` covers everything); `?` matches one
//   character; everything else matches itself, case-sensitively. `**` is the
//   same as `*`. This is the same rule as `mirror --include`.
import { PackferryError, ErrorCode } from '../../core/errors.js';

export interface Rights {
  readonly admin: boolean;
  readonly read: boolean;
  readonly write: boolean;
  /** Globs over region names; at least one must match the server's region. */
  readonly regions: readonly string[];
  /** Globs over repository names (without .git); at least one must match the repository. */
  readonly repos: readonly string[];
}

export type Action = 'read' | 'write' | 'admin';

export interface AccessRequest {
  action: Action;
  /** The repository, or undefined for an action on the whole node (listing, status). */
  repo?: string;
  /** The serving node's region. */
  region: string;
}

/** Limits on what a rights record may hold (checked when made and when decoded from a certificate). */
export const RIGHTS_LIMITS = Object.freeze({ maxGlobs: 64, maxGlobLength: 256 });

/** No rights at all: such an identity reads public repositories only. */
export const NO_RIGHTS: Rights = Object.freeze({ admin: false, read: false, write: false, regions: Object.freeze(['*']), repos: Object.freeze(['*']) });

/** The region a single node serves when none is configured. */
export const DEFAULT_REGION = 'default';

/** Checks one glob: non-empty, bounded, printable (no control characters). */
export function checkGlob(glob: string, what = 'glob'): string {
  if (typeof glob !== 'string' || glob.length === 0 || glob.length > RIGHTS_LIMITS.maxGlobLength) {
    throw new PackferryError(ErrorCode.Usage, `${what} must be 1 to ${RIGHTS_LIMITS.maxGlobLength} characters`);
  }
  if (Array.from(glob).some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f)) throw new PackferryError(ErrorCode.Usage, `${what} ${JSON.stringify(glob)} contains a control character`);
  return glob;
}

/** A rights record with defaults filled in (no flags; every region and repository) and every glob checked. */
export function makeRights(partial: Partial<Rights> = {}): Rights {
  const globs = (list: readonly string[] | undefined, what: string): readonly string[] => {
    const out = list === undefined || list.length === 0 ? ['*'] : [...list];
    if (out.length > RIGHTS_LIMITS.maxGlobs) throw new PackferryError(ErrorCode.Usage, `at most ${RIGHTS_LIMITS.maxGlobs} ${what} globs`);
    for (const g of out) checkGlob(g, `${what} glob`);
    return Object.freeze(out);
  };
  return Object.freeze({
    admin: partial.admin === true,
    read: partial.read === true,
    write: partial.write === true,
    regions: globs(partial.regions, 'region'),
    repos: globs(partial.repos, 'repository'),
  });
}

/**
 * Whether `text` matches `glob` as a whole ('*': any run, '/' included; '?':
 * one character). Linear-time in the common case and O(glob × text) at
 * worst: no regular expression, no exponential backtracking.
 */
export function globMatch(glob: string, text: string): boolean {
  const g = Array.from(glob);
  const t = Array.from(text);
  let gi = 0;
  let ti = 0;
  let star = -1; // position in g after the last '*' seen
  let mark = 0; // position in t where that '*' started matching
  while (ti < t.length) {
    if (gi < g.length && (g[gi] === '?' || (g[gi] !== '*' && g[gi] === t[ti]))) {
      gi++;
      ti++;
    } else if (gi < g.length && g[gi] === '*') {
      while (gi < g.length && g[gi] === '*') gi++;
      star = gi;
      mark = ti;
    } else if (star >= 0) {
      gi = star;
      ti = ++mark;
    } else {
      return false;
    }
  }
  while (gi < g.length && g[gi] === '*') gi++;
  return gi === g.length;
}

/** Whether a glob matches every name (is made of '*' only). */
export function matchesEverything(glob: string): boolean {
  return /^\*+$/.test(glob);
}

/**
 * Whether `rights` allow `request`. The action's flag must be set (`admin`
 * implies the others; `write` does not imply `read`); a region glob must
 * match the node's region; and a repository glob must match the repository,
 * or, for an action on no particular repository, one of the repository globs
 * must match everything.
 */
export function allows(rights: Rights, request: AccessRequest): boolean {
  const flag = rights.admin || (request.action === 'read' && rights.read) || (request.action === 'write' && rights.write);
  if (!flag) return false;
  if (!rights.regions.some((g) => globMatch(g, request.region))) return false;
  if (request.repo === undefined) return rights.repos.some(matchesEverything);
  const repo = request.repo;
  return rights.repos.some((g) => globMatch(g, repo));
}

/**
 * Whether `rights` are a server-wide admin's: the admin flag, with a region
 * glob and a repository glob that each match everything. What such rights
 * alone may do (installing hooks, which run code as the server) must not be
 * reachable from an admin of some repositories or regions.
 */
export function isServerAdmin(rights: Rights): boolean {
  return rights.admin && rights.regions.some(matchesEverything) && rights.repos.some(matchesEverything);
}

/** "read, write; regions *; repos team/*": for logs and `ca info`. */
export function formatRights(rights: Rights): string {
  const flags = [rights.admin && 'admin', rights.read && 'read', rights.write && 'write'].filter(Boolean).join(', ') || 'no rights';
  return `${flags}; regions ${rights.regions.join(' ')}; repos ${rights.repos.join(' ')}`;
}

/** Rights as a JSON object: for `--json` output. */
export function rightsJson(r: Rights): Record<string, unknown> {
  return { admin: r.admin, read: r.read, write: r.write, regions: [...r.regions], repos: [...r.repos] };
}

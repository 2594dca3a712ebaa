// Access tokens (docs/security.md "Tokens"): for clients that cannot present
// a client certificate. A token is "pft_" + 32 random bytes in base64url
// (256 bits: not guessable, nothing to brute-force), shown once when made.
// The store keeps only its SHA-256 with the owner, rights, creation and
// expiry times, in one JSON blob (TOKENS_KEY) in the server's store root
// through the BlobStore contract, so it works alike on a directory and a
// bucket. A stolen tokens file therefore grants nothing. Lookups hash the
// presented token and compare it with every stored hash in constant time.
//
// A running server re-reads the file at most every `refreshMs` (default
// 5 s), so `packferry token revoke` takes effect within that time.
// Creating, revoking and pruning are read-modify-write of that one blob
// (store/document.ts updateDocument): a compare-and-swap where the store has
// conditional writes, the root's writer lock where it has not, so any number
// of processes may change tokens at the same moment without losing a change.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { PackferryError, ErrorCode } from '../../core/errors.js';
import type { BlobStore } from '../../store/backend.js';
import { updateDocument } from '../../store/document.js';
import { checkName } from './names.js';
import { makeRights, type Rights } from './rights.js';

/** Where tokens live in a store root (beside the repositories, never inside one). */
export const TOKENS_KEY = 'packferry/tokens.json';
export const TOKEN_PREFIX = 'pft_';
const TOKEN_RE = /^pft_[A-Za-z0-9_-]{43}$/;
const ID_RE = /^[0-9a-f]{12}$/;
const FORMAT_VERSION = 1;

/** A token as listed: everything but its secret. */
export interface TokenInfo {
  /** Public handle for `token ls` and `token revoke` (12 hex digits, random). */
  id: string;
  user: string;
  rights: Rights;
  created: Date;
  /** Absent: never expires. */
  expires?: Date;
}

export interface CreateTokenOptions {
  user: string;
  rights: Partial<Rights>;
  /** Expire this many days from now (fractions allowed). */
  expiresInDays?: number;
  /** Or at this time. */
  expires?: Date;
}

/** What verifying a presented token found. */
export type TokenCheck = { ok: true; info: TokenInfo } | { ok: false; reason: 'malformed' | 'unknown' | 'expired' };

interface StoredToken {
  id: string;
  user: string;
  sha256: string;
  rights: Rights;
  created: string;
  expires?: string;
}

export interface TokenStoreOptions {
  /** The key of the tokens blob (default TOKENS_KEY). */
  key?: string;
  /** How long a read of the tokens blob is reused by `verify` (default 5000 ms; 0: every time). */
  refreshMs?: number;
  /** The clock, for tests. */
  now?: () => Date;
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** Whether a string looks like a packferry token (for telling a token from a password). */
export function isTokenShaped(text: string): boolean {
  return TOKEN_RE.test(text);
}

export class TokenStore {
  private readonly key: string;
  private readonly refreshMs: number;
  private readonly now: () => Date;
  private cache: { tokens: StoredToken[]; hashes: Buffer[]; at: number } | undefined;
  /** The tail of this store's queue of changes (create, revoke, prune run one at a time). */
  private changes: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly blobs: BlobStore,
    options: TokenStoreOptions = {},
  ) {
    this.key = options.key ?? TOKENS_KEY;
    this.refreshMs = options.refreshMs ?? 5000;
    this.now = options.now ?? (() => new Date());
  }

  private async load(signal?: AbortSignal): Promise<StoredToken[]> {
    return this.remember(this.parse(await this.blobs.get(this.key, signal)));
  }

  private parse(bytes: Buffer | undefined): StoredToken[] {
    let tokens: StoredToken[] = [];
    if (bytes !== undefined) {
      const corrupt = (why: string) =>
        new PackferryError(ErrorCode.InvalidObject, `${this.blobs.description}: ${this.key} is not a packferry tokens file: ${why}`);
      let doc: unknown;
      try {
        doc = JSON.parse(bytes.toString('utf8'));
      } catch {
        throw corrupt('not JSON');
      }
      const d = doc as { version?: unknown; tokens?: unknown };
      if (typeof d !== 'object' || d === null || d.version !== FORMAT_VERSION || !Array.isArray(d.tokens)) throw corrupt(`expected {"version": ${FORMAT_VERSION}, "tokens": [...]}`);
      tokens = d.tokens.map((t: unknown, i: number) => {
        const r = t as Partial<StoredToken> | null;
        if (
          typeof r !== 'object' || r === null ||
          typeof r.id !== 'string' || !ID_RE.test(r.id) ||
          typeof r.user !== 'string' ||
          typeof r.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(r.sha256) ||
          typeof r.created !== 'string' || Number.isNaN(Date.parse(r.created)) ||
          (r.expires !== undefined && (typeof r.expires !== 'string' || Number.isNaN(Date.parse(r.expires)))) ||
          typeof r.rights !== 'object' || r.rights === null
        ) {
          throw corrupt(`token ${i} is malformed`);
        }
        const rights = r.rights as Partial<Rights>;
        if ((rights.regions !== undefined && !Array.isArray(rights.regions)) || (rights.repos !== undefined && !Array.isArray(rights.repos))) throw corrupt(`token ${i} has malformed rights`);
        return { id: r.id, user: r.user, sha256: r.sha256, rights: makeRights(rights), created: r.created, ...(r.expires ? { expires: r.expires } : {}) };
      });
    }
    return tokens;
  }

  private remember(tokens: StoredToken[]): StoredToken[] {
    this.cache = { tokens, hashes: tokens.map((t) => Buffer.from(t.sha256, 'hex')), at: Date.now() };
    return tokens;
  }

  /**
   * Changes the tokens file: `edit` gets the tokens as they are and returns
   * the new list (undefined: no change) with its result. It may run more than
   * once, when another process changed the file meanwhile.
   */
  private async change<T>(edit: (tokens: StoredToken[]) => { tokens?: StoredToken[]; result: T }, signal?: AbortSignal): Promise<T> {
    let result: { value: T } | undefined;
    const updated = await updateDocument(
      this.blobs,
      this.key,
      (current) => {
        const out = edit(this.parse(current));
        result = { value: out.result };
        return out.tokens === undefined ? undefined : Buffer.from(`${JSON.stringify({ version: FORMAT_VERSION, tokens: out.tokens }, null, 1)}\n`);
      },
      { signal, contentType: 'application/json', secret: true, lockOwner: 'packferry token' },
    );
    this.remember(this.parse(updated.body));
    return result!.value;
  }

  private serialise<T>(change: () => Promise<T>): Promise<T> {
    const run = this.changes.then(change, change);
    this.changes = run.catch(() => undefined);
    return run;
  }

  /** Forgets the cached tokens: the next `verify` reads the store. */
  invalidate(): void {
    this.cache = undefined;
  }

  /** Makes a token; the secret is in the result and nowhere else. */
  async create(options: CreateTokenOptions, signal?: AbortSignal): Promise<{ token: string; info: TokenInfo }> {
    const user = checkName('user', options.user);
    const rights = makeRights(options.rights);
    const created = this.now();
    let expires = options.expires;
    if (options.expiresInDays !== undefined) {
      if (!Number.isFinite(options.expiresInDays) || options.expiresInDays <= 0) throw new PackferryError(ErrorCode.Usage, 'a token must expire a positive number of days from now');
      expires = new Date(created.getTime() + options.expiresInDays * 86_400_000);
    }
    const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
    const digest = sha256(token).toString('hex');
    return this.serialise(() =>
      this.change((tokens) => {
        let id: string;
        do id = randomBytes(6).toString('hex');
        while (tokens.some((t) => t.id === id));
        const stored: StoredToken = {
          id,
          user,
          sha256: digest,
          rights,
          created: created.toISOString(),
          ...(expires ? { expires: expires.toISOString() } : {}),
        };
        return { tokens: [...tokens, stored], result: { token, info: toInfo(stored) } };
      }, signal),
    );
  }

  /** Every token, oldest first (expired ones too, marked by their `expires`). */
  async list(signal?: AbortSignal): Promise<TokenInfo[]> {
    return (await this.load(signal)).map(toInfo);
  }

  /** Deletes a token by id; ERR_NOT_FOUND if there is none. */
  async revoke(id: string, signal?: AbortSignal): Promise<TokenInfo> {
    return this.serialise(() =>
      this.change((tokens) => {
        const found = tokens.find((t) => t.id === id);
        if (!found) throw new PackferryError(ErrorCode.NotFound, `no token with id ${JSON.stringify(id)}`, { hint: 'packferry token ls lists them' });
        return { tokens: tokens.filter((t) => t !== found), result: toInfo(found) };
      }, signal),
    );
  }

  /** Deletes every token past its expiry; returns how many. */
  async prune(signal?: AbortSignal): Promise<number> {
    return this.serialise(() =>
      this.change((tokens) => {
        const now = this.now().getTime();
        const keep = tokens.filter((t) => t.expires === undefined || Date.parse(t.expires) > now);
        return { tokens: keep.length === tokens.length ? undefined : keep, result: tokens.length - keep.length };
      }, signal),
    );
  }

  /**
   * Checks a presented token. The comparison is constant-time and runs over
   * every stored hash (no early exit), so timing tells nothing about which
   * tokens exist.
   */
  async verify(presented: string, signal?: AbortSignal): Promise<TokenCheck> {
    if (!isTokenShaped(presented)) return { ok: false, reason: 'malformed' };
    if (this.cache === undefined || Date.now() - this.cache.at >= this.refreshMs) await this.load(signal);
    const { tokens, hashes } = this.cache!;
    const digest = sha256(presented);
    let match = -1;
    for (let i = 0; i < hashes.length; i++) {
      if (timingSafeEqual(hashes[i], digest)) match = i;
    }
    if (match < 0) return { ok: false, reason: 'unknown' };
    const found = tokens[match];
    if (found.expires !== undefined && Date.parse(found.expires) <= this.now().getTime()) return { ok: false, reason: 'expired' };
    return { ok: true, info: toInfo(found) };
  }
}

function toInfo(t: StoredToken): TokenInfo {
  return { id: t.id, user: t.user, rights: t.rights, created: new Date(t.created), ...(t.expires ? { expires: new Date(t.expires) } : {}) };
}

// The store's storage contract: a flat namespace of immutable-or-replaced
// blobs ("keys" are '/'-separated paths under the repository's root), as S3
// offers it and as a directory can. Every backend implements exactly this,
// and one conformance suite (test/store/backend-conformance.ts) runs against
// each. Semantics every backend guarantees:
// - put is atomic: a reader sees the whole old value or the whole new one;
// - after put resolves, get/list/head see the new value (read-after-write);
// - delete is idempotent; get of a missing key is undefined, never an error;
// - list returns every key under a prefix, sorted, with sizes.
import { PackferryError, ErrorCode } from '../core/errors.js';

export interface BlobInfo {
  key: string;
  size: number;
  lastModified: Date;
}

export interface PutOptions {
  contentType?: string;
  /** The body's length when known (lets S3 pick single vs multipart upload). */
  size?: number;
  /** Readable by the owner only (secrets such as tokens): a directory backend writes the file 0600; S3 objects are private anyway. */
  secret?: boolean;
  signal?: AbortSignal;
}

export interface BlobStore {
  /** Where this is, for messages: "s3://bucket/prefix/" or a directory path. */
  readonly description: string;
  get(key: string, signal?: AbortSignal): Promise<Buffer | undefined>;
  /** Bytes [start, end) of a blob; throws ERR_NOT_FOUND if it is missing. */
  getRange(key: string, start: number, end: number, signal?: AbortSignal): Promise<Buffer>;
  /** The blob as a stream, or undefined if it is missing. */
  getStream(key: string, signal?: AbortSignal): Promise<AsyncIterable<Uint8Array> | undefined>;
  head(key: string, signal?: AbortSignal): Promise<BlobInfo | undefined>;
  put(key: string, body: Uint8Array | AsyncIterable<Uint8Array>, options?: PutOptions): Promise<void>;
  delete(key: string, signal?: AbortSignal): Promise<void>;
  list(prefix: string, signal?: AbortSignal): Promise<BlobInfo[]>;
  /** Releases connections and file handles. */
  close(): Promise<void>;
}

/**
 * Keys are relative, '/'-separated, without '.', '..' or empty segments, and
 * no segment ends in ".lock" (a directory store keeps `<file>.lock` for its
 * lock files, as Git does for refs): checked before they reach a backend.
 */
export function checkKey(key: string): string {
  if (key === '' || key.startsWith('/') || key.endsWith('/') || key.includes('\\') || key.includes('\0')) {
    throw new PackferryError(ErrorCode.InvalidUrl, `bad store key ${JSON.stringify(key)}`);
  }
  for (const part of key.split('/')) {
    if (part === '' || part === '.' || part === '..') throw new PackferryError(ErrorCode.InvalidUrl, `bad store key ${JSON.stringify(key)}`);
    if (part.endsWith('.lock')) throw new PackferryError(ErrorCode.InvalidUrl, `bad store key ${JSON.stringify(key)}: a name ending in ".lock" is kept for lock files`);
  }
  return key;
}

// ---------------------------------------------------------------------------
// Optional abilities, detected at run time (go-git's optional storer
// interfaces): a caller asks `localFiles(store)` or `conditionalWrites(store)`
// and takes another path when the answer is undefined; nothing outside the
// backends tests which class a store is.

/** A backend whose blobs are files on this machine (the directory backend). */
export interface LocalFiles {
  /** The directory that holds the keys. */
  readonly root: string;
  /** The file of `key` (whether or not it exists). */
  pathOf(key: string): string;
  /** Creates an empty directory under the root (Git wants refs/ to exist in a repository; blobs alone cannot make one). */
  ensureDirectory(key: string): Promise<void>;
}

/** The store's files on this machine, or undefined (an object store). */
export function localFiles(store: BlobStore): LocalFiles | undefined {
  const s = store as BlobStore & Partial<LocalFiles>;
  return typeof s.root === 'string' && typeof s.pathOf === 'function' && typeof s.ensureDirectory === 'function' ? (s as BlobStore & LocalFiles) : undefined;
}

/** A blob with the version a conditional write names (an S3 ETag; for a directory, a hash of the content). */
export interface VersionedBlob {
  body: Buffer;
  version: string;
}

/**
 * Compare-and-swap of single blobs: what a commit needs to replace a
 * manifest (or any small document) without a lock held across the work.
 */
export interface ConditionalWrites {
  /** The blob and its version; undefined when there is none. */
  getVersioned(key: string, signal?: AbortSignal): Promise<VersionedBlob | undefined>;
  /**
   * Puts `body` at `key` only if the blob there is still at version
   * `expected` (undefined: only if there is no blob). True when written;
   * false, with nothing changed, when another write came first. Atomic as
   * every put is.
   */
  putIfVersion(key: string, body: Uint8Array, expected: string | undefined, options?: PutOptions): Promise<boolean>;
}

/**
 * The store's conditional writes, when it has them and they hold: an
 * S3-compatible service may ignore the conditional headers, which is found
 * out once (a probe) and remembered. Undefined otherwise: the caller falls
 * back to the writer lock (lock.ts). With `probe: false`, only what is known
 * without asking the service (a reader that would merely like the version
 * of what it reads does not pay for the probe).
 */
export async function conditionalWrites(store: BlobStore, signal?: AbortSignal, options: { probe?: boolean } = {}): Promise<ConditionalWrites | undefined> {
  const s = store as BlobStore & { conditionalWrites?: (signal?: AbortSignal, options?: { probe?: boolean }) => Promise<ConditionalWrites | undefined> };
  return typeof s.conditionalWrites === 'function' ? s.conditionalWrites(signal, options) : undefined;
}

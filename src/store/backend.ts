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

/** Keys are relative, '/'-separated, without '.', '..' or empty segments: checked before they reach a backend. */
export function checkKey(key: string): string {
  if (key === '' || key.startsWith('/') || key.endsWith('/') || key.includes('\\') || key.includes('\0')) {
    throw new PackferryError(ErrorCode.InvalidUrl, `bad store key ${JSON.stringify(key)}`);
  }
  for (const part of key.split('/')) {
    if (part === '' || part === '.' || part === '..') throw new PackferryError(ErrorCode.InvalidUrl, `bad store key ${JSON.stringify(key)}`);
  }
  return key;
}

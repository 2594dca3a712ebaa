// Git LFS in a store: the pointer format, and the objects beside the
// repository at lfs/objects/<aa>/<bb>/<sha256> (layout.ts lfsKey, the layout
// of Git LFS's own local store, so `git lfs` can read a directory store as a
// file:// LFS remote).
//
// Pointers follow the Git LFS specification (git-lfs docs/spec.md, "The
// Pointer", spec v1):
//
//   version https://git-lfs.github.com/spec/v1
//   ext-0-<name> sha256:<64 hex>          (optional, "Pointer Extensions")
//   oid sha256:<64 hex>
//   size <bytes>
//
// one `key value` per line with a single space, keys sorted (version first),
// each line ended by a newline, the whole pointer smaller than 1024 bytes
// (Git LFS's blobSizeCutoff: larger blobs are never read as pointers; the
// pack indexer flags smaller blobs, tables.isSmall). The parser is strict
// where the reference client (lfs/pointer.go) is lenient, because what it
// accepts decides what a mirror downloads:
//   - only the v1 version string (not the pre-release aliases), lowercase hex
//     object ids, sizes in canonical decimal (no sign, no leading zeros);
//   - unknown keys, blank lines, spaces at either end and a missing final
//     newline are refused;
//   - CRLF line endings are accepted when every line has them (the reference
//     client's line scanner drops the CR, so such pointers do smudge), and
//     reported as `crlf`.
// parseLfsPointer throws ERR_LFS_POINTER; tryParseLfsPointer returns undefined.
//
// Storing an object: the content is verified while it streams into the
// backend — its SHA-256 and its length against the pointer's oid and size —
// and the stream handed to BlobStore.put holds back its last chunk until both
// check out. A mismatch makes the body throw instead of ending, so the put
// fails, and put is atomic (backend.ts): the directory backend removes its
// temporary file, the S3 backend never sends the single PUT or aborts the
// multipart upload. Nothing is ever stored under an object's key that does
// not hash to it; no temporary key, no copy (S3 has no rename), no buffering
// beyond the backend's own part buffer.
import { createHash } from 'node:crypto';
import { PackferryError, ErrorCode } from '../core/errors.js';
import type { BlobInfo, BlobStore } from './backend.js';
import { KEYS, lfsKey } from './layout.js';

/** The version line's value (spec v1; compared as a plain string, as the spec requires). */
export const LFS_SPEC_V1 = 'https://git-lfs.github.com/spec/v1';
/** A pointer is smaller than this many bytes. */
export const MAX_POINTER_SIZE = 1024;

const VERSION_PREFIX = Buffer.from(`version ${LFS_SPEC_V1}`, 'latin1');
const OID_RE = /^[0-9a-f]{64}$/;
const OID_LINE = /^oid sha256:([0-9a-f]{64})$/;
const SIZE_LINE = /^size (0|[1-9][0-9]{0,15})$/;
const EXT_LINE = /^ext-([0-9])-([A-Za-z0-9_]+) sha256:([0-9a-f]{64})$/;

/** A pointer extension (spec "Pointer Extensions"): the object before that extension's clean filter ran. */
export interface LfsExtension {
  name: string;
  priority: number;
  oid: string;
}

export interface LfsPointer {
  /** SHA-256 of the content, lowercase hex. */
  oid: string;
  size: number;
  extensions: LfsExtension[];
  /** The pointer's lines end in CRLF (not the canonical form, but the reference client reads it). */
  crlf: boolean;
}

/** Is `oid` a Git LFS object id (64 lowercase hex digits)? */
export function isLfsOid(oid: string): boolean {
  return OID_RE.test(oid);
}

function notAPointer(why: string, details: Record<string, unknown> = {}): PackferryError {
  return new PackferryError(ErrorCode.LfsPointer, `not a Git LFS pointer: ${why}`, { details });
}

/** Parses a Git LFS pointer (spec v1); throws ERR_LFS_POINTER if `data` is not one. */
export function parseLfsPointer(data: Uint8Array): LfsPointer {
  if (data.length >= MAX_POINTER_SIZE) throw notAPointer(`${data.length} bytes (a pointer is smaller than ${MAX_POINTER_SIZE})`, { size: data.length });
  for (let i = 0; i < data.length; i++) {
    const c = data[i];
    if ((c < 0x20 && c !== 0x0a && c !== 0x0d) || c > 0x7e) throw notAPointer(`byte 0x${c.toString(16).padStart(2, '0')} at offset ${i}`, { offset: i });
  }
  const text = Buffer.from(data.buffer, data.byteOffset, data.length).toString('latin1');
  if (!text.endsWith('\n')) throw notAPointer('the last line has no newline');
  let lines = text.slice(0, -1).split('\n');
  const crlf = lines[0].endsWith('\r');
  if (crlf) {
    if (!lines.every((l) => l.endsWith('\r'))) throw notAPointer('mixed line endings');
    lines = lines.map((l) => l.slice(0, -1));
  }
  if (lines.some((l) => l.includes('\r'))) throw notAPointer('a carriage return inside a line');
  if (lines[0] !== `version ${LFS_SPEC_V1}`) {
    throw notAPointer(lines[0].startsWith('version ') ? `unknown version ${JSON.stringify(lines[0].slice(8))}` : 'the first line is not "version ..."');
  }
  let k = 1;
  const extensions: LfsExtension[] = [];
  for (; k < lines.length && lines[k].startsWith('ext-'); k++) {
    const m = EXT_LINE.exec(lines[k]);
    if (m === null) throw notAPointer(`bad extension line ${JSON.stringify(lines[k])}`, { line: k + 1 });
    const priority = Number(m[1]);
    if (extensions.length > 0 && priority <= extensions[extensions.length - 1].priority) {
      throw notAPointer('extensions out of order (their priorities must increase)', { line: k + 1 });
    }
    extensions.push({ name: m[2], priority, oid: m[3] });
  }
  const oidLine = lines[k] ?? '';
  const oid = OID_LINE.exec(oidLine);
  if (oid === null) {
    throw notAPointer(oidLine.startsWith('oid ') ? `bad oid ${JSON.stringify(oidLine.slice(4))} (expected sha256:<64 lowercase hex digits>)` : `expected "oid" on line ${k + 1}`, {
      line: k + 1,
    });
  }
  const sizeLine = lines[k + 1] ?? '';
  const size = SIZE_LINE.exec(sizeLine);
  if (size === null) {
    throw notAPointer(sizeLine.startsWith('size ') ? `bad size ${JSON.stringify(sizeLine.slice(5))}` : `expected "size" on line ${k + 2}`, { line: k + 2 });
  }
  const n = Number(size[1]);
  if (!Number.isSafeInteger(n)) throw notAPointer(`size ${size[1]} is too large`);
  if (k + 2 !== lines.length) throw notAPointer(`unexpected line ${k + 3} ${JSON.stringify(lines[k + 2].slice(0, 40))}`, { line: k + 3 });
  return { oid: oid[1], size: n, extensions, crlf };
}

/** The pointer in `data`, or undefined when it is not one (cheap for the common case: not starting with the version line). */
export function tryParseLfsPointer(data: Uint8Array): LfsPointer | undefined {
  if (data.length >= MAX_POINTER_SIZE || data.length < VERSION_PREFIX.length) return undefined;
  for (let i = 0; i < VERSION_PREFIX.length; i++) if (data[i] !== VERSION_PREFIX[i]) return undefined;
  try {
    return parseLfsPointer(data);
  } catch (err) {
    if (err instanceof PackferryError && err.code === ErrorCode.LfsPointer) return undefined;
    throw err;
  }
}

/** The canonical text of a pointer (what `git lfs pointer` writes). */
export function formatLfsPointer(pointer: { oid: string; size: number; extensions?: LfsExtension[] }): string {
  const ext = (pointer.extensions ?? []).map((e) => `ext-${e.priority}-${e.name} sha256:${e.oid}\n`).join('');
  return `version ${LFS_SPEC_V1}\n${ext}oid sha256:${pointer.oid}\nsize ${pointer.size}\n`;
}

function checkOid(oid: string): void {
  if (!isLfsOid(oid)) throw new PackferryError(ErrorCode.Usage, `not a Git LFS object id: ${JSON.stringify(oid)}`);
}

function sizeMismatch(oid: string, expected: number, actual: number, atLeast: boolean): PackferryError {
  return new PackferryError(ErrorCode.HashMismatch, `Git LFS object ${oid} is ${atLeast ? 'more than ' : ''}${actual} bytes, but its pointer says ${expected}`, {
    details: { oid, expectedSize: expected, actualSize: actual, check: 'size' },
    hint: 'the LFS server sent the wrong content for this object; nothing was stored',
  });
}

/**
 * Passes `body` through while checking it is exactly `size` bytes hashing to
 * `oid`. The last chunk is held back until both checks pass, so a consumer
 * never sees the whole body of content that does not match: on a mismatch
 * the stream throws ERR_HASH_MISMATCH instead of ending.
 */
export async function* verifyLfsContent(body: AsyncIterable<Uint8Array>, oid: string, size: number): AsyncGenerator<Uint8Array> {
  const hash = createHash('sha256');
  let total = 0;
  let held: Uint8Array | undefined;
  for await (const chunk of body) {
    if (chunk.length === 0) continue;
    total += chunk.length;
    if (total > size) throw sizeMismatch(oid, size, size, true);
    hash.update(chunk);
    if (held !== undefined) yield held;
    held = chunk;
  }
  if (total !== size) throw sizeMismatch(oid, size, total, false);
  const actual = hash.digest('hex');
  if (actual !== oid) {
    throw new PackferryError(ErrorCode.HashMismatch, `Git LFS object ${oid} has the SHA-256 ${actual}: the content does not match its pointer`, {
      details: { oid, actualOid: actual, size, check: 'sha256' },
      hint: 'the LFS server sent the wrong content for this object; nothing was stored',
    });
  }
  if (held !== undefined) yield held;
}

export interface LfsPutOptions {
  signal?: AbortSignal;
}

/** Git LFS objects in a store, by SHA-256, at lfs/objects/<aa>/<bb>/<oid>. */
export class LfsObjectStore {
  constructor(readonly blobs: BlobStore) {}

  /** The stored object's size and date, or undefined when it is not stored. */
  stat(oid: string, signal?: AbortSignal): Promise<BlobInfo | undefined> {
    checkOid(oid);
    return this.blobs.head(lfsKey(oid), signal);
  }

  /** Is the object stored (with this size, when given: a stored object of another size is as good as missing)? */
  async has(oid: string, size?: number, signal?: AbortSignal): Promise<boolean> {
    const info = await this.stat(oid, signal);
    return info !== undefined && (size === undefined || info.size === size);
  }

  /** Every stored object's size by oid, from one listing (cheaper than a HEAD each when there are many to check). */
  async list(signal?: AbortSignal): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const info of await this.blobs.list(KEYS.lfs, signal)) {
      const oid = info.key.slice(info.key.lastIndexOf('/') + 1);
      if (isLfsOid(oid) && info.key === lfsKey(oid)) out.set(oid, info.size);
    }
    return out;
  }

  /**
   * Stores an object, verifying its SHA-256 and size as it streams (see the
   * header): a mismatch rejects with ERR_HASH_MISMATCH and stores nothing.
   */
  async put(oid: string, body: Uint8Array | AsyncIterable<Uint8Array>, size: number, options: LfsPutOptions = {}): Promise<void> {
    checkOid(oid);
    if (!Number.isSafeInteger(size) || size < 0) throw new PackferryError(ErrorCode.Usage, `bad Git LFS object size ${size}`);
    const source: AsyncIterable<Uint8Array> =
      body instanceof Uint8Array
        ? (async function* one() {
            yield body;
          })()
        : body;
    const checked = { failure: undefined as PackferryError | undefined };
    const verified = (async function* guard() {
      try {
        yield* verifyLfsContent(source, oid, size);
      } catch (err) {
        if (err instanceof PackferryError && err.code === ErrorCode.HashMismatch) checked.failure = err;
        throw err;
      }
    })();
    try {
      await this.blobs.put(lfsKey(oid), verified, { size, contentType: 'application/octet-stream', signal: options.signal });
    } catch (err) {
      // The backend may wrap what the body threw; the mismatch is what matters.
      throw checked.failure ?? err;
    }
  }

  /** The object's content as a stream, or undefined when it is not stored. */
  get(oid: string, signal?: AbortSignal): Promise<AsyncIterable<Uint8Array> | undefined> {
    checkOid(oid);
    return this.blobs.getStream(lfsKey(oid), signal);
  }
}

// The Git object model: the four object types, the "<type> <size>\0" header
// that object ids are hashed over, and one entry point to read, write and
// check any object.
//
// References (Git's documentation and source):
// - gitformat-pack "Object types"; object.h `enum object_type`
// - object-file.c `write_object_file_prepare()` / `format_object_header()`
//   (the id is the hash of header + data) and `parse_loose_header()`
//   (canonical decimal size, no leading zeros, NUL-terminated)
// - per type: object-tree.ts, object-commit.ts, object-tag.ts
// - validation: fsck.c, with Git's message ids (object-problem.ts)
//
// Parsers are pure functions over bytes and never throw anything but a
// PackferryError for bad input. Parsed objects may share memory with the
// input (names, ids, identities and messages are views); serialization of a
// parsed object gives back the same bytes, for every object Git writes and
// for anything else they accept (ids written in uppercase hex are the one
// exception: they are read as lowercase).
import { PackferryError, ErrorCode } from './errors.js';
import { SHA1, type HashAlgorithm } from './hash.js';
import { DEFAULT_LIMITS, type Limits } from './limits.js';
import { parseCommit, serializeCommit, validateCommit, type Commit } from './object-commit.js';
import { hasErrors, objectProblemsError, type ObjectProblem, type ValidateOptions } from './object-problem.js';
import { parseTag, serializeTag, validateTag, type Tag } from './object-tag.js';
import { parseTree, serializeTree, validateTree, type Tree } from './object-tree.js';
import { OBJECT_TYPES, isObjectType, type ObjectType } from './object-type.js';
import type { ObjectId } from './oid.js';

export * from './object-type.js';
export { FSCK_DEFAULT_SEVERITY, hasErrors, type FsckMsgId, type ObjectProblem, type ProblemSeverity, type ValidateOptions } from './object-problem.js';
export { findHeader, type HeaderField } from './object-headers.js';
export { createIdentity, formatTimezone, parseIdentity, type Identity, type IdentityFields } from './object-ident.js';
export * from './object-tree.js';
export * from './object-commit.js';
export * from './object-tag.js';

export interface Blob {
  readonly type: 'blob';
  readonly data: Buffer;
}

/** Any parsed Git object, discriminated by `type`. */
export type GitObject = Blob | Tree | Commit | Tag;

function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.length);
}

// ---- the object header ----------------------------------------------------

/** Bytes that always suffice to decode a header (object-file.c MAX_HEADER_LEN; sizes above 2^53 fail before it). */
export const MAX_OBJECT_HEADER_LENGTH = 32;

function checkSize(size: number): void {
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new PackferryError(ErrorCode.Usage, `object size must be a non-negative integer: ${String(size)}`);
  }
}

/** The header that precedes an object's data when it is hashed or stored loose: "<type> <size>\0". */
export function encodeObjectHeader(type: ObjectType, size: number): Buffer {
  if (!isObjectType(type)) throw new PackferryError(ErrorCode.InvalidObjectType, `unknown object type: ${JSON.stringify(type)}`);
  checkSize(size);
  return Buffer.from(`${type} ${size}\0`, 'latin1');
}

/** Result of `decodeObjectHeader`: a header, or a request for more bytes. */
export type ObjectHeaderResult =
  | { readonly kind: 'complete'; readonly type: ObjectType; readonly size: number; readonly length: number }
  | { readonly kind: 'incomplete' };

function badHeader(message: string, offset: number): PackferryError {
  return new PackferryError(ErrorCode.InvalidObject, `invalid object header: ${message}`, { details: { offset } });
}

/**
 * Decodes "<type> <size>\0" at the start of `data` (an inflated loose object,
 * possibly only its first bytes). Returns `incomplete` while every byte so
 * far could begin a valid header; throws ERR_INVALID_OBJECT_TYPE for an
 * unknown type, ERR_INVALID_OBJECT for any other malformation, and
 * ERR_LIMIT_EXCEEDED for a size above `limits.maxObjectSize`.
 */
export function decodeObjectHeader(data: Uint8Array, limits: Pick<Limits, 'maxObjectSize'> = DEFAULT_LIMITS): ObjectHeaderResult {
  const len = data.length;
  // The type: one of the four names (at most 6 bytes), then a space.
  let p = 0;
  while (p < len && p < 6 && data[p] !== 0x20) p++;
  const name = Buffer.from(data.buffer, data.byteOffset, p).toString('latin1');
  if (p === len && OBJECT_TYPES.some((t) => t.startsWith(name))) return { kind: 'incomplete' };
  if (p >= len || data[p] !== 0x20 || !isObjectType(name)) {
    throw new PackferryError(ErrorCode.InvalidObjectType, `invalid object header: unknown object type ${JSON.stringify(name)}`, {
      details: { offset: 0 },
    });
  }
  const type: ObjectType = name;
  p++;
  // The size: canonical decimal (no leading zeros), then NUL.
  const sizeStart = p;
  let size = 0;
  while (p < len && data[p] >= 0x30 && data[p] <= 0x39) {
    if (p > sizeStart && data[sizeStart] === 0x30) throw badHeader('size has leading zeros', sizeStart);
    size = size * 10 + (data[p] - 0x30);
    if (size > Number.MAX_SAFE_INTEGER) {
      throw new PackferryError(ErrorCode.LimitExceeded, 'object size does not fit in 2^53', { details: { offset: sizeStart } });
    }
    p++;
  }
  if (p === len) {
    if (p - sizeStart > 16) throw new PackferryError(ErrorCode.LimitExceeded, 'object size does not fit in 2^53', { details: { offset: sizeStart } });
    return { kind: 'incomplete' };
  }
  if (p === sizeStart) throw badHeader('missing size', sizeStart);
  if (data[p] !== 0) throw badHeader('size not followed by NUL', p);
  if (size > limits.maxObjectSize) {
    throw new PackferryError(ErrorCode.LimitExceeded, `object of ${size} bytes exceeds maxObjectSize (${limits.maxObjectSize})`, {
      details: { size, limit: limits.maxObjectSize },
    });
  }
  return { kind: 'complete', type, size, length: p + 1 };
}

// ---- ids ------------------------------------------------------------------

/** The raw id of an object: the hash of its header and data. */
export function hashObjectRaw(type: ObjectType, data: Uint8Array, algo: HashAlgorithm = SHA1): Buffer {
  const hash = algo.create();
  hash.update(encodeObjectHeader(type, data.length));
  hash.update(data);
  return hash.digest();
}

/** The id of an object, as `git hash-object -t <type>` computes it. */
export function hashObject(type: ObjectType, data: Uint8Array, algo: HashAlgorithm = SHA1): ObjectId {
  const hash = algo.create();
  hash.update(encodeObjectHeader(type, data.length));
  hash.update(data);
  return hash.digest('hex');
}

// ---- any object -----------------------------------------------------------

export interface ParseOptions extends ValidateOptions {
  algo?: HashAlgorithm;
}

/** A parsed object and what validation found in it. */
export interface ParsedObject {
  readonly object: GitObject;
  /** Problems found by `validateObject`; errors included unless `strict` made them throw. */
  readonly problems: readonly ObjectProblem[];
}

export function parseBlob(data: Uint8Array): Blob {
  return { type: 'blob', data: asBuffer(data) };
}

/**
 * Reads an object of a known type without validating it beyond what is
 * needed to read it (the fast path: graph walks, packing).
 */
export function parseObjectData(type: ObjectType, data: Uint8Array, algo: HashAlgorithm = SHA1): GitObject {
  switch (type) {
    case 'blob':
      return parseBlob(data);
    case 'tree':
      return parseTree(data, algo);
    case 'commit':
      return parseCommit(data, algo);
    case 'tag':
      return parseTag(data, algo);
    default:
      throw new PackferryError(ErrorCode.InvalidObjectType, `unknown object type: ${JSON.stringify(type)}`);
  }
}

/**
 * Checks an object as `git fsck` checks it (fsck.c `fsck_object()`, without
 * the checks that need other objects, such as .gitmodules contents). Never
 * throws for bad input: bytes that cannot be read are reported as problems.
 */
export function validateObject(type: ObjectType, data: Uint8Array, options: ParseOptions = {}): ObjectProblem[] {
  switch (type) {
    case 'blob':
      return [];
    case 'tree':
      return validateTree(data, options);
    case 'commit':
      return validateCommit(data, options);
    case 'tag':
      return validateTag(data, options);
    default:
      throw new PackferryError(ErrorCode.InvalidObjectType, `unknown object type: ${JSON.stringify(type)}`);
  }
}

/**
 * Reads and checks an object. Leniently by default: the object is returned
 * with the problems found, as long as it can be read at all. With `strict`,
 * any problem graded as an error (warnings are errors under strict, as in
 * `git fsck --strict`) throws ERR_INVALID_OBJECT with `details.problems`.
 */
export function parseObject(type: ObjectType, data: Uint8Array, options: ParseOptions = {}): ParsedObject {
  const problems = validateObject(type, data, options);
  if (options.strict === true && hasErrors(problems)) throw objectProblemsError(type, problems);
  const object = parseObjectData(type, data, options.algo);
  return { object, problems };
}

/** Writes an object's data (without the header). */
export function serializeObject(object: GitObject, algo: HashAlgorithm = SHA1): Buffer {
  switch (object.type) {
    case 'blob':
      return object.data;
    case 'tree':
      return serializeTree(object, algo);
    case 'commit':
      return serializeCommit(object, algo);
    case 'tag':
      return serializeTag(object, algo);
    default:
      throw new PackferryError(ErrorCode.InvalidObjectType, `unknown object type: ${JSON.stringify((object as { type: unknown }).type)}`);
  }
}

/** The id of an object: serializes it and hashes the result. */
export function objectIdOf(object: GitObject, algo: HashAlgorithm = SHA1): ObjectId {
  return hashObject(object.type, serializeObject(object, algo), algo);
}

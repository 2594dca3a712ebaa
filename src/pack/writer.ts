// Writing packs (gitformat-pack): the header, entries, and the trailing
// checksum, produced as a stream of chunks so a pack of any size flows out
// with backpressure and is never held whole. Entries are whole objects
// (compressed here), deltas (given uncompressed), or raw entries reused
// byte-for-byte from another pack. A delta whose base was already written
// becomes an OFS_DELTA (with `ofsDelta`), otherwise a REF_DELTA.
import { deflateSync } from 'node:zlib';
import { PackferryError, ErrorCode } from '../core/errors.js';
import { SHA1, type HashAlgorithm } from '../core/hash.js';
import type { ObjectId } from '../core/oid.js';
import { hashObject, objectTypeFromPackType } from '../core/object.js';
import { encodeEntryHeader, encodePackHeader, PackObjectType } from './format.js';

export type PackInput =
  /** A whole object; its id is computed unless given. */
  | { kind: 'object'; type: number; data: Uint8Array; oid?: ObjectId }
  /** A delta (uncompressed) against `base`, producing the object `oid`. */
  | { kind: 'delta'; base: ObjectId; delta: Uint8Array; oid: ObjectId }
  /**
   * An entry reused as stored in another pack: `compressed` is its zlib
   * stream, whole or in pieces (a large entry is never held whole). `type` is
   * 1-4 for a whole object (with `size` its size) or a delta type (with
   * `size` the delta's size and `base` its base's id).
   */
  | { kind: 'raw'; type: number; size: number; compressed: Uint8Array | Iterable<Uint8Array>; oid: ObjectId; base?: ObjectId };

export interface WritePackOptions {
  hashAlgorithm?: HashAlgorithm;
  /** zlib level for objects compressed here (Git's pack.compression; default -1, zlib's default). */
  compressionLevel?: number;
  /** Write deltas whose base precedes them as OFS_DELTA (the `ofs-delta` capability). Default true. */
  ofsDelta?: boolean;
  /** Called after each entry with the number written. */
  onEntry?: (written: number) => void;
}

export interface WrittenPack {
  /** The trailing checksum, known once the stream has been consumed to the end. */
  checksum?: Buffer;
}

/**
 * Yields the bytes of a pack holding exactly `count` entries from `entries`.
 * Throws ERR_PACK_OBJECT_COUNT if `entries` yields another number. After
 * the last chunk, `result.checksum` holds the pack's checksum.
 */
export async function* writePack(
  count: number,
  entries: AsyncIterable<PackInput> | Iterable<PackInput>,
  options: WritePackOptions = {},
  result: WrittenPack = {},
): AsyncGenerator<Buffer, void, undefined> {
  const algo = options.hashAlgorithm ?? SHA1;
  const level = options.compressionLevel ?? -1;
  const useOfs = options.ofsDelta ?? true;
  const hasher = algo.create();
  const offsets = new Map<ObjectId, number>();
  let offset = 0;
  let written = 0;
  const emit = (chunk: Buffer): Buffer => {
    hasher.update(chunk);
    offset += chunk.length;
    return chunk;
  };
  // Small entries are gathered into larger chunks: a consumer writing each
  // to a pipe or socket pays per write (a restore of 100k objects spent more
  // time in writes than in everything else).
  const batch = new Batcher();
  yield emit(encodePackHeader(count));
  for await (const input of entries) {
    if (written === count) {
      throw new PackferryError(ErrorCode.PackObjectCount, `more than the ${count} declared objects were given to the pack writer`);
    }
    const entryOffset = offset;
    let oid: ObjectId;
    let head: Buffer;
    let body: Uint8Array | Iterable<Uint8Array>;
    switch (input.kind) {
      case 'object': {
        if (input.type < 1 || input.type > 4) throw new PackferryError(ErrorCode.InvalidObjectType, `not an object type: ${input.type}`);
        oid = input.oid ?? hashObject(objectTypeFromPackType(input.type), input.data, algo);
        head = encodeEntryHeader(input.type, input.data.length);
        body = deflateSync(input.data, { level });
        break;
      }
      case 'delta': {
        oid = input.oid;
        head = deltaHeader(input.base, input.delta.length, entryOffset, offsets, useOfs, algo);
        body = deflateSync(input.delta, { level });
        break;
      }
      case 'raw': {
        oid = input.oid;
        if (input.type === PackObjectType.OfsDelta || input.type === PackObjectType.RefDelta) {
          if (input.base === undefined) throw new PackferryError(ErrorCode.Usage, `raw delta entry for ${oid} needs its base id`);
          head = deltaHeader(input.base, input.size, entryOffset, offsets, useOfs, algo);
        } else if (input.type >= 1 && input.type <= 4) {
          head = encodeEntryHeader(input.type, input.size);
        } else {
          throw new PackferryError(ErrorCode.InvalidObjectType, `not a pack entry type: ${input.type}`);
        }
        body = input.compressed;
        break;
      }
    }
    if (useOfs) offsets.set(oid, entryOffset);
    for (const out of batch.add(emit(head))) yield out;
    for (const piece of body instanceof Uint8Array ? [body] : body) {
      for (const out of batch.add(emit(Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength)))) yield out;
    }
    written++;
    options.onEntry?.(written);
  }
  for (const out of batch.flush()) yield out;
  if (written !== count) {
    throw new PackferryError(ErrorCode.PackObjectCount, `the pack writer was given ${written} objects, not the ${count} declared`);
  }
  const checksum = hasher.digest();
  result.checksum = checksum;
  yield checksum;
}

/** Gathers small buffers into chunks of about BATCH bytes; large ones pass through (after what is pending). */
const BATCH = 256 * 1024;

class Batcher {
  private parts: Buffer[] = [];
  private size = 0;

  *add(chunk: Buffer): Generator<Buffer> {
    if (chunk.length >= BATCH) {
      yield* this.flush();
      yield chunk;
      return;
    }
    this.parts.push(chunk);
    this.size += chunk.length;
    if (this.size >= BATCH) yield* this.flush();
  }

  *flush(): Generator<Buffer> {
    if (this.size === 0) return;
    const out = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.size);
    this.parts = [];
    this.size = 0;
    yield out;
  }
}

function deltaHeader(
  base: ObjectId,
  deltaSize: number,
  entryOffset: number,
  offsets: Map<ObjectId, number>,
  useOfs: boolean,
  algo: HashAlgorithm,
): Buffer {
  const baseOffset = useOfs ? offsets.get(base) : undefined;
  if (baseOffset !== undefined) return encodeEntryHeader(PackObjectType.OfsDelta, deltaSize, entryOffset - baseOffset);
  const id = Buffer.from(base, 'hex');
  if (id.length !== algo.rawLength) throw new PackferryError(ErrorCode.InvalidObjectId, `invalid base id ${JSON.stringify(base)}`);
  return encodeEntryHeader(PackObjectType.RefDelta, deltaSize, 0, id);
}

/** Collects a pack stream into one buffer (for tests and small packs). */
export async function collectPack(chunks: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of chunks) parts.push(c);
  return Buffer.concat(parts);
}

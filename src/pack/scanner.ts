// Streaming pack parser, pass one of indexing (gitformat-pack, "pack-*.pack
// files have the following format"; Git's builtin/index-pack.c
// parse_pack_objects). Bytes are pushed in chunks of any size; each entry's
// header is decoded, its zlib stream inflated incrementally to find where it
// ends, its CRC-32 computed over the raw bytes, and whole objects hashed to
// their ids. The trailing checksum is verified. No I/O here: the caller feeds
// bytes from a file, a socket or a test.
import { crc32 } from 'node:zlib';
import { hash as oneShotHash, type Hash } from 'node:crypto';
import { PackferryError, ErrorCode } from '../core/errors.js';
import { SHA1, type HashAlgorithm } from '../core/hash.js';
import { withLimits, type Limits } from '../core/limits.js';
import { objectTypeFromPackType } from '../core/object.js';
import { createInflater, type Inflater } from './inflate.js';
import {
  PACK_HEADER_SIZE,
  PackObjectType,
  isDeltaType,
  parseEntryHeader,
  parsePackHeader,
  type PackHeader,
} from './format.js';

/** One pack entry as pass one sees it. Views (`baseId`, `oid`, `data`) are valid only during the callback. */
export interface ScannedEntry {
  /** Position of the entry in the pack (0-based). */
  index: number;
  /** Pack offset of the entry's header. */
  offset: number;
  /** Pack type: 1-4 for whole objects, 6 OFS_DELTA, 7 REF_DELTA. */
  type: number;
  /** Inflated size of the entry's data (for a delta: of the delta). */
  size: number;
  headerLength: number;
  /** Header plus compressed data: the entry's whole length in the pack. */
  packedLength: number;
  /** CRC-32 of the entry's raw bytes, as stored in pack index v2. */
  crc32: number;
  /** OFS_DELTA: the base entry's pack offset; otherwise -1. */
  baseOffset: number;
  /** REF_DELTA: the base object's raw id. */
  baseId: Uint8Array | undefined;
  /** Whole objects, when `hashObjects` is set: the raw object id. */
  oid: Uint8Array | undefined;
  /** The inflated data, when the entry is no larger than `retainDataUpTo` (or a whole object hashed in memory, with `passObjectData`). */
  data: Uint8Array | undefined;
}

export interface PackTrailer {
  header: PackHeader;
  /** The pack's trailing checksum (verified). */
  checksum: Buffer;
  /** Length of the whole pack including the trailer. */
  packLength: number;
}

export interface PackScannerOptions {
  hashAlgorithm?: HashAlgorithm;
  /** Compute the ids of whole (non-delta) objects. */
  hashObjects?: boolean;
  /** Pass the inflated data of entries up to this many bytes to `onEntry` (default: none). */
  retainDataUpTo?: number;
  /** With `hashObjects`: also pass the data of whole objects hashed in memory (up to `streamThreshold`), valid only during `onEntry`. */
  passObjectData?: boolean;
  /** Objects larger than this are hashed while they stream instead of being held whole (default 8 MiB). */
  streamThreshold?: number;
  limits?: Partial<Limits>;
  onHeader?: (header: PackHeader) => void;
  onEntry: (entry: ScannedEntry) => void;
}

const enum State {
  Header,
  EntryHeader,
  EntryData,
  Trailer,
  Done,
  /** An entry failed where the input might end in a trailer; see holdFailure. */
  Failed,
}

/** Room kept in front of buffered object data for the "<type> <size>\0" header, so hashing needs no copy. */
const HEADER_ROOM = 32;
const STREAM_CHUNK = 256 * 1024;
/** Longest entry header: 10-byte size varint, then a 10-byte offset or a 32-byte id. */
const MAX_ENTRY_HEADER = 48;

export class PackScanner {
  private readonly algo: HashAlgorithm;
  private readonly hashObjects: boolean;
  private readonly retainDataUpTo: number;
  private readonly passObjectData: boolean;
  private readonly streamThreshold: number;
  private readonly limits: Limits;
  private readonly onEntry: (entry: ScannedEntry) => void;
  private readonly onHeader: ((header: PackHeader) => void) | undefined;

  private state = State.Header;
  /** Pack offset of the next byte to be consumed. */
  private offset = 0;
  private header: PackHeader | undefined;
  private entriesDone = 0;
  private checksum: Buffer | undefined;
  /** Consumed bytes not yet hashed (see hashAtEndOfPush). */
  private readonly deferred = Buffer.alloc(32);
  private deferredLength = 0;
  private badTrailer: { expected: string; actual: string } | undefined;
  /** The error held back by holdFailure, and where its entry began. */
  private failure: PackferryError | undefined;
  private failedAt = 0;
  private readonly packHash: Hash;
  private readonly inflater: Inflater;

  /** Bytes of a header or trailer split across chunks. */
  private readonly carry = Buffer.alloc(64);
  private carryLength = 0;
  private readonly scratch = Buffer.alloc(128);

  // The entry being inflated.
  private eOffset = 0;
  private eType = 0;
  private eSize = 0;
  private eHeaderLength = 0;
  private eBaseOffset = -1;
  private readonly eBaseId = Buffer.alloc(32);
  private eHasBaseId = false;
  private eCrc = 0;
  private eProduced = 0;
  private eBuffered = false;
  private eStreamHash: Hash | undefined;
  private dataBuf: Buffer = Buffer.allocUnsafe(64 * 1024);
  private readonly streamBuf: Buffer = Buffer.allocUnsafe(STREAM_CHUNK);

  constructor(options: PackScannerOptions) {
    this.algo = options.hashAlgorithm ?? SHA1;
    this.hashObjects = options.hashObjects ?? false;
    this.retainDataUpTo = options.retainDataUpTo ?? -1;
    this.passObjectData = options.passObjectData ?? false;
    this.streamThreshold = options.streamThreshold ?? 8 * 1024 * 1024;
    this.limits = withLimits(options.limits);
    this.onEntry = options.onEntry;
    this.onHeader = options.onHeader;
    this.packHash = this.algo.create();
    this.inflater = createInflater();
  }

  /** Entries fully parsed so far. */
  get entryCount(): number {
    return this.entriesDone;
  }

  /** Bytes consumed so far. */
  get bytesConsumed(): number {
    return this.offset;
  }

  get packHeader(): PackHeader | undefined {
    return this.header;
  }

  /** Parses as much of `chunk` as possible. */
  push(chunk: Uint8Array): void {
    if (this.state === State.Failed) return this.pushAfterFailure(chunk);
    const end = chunk.length;
    const chunkStart = this.offset;
    let pos = 0;
    // Every byte before the trailer is part of the pack checksum; hash each chunk's share once.
    let hashFrom = this.state === State.Trailer || this.state === State.Done ? -1 : 0;
    while (pos < end) {
      switch (this.state) {
        case State.Header: {
          const take = Math.min(PACK_HEADER_SIZE - this.carryLength, end - pos);
          this.carry.set(chunk.subarray(pos, pos + take), this.carryLength);
          this.carryLength += take;
          pos += take;
          this.offset += take;
          if (this.carryLength === PACK_HEADER_SIZE) {
            this.header = parsePackHeader(this.carry.subarray(0, PACK_HEADER_SIZE));
            this.carryLength = 0;
            if (this.header.objectCount > this.limits.maxPackObjects) {
              throw new PackferryError(
                ErrorCode.LimitExceeded,
                `pack declares ${this.header.objectCount} objects, over the limit of ${this.limits.maxPackObjects} (maxPackObjects)`,
                { details: { limit: 'maxPackObjects', declared: this.header.objectCount } },
              );
            }
            this.onHeader?.(this.header);
            this.state = this.header.objectCount === 0 ? State.Trailer : State.EntryHeader;
            if (this.state === State.Trailer) {
              this.hashThrough(chunk, hashFrom, pos);
              hashFrom = -1;
            }
          }
          break;
        }
        case State.EntryHeader:
        case State.EntryData: {
          const entryStart = this.currentEntryStart();
          try {
            if (this.state === State.EntryHeader) {
              pos = this.readEntryHeader(chunk, pos, end);
            } else {
              pos = this.inflateEntry(chunk, pos, end);
              if ((this.state as State) === State.Trailer && hashFrom >= 0) {
                this.hashThrough(chunk, hashFrom, pos);
                hashFrom = -1;
              }
            }
          } catch (err) {
            if (!this.holdFailure(err, chunk, chunkStart, entryStart)) throw err;
            return;
          }
          break;
        }
        case State.Trailer: {
          const want = this.algo.rawLength - this.carryLength;
          const take = Math.min(want, end - pos);
          this.carry.set(chunk.subarray(pos, pos + take), this.carryLength);
          this.carryLength += take;
          pos += take;
          this.offset += take;
          if (this.carryLength === this.algo.rawLength) this.checkTrailer();
          break;
        }
        case State.Done:
          if (this.badTrailer !== undefined) {
            throw new PackferryError(
              ErrorCode.PackObjectCount,
              `pack holds more objects than the ${this.header!.objectCount} it declares`,
              { details: { declared: this.header!.objectCount, offset: this.offset } },
            );
          }
          throw new PackferryError(
            ErrorCode.PackTrailingData,
            `unexpected data after the end of the pack at offset ${this.offset}`,
            { details: { offset: this.offset }, hint: 'the pack may declare fewer objects than it contains' },
          );
      }
    }
    if (hashFrom >= 0) this.hashAtEndOfPush(chunk, hashFrom);
  }

  /** Call when the input has ended; throws unless a whole pack with a valid trailer was seen. */
  end(): PackTrailer {
    if (this.badTrailer !== undefined) {
      throw new PackferryError(ErrorCode.PackChecksum, 'pack checksum mismatch: the pack is corrupt', { details: this.badTrailer });
    }
    if (this.state !== State.Done) {
      const declared = this.header?.objectCount;
      // Input that stops one checksum-length into an object is a complete pack whose header over-counts.
      const entryStart = this.state === State.Failed ? this.failedAt : this.currentEntryStart();
      if (
        declared !== undefined &&
        this.deferredLength === this.algo.rawLength &&
        this.offset - entryStart === this.algo.rawLength &&
        this.packHash.digest().equals(this.deferred.subarray(0, this.deferredLength))
      ) {
        throw new PackferryError(ErrorCode.PackObjectCount, `pack declares ${declared} objects but holds only ${this.entriesDone}`, {
          details: { declared, found: this.entriesDone },
          cause: this.failure,
        });
      }
      if (this.failure !== undefined) throw this.failure;
      const where =
        this.state === State.Header
          ? 'in its header'
          : this.state === State.Trailer
            ? 'in its trailing checksum'
            : `in object ${this.entriesDone + 1} of ${declared}`;
      throw new PackferryError(ErrorCode.PackTruncated, `pack is truncated: input ended ${where} after ${this.offset} bytes`, {
        details: { offset: this.offset, objectsParsed: this.entriesDone, declared },
      });
    }
    return { header: this.header!, checksum: this.checksum!, packLength: this.offset };
  }

  /** Releases the inflater's native memory. */
  close(): void {
    this.inflater.close();
  }

  /** Pack offset where the entry being parsed began. */
  private currentEntryStart(): number {
    return this.state === State.EntryHeader ? this.offset - this.carryLength : this.eOffset;
  }

  /** Hashes the deferred bytes, then `chunk[from..to)`. */
  private hashThrough(chunk: Uint8Array, from: number, to: number): void {
    if (this.deferredLength > 0) {
      this.packHash.update(this.deferred.subarray(0, this.deferredLength));
      this.deferredLength = 0;
    }
    if (to > from) this.packHash.update(from === 0 && to === chunk.length ? chunk : chunk.subarray(from, to));
  }

  /**
   * At the end of a push, hashes what was consumed, except that the first
   * bytes of an entry still in progress (at most one checksum's length) are
   * held back: if the input stops there, they may be a trailer, and `end()`
   * can tell a truncated pack from one whose header over-counts.
   */
  private hashAtEndOfPush(chunk: Uint8Array, hashFrom: number): void {
    const H = this.algo.rawLength;
    const inEntry = this.state === State.EntryHeader || this.state === State.EntryData;
    const tail = inEntry ? this.offset - this.currentEntryStart() : 0;
    if (tail === 0 || tail > H) {
      this.hashThrough(chunk, hashFrom, chunk.length);
      return;
    }
    this.holdBackFrom(chunk, hashFrom, this.offset - chunk.length, this.offset - tail);
  }

  /**
   * Hashes the consumed bytes before `entryStart` and keeps the entry's own
   * (all of `chunk` from there on, at most one checksum's length) deferred.
   */
  private holdBackFrom(chunk: Uint8Array, hashFrom: number, chunkStart: number, entryStart: number): void {
    if (entryStart >= chunkStart) {
      this.hashThrough(chunk, hashFrom, entryStart - chunkStart);
      this.deferred.set(chunk.subarray(entryStart - chunkStart), 0);
    } else {
      // The entry began in bytes already deferred: hash the older part, keep the rest with this chunk.
      const keepOld = chunkStart - entryStart;
      const dropOld = this.deferredLength - keepOld;
      if (dropOld > 0) this.packHash.update(this.deferred.subarray(0, dropOld));
      this.deferred.copyWithin(0, dropOld, this.deferredLength);
      this.deferred.set(chunk, keepOld);
    }
    this.deferredLength = chunkStart + chunk.length - entryStart;
  }

  /**
   * A pack whose header counts more objects than it holds has its trailer
   * parsed as one more entry, which then fails as whatever its bytes happen
   * to look like (a bad type, a zlib error...). So an entry that fails within
   * the last checksum-length bytes seen has its error held: more input makes
   * it real; `end()` turns it into ERR_PACK_OBJECT_COUNT if those bytes are the
   * checksum of everything before them. Returns false if `err` must be thrown.
   */
  private holdFailure(err: unknown, chunk: Uint8Array, chunkStart: number, entryStart: number): boolean {
    const chunkEnd = chunkStart + chunk.length;
    if (!(err instanceof PackferryError) || chunkEnd - entryStart > this.algo.rawLength) return false;
    this.holdBackFrom(chunk, 0, chunkStart, entryStart);
    this.offset = chunkEnd;
    this.failure = err;
    this.failedAt = entryStart;
    this.state = State.Failed;
    return true;
  }

  private pushAfterFailure(chunk: Uint8Array): void {
    if (this.deferredLength + chunk.length > this.algo.rawLength) throw this.failure!;
    this.deferred.set(chunk, this.deferredLength);
    this.deferredLength += chunk.length;
    this.offset += chunk.length;
  }

  private readEntryHeader(chunk: Uint8Array, pos: number, end: number): number {
    const entryOffset = this.offset - this.carryLength;
    if (this.carryLength === 0) {
      const h = parseEntryHeader(chunk, pos, end, entryOffset, this.algo.rawLength);
      if (h === null) {
        this.carry.set(chunk.subarray(pos, end), 0);
        this.carryLength = end - pos;
        this.offset += end - pos;
        return end;
      }
      this.beginEntry(entryOffset, h.type, h.size, h.length, h.baseDistance, chunk, h.baseIdAt);
      this.eCrc = crc32(chunk.subarray(pos, pos + h.length));
      this.offset += h.length;
      return pos + h.length;
    }
    // The header straddles chunks: decode it from the carried bytes plus the start of this chunk.
    const fromChunk = Math.min(MAX_ENTRY_HEADER, end - pos);
    this.scratch.set(this.carry.subarray(0, this.carryLength), 0);
    this.scratch.set(chunk.subarray(pos, pos + fromChunk), this.carryLength);
    const available = this.carryLength + fromChunk;
    const h = parseEntryHeader(this.scratch, 0, available, entryOffset, this.algo.rawLength);
    if (h === null) {
      if (available > MAX_ENTRY_HEADER) {
        throw new PackferryError(ErrorCode.PackEntryHeader, `bad entry header at offset ${entryOffset}`, { details: { offset: entryOffset } });
      }
      this.carry.set(chunk.subarray(pos, end), this.carryLength);
      this.carryLength = available;
      this.offset += end - pos;
      return end;
    }
    const used = h.length - this.carryLength;
    this.beginEntry(entryOffset, h.type, h.size, h.length, h.baseDistance, this.scratch, h.baseIdAt);
    this.eCrc = crc32(this.scratch.subarray(0, h.length));
    this.carryLength = 0;
    this.offset += used;
    return pos + used;
  }

  private beginEntry(
    offset: number,
    type: number,
    size: number,
    headerLength: number,
    baseDistance: number,
    headerBytes: Uint8Array,
    baseIdAt: number,
  ): void {
    if (size > this.limits.maxObjectSize) {
      throw new PackferryError(
        ErrorCode.LimitExceeded,
        `object at offset ${offset} declares ${size} bytes, over the limit of ${this.limits.maxObjectSize} (maxObjectSize)`,
        { details: { limit: 'maxObjectSize', offset, declared: size } },
      );
    }
    this.eOffset = offset;
    this.eType = type;
    this.eSize = size;
    this.eHeaderLength = headerLength;
    this.eBaseOffset = type === PackObjectType.OfsDelta ? offset - baseDistance : -1;
    this.eHasBaseId = baseIdAt >= 0;
    if (this.eHasBaseId) this.eBaseId.set(headerBytes.subarray(baseIdAt, baseIdAt + this.algo.rawLength), 0);
    this.eProduced = 0;
    const isObject = !isDeltaType(type);
    this.eBuffered = size <= this.retainDataUpTo || (this.hashObjects && isObject && size <= this.streamThreshold);
    if (this.eBuffered) {
      const need = HEADER_ROOM + size + 1;
      if (this.dataBuf.length < need) this.dataBuf = Buffer.allocUnsafe(Math.max(need, this.dataBuf.length * 2));
      this.eStreamHash = undefined;
    } else if (this.hashObjects && isObject) {
      this.eStreamHash = this.algo.create();
      this.eStreamHash.update(`${objectTypeFromPackType(type)} ${size}\0`, 'latin1');
    } else {
      this.eStreamHash = undefined;
    }
    this.inflater.reset();
    this.state = State.EntryData;
  }

  private inflateEntry(chunk: Uint8Array, pos: number, end: number): number {
    const inflater = this.inflater;
    const size = this.eSize;
    if (this.eBuffered) {
      const ended = this.feed(chunk, pos, end - pos, this.dataBuf, HEADER_ROOM + this.eProduced, size + 1 - this.eProduced);
      const consumed = inflater.consumed;
      this.eProduced += inflater.produced;
      this.eCrc = crc32(chunk.subarray(pos, pos + consumed), this.eCrc);
      this.offset += consumed;
      this.checkOverflow();
      if (ended) this.finishEntry();
      return pos + consumed;
    }
    let p = pos;
    while (true) {
      const ended = this.feed(chunk, p, end - p, this.streamBuf, 0, STREAM_CHUNK);
      const consumed = inflater.consumed;
      const produced = inflater.produced;
      if (produced > 0) {
        this.eProduced += produced;
        this.checkOverflow();
        this.eStreamHash?.update(this.streamBuf.subarray(0, produced));
      }
      if (consumed > 0) this.eCrc = crc32(chunk.subarray(p, p + consumed), this.eCrc);
      this.offset += consumed;
      p += consumed;
      if (ended) {
        this.finishEntry();
        return p;
      }
      // Output space ran out: zlib may hold more output even with no input left.
      if (produced < STREAM_CHUNK) return p;
    }
  }

  private feed(input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): boolean {
    try {
      return this.inflater.write(input, inOff, inLen, out, outOff, outLen);
    } catch (err) {
      if (err instanceof PackferryError) {
        throw new PackferryError(err.code, `object at offset ${this.eOffset}: ${err.message}`, {
          cause: err,
          details: { ...err.details, offset: this.eOffset },
        });
      }
      throw err;
    }
  }

  private checkOverflow(): void {
    if (this.eProduced > this.eSize) {
      throw new PackferryError(
        ErrorCode.PackSizeMismatch,
        `object at offset ${this.eOffset} inflates to more than its declared ${this.eSize} bytes`,
        { details: { offset: this.eOffset, declared: this.eSize } },
      );
    }
  }

  private finishEntry(): void {
    const size = this.eSize;
    if (this.eProduced !== size) {
      throw new PackferryError(
        ErrorCode.PackSizeMismatch,
        `object at offset ${this.eOffset} inflates to ${this.eProduced} bytes, not its declared ${size}`,
        { details: { offset: this.eOffset, declared: size, produced: this.eProduced } },
      );
    }
    const isObject = !isDeltaType(this.eType);
    let oid: Uint8Array | undefined;
    let data: Uint8Array | undefined;
    if (this.eBuffered) {
      data = this.dataBuf.subarray(HEADER_ROOM, HEADER_ROOM + size);
      if (this.hashObjects && isObject) {
        const header = `${objectTypeFromPackType(this.eType)} ${size}\0`;
        const start = HEADER_ROOM - header.length;
        this.dataBuf.write(header, start, 'latin1');
        oid = oneShotHash(this.algo.name, this.dataBuf.subarray(start, HEADER_ROOM + size), 'buffer') as unknown as Buffer;
      }
      if (size > this.retainDataUpTo && !(this.passObjectData && oid !== undefined)) data = undefined;
    } else if (this.eStreamHash !== undefined) {
      oid = this.eStreamHash.digest();
      this.eStreamHash = undefined;
    }
    const index = this.entriesDone++;
    this.state = index + 1 === this.header!.objectCount ? State.Trailer : State.EntryHeader;
    this.onEntry({
      index,
      offset: this.eOffset,
      type: this.eType,
      size,
      headerLength: this.eHeaderLength,
      packedLength: this.offset - this.eOffset,
      crc32: this.eCrc,
      baseOffset: this.eBaseOffset,
      baseId: this.eHasBaseId ? this.eBaseId.subarray(0, this.algo.rawLength) : undefined,
      oid,
      data,
    });
  }

  /**
   * A mismatch is reported by `end()` as ERR_PACK_CHECKSUM, or as
   * ERR_PACK_OBJECT_COUNT if more data follows (the "trailer" was really the
   * start of an object the header did not count).
   */
  private checkTrailer(): void {
    const expected = this.packHash.digest();
    const actual = Buffer.from(this.carry.subarray(0, this.algo.rawLength));
    this.carryLength = 0;
    this.state = State.Done;
    if (!expected.equals(actual)) {
      this.badTrailer = { expected: expected.toString('hex'), actual: actual.toString('hex') };
      return;
    }
    this.checksum = actual;
  }
}

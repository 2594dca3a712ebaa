// Reading objects out of a pack through its index (gitformat-pack; Git's
// packfile.c unpack_entry): find the offset by id, follow the delta chain
// down to a whole object, then apply the deltas back up. Chains are checked
// for cycles (possible with a corrupt or hostile index) and depth, and recent
// bases are kept in a small byte-bounded cache.
import { constants as bufferConstants } from 'node:buffer';
import { readFileSync } from 'node:fs';
import { PackferryError, ErrorCode } from '../core/errors.js';
import { SHA1, type HashAlgorithm } from '../core/hash.js';
import { withLimits, type Limits } from '../core/limits.js';
import { oidToHex, type ObjectId } from '../core/oid.js';
import { applyDelta, readDeltaHeader } from './delta.js';
import { PACK_HEADER_SIZE, PackObjectType, isDeltaType, parseEntryHeader, parsePackHeader } from './format.js';
import { PackIndex } from './idx.js';
import { createInflater, type Inflater } from './inflate.js';
import { PackFile } from './packfile.js';

export interface PackedObject {
  /** Object type number (1 commit, 2 tree, 3 blob, 4 tag). */
  type: number;
  data: Buffer;
}

interface EntryInfo {
  type: number;
  size: number;
  dataStart: number;
  end: number;
  /** OFS_DELTA base offset, or REF_DELTA base found through the index; -1 for whole objects. */
  baseOffset: number;
}

/** A byte-bounded LRU of whole objects by pack offset. */
class BaseCache {
  private readonly map = new Map<number, PackedObject>();
  private bytes = 0;
  constructor(private readonly limit: number) {}

  get(offset: number): PackedObject | undefined {
    const hit = this.map.get(offset);
    if (hit) {
      this.map.delete(offset);
      this.map.set(offset, hit);
    }
    return hit;
  }

  set(offset: number, obj: PackedObject): void {
    if (obj.data.length > this.limit / 4 || this.map.has(offset)) return;
    this.map.set(offset, obj);
    this.bytes += obj.data.length;
    for (const [key, value] of this.map) {
      if (this.bytes <= this.limit) break;
      this.map.delete(key);
      this.bytes -= value.data.length;
    }
  }
}

export interface PackReaderOptions {
  hashAlgorithm?: HashAlgorithm;
  limits?: Partial<Limits>;
  /** Bytes of recently used bases kept (default 16 MiB). */
  cacheLimit?: number;
}

export class PackReader {
  readonly index: PackIndex;
  readonly algo: HashAlgorithm;
  private readonly pack: PackFile;
  private readonly inflater: Inflater;
  private readonly limits: Limits;
  private readonly cache: BaseCache;
  private sortedOffsets: Float64Array | undefined;
  private sortedPositions: Uint32Array | undefined;

  private constructor(pack: PackFile, index: PackIndex, options: PackReaderOptions) {
    this.pack = pack;
    this.index = index;
    this.algo = options.hashAlgorithm ?? SHA1;
    this.inflater = createInflater();
    this.limits = withLimits(options.limits);
    this.cache = new BaseCache(options.cacheLimit ?? 16 * 1024 * 1024);
  }

  /** Opens `pack-*.pack` with its `.idx` (by default the same name) and checks they belong together. */
  static open(packPath: string, idxPath = packPath.replace(/\.pack$/, '.idx'), options: PackReaderOptions = {}): PackReader {
    const index = PackIndex.parse(readFileSync(idxPath), options.hashAlgorithm ?? SHA1);
    return PackReader.fromIndex(PackFile.open(packPath), index, options);
  }

  /** A reader over an open pack and its already parsed index (checked to belong together; the pack is closed on failure). */
  static fromIndex(pack: PackFile, index: PackIndex, options: PackReaderOptions = {}): PackReader {
    const algo = options.hashAlgorithm ?? SHA1;
    try {
      if (pack.length < PACK_HEADER_SIZE + algo.rawLength) {
        throw new PackferryError(ErrorCode.PackTruncated, `${pack.path} is too short to be a pack`);
      }
      const header = parsePackHeader(pack.read(0, PACK_HEADER_SIZE));
      if (header.objectCount !== index.count) {
        throw new PackferryError(ErrorCode.IndexMismatch, `the index of ${pack.path} lists ${index.count} objects but the pack holds ${header.objectCount}`);
      }
      const trailer = pack.read(pack.length - algo.rawLength, algo.rawLength);
      if (!trailer.equals(index.packChecksum)) {
        throw new PackferryError(ErrorCode.IndexMismatch, `the index does not belong to ${pack.path} (pack checksum differs)`);
      }
    } catch (err) {
      pack.close();
      throw err;
    }
    return new PackReader(pack, index, options);
  }

  get count(): number {
    return this.index.count;
  }

  has(oid: ObjectId): boolean {
    return this.index.find(oid) >= 0;
  }

  /** The object with this id, or undefined when the pack does not hold it. */
  tryRead(oid: ObjectId): PackedObject | undefined {
    const k = this.index.find(oid);
    return k < 0 ? undefined : this.readAt(this.index.offsetAt(k));
  }

  read(oid: ObjectId): PackedObject {
    const obj = this.tryRead(oid);
    if (!obj) throw new PackferryError(ErrorCode.NotFound, `object ${oid} is not in the pack`, { details: { oid } });
    return obj;
  }

  /** Type and size without inflating more than the delta headers. */
  readHeader(oid: ObjectId): { type: number; size: number } | undefined {
    const k = this.index.find(oid);
    if (k < 0) return undefined;
    const first = this.entryAt(this.index.offsetAt(k));
    let size = first.size;
    let entry = first;
    const seen = new Set<number>();
    let resultSizeKnown = false;
    while (isDeltaType(entry.type)) {
      if (!resultSizeKnown) {
        // The size is the result size of the outermost delta.
        size = readDeltaHeader(this.inflateEntry(entry, Math.min(entry.size, 32))).resultSize;
        resultSizeKnown = true;
      }
      this.checkChain(seen, entry.baseOffset);
      entry = this.entryAt(entry.baseOffset);
    }
    return { type: entry.type, size };
  }

  /** Reads the object whose entry starts at `offset`. */
  readAt(offset: number): PackedObject {
    const chain: EntryInfo[] = [];
    const seen = new Set<number>();
    let cur = offset;
    let base: PackedObject | undefined;
    for (;;) {
      base = this.cache.get(cur);
      if (base) break;
      const entry = this.entryAt(cur);
      if (!isDeltaType(entry.type)) {
        base = { type: entry.type, data: this.inflateEntry(entry, entry.size) };
        this.cache.set(cur, base);
        break;
      }
      chain.push(entry);
      if (chain.length > this.limits.maxDeltaChainDepth) {
        throw new PackferryError(ErrorCode.LimitExceeded, `delta chain at offset ${offset} is deeper than ${this.limits.maxDeltaChainDepth}`, {
          details: { limit: 'maxDeltaChainDepth', offset },
        });
      }
      this.checkChain(seen, entry.baseOffset, cur);
      cur = entry.baseOffset;
    }
    let data = base.data;
    for (let k = chain.length - 1; k >= 0; k--) {
      const delta = this.inflateEntry(chain[k], chain[k].size);
      data = applyDelta(data, delta, this.limits);
      if (k > 0) this.cache.set(chain[k - 1].baseOffset, { type: base.type, data });
    }
    return { type: base.type, data };
  }

  /** Every object id in the index, in id order. */
  *oids(): Generator<ObjectId> {
    for (let k = 0; k < this.index.count; k++) yield oidToHex(this.index.oidAt(k), 0, this.algo.rawLength);
  }

  close(): void {
    this.inflater.close();
    this.pack.close();
  }

  private checkChain(seen: Set<number>, baseOffset: number, from = baseOffset): void {
    if (seen.has(baseOffset)) {
      throw new PackferryError(ErrorCode.DeltaCycle, `delta cycle in pack: the chain through offset ${from} returns to offset ${baseOffset}`, {
        details: { offset: from, baseOffset },
      });
    }
    seen.add(baseOffset);
  }

  /** Entry header at `offset`, with the base's offset resolved through the index for REF_DELTA. */
  private entryAt(offset: number): EntryInfo {
    const end = this.nextOffset(offset);
    const head = this.pack.read(offset, Math.min(64, end - offset));
    const h = parseEntryHeader(head, 0, head.length, offset, this.algo.rawLength);
    if (h === null) throw new PackferryError(ErrorCode.PackEntryHeader, `truncated entry header at offset ${offset}`);
    let baseOffset = -1;
    if (h.type === PackObjectType.OfsDelta) {
      baseOffset = offset - h.baseDistance;
    } else if (h.type === PackObjectType.RefDelta) {
      const k = this.index.findRaw(head, h.baseIdAt);
      if (k < 0) {
        const base = oidToHex(head, h.baseIdAt, this.algo.rawLength);
        throw new PackferryError(ErrorCode.DeltaBaseMissing, `base ${base} of the delta at offset ${offset} is not in the pack`, {
          details: { offset, base },
        });
      }
      baseOffset = this.index.offsetAt(k);
    }
    return { type: h.type, size: h.size, dataStart: offset + h.length, end, baseOffset };
  }

  /** Inflates an entry's data (the first `wanted` bytes are returned). */
  private inflateEntry(entry: EntryInfo, wanted: number): Buffer {
    if (entry.size > this.limits.maxObjectSize) {
      throw new PackferryError(ErrorCode.LimitExceeded, `object at offset ${entry.dataStart} is larger than maxObjectSize`);
    }
    // One spare byte of output space (see inflateKnownSize) is past buffer.constants.MAX_LENGTH at the 4 GiB default.
    if (entry.size + 1 > bufferConstants.MAX_LENGTH) {
      throw new PackferryError(ErrorCode.LimitExceeded, `object at offset ${entry.dataStart} declares ${entry.size} bytes, more than can be allocated`, {
        details: { limit: 'allocation', declared: entry.size },
      });
    }
    const data = this.pack.inflate(this.inflater, entry.dataStart, entry.end, entry.size, Buffer.allocUnsafe(entry.size + 1));
    return wanted < entry.size ? data.subarray(0, wanted) : data;
  }

  /** Offsets in pack order (with the trailer's offset last) and the index position of each: Git's reverse index. */
  private reverseIndex(): { offsets: Float64Array; positions: Uint32Array } {
    if (!this.sortedOffsets || !this.sortedPositions) {
      const n = this.index.count;
      const positions = new Uint32Array(n);
      for (let k = 0; k < n; k++) positions[k] = k;
      const at = new Float64Array(n);
      for (let k = 0; k < n; k++) at[k] = this.index.offsetAt(k);
      positions.sort((a, b) => at[a] - at[b]);
      const offsets = new Float64Array(n + 1);
      for (let i = 0; i < n; i++) offsets[i] = at[positions[i]];
      offsets[n] = this.pack.length - this.algo.rawLength;
      this.sortedOffsets = offsets;
      this.sortedPositions = positions;
    }
    return { offsets: this.sortedOffsets, positions: this.sortedPositions };
  }

  /** Rank of the entry starting at `offset` in pack order; throws if no entry starts there. */
  private rank(offset: number): number {
    const { offsets } = this.reverseIndex();
    let lo = 0;
    let hi = offsets.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (offsets[mid] < offset) lo = mid + 1;
      else hi = mid;
    }
    if (lo >= offsets.length - 1 || offsets[lo] !== offset) {
      throw new PackferryError(ErrorCode.PackBadOffset, `no object starts at offset ${offset}`, { details: { offset } });
    }
    return lo;
  }

  /** Where the entry at `offset` ends: the next entry's offset, or the trailer. */
  private nextOffset(offset: number): number {
    return this.reverseIndex().offsets[this.rank(offset) + 1];
  }

  /** The id of the object whose entry starts at `offset`. */
  oidAtOffset(offset: number): ObjectId {
    const { positions } = this.reverseIndex();
    return oidToHex(this.index.oidAt(positions[this.rank(offset)]), 0, this.algo.rawLength);
  }

  /**
   * The entry at `offset` as stored, for copying into another pack: its type
   * (a delta type for deltas), the size in its header, its base's id for
   * deltas, and its zlib-compressed bytes, read in pieces of at most `piece`
   * bytes as they are iterated, each a copy (consumers such as sockets hold on
   * to what they are given): an entry of any size is never held whole.
   */
  rawEntryPieces(offset: number, piece: number): { type: number; size: number; baseOid?: ObjectId; compressedLength: number; compressed: Iterable<Buffer> } {
    const entry = this.entryAt(offset);
    const baseOid = isDeltaType(entry.type) ? this.oidAtOffset(entry.baseOffset) : undefined;
    const pack = this.pack;
    const compressed = {
      *[Symbol.iterator](): Generator<Buffer> {
        for (let at = entry.dataStart; at < entry.end; at += piece) yield Buffer.from(pack.read(at, Math.min(piece, entry.end - at)));
      },
    };
    return { type: entry.type, size: entry.size, baseOid, compressedLength: entry.end - entry.dataStart, compressed };
  }
}

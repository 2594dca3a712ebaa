// Pack index version 2 (gitformat-pack, "Version 2 pack-*.idx files support
// packs larger than 4 GiB"): magic, version, a 256-entry fan-out table, the
// sorted object ids, their CRC-32s, 31-bit offsets with an overflow table of
// 64-bit offsets, then the pack checksum and the index's own checksum.
// Writing is byte-for-byte what `git index-pack` writes for the same pack.
import { hash as oneShotHash } from 'node:crypto';
import { PackferryError, ErrorCode } from '../core/errors.js';
import { SHA1, type HashAlgorithm } from '../core/hash.js';
import { compareRawIds, oidFromHex, type ObjectId } from '../core/oid.js';

const IDX_MAGIC = 0xff744f63; // "\377tOc"
const IDX_VERSION = 2;
const FANOUT_SIZE = 256 * 4;
const HEADER_SIZE = 8;
/** Offsets above this go to the 64-bit table, as in Git (pack_idx_option.off32_limit). */
const OFF32_LIMIT = 0x7fffffff;

export interface IndexableEntries {
  count: number;
  /** count × hashLength raw ids, in pack order. */
  oids: Uint8Array;
  /** Pack offsets, in pack order. */
  offsets: ArrayLike<number>;
  /** CRC-32 of each entry's raw bytes, in pack order. */
  crc32s: ArrayLike<number>;
}

/**
 * Returns the positions 0..count-1 ordered by object id (ties by pack offset).
 * Counting sort on the first two bytes, then a small sort per bucket: ids are
 * uniformly distributed, so buckets stay tiny.
 */
export function sortByObjectId(oids: Uint8Array, count: number, hashLength: number, offsets?: ArrayLike<number>): Uint32Array {
  const buckets = new Uint32Array(65537);
  for (let i = 0; i < count; i++) {
    const at = i * hashLength;
    buckets[((oids[at] << 8) | oids[at + 1]) + 1]++;
  }
  for (let b = 1; b <= 65536; b++) buckets[b] += buckets[b - 1];
  const order = new Uint32Array(count);
  const fill = buckets.slice(0, 65536);
  for (let i = 0; i < count; i++) {
    const at = i * hashLength;
    order[fill[(oids[at] << 8) | oids[at + 1]]++] = i;
  }
  const compare = (a: number, b: number): number =>
    compareRawIds(oids, a * hashLength, oids, b * hashLength, hashLength) || (offsets ? offsets[a] - offsets[b] : a - b);
  for (let b = 0; b < 65536; b++) {
    const start = buckets[b];
    const end = buckets[b + 1];
    if (end - start < 2) continue;
    if (end - start <= 16) {
      for (let i = start + 1; i < end; i++) {
        const v = order[i];
        let j = i - 1;
        while (j >= start && compare(order[j], v) > 0) {
          order[j + 1] = order[j];
          j--;
        }
        order[j + 1] = v;
      }
    } else {
      order.subarray(start, end).sort(compare);
    }
  }
  return order;
}

/** Serializes a version 2 pack index. */
export function writePackIndexV2(entries: IndexableEntries, packChecksum: Uint8Array, algo: HashAlgorithm = SHA1): Buffer {
  const { count, oids, offsets, crc32s } = entries;
  const hashLength = algo.rawLength;
  const order = sortByObjectId(oids, count, hashLength, offsets);
  let largeCount = 0;
  for (let i = 0; i < count; i++) if (offsets[i] > OFF32_LIMIT) largeCount++;
  const size = HEADER_SIZE + FANOUT_SIZE + count * (hashLength + 8) + largeCount * 8 + 2 * hashLength;
  const buf = Buffer.alloc(size);
  buf.writeUInt32BE(IDX_MAGIC, 0);
  buf.writeUInt32BE(IDX_VERSION, 4);
  const fanoutAt = HEADER_SIZE;
  const oidsAt = fanoutAt + FANOUT_SIZE;
  const crcAt = oidsAt + count * hashLength;
  const offAt = crcAt + count * 4;
  const largeAt = offAt + count * 4;
  const fanout = new Uint32Array(256);
  let large = 0;
  for (let k = 0; k < count; k++) {
    const i = order[k];
    const src = i * hashLength;
    fanout[oids[src]]++;
    buf.set(oids.subarray(src, src + hashLength), oidsAt + k * hashLength);
    buf.writeUInt32BE(crc32s[i] >>> 0, crcAt + k * 4);
    const offset = offsets[i];
    if (offset > OFF32_LIMIT) {
      buf.writeUInt32BE((0x80000000 | large) >>> 0, offAt + k * 4);
      buf.writeUInt32BE(Math.floor(offset / 2 ** 32), largeAt + large * 8);
      buf.writeUInt32BE(offset >>> 0, largeAt + large * 8 + 4);
      large++;
    } else {
      buf.writeUInt32BE(offset, offAt + k * 4);
    }
  }
  let running = 0;
  for (let b = 0; b < 256; b++) {
    running += fanout[b];
    buf.writeUInt32BE(running, fanoutAt + b * 4);
  }
  const trailerAt = largeAt + large * 8;
  buf.set(packChecksum.subarray(0, hashLength), trailerAt);
  const digest = oneShotHash(algo.name, buf.subarray(0, trailerAt + hashLength), 'buffer') as unknown as Buffer;
  digest.copy(buf, trailerAt + hashLength);
  return buf;
}

/** A parsed version 2 pack index: lookups by id with the fan-out table and binary search. */
export class PackIndex {
  readonly count: number;
  readonly hashLength: number;
  private readonly fanoutAt = HEADER_SIZE;
  private readonly oidsAt: number;
  private readonly crcAt: number;
  private readonly offAt: number;
  private readonly largeAt: number;
  private readonly largeCount: number;

  private constructor(
    readonly buf: Buffer,
    readonly algo: HashAlgorithm,
  ) {
    this.hashLength = algo.rawLength;
    this.count = buf.readUInt32BE(HEADER_SIZE + 255 * 4);
    this.oidsAt = HEADER_SIZE + FANOUT_SIZE;
    this.crcAt = this.oidsAt + this.count * this.hashLength;
    this.offAt = this.crcAt + this.count * 4;
    this.largeAt = this.offAt + this.count * 4;
    this.largeCount = (buf.length - this.largeAt - 2 * this.hashLength) / 8;
  }

  /** Parses and checks an index: magic, version, fan-out monotony, sizes, checksum, sort order, ids in their fan-out buckets. */
  static parse(buf: Buffer, algo: HashAlgorithm = SHA1, options: { verifyChecksum?: boolean } = {}): PackIndex {
    const bad = (why: string): PackferryError => new PackferryError(ErrorCode.IndexCorrupt, `corrupt pack index: ${why}`);
    const hashLength = algo.rawLength;
    if (buf.length < HEADER_SIZE + FANOUT_SIZE + 2 * hashLength) throw bad('too short');
    if (buf.readUInt32BE(0) !== IDX_MAGIC) throw bad('not a version 2 index (bad magic)');
    const version = buf.readUInt32BE(4);
    if (version !== IDX_VERSION) throw bad(`unsupported version ${version}`);
    let prev = 0;
    for (let b = 0; b < 256; b++) {
      const v = buf.readUInt32BE(HEADER_SIZE + b * 4);
      if (v < prev) throw bad('fan-out table is not monotonic');
      prev = v;
    }
    const count = prev;
    const minSize = HEADER_SIZE + FANOUT_SIZE + count * (hashLength + 8) + 2 * hashLength;
    if (buf.length < minSize || (buf.length - minSize) % 8 !== 0) throw bad(`size ${buf.length} does not fit ${count} objects`);
    if (options.verifyChecksum !== false) {
      const end = buf.length - hashLength;
      const digest = oneShotHash(algo.name, buf.subarray(0, end), 'buffer') as unknown as Buffer;
      if (!digest.equals(buf.subarray(end))) throw bad('index checksum mismatch');
    }
    const index = new PackIndex(buf, algo);
    let bucket = 0;
    for (let k = 0; k < count; k++) {
      if (k > 0 && compareRawIds(buf, index.oidsAt + (k - 1) * hashLength, buf, index.oidsAt + k * hashLength, hashLength) > 0) {
        throw bad('object ids are not sorted');
      }
      // Each id must lie in the fan-out bucket of its first byte, or lookups would miss it.
      while (buf.readUInt32BE(HEADER_SIZE + bucket * 4) <= k) bucket++;
      if (buf[index.oidsAt + k * hashLength] !== bucket) throw bad(`object id at position ${k} is outside its fan-out bucket`);
    }
    for (let k = 0; k < count; k++) {
      const v = buf.readUInt32BE(index.offAt + k * 4);
      if (v & 0x80000000 && (v & 0x7fffffff) >= index.largeCount) throw bad(`64-bit offset index ${v & 0x7fffffff} out of range`);
    }
    return index;
  }

  get packChecksum(): Buffer {
    return this.buf.subarray(this.buf.length - 2 * this.hashLength, this.buf.length - this.hashLength);
  }

  get indexChecksum(): Buffer {
    return this.buf.subarray(this.buf.length - this.hashLength);
  }

  /** The raw id at sorted position `k` (a view). */
  oidAt(k: number): Buffer {
    const at = this.oidsAt + k * this.hashLength;
    return this.buf.subarray(at, at + this.hashLength);
  }

  crc32At(k: number): number {
    return this.buf.readUInt32BE(this.crcAt + k * 4);
  }

  offsetAt(k: number): number {
    const v = this.buf.readUInt32BE(this.offAt + k * 4);
    if (!(v & 0x80000000)) return v;
    const at = this.largeAt + (v & 0x7fffffff) * 8;
    return this.buf.readUInt32BE(at) * 2 ** 32 + this.buf.readUInt32BE(at + 4);
  }

  /**
   * Sorted position of a raw id, or -1. Graph walks look ids up millions of
   * times, so beyond the file's own fan-out table a hash table keyed by the
   * id's first four bytes (open addressing, built on first use, 8 bytes per
   * object) answers in a probe or two; a full comparison confirms each hit.
   */
  findRaw(oid: Uint8Array, oidAt = 0): number {
    const table = (this.table ??= this.buildTable());
    const key = ((oid[oidAt] << 24) | (oid[oidAt + 1] << 16) | (oid[oidAt + 2] << 8) | oid[oidAt + 3]) >>> 0;
    const mask = table.length - 1;
    for (let slot = Math.imul(key, 0x9e3779b1) >>> this.tableShift; ; slot = (slot + 1) & mask) {
      const entry = table[slot];
      if (entry === 0) return -1;
      const k = entry - 1;
      if (compareRawIds(this.buf, this.oidsAt + k * this.hashLength, oid, oidAt, this.hashLength) === 0) return k;
    }
  }

  private table: Int32Array | undefined;
  private tableShift = 32;

  private buildTable(): Int32Array {
    let bits = 1;
    while (1 << bits < this.count * 2) bits++;
    const table = new Int32Array(1 << bits);
    this.tableShift = 32 - bits;
    const mask = table.length - 1;
    for (let k = 0; k < this.count; k++) {
      const key = this.buf.readUInt32BE(this.oidsAt + k * this.hashLength);
      let slot = Math.imul(key, 0x9e3779b1) >>> this.tableShift;
      while (table[slot] !== 0) slot = (slot + 1) & mask;
      table[slot] = k + 1;
    }
    return table;
  }

  find(oid: ObjectId): number {
    return this.findRaw(oidFromHex(oid));
  }

  /** Pack offset of an object, or undefined when the index does not hold it. */
  tryOffsetOf(oid: ObjectId): number | undefined {
    const k = this.find(oid);
    return k < 0 ? undefined : this.offsetAt(k);
  }
}

// Per-entry tables that pass one fills and pass two reads, kept as flat typed
// arrays over SharedArrayBuffers so that worker threads resolve deltas in
// place without copying (one row per pack entry, in pack order).
import { PackferryError, ErrorCode } from '../core/errors.js';

/** Objects below this size are flagged in `types` (bit 7), so small blobs can be found without reading them. */
export const SMALL_OBJECT = 1024;
export const SMALL_FLAG = 0x80;

/** Entry kinds in `baseIndex`. */
export const NOT_A_DELTA = -2;
export const REF_DELTA_BASE = -1;

export interface PackTablesBuffers {
  count: number;
  hashLength: number;
  offsets: SharedArrayBuffer;
  headerLengths: SharedArrayBuffer;
  sizes: SharedArrayBuffer;
  types: SharedArrayBuffer;
  crc32s: SharedArrayBuffer;
  oids: SharedArrayBuffer;
  baseIndex: SharedArrayBuffer;
  depths: SharedArrayBuffer;
}

/**
 * Struct-of-arrays over one pack's entries. `types` holds the pack type in
 * bits 0-2, the object's type (once resolved) in bits 4-6, and SMALL_FLAG.
 */
export class PackTables {
  count = 0;
  capacity: number;
  offsets!: Float64Array;
  headerLengths!: Uint8Array;
  /** Inflated size of each entry's data (the delta's own size for deltas). */
  sizes!: Float64Array;
  types!: Uint8Array;
  crc32s!: Uint32Array;
  oids!: Uint8Array;
  /** Index of the base entry for OFS_DELTA, REF_DELTA_BASE or NOT_A_DELTA. */
  baseIndex!: Int32Array;
  /** Delta chain length (0 for whole objects). */
  depths!: Uint32Array;

  constructor(
    readonly hashLength: number,
    capacity: number,
    buffers?: PackTablesBuffers,
  ) {
    this.capacity = capacity;
    if (buffers) {
      this.count = buffers.count;
      this.attach(buffers);
    } else {
      this.attach(this.allocate(capacity));
    }
  }

  static fromBuffers(buffers: PackTablesBuffers): PackTables {
    return new PackTables(buffers.hashLength, buffers.count, buffers);
  }

  buffers(): PackTablesBuffers {
    return {
      count: this.count,
      hashLength: this.hashLength,
      offsets: this.offsets.buffer as SharedArrayBuffer,
      headerLengths: this.headerLengths.buffer as SharedArrayBuffer,
      sizes: this.sizes.buffer as SharedArrayBuffer,
      types: this.types.buffer as SharedArrayBuffer,
      crc32s: this.crc32s.buffer as SharedArrayBuffer,
      oids: this.oids.buffer as SharedArrayBuffer,
      baseIndex: this.baseIndex.buffer as SharedArrayBuffer,
      depths: this.depths.buffer as SharedArrayBuffer,
    };
  }

  /** Grows to hold at least `needed` entries, keeping what is there. */
  ensureCapacity(needed: number): void {
    if (needed <= this.capacity) return;
    const old = this.buffers();
    const capacity = Math.max(needed, Math.ceil(this.capacity * 1.5), 1024);
    const fresh = this.allocate(capacity);
    for (const key of ['offsets', 'headerLengths', 'sizes', 'types', 'crc32s', 'oids', 'baseIndex', 'depths'] as const) {
      new Uint8Array(fresh[key]).set(new Uint8Array(old[key]));
    }
    this.capacity = capacity;
    this.attach(fresh);
  }

  private allocate(capacity: number): PackTablesBuffers {
    const sab = (bytes: number): SharedArrayBuffer => {
      try {
        return new SharedArrayBuffer(bytes);
      } catch (err) {
        throw new PackferryError(ErrorCode.LimitExceeded, `cannot allocate tables for ${capacity} pack entries`, { cause: err });
      }
    };
    // offsets has one extra slot: the end of the last entry.
    return {
      count: this.count,
      hashLength: this.hashLength,
      offsets: sab((capacity + 1) * 8),
      headerLengths: sab(capacity),
      sizes: sab(capacity * 8),
      types: sab(capacity),
      crc32s: sab(capacity * 4),
      oids: sab(capacity * this.hashLength),
      baseIndex: sab(capacity * 4),
      depths: sab(capacity * 4),
    };
  }

  private attach(b: PackTablesBuffers): void {
    this.offsets = new Float64Array(b.offsets);
    this.headerLengths = new Uint8Array(b.headerLengths);
    this.sizes = new Float64Array(b.sizes);
    this.types = new Uint8Array(b.types);
    this.crc32s = new Uint32Array(b.crc32s);
    this.oids = new Uint8Array(b.oids);
    this.baseIndex = new Int32Array(b.baseIndex);
    this.depths = new Uint32Array(b.depths);
  }

  packType(i: number): number {
    return this.types[i] & 7;
  }

  /** The object type (1-4) once known, else 0. */
  objectType(i: number): number {
    return (this.types[i] >> 4) & 7;
  }

  /** Is the object (once known) smaller than SMALL_OBJECT bytes? (Git LFS pointers are; see mirror/lfs.) */
  isSmall(i: number): boolean {
    return (this.types[i] & SMALL_FLAG) !== 0;
  }

  /** Index of the entry starting at `offset`, or -1 (entries are in offset order). */
  findOffset(offset: number): number {
    let lo = 0;
    let hi = this.count;
    const offsets = this.offsets;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const v = offsets[mid];
      if (v === offset) return mid;
      if (v < offset) lo = mid + 1;
      else hi = mid;
    }
    return -1;
  }
}

// Pack file format primitives (gitformat-pack, "pack-*.pack files have the
// following format"): the 12-byte header, per-entry headers with their
// variable-length size, and the OFS_DELTA negative-offset encoding.
// Pure functions over bytes; no I/O.
import { PackferryError, ErrorCode } from '../core/errors.js';

/** Entry types as stored in a pack entry header (3 bits): the object types of core/object-type.ts plus the two deltas. */
export const PackObjectType = {
  Commit: 1,
  Tree: 2,
  Blob: 3,
  Tag: 4,
  OfsDelta: 6,
  RefDelta: 7,
} as const;
export type PackObjectType = (typeof PackObjectType)[keyof typeof PackObjectType];

export function isDeltaType(type: number): boolean {
  return type === PackObjectType.OfsDelta || type === PackObjectType.RefDelta;
}

export const PACK_SIGNATURE = 0x5041434b; // "PACK"
export const PACK_HEADER_SIZE = 12;
/** Smallest possible entry: a one-byte header and a minimal zlib stream (2 + 2 + 4 bytes). */
export const MIN_ENTRY_SIZE = 9;

export interface PackHeader {
  version: 2 | 3;
  objectCount: number;
}

/** Parses the 12-byte pack header at the start of `buf`. */
export function parsePackHeader(buf: Uint8Array): PackHeader {
  if (buf.length < PACK_HEADER_SIZE) {
    throw new PackferryError(ErrorCode.PackTruncated, `pack is truncated: ${buf.length} bytes, shorter than its 12-byte header`);
  }
  const view = new DataView(buf.buffer, buf.byteOffset, PACK_HEADER_SIZE);
  if (view.getUint32(0) !== PACK_SIGNATURE) {
    throw new PackferryError(ErrorCode.PackSignature, 'not a pack: bad signature (expected "PACK")', {
      details: { signature: Buffer.from(buf.subarray(0, 4)).toString('hex') },
    });
  }
  const version = view.getUint32(4);
  if (version !== 2 && version !== 3) {
    throw new PackferryError(ErrorCode.PackVersion, `unsupported pack version ${version}`, { details: { version } });
  }
  return { version, objectCount: view.getUint32(8) };
}

export function encodePackHeader(objectCount: number, version: 2 | 3 = 2): Buffer {
  const buf = Buffer.alloc(PACK_HEADER_SIZE);
  buf.writeUInt32BE(PACK_SIGNATURE, 0);
  buf.writeUInt32BE(version, 4);
  buf.writeUInt32BE(objectCount, 8);
  return buf;
}

/** A decoded entry header. For OFS_DELTA, `baseDistance` is how far back the base starts. */
export interface EntryHeader {
  type: number;
  /** Inflated size of the entry's data (for deltas: the size of the delta itself). */
  size: number;
  /** Bytes taken by the header, including the OFS distance or REF base id. */
  length: number;
  baseDistance: number;
  /** Offset within the parsed buffer of the REF_DELTA base id, or -1. */
  baseIdAt: number;
}

/** Result of a decode step: complete, or more bytes are needed (gitoxide's decoder style). */
export const INCOMPLETE = null;

/**
 * Decodes the entry header at `buf[at..end)`. Returns null when more bytes are
 * needed. `entryOffset` (the entry's position in the pack) is only used for
 * error details and to check that an OFS_DELTA base lies inside the pack.
 */
export function parseEntryHeader(buf: Uint8Array, at: number, end: number, entryOffset: number, hashLength = 20): EntryHeader | null {
  let p = at;
  if (p >= end) return INCOMPLETE;
  let c = buf[p++];
  const type = (c >> 4) & 7;
  let size = c & 15;
  let scale = 16;
  while (c & 0x80) {
    if (p >= end) return INCOMPLETE;
    c = buf[p++];
    size += (c & 0x7f) * scale;
    scale *= 128;
    if (scale > 2 ** 53) {
      throw new PackferryError(ErrorCode.PackEntryHeader, `bad entry header at offset ${entryOffset}: size varint too long`, {
        details: { offset: entryOffset },
      });
    }
  }
  if (type === 0 || type === 5) {
    throw new PackferryError(ErrorCode.PackEntryHeader, `bad entry header at offset ${entryOffset}: invalid object type ${type}`, {
      details: { offset: entryOffset, type },
    });
  }
  let baseDistance = 0;
  let baseIdAt = -1;
  if (type === PackObjectType.OfsDelta) {
    // "offset encoding": n bytes with MSB set in all but the last; add 2^7 + 2^14 + ... per extra byte.
    if (p >= end) return INCOMPLETE;
    c = buf[p++];
    let distance = c & 0x7f;
    while (c & 0x80) {
      if (p >= end) return INCOMPLETE;
      c = buf[p++];
      distance = (distance + 1) * 128 + (c & 0x7f);
      if (distance > 2 ** 53) {
        throw new PackferryError(ErrorCode.PackBadOffset, `bad OFS_DELTA at offset ${entryOffset}: base distance overflows`, {
          details: { offset: entryOffset },
        });
      }
    }
    if (distance === 0 || distance > entryOffset - PACK_HEADER_SIZE) {
      throw new PackferryError(
        ErrorCode.PackBadOffset,
        `bad OFS_DELTA at offset ${entryOffset}: base distance ${distance} points ${distance === 0 ? 'at the entry itself' : 'before the start of the pack'}`,
        { details: { offset: entryOffset, distance } },
      );
    }
    baseDistance = distance;
  } else if (type === PackObjectType.RefDelta) {
    if (end - p < hashLength) return INCOMPLETE;
    baseIdAt = p;
    p += hashLength;
  }
  return { type, size, length: p - at, baseDistance, baseIdAt };
}

/** Encodes an entry header: type, inflated size, and for OFS_DELTA the base distance. */
export function encodeEntryHeader(type: number, size: number, baseDistance = 0, baseId?: Uint8Array): Buffer {
  const bytes: number[] = [];
  let c = (type << 4) | (size & 15);
  let rest = Math.floor(size / 16);
  while (rest > 0) {
    bytes.push(c | 0x80);
    c = rest & 0x7f;
    rest = Math.floor(rest / 128);
  }
  bytes.push(c);
  if (type === PackObjectType.OfsDelta) {
    const ofs: number[] = [baseDistance & 0x7f];
    let d = Math.floor(baseDistance / 128);
    while (d > 0) {
      d -= 1;
      ofs.unshift(0x80 | (d & 0x7f));
      d = Math.floor(d / 128);
    }
    bytes.push(...ofs);
  }
  const head = Buffer.from(bytes);
  if (type === PackObjectType.RefDelta) {
    if (baseId === undefined) throw new PackferryError(ErrorCode.Usage, 'REF_DELTA entry needs a base id');
    return Buffer.concat([head, baseId]);
  }
  return head;
}

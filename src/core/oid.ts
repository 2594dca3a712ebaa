// Object ids: lowercase hex strings at API boundaries, raw bytes in hot paths
// (pack indexes keep ids in flat Uint8Arrays).
import { PackferryError, ErrorCode } from './errors.js';
import { SHA1, type HashAlgorithm } from './hash.js';

/** An object id in lowercase hex. */
export type ObjectId = string;

const HEX_RE = /^[0-9a-f]+$/;

export function isObjectId(value: string, algo: HashAlgorithm = SHA1): boolean {
  return value.length === algo.hexLength && HEX_RE.test(value);
}

/** Validates and returns a hex id; throws ERR_INVALID_OBJECT_ID otherwise. */
export function parseObjectId(value: string, algo: HashAlgorithm = SHA1): ObjectId {
  if (!isObjectId(value, algo)) {
    throw new PackferryError(ErrorCode.InvalidObjectId, `invalid ${algo.name} object id: ${JSON.stringify(value.slice(0, 80))}`);
  }
  return value;
}

export function oidToHex(raw: Uint8Array, offset = 0, length = 20): ObjectId {
  return Buffer.from(raw.buffer, raw.byteOffset + offset, length).toString('hex');
}

export function oidFromHex(hex: ObjectId): Buffer {
  return Buffer.from(hex, 'hex');
}

/** Compares two raw ids stored in flat arrays, as memcmp would. */
export function compareRawIds(a: Uint8Array, aOffset: number, b: Uint8Array, bOffset: number, length: number): number {
  for (let i = 0; i < length; i++) {
    const d = a[aOffset + i] - b[bOffset + i];
    if (d !== 0) return d;
  }
  return 0;
}

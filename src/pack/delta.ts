// Delta application (gitformat-pack, "Deltified representation"): a delta is
// the base size, the result size (both little-endian base-128 varints), then
// instructions that either copy a range of the base or insert literal bytes.
// Every range is checked against the base, the delta and the declared result
// size, so a hostile delta fails with ERR_DELTA_CORRUPT instead of reading or
// writing out of bounds or allocating more than the limits allow.
import { constants as bufferConstants } from 'node:buffer';
import { PackferryError, ErrorCode } from '../core/errors.js';
import { DEFAULT_LIMITS, type Limits } from '../core/limits.js';

export interface DeltaHeader {
  baseSize: number;
  resultSize: number;
  /** Offset of the first instruction. */
  instructionsAt: number;
}

/**
 * A declared result the limits allow (up to 4 GiB by default) may still be
 * more than Node.js can allocate: over buffer.constants.MAX_LENGTH once the
 * header room is added, or more memory than there is. That is
 * ERR_LIMIT_EXCEEDED, not a RangeError.
 */
function cannotAllocate(resultSize: number, cause?: unknown): PackferryError {
  return new PackferryError(ErrorCode.LimitExceeded, `delta declares a ${resultSize}-byte result, more than can be allocated`, {
    cause,
    details: { limit: 'allocation', declared: resultSize },
  });
}

function corrupt(message: string, details: Record<string, unknown> = {}): PackferryError {
  return new PackferryError(ErrorCode.DeltaCorrupt, `corrupt delta: ${message}`, { details });
}

export function readDeltaHeader(delta: Uint8Array): DeltaHeader {
  let p = 0;
  const readSize = (what: string): number => {
    let value = 0;
    let scale = 1;
    let c: number;
    do {
      if (p >= delta.length) throw corrupt(`truncated ${what} size`);
      c = delta[p++];
      value += (c & 0x7f) * scale;
      scale *= 128;
      if (scale > 2 ** 56) throw corrupt(`${what} size varint too long`);
    } while (c & 0x80);
    return value;
  };
  const baseSize = readSize('base');
  const resultSize = readSize('result');
  return { baseSize, resultSize, instructionsAt: p };
}

/**
 * Applies `delta` to `base`. `limits.maxDeltaResultSize` bounds the declared
 * result size before anything is allocated (a "delta bomb" declares a huge
 * result from a few bytes). With `headerRoom`, the result is a view that
 * starts `headerRoom` bytes into its allocation, leaving space in front for
 * an object header so that hashing needs no copy. `allocate` supplies the
 * memory (a pool, in delta resolution).
 */
export function applyDelta(
  baseBytes: Uint8Array,
  deltaBytes: Uint8Array,
  limits: Pick<Limits, 'maxDeltaResultSize'> = DEFAULT_LIMITS,
  headerRoom = 0,
  allocate: (size: number) => Buffer = Buffer.allocUnsafe,
): Buffer {
  const base = asBuffer(baseBytes);
  const delta = asBuffer(deltaBytes);
  const { baseSize, resultSize, instructionsAt } = readDeltaHeader(delta);
  if (baseSize !== base.length) {
    throw corrupt(`base size ${baseSize} does not match the base object's ${base.length} bytes`, { baseSize, actual: base.length });
  }
  if (resultSize > limits.maxDeltaResultSize) {
    throw new PackferryError(
      ErrorCode.LimitExceeded,
      `delta declares a ${resultSize}-byte result, over the limit of ${limits.maxDeltaResultSize} (maxDeltaResultSize)`,
      { details: { limit: 'maxDeltaResultSize', declared: resultSize, max: limits.maxDeltaResultSize } },
    );
  }
  if (headerRoom + resultSize > bufferConstants.MAX_LENGTH) throw cannotAllocate(resultSize);
  let result: Buffer;
  try {
    result = allocate(headerRoom + resultSize).subarray(headerRoom, headerRoom + resultSize);
  } catch (err) {
    if (err instanceof RangeError) throw cannotAllocate(resultSize, err);
    throw err;
  }
  let out = 0;
  let p = instructionsAt;
  const end = delta.length;
  while (p < end) {
    const op = delta[p++];
    if (op & 0x80) {
      // Copy from base: offset bytes flagged by bits 0-3, size bytes by bits 4-6.
      let offset = 0;
      let size = 0;
      if (op & 0x01) offset = delta[p++];
      if (op & 0x02) offset |= delta[p++] << 8;
      if (op & 0x04) offset |= delta[p++] << 16;
      if (op & 0x08) offset = offset + delta[p++] * 0x1000000;
      if (op & 0x10) size = delta[p++];
      if (op & 0x20) size |= delta[p++] << 8;
      if (op & 0x40) size |= delta[p++] << 16;
      if (p > end) throw corrupt('truncated copy instruction');
      if (size === 0) size = 0x10000;
      if (offset + size > baseSize) {
        throw corrupt(`copy of ${size} bytes at ${offset} runs past the ${baseSize}-byte base`, { offset, size, baseSize });
      }
      if (out + size > resultSize) throw corrupt(`copy runs past the declared ${resultSize}-byte result`, { resultSize });
      // Short runs copy faster in a loop than through a native call (measured crossover ~64 bytes).
      if (size < 64) {
        for (let i = 0; i < size; i++) result[out + i] = base[offset + i];
      } else {
        base.copy(result, out, offset, offset + size);
      }
      out += size;
    } else if (op !== 0) {
      // Insert the next `op` bytes of the delta.
      if (p + op > end) throw corrupt('truncated insert instruction');
      if (out + op > resultSize) throw corrupt(`insert runs past the declared ${resultSize}-byte result`, { resultSize });
      if (op < 64) {
        for (let i = 0; i < op; i++) result[out + i] = delta[p + i];
      } else {
        delta.copy(result, out, p, p + op);
      }
      out += op;
      p += op;
    } else {
      throw corrupt('reserved instruction 0x00');
    }
  }
  if (out !== resultSize) throw corrupt(`result is ${out} bytes, not the declared ${resultSize}`, { resultSize, actual: out });
  return result;
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Encodes a delta header (used by tests and by the pack writer's delta encoder). */
export function encodeDeltaSize(size: number): number[] {
  const bytes: number[] = [];
  let v = size;
  do {
    let c = v & 0x7f;
    v = Math.floor(v / 128);
    if (v > 0) c |= 0x80;
    bytes.push(c);
  } while (v > 0);
  return bytes;
}

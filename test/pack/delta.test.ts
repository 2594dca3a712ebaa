// Delta application (gitformat-pack, "Deltified representation") on
// hand-built deltas: the header varints, copy instructions with every
// combination of offset and size bytes (including the rule that a size of
// zero means 0x10000, and 4-byte offsets), inserts, and every way a delta
// can be corrupt.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCode, PackferryError } from '../../src/core/errors.js';
import { applyDelta, encodeDeltaSize, readDeltaHeader } from '../../src/pack/delta.js';
import { copyOp, deltaHeader, insertOp, makeDelta } from '../support/pack-craft.js';

function expectDeltaError(run: () => unknown, code: ErrorCode, message: RegExp): PackferryError {
  try {
    run();
  } catch (err) {
    assert.ok(err instanceof PackferryError, `expected a PackferryError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.match(err.message, message);
    return err;
  }
  return assert.fail('expected an error');
}

/** A base whose byte i is a function of i, so any copy is easy to check. */
function patterned(size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = (i * 7 + (i >>> 8) * 13 + (i >>> 16)) & 0xff;
  return b;
}

describe('readDeltaHeader', () => {
  test('single-byte and multi-byte sizes, and where the instructions start', () => {
    assert.deepEqual(readDeltaHeader(Buffer.from([0x05, 0x7f, 0x90])), { baseSize: 5, resultSize: 127, instructionsAt: 2 });
    // 3000 = 0x38 + 0x17 * 128, low group first.
    assert.deepEqual(readDeltaHeader(Buffer.from([0xb8, 0x17, 0x80, 0x01])), { baseSize: 3000, resultSize: 128, instructionsAt: 4 });
    assert.deepEqual(readDeltaHeader(deltaHeader(2 ** 35 + 3, 0)), { baseSize: 2 ** 35 + 3, resultSize: 0, instructionsAt: 7 });
  });

  test('encodeDeltaSize round-trips, and is what Git writes', () => {
    assert.deepEqual(encodeDeltaSize(0), [0]);
    assert.deepEqual(encodeDeltaSize(127), [0x7f]);
    assert.deepEqual(encodeDeltaSize(128), [0x80, 0x01]);
    assert.deepEqual(encodeDeltaSize(3000), [0xb8, 0x17]);
    for (const n of [1, 255, 16383, 16384, 2 ** 21, 2 ** 32 - 1, 2 ** 32, 2 ** 48 + 5]) {
      assert.equal(readDeltaHeader(Buffer.from([...encodeDeltaSize(n), ...encodeDeltaSize(n + 1)])).resultSize, n + 1);
    }
  });

  test('truncated sizes and overlong varints: ERR_DELTA_CORRUPT', () => {
    expectDeltaError(() => readDeltaHeader(Buffer.alloc(0)), ErrorCode.DeltaCorrupt, /truncated base size/);
    expectDeltaError(() => readDeltaHeader(Buffer.from([0x80])), ErrorCode.DeltaCorrupt, /truncated base size/);
    expectDeltaError(() => readDeltaHeader(Buffer.from([0x05])), ErrorCode.DeltaCorrupt, /truncated result size/);
    expectDeltaError(() => readDeltaHeader(Buffer.from([0x05, 0xff, 0xff])), ErrorCode.DeltaCorrupt, /truncated result size/);
    expectDeltaError(() => readDeltaHeader(Buffer.alloc(10, 0xff)), ErrorCode.DeltaCorrupt, /base size varint too long/);
    expectDeltaError(() => readDeltaHeader(Buffer.from([0x01, ...new Array<number>(9).fill(0x80), 0x01])), ErrorCode.DeltaCorrupt, /result size varint too long/);
  });
});

describe('applyDelta', () => {
  const base = patterned(300_000);

  test('copies and inserts in any order', () => {
    const delta = makeDelta(base.length, 4 + 10 + 3 + 1, insertOp('head'), copyOp(1000, 10), insertOp('mid'), copyOp(0, 1));
    const out = applyDelta(base, delta);
    assert.deepEqual(out, Buffer.concat([Buffer.from('head'), base.subarray(1000, 1010), Buffer.from('mid'), base.subarray(0, 1)]));
  });

  test('an empty result from an empty instruction list', () => {
    assert.equal(applyDelta(Buffer.from('abc'), makeDelta(3, 0)).length, 0);
    assert.equal(applyDelta(Buffer.alloc(0), makeDelta(0, 0)).length, 0);
  });

  test('a copy with no size bytes copies 0x10000 bytes', () => {
    const op = copyOp(5, 0x10000);
    assert.deepEqual(op, Buffer.from([0x81, 0x05]), 'offset byte only, no size bytes');
    const out = applyDelta(base, makeDelta(base.length, 0x10000, op));
    assert.deepEqual(out, base.subarray(5, 5 + 0x10000));
    // The bare opcode 0x80: offset 0, size 0x10000.
    assert.deepEqual(applyDelta(base, makeDelta(base.length, 0x10000, Buffer.from([0x80]))), base.subarray(0, 0x10000));
  });

  test('an explicit size of 0x10000 (size byte 3 only) means what it says', () => {
    const out = applyDelta(base, makeDelta(base.length, 0x10000, Buffer.from([0x80 | 0x01 | 0x40, 0x07, 0x01])));
    assert.deepEqual(out, base.subarray(7, 7 + 0x10000));
  });

  test('a zero-size copy past a small base: 0x10000 is checked against the base', () => {
    expectDeltaError(() => applyDelta(Buffer.alloc(100), makeDelta(100, 100, Buffer.from([0x80]))), ErrorCode.DeltaCorrupt, /copy of 65536 bytes at 0 runs past the 100-byte base/);
  });

  test('every combination of offset and size bytes', () => {
    for (let flags = 0; flags < 128; flags++) {
      const bytes = [0x80 | flags];
      let offset = 0;
      let size = 0;
      const offsetBytes = [0x11, 0x22, 0x03, 0x00];
      const sizeBytes = [0x21, 0x02, 0x01];
      for (let i = 0; i < 4; i++) {
        if (flags & (1 << i)) {
          bytes.push(offsetBytes[i]);
          offset += offsetBytes[i] * 2 ** (8 * i);
        }
      }
      for (let i = 0; i < 3; i++) {
        if (flags & (0x10 << i)) {
          bytes.push(sizeBytes[i]);
          size += sizeBytes[i] * 2 ** (8 * i);
        }
      }
      if (size === 0) size = 0x10000;
      const delta = makeDelta(base.length, size, Buffer.from(bytes));
      if (offset + size > base.length) {
        expectDeltaError(() => applyDelta(base, delta), ErrorCode.DeltaCorrupt, /runs past the 300000-byte base/);
      } else {
        assert.deepEqual(applyDelta(base, delta), base.subarray(offset, offset + size), `flags 0x${flags.toString(16)}`);
      }
    }
  });

  test('4-byte offsets reach past 16 MiB', () => {
    const big = patterned(0x01020304 + 64);
    const op = copyOp(0x01020304, 64);
    assert.equal(op[0], 0x80 | 0x0f | 0x10, 'all four offset bytes and one size byte');
    assert.deepEqual(applyDelta(big, makeDelta(big.length, 64, op)), big.subarray(0x01020304, 0x01020304 + 64));
  });

  test('an offset with the top bit of its fourth byte set stays positive', () => {
    // 0x80000000 must not become a negative number that slips past the bounds check.
    const op = Buffer.from([0x80 | 0x08 | 0x10, 0x80, 0x04]);
    const err = expectDeltaError(() => applyDelta(base, makeDelta(base.length, 4, op)), ErrorCode.DeltaCorrupt, /copy of 4 bytes at 2147483648 runs past/);
    assert.equal(err.details.offset, 2 ** 31);
    const max = Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    expectDeltaError(() => applyDelta(base, makeDelta(base.length, 0xffffff, max)), ErrorCode.DeltaCorrupt, /at 4294967295 runs past/);
  });

  test('inserts of 1 to 127 bytes', () => {
    const data = patterned(127);
    for (const n of [1, 31, 32, 126, 127]) {
      assert.deepEqual(applyDelta(base, makeDelta(base.length, n, Buffer.from([n]), data.subarray(0, n))), data.subarray(0, n));
    }
  });

  test('headerRoom leaves space in front of the result', () => {
    const out = applyDelta(base, makeDelta(base.length, 3, insertOp('abc')), undefined, 32);
    assert.equal(out.toString(), 'abc');
    assert.ok(out.byteOffset >= 32, 'room in front');
    const full = Buffer.from(out.buffer, out.byteOffset - 32, 35);
    full.write('blob 3\0', 32 - 7);
    assert.equal(full.subarray(25).toString(), 'blob 3\0abc');
  });

  describe('corrupt deltas: ERR_DELTA_CORRUPT', () => {
    const small = Buffer.from('0123456789');
    const cases: Array<[string, Buffer, RegExp]> = [
      ['base size differs from the base', makeDelta(11, 1, copyOp(0, 1)), /base size 11 does not match the base object's 10 bytes/],
      ['copy past the end of the base', makeDelta(10, 5, copyOp(6, 5)), /copy of 5 bytes at 6 runs past the 10-byte base/],
      ['copy past the declared result', makeDelta(10, 4, copyOp(0, 5)), /copy runs past the declared 4-byte result/],
      ['insert past the declared result', makeDelta(10, 2, insertOp('abc')), /insert runs past the declared 2-byte result/],
      ['result shorter than declared', makeDelta(10, 6, copyOp(0, 5)), /result is 5 bytes, not the declared 6/],
      ['reserved instruction 0x00', makeDelta(10, 2, insertOp('a'), Buffer.from([0x00]), insertOp('b')), /reserved instruction 0x00/],
      ['copy missing its offset byte', makeDelta(10, 1, Buffer.from([0x91])), /truncated copy instruction/],
      ['copy missing its size byte', makeDelta(10, 1, Buffer.from([0x91, 0x00])), /truncated copy instruction/],
      ['insert missing its data', makeDelta(10, 3, Buffer.from([0x03, 0x61])), /truncated insert instruction/],
      ['no header at all', Buffer.alloc(0), /truncated base size/],
    ];
    for (const [name, delta, message] of cases) {
      test(name, () => {
        expectDeltaError(() => applyDelta(small, delta), ErrorCode.DeltaCorrupt, message);
      });
    }
  });

  test('a declared result over maxDeltaResultSize fails before anything is allocated: ERR_LIMIT_EXCEEDED', () => {
    const err = expectDeltaError(
      () => applyDelta(base, makeDelta(base.length, 2 ** 50, copyOp(0, 1)), { maxDeltaResultSize: 1 << 20 }),
      ErrorCode.LimitExceeded,
      /declares a 1125899906842624-byte result, over the limit of 1048576 \(maxDeltaResultSize\)/,
    );
    assert.deepEqual(err.details, { limit: 'maxDeltaResultSize', declared: 2 ** 50, max: 1 << 20 });
    // The default limit (4 GiB) applies too.
    expectDeltaError(() => applyDelta(base, makeDelta(base.length, 2 ** 33, copyOp(0, 1))), ErrorCode.LimitExceeded, /maxDeltaResultSize/);
    // At the limit is allowed.
    assert.equal(applyDelta(base, makeDelta(base.length, 8, copyOp(0, 8)), { maxDeltaResultSize: 8 }).length, 8);
  });

  test('regression: a result the default limit allows but Node.js cannot allocate is ERR_LIMIT_EXCEEDED, not a RangeError', () => {
    // 4 GiB is both maxDeltaResultSize's default and buffer.constants.MAX_LENGTH: with the header
    // room the indexer asks for, Buffer.allocUnsafe threw ERR_OUT_OF_RANGE (a RangeError).
    for (const declared of [2 ** 32, 2 ** 32 - 10]) {
      const err = expectDeltaError(
        () => applyDelta(base, makeDelta(base.length, declared, copyOp(0, 1)), undefined, 32),
        ErrorCode.LimitExceeded,
        new RegExp(`declares a ${declared}-byte result, more than can be allocated`),
      );
      assert.equal(err.details.limit, 'allocation');
    }
    // Without header room it fits, and the lie is found by the instructions.
    expectDeltaError(() => applyDelta(base, makeDelta(base.length, 2 ** 32, copyOp(0, 1))), ErrorCode.DeltaCorrupt, /result is 1 bytes, not the declared 4294967296/);
  });
});

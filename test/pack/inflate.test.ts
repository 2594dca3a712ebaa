// The incremental inflater: the native-handle fast path and the public-API
// fallback must agree on output, consumed bytes and where a stream ends,
// however the input is split.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { deflateSync } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import { createInflater, hasNativeInflater, inflateKnownSize, type Inflater } from '../../src/pack/inflate.js';
import { isPackferryError, ErrorCode } from '../../src/core/errors.js';

/** Feeds `input` in pieces of `step` bytes until the stream ends; returns output and bytes consumed. */
function inflatePieces(inflater: Inflater, input: Buffer, step: number, outSize: number): { out: Buffer; consumed: number } {
  inflater.reset();
  const out = Buffer.alloc(outSize + 1);
  let produced = 0;
  let pos = 0;
  for (;;) {
    const len = Math.min(step, input.length - pos);
    const ended = inflater.write(input, pos, len, out, produced, out.length - produced);
    produced += inflater.produced;
    pos += inflater.consumed;
    if (ended) return { out: out.subarray(0, produced), consumed: pos };
    if (pos >= input.length) throw new Error('input ran out before the stream ended');
  }
}

const samples = [
  Buffer.alloc(0),
  Buffer.from('hello, world\n'),
  Buffer.from('abc'.repeat(20000)),
  randomBytes(70000),
];

describe('inflater', () => {
  test('the native fast path is available on this Node.js', () => {
    assert.equal(hasNativeInflater(), true);
  });

  for (const forceFallback of [false, true]) {
    const name = forceFallback ? 'fallback' : 'native';
    test(`${name}: output and end position are exact for any split`, () => {
      const inflater = createInflater({ forceFallback });
      try {
        for (const data of samples) {
          const stream = deflateSync(data);
          const input = Buffer.concat([stream, Buffer.from('NEXT-ENTRY')]);
          for (const step of [1, 3, 64, input.length]) {
            const { out, consumed } = inflatePieces(inflater, input, step, data.length);
            assert.ok(out.equals(data), `${name} step ${step}: output`);
            assert.equal(consumed, stream.length, `${name} step ${step}: consumed`);
          }
        }
      } finally {
        inflater.close();
      }
    });

    test(`${name}: corrupt data is ERR_PACK_ZLIB and the inflater is usable afterwards`, () => {
      const inflater = createInflater({ forceFallback });
      try {
        const stream = deflateSync(Buffer.from('some data that compresses'.repeat(10)));
        const bad = Buffer.from(stream);
        bad[bad.length - 2] ^= 0xff; // break the Adler-32 checksum
        const input = Buffer.concat([bad, Buffer.from('X')]);
        assert.throws(
          () => inflatePieces(inflater, input, input.length, 300),
          (err: unknown) => isPackferryError(err, ErrorCode.PackZlib),
        );
        const good = Buffer.concat([stream, Buffer.from('X')]);
        assert.equal(inflatePieces(inflater, good, good.length, 300).consumed, stream.length);
      } finally {
        inflater.close();
      }
    });
  }

  test('inflateKnownSize rejects a stream longer or shorter than declared, and a truncated one', () => {
    const inflater = createInflater();
    try {
      const data = Buffer.from('x'.repeat(1000));
      const input = Buffer.concat([deflateSync(data), Buffer.from('Z')]);
      assert.equal(inflateKnownSize(inflater, input, 0, input.length, 1000).data.length, 1000);
      assert.throws(() => inflateKnownSize(inflater, input, 0, input.length, 999), (e: unknown) => isPackferryError(e, ErrorCode.PackSizeMismatch));
      assert.throws(() => inflateKnownSize(inflater, input, 0, input.length, 1001), (e: unknown) => isPackferryError(e, ErrorCode.PackSizeMismatch));
      assert.throws(() => inflateKnownSize(inflater, input, 0, input.length - 6, 1000), (e: unknown) => isPackferryError(e, ErrorCode.PackTruncated));
    } finally {
      inflater.close();
    }
  });
});

// Hostile and broken packs: every defect must end in a PackferryError with its
// own stable code, from indexPackFile and from indexPackStream (whatever the
// chunking, and with the partial file removed), never a hang or a crash. Each
// pack is built by hand with a correct trailer, so that it carries exactly the
// one defect under test; where Git also rejects the bytes, `git index-pack` is
// run on them as the reference.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, PackferryError } from '../../src/core/errors.js';
import { writePackIndexV2 } from '../../src/pack/idx.js';
import { PackReader } from '../../src/pack/reader.js';
import { gitAsync, tempDir } from '../support/git.js';
import { Prng } from '../support/repogen.js';
import {
  Blob,
  OfsDelta,
  PackBuilder,
  assemblePack,
  copyOp,
  expectGitRejects,
  expectIndexFailure,
  fixTrailer,
  gitIndexPack,
  indexBoth,
  insertOp,
  makeDelta,
  oidOf,
  rawEntry,
} from '../support/pack-craft.js';

const T = { timeout: 20_000 };

/** Two blobs, an OFS_DELTA on the first and a REF_DELTA on the second. */
function goodPack() {
  const a = new Prng(11).bytes(3000); // incompressible: a long zlib stream to cut into
  const b = Buffer.from('hello, world\n'.repeat(20));
  const p = new PackBuilder();
  const offA = p.object(Blob, a);
  const offB = p.object(Blob, b);
  const ofsDelta = makeDelta(a.length, 1003, copyOp(0, 1000), insertOp('xyz'));
  const offOfs = p.ofsDelta(offA, ofsDelta);
  const refDelta = makeDelta(b.length, 9, copyOp(0, 5), insertOp('moon'));
  const offRef = p.refDelta(oidOf(Blob, b), refDelta);
  return { a, b, p, pack: p.build(), offsets: { a: offA, b: offB, ofs: offOfs, ref: offRef } };
}

describe('corrupt packs', () => {
  const tmp = tempDir();
  const dir = tmp.path;
  const good = goodPack();
  after(() => tmp.cleanup());

  test('the reference pack is good: both indexers and git agree', T, async () => {
    const ours = await indexBoth(dir, good.pack);
    assert.equal(ours.objectCount, 4);
    assert.equal(ours.deltaCount, 2);
    const theirs = await gitIndexPack(dir, good.pack);
    assert.ok(theirs.ok, theirs.stderr);
    assert.ok(ours.index.equals(theirs.idx!), 'idx identical to git index-pack');
  });

  describe('truncation', () => {
    const { pack, offsets } = good;
    const cuts: Array<[string, number]> = [
      ['empty input', 0],
      ['inside the signature', 3],
      ['inside the object count', 10],
      ['inside the first zlib stream', offsets.a + 1500],
      ['at an entry boundary', offsets.b],
      ['inside the OFS_DELTA base distance', offsets.ofs + 2],
      ['inside the REF_DELTA base id', offsets.ref + 11],
      ['exactly 20 bytes into an entry', offsets.b + 20],
      ['inside the last zlib stream', offsets.ref + 23],
      ['before the trailer', pack.length - 20],
      ['inside the trailer', pack.length - 9],
      ['one byte short', pack.length - 1],
    ];
    for (const [where, cut] of cuts) {
      test(`cut ${where} (${cut} of ${pack.length} bytes): ERR_PACK_TRUNCATED`, T, async () => {
        const bytes = pack.subarray(0, cut);
        await expectIndexFailure(dir, bytes, { code: ErrorCode.PackTruncated, message: /^pack is truncated/ });
        await expectGitRejects(dir, bytes);
      });
    }

    test('a file too short for the objects its header declares: ERR_PACK_OBJECT_COUNT from the file, ERR_PACK_TRUNCATED from the stream', T, async () => {
      // indexPackFile knows the file's length up front and rejects a header that
      // cannot fit (4 objects need at least 36 bytes); a stream only sees the end.
      for (const cut of [12, 13]) {
        const bytes = pack.subarray(0, cut);
        await expectIndexFailure(dir, bytes, { code: ErrorCode.PackObjectCount, message: /declares 4 objects but is only/, chunkSizes: [] });
        await expectIndexFailure(dir, bytes, { code: ErrorCode.PackTruncated, file: false });
        await expectGitRejects(dir, bytes);
      }
    });
  });

  test('bad trailing checksum: ERR_PACK_CHECKSUM', T, async () => {
    const bytes = Buffer.from(good.pack);
    bytes[bytes.length - 1] ^= 0x01;
    const [err] = await expectIndexFailure(dir, bytes, { code: ErrorCode.PackChecksum, message: /checksum mismatch/ });
    assert.equal(err.details.actual, bytes.subarray(-20).toString('hex'));
    await expectGitRejects(dir, bytes, /SHA1 mismatch|checksum/i);
  });

  for (const extra of [1, 3]) {
    test(`header declares ${extra} more object(s) than the pack holds: ERR_PACK_OBJECT_COUNT`, T, async () => {
      const bytes = good.p.build({ count: 4 + extra });
      await expectIndexFailure(dir, bytes, { code: ErrorCode.PackObjectCount, message: /declares \d+ objects but/ });
      await expectGitRejects(dir, bytes);
    });
  }

  test('regression: the trailer of an over-counting pack is not reported as whatever entry its bytes resemble', T, async () => {
    // The trailer is parsed as one more entry; depending on its first byte that entry has an
    // invalid type (0, 5), a bad OFS_DELTA distance (6), a zlib stream that fails (1-4) or a
    // REF_DELTA header still waiting for bytes (7). Only the last was reported as
    // ERR_PACK_OBJECT_COUNT; the others failed with ERR_PACK_ENTRY_HEADER, ERR_PACK_BAD_OFFSET or
    // ERR_PACK_ZLIB. Find a pack for each type the trailer's first byte can give.
    const byType = new Map<number, Buffer>();
    for (let i = 0; byType.size < 8; i++) {
      const p = new PackBuilder();
      p.object(Blob, `object ${i}, long enough for the file to hold the objects its header declares`);
      const pack = p.build({ count: 2 });
      const type = (pack[pack.length - 20] >> 4) & 7;
      if (!byType.has(type)) byType.set(type, pack);
    }
    for (const [type, pack] of byType) {
      const [err] = await expectIndexFailure(dir, pack, { code: ErrorCode.PackObjectCount, message: /declares 2 objects but holds only 1/ });
      assert.ok(err instanceof PackferryError, `trailer type ${type}`);
    }
    // A pack of no objects that declares one.
    await expectIndexFailure(dir, assemblePack([], { count: 1 }), { code: ErrorCode.PackObjectCount, message: /holds only 0/, file: false });
  });

  test('an entry that fails near the end of a truncated pack reports its own error', T, async () => {
    // Its error is held back while it might be a trailer (see above), and then thrown.
    const p = new PackBuilder();
    p.object(Blob, good.a);
    const at = p.raw(rawEntry(5, Buffer.from('bad type')));
    const bytes = p.build().subarray(0, at + 10);
    await expectIndexFailure(dir, bytes, { code: ErrorCode.PackEntryHeader, message: /invalid object type 5/ });
  });

  test('header declares fewer objects than the pack holds: ERR_PACK_OBJECT_COUNT', T, async () => {
    for (const count of [3, 1]) {
      const bytes = good.p.build({ count });
      await expectIndexFailure(dir, bytes, { code: ErrorCode.PackObjectCount, message: new RegExp(`more objects than the ${count}`) });
      await expectGitRejects(dir, bytes);
    }
  });

  test('bad signature: ERR_PACK_SIGNATURE', T, async () => {
    const bytes = good.p.build({ signature: 'KCAP' });
    await expectIndexFailure(dir, bytes, { code: ErrorCode.PackSignature, message: /bad signature/ });
    await expectGitRejects(dir, bytes, /signature/);
  });

  for (const version of [1, 4, 0xffffffff]) {
    test(`unsupported version ${version}: ERR_PACK_VERSION`, T, async () => {
      const bytes = good.p.build({ version });
      await expectIndexFailure(dir, bytes, { code: ErrorCode.PackVersion, message: new RegExp(`version ${version}`) });
      await expectGitRejects(dir, bytes, /version/);
    });
  }

  test('corrupt zlib data: ERR_PACK_ZLIB', T, async () => {
    const headerLength = 2; // a 3000-byte blob's entry header
    // The zlib header check (first two bytes), a corrupt block, and a bad Adler-32.
    for (const at of [good.offsets.a + headerLength, good.offsets.a + headerLength + 1, good.offsets.b - 2]) {
      const bytes = Buffer.from(good.pack);
      bytes[at] ^= 0xff;
      const fixed = fixTrailer(bytes);
      await expectIndexFailure(dir, fixed, { code: ErrorCode.PackZlib, message: new RegExp(`^object at offset ${good.offsets.a}: corrupt zlib stream`) });
      await expectGitRejects(dir, fixed, /inflate/);
    }
  });

  test('an entry that inflates to more than its declared size: ERR_PACK_SIZE_MISMATCH', T, async () => {
    const p = new PackBuilder();
    p.object(Blob, good.a, { declaredSize: good.a.length - 1 });
    p.object(Blob, 'after');
    const bytes = p.build();
    await expectIndexFailure(dir, bytes, { code: ErrorCode.PackSizeMismatch, message: /inflates to more than its declared 2999 bytes/ });
    await expectGitRejects(dir, bytes);
  });

  test('an entry that inflates to less than its declared size: ERR_PACK_SIZE_MISMATCH', T, async () => {
    for (const declared of [3001, 100_000]) {
      const p = new PackBuilder();
      p.object(Blob, good.a, { declaredSize: declared });
      p.object(Blob, 'after');
      const bytes = p.build();
      await expectIndexFailure(dir, bytes, { code: ErrorCode.PackSizeMismatch, message: new RegExp(`inflates to 3000 bytes, not its declared ${declared}`) });
      await expectGitRejects(dir, bytes);
    }
  });

  describe('bad deltas', () => {
    /** A pack of the 3000-byte blob and one OFS_DELTA against it. */
    function withDelta(delta: Buffer): Buffer {
      const p = new PackBuilder();
      const base = p.object(Blob, good.a);
      p.ofsDelta(base, delta);
      return p.build();
    }

    test('delta bomb: a tiny delta declaring a huge result, over maxDeltaResultSize: ERR_LIMIT_EXCEEDED', T, async () => {
      const bytes = withDelta(makeDelta(3000, 2 ** 40, copyOp(0, 10)));
      const [err] = await expectIndexFailure(dir, bytes, {
        code: ErrorCode.LimitExceeded,
        message: /1099511627776-byte result, over the limit of 1048576 \(maxDeltaResultSize\)/,
        options: { limits: { maxDeltaResultSize: 1 << 20 } },
      });
      assert.equal(err.details.limit, 'maxDeltaResultSize');
      await expectGitRejects(dir, bytes);
    });

    test('regression: a delta declaring a 4 GiB result under default limits: ERR_LIMIT_EXCEEDED, not a RangeError', T, async () => {
      // 2^32 is within the default maxDeltaResultSize, but not allocatable with the header room.
      const bytes = withDelta(makeDelta(3000, 2 ** 32, copyOp(0, 10)));
      await expectIndexFailure(dir, bytes, { code: ErrorCode.LimitExceeded, message: /4294967296-byte result, more than can be allocated/ });
      await expectGitRejects(dir, bytes);
    });

    test('a declared result size that is a lie: ERR_DELTA_CORRUPT', T, async () => {
      // Declares more than the instructions produce...
      await expectIndexFailure(dir, withDelta(makeDelta(3000, 100, copyOp(0, 10))), {
        code: ErrorCode.DeltaCorrupt,
        message: /result is 10 bytes, not the declared 100/,
      });
      await expectGitRejects(dir, withDelta(makeDelta(3000, 100, copyOp(0, 10))));
      // ...or less: the first instruction to overflow is caught before it writes.
      await expectIndexFailure(dir, withDelta(makeDelta(3000, 5, copyOp(0, 10))), {
        code: ErrorCode.DeltaCorrupt,
        message: /copy runs past the declared 5-byte result/,
      });
      await expectIndexFailure(dir, withDelta(makeDelta(3000, 5, insertOp('0123456789'))), {
        code: ErrorCode.DeltaCorrupt,
        message: /insert runs past the declared 5-byte result/,
      });
      await expectGitRejects(dir, withDelta(makeDelta(3000, 5, insertOp('0123456789'))));
    });

    test('a copy outside the base: ERR_DELTA_CORRUPT', T, async () => {
      const bytes = withDelta(makeDelta(3000, 100, copyOp(2950, 100)));
      const [err] = await expectIndexFailure(dir, bytes, { code: ErrorCode.DeltaCorrupt, message: /copy of 100 bytes at 2950 runs past the 3000-byte base/ });
      assert.equal(err.details.size, 100);
      assert.equal(err.details.baseSize, 3000);
      await expectGitRejects(dir, bytes);
    });

    test('a base size that does not match the base: ERR_DELTA_CORRUPT', T, async () => {
      const bytes = withDelta(makeDelta(2999, 10, copyOp(0, 10)));
      await expectIndexFailure(dir, bytes, { code: ErrorCode.DeltaCorrupt, message: /base size 2999 does not match the base object's 3000 bytes/ });
      await expectGitRejects(dir, bytes);
    });

    test('the reserved instruction 0x00: ERR_DELTA_CORRUPT', T, async () => {
      const bytes = withDelta(makeDelta(3000, 10, copyOp(0, 5), Buffer.from([0]), insertOp('abcde')));
      await expectIndexFailure(dir, bytes, { code: ErrorCode.DeltaCorrupt, message: /reserved instruction 0x00/ });
      await expectGitRejects(dir, bytes);
    });

    test('a truncated instruction: ERR_DELTA_CORRUPT', T, async () => {
      const copy = copyOp(0x0102, 0x0304);
      await expectIndexFailure(dir, withDelta(makeDelta(3000, 0x304, copy.subarray(0, copy.length - 1))), {
        code: ErrorCode.DeltaCorrupt,
        message: /truncated copy instruction/,
      });
      await expectIndexFailure(dir, withDelta(makeDelta(3000, 3, Buffer.from([5]), Buffer.from('abc'))), {
        code: ErrorCode.DeltaCorrupt,
        message: /truncated insert instruction/,
      });
      await expectIndexFailure(dir, withDelta(Buffer.from([0xb8, 0x17])), { code: ErrorCode.DeltaCorrupt, message: /truncated result size/ });
      await expectGitRejects(dir, withDelta(makeDelta(3000, 0x304, copy.subarray(0, copy.length - 1))));
      await expectGitRejects(dir, withDelta(makeDelta(3000, 3, Buffer.from([5]), Buffer.from('abc'))));
    });
  });

  describe('bad delta bases', () => {
    test('OFS_DELTA pointing before the start of the pack: ERR_PACK_BAD_OFFSET', T, async () => {
      for (const extra of [1, 12, 1000]) {
        const p = new PackBuilder();
        p.object(Blob, 'base');
        const at = p.nextOffset;
        p.raw(rawEntry(OfsDelta, makeDelta(4, 4, copyOp(0, 4)), { baseDistance: at - 12 + extra }));
        const bytes = p.build();
        const [err] = await expectIndexFailure(dir, bytes, {
          code: ErrorCode.PackBadOffset,
          message: new RegExp(`bad OFS_DELTA at offset ${at}: base distance ${at - 12 + extra} points before the start of the pack`),
        });
        assert.equal(err.details.offset, at);
        await expectGitRejects(dir, bytes);
      }
    });

    test('OFS_DELTA pointing at itself: ERR_PACK_BAD_OFFSET', T, async () => {
      const p = new PackBuilder();
      p.object(Blob, 'base');
      p.raw(rawEntry(OfsDelta, makeDelta(4, 4, copyOp(0, 4)), { baseDistance: 0 }));
      const bytes = p.build();
      await expectIndexFailure(dir, bytes, { code: ErrorCode.PackBadOffset, message: /points at the entry itself/ });
      await expectGitRejects(dir, bytes);
    });

    test('OFS_DELTA pointing into the middle of an entry: ERR_PACK_BAD_OFFSET', T, async () => {
      const p = new PackBuilder();
      const base = p.object(Blob, good.a);
      const at = p.ofsDelta(base + 5, makeDelta(3000, 4, copyOp(0, 4)));
      const bytes = p.build();
      await expectIndexFailure(dir, bytes, {
        code: ErrorCode.PackBadOffset,
        message: new RegExp(`OFS_DELTA at offset ${at} points to offset ${base + 5}, where no object starts`),
      });
      await expectGitRejects(dir, bytes);
    });

    test('REF_DELTA to a base that is not in the pack: ERR_DELTA_BASE_MISSING with a --fix-thin hint', T, async () => {
      const missing = oidOf(Blob, Buffer.from('not here'));
      const p = new PackBuilder();
      p.object(Blob, 'something');
      p.refDelta(missing, makeDelta(8, 3, copyOp(0, 3)));
      const bytes = p.build();
      const [err] = await expectIndexFailure(dir, bytes, {
        code: ErrorCode.DeltaBaseMissing,
        message: new RegExp(`1 unresolved delta \\(e\\.g\\. base ${missing} is missing\\)`),
        hint: /--fix-thin/,
      });
      assert.equal(err.details.exampleBase, missing);
      await expectGitRejects(dir, bytes, /unresolved delta/);
    });
  });

  test('trailing garbage after the trailer: ERR_PACK_TRAILING_DATA', T, async () => {
    for (const junk of [Buffer.from([0]), Buffer.from('garbage after the pack')]) {
      const bytes = Buffer.concat([good.pack, junk]);
      await expectIndexFailure(dir, bytes, { code: ErrorCode.PackTrailingData, message: new RegExp(`after the end of the pack at offset ${good.pack.length}`) });
      await expectGitRejects(dir, bytes, /junk/);
    }
  });

  for (const type of [0, 5]) {
    test(`invalid entry type ${type}: ERR_PACK_ENTRY_HEADER`, T, async () => {
      const p = new PackBuilder();
      p.object(Blob, 'fine');
      const at = p.raw(rawEntry(type, Buffer.from('bad type')));
      const bytes = p.build();
      const [err] = await expectIndexFailure(dir, bytes, {
        code: ErrorCode.PackEntryHeader,
        message: new RegExp(`bad entry header at offset ${at}: invalid object type ${type}`),
      });
      assert.deepEqual(err.details, { offset: at, type });
      await expectGitRejects(dir, bytes, /unknown object type|type/);
    });
  }

  test('an entry size varint that never ends: ERR_PACK_ENTRY_HEADER', T, async () => {
    const bytes = assemblePack([Buffer.from([0xb0, ...new Array<number>(12).fill(0xff), 0x00]), Buffer.alloc(40)]);
    await expectIndexFailure(dir, bytes, { code: ErrorCode.PackEntryHeader, message: /size varint too long/ });
    await expectGitRejects(dir, bytes);
  });

  test('an object over limits.maxObjectSize: ERR_LIMIT_EXCEEDED', T, async () => {
    // The declared size is checked before anything is inflated: a 4 GiB claim costs nothing.
    const [err] = await expectIndexFailure(dir, good.pack, {
      code: ErrorCode.LimitExceeded,
      message: /declares 3000 bytes, over the limit of 2048 \(maxObjectSize\)/,
      options: { limits: { maxObjectSize: 2048 } },
    });
    assert.equal(err.details.limit, 'maxObjectSize');
    const huge = assemblePack([rawEntry(Blob, Buffer.from('x'), { declaredSize: 2 ** 40 })]);
    await expectIndexFailure(dir, huge, { code: ErrorCode.LimitExceeded, message: /maxObjectSize/ });
  });

  test('more objects than limits.maxPackObjects: ERR_LIMIT_EXCEEDED', T, async () => {
    await expectIndexFailure(dir, good.pack, { code: ErrorCode.LimitExceeded, message: /maxPackObjects/, options: { limits: { maxPackObjects: 3 } } });
  });

  test('a delta chain deeper than limits.maxDeltaChainDepth: ERR_LIMIT_EXCEEDED', T, async () => {
    const p = new PackBuilder();
    let prev = p.object(Blob, 'v0');
    for (let i = 1; i <= 6; i++) prev = p.ofsDelta(prev, makeDelta(2, 2, insertOp(`v${i}`)));
    const bytes = p.build();
    const ok = await indexBoth(dir, bytes, { limits: { maxDeltaChainDepth: 6 } });
    assert.equal(Math.max(...ok.tables.depths.subarray(0, 7)), 6);
    const [err] = await expectIndexFailure(dir, bytes, {
      code: ErrorCode.LimitExceeded,
      message: /deeper than 5 \(maxDeltaChainDepth\)/,
      options: { limits: { maxDeltaChainDepth: 5 } },
    });
    assert.equal(err.details.limit, 'maxDeltaChainDepth');
  });
});

describe('PackReader over a corrupt or mismatched index', () => {
  const tmp = tempDir();
  const dir = tmp.path;
  after(() => tmp.cleanup());

  /** Writes a pack and an idx that claims the given (id, offset) pairs. */
  function writeWithIndex(name: string, pack: Buffer, pairs: Array<[string, number]>): { packPath: string; idxPath: string } {
    const packPath = join(dir, `${name}.pack`);
    const idxPath = join(dir, `${name}.idx`);
    writeFileSync(packPath, pack);
    const oids = Buffer.concat(pairs.map(([id]) => Buffer.from(id, 'hex')));
    const idx = writePackIndexV2({ count: pairs.length, oids, offsets: pairs.map(([, o]) => o), crc32s: pairs.map(() => 0) }, pack.subarray(-20));
    writeFileSync(idxPath, idx);
    return { packPath, idxPath };
  }

  function expectReaderError(run: () => unknown, code: ErrorCode, message: RegExp): PackferryError {
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

  test('an idx that maps a REF_DELTA base back to the delta itself: ERR_DELTA_CYCLE', T, async () => {
    const self = oidOf(Blob, Buffer.from('ouroboros'));
    const p = new PackBuilder();
    const base = p.object(Blob, 'base');
    const at = p.refDelta(self, makeDelta(9, 9, copyOp(0, 9)));
    const pack = p.build();
    const { packPath, idxPath } = writeWithIndex('self-cycle', pack, [[oidOf(Blob, Buffer.from('base')), base], [self, at]].sort() as Array<[string, number]>);
    const reader = PackReader.open(packPath, idxPath);
    try {
      const err = expectReaderError(() => reader.read(self), ErrorCode.DeltaCycle, new RegExp(`returns to offset ${at}`));
      assert.equal(err.details.baseOffset, at);
      expectReaderError(() => reader.readHeader(self), ErrorCode.DeltaCycle, /delta cycle/);
      assert.equal(reader.read(oidOf(Blob, Buffer.from('base'))).data.toString(), 'base', 'other objects still read');
    } finally {
      reader.close();
    }
    await expectGitRejects(dir, pack, /unresolved delta/);
  });

  test('an idx that maps two REF_DELTAs onto each other: ERR_DELTA_CYCLE', T, async () => {
    const x = oidOf(Blob, Buffer.from('x'));
    const y = oidOf(Blob, Buffer.from('y'));
    const p = new PackBuilder();
    const atX = p.refDelta(y, makeDelta(1, 1, insertOp('x')));
    const atY = p.refDelta(x, makeDelta(1, 1, insertOp('y')));
    const pack = p.build();
    const { packPath, idxPath } = writeWithIndex('two-cycle', pack, [[x, atX], [y, atY]].sort() as Array<[string, number]>);
    const reader = PackReader.open(packPath, idxPath);
    try {
      expectReaderError(() => reader.read(x), ErrorCode.DeltaCycle, /delta cycle/);
      expectReaderError(() => reader.read(y), ErrorCode.DeltaCycle, /delta cycle/);
    } finally {
      reader.close();
    }
    await expectGitRejects(dir, pack, /unresolved delta/);
  });

  test('regression: an entry declaring 4 GiB under default limits: ERR_LIMIT_EXCEEDED, not a RangeError', T, () => {
    // maxObjectSize defaults to 4 GiB, but the reader's inflate buffer (size + 1) was past buffer.constants.MAX_LENGTH.
    const pack = assemblePack([rawEntry(Blob, Buffer.from('x'), { declaredSize: 2 ** 32 })]);
    const id = oidOf(Blob, Buffer.from('x'));
    const { packPath, idxPath } = writeWithIndex('four-gib', pack, [[id, 12]]);
    const reader = PackReader.open(packPath, idxPath);
    try {
      expectReaderError(() => reader.read(id), ErrorCode.LimitExceeded, /declares 4294967296 bytes, more than can be allocated/);
      assert.deepEqual(reader.readHeader(id), { type: Blob, size: 2 ** 32 }, 'the header alone is fine');
    } finally {
      reader.close();
    }
  });

  test('an idx whose own checksum is wrong: ERR_INDEX_CORRUPT', T, async () => {
    const { pack } = goodPack();
    const packPath = join(dir, 'idx-sum.pack');
    writeFileSync(packPath, pack);
    const ours = await indexBoth(dir, pack);
    const idx = Buffer.from(ours.index);
    idx[idx.length - 1] ^= 0x80;
    const idxPath = join(dir, 'idx-sum.idx');
    writeFileSync(idxPath, idx);
    expectReaderError(() => PackReader.open(packPath, idxPath), ErrorCode.IndexCorrupt, /index checksum mismatch/);
    // A flipped id inside the table is caught by the same checksum.
    const idx2 = Buffer.from(ours.index);
    idx2[8 + 1024 + 3] ^= 0x01;
    writeFileSync(idxPath, idx2);
    expectReaderError(() => PackReader.open(packPath, idxPath), ErrorCode.IndexCorrupt, /index checksum mismatch/);
  });

  test('an idx for a different pack: ERR_INDEX_MISMATCH', T, async () => {
    const { pack, p } = goodPack();
    const packPath = join(dir, 'mine.pack');
    writeFileSync(packPath, pack);
    // Same object count, another pack (different trailer).
    const other = new PackBuilder();
    for (let i = 0; i < 4; i++) other.object(Blob, `other ${i}`);
    const otherIndexed = await indexBoth(dir, other.build());
    const idxPath = join(dir, 'mine.idx');
    writeFileSync(idxPath, otherIndexed.index);
    expectReaderError(() => PackReader.open(packPath, idxPath), ErrorCode.IndexMismatch, /does not belong to .*pack checksum differs/);
    // Another object count.
    const fewer = await indexBoth(dir, assemblePack([p.entries[0].bytes, p.entries[1].bytes]));
    writeFileSync(idxPath, fewer.index);
    expectReaderError(() => PackReader.open(packPath, idxPath), ErrorCode.IndexMismatch, /lists 2 objects but the pack holds 4/);
    // The right index opens.
    writeFileSync(idxPath, (await indexBoth(dir, pack)).index);
    const reader = PackReader.open(packPath, idxPath);
    assert.equal(reader.count, 4);
    reader.close();
  });

  test('git rejects the same mismatched and corrupt indexes (verify-pack)', T, async () => {
    const packPath = join(dir, 'mine.pack');
    const idxPath = join(dir, 'mine.idx');
    const good = readFileSync(idxPath);
    const bad = Buffer.from(good);
    bad[bad.length - 1] ^= 0x80;
    writeFileSync(idxPath, bad);
    const r = await gitAsync(['verify-pack', packPath]);
    assert.notEqual(r.code, 0, 'git verify-pack rejects an idx with a bad checksum');
    writeFileSync(idxPath, good);
    assert.equal((await gitAsync(['verify-pack', packPath])).code, 0);
  });
});

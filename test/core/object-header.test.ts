// Object types, the "<type> <size>\0" header and object ids, against real git.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { ErrorCode, isPackferryError } from '../../src/core/errors.js';
import { SHA1, SHA256 } from '../../src/core/hash.js';
import {
  OBJECT_TYPES,
  PackObjectType,
  decodeObjectHeader,
  encodeObjectHeader,
  hashObject,
  hashObjectRaw,
  isObjectType,
  objectTypeForMode,
  objectTypeFromPackType,
  packTypeOf,
  parseObjectType,
  type ObjectType,
} from '../../src/core/object.js';
import { gitAsync } from '../support/git.js';
import { scratchRepo, type ScratchRepo } from './object-fixtures.js';

describe('object types', () => {
  test('type names and pack type numbers map both ways (gitformat-pack)', () => {
    assert.deepEqual(OBJECT_TYPES, ['commit', 'tree', 'blob', 'tag']);
    assert.deepEqual({ ...PackObjectType }, { commit: 1, tree: 2, blob: 3, tag: 4 });
    for (const type of OBJECT_TYPES) {
      assert.equal(objectTypeFromPackType(packTypeOf(type)), type);
      assert.equal(parseObjectType(type), type);
      assert.equal(parseObjectType(Buffer.from(type)), type);
      assert.ok(isObjectType(type));
    }
  });

  test('delta, reserved and out-of-range type numbers are not object types', () => {
    for (const n of [0, 5, 6, 7, 8, -1, 1.5, NaN]) {
      assert.throws(() => objectTypeFromPackType(n), (e) => isPackferryError(e, ErrorCode.InvalidObjectType), String(n));
    }
  });

  test('unknown type names are rejected with ERR_INVALID_OBJECT_TYPE', () => {
    for (const name of ['', 'Blob', 'blob ', 'ofs-delta', 'x'.repeat(100)]) {
      assert.throws(() => parseObjectType(name), (e) => isPackferryError(e, ErrorCode.InvalidObjectType), name);
      assert.throws(() => parseObjectType(Buffer.from(name)), (e) => isPackferryError(e, ErrorCode.InvalidObjectType), name);
      assert.equal(isObjectType(name), false);
    }
  });

  test('tree entry modes name the type they point at (object.h object_type)', () => {
    assert.equal(objectTypeForMode(0o040000), 'tree');
    assert.equal(objectTypeForMode(0o160000), 'commit');
    assert.equal(objectTypeForMode(0o100644), 'blob');
    assert.equal(objectTypeForMode(0o100755), 'blob');
    assert.equal(objectTypeForMode(0o120000), 'blob');
  });
});

describe('object header', () => {
  test('encodes "<type> <size>\\0"', () => {
    assert.deepEqual(encodeObjectHeader('blob', 0), Buffer.from('blob 0\0'));
    assert.deepEqual(encodeObjectHeader('commit', 1234567), Buffer.from('commit 1234567\0'));
    assert.throws(() => encodeObjectHeader('blob', -1), (e) => isPackferryError(e, ErrorCode.Usage));
    assert.throws(() => encodeObjectHeader('blob', 1.5), (e) => isPackferryError(e, ErrorCode.Usage));
    assert.throws(() => encodeObjectHeader('nope' as ObjectType, 1), (e) => isPackferryError(e, ErrorCode.InvalidObjectType));
  });

  test('decodes a complete header and reports its length', () => {
    const data = Buffer.concat([encodeObjectHeader('tree', 4096), Buffer.from('rest')]);
    assert.deepEqual(decodeObjectHeader(data), { kind: 'complete', type: 'tree', size: 4096, length: 10 });
    for (const type of OBJECT_TYPES) {
      assert.deepEqual(decodeObjectHeader(encodeObjectHeader(type, 0)), { kind: 'complete', type, size: 0, length: type.length + 3 });
    }
  });

  test('every proper prefix of a valid header is incomplete, not an error', () => {
    for (const type of OBJECT_TYPES) {
      const header = encodeObjectHeader(type, 9876543210);
      for (let n = 0; n < header.length; n++) {
        assert.deepEqual(decodeObjectHeader(header.subarray(0, n)), { kind: 'incomplete' }, `${type} prefix ${n}`);
      }
    }
  });

  test('malformed headers are rejected as Git rejects them (object-file.c parse_loose_header)', () => {
    const cases: [string, ErrorCode][] = [
      ['blob 01\0', ErrorCode.InvalidObject], // leading zero: not canonical decimal
      ['blob \0', ErrorCode.InvalidObject],
      ['blob 1x\0', ErrorCode.InvalidObject],
      ['blob -1\0', ErrorCode.InvalidObject],
      ['blob  1\0', ErrorCode.InvalidObject],
      ['blobs 1\0', ErrorCode.InvalidObjectType],
      ['bloc', ErrorCode.InvalidObjectType],
      ['commitx 1\0', ErrorCode.InvalidObjectType],
      [' 1\0', ErrorCode.InvalidObjectType],
      ['Blob 1\0', ErrorCode.InvalidObjectType],
    ];
    for (const [text, code] of cases) {
      assert.throws(() => decodeObjectHeader(Buffer.from(text, 'latin1')), (e) => isPackferryError(e, code), JSON.stringify(text));
    }
  });

  test('sizes beyond the limit or beyond 2^53 fail with ERR_LIMIT_EXCEEDED', () => {
    assert.throws(() => decodeObjectHeader(Buffer.from('blob 1025\0'), { maxObjectSize: 1024 }), (e) => isPackferryError(e, ErrorCode.LimitExceeded));
    assert.deepEqual(decodeObjectHeader(Buffer.from('blob 1024\0'), { maxObjectSize: 1024 }).kind, 'complete');
    assert.throws(() => decodeObjectHeader(Buffer.from('blob 99999999999999999999\0')), (e) => isPackferryError(e, ErrorCode.LimitExceeded));
    assert.throws(() => decodeObjectHeader(Buffer.from('blob 99999999999999999999')), (e) => isPackferryError(e, ErrorCode.LimitExceeded));
  });
});

describe('object header and ids against git', () => {
  let repo: ScratchRepo;
  before(() => {
    repo = scratchRepo();
  });
  after(() => repo.cleanup());

  test('git reads loose objects whose header we accept, and refuses those we refuse', async () => {
    // Hand-made loose objects: zlib(header + data) under objects/xx/yyyy.
    const cases: [string, boolean][] = [
      ['blob 5\0hello', true],
      ['blob 05\0hello', false],
      ['blob 5 \0hello', false],
      ['blobx 5\0hello', false],
    ];
    for (const [i, [content, ok]] of cases.entries()) {
      const oid = `${String(i).padStart(2, '0')}${'ab'.repeat(19)}`;
      mkdirSync(join(repo.path, '.git', 'objects', oid.slice(0, 2)), { recursive: true });
      writeFileSync(join(repo.path, '.git', 'objects', oid.slice(0, 2), oid.slice(2)), deflateSync(Buffer.from(content, 'latin1')));
      const res = await gitAsync(['cat-file', '-p', oid], { cwd: repo.path });
      let ours: boolean;
      try {
        ours = decodeObjectHeader(Buffer.from(content, 'latin1')).kind === 'complete';
      } catch (err) {
        assert.ok(isPackferryError(err));
        ours = false;
      }
      assert.equal(res.code === 0, ok, `git on ${JSON.stringify(content)}: ${res.stderr}`);
      assert.equal(ours, ok, `packferry on ${JSON.stringify(content)}`);
    }
  });

  test('hashObject gives the id git hash-object gives, for every type and many sizes', () => {
    const samples: Buffer[] = [Buffer.alloc(0), Buffer.from('hello\n'), randomBytes(1), randomBytes(4095), randomBytes(1 << 20)];
    for (const data of samples) {
      for (const type of OBJECT_TYPES) {
        const expected = repo.git(['hash-object', '-t', type, '--literally', '--stdin'], data);
        assert.equal(hashObject(type, data), expected, `${type} of ${data.length} bytes`);
        assert.deepEqual(hashObjectRaw(type, data), Buffer.from(expected, 'hex'));
      }
    }
    assert.equal(hashObject('tree', Buffer.alloc(0)), SHA1.emptyTree);
  });

  test('hashObject with SHA-256 matches a sha256 repository', () => {
    const repo256 = scratchRepo({ objectFormat: 'sha256' });
    try {
      for (const data of [Buffer.alloc(0), Buffer.from('hello\n'), randomBytes(10000)]) {
        const expected = repo256.git(['hash-object', '--stdin'], data);
        assert.equal(expected.length, 64);
        assert.equal(hashObject('blob', data, SHA256), expected);
      }
      assert.equal(hashObject('tree', Buffer.alloc(0), SHA256), SHA256.emptyTree);
    } finally {
      repo256.cleanup();
    }
  });
});

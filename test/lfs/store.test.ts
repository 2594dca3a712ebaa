// LfsObjectStore over both backends — a directory and a real S3-compatible
// server (s3rver, test/support/s3-server.ts): objects land at
// lfs/objects/<aa>/<bb>/<oid>; content that does not hash to its oid, or is
// longer or shorter than its size, is refused with ERR_HASH_MISMATCH and
// leaves nothing under the key (nor a temporary file, nor a pending
// multipart upload on S3, where a 9 MiB object goes up in parts before the
// mismatch shows); has/list/get; a stored object of the wrong size counts
// as missing.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, PackferryError } from '../../src/core/errors.js';
import type { BlobStore } from '../../src/store/backend.js';
import { FsBlobStore } from '../../src/store/fs-backend.js';
import { lfsKey } from '../../src/store/layout.js';
import { LfsObjectStore, verifyLfsContent } from '../../src/store/lfs.js';
import { S3BlobStore } from '../../src/store/s3-backend.js';
import { tempDir } from '../support/git.js';
import { S3RVER_CREDENTIALS, startS3Server, type S3Server } from '../support/s3-server.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

async function* chunks(data: Buffer, size = 7000): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

async function collect(stream: AsyncIterable<Uint8Array> | undefined): Promise<Buffer | undefined> {
  if (stream === undefined) return undefined;
  const parts: Uint8Array[] = [];
  for await (const c of stream) parts.push(c);
  return Buffer.concat(parts);
}

async function rejectsMismatch(promise: Promise<unknown>, check: 'sha256' | 'size'): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof PackferryError, String(err));
    assert.equal(err.code, ErrorCode.HashMismatch, err.message);
    assert.equal(err.details.check, check, err.message);
    return true;
  });
}

function lfsStoreSuite(name: string, open: () => Promise<{ blobs: BlobStore; leftovers: () => Promise<string[]> }>, big: number): void {
  describe(`LfsObjectStore on ${name}`, () => {
    it('stores verified content at lfs/objects/aa/bb/<oid>, and reads it back', async () => {
      const { blobs, leftovers } = await open();
      const store = new LfsObjectStore(blobs);
      const data = randomBytes(50_000);
      const oid = sha256(data);
      assert.equal(await store.has(oid), false);
      await store.put(oid, chunks(data), data.length);
      assert.equal((await blobs.head(lfsKey(oid)))?.size, data.length);
      assert.equal(lfsKey(oid), `lfs/objects/${oid.slice(0, 2)}/${oid.slice(2, 4)}/${oid}`);
      assert.equal(await store.has(oid), true);
      assert.equal(await store.has(oid, data.length), true);
      assert.equal(await store.has(oid, data.length + 1), false, 'a stored object of another size is as good as missing');
      assert.deepEqual((await collect(await store.get(oid)))?.equals(data), true);
      const empty = Buffer.alloc(0);
      await store.put(sha256(empty), empty, 0);
      assert.deepEqual(await store.list(), new Map([[oid, data.length], [sha256(empty), 0]]));
      assert.deepEqual(await leftovers(), []);
    });

    it('refuses content that does not hash to the oid, or is longer or shorter than the size, and stores nothing', async () => {
      const { blobs, leftovers } = await open();
      const store = new LfsObjectStore(blobs);
      const data = randomBytes(big);
      const oid = sha256(data);
      const bad = Buffer.from(data);
      bad[bad.length - 1] ^= 1;
      await rejectsMismatch(store.put(oid, chunks(bad, 1 << 20), data.length), 'sha256');
      await rejectsMismatch(store.put(oid, chunks(Buffer.concat([data, Buffer.from('x')]), 1 << 20), data.length), 'size');
      await rejectsMismatch(store.put(oid, chunks(data.subarray(0, data.length - 1), 1 << 20), data.length), 'size');
      await rejectsMismatch(store.put(oid, bad, data.length), 'sha256');
      assert.equal(await blobs.head(lfsKey(oid)), undefined);
      assert.equal(await store.has(oid), false);
      assert.deepEqual(await store.list(), new Map());
      assert.deepEqual(await leftovers(), []);
      await store.put(oid, chunks(data, 1 << 20), data.length);
      assert.equal(await store.has(oid, data.length), true);
    });

    it('refuses bad oids and sizes as usage errors', async () => {
      const { blobs } = await open();
      const store = new LfsObjectStore(blobs);
      await assert.rejects(store.put('../../HEAD', Buffer.alloc(0), 0), (e: unknown) => e instanceof PackferryError && e.code === ErrorCode.Usage);
      await assert.rejects(store.has('A'.repeat(64)), (e: unknown) => e instanceof PackferryError && e.code === ErrorCode.Usage);
      await assert.rejects(store.put(sha256(Buffer.alloc(0)), Buffer.alloc(0), -1), (e: unknown) => e instanceof PackferryError && e.code === ErrorCode.Usage);
    });
  });
}

const tmp = tempDir('packferry-lfs-store-');
let dirs = 0;
lfsStoreSuite(
  'a directory',
  async () => {
    const root = join(tmp.path, `s${++dirs}`);
    const blobs = new FsBlobStore(root);
    const walk = (d: string): string[] => {
      try {
        return readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(d, e.name)) : [join(d, e.name)]));
      } catch {
        return [];
      }
    };
    return { blobs, leftovers: async () => walk(root).filter((p) => p.includes('.tmp-')) };
  },
  300_000,
);

const BUCKET = 'packferry-lfs';
let s3: S3Server | undefined;
const s3Stores: S3BlobStore[] = [];
before(async () => {
  s3 = await startS3Server({ buckets: [BUCKET] });
});
after(async () => {
  for (const s of s3Stores) await s.close();
  await s3?.stop();
  tmp.cleanup();
});
let prefixes = 0;
lfsStoreSuite(
  'S3 (s3rver), multipart for the large object',
  async () => {
    const server = s3!;
    const prefix = `lfs${++prefixes}/repo.git`;
    const blobs = new S3BlobStore({ bucket: BUCKET, prefix, endpoint: server.endpoint, credentials: { ...S3RVER_CREDENTIALS }, multipartThreshold: 8 << 20, partSize: 8 << 20 });
    s3Stores.push(blobs);
    return { blobs, leftovers: async () => (await server.pendingUploads(BUCKET, blobs.prefix)).map((u) => u.key) };
  },
  9 << 20,
);

describe('verifyLfsContent', () => {
  it('holds back the last chunk until the content checks out', async () => {
    const data = Buffer.from('abcdefghij');
    const seen: string[] = [];
    const bad = (async function* () {
      yield data.subarray(0, 4);
      yield data.subarray(4, 8);
      yield Buffer.from('XY');
    })();
    await rejectsMismatch(
      (async () => {
        for await (const c of verifyLfsContent(bad, sha256(data), data.length)) seen.push(Buffer.from(c).toString());
      })(),
      'sha256',
    );
    assert.deepEqual(seen, ['abcd', 'efgh'], 'the chunks before the last passed, the last (wrong) one was held back');
    const good: string[] = [];
    for await (const c of verifyLfsContent(chunks(data, 4), sha256(data), data.length)) good.push(Buffer.from(c).toString());
    assert.deepEqual(good, ['abcd', 'efgh', 'ij']);
  });
});

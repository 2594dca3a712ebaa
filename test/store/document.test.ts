// updateDocument (src/store/document.ts), read-modify-write of one small
// document by many writers at once, against real backends: a directory
// (compare-and-swap by its lockfile), s3rver with S3's conditional writes
// (compare-and-swap by If-Match, probed), and s3rver without them (the probe
// finds none: the writer lock). No update is lost; a change that changes
// nothing writes nothing; a change that throws writes nothing and leaves no
// lock behind.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { ErrorCode, isPackferryError, PackferryError } from '../../src/core/errors.js';
import type { BlobStore } from '../../src/store/backend.js';
import { updateDocument } from '../../src/store/document.js';
import { FsBlobStore } from '../../src/store/fs-backend.js';
import { KEYS } from '../../src/store/layout.js';
import { S3BlobStore } from '../../src/store/s3-backend.js';
import { tempDir } from '../support/git.js';
import { S3RVER_CREDENTIALS, startS3Server, type S3Server } from '../support/s3-server.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const BUCKET = 'packferry-documents';
const tmp = tempDir('packferry-document-');
let withCas: S3Server;
let without: S3Server;
const opened: BlobStore[] = [];
let n = 0;

before(async () => {
  [withCas, without] = await Promise.all([startS3Server({ buckets: [BUCKET], conditionalWrites: true }), startS3Server({ buckets: [BUCKET] })]);
});

after(async () => {
  for (const store of opened) await store.close();
  await withCas?.stop();
  await without?.stop();
  tmp.cleanup();
});

function s3Store(server: S3Server): BlobStore {
  const store = new S3BlobStore({ bucket: BUCKET, prefix: `d${++n}`, endpoint: server.endpoint, credentials: { ...S3RVER_CREDENTIALS } });
  opened.push(store);
  return store;
}

const backends: { name: string; via: 'compare-and-swap' | 'writer lock'; make: () => BlobStore }[] = [
  { name: 'a directory', via: 'compare-and-swap', make: () => new FsBlobStore(`${tmp.path}/dir-${++n}`) },
  { name: 's3rver with conditional writes', via: 'compare-and-swap', make: () => s3Store(withCas) },
  { name: 's3rver without conditional writes', via: 'writer lock', make: () => s3Store(without) },
];

const increment = (current: Buffer | undefined): Buffer => Buffer.from(JSON.stringify({ count: (current === undefined ? 0 : (JSON.parse(current.toString()) as { count: number }).count) + 1 }));

for (const backend of backends) {
  describe(`updateDocument on ${backend.name} (${backend.via})`, () => {
    it('concurrent updates lose nothing', async () => {
      const store = backend.make();
      const writers = 12;
      const results = await Promise.all(Array.from({ length: writers }, () => updateDocument(store, 'packferry/counter.json', increment, { contentType: 'application/json', lockOwner: 'test' })));
      assert.deepEqual(JSON.parse((await store.get('packferry/counter.json'))!.toString()), { count: writers });
      assert.ok(results.every((r) => r.changed && r.via === backend.via), results.map((r) => r.via).join(' '));
      const counts = results.map((r) => (JSON.parse(r.body!.toString()) as { count: number }).count).sort((a, b) => a - b);
      assert.deepEqual(counts, Array.from({ length: writers }, (_, i) => i + 1), 'each writer saw its own step');
      if (backend.via === 'compare-and-swap') assert.ok(results.reduce((t, r) => t + r.tries, 0) >= writers);
      assert.deepEqual((await store.list('')).map((i) => i.key), ['packferry/counter.json'], 'no lock or probe left');
    });

    it('a change that changes nothing writes nothing; one that throws writes nothing and leaves no lock', async () => {
      const store = backend.make();
      await updateDocument(store, 'doc.json', () => Buffer.from('{"v":1}'));
      const before = await store.head('doc.json');
      const same = await updateDocument(store, 'doc.json', (current) => {
        assert.deepEqual(current, Buffer.from('{"v":1}'));
        return undefined;
      });
      assert.equal(same.changed, false);
      assert.deepEqual(same.body, Buffer.from('{"v":1}'));
      assert.deepEqual(await store.head('doc.json'), before);
      await assert.rejects(
        updateDocument(store, 'doc.json', () => {
          throw new PackferryError(ErrorCode.NotFound, 'no such entry');
        }),
        (err: unknown) => isPackferryError(err, ErrorCode.NotFound),
      );
      assert.deepEqual(await store.get('doc.json'), Buffer.from('{"v":1}'));
      assert.deepEqual(await store.list(KEYS.locks), [], 'the writer lock is released');
      // And the next update goes through at once.
      const t0 = Date.now();
      assert.equal((await updateDocument(store, 'doc.json', () => Buffer.from('{"v":2}'))).changed, true);
      assert.ok(Date.now() - t0 < 2000);
      // An async change, creating a document that is not there.
      const created = await updateDocument(store, 'new/doc.json', async (current) => {
        assert.equal(current, undefined);
        return Buffer.from('fresh');
      });
      assert.equal(created.changed, true);
      assert.deepEqual(await store.get('new/doc.json'), Buffer.from('fresh'));
    });
  });
}

describe('updateDocument on a directory', () => {
  it('writes a secret document 0600; gives up with ERR_STORE_LOCKED when the document keeps changing', async () => {
    const store = new FsBlobStore(`${tmp.path}/dir-secret`);
    await updateDocument(store, 'packferry/tokens.json', () => Buffer.from('{}'), { secret: true });
    assert.equal(statSync(store.pathOf('packferry/tokens.json')).mode & 0o777, 0o600);
    // Another writer changes the document between every read and write of this one.
    let round = 0;
    await assert.rejects(
      updateDocument(
        store,
        'packferry/tokens.json',
        async () => {
          await store.put('packferry/tokens.json', Buffer.from(`{"other":${++round}}`));
          return Buffer.from('{"mine":true}');
        },
        { attempts: 3 },
      ),
      (err: unknown) => isPackferryError(err, ErrorCode.StoreLocked) && /kept changing under 3 tries/.test(err.message),
    );
    assert.equal(round, 3);
    assert.deepEqual(await store.get('packferry/tokens.json'), Buffer.from('{"other":3}'));
  });
});

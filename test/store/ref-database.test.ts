// The commit contract's conformance suite (ref-database-conformance.ts) run
// against every implementation there is: BlobRefDatabase on a directory
// store (its lockfile compare-and-swap), on a real S3-compatible server
// (s3rver) with S3's conditional writes, and on one that ignores them, where
// the writer-lock fallback runs.
import { after, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { conditionalWrites } from '../../src/store/backend.js';
import { FsBlobStore } from '../../src/store/fs-backend.js';
import { BlobRefDatabase } from '../../src/store/ref-database.js';
import { S3BlobStore } from '../../src/store/s3-backend.js';
import { tempDir } from '../support/git.js';
import { S3RVER_CREDENTIALS, S3RVER_REGION, startS3Server, type S3Server } from '../support/s3-server.js';
import { refDatabaseConformance } from './ref-database-conformance.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const tmp = tempDir('packferry-refdb-');
let n = 0;
let s3: S3Server;
let s3cas: S3Server;
const opened: S3BlobStore[] = [];

before(async () => {
  [s3, s3cas] = await Promise.all([startS3Server({ buckets: ['refdb'] }), startS3Server({ buckets: ['refdb'], conditionalWrites: true })]);
});

after(async () => {
  for (const s of opened) await s.close();
  await s3?.stop();
  await s3cas?.stop();
  tmp.cleanup();
});

/** Databases on a fresh prefix of `server`'s bucket, each with a store of its own (as separate processes would have). */
function s3Site(server: () => S3Server, expectConditional: boolean) {
  return () => ({
    async fresh() {
      const prefix = `repo-${++n}.git/`;
      const make = () => {
        const store = new S3BlobStore({ bucket: 'refdb', prefix, endpoint: server().endpoint, region: S3RVER_REGION, credentials: S3RVER_CREDENTIALS, forcePathStyle: true });
        opened.push(store);
        return store;
      };
      assert.equal((await conditionalWrites(make())) !== undefined, expectConditional, 'the mode under test');
      return { open: () => new BlobRefDatabase(make()) };
    },
  });
}

describe('commit contract: a directory store (lockfile compare-and-swap)', () =>
  refDatabaseConformance(() => ({
    async fresh() {
      const dir = join(tmp.path, `repo-${++n}.git`);
      return { open: () => new BlobRefDatabase(new FsBlobStore(dir)) };
    },
  })),
);

describe('commit contract: S3 with conditional writes (If-Match, If-None-Match)', () => refDatabaseConformance(s3Site(() => s3cas, true)));

describe('commit contract: S3 without them (a service that ignores the headers: the writer lock)', () => refDatabaseConformance(s3Site(() => s3, false)));

// The commit contract's conformance suite (ref-database-conformance.ts) run
// against every implementation there is: BlobRefDatabase on a directory
// store, and on a real S3-compatible server (s3rver) — which ignores
// conditional writes unless asked, so the writer-lock fallback is what runs
// there.
import { after, before, describe } from 'node:test';
import { join } from 'node:path';
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
const opened: S3BlobStore[] = [];

before(async () => {
  s3 = await startS3Server({ buckets: ['refdb'] });
});

after(async () => {
  for (const s of opened) await s.close();
  await s3?.stop();
  tmp.cleanup();
});

describe('commit contract: a directory store', () =>
  refDatabaseConformance(() => ({
    async fresh() {
      const dir = join(tmp.path, `repo-${++n}.git`);
      return { open: () => new BlobRefDatabase(new FsBlobStore(dir)) };
    },
  })),
);

describe('commit contract: S3 (s3rver, which ignores conditional writes: the writer lock)', () =>
  refDatabaseConformance(() => ({
    async fresh() {
      const prefix = `repo-${++n}.git/`;
      return {
        open: () => {
          const store = new S3BlobStore({ bucket: 'refdb', prefix, endpoint: s3.endpoint, region: S3RVER_REGION, credentials: S3RVER_CREDENTIALS, forcePathStyle: true });
          opened.push(store);
          return new BlobRefDatabase(store);
        },
      };
    },
  })),
);

// `packferry mirror` of a Git LFS repository into an S3 store (a real
// s3rver process, test/support/s3-server.ts): the LFS objects land at
// lfs/objects/aa/bb/<oid> in the bucket, verified; an object whose content
// does not match its pointer fails the sync with nothing stored under its
// key, no multipart upload left pending, and the manifest (the refs)
// unchanged.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { KEYS, lfsKey } from '../../src/store/layout.js';
import { S3BlobStore } from '../../src/store/s3-backend.js';
import { tempDir } from '../support/git.js';
import { startLfsServer, type LfsServer } from '../support/lfs-server.js';
import { packferry, parseJson, type JsonReport, type JsonTarget } from '../support/mirror-fixtures.js';
import { S3RVER_CREDENTIALS, startS3Server, type S3Server } from '../support/s3-server.js';
import { AUTH, bytes, commitAndPush, makeLfsRepo, sha256, type LfsRepo } from './fixtures.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const BUCKET = 'packferry-lfs-mirror';
const tmp = tempDir('packferry-lfs-s3-');
let server: LfsServer;
let s3: S3Server;
let blobs: S3BlobStore;
let repo: LfsRepo;
const PREFIX = 'mirrors/lfs.git';
const ADDRESS = `s3://${BUCKET}/${PREFIX}`;

type Report = JsonReport & { targets: (JsonTarget & { lfs?: { status: string; fetched: number; failed: { oid: string; code: string }[] } })[] };

before(async () => {
  [server, s3] = await Promise.all([startLfsServer({ projectRoot: join(tmp.path, 'srv'), auth: AUTH }), startS3Server({ buckets: [BUCKET] })]);
  blobs = new S3BlobStore({ bucket: BUCKET, prefix: PREFIX, endpoint: s3.endpoint, credentials: { ...S3RVER_CREDENTIALS } });
  repo = await makeLfsRepo(server, tmp.path, 'to-s3', { 'model.bin': bytes(400_000, 'model'), 'tiny.bin': 'tiny\n' });
});
after(async () => {
  await blobs?.close();
  await server?.close();
  await s3?.stop();
  tmp.cleanup();
});

async function mirror(): Promise<{ code: number | null; report: Report }> {
  const r = await packferry(['mirror', '--json', '--netrc', '/dev/null', '--s3-endpoint', s3.endpoint, repo.url, ADDRESS], {
    env: {
      AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
      AWS_REGION: 'us-east-1',
      AWS_CONFIG_FILE: '/dev/null',
      AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    },
  });
  return { code: r.code, report: parseJson<Report>(r) };
}

describe('packferry mirror with Git LFS into S3', () => {
  it('stores every LFS object in the bucket at lfs/objects/aa/bb/<oid>', async () => {
    const { code, report } = await mirror();
    assert.equal(code, 0, JSON.stringify(report));
    assert.equal(report.targets[0].lfs?.fetched, 2);
    for (const [oid, content] of repo.objects) {
      const stored = await blobs.get(lfsKey(oid));
      assert.ok(stored !== undefined && stored.equals(content) && sha256(stored) === oid, `${oid} is in the bucket`);
    }
  });

  it('content that does not match its pointer leaves nothing in the bucket and the refs unmoved', async () => {
    const manifest = await blobs.get(KEYS.manifest);
    await commitAndPush(repo, tmp.path, { 'broken.bin': bytes(100_000, 'broken') }, 'broken');
    const oid = repo.files.get('broken.bin')!.oid;
    server.corrupt(oid, 'content');
    const { code, report } = await mirror();
    assert.equal(code, 1);
    assert.equal(report.targets[0].error?.code, 'ERR_LFS_FETCH_FAILED');
    assert.deepEqual(report.targets[0].lfs?.failed.map((f) => [f.oid, f.code]), [[oid, 'ERR_HASH_MISMATCH']]);
    assert.equal(await blobs.head(lfsKey(oid)), undefined);
    assert.deepEqual(await s3.pendingUploads(BUCKET, PREFIX), []);
    assert.ok((await blobs.get(KEYS.manifest))?.equals(manifest!), 'the manifest did not change');
  });
});

// `packferry token create` and `token revoke` run many at once (real CLI
// processes) lose no change of the one tokens file: against a directory
// root (compare-and-swap by the lockfile), s3rver with S3's conditional
// writes (If-Match, found by the probe) and s3rver without them (the writer
// lock). Every token made is listed by `token ls` and authenticates; every
// revoked one is gone and does not.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { BlobStore } from '../../src/store/backend.js';
import { FsBlobStore } from '../../src/store/fs-backend.js';
import { S3BlobStore } from '../../src/store/s3-backend.js';
import { TOKENS_KEY, TokenStore } from '../../src/server/auth/tokens.js';
import { tempDir } from '../support/git.js';
import { packferry } from '../support/mirror-fixtures.js';
import { S3RVER_CREDENTIALS, startS3Server, type S3Server } from '../support/s3-server.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const BUCKET = 'packferry-tokens';
const CREATES = 20;
const tmp = tempDir('packferry-tokens-concurrent-');
let withCas: S3Server;
let without: S3Server;
const opened: BlobStore[] = [];

before(async () => {
  [withCas, without] = await Promise.all([startS3Server({ buckets: [BUCKET], conditionalWrites: true }), startS3Server({ buckets: [BUCKET] })]);
});

after(async () => {
  for (const store of opened) await store.close();
  await withCas?.stop();
  await without?.stop();
  tmp.cleanup();
});

function s3Env(server: S3Server): NodeJS.ProcessEnv {
  return {
    AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
    AWS_REGION: 'us-east-1',
    AWS_ENDPOINT_URL_S3: server.endpoint,
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  };
}

interface Root {
  name: string;
  address: string;
  env: NodeJS.ProcessEnv;
  /** The same root, as the server would open it. */
  blobs: () => BlobStore;
}

const roots: Root[] = [
  (() => {
    const dir = join(tmp.path, 'root');
    mkdirSync(dir);
    return { name: 'a directory root', address: dir, env: {}, blobs: () => new FsBlobStore(dir) };
  })(),
  {
    name: 's3rver with conditional writes',
    address: `s3://${BUCKET}/with-cas`,
    get env() {
      return s3Env(withCas);
    },
    blobs: () => new S3BlobStore({ bucket: BUCKET, prefix: 'with-cas', endpoint: withCas.endpoint, credentials: { ...S3RVER_CREDENTIALS } }),
  },
  {
    name: 's3rver without conditional writes (the writer lock)',
    address: `s3://${BUCKET}/without-cas`,
    get env() {
      return s3Env(without);
    },
    blobs: () => new S3BlobStore({ bucket: BUCKET, prefix: 'without-cas', endpoint: without.endpoint, credentials: { ...S3RVER_CREDENTIALS } }),
  },
];

for (const root of roots) {
  describe(`concurrent token commands on ${root.name}`, () => {
    it(`${CREATES} token create at once: all ${CREATES} listed, each authenticates; then half revoked at once`, async () => {
      const created = await Promise.all(
        Array.from({ length: CREATES }, (_, i) => packferry(['token', 'create', `user-${i}`, '--read', '--store', root.address, '--json'], { env: root.env, timeoutMs: 120_000 })),
      );
      for (const [i, r] of created.entries()) assert.equal(r.code, 0, `token create ${i} failed (exit ${r.code}):\n${r.stdout}${r.stderr}`);
      const tokens = created.map((r) => JSON.parse(r.stdout) as { token: string; id: string; user: string });
      assert.equal(new Set(tokens.map((t) => t.id)).size, CREATES, 'distinct ids');

      const ls = await packferry(['token', 'ls', '--store', root.address, '--json'], { env: root.env });
      assert.equal(ls.code, 0, ls.stderr);
      const listed = (JSON.parse(ls.stdout) as { tokens: { id: string; user: string }[] }).tokens;
      assert.deepEqual(listed.map((t) => t.id).sort(), tokens.map((t) => t.id).sort(), `token ls lists all ${CREATES} (not only the last writers')`);

      const blobs = root.blobs();
      opened.push(blobs);
      const store = new TokenStore(blobs, { refreshMs: 0 });
      for (const t of tokens) {
        const check = await store.verify(t.token);
        assert.ok(check.ok, `the token of ${t.user} authenticates`);
        assert.equal(check.ok && check.info.id, t.id);
      }
      if (blobs instanceof FsBlobStore) assert.equal(statSync(blobs.pathOf(TOKENS_KEY)).mode & 0o777, 0o600, 'the tokens file stays 0600');

      const [gone, kept] = [tokens.slice(0, CREATES / 2), tokens.slice(CREATES / 2)];
      const revoked = await Promise.all(gone.map((t) => packferry(['token', 'revoke', t.id, '--store', root.address, '--json'], { env: root.env, timeoutMs: 120_000 })));
      for (const [i, r] of revoked.entries()) assert.equal(r.code, 0, `token revoke ${i} failed (exit ${r.code}):\n${r.stdout}${r.stderr}`);
      const after = (JSON.parse((await packferry(['token', 'ls', '--store', root.address, '--json'], { env: root.env })).stdout) as { tokens: { id: string }[] }).tokens;
      assert.deepEqual(after.map((t) => t.id).sort(), kept.map((t) => t.id).sort(), 'exactly the revoked ones are gone');
      for (const t of gone) assert.equal((await store.verify(t.token)).ok, false, `revoked ${t.id} no longer authenticates`);
      for (const t of kept) assert.ok((await store.verify(t.token)).ok);
    });
  });
}

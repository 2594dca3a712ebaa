// `packferry serve` over an S3-backed store root (issue 5, scenario 7): a
// real s3rver process, `packferry serve --store s3://bucket/root
// --s3-endpoint ...`, the real git. Push and clone work, a hook stored in
// the bucket runs (copied to the local cache), and the server keeps no state
// of its own: stopped after a push and started again with an empty cache
// directory, it serves the same repository, and takes further pushes.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../support/git.js';
import { makeSource, refMap } from '../support/mirror-fixtures.js';
import type { RepoSummary } from '../support/repogen.js';
import { S3RVER_CREDENTIALS, startS3Server, type S3Server } from '../support/s3-server.js';
import {
  anonymousClient,
  assertCloneMatches,
  assertStoreVerifies,
  bearerClient,
  gitFails,
  gitOk,
  lsRemote,
  pf,
  sortedEntries,
  startServe,
  stopAllServers,
  type GitClient,
  type ServeProcess,
} from '../support/serve-fixtures.js';

const BUCKET = 'serve-bucket';
const ROOT = `s3://${BUCKET}/root`;
const tmp = tempDir('packferry-serve-s3-');
const none = anonymousClient();
let s3: S3Server;
let env: NodeJS.ProcessEnv;
let server: ServeProcess;
let source: RepoSummary;
let writer: GitClient;
let counter = 0;

async function serve(cacheDir: string): Promise<ServeProcess> {
  return startServe(['--store', ROOT, '--s3-endpoint', s3.endpoint, '--cache-dir', cacheDir], { env });
}

function url(): string {
  return `${server.url}/r.git`;
}

before(async () => {
  [s3, source] = await Promise.all([startS3Server({ buckets: [BUCKET] }), makeSource(join(tmp.path, 'source.git'), 23)]);
  env = {
    AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
    AWS_REGION: 'us-east-1',
    AWS_ENDPOINT_URL_S3: s3.endpoint,
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  };
  await pf(['repo', 'create', 'r', '--store', ROOT], env);
  const token = (JSON.parse((await pf(['token', 'create', 'dev', '--read', '--write', '--store', ROOT, '--s3-endpoint', s3.endpoint, '--json'], env)).stdout) as { token: string })
    .token;
  writer = bearerClient(token);
  server = await serve(join(tmp.path, 'cache-1'));
});

after(async () => {
  await stopAllServers();
  await s3?.stop();
  tmp.cleanup();
});

describe('packferry serve over an S3 store', () => {
  it('takes a push and serves a clone of it', async () => {
    await gitOk(writer, ['push', '-q', url(), 'refs/heads/*:refs/heads/*', 'refs/tags/*:refs/tags/*'], { cwd: source.dir });
    const dir = join(tmp.path, `clone-${++counter}`);
    await gitOk(writer, ['clone', '-q', url(), dir]);
    const remote = await assertCloneMatches(writer, url(), dir);
    assert.deepEqual(sortedEntries(remote), sortedEntries(refMap(source.dir)));
    assert.equal(await gitOk(none, ['rev-parse', 'HEAD'], { cwd: dir }), source.head);
    await assertStoreVerifies(`${ROOT}/r.git`, env);
  });

  it('runs a hook kept in the bucket, sandboxed: without the AWS keys, and seeing nothing of the cache but itself', async () => {
    const hook = join(tmp.path, 'pre-receive');
    const cache = join(tmp.path, 'cache-1');
    writeFileSync(
      hook,
      [
        '#!/bin/sh',
        'env | grep "^AWS_" | sed "s/^/s3 hook sees: /"',
        'echo "s3 hook GIT_DIR=${GIT_DIR-unset}"',
        `echo "s3 hook cache: $(ls -A '${cache}' | tr '\\n' ' ')"`,
        'while read old new ref; do case "$ref" in refs/heads/wip/*) echo "s3 hook: no $ref"; exit 1;; esac; done',
        'exit 0',
        '',
      ].join('\n'),
    );
    await pf(['repo', 'edit', 'r', '--hook', `pre-receive=${hook}`, '--store', ROOT], env);
    const before = await lsRemote(writer, url());
    const stderr = await gitFails(writer, ['push', url(), 'refs/heads/main:refs/heads/wip/x'], { cwd: source.dir });
    assert.match(stderr, /^remote: s3 hook: no refs\/heads\/wip\/x/m);
    assert.deepEqual(sortedEntries(await lsRemote(writer, url())), sortedEntries(before));
    assert.doesNotMatch(stderr, /s3 hook sees:/);
    assert.ok(!stderr.includes(S3RVER_CREDENTIALS.secretAccessKey));
    assert.match(stderr, /^remote: s3 hook GIT_DIR=unset/m);
    // The cache holds layers' indexes and the hook's scratch directories too; the sandbox shows only the hook's own copy.
    assert.ok(readdirSync(cache).length > 1, readdirSync(cache).join(' '));
    assert.match(stderr, /^remote: s3 hook cache: hooks\s*$/m);
  });

  it('keeps no state of its own: restarted with an empty cache after a push, it serves the same data', async () => {
    const work = join(tmp.path, 'work');
    await gitOk(writer, ['clone', '-q', url(), work]);
    writeFileSync(join(work, 'after-restart.txt'), 'pushed before the restart\n');
    await gitOk(none, ['add', '.'], { cwd: work });
    await gitOk(none, ['commit', '-q', '-m', 'before the restart'], { cwd: work });
    const tip = await gitOk(none, ['rev-parse', 'HEAD'], { cwd: work });
    await gitOk(writer, ['push', '-q', 'origin', 'main', 'HEAD:refs/heads/s3-branch'], { cwd: work });
    const pushed = await lsRemote(writer, url());

    await server.stop();
    rmSync(join(tmp.path, 'cache-1'), { recursive: true, force: true });
    server = await serve(join(tmp.path, 'cache-2'));
    assert.deepEqual(sortedEntries(await lsRemote(writer, url())), sortedEntries(pushed));
    const dir = join(tmp.path, `clone-${++counter}`);
    await gitOk(writer, ['clone', '-q', url(), dir]);
    await assertCloneMatches(writer, url(), dir);
    assert.equal(await gitOk(none, ['rev-parse', 'HEAD'], { cwd: dir }), tip);

    // And it takes pushes again, hooks included (copied into the new cache).
    await gitOk(none, ['remote', 'set-url', 'origin', url()], { cwd: work });
    await gitOk(writer, ['push', '-q', url(), ':refs/heads/s3-branch'], { cwd: work });
    assert.match(await gitFails(writer, ['push', url(), 'HEAD:refs/heads/wip/y'], { cwd: work }), /^remote: s3 hook: no refs\/heads\/wip\/y/m);
    assert.equal((await lsRemote(writer, url())).has('refs/heads/s3-branch'), false);
    await gitOk(writer, ['fetch', '-q', '--prune', 'origin'], { cwd: work });
    await assertCloneMatches(writer, url(), work);
    await assertStoreVerifies(`${ROOT}/r.git`, env);
  });
});

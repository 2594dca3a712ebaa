// The store's acceptance scenarios (store-scenarios.ts) on S3: stores live in
// a bucket of a real s3rver process, the `packferry` command reaches it
// through a fault-injecting proxy (which counts requests and can hold one
// back, so a writer is killed at a known point), and Git clones the stores
// over plain ("dumb") HTTP straight from s3rver. Git first asks for
// info/refs?service=git-upload-pack; S3 ignores query parameters it does not
// know and answers with the object (text/plain), which Git takes for a dumb
// server — s3rver does the same, so no workaround is needed.
//
// Beyond the shared scenarios: S3 refusing the manifest or the pack upload.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { KEYS } from '../../src/store/layout.js';
import { S3BlobStore } from '../../src/store/s3-backend.js';
import { git, tempDir } from '../support/git.js';
import { commitFiles, makeSource, refMap, type JsonReport } from '../support/mirror-fixtures.js';
import { S3RVER_CREDENTIALS, startFaultProxy, startS3Server, type FaultProxy, type S3Server } from '../support/s3-server.js';
import { storeScenarios } from './store-scenarios.js';
import { verifyStore } from '../../src/store/verify.js';
import { json, packferryCli, readManifest, sameRefs, startFront, storeRefs, syncStore, type Front, type StoreSite, type VerifyJson } from './store-fixtures.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const BUCKET = 'packferry-stores';
let server: S3Server;
let proxy: FaultProxy;
let front: Front;
const work = tempDir('packferry-s3-stores-');
const opened: S3BlobStore[] = [];
let n = 0;

before(async () => {
  server = await startS3Server({ buckets: [BUCKET] });
  proxy = await startFaultProxy(server.port);
  front = await startFront(async (path) => {
    const res = await fetch(`${server.endpoint}${path}`);
    return res.ok ? Buffer.from(await res.arrayBuffer()) : undefined;
  });
});

after(async () => {
  assert.ok(server === undefined || server.running(), `s3rver died during the tests:\n${server?.log()}`);
  for (const store of opened) await store.close();
  await front?.stop();
  await proxy?.stop();
  await server?.stop();
  work.cleanup();
});

/** "prefix/repo.git" of an s3:// address. */
function prefixOf(address: string): string {
  return address.slice(`s3://${BUCKET}/`.length);
}

/** The store key a request through the proxy was for, if it was for `prefix`. */
function keyOf(url: string, prefix: string): string | undefined {
  const path = decodeURIComponent(url.split('?')[0]);
  const base = `/${BUCKET}/${prefix}/`;
  return path.startsWith(base) ? path.slice(base.length) : undefined;
}

const site: StoreSite = {
  name: 's3',
  cacheDir: join(work.path, 'cache'),
  address: (label) => `s3://${BUCKET}/${label}-${++n}/repo.git`,
  blobs(address) {
    const store = new S3BlobStore({ bucket: BUCKET, prefix: prefixOf(address), endpoint: server.endpoint, credentials: { ...S3RVER_CREDENTIALS } });
    opened.push(store);
    return store;
  },
  writerBlobs(address) {
    const store = new S3BlobStore({ bucket: BUCKET, prefix: prefixOf(address), endpoint: proxy.endpoint, credentials: { ...S3RVER_CREDENTIALS } });
    opened.push(store);
    return store;
  },
  cliArgs: () => ['--s3-endpoint', proxy.endpoint, '--cache-dir', join(work.path, 'cli-cache')],
  cliEnv: () => ({
    AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
    AWS_REGION: 'us-east-1',
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  }),
  cloneUrl: (address) => `${server.endpoint}/${BUCKET}/${prefixOf(address)}`,
  async fetchKey(address, key) {
    const res = await fetch(`${server.endpoint}/${BUCKET}/${prefixOf(address)}/${key}`);
    return res.ok ? Buffer.from(await res.arrayBuffer()) : undefined;
  },
  frontUrl(address, overrides) {
    front.override(`${BUCKET}/${prefixOf(address)}`, overrides);
    return `${front.url}/${BUCKET}/${prefixOf(address)}`;
  },
  frontRequests: () => front.requests,
  async backdate(address, key, ms) {
    // s3rver reports an object's file time as its LastModified.
    const t = new Date(Date.now() - ms);
    const parts = `${prefixOf(address)}/${key}`.split('/');
    const last = parts.pop()!;
    await utimes(join(server.directory, BUCKET, ...parts, `${last}._S3rver_object`), t, t);
  },
  async observe(address, fn) {
    proxy.clear();
    const result = await fn();
    const prefix = prefixOf(address);
    const mine = proxy.requests.filter((r) => keyOf(r.url, prefix) !== undefined || r.url.split('?')[0] === `/${BUCKET}`);
    const keys = (method: string) => mine.filter((r) => r.method === method).map((r) => keyOf(r.url, prefix)).filter((k): k is string => k !== undefined);
    return { result, written: keys('PUT'), deleted: keys('DELETE'), requests: mine.length };
  },
  hang(match) {
    let seen = false;
    proxy.clear();
    proxy.inject(
      { kind: 'hang' },
      {
        match: (req) => {
          const key = keyOf(req.url, req.url.split('/').slice(2, 4).join('/'));
          const hit = key !== undefined && match(req.method, key);
          if (hit) seen = true;
          return hit;
        },
      },
    );
    return { seen: () => seen };
  },
};

describe('store acceptance: S3 stores', () => {
  storeScenarios(() => site);

  it("answers Git's smart-HTTP probe as a dumb server: info/refs?service=git-upload-pack is the plain info/refs", async () => {
    const dir = tempDir('packferry-s3-probe-');
    try {
      const source = join(dir.path, 'source.git');
      await makeSource(source, 22);
      const store = site.address('probe');
      await syncStore(site, { into: store, from: source });
      const res = await fetch(`${site.cloneUrl(store)}/info/refs?service=git-upload-pack`);
      assert.equal(res.status, 200);
      assert.notEqual(res.headers.get('content-type'), 'application/x-git-upload-pack-advertisement', 'Git would take it for a smart server');
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), await site.blobs(store).get(KEYS.infoRefs));
    } finally {
      dir.cleanup();
    }
  });

  it('a sync whose manifest or pack upload S3 refuses changes nothing, verifies, and the next sync completes', async () => {
    const dir = tempDir('packferry-s3-refused-');
    try {
      const source = join(dir.path, 'source.git');
      await makeSource(source, 21);
      const store = site.address('refused');
      const blobs = site.blobs(store);
      const prefix = prefixOf(store);
      const accessDenied = { kind: 'error', status: 403, code: 'AccessDenied', message: 'Access Denied' } as const;
      const sync = async () => json<JsonReport>(await packferryCli(site, ['mirror', '-q', '--json', source, store]));
      const verify = async () => {
        const r = await packferryCli(site, ['store', 'verify', '--json', store]);
        assert.equal(r.code, 0, r.stdout);
        return json<VerifyJson>(r);
      };

      // The first sync: S3 refuses the manifest. The layer stored for it is removed again (the manifest
      // read back does not name it), and there are no refs.
      proxy.clear();
      proxy.inject(accessDenied, { method: 'PUT', match: (r) => keyOf(r.url, prefix) === KEYS.manifest });
      let report = await sync();
      assert.equal(report.ok, false);
      assert.match(report.targets[0].error?.message ?? '', /Access Denied|AccessDenied|denied/i);
      assert.equal(proxy.requests.filter((r) => r.method === 'DELETE' && /objects\/pack\//.test(r.url)).length, 2, 'the pack and index are deleted');
      let checked = await verify();
      assert.deepEqual(checked.problems, []);
      assert.equal(checked.generation, 0);
      assert.equal((await storeRefs(blobs)).size, 0);
      await syncStore(site, { into: store, from: source });
      assert.ok(sameRefs(await storeRefs(blobs), refMap(source)));

      // An incremental sync whose pack upload is refused: nothing is stored, the refs stay.
      const before = await storeRefs(blobs);
      const generation = (await readManifest(blobs))!.generation;
      commitFiles(source, 'main', { 'refused.txt': 'refused upload\n' });
      proxy.clear();
      proxy.inject(accessDenied, { method: 'PUT', match: (r) => /^objects\/pack\/pack-[0-9a-f]{40}\.pack$/.test(keyOf(r.url, prefix) ?? '') });
      report = await sync();
      assert.equal(report.ok, false);
      assert.equal(proxy.requests.filter((r) => r.fault === 'error').length, 1, 'an access error is not retried');
      assert.ok(sameRefs(await storeRefs(blobs), before));
      assert.equal((await readManifest(blobs))!.generation, generation);
      checked = await verify();
      assert.deepEqual(checked.problems, [], 'a refused upload leaves nothing behind');
      await syncStore(site, { into: store, from: source });
      assert.ok(sameRefs(await storeRefs(blobs), refMap(source)));
      assert.equal(git(['rev-parse', 'refs/heads/main'], { cwd: source }), (await storeRefs(blobs)).get('refs/heads/main'));
      const strict = await verifyStore(blobs, { full: true });
      assert.deepEqual(strict.problems, []);
    } finally {
      dir.cleanup();
    }
  });
});

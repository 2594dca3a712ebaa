// `packferry mirror` of repositories using Git LFS into directory stores,
// end to end with real parts: repositories made and pushed by the real
// `git lfs` client to a real Git LFS server (test/support/lfs-server.ts, Git
// through `git http-backend`, Basic auth on everything), mirrored by the
// packferry command, and the stored LFS objects read back by `git lfs pull`
// from a clone of the store (git-lfs's standalone file transfer reads
// <store>/lfs/objects/aa/bb/<oid> as it reads its own local store).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { FsBlobStore } from '../../src/store/fs-backend.js';
import { lfsKey } from '../../src/store/layout.js';
import { LfsObjectStore } from '../../src/store/lfs.js';
import { StoreRepository } from '../../src/store/repository.js';
import { git, gitAsync, tempDir } from '../support/git.js';
import { startLfsServer, type LfsServer } from '../support/lfs-server.js';
import { packferry, parseJson, refLines, type JsonReport, type JsonTarget } from '../support/mirror-fixtures.js';
import { AUTH, bytes, commitAndPush, lfsEnv, makeLfsRepo, sha256, type LfsRepo } from './fixtures.js';

interface LfsJson {
  status: 'mirrored' | 'skipped';
  endpoint?: string;
  reason?: string;
  objects: number;
  fetched: number;
  present: number;
  bytes: number;
  failed: { oid: string; size: number; code: string; message: string }[];
}
type Report = JsonReport & { targets: (JsonTarget & { lfs?: LfsJson })[] };

const tmp = tempDir('packferry-lfs-mirror-');
let server: LfsServer;
before(async () => {
  server = await startLfsServer({ projectRoot: join(tmp.path, 'srv'), auth: AUTH });
});
after(async () => {
  await server?.close();
  tmp.cleanup();
});

let stores = 0;
const newStore = () => join(tmp.path, 'stores', `store-${++stores}.git`);
const ARGS = ['--netrc', '/dev/null'];

async function mirrorJson(source: string, store: string, extra: string[] = []): Promise<{ code: number | null; report: Report; stderr: string }> {
  const r = await packferry(['mirror', '--json', ...ARGS, ...extra, source, store]);
  return { code: r.code, report: parseJson<Report>(r), stderr: r.stderr };
}

/** Every LFS object in a directory store, checked to sit under its own SHA-256. */
function storedObjects(store: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const root = join(store, 'lfs', 'objects');
  if (!existsSync(root)) return out;
  for (const aa of readdirSync(root)) {
    for (const bb of readdirSync(join(root, aa))) {
      for (const name of readdirSync(join(root, aa, bb))) {
        assert.ok(!name.startsWith('.tmp-'), `a temporary file was left: ${name}`);
        const content = readFileSync(join(root, aa, bb, name));
        assert.equal(sha256(content), name, `${name} holds content hashing to ${sha256(content)}`);
        assert.equal(`lfs/objects/${aa}/${bb}/${name}`, lfsKey(name));
        out.set(name, content);
      }
    }
  }
  return out;
}

function assertObjects(store: string, repo: LfsRepo): void {
  const stored = storedObjects(store);
  assert.deepEqual([...stored.keys()].sort(), [...repo.objects.keys()].sort());
  for (const [oid, content] of repo.objects) assert.ok(stored.get(oid)!.equals(content), `content of ${oid}`);
}

const downloadBatches = () => server.batches.filter((b) => b.operation === 'download');

describe('packferry mirror with Git LFS', () => {
  let repo: LfsRepo;
  const store = newStore();

  before(async () => {
    repo = await makeLfsRepo(server, tmp.path, 'art', {
      'big.bin': bytes(300_000, 'big'),
      'small.bin': 'a tiny LFS file\n',
      'dir/nested.bin': bytes(5_000, 'nested'),
      'README.md': 'plain Git content\n',
    });
  });

  it('stores the Git objects and every LFS object, verified, at lfs/objects/aa/bb/<oid>', async () => {
    server.reset();
    const { code, report, stderr } = await mirrorJson(repo.url, store);
    assert.equal(code, 0, JSON.stringify(report) + stderr);
    const lfs = report.targets[0].lfs!;
    assert.equal(lfs.status, 'mirrored');
    assert.deepEqual({ objects: lfs.objects, fetched: lfs.fetched, present: lfs.present, failed: lfs.failed }, { objects: 3, fetched: 3, present: 0, failed: [] });
    assert.equal(lfs.bytes, 300_000 + 16 + 5_000);
    assert.equal(lfs.endpoint, `${server.url}/art.git/info/lfs`, 'the endpoint is shown without credentials');
    assertObjects(store, repo);
    assert.deepEqual(refLines(store), refLines(repo.bare));
    // One batch request, with the remote's credentials; each object downloaded once.
    const batches = downloadBatches();
    assert.equal(batches.length, 1);
    assert.equal(batches[0].authorization, `Basic ${Buffer.from(`${AUTH.username}:${AUTH.password}`).toString('base64')}`);
    assert.deepEqual([...batches[0].oids].sort(), [...repo.objects.keys()].sort());
    assert.deepEqual([...server.downloads].sort(), [...repo.objects.keys()].sort());
  });

  it('a second sync fetches only the new LFS objects', async () => {
    await commitAndPush(repo, tmp.path, { 'big.bin': bytes(200_000, 'big v2'), 'more.bin': bytes(1_000, 'more') }, 'second');
    server.reset();
    const r = await packferry(['mirror', ...ARGS, repo.url, store]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^LFS: 2 objects fetched, 0 already stored, 196\.29 KiB$/m);
    const fresh = [repo.files.get('big.bin')!.oid, repo.files.get('more.bin')!.oid].sort();
    assert.equal(downloadBatches().length, 1);
    assert.deepEqual([...downloadBatches()[0].oids].sort(), fresh, 'only the new pointers are asked for');
    assert.deepEqual([...server.downloads].sort(), fresh);
    assertObjects(store, repo);
    assert.deepEqual(refLines(store), refLines(repo.bare));
  });

  it('skips an object already in the store', async () => {
    const other = newStore();
    const already = repo.files.get('dir/nested.bin')!;
    const blobs = new FsBlobStore(other);
    await (await StoreRepository.open(blobs)).init();
    await new LfsObjectStore(blobs).put(already.oid, already.content, already.content.length);
    server.reset();
    const { code, report } = await mirrorJson(repo.url, other);
    assert.equal(code, 0, JSON.stringify(report));
    const lfs = report.targets[0].lfs!;
    assert.deepEqual({ objects: lfs.objects, fetched: lfs.fetched, present: lfs.present }, { objects: 5, fetched: 4, present: 1 });
    assert.ok(!downloadBatches()[0].oids.includes(already.oid), 'the stored object is not asked for');
    assert.ok(!server.downloads.includes(already.oid));
    assertObjects(other, repo);
  });

  it('--no-lfs mirrors the Git objects only', async () => {
    const other = newStore();
    server.reset();
    const { code, report } = await mirrorJson(repo.url, other, ['--no-lfs']);
    assert.equal(code, 0, JSON.stringify(report));
    assert.equal(report.targets[0].lfs, undefined);
    assert.equal(server.batches.length, 0);
    assert.equal(existsSync(join(other, 'lfs')), false);
    assert.deepEqual(refLines(other), refLines(repo.bare));
  });

  it('retries the batch API on 503 and 429', async () => {
    const other = newStore();
    server.reset();
    server.failBatch(1, 503);
    server.failBatch(1, 429, '0');
    const { code, report } = await mirrorJson(repo.url, other);
    assert.equal(code, 0, JSON.stringify(report));
    assert.deepEqual(
      server.batches.map((b) => b.status),
      [503, 429, 200],
    );
    assert.equal(report.targets[0].lfs!.fetched, 5);
    assertObjects(other, repo);
  });

  it('the stored objects are usable: `git lfs pull` in a clone of the store gets the real content', async () => {
    const clone = join(tmp.path, 'clone-of-store');
    git(['clone', '-q', store, clone], { env: lfsEnv(tmp.path) });
    const env = lfsEnv(tmp.path);
    for (const args of [['lfs', 'install', '--local'], ['lfs', 'pull']]) {
      const r = await gitAsync(args, { cwd: clone, env });
      assert.equal(r.code, 0, `git ${args.join(' ')}: ${r.stderr}`);
    }
    assert.match(git(['lfs', 'env'], { cwd: clone, env }), /Endpoint=file:\/\//, 'git-lfs read the store through its file transfer');
    for (const f of repo.files.values()) {
      assert.ok(readFileSync(join(clone, f.path)).equals(f.content), `${f.path} has its real content`);
    }
    assert.equal(readFileSync(join(clone, 'README.md'), 'utf8'), 'plain Git content\n');
  });

  it('from a source that is not http(s), the pointers are counted and reported as not fetched', async () => {
    const other = newStore();
    server.reset();
    const { code, report } = await mirrorJson(repo.bare, other);
    assert.equal(code, 0, JSON.stringify(report));
    assert.deepEqual(report.targets[0].lfs, { status: 'skipped', reason: 'the source is not an http(s) remote', objects: 5 });
    assert.equal(server.batches.length, 0);
    const text = await packferry(['mirror', ...ARGS, repo.bare, newStore()]);
    assert.match(text.stdout, /^LFS: 5 objects not fetched \(the source is not an http\(s\) remote\)$/m);
  });
});

describe('packferry mirror with a faulty Git LFS server', () => {
  let repo: LfsRepo;
  const store = newStore();

  before(async () => {
    repo = await makeLfsRepo(server, tmp.path, 'faulty', { 'one.bin': bytes(40_000, 'one') });
    const { code, report } = await mirrorJson(repo.url, store);
    assert.equal(code, 0, JSON.stringify(report));
  });

  for (const how of ['content', 'longer', 'shorter', 'wrong-length-header'] as const) {
    it(`content that does not match its pointer (${how}) fails the sync: no object stored, refs unmoved`, async () => {
      const before = refLines(store);
      const manifest = readFileSync(join(store, 'packferry', 'manifest.json'));
      await commitAndPush(repo, tmp.path, { [`${how}.bin`]: bytes(30_000, how) }, `add ${how}`);
      const oid = repo.files.get(`${how}.bin`)!.oid;
      server.reset();
      server.corrupt(oid, how);
      const { code, report } = await mirrorJson(repo.url, store);
      assert.equal(code, 1);
      const target = report.targets[0];
      assert.equal(target.ok, false);
      assert.equal(target.error?.code, 'ERR_LFS_FETCH_FAILED');
      assert.match(target.error!.message, new RegExp(`1 of 1 Git LFS object could not be fetched .*nothing was committed.*${oid}`));
      assert.equal(target.lfs?.failed[0].oid, oid);
      assert.equal(target.lfs?.failed[0].code, 'ERR_HASH_MISMATCH');
      assert.equal(existsSync(join(store, lfsKey(oid))), false, 'the wrong content was not stored');
      assert.deepEqual(refLines(store), before, "the store's refs did not move");
      assert.ok(readFileSync(join(store, 'packferry', 'manifest.json')).equals(manifest), 'the manifest is unchanged');
      // Retried once the server is fixed: the sync completes.
      server.reset();
      const again = await mirrorJson(repo.url, store);
      assert.equal(again.code, 0, JSON.stringify(again.report));
      assert.equal(again.report.targets[0].lfs!.fetched, 1);
      assert.deepEqual(refLines(store), refLines(repo.bare));
      assertObjects(store, repo);
    });
  }

  it('an object the server does not have fails the sync with its error; --lfs-tolerate-failures commits the refs anyway', async () => {
    const before = refLines(store);
    await commitAndPush(repo, tmp.path, { 'gone.bin': bytes(2_000, 'gone'), 'fine.bin': bytes(3_000, 'fine') }, 'add gone');
    const gone = repo.files.get('gone.bin')!.oid;
    const fine = repo.files.get('fine.bin')!.oid;
    server.reset();
    server.objectError(gone, 404, 'Object does not exist');
    const failed = await packferry(['mirror', ...ARGS, repo.url, store]);
    assert.equal(failed.code, 1);
    assert.match(failed.stdout, /ERR|could not be fetched/);
    assert.match(failed.stdout, new RegExp(`Git LFS object ${gone}: not on the LFS server`));
    assert.match(failed.stdout, /^LFS: 1 object fetched, 0 already stored, 2\.93 KiB, 1 failed$/m);
    assert.match(failed.stdout, /^hint: .*--lfs-tolerate-failures/m);
    assert.deepEqual(refLines(store), before);
    assert.ok(existsSync(join(store, lfsKey(fine))), 'what could be fetched is kept (verified, content-named)');

    const tolerated = await mirrorJson(repo.url, store, ['--lfs-tolerate-failures']);
    assert.equal(tolerated.code, 0, JSON.stringify(tolerated.report));
    const lfs = tolerated.report.targets[0].lfs!;
    assert.deepEqual({ fetched: lfs.fetched, present: lfs.present }, { fetched: 0, present: 1 });
    assert.deepEqual(
      lfs.failed.map((f) => [f.oid, f.code]),
      [[gone, 'ERR_LFS_OBJECT']],
    );
    assert.deepEqual(refLines(store), refLines(repo.bare), 'the refs moved');
  });
});

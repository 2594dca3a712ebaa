// Regression tests for bugs the store's acceptance tests found, each named
// for what went wrong:
// - Git's files that a writer stopped before writing (HEAD, objects/info/packs)
//   were skipped as "unchanged" by the next commit, for ever;
// - a pack identical to a listed layer (the same objects sent again after a
//   ref was deleted and re-created) was listed twice, and a failed push then
//   deleted that live layer;
// - a commit whose manifest was stored but whose answer was lost deleted the
//   layer the stored manifest names;
// - a directory left by an interrupted first sync was no longer recognised
//   as a store ("not empty and not a packferry store", exit 2);
// - a writer killed with SIGKILL blocked every writer for ten minutes.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, isPackferryError, PackferryError } from '../../src/core/errors.js';
import { storeTarget } from '../../src/mirror/endpoints.js';
import { mirror } from '../../src/mirror/sync.js';
import type { BlobStore, PutOptions } from '../../src/store/backend.js';
import { FsBlobStore } from '../../src/store/fs-backend.js';
import { idxKey, KEYS, packKey, renderHead, renderInfoPacks } from '../../src/store/layout.js';
import { acquireWriterLock } from '../../src/store/lock.js';
import { classifyPath } from '../../src/store/open.js';
import { StoreRepository } from '../../src/store/repository.js';
import { verifyStore } from '../../src/store/verify.js';
import { openTransport } from '../../src/transport/open.js';
import { git, tempDir } from '../support/git.js';
import { assertMirrored, commitFiles, deleteRef, initBare, makeSource, packferry, refMap, updateRef } from '../support/mirror-fixtures.js';
import { readManifest, run, sameRefs, storeRefs, syncStore, type StoreSite } from './store-fixtures.js';

const work = tempDir('packferry-store-regressions-');
after(() => work.cleanup());
let n = 0;
const path = (label: string) => join(work.path, `${label}-${++n}`);
const site = { writerBlobs: (a: string) => new FsBlobStore(a), cacheDir: join(work.path, 'cache') } as unknown as StoreSite;

/** A directory store whose manifest puts are stored and then reported as failed (an answer lost on the way back). */
class LostAnswerStore implements BlobStore {
  lose = false;
  readonly description: string;
  constructor(private readonly inner: FsBlobStore) {
    this.description = inner.description;
  }
  get(key: string) {
    return this.inner.get(key);
  }
  getRange(key: string, start: number, end: number) {
    return this.inner.getRange(key, start, end);
  }
  getStream(key: string) {
    return this.inner.getStream(key);
  }
  head(key: string) {
    return this.inner.head(key);
  }
  async put(key: string, body: Uint8Array | AsyncIterable<Uint8Array>, options?: PutOptions) {
    await this.inner.put(key, body, options);
    if (this.lose && key === KEYS.manifest) throw new PackferryError(ErrorCode.TransportInterrupted, 'connection reset before the answer');
  }
  delete(key: string) {
    return this.inner.delete(key);
  }
  list(prefix: string) {
    return this.inner.list(prefix);
  }
  close() {
    return this.inner.close();
  }
}

describe('store regressions', () => {
  it("rewrites Git's files a stopped writer left behind, even when the next commit adds no layer and keeps HEAD", async () => {
    const source = path('source');
    await makeSource(source, 41);
    const store = path('store');
    const blobs = new FsBlobStore(store);
    await syncStore(site, { into: store, from: source });
    const gitFiles = [KEYS.head, KEYS.infoPacks, KEYS.packedRefs, KEYS.infoRefs];
    const old = await Promise.all(gitFiles.map(async (key) => (await blobs.get(key))!));
    const oldPublished = (await blobs.get(KEYS.published))!;
    // A sync that adds a layer and moves HEAD; then the state a writer killed right after its commit
    // leaves: all of Git's files of the generation before (a complete older state, so only warnings).
    commitFiles(source, 'trunk', { 'trunk.txt': 'trunk\n' }, { parent: git(['rev-parse', 'refs/heads/main'], { cwd: source }) });
    git(['symbolic-ref', 'HEAD', 'refs/heads/trunk'], { cwd: source });
    await syncStore(site, { into: store, from: source });
    for (const [i, key] of gitFiles.entries()) await blobs.put(key, old[i]);
    await blobs.put(KEYS.published, oldPublished); // (it is written last: a writer stopped before it left the older one)
    const stale = await verifyStore(blobs);
    assert.deepEqual(stale.problems.map((p) => `${p.severity} ${p.kind} ${p.key}`).sort(), gitFiles.map((key) => `warning stale-git-file ${key}`).sort());
    // The next sync deletes a ref: no new layer, the same HEAD. It used to leave both files as they were.
    deleteRef(source, 'refs/tags/release');
    await syncStore(site, { into: store, from: source });
    const m = (await readManifest(blobs))!;
    assert.equal((await blobs.get(KEYS.head))!.toString(), renderHead('refs/heads/trunk'));
    assert.equal((await blobs.get(KEYS.infoPacks))!.toString(), renderInfoPacks(m.layers.map((l) => l.name)));
    assert.deepEqual((await verifyStore(blobs)).problems, []);
    const clone = path('clone');
    git(['clone', '-q', '--mirror', store, clone]);
    assertMirrored(source, clone);
  });

  it('lists a pack identical to a listed layer once, and a failed push never deletes it', async () => {
    const source = initBare(path('source'));
    commitFiles(source, 'main', { 'a.txt': 'a\n' }, { parent: null });
    const store = path('store');
    const blobs = new FsBlobStore(store);
    await syncStore(site, { into: store, from: source });
    const feature = commitFiles(source, 'feature', { 'b.txt': 'b\n' }, { parent: git(['rev-parse', 'refs/heads/main'], { cwd: source }) });
    await syncStore(site, { into: store, from: source });
    const featureLayer = (await readManifest(blobs))!.layers[0].name;
    deleteRef(source, 'refs/heads/feature');
    await syncStore(site, { into: store, from: source });
    // The branch comes back: the store's refs do not reach its objects, so the source sends them again,
    // in a pack byte for byte the layer that brought them first.
    updateRef(source, 'refs/heads/feature', feature);
    const resent = await syncStore(site, { into: store, from: source });
    assert.equal(resent.targets[0].pack?.objects, 3);
    const m = (await readManifest(blobs))!;
    assert.deepEqual(m.layers.map((l) => l.name).filter((name) => name === featureLayer), [featureLayer], 'listed once');
    assert.deepEqual((await verifyStore(blobs)).problems, []);
    // Again, with the commit failing after the layer is stored: the live layer must survive the clean-up.
    deleteRef(source, 'refs/heads/feature');
    await syncStore(site, { into: store, from: source });
    updateRef(source, 'refs/heads/feature', feature);
    const flaky = new LostAnswerStore(blobs);
    flaky.lose = true;
    const failed = await mirror(await openTransport(source), [storeTarget('flaky', () => StoreRepository.open(flaky, { cacheDir: site.cacheDir }))]);
    assert.equal(failed.ok, false);
    assert.ok(await blobs.head(packKey(featureLayer)), 'the live layer is still there');
    assert.ok(await blobs.head(idxKey(featureLayer)));
    const checked = await verifyStore(blobs);
    assert.ok(checked.ok, JSON.stringify(checked.problems));
  });

  it('keeps the layer of a commit whose manifest was stored though the answer was lost', async () => {
    const source = path('source');
    await makeSource(source, 42);
    const store = path('store');
    const blobs = new FsBlobStore(store);
    await syncStore(site, { into: store, from: source });
    commitFiles(source, 'main', { 'lost.txt': 'the answer is lost\n' });
    const flaky = new LostAnswerStore(blobs);
    flaky.lose = true;
    const result = await mirror(await openTransport(source), [storeTarget('flaky', () => StoreRepository.open(flaky, { cacheDir: site.cacheDir }))]);
    assert.equal(result.ok, false);
    assert.match(result.targets[0].error?.message ?? '', /connection reset/);
    // The manifest was stored: it names the new layer, whose files must still be there.
    const m = (await readManifest(blobs))!;
    assert.ok(sameRefs(await storeRefs(blobs), refMap(source)));
    for (const key of [packKey(m.layers[0].name), idxKey(m.layers[0].name)]) assert.ok(await blobs.head(key), `${key} was deleted`);
    const checked = await verifyStore(blobs);
    assert.ok(checked.ok, JSON.stringify(checked.problems));
    assert.ok(checked.problems.every((p) => p.kind === 'stale-git-file'));
    await syncStore(site, { into: store, from: source }); // nothing to do, and nothing broken
  });

  it('recognises the directory an interrupted first sync left as a store, and the next sync completes there', async () => {
    const source = path('source');
    await makeSource(source, 43);
    const store = path('store');
    mkdirSync(join(store, 'packferry', 'locks'), { recursive: true });
    mkdirSync(join(store, 'objects', 'pack'), { recursive: true });
    writeFileSync(join(store, 'objects', 'pack', '.incoming-0123456789abcdef.pack'), 'PACK half');
    writeFileSync(join(store, 'config'), '[core]\n');
    assert.equal(classifyPath(store), 'store');
    const verified = await packferry(['store', 'verify', '--json', store]);
    assert.equal(verified.code, 0, verified.stderr);
    assert.deepEqual((JSON.parse(verified.stdout) as { problems: { kind: string }[] }).problems.map((p) => p.kind), ['orphan']);
    const synced = await packferry(['mirror', '-q', source, store]);
    assert.equal(synced.code, 0, synced.stderr);
    assert.ok(sameRefs(await storeRefs(new FsBlobStore(store)), refMap(source)));
    // A directory with unrelated files is still refused.
    const other = path('other');
    mkdirSync(other);
    writeFileSync(join(other, 'notes.txt'), 'mine\n');
    assert.equal(classifyPath(other), 'other');
  });

  it("takes over at once the lock of a writer of this host that no longer runs, and respects a live one's", async () => {
    const blobs = new FsBlobStore(path('locks'));
    const dead = run(['--version']);
    await dead.done;
    await blobs.put(`${KEYS.locks}000000000000001-dead.json`, Buffer.from(JSON.stringify({ owner: 'killed', host: hostname(), pid: dead.pid })));
    const started = Date.now();
    const lock = await acquireWriterLock(blobs, { attempts: 1 });
    assert.ok(Date.now() - started < 1000);
    assert.deepEqual((await blobs.list(KEYS.locks)).map((i) => i.key), [lock.key]);
    await lock.release();
    // A live process of this host (the test runner's parent) and a host we cannot check keep their locks.
    for (const holder of [{ host: hostname(), pid: process.ppid }, { host: 'elsewhere.example', pid: 1 }]) {
      const key = `${KEYS.locks}000000000000002-live.json`;
      await blobs.put(key, Buffer.from(JSON.stringify({ owner: 'alive', ...holder })));
      await assert.rejects(acquireWriterLock(blobs, { attempts: 1 }), (err: unknown) => isPackferryError(err, ErrorCode.StoreLocked) && /alive/.test(err.message));
      await blobs.delete(key);
    }
  });
});

// The one conformance suite every BlobStore backend passes (as go-git runs
// one storage suite against each storer): the semantics src/store/backend.ts
// promises, checked against a real backend — a directory, or a real
// S3-compatible server. A backend's test file calls backendConformance()
// with a factory for fresh, empty stores, and whether the store must offer
// compare-and-swap (ConditionalWrites): then its contract is checked too —
// create-if-absent once, updates only from the current version, exactly one
// winner among racing writers, no lost update, no partial blob, no lock or
// temporary file ever listed.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { ErrorCode, isPackferryError } from '../../src/core/errors.js';
import { conditionalWrites, type BlobStore, type ConditionalWrites } from '../../src/store/backend.js';

export interface BackendUnderTest {
  store: BlobStore;
  cleanup(): Promise<void>;
  /**
   * What a put left half done, for the failure tests: S3's pending multipart
   * uploads under the store's prefix, a directory's temporary files. Must be
   * empty once a put has settled, whether it succeeded or failed.
   */
  leftovers(): Promise<string[]>;
}

const MIB = 1024 * 1024;

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** `data` as an async stream of odd-sized chunks (1 byte up to 1 MiB + 3), yielding to the event loop now and then. */
export async function* oddChunks(data: Uint8Array, sizes = [1, 7, 65_537, MIB + 3, 4093, 333_333, 100_003]): AsyncGenerator<Uint8Array> {
  let offset = 0;
  let i = 0;
  while (offset < data.length) {
    const n = Math.min(sizes[i++ % sizes.length], data.length - offset);
    yield data.subarray(offset, offset + n);
    offset += n;
    if (i % 8 === 0) await nextTurn();
  }
}

async function collect(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

async function rejectsWithCode(promise: Promise<unknown>, code: ErrorCode, what: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(isPackferryError(err), `${what}: expected a PackferryError, got ${String(err)}`);
    assert.equal(err.code, code, `${what}: ${err.message}`);
    return true;
  });
}

/** Runs `fn` over `items` with at most `limit` at once. */
async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]);
    }),
  );
}

export interface ConformanceOptions {
  /** Whether `conditionalWrites(store)` must give the ability (true) or undefined (false). */
  conditionalWrites: boolean;
}

export function backendConformance(name: string, makeStore: () => Promise<BackendUnderTest>, options: ConformanceOptions): void {
  describe(`BlobStore conformance: ${name}`, () => {
    const made: BackendUnderTest[] = [];
    const fresh = async (): Promise<BackendUnderTest> => {
      const b = await makeStore();
      made.push(b);
      return b;
    };
    after(async () => {
      for (const b of made) await b.cleanup();
    });

    it('a missing key: get, head and getStream give undefined, getRange throws ERR_NOT_FOUND', async () => {
      const { store } = await fresh();
      assert.equal(await store.get('objects/pack/missing.pack'), undefined);
      assert.equal(await store.head('objects/pack/missing.pack'), undefined);
      assert.equal(await store.getStream('objects/pack/missing.pack'), undefined);
      await rejectsWithCode(store.getRange('objects/pack/missing.pack', 0, 10), ErrorCode.NotFound, 'getRange of a missing key');
      await rejectsWithCode(store.getRange('missing', 0, 0), ErrorCode.NotFound, 'empty getRange of a missing key');
      assert.deepEqual(await store.list(''), []);
    });

    it('put/get round trip: empty and small bodies, as bytes and as streams', async () => {
      const { store } = await fresh();
      const cases: [string, Buffer, Uint8Array | AsyncIterable<Uint8Array>][] = [
        ['empty', Buffer.alloc(0), new Uint8Array(0)],
        ['small', Buffer.from('0123456789abcdef\n'), Buffer.from('0123456789abcdef\n')],
        ['empty-stream', Buffer.alloc(0), oddChunks(Buffer.alloc(0))],
        ['dir/small-stream', Buffer.from('hello, store'), oddChunks(Buffer.from('hello, store'), [1, 2, 3])],
        ['dir/with-empty-chunks', Buffer.from('abc'), (async function* () {
          yield new Uint8Array(0);
          yield Buffer.from('ab');
          yield new Uint8Array(0);
          yield Buffer.from('c');
        })()],
      ];
      for (const [key, expected, body] of cases) {
        await store.put(key, body);
        const got = await store.get(key);
        assert.ok(got !== undefined, `${key}: present after put`);
        assert.ok(Buffer.isBuffer(got), `${key}: get gives a Buffer`);
        assert.deepEqual(got, expected, `${key}: bytes`);
        assert.equal((await store.head(key))?.size, expected.length, `${key}: head size`);
        const stream = await store.getStream(key);
        assert.ok(stream !== undefined);
        assert.deepEqual(await collect(stream), expected, `${key}: getStream bytes`);
      }
      assert.deepEqual(
        (await store.list('')).map((i) => [i.key, i.size]),
        [['dir/small-stream', 12], ['dir/with-empty-chunks', 3], ['empty', 0], ['empty-stream', 0], ['small', 17]],
      );
    });

    it('a 20 MiB body streamed from an async generator in odd-sized chunks round-trips byte for byte', async () => {
      const { store, leftovers } = await fresh();
      const data = randomBytes(20 * MIB + 12_345);
      const digest = sha256(data);
      await store.put('objects/pack/pack-big.pack', oddChunks(data));
      const got = await store.get('objects/pack/pack-big.pack');
      assert.ok(got !== undefined);
      assert.equal(got.length, data.length);
      assert.equal(sha256(got), digest);
      assert.ok(got.equals(data));
      const stream = await store.getStream('objects/pack/pack-big.pack');
      assert.ok(stream !== undefined);
      const hash = createHash('sha256');
      let streamed = 0;
      for await (const chunk of stream) {
        hash.update(chunk);
        streamed += chunk.length;
      }
      assert.equal(streamed, data.length);
      assert.equal(hash.digest('hex'), digest);
      assert.equal((await store.head('objects/pack/pack-big.pack'))?.size, data.length);
      // The same with its size given up front.
      await store.put('objects/pack/pack-sized.pack', oddChunks(data), { size: data.length });
      assert.equal(sha256((await store.get('objects/pack/pack-sized.pack')) ?? Buffer.alloc(0)), digest);
      assert.deepEqual(await leftovers(), []);
    });

    it('an overwrite is atomic: readers during a big overwrite see the whole old or the whole new value', async () => {
      const { store } = await fresh();
      const key = 'objects/pack/pack-overwrite.pack';
      const before = randomBytes(12 * MIB);
      const afterValue = randomBytes(12 * MIB);
      const hashes = new Map([
        [sha256(before), 'old'],
        [sha256(afterValue), 'new'],
      ]);
      await store.put(key, before);
      let writing = true;
      const seen: string[] = [];
      const reader = async (): Promise<void> => {
        // At least two reads each, and on until the writer is done.
        for (let n = 0; writing || n < 2; n++) {
          const got = await store.get(key);
          assert.ok(got !== undefined, 'the key never disappears during an overwrite');
          const which = hashes.get(sha256(got));
          assert.ok(which !== undefined, `read ${n} saw neither value (${got.length} bytes): a mixed or partial object`);
          seen.push(which);
        }
      };
      const readers = [reader(), reader(), reader()];
      // Small chunks with pauses keep the write in progress while the readers read.
      await store.put(key, oddChunks(afterValue, [256 * 1024]));
      writing = false;
      await Promise.all(readers);
      assert.ok(seen.length >= 6, `the readers read ${seen.length} times`);
      assert.ok(seen.includes('old'), 'some read happened before the overwrite finished');
      // Read-after-write: once put resolved, every reader sees the new value.
      const now = await store.get(key);
      assert.equal(now && hashes.get(sha256(now)), 'new');
      assert.equal((await store.head(key))?.size, afterValue.length);
    });

    it('getRange: inside, at both ends and whole; past the end and missing keys throw', async () => {
      const { store } = await fresh();
      const data = randomBytes(1000);
      await store.put('objects/pack/pack-r.idx', data);
      for (const [start, end] of [
        [0, 1],
        [999, 1000],
        [100, 357],
        [0, 1000],
        [1, 999],
        [500, 500],
      ]) {
        const got = await store.getRange('objects/pack/pack-r.idx', start, end);
        assert.ok(Buffer.isBuffer(got));
        assert.deepEqual(got, data.subarray(start, end), `range [${start}, ${end})`);
      }
      await rejectsWithCode(store.getRange('objects/pack/pack-r.idx', 990, 1010), ErrorCode.PackTruncated, 'a range past the end');
      await rejectsWithCode(store.getRange('objects/pack/other.idx', 0, 1), ErrorCode.NotFound, 'a range of a missing key');
      // A range of a multi-megabyte object reads only what it asks for, correctly placed.
      const big = randomBytes(9 * MIB + 7);
      await store.put('big', big);
      const start = 8 * MIB - 5;
      assert.deepEqual(await store.getRange('big', start, start + 70_000), big.subarray(start, start + 70_000));
      assert.deepEqual(await store.getRange('big', big.length - 3, big.length), big.subarray(big.length - 3));
    });

    it('head gives the size and the time of the last write', async () => {
      const { store } = await fresh();
      const t0 = Date.now();
      await store.put('packed-refs', Buffer.from('# pack-refs with: peeled fully-peeled sorted \n'));
      const info = await store.head('packed-refs');
      assert.ok(info !== undefined);
      assert.equal(info.key, 'packed-refs');
      assert.equal(info.size, 46);
      assert.ok(info.lastModified instanceof Date);
      assert.ok(Math.abs(info.lastModified.getTime() - t0) < 10 * 60_000, `lastModified ${info.lastModified.toISOString()} is near now`);
      await store.put('packed-refs', Buffer.from('x'));
      assert.equal((await store.head('packed-refs'))?.size, 1, 'head sees an overwrite at once');
    });

    it('delete is idempotent and takes the key out of get, head and list', async () => {
      const { store } = await fresh();
      await store.delete('never-there');
      await store.delete('deep/never/there');
      await store.put('refs/heads/main', Buffer.from('0123\n'));
      await store.put('refs/heads/dev', Buffer.from('4567\n'));
      await store.delete('refs/heads/main');
      assert.equal(await store.get('refs/heads/main'), undefined);
      assert.equal(await store.head('refs/heads/main'), undefined);
      assert.deepEqual((await store.list('refs/')).map((i) => i.key), ['refs/heads/dev']);
      await store.delete('refs/heads/main');
      await store.delete('refs/heads/dev');
      assert.deepEqual(await store.list(''), []);
      // A key can be written again after a delete.
      await store.put('refs/heads/main', Buffer.from('89ab\n'));
      assert.deepEqual(await store.get('refs/heads/main'), Buffer.from('89ab\n'));
    });

    it('list: every key under a prefix, nested or a partial name, sorted, with sizes', async () => {
      const { store } = await fresh();
      const files: Record<string, string> = {
        HEAD: 'ref: refs/heads/main\n',
        'info/refs': 'x\trefs/heads/main\n',
        'objects/info/packs': 'P pack-1.pack\n\n',
        'objects/pack/pack-1.pack': 'PACK1',
        'objects/pack/pack-1.idx': 'IDX',
        'objects/pack/pack-2.pack': 'PACK22',
        'objects/packed': '!',
        'objects/pa': 'short',
        'objects-x/a': 'other tree',
        'lfs/objects/ab/cd/abcd': 'lfs',
      };
      await Promise.all(Object.entries(files).map(([k, v]) => store.put(k, Buffer.from(v))));
      const keys = async (prefix: string): Promise<string[]> => (await store.list(prefix)).map((i) => i.key);
      const all = Object.keys(files).sort();
      assert.deepEqual(await keys(''), all);
      assert.deepEqual(await keys('objects/pack/'), ['objects/pack/pack-1.idx', 'objects/pack/pack-1.pack', 'objects/pack/pack-2.pack']);
      assert.deepEqual(await keys('objects/pa'), ['objects/pa', 'objects/pack/pack-1.idx', 'objects/pack/pack-1.pack', 'objects/pack/pack-2.pack', 'objects/packed']);
      assert.deepEqual(await keys('objects/pack/pack-1'), ['objects/pack/pack-1.idx', 'objects/pack/pack-1.pack']);
      assert.deepEqual(await keys('objects'), all.filter((k) => k.startsWith('objects')));
      assert.deepEqual(await keys('objects/'), all.filter((k) => k.startsWith('objects/')));
      assert.deepEqual(await keys('HEAD'), ['HEAD']);
      assert.deepEqual(await keys('lfs/objects/ab/'), ['lfs/objects/ab/cd/abcd']);
      assert.deepEqual(await keys('nothing/'), []);
      assert.deepEqual(await keys('objects/pack/pack-3'), []);
      const sizes = Object.fromEntries((await store.list('')).map((i) => [i.key, i.size]));
      for (const [k, v] of Object.entries(files)) assert.equal(sizes[k], Buffer.byteLength(v), `size of ${k}`);
      for (const info of await store.list('')) assert.ok(info.lastModified instanceof Date);
    });

    it('list returns more than 1000 keys (S3 pages), sorted', async () => {
      const { store } = await fresh();
      const keys = Array.from({ length: 1100 }, (_, i) => `many/${(i * 7919) % 1100}/k-${i}`);
      await pool(keys, 64, (k) => store.put(k, Buffer.from(k)));
      const listed = await store.list('many/');
      assert.equal(listed.length, 1100);
      const sorted = [...keys].sort();
      assert.deepEqual(listed.map((i) => i.key), sorted);
      for (const info of listed) assert.equal(info.size, Buffer.byteLength(info.key));
      const some = await store.list('many/10');
      assert.deepEqual(some.map((i) => i.key), sorted.filter((k) => k.startsWith('many/10')));
      assert.equal((await store.list('')).length, 1100);
    });

    it('keys with unicode, spaces and URL-special characters round-trip and list as written', async () => {
      const { store } = await fresh();
      const keys = [
        'lfs/objects/ü ñ/file name.txt',
        '日本語/データ.bin',
        'emoji/😀 smile',
        'a+b=c&d;e,f@g$h!',
        'percent%20stays',
        'quote\'s "double"',
        'brackets/(a)[b]{c}~',
        'hash#and?question',
        'trailing space ',
      ];
      for (const [i, key] of keys.entries()) await store.put(key, Buffer.from(`value ${i}`));
      for (const [i, key] of keys.entries()) {
        assert.deepEqual(await store.get(key), Buffer.from(`value ${i}`), key);
        assert.equal((await store.head(key))?.key, key);
        assert.deepEqual(await store.getRange(key, 0, 5), Buffer.from('value'), key);
      }
      const listed = (await store.list('')).map((i) => i.key);
      assert.deepEqual(listed, [...keys].sort());
      assert.deepEqual((await store.list('lfs/objects/ü ')).map((i) => i.key), ['lfs/objects/ü ñ/file name.txt']);
      for (const key of keys) await store.delete(key);
      assert.deepEqual(await store.list(''), []);
    });

    it('bad keys (.., leading /, empty segments...) are rejected with a PackferryError before any I/O', async () => {
      const { store } = await fresh();
      const bad = ['', '../escape', 'a/../b', '/abs', 'a//b', 'dir/', './a', 'a/.', 'a\\b', 'nul\0byte', '..', 'packferry/manifest.json.lock', 'refs.lock/heads/x'];
      for (const key of bad) {
        const what = JSON.stringify(key);
        await rejectsWithCode(Promise.resolve().then(() => store.get(key)), ErrorCode.InvalidUrl, `get ${what}`);
        await rejectsWithCode(Promise.resolve().then(() => store.head(key)), ErrorCode.InvalidUrl, `head ${what}`);
        await rejectsWithCode(Promise.resolve().then(() => store.getStream(key)), ErrorCode.InvalidUrl, `getStream ${what}`);
        await rejectsWithCode(Promise.resolve().then(() => store.getRange(key, 0, 1)), ErrorCode.InvalidUrl, `getRange ${what}`);
        await rejectsWithCode(Promise.resolve().then(() => store.put(key, Buffer.from('x'))), ErrorCode.InvalidUrl, `put ${what}`);
        await rejectsWithCode(Promise.resolve().then(() => store.delete(key)), ErrorCode.InvalidUrl, `delete ${what}`);
      }
      assert.deepEqual(await store.list(''), []);
    });

    it('a put whose body throws midway leaves the old value and nothing half done', async () => {
      const { store, leftovers } = await fresh();
      for (const [key, size] of [
        ['refs/heads/small', 1000],
        ['objects/pack/pack-fail.pack', 10 * MIB + 17],
      ] as const) {
        const old = randomBytes(333);
        await store.put(key, old);
        const failing = async function* (): AsyncGenerator<Uint8Array> {
          yield* oddChunks(randomBytes(size));
          throw new Error('the body failed');
        };
        await assert.rejects(store.put(key, failing()), /the body failed/, `${key}: put rejects with the body's error`);
        assert.deepEqual(await store.get(key), old, `${key}: the old value stays`);
        assert.equal((await store.head(key))?.size, old.length);
        assert.deepEqual(await leftovers(), [], `${key}: no half-done upload`);
        // A put of a key that did not exist leaves no key at all.
        await assert.rejects(store.put(`${key}-new`, failing()), /the body failed/);
        assert.equal(await store.head(`${key}-new`), undefined);
        assert.deepEqual(await leftovers(), []);
      }
      assert.deepEqual((await store.list('')).map((i) => i.key), ['objects/pack/pack-fail.pack', 'refs/heads/small']);
    });

    if (!options.conditionalWrites) {
      it('conditional writes: conditionalWrites() gives undefined (writers fall back to the writer lock)', async () => {
        const { store } = await fresh();
        assert.equal(await conditionalWrites(store), undefined);
        assert.equal(await conditionalWrites(store), undefined, 'the same answer again (remembered)');
        assert.deepEqual(await store.list(''), [], 'nothing of a probe is left');
      });
      return;
    }

    const cas = async (store: BlobStore): Promise<ConditionalWrites> => {
      const ability = await conditionalWrites(store);
      assert.ok(ability !== undefined, 'conditionalWrites() gives the ability');
      return ability;
    };

    it('conditional writes: create-if-absent succeeds once; a second create is refused and changes nothing', async () => {
      const { store } = await fresh();
      const c = await cas(store);
      assert.equal(await c.getVersioned('packferry/manifest.json'), undefined);
      assert.equal(await c.putIfVersion('packferry/manifest.json', Buffer.from('first\n'), undefined), true);
      assert.equal(await c.putIfVersion('packferry/manifest.json', Buffer.from('second\n'), undefined), false);
      const now = await c.getVersioned('packferry/manifest.json');
      assert.ok(now !== undefined);
      assert.deepEqual(now.body, Buffer.from('first\n'));
      assert.equal(typeof now.version, 'string');
      assert.ok(now.version.length > 0);
      assert.deepEqual(await store.get('packferry/manifest.json'), Buffer.from('first\n'), 'get sees what putIfVersion wrote');
      // A create in a new "directory", and of an empty body.
      assert.equal(await c.putIfVersion('deep/new/doc.json', new Uint8Array(0), undefined), true);
      assert.deepEqual(await store.get('deep/new/doc.json'), Buffer.alloc(0));
      assert.deepEqual((await store.list('')).map((i) => i.key), ['deep/new/doc.json', 'packferry/manifest.json']);
    });

    it('conditional writes: an update from the current version succeeds; from a stale version, or of a missing blob, it is refused', async () => {
      const { store } = await fresh();
      const c = await cas(store);
      const key = 'packferry/settings.json';
      await store.put(key, Buffer.from('{"v":1}'));
      const v1 = await c.getVersioned(key);
      assert.ok(v1 !== undefined);
      assert.deepEqual(v1.body, Buffer.from('{"v":1}'));
      assert.equal(await c.putIfVersion(key, Buffer.from('{"v":2}'), v1.version), true);
      assert.equal(await c.putIfVersion(key, Buffer.from('{"v":3}'), v1.version), false, 'a stale version is refused');
      assert.equal(await c.putIfVersion(key, Buffer.from('{"v":3}'), undefined), false, 'a create over an existing blob is refused');
      const v2 = await c.getVersioned(key);
      assert.ok(v2 !== undefined);
      assert.deepEqual(v2.body, Buffer.from('{"v":2}'));
      assert.notEqual(v2.version, v1.version);
      // An unconditional put is a new version too.
      await store.put(key, Buffer.from('{"v":"put"}'));
      assert.equal(await c.putIfVersion(key, Buffer.from('{"v":4}'), v2.version), false, 'a version replaced by a plain put is stale');
      const v3 = await c.getVersioned(key);
      assert.ok(v3 !== undefined);
      assert.equal(await c.putIfVersion(key, Buffer.from('{"v":4}'), v3.version), true);
      assert.deepEqual(await store.get(key), Buffer.from('{"v":4}'));
      // A version of a blob that was deleted names nothing.
      await store.delete(key);
      assert.equal(await c.putIfVersion(key, Buffer.from('{"v":5}'), v3.version), false, 'an update of a deleted blob is refused');
      assert.equal(await store.get(key), undefined);
      assert.equal(await c.putIfVersion('never-there', Buffer.from('x'), v1.version), false, 'an update of a missing blob is refused');
      assert.deepEqual(await store.list(''), []);
      for (const bad of ['../escape', 'a//b', 'x.lock']) {
        await rejectsWithCode(Promise.resolve().then(() => c.putIfVersion(bad, Buffer.from('x'), undefined)), ErrorCode.InvalidUrl, `putIfVersion ${bad}`);
        await rejectsWithCode(Promise.resolve().then(() => c.getVersioned(bad)), ErrorCode.InvalidUrl, `getVersioned ${bad}`);
      }
    });

    it('conditional writes: of many writers racing from one version exactly one wins, and its body is what is stored', async () => {
      const { store, leftovers } = await fresh();
      const c = await cas(store);
      const key = 'packferry/manifest.json';
      // Racing creates.
      const creates = await Promise.all(Array.from({ length: 12 }, (_, i) => c.putIfVersion(key, Buffer.from(`create ${i}\n`), undefined)));
      assert.equal(creates.filter(Boolean).length, 1, `one create wins (${creates.join(' ')})`);
      assert.deepEqual(await store.get(key), Buffer.from(`create ${creates.indexOf(true)}\n`));
      // Racing updates from the same version.
      for (let round = 0; round < 3; round++) {
        const base = await c.getVersioned(key);
        assert.ok(base !== undefined);
        const bodies = Array.from({ length: 12 }, (_, i) => Buffer.from(`round ${round} writer ${i}\n`));
        const won = await Promise.all(bodies.map((b) => c.putIfVersion(key, b, base.version)));
        assert.equal(won.filter(Boolean).length, 1, `round ${round}: exactly one writer wins (${won.join(' ')})`);
        assert.deepEqual(await store.get(key), bodies[won.indexOf(true)], `round ${round}: the winner's body is stored`);
      }
      assert.deepEqual((await store.list('')).map((i) => i.key), [key]);
      assert.deepEqual(await leftovers(), []);
    });

    it('conditional writes: concurrent read-modify-write loops lose no update', async () => {
      const { store } = await fresh();
      const c = await cas(store);
      const key = 'counter';
      const workers = 6;
      const each = 4;
      let conflicts = 0;
      const work = async (): Promise<void> => {
        for (let done = 0; done < each; ) {
          const now = await c.getVersioned(key);
          const n = now === undefined ? 0 : Number(now.body.toString());
          if (await c.putIfVersion(key, Buffer.from(String(n + 1)), now?.version)) done++;
          else conflicts++;
        }
      };
      await Promise.all(Array.from({ length: workers }, work));
      assert.equal((await store.get(key))?.toString(), String(workers * each), `every increment counted (${conflicts} conflicts retried)`);
    });

    it('conditional writes: readers never see a partial blob, and list() never shows locks or temporary files', async () => {
      const { store, leftovers } = await fresh();
      const c = await cas(store);
      const key = 'objects/info/big.json';
      const rounds = 4;
      const values = Array.from({ length: 2 * rounds + 1 }, () => randomBytes(2 * MIB));
      const known = new Map(values.map((v, i) => [sha256(v), i]));
      await store.put('objects/info/other', Buffer.from('other'));
      assert.equal(await c.putIfVersion(key, values[0], undefined), true);
      let writing = true;
      const seen = new Set<number>();
      const listings: string[][] = [];
      const reader = async (): Promise<void> => {
        for (let n = 0; writing || n < 2; n++) {
          const got = await store.get(key);
          assert.ok(got !== undefined, 'the blob never disappears during a compare-and-swap');
          const which = known.get(sha256(got));
          assert.ok(which !== undefined, `a read saw none of the values (${got.length} bytes): a partial blob`);
          seen.add(which);
        }
      };
      const lister = async (): Promise<void> => {
        for (let n = 0; writing || n < 2; n++) listings.push((await store.list('objects/')).map((i) => i.key));
      };
      const busy = [reader(), reader(), lister()];
      for (let round = 0; round < rounds; round++) {
        const base = await c.getVersioned(key);
        assert.ok(base !== undefined);
        // Two writers race each round; one wins.
        const won = await Promise.all([c.putIfVersion(key, values[2 * round + 1], base.version), c.putIfVersion(key, values[2 * round + 2], base.version)]);
        assert.equal(won.filter(Boolean).length, 1, `round ${round}: one of two racing writers wins`);
      }
      writing = false;
      await Promise.all(busy);
      assert.ok(seen.size >= 1);
      assert.ok(listings.length >= 2, `listed ${listings.length} times`);
      for (const listed of listings) assert.deepEqual(listed, ['objects/info/big.json', 'objects/info/other'], 'only the keys, never a lock or a temporary file');
      assert.deepEqual(await leftovers(), []);
    });
  });
}

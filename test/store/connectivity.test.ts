// The connectivity check before refs move (store/connectivity.ts) and the
// links it may take instead of a walk (pack/links.ts, Git's index-pack
// --check-self-contained-and-connected): the links collected while indexing
// a real Git pack are exactly the references Git lists, with and without
// worker threads; a pack missing an object a tip reaches is refused whether
// or not the links are complete; links that only unreachable objects leave
// dangling fall back to the walk, which accepts the pack; links into the
// layers already stored count as present. The id set and the link
// collector are also checked against a model and over arbitrary bytes
// (fast-check); test/pack/fuzz.test.ts feeds mutated packs through them.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import fc from 'fast-check';
import { ErrorCode, isPackferryError } from '../../src/core/errors.js';
import { FileMode, serializeTree, sortTreeEntries } from '../../src/core/object.js';
import { oidToHex } from '../../src/core/oid.js';
import { indexPackFile } from '../../src/pack/indexer.js';
import { collectLinks, ObjectIdSet } from '../../src/pack/links.js';
import { PackFile } from '../../src/pack/packfile.js';
import { PackReader } from '../../src/pack/reader.js';
import { checkConnectivity, linksSatisfied } from '../../src/store/connectivity.js';
import { FsBlobStore } from '../../src/store/fs-backend.js';
import { receivePack, type StagedLayer } from '../../src/store/receive.js';
import { StoreRepository } from '../../src/store/repository.js';
import { git, tempDir } from '../support/git.js';
import { Blob, Commit, PackBuilder, Tag, Tree, chunksOf, oidOf } from '../support/pack-craft.js';
import { generateRepo } from '../support/repogen.js';

const blob = (text: string) => ({ type: Blob, data: Buffer.from(text) });
function tree(entries: [number, string, string][]) {
  const data = serializeTree(sortTreeEntries(entries.map(([mode, name, oid]) => ({ mode, name: Buffer.from(name), oid: Buffer.from(oid, 'hex') }))));
  return { type: Tree, data };
}
function commit(treeOid: string, parents: string[] = [], message = 'm') {
  const text = `tree ${treeOid}\n${parents.map((p) => `parent ${p}\n`).join('')}author A <a@example.com> 1700000000 +0000\ncommitter A <a@example.com> 1700000000 +0000\n\n${message}\n`;
  return { type: Commit, data: Buffer.from(text) };
}
const id = (o: { type: number; data: Buffer }) => oidOf(o.type, o.data);
function pack(objects: { type: number; data: Buffer }[]): Buffer {
  const b = new PackBuilder();
  for (const o of objects) b.object(o.type, o.data);
  return b.build();
}

/** Every id the set holds, as hex. */
function idsOf(sets: ObjectIdSet[]): Set<string> {
  const out = new Set<string>();
  for (const s of sets) for (let k = 0; k < s.size; k++) out.add(oidToHex(s.raw, k * s.hashLength, s.hashLength));
  return out;
}

describe('ObjectIdSet and collectLinks', () => {
  it('keeps each id once, grows, and gives up past its limit', () => {
    const set = new ObjectIdSet(20, 5000);
    const raw = Buffer.alloc(20);
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 3000; i++) {
        raw.writeUInt32BE(Math.imul(i, 2654435761) >>> 0, 0);
        raw.writeUInt32BE(i, 16);
        set.add(raw, 0);
      }
    }
    assert.equal(set.size, 3000);
    assert.equal(set.incomplete, false);
    const back = ObjectIdSet.imported(20, set.export());
    assert.deepEqual(idsOf([back]), idsOf([set]));
    for (let i = 3000; i < 6000; i++) {
      raw.writeUInt32BE(Math.imul(i, 2654435761) >>> 0, 0);
      raw.writeUInt32BE(i, 16);
      set.add(raw, 0);
    }
    assert.equal(set.incomplete, true, 'past the limit the set gives up');
    assert.equal(set.size, 0, 'and frees what it held');
    assert.equal(ObjectIdSet.imported(20, set.export()).incomplete, true);
  });

  it('takes a commit’s tree and parents, a tree’s entries but submodules, a tag’s object; a malformed object makes the set incomplete', () => {
    const a = id(blob('a\n'));
    const sub = 'c'.repeat(40);
    const t = tree([
      [FileMode.regular, 'a', a],
      [FileMode.gitlink, 'sub', sub],
      [FileMode.tree, 'dir', 'd'.repeat(40)],
    ]);
    const set = new ObjectIdSet(20, 100);
    collectLinks(Tree, t.data, set);
    collectLinks(Commit, commit(id(t), ['e'.repeat(40), 'f'.repeat(40)]).data, set);
    collectLinks(Tag, Buffer.from(`object ${'1'.repeat(40)}\ntype commit\ntag v1\ntagger A <a@example.com> 1700000000 +0000\n\nv1\n`), set);
    collectLinks(Blob, Buffer.from('tree nothing'), set);
    assert.deepEqual(idsOf([set]), new Set([a, 'd'.repeat(40), id(t), 'e'.repeat(40), 'f'.repeat(40), '1'.repeat(40)]));
    collectLinks(Commit, Buffer.from('not a commit\n'), set);
    assert.equal(set.incomplete, true);
  });
});

describe('ObjectIdSet and collectLinks (fast-check)', () => {
  it('holds exactly the distinct ids added, as a Set would, until its limit', () => {
    const id = fc.uint8Array({ minLength: 20, maxLength: 20 });
    fc.assert(
      fc.property(fc.array(fc.oneof(id, fc.constantFrom(new Uint8Array(20), new Uint8Array(20).fill(255))), { maxLength: 2500 }), fc.integer({ min: 1, max: 3000 }), (ids, limit) => {
        const set = new ObjectIdSet(20, limit);
        const model = new Set<string>();
        for (const raw of ids) {
          const at = raw.length % 3; // ids at an offset inside a larger buffer, as tree entries are
          const holder = new Uint8Array(at + 20);
          holder.set(raw, at);
          set.add(holder, at);
          model.add(Buffer.from(raw).toString('hex'));
        }
        if (model.size > limit) {
          assert.equal(set.incomplete, true);
          assert.equal(set.size, 0);
        } else {
          assert.equal(set.incomplete, false);
          assert.deepEqual(idsOf([set]), model);
        }
      }),
      { numRuns: 60 },
    );
  });

  it('never throws on arbitrary object contents: it collects links or gives up', () => {
    fc.assert(
      fc.property(fc.constantFrom(Commit, Tree, Tag, Blob), fc.uint8Array({ maxLength: 300 }), (type, data) => {
        const set = new ObjectIdSet(20, 1000);
        collectLinks(type, data, set);
        assert.ok(set.incomplete || set.size <= data.length / 20 + 2);
      }),
      { numRuns: 500 },
    );
  });
});

describe('links collected while indexing a Git pack', () => {
  const tmp = tempDir('packferry-links-');
  let packPath: string;
  let expected: Set<string>;

  before(async () => {
    const repo = await generateRepo(join(tmp.path, 'repo.git'), { seed: 11, commits: 40, repack: true });
    packPath = repo.pack!;
    // What Git says each object refers to.
    expected = new Set<string>();
    const cwd = repo.dir;
    for (const line of git(['log', '--all', '--format=%T %P'], { cwd }).split('\n')) for (const oid of line.split(' ')) if (oid) expected.add(oid);
    const all = git(['cat-file', '--batch-all-objects', '--batch-check=%(objectname) %(objecttype)'], { cwd }).split('\n');
    for (const line of all) {
      const [oid, type] = line.split(' ');
      if (type === 'tree') {
        for (const entry of git(['ls-tree', oid], { cwd }).split('\n')) {
          const [, entryType, entryOid] = entry.split(/\s+/);
          if (entry && entryType !== 'commit') expected.add(entryOid);
        }
      } else if (type === 'tag') {
        expected.add(/^object ([0-9a-f]{40})$/m.exec(git(['cat-file', 'tag', oid], { cwd }))![1]);
      }
    }
  });
  after(() => tmp.cleanup());

  it('are the references Git lists, on one thread and with workers', async () => {
    for (const threads of [1, 3]) {
      const indexed = await indexPackFile(packPath, { threads, minDeltasForWorkers: 1, collectLinks: true });
      assert.ok(indexed.links!.every((s) => !s.incomplete));
      if (threads > 1) assert.ok(indexed.links!.length >= 3, 'each thread brings its own set');
      assert.deepEqual(idsOf(indexed.links!), expected, `${threads} thread(s)`);
    }
    assert.equal((await indexPackFile(packPath, { threads: 1 })).links, undefined, 'only when asked');
  });
});

describe('checkConnectivity', () => {
  const tmp = tempDir('packferry-connectivity-');
  let n = 0;

  async function receive(repo: StoreRepository, bytes: Buffer): Promise<{ staged: StagedLayer; reader: PackReader }> {
    const staged = await receivePack(repo, chunksOf(bytes, 4096), { threads: 1 });
    return { staged, reader: PackReader.fromIndex(PackFile.open(staged.localPack), staged.layer.index) };
  }
  async function freshRepo(): Promise<StoreRepository> {
    return StoreRepository.open(new FsBlobStore(join(tmp.path, `store-${n++}`)), { cacheDir: join(tmp.path, 'cache') });
  }
  after(() => tmp.cleanup());

  const a = blob('a\n');
  const b = blob('b\n');
  const t1 = tree([[FileMode.regular, 'a', id(a)]]);
  const c1 = commit(id(t1));

  it('takes a complete pack on its links alone', async () => {
    const repo = await freshRepo();
    const { staged, reader } = await receive(repo, pack([c1, t1, a]));
    assert.equal(linksSatisfied([id(c1)], staged.indexed.links!, staged.layer, undefined), true);
    assert.deepEqual(await checkConnectivity([id(c1)], staged.layer, reader, undefined, undefined, staged.indexed.links), { reached: undefined });
    assert.deepEqual(await checkConnectivity([id(c1)], staged.layer, reader, undefined), { reached: 3 }, 'the walk agrees');
    reader.close();
  });

  it('refuses a pack missing an object a tip reaches, naming it', async () => {
    const repo = await freshRepo();
    const t2 = tree([
      [FileMode.regular, 'a', id(a)],
      [FileMode.regular, 'b', id(b)],
    ]);
    const c2 = commit(id(t2), [], 'second');
    const { staged, reader } = await receive(repo, pack([c2, t2, a]));
    assert.equal(linksSatisfied([id(c2)], staged.indexed.links!, staged.layer, undefined), false);
    for (const links of [staged.indexed.links, undefined]) {
      await assert.rejects(
        checkConnectivity([id(c2)], staged.layer, reader, undefined, undefined, links),
        (err: unknown) => isPackferryError(err, ErrorCode.MissingObjects) && err.message.includes(id(b)) && err.message.includes(id(t2)),
      );
    }
    await assert.rejects(
      checkConnectivity(['9'.repeat(40)], staged.layer, reader, undefined, undefined, staged.indexed.links),
      (err: unknown) => isPackferryError(err, ErrorCode.MissingObjects),
      'a tip that is nowhere',
    );
    reader.close();
  });

  it('walks when only an unreachable object has a dangling link, and takes the pack', async () => {
    const repo = await freshRepo();
    const stray = tree([[FileMode.regular, 'b', id(b)]]);
    const { staged, reader } = await receive(repo, pack([c1, t1, a, stray]));
    assert.equal(linksSatisfied([id(c1)], staged.indexed.links!, staged.layer, undefined), false);
    assert.deepEqual(await checkConnectivity([id(c1)], staged.layer, reader, undefined, undefined, staged.indexed.links), { reached: 3 });
    reader.close();
  });

  it('counts links into the layers already stored as present, and ignores submodule commits', async () => {
    const repo = await freshRepo();
    const first = await receive(repo, pack([c1, t1, a]));
    await first.staged.stored;
    await repo.transact((m) => ({ ...m, layers: [first.staged.entry, ...m.layers], refs: [{ name: 'refs/heads/main', oid: id(c1) }] }));
    first.reader.close();
    const t3 = tree([
      [FileMode.regular, 'a', id(a)],
      [FileMode.regular, 'b', id(b)],
      [FileMode.gitlink, 'sub', '5'.repeat(40)],
    ]);
    const c3 = commit(id(t3), [id(c1)], 'third');
    const { staged, reader } = await receive(repo, pack([c3, t3, b]));
    const existing = await repo.objects();
    assert.equal(linksSatisfied([id(c3)], staged.indexed.links!, staged.layer, existing), true);
    assert.equal(linksSatisfied([id(c3)], staged.indexed.links!, staged.layer, undefined), false, 'a and c1 are only in the store');
    assert.deepEqual(await checkConnectivity([id(c3)], staged.layer, reader, existing, undefined, staged.indexed.links), { reached: undefined });
    assert.deepEqual(await checkConnectivity([id(c3)], staged.layer, reader, existing), { reached: 3 });
    reader.close();
    await repo.close();
  });
});

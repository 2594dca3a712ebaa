// Object checks while indexing (IndexPackOptions.fsck): every commit, tree
// and tag is checked where the indexer has it whole — pass one, the delta
// threads (main and workers alike, with skip lists crossing to the workers),
// thin-pack completion, and whole objects too large for pass one to keep —
// and the .gitmodules blobs trees name are noted wherever the tree was
// resolved; the trees' links, gathered by the check itself, are what a link
// collection of its own gathers. `packferry index-pack --fsck-objects` refuses what `git
// index-pack --fsck-objects` refuses, with the same id, and writes no index.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { transferFsckOptions } from '../../src/core/fsck.js';
import { serializeTree, type TreeEntry } from '../../src/core/object.js';
import { indexPackFile, indexPackStream } from '../../src/pack/indexer.js';
import type { ObjectIdSet } from '../../src/pack/links.js';
import { generateRepo } from '../support/repogen.js';
import { gitAsync, tempDir } from '../support/git.js';
import { packferry } from '../support/mirror-fixtures.js';
import { Blob, Commit, PackBuilder, Tree, chunksOf, insertOp, makeDelta, oidOf } from '../support/pack-craft.js';

const tmp = tempDir('packferry-pack-fsck-');
after(() => tmp.cleanup());
let n = 0;
const file = (bytes: Buffer) => {
  const path = join(tmp.path, `p${++n}.pack`);
  writeFileSync(path, bytes);
  return path;
};

const blob = Buffer.from('content\n');
const blobId = Buffer.from(oidOf(Blob, blob), 'hex');
const tree = (names: string[]): Buffer => serializeTree(names.map((name): TreeEntry => ({ mode: 0o100644, name: Buffer.from(name), oid: blobId })));
const fullDelta = (base: Buffer, result: Buffer) => makeDelta(base.length, result.length, insertOp(result));

describe('checks while indexing', () => {
  test('deltas resolved by worker threads are checked like those of the main thread; skip lists reach the workers', async () => {
    const pack = new PackBuilder();
    pack.object(Blob, blob);
    const bad = new Set<string>();
    const gitmodules = new Set<string>();
    // (fewer problems than one thread keeps: 1000; a delta's result has its base's type)
    for (let r = 0; r < 8; r++) {
      const root = tree([`root-${r}`]);
      const at = pack.object(Tree, root);
      const commitRoot = Buffer.from(`tree ${oidOf(Tree, root)}\nauthor A <a@b> 1 +0000\ncommitter C <c@d> 1 +0000\n\nroot ${r}\n`);
      const commitAt = pack.object(Commit, commitRoot);
      for (let k = 0; k < 150; k++) {
        if (k % 3 === 0) {
          const result = tree([`.GIT`, `r${r}-${k}`]); // hasDotgit
          bad.add(oidOf(Tree, result));
          pack.ofsDelta(at, fullDelta(root, result));
        } else if (k % 3 === 1) {
          const result = Buffer.from(`tree ${oidOf(Tree, root)}\nauthor A <a@b ${k} +0000\ncommitter C <c@d> 1 +0000\n\nr${r}-${k}\n`);
          bad.add(oidOf(Commit, result)); // badEmail
          pack.ofsDelta(commitAt, fullDelta(commitRoot, result));
        } else {
          const gm = Buffer.from(`[submodule "m${r}-${k}"]\n\turl = ./m\n`);
          gitmodules.add(oidOf(Blob, gm));
          pack.object(Blob, gm);
          const result = serializeTree([
            { mode: 0o100644, name: Buffer.from('.gitmodules'), oid: Buffer.from(oidOf(Blob, gm), 'hex') },
            { mode: 0o100644, name: Buffer.from(`r${r}-${k}`), oid: blobId },
          ]);
          pack.ofsDelta(at, fullDelta(root, result));
        }
      }
    }
    const path = file(pack.build());
    const fsck = transferFsckOptions();
    const seen = [];
    for (const threads of [1, 3]) {
      const indexed = await indexPackFile(path, { threads, minDeltasForWorkers: 1, fsck });
      const found = indexed.fsck!;
      assert.deepEqual(new Set(found.problems.map((p) => p.oid)), bad, `${threads} thread(s)`);
      assert.deepEqual(new Set(found.problems.map((p) => p.id)), new Set(['hasDotgit', 'badEmail']));
      assert.deepEqual(new Set(found.gitmodules), gitmodules);
      assert.ok(found.problems.every((p, i, all) => i === 0 || (all[i - 1].position ?? 0) <= (p.position ?? 0)), 'in pack order');
      seen.push(found.problems.map((p) => `${p.oid} ${p.id}`));
    }
    assert.deepEqual(seen[0], seen[1], 'the same problems whatever the threads');

    const skipped = [...bad].filter((_, i) => i % 2 === 0);
    const indexed = await indexPackFile(path, { threads: 3, minDeltasForWorkers: 1, fsck: transferFsckOptions({}, new Set(skipped)) });
    assert.deepEqual(new Set(indexed.fsck!.problems.map((p) => p.oid)), new Set([...bad].filter((o) => !skipped.includes(o))));

    const relaxed = await indexPackFile(path, { threads: 3, minDeltasForWorkers: 1, fsck: transferFsckOptions({ hasDotgit: 'ignore', badEmail: 'warn' }) });
    assert.deepEqual(new Set(relaxed.fsck!.problems.map((p) => `${p.id} ${p.severity}`)), new Set(['badEmail warning']));
  });

  test('the links the checks collect from trees are those a link collection of its own gathers', async () => {
    const repo = join(tmp.path, 'links.git');
    await generateRepo(repo, { seed: 3, commits: 40, repack: true });
    const pack = join(repo, 'objects', 'pack', readdirSync(join(repo, 'objects', 'pack')).find((f) => f.endsWith('.pack'))!);
    const ids = (sets: ObjectIdSet[] | undefined) => {
      const out = new Set<string>();
      for (const set of sets ?? []) {
        assert.equal(set.incomplete, false);
        for (let k = 0; k < set.size; k++) out.add(Buffer.from(set.raw.subarray(k * 20, k * 20 + 20)).toString('hex'));
      }
      return out;
    };
    for (const threads of [1, 3]) {
      const plain = await indexPackFile(pack, { threads, minDeltasForWorkers: 1, collectLinks: true });
      const checked = await indexPackFile(pack, { threads, minDeltasForWorkers: 1, collectLinks: true, fsck: transferFsckOptions() });
      assert.deepEqual(checked.fsck!.problems, []);
      assert.ok(ids(plain.links).size > 0);
      assert.deepEqual(ids(checked.links), ids(plain.links), `${threads} thread(s)`);
    }
    // A tree that cannot be decoded makes the collection give up, as before.
    const broken = new PackBuilder();
    broken.object(Tree, Buffer.from('100644 x'));
    const indexed = await indexPackFile(file(broken.build()), { collectLinks: true, fsck: transferFsckOptions() });
    assert.equal(indexed.links![0].incomplete, true);
    assert.deepEqual(indexed.fsck!.problems.map((p) => p.id), ['badTree']);
  });

  test('a whole tree too large for pass one to hold is read back and checked', async () => {
    const names = Array.from({ length: 260_000 }, (_, i) => `f${String(i).padStart(7, '0')}`);
    const big = tree(['.git', ...names]);
    assert.ok(big.length > 8 * 1024 * 1024, 'larger than the scanner keeps');
    const pack = new PackBuilder();
    pack.object(Blob, blob);
    pack.object(Tree, big);
    const indexed = await indexPackFile(file(pack.build()), { fsck: transferFsckOptions() });
    assert.deepEqual(
      indexed.fsck!.problems.map((p) => [p.oid, p.id]),
      [[oidOf(Tree, big), 'hasDotgit']],
    );
  });

  test('deltas against thin-pack bases from the receiver are checked, the bases themselves are not', async () => {
    const baseTree = tree(['.git', 'ok']); // already there: the receiver's own business
    const result = tree(['..', 'ok']);
    const pack = new PackBuilder();
    pack.object(Blob, blob);
    pack.refDelta(oidOf(Tree, baseTree), fullDelta(baseTree, result));
    const indexed = await indexPackStream(chunksOf(pack.build(), 50), join(tmp.path, 'thin.pack'), {
      fsck: transferFsckOptions(),
      fixThin: async (oid) => (oid === oidOf(Tree, baseTree) ? { type: Tree, data: baseTree } : undefined),
    });
    assert.equal(indexed.appendedBases, 1);
    assert.deepEqual(
      indexed.fsck!.problems.map((p) => [p.oid, p.id]),
      [[oidOf(Tree, result), 'hasDotdot']],
    );
  });

  test('packferry index-pack --fsck-objects refuses what git index-pack --fsck-objects refuses, and writes no index', async () => {
    const bad = tree(['a/b']);
    const gm = Buffer.from('[submodule "../../x"]\n\tpath = p\n');
    const pack = new PackBuilder();
    pack.object(Blob, blob);
    pack.object(Tree, bad);
    const path = file(pack.build());
    const theirs = await gitAsync(['index-pack', '--fsck-objects', '-o', join(tmp.path, 'git.idx'), path]);
    assert.notEqual(theirs.code, 0);
    const ours = await packferry(['index-pack', '--fsck-objects', '-o', join(tmp.path, 'ours.idx'), path]);
    assert.equal(ours.code, 1, ours.stderr);
    for (const stderr of [theirs.stderr, ours.stderr]) assert.match(stderr, new RegExp(`error: object ${oidOf(Tree, bad)}: fullPathname: contains full pathnames`));
    assert.equal(existsSync(join(tmp.path, 'ours.idx')), false);
    assert.equal((await packferry(['index-pack', '-o', join(tmp.path, 'plain.idx'), path])).code, 0, 'without the option nothing is checked');
    // --fsck relaxes one check (and implies --fsck-objects); a .gitmodules blob in the pack is read and checked.
    assert.equal((await packferry(['index-pack', '--fsck', 'fullPathname=ignore', '-o', join(tmp.path, 'relaxed.idx'), path])).code, 0);
    // (the tree first: git index-pack checks a .gitmodules blob of the pack only if a tree named it before it)
    const withModules = new PackBuilder();
    withModules.object(Tree, serializeTree([{ mode: 0o100644, name: Buffer.from('.gitmodules'), oid: Buffer.from(oidOf(Blob, gm), 'hex') }]));
    withModules.object(Blob, gm);
    const modulesPath = file(withModules.build());
    const g = await gitAsync(['index-pack', '--fsck-objects', '-o', join(tmp.path, 'g2.idx'), modulesPath]);
    const p = await packferry(['index-pack', '--fsck-objects', '-o', join(tmp.path, 'p2.idx'), modulesPath]);
    assert.notEqual(g.code, 0);
    assert.equal(p.code, 1);
    for (const stderr of [g.stderr, p.stderr]) assert.match(stderr, new RegExp(`error: object ${oidOf(Blob, gm)}: gitmodulesName: disallowed submodule name: \\.\\./\\.\\./x`));
  });
});

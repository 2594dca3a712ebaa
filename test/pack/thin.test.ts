// Thin packs (gitformat-pack; `git index-pack --fix-thin`): a pack from
// `git pack-objects --thin` between two commits holds REF_DELTAs against
// objects it leaves out. Indexed with a resolver over the receiving
// repository (one that has the old commit, as after an earlier fetch), the
// missing bases are appended and the result must be a pack Git accepts, with
// an idx identical to Git's; without the bases it must fail with
// ERR_DELTA_BASE_MISSING and leave no partial pack behind.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ErrorCode, PackferryError } from '../../src/core/errors.js';
import { oidToHex } from '../../src/core/oid.js';
import { PackObjectType } from '../../src/pack/format.js';
import { indexPackStream, type BaseResolver, type IndexedPack, type IndexPackOptions } from '../../src/pack/indexer.js';
import { PackScanner } from '../../src/pack/scanner.js';
import { ObjectDirectory } from '../../src/store/object-directory.js';
import { git, gitAsync, tempDir } from '../support/git.js';
import { generateRepo, type RepoSummary } from '../support/repogen.js';
import { Blob, PackBuilder, chunksOf, gitIndexPack, insertOp, makeDelta, oidOf } from '../support/pack-craft.js';

const T = { timeout: 30_000 };
const bin = resolve('bin/packferry.js');

/** A pack's entry count and the base ids of its REF_DELTAs. */
function refBases(pack: Buffer): { count: number; bases: Set<string> } {
  const bases = new Set<string>();
  let count = 0;
  const scanner = new PackScanner({
    onEntry: (e) => {
      count++;
      if (e.type === PackObjectType.RefDelta) bases.add(oidToHex(e.baseId!));
    },
  });
  scanner.push(pack);
  scanner.end();
  scanner.close();
  return { count, bases };
}

/** Object ids listed by an idx (`git show-index`). */
function idxObjects(idx: Buffer): string[] {
  return git(['show-index'], { input: idx })
    .split('\n')
    .map((l) => l.split(' ')[1])
    .sort();
}

describe('thin packs and --fix-thin', () => {
  const tmp = tempDir();
  const dir = tmp.path;
  let repo: RepoSummary;
  /** Holds only what is reachable from the old commit: the side that receives the thin pack. */
  let receiver: string;
  let thin: Buffer;
  /** What the thin pack holds (`rev-list --objects new ^old`). */
  let sent: Set<string>;
  let missing: string[];
  let objects: ObjectDirectory;
  let n = 0;
  const out = (label: string): string => join(dir, `${label}-${n++}.pack`);

  before(async () => {
    repo = await generateRepo(join(dir, 'repo.git'), { seed: 9, commits: 30, repack: true, largeFileSize: 64 * 1024, deepChain: 10 });
    const old = git(['rev-parse', 'main~6'], { cwd: repo.dir });
    const r = await gitAsync(['pack-objects', '--thin', '--stdout', '--revs', '-q'], { cwd: repo.dir, input: `${repo.head}\n^${old}\n` });
    assert.equal(r.code, 0, r.stderr);
    thin = r.stdout;
    // The bases the pack names but does not hold: it holds exactly what `rev-list --objects` lists.
    sent = new Set(git(['rev-list', '--objects', repo.head, `^${old}`], { cwd: repo.dir }).split('\n').map((l) => l.slice(0, 40)));
    assert.equal(refBases(thin).count, sent.size);
    missing = [...refBases(thin).bases].filter((b) => !sent.has(b)).sort();
    assert.ok(missing.length > 0, 'the thin pack has REF_DELTAs to objects it does not hold');
    receiver = join(dir, 'receiver.git');
    git(['init', '-q', '--bare', receiver]);
    git(['branch', 'old-point', old], { cwd: repo.dir });
    git(['fetch', '-q', '--no-tags', repo.dir, 'refs/heads/old-point:refs/heads/main'], { cwd: receiver });
    const has = (ids: string[]) =>
      git(['cat-file', '--batch-check=%(objectname) %(objecttype)'], { cwd: receiver, input: `${ids.join('\n')}\n` })
        .split('\n')
        .filter((l) => !l.endsWith(' missing')).length;
    assert.equal(has(missing), missing.length, 'the receiver has every missing base');
    assert.equal(has([...sent]), 0, 'and none of what the pack holds');
    const fixed = await gitAsync(['index-pack', '--stdin', '--fix-thin', join(dir, 'git-fixed.pack')], { cwd: receiver, input: thin });
    assert.equal(fixed.code, 0, fixed.stderr);
    objects = ObjectDirectory.open(receiver);
  });
  after(() => {
    objects?.close();
    tmp.cleanup();
  });

  const fromRepo: BaseResolver = async (oid) => objects.tryRead(oid);

  async function expectMissing(options: IndexPackOptions, hint: RegExp): Promise<void> {
    const path = out('fail');
    await assert.rejects(indexPackStream(chunksOf(thin, 1000), path, { threads: 1, ...options }), (err: unknown) => {
      assert.ok(err instanceof PackferryError, String(err));
      assert.equal(err.code, ErrorCode.DeltaBaseMissing, err.message);
      assert.match(err.message, /unresolved delta/);
      assert.match(err.hint ?? '', hint);
      // The example is a base no delta could be resolved against. (It may be an object the
      // pack itself holds, as a delta on a missing base, rather than a missing one.)
      const example = err.details.exampleBase as string;
      assert.ok(missing.includes(example) || sent.has(example), `names a REF_DELTA base (${example})`);
      return true;
    });
    assert.equal(existsSync(path), false, 'the partial pack is removed');
  }

  test('without fixThin: ERR_DELTA_BASE_MISSING, with a --fix-thin hint; git agrees', T, async () => {
    await expectMissing({}, /--fix-thin/);
    const r = await gitIndexPack(dir, thin);
    assert.equal(r.ok, false);
    assert.match(r.stderr, /unresolved delta/);
  });

  test('with a resolver over the receiving repository: completed, accepted by git, idx identical to git index-pack', T, async () => {
    const path = out('fixed');
    const { count } = refBases(thin);
    const result = await indexPackStream(chunksOf(thin, 4096), path, { threads: 1, fixThin: fromRepo });
    assert.equal(result.appendedBases, missing.length);
    assert.equal(result.objectCount, count + missing.length);
    const pack = readFileSync(path);
    assert.equal(pack.readUInt32BE(8), result.objectCount, 'the header counts the appended bases');
    assert.ok(pack.subarray(-20).equals(result.checksum), 'the trailer is rewritten');

    const theirs = await gitIndexPack(dir, pack);
    assert.ok(theirs.ok, theirs.stderr);
    assert.equal(theirs.stdout, result.checksum.toString('hex'));
    assert.ok(result.index.equals(theirs.idx!), 'idx identical to git index-pack on the completed pack');

    writeFileSync(path.replace(/\.pack$/, '.idx'), result.index);
    const verify = await gitAsync(['verify-pack', path]);
    assert.equal(verify.code, 0, verify.stderr);

    // The pack's objects plus the missing bases: the same objects as git's own --fix-thin
    // (the order of appended bases may differ).
    assert.deepEqual(idxObjects(result.index), [...sent, ...missing].sort());
    assert.deepEqual(idxObjects(result.index), idxObjects(readFileSync(join(dir, 'git-fixed.idx'))));
  });

  test('the completed pack is the same whatever the chunking and threads', T, async () => {
    const a = await indexPackStream(chunksOf(thin, 1 << 20), out('chunk-a'), { threads: 1, fixThin: fromRepo });
    const b = await indexPackStream(chunksOf(thin, 97), out('chunk-b'), { threads: 2, minDeltasForWorkers: 1, fixThin: fromRepo });
    assert.ok(a.checksum.equals(b.checksum));
    assert.ok(a.index.equals(b.index));
  });

  test('a resolver that lacks the bases: ERR_DELTA_BASE_MISSING', T, async () => {
    await expectMissing({ fixThin: async () => undefined }, /not in the repository either/);
  });

  test('a resolver that has only some of the bases: ERR_DELTA_BASE_MISSING', T, async () => {
    const withheld = missing[0];
    await expectMissing({ fixThin: async (oid) => (oid === withheld ? undefined : objects.tryRead(oid)) }, /not in the repository either/);
  });

  test('a resolver that returns an invalid object type: ERR_INVALID_OBJECT_TYPE', T, async () => {
    const path = out('bad-type');
    await assert.rejects(
      indexPackStream(chunksOf(thin, 4096), path, { threads: 1, fixThin: async () => ({ type: 6, data: Buffer.from('x') }) }),
      (err: unknown) => err instanceof PackferryError && err.code === ErrorCode.InvalidObjectType,
    );
    assert.equal(existsSync(path), false);
  });

  test(
    'a resolver whose object does not hash to the requested id is refused (git: "local object is corrupt")',
    T,
    async () => {
      // A thin pack of one REF_DELTA (insert only, so any base of the right size applies).
      const real = Buffer.from('the real base\n');
      const baseId = oidOf(Blob, real);
      const p = new PackBuilder();
      p.refDelta(baseId, makeDelta(real.length, 4, insertOp('new\n')));
      const pack = p.build();
      const forged = Buffer.from('a forged base\n');
      assert.equal(forged.length, real.length);
      const path = out('forged');
      let result: IndexedPack;
      try {
        result = await indexPackStream(chunksOf(pack, 4096), path, { threads: 1, fixThin: async () => ({ type: Blob, data: forged }) });
      } catch (err) {
        assert.ok(err instanceof PackferryError, String(err));
        assert.match(err.message, new RegExp(baseId));
        assert.equal(existsSync(path), false);
        return;
      }
      const theirs = await gitIndexPack(dir, readFileSync(path));
      assert.fail(
        `the forged base was appended as ${baseId} (idx lists ${idxObjects(result.index).join(', ')}); ` +
          `git index-pack on the result: ${theirs.ok ? 'ok' : theirs.stderr.trim()}`,
      );
    },
  );

  test(
    'a resolver that also has objects the pack holds: only the missing bases are appended, git accepts the result',
    T,
    async () => {
      // The sending repository has every object, including those in the thin pack: REF_DELTAs
      // whose in-pack base is itself a delta on a missing base must wait for that base to resolve.
      const everything = ObjectDirectory.open(repo.dir);
      try {
        const path = out('dup');
        const result = await indexPackStream(chunksOf(thin, 4096), path, { threads: 1, fixThin: async (oid) => everything.tryRead(oid) });
        const ids = idxObjects(result.index);
        assert.equal(new Set(ids).size, ids.length, `no object twice (${ids.length - new Set(ids).size} duplicates)`);
        assert.equal(result.appendedBases, missing.length);
        const theirs = await gitIndexPack(dir, readFileSync(path));
        assert.ok(theirs.ok, theirs.stderr);
      } finally {
        everything.close();
      }
    },
  );

  test('CLI: packferry index-pack --stdin --fix-thin --git-dir prints pack\\t<hash>', T, async () => {
    const path = out('cli');
    const r = spawnSync(process.execPath, [bin, 'index-pack', '--stdin', '--fix-thin', '--git-dir', receiver, path], { input: thin });
    assert.equal(r.status, 0, r.stderr.toString());
    const printed = r.stdout.toString();
    const pack = readFileSync(path);
    assert.equal(printed, `pack\t${pack.subarray(-20).toString('hex')}\n`);
    const theirs = await gitIndexPack(dir, pack);
    assert.ok(theirs.ok, theirs.stderr);
    assert.ok(readFileSync(path.replace(/\.pack$/, '.idx')).equals(theirs.idx!), 'the .idx written equals git index-pack');
    // Without --fix-thin the CLI fails (exit 1) and leaves nothing behind.
    const bare = out('cli-bare');
    const failed = spawnSync(process.execPath, [bin, 'index-pack', '--stdin', bare], { input: thin });
    assert.equal(failed.status, 1);
    assert.match(failed.stderr.toString(), /unresolved delta/);
    assert.equal(existsSync(bare), false);
  });
});

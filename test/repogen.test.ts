// The repository generator (test/support/repogen.ts): deterministic ids, a
// repository `git fsck --strict` accepts, and every feature it promises
// actually present, checked with real git.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { git, gitAsync, gitBuffer, tempDir } from './support/git.js';
import { generateRepo, makeRefDeltaPack, maxDeltaChain, packEntryTypes, type RepoOptions, type RepoSummary } from './support/repogen.js';

const EMPTY_BLOB = 'e69de29bb2d1d6434b8b29ae775ad8c2e48c5391';

interface TreeEntry {
  mode: string;
  type: string;
  oid: string;
  path: string;
}

/** `git ls-tree -r -z`, paths as raw UTF-8 (no C quoting). */
function lsTree(repo: string, rev: string): TreeEntry[] {
  const out = gitBuffer(['ls-tree', '-r', '-z', rev], { cwd: repo }).toString('utf8');
  return out
    .split('\0')
    .filter((l) => l !== '')
    .map((l) => {
      const tab = l.indexOf('\t');
      const [mode, type, oid] = l.slice(0, tab).split(' ');
      return { mode, type, oid, path: l.slice(tab + 1) };
    });
}

describe('repogen', () => {
  const tmp = tempDir('packferry-repogen-');
  // Enough commits that `main` gets 30+ of them (the deep-chain file changes once per main commit).
  const options: RepoOptions = { seed: 7, commits: 100, deepChain: 40, repack: true };
  let repo: string;
  let summary: RepoSummary;
  let elapsedMs: number;

  before(async () => {
    repo = join(tmp.path, 'features.git');
    const t = performance.now();
    summary = await generateRepo(repo, options);
    elapsedMs = performance.now() - t;
  });
  after(() => tmp.cleanup());

  test('generates a small repository in well under a few seconds', () => {
    // Typically ~0.3 s here (fast-import + repack); the bound leaves room for slow CI machines.
    assert.ok(elapsedMs < 5000, `took ${Math.round(elapsedMs)} ms`);
    assert.equal(summary.commits, 100);
    assert.ok(summary.objects.total > 300, `only ${summary.objects.total} objects`);
  });

  test('git fsck --full --strict accepts the repository', async () => {
    const r = await gitAsync(['fsck', '--full', '--strict', '--no-dangling'], { cwd: repo });
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /error|warning|missing|broken/i);
  });

  test('the summary agrees with git', () => {
    const types = git(['cat-file', '--batch-all-objects', '--batch-check=%(objecttype)'], { cwd: repo }).split('\n');
    assert.equal(summary.objects.total, types.length);
    for (const t of ['commit', 'tree', 'blob', 'tag'] as const) {
      assert.equal(summary.objects[t], types.filter((x) => x === t).length, t);
    }
    assert.equal(git(['rev-list', '--all', '--count'], { cwd: repo }), String(summary.objects.commit));
    assert.equal(summary.head, git(['rev-parse', 'refs/heads/main'], { cwd: repo }));
    assert.equal(git(['symbolic-ref', 'HEAD'], { cwd: repo }), 'refs/heads/main');
    const refs = git(['for-each-ref', '--format=%(refname) %(objectname)'], { cwd: repo }).split('\n');
    assert.deepEqual(
      Object.entries(summary.refs).map(([k, v]) => `${k} ${v}`),
      refs,
    );
    assert.equal(summary.packs.length, 1);
    assert.equal(summary.pack, summary.packs[0]);
    assert.equal(summary.looseObjects, 0);
    // The running estimate (what objectsTarget is compared to) is close to the truth.
    assert.ok(Math.abs(summary.estimatedObjects - summary.objects.total) / summary.objects.total < 0.15, `estimate ${summary.estimatedObjects} vs ${summary.objects.total}`);
  });

  test('is deterministic: same options and seed, same object ids; another seed, other ids', async () => {
    // Without repack: ids do not depend on how objects are stored.
    const again = await generateRepo(join(tmp.path, 'again.git'), { ...options, repack: false });
    assert.deepEqual(again.refs, summary.refs);
    assert.deepEqual(again.objects, summary.objects);
    const other = await generateRepo(join(tmp.path, 'other.git'), { ...options, seed: 8, repack: false });
    assert.notEqual(other.head, summary.head);
    assert.deepEqual(Object.keys(other.refs).filter((r) => r.startsWith('refs/heads/')).length, Object.keys(summary.refs).filter((r) => r.startsWith('refs/heads/')).length);
  });

  test('has non-trivial two-parent merges', () => {
    const merges = git(['rev-list', '--all', '--min-parents=2'], { cwd: repo }).split('\n').filter(Boolean);
    assert.ok(merges.length >= 3, `${merges.length} merges`);
    assert.equal(merges.length, summary.merges);
    for (const m of merges) {
      const parents = git(['rev-list', '--parents', '-n1', m], { cwd: repo }).split(' ').slice(1);
      assert.equal(parents.length, 2);
      const tree = git(['rev-parse', `${m}^{tree}`], { cwd: repo });
      // Neither side's tree as is: the merge brings the branch's work and a resolution of its own.
      assert.notEqual(tree, git(['rev-parse', `${m}^1^{tree}`], { cwd: repo }));
      assert.notEqual(tree, git(['rev-parse', `${m}^2^{tree}`], { cwd: repo }));
      assert.match(git(['log', '-1', '--format=%s', m], { cwd: repo }), /^Merge branch '/);
      // Both parents have work the other lacks.
      assert.notEqual(git(['rev-list', '--count', `${parents[0]}..${parents[1]}`], { cwd: repo }), '0');
      assert.notEqual(git(['rev-list', '--count', `${parents[1]}..${parents[0]}`], { cwd: repo }), '0');
    }
  });

  test('has lightweight tags and annotated tags of a commit, a tree, a blob and a tag', () => {
    const lines = git(['for-each-ref', '--format=%(refname:strip=2) %(objecttype) %(*objecttype)', 'refs/tags'], { cwd: repo }).split('\n');
    const kinds = new Map(lines.map((l) => [l.split(' ')[0], l.split(' ').slice(1).join(' ')]));
    for (const t of summary.tags.lightweight) assert.equal(kinds.get(t), 'commit ', t);
    assert.ok(summary.tags.lightweight.length >= 2);
    assert.ok(summary.tags.annotated.includes('release'));
    assert.equal(kinds.get('release'), 'tag commit');
    assert.equal(kinds.get(summary.tags.ofTree), 'tag tree');
    assert.equal(kinds.get(summary.tags.ofBlob), 'tag blob');
    assert.equal(kinds.get(summary.tags.ofTag), 'tag tag');
    assert.equal(git(['cat-file', '-t', `${summary.tags.ofTag}^{}`], { cwd: repo }), 'commit');
    assert.equal(git(['rev-parse', `${summary.tags.ofTree}^{}`], { cwd: repo }), git(['rev-parse', 'main^{tree}'], { cwd: repo }));
    // The tagged blob is in no tree of main, like git.git's junio-gpg-pub.
    const blob = git(['rev-parse', `${summary.tags.ofBlob}^{}`], { cwd: repo });
    assert.ok(!lsTree(repo, 'main').some((e) => e.oid === blob));
    // Periodic release tags from tagEvery (default 20) and lightweight ones half-way.
    assert.ok(summary.tags.annotated.some((t) => /^v1\.\d+$/.test(t)));
    assert.ok(summary.tags.lightweight.some((t) => /^light-\d+$/.test(t)));
  });

  test('has a symlink, an executable, empty, binary, large and non-ASCII files', () => {
    const entries = lsTree(repo, 'main');
    const byPath = new Map(entries.map((e) => [e.path, e]));
    const link = byPath.get(summary.paths.symlink);
    assert.equal(link?.mode, '120000');
    assert.equal(git(['cat-file', 'blob', link.oid], { cwd: repo }), 'README.md');
    assert.ok(byPath.has('README.md'));
    assert.equal(byPath.get(summary.paths.executable)?.mode, '100755');
    assert.ok(summary.paths.empty.length >= 1);
    for (const p of summary.paths.empty) assert.equal(byPath.get(p)?.oid, EMPTY_BLOB, p);
    assert.ok(summary.paths.binary.length >= 1);
    for (const p of summary.paths.binary) {
      const e = byPath.get(p);
      assert.ok(e, p);
      assert.ok(gitBuffer(['cat-file', 'blob', e.oid], { cwd: repo }).includes(0), `${p} has no NUL byte`);
    }
    assert.equal(summary.paths.large.length, 1);
    for (const p of summary.paths.large) {
      const e = byPath.get(p);
      assert.ok(e, p);
      assert.ok(Number(git(['cat-file', '-s', e.oid], { cwd: repo })) >= 1 << 20, p);
    }
    assert.ok(summary.paths.unicode.length >= 1);
    for (const p of summary.paths.unicode) {
      assert.ok(byPath.has(p), p);
      assert.ok([...p].some((c) => c.charCodeAt(0) > 0x7f), p);
    }
    // Git itself sees non-ASCII names (C-quoted in its default output).
    assert.match(git(['ls-tree', '-r', '--name-only', 'main'], { cwd: repo }), /^"i18n\/caf\\303\\251-\\303\\261\//m);
    // Executables other than the special one come and go with mode changes.
    assert.ok(entries.filter((e) => e.mode === '100644').length > entries.filter((e) => e.mode === '100755').length);
  });

  test('has branches with non-ASCII names', () => {
    const heads = git(['for-each-ref', '--format=%(refname)', 'refs/heads'], { cwd: repo }).split('\n');
    assert.ok(heads.includes('refs/heads/main'));
    assert.ok(heads.includes('refs/heads/feature/ünïcødé-分支'), heads.join(', '));
    assert.equal(heads.length, summary.branches.length);
  });

  test('history has edits, additions, renames, deletions and mode changes', () => {
    const status = git(['log', '--all', '-M', '--format=', '--name-status', '--no-merges'], { cwd: repo }).split('\n');
    const count = (re: RegExp): number => status.filter((l) => re.test(l)).length;
    assert.ok(count(/^M\t/) > 20, 'modifications');
    assert.ok(count(/^A\t/) > 3, 'additions');
    assert.ok(count(/^R\d+\t/) > 0, 'renames');
    assert.ok(count(/^D\t/) > 0, 'deletions');
    const summaryLines = git(['log', '--all', '--format=', '--summary', '--no-merges'], { cwd: repo });
    assert.match(summaryLines, /mode change 100644 => 100755|mode change 100755 => 100644/);
  });

  test('the repack leaves one pack of OFS_DELTA entries with long delta chains', () => {
    assert.ok(summary.pack);
    const types = packEntryTypes(summary.pack);
    assert.equal(types.refDelta, 0);
    assert.ok(types.ofsDelta > summary.objects.total / 4, JSON.stringify(types));
    assert.equal(types.commit + types.tree + types.blob + types.tag + types.ofsDelta, summary.objects.total);
    const chain = maxDeltaChain(summary.pack.replace(/\.pack$/, '.idx'));
    assert.ok(chain >= 20, `longest chain ${chain}`);
    assert.ok(chain <= 50, `longest chain ${chain} beyond --depth=50`);
    // The deep chain file accounts for it: all its versions are in the pack.
    const versions = git(['rev-list', '--objects', 'main', '--', summary.paths.deepChain as string], { cwd: repo })
      .split('\n')
      .filter((l) => l.endsWith(` ${summary.paths.deepChain}`));
    assert.ok(versions.length > 30, `${versions.length} versions of the chain file`);
  });

  test('makeRefDeltaPack writes a pack of REF_DELTA entries that git accepts', async () => {
    const out = join(tmp.path, 'refdelta');
    mkdirSync(out);
    const files = await makeRefDeltaPack(repo, join(out, 'pack'));
    assert.ok(existsSync(files.pack) && existsSync(files.idx));
    assert.match(files.hash, /^[0-9a-f]{40}$/);
    const types = packEntryTypes(files.pack, files.idx);
    assert.equal(types.ofsDelta, 0);
    assert.ok(types.refDelta > summary.objects.total / 4, JSON.stringify(types));
    assert.equal(types.commit + types.tree + types.blob + types.tag + types.refDelta, summary.objects.total);
    const verify = await gitAsync(['verify-pack', files.idx]);
    assert.equal(verify.code, 0, verify.stderr);
    // git index-pack recomputes the same index from the pack alone.
    const idx = join(out, 'reindexed.idx');
    const indexed = await gitAsync(['index-pack', '-o', idx, files.pack], { cwd: out });
    assert.equal(indexed.code, 0, indexed.stderr);
    assert.equal(indexed.stdout.toString().trim(), files.hash);
  });

  test('objectsTarget stops close to the target, with large files streamed through', async () => {
    const target = 3000;
    const s = await generateRepo(join(tmp.path, 'target.git'), { seed: 3, objectsTarget: target, files: 120, largeFiles: 2, largeFileSize: 3 << 20 });
    assert.ok(s.objects.total >= target * 0.9 && s.objects.total <= target * 1.15, `${s.objects.total} objects for a target of ${target}`);
    assert.ok(s.commits > 50);
    const sizes = s.paths.large.map((p) => Number(git(['cat-file', '-s', `main:${p}`], { cwd: s.dir })));
    assert.deepEqual(sizes, [Math.floor((3 << 20) / 2), 3 << 20]);
    // No repack asked for: fast-import's pack plus the one loose tree tag.
    assert.equal(s.packs.length, 1);
    assert.equal(s.looseObjects, 1);
    const fsck = await gitAsync(['fsck', '--full', '--strict', '--no-dangling'], { cwd: s.dir });
    assert.equal(fsck.code, 0, fsck.stderr);
    // Every object fast-import wrote is reachable (regression: a file added and
    // then edited in the same commit left the added version's blob behind).
    const unreachable = await gitAsync(['fsck', '--unreachable', '--no-reflogs'], { cwd: s.dir });
    assert.equal(unreachable.stdout.toString(), '');
  });

  test('an abort stops generation and removes the partial repository', async () => {
    const dir = join(tmp.path, 'aborted.git');
    const controller = new AbortController();
    await assert.rejects(
      generateRepo(dir, {
        commits: 100_000,
        signal: controller.signal,
        progress: () => controller.abort(),
      }),
      { name: 'AbortError' },
    );
    assert.equal(existsSync(dir), false);
  });

  test('refuses a non-empty directory and invalid options', async () => {
    const dir = join(tmp.path, 'occupied');
    mkdirSync(dir);
    writeFileSync(join(dir, 'file'), 'x');
    await assert.rejects(generateRepo(dir), /not empty/);
    assert.ok(existsSync(join(dir, 'file')), 'the existing directory is left alone');
    await assert.rejects(generateRepo(join(tmp.path, 'bad1.git'), { files: -1 }), RangeError);
    await assert.rejects(generateRepo(join(tmp.path, 'bad2.git'), { branches: 0 }), RangeError);
    assert.equal(existsSync(join(tmp.path, 'bad1.git')), false);
  });
});

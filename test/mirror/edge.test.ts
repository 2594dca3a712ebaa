// `packferry mirror` at the edges, between local repositories: empty and
// unborn sources, every kind of tag, non-ASCII and invalid ref names (invalid
// names in an advertisement are in ssh.test.ts, where upload-pack can be
// replaced), thousands of refs, refused updates and their exit codes, usage
// errors, the text and JSON reports, and --batch.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { git, tempDir } from '../support/git.js';
import {
  assertMirrored,
  commitFiles,
  copyRepo,
  fsck,
  initBare,
  makeSource,
  packferry,
  parseJson,
  refLines,
  refMap,
  rewriteBranch,
  snapshot,
  ZERO_ID,
  type JsonReport,
} from '../support/mirror-fixtures.js';
import type { RepoSummary } from '../support/repogen.js';

const tmp = tempDir('packferry-mirror-edge-');
let counter = 0;
const path = (label: string) => join(tmp.path, `${label}-${++counter}.git`);
/** One generated source, copied by the tests that change theirs. */
let base: string;
let summary: RepoSummary;

before(async () => {
  base = path('base');
  summary = await makeSource(base);
});
after(() => tmp.cleanup());

const mirrorCli = (args: string[]) => packferry(['mirror', '-q', ...args]);

function hook(repo: string, name: string, script: string): void {
  const file = join(repo, 'hooks', name);
  writeFileSync(file, `#!/bin/sh\n${script}\n`);
  chmodSync(file, 0o755);
}

// The tests use repositories of their own (the shared base is only read): two groups at a time.
describe('mirror edge cases', { concurrency: 2 }, () => {
  describe('mirror: sources with nothing or little in them', () => {
    it('an empty source: nothing to do, exit 0 (v2 and v0)', async () => {
      const source = initBare(path('empty-src'));
      const target = initBare(path('empty-dst'));
      for (const protocol of ['2', '0']) {
        const r = await mirrorCli(['--json', '--protocol', protocol, source, target]);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        const report = parseJson(r);
        assert.equal(report.ok, true);
        assert.equal(report.sourceRefs, 0);
        assert.deepEqual(report.targets[0].updates, []);
        assert.equal(report.targets[0].pack, undefined);
      }
      const text = await mirrorCli([source, target]);
      assert.equal(text.code, 0);
      assert.equal(text.stdout, `To ${target}\nEverything up-to-date\n`);
      assert.deepEqual(refLines(target, []), []);
    });

    it('a source whose HEAD is unborn (names a branch that does not exist) mirrors its refs; the target HEAD is left alone', async () => {
      const source = copyRepo(base, path('unborn-src'));
      git(['symbolic-ref', 'HEAD', 'refs/heads/trunk'], { cwd: source });
      const target = initBare(path('unborn-dst'));
      git(['symbolic-ref', 'HEAD', 'refs/heads/elsewhere'], { cwd: target });
      const r = await mirrorCli(['--json', source, target]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.equal(parseJson(r).sourceHead, 'refs/heads/trunk');
      assertMirrored(source, target);
      assert.equal(git(['symbolic-ref', 'HEAD'], { cwd: target }), 'refs/heads/elsewhere');
    });

    it('annotated tags, tags of a tree and of a blob, and a tag of a tag arrive intact', async () => {
      const target = initBare(path('tags-dst'));
      const r = await mirrorCli([base, target]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assertMirrored(base, target);
      const type = (rev: string) => git(['cat-file', '-t', rev], { cwd: target });
      assert.equal(type('refs/tags/release'), 'tag');
      assert.equal(type('refs/tags/release^{}'), 'commit');
      assert.equal(type(`refs/tags/${summary.tags.ofTree}^{}`), 'tree');
      assert.equal(type(`refs/tags/${summary.tags.ofBlob}^{}`), 'blob');
      assert.match(git(['cat-file', 'tag', `refs/tags/${summary.tags.ofTag}`], { cwd: target }), /^type tag$/m);
      assert.equal(git(['rev-parse', `refs/tags/${summary.tags.ofTag}^{}`], { cwd: target }), git(['rev-parse', 'refs/tags/release^{}'], { cwd: base }));
    });
  });

  describe('mirror: ref names', () => {
    it('non-ASCII ref names are mirrored and reported as they are', async () => {
      const source = copyRepo(base, path('utf8-src'));
      const main = summary.refs['refs/heads/main'];
      for (const name of ['refs/heads/日本/ブランチ', 'refs/heads/café', 'refs/tags/версия-1.0']) git(['update-ref', name, main], { cwd: source });
      const target = initBare(path('utf8-dst'));
      const r = await mirrorCli([source, target]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const lines = r.stdout.split('\n');
      for (const line of [
        ' * [new branch]      日本/ブランチ -> 日本/ブランチ',
        ' * [new branch]      café -> café',
        ' * [new branch]      feature/ünïcødé-分支 -> feature/ünïcødé-分支',
        ' * [new tag]         версия-1.0 -> версия-1.0',
      ]) {
        assert.ok(lines.includes(line), `${line}\nnot in\n${r.stdout}`);
      }
      assertMirrored(source, target);
      assert.equal(refMap(target).get('refs/tags/версия-1.0'), main);
    });

    it("refs with invalid names in the source's packed-refs are never pushed (and reported when packferry reads them)", async () => {
      const source = copyRepo(base, path('invalid-src'));
      const main = summary.refs['refs/heads/main'];
      const bad = ['refs/heads/bad..dots', 'refs/heads/trailing.lock', 'refs/tags/ctl\x01char', 'refs/heads/-/@{x}', 'refs/heads/has space'];
      git(['pack-refs', '--all'], { cwd: source });
      const packed = join(source, 'packed-refs');
      writeFileSync(packed, readFileSync(packed, 'utf8') + bad.map((name) => `${main} ${name}\n`).join(''));
      const target = initBare(path('invalid-dst'));
      const r = await mirrorCli(['--json', source, target]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const t = parseJson(r).targets[0];
      assert.ok(t.updates.every((u) => !bad.includes(u.ref)), JSON.stringify(t.updates));
      // A local source's refs may be read from its files (then the bad names are reported) or by git-upload-pack (which hides them).
      assert.ok(t.invalidNames.every((n) => bad.includes(n)), JSON.stringify(t.invalidNames));
      assert.deepEqual(
        refLines(target),
        refLines(base),
        'exactly the valid refs arrive',
      );
      fsck(target);
    });
  });

  describe('mirror: ref renames across a directory boundary', () => {
    // Regression: Git cannot delete refs/heads/x and create refs/heads/x/y in one
    // atomic ref transaction ("cannot lock ref ... exists"), so an upstream rename
    // of x to x/y (or back) failed every sync until --no-atomic was given.
    it('x renamed to x/y (and y/z to y) upstream: the default (atomic) sync completes; --safe keeps the deleted tips', async () => {
      const source = copyRepo(base, path('df-src'));
      const main = summary.refs['refs/heads/main'];
      const feature = summary.branches.find((b) => b !== 'main' && /^[\x20-\x7e]+$/.test(b)) as string;
      git(['update-ref', 'refs/heads/old/nested', main], { cwd: source });
      const target = copyRepo(source, path('df-dst'));
      const safeTarget = copyRepo(source, path('df-safe'));
      git(['update-ref', '-d', `refs/heads/${feature}`], { cwd: source });
      git(['update-ref', `refs/heads/${feature}/renamed`, summary.refs[`refs/heads/${feature}`]], { cwd: source });
      git(['update-ref', '-d', 'refs/heads/old/nested'], { cwd: source });
      git(['update-ref', 'refs/heads/old', main], { cwd: source });
      const r = await mirrorCli(['--json', source, target]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assertMirrored(source, target);

      const s = await mirrorCli(['--json', '--safe', source, safeTarget]);
      assert.equal(s.code, 0, s.stdout + s.stderr);
      assertMirrored(source, safeTarget);
      assert.deepEqual(refLines(safeTarget, ['refs/packferry/']), [
        `${summary.refs[`refs/heads/${feature}`]} refs/packferry/attic/heads/${feature}/${summary.refs[`refs/heads/${feature}`]}`,
        `${main} refs/packferry/attic/heads/old/nested/${main}`,
      ]);
    });
  });

  describe('mirror: thousands of refs', () => {
    it('3000 branches and tags over 600 commits: a full sync, an incremental one (negotiated in rounds), a no-op', async () => {
      const source = copyRepo(base, path('many-src'));
      // 600 commits in a chain on top of main, by fast-import; then 3000 refs over them.
      const main = summary.refs['refs/heads/main'];
      const stream: string[] = [];
      for (let i = 1; i <= 600; i++) {
        const message = `many ${i}\n`;
        const content = `line ${i}\n`;
        stream.push(
          `commit refs/heads/many-chain\nmark :${i}\ncommitter C O Mitter <committer@example.com> ${1700000000 + i} +0000\n` +
            `data ${Buffer.byteLength(message)}\n${message}${i === 1 ? `from ${main}\n` : ''}M 100644 inline many/${i % 50}.txt\ndata ${Buffer.byteLength(content)}\n${content}\n`,
        );
      }
      const marks = join(tmp.path, 'many.marks');
      git(['fast-import', '--quiet', `--export-marks=${marks}`], { cwd: source, input: stream.join('') });
      const commits = git(['cat-file', '--batch-check=%(objectname)'], {
        cwd: source,
        input: Array.from({ length: 600 }, (_, i) => `refs/heads/many-chain~${599 - i}\n`).join(''),
      }).split('\n');
      // Written into packed-refs, as a big repository keeps them (3000 loose refs cost seconds of file creation here).
      git(['pack-refs', '--all'], { cwd: source });
      const packed = join(source, 'packed-refs');
      // Appended out of order, so the file no longer claims to be sorted.
      const lines = readFileSync(packed, 'utf8').replace(/ sorted( *)$/m, '$1');
      const added: string[] = [];
      for (let i = 0; i < 1500; i++) added.push(`${commits[i % 600]} refs/heads/many/b-${String(i).padStart(4, '0')}\n`);
      for (let i = 0; i < 1500; i++) added.push(`${commits[(i * 7) % 600]} refs/tags/many/t-${String(i).padStart(4, '0')}\n`);
      writeFileSync(packed, lines + added.join(''));
      const refCount = refLines(source).length;
      assert.ok(refCount > 3000);

      const target = initBare(path('many-dst'));
      let started = performance.now();
      const full = await mirrorCli(['--json', source, target]);
      const fullMs = performance.now() - started;
      assert.equal(full.code, 0, full.stdout.slice(0, 2000) + full.stderr);
      assert.equal(parseJson(full).targets[0].updates.length, refCount);
      assertMirrored(source, target);

      // Move 10 branches forward and rewind 5 (between commits the target has: each is settled by a small fetch of its own),
      // delete 200 tags, add 100, and one new commit.
      const edits: string[] = [];
      for (let i = 0; i < 10; i++) edits.push(`update refs/heads/many/b-${String(i).padStart(4, '0')} ${commits[i + 1]}`);
      for (let i = 100; i < 105; i++) edits.push(`update refs/heads/many/b-${String(i).padStart(4, '0')} ${commits[0]}`);
      for (let i = 0; i < 200; i++) edits.push(`delete refs/tags/many/t-${String(i).padStart(4, '0')}`);
      for (let i = 0; i < 100; i++) edits.push(`create refs/tags/many/new-${i} ${commits[599 - i]}`);
      git(['update-ref', '--stdin'], { cwd: source, input: `${edits.join('\n')}\n` });
      const tip = commitFiles(source, 'many-chain', { 'after.txt': 'one new commit\n' });
      git(['update-ref', 'refs/heads/many/b-1499', tip], { cwd: source });

      started = performance.now();
      const incremental = await mirrorCli(['--json', source, target]);
      const incrementalMs = performance.now() - started;
      assert.equal(incremental.code, 0, incremental.stdout.slice(0, 2000) + incremental.stderr);
      const t = parseJson(incremental).targets[0];
      assert.equal(t.updates.length, 10 + 5 + 200 + 100 + 1 + 1);
      assert.equal(t.pack?.objects, 3, 'only the one new commit, its tree and blob');
      const ff = new Map(t.updates.filter((u) => u.kind === 'update').map((u) => [u.ref, u.fastForward]));
      assert.equal(ff.size, 17);
      for (let i = 0; i < 10; i++) assert.equal(ff.get(`refs/heads/many/b-${String(i).padStart(4, '0')}`), true);
      for (let i = 100; i < 105; i++) assert.equal(ff.get(`refs/heads/many/b-${String(i).padStart(4, '0')}`), false);
      assert.equal(ff.get('refs/heads/many-chain'), true);
      assert.equal(ff.get('refs/heads/many/b-1499'), true);
      assertMirrored(source, target);

      const noop = await mirrorCli([source, target]);
      assert.equal(noop.code, 0, noop.stderr);
      assert.match(noop.stdout, /Everything up-to-date/);
      // Generous bounds (a loaded 2-core machine): the point is no quadratic blow-up.
      assert.ok(fullMs < 20_000 && incrementalMs < 20_000, `full ${Math.round(fullMs)} ms, incremental ${Math.round(incrementalMs)} ms`);
    });
  });

  describe('mirror: refusals and exit codes', () => {
    it('an update hook refuses one ref: with --no-atomic the others land, that one is "! [remote rejected] (hook declined)", exit 1', async () => {
      const target = initBare(path('hook-dst'));
      hook(target, 'update', '[ "$1" = refs/heads/main ] && { echo "main is frozen" >&2; exit 1; }\nexit 0');
      const r = await mirrorCli(['--no-atomic', base, target]);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.ok(r.stdout.split('\n').includes(' ! [remote rejected] main -> main (hook declined)'), r.stdout);
      assert.match(r.stdout, /^ \* \[new tag\] +release -> release$/m);
      const expected = refLines(base).filter((l) => !l.endsWith(' refs/heads/main'));
      assert.deepEqual(refLines(target), expected);

      // Atomic (the default): nothing lands, and every ref says why.
      const atomic = initBare(path('hook-atomic'));
      hook(atomic, 'update', '[ "$1" = refs/heads/main ] && exit 1\nexit 0');
      const a = await mirrorCli(['--json', base, atomic]);
      assert.equal(a.code, 1);
      const updates = parseJson(a).targets[0].updates;
      assert.ok(updates.every((u) => u.status === 'rejected'));
      assert.equal(updates.find((u) => u.ref === 'refs/heads/main')?.reason, 'hook declined');
      assert.deepEqual(refLines(atomic), []);
    });

    it('a pre-receive hook refuses the push: every ref is reported rejected, exit 1, and a later sync without the hook completes', async () => {
      const target = initBare(path('prereceive-dst'));
      hook(target, 'pre-receive', 'echo "no pushes today" >&2\nexit 1');
      const r = await mirrorCli(['--no-atomic', '--json', base, target]);
      assert.equal(r.code, 1);
      const t = parseJson(r).targets[0];
      assert.equal(t.ok, false);
      assert.ok(t.updates.length > 0 && t.updates.every((u) => u.status === 'rejected' && u.reason === 'pre-receive hook declined'), JSON.stringify(t.updates));
      assert.deepEqual(refLines(target), []);
      hook(target, 'pre-receive', 'exit 0');
      assert.equal((await mirrorCli([base, target])).code, 0);
      assertMirrored(base, target);
    });

    it('a missing source or target is reported, exit 1; usage errors exit 2', async () => {
      const missing = join(tmp.path, 'no-such-repo.git');
      const r = await mirrorCli(['--json', missing, initBare(path('missing-dst'))]);
      assert.equal(r.code, 1);
      assert.equal(parseJson(r).error?.code, 'ERR_NOT_FOUND');
      // A file:// URL names a Git repository, which must exist (a plain path that does not exist becomes a new store).
      const t = await mirrorCli(['--json', base, `file://${missing}`]);
      assert.equal(t.code, 1);
      assert.equal(parseJson(t).targets[0].error?.code, 'ERR_NOT_FOUND');

      for (const args of [
        [base],
        ['--protocol', '3', base, base],
        ['--no-such-option', base, base],
        ['--batch', join(tmp.path, 'x'), base, base],
        ['--jobs', '0', base, base],
        ['--include', 'refs/heads/[', base, base],
      ]) {
        const u = await packferry(['mirror', ...args]);
        assert.equal(u.code, 2, `${args.join(' ')}: ${u.stdout}${u.stderr}`);
      }
    });
  });

  describe('mirror: reports', () => {
    it('the text report: forced update, [kept] tips in --safe, "Everything up-to-date", -v lists refs up to date', async () => {
      const source = copyRepo(base, path('text-src'));
      const target = copyRepo(base, path('text-dst'));
      const rewritten = rewriteBranch(source, 'main');
      const r = await mirrorCli(['--safe', source, target]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.equal(
        r.stdout,
        [
          `To ${target}`,
          ` + ${rewritten.old.slice(0, 7)}...${rewritten.new.slice(0, 7)} main -> main (forced update)`,
          ` * [kept]            ${rewritten.old.slice(0, 7)} -> refs/packferry/attic/heads/main/${rewritten.old}`,
          '',
        ].join('\n'),
      );
      const again = await mirrorCli(['-v', source, target]);
      assert.equal(again.code, 0);
      const lines = again.stdout.split('\n');
      assert.equal(lines[1], 'Everything up-to-date');
      assert.ok(lines.includes(' = [up to date]      main -> main'), again.stdout);
      assert.ok(lines.includes(' = [up to date]      release -> release'), again.stdout);
    });

    it('--json is one valid JSON document with the documented fields', async () => {
      const source = copyRepo(base, path('json-src'));
      const target = copyRepo(base, path('json-dst'));
      const added = commitFiles(source, 'main', { 'json.txt': 'x\n' });
      git(['update-ref', '-d', 'refs/tags/latest'], { cwd: source });
      git(['update-ref', 'refs/heads/json-new', added], { cwd: source });
      const r = await mirrorCli(['--json', source, target]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.equal(r.stdout.trim().split('\n').length, 1, 'one line');
      const report: JsonReport = parseJson(r);
      assert.deepEqual(Object.keys(report).sort(), ['ok', 'resources', 'source', 'sourceHead', 'sourceRefs', 'targets']);
      assert.equal(typeof report.resources?.maxRssKiB, 'number');
      const t = report.targets[0];
      assert.deepEqual(Object.keys(t).sort(), ['attic', 'invalidNames', 'ok', 'pack', 'target', 'upToDate', 'updates']);
      assert.equal(t.upToDate, Object.keys(summary.refs).length - 2);
      const byRef = new Map(t.updates.map((u) => [u.ref, u]));
      assert.deepEqual(byRef.get('refs/heads/main'), {
        ref: 'refs/heads/main',
        kind: 'update',
        old: summary.refs['refs/heads/main'],
        new: added,
        status: 'ok',
        fastForward: true,
      });
      assert.deepEqual(byRef.get('refs/heads/json-new'), { ref: 'refs/heads/json-new', kind: 'create', old: ZERO_ID, new: added, status: 'ok' });
      assert.deepEqual(byRef.get('refs/tags/latest'), { ref: 'refs/tags/latest', kind: 'delete', old: summary.refs['refs/tags/latest'], new: ZERO_ID, status: 'ok' });
    });
  });

  describe('mirror --batch', () => {
    it('mirrors several repositories from a file; one failure does not stop the others; reports come in input order', async () => {
      const a = copyRepo(base, path('batch-a'));
      const b = path('batch-b');
      await makeSource(b, 9);
      const [a1, a2, b1, c1] = ['batch-a1', 'batch-a2', 'batch-b1', 'batch-c1'].map((l) => initBare(path(l)));
      const missing = join(tmp.path, 'batch-missing.git');
      const list = join(tmp.path, 'batch.txt');
      writeFileSync(list, `# sources and their targets\n${a} ${a1} ${a2}\n\n   file://${b}   ${b1}\n${missing} ${c1}\n`);
      const r = await mirrorCli(['--json', '--batch', list]);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      const report = parseJson<{ ok: boolean; repositories: JsonReport[] }>(r);
      assert.equal(report.ok, false);
      assert.deepEqual(
        report.repositories.map((x) => [x.ok, x.targets.length, x.error?.code]),
        [
          [true, 2, undefined],
          [true, 1, undefined],
          [false, 0, 'ERR_NOT_FOUND'],
        ],
      );
      assertMirrored(a, a1);
      assertMirrored(a, a2);
      assertMirrored(b, b1);
      assert.deepEqual(refLines(c1, []), []);

      // From stdin, one at a time, text output: a summary line on stderr.
      commitFiles(a, 'main', { 'batch.txt': 'again\n' });
      const before = snapshot(b1);
      const s = await packferry(['mirror', '-q', '--jobs', '1', '--batch', '-'], { input: `${a} ${a1}\n${b} ${b1}\n` });
      assert.equal(s.code, 0, s.stdout + s.stderr);
      assert.match(s.stderr, /2 repositories, 0 failed/);
      assertMirrored(a, a1);
      assert.equal(snapshot(b1), before);
    });
  });
});

// `packferry mirror` into a store checks the objects it receives as Git's
// receive.fsckObjects does (issue: "Hostile clients", item 3): each of the
// twelve hostile cases, on a branch of a real Git repository, is refused —
// the mirror fails (exit 1), naming the object, the message id and the
// option that relaxes it, and the store is left as it was — and accepted with
// `--fsck <id>=warn` (shown as a warning). A store holding all twelve (written
// with the relaxing options) fails `store verify --full` without them,
// naming the same ids as `git fsck` in the same directory, and passes with
// `store verify --full --fsck ...`. A blob on a branch of the source is
// refused as Git's refs layer refuses it, and `store verify` names one in a
// store, as `git fsck` does.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { git, gitAsync, tempDir } from '../support/git.js';
import { fsckIdsIn, HOSTILE_CASES, writeBlob } from '../support/fsck-fixtures.js';
import { packferry, refMap } from '../support/mirror-fixtures.js';
import { FsBlobStore } from '../../src/store/fs-backend.js';
import { StoreRepository } from '../../src/store/repository.js';

const tmp = tempDir('packferry-mirror-fsck-');
const source = join(tmp.path, 'source.git');
const ids = [...new Set(HOSTILE_CASES.map((c) => c.id))];
let commits: string[] = [];

before(() => {
  git(['init', '-q', '--bare', '-b', 'main', source]);
  const work = join(tmp.path, 'work');
  git(['init', '-q', '-b', 'main', work]);
  git(['commit', '-q', '--allow-empty', '-m', 'base'], { cwd: work });
  const base = git(['rev-parse', 'HEAD'], { cwd: work });
  git(['push', '-q', source, 'main'], { cwd: work });
  commits = HOSTILE_CASES.map((c) => c.build(work, base));
  git(['push', '-q', source, ...commits.map((c, i) => `${c}:refs/heads/case-${i}`)], { cwd: work });
});

after(() => tmp.cleanup());

describe('packferry mirror into a store checks objects as receive.fsckObjects does', () => {
  HOSTILE_CASES.forEach((c, i) => {
    it(`refuses ${c.name} (${c.id}); stores it with --fsck ${c.id}=warn`, async () => {
      const store = join(tmp.path, `case-${i}.git`);
      const args = ['mirror', '--include', `refs/heads/case-${i}`, source, store];
      const refused = await packferry(args);
      assert.equal(refused.code, 1, refused.stdout + refused.stderr);
      const out = refused.stdout + refused.stderr;
      assert.match(out, new RegExp(`fsck error in packed object [0-9a-f]{40}: ${c.id}: `));
      assert.match(out, new RegExp(`hint: .*--fsck ${c.id}=warn`));
      const verify = await packferry(['store', 'ls', '--json', store]);
      if (verify.code === 0) assert.deepEqual((JSON.parse(verify.stdout) as { refs: unknown[] }).refs, [], 'no ref was stored');

      const relaxed = await packferry([...args, '--fsck', `${c.id}=warn`]);
      assert.equal(relaxed.code, 0, relaxed.stdout + relaxed.stderr);
      assert.deepEqual(fsckIdsIn(relaxed.stderr, 'warning'), [c.id], relaxed.stderr);
      assert.equal(refMap(store).get(`refs/heads/case-${i}`), commits[i]);
    });
  });

  it('a store written with the relaxing options fails store verify --full without them, naming the ids git fsck names', async () => {
    const store = join(tmp.path, 'all.git');
    const mirrored = await packferry(['mirror', '-q', source, store, ...ids.flatMap((id) => ['--fsck', `${id}=ignore`])]);
    assert.equal(mirrored.code, 0, mirrored.stdout + mirrored.stderr);
    assert.equal(mirrored.stderr.includes('warning: object'), false, 'ignored checks say nothing');

    const plain = await packferry(['store', 'verify', store]);
    assert.equal(plain.code, 0, `without --full objects are not checked:\n${plain.stdout}`);
    const r = await packferry(['store', 'verify', '--full', '--json', store]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const report = JSON.parse(r.stdout) as { problems: { severity: string; kind: string; message: string }[] };
    const ours = [...new Set(report.problems.filter((p) => p.kind === 'fsck').map((p) => /^object [0-9a-f]{40}: (\w+):/.exec(p.message)?.[1]))].sort();
    const fsck = await gitAsync(['--git-dir', store, 'fsck', '--no-dangling', '--no-progress']);
    const theirs = [...new Set([...fsckIdsIn(fsck.stderr, 'error'), ...fsckIdsIn(fsck.stderr, 'warning')])].sort();
    assert.deepEqual(ours, theirs, `store verify:\n${r.stdout}\ngit fsck:\n${fsck.stderr}`);
    assert.deepEqual(ours, [...ids].sort());

    const text = await packferry(['store', 'verify', '--full', store]);
    for (const id of ids) assert.match(text.stdout + text.stderr, new RegExp(`object [0-9a-f]{40}: ${id}: `));
    const relaxed = await packferry(['store', 'verify', '--full', store, ...ids.flatMap((id) => ['--fsck', `${id}=warn`])]);
    assert.equal(relaxed.code, 0, relaxed.stdout + relaxed.stderr);
  });

  it('--fsck skipList=FILE exempts the objects listed', async () => {
    const store = join(tmp.path, 'skip.git');
    const i = HOSTILE_CASES.findIndex((c) => c.id === 'duplicateEntries');
    const tree = git(['rev-parse', `${commits[i]}^{tree}`], { cwd: source });
    const list = join(tmp.path, 'skip-list');
    writeFileSync(list, `# trees we know about\n${tree}\n`);
    const args = ['mirror', '-q', '--include', `refs/heads/case-${i}`, source, store];
    assert.equal((await packferry(args)).code, 1);
    const r = await packferry([...args, '--fsck', `skipList=${list}`]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const bad = await packferry([...args, '--fsck', 'skipList=/nonexistent/list']);
    assert.equal(bad.code, 3, bad.stderr);
    const usage = await packferry([...args, '--fsck', 'nulInHeader=warn']);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /cannot demote nulInHeader/);
  });

  it('refuses a blob on a branch of the source, as Git does', async () => {
    const src = join(tmp.path, 'blob-source.git');
    git(['clone', '-q', '--bare', source, src]);
    const blob = writeBlob(src, 'not a commit\n');
    mkdirSync(join(src, 'refs', 'heads'), { recursive: true });
    writeFileSync(join(src, 'refs', 'heads', 'blobref'), `${blob}\n`);
    git(['tag', 'blobtag', blob], { cwd: src }); // a tag may name a blob
    const store = join(tmp.path, 'blob.git');
    const r = await packferry(['mirror', '--include', 'refs/heads/main', '--include', 'refs/heads/blobref', src, store]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.ok((r.stdout + r.stderr).includes(`cannot update ref 'refs/heads/blobref': trying to write non-commit object ${blob} to branch 'refs/heads/blobref'`), r.stdout + r.stderr);
    assert.equal(existsSync(join(store, 'packed-refs')) && git(['--git-dir', store, 'for-each-ref']).includes('blobref'), false);
    const ok = await packferry(['mirror', '-q', '--include', 'refs/heads/main', '--include', 'refs/tags/*', src, store]);
    assert.equal(ok.code, 0, ok.stderr);

    // A store that holds one anyway (written before this rule, or by hand): store verify names it, as git fsck does.
    const repo = await StoreRepository.open(new FsBlobStore(store));
    // (transact commits whatever state it is given: the ref transaction's rules are above it.)
    await repo.transact((m) => ({ ...m, refs: [...m.refs, { name: 'refs/heads/blobref', oid: blob }] }));
    await repo.close();
    const verify = await packferry(['store', 'verify', '--json', store]);
    assert.equal(verify.code, 1, verify.stdout);
    const problems = (JSON.parse(verify.stdout) as { problems: { kind: string; message: string }[] }).problems;
    assert.ok(problems.some((p) => p.kind === 'bad-ref' && p.message.includes(`trying to write non-commit object ${blob} to branch 'refs/heads/blobref'`)), verify.stdout);
    const fsck = await gitAsync(['--git-dir', store, 'fsck', '--no-progress']);
    assert.match(fsck.stderr, /error: refs\/heads\/blobref: not a commit/);
  });
});

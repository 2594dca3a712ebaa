// Pushed objects are checked as Git checks them (issue: "Hostile clients",
// item 3). Each of the twelve hostile pushes — tree entries ".git", ".GIT",
// "git~1", ".g\u200cit", "..", ".", "a/b", duplicate entries, a .gitmodules
// URL "--upload-pack=...", a submodule name "../../modules/evil", a
// symbolic-link .gitmodules, a bad author line — goes with the real `git
// push` both to `packferry serve` and to a real `git receive-pack` with
// receive.fsckObjects=true (the reference): both refuse it, naming the same
// message id, every ref "unpacker error", and nothing is stored. With the
// repository's relaxing setting (`packferry repo edit --fsck <id>=warn`, as
// receive.fsck.<id>=warn for Git) both accept it and warn. A blob pushed to
// a branch is refused by both ("failed to update ref"). `store verify --full`
// on the relaxed repository passes with its settings and fails without them,
// naming the ids `git fsck` names in the same directory. A .gitmodules blob
// already stored is checked when a pushed tree names it, as Git reads it
// from the repository.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { git, tempDir } from '../support/git.js';
import { packferry } from '../support/mirror-fixtures.js';
import { fsckIdsIn, HOSTILE_CASES, referenceServer, writeBlob } from '../support/fsck-fixtures.js';
import {
  anonymousClient,
  assertStoreVerifies,
  bearerClient,
  lsRemote,
  pf,
  rawRequest,
  runGit,
  startServe,
  stopAllServers,
  type GitClient,
  type ServeProcess,
} from '../support/serve-fixtures.js';

const tmp = tempDir('packferry-serve-fsck-');
const root = join(tmp.path, 'root');
const none = anonymousClient();
let server: ServeProcess;
let admin: GitClient;
let token: string;
let work: string;
let base: string;
let strictRef: string;
let relaxedRef: string;
const relaxedIds = [...new Set(HOSTILE_CASES.map((c) => c.id))];

function packFiles(repo: string): string[] {
  return readdirSync(join(root, `${repo}.git`, 'objects', 'pack')).sort();
}

/** Pushes `commit` to `ref` at `url`; git's exit code and stderr. */
async function push(url: string, commit: string, ref: string): Promise<{ code: number | null; stderr: string }> {
  const r = await runGit(admin, ['push', url, `${commit}:${ref}`], { cwd: work });
  return { code: r.code, stderr: r.stderr };
}

before(async () => {
  work = join(tmp.path, 'work');
  git(['init', '-q', '-b', 'main', work]);
  git(['commit', '-q', '--allow-empty', '-m', 'base'], { cwd: work });
  base = git(['rev-parse', 'HEAD'], { cwd: work });
  await pf(['mirror', '-q', work, join(root, 'strict.git')]);
  await pf(['mirror', '-q', work, join(root, 'relaxed.git')]);
  await pf(['repo', 'edit', 'relaxed', '--store', root, ...relaxedIds.flatMap((id) => ['--fsck', `${id}=warn`])]);
  token = (JSON.parse((await pf(['token', 'create', 'root', '--admin', '--store', root, '--json'])).stdout) as { token: string }).token;
  admin = bearerClient(token);
  server = await startServe(['--store', root]);
  strictRef = referenceServer(join(tmp.path, 'strict-ref.git'));
  relaxedRef = referenceServer(join(tmp.path, 'relaxed-ref.git'), Object.fromEntries(relaxedIds.map((id) => [`receive.fsck.${id}`, 'warn'])));
  for (const ref of [strictRef, relaxedRef]) git(['push', '-q', ref, 'main'], { cwd: work });
});

after(async () => {
  await stopAllServers();
  tmp.cleanup();
});

describe('packferry serve checks pushed objects as git receive-pack with receive.fsckObjects does', () => {
  HOSTILE_CASES.forEach((c, i) => {
    const ref = `refs/heads/case-${i}`;
    it(`refuses ${c.name} with ${c.id}, as git does; accepts it when ${c.id} is relaxed`, async () => {
      const commit = c.build(work, base);
      const packsBefore = packFiles('strict');

      const theirs = await push(strictRef, commit, ref);
      assert.notEqual(theirs.code, 0, `git receive-pack accepted ${c.name}:\n${theirs.stderr}`);
      assert.deepEqual(fsckIdsIn(theirs.stderr), [c.id], `git's refusal:\n${theirs.stderr}`);

      const ours = await push(`${server.url}/strict.git`, commit, ref);
      assert.notEqual(ours.code, 0, `packferry serve accepted ${c.name}:\n${ours.stderr}`);
      assert.deepEqual(fsckIdsIn(ours.stderr), fsckIdsIn(theirs.stderr), `packferry serve's refusal:\n${ours.stderr}\ngit's:\n${theirs.stderr}`);
      assert.match(ours.stderr, new RegExp(`remote: error: object [0-9a-f]{40}: ${c.id}: `));
      assert.match(ours.stderr, /remote: fatal: fsck error in pack(ed)? objects?/);
      assert.match(ours.stderr, new RegExp(`error: remote unpack failed: fsck error in packed object [0-9a-f]{40}: ${c.id}: `));
      assert.match(ours.stderr, /! \[remote rejected\] .* -> case-\d+ \(unpacker error\)/);
      assert.equal((await lsRemote(admin, `${server.url}/strict.git`)).has(ref), false, 'the ref was not created');
      assert.deepEqual(packFiles('strict'), packsBefore, 'nothing was stored');

      const theirsRelaxed = await push(relaxedRef, commit, ref);
      assert.equal(theirsRelaxed.code, 0, `git receive-pack with receive.fsck.${c.id}=warn refused ${c.name}:\n${theirsRelaxed.stderr}`);
      const oursRelaxed = await push(`${server.url}/relaxed.git`, commit, ref);
      assert.equal(oursRelaxed.code, 0, `packferry serve with --fsck ${c.id}=warn refused ${c.name}:\n${oursRelaxed.stderr}`);
      assert.deepEqual(fsckIdsIn(oursRelaxed.stderr, 'warning'), fsckIdsIn(theirsRelaxed.stderr, 'warning'), `warnings:\n${oursRelaxed.stderr}\ngit's:\n${theirsRelaxed.stderr}`);
      assert.match(oursRelaxed.stderr, new RegExp(`remote: warning: object [0-9a-f]{40}: ${c.id}: `));
      assert.equal((await lsRemote(admin, `${server.url}/relaxed.git`)).get(ref), commit);
    });
  });

  it('refuses a blob pushed to a branch, as git does ("failed to update ref")', async () => {
    const blob = writeBlob(work, 'not a commit\n');
    const theirs = await push(strictRef, blob, 'refs/heads/blobref');
    assert.notEqual(theirs.code, 0);
    const ours = await push(`${server.url}/strict.git`, blob, 'refs/heads/blobref');
    assert.notEqual(ours.code, 0, ours.stderr);
    const why = `trying to write non-commit object ${blob} to branch 'refs/heads/blobref'`;
    for (const stderr of [theirs.stderr, ours.stderr]) {
      assert.ok(stderr.includes(`remote: error: cannot update ref 'refs/heads/blobref': ${why}`), stderr);
      assert.match(stderr, /! \[remote rejected\] [0-9a-f]{40} -> blobref \(failed to update ref\)/);
    }
    assert.equal((await lsRemote(admin, `${server.url}/strict.git`)).has('refs/heads/blobref'), false);
    // The same blob as a tag is fine for both.
    assert.equal((await push(strictRef, blob, 'refs/tags/blobtag')).code, 0);
    assert.equal((await push(`${server.url}/strict.git`, blob, 'refs/tags/blobtag')).code, 0);
  });

  it('leaves the strict repository as it was: store verify --full finds nothing', async () => {
    await assertStoreVerifies(join(root, 'strict.git'));
    const full = await packferry(['store', 'verify', '--full', '--json', join(root, 'strict.git')]);
    assert.equal(full.code, 0, full.stdout + full.stderr);
  });

  it('store verify --full: ok under the repository settings, fails naming the ids git fsck names without them', async () => {
    const dir = join(root, 'relaxed.git');
    const withSettings = await packferry(['store', 'verify', '--full', '--json', dir]);
    assert.equal(withSettings.code, 0, `the relaxed repository's own settings allow its objects:\n${withSettings.stdout}`);

    await pf(['repo', 'edit', 'relaxed', '--store', root, ...relaxedIds.flatMap((id) => ['--fsck', `${id}=default`])]);
    const settings = JSON.parse((await pf(['repo', 'show', 'relaxed', '--store', root, '--json'])).stdout) as { repository: { fsck?: unknown } };
    assert.equal(settings.repository.fsck, undefined, 'the overrides are gone');
    const r = await packferry(['store', 'verify', '--full', '--json', dir]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const report = JSON.parse(r.stdout) as { ok: boolean; problems: { severity: string; kind: string; message: string }[] };
    assert.equal(report.ok, false);
    const ours = [...new Set(report.problems.filter((p) => p.kind === 'fsck' && p.severity === 'error').map((p) => /^object [0-9a-f]{40}: (\w+):/.exec(p.message)?.[1]))].sort();
    const fsck = await runGit(none, ['--git-dir', dir, 'fsck', '--no-dangling', '--no-progress']);
    const theirs = [...new Set([...fsckIdsIn(fsck.stderr + fsck.stdout, 'error'), ...fsckIdsIn(fsck.stderr + fsck.stdout, 'warning')])].sort();
    assert.deepEqual(ours, theirs, `store verify:\n${r.stdout}\ngit fsck:\n${fsck.stdout}${fsck.stderr}`);
    assert.deepEqual(ours, [...relaxedIds].sort());
  });

  it('checks a stored .gitmodules blob that a pushed tree names, as git reads it from the repository', async () => {
    // The relaxed repositories hold the hostile .gitmodules blob since the relaxed push; their settings are Git's again.
    for (const id of relaxedIds) git(['config', '--unset', `receive.fsck.${id}`], { cwd: relaxedRef });
    const i = HOSTILE_CASES.findIndex((c) => c.id === 'gitmodulesUrl');
    const old = git(['rev-parse', `refs/heads/case-${i}:.gitmodules`], { cwd: relaxedRef });
    const tree = git(['mktree'], { cwd: work, input: `100644 blob ${old}\t.gitmodules\n100644 blob ${writeBlob(work, 'new\n')}\tNEW\n` });
    const commit = git(['commit-tree', tree, '-p', base, '-m', 'names the stored blob'], { cwd: work });
    const theirs = await push(relaxedRef, commit, 'refs/heads/again');
    assert.notEqual(theirs.code, 0, theirs.stderr);
    const ours = await push(`${server.url}/relaxed.git`, commit, 'refs/heads/again');
    assert.notEqual(ours.code, 0, ours.stderr);
    for (const stderr of [theirs.stderr, ours.stderr]) assert.ok(stderr.includes(`error: object ${old}: gitmodulesUrl: disallowed submodule url: --upload-pack=`), stderr);
  });

  it('checks the setting: unknown ids, unknown levels and lowering a fatal id are refused', async () => {
    for (const [flag, why] of [
      ['noSuchCheck=warn', /unknown fsck message id/],
      ['hasDotgit=sometimes', /unknown fsck message type/],
      ['nulInHeader=ignore', /cannot demote nulInHeader/],
    ] as const) {
      const r = await packferry(['repo', 'edit', 'strict', '--store', root, '--fsck', flag]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, why);
    }
    // The admin API checks the same (400), and case does not matter, as in Git.
    const patch = (body: unknown) =>
      rawRequest(server.url, '/api/v1/repos/strict', { method: 'PATCH', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const demoted = await patch({ fsck: { nulInHeader: 'ignore' } });
    assert.equal(demoted.status, 400, demoted.body.toString());
    assert.match(demoted.body.toString(), /cannot demote nulInHeader/);
    assert.equal((await patch({ fsckSkipList: ['not-an-id'] })).status, 400);
    const edited = await packferry(['repo', 'edit', 'strict', '--server', server.url, '--token', token, '--fsck', 'HASDOTGIT=ignore', '--json']);
    assert.equal(edited.code, 0, edited.stderr);
    assert.deepEqual((JSON.parse(edited.stdout) as { repository: { fsck: unknown } }).repository.fsck, { hasDotgit: 'ignore' });
    const back = await packferry(['repo', 'edit', 'strict', '--server', server.url, '--token', token, '--fsck', 'hasDotgit=default', '--json']);
    assert.equal(back.code, 0, back.stderr);
    assert.equal((JSON.parse(back.stdout) as { repository: { fsck?: unknown } }).repository.fsck, undefined);
  });
});

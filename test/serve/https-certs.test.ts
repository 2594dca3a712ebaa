// `packferry serve` over HTTPS with client certificates (issue 5, scenario
// 1): the real server process (--tls-cert/--tls-key/--client-ca from
// `packferry ca`, --no-tokens) and the real git with http.sslCert/sslKey.
// Clone, shallow clone, fetch after pushes, push (new branch, fast-forward),
// branch deletion, denyNonFastForwards (refused for a writer, allowed for an
// admin), pre-receive/update/post-receive hooks, a partial clone fetching
// blobs lazily, and the 404 rule: certificates from another CA, expired
// ones, none, read-only ones pushing, repository-scoped ones elsewhere, and
// repositories that do not exist all look the same.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../support/git.js';
import { makeSource, refMap } from '../support/mirror-fixtures.js';
import type { RepoSummary } from '../support/repogen.js';
import {
  anonymousClient,
  assertCloneMatches,
  assertFsck,
  assertStoreVerifies,
  commitFile,
  certClient,
  gitFails,
  gitOk,
  lsRemote,
  makeCliPki,
  pf,
  rawRequest,
  remoteHead,
  runGit,
  sortedEntries,
  startServe,
  stopAllServers,
  type CliPki,
  type GitClient,
  type ServeProcess,
} from '../support/serve-fixtures.js';

const tmp = tempDir('packferry-serve-https-');
const root = join(tmp.path, 'root');
const none = anonymousClient();
let pki: CliPki;
let otherPki: CliPki;
let server: ServeProcess;
let source: RepoSummary;
let repoUrl: string;
let reader: GitClient;
let writer: GitClient;
let admin: GitClient;
let counter = 0;

function fresh(label: string): string {
  return join(tmp.path, `${label}-${++counter}`);
}

/** A working clone made by `client`, checked against the server. */
async function cloneAs(client: GitClient, url = repoUrl, extra: string[] = []): Promise<string> {
  const dir = fresh('clone');
  await gitOk(client, ['clone', '-q', ...extra, url, dir]);
  return dir;
}

async function hookFile(name: string, script: string): Promise<string> {
  const path = join(tmp.path, `${name}-${++counter}.sh`);
  writeFileSync(path, `#!/bin/sh\n${script}\n`, { mode: 0o755 });
  return path;
}

before(async () => {
  [pki, otherPki, source] = await Promise.all([
    makeCliPki(join(tmp.path, 'ca'), {
      admin: ['--admin'],
      reader: ['--read'],
      writer: ['--read', '--write'],
      team: ['--read', '--write', '--repo', 'team/*'],
      expired: ['--admin', '--days', '0'],
      nobody: [],
    }),
    makeCliPki(join(tmp.path, 'other-ca'), { mallory: ['--admin'] }, 'other'),
    makeSource(join(tmp.path, 'source.git'), 7),
  ]);
  await Promise.all([
    pf(['mirror', source.dir, join(root, 'r.git')]),
    pf(['repo', 'create', 'team/x', '--store', root]).then(() => pf(['repo', 'create', 'other/y', '--store', root])),
  ]);
  server = await startServe(['--store', root, '--tls-cert', pki.node.cert, '--tls-key', pki.node.key, '--client-ca', pki.caFile, '--no-tokens']);
  repoUrl = `${server.url}/r.git`;
  reader = certClient(pki.caFile, pki.user('reader'));
  writer = certClient(pki.caFile, pki.user('writer'));
  admin = certClient(pki.caFile, pki.user('admin'));
});

after(async () => {
  await stopAllServers();
  tmp.cleanup();
});

describe('packferry serve over HTTPS with client certificates', () => {
  it('listens on the port the kernel gave it and says so', () => {
    assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.ok(server.port > 0);
  });

  it('clones with a read certificate: the source refs, fsck clean', async () => {
    const dir = await cloneAs(reader);
    const remote = await assertCloneMatches(reader, repoUrl, dir);
    assert.deepEqual(sortedEntries(remote), sortedEntries(refMap(source.dir)));
    assert.equal(await gitOk(none, ['rev-parse', 'HEAD'], { cwd: dir }), source.head);
    assert.equal(await remoteHead(reader, repoUrl), 'refs/heads/main');
    assert.equal(await gitOk(none, ['status', '--porcelain'], { cwd: dir }), '', 'the checkout matches HEAD');
  });

  it('makes a shallow clone (--depth 1)', async () => {
    const dir = fresh('shallow');
    await gitOk(reader, ['clone', '-q', '--depth', '1', repoUrl, dir]);
    assert.equal(await gitOk(none, ['rev-list', '--count', 'HEAD'], { cwd: dir }), '1');
    assert.equal(readFileSync(join(dir, '.git', 'shallow'), 'utf8').trim(), source.head);
    assert.equal(await gitOk(none, ['rev-parse', 'HEAD^{tree}'], { cwd: dir }), await gitOk(none, ['rev-parse', 'main^{tree}'], { cwd: source.dir }));
    await assertFsck(dir);
  });

  it('pushes with a write certificate (new branch, fast-forward), and a fetch sees it', async () => {
    const readerClone = await cloneAs(reader);
    const work = await cloneAs(writer);
    const topic = await commitFile(work, 'topic.txt', 'a new branch\n');
    await gitOk(writer, ['push', '-q', 'origin', 'HEAD:refs/heads/topic/one'], { cwd: work });
    await gitOk(none, ['checkout', '-q', 'main'], { cwd: work });
    const ff1 = await commitFile(work, 'ff.txt', 'fast-forward 1\n');
    const ff2 = await commitFile(work, 'ff.txt', 'fast-forward 2\n');
    const push = await runGit(writer, ['push', 'origin', 'main'], { cwd: work });
    assert.equal(push.code, 0, push.stderr);
    assert.match(push.stderr, new RegExp(`${source.head.slice(0, 7)}\\.\\.${ff2.slice(0, 7)}\\s+main -> main`));
    const remote = await lsRemote(reader, repoUrl);
    assert.equal(remote.get('refs/heads/topic/one'), topic);
    assert.equal(remote.get('refs/heads/main'), ff2);
    assert.notEqual(ff1, ff2);

    await gitOk(reader, ['fetch', '-q', 'origin'], { cwd: readerClone });
    await assertCloneMatches(reader, repoUrl, readerClone);
    assert.equal(await gitOk(none, ['rev-parse', 'origin/main'], { cwd: readerClone }), ff2);
    assert.equal(await gitOk(none, ['merge-base', '--is-ancestor', source.head, 'origin/main'], { cwd: readerClone }), '');
    await assertStoreVerifies(join(root, 'r.git'));
  });

  it('deletes a branch', async () => {
    const work = await cloneAs(writer);
    assert.ok((await lsRemote(writer, repoUrl)).has('refs/heads/topic/one'));
    await gitOk(writer, ['push', '-q', 'origin', ':refs/heads/topic/one'], { cwd: work });
    const remote = await lsRemote(reader, repoUrl);
    assert.equal(remote.has('refs/heads/topic/one'), false);
    await gitOk(writer, ['fetch', '-q', '--prune', 'origin'], { cwd: work });
    await assertCloneMatches(writer, repoUrl, work);
  });

  it('refuses a non-fast-forward push from a writer when the repository denies them, and allows it to an admin', async () => {
    await pf(['repo', 'edit', 'r', '--deny-non-fast-forwards', '--store', root]);
    try {
      const work = await cloneAs(writer);
      const before = await lsRemote(reader, repoUrl);
      await gitOk(none, ['reset', '-q', '--hard', 'HEAD~1'], { cwd: work });
      const rewritten = await commitFile(work, 'rewrite.txt', 'history rewritten\n');
      const refused = await gitFails(writer, ['push', '--force', 'origin', 'main'], { cwd: work });
      assert.match(refused, /! \[remote rejected\] main -> main \(non-fast-forward\)/);
      // Deleting a branch is a non-fast-forward too.
      const branch = [...before.keys()].find((n) => n.startsWith('refs/heads/') && n !== 'refs/heads/main')!;
      const deletion = await gitFails(writer, ['push', 'origin', `:${branch}`], { cwd: work });
      assert.match(deletion, /\(deletion prohibited\)/);
      assert.deepEqual(sortedEntries(await lsRemote(reader, repoUrl)), sortedEntries(before), 'nothing changed');

      await gitOk(admin, ['push', '-q', '--force', 'origin', 'main'], { cwd: work });
      assert.equal((await lsRemote(reader, repoUrl)).get('refs/heads/main'), rewritten);
      await gitOk(writer, ['fetch', '-q', 'origin'], { cwd: work });
      await assertCloneMatches(writer, repoUrl, work);
    } finally {
      await pf(['repo', 'edit', 'r', '--allow-non-fast-forwards', '--store', root]);
    }
    // Without the setting a writer may force.
    const work = await cloneAs(writer);
    await gitOk(none, ['reset', '-q', '--hard', 'HEAD~1'], { cwd: work });
    const again = await commitFile(work, 'rewrite.txt', 'rewritten again\n');
    await gitOk(writer, ['push', '-q', '--force', 'origin', 'main'], { cwd: work });
    assert.equal((await lsRemote(reader, repoUrl)).get('refs/heads/main'), again);
    await assertStoreVerifies(join(root, 'r.git'));
  });

  it('runs a pre-receive hook that refuses the push: its message reaches the client, no ref moves', async () => {
    const hook = await hookFile('pre-receive', 'while read old new ref; do echo "pre-receive: no pushes to $ref today" >&2; done\nexit 1');
    await pf(['repo', 'edit', 'r', '--hook', `pre-receive=${hook}`, '--store', root]);
    try {
      const work = await cloneAs(writer);
      const before = await lsRemote(reader, repoUrl);
      await commitFile(work, 'hooked.txt', 'refused by the hook\n');
      const stderr = await gitFails(writer, ['push', 'origin', 'main', 'HEAD:refs/heads/hooked'], { cwd: work });
      assert.match(stderr, /^remote: pre-receive: no pushes to refs\/heads\/main today/m);
      assert.match(stderr, /^remote: pre-receive: no pushes to refs\/heads\/hooked today/m);
      assert.match(stderr, /! \[remote rejected\] main -> main \(pre-receive hook declined\)/);
      assert.deepEqual(sortedEntries(await lsRemote(reader, repoUrl)), sortedEntries(before));
    } finally {
      await pf(['repo', 'edit', 'r', '--remove-hook', 'pre-receive', '--store', root]);
    }
    assert.equal(existsSync(join(root, 'r.git', 'hooks', 'pre-receive')), false);
  });

  it('runs an update hook that refuses one ref; the others move', async () => {
    const hook = await hookFile('update', 'case "$1" in refs/heads/blocked/*) echo "update: $1 is blocked ($2 -> $3)"; exit 1;; esac\nexit 0');
    await pf(['repo', 'edit', 'r', '--hook', `update=${hook}`, '--store', root]);
    try {
      const work = await cloneAs(writer);
      const tip = await commitFile(work, 'update-hook.txt', 'one ref accepted, one refused\n');
      const stderr = await gitFails(writer, ['push', 'origin', 'main', 'HEAD:refs/heads/blocked/b', 'HEAD:refs/heads/allowed'], { cwd: work });
      assert.match(stderr, new RegExp(`^remote: update: refs/heads/blocked/b is blocked \\(0{40} -> ${tip}\\)`, 'm'));
      assert.match(stderr, /! \[remote rejected\] HEAD -> blocked\/b \(hook declined\)/);
      const remote = await lsRemote(reader, repoUrl);
      assert.equal(remote.get('refs/heads/main'), tip);
      assert.equal(remote.get('refs/heads/allowed'), tip);
      assert.equal(remote.has('refs/heads/blocked/b'), false);
    } finally {
      await pf(['repo', 'edit', 'r', '--remove-hook', 'update', '--store', root]);
    }
  });

  it('runs a post-receive hook after the refs moved, with the updates on its stdin', async () => {
    // (The sandboxed hook can write nowhere the test could read: it reports to the pusher.)
    const hook = await hookFile(
      'post-receive',
      `{ echo "user=$PACKFERRY_USER repo=$PACKFERRY_REPOSITORY"; cat; git rev-parse refs/heads/main; } | sed 's/^/post-receive: /'\necho "post-receive: thanks"`,
    );
    await pf(['repo', 'edit', 'r', '--hook', `post-receive=${hook}`, '--store', root]);
    try {
      const work = await cloneAs(writer);
      const old = await gitOk(none, ['rev-parse', 'HEAD'], { cwd: work });
      const tip = await commitFile(work, 'post.txt', 'post-receive sees this\n');
      const push = await runGit(writer, ['push', 'origin', 'main', ':refs/heads/allowed'], { cwd: work });
      assert.equal(push.code, 0, push.stderr);
      assert.match(push.stderr, /^remote: post-receive: thanks/m);
      const lines = push.stderr
        .split('\n')
        .filter((l) => l.startsWith('remote: post-receive: '))
        .map((l) => l.slice('remote: post-receive: '.length).trimEnd());
      assert.equal(lines[0], 'user=writer repo=r');
      assert.deepEqual(lines.slice(1, 3).sort(), [`${old} ${'0'.repeat(40)} refs/heads/allowed`, `${old} ${tip} refs/heads/main`].sort());
      assert.equal(lines[3], tip, 'the hook runs after the ref moved (GIT_DIR is the repository)');
    } finally {
      await pf(['repo', 'edit', 'r', '--remove-hook', 'post-receive', '--store', root]);
    }
  });

  it('makes a partial clone (--filter=blob:none) whose checkout fetches the blobs lazily', async () => {
    const dir = fresh('partial');
    await gitOk(reader, ['clone', '-q', '--filter=blob:none', '--no-checkout', repoUrl, dir]);
    const missing = (await gitOk(none, ['rev-list', '--objects', '--all', '--missing=print'], { cwd: dir })).split('\n').filter((l) => l.startsWith('?'));
    assert.ok(missing.length > 10, `blobs are left out (${missing.length} missing)`);
    assert.equal(await gitOk(none, ['config', 'remote.origin.promisor'], { cwd: dir }), 'true');
    // The checkout asks the server for the blobs it needs (with the certificate from the command line).
    await gitOk(reader, ['checkout', '-q', 'main'], { cwd: dir });
    assert.equal(await gitOk(none, ['status', '--porcelain'], { cwd: dir }), '');
    const stillMissing = (await gitOk(none, ['rev-list', '--objects', 'HEAD^{tree}', '--missing=print'], { cwd: dir })).split('\n').filter((l) => l.startsWith('?'));
    assert.deepEqual(stillMissing, [], "every blob of HEAD's tree is here now");
    const someFile = (await gitOk(none, ['ls-files'], { cwd: dir })).split('\n').find((f) => f.endsWith('.txt') || f.endsWith('.md'))!;
    assert.equal(await gitOk(none, ['hash-object', someFile], { cwd: dir }), await gitOk(none, ['rev-parse', `HEAD:${someFile}`], { cwd: dir }));
    await assertCloneMatches(reader, repoUrl, dir);
  });

  it('answers certificates from another CA, expired ones and none as if the repository did not exist', async () => {
    const missing = await rawRequest(server.url, '/nothing-here.git/info/refs?service=git-upload-pack', { ca: pki.caFile, cert: pki.user('admin') });
    assert.equal(missing.status, 404);
    const clients: [string, GitClient, Parameters<typeof rawRequest>[2]][] = [
      ['another CA', certClient(pki.caFile, otherPki.user('mallory')), { ca: pki.caFile, cert: otherPki.user('mallory') }],
      ['expired', certClient(pki.caFile, pki.user('expired')), { ca: pki.caFile, cert: pki.user('expired') }],
      ['no certificate', anonymousClient(pki.caFile), { ca: pki.caFile }],
      ['no rights', certClient(pki.caFile, pki.user('nobody')), { ca: pki.caFile, cert: pki.user('nobody') }],
    ];
    for (const [label, client, raw] of clients) {
      const stderr = await gitFails(client, ['clone', repoUrl, fresh('refused')]);
      assert.match(stderr, /repository '.*\/r\.git\/' not found/, `${label}: ${stderr}`);
      for (const path of ['/r.git/info/refs?service=git-upload-pack', '/r.git/info/refs?service=git-receive-pack', '/r.git/HEAD']) {
        const res = await rawRequest(server.url, path, raw);
        assert.equal(res.status, 404, `${label} ${path}`);
        assert.deepEqual(res.body, missing.body, `${label} ${path}: the same body as a missing repository`);
        assert.equal(res.headers['content-type'], missing.headers['content-type']);
      }
    }
  });

  it('does not let a read-only certificate push (404 on receive-pack)', async () => {
    const work = await cloneAs(reader);
    const before = await lsRemote(reader, repoUrl);
    await commitFile(work, 'reader.txt', 'a reader tries to push\n');
    const stderr = await gitFails(reader, ['push', 'origin', 'main'], { cwd: work });
    assert.match(stderr, /not found/);
    for (const [method, path] of [
      ['GET', '/r.git/info/refs?service=git-receive-pack'],
      ['POST', '/r.git/git-receive-pack'],
    ]) {
      const res = await rawRequest(server.url, path, { method, ca: pki.caFile, cert: pki.user('reader'), body: method === 'POST' ? '0000' : undefined });
      assert.equal(res.status, 404, `${method} ${path}`);
    }
    assert.deepEqual(sortedEntries(await lsRemote(reader, repoUrl)), sortedEntries(before));
  });

  it("limits a certificate scoped to --repo 'team/*' to team/...", async () => {
    const team = certClient(pki.caFile, pki.user('team'));
    const work = await cloneAs(writer);
    await gitOk(team, ['push', '-q', `${server.url}/team/x.git`, 'main:refs/heads/main'], { cwd: work });
    const clone = fresh('team');
    await gitOk(team, ['clone', '-q', `${server.url}/team/x.git`, clone]);
    await assertCloneMatches(team, `${server.url}/team/x.git`, clone);
    for (const url of [`${server.url}/other/y.git`, repoUrl]) {
      assert.match(await gitFails(team, ['ls-remote', url]), /not found/, url);
      assert.match(await gitFails(team, ['push', url, 'main:refs/heads/main'], { cwd: work }), /not found/, url);
    }
    // The admin sees other/y still empty.
    assert.equal((await lsRemote(admin, `${server.url}/other/y.git`)).size, 0);
    await assertStoreVerifies(join(root, 'team', 'x.git'));
  });

  it('answers a repository that does not exist with 404, even to an admin (clone and push)', async () => {
    const url = `${server.url}/does-not-exist.git`;
    assert.match(await gitFails(admin, ['clone', url, fresh('missing')]), /repository '.*' not found/);
    const work = await cloneAs(reader);
    assert.match(await gitFails(admin, ['push', url, 'main'], { cwd: work }), /repository '.*' not found/);
    for (const [method, path] of [
      ['GET', '/does-not-exist.git/info/refs?service=git-upload-pack'],
      ['GET', '/does-not-exist.git/info/refs?service=git-receive-pack'],
      ['POST', '/does-not-exist.git/git-upload-pack'],
      ['POST', '/does-not-exist.git/git-receive-pack'],
      ['GET', '/does-not-exist.git/HEAD'],
    ]) {
      const res = await rawRequest(server.url, path, { method, ca: pki.caFile, cert: pki.user('admin'), body: method === 'POST' ? '0000' : undefined });
      assert.equal(res.status, 404, `${method} ${path}`);
    }
    assert.equal(existsSync(join(root, 'does-not-exist.git')), false, 'nothing was created');
  });

  it('leaves a store that verifies', async () => {
    await assertStoreVerifies(join(root, 'r.git'));
    const clone = await cloneAs(admin, repoUrl, ['--mirror']);
    await assertCloneMatches(admin, repoUrl, clone);
  });
});

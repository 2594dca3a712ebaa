// `packferry serve` with access tokens and public repositories (issue 5,
// scenarios 2 and 3): the real server process on plain HTTP with tokens
// enabled, tokens made by `packferry token create`, the real git sending
// them as the password of the URL (after the server's 401 challenge) or as
// `Authorization: Bearer` (http.extraHeader): clone, shallow clone deepened
// by a fetch, partial clone, push, branch delete, a force-push refused to a
// writer and allowed to an admin token, a refusing hook. Revoked, expired and unknown
// tokens are refused; public repositories (repo create --public, repo edit
// --public) are readable by anyone, and a private repository answers an
// anonymous client exactly like a repository that does not exist.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { tempDir } from '../support/git.js';
import { makeSource, refMap } from '../support/mirror-fixtures.js';
import type { RepoSummary } from '../support/repogen.js';
import {
  anonymousClient,
  assertCloneMatches,
  assertStoreVerifies,
  bearerClient,
  commitFile,
  gitFails,
  gitOk,
  lsRemote,
  pf,
  rawRequest,
  runGit,
  sortedEntries,
  startServe,
  stopAllServers,
  type ServeProcess,
} from '../support/serve-fixtures.js';

const tmp = tempDir('packferry-serve-tokens-');
const root = join(tmp.path, 'root');
const none = anonymousClient();
let server: ServeProcess;
let source: RepoSummary;
let counter = 0;
/** Token secrets by name, and ids. */
const tokens: Record<string, { token: string; id: string; expires: string | null }> = {};
let revokedAt = 0;

function fresh(label: string): string {
  return join(tmp.path, `${label}-${++counter}`);
}

/** http://user:TOKEN@127.0.0.1:PORT/NAME.git */
function tokenUrl(name: string, token: string, user = 'u'): string {
  const u = new URL(`${server.url}/${name}.git`);
  u.username = user;
  u.password = token;
  return u.href;
}

async function createToken(label: string, flags: string[]): Promise<void> {
  const out = await pf(['token', 'create', label, '--store', root, '--json', ...flags]);
  const doc = JSON.parse(out.stdout) as { token: string; id: string; expires: string | null };
  assert.match(doc.token, /^pft_[A-Za-z0-9_-]{43}$/);
  tokens[label] = doc;
}

before(async () => {
  source = await makeSource(join(tmp.path, 'source.git'), 11);
  await Promise.all([pf(['mirror', source.dir, join(root, 'priv.git')]), pf(['mirror', source.dir, join(root, 'pub.git')]), pf(['mirror', source.dir, join(root, 'ops.git')])]);
  await pf(['repo', 'edit', 'pub', '--public', '--store', root]);
  await pf(['repo', 'create', 'pub2', '--public', '--description', 'made public at creation', '--store', root]);
  // One at a time: token commands are read-modify-write on one file.
  await createToken('alice', ['--read', '--write']);
  await createToken('reader', ['--read']);
  await createToken('doomed', ['--read', '--write']);
  await createToken('old', ['--read', '--write', '--expires', '0.00001']);
  await createToken('boss', ['--admin']);
  server = await startServe(['--store', root]);
});

after(async () => {
  await stopAllServers();
  tmp.cleanup();
});

describe('packferry serve with tokens', () => {
  it('lists the tokens, never their secrets', async () => {
    const out = (await pf(['token', 'ls', '--store', root])).stdout;
    for (const [label, t] of Object.entries(tokens)) {
      assert.match(out, new RegExp(`^${t.id}  ${label}  `, 'm'));
      assert.equal(out.includes(t.token), false);
    }
  });

  it('refuses a token once it is revoked', async () => {
    const url = tokenUrl('priv', tokens.doomed.token);
    assert.ok((await lsRemote(none, url)).size > 0, 'works before');
    const out = await pf(['token', 'revoke', tokens.doomed.id, '--store', root]);
    assert.match(out.stdout, new RegExp(`revoked token ${tokens.doomed.id} of doomed`));
    revokedAt = Date.now();
    // The server re-reads the tokens at most every 5 s: checked again at the end of this file.
    assert.doesNotMatch((await pf(['token', 'ls', '--store', root])).stdout, new RegExp(tokens.doomed.id));
  });

  it('clones and pushes with a token as the password of the URL', async () => {
    const url = tokenUrl('priv', tokens.alice.token);
    const dir = fresh('alice');
    await gitOk(none, ['clone', '-q', url, dir]);
    const remote = await assertCloneMatches(none, url, dir);
    assert.deepEqual(sortedEntries(remote), sortedEntries(refMap(source.dir)));
    const tip = await commitFile(dir, 'token.txt', 'pushed with a token\n');
    await gitOk(none, ['push', '-q', 'origin', 'main', 'HEAD:refs/heads/by-token'], { cwd: dir });
    const after = await lsRemote(none, url);
    assert.equal(after.get('refs/heads/main'), tip);
    assert.equal(after.get('refs/heads/by-token'), tip);
    await gitOk(none, ['fetch', '-q', 'origin'], { cwd: dir });
    await assertCloneMatches(none, url, dir);
    // The token alone decides; the user name in the URL does not matter.
    assert.deepEqual(sortedEntries(await lsRemote(none, tokenUrl('priv', tokens.alice.token, 'somebody-else'))), sortedEntries(after));
  });

  it('clones and pushes with Authorization: Bearer (http.extraHeader)', async () => {
    const bearer = bearerClient(tokens.alice.token);
    const url = `${server.url}/priv.git`;
    const dir = fresh('bearer');
    await gitOk(bearer, ['clone', '-q', url, dir]);
    await assertCloneMatches(bearer, url, dir);
    const tip = await commitFile(dir, 'bearer.txt', 'pushed with a bearer token\n');
    await gitOk(bearer, ['push', '-q', 'origin', 'HEAD:refs/heads/by-bearer'], { cwd: dir });
    assert.equal((await lsRemote(bearer, url)).get('refs/heads/by-bearer'), tip);
  });

  it('with tokens: shallow clone, fetch, partial clone, branch delete, force-push refused without admin rights, a refusing hook', async () => {
    const url = tokenUrl('ops', tokens.alice.token);
    const bossUrl = tokenUrl('ops', tokens.boss.token);
    const readerUrl = tokenUrl('ops', tokens.reader.token);
    // Shallow, then deepened by a fetch.
    const shallow = fresh('shallow');
    await gitOk(none, ['clone', '-q', '--depth', '1', readerUrl, shallow]);
    assert.equal(await gitOk(none, ['rev-list', '--count', 'HEAD'], { cwd: shallow }), '1');
    await gitOk(none, ['fetch', '-q', '--unshallow', 'origin'], { cwd: shallow });
    assert.equal(await gitOk(none, ['rev-list', '--count', 'HEAD'], { cwd: shallow }), await gitOk(none, ['rev-list', '--count', 'main'], { cwd: source.dir }));
    // Partial: blobs left out, fetched by the checkout.
    const partial = fresh('partial');
    await gitOk(none, ['clone', '-q', '--filter=blob:none', '--no-checkout', readerUrl, partial]);
    const missing = (await gitOk(none, ['rev-list', '--objects', '--all', '--missing=print'], { cwd: partial })).split('\n').filter((l) => l.startsWith('?'));
    assert.ok(missing.length > 10, `blobs are left out (${missing.length} missing)`);
    await gitOk(none, ['checkout', '-q', 'main'], { cwd: partial });
    assert.equal(await gitOk(none, ['status', '--porcelain'], { cwd: partial }), '');
    // A writer pushes a branch, fetches, deletes it.
    const work = fresh('ops');
    await gitOk(none, ['clone', '-q', url, work]);
    const tip = await commitFile(work, 'ops.txt', 'a branch to delete\n');
    await gitOk(none, ['push', '-q', 'origin', 'HEAD:refs/heads/short-lived'], { cwd: work });
    // (The clone was shallow, so single-branch: the new branch is fetched by name.)
    await gitOk(none, ['fetch', '-q', 'origin', 'refs/heads/short-lived:refs/remotes/origin/short-lived'], { cwd: shallow });
    assert.equal(await gitOk(none, ['rev-parse', 'origin/short-lived'], { cwd: shallow }), tip);
    await gitOk(none, ['push', '-q', 'origin', ':refs/heads/short-lived'], { cwd: work });
    assert.equal((await lsRemote(none, url)).has('refs/heads/short-lived'), false);
    // Rewriting main: refused to the writer where the repository denies it, allowed to an admin token.
    await pf(['repo', 'edit', 'ops', '--deny-non-fast-forwards', '--store', root]);
    await gitOk(none, ['reset', '-q', '--hard', 'origin/main~1'], { cwd: work });
    const rewritten = await commitFile(work, 'rewrite.txt', 'history rewritten\n');
    const before = await lsRemote(none, url);
    assert.match(await gitFails(none, ['push', '--force', 'origin', 'HEAD:main'], { cwd: work }), /! \[remote rejected\] HEAD -> main \(non-fast-forward\)/);
    assert.deepEqual(sortedEntries(await lsRemote(none, url)), sortedEntries(before));
    await gitOk(none, ['push', '-q', '--force', bossUrl, 'HEAD:main'], { cwd: work });
    assert.equal((await lsRemote(none, url)).get('refs/heads/main'), rewritten);
    // A pre-receive hook that refuses: its message reaches the client, nothing moves.
    const hook = join(tmp.path, 'refuse.sh');
    writeFileSync(hook, '#!/bin/sh\necho "pre-receive: closed for the night" >&2\nexit 1\n', { mode: 0o755 });
    await pf(['repo', 'edit', 'ops', '--hook', `pre-receive=${hook}`, '--store', root]);
    await commitFile(work, 'late.txt', 'too late\n');
    const refused = await gitFails(none, ['push', 'origin', 'HEAD:main'], { cwd: work });
    assert.match(refused, /^remote: pre-receive: closed for the night/m);
    assert.match(refused, /\(pre-receive hook declined\)/);
    assert.equal((await lsRemote(none, url)).get('refs/heads/main'), rewritten);
    await assertStoreVerifies(join(root, 'ops.git'));
  });

  it('does not let a read-only token push', async () => {
    const url = tokenUrl('priv', tokens.reader.token);
    const dir = fresh('reader');
    await gitOk(none, ['clone', '-q', url, dir]);
    const before = await lsRemote(none, url);
    await commitFile(dir, 'reader.txt', 'a reader tries\n');
    assert.match(await gitFails(none, ['push', 'origin', 'main'], { cwd: dir }), /not found/);
    const res = await rawRequest(server.url, '/priv.git/info/refs?service=git-receive-pack', { headers: { authorization: `Bearer ${tokens.reader.token}` } });
    assert.equal(res.status, 404);
    assert.deepEqual(sortedEntries(await lsRemote(none, url)), sortedEntries(before));
  });

  it('refuses an expired token and an unknown one', async () => {
    const expires = Date.parse(tokens.old.expires!);
    if (Date.now() <= expires) await sleep(expires - Date.now() + 50);
    assert.match((await pf(['token', 'ls', '--store', root])).stdout, new RegExp(`^${tokens.old.id}  old  .*expired`, 'm'));
    const unknown = `pft_${'A'.repeat(43)}`;
    for (const token of [tokens.old.token, unknown, 'not-a-token']) {
      const stderr = await gitFails(none, ['ls-remote', tokenUrl('priv', token)]);
      assert.match(stderr, /Authentication failed|not found/, stderr);
      const bearer = await runGit(bearerClient(token), ['ls-remote', `${server.url}/priv.git`]);
      assert.notEqual(bearer.code, 0);
      assert.equal(bearer.stdout, '', 'no ref is shown');
    }
  });
});

describe('public and private repositories', () => {
  it('lets anyone clone a repository made public with repo edit --public, but not push to it', async () => {
    const url = `${server.url}/pub.git`;
    const dir = fresh('anon');
    await gitOk(none, ['clone', '-q', url, dir]);
    const remote = await assertCloneMatches(none, url, dir);
    assert.deepEqual(sortedEntries(remote), sortedEntries(refMap(source.dir)));
    const head = await rawRequest(server.url, '/pub.git/HEAD');
    assert.equal(head.status, 200, 'dumb HTTP reads too');
    assert.equal(head.body.toString(), 'ref: refs/heads/main\n');
    await commitFile(dir, 'anon.txt', 'anonymous push\n');
    await gitFails(none, ['push', 'origin', 'main'], { cwd: dir });
    assert.deepEqual(sortedEntries(await lsRemote(none, url)), sortedEntries(remote));
  });

  it('lets anyone clone a repository created --public once a writer has pushed to it', async () => {
    const url = `${server.url}/pub2.git`;
    assert.equal((await lsRemote(none, url)).size, 0, 'empty, and readable anonymously');
    await gitOk(none, ['push', '-q', tokenUrl('pub2', tokens.alice.token), 'refs/heads/main:refs/heads/main'], { cwd: source.dir });
    const dir = fresh('anon2');
    await gitOk(none, ['clone', '-q', url, dir]);
    await assertCloneMatches(none, url, dir);
    assert.equal(await gitOk(none, ['rev-parse', 'HEAD'], { cwd: dir }), source.head);
    await assertStoreVerifies(join(root, 'pub2.git'));
  });

  it('answers an anonymous client on a private repository exactly as on a missing one (401, to let git ask)', async () => {
    const priv = await rawRequest(server.url, '/priv.git/info/refs?service=git-upload-pack');
    const missing = await rawRequest(server.url, '/no-such-repository.git/info/refs?service=git-upload-pack');
    assert.equal(priv.status, 401);
    assert.match(String(priv.headers['www-authenticate']), /^Basic realm=/);
    assert.equal(missing.status, priv.status);
    assert.deepEqual(priv.body, missing.body);
    assert.equal(missing.headers['www-authenticate'], priv.headers['www-authenticate']);
    assert.equal(missing.headers['content-type'], priv.headers['content-type']);
    for (const path of ['/priv.git/HEAD', '/priv.git/info/refs?service=git-receive-pack']) assert.equal((await rawRequest(server.url, path)).status, 401, path);

    const privClone = await gitFails(none, ['clone', `${server.url}/priv.git`, fresh('no')]);
    const missingClone = await gitFails(none, ['clone', `${server.url}/no-such-repository.git`, fresh('no')]);
    const normalise = (s: string) => s.replace(/\/tmp\/\S+/g, 'DIR').replace(/priv|no-such-repository/g, 'NAME');
    assert.equal(normalise(privClone), normalise(missingClone));
    assert.match(privClone, /could not read Username/);
  });

  it('makes a public repository private again (repo edit --private)', async () => {
    await pf(['repo', 'edit', 'pub', '--private', '--store', root]);
    try {
      assert.equal((await rawRequest(server.url, '/pub.git/info/refs?service=git-upload-pack')).status, 401);
      await gitFails(none, ['ls-remote', `${server.url}/pub.git`]);
      assert.ok((await lsRemote(none, tokenUrl('pub', tokens.reader.token))).size > 0);
    } finally {
      await pf(['repo', 'edit', 'pub', '--public', '--store', root]);
    }
    assert.ok((await lsRemote(none, `${server.url}/pub.git`)).size > 0);
  });

  it('no longer accepts the revoked token (5 s after the revocation at most)', async () => {
    assert.ok(revokedAt > 0);
    const wait = revokedAt + 5200 - Date.now();
    if (wait > 0) await sleep(wait);
    const stderr = await gitFails(none, ['ls-remote', tokenUrl('priv', tokens.doomed.token)]);
    assert.match(stderr, /Authentication failed/);
    const res = await rawRequest(server.url, '/priv.git/info/refs?service=git-upload-pack', { headers: { authorization: `Bearer ${tokens.doomed.token}` } });
    assert.equal(res.status, 401);
    await assertStoreVerifies(join(root, 'priv.git'));
  });
});

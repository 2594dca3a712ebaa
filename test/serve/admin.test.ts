// The admin API of `packferry serve` through `packferry repo ... --server`
// (issue 5, scenario 6), with an admin client certificate and with an admin
// token: create private and public repositories, list, show, edit (default
// branch: HEAD moves for new clones; public; hooks added and removed),
// delete; other users get "not found" for what they may not administer;
// /healthz; /metrics counting requests and pushes after real traffic.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../support/git.js';
import { makeSource, packferry, refMap, type CliResult } from '../support/mirror-fixtures.js';
import type { RepoSummary } from '../support/repogen.js';
import {
  anonymousClient,
  assertCloneMatches,
  assertStoreVerifies,
  certClient,
  gitFails,
  gitOk,
  lsRemote,
  makeCliPki,
  pf,
  rawRequest,
  remoteHead,
  sortedEntries,
  startServe,
  stopAllServers,
  type CliPki,
  type GitClient,
  type ServeProcess,
} from '../support/serve-fixtures.js';

const tmp = tempDir('packferry-serve-admin-');
const root = join(tmp.path, 'root');
const none = anonymousClient();
let pki: CliPki;
let server: ServeProcess;
let source: RepoSummary;
let adminToken: string;
let admin: GitClient;
let counter = 0;

function fresh(label: string): string {
  return join(tmp.path, `${label}-${++counter}`);
}

/** `packferry repo ARGS --server URL` with the credentials of `who`. */
function repo(who: 'admin-cert' | 'admin-token' | 'writer' | 'nobody' | 'anonymous', args: string[]): Promise<CliResult> {
  const creds: Record<typeof who, string[]> = {
    'admin-cert': ['--cert', pki.user('admin').cert, '--key', pki.user('admin').key, '--ca', pki.caFile],
    'admin-token': ['--token', adminToken, '--ca', pki.caFile],
    writer: ['--cert', pki.user('writer').cert, '--key', pki.user('writer').key, '--ca', pki.caFile],
    nobody: ['--cert', pki.user('nobody').cert, '--key', pki.user('nobody').key, '--ca', pki.caFile],
    anonymous: ['--ca', pki.caFile],
  };
  return packferry(['repo', ...args, '--server', server.url, ...creds[who]], { env: { PACKFERRY_TOKEN: '' } });
}

async function repoOk(who: Parameters<typeof repo>[0], args: string[]): Promise<string> {
  const r = await repo(who, args);
  assert.equal(r.code, 0, `repo ${args.join(' ')} as ${who} failed (exit ${r.code}):\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

async function repoNotFound(who: Parameters<typeof repo>[0], args: string[]): Promise<void> {
  const r = await repo(who, args);
  assert.equal(r.code, 3, `repo ${args.join(' ')} as ${who}: exit ${r.code}\n${r.stdout}${r.stderr}`);
  assert.match(r.stderr, /not found, or not allowed/);
}

interface RepoJson {
  name: string;
  public: boolean;
  head: string;
  description?: string;
  refCount: number;
  refs?: { name: string; oid: string }[];
}

async function listed(who: Parameters<typeof repo>[0]): Promise<string[]> {
  const out = JSON.parse(await repoOk(who, ['ls', '--json'])) as { repositories: RepoJson[] };
  return out.repositories.map((r) => r.name).sort();
}

/** Parses one metric's samples from Prometheus text: label set -> value. */
function samples(text: string, metric: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = new RegExp(`^${metric}(\\{[^}]*\\})? (\\S+)$`).exec(line);
    if (m) out.set(m[1] ?? '', Number(m[2]));
  }
  return out;
}

function sum(m: Map<string, number>, labels: string[]): number {
  let total = 0;
  for (const [k, v] of m) if (labels.every((l) => k.includes(l))) total += v;
  return total;
}

before(async () => {
  [pki, source] = await Promise.all([
    makeCliPki(join(tmp.path, 'ca'), { admin: ['--admin'], writer: ['--read', '--write'], nobody: [] }),
    makeSource(join(tmp.path, 'source.git'), 19),
  ]);
  await pf(['repo', 'create', 'seed', '--store', root]);
  adminToken = (JSON.parse((await pf(['token', 'create', 'ops', '--admin', '--store', root, '--json'])).stdout) as { token: string }).token;
  server = await startServe(['--store', root, '--tls-cert', pki.node.cert, '--tls-key', pki.node.key, '--client-ca', pki.caFile]);
  admin = certClient(pki.caFile, pki.user('admin'));
});

after(async () => {
  await stopAllServers();
  tmp.cleanup();
});

describe('packferry repo --server (the admin API)', () => {
  it('creates a private repository with a certificate and a public one with a token', async () => {
    const [made, createdJson] = await Promise.all([
      repoOk('admin-cert', ['create', 'team/private', '--description', 'secret things']),
      repoOk('admin-token', ['create', 'open.git', '--public', '--json']),
    ]);
    assert.match(made, /^created team\/private$/m);
    const created = JSON.parse(createdJson) as { repository: RepoJson };
    assert.equal(created.repository.name, 'open');
    assert.equal(created.repository.public, true);
    assert.equal(created.repository.head, 'refs/heads/main');
    const [again, list, shownJson] = await Promise.all([
      repo('admin-token', ['create', 'open']),
      listed('admin-cert'),
      repoOk('admin-token', ['show', 'team/private', '--json']),
    ]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already exists/);
    assert.deepEqual(list, ['open', 'seed', 'team/private']);
    const shown = JSON.parse(shownJson) as { repository: RepoJson };
    assert.equal(shown.repository.public, false);
    assert.equal(shown.repository.description, 'secret things');
    assert.equal(existsSync(join(root, 'team', 'private.git')), true);
  });

  it('serves what is pushed into a created repository; the default branch moves HEAD for new clones', async () => {
    const url = `${server.url}/team/private.git`;
    await gitOk(admin, ['push', '-q', url, 'refs/heads/*:refs/heads/*', 'refs/tags/*:refs/tags/*'], { cwd: source.dir });
    const dir = fresh('clone');
    await gitOk(admin, ['clone', '-q', url, dir]);
    const remote = await assertCloneMatches(admin, url, dir);
    assert.deepEqual(sortedEntries(remote), sortedEntries(refMap(source.dir)));
    assert.equal(await gitOk(none, ['symbolic-ref', 'HEAD'], { cwd: dir }), 'refs/heads/main');

    // The non-ASCII branch: any name a push can make can be the default.
    const other = source.branches.find((b) => [...b].some((c) => c.charCodeAt(0) > 0x7f))!;
    const bad = await repo('admin-cert', ['edit', 'team/private', '--default-branch', 'a..b']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /invalid default branch "a\.\.b"/);
    const edited = JSON.parse(await repoOk('admin-cert', ['edit', 'team/private', '--default-branch', other, '--json'])) as { repository: RepoJson };
    assert.equal(edited.repository.head, `refs/heads/${other}`);
    assert.equal(await remoteHead(admin, url), `refs/heads/${other}`);
    const second = fresh('clone');
    await gitOk(admin, ['clone', '-q', url, second]);
    assert.equal(await gitOk(none, ['symbolic-ref', 'HEAD'], { cwd: second }), `refs/heads/${other}`);
    assert.equal(await gitOk(none, ['rev-parse', 'HEAD'], { cwd: second }), source.refs[`refs/heads/${other}`]);
    await assertCloneMatches(admin, url, second);
    await repoOk('admin-token', ['edit', 'team/private', '--default-branch', 'main']);
    assert.equal(await remoteHead(admin, url), 'refs/heads/main');
    await assertStoreVerifies(join(root, 'team', 'private.git'));
  });

  it('adds and removes hooks through the server', async () => {
    const url = `${server.url}/team/private.git`;
    const hook = join(tmp.path, 'deny.sh');
    writeFileSync(hook, '#!/bin/sh\necho "denied by the admin hook"\nexit 1\n', { mode: 0o755 });
    await repoOk('admin-cert', ['edit', 'team/private', '--hook', `pre-receive=${hook}`]);
    const hookGet = await rawRequest(server.url, '/api/v1/repos/team/private/hooks/pre-receive', { ca: pki.caFile, cert: pki.user('admin') });
    assert.equal(hookGet.status, 200);
    assert.equal(hookGet.body.toString(), '#!/bin/sh\necho "denied by the admin hook"\nexit 1\n');
    const before = await lsRemote(admin, url);
    const stderr = await gitFails(admin, ['push', url, 'refs/heads/main:refs/heads/hooked'], { cwd: source.dir });
    assert.match(stderr, /^remote: denied by the admin hook/m);
    assert.deepEqual(sortedEntries(await lsRemote(admin, url)), sortedEntries(before));

    await repoOk('admin-token', ['edit', 'team/private', '--remove-hook', 'pre-receive']);
    assert.equal((await rawRequest(server.url, '/api/v1/repos/team/private/hooks/pre-receive', { ca: pki.caFile, cert: pki.user('admin') })).status, 404);
    await gitOk(admin, ['push', '-q', url, 'refs/heads/main:refs/heads/hooked'], { cwd: source.dir });
    assert.equal((await lsRemote(admin, url)).get('refs/heads/hooked'), source.head);
    const unknown = await repo('admin-cert', ['edit', 'team/private', '--hook', `pre-commit=${hook}`]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /unknown hook "pre-commit"/);
  });

  it('makes a private repository public and back (repo edit --public/--private)', async () => {
    const url = `${server.url}/team/private.git`;
    const anonymous = anonymousClient(pki.caFile);
    await gitFails(anonymous, ['ls-remote', url]);
    await repoOk('admin-cert', ['edit', 'team/private', '--public']);
    assert.deepEqual(sortedEntries(await lsRemote(anonymous, url)), sortedEntries(await lsRemote(admin, url)));
    await repoOk('admin-cert', ['edit', 'team/private', '--private']);
    await gitFails(anonymous, ['ls-remote', url]);
  });

  it('answers users without admin rights "not found", and lists only what they may read', async () => {
    const hook = join(tmp.path, 'deny.sh');
    // The command for a few cases (in parallel: each is a process), the API itself for all of them.
    await Promise.all([
      repoNotFound('writer', ['create', 'mine']),
      repoNotFound('writer', ['edit', 'team/private', '--public']),
      repoNotFound('writer', ['rm', 'team/private']),
      repoNotFound('nobody', ['edit', 'team/private', '--hook', `pre-receive=${hook}`]),
      repoNotFound('anonymous', ['create', 'mine']),
      repoNotFound('nobody', ['show', 'team/private']),
    ]);
    const as = {
      writer: { ca: pki.caFile, cert: pki.user('writer') },
      nobody: { ca: pki.caFile, cert: pki.user('nobody') },
      anonymous: { ca: pki.caFile },
    };
    const json = { 'content-type': 'application/json' };
    for (const [who, creds] of Object.entries(as)) {
      const calls: [string, string, string?][] = [
        ['POST', '/api/v1/repos', JSON.stringify({ name: 'mine' })],
        ['PATCH', '/api/v1/repos/team/private', JSON.stringify({ public: true })],
        ['DELETE', '/api/v1/repos/team/private'],
        ['PUT', '/api/v1/repos/team/private/hooks/pre-receive', '#!/bin/sh\nexit 0\n'],
        ['GET', '/api/v1/repos/team/private/hooks/pre-receive'],
        ['DELETE', '/api/v1/repos/does-not-exist'],
        ['PATCH', '/api/v1/repos/does-not-exist', '{}'],
        ['GET', '/api/v1/status'],
        ...(who === 'writer' ? [] : ([['GET', '/api/v1/repos/team/private']] as [string, string][])),
      ];
      for (const [method, path, body] of calls) {
        const res = await rawRequest(server.url, path, { ...creds, method, body, headers: body ? json : {} });
        // Anonymous requests get the token challenge (tokens are enabled), like a missing repository.
        assert.equal(res.status, who === 'anonymous' ? 401 : 404, `${who} ${method} ${path}: ${res.status} ${res.body.toString()}`);
      }
    }
    const [writerShow, writerList, nobodyList, anonymousList] = await Promise.all([
      repoOk('writer', ['show', 'team/private', '--json']),
      listed('writer'),
      listed('nobody'),
      listed('anonymous'),
    ]);
    assert.equal((JSON.parse(writerShow) as { repository: RepoJson }).repository.name, 'team/private');
    assert.deepEqual(writerList, ['open', 'seed', 'team/private']);
    assert.deepEqual(nobodyList, ['open']);
    assert.deepEqual(anonymousList, ['open']);
    const adminStatus = await rawRequest(server.url, '/api/v1/status', { ca: pki.caFile, cert: pki.user('admin') });
    assert.equal(adminStatus.status, 200);
    assert.equal((JSON.parse(adminStatus.body.toString()) as { repositories: number }).repositories, 3);
    assert.equal(existsSync(join(root, 'mine.git')), false);
    const after = (JSON.parse(await repoOk('admin-cert', ['show', 'team/private', '--json'])) as { repository: RepoJson }).repository;
    assert.equal(after.public, false, 'nothing was changed');
    assert.equal((await rawRequest(server.url, '/api/v1/repos/team/private/hooks/pre-receive', { ca: pki.caFile, cert: pki.user('admin') })).status, 404, 'no hook was set');
  });

  it('deletes a repository: it is gone for git, the API and the store', async () => {
    const url = `${server.url}/open.git`;
    await gitOk(admin, ['push', '-q', url, 'refs/heads/main:refs/heads/main'], { cwd: source.dir });
    assert.equal((await lsRemote(admin, url)).get('refs/heads/main'), source.head);
    assert.match(await repoOk('admin-token', ['rm', 'open']), /^removed open$/m);
    assert.match(await gitFails(admin, ['ls-remote', url]), /not found/);
    await repoNotFound('admin-cert', ['show', 'open']);
    await repoNotFound('admin-cert', ['rm', 'open']);
    assert.deepEqual(await listed('admin-cert'), ['seed', 'team/private']);
    assert.equal(existsSync(join(root, 'open.git')), false);
  });

  it('answers /healthz, and /metrics counts requests and pushes', async () => {
    const health = await rawRequest(server.url, '/healthz', { ca: pki.caFile });
    assert.equal(health.status, 200);
    assert.equal(health.body.toString(), 'ok\n');
    const metrics = await rawRequest(server.url, '/metrics', { ca: pki.caFile });
    assert.equal(metrics.status, 200);
    assert.match(String(metrics.headers['content-type']), /^text\/plain/);
    const text = metrics.body.toString();
    assert.match(text, /^# TYPE packferry_http_requests_total counter$/m);
    const requests = samples(text, 'packferry_http_requests_total');
    assert.ok(sum(requests, ['route="git-upload-pack"', 'status="200"']) >= 3, 'clones and fetches');
    assert.equal(sum(requests, ['route="git-receive-pack"', 'status="200"']), 4, 'pushes');
    assert.ok(sum(requests, ['route="admin"', 'method="POST"']) >= 2, 'repository creations');
    assert.ok(sum(requests, ['status="404"']) >= 10, 'refusals');
    assert.ok(sum(requests, ['route="healthz"']) >= 1);
    // Exactly this file's pushes: every ref of the source, "hooked" refused by the hook then
    // accepted, main into "open".
    const pushes = samples(text, 'packferry_pushes_total');
    assert.deepEqual(sortedEntries(pushes), [
      ['{result="ok"}', 3],
      ['{result="refused"}', 1],
    ]);
    const updates = samples(text, 'packferry_ref_updates_total');
    assert.deepEqual(sortedEntries(updates), [
      ['{result="ok"}', Object.keys(source.refs).length + 2],
      ['{result="refused"}', 1],
    ]);
    assert.ok(samples(text, 'packferry_http_request_duration_seconds_count').size > 0);
    assert.ok(sum(samples(text, 'packferry_http_received_bytes_total'), ['route="git-receive-pack"']) > 0);
    assert.ok(sum(samples(text, 'packferry_http_sent_bytes_total'), ['route="git-upload-pack"']) > 0);
  });
});

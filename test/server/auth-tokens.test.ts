// Access tokens (src/server/auth/tokens.ts) over a real directory BlobStore,
// the Authorization header parser (authenticate.ts), and the `packferry
// token` command as a user runs it.
import { after, describe, mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ErrorCode, isPackferryError } from '../../src/core/errors.js';
import { main } from '../../src/cli/main.js';
import { parseAuthorization, tokenOf } from '../../src/server/auth/authenticate.js';
import { TOKENS_KEY, TokenStore } from '../../src/server/auth/tokens.js';
import { FsBlobStore } from '../../src/store/fs-backend.js';
import { tempDir } from '../support/git.js';

const tmp = tempDir('packferry-tokens-');
after(() => tmp.cleanup());
let n = 0;
const freshRoot = () => {
  const dir = join(tmp.path, `root${n++}`);
  mkdirSync(dir);
  return dir;
};

describe('TokenStore', () => {
  test('create: a pft_ token of 32 random bytes, stored only as its SHA-256', async () => {
    const dir = freshRoot();
    const store = new TokenStore(new FsBlobStore(dir));
    const { token, info } = await store.create({ user: 'ci', rights: { read: true, repos: ['team/*'] } });
    assert.match(token, /^pft_[A-Za-z0-9_-]{43}$/);
    assert.equal(Buffer.from(token.slice(4), 'base64url').length, 32);
    assert.match(info.id, /^[0-9a-f]{12}$/);
    assert.equal(info.user, 'ci');
    assert.equal(info.expires, undefined);
    const file = readFileSync(join(dir, ...TOKENS_KEY.split('/')), 'utf8');
    assert.ok(!file.includes(token.slice(4)), 'the secret is not in the file');
    const doc = JSON.parse(file) as { version: number; tokens: { sha256: string; user: string }[] };
    assert.equal(doc.version, 1);
    assert.equal(doc.tokens[0].user, 'ci');
    const { createHash } = await import('node:crypto');
    assert.equal(doc.tokens[0].sha256, createHash('sha256').update(token).digest('hex'));
  });

  test('verify: the token gives its user and rights; unknown, malformed and revoked tokens do not', async () => {
    const store = new TokenStore(new FsBlobStore(freshRoot()), { refreshMs: 0 });
    const a = await store.create({ user: 'alice', rights: { read: true, write: true } });
    const b = await store.create({ user: 'bob', rights: { admin: true } });
    const va = await store.verify(a.token);
    assert.ok(va.ok);
    assert.equal(va.info.user, 'alice');
    assert.equal(va.info.rights.write, true);
    const vb = await store.verify(b.token);
    assert.ok(vb.ok && vb.info.rights.admin);
    const flipped = a.token.slice(0, -1) + (a.token.endsWith('A') ? 'B' : 'A');
    assert.deepEqual(await store.verify(flipped), { ok: false, reason: 'unknown' });
    assert.deepEqual(await store.verify('pft_x'), { ok: false, reason: 'malformed' });
    assert.deepEqual(await store.verify(''), { ok: false, reason: 'malformed' });
    assert.deepEqual((await store.list()).map((t) => t.user), ['alice', 'bob']);
    assert.equal((await store.revoke(a.info.id)).user, 'alice');
    assert.deepEqual(await store.verify(a.token), { ok: false, reason: 'unknown' });
    assert.ok((await store.verify(b.token)).ok, 'the other token still works');
    await assert.rejects(store.revoke(a.info.id), (e) => isPackferryError(e, ErrorCode.NotFound));
  });

  test('expiry: a token stops working at its expiry time; prune removes it', async () => {
    let now = new Date('2030-01-01T00:00:00Z');
    const store = new TokenStore(new FsBlobStore(freshRoot()), { now: () => now, refreshMs: 0 });
    const t = await store.create({ user: 'temp', rights: { read: true }, expiresInDays: 1 });
    const forever = await store.create({ user: 'perm', rights: { read: true } });
    assert.equal(t.info.expires?.toISOString(), '2030-01-02T00:00:00.000Z');
    assert.ok((await store.verify(t.token)).ok);
    now = new Date('2030-01-02T00:00:01Z');
    assert.deepEqual(await store.verify(t.token), { ok: false, reason: 'expired' });
    assert.ok((await store.verify(forever.token)).ok);
    assert.equal(await store.prune(), 1);
    assert.deepEqual((await store.list()).map((x) => x.user), ['perm']);
    await assert.rejects(store.create({ user: 'x', rights: {}, expiresInDays: 0 }), (e) => isPackferryError(e, ErrorCode.Usage));
    await assert.rejects(store.create({ user: '../x', rights: {} }), (e) => isPackferryError(e, ErrorCode.Usage));
  });

  test('a running server sees a revocation made elsewhere once its cache is older than refreshMs', async () => {
    const dir = freshRoot();
    const server = new TokenStore(new FsBlobStore(dir), { refreshMs: 60_000 });
    const admin = new TokenStore(new FsBlobStore(dir));
    const { token, info } = await admin.create({ user: 'u', rights: { read: true } });
    assert.ok((await server.verify(token)).ok);
    await admin.revoke(info.id);
    assert.ok((await server.verify(token)).ok, 'cached within refreshMs');
    server.invalidate();
    assert.equal((await server.verify(token)).ok, false);
    const eager = new TokenStore(new FsBlobStore(dir), { refreshMs: 0 });
    const second = await admin.create({ user: 'v', rights: {} });
    assert.ok((await eager.verify(second.token)).ok);
    await admin.revoke(second.info.id);
    assert.equal((await eager.verify(second.token)).ok, false, 'refreshMs 0 reads every time');
  });

  test('a corrupt tokens file is an error, never an empty (or permissive) token list', async () => {
    const dir = freshRoot();
    mkdirSync(join(dir, 'packferry'));
    const file = join(dir, ...TOKENS_KEY.split('/'));
    const store = new TokenStore(new FsBlobStore(dir), { refreshMs: 0 });
    for (const bad of ['{', '{"version":2,"tokens":[]}', '{"version":1,"tokens":[{"id":"x"}]}', '{"version":1,"tokens":[{"id":"0123456789ab","user":"u","sha256":"00","rights":{},"created":"2020-01-01T00:00:00Z"}]}']) {
      writeFileSync(file, bad);
      await assert.rejects(store.verify(`pft_${'A'.repeat(43)}`), (e) => isPackferryError(e, ErrorCode.InvalidObject), bad);
    }
  });

  test('tokens are unique; concurrent changes through one store are all kept', async () => {
    const store = new TokenStore(new FsBlobStore(freshRoot()));
    const made = await Promise.all(Array.from({ length: 5 }, (_, i) => store.create({ user: `u${i}`, rights: {} })));
    assert.equal(new Set(made.map((m) => m.token)).size, 5);
    assert.equal(new Set(made.map((m) => m.info.id)).size, 5);
    await Promise.all([store.revoke(made[0].info.id), store.create({ user: 'late', rights: {} }), store.revoke(made[1].info.id)]);
    assert.deepEqual((await store.list()).map((t) => t.user).sort(), ['late', 'u2', 'u3', 'u4']);
  });
});

describe('Authorization header', () => {
  test('Bearer, Basic (token as password or as user name), and what is malformed', () => {
    const basic = (s: string) => `Basic ${Buffer.from(s).toString('base64')}`;
    assert.deepEqual(parseAuthorization(undefined), { kind: 'none' });
    assert.deepEqual(parseAuthorization('Bearer pft_abc'), { kind: 'bearer', token: 'pft_abc' });
    assert.deepEqual(parseAuthorization('bearer  pft_abc'), { kind: 'bearer', token: 'pft_abc' });
    assert.deepEqual(parseAuthorization(basic('me:pa:ss')), { kind: 'basic', user: 'me', password: 'pa:ss' });
    const tok = `pft_${'a'.repeat(43)}`;
    assert.equal(tokenOf(parseAuthorization(basic(`x:${tok}`))), tok);
    assert.equal(tokenOf(parseAuthorization(basic(`${tok}:`))), tok);
    assert.equal(tokenOf(parseAuthorization(basic('user:password'))), 'password');
    assert.equal(parseAuthorization('Basic !!!').kind, 'malformed');
    assert.equal(parseAuthorization(basic('nocolon')).kind, 'malformed');
    assert.equal(parseAuthorization('Bearer').kind, 'malformed');
    assert.equal(parseAuthorization(['Bearer a', 'Bearer b']).kind, 'malformed');
    assert.equal(parseAuthorization(`Bearer ${'x'.repeat(5000)}`).kind, 'malformed');
    assert.equal(parseAuthorization('Negotiate abc').kind, 'malformed');
  });
});

/** The command in this process (for exit codes of usage errors: no process start), output captured. */
async function packferryHere(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = mock.method(console, 'log', (...a: unknown[]) => void out.push(a.join(' ')));
  const error = mock.method(console, 'error', (...a: unknown[]) => void err.push(a.join(' ')));
  try {
    const code = await main(args);
    return { code, stdout: out.join('\n'), stderr: err.join('\n') };
  } finally {
    log.mock.restore();
    error.mock.restore();
  }
}

describe('packferry token', () => {
  const bin = resolve('bin/packferry.js');
  const packferry = (args: string[]) => {
    const r = spawnSync(process.execPath, [bin, ...args]);
    return { code: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
  };

  test('create prints the token once; ls lists it without the secret; revoke removes it', async () => {
    const root = freshRoot();
    const created = packferry(['token', 'create', 'deploy', '--store', root, '--write', '--repo', 'apps/*', '--expires', '30', '--json']);
    assert.equal(created.code, 0, created.stderr);
    const c = JSON.parse(created.stdout) as { token: string; id: string; user: string; rights: { write: boolean; read: boolean; repos: string[] }; expires: string };
    assert.match(c.token, /^pft_/);
    assert.deepEqual([c.user, c.rights.write, c.rights.read, c.rights.repos], ['deploy', true, false, ['apps/*']]);
    assert.ok(Date.parse(c.expires) > Date.now() + 29 * 86_400_000);
    const verified = await new TokenStore(new FsBlobStore(root)).verify(c.token);
    assert.ok(verified.ok && verified.info.id === c.id, 'the server accepts what the command made');

    const human = packferry(['token', 'create', 'reader', '--store', root, '--read']);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout.trim(), /^pft_[A-Za-z0-9_-]{43}$/, 'stdout is the token alone');
    assert.match(human.stderr, /shown only this once/);

    const ls = packferry(['token', 'ls', '--store', root]);
    assert.equal(ls.code, 0);
    assert.match(ls.stdout, new RegExp(`^${c.id}  deploy  write; regions \\*; repos apps/\\*`, 'm'));
    assert.ok(!ls.stdout.includes(c.token.slice(4)));
    const revoked = packferry(['token', 'revoke', c.id, '--store', root]);
    assert.equal(revoked.code, 0);
    assert.match(revoked.stdout, /revoked token/);
    const lsJson = JSON.parse(packferry(['token', 'ls', '--store', root, '--json']).stdout) as { tokens: { user: string }[] };
    assert.deepEqual(lsJson.tokens.map((t) => t.user), ['reader']);
    assert.equal(packferry(['token', 'revoke', c.id, '--store', root]).code, 3, 'no such token');
  });

  test('usage errors and a missing store', async () => {
    assert.equal((await packferryHere(['token'])).code, 2);
    assert.equal((await packferryHere(['token', 'create', 'x'])).code, 2, 'no --store');
    assert.equal((await packferryHere(['token', 'ls', '--store', tmp.path, '--read'])).code, 2, '--read is not an option of ls');
    assert.equal((await packferryHere(['token', 'create', 'x', '--store', tmp.path, '--expires', 'soon'])).code, 2);
    assert.equal((await packferryHere(['token', 'ls', '--store', join(tmp.path, 'no-such-dir')])).code, 3);
  });
});

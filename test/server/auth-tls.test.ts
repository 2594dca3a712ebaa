// Mutual TLS and authentication end to end (src/server/auth/tls.ts,
// authenticate.ts): a real Node https server built from tlsServerOptions,
// reached by the real `git` (over its libcurl) and by Node's https client,
// with certificates from packferry's CA. The server answers info/refs with an
// empty v0 advertisement, so `git ls-remote` succeeds, and records the
// identity each request authenticated as. Proves that git and curl accept
// our node certificate and present our client certificates, that the rights
// come through, and that certificates from another CA, expired ones, none,
// and bad tokens give no identity.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { ErrorCode, isPackferryError } from '../../src/core/errors.js';
import { authenticate } from '../../src/server/auth/authenticate.js';
import { authorize, denial } from '../../src/server/auth/authorize.js';
import { createCa, issueLeafCertificate, loadCa, writeCertificatePair } from '../../src/server/auth/ca.js';
import type { Identity } from '../../src/server/auth/identity.js';
import { readTlsServerOptions, tlsServerOptions } from '../../src/server/auth/tls.js';
import { TokenStore } from '../../src/server/auth/tokens.js';
import { FsBlobStore } from '../../src/store/fs-backend.js';
import { gitAsync, tempDir } from '../support/git.js';
import { makePki, type TestPki } from '../support/pki.js';

const tmp = tempDir('packferry-auth-tls-');
let pki: TestPki;
let server: Server;
let base: string;
let tokens: TokenStore;
/** Identities the server saw, in order. */
let seen: Identity[] = [];

/** An empty v0 upload-pack advertisement: the service line, a flush, no refs, a flush. */
const EMPTY_ADVERTISEMENT = '001e# service=git-upload-pack\n0000' + '0000';

before(async () => {
  pki = await makePki(join(tmp.path, 'ca'));
  tokens = new TokenStore(new FsBlobStore(join(tmp.path, 'root')), { refreshMs: 0 });
  const options = await readTlsServerOptions({ cert: pki.node.certFile, key: pki.node.keyFile, clientCa: pki.caFile });
  server = createServer(options, (req, res) => {
    void (async () => {
      const identity = await authenticate(req, { tokens });
      seen.push(identity);
      const url = new URL(req.url ?? '/', 'https://x');
      // /public/... is public; anything else is a private repository named by the path.
      const repo = url.pathname.replace(/^\//, '').replace(/\.git\/info\/refs$/, '').replace(/\/info\/refs$/, '');
      const settings = { public: repo.startsWith('public/') };
      if (!authorize(identity, 'read', repo, settings, { region: 'r1' })) {
        const d = denial(identity, { challenge: true });
        res.writeHead(d.status, d.headers).end(d.body);
        return;
      }
      if (url.pathname.endsWith('/info/refs')) {
        res.writeHead(200, { 'content-type': 'application/x-git-upload-pack-advertisement', 'cache-control': 'no-cache' }).end(EMPTY_ADVERTISEMENT);
      } else {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(identity));
      }
    })().catch((err: unknown) => res.writeHead(500).end(String(err)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  tmp.cleanup();
});

function lsRemote(url: string, config: string[] = []) {
  // GIT_SSL_CAINFO, when the environment sets it, wins over http.sslCAInfo: set both.
  return gitAsync(['-c', `http.sslCAInfo=${pki.caFile}`, ...config.flatMap((c) => ['-c', c]), 'ls-remote', url], { env: { GIT_SSL_CAINFO: pki.caFile } });
}

/** A request from Node's https client (which always sends the client certificate it is given). */
function get(path: string, options: { cert?: string; key?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}${path}`, { ca: pki.caPair.cert, cert: options.cert, key: options.key, headers: options.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('mutual TLS with git', () => {
  test('git ls-remote presents a packferry client certificate; the server reads user and rights', async () => {
    const alice = await pki.leaf('alice', { read: true, write: true, repos: ['team/*'], regions: ['r1'] });
    seen = [];
    const r = await lsRemote(`${base}/team/x.git`, [`http.sslCert=${alice.certFile}`, `http.sslKey=${alice.keyFile}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.toString(), '', 'an empty repository');
    const identity = seen.find((i) => i.kind === 'cert');
    assert.ok(identity && identity.kind === 'cert', `seen: ${JSON.stringify(seen)}`);
    assert.equal(identity.user, 'alice');
    assert.deepEqual([...identity.rights.repos], ['team/*']);
    assert.equal(identity.rights.read, true);
    assert.equal(identity.rights.write, true);
    assert.equal(identity.rights.admin, false);
  });

  test('outside the certificate\'s repository globs: "not found", exactly as a missing repository', async () => {
    const alice = await pki.leaf('alice2', { read: true, repos: ['team/*'] });
    const r = await lsRemote(`${base}/secret/x.git`, [`http.sslCert=${alice.certFile}`, `http.sslKey=${alice.keyFile}`]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /not found/i);
  });

  test('without a certificate git reads a public repository, and is challenged for a private one', async () => {
    seen = [];
    const ok = await lsRemote(`${base}/public/x.git`);
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(seen.map((i) => i.kind), ['anonymous']);
    const denied = await lsRemote(`${base}/team/x.git`);
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /Authentication failed|could not read Username|terminal prompts disabled/);
  });

  test('a certificate from another CA gives no identity', async () => {
    const other = await loadCa(await createCa('other'));
    const mallory = await issueLeafCertificate(other, { user: 'mallory', rights: { admin: true } });
    const files = await writeCertificatePair(join(tmp.path, 'other'), 'mallory', mallory);
    seen = [];
    const r = await lsRemote(`${base}/team/x.git`, [`http.sslCert=${files.certFile}`, `http.sslKey=${files.keyFile}`]);
    assert.notEqual(r.code, 0, 'no access to a private repository');
    assert.ok(seen.length > 0 && seen.every((i) => i.kind === 'anonymous'), JSON.stringify(seen));
    // Node's client sends it regardless of the server's CA list: OpenSSL refuses it, the reason is logged.
    const res = await get('/public/echo', { cert: mallory.cert, key: mallory.key });
    const identity = JSON.parse(res.body) as Identity;
    assert.equal(identity.kind, 'anonymous');
    assert.match((identity as { rejected?: string }).rejected ?? '', /client certificate not accepted/);
  });

  test('an expired certificate gives no identity, through git and through Node', async () => {
    const day = 86_400_000;
    const old = await pki.leaf('old', { admin: true }, { notBefore: new Date(Date.now() - 3 * day), notAfter: new Date(Date.now() - day) });
    seen = [];
    const r = await lsRemote(`${base}/team/x.git`, [`http.sslCert=${old.certFile}`, `http.sslKey=${old.keyFile}`]);
    assert.notEqual(r.code, 0);
    assert.ok(seen.every((i) => i.kind === 'anonymous'), JSON.stringify(seen));
    const res = await get('/public/echo', { cert: old.cert, key: old.key });
    const identity = JSON.parse(res.body) as Identity & { rejected?: string };
    assert.equal(identity.kind, 'anonymous');
    assert.match(identity.rejected ?? '', /expired/i);
  });

  test('a token as the password of an https URL: git answers the 401 challenge, the token decides', async () => {
    const { token } = await tokens.create({ user: 'ci', rights: { read: true, repos: ['team/*'] } });
    seen = [];
    const url = new URL(`${base}/team/x.git`);
    url.username = 'anyone';
    url.password = token;
    const r = await lsRemote(url.href);
    assert.equal(r.code, 0, r.stderr);
    const identity = seen.find((i) => i.kind === 'token');
    assert.ok(identity && identity.kind === 'token', JSON.stringify(seen));
    assert.equal(identity.user, 'ci');
    assert.equal(seen[0].kind, 'anonymous', 'the first request carries no credentials');
  });

  test('a bearer token through http.extraHeader', async () => {
    const { token, info } = await tokens.create({ user: 'bot', rights: { read: true } });
    seen = [];
    const r = await lsRemote(`${base}/team/y.git`, [`http.extraHeader=Authorization: Bearer ${token}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(seen.map((i) => (i.kind === 'token' ? i.tokenId : i.kind)), [info.id]);
  });
});

describe('identities over Node TLS', () => {
  test('a verified certificate wins over an Authorization header', async () => {
    const carol = await pki.leaf('carol', { read: true });
    const { token } = await tokens.create({ user: 'tok', rights: { read: true } });
    const res = await get('/public/echo', { cert: carol.cert, key: carol.key, headers: { authorization: `Bearer ${token}` } });
    const identity = JSON.parse(res.body) as Identity;
    assert.equal(identity.kind, 'cert');
    assert.equal((identity as { user: string }).user, 'carol');
  });

  test('a node certificate presented as a client gives a node identity with no user rights', async () => {
    const res = await get('/public/echo', { cert: pki.node.cert, key: pki.node.key });
    const identity = JSON.parse(res.body) as Identity;
    assert.deepEqual({ kind: identity.kind, ...(identity.kind === 'node' ? { region: identity.region, node: identity.node, cluster: identity.cluster } : {}) }, {
      kind: 'node',
      region: 'r1',
      node: 'n1',
      cluster: 'test',
    });
    assert.equal((await get('/team/x/echo', { cert: pki.node.cert, key: pki.node.key })).status, 404);
  });

  test('a certificate that expires during a keep-alive connection stops counting', async () => {
    const dave = await pki.leaf('dave', { read: true });
    const later = new Date(Date.now() + 400 * 86_400_000);
    const identities: Identity[] = [];
    const srv = createServer(tlsServerOptions({ cert: pki.node.cert, key: pki.node.key, clientCa: pki.caPair.cert }), (req, res) => {
      void Promise.all([authenticate(req), authenticate(req, { now: later })]).then((ids) => {
        identities.push(...ids);
        res.end('ok');
      });
    });
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    try {
      await new Promise<void>((resolve, reject) => {
        request(`https://127.0.0.1:${(srv.address() as AddressInfo).port}/`, { ca: pki.caPair.cert, cert: dave.cert, key: dave.key, agent: false }, (res) => {
          res.resume();
          res.on('end', resolve);
        })
          .on('error', reject)
          .end();
      });
    } finally {
      srv.closeAllConnections();
      await new Promise((resolve) => srv.close(resolve));
    }
    assert.equal(identities[0].kind, 'cert');
    assert.equal(identities[1].kind, 'anonymous');
    assert.match((identities[1] as { rejected?: string }).rejected ?? '', /expired/);
  });

  test('bad, unknown and revoked tokens give an anonymous identity with the reason', async () => {
    const { token, info } = await tokens.create({ user: 'gone', rights: { read: true } });
    const ask = async (authorization: string) => (JSON.parse((await get('/public/echo', { headers: { authorization } })).body) as { kind: string; rejected?: string });
    assert.equal((await ask(`Bearer ${token}`)).kind, 'token');
    await tokens.revoke(info.id);
    assert.deepEqual(await ask(`Bearer ${token}`), { kind: 'anonymous', rejected: 'token unknown' });
    assert.deepEqual(await ask('Bearer pft_short'), { kind: 'anonymous', rejected: 'token malformed' });
    assert.deepEqual(await ask('Digest foo'), { kind: 'anonymous', rejected: 'unsupported Authorization scheme "Digest"' });
    assert.equal((await ask(`Basic ${Buffer.from(`${token}:`).toString('base64')}`)).rejected, 'token unknown', 'token as user name, empty password');
  });
});

describe('TLS options', () => {
  test('requests client certificates only with a client CA; TLS 1.2 at least; no rejection at the handshake', () => {
    const withCa = tlsServerOptions({ cert: pki.node.cert, key: pki.node.key, clientCa: pki.caPair.cert });
    assert.equal(withCa.requestCert, true);
    assert.equal(withCa.rejectUnauthorized, false);
    assert.equal(withCa.minVersion, 'TLSv1.2');
    assert.equal(tlsServerOptions({ cert: pki.node.cert, key: pki.node.key }).requestCert, false);
  });

  test('a key that does not match, a client CA that is not a CA, and missing files are refused at startup', async () => {
    const alice = await pki.leaf('eve', { read: true });
    assert.throws(() => tlsServerOptions({ cert: pki.node.cert, key: alice.key }), (e) => isPackferryError(e, ErrorCode.Certificate));
    assert.throws(() => tlsServerOptions({ cert: pki.node.cert, key: pki.node.key, clientCa: alice.cert }), /not a CA/);
    await assert.rejects(readTlsServerOptions({ cert: join(tmp.path, 'nope.crt'), key: pki.node.keyFile }), (e) => isPackferryError(e, ErrorCode.NotFound));
  });
});

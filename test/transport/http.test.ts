// The smart HTTP transport against the real `git http-backend` (behind
// test/support/git-http-server.ts): advertisements in protocol v0 and v2,
// ls-refs and fetch through request() (the pack checked by
// `git index-pack`), a push through receive-pack (the ref checked with
// `git rev-parse`), credentials from the URL, a netrc file and a token,
// auth and not-found errors, retries on 429/503 and on connections dropped
// before the first byte (only where a repeat is safe), a drop in the middle
// of a body, redirects (later POSTs go to the new base; credentials never
// cross to another host), proxies from the environment, timeouts and
// cancellation.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { join } from 'node:path';
import { ErrorCode, PackferryError, isPackferryError } from '../../src/core/errors.js';
import {
  PktLineReader,
  delimPkt,
  demuxSideBand,
  encodePackets,
  flushPkt,
  lineText,
  pktLine,
  pktLineText,
  type Packet,
} from '../../src/protocol/index.js';
import { DEFAULT_USER_AGENT, HttpServiceSession, HttpTransport, type HttpRetryEvent, type HttpTransportOptions } from '../../src/transport/http.js';
import type { ServiceSession } from '../../src/transport/types.js';
import { git, gitBuffer, tempDir } from '../support/git.js';
import { startForwardProxy, startGitHttpServer, type ForwardProxy, type GitHttpServer, type RequestInfo } from '../support/git-http-server.js';
import { generateRepo } from '../support/repogen.js';

const tmp = tempDir('packferry-http-');
const root = join(tmp.path, 'root');
const repo = join(root, 'repo.git');
const pushRepo = join(root, 'push.git');
const work = join(tmp.path, 'work');

let server: GitHttpServer;
let authServer: GitHttpServer;
let proxy: ForwardProxy;
let httpsServer: GitHttpServer;
let certificate: Buffer;
const transports: HttpTransport[] = [];
const sessions: ServiceSession[] = [];

/** A transport with test defaults: no environment, no ~/.netrc, tiny retry delays. */
function transport(url: string, options: HttpTransportOptions = {}): HttpTransport {
  const t = new HttpTransport(url, { env: {}, netrc: false, retryBaseDelayMs: 2, retryMaxDelayMs: 20, ...options });
  transports.push(t);
  return t;
}

async function open(t: HttpTransport, service: 'git-upload-pack' | 'git-receive-pack', version: 0 | 2, signal?: AbortSignal): Promise<ServiceSession> {
  const session = await t.open(service, { protocolVersion: version, signal });
  sessions.push(session);
  return session;
}

const text = (p: Packet | undefined): string => {
  assert.ok(p !== undefined, 'expected a packet, got the end of the stream');
  assert.equal(p.type, 'data', `expected a data packet, got ${p.type}`);
  return lineText(p.data);
};

/** Reads data lines up to the next flush. */
async function linesToFlush(reader: PktLineReader): Promise<string[]> {
  const lines: string[] = [];
  for (;;) {
    const p = await reader.read();
    if (p.type === 'flush') return lines;
    lines.push(text(p));
  }
}

/** Expects `promise` to reject with a PackferryError of `code`; returns it. */
async function rejectsWith(promise: Promise<unknown>, code: ErrorCode): Promise<PackferryError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(isPackferryError(err, code), `expected ${code}, got ${isPackferryError(err) ? `${err.code}: ${err.message}` : String(err)}`);
    return err;
  }
  assert.fail(`expected ${code}, but it succeeded`);
}

const isPost = (service: string) => (r: RequestInfo): boolean => r.method === 'POST' && r.path.endsWith(`/${service}`);
const isGet = (r: RequestInfo): boolean => r.method === 'GET';

function lsRefsRequest(...prefixes: string[]): Buffer {
  return Buffer.concat([
    pktLineText('command=ls-refs'),
    pktLineText(`agent=${DEFAULT_USER_AGENT}`),
    delimPkt,
    pktLineText('symrefs'),
    pktLineText('peel'),
    ...prefixes.map((p) => pktLineText(`ref-prefix ${p}`)),
    flushPkt,
  ]);
}

function fetchRequest(wants: string[]): Buffer {
  return Buffer.concat([
    pktLineText('command=fetch'),
    delimPkt,
    pktLineText('ofs-delta'),
    pktLineText('no-progress'),
    ...wants.map((w) => pktLineText(`want ${w}`)),
    pktLineText('done'),
    flushPkt,
  ]);
}

/** Reads a v2 fetch response up to its pack and returns the pack bytes. */
async function readFetchResponse(reader: PktLineReader): Promise<Buffer> {
  assert.equal(text(await reader.read()), 'packfile');
  const chunks: Uint8Array[] = [];
  const demux = demuxSideBand(reader);
  for (;;) {
    const r = await demux.next();
    if (r.done) {
      assert.equal(r.value.type, 'flush');
      break;
    }
    chunks.push(Buffer.from(r.value));
  }
  return Buffer.concat(chunks);
}

/** Runs `git index-pack --stdin` on a pack in a fresh repository; returns the repository. */
function indexPack(pack: Buffer, name: string): string {
  const dir = join(tmp.path, name);
  git(['init', '-q', '--bare', dir]);
  const out = git(['index-pack', '--stdin', '--strict'], { cwd: dir, input: pack });
  assert.match(out, /^pack\t[0-9a-f]{40}$/);
  return dir;
}

function countRequests(s: GitHttpServer, from: number, match: (r: RequestInfo) => boolean): number {
  return s.requests.slice(from).filter(match).length;
}

/** A commit on top of `parent` made in the scratch clone, and a pack of what it adds (`git pack-objects`). */
function makeCommit(parent: string, message: string): { oid: string; pack: Buffer } {
  git(['-C', work, 'checkout', '-q', '--detach', parent]);
  writeFileSync(join(work, 'pushed.txt'), `${message}\n`);
  git(['-C', work, 'add', 'pushed.txt']);
  git(['-C', work, 'commit', '-q', '-m', message]);
  const oid = git(['-C', work, 'rev-parse', 'HEAD']);
  const pack = gitBuffer(['-C', work, 'pack-objects', '--stdout', '--revs', '-q'], { input: `${oid}\n^${parent}\n` });
  return { oid, pack };
}

before(async () => {
  await generateRepo(repo, { seed: 7, commits: 30, repack: true, largeFiles: 0 });
  git(['clone', '-q', '--bare', repo, pushRepo]);
  git(['clone', '-q', repo, work]);
  server = await startGitHttpServer({ projectRoot: root, prefixes: ['', '/new'] });
  authServer = await startGitHttpServer({
    projectRoot: root,
    prefixes: ['', '/new'],
    auth: { basic: [{ username: 'alice', password: 's3cret:with colon' }, { username: 'x-access-token', password: 'tok-123' }], bearer: ['bearer-456'] },
  });
  proxy = await startForwardProxy();
  // A self-signed certificate for 127.0.0.1.
  const key = join(tmp.path, 'key.pem');
  const cert = join(tmp.path, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  certificate = readFileSync(cert);
  httpsServer = await startGitHttpServer({ projectRoot: root, prefixes: ['', '/new'], tls: { key: readFileSync(key), cert: certificate } });
});

after(async () => {
  for (const s of sessions) await s.close();
  for (const t of transports) await t.close();
  await server?.close();
  await authServer?.close();
  await proxy?.close();
  await httpsServer?.close();
  tmp.cleanup();
});

describe('advertisement', () => {
  it('protocol v2: "# service" and its flush are skipped, the capability advertisement follows', async () => {
    const from = server.requests.length;
    const session = await open(transport(`${server.url}/repo.git`), 'git-upload-pack', 2);
    assert.equal(session.stateless, true);
    const lines = await linesToFlush(session.advertisement);
    assert.equal(lines[0], 'version 2');
    assert.ok(lines.includes('ls-refs=unborn'), lines.join('|'));
    assert.ok(lines.some((l) => l.startsWith('fetch=')), lines.join('|'));
    assert.equal(await session.advertisement.tryRead(), undefined, 'the advertisement ends after its flush');
    const [get] = server.requests.slice(from);
    assert.equal(get.url, '/repo.git/info/refs?service=git-upload-pack');
    assert.equal(get.gitProtocol, 'version=2');
    assert.ok(get.userAgent?.startsWith('git/'), get.userAgent);
    assert.equal(get.authorization, undefined);
  });

  it('protocol v0: the first ref line carries the capabilities, the refs match the repository', async () => {
    const from = server.requests.length;
    const session = await open(transport(`${server.url}/repo.git/`), 'git-upload-pack', 0);
    const first = await session.advertisement.read();
    assert.equal(first.type, 'data');
    const raw = Buffer.from(first.type === 'data' ? first.data : new Uint8Array());
    const nul = raw.indexOf(0);
    assert.ok(nul > 0, 'capabilities after a NUL');
    assert.equal(raw.subarray(0, nul).toString(), `${git(['rev-parse', 'HEAD'], { cwd: repo })} HEAD`);
    const caps = raw.subarray(nul + 1).toString().trim().split(' ');
    assert.ok(caps.includes('multi_ack_detailed') && caps.includes('side-band-64k'), caps.join(' '));
    const refs = (await linesToFlush(session.advertisement)).filter((l) => !l.endsWith('^{}'));
    const expected = git(['for-each-ref', '--format=%(objectname) %(refname)'], { cwd: repo }).split('\n');
    assert.deepEqual(refs.sort(), expected.sort());
    assert.equal(server.requests[from].gitProtocol, undefined, 'no Git-Protocol header for v0');
  });

  it('receive-pack advertisement (v0) lists the refs with report-status', async () => {
    const session = await open(transport(`${server.url}/push.git`), 'git-receive-pack', 0);
    const first = text(await session.advertisement.read());
    assert.match(first, /^[0-9a-f]{40} refs\/heads\/\S+\0.*report-status/);
    await session.close();
    await session.close(); // idempotent
  });

  it('tolerates servers that omit the "# service" line', async () => {
    const bodies = {
      v2: encodePackets([
        { type: 'data', data: Buffer.from('version 2\n') },
        { type: 'data', data: Buffer.from('ls-refs\n') },
        { type: 'flush' },
      ]),
      v0: Buffer.concat([pktLine(`${'a'.repeat(40)} refs/heads/main\0report-status\n`), flushPkt]),
    };
    const fake = http.createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-git-upload-pack-advertisement' });
      res.end(req.headers['git-protocol'] === 'version=2' ? bodies.v2 : bodies.v0);
    });
    fake.listen(0, '127.0.0.1');
    await once(fake, 'listening');
    try {
      const url = `http://127.0.0.1:${(fake.address() as AddressInfo).port}/r.git`;
      const v2 = await open(transport(url), 'git-upload-pack', 2);
      assert.deepEqual(await linesToFlush(v2.advertisement), ['version 2', 'ls-refs']);
      const v0 = await open(transport(url), 'git-upload-pack', 0);
      assert.equal(text(await v0.advertisement.read()), `${'a'.repeat(40)} refs/heads/main\0report-status`);
      await v2.close();
      await v0.close();
    } finally {
      fake.closeAllConnections();
      fake.close();
    }
  });

  it('a dumb server (text/plain info/refs) is ERR_PROTOCOL with a hint', async () => {
    const dumb = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`${'b'.repeat(40)}\trefs/heads/main\n`);
    });
    dumb.listen(0, '127.0.0.1');
    await once(dumb, 'listening');
    try {
      const err = await rejectsWith(
        transport(`http://127.0.0.1:${(dumb.address() as AddressInfo).port}/r.git`).open('git-upload-pack', { protocolVersion: 2 }),
        ErrorCode.Protocol,
      );
      assert.match(err.message, /not a Git smart HTTP server \(Content-Type text\/plain/);
      assert.match(err.hint ?? '', /dumb/);
    } finally {
      dumb.closeAllConnections();
      dumb.close();
    }
  });
});

describe('requests', () => {
  it('v2 ls-refs and fetch: the pack passes git index-pack', async () => {
    const from = server.requests.length;
    const session = await open(transport(`${server.url}/repo.git`), 'git-upload-pack', 2);
    await linesToFlush(session.advertisement);
    const lsRefs = await session.request(lsRefsRequest('refs/heads/'), { idempotent: true });
    const refs = await linesToFlush(lsRefs);
    const head = refs.find((l) => l.includes(' HEAD'));
    assert.equal(head, undefined, 'HEAD is not under refs/heads/');
    const expected = git(['for-each-ref', '--format=%(objectname) %(refname)', 'refs/heads/'], { cwd: repo }).split('\n');
    assert.deepEqual(refs.sort(), expected.sort());

    const tips = expected.map((l) => l.split(' ')[0]);
    const reader = await session.request(fetchRequest(tips), { idempotent: true });
    const pack = await readFetchResponse(reader);
    const fetched = indexPack(pack, 'fetched-v2');
    for (const tip of tips) git(['cat-file', '-e', `${tip}^{commit}`], { cwd: fetched });
    const objects = git(['rev-list', '--objects', ...tips], { cwd: repo }).split('\n').length;
    assert.equal(git(['count-objects', '-v'], { cwd: fetched }).match(/in-pack: (\d+)/)?.[1], String(objects));

    const posts = server.requests.slice(from).filter((r) => r.method === 'POST');
    assert.equal(posts.length, 2);
    for (const post of posts) {
      assert.equal(post.url, '/repo.git/git-upload-pack');
      assert.equal(post.contentType, 'application/x-git-upload-pack-request');
      assert.equal(post.gitProtocol, 'version=2');
    }
  });

  it('v0 stateless fetch: want, done, NAK and a side-band pack', async () => {
    const session = await open(transport(`${server.url}/repo.git`), 'git-upload-pack', 0);
    const head = text(await session.advertisement.read()).slice(0, 40);
    await linesToFlush(session.advertisement);
    const body = Buffer.concat([pktLineText(`want ${head} multi_ack_detailed side-band-64k ofs-delta no-progress`), flushPkt, pktLineText('done')]);
    const reader = await session.request(body);
    assert.equal(text(await reader.read()), 'NAK');
    const chunks: Uint8Array[] = [];
    for await (const chunk of demuxSideBand(reader)) chunks.push(Buffer.from(chunk));
    const fetched = indexPack(Buffer.concat(chunks), 'fetched-v0');
    git(['cat-file', '-e', `${head}^{tree}`], { cwd: fetched });
  });

  it('receive-pack: a push through request() moves the ref (body as bytes, then streamed in chunks)', async () => {
    const session = await open(transport(`${server.url}/push.git`), 'git-receive-pack', 0);
    const advertised = await linesToFlush(session.advertisement);
    const old = git(['rev-parse', 'refs/heads/main'], { cwd: pushRepo });
    assert.ok(advertised.some((l) => l.startsWith(`${old} refs/heads/main`)), 'the advertisement shows main');
    const one = makeCommit(old, 'pushed over HTTP');
    const body = Buffer.concat([pktLine(`${old} ${one.oid} refs/heads/main\0report-status\n`), flushPkt, one.pack]);
    const report = await linesToFlush(await session.request(body, { end: true }));
    assert.deepEqual(report, ['unpack ok', 'ok refs/heads/main']);
    assert.equal(git(['rev-parse', 'refs/heads/main'], { cwd: pushRepo }), one.oid);

    // A second push, as an AsyncIterable of small chunks: sent chunked, never buffered whole.
    const two = makeCommit(one.oid, 'streamed push');
    const session2 = await open(transport(`${server.url}/push.git`), 'git-receive-pack', 0);
    await linesToFlush(session2.advertisement);
    const bytes = Buffer.concat([pktLine(`${'0'.repeat(40)} ${two.oid} refs/heads/streamed\0report-status\n`), flushPkt, two.pack]);
    let pulled = 0;
    async function* chunks(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < bytes.length; i += 100) {
        pulled++;
        yield bytes.subarray(i, i + 100);
      }
    }
    assert.deepEqual(await linesToFlush(await session2.request(chunks())), ['unpack ok', 'ok refs/heads/streamed']);
    assert.equal(pulled, Math.ceil(bytes.length / 100));
    assert.equal(git(['rev-parse', 'refs/heads/streamed'], { cwd: pushRepo }), two.oid);
    git(['fsck', '--no-progress'], { cwd: pushRepo });
  });

  it('session.close() releases an open response body; later use is refused', async () => {
    const session = await open(transport(`${server.url}/repo.git`), 'git-upload-pack', 2);
    await linesToFlush(session.advertisement);
    const head = git(['rev-parse', 'HEAD'], { cwd: repo });
    const reader = await session.request(fetchRequest([head]));
    assert.equal(text(await reader.read()), 'packfile');
    await session.close();
    await rejectsWith((async () => { for await (const _ of reader) { /* drain */ } })(), ErrorCode.Aborted);
    await rejectsWith(session.request(lsRefsRequest()), ErrorCode.Usage);
    await session.close();
  });
});

describe('credentials', () => {
  it('Basic from the URL userinfo (percent-decoded), removed from displayUrl', async () => {
    const from = authServer.requests.length;
    const t = transport(`http://alice:s3cret%3Awith%20colon@127.0.0.1:${authServer.port}/repo.git`);
    assert.equal(t.displayUrl, `http://127.0.0.1:${authServer.port}/repo.git`);
    const session = await open(t, 'git-upload-pack', 2);
    assert.equal(text(await session.advertisement.read()), 'version 2');
    await linesToFlush(session.advertisement);
    await linesToFlush(await session.request(lsRefsRequest('refs/tags/')));
    const seen = authServer.requests.slice(from);
    assert.deepEqual(seen.map((r) => r.status), [200, 200]);
    const expected = `Basic ${Buffer.from('alice:s3cret:with colon').toString('base64')}`;
    assert.ok(seen.every((r) => r.authorization === expected));
  });

  it('Basic from a netrc file (machine entry, and the default entry)', async () => {
    const netrc = join(tmp.path, 'netrc');
    writeFileSync(netrc, `# test\nmachine example.org login bob password nope\nmachine 127.0.0.1\n  login alice\n  password "s3cret:with colon"\n`);
    const session = await open(transport(`${authServer.url}/repo.git`, { netrc }), 'git-upload-pack', 2);
    assert.equal(text(await session.advertisement.read()), 'version 2');

    writeFileSync(netrc, 'machine example.org login bob password nope\ndefault login x-access-token password tok-123\n');
    const viaDefault = await open(transport(`${authServer.url}/repo.git`, { netrc }), 'git-upload-pack', 2);
    assert.equal(text(await viaDefault.advertisement.read()), 'version 2');

    // A user name in the URL selects the netrc entry with that login.
    writeFileSync(netrc, 'machine 127.0.0.1 login mallory password nope\nmachine 127.0.0.1 login alice password "s3cret:with colon"\n');
    const byLogin = await open(transport(`http://alice@127.0.0.1:${authServer.port}/repo.git`, { netrc }), 'git-upload-pack', 2);
    assert.equal(text(await byLogin.advertisement.read()), 'version 2');
  });

  it('a token: Basic as x-access-token (option or PACKFERRY_TOKEN), or Bearer', async () => {
    const from = authServer.requests.length;
    await open(transport(`${authServer.url}/repo.git`, { token: 'tok-123' }), 'git-upload-pack', 2);
    await open(transport(`${authServer.url}/repo.git`, { env: { PACKFERRY_TOKEN: 'tok-123' } }), 'git-upload-pack', 2);
    await open(transport(`${authServer.url}/repo.git`, { token: 'bearer-456', tokenScheme: 'bearer' }), 'git-upload-pack', 2);
    const auths = authServer.requests.slice(from).map((r) => [r.status, r.authorization]);
    const basic = `Basic ${Buffer.from('x-access-token:tok-123').toString('base64')}`;
    assert.deepEqual(auths, [[200, basic], [200, basic], [200, 'Bearer bearer-456']]);
  });

  it('401 without credentials: ERR_TRANSPORT_AUTH naming the ways to give them', async () => {
    const err = await rejectsWith(transport(`${authServer.url}/repo.git`).open('git-upload-pack', { protocolVersion: 2 }), ErrorCode.TransportAuth);
    assert.match(err.message, /authentication failed for http:\/\/127\.0\.0\.1:\d+\/repo\.git \(HTTP 401\)/);
    assert.match(err.hint ?? '', /URL.*netrc.*PACKFERRY_TOKEN/);
    assert.equal(err.details.status, 401);
  });

  it('401 with wrong credentials: the hint says which were refused, never the secret', async () => {
    const err = await rejectsWith(
      transport(`http://alice:wrong-password@127.0.0.1:${authServer.port}/repo.git`).open('git-upload-pack', { protocolVersion: 2 }),
      ErrorCode.TransportAuth,
    );
    assert.match(err.hint ?? '', /refused the user name and password in the URL \(user "alice"\)/);
    assert.doesNotMatch(JSON.stringify(err.toJSON()) + err.message + (err.hint ?? ''), /wrong-password/);
  });

  it('404 is ERR_NOT_FOUND', async () => {
    const err = await rejectsWith(transport(`${server.url}/missing.git`).open('git-upload-pack', { protocolVersion: 2 }), ErrorCode.NotFound);
    assert.match(err.message, /repository not found: http:\/\/127\.0\.0\.1:\d+\/missing\.git/);
  });

  it('other statuses are ERR_HTTP_STATUS with the status', async () => {
    server.failNext(1, 418, { match: isGet });
    const err = await rejectsWith(transport(`${server.url}/repo.git`).open('git-upload-pack', { protocolVersion: 2 }), ErrorCode.HttpStatus);
    assert.equal(err.details.status, 418);
    assert.match(err.message, /HTTP 418 .*injected 418/);
  });
});

describe('retries', () => {
  it('503 twice, then success: the GET is sent three times', async () => {
    const from = server.requests.length;
    const events: HttpRetryEvent[] = [];
    server.failNext(2, 503, { match: isGet });
    const session = await open(transport(`${server.url}/repo.git`, { onRetry: (e) => events.push(e) }), 'git-upload-pack', 2);
    assert.equal(text(await session.advertisement.read()), 'version 2');
    assert.deepEqual(server.requests.slice(from).map((r) => r.status), [503, 503, 200]);
    assert.deepEqual(events.map((e) => [e.attempt, e.reason]), [[1, 'HTTP 503'], [2, 'HTTP 503']]);
    assert.ok(events.every((e) => e.delayMs >= 0 && e.delayMs <= 20));
  });

  it('429 honours Retry-After, capped at retryMaxDelayMs', async () => {
    const from = server.requests.length;
    server.failNext(1, 429, { retryAfter: '3', match: isGet });
    const events: HttpRetryEvent[] = [];
    const started = Date.now();
    await open(transport(`${server.url}/repo.git`, { retryMaxDelayMs: 150, onRetry: (e) => events.push(e) }), 'git-upload-pack', 2);
    const elapsed = Date.now() - started;
    assert.deepEqual(events.map((e) => e.delayMs), [150]);
    assert.ok(elapsed >= 140 && elapsed < 2500, `waited ${elapsed} ms`);
    assert.deepEqual(server.requests.slice(from).map((r) => r.status), [429, 200]);
  });

  it('gives up after `retries`, with ERR_HTTP_STATUS', async () => {
    const from = server.requests.length;
    server.failNext(3, 502, { match: isGet });
    const err = await rejectsWith(transport(`${server.url}/repo.git`, { retries: 2 }).open('git-upload-pack', { protocolVersion: 2 }), ErrorCode.HttpStatus);
    assert.equal(err.details.status, 502);
    assert.equal(err.details.retries, 2);
    assert.equal(countRequests(server, from, isGet), 3);
  });

  it('an idempotent upload-pack POST is retried; without the flag it is not', async () => {
    const session = await open(transport(`${server.url}/repo.git`), 'git-upload-pack', 2);
    await linesToFlush(session.advertisement);
    let from = server.requests.length;
    server.failNext(1, 503, { match: isPost('git-upload-pack') });
    assert.ok((await linesToFlush(await session.request(lsRefsRequest(), { idempotent: true }))).length > 0);
    assert.deepEqual(server.requests.slice(from).map((r) => r.status), [503, 200]);

    from = server.requests.length;
    server.failNext(1, 503, { match: isPost('git-upload-pack') });
    const err = await rejectsWith(session.request(lsRefsRequest()), ErrorCode.HttpStatus);
    assert.equal(err.details.status, 503);
    assert.equal(countRequests(server, from, isPost('git-upload-pack')), 1);
  });

  it('a receive-pack POST is never retried, even when called idempotent', async () => {
    const session = await open(transport(`${server.url}/push.git`), 'git-receive-pack', 0);
    await linesToFlush(session.advertisement);
    const old = git(['rev-parse', 'refs/heads/main'], { cwd: pushRepo });
    const next = makeCommit(old, 'never retried');
    const from = server.requests.length;
    server.failNext(1, 503, { match: isPost('git-receive-pack') });
    const body = Buffer.concat([pktLine(`${old} ${next.oid} refs/heads/main\0report-status\n`), flushPkt, next.pack]);
    await rejectsWith(session.request(body, { idempotent: true }), ErrorCode.HttpStatus);
    assert.equal(countRequests(server, from, isPost('git-receive-pack')), 1);
    assert.equal(git(['rev-parse', 'refs/heads/main'], { cwd: pushRepo }), old);
  });

  it('a connection dropped before the first body byte is retried', async () => {
    const from = server.requests.length;
    server.dropNext(0, { match: isGet });
    const events: HttpRetryEvent[] = [];
    const session = await open(transport(`${server.url}/repo.git`, { onRetry: (e) => events.push(e) }), 'git-upload-pack', 2);
    assert.equal(text(await session.advertisement.read()), 'version 2');
    assert.equal(countRequests(server, from, isGet), 2);
    assert.match(events[0]?.reason ?? '', /before the response body/);
  });

  it('a connection refused is retried, then ERR_TRANSPORT_CONNECT', async () => {
    const closed = http.createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const events: HttpRetryEvent[] = [];
    const err = await rejectsWith(
      transport(`http://127.0.0.1:${port}/repo.git`, { retries: 2, onRetry: (e) => events.push(e) }).open('git-upload-pack', { protocolVersion: 2 }),
      ErrorCode.TransportConnect,
    );
    assert.deepEqual(events.map((e) => e.reason), ['ECONNREFUSED', 'ECONNREFUSED']);
    assert.equal(err.details.code, 'ECONNREFUSED');
  });

  it('a connection dropped in the middle of a pack is ERR_TRANSPORT_INTERRUPTED, not retried', async () => {
    const session = await open(transport(`${server.url}/repo.git`), 'git-upload-pack', 2);
    await linesToFlush(session.advertisement);
    const from = server.requests.length;
    server.dropNext(3000, { match: isPost('git-upload-pack') });
    const reader = await session.request(fetchRequest([git(['rev-parse', 'HEAD'], { cwd: repo })]), { idempotent: true });
    const err = await rejectsWith(readFetchResponse(reader), ErrorCode.TransportInterrupted);
    assert.match(err.message, /dropped in the middle of the response from git-upload-pack/);
    assert.equal(countRequests(server, from, isPost('git-upload-pack')), 1);
  });
});

describe('redirects', () => {
  it('info/refs redirected to another path: followed, and the POSTs go to the new base', async () => {
    server.redirect({ from: '/old', to: '/new', status: 301 });
    const from = server.requests.length;
    const t = transport(`${server.url}/old/repo.git`);
    const session = await open(t, 'git-upload-pack', 2);
    await linesToFlush(session.advertisement);
    assert.ok((await linesToFlush(await session.request(lsRefsRequest('refs/heads/')))).length > 0);
    assert.deepEqual(
      server.requests.slice(from).map((r) => `${r.method} ${r.url} ${r.status}`),
      [
        'GET /old/repo.git/info/refs?service=git-upload-pack 301',
        'GET /new/repo.git/info/refs?service=git-upload-pack 200',
        'POST /new/repo.git/git-upload-pack 200',
      ],
    );
    assert.equal(t.displayUrl, `${server.url}/old/repo.git`);
    assert.ok(session instanceof HttpServiceSession);
    assert.equal(session.baseUrl.href, `${server.url}/new/repo.git`);
  });

  it('credentials are not sent to another host after a redirect (127.0.0.1 -> localhost)', async () => {
    authServer.redirect({ from: '/elsewhere', to: `http://localhost:${authServer.port}/new` });
    const from = authServer.requests.length;
    const err = await rejectsWith(
      transport(`http://alice:s3cret%3Awith%20colon@127.0.0.1:${authServer.port}/elsewhere/repo.git`, { token: 'tok-123' }).open('git-upload-pack', {
        protocolVersion: 2,
      }),
      ErrorCode.TransportAuth,
    );
    assert.match(err.hint ?? '', /redirected to http:\/\/localhost:\d+/);
    const seen = authServer.requests.slice(from);
    assert.deepEqual(seen.map((r) => [r.host.split(':')[0], r.status]), [['127.0.0.1', 302], ['localhost', 401]]);
    assert.ok(seen[0].authorization?.startsWith('Basic '), 'the original host got the credentials');
    assert.equal(seen[1].authorization, undefined, 'the other host got none');

    // A netrc `default` entry does not follow either; a machine entry for the new host does.
    const netrc = join(tmp.path, 'netrc-redirect');
    writeFileSync(netrc, 'default login alice password "s3cret:with colon"\n');
    await rejectsWith(transport(`${authServer.url}/elsewhere/repo.git`, { netrc }).open('git-upload-pack', { protocolVersion: 2 }), ErrorCode.TransportAuth);
    writeFileSync(netrc, 'machine localhost login alice password "s3cret:with colon"\ndefault login alice password "s3cret:with colon"\n');
    const session = await open(transport(`${authServer.url}/elsewhere/repo.git`, { netrc }), 'git-upload-pack', 2);
    assert.equal(text(await session.advertisement.read()), 'version 2');
  });

  it('a redirect loop ends after 5 redirects', async () => {
    server.redirect({ from: '/loop', to: '/loop' });
    const from = server.requests.length;
    const err = await rejectsWith(transport(`${server.url}/loop/repo.git`).open('git-upload-pack', { protocolVersion: 2 }), ErrorCode.HttpStatus);
    assert.match(err.message, /too many redirects/);
    assert.equal(server.requests.length - from, 6);
  });
});

describe('https', () => {
  it('trusts a server certificate given as tls.ca; fetches over TLS', async () => {
    const session = await open(transport(`${httpsServer.url}/repo.git`, { tls: { ca: certificate } }), 'git-upload-pack', 2);
    await linesToFlush(session.advertisement);
    const refs = await linesToFlush(await session.request(lsRefsRequest('refs/heads/main')));
    assert.deepEqual(refs, [`${git(['rev-parse', 'refs/heads/main'], { cwd: repo })} refs/heads/main`]);
  });

  it('an untrusted certificate is ERR_TRANSPORT_CONNECT, without retries', async () => {
    const events: HttpRetryEvent[] = [];
    const err = await rejectsWith(
      transport(`${httpsServer.url}/repo.git`, { onRetry: (e) => events.push(e) }).open('git-upload-pack', { protocolVersion: 2 }),
      ErrorCode.TransportConnect,
    );
    assert.match(err.message, /self.signed certificate/i);
    assert.equal(events.length, 0);
  });

  it('refuses a redirect from https to http', async () => {
    httpsServer.redirect({ from: '/down', to: `${server.url}/new` });
    const from = server.requests.length;
    const err = await rejectsWith(
      transport(`${httpsServer.url}/down/repo.git`, { tls: { ca: certificate } }).open('git-upload-pack', { protocolVersion: 2 }),
      ErrorCode.Protocol,
    );
    assert.match(err.message, /from https to http/);
    assert.equal(server.requests.length, from, 'nothing was sent in plain text');
  });
});

describe('proxies', () => {
  it('HTTP_PROXY from the environment carries the GET and the POSTs (absolute URIs)', async () => {
    const from = proxy.requests.length;
    const session = await open(transport(`${server.url}/repo.git`, { env: { HTTP_PROXY: proxy.url } }), 'git-upload-pack', 2);
    await linesToFlush(session.advertisement);
    await linesToFlush(await session.request(lsRefsRequest('refs/heads/')));
    assert.deepEqual(proxy.requests.slice(from), [
      { method: 'GET', url: `${server.url}/repo.git/info/refs?service=git-upload-pack` },
      { method: 'POST', url: `${server.url}/repo.git/git-upload-pack` },
    ]);
  });

  it('NO_PROXY and proxy: null bypass it; options.proxy overrides the environment', async () => {
    const from = proxy.requests.length;
    await open(transport(`${server.url}/repo.git`, { env: { http_proxy: proxy.url, no_proxy: 'example.org, 127.0.0.1' } }), 'git-upload-pack', 2);
    await open(transport(`${server.url}/repo.git`, { env: { http_proxy: proxy.url }, proxy: null }), 'git-upload-pack', 2);
    await open(transport(`${server.url}/repo.git`, { env: { https_proxy: proxy.url } }), 'git-upload-pack', 2);
    assert.equal(proxy.requests.length, from, 'no request went through the proxy');
    await open(transport(`${server.url}/repo.git`, { proxy: proxy.url }), 'git-upload-pack', 2);
    assert.equal(proxy.requests.length, from + 1);
  });
});

describe('timeouts and cancellation', () => {
  // undici checks header and body timeouts on a clock that ticks about every
  // 500 ms, so a 200 ms timeout fires within about 1.5 s: the server stalls longer.
  it('headersTimeoutMs: ERR_TRANSPORT_TIMEOUT, not retried', async () => {
    const from = server.requests.length;
    server.delayNext(4000, { match: isGet });
    const err = await rejectsWith(transport(`${server.url}/repo.git`, { headersTimeoutMs: 200 }).open('git-upload-pack', { protocolVersion: 2 }), ErrorCode.TransportTimeout);
    assert.equal(err.details.timeout, 'headers');
    assert.equal(server.requests.length - from, 1);
  });

  it('bodyTimeoutMs: a body that stalls is ERR_TRANSPORT_TIMEOUT', async () => {
    const session = await open(transport(`${server.url}/repo.git`, { bodyTimeoutMs: 200 }), 'git-upload-pack', 2);
    await linesToFlush(session.advertisement);
    server.delayNext(4000, { afterBytes: 2000, match: isPost('git-upload-pack') });
    const reader = await session.request(fetchRequest([git(['rev-parse', 'HEAD'], { cwd: repo })]));
    const err = await rejectsWith(readFetchResponse(reader), ErrorCode.TransportTimeout);
    assert.equal(err.details.timeout, 'body');
  });

  it('connectTimeoutMs: a listener whose accept queue is full never completes the handshake', async () => {
    // Node always accepts, so a Python socket with backlog 0 that never calls
    // accept(): once one connection fills its queue, further SYNs go unanswered.
    const listener = spawn('python3', ['-c', 'import socket,sys,time\ns=socket.socket();s.bind(("127.0.0.1",0));s.listen(0)\nprint(s.getsockname()[1],flush=True)\nsys.stdin.read()'], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const fillers: net.Socket[] = [];
    try {
      const [line] = (await once(listener.stdout, 'data')) as [Buffer];
      const port = Number.parseInt(line.toString(), 10);
      for (let i = 0; i < 2; i++) fillers.push(net.connect(port, '127.0.0.1').on('error', () => {}));
      await once(fillers[0], 'connect');
      const err = await rejectsWith(
        transport(`http://127.0.0.1:${port}/repo.git`, { connectTimeoutMs: 200, retries: 0 }).open('git-upload-pack', { protocolVersion: 2 }),
        ErrorCode.TransportTimeout,
      );
      assert.equal(err.details.timeout, 'connect');
    } finally {
      for (const socket of fillers) socket.destroy();
      listener.kill();
    }
  });

  it('an AbortSignal cancels a request in flight and a retry wait', async () => {
    server.delayNext(600, { match: isGet });
    const started = Date.now();
    await rejectsWith(transport(`${server.url}/repo.git`).open('git-upload-pack', { protocolVersion: 2, signal: AbortSignal.timeout(50) }), ErrorCode.Aborted);
    server.failNext(1, 503, { match: isGet, retryAfter: '5' });
    await rejectsWith(
      transport(`${server.url}/repo.git`, { retryMaxDelayMs: 5000 }).open('git-upload-pack', { protocolVersion: 2, signal: AbortSignal.timeout(100) }),
      ErrorCode.Aborted,
    );
    assert.ok(Date.now() - started < 1500);
  });

  it('refuses URLs it cannot use', () => {
    for (const bad of ['ftp://example.org/r.git', 'http://example.org/r.git?x=1', 'not a url']) {
      assert.throws(() => new HttpTransport(bad), (err: unknown) => isPackferryError(err, ErrorCode.InvalidUrl), bad);
    }
  });
});

// The Git LFS Batch API client (transport/lfs.ts) and mirrorLfsObjects
// (mirror/lfs.ts) against the real test LFS server (test/support/lfs-server.ts):
// server discovery, download actions with their own headers, per-object
// errors, credentials and their refusal, retries on 429/5xx and their limit,
// a missing LFS API, expired actions asked for again, batches of
// `batchSize`, bounded parallelism, downloads cut off and retried, and a
// listing instead of a HEAD per object when there are many to check.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { ErrorCode, PackferryError } from '../../src/core/errors.js';
import { FsBlobStore } from '../../src/store/fs-backend.js';
import { LfsObjectStore } from '../../src/store/lfs.js';
import { mirrorLfsObjects, type LfsProgress } from '../../src/mirror/lfs.js';
import { LfsClient, lfsEndpointFor, type LfsBatchClient, type LfsDownloadAction } from '../../src/transport/lfs.js';
import { startGitHttpServer, type GitHttpServer } from '../support/git-http-server.js';
import { tempDir } from '../support/git.js';
import { startLfsServer, type LfsServer } from '../support/lfs-server.js';
import { AUTH, bytes, sha256 } from './fixtures.js';

const tmp = tempDir('packferry-lfs-client-');
let server: LfsServer;
let plain: GitHttpServer;
const clients: LfsClient[] = [];
before(async () => {
  server = await startLfsServer({ projectRoot: tmp.path, auth: AUTH });
  plain = await startGitHttpServer({ projectRoot: tmp.path });
});
after(async () => {
  for (const c of clients) await c.close();
  await server?.close();
  await plain?.close();
  tmp.cleanup();
});

const FAST = { netrc: false as const, retryBaseDelayMs: 1, retryMaxDelayMs: 20 };
function client(url: string, options: ConstructorParameters<typeof LfsClient>[1] = {}): LfsClient {
  const c = new LfsClient(url, { ...FAST, ...options });
  clients.push(c);
  return c;
}

/** Puts objects on the server for repository `name` (as a push would). */
function seed(name: string, contents: Buffer[]): { oid: string; size: number; content: Buffer }[] {
  const repo = new Map<string, Buffer>();
  server.objects.set(`/${name}.git`, repo);
  return contents.map((content) => {
    const oid = sha256(content);
    repo.set(oid, content);
    return { oid, size: content.length, content };
  });
}

async function read(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of body) parts.push(c);
  return Buffer.concat(parts);
}

async function rejectsCode(promise: Promise<unknown>, code: string, message?: RegExp): Promise<PackferryError> {
  let caught: unknown;
  await assert.rejects(promise, (err: unknown) => {
    caught = err;
    return true;
  });
  assert.ok(caught instanceof PackferryError, String(caught));
  assert.equal(caught.code, code, caught.message);
  if (message) assert.match(caught.message, message);
  return caught;
}

describe('Git LFS server discovery', () => {
  it('appends .git when missing, then /info/lfs; credentials stay out', () => {
    assert.equal(lfsEndpointFor(new URL('https://host/foo/bar')).href, 'https://host/foo/bar.git/info/lfs');
    assert.equal(lfsEndpointFor(new URL('https://host/foo/bar.git')).href, 'https://host/foo/bar.git/info/lfs');
    assert.equal(lfsEndpointFor(new URL('https://host/foo/bar.git/')).href, 'https://host/foo/bar.git/info/lfs');
    assert.equal(new LfsClient('http://u:p@host:8080/r', FAST).displayEndpoint, 'http://host:8080/r.git/info/lfs');
    assert.equal(new LfsClient('http://u:p@host/r', { ...FAST, lfsUrl: 'https://lfs.example/api/r' }).displayEndpoint, 'https://lfs.example/api/r');
  });
});

describe('the Git LFS batch API client', () => {
  it('asks for download actions and follows them with their own headers', async () => {
    const [a, b] = seed('dl', [bytes(20_000, 'a'), Buffer.from('b')]);
    server.reset();
    const c = client(server.repoUrl('dl'));
    const entries = await c.batchDownload([
      { oid: a.oid, size: a.size },
      { oid: b.oid, size: b.size },
    ]);
    assert.deepEqual(
      entries.map((e) => e.kind),
      ['download', 'download'],
    );
    assert.equal(server.batches.length, 1);
    assert.equal(server.batches[0].operation, 'download');
    assert.equal(server.batches[0].repo, '/dl.git', 'server discovery added .git');
    const action = (entries[0] as { action: LfsDownloadAction }).action;
    assert.match(action.header.Authorization, /^RemoteAuth /);
    assert.ok(action.expiresAt !== undefined && action.expiresAt > Date.now());
    const d = await c.download(action);
    assert.equal(d.contentLength, a.size);
    assert.ok((await read(d.body)).equals(a.content));
    // The action's header is enough: a client without the remote's credentials downloads with it...
    const anonymous = client(server.repoUrl('dl', false));
    assert.ok((await read((await anonymous.download(action)).body)).equals(a.content));
    // ...and without it, the object URL wants credentials.
    await rejectsCode(anonymous.download({ href: action.href, header: {} }), ErrorCode.TransportAuth, /HTTP 401/);
  });

  it('reports per-object errors: missing on the server, or removed', async () => {
    const [a] = seed('errs', [Buffer.from('present')]);
    const missing = sha256(Buffer.from('never uploaded'));
    const removed = sha256(Buffer.from('removed'));
    server.reset();
    server.objectError(removed, 410, 'Object removed');
    const entries = await client(server.repoUrl('errs')).batchDownload([
      { oid: a.oid, size: a.size },
      { oid: missing, size: 14 },
      { oid: removed, size: 7 },
    ]);
    assert.equal(entries[0].kind, 'download');
    const errors = entries.slice(1).map((e) => (e.kind === 'error' ? e.error : undefined));
    assert.equal(errors[0]?.code, ErrorCode.LfsObject);
    assert.match(errors[0]!.message, new RegExp(`${missing}: not on the LFS server .*\\(404\\): Object does not exist`));
    assert.match(errors[1]!.message, new RegExp(`${removed}: removed from the LFS server \\(410\\)`));
  });

  it('sends the remote\'s credentials; without them, or with wrong ones, the batch is ERR_TRANSPORT_AUTH', async () => {
    seed('auth', []);
    server.reset();
    const oid = sha256(Buffer.from('x'));
    await rejectsCode(client(server.repoUrl('auth', false)).batchDownload([{ oid, size: 1 }]), ErrorCode.TransportAuth, /authentication failed .*HTTP 401/);
    const wrong = server.repoUrl('auth', false).replace('http://', 'http://alice:wrong@');
    const err = await rejectsCode(client(wrong).batchDownload([{ oid, size: 1 }]), ErrorCode.TransportAuth);
    assert.match(err.hint ?? '', /user name and password in the URL/);
    assert.ok(!err.message.includes('wrong'), 'no secret in the message');
    // A token works like the URL's password (Basic, with the URL's user name).
    const token = client(server.repoUrl('auth', false).replace('http://', 'http://alice@'), { token: AUTH.password });
    const [entry] = await token.batchDownload([{ oid, size: 1 }]);
    assert.equal(entry.kind, 'error', 'authenticated: the object is simply missing');
  });

  it('retries 429, 500, 502, 503 and 504, honouring Retry-After; gives up after `retries`', async () => {
    const [a] = seed('retry', [Buffer.from('retried')]);
    server.reset();
    for (const status of [429, 500, 502, 503, 504]) server.failBatch(1, status, status === 429 ? '0' : undefined);
    const retries: string[] = [];
    const c = client(server.repoUrl('retry'), { retries: 5, onRetry: (e) => retries.push(e.reason) });
    const [entry] = await c.batchDownload([{ oid: a.oid, size: a.size }]);
    assert.equal(entry.kind, 'download');
    assert.deepEqual(retries, ['HTTP 429', 'HTTP 500', 'HTTP 502', 'HTTP 503', 'HTTP 504']);
    assert.deepEqual(
      server.batches.map((b) => b.status),
      [429, 500, 502, 503, 504, 200],
    );
    server.reset();
    server.failBatch(3, 503);
    const err = await rejectsCode(client(server.repoUrl('retry'), { retries: 2 }).batchDownload([{ oid: a.oid, size: a.size }]), ErrorCode.HttpStatus, /HTTP 503 .* after 2 retries: injected 503/);
    assert.equal(err.details.retries, 2);
    assert.equal(server.batches.length, 3);
  });

  it('a server without the LFS API is ERR_NOT_FOUND with a hint', async () => {
    const c = client(`${plain.url}/nothing`);
    const err = await rejectsCode(c.batchDownload([{ oid: sha256(Buffer.from('x')), size: 1 }]), ErrorCode.NotFound, /no Git LFS server at/);
    assert.match(err.hint ?? '', /--no-lfs/);
  });

  it('refuses hostile batch answers: not JSON, another transfer or hash, bad hrefs and headers; an object not answered is an error', async () => {
    const a = sha256(Buffer.from('a'));
    const b = sha256(Buffer.from('b'));
    let answer: { type: string; body: string } = { type: 'application/vnd.git-lfs+json', body: '{}' };
    const hostile = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': answer.type });
        res.end(answer.body);
      });
    });
    hostile.listen(0, '127.0.0.1');
    await once(hostile, 'listening');
    try {
      const c = client(`http://127.0.0.1:${(hostile.address() as AddressInfo).port}/r.git`);
      const ask = () => c.batchDownload([{ oid: a, size: 1 }, { oid: b, size: 1 }]);
      const cases: [string, string, RegExp][] = [
        ['text/html', '<html>', /Content-Type text\/html/],
        ['application/vnd.git-lfs+json', 'not json', /not JSON/],
        ['application/vnd.git-lfs+json', '[]', /not a JSON object/],
        ['application/vnd.git-lfs+json', '{}', /no "objects" array/],
        ['application/vnd.git-lfs+json', JSON.stringify({ transfer: 'ssh', objects: [] }), /transfer adapter "ssh"/],
        ['application/vnd.git-lfs+json', JSON.stringify({ hash_algo: 'sha512', objects: [] }), /hash algorithm "sha512"/],
        ['application/vnd.git-lfs+json', JSON.stringify({ objects: [{ oid: a, actions: { download: { href: 'file:///etc/passwd' } } }] }), /not http\(s\)/],
        ['application/vnd.git-lfs+json', JSON.stringify({ objects: [{ oid: a, actions: { download: { href: '/x', header: { 'bad name': 'v' } } } }] }), /bad header/],
        ['application/vnd.git-lfs+json', JSON.stringify({ objects: [{ oid: a, actions: { download: { href: '/x', header: { ok: 'a\r\nInjected: 1' } } } }] }), /bad header/],
        ['application/vnd.git-lfs+json', JSON.stringify({ objects: [{ oid: a, actions: { download: {} } }] }), /has no href/],
      ];
      for (const [type, body, message] of cases) {
        answer = { type, body };
        await rejectsCode(ask(), ErrorCode.Protocol, message);
      }
      // Not asked for: ignored; asked for and not answered: an error for that object; a relative href resolves against the batch URL (as a Location would).
      answer = {
        type: 'application/json',
        body: JSON.stringify({ objects: [{ oid: 'f'.repeat(64), actions: { download: { href: '/evil' } } }, { oid: a, actions: { download: { href: 'a', expires_at: '2999-01-01T00:00:00Z' } } }] }),
      };
      const entries = await ask();
      assert.equal(entries.length, 2);
      assert.deepEqual(entries[0].kind === 'download' && entries[0].action, {
        href: `http://127.0.0.1:${(hostile.address() as AddressInfo).port}/r.git/info/lfs/objects/a`,
        header: {},
        expiresAt: Date.parse('2999-01-01T00:00:00Z'),
      });
      assert.equal(entries[1].kind, 'error');
      assert.match(entries[1].kind === 'error' ? entries[1].error.message : '', /missing from the batch response/);
    } finally {
      await new Promise((resolve) => hostile.close(resolve));
    }
  });

  it('refuses batches larger than its batch size', async () => {
    const c = client(server.repoUrl('dl'), { batchSize: 1 });
    const oid = sha256(Buffer.from('x'));
    await rejectsCode(c.batchDownload([{ oid, size: 1 }, { oid: sha256(Buffer.from('y')), size: 1 }]), ErrorCode.Usage);
  });
});

describe('mirrorLfsObjects', () => {
  let n = 0;
  const store = () => new LfsObjectStore(new FsBlobStore(join(tmp.path, 'stores', `s${++n}`)));

  it('fetches what is missing in batches of batchSize, at most `parallelism` downloads at once, and skips what is stored', async () => {
    const objects = seed('many', Array.from({ length: 80 }, (_, i) => bytes(2_000 + i, `obj${i}`)));
    server.reset();
    const real = client(server.repoUrl('many'), { batchSize: 30 });
    let inFlight = 0;
    let most = 0;
    const counting: LfsBatchClient = {
      displayEndpoint: real.displayEndpoint,
      batchSize: real.batchSize,
      batchDownload: (o, s) => real.batchDownload(o, s),
      async download(action, signal) {
        inFlight++;
        most = Math.max(most, inFlight);
        const d = await real.download(action, signal);
        return {
          ...d,
          body: (async function* () {
            try {
              yield* d.body;
            } finally {
              inFlight--;
            }
          })(),
        };
      },
      close: () => real.close(),
    };
    const target = store();
    await target.put(objects[0].oid, objects[0].content, objects[0].size);
    const progress: LfsProgress[] = [];
    const pointers = [...objects, objects[5]].map((o) => ({ oid: o.oid, size: o.size }));
    const r = await mirrorLfsObjects({ pointers, client: counting, store: target, parallelism: 3, onProgress: (p) => progress.push(p) });
    assert.deepEqual({ objects: r.objects, fetched: r.fetched, present: r.present, failed: r.failed }, { objects: 80, fetched: 79, present: 1, failed: [] });
    assert.equal(r.bytes, objects.slice(1).reduce((s, o) => s + o.size, 0));
    assert.deepEqual(
      server.batches.map((b) => b.oids.length),
      [30, 30, 19],
    );
    assert.equal(most, 3, 'downloads ran three at a time');
    assert.equal(progress.length, 80);
    assert.deepEqual(progress[progress.length - 1], { done: 80, total: 80, bytes: r.bytes });
    for (const o of objects) assert.ok((await read((await target.get(o.oid))!)).equals(o.content));
    // Again: everything is stored (one listing, no request to the server; no client made).
    server.reset();
    let made = false;
    const again = await mirrorLfsObjects({
      pointers,
      client: async () => {
        made = true;
        return counting;
      },
      store: target,
    });
    assert.deepEqual({ fetched: again.fetched, present: again.present }, { fetched: 0, present: 80 });
    assert.equal(server.batches.length, 0);
    assert.equal(made, false);
  });

  it('asks again for an action that expired before its download', async () => {
    const [a, b] = seed('expiry', [Buffer.from('expiring a'), Buffer.from('expiring b')]);
    server.reset();
    server.expireActions(1);
    const r = await mirrorLfsObjects({ pointers: [a, b], client: client(server.repoUrl('expiry')), store: store() });
    assert.deepEqual({ fetched: r.fetched, failed: r.failed }, { fetched: 2, failed: [] });
    assert.deepEqual(
      server.batches.map((x) => x.oids.length),
      [2, 1, 1],
      'one batch, then a fresh action for each expired one',
    );
  });

  it('reports per-object failures (missing, corrupt) and fetches the rest; a failing batch API fails every object once', async () => {
    const [good, bad] = seed('mixed', [Buffer.from('good content'), Buffer.from('bad content')]);
    const missing = { oid: sha256(Buffer.from('missing')), size: 7 };
    server.reset();
    server.corrupt(bad.oid, 'content');
    const target = store();
    const r = await mirrorLfsObjects({ pointers: [good, bad, missing], client: client(server.repoUrl('mixed')), store: target });
    assert.equal(r.fetched, 1);
    assert.deepEqual(
      r.failed.map((f) => [f.oid, f.error.code]).sort(),
      [
        [bad.oid, ErrorCode.HashMismatch],
        [missing.oid, ErrorCode.LfsObject],
      ].sort(),
    );
    assert.equal(await target.has(bad.oid), false);
    server.reset();
    server.failBatch(10, 503);
    const more = Array.from({ length: 5 }, (_, i) => ({ oid: sha256(Buffer.from(`m${i}`)), size: 2 }));
    const down = await mirrorLfsObjects({ pointers: more, client: client(server.repoUrl('mixed'), { retries: 1, batchSize: 2 }), store: target });
    assert.equal(down.failed.length, 5);
    assert.ok(down.failed.every((f) => f.error.code === ErrorCode.HttpStatus));
    assert.equal(server.batches.length, 2, 'the first batch (and its retry) only: the rest are not asked for');
  });

  it('downloads cut off half way are tried again, twice', async () => {
    const [a, b] = seed('drops', [bytes(100_000, 'drop a'), bytes(100_000, 'drop b')]);
    server.reset();
    server.dropDownload(a.oid, 2);
    server.dropDownload(b.oid, 3);
    const target = store();
    const r = await mirrorLfsObjects({ pointers: [a, b], client: client(server.repoUrl('drops')), store: target });
    assert.equal(r.fetched, 1);
    assert.deepEqual(
      r.failed.map((f) => [f.oid, f.error.code]),
      [[b.oid, ErrorCode.TransportInterrupted]],
    );
    assert.equal(server.downloads.filter((o) => o === a.oid).length, 3);
    assert.equal(server.downloads.filter((o) => o === b.oid).length, 3);
    assert.ok((await read((await target.get(a.oid))!)).equals(a.content));
    assert.equal(await target.has(b.oid), false);
  });

  it('stops at once when aborted', async () => {
    const objects = seed('abort', [Buffer.from('one'), Buffer.from('two')]);
    const controller = new AbortController();
    controller.abort();
    await rejectsCode(mirrorLfsObjects({ pointers: objects, client: client(server.repoUrl('abort')), store: store(), signal: controller.signal }), ErrorCode.Aborted);
  });
});

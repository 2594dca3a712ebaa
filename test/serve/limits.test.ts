// `packferry serve` against clients that try to make it spend what it has:
// one regression test per attack that worked on the server before it bounded
// its requests (each reproduced on the old code, described in the test):
// - pkt-line bombs: a 31 KiB gzip body of 8M empty pkt-lines took ~1.2 GB
//   and 8 s of CPU per request, 8 at once killed the server;
// - a gzip push cut off halfway held its repository until restart;
// - unknown `service=` values became metric labels until /metrics failed;
// - bodies that never come, trickle or never end were never cut off;
// - a reader that stops reading held its response for ever;
// - nothing bounded the requests of one client or of all;
// - "not our ref" and a junk gzip body answered 500 (git shows "RPC failed");
// - a refusal took 15x longer for a private repository with 30k refs than
//   for a missing one (its manifest was parsed before the rights were decided);
// - a missing store or an unreadable bucket were served without a word, a
//   refused `repo create` left files behind, a name such as
//   "team/a.git/objects" put a repository inside another, tokens.json was
//   world-readable.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { setTimeout as sleep } from 'node:timers/promises';
import { git, gitBuffer, tempDir } from '../support/git.js';
import { makeSource, noise, packferry } from '../support/mirror-fixtures.js';
import { S3RVER_REGION, startS3Server, type S3Server } from '../support/s3-server.js';
import {
  anonymousClient,
  bearerClient,
  commandList,
  FLUSH,
  gitFails,
  gitOk,
  lsRemote,
  metricValue,
  pf,
  pkt,
  rawRequest,
  reportLines,
  residentMiB,
  startServe,
  stopAllServers,
  type GitClient,
  type ServeProcess,
} from '../support/serve-fixtures.js';

const tmp = tempDir('packferry-serve-limits-');
const root = join(tmp.path, 'root');
const none = anonymousClient();
let server: ServeProcess;
let token: string;
let admin: GitClient;
let s3: S3Server | undefined;
/** Sockets opened by hand: destroyed in after(), whatever a test did. */
const sockets = new Set<net.Socket>();

const V2 = { 'git-protocol': 'version=2' };

function auth(): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

/** A v2 fetch request body: want `oid`, done. */
function fetchRequest(oid: string): Buffer {
  return Buffer.concat([pkt('command=fetch\n'), Buffer.from('0001'), pkt('ofs-delta\n'), pkt(`want ${oid}\n`), pkt('done\n'), FLUSH]);
}

/** Opens a connection to `to` (default: the main server) and sends `head`, a request's first bytes; the socket is kept until after(). */
function openSocket(head: string | Buffer, options: { to?: ServeProcess; localAddress?: string } = {}): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port: (options.to ?? server).port, localAddress: options.localAddress ?? '127.0.0.1' }, () => {
      socket.write(head);
      resolve(socket);
    });
    sockets.add(socket);
    socket.on('error', () => {});
    socket.once('error', reject);
  });
}

/** Resolves with what the server sent and how long the socket stayed open, once the server closes it (within `ms`). */
function closedByServer(socket: net.Socket, ms: number): Promise<{ text: string; openMs: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (text += d));
    const timer = setTimeout(() => reject(new Error(`the server kept the connection open for ${ms} ms:\n${text}`)), ms);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve({ text, openMs: Date.now() - started });
    });
  });
}

function postHead(path: string, headers: Record<string, string>): string {
  return `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n`;
}

async function metrics(): Promise<string> {
  return (await rawRequest(server.url, '/metrics')).body.toString();
}

before(async () => {
  const source = await makeSource(join(tmp.path, 'source.git'), 29);
  await pf(['mirror', source.dir, join(root, 'pub.git')]);
  await pf(['repo', 'edit', 'pub', '--public', '--store', root]);
  // A repository whose pack is larger than what loopback sockets buffer, for the reader that stops reading.
  const big = join(tmp.path, 'big');
  git(['init', '-q', '-b', 'main', big]);
  writeFileSync(join(big, 'noise.bin'), noise(24 * 1024 * 1024, 'limits-big'));
  git(['add', '.'], { cwd: big });
  git(['commit', '-q', '-m', 'noise'], { cwd: big });
  await pf(['mirror', big, join(root, 'big.git')]);
  await pf(['repo', 'edit', 'big', '--public', '--store', root]);
  token = (JSON.parse((await pf(['token', 'create', 'root', '--admin', '--store', root, '--json'])).stdout) as { token: string }).token;
  server = await startServe(['--store', root, '--body-timeout', '1s', '--send-timeout', '1s']);
  admin = bearerClient(token);
});

after(async () => {
  for (const s of sockets) s.destroy();
  await stopAllServers();
  await s3?.stop();
  tmp.cleanup();
});

describe('packferry serve bounds what a request may cost', () => {
  it('refuses pkt-line bombs at their first bad line: 8 at once, each a 31 KiB gzip body of 8M empty pkt-lines', async () => {
    const bomb = gzipSync(Buffer.from('0004'.repeat(8_000_000)));
    assert.ok(bomb.length < 64 * 1024);
    const before = residentMiB(server.pid);
    const started = Date.now();
    const answers = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        rawRequest(server.url, '/pub.git/git-upload-pack', {
          method: 'POST',
          headers: { 'content-type': 'application/x-git-upload-pack-request', 'content-encoding': 'gzip', ...(i % 2 === 0 ? V2 : {}) },
          body: bomb,
        }),
      ),
    );
    const ms = Date.now() - started;
    for (const a of answers) {
      assert.equal(a.status, 200);
      assert.match(a.body.toString('latin1'), /^[0-9a-f]{4}ERR upload-pack: unexpected empty pkt-line/);
    }
    const after = residentMiB(server.pid);
    assert.ok(ms < 5000, `answered in ${ms} ms`);
    assert.ok(after.peak - before.peak < 100, `peak RSS grew by ${(after.peak - before.peak).toFixed(0)} MiB (from ${before.peak.toFixed(0)})`);
    // A bomb of valid lines stops at maxRequestLines.
    const line = pkt(`have ${'1'.repeat(40)}\n`);
    const haves = gzipSync(Buffer.concat([pkt('command=fetch\n'), Buffer.from('0001'), Buffer.alloc(line.length * 300_000).fill(line)]));
    const many = await rawRequest(server.url, '/pub.git/git-upload-pack', {
      method: 'POST',
      headers: { 'content-type': 'application/x-git-upload-pack-request', 'content-encoding': 'gzip', ...V2 },
      body: haves,
    });
    assert.match(many.body.toString('latin1'), /ERR upload-pack: request over the limit maxRequestLines \(250000\)/);
    assert.equal((await rawRequest(server.url, '/healthz')).status, 200);
  });

  it('releases a repository at once when a gzip push is cut off halfway', async () => {
    const work = join(tmp.path, 'cut-work');
    await gitOk(admin, ['clone', '-q', `${server.url}/pub.git`, work]);
    const parent = git(['rev-parse', 'HEAD'], { cwd: work });
    writeFileSync(join(work, 'cut.bin'), noise(256 * 1024, 'cut'));
    git(['add', '.'], { cwd: work });
    git(['commit', '-q', '-m', 'cut'], { cwd: work });
    const oid = git(['rev-parse', 'HEAD'], { cwd: work });
    const pack = gitBuffer(['pack-objects', '--stdout', '--revs', '-q'], { cwd: work, input: `${oid}\n^${parent}\n` });
    const body = gzipSync(Buffer.concat([commandList([{ old: parent, new: oid, ref: 'refs/heads/main' }], 'report-status side-band-64k ofs-delta'), pack]));
    const socket = await openSocket(
      postHead('/pub.git/git-receive-pack', { ...auth(), 'content-type': 'application/x-git-receive-pack-request', 'content-encoding': 'gzip', 'content-length': String(body.length) }),
    );
    socket.write(body.subarray(0, body.length >> 1));
    await sleep(200);
    socket.destroy();
    // The next push goes through at once: nothing holds the lock, nothing is left of the cut one.
    await sleep(200);
    const push = await rawRequest(server.url, '/pub.git/git-receive-pack', {
      method: 'POST',
      headers: { ...auth(), 'content-type': 'application/x-git-receive-pack-request', 'content-encoding': 'gzip' },
      body,
    });
    assert.deepEqual(reportLines(push.body), ['unpack ok', 'ok refs/heads/main']);
    assert.equal((await lsRemote(admin, `${server.url}/pub.git`)).get('refs/heads/main'), oid);
    assert.deepEqual(
      readdirSync(join(root, 'pub.git', 'objects', 'pack')).filter((f) => f.startsWith('.incoming')),
      [],
    );
    await gitOk(admin, ['push', '-q', '--force', `${server.url}/pub.git`, `${parent}:refs/heads/main`], { cwd: work });
  });

  it('makes metric labels of known values only: 2,000 unknown services leave /metrics as it was', async () => {
    const series = (text: string) => text.split('\n').filter((l) => l.startsWith('packferry_http_requests_total{')).length;
    const before = series(await metrics());
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    try {
      const one = (i: number) =>
        new Promise<number>((resolve, reject) => {
          http
            .get(`${server.url}/pub.git/info/refs?service=x-${i}-${'y'.repeat(200)}`, { agent }, (res) => {
              res.resume();
              res.on('end', () => resolve(res.statusCode ?? 0));
            })
            .on('error', reject);
        });
      for (let i = 0; i < 2000; i += 50) {
        const statuses = await Promise.all(Array.from({ length: 50 }, (_, k) => one(i + k)));
        assert.ok(statuses.every((s) => s === 401), 'refused as a repository that does not exist (anonymous: a challenge)');
      }
    } finally {
      agent.destroy();
    }
    const text = await metrics();
    assert.ok(!text.includes('x-1-'), 'no client-chosen label value');
    assert.ok(series(text) <= before + 2, `series: ${before} before, ${series(text)} after`);
    assert.ok(metricValue(text, 'packferry_http_requests_total{route="other",method="GET",status="401"}') >= 2000);
  });

  it('cuts off request bodies that never come, trickle, or never end (408, within --body-timeout)', async () => {
    const headers = { 'content-type': 'application/x-git-upload-pack-request', ...V2 };
    const timeoutsBefore = metricValue(await metrics(), 'packferry_http_timeouts_total{kind="body"}');
    // Headers, then nothing.
    const silent = await openSocket(postHead('/pub.git/git-upload-pack', { ...headers, 'content-length': '100' }));
    // A byte every 250 ms: never silent for a second, but far below 1 KiB/s.
    const trickle = await openSocket(postHead('/pub.git/git-upload-pack', { ...headers, 'content-length': '100000' }));
    const dripping = setInterval(() => trickle.write('0'), 250);
    // Chunked, and never a last chunk.
    const endless = await openSocket(postHead('/pub.git/git-upload-pack', { ...headers, 'transfer-encoding': 'chunked' }));
    endless.write('4\r\n0014\r\n');
    const endlessDrip = setInterval(() => endless.write('1\r\na\r\n'), 250);
    try {
      const results = await Promise.all([silent, trickle, endless].map((s) => closedByServer(s, 8000)));
      for (const r of results) {
        assert.match(r.text, /^HTTP\/1\.1 408 /, r.text);
        assert.match(r.text, /request body timed out/);
        assert.ok(r.openMs < 6000, `closed after ${r.openMs} ms`);
      }
    } finally {
      clearInterval(dripping);
      clearInterval(endlessDrip);
    }
    assert.equal(metricValue(await metrics(), 'packferry_http_timeouts_total{kind="body"}'), timeoutsBefore + 3);
    // A client that sends its body at once is not affected.
    const ok = await runGitClone('after-timeouts');
    assert.ok(ok);
  });

  it('cuts off a client that stops reading its response (after --send-timeout)', async () => {
    const head = (await lsRemote(none, `${server.url}/big.git`)).get('refs/heads/main')!;
    const before = metricValue(await metrics(), 'packferry_http_timeouts_total{kind="send"}');
    const body = fetchRequest(head);
    const socket = await openSocket(
      Buffer.concat([
        Buffer.from(postHead('/big.git/git-upload-pack', { 'content-type': 'application/x-git-upload-pack-request', ...V2, 'content-length': String(body.length) })),
        body,
      ]),
    );
    socket.pause(); // reads nothing
    let sent = before;
    for (let i = 0; i < 100 && sent === before; i++) {
      await sleep(100);
      sent = metricValue(await metrics(), 'packferry_http_timeouts_total{kind="send"}');
    }
    assert.equal(sent, before + 1, 'the stalled response was cut off');
    socket.destroy();
  });

  it('answers "not our ref" and a junk gzip body as Git does: 200 and an ERR line that git prints', async () => {
    const missing = 'deadbeef'.repeat(5);
    const work = join(tmp.path, 'not-ours');
    await gitOk(none, ['clone', '-q', `${server.url}/pub.git`, work]);
    for (const protocol of ['2', '0']) {
      const stderr = await gitFails(none, ['-c', `protocol.version=${protocol}`, 'fetch', 'origin', missing], { cwd: work });
      assert.match(stderr, new RegExp(`remote error: upload-pack: not our ref ${missing}`), stderr);
    }
    for (const service of ['git-upload-pack', 'git-receive-pack']) {
      const res = await rawRequest(server.url, `/pub.git/${service}`, {
        method: 'POST',
        headers: { ...auth(), 'content-type': `application/x-${service}-request`, 'content-encoding': 'gzip' },
        body: Buffer.from('this is not gzip at all'),
      });
      assert.equal(res.status, 200, service);
      assert.match(res.body.toString('latin1'), /^[0-9a-f]{4}ERR request body is not valid gzip/, service);
    }
  });
});

/** A whole clone of pub.git through real git; true when it worked (fsck included). */
async function runGitClone(name: string): Promise<boolean> {
  const dir = join(tmp.path, `clone-${name}`);
  await gitOk(none, ['clone', '-q', `${server.url}/pub.git`, dir]);
  await gitOk(none, ['fsck', '--full', '--no-progress'], { cwd: dir });
  return true;
}

describe('packferry serve bounds requests per client and in total, and sheds load with 503', () => {
  let small: ServeProcess;
  const held: net.Socket[] = [];
  const hold = async (from: string) => {
    const s = await openSocket(postHead('/pub.git/git-upload-pack', { 'content-type': 'application/x-git-upload-pack-request', 'content-length': '100' }), {
      to: small,
      localAddress: from,
    });
    held.push(s);
    await sleep(100);
    return s;
  };
  const ask = (from: string) => rawRequest(small.url, '/pub.git/info/refs?service=git-upload-pack', { localAddress: from });

  before(async () => {
    small = await startServe(['--store', root, '--max-requests', '4', '--max-requests-per-client', '2', '--body-timeout', '30s']);
  });

  it('refuses a client over --max-requests-per-client, and everyone over --max-requests, with Retry-After; /healthz still answers', async () => {
    await hold('127.0.0.1');
    await hold('127.0.0.1');
    const mine = await ask('127.0.0.1');
    assert.equal(mine.status, 503);
    assert.equal(mine.headers['retry-after'], '5');
    assert.equal((await ask('127.0.0.2')).status, 200, 'another client is let in');
    await hold('127.0.0.2');
    await hold('127.0.0.3');
    const full = await ask('127.0.0.4');
    assert.equal(full.status, 503, 'over the total');
    assert.equal((await rawRequest(small.url, '/healthz')).status, 200);
    const text = (await rawRequest(small.url, '/metrics')).body.toString();
    assert.equal(metricValue(text, 'packferry_http_shed_total{reason="client"}'), 1);
    assert.equal(metricValue(text, 'packferry_http_shed_total{reason="requests"}'), 1);
    assert.equal(metricValue(text, 'packferry_http_requests_in_flight'), 4);
    // The held requests end: everyone is let in again.
    for (const s of held.splice(0)) s.destroy();
    await sleep(200);
    assert.equal((await ask('127.0.0.1')).status, 200);
    assert.equal((await ask('127.0.0.4')).status, 200);
  });

  it('sheds every request but /healthz and /metrics above --max-memory', async () => {
    const full = await startServe(['--store', root, '--max-memory', '1']);
    const res = await rawRequest(full.url, '/pub.git/info/refs?service=git-upload-pack');
    assert.equal(res.status, 503);
    assert.equal(res.headers['retry-after'], '5');
    const stderr = await gitFails(none, ['ls-remote', `${full.url}/pub.git`]);
    assert.match(stderr, /503/);
    assert.equal((await rawRequest(full.url, '/healthz')).status, 200);
    assert.ok(metricValue((await rawRequest(full.url, '/metrics')).body.toString(), 'packferry_http_shed_total{reason="memory"}') >= 2);
    await full.stop();
  });
});

describe('packferry serve decides rights before it reads a repository', () => {
  let reader: string;

  before(async () => {
    // 30,000 refs: a 2.8 MB manifest, which a refusal must not read.
    const many = join(tmp.path, 'many');
    git(['init', '-q', '-b', 'main', many]);
    git(['commit', '-q', '--allow-empty', '-m', 'one'], { cwd: many });
    const tip = git(['rev-parse', 'HEAD'], { cwd: many });
    git(['update-ref', '--stdin'], { cwd: many, input: Array.from({ length: 30_000 }, (_, i) => `create refs/tags/t${i} ${tip}\n`).join('') });
    await pf(['mirror', '-q', many, join(root, 'private.git')]);
    // A private repository whose manifest is garbage: refused cleanly (404), never a parse error.
    await pf(['mirror', '-q', many, join(root, 'broken.git')]);
    writeFileSync(join(root, 'broken.git', 'packferry', 'manifest.json'), '{ not json');
    reader = (JSON.parse((await pf(['token', 'create', 'reader', '--read', '--repo', 'other/*', '--store', root, '--json'])).stdout) as { token: string }).token;
  });

  it('refuses a missing and a private repository (30k refs) in the same time, anonymous or with a token for other repositories', async (t) => {
    for (const headers of [{}, { authorization: `Bearer ${reader}` }] as Record<string, string>[]) {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const time = (path: string) =>
        new Promise<{ status: number; ms: number }>((resolve, reject) => {
          const started = process.hrtime.bigint();
          http
            .get(`${server.url}${path}`, { agent, headers }, (res) => {
              res.resume();
              res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: Number(process.hrtime.bigint() - started) / 1e6 }));
            })
            .on('error', reject);
        });
      const priv = '/private.git/info/refs?service=git-upload-pack';
      const gone = '/nothing-here.git/info/refs?service=git-upload-pack';
      try {
        for (let i = 0; i < 20; i++) await time(priv).then(() => time(gone)); // warm up
        const a: number[] = [];
        const b: number[] = [];
        // Interleaved, so that the machine's load moves both alike.
        for (let i = 0; i < 200; i++) {
          const x = await time(priv);
          const y = await time(gone);
          assert.equal(x.status, y.status);
          assert.equal(x.status, headers.authorization ? 404 : 401);
          a.push(x.ms);
          b.push(y.ms);
        }
        const median = (v: number[]) => [...v].sort((p, q) => p - q)[v.length >> 1];
        const ratio = median(a) / median(b);
        t.diagnostic(`${headers.authorization ? 'token' : 'anonymous'}: private ${median(a).toFixed(3)} ms, missing ${median(b).toFixed(3)} ms, ratio ${ratio.toFixed(3)}`);
        assert.ok(ratio > 1 / 1.2 && ratio < 1.2, `medians within 20%: ratio ${ratio.toFixed(3)}`);
      } finally {
        agent.destroy();
      }
    }
  });

  it('never opens a repository it refuses: a private one with a corrupt manifest is a plain 404', async () => {
    const res = await rawRequest(server.url, '/broken.git/info/refs?service=git-upload-pack', { headers: { authorization: `Bearer ${reader}` } });
    assert.equal(res.status, 404);
    assert.equal(res.body.toString(), 'Repository not found\n');
    assert.ok(!server.logs().includes('manifest'), 'nothing about the manifest was logged');
  });
});

describe('packferry serve and repo refuse what would go wrong later', () => {
  it('refuses to serve a store that does not exist (exit 3)', async () => {
    const r = await packferry(['serve', '--store', join(tmp.path, 'no-such-store'), '--listen', '127.0.0.1:0'], { timeoutMs: 15_000 });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /fatal: store .*no-such-store does not exist\nhint: create the directory/);
  });

  it('refuses to serve a bucket it cannot read (no credentials), naming the cause', async () => {
    s3 = await startS3Server({ buckets: ['served'] });
    const env = {
      AWS_ACCESS_KEY_ID: '',
      AWS_SECRET_ACCESS_KEY: '',
      AWS_PROFILE: '',
      AWS_REGION: S3RVER_REGION,
      AWS_CONFIG_FILE: '/dev/null',
      AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    };
    const r = await packferry(['serve', '--store', 's3://served/repos', '--s3-endpoint', s3.endpoint, '--listen', '127.0.0.1:0'], { env, timeoutMs: 30_000 });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /no AWS credentials were found/);
    const missing = await packferry(['serve', '--store', 's3://no-such-bucket/repos', '--s3-endpoint', s3.endpoint, '--listen', '127.0.0.1:0'], {
      env: { ...env, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' },
      timeoutMs: 30_000,
    });
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /no-such-bucket/);
  });

  it('leaves nothing behind when repo create is refused (a bad default branch)', async () => {
    const r = await packferry(['repo', 'create', 'half', '--default-branch', 'bad..name', '--store', root]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /invalid default branch/);
    assert.equal(existsSync(join(root, 'half.git')), false);
  });

  it('refuses a repository name that would put one repository inside another', async () => {
    for (const name of ['pub.git/objects', 'team/a.git/objects', 'x.git/y']) {
      const res = await rawRequest(server.url, '/api/v1/repos', {
        method: 'POST',
        headers: { ...auth(), 'content-type': 'application/json' },
        body: JSON.stringify({ name }),
      });
      assert.equal(res.status, 400, `${name}: ${res.body.toString()}`);
      assert.match(res.body.toString(), /would put the repository inside another/);
    }
    assert.equal(existsSync(join(root, 'pub.git', 'objects.git')), false);
    assert.equal(existsSync(join(root, 'team')), false);
  });

  it('writes tokens.json readable by its owner only', async () => {
    await pf(['token', 'create', 'someone', '--read', '--store', root]);
    assert.equal(statSync(join(root, 'packferry', 'tokens.json')).mode & 0o777, 0o600);
  });
});

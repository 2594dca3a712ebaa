// `packferry serve` against hostile input (issue 5, scenario 4): the real
// server process, requests made by hand where git would never send them.
// - Paths with "..", "%2e%2e", "." segments, backslashes, empty segments,
//   encoded slashes, control characters, absolute file paths: 404, never a
//   path resolved to something else.
// - Ref names git refuses ("refs/heads/../x", "a..b", "HEAD", control
//   characters, ...) in a push: "ng <ref> funny refname", nothing changes.
// - A push cut off in the command list or in the pack (the client's socket
//   destroyed): no ref moves, the lock is released, `packferry store
//   verify` finds no error.
// - A push whose pack lacks an object its new tip reaches: that ref is
//   refused ("missing necessary objects"), the complete one goes through.
// - A push larger than --max-push: refused, nothing changes.
// - Malformed pkt-lines: 200 and an ERR line, as git http-backend answers.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { gitBuffer, tempDir } from '../support/git.js';
import { makeSource, noise } from '../support/mirror-fixtures.js';
import type { RepoSummary } from '../support/repogen.js';
import {
  anonymousClient,
  assertCloneMatches,
  assertStoreVerifies,
  bearerClient,
  commandList,
  FLUSH,
  gitFails,
  gitOk,
  lsRemote,
  pf,
  pkt,
  rawRequest,
  reportLines,
  sortedEntries,
  startServe,
  stopAllServers,
  ZERO_OID,
  type GitClient,
  type ServeProcess,
} from '../support/serve-fixtures.js';

const MAX_PUSH = 256 * 1024;
const tmp = tempDir('packferry-serve-hostile-');
const root = join(tmp.path, 'root');
const none = anonymousClient();
let server: ServeProcess;
let source: RepoSummary;
let token: string;
let admin: GitClient;
let repoUrl: string;
let work: string;
let counter = 0;

const RECEIVE_PACK_REQUEST = 'application/x-git-receive-pack-request';

function auth(): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

/** A POST of `body` to /r.git/SERVICE as the admin. */
function post(service: 'git-receive-pack' | 'git-upload-pack', body: Buffer, headers: Record<string, string> = {}) {
  return rawRequest(server.url, `/r.git/${service}`, {
    method: 'POST',
    headers: { ...auth(), 'content-type': `application/x-${service}-request`, ...headers },
    body,
  });
}

/** A pack with no objects: what git sends when the server has everything. */
function emptyPack(): Buffer {
  const header = Buffer.from('PACK\0\0\0\x02\0\0\0\0', 'latin1');
  return Buffer.concat([header, createHash('sha1').update(header).digest()]);
}

/** A new commit on top of main in the working clone, with a file of `size` random bytes; its id and the pack git would send. */
async function newCommit(size: number): Promise<{ oid: string; parent: string; pack: Buffer }> {
  const parent = await gitOk(none, ['rev-parse', 'HEAD'], { cwd: work });
  writeFileSync(join(work, `blob-${++counter}.bin`), noise(size, `hostile-${counter}`));
  await gitOk(none, ['add', '.'], { cwd: work });
  await gitOk(none, ['commit', '-q', '-m', `commit ${counter}`], { cwd: work });
  const oid = await gitOk(none, ['rev-parse', 'HEAD'], { cwd: work });
  const pack = gitBuffer(['pack-objects', '--stdout', '--revs', '-q'], { cwd: work, input: `${oid}\n^${parent}\n` });
  await gitOk(none, ['reset', '-q', '--hard', parent], { cwd: work });
  return { oid, parent, pack };
}

function receivePackRequestsLogged(): number {
  return server.logs().split('\n').filter((l) => l.includes('"route":"git-receive-pack"') && l.includes('"msg":"request"')).length;
}

before(async () => {
  source = await makeSource(join(tmp.path, 'source.git'), 13);
  await pf(['mirror', source.dir, join(root, 'r.git')]);
  token = (JSON.parse((await pf(['token', 'create', 'root', '--admin', '--store', root, '--json'])).stdout) as { token: string }).token;
  server = await startServe(['--store', root, '--max-push', String(MAX_PUSH)]);
  admin = bearerClient(token);
  repoUrl = `${server.url}/r.git`;
  work = join(tmp.path, 'work');
  await gitOk(admin, ['clone', '-q', repoUrl, work]);
});

after(async () => {
  await stopAllServers();
  tmp.cleanup();
});

describe('packferry serve and hostile input', () => {
  it('answers paths that try to leave or re-route the path with 404', async () => {
    const good = await rawRequest(server.url, '/r.git/HEAD', { headers: auth() });
    assert.equal(good.status, 200, 'the plain path works');
    const paths = [
      '/x/../r.git/HEAD',
      '/../r.git/HEAD',
      '/r.git/../r.git/HEAD',
      '/r.git/objects/../HEAD',
      '/x/%2e%2e/r.git/HEAD',
      '/x/%2E%2E/r.git/HEAD',
      '/x/.%2e/r.git/HEAD',
      '/%2e%2e/%2e%2e/etc/passwd',
      '/./r.git/HEAD',
      '/r.git/./HEAD',
      '/r.git/%2e/HEAD',
      '//r.git/HEAD',
      '//evil.example/r.git/HEAD',
      '/r.git//HEAD',
      '/x\\..\\r.git/HEAD',
      '/r.git\\HEAD',
      '/r.git%5cHEAD',
      '/x%2f..%2fr.git/HEAD',
      '/..%2fr.git/HEAD',
      '/%2fetc/passwd.git/HEAD',
      '/etc/passwd',
      '/tmp/r.git/HEAD',
      `/${root.slice(1)}/r.git/HEAD`,
      '/r.git%00/HEAD',
      '/r%00.git/HEAD',
      '/.git/HEAD',
      '/.r.git/HEAD',
      '/r.git/objects/info/../../HEAD',
      '/r.git/info/refs/../../HEAD',
      '/r.git/packferry/manifest.json',
      '/r.git/packferry/settings.json',
      '/r.git/hooks/pre-receive',
      '/r.git/config',
      '/packferry/tokens.json',
    ];
    for (const path of paths) {
      const res = await rawRequest(server.url, path, { headers: auth() });
      assert.equal(res.status, 404, `${path} -> ${res.status}`);
      assert.equal(res.body.toString(), 'Repository not found\n', path);
    }
    for (const path of ['/x/../r.git/info/refs?service=git-upload-pack', '/x/%2e%2e/r.git/git-receive-pack']) {
      const res = await rawRequest(server.url, path, { method: path.includes('?') ? 'GET' : 'POST', headers: auth(), body: path.includes('?') ? undefined : '0000' });
      assert.equal(res.status, 404, path);
    }
    // git never sends such paths, and its own URL handling keeps working.
    await gitOk(admin, ['ls-remote', `${server.url}/r.git/`]);
  });

  it('survives request targets that are no path at all (one stopped the whole server)', async () => {
    const { port } = new URL(server.url);
    const targets = ['http://[bad', 'http://a:99999/r.git/HEAD', '%', '*', 'r.git/HEAD', 'http:///r.git/HEAD', 'http://x/../r.git/HEAD'];
    for (const target of targets) {
      const head = await new Promise<string>((resolve, reject) => {
        const socket = net.connect(Number(port), '127.0.0.1', () => {
          socket.end(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`);
        });
        let text = '';
        socket.setEncoding('latin1');
        socket.on('data', (d: string) => (text += d));
        socket.on('close', () => resolve(text.split('\r\n')[0]));
        socket.on('error', reject);
      });
      // Refused by packferry, by Node's HTTP parser (400), or the parser just closes the connection.
      assert.match(head, /^(HTTP\/1\.1 (404|400) .*)?$/, `${target}: ${head}`);
      assert.equal((await rawRequest(server.url, '/healthz')).body.toString(), 'ok\n', `the server is still up after ${target}`);
    }
    // The absolute form of a plain path is served.
    assert.equal((await rawRequest(server.url, `${server.url}/r.git/HEAD`, { headers: auth() })).status, 200);
  });

  it('refuses hostile ref names in a push as funny refnames and changes nothing', async () => {
    const before = await lsRemote(admin, repoUrl);
    const tip = before.get('refs/heads/main')!;
    const names = [
      'refs/heads/../x',
      'refs/heads/a..b',
      'HEAD',
      'refs/../HEAD',
      'refs/heads/ctl\x01x',
      'refs/heads/del\x7fx',
      'refs/heads/tab\tx',
      'refs/heads/nul\0x',
      'refs/heads/x.lock',
      'refs/heads/.hidden',
      'refs/heads/end.',
      'refs/heads/a:b',
      'refs/heads/a~1',
      'refs/heads/a^',
      'refs/heads/q?',
      'refs/heads/star*',
      'refs/heads/br[',
      'refs/heads/a\\b',
      'refs/heads/at@{1}',
      'refs/heads//double',
      'refs/heads/trailing/',
      '/refs/heads/abs',
      'refs/heads/@{1}',
      'refs',
      'main',
    ];
    for (const caps of ['report-status side-band-64k', 'report-status', 'report-status-v2 atomic']) {
      const body = Buffer.concat([commandList(names.map((ref) => ({ old: ZERO_OID, new: tip, ref })), caps), emptyPack()]);
      const res = await post('git-receive-pack', body);
      assert.equal(res.status, 200);
      const lines = reportLines(res.body);
      assert.equal(lines[0], 'unpack ok', caps);
      assert.deepEqual(
        lines.slice(1),
        names.map((n) => `ng ${n} funny refname`),
        caps,
      );
    }
    // A delete of a funny name (no pack at all).
    const del = await post('git-receive-pack', commandList([{ old: tip, new: ZERO_OID, ref: 'refs/heads/../main' }]));
    assert.deepEqual(reportLines(del.body), ['unpack ok', 'ng refs/heads/../main funny refname']);
    assert.deepEqual(sortedEntries(await lsRemote(admin, repoUrl)), sortedEntries(before), 'no ref changed');
    await assertStoreVerifies(join(root, 'r.git'));
  });

  it('refuses a ref beside a directory of refs of the same name (refs/heads/main/x, refs/heads), which no clone could store, in Git\'s words', async () => {
    const before = await lsRemote(admin, repoUrl);
    const tip = before.get('refs/heads/main')!;
    // Git's receive-pack refuses the one ref and takes the other (not atomic), and says why beside it.
    const stderr = await gitFails(admin, ['push', 'origin', 'main:refs/heads/main/sub', 'main:refs/heads/fresh'], { cwd: work });
    assert.match(stderr, /remote: error: cannot lock ref 'refs\/heads\/main\/sub': 'refs\/heads\/main' exists; cannot create 'refs\/heads\/main\/sub'/);
    assert.match(stderr, /! \[remote rejected\] main -> main\/sub \(failed to update ref\)/);
    assert.match(stderr, /\* \[new branch\] +main -> fresh/);
    // In one push, as Git's ref transaction meets them, in order: refs/tags/new/one is made, then refs/tags/new is in its way.
    const res = await post(
      'git-receive-pack',
      Buffer.concat([
        commandList([
          { old: ZERO_OID, new: tip, ref: 'refs/heads' },
          { old: ZERO_OID, new: tip, ref: 'refs/tags/new/one' },
          { old: ZERO_OID, new: tip, ref: 'refs/tags/new' },
          { old: ZERO_OID, new: tip, ref: 'refs/heads/fresh/deeper' },
        ]),
        emptyPack(),
      ]),
    );
    assert.deepEqual(reportLines(res.body), [
      'unpack ok',
      'ng refs/heads failed to update ref',
      'ok refs/tags/new/one',
      'ng refs/tags/new failed to update ref',
      'ng refs/heads/fresh/deeper failed to update ref',
    ]);
    const said = res.body.toString('utf8');
    const firstHead = [...before.keys(), 'refs/heads/fresh'].filter((n) => n.startsWith('refs/heads/')).sort()[0];
    assert.ok(said.includes(`error: cannot lock ref 'refs/heads': '${firstHead}' exists; cannot create 'refs/heads'`), said);
    assert.ok(said.includes("error: cannot lock ref 'refs/tags/new': 'refs/tags/new/one' exists; cannot create 'refs/tags/new'"), said);
    assert.ok(said.includes("error: cannot lock ref 'refs/heads/fresh/deeper': 'refs/heads/fresh' exists; cannot create 'refs/heads/fresh/deeper'"), said);
    // Deleting the ref in the way in the same push lets the other through.
    await gitOk(admin, ['push', '-q', 'origin', ':refs/heads/fresh', 'main:refs/heads/fresh/deeper'], { cwd: work });
    const after = await lsRemote(admin, repoUrl);
    assert.equal(after.get('refs/heads/fresh/deeper'), tip);
    assert.equal(after.has('refs/heads/fresh'), false);
    const mirror = join(tmp.path, 'df-mirror.git');
    await gitOk(admin, ['clone', '-q', '--mirror', repoUrl, mirror]);
    await assertCloneMatches(admin, repoUrl, mirror);
    await gitOk(admin, ['push', '-q', 'origin', ':refs/heads/fresh/deeper', ':refs/tags/new/one'], { cwd: work });
    assert.deepEqual(sortedEntries(await lsRemote(admin, repoUrl)), sortedEntries(before));
  });

  it('changes nothing when a push is cut off, in the command list or in the pack, and releases the lock', async () => {
    const before = await lsRemote(admin, repoUrl);
    const { oid, parent, pack } = await newCommit(48 * 1024);
    assert.equal(before.get('refs/heads/main'), parent);
    const commands = commandList([{ old: parent, new: oid, ref: 'refs/heads/main' }], 'report-status side-band-64k ofs-delta');
    const full = Buffer.concat([commands, pack]);
    const cuts = [
      ['in the command list', 30],
      ['after the command list', commands.length],
      ['in the middle of the pack', commands.length + Math.floor(pack.length / 2)],
      ['before the pack checksum', full.length - 10],
    ] as const;
    for (const [label, at] of cuts) {
      const logged = receivePackRequestsLogged();
      await new Promise<void>((resolve) => {
        const req = http.request(`${repoUrl}/git-receive-pack`, {
          method: 'POST',
          agent: false,
          headers: { ...auth(), 'content-type': RECEIVE_PACK_REQUEST, 'content-length': String(full.length) },
        });
        req.on('error', () => resolve()); // the socket we destroy
        req.on('response', (res) => {
          res.resume();
          res.on('close', () => resolve());
        });
        req.write(full.subarray(0, at), () => {
          setTimeout(() => {
            req.destroy();
            resolve();
          }, 150);
        });
      });
      // Wait until the server has finished with the request.
      for (let i = 0; i < 100 && receivePackRequestsLogged() === logged; i++) await sleep(50);
      assert.ok(receivePackRequestsLogged() > logged, `${label}: the server finished the request`);
      assert.deepEqual(sortedEntries(await lsRemote(admin, repoUrl)), sortedEntries(before), `${label}: no ref moved`);
      await assertStoreVerifies(join(root, 'r.git'));
    }
    // The lock is free: the same push, whole, goes through.
    const res = await post('git-receive-pack', full);
    assert.deepEqual(reportLines(res.body), ['unpack ok', 'ok refs/heads/main']);
    assert.equal((await lsRemote(admin, repoUrl)).get('refs/heads/main'), oid);
    await gitOk(admin, ['pull', '-q', '--ff-only', 'origin', 'main'], { cwd: work });
    await assertCloneMatches(admin, repoUrl, work);
    await assertStoreVerifies(join(root, 'r.git'));
  });

  it('refuses a push whose pack lacks an object the new tip reaches ("missing necessary objects") and changes nothing', async () => {
    const before = await lsRemote(admin, repoUrl);
    const { oid, parent } = await newCommit(1024);
    // The commit and its root tree, without the new blob.
    const treeOid = await gitOk(none, ['rev-parse', `${oid}^{tree}`], { cwd: work });
    const pack = gitBuffer(['pack-objects', '--stdout', '-q'], { cwd: work, input: `${oid}\n${treeOid}\n` });
    const res = await post('git-receive-pack', Buffer.concat([commandList([{ old: parent, new: oid, ref: 'refs/heads/main' }, { old: ZERO_OID, new: parent, ref: 'refs/heads/fine' }]), pack]));
    assert.deepEqual(reportLines(res.body), ['unpack ok', 'ng refs/heads/main missing necessary objects', 'ok refs/heads/fine']);
    const after = await lsRemote(admin, repoUrl);
    assert.equal(after.get('refs/heads/main'), before.get('refs/heads/main'), 'main did not move');
    assert.equal(after.get('refs/heads/fine'), parent, 'the complete ref went through');
    await gitOk(admin, ['push', '-q', 'origin', ':refs/heads/fine'], { cwd: work });
    await assertStoreVerifies(join(root, 'r.git'));
  });

  it('refuses a push larger than --max-push and changes nothing', async () => {
    const before = await lsRemote(admin, repoUrl);
    const big = await newCommit(MAX_PUSH * 2);
    // Through git: the push fails.
    await gitOk(none, ['update-ref', 'refs/heads/big', big.oid], { cwd: work });
    const stderr = await gitFails(admin, ['push', 'origin', 'big:refs/heads/big'], { cwd: work });
    assert.match(stderr, /HTTP 413/, stderr);
    // By hand, with the whole pack and a Content-Length that says so.
    const body = Buffer.concat([commandList([{ old: big.parent, new: big.oid, ref: 'refs/heads/main' }]), big.pack]);
    const res = await post('git-receive-pack', body);
    assert.equal(res.status, 413);
    assert.match(res.body.toString(), /larger than 262144 bytes/);
    // Streamed without a length (as git sends bodies over http.postBuffer): refused in the
    // report once the limit is passed.
    const streamed = await new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
      const req = http.request(`${repoUrl}/git-receive-pack`, { method: 'POST', agent: false, headers: { ...auth(), 'content-type': RECEIVE_PACK_REQUEST } }, (r) => {
        const parts: Buffer[] = [];
        r.on('data', (d: Buffer) => parts.push(d));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, body: Buffer.concat(parts) }));
      });
      req.on('error', reject);
      for (let at = 0; at < body.length; at += 16 * 1024) req.write(body.subarray(at, at + 16 * 1024));
      req.end();
    });
    assert.equal(streamed.status, 200);
    assert.deepEqual(reportLines(streamed.body), ['unpack request body is larger than 262144 bytes', 'ng refs/heads/main unpacker error']);
    assert.deepEqual(sortedEntries(await lsRemote(admin, repoUrl)), sortedEntries(before));
    await assertStoreVerifies(join(root, 'r.git'));
    // A push within the limit still works.
    const small = await newCommit(1024);
    const ok = await post('git-receive-pack', Buffer.concat([commandList([{ old: small.parent, new: small.oid, ref: 'refs/heads/main' }]), small.pack]));
    assert.deepEqual(reportLines(ok.body), ['unpack ok', 'ok refs/heads/main']);
    await gitOk(admin, ['pull', '-q', '--ff-only', 'origin', 'main'], { cwd: work });
  });

  it('answers malformed pkt-lines as Git does: 200 and an ERR line, which git prints', async () => {
    const before = await lsRemote(admin, repoUrl);
    const tip = before.get('refs/heads/main')!;
    const bodies: [string, Buffer][] = [
      ['not hex', Buffer.from('zzzz')],
      ['length 3', Buffer.from('0003')],
      ['too long', Buffer.from('ffff')],
      ['cut in the length', Buffer.from('00')],
      ['cut in the data', Buffer.from('0040abc')],
      ['no flush after the commands', pkt(`${ZERO_OID} ${tip} refs/heads/x\0report-status\n`)],
      ['a bad command line', Buffer.concat([pkt('this is not a command\n'), FLUSH])],
      ['a short object id', Buffer.concat([pkt(`${ZERO_OID.slice(1)} ${tip} refs/heads/x\0report-status\n`), FLUSH])],
      ['a delim packet', Buffer.from('0001')],
      ['an empty body', Buffer.alloc(0)],
    ];
    const errLine = /^[0-9a-f]{4}ERR \S/;
    for (const [label, body] of bodies) {
      const res = await post('git-receive-pack', body);
      assert.equal(res.status, 200, `${label}: ${res.status} ${res.body.toString()}`);
      if (label !== 'an empty body') assert.match(res.body.toString('latin1'), errLine, label);
    }
    for (const [label, body] of bodies.slice(0, 5)) {
      for (const headers of [{}, { 'git-protocol': 'version=2' }] as Record<string, string>[]) {
        const res = await post('git-upload-pack', body, headers);
        assert.equal(res.status, 200, `upload-pack ${JSON.stringify(headers)}, ${label}: ${res.status} ${res.body.toString()}`);
        assert.match(res.body.toString('latin1'), errLine, `upload-pack ${JSON.stringify(headers)}, ${label}`);
      }
    }
    assert.deepEqual(sortedEntries(await lsRemote(admin, repoUrl)), sortedEntries(before));
    assert.equal((await rawRequest(server.url, '/healthz')).body.toString(), 'ok\n', 'the server is still up');
    await assertStoreVerifies(join(root, 'r.git'));
  });
});

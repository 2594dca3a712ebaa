// SshTransport against a real OpenSSH server on loopback (test/support/sshd.ts)
// and the real git-upload-pack / git-receive-pack behind it:
// gitprotocol-pack(5) "SSH Transport", gitprotocol-v2(5) "SSH and File
// Transport". Advertisements in v0, v1 and v2, a v2 ls-refs and fetch whose
// pack `git index-pack` accepts, a v0 push through receive-pack, scp-like
// URLs, GIT_SSH_COMMAND / GIT_SSH, and each failure's stable error code: an
// unknown or changed host key, a refused key, a closed port, a missing
// repository or remote program, a connection cut mid-pack, an abort, a
// failing request body.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, PackferryError, isPackferryError } from '../../src/core/errors.js';
import { delimPkt, flushPkt, lineText, pktLine, pktLineText, type Packet } from '../../src/protocol/pkt-line.js';
import type { PktLineReader } from '../../src/protocol/pkt-line-reader.js';
import { demuxSideBand } from '../../src/protocol/side-band.js';
import { SshTransport, type SshTransportOptions } from '../../src/transport/ssh.js';
import type { GitServiceName, ServiceSession } from '../../src/transport/types.js';
import { parseGitUrl } from '../../src/transport/url.js';
import { git, gitAsync, gitBuffer, gitEnv } from '../support/git.js';
import { generateRepo } from '../support/repogen.js';
import { freePort, startSshd, type Sshd } from '../support/sshd.js';

const ZERO_ID = '0'.repeat(40);

let sshd: Sshd;
/** A generated repository served over ssh. */
let repo: string;
let mainOid: string;
/** A repository whose pack (~24 MiB of random bytes) is larger than every buffer between us and the server. */
let big: string;
let bigOid: string;

before(async () => {
  sshd = await startSshd();
  repo = join(sshd.dir, 'src.git');
  const summary = await generateRepo(repo, { commits: 24, files: 12, largeFiles: 1, largeFileSize: 256 * 1024 });
  mainOid = summary.head;
  big = join(sshd.dir, 'big.git');
  git(['init', '-q', '--bare', big]);
  git(['config', 'core.compression', '0'], { cwd: big });
  const blob = git(['hash-object', '-w', '--stdin'], { cwd: big, input: randomBytes(24 * 1024 * 1024) });
  const tree = git(['mktree'], { cwd: big, input: `100644 blob ${blob}\trandom.bin\n` });
  bigOid = git(['commit-tree', tree, '-m', 'random'], { cwd: big });
  git(['update-ref', 'refs/heads/main', bigOid], { cwd: big });
});

after(async () => {
  await sshd?.stop();
});

function transport(url: string, options: SshTransportOptions = {}): SshTransport {
  return new SshTransport(parseGitUrl(url), {
    identityFile: sshd.identityFile,
    knownHostsFile: sshd.knownHostsFile,
    ...options,
  });
}

function open(
  url: string,
  service: GitServiceName = 'git-upload-pack',
  protocolVersion: 0 | 1 | 2 = 2,
  options: SshTransportOptions = {},
  signal?: AbortSignal,
): Promise<ServiceSession> {
  return transport(url, options).open(service, { protocolVersion, signal });
}

function text(packet: Packet): string {
  assert.equal(packet.type, 'data', `expected a data packet, got ${packet.type}`);
  return lineText(packet.data);
}

/** Data lines up to the next flush. */
async function linesUntilFlush(reader: PktLineReader): Promise<string[]> {
  const lines: string[] = [];
  for (let packet = await reader.read(); packet.type !== 'flush'; packet = await reader.read()) lines.push(text(packet));
  return lines;
}

/** Every ref of a repository and HEAD, as "<oid> <name>" lines sorted by name. */
function refsOf(dir: string): string[] {
  const refs = git(['for-each-ref', '--format=%(objectname) %(refname)'], { cwd: dir }).split('\n');
  return [`${git(['rev-parse', 'HEAD'], { cwd: dir })} HEAD`, ...refs].sort((a, b) => (a.split(' ')[1] < b.split(' ')[1] ? -1 : 1));
}

function fetchRequest(oid: string): Buffer {
  return Buffer.concat([pktLineText('command=fetch'), delimPkt, pktLineText('no-progress'), pktLineText(`want ${oid}`), pktLineText('done'), flushPkt]);
}

/** Reads a v2 capability advertisement (after "version 2") to its flush. */
async function readV2Capabilities(reader: PktLineReader): Promise<string[]> {
  assert.equal(text(await reader.read()), 'version 2');
  return linesUntilFlush(reader);
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<PackferryError> {
  let caught: unknown;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught !== undefined, `expected ${code}, but it succeeded`);
  assert.ok(isPackferryError(caught), `expected a PackferryError, got ${String(caught)}`);
  assert.equal(caught.code, code, `expected ${code}, got ${caught.code}: ${caught.message}`);
  return caught;
}

async function waitForNoSessions(): Promise<void> {
  const deadline = Date.now() + 5000;
  while (sshd.sessionPids().length > 0) {
    assert.ok(Date.now() < deadline, `sshd sessions still running: ${sshd.sessionPids().join(' ')}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('the test sshd', () => {
  it('serves real git: clone ssh://root@127.0.0.1:PORT/abs/path/repo.git', async () => {
    const dest = join(sshd.dir, 'clone');
    const result = await gitAsync(['clone', '-q', '--bare', sshd.url(repo), dest], {
      env: {
        GIT_SSH_COMMAND: `ssh -i ${sshd.identityFile} -o UserKnownHostsFile=${sshd.knownHostsFile} -o BatchMode=yes`,
      },
    });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(git(['rev-parse', 'refs/heads/main'], { cwd: dest }), mainOid);
    git(['fsck', '--full'], { cwd: dest });
  });
});

describe('SshTransport: upload-pack', () => {
  it('v0: the ref advertisement, capabilities on the first line; close() ends it cleanly with a flush', async () => {
    const session = await open(sshd.url(repo), 'git-upload-pack', 0);
    assert.equal(session.stateless, false);
    const lines = await linesUntilFlush(session.advertisement);
    const [first, caps] = lines[0].split('\0');
    assert.ok(caps.split(' ').includes('multi_ack_detailed'), caps);
    assert.ok(!lines[0].startsWith('version'), 'no version line in v0');
    const advertised = [first, ...lines.slice(1)].filter((l) => !l.endsWith('^{}'));
    assert.deepEqual([...advertised].sort((a, b) => (a.split(' ')[1] < b.split(' ')[1] ? -1 : 1)), refsOf(repo));
    await session.close();
    await session.close(); // safe twice
  });

  it('v1: "version 1" comes first', async () => {
    const session = await open(sshd.url(repo), 'git-upload-pack', 1);
    assert.equal(text(await session.advertisement.read()), 'version 1');
    const lines = await linesUntilFlush(session.advertisement);
    assert.equal(lines[0].split('\0')[0], `${mainOid} HEAD`);
    await session.close();
  });

  it('v2: capabilities, ls-refs, then a fetch whose pack git index-pack accepts', async () => {
    const session = await open(sshd.url(repo), 'git-upload-pack', 2);
    const caps = await readV2Capabilities(session.advertisement);
    assert.ok(caps.includes('ls-refs=unborn'), caps.join(','));
    assert.ok(caps.some((c) => c.startsWith('fetch')), caps.join(','));

    const lsRefs = await session.request(
      Buffer.concat([pktLineText('command=ls-refs'), delimPkt, pktLineText('symrefs'), flushPkt]),
    );
    assert.equal(lsRefs, session.advertisement, 'a stateful transport answers on the same reader');
    const refs = await linesUntilFlush(lsRefs);
    assert.ok(refs.includes(`${mainOid} HEAD symref-target:refs/heads/main`), refs[0]);
    assert.deepEqual(
      refs.map((l) => l.split(' ').slice(0, 2).join(' ')).sort((a, b) => (a.split(' ')[1] < b.split(' ')[1] ? -1 : 1)),
      refsOf(repo),
    );

    const response = await session.request(fetchRequest(mainOid));
    assert.equal(text(await response.read()), 'packfile');
    const chunks: Uint8Array[] = [];
    const demux = demuxSideBand(response);
    let step = await demux.next();
    while (step.done !== true) {
      chunks.push(Buffer.from(step.value));
      step = await demux.next();
    }
    assert.equal(step.value.type, 'flush');
    await session.close();

    const dest = join(sshd.dir, 'fetched.git');
    git(['init', '-q', '--bare', dest]);
    const indexed = git(['index-pack', '--stdin'], { cwd: dest, input: Buffer.concat(chunks) });
    assert.match(indexed, /^pack\t[0-9a-f]{40}$/);
    git(['update-ref', 'refs/heads/main', mainOid], { cwd: dest });
    git(['fsck', '--full', '--no-dangling'], { cwd: dest });
    assert.equal(git(['rev-list', '--objects', 'main'], { cwd: dest }), git(['rev-list', '--objects', mainOid], { cwd: repo }));
    await waitForNoSessions();
  });

  it('close() in the middle of a pack hangs up (as Git closes its end) without an error, and the server session ends', async () => {
    const session = await open(sshd.url(big));
    await readV2Capabilities(session.advertisement);
    const response = await session.request(fetchRequest(bigOid));
    assert.equal(text(await response.read()), 'packfile');
    const demux = demuxSideBand(response);
    const first = await demux.next();
    assert.equal(first.done, false);
    await session.close();
    await waitForNoSessions();
  });

  it('scp-like URL: user@[127.0.0.1:PORT]:/abs/path', async () => {
    const session = await open(`${sshd.user}@[127.0.0.1:${sshd.port}]:${repo}`);
    await readV2Capabilities(session.advertisement);
    await session.close();
  });
});

describe('SshTransport: receive-pack', () => {
  it('pushes a streamed pack (v2 asked, v0 spoken as Git does); report-status; the ref appears', async () => {
    const target = join(sshd.dir, 'target.git');
    git(['init', '-q', '--bare', target]);
    const session = await open(sshd.url(target), 'git-receive-pack', 2);
    const advertisement = await linesUntilFlush(session.advertisement);
    const [first, caps] = advertisement[0].split('\0');
    assert.equal(first, `${ZERO_ID} capabilities^{}`);
    assert.ok(caps.split(' ').includes('report-status'), caps);

    async function* body(): AsyncGenerator<Uint8Array> {
      yield Buffer.concat([pktLine(`${ZERO_ID} ${mainOid} refs/heads/x\0report-status`), flushPkt]);
      const packer = spawn('git', ['pack-objects', '--stdout', '--revs', '-q'], { cwd: repo, env: gitEnv, stdio: ['pipe', 'pipe', 'inherit'] });
      packer.stdin.end(`${mainOid}\n`);
      for await (const chunk of packer.stdout) yield chunk as Buffer;
    }
    const response = await session.request(body(), { end: true });
    assert.deepEqual(await linesUntilFlush(response), ['unpack ok', 'ok refs/heads/x']);
    await session.close();
    assert.equal(git(['rev-parse', 'refs/heads/x'], { cwd: target }), mainOid);
    git(['fsck', '--full', '--no-dangling'], { cwd: target });
    await expectCode(session.request(flushPkt), ErrorCode.Usage);
  });
});

describe('SshTransport: GIT_SSH_COMMAND and GIT_SSH', () => {
  const realSsh = execFileSync('sh', ['-c', 'command -v ssh'], { encoding: 'utf8' }).trim();

  /** A script that logs GIT_PROTOCOL and its arguments, then runs the real ssh. */
  function wrapper(path: string, logFile: string): void {
    writeFileSync(
      path,
      `#!/bin/sh\n{ printf 'GIT_PROTOCOL=%s' "$GIT_PROTOCOL"; for a in "$@"; do printf '\\037%s' "$a"; done; printf '\\n'; } >> '${logFile}'\nexec '${realSsh}' "$@"\n`,
    );
    chmodSync(path, 0o755);
  }
  const calls = (logFile: string): string[][] => readFileSync(logFile, 'utf8').trimEnd().split('\n').map((l) => l.split('\x1f'));

  it('GIT_SSH_COMMAND runs through the shell, first probed with -G as Git does for an unknown program', async () => {
    const logFile = join(sshd.dir, 'command.log');
    const script = join(sshd.dir, 'logging ssh wrapper');
    wrapper(script, logFile);
    const session = await open(sshd.url(repo), 'git-upload-pack', 2, {
      env: { ...process.env, GIT_SSH_COMMAND: `'${script}' -o Compression=no`, GIT_SSH: '/nonexistent/ssh' },
    });
    await readV2Capabilities(session.advertisement);
    await session.close();
    const [probe, real] = calls(logFile);
    assert.deepEqual(probe, [
      'GIT_PROTOCOL=',
      '-o',
      'Compression=no',
      '-G',
      '-o',
      'SendEnv=GIT_PROTOCOL',
      '-p',
      String(sshd.port),
      `${sshd.user}@127.0.0.1`,
    ]);
    assert.deepEqual(real, [
      'GIT_PROTOCOL=version=2',
      '-o',
      'Compression=no',
      '-o',
      'SendEnv=GIT_PROTOCOL',
      '-p',
      String(sshd.port),
      '-o',
      'BatchMode=yes',
      '-o',
      'StrictHostKeyChecking=yes',
      '-i',
      sshd.identityFile,
      '-o',
      'IdentitiesOnly=yes',
      '-o',
      `UserKnownHostsFile=${sshd.knownHostsFile}`,
      `${sshd.user}@127.0.0.1`,
      `git-upload-pack '${repo}'`,
    ]);
  });

  it('GIT_SSH names a program run without a shell; one called "ssh" is OpenSSH without a probe', async () => {
    const logFile = join(sshd.dir, 'program.log');
    const dir = join(sshd.dir, 'bin');
    execFileSync('mkdir', ['-p', dir]);
    wrapper(join(dir, 'ssh'), logFile);
    const session = await open(sshd.url(repo), 'git-upload-pack', 0, { env: { ...process.env, GIT_SSH: join(dir, 'ssh') } });
    await linesUntilFlush(session.advertisement);
    await session.close();
    const all = calls(logFile);
    assert.equal(all.length, 1, 'no -G probe');
    assert.equal(all[0][0], 'GIT_PROTOCOL=', 'v0 sends no GIT_PROTOCOL');
    assert.ok(!all[0].includes('SendEnv=GIT_PROTOCOL'));
    assert.equal(all[0].at(-1), `git-upload-pack '${repo}'`);
  });

  it("the user's StrictHostKeyChecking=accept-new takes an unknown host key and records it", async () => {
    const knownHostsFile = join(sshd.dir, 'fresh_known_hosts');
    writeFileSync(knownHostsFile, '');
    const session = await open(sshd.url(repo), 'git-upload-pack', 2, { knownHostsFile, strictHostKeyChecking: 'accept-new' });
    await readV2Capabilities(session.advertisement);
    await session.close();
    assert.ok(readFileSync(knownHostsFile, 'utf8').includes(sshd.hostPublicKey.split(' ').slice(0, 2).join(' ')));
  });

  it('an ssh program that does not exist: ERR_TRANSPORT_CONNECT', async () => {
    const err = await expectCode(open(sshd.url(repo), 'git-upload-pack', 2, { env: { ...process.env, GIT_SSH: '/nonexistent/ssh' } }), ErrorCode.TransportConnect);
    assert.match(err.message, /\/nonexistent\/ssh/);
  });
});

describe('SshTransport: failures have stable codes', () => {
  it('unknown host key (empty known_hosts): ERR_SSH_HOST_KEY', async () => {
    const knownHostsFile = join(sshd.dir, 'empty_known_hosts');
    writeFileSync(knownHostsFile, '');
    const err = await expectCode(open(sshd.url(repo), 'git-upload-pack', 2, { knownHostsFile }), ErrorCode.SshHostKey);
    assert.match(err.message, /Host key verification failed/);
    assert.match(err.hint ?? '', new RegExp(`ssh-keyscan -p ${sshd.port} 127\\.0\\.0\\.1`));
    assert.equal(readFileSync(knownHostsFile, 'utf8'), '', 'the key was not accepted silently');
  });

  it('changed host key: ERR_SSH_HOST_KEY', async () => {
    const other = readFileSync(`${sshd.makeKey('impostor')}.pub`, 'utf8').split(' ').slice(0, 2).join(' ');
    const knownHostsFile = join(sshd.dir, 'changed_known_hosts');
    writeFileSync(knownHostsFile, `[127.0.0.1]:${sshd.port} ${other}\n`);
    const err = await expectCode(open(sshd.url(repo), 'git-upload-pack', 2, { knownHostsFile }), ErrorCode.SshHostKey);
    assert.match(err.message, /REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
  });

  it('a key the server does not accept: ERR_TRANSPORT_AUTH', async () => {
    const err = await expectCode(
      open(sshd.url(repo), 'git-upload-pack', 2, { identityFile: sshd.makeKey('stranger') }),
      ErrorCode.TransportAuth,
    );
    assert.match(err.message, /Permission denied \(publickey/);
    assert.match(err.hint ?? '', /--ssh-key/);
  });

  it('a closed port: ERR_TRANSPORT_CONNECT', async () => {
    const port = await freePort();
    const err = await expectCode(open(`ssh://${sshd.user}@127.0.0.1:${port}${repo}`), ErrorCode.TransportConnect);
    assert.match(err.message, /Connection refused/);
  });

  it('a missing repository: ERR_NOT_FOUND', async () => {
    const err = await expectCode(open(sshd.url(join(sshd.dir, 'missing.git'))), ErrorCode.NotFound);
    assert.match(err.message, /does not appear to be a git repository/);
  });

  it('a remote program that does not exist: ERR_REMOTE with a hint, not ERR_NOT_FOUND', async () => {
    const err = await expectCode(open(sshd.url(repo), 'git-upload-pack', 2, { uploadPack: 'git-no-such-upload-pack' }), ErrorCode.RemoteError);
    assert.match(err.message, /git-no-such-upload-pack: command not found/);
    assert.match(err.hint ?? '', /installed on the server/);
  });

  it('the sshd session killed mid-pack: ERR_TRANSPORT_INTERRUPTED from the reader, and from close()', async () => {
    const session = await open(sshd.url(big));
    await readV2Capabilities(session.advertisement);
    const response = await session.request(fetchRequest(bigOid));
    assert.equal(text(await response.read()), 'packfile');
    let received = 0;
    let killed = 0;
    const caught = await (async () => {
      try {
        for await (const chunk of demuxSideBand(response)) {
          received += chunk.length;
          if (killed === 0) killed = sshd.killSessions();
        }
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    assert.ok(killed > 0, 'there was a session to kill');
    assert.ok(isPackferryError(caught, ErrorCode.TransportInterrupted), `got ${String(caught)}`);
    assert.ok(received < 24 * 1024 * 1024, `only part of the pack arrived (${received} bytes)`);
    await assert.rejects(session.request(flushPkt), (err: unknown) => err === caught);
    await assert.rejects(session.close(), (err: unknown) => err === caught);
  });

  it('an abort kills ssh: the reader and close() fail with ERR_ABORTED, the server session ends', async () => {
    const controller = new AbortController();
    const session = await open(sshd.url(big), 'git-upload-pack', 2, {}, controller.signal);
    await readV2Capabilities(session.advertisement);
    const response = await session.request(fetchRequest(bigOid));
    assert.equal(text(await response.read()), 'packfile');
    controller.abort(new Error('user pressed ^C'));
    await expectCode(response.read(), ErrorCode.Aborted);
    const started = Date.now();
    await expectCode(session.close(), ErrorCode.Aborted);
    assert.ok(Date.now() - started < 2500, 'close() returned within the kill grace period');
    await waitForNoSessions();
  });

  it('an abort before open(): ERR_ABORTED without starting ssh', async () => {
    await expectCode(open(sshd.url(repo), 'git-upload-pack', 2, {}, AbortSignal.abort()), ErrorCode.Aborted);
  });

  it("a request body that fails stops the service; the reader and close() report the body's error", async () => {
    const session = await open(sshd.url(repo), 'git-receive-pack', 0);
    await linesUntilFlush(session.advertisement);
    const bodyError = new PackferryError(ErrorCode.PackChecksum, 'pack checksum mismatch (test)');
    async function* body(): AsyncGenerator<Uint8Array> {
      yield pktLine(`${ZERO_ID} ${mainOid} refs/heads/never\0report-status`);
      throw bodyError;
    }
    const reader = await session.request(body(), { end: true });
    await assert.rejects(reader.read(), (err: unknown) => err === bodyError);
    await assert.rejects(session.close(), (err: unknown) => err === bodyError);
    assert.throws(() => gitBuffer(['rev-parse', '--verify', '-q', 'refs/heads/never'], { cwd: repo }));
  });
});

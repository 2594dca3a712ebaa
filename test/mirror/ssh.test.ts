// `packferry mirror` over ssh: a real OpenSSH server on loopback
// (test/support/sshd.ts) running git-upload-pack / git-receive-pack, through
// the shared acceptance suite; then ssh on one side only. A stand-in
// upload-pack run on the server (the transport's uploadPack) cuts a transfer
// or adds refs with invalid names to the advertisement.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { formatMirror } from '../../src/cli/mirror-report.js';
import { startSshd, type Sshd } from '../support/sshd.js';
import {
  assertMirrored,
  commitFiles,
  installFakeGit,
  initBare,
  makeSource,
  mirrorConformance,
  mirrorUrls,
  packferry,
  type FakeGit,
} from '../support/mirror-fixtures.js';

let sshd: Sshd;
let fake: FakeGit;
before(async () => {
  sshd = await startSshd();
  fake = installFakeGit(join(sshd.dir, 'fake'));
});
after(async () => {
  if (sshd !== undefined) {
    // The shared connection's master process; it would also go when sshd drops the connection.
    spawnSync('ssh', ['-o', `ControlPath=${controlPath()}`, '-O', 'exit', '-p', String(sshd.port), `${sshd.user}@127.0.0.1`], { stdio: 'ignore' });
    await sshd.stop();
  }
});

const sshArgs = () => ['--ssh-key', sshd.identityFile, '--ssh-known-hosts', sshd.knownHostsFile];
const sshOptions = () => ({ identityFile: sshd.identityFile, knownHostsFile: sshd.knownHostsFile });
const controlPath = () => join(sshd.dir, 'cm-%C');
/**
 * The suite shares one ssh connection (OpenSSH multiplexing, set through
 * GIT_SSH_COMMAND as a user would): every session is still a channel to the
 * real sshd running the real git services, without a handshake each time
 * (~0.4 s here). The tests below the suite connect afresh.
 */
const multiplexed = () => `ssh -o ControlMaster=auto -o ControlPersist=60 -o ControlPath=${controlPath()}`;

mirrorConformance({
  name: 'ssh (OpenSSH sshd)',
  root: () => sshd.dir,
  url: (path) => sshd.url(path),
  cliArgs: sshArgs,
  cliEnv: () => ({ GIT_SSH_COMMAND: multiplexed() }),
  transportOptions: () => ({ ssh: { ...sshOptions(), sshCommand: multiplexed() } }),
  // Both are about the mirror engine above the (stateful) transport, which the file suite runs too.
  skip: ['abort', 'target-dies'],
  async mirrorWithCutSource(source, targets, bytes) {
    const result = await mirrorUrls(
      sshd.url(source),
      targets.map((t) => sshd.url(t)),
      { ssh: { ...sshOptions(), sshCommand: multiplexed(), uploadPack: fake.uploadPackCommand({ cutAfterPackBytes: bytes }) } },
    );
    return { ok: result.ok, message: JSON.stringify(result.targets.map((t) => t.error?.message)) };
  },
});

describe('mirror with ssh on one side', () => {
  let n = 0;
  const path = (label: string) => join(sshd.dir, `${label}-side-${++n}.git`);

  it('ssh source to a local target, and a local source to an ssh target (scp-like address)', async () => {
    const source = path('src');
    await makeSource(source, 7);
    const local = initBare(path('local'));
    const remote = initBare(path('remote'));
    const down = await packferry(['mirror', '-q', ...sshArgs(), sshd.url(source), local]);
    assert.equal(down.code, 0, down.stdout + down.stderr);
    assertMirrored(source, local);
    commitFiles(local, 'main', { 'pushed.txt': 'from the local copy\n' });
    // [user@]host:path has no port: the port comes from GIT_SSH_COMMAND.
    const up = await packferry(['mirror', '-q', local, `${sshd.user}@127.0.0.1:${remote}`], {
      env: { GIT_SSH_COMMAND: `ssh -p ${sshd.port} -i ${sshd.identityFile} -o UserKnownHostsFile=${sshd.knownHostsFile}` },
    });
    assert.equal(up.code, 0, up.stdout + up.stderr);
    assertMirrored(local, remote);
  });

  for (const protocol of [2, 0] as const) {
    it(`refs with invalid names in the source's advertisement are skipped and reported, never pushed (v${protocol})`, async () => {
      const source = path('invalid-src');
      const summary = await makeSource(source, 3);
      const main = summary.refs['refs/heads/main'];
      const bad = ['refs/heads/bad..dots', 'refs/heads/trailing.lock', 'refs/tags/ctl\x01char', 'refs/heads/-/@{x}'];
      // v0 lines are "<oid> <name>" to the end of the line: a space is part of the name (in v2 it would start an attribute).
      if (protocol === 0) bad.push('refs/heads/has space');
      const target = initBare(path('invalid-dst'));
      const uploadPack = fake.uploadPackCommand({ inject: bad.map((name) => `${main} ${name}`) });
      const result = await mirrorUrls(sshd.url(source), [target], { ssh: { ...sshOptions(), sshCommand: multiplexed(), uploadPack } }, { protocolVersion: protocol });
      assert.equal(result.ok, true, result.error?.message ?? result.targets[0]?.error?.message);
      assert.deepEqual([...result.targets[0].invalidNames].sort(), [...bad].sort());
      assert.ok(result.targets[0].updates.every((u) => !bad.includes(u.name)));
      assertMirrored(source, target);
      const text = formatMirror(result, { dryRun: false, verbose: false }).split('\n');
      assert.ok(text.includes(' ! [skipped]         "refs/heads/bad..dots" (not a valid ref name)'), text.join('\n'));
      assert.ok(text.includes(' ! [skipped]         "refs/tags/ctl\\u0001char" (not a valid ref name)'), text.join('\n'));
    });
  }
});

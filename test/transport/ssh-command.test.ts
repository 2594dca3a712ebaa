// The ssh command line (connect.c: fill_ssh_args, push_ssh_options,
// determine_ssh_variant, sq_quote) checked against what Git 2.39 itself runs:
// GIT_SSH points at logging stand-ins named ssh, plink, tortoiseplink, and
// our arguments must be Git's plus packferry's safety options. Then the
// failure classifier on the messages real ssh and git-upload-pack print.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, isPackferryError } from '../../src/core/errors.js';
import {
  buildSshInvocation,
  gitSshOptions,
  packferrySshOptions,
  probeArguments,
  programInvocation,
  selectSshProgram,
  splitCommandLine,
  sqQuote,
  variantFromName,
  type SshVariant,
} from '../../src/transport/ssh-command.js';
import { classifySshFailure, stderrTail } from '../../src/transport/ssh-errors.js';
import { parseGitUrl, type SshUrl } from '../../src/transport/url.js';
import type { GitServiceName } from '../../src/transport/types.js';
import { git, gitAsync, tempDir } from '../support/git.js';

const tmp = tempDir('packferry-sshcmd-');
const log = join(tmp.path, 'log');
const repo = join(tmp.path, 'repo');

before(() => {
  // Stand-ins that record their arguments and GIT_PROTOCOL, then fail (so Git stops there).
  for (const name of ['ssh', 'plink', 'tortoiseplink', 'putty']) {
    const script = join(tmp.path, name);
    writeFileSync(
      script,
      `#!/bin/sh\n{ printf 'GIT_PROTOCOL=%s' "$GIT_PROTOCOL"; for a in "$@"; do printf '\\037%s' "$a"; done; printf '\\n'; } >> '${log}'\nexit 1\n`,
    );
    chmodSync(script, 0o755);
  }
  git(['init', '-q', repo]);
  git(['commit', '-q', '--allow-empty', '-m', 'one'], { cwd: repo });
});
after(() => tmp.cleanup());

/** Runs Git against `url` with GIT_SSH=<stand-in>, returns what the stand-in was called with. */
async function gitRuns(
  program: string,
  url: string,
  service: GitServiceName,
  protocolVersion: 0 | 1 | 2,
  extraEnv: Record<string, string> = {},
): Promise<{ args: string[]; gitProtocol: string }> {
  rmSync(log, { force: true });
  const env = { GIT_SSH: join(tmp.path, program), ...extraEnv };
  const config = ['-c', `protocol.version=${protocolVersion}`];
  const args = service === 'git-upload-pack' ? [...config, 'ls-remote', url] : [...config, 'push', url, 'HEAD:refs/heads/x'];
  const result = await gitAsync(args, { cwd: repo, env });
  assert.notEqual(result.code, 0, 'the stand-in fails, so Git must fail');
  const lines = readFileSync(log, 'utf8').trimEnd().split('\n');
  assert.equal(lines.length, 1, `one invocation expected, got ${lines.length}`);
  const [gitProtocol, ...rest] = lines[0].split('\x1f');
  return { args: rest, gitProtocol: gitProtocol.replace(/^GIT_PROTOCOL=/, '') };
}

describe('the ssh command line is the one Git builds', () => {
  const cases: [string, string, GitServiceName, 0 | 1 | 2][] = [
    ['ssh', 'ssh://u@h:2222/srv/repo.git', 'git-upload-pack', 2],
    ['ssh', 'ssh://u@h:2222/srv/repo.git', 'git-upload-pack', 1],
    ['ssh', 'ssh://h/srv/repo.git', 'git-upload-pack', 0],
    ['ssh', "h:it's!odd repo", 'git-upload-pack', 2],
    ['ssh', '[::1]:~/repo', 'git-upload-pack', 2],
    ['ssh', 'ssh://u@[::1]:22/~u/repo', 'git-upload-pack', 2],
    ['ssh', 'ssh://h:22/srv/repo.git', 'git-receive-pack', 2], // Git pushes with v0 even when v2 is configured
    ['ssh', 'ssh://h:22/srv/repo.git', 'git-receive-pack', 1],
    ['plink', 'ssh://u@h:2222/p', 'git-upload-pack', 2],
    ['tortoiseplink', 'ssh://u@h:2222/p', 'git-upload-pack', 2],
  ];
  for (const [program, input, service, version] of cases) {
    it(`${program} ${service} v${version} ${input}`, async () => {
      const url = parseGitUrl(input) as SshUrl;
      const theirs = await gitRuns(program, input, service, version);
      const selected = selectSshProgram({ GIT_SSH: join(tmp.path, program) });
      assert.equal(selected.shell, false);
      const variant = selected.variant as Exclude<SshVariant, 'auto'>;
      assert.equal(variant, variantFromName(program));
      const ours = buildSshInvocation({
        program: selected,
        variant,
        user: url.user,
        host: url.host,
        port: url.port,
        path: url.path,
        service,
        protocolVersion: version,
      });
      // Git's arguments, with packferry's additions between the options and the destination.
      const additions = packferrySshOptions(variant);
      const expected = [...theirs.args.slice(0, -2), ...additions, ...theirs.args.slice(-2)];
      assert.deepEqual(ours.sshArgs, expected);
      assert.equal(ours.env.GIT_PROTOCOL ?? '', theirs.gitProtocol);
      assert.equal(ours.file, join(tmp.path, program));
      assert.deepEqual(ours.args, ours.sshArgs);
    });
  }

  it("GIT_SSH_VARIANT=putty: -P for the port, no GIT_PROTOCOL (Git's push_ssh_options)", async () => {
    const theirs = await gitRuns('putty', 'ssh://h:22/p', 'git-upload-pack', 2, { GIT_SSH_VARIANT: 'putty' });
    const selected = selectSshProgram({ GIT_SSH: join(tmp.path, 'putty'), GIT_SSH_VARIANT: 'putty' });
    assert.equal(selected.variant, 'putty');
    assert.deepEqual(gitSshOptions('putty', 22, 2), theirs.args.slice(0, -2));
    assert.equal(theirs.gitProtocol, '');
  });

  it("sq_quote: ' and ! leave the quotes, as Git writes them", () => {
    assert.equal(sqQuote('/srv/repo.git'), "'/srv/repo.git'");
    assert.equal(sqQuote("it's!"), "'it'\\''s'\\!''");
    assert.equal(sqQuote(''), "''");
    assert.equal(sqQuote('a b;$(x)`y`'), "'a b;$(x)`y`'");
  });
});

describe('choosing the ssh program (GIT_SSH_COMMAND, core.sshCommand, GIT_SSH, ssh)', () => {
  it('GIT_SSH_COMMAND wins, is shell text, and its first word names the variant', () => {
    const env = { GIT_SSH_COMMAND: '"/opt/my tools/plink" -v', GIT_SSH: '/usr/bin/ssh' };
    assert.deepEqual(selectSshProgram(env, { sshCommand: 'ssh -4' }), {
      command: '"/opt/my tools/plink" -v',
      shell: true,
      variant: 'plink',
    });
  });
  it('core.sshCommand (the sshCommand setting) comes next, then GIT_SSH, then ssh', () => {
    assert.deepEqual(selectSshProgram({ GIT_SSH: '/x/plink' }, { sshCommand: 'ssh -v' }), { command: 'ssh -v', shell: true, variant: 'ssh' });
    assert.deepEqual(selectSshProgram({ GIT_SSH: '/x/plink' }), { command: '/x/plink', shell: false, variant: 'plink' });
    assert.deepEqual(selectSshProgram({}), { command: 'ssh', shell: false, variant: 'ssh' });
    assert.deepEqual(selectSshProgram({ GIT_SSH_COMMAND: '' }), { command: 'ssh', shell: false, variant: 'ssh' });
  });
  it('an unknown program is "auto" (probed with -G); GIT_SSH_VARIANT or the sshVariant setting decide instead', () => {
    assert.equal(selectSshProgram({ GIT_SSH_COMMAND: '/x/my-wrapper -q' }).variant, 'auto');
    assert.equal(selectSshProgram({ GIT_SSH_COMMAND: '/x/my-wrapper', GIT_SSH_VARIANT: 'ssh' }).variant, 'ssh');
    assert.equal(selectSshProgram({ GIT_SSH: '/x/wrapper' }, { sshVariant: 'simple' }).variant, 'simple');
    assert.equal(selectSshProgram({ GIT_SSH: '/x/wrapper', GIT_SSH_VARIANT: 'ssh' }, { sshVariant: 'simple' }).variant, 'ssh');
    assert.equal(variantFromName('/usr/bin/SSH.EXE'), 'ssh');
    assert.equal(variantFromName('TortoisePlink.exe'), 'tortoiseplink');
    assert.throws(() => selectSshProgram({ GIT_SSH_VARIANT: 'openssh' }), (err: unknown) => isPackferryError(err, ErrorCode.Usage));
  });
  it('the probe passes Git\'s own options only', () => {
    assert.deepEqual(probeArguments('u', 'h', 2222, 2), ['-G', '-o', 'SendEnv=GIT_PROTOCOL', '-p', '2222', 'u@h']);
    assert.deepEqual(probeArguments(undefined, '::1', undefined, 0), ['-G', '::1']);
  });
  it('shell text runs as sh -c \'<command> "$@"\' with the arguments after it', () => {
    assert.deepEqual(programInvocation({ command: 'ssh -v', shell: true, variant: 'ssh' }, ['h', 'cmd']), {
      file: '/bin/sh',
      args: ['-c', 'ssh -v "$@"', 'ssh -v', 'h', 'cmd'],
    });
  });
  it('splits command lines as Git does for the first word', () => {
    assert.deepEqual(splitCommandLine(`  'a b'\\ c "d\\"e" f  `), ['a b c', 'd"e', 'f']);
    assert.throws(() => splitCommandLine('"open'), (err: unknown) => isPackferryError(err, ErrorCode.Usage));
  });
});

describe("packferry's own ssh options", () => {
  it('BatchMode and StrictHostKeyChecking always; the key only, and the known_hosts file', () => {
    assert.deepEqual(packferrySshOptions('ssh', { identityFile: '/k/id 1%', knownHostsFile: '/k/known hosts' }), [
      '-o',
      'BatchMode=yes',
      '-o',
      'StrictHostKeyChecking=yes',
      '-i',
      '/k/id 1%%',
      '-o',
      'IdentitiesOnly=yes',
      '-o',
      'UserKnownHostsFile="/k/known hosts"',
    ]);
  });
  it("the user's options come first and replace ours (OpenSSH keeps the first value)", () => {
    assert.deepEqual(
      packferrySshOptions('ssh', { sshOptions: ['StrictHostKeyChecking=no', 'batchmode no'], connectTimeoutSeconds: 5 }),
      ['-o', 'StrictHostKeyChecking=no', '-o', 'batchmode no', '-o', 'ConnectTimeout=5'],
    );
    assert.deepEqual(packferrySshOptions('ssh', { strictHostKeyChecking: 'accept-new' }), [
      '-o',
      'BatchMode=yes',
      '-o',
      'StrictHostKeyChecking=accept-new',
    ]);
  });
  it('other variants get what they understand, and refuse OpenSSH-only settings', () => {
    assert.deepEqual(packferrySshOptions('plink', { identityFile: '/k/key.ppk' }), ['-i', '/k/key.ppk', '-batch']);
    assert.deepEqual(packferrySshOptions('tortoiseplink'), []);
    for (const [variant, settings] of [
      ['plink', { knownHostsFile: '/k' }],
      ['putty', { sshOptions: ['A=b'] }],
      ['simple', { identityFile: '/k' }],
    ] as const) {
      assert.throws(() => packferrySshOptions(variant, settings), (err: unknown) => isPackferryError(err, ErrorCode.Usage));
    }
    assert.throws(() => gitSshOptions('simple', 22, 0), /does not support setting port/);
  });
});

describe('classifying a failed ssh (messages as real ssh and Git print them)', () => {
  const base = { displayUrl: 'ssh://root@127.0.0.1:2222/r.git', host: '127.0.0.1', port: 2222, service: 'git-upload-pack' };
  const failed = (stderr: string, code: number | null, phase: 'connecting' | 'talking' = 'connecting', signal: NodeJS.Signals | null = null) =>
    classifySshFailure({ ...base, stderr, exit: { code, signal }, phase });

  it('unknown and changed host keys: ERR_SSH_HOST_KEY with an ssh-keyscan hint', () => {
    const unknown = failed(
      'No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking.\r\nHost key verification failed.\r\n',
      255,
    );
    assert.equal(unknown.code, ErrorCode.SshHostKey);
    assert.match(unknown.hint ?? '', /ssh-keyscan -p 2222 127\.0\.0\.1/);
    assert.match(unknown.hint ?? '', /--ssh-known-hosts/);
    const changed = failed('@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n@@@@@\n', 255);
    assert.equal(changed.code, ErrorCode.SshHostKey);
  });
  it('a refused key: ERR_TRANSPORT_AUTH', () => {
    const err = failed('root@127.0.0.1: Permission denied (publickey).\r\n', 255);
    assert.equal(err.code, ErrorCode.TransportAuth);
    assert.match(err.hint ?? '', /--ssh-key/);
    assert.match(err.hint ?? '', /ssh-agent/);
  });
  it('refused, unresolvable, timed out: ERR_TRANSPORT_CONNECT', () => {
    for (const text of [
      'ssh: connect to host 127.0.0.1 port 1: Connection refused',
      'ssh: Could not resolve hostname nowhere.invalid: Name or service not known',
      'ssh: connect to host 10.0.0.1 port 22: Connection timed out',
      'kex_exchange_identification: Connection closed by remote host',
    ]) {
      assert.equal(failed(`${text}\r\n`, 255).code, ErrorCode.TransportConnect, text);
    }
  });
  it("the remote Git's missing repository: ERR_NOT_FOUND; a missing Git program is not that", () => {
    assert.equal(failed("fatal: '/srv/x.git' does not appear to be a git repository\n", 128).code, ErrorCode.NotFound);
    assert.equal(failed('ERROR: Repository not found.\n', 1).code, ErrorCode.NotFound);
    const noGit = failed('bash: line 1: git-upload-pack: command not found\n', 127);
    assert.equal(noGit.code, ErrorCode.RemoteError);
    assert.match(noGit.hint ?? '', /installed on the server/);
    assert.equal(failed('sh: 1: git-upload-pack: not found\n', 127).code, ErrorCode.RemoteError);
  });
  it('anything else before the advertisement: ERR_REMOTE with the last lines of stderr', () => {
    const err = failed('line 1\nline 2\nfatal: something odd\n', 1);
    assert.equal(err.code, ErrorCode.RemoteError);
    assert.match(err.message, /something odd/);
    assert.equal(err.details.stderr, 'line 1\nline 2\nfatal: something odd');
  });
  it('after output began: ssh failing is ERR_TRANSPORT_INTERRUPTED, the remote failing is ERR_REMOTE', () => {
    assert.equal(failed('Connection to 127.0.0.1 closed by remote host.\r\n', 255, 'talking').code, ErrorCode.TransportInterrupted);
    assert.equal(failed('', null, 'talking', 'SIGPIPE').code, ErrorCode.TransportInterrupted);
    // "not found" mid-stream is not a missing repository
    const remote = failed('fatal: git upload-pack: not our ref 1234 not found\n', 128, 'talking');
    assert.equal(remote.code, ErrorCode.RemoteError);
  });
  it('stderrTail keeps the last non-empty lines without CRs', () => {
    assert.equal(stderrTail('a\r\n\r\nb\nc\n', 2), 'b\nc');
  });
});

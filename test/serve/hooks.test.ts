// Server hooks that a repository admin cannot turn against the server: the
// real `packferry serve`, real `git push`, real HTTP to the admin API.
// - Installing, reading, changing, deleting a hook through the admin API
//   needs a server-wide admin (admin on every region and repository); an
//   admin of `team/*` is answered 404 like anyone else, unless the server
//   runs with --repository-admins-manage-hooks. `repo edit --store` (the
//   store itself) stays allowed.
// - In the bubblewrap sandbox a hook sees none of the server's environment
//   (a secret AWS key), not the store's tokens nor another repository (one
//   stored inside its own directory neither), cannot
//   write into its repository (nor remount it writable, though the tests run
//   as root) nor reach the server's port, and still runs
//   git against GIT_DIR (the pushed commit is there in pre-receive) and
//   still refuses pushes.
// - Nothing a hook starts outlives it (`sleep &`, `setsid`); a hook past the
//   time limit is killed with what it started and the push is refused with
//   a message saying so; a hook that prints forever sends at most 1 MiB.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { tempDir } from '../support/git.js';
import { packferry } from '../support/mirror-fixtures.js';
import {
  anonymousClient,
  bearerClient,
  commitFile,
  gitFails,
  gitOk,
  lsRemote,
  pf,
  rawRequest,
  runGit,
  startServe,
  stopAllServers,
  type GitClient,
  type ServeProcess,
} from '../support/serve-fixtures.js';

const SECRET = 'wJalrXUtnFEMI-hook-must-not-see-this';
const tmp = tempDir('packferry-serve-hooks-');
const root = join(tmp.path, 'root');
const strictCache = join(tmp.path, 'strict-cache');
const none = anonymousClient();
/** bubblewrap required, repository admins may not manage hooks, a secret in the environment. */
let strict: ServeProcess;
/** bubblewrap, --repository-admins-manage-hooks, --hook-network, --hook-timeout 3. */
let lenient: ServeProcess;
/** --hook-sandbox none --hook-timeout 3. */
let plain: ServeProcess;
const tokens: Record<'server' | 'team' | 'region' | 'writer', string> = { server: '', team: '', region: '', writer: '' };
let writer: GitClient;
let work: string;
let counter = 0;
/** `sleep` arguments used as markers of processes the hooks start (to find them in /proc, and to clean up). */
const markers: string[] = [];

async function token(user: string, flags: string[]): Promise<string> {
  return (JSON.parse((await pf(['token', 'create', user, '--store', root, '--json', ...flags])).stdout) as { token: string }).token;
}

/** A number of seconds no other process on the machine sleeps for. */
function marker(): string {
  const m = String(900_000_000 + Math.floor(Math.random() * 90_000_000) + markers.length);
  markers.push(m);
  return m;
}

/** Live (not zombie) processes whose command line is `sleep MARKER`, seen from the host's /proc. */
function sleepers(mark: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'latin1');
      if (!cmdline.split('\0').includes(mark) || !cmdline.includes('sleep')) continue;
      const state = /^\d+ \(.*\) (\S)/.exec(readFileSync(`/proc/${entry}/stat`, 'latin1'))?.[1];
      if (state !== 'Z') found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** Waits until `check` holds (at most `ms`); whether it did. */
async function eventually(check: () => boolean, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(25)) if (check()) return true;
  return check();
}

function hookFile(script: string): string {
  const path = join(tmp.path, `hook-${++counter}.sh`);
  writeFileSync(path, `#!/bin/sh\n${script}\n`, { mode: 0o755 });
  return path;
}

/** Installs (or, with undefined, removes) NAME's pre-receive hook through the store itself. */
async function storeHook(name: string, script: string | undefined): Promise<void> {
  if (script === undefined) await pf(['repo', 'edit', name, '--remove-hook', 'pre-receive', '--store', root]);
  else await pf(['repo', 'edit', name, '--hook', `pre-receive=${hookFile(script)}`, '--store', root]);
}

function api(server: ServeProcess, who: keyof typeof tokens, method: string, path: string, body?: string) {
  return rawRequest(server.url, path, { method, body, headers: { authorization: `Bearer ${tokens[who]}` } });
}

/** The "remote: " lines of a push's stderr, without Git's padding. */
function remoteLines(stderr: string): string[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('remote: '))
    .map((l) => l.slice(8).trimEnd());
}

before(async () => {
  for (const name of ['team/a', 'other', 'sandbox', 'procs', 'slow', 'flood', 'plain']) await pf(['repo', 'create', name, '--store', root]);
  // A repository inside sandbox.git's directory, as stores made before such names were refused may hold: sandbox's hooks must not see it either.
  mkdirSync(join(root, 'sandbox.git', 'inner.git'), { recursive: true });
  writeFileSync(join(root, 'other.git', 'secret-of-other.txt'), 'other repository data\n');
  writeFileSync(join(root, 'sandbox.git', 'inner.git', 'secret-of-inner.txt'), 'inner repository data\n');
  // One at a time: token commands running together may lose a change (docs/security.md).
  tokens.server = await token('root', ['--admin']);
  tokens.team = await token('team-admin', ['--admin', '--repo', 'team/*']);
  tokens.region = await token('region-admin', ['--admin', '--region', 'default']);
  tokens.writer = await token('pusher', ['--read', '--write']);
  writer = bearerClient(tokens.writer);
  [strict, lenient, plain] = await Promise.all([
    startServe(['--store', root, '--hook-sandbox', 'bwrap', '--cache-dir', strictCache], { env: { AWS_SECRET_ACCESS_KEY: SECRET, PACKFERRY_TOKEN: tokens.server } }),
    startServe(['--store', root, '--hook-sandbox', 'bwrap', '--repository-admins-manage-hooks', '--hook-network', '--hook-timeout', '3']),
    startServe(['--store', root, '--hook-sandbox', 'none', '--hook-timeout', '3']),
  ]);
  work = join(tmp.path, 'work');
  await gitOk(none, ['init', '-q', '-b', 'main', work]);
  await commitFile(work, 'a.txt', 'first\n');
});

after(async () => {
  await stopAllServers();
  // Whatever a failing test's hook left running: only the processes these tests started, by id.
  for (const m of markers) for (const pid of sleepers(m)) process.kill(pid, 'SIGKILL');
  tmp.cleanup();
});

describe('who may install hooks', () => {
  const path = '/api/v1/repos/team/a/hooks/pre-receive';
  const script = '#!/bin/sh\necho "installed through the API"\nexit 0\n';

  it('a repository admin is answered 404 for PUT, GET and DELETE of a hook; a server-wide admin is not', async () => {
    for (const who of ['team', 'region', 'writer'] as const) {
      for (const [method, body] of [['PUT', script], ['GET'], ['DELETE']] as [string, string?][]) {
        const res = await api(strict, who, method, path, body);
        assert.equal(res.status, 404, `${who} ${method}: ${res.status} ${res.body.toString()}`);
        assert.equal(res.body.toString(), 'Repository not found\n');
      }
    }
    assert.equal(existsSync(join(root, 'team', 'a.git', 'hooks', 'pre-receive')), false, 'no hook was installed');
    // Through the command too; and the team admin is still an admin of the repository otherwise.
    const cli = await packferry(['repo', 'edit', 'team/a', '--hook', `pre-receive=${hookFile('exit 0')}`, '--server', strict.url, '--token', tokens.team]);
    assert.equal(cli.code, 3, cli.stderr);
    assert.match(cli.stderr, /not found, or not allowed/);
    const patched = await api(strict, 'team', 'PATCH', '/api/v1/repos/team/a', JSON.stringify({ description: 'edited by the team admin' }));
    assert.equal(patched.status, 200, patched.body.toString());

    const put = await api(strict, 'server', 'PUT', path, script);
    assert.equal(put.status, 200, put.body.toString());
    assert.equal(readFileSync(join(root, 'team', 'a.git', 'hooks', 'pre-receive'), 'utf8'), script);
    assert.equal((await api(strict, 'team', 'GET', path)).status, 404, 'nor may the team admin read it');
    assert.equal((await api(strict, 'team', 'DELETE', path)).status, 404);
    const got = await api(strict, 'server', 'GET', path);
    assert.equal(got.status, 200);
    assert.equal(got.body.toString(), script);
    await commitFile(work, 'team.txt', 'through the installed hook\n');
    const push = await runGit(writer, ['push', `${strict.url}/team/a.git`, 'HEAD:refs/heads/main']);
    assert.equal(push.code, 0, push.stderr);
    assert.ok(remoteLines(push.stderr).includes('installed through the API'), push.stderr);
    assert.equal((await api(strict, 'server', 'DELETE', path)).status, 200);
    assert.equal(existsSync(join(root, 'team', 'a.git', 'hooks', 'pre-receive')), false);
  });

  it('with --repository-admins-manage-hooks an admin of the repository may, of other repositories still not', async () => {
    const put = await api(lenient, 'team', 'PUT', path, script);
    assert.equal(put.status, 200, put.body.toString());
    const got = await api(lenient, 'team', 'GET', path);
    assert.equal(got.status, 200);
    assert.equal(got.body.toString(), script);
    assert.equal((await api(lenient, 'team', 'DELETE', path)).status, 200);
    assert.equal(existsSync(join(root, 'team', 'a.git', 'hooks', 'pre-receive')), false);
    for (const method of ['PUT', 'GET', 'DELETE']) {
      const res = await api(lenient, 'team', method, '/api/v1/repos/other/hooks/pre-receive', method === 'PUT' ? script : undefined);
      assert.equal(res.status, 404, `${method} other: ${res.status}`);
    }
    assert.equal(existsSync(join(root, 'other.git', 'hooks', 'pre-receive')), false);
  });
});

describe('the sandbox', () => {
  const report = (port: number) => `
env | sed 's/=.*//' | grep -v -e '^PWD$' -e '^OLDPWD$' -e '^SHLVL$' -e '^_$' | sort | tr '\\n' ' ' | sed 's/^/env-names: /'; echo
env
cat '${join(root, 'packferry', 'tokens.json')}' >/dev/null 2>&1 && echo tokens=readable || echo tokens=hidden
cat '${join(root, 'other.git', 'secret-of-other.txt')}' >/dev/null 2>&1 && echo other=readable || echo other=hidden
cat '${join(root, 'sandbox.git', 'inner.git', 'secret-of-inner.txt')}' >/dev/null 2>&1 && echo inner=readable || echo inner=hidden
echo "inner-listing: $(ls -A "$GIT_DIR/inner.git" 2>&1 | tr '\\n' ' ')"
echo "store-root: $(ls -A '${root}' 2>&1 | tr '\\n' ' ')"
mount -o remount,bind,rw "$GIT_DIR" 2>/dev/null && echo remount=done || echo remount=refused
touch "$GIT_DIR/written-by-hook" 2>/dev/null && echo repository=writable || echo repository=read-only
echo scratch > "$HOME/file" && echo home=writable
bash -c 'exec 3<>/dev/tcp/127.0.0.1/${port}' 2>/dev/null && echo network=open || echo network=closed
while read old new ref; do echo "in-git-dir=$(git rev-parse --verify "$new^{commit}") $ref"; done
if [ "$GIT_PUSH_OPTION_0" = refuse ]; then echo "refused by the sandboxed hook"; exit 1; fi
exit 0`;

  it('hides the environment, the store and the network; git works on GIT_DIR; a refusing hook refuses', async () => {
    await storeHook('sandbox', report(strict.port));
    const url = `${strict.url}/sandbox.git`;
    const tip = await commitFile(work, 'sandbox.txt', 'seen by the sandboxed hook\n');
    const refused = await gitFails(writer, ['push', '-o', 'refuse', url, 'HEAD:refs/heads/main'], { cwd: work });
    assert.ok(remoteLines(refused).includes('refused by the sandboxed hook'), refused);
    assert.match(refused, /\(pre-receive hook declined\)/);
    assert.equal((await lsRemote(writer, url)).size, 0, 'nothing moved');

    const push = await runGit(writer, ['push', url, 'HEAD:refs/heads/main'], { cwd: work });
    assert.equal(push.code, 0, push.stderr);
    const lines = remoteLines(push.stderr);
    assert.ok(!push.stderr.includes(SECRET) && !push.stderr.includes(tokens.server), 'no secret of the server reaches the hook');
    assert.deepEqual(
      lines.find((l) => l.startsWith('env-names: ')),
      'env-names: GIT_DIR GIT_PUSHER GIT_PUSH_OPTION_COUNT HOME LANG LC_ALL PACKFERRY_REPOSITORY PACKFERRY_USER PATH TMPDIR',
    );
    for (const expected of [
      'PATH=/usr/local/bin:/usr/bin:/bin',
      'HOME=/tmp',
      'PACKFERRY_USER=pusher',
      `GIT_DIR=${join(root, 'sandbox.git')}`,
      'tokens=hidden',
      'other=hidden',
      'inner=hidden',
      'inner-listing:',
      'store-root: sandbox.git',
      'remount=refused',
      'repository=read-only',
      'home=writable',
      'network=closed',
      `in-git-dir=${tip} refs/heads/main`,
    ]) {
      assert.ok(lines.includes(expected), `${expected} in:\n${lines.join('\n')}`);
    }
    assert.equal(existsSync(join(root, 'sandbox.git', 'written-by-hook')), false);
    assert.equal((await lsRemote(writer, url)).get('refs/heads/main'), tip);
    assert.deepEqual(readdirSync(join(strictCache, 'hook-scratch')), [], 'the scratch directories went with the hooks');
  });

  it('lets hooks use the network with --hook-network', async () => {
    await storeHook('sandbox', report(lenient.port));
    await commitFile(work, 'network.txt', 'network allowed\n');
    const push = await runGit(writer, ['push', `${lenient.url}/sandbox.git`, 'HEAD:refs/heads/main'], { cwd: work });
    assert.equal(push.code, 0, push.stderr);
    const lines = remoteLines(push.stderr);
    assert.ok(lines.includes('network=open'), lines.join('\n'));
    assert.ok(lines.includes('tokens=hidden') && lines.includes('repository=read-only'), 'the rest of the sandbox stays');
    await storeHook('sandbox', undefined);
  });
});

describe('what a hook starts does not outlive it', () => {
  it('in the sandbox: neither a background process nor a setsid one', async () => {
    const [background, session] = [marker(), marker()];
    await storeHook('procs', `sleep ${background} &\nsetsid sleep ${session} &\necho started\nsleep 2\nexit 0`);
    await commitFile(work, 'procs.txt', 'background processes\n');
    const push = runGit(writer, ['push', `${strict.url}/procs.git`, 'HEAD:refs/heads/main'], { cwd: work });
    assert.ok(await eventually(() => sleepers(background).length === 1 && sleepers(session).length === 1, 10_000), 'the hook started both');
    const done = await push;
    assert.equal(done.code, 0, done.stderr);
    assert.ok(remoteLines(done.stderr).includes('started'));
    assert.ok(await eventually(() => sleepers(background).length === 0 && sleepers(session).length === 0, 2000), 'both are gone once the push is done');
  });

  it('without a sandbox: a background process holding the output is killed, and the push does not wait for it', async () => {
    const background = marker();
    await storeHook('plain', `sleep ${background} &\necho "pid=$!"\nexit 0`);
    await commitFile(work, 'plain.txt', 'background process, no sandbox\n');
    const started = Date.now();
    const push = await runGit(writer, ['push', `${plain.url}/plain.git`, 'HEAD:refs/heads/main'], { cwd: work });
    assert.equal(push.code, 0, push.stderr);
    assert.ok(Date.now() - started < 10_000, `the push took ${Date.now() - started} ms`);
    const pid = Number(/^pid=(\d+)$/m.exec(remoteLines(push.stderr).join('\n'))?.[1]);
    assert.ok(pid > 0, push.stderr);
    assert.ok(await eventually(() => sleepers(background).length === 0, 2000), `sleep ${background} (pid ${pid}) is gone`);
  });

  it('past the time limit: killed with its children, the push refused with a message saying so', async () => {
    for (const server of [lenient, plain]) {
      const background = marker();
      await storeHook('slow', `sleep ${background} &\necho "waiting"\nsleep 60`);
      const before = await lsRemote(writer, `${server.url}/slow.git`);
      await commitFile(work, 'slow.txt', `too slow (${server === lenient ? 'sandbox' : 'none'})\n`);
      const started = Date.now();
      const stderr = await gitFails(writer, ['push', `${server.url}/slow.git`, 'HEAD:refs/heads/main'], { cwd: work });
      const took = Date.now() - started;
      assert.ok(took >= 2900 && took < 15_000, `refused after ${took} ms (limit 3 s)`);
      const lines = remoteLines(stderr);
      assert.ok(lines.includes('waiting'), stderr);
      assert.ok(lines.includes('hook pre-receive stopped: it ran longer than the 3 s time limit'), stderr);
      assert.match(stderr, /\(pre-receive hook declined\)/);
      assert.deepEqual(await lsRemote(writer, `${server.url}/slow.git`), before);
      assert.ok(await eventually(() => sleepers(background).length === 0, 2000), 'what it started is gone');
    }
  });

  it('a hook that prints forever sends at most 1 MiB, and is stopped at the time limit', async () => {
    await storeHook('flood', 'yes flood');
    await commitFile(work, 'flood.txt', 'flood\n');
    const stderr = await gitFails(writer, ['push', `${lenient.url}/flood.git`, 'HEAD:refs/heads/main'], { cwd: work });
    const lines = remoteLines(stderr);
    const floods = lines.filter((l) => l === 'flood').length;
    assert.ok(floods > 1000 && floods <= (1024 * 1024) / 'flood\n'.length, `${floods} lines of output`);
    assert.ok(lines.includes(`(hook output cut off after ${1024 * 1024} bytes)`), lines.slice(-3).join('\n'));
    assert.ok(lines.includes('hook pre-receive stopped: it ran longer than the 3 s time limit'));
  });
});

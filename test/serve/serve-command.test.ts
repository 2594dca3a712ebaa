// The `packferry serve` command itself (issue 5): --listen 127.0.0.1:0 and
// the address it prints, usage errors, a port in use, and stopping: SIGTERM
// lets a push in progress finish (new connections are refused meanwhile),
// exits 0, and removes the temporary cache directory the server made for
// itself (one was left in the temporary directory by every run before); the
// bubblewrap probe at start (--hook-sandbox bwrap refuses a bwrap that does
// not work, auto warns and goes on without it).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { tempDir } from '../support/git.js';
import { packferry } from '../support/mirror-fixtures.js';
import {
  anonymousClient,
  assertCloneMatches,
  bearerClient,
  gitOk,
  lsRemote,
  pf,
  rawRequest,
  runGit,
  startServe,
  stopAllServers,
} from '../support/serve-fixtures.js';

const tmp = tempDir('packferry-serve-command-');
const root = join(tmp.path, 'root');
const none = anonymousClient();

before(async () => {
  await pf(['repo', 'create', 'r', '--store', root]);
});

after(async () => {
  await stopAllServers();
  tmp.cleanup();
});

describe('packferry serve (the command)', () => {
  it('listens on the port the kernel gives for --listen 127.0.0.1:0, and prints that address', async () => {
    const server = await startServe(['--store', root, '--no-tokens']);
    try {
      assert.match(server.url, /^http:\/\/127\.0\.0\.1:(\d+)$/);
      assert.notEqual(server.port, 0);
      const res = await rawRequest(server.url, '/healthz');
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), 'ok\n');
      const listening = server
        .logs()
        .split('\n')
        .filter((l) => l.includes('"msg":"listening"'))
        .map((l) => JSON.parse(l) as { url: string; tls: boolean });
      assert.deepEqual(
        listening.map((l) => [l.url, l.tls]),
        [[server.url, false]],
      );
      // A second server on the same port cannot start.
      const busy = await packferry(['serve', '--store', root, '--listen', `127.0.0.1:${server.port}`], { timeoutMs: 15_000 });
      assert.notEqual(busy.code, 0);
      assert.match(busy.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${server.port}`));
    } finally {
      assert.equal(await server.stop(), 0);
    }
  });

  it('refuses bad arguments as usage errors (exit 2)', async () => {
    const cases = [
      ['--listen', '127.0.0.1:0'],
      ['--store', root, '--listen', 'nowhere'],
      ['--store', root, '--listen', '127.0.0.1:70000'],
      ['--store', root, '--tls-cert', 'x.crt'],
      ['--store', root, '--client-ca', 'ca.crt'],
      ['--store', root, '--max-push', '-5'],
      ['--store', root, '--hook-sandbox', 'maybe'],
      ['--store', root, '--hook-timeout', '0'],
      ['--store', root, '--hook-timeout', 'soon'],
      ['--store', root, 'extra'],
    ];
    const results = await Promise.all(cases.map((args) => packferry(['serve', ...args])));
    results.forEach((r, i) => assert.equal(r.code, 2, `${cases[i].join(' ')}: exit ${r.code}\n${r.stderr}`));
  });

  it('stops on SIGTERM after the push in progress, exits 0 and removes its own temporary cache', async () => {
    const tmpdir = join(tmp.path, 'tmpdir');
    mkdirSync(tmpdir);
    const token = (JSON.parse((await pf(['token', 'create', 'dev', '--read', '--write', '--store', root, '--json'])).stdout) as { token: string }).token;
    const started = join(tmp.path, 'hook-started');
    const hook = join(tmp.path, 'slow-hook.sh');
    writeFileSync(hook, `#!/bin/sh\ntouch '${started}'\nsleep 1\nexit 0\n`, { mode: 0o755 });
    await pf(['repo', 'edit', 'r', '--hook', `pre-receive=${hook}`, '--store', root]);
    // Without the sandbox: the hook tells the test it started by writing outside its scratch directory.
    const server = await startServe(['--store', root, '--hook-sandbox', 'none'], { env: { TMPDIR: tmpdir } });
    assert.equal(
      readdirSync(tmpdir).filter((n) => n.startsWith('packferry-serve-')).length,
      1,
      'the server made a cache directory of its own',
    );
    const writer = bearerClient(token);
    const work = join(tmp.path, 'work');
    await gitOk(none, ['init', '-q', '-b', 'main', work]);
    writeFileSync(join(work, 'a.txt'), 'a\n');
    await gitOk(none, ['add', '.'], { cwd: work });
    await gitOk(none, ['commit', '-q', '-m', 'first'], { cwd: work });
    const url = `${server.url}/r.git`;
    const push = runGit(writer, ['push', url, 'main'], { cwd: work });
    for (let i = 0; i < 200 && !existsSync(started); i++) await sleep(25);
    assert.ok(existsSync(started), 'the push reached its hook');
    const exit = server.terminate();
    await sleep(100);
    const late = await runGit(writer, ['ls-remote', url]);
    assert.notEqual(late.code, 0, 'no new connections once stopping');
    assert.match(late.stderr, /Failed to connect|Couldn't connect|Connection refused/);
    const pushed = await push;
    assert.equal(pushed.code, 0, `the push in progress finished:\n${pushed.stderr}`);
    assert.equal(await exit, 0);
    assert.deepEqual(readdirSync(tmpdir), [], 'its temporary cache directory is gone');

    // The push is in the store: a new server serves it.
    await pf(['repo', 'edit', 'r', '--remove-hook', 'pre-receive', '--store', root]);
    const again = await startServe(['--store', root]);
    const refs = await lsRemote(writer, `${again.url}/r.git`);
    assert.equal(refs.get('refs/heads/main'), await gitOk(none, ['rev-parse', 'HEAD'], { cwd: work }));
    const clone = join(tmp.path, 'clone');
    await gitOk(writer, ['clone', '-q', `${again.url}/r.git`, clone]);
    await assertCloneMatches(writer, `${again.url}/r.git`, clone);
  });

  it('checks at start that bubblewrap works: --hook-sandbox bwrap refuses to start without it, auto warns and runs hooks unsandboxed', async () => {
    // A bwrap that is installed but cannot make namespaces (as on a kernel without unprivileged user namespaces).
    const bin = join(tmp.path, 'broken-bwrap');
    mkdirSync(bin);
    writeFileSync(join(bin, 'bwrap'), '#!/bin/sh\necho "bwrap: No permissions to create new namespace" >&2\nexit 1\n', { mode: 0o755 });
    const env = { PATH: `${bin}:/usr/bin:/bin` };
    const refused = await packferry(['serve', '--store', root, '--listen', '127.0.0.1:0', '--hook-sandbox', 'bwrap'], { env, timeoutMs: 15_000 });
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /cannot sandbox hooks: .*broken-bwrap\/bwrap fails \(exit 1\): bwrap: No permissions to create new namespace/);
    assert.match(refused.stderr, /hint: install bubblewrap/);

    const server = await startServe(['--store', root, '--no-tokens'], { env });
    try {
      const lines = server
        .logs()
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as { level: number; msg: string; sandbox?: string });
      assert.ok(
        lines.some((l) => l.level === 40 && /^hooks run without a sandbox: .*No permissions to create new namespace/.test(l.msg)),
        server.logs(),
      );
      assert.equal(lines.find((l) => l.msg === 'hooks')?.sandbox, 'none');
    } finally {
      assert.equal(await server.stop(), 0);
    }
  });
});

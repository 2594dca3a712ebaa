// `packferry serve` under concurrency (issue 5, scenario 5): the real server
// process and many real git clients at once.
// - Two pushes of different commits to the same branch, started together:
//   exactly one succeeds, the other is refused cleanly (its ref rejected, no
//   error from the server), and the branch is the winner's commit.
// - 50 clones at once, while a push lands: every clone succeeds, passes
//   `git fsck --full`, and holds the refs from before or after the push,
//   never a mixture.
// - A pusher that sends its commands and then stalls for 60 s in its pack
//   holds up nobody: a push to another branch meanwhile takes no longer than
//   alone, a push to the same branch wins, and the stalled push, once its
//   pack arrives, is refused as Git refuses it (the ref moved meanwhile). The
//   server used to take the repository's lock before the pack, so every
//   other push was told "another push to this repository is in progress".
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { gitBuffer, tempDir } from '../support/git.js';
import { makeSource, noise } from '../support/mirror-fixtures.js';
import type { RepoSummary } from '../support/repogen.js';
import {
  anonymousClient,
  assertCloneMatches,
  assertFsck,
  assertStoreVerifies,
  bearerClient,
  cloneRefs,
  commandList,
  gitOk,
  lsRemote,
  pf,
  reportLines,
  runGit,
  sortedEntries,
  startServe,
  stopAllServers,
  type GitClient,
  type ServeProcess,
} from '../support/serve-fixtures.js';

const tmp = tempDir('packferry-serve-concurrency-');
const root = join(tmp.path, 'root');
const none = anonymousClient();
let server: ServeProcess;
let source: RepoSummary;
let writer: GitClient;
let repoUrl: string;
let token: string;
let counter = 0;

/** A commit on top of the clone's HEAD with a file of its own (some random bytes, so the packs take a moment). */
async function commit(dir: string, label: string): Promise<string> {
  writeFileSync(join(dir, `${label}.bin`), noise(32 * 1024, `${label}-${++counter}`));
  await gitOk(none, ['add', '.'], { cwd: dir });
  await gitOk(none, ['commit', '-q', '-m', `${label} ${counter}`], { cwd: dir });
  return gitOk(none, ['rev-parse', 'HEAD'], { cwd: dir });
}

/** Runs `fn` over `items`, at most `limit` at a time. */
async function pool<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await fn(items[i]);
      }
    }),
  );
  return results;
}

before(async () => {
  source = await makeSource(join(tmp.path, 'source.git'), 17);
  await pf(['mirror', source.dir, join(root, 'r.git')]);
  await pf(['repo', 'edit', 'r', '--public', '--store', root]);
  token = (JSON.parse((await pf(['token', 'create', 'dev', '--read', '--write', '--store', root, '--json'])).stdout) as { token: string }).token;
  // Long enough a body timeout for the stalled pusher below.
  server = await startServe(['--store', root, '--body-timeout', '120s']);
  writer = bearerClient(token);
  repoUrl = `${server.url}/r.git`;
});

after(async () => {
  await stopAllServers();
  tmp.cleanup();
});

describe('packferry serve under concurrency', () => {
  it('lets exactly one of two racing pushes to a branch win; the other is refused cleanly', async (t) => {
    const a = join(tmp.path, 'a');
    const b = join(tmp.path, 'b');
    await Promise.all([gitOk(writer, ['clone', '-q', repoUrl, a]), gitOk(writer, ['clone', '-q', repoUrl, b])]);
    for (let round = 0; round < 3; round++) {
      const base = (await lsRemote(writer, repoUrl)).get('refs/heads/main')!;
      const tips = { a: await commit(a, `a${round}`), b: await commit(b, `b${round}`) };
      const [ra, rb] = await Promise.all([runGit(writer, ['push', 'origin', 'main'], { cwd: a }), runGit(writer, ['push', 'origin', 'main'], { cwd: b })]);
      const results = [
        { name: 'a', tip: tips.a, ...ra },
        { name: 'b', tip: tips.b, ...rb },
      ];
      const winners = results.filter((r) => r.code === 0);
      assert.equal(winners.length, 1, `round ${round}: exactly one push succeeds:\n${results.map((r) => `${r.name}: ${r.code}\n${r.stderr}`).join('\n')}`);
      const loser = results.find((r) => r.code !== 0)!;
      // Refused as Git refuses it: by the server's ref transaction (the branch moved since the push read it),
      // or, if the other push had finished before this one began, by git itself (fetch first). Never a lock.
      assert.match(loser.stderr, /! \[remote rejected\] +main -> main \(failed to update ref\)|! \[rejected\] +main -> main \(fetch first\)/, loser.stderr);
      if (/failed to update ref/.test(loser.stderr)) assert.match(loser.stderr, /remote: error: cannot lock ref 'refs\/heads\/main': is at [0-9a-f]{40} but expected [0-9a-f]{40}/);
      assert.doesNotMatch(loser.stderr, /RPC failed|HTTP 5\d\d|unexpected disconnect|hung up/);
      t.diagnostic(`round ${round}: ${winners[0].name} won; ${loser.name}: ${/\((.*)\)/.exec(loser.stderr)?.[1]}`);
      assert.equal((await lsRemote(writer, repoUrl)).get('refs/heads/main'), winners[0].tip, `round ${round}: main is the winner's commit`);
      assert.notEqual(winners[0].tip, base);
      // Both clones catch up with the winner for the next round.
      for (const dir of [a, b]) {
        await gitOk(writer, ['fetch', '-q', 'origin'], { cwd: dir });
        await gitOk(none, ['reset', '-q', '--hard', 'origin/main'], { cwd: dir });
      }
    }
    await assertCloneMatches(writer, repoUrl, a);
    await assertCloneMatches(writer, repoUrl, b);
    await assertStoreVerifies(join(root, 'r.git'));
  });

  it('lets a pusher that stalls in its pack for 60 s hold up no other push; once it goes on, it is refused as Git refuses it', async (t) => {
    const stalled = join(tmp.path, 'stalled');
    const other = join(tmp.path, 'other');
    await gitOk(writer, ['clone', '-q', repoUrl, stalled]);
    await gitOk(writer, ['clone', '-q', repoUrl, other]);
    const base = await gitOk(none, ['rev-parse', 'HEAD'], { cwd: stalled });
    const mine = await commit(stalled, 'stalled');
    const pack = gitBuffer(['pack-objects', '--stdout', '--revs', '-q'], { cwd: stalled, input: `${mine}\n^${base}\n` });
    const body = Buffer.concat([commandList([{ old: base, new: mine, ref: 'refs/heads/main' }], 'report-status side-band-64k ofs-delta'), pack]);
    // A push to another branch, alone: how long it takes here.
    await commit(other, 'side');
    let started = Date.now();
    await gitOk(writer, ['push', '-q', 'origin', 'HEAD:refs/heads/side-alone'], { cwd: other });
    const alone = Date.now() - started;

    // The stalled pusher: its commands and half its pack, then nothing.
    const request = http.request(`${repoUrl}/git-receive-pack`, {
      method: 'POST',
      agent: false,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-git-receive-pack-request', 'content-length': String(body.length) },
    });
    const answered = new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
      request.on('response', (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts) }));
      });
      request.on('error', reject);
    });
    const cut = body.length - Math.floor(pack.length / 2);
    request.write(body.subarray(0, cut));
    const stallStarted = Date.now();
    await sleep(500);

    // Meanwhile: a push to another branch, then one to the same branch.
    started = Date.now();
    await gitOk(writer, ['push', '-q', 'origin', 'HEAD:refs/heads/side-during-stall'], { cwd: other });
    const during = Date.now() - started;
    const theirs = await commit(other, 'same-branch');
    await gitOk(writer, ['push', '-q', 'origin', 'HEAD:main'], { cwd: other });
    assert.equal((await lsRemote(writer, repoUrl)).get('refs/heads/main'), theirs, 'the push to the same branch won');
    t.diagnostic(`push to another branch: ${alone} ms alone, ${during} ms while a push stalls`);
    assert.ok(during < alone + 1000, `a push to another branch took ${during} ms during the stall (${alone} ms alone)`);

    // 60 s after it stalled, the rest of its pack: the ref moved meanwhile, and Git says so in its words.
    await sleep(Math.max(0, 60_000 - (Date.now() - stallStarted)));
    request.end(body.subarray(cut));
    const { status, body: response } = await answered;
    assert.equal(status, 200);
    assert.deepEqual(reportLines(response), ['unpack ok', 'ng refs/heads/main failed to update ref']);
    assert.ok(response.toString('latin1').includes(`error: cannot lock ref 'refs/heads/main': is at ${theirs} but expected ${base}`), response.toString('latin1'));
    assert.equal((await lsRemote(writer, repoUrl)).get('refs/heads/main'), theirs);
    await gitOk(writer, ['push', '-q', 'origin', ':refs/heads/side-alone', ':refs/heads/side-during-stall'], { cwd: other });
    await assertStoreVerifies(join(root, 'r.git'));
  });

  it('serves 50 clones at once, while a push lands, each with a whole set of refs', async (t) => {
    const work = join(tmp.path, 'pusher');
    await gitOk(writer, ['clone', '-q', repoUrl, work]);
    const beforeRefs = await lsRemote(none, repoUrl);
    const tip = await commit(work, 'during-clones');
    const dirs = Array.from({ length: 50 }, (_, i) => join(tmp.path, `clone-${i}`));
    const [clones, push] = await Promise.all([
      // Started 10 ms apart, so that some begin before the push lands and some after (all overlap).
      Promise.all(dirs.map(async (dir, i) => (await sleep(i * 10), runGit(none, ['clone', '-q', '--bare', repoUrl, dir])))),
      runGit(writer, ['push', '-q', 'origin', 'main', 'main:refs/heads/during-clones'], { cwd: work }),
    ]);
    assert.equal(push.code, 0, push.stderr);
    clones.forEach((r, i) => assert.equal(r.code, 0, `clone ${i} failed:\n${r.stderr}`));
    const afterRefs = await lsRemote(none, repoUrl);
    assert.equal(afterRefs.get('refs/heads/main'), tip);
    assert.equal(afterRefs.get('refs/heads/during-clones'), tip);
    const states = { before: JSON.stringify(sortedEntries(beforeRefs)), after: JSON.stringify(sortedEntries(afterRefs)) };
    const seen = await pool(dirs, 4, async (dir) => {
      const refs = JSON.stringify(sortedEntries(await cloneRefs(dir)));
      assert.ok(refs === states.before || refs === states.after, `${dir} holds a mixture of refs:\n${refs}`);
      await assertFsck(dir);
      return refs === states.before ? 'before' : 'after';
    });
    assert.equal(seen.length, 50);
    t.diagnostic(`${seen.filter((s) => s === 'before').length} clones before the push, ${seen.filter((s) => s === 'after').length} after`);
    await assertStoreVerifies(join(root, 'r.git'));
  });
});

// upload-pack over a packferry store, with the real `git` as the client
// (through test/support/upload-pack-harness.ts, smart HTTP on loopback) and
// `git upload-pack` as the reference: each operation is run twice, against
// the store and against the source repository over file:// (Git's own
// upload-pack), and the two results must agree — refs, shallow files,
// object sets — and pass `git fsck`. Every request the client sent us is
// also replayed against `git upload-pack --stateless-rpc` on the source, and
// the answers compared line by line and object by object.
//
// Covered: clone (v2, v0), ls-remote (prefixes, peeled tags, symrefs),
// --depth, --shallow-since, --shallow-exclude, fetch --deepen (deepen-relative)
// and --unshallow, incremental fetches after the store gets new commits
// (with negotiation over several rounds), include-tag, partial clones
// (blob:none with lazy fetches of missing blobs, tree:0, blob:limit), an
// empty repository, and a want the store does not have.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { FsBlobStore } from '../../src/store/fs-backend.js';
import { StoreRepository } from '../../src/store/repository.js';
import { git, gitAsync, tempDir } from '../support/git.js';
import { commitFiles, fsck, refLines } from '../support/mirror-fixtures.js';
import { mirror } from '../../src/mirror/sync.js';
import { storeTarget } from '../../src/mirror/endpoints.js';
import { openTransport } from '../../src/transport/open.js';
import { generateRepo, type RepoSummary } from '../support/repogen.js';
import { startUploadPackHarness, type HarnessRequest, type UploadPackHarness } from '../support/upload-pack-harness.js';
import { objectIds, replayAndCompare, shallowCommits } from './upload-pack-helpers.js';

const tmp = tempDir('packferry-upload-pack-');
const src = join(tmp.path, 'src.git');
const store = join(tmp.path, 'store.git');
const emptyStore = join(tmp.path, 'empty.git');
let summary: RepoSummary;
let harness: UploadPackHarness;
let url: string;
let counter = 0;
/**
 * Annotated tags of trees. Git's include-tag counts the trees a thin pack may
 * use as delta bases (pack-objects' preferred bases) as packed, so it sends
 * a tag of a tree the client already has; packferry sends a tag only when
 * its target is in the pack. Such tags are not counted as differences.
 */
let tagsOfTrees: Set<string>;

/** A fresh directory name under the test's temporary directory. */
function fresh(label: string): string {
  return join(tmp.path, `${label}-${++counter}`);
}

/** Runs git; fails the test with its stderr when it fails. */
async function run(args: string[], cwd?: string): Promise<string> {
  const result = await gitAsync(args, { cwd });
  assert.equal(result.code, 0, `git ${args.join(' ')} failed:\n${result.stderr}`);
  return result.stdout.toString();
}

/** The requests the harness saw during `fn`. */
async function requestsDuring(fn: () => Promise<void>): Promise<HarnessRequest[]> {
  const start = harness.requests.length;
  await fn();
  return harness.requests.slice(start);
}

/** Replays every POST of `requests` against git upload-pack on the source; returns how many were compared. */
async function compareWithGit(requests: HarnessRequest[], label: string): Promise<number> {
  let n = 0;
  for (const r of requests) {
    if (r.method !== 'POST' || r.body === undefined) continue;
    assert.equal(r.error, undefined, `${label}: the server failed: ${String(r.error)}`);
    await replayAndCompare(store, src, r.body, r.protocolVersion, `${label} request ${n + 1}`, tagsOfTrees);
    n++;
  }
  return n;
}

/** Mirrors the source into the store again (after the source changed). */
async function syncStore(): Promise<void> {
  const result = await mirror(await openTransport(src, {}), [storeTarget(`store://${store}`, () => StoreRepository.open(new FsBlobStore(store)))]);
  assert.ok(result.ok, JSON.stringify(result));
}

/** Refs of a repository under `prefix`, as "<oid> <name>" with the prefix replaced (to compare clones' remotes with the source). */
function refsUnder(dir: string, prefix: string, as: string): string[] {
  const byName = (a: string, b: string): number => (a.slice(41) < b.slice(41) ? -1 : a.slice(41) > b.slice(41) ? 1 : 0);
  return refLines(dir, [prefix])
    .map((l) => `${l.slice(0, 41)}${as}${l.slice(41 + prefix.length)}`)
    .sort(byName);
}

/** Two repositories made the same way from the store and from the source agree. */
function assertSameResult(ours: string, theirs: string, label: string): void {
  assert.deepEqual(refLines(ours, []), refLines(theirs, []), `${label}: refs differ`);
  assert.deepEqual(shallowCommits(ours), shallowCommits(theirs), `${label}: shallow commits differ`);
  assert.deepEqual(objectIds(ours), objectIds(theirs), `${label}: objects differ`);
  fsck(ours);
}

before(async () => {
  summary = await generateRepo(src, { seed: 11, commits: 24, files: 10, branches: 3, largeFiles: 0, deepChain: 6, mergeEvery: 6, tagEvery: 5 });
  git(['config', 'uploadpack.allowFilter', 'true'], { cwd: src });
  git(['config', 'uploadpack.allowAnySHA1InWant', 'true'], { cwd: src });
  await syncStore();
  tagsOfTrees = new Set(
    git(['for-each-ref', '--format=%(objectname) %(*objecttype)', 'refs/tags'], { cwd: src })
      .split('\n')
      .filter((l) => l.endsWith(' tree'))
      .map((l) => l.slice(0, 40)),
  );
  assert.ok(tagsOfTrees.size > 0);
  const empty = await StoreRepository.open(new FsBlobStore(emptyStore));
  await empty.init({ head: 'refs/heads/main' });
  await empty.close();
  harness = await startUploadPackHarness({ repos: { 'repo.git': store, 'empty.git': emptyStore } });
  url = harness.repoUrl('repo.git');
});

after(async () => {
  await harness?.close();
  tmp.cleanup();
});

describe('upload-pack with real git: clone and ls-remote', () => {
  for (const version of [2, 1, 0] as const) {
    it(`clone --mirror over protocol v${version} has the source's refs and objects`, async () => {
      const dst = fresh(`mirror-v${version}`);
      const requests = await requestsDuring(() => run(['-c', `protocol.version=${version}`, 'clone', '-q', '--mirror', url, dst]).then(() => {}));
      assert.ok(requests.every((r) => r.protocolVersion === version && r.status === 200));
      assert.deepEqual(refLines(dst), refLines(src));
      assert.deepEqual(objectIds(dst), objectIds(src));
      fsck(dst);
      // v2: ls-refs, then fetch; v0: the fetch.
      assert.equal(await compareWithGit(requests, `clone v${version}`), version === 2 ? 2 : 1);
    });
  }

  it('a clone checks out HEAD and names it as the source does', async () => {
    const dst = fresh('checkout');
    await run(['clone', '-q', url, dst]);
    assert.equal(git(['symbolic-ref', 'HEAD'], { cwd: dst }), 'refs/heads/main');
    assert.equal(git(['rev-parse', 'HEAD'], { cwd: dst }), summary.head);
    assert.equal(git(['status', '--porcelain'], { cwd: dst }), '');
    assert.deepEqual(refsUnder(dst, 'refs/remotes/origin/', 'refs/heads/').filter((l) => !l.endsWith('/HEAD')), refLines(src, ['refs/heads/']));
    fsck(dst);
  });

  for (const version of [2, 0] as const) {
    it(`ls-remote over protocol v${version} lists what git upload-pack lists (HEAD, peeled tags, prefixes)`, async () => {
      const v = ['-c', `protocol.version=${version}`];
      assert.equal(await run([...v, 'ls-remote', url]), await run([...v, 'ls-remote', `file://${src}`]));
      assert.equal(await run([...v, 'ls-remote', '--symref', url, 'HEAD']), await run([...v, 'ls-remote', '--symref', `file://${src}`, 'HEAD']));
      const tags = await run([...v, 'ls-remote', '--tags', url]);
      assert.equal(tags, await run([...v, 'ls-remote', '--tags', `file://${src}`]));
      assert.match(tags, /\^\{\}\n/, 'peeled tags are listed');
      assert.equal(await run([...v, 'ls-remote', '--heads', url, 'main']), `${summary.head}\trefs/heads/main\n`);
    });
  }
});

describe('upload-pack with real git: shallow clones', () => {
  it('clone --depth 1, then fetch --deepen=2, then fetch --unshallow (v2), as git upload-pack does them', async () => {
    const ours = fresh('depth-ours');
    const theirs = fresh('depth-theirs');
    let requests = await requestsDuring(() => run(['clone', '-q', '--bare', '--depth', '1', '--no-single-branch', url, ours]).then(() => {}));
    await run(['clone', '-q', '--bare', '--depth', '1', '--no-single-branch', `file://${src}`, theirs]);
    assert.ok(shallowCommits(ours).length >= 1);
    assert.equal(git(['rev-list', '--count', 'main'], { cwd: ours }), '1');
    assertSameResult(ours, theirs, 'depth 1');
    await compareWithGit(requests, 'depth 1');

    requests = await requestsDuring(() => run(['fetch', '-q', '--deepen=2', 'origin'], ours).then(() => {}));
    await run(['fetch', '-q', '--deepen=2', 'origin'], theirs);
    assert.equal(git(['rev-list', '--count', 'main'], { cwd: ours }), git(['rev-list', '--count', 'main'], { cwd: theirs }));
    assert.ok(Number(git(['rev-list', '--count', 'main'], { cwd: ours })) >= 3);
    assertSameResult(ours, theirs, 'deepen 2');
    assert.ok(requests.some((r) => r.body?.includes('deepen-relative')), 'fetch --deepen sends deepen-relative');
    await compareWithGit(requests, 'deepen 2');

    requests = await requestsDuring(() => run(['fetch', '-q', '--unshallow', 'origin'], ours).then(() => {}));
    await run(['fetch', '-q', '--unshallow', 'origin'], theirs);
    assert.deepEqual(shallowCommits(ours), []);
    assertSameResult(ours, theirs, 'unshallow');
    assert.deepEqual(objectIds(ours), objectIds(src));
    await compareWithGit(requests, 'unshallow');
  });

  it('clone --depth 2 over protocol v0 (stateless rounds with the shallow list)', async () => {
    const ours = fresh('depth-v0-ours');
    const theirs = fresh('depth-v0-theirs');
    const v0 = ['-c', 'protocol.version=0'];
    const requests = await requestsDuring(() => run([...v0, 'clone', '-q', '--bare', '--depth', '2', url, ours]).then(() => {}));
    await run([...v0, 'clone', '-q', '--bare', '--depth', '2', `file://${src}`, theirs]);
    assertSameResult(ours, theirs, 'v0 depth 2');
    assert.ok(requests.filter((r) => r.method === 'POST').length >= 2, 'the shallow list comes in a round of its own');
    await compareWithGit(requests, 'v0 depth 2');
    // Deepening over v0 too.
    const more = await requestsDuring(() => run([...v0, 'fetch', '-q', '--depth', '4', 'origin'], ours).then(() => {}));
    await run([...v0, 'fetch', '-q', '--depth', '4', 'origin'], theirs);
    assertSameResult(ours, theirs, 'v0 depth 4');
    await compareWithGit(more, 'v0 depth 4');
  });

  it('clone --shallow-since and --shallow-exclude agree with git upload-pack', async () => {
    const since = git(['log', '-1', '--format=%ct', 'main~6'], { cwd: src });
    const exclude = summary.tags.annotated[0].replace(/^refs\/tags\//, '');
    const cases = [
      { label: 'since', config: [], flags: [`--shallow-since=${since}`] },
      { label: 'exclude', config: [], flags: [`--shallow-exclude=${exclude}`] },
      { label: 'since-v0', config: ['-c', 'protocol.version=0'], flags: [`--shallow-since=${since}`] },
      { label: 'exclude-v0', config: ['-c', 'protocol.version=0'], flags: [`--shallow-exclude=${exclude}`] },
    ];
    for (const { label, config, flags } of cases) {
      const ours = fresh(`shallow-${label}-ours`);
      const theirs = fresh(`shallow-${label}-theirs`);
      const requests = await requestsDuring(() => run([...config, 'clone', '-q', '--bare', '--no-single-branch', ...flags, url, ours]).then(() => {}));
      await run([...config, 'clone', '-q', '--bare', '--no-single-branch', ...flags, `file://${src}`, theirs]);
      assert.ok(shallowCommits(ours).length > 0, `${label}: the clone is shallow`);
      assertSameResult(ours, theirs, label);
      await compareWithGit(requests, label);
    }
  });
});

describe('upload-pack with real git: fetches', () => {
  it('fetches what the store gained since (v2 and v0), negotiating over several rounds', async () => {
    const clones: Record<string, string> = {};
    for (const v of ['2', '0']) {
      clones[v] = fresh(`incr-v${v}`);
      await run(['-c', `protocol.version=${v}`, 'clone', '-q', url, clones[v]]);
      // Local work the server has never seen: 40 commits make the client send haves in rounds.
      for (let i = 0; i < 40; i++) {
        await run(['-c', 'user.name=L', '-c', 'user.email=l@example.com', 'commit', '-q', '--allow-empty', '-m', `local ${i}`], clones[v]);
      }
    }
    // The source moves on: new commits on main and a branch, a new annotated tag; mirrored into the store.
    const tip = commitFiles(src, 'main', { 'new-file.txt': 'new content\n' });
    commitFiles(src, 'main', { 'new-file.txt': 'newer content\n', 'other.txt': 'other\n' });
    commitFiles(src, 'side-branch', { 'side.txt': 'side\n' }, { parent: tip });
    git(['tag', '-a', '-m', 'a new tag', 'v-new', tip], { cwd: src });
    await syncStore();
    for (const [v, dir] of Object.entries(clones)) {
      const requests = await requestsDuring(() => run(['-c', `protocol.version=${v}`, 'fetch', '-q', 'origin'], dir).then(() => {}));
      const posts = requests.filter((r) => r.method === 'POST');
      assert.ok(posts.length >= 2, `v${v}: several negotiation rounds (${posts.length})`);
      assert.ok(posts.some((r) => r.body?.includes('have ')), `v${v}: the client sent haves`);
      assert.deepEqual(refsUnder(dir, 'refs/remotes/origin/', 'refs/heads/').filter((l) => !l.endsWith('/HEAD')), refLines(src, ['refs/heads/']));
      assert.deepEqual(refLines(dir, ['refs/tags/']), refLines(src, ['refs/tags/']), `v${v}: tags followed`);
      fsck(dir);
      await compareWithGit(requests, `incremental v${v}`);
    }
  });

  it('include-tag: a single-branch clone gets the annotated tags of what it fetched', async () => {
    const ours = fresh('single-ours');
    const theirs = fresh('single-theirs');
    const branch = summary.branches.find((b) => b !== 'main' && /^[a-z0-9/-]+$/.test(b)) ?? 'main';
    const requests = await requestsDuring(() => run(['clone', '-q', '--bare', '--single-branch', '--branch', branch, url, ours]).then(() => {}));
    await run(['clone', '-q', '--bare', '--single-branch', '--branch', branch, `file://${src}`, theirs]);
    assert.ok(requests.some((r) => r.body?.includes('include-tag')), 'the client asked for include-tag');
    assertSameResult(ours, theirs, 'single branch');
    await compareWithGit(requests, 'single branch');
  });

  it('a want the store does not have is refused with "not our ref" (v2 and v0)', async () => {
    const dst = fresh('unknown');
    await run(['init', '-q', '--bare', dst]);
    const missing = 'deadbeef'.repeat(5);
    for (const v of ['2', '0']) {
      const result = await gitAsync(['-c', `protocol.version=${v}`, 'fetch', url, missing], { cwd: dst });
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, new RegExp(`not our ref ${missing}`), `v${v}: ${result.stderr}`);
    }
    fsck(dst);
  });
});

describe('upload-pack with real git: partial clones and empty repositories', () => {
  it('clone --filter=blob:none, then checkouts fetch missing blobs by id', async () => {
    const ours = fresh('blobless-ours');
    const theirs = fresh('blobless-theirs');
    const other = summary.branches.find((b) => b !== 'main')!;
    let requests = await requestsDuring(() => run(['clone', '-q', '--filter=blob:none', url, ours]).then(() => {}));
    await run(['clone', '-q', '--filter=blob:none', `file://${src}`, theirs]);
    assert.equal(git(['config', 'remote.origin.promisor'], { cwd: ours }), 'true');
    assert.equal(git(['status', '--porcelain'], { cwd: ours }), '');
    assert.deepEqual(objectIds(ours), objectIds(theirs));
    await compareWithGit(requests, 'blob:none clone');
    // A checkout of another branch fetches the blobs it lacks, by id, with blob:none.
    requests = await requestsDuring(() => run(['checkout', '-q', other], ours).then(() => {}));
    await run(['checkout', '-q', other], theirs);
    assert.ok(requests.some((r) => r.method === 'POST' && r.body?.includes('want ')), 'the checkout fetched objects');
    assert.deepEqual(objectIds(ours), objectIds(theirs));
    assert.equal(git(['status', '--porcelain'], { cwd: ours }), '');
    fsck(ours);
    await compareWithGit(requests, 'lazy fetch');
    // The partial clone's objects are a strict subset of the source's.
    assert.ok(objectIds(ours).length < objectIds(src).length);
  });

  it('clone --filter=tree:0 and --filter=blob:limit=1k agree with git upload-pack', async () => {
    for (const filter of ['tree:0', 'blob:limit=1k']) {
      const ours = fresh(`filter-ours`);
      const theirs = fresh(`filter-theirs`);
      const requests = await requestsDuring(() => run(['clone', '-q', '--bare', `--filter=${filter}`, url, ours]).then(() => {}));
      await run(['clone', '-q', '--bare', `--filter=${filter}`, `file://${src}`, theirs]);
      assert.deepEqual(objectIds(ours), objectIds(theirs), `${filter}: objects differ`);
      assert.deepEqual(refLines(ours), refLines(src));
      fsck(ours);
      await compareWithGit(requests, filter);
    }
  });

  for (const version of [2, 0] as const) {
    it(`clone of an empty repository (v${version})`, async () => {
      const dst = fresh(`empty-v${version}`);
      const result = await gitAsync(['-c', `protocol.version=${version}`, '-c', 'init.defaultBranch=trunk', 'clone', harness.repoUrl('empty.git'), dst]);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stderr, /cloned an empty repository/);
      assert.deepEqual(refLines(dst, []), []);
      // v2 tells the client the unborn HEAD's name (ls-refs unborn); v0 cannot.
      assert.equal(git(['symbolic-ref', 'HEAD'], { cwd: dst }), version === 2 ? 'refs/heads/main' : 'refs/heads/trunk');
      assert.ok(existsSync(join(dst, '.git')));
    });
  }
});

describe('upload-pack with real git: the harness', () => {
  it('serves nothing but the named repositories', async () => {
    const dir = fresh('nowhere');
    mkdirSync(dir);
    const result = await gitAsync(['ls-remote', harness.repoUrl('missing.git')], { cwd: dir });
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /not found|404/);
  });
});

// The store's acceptance scenarios, run against every kind of store (a
// directory: dir-store.test.ts; a bucket of a real S3 server:
// s3-store.test.ts). The `packferry` command runs them as a user does where
// the command is the point (the first mirror, restores, every interrupted
// sync, verify after each interruption, compaction); the many small syncs in
// between run the same code in this process, to keep the suite quick. Every
// result is checked with real Git: `git clone` of the store (a path, or plain
// "dumb" HTTP), `git fsck --full`, and the refs compared with the source's.
//
// - mirror, clone, incremental sync (exactly one new layer), no-op sync
//   (nothing written, one request), restore into an empty repository and
//   incrementally;
// - interrupted syncs: the writer killed at several points (while the pack
//   arrives, once a layer is stored, at the commit point, after it, between
//   packed-refs and info/refs, at random times) and the source's connection
//   cut mid-pack: after each, the
//   store's refs are all old or all new, verify's verdict is what Git's
//   clients get (no errors exactly when every clone, by path and over plain
//   HTTP, gets one complete state; orphans and lagging files are warnings),
//   and the next sync completes;
// - concurrent writers: two syncs of one change at once both succeed; where
//   commits fall back to the writer lock (no conditional writes), a writer is
//   refused with ERR_STORE_LOCKED while another holds it and changes nothing,
//   and stale and dead writers' locks are taken over;
// - the ref transaction: a directory/file conflict in a sync is refused in
//   Git's words (atomic: nothing moves; --no-atomic: the rest goes on);
//   SIGINT and SIGKILL at every step of a first and a later sync leave a
//   store Git clones whole (old or new refs), verify passes exactly when Git
//   can, and the next sync, a no-op included, brings Git's files in line;
// - compaction: geometric and --all merges, a clone that started before
//   (old objects/info/packs and info/refs) still completes during the grace
//   period, retired layers and orphans deleted after it, unreachable objects
//   dropped by --all;
// - verify detects a corrupted pack, a missing or foreign index, a lying
//   index (--full), a ref to a missing object, stale or broken Git files,
//   orphans, a layer both listed and retired, corrupt LFS objects; refs Git
//   cannot hold (a directory/file conflict, a bad name, a duplicate, a bad
//   HEAD), on which Git's clients fail; Git's files a first sync stopped
//   after its commit left missing (every clone fails: an error), and Git's
//   files of an older generation told apart by what clones get (an older,
//   complete state: a warning; anything else: an error).
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ErrorCode } from '../../src/core/errors.js';
import { compactStore, type CompactOptions } from '../../src/store/compact.js';
import { idxKey, KEYS, lfsKey, packKey, renderHead, renderInfoPacks, renderInfoRefs, renderPackedRefs } from '../../src/store/layout.js';
import { conditionalWrites } from '../../src/store/backend.js';
import { acquireWriterLock } from '../../src/store/lock.js';
import { parseManifest, serializeManifest, type Manifest } from '../../src/store/manifest.js';
import { verifyStore } from '../../src/store/verify.js';
import { git, gitAsync, tempDir } from '../support/git.js';
import { assertMirrored, commitFiles, deleteRef, initBare, installFakeGit, makeSource, noise, refMap, updateRef, type JsonReport } from '../support/mirror-fixtures.js';
import { generateRepo } from '../support/repogen.js';
import { json, localCopy, openRepo, packferryCli, readManifest, run, sameRefs, storeRefs, syncStore, type StoreSite, type VerifyJson } from './store-fixtures.js';

interface CompactJson {
  ok: boolean;
  merged: string[];
  layer?: { name: string; objects: number; merged?: number };
  dropped: number;
  expired: string[];
  deleted: string[];
  repaired: boolean;
  layersBefore: number;
  layersAfter: number;
  generation: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function storeScenarios(getSite: () => StoreSite): void {
  let work: { path: string; cleanup: () => void };
  let counter = 0;
  before(() => {
    work = tempDir('packferry-store-scenarios-');
  });
  after(() => work?.cleanup());
  const dir = (label: string) => join(work.path, `${label}-${++counter}`);

  const mirrorCli = async (site: StoreSite, from: string, to: string, env?: NodeJS.ProcessEnv) => {
    const r = await packferryCli(site, ['mirror', '-q', '--json', from, to], { env });
    return { code: r.code, report: json<JsonReport>(r), stderr: r.stderr };
  };
  const mirrorCliOk = async (site: StoreSite, from: string, to: string) => {
    const r = await mirrorCli(site, from, to);
    assert.equal(r.code, 0, `mirror ${from} -> ${to} failed:\n${JSON.stringify(r.report, null, 1)}\n${r.stderr}`);
    return r.report;
  };
  const verifyCli = async (site: StoreSite, store: string, flags: string[] = []) => {
    const r = await packferryCli(site, ['store', 'verify', '--json', ...flags, store]);
    return { code: r.code, report: json<VerifyJson>(r) };
  };
  /** Verifies in this process; fails on errors and on warnings not of the `allow`ed kinds. */
  const verifyOk = async (site: StoreSite, store: string, options: { full?: boolean; allow?: string[] } = {}) => {
    const report = await verifyStore(site.blobs(store), { full: options.full, workDir: work.path });
    const unexpected = report.problems.filter((p) => p.severity === 'error' || !(options.allow ?? []).includes(p.kind));
    assert.deepEqual(unexpected, [], 'store verify found problems');
    assert.equal(report.ok, true);
    return report;
  };
  const compactNow = async (site: StoreSite, store: string, options: CompactOptions = {}) => {
    const repo = await openRepo(site, store);
    try {
      return await compactStore(repo, options);
    } finally {
      await repo.close();
    }
  };
  /** Clones the store with Git (a mirror clone) and checks it against the source: refs, HEAD, fsck --full. */
  const cloneMatches = async (site: StoreSite, store: string, source: string, url = site.cloneUrl(store)) => {
    const clone = dir('clone');
    const r = await gitAsync(['clone', '-q', '--mirror', url, clone]);
    assert.equal(r.code, 0, `git clone ${url} failed:\n${r.stderr}`);
    assertMirrored(source, clone);
    assert.equal(git(['symbolic-ref', 'HEAD'], { cwd: clone }), git(['symbolic-ref', 'HEAD'], { cwd: source }));
    return clone;
  };
  interface GitView {
    how: string;
    ok: boolean;
    stderr: string;
    refs?: Map<string, string>;
    head?: string;
  }
  /**
   * What Git's clients get from the store, each way Git reads it: in place (`git clone PATH` of a directory
   * store, or of a copy of a bucket's files) and over plain HTTP. A mirror clone's refs and HEAD, or its failure.
   */
  const gitViews = async (site: StoreSite, store: string): Promise<GitView[]> => {
    const inPlace = site.name === 'directory' ? store : await localCopy(site.blobs(store), dir('copy'));
    const overHttp = site.name === 'directory' ? site.frontUrl(store, {}) : site.cloneUrl(store);
    const views: GitView[] = [];
    for (const [how, url] of [['by path', inPlace], ['over plain HTTP', overHttp]]) {
      const clone = dir('view');
      const r = await gitAsync(['clone', '-q', '--mirror', url, clone]);
      views.push(r.code === 0 ? { how, ok: true, stderr: r.stderr, refs: refMap(clone), head: git(['symbolic-ref', 'HEAD'], { cwd: clone }) } : { how, ok: false, stderr: r.stderr });
    }
    return views;
  };
  /** Every clone succeeds and all get the same refs and HEAD: one of `states`, and `head`. */
  const oneCompleteState = (views: GitView[], states: Map<string, string>[], head: string): boolean =>
    views.every((v) => v.ok && v.head === head && states.some((state) => sameRefs(v.refs!, state)) && sameRefs(v.refs!, views[0].refs!));

  it('mirrors into the store, clones with Git, syncs incrementally with one layer, writes nothing when in sync, restores', async () => {
    const site = getSite();
    const source = dir('source');
    const summary = await makeSource(source, 11);
    const store = site.address('basic');
    const blobs = site.blobs(store);

    const first = await mirrorCliOk(site, source, store);
    assert.equal(first.targets[0].updates.length, Object.keys(summary.refs).length);
    const ls = await packferryCli(site, ['store', 'ls', '--json', '--refs', store]);
    assert.equal(ls.code, 0, ls.stderr);
    const listing = json<{ generation: number; head: string; layers: { objects: number }[]; refs: { name: string; oid: string }[] }>(ls);
    assert.deepEqual([listing.generation, listing.head, listing.layers.length, listing.layers[0].objects], [1, 'refs/heads/main', 1, summary.objects.total]);
    assert.deepEqual(new Map(listing.refs.map((r) => [r.name, r.oid])), refMap(source));
    const checked = await verifyCli(site, store, ['--full', '--strict']);
    assert.equal(checked.code, 0, JSON.stringify(checked.report.problems));
    assert.deepEqual([checked.report.reachable, checked.report.indexed, checked.report.problems.length], [summary.objects.total, 1, 0]);
    await cloneMatches(site, store, source);

    // An incremental sync: exactly one new layer, with exactly the new objects.
    commitFiles(source, 'main', { 'next.txt': 'one more\n', 'blob.bin': noise(40_000, 'inc-1') });
    updateRef(source, 'refs/tags/inc-1', git(['rev-parse', 'refs/heads/main'], { cwd: source }));
    deleteRef(source, `refs/heads/${summary.branches.find((b) => b !== 'main' && /^[a-z/0-9-]+$/.test(b))}`);
    const inc = await site.observe(store, () => syncStore(site, { into: store, from: source }));
    const newPacks = inc.written.filter((k) => k.startsWith('objects/pack/'));
    assert.equal(newPacks.length, 2, `one layer (pack and index) expected, written: ${inc.written.join(', ')}`);
    assert.ok(newPacks.some((k) => k.endsWith('.pack')) && newPacks.some((k) => k.endsWith('.idx')));
    // (Nothing but its lock where commits fall back to the writer lock, and the probe for conditional writes, once per process.)
    assert.deepEqual(inc.deleted.filter((k) => !k.startsWith(KEYS.locks) && !k.startsWith('packferry/probe-conditional-writes-')), [], 'a sync deletes nothing');
    // (Without conditional writes, 3 of them are the writer lock around the commit, and 3 the probe for them, once per process.)
    if (inc.requests !== undefined) assert.ok(inc.requests <= 17, `an incremental sync took ${inc.requests} requests`);
    const m = (await readManifest(blobs))!;
    assert.equal(m.layers.length, 2);
    assert.equal(m.layers[0].objects, 4, 'the new layer holds the commit, its tree and two blobs');
    await verifyOk(site, store);
    await cloneMatches(site, store, source);

    // Nothing to do: nothing is written, and an object store is asked twice (the manifest, and whether Git's files describe it).
    const noop = await site.observe(store, () => syncStore(site, { into: store, from: source }));
    assert.deepEqual(noop.written, []);
    assert.deepEqual(noop.deleted, []);
    if (noop.requests !== undefined) assert.ok(noop.requests <= 2, `a no-op sync took ${noop.requests} requests`);
    assert.equal((await readManifest(blobs))!.generation, 2);

    // Restore into an empty repository with the command, then incrementally.
    const restored = initBare(dir('restored'));
    await mirrorCliOk(site, store, restored);
    assertMirrored(source, restored);
    assert.equal(git(['symbolic-ref', 'HEAD'], { cwd: restored }), 'refs/heads/main');
    commitFiles(source, 'main', { 'after-restore.txt': 'two more\n' });
    rewriteTag(source, 'refs/tags/inc-1');
    await syncStore(site, { into: store, from: source });
    const again = await syncStore(site, { out: store, to: restored });
    assertMirrored(source, restored);
    assert.equal(again.targets[0].pack?.objects, 4, 'the restore sent only the new commit, tree, blob and tag');
  });

  it('leaves the store verifiable after interrupted syncs, with refs all old or all new, and the next sync completes', async () => {
    const site = getSite();
    const source = dir('big-source');
    await generateRepo(source, { seed: 5, commits: 60, files: 30, largeFiles: 2, largeFileSize: 1 << 20, deepChain: 10 });
    const store = site.address('interrupted');
    const blobs = site.blobs(store);
    const fake = installFakeGit(dir('fake-git'));
    let step = 0;
    const advance = () => {
      step++;
      commitFiles(source, 'main', { [`step-${step}.bin`]: noise(600_000, `step-${step}`), 'steps.txt': `step ${step}\n` });
      updateRef(source, `refs/heads/step-${step}`, git(['rev-parse', 'refs/heads/main'], { cwd: source }));
    };
    const packFiles = () => (site.name === 'directory' && existsSync(join(store, 'objects', 'pack')) ? readdirSync(join(store, 'objects', 'pack')) : []);

    let layersNow = 0;
    /** Every set of refs the store's manifest has held (none before its first commit): Git's files may lag behind by more than one interruption. */
    const history: Map<string, string>[] = [];
    const remember = (refs: Map<string, string>) => {
      if (refs.size > 0) history.push(refs);
    };
    type Trigger = { label: string; afterMs?: number; when?: () => boolean; hang?: (method: string, key: string) => boolean; env?: NodeJS.ProcessEnv };
    const triggers: Trigger[] = [];
    if (site.hang) {
      // Held back at the proxy, the request never reaches S3; the writer is killed while it waits.
      triggers.push(
        { label: 'while the pack uploads', hang: (m, k) => m === 'PUT' && /^objects\/pack\/pack-.*\.pack$/.test(k) },
        { label: 'at the commit point', hang: (m, k) => m === 'PUT' && k === KEYS.manifest },
        { label: "after the commit, before Git's files", hang: (m, k) => m === 'PUT' && k === KEYS.infoPacks },
        { label: 'between packed-refs and info/refs', hang: (m, k) => m === 'PUT' && k === KEYS.infoRefs },
      );
    } else {
      triggers.push(
        { label: 'while the pack arrives', when: () => packFiles().some((f) => f.startsWith('.incoming-')) },
        { label: 'once the layer is stored', when: () => packFiles().filter((f) => f.endsWith('.pack') && !f.startsWith('.')).length > layersNow },
      );
    }
    // Random moments (every one must leave a valid store; the label says which one failed).
    const moment = Math.round(150 + Math.random() * 500);
    triggers.push({ label: `at ${moment} ms`, afterMs: moment }, { label: 'when the source drops the connection', env: fake.env({ cutAfterPackBytes: 50_000 }) });

    for (const [i, trigger] of triggers.entries()) {
      const old = await storeRefs(blobs);
      remember(old);
      if (sameRefs(old, refMap(source))) advance();
      const next = refMap(source);
      layersNow = (await readManifest(blobs))?.layers.length ?? 0;
      const hung = trigger.hang ? site.hang!(trigger.hang) : undefined;
      const child = run(['mirror', '-q', '--json', ...site.cliArgs(), source, store], { env: { ...site.cliEnv(), ...trigger.env } });
      const started = Date.now();
      while (!child.exited()) {
        if ((trigger.afterMs !== undefined && Date.now() - started >= trigger.afterMs) || trigger.when?.() === true || hung?.seen() === true) {
          child.kill();
          break;
        }
        await sleep(1);
      }
      const result = await child.done;
      if (trigger.hang) assert.notEqual(result.code, 0, `${trigger.label}: the writer was not stopped`);
      if (trigger.env) assert.equal(result.code, 1, `${trigger.label}: the mirror should fail`);
      // `packferry store verify` after every interruption of a directory store; an S3 client takes half a
      // second to load, so on S3 the command runs after the first and the same check in this process after the rest.
      const checked = site.name === 'directory' || i === 0 ? await verifyCli(site, store) : { code: 0, report: await verifyStore(blobs) };
      // A first sync stopped before anything reached the store left no store at all (exit 3: nothing to verify).
      const nothingYet = old.size === 0 && checked.code === 3 && (await blobs.list('')).length === 0;
      if (nothingYet) Object.assign(checked, { code: 0, report: { ...checked.report, problems: [] } });
      assert.ok(Array.isArray(checked.report.problems), `${trigger.label}: store verify exit ${checked.code}, no report: ${JSON.stringify(checked.report)}`);
      const errors = checked.report.problems.filter((p) => p.severity === 'error');
      const what = `${trigger.label}: ${JSON.stringify(checked.report.problems, null, 1)}`;
      if (process.env.STORE_TEST_DEBUG) console.error(`${site.name} ${trigger.label}: exit ${result.code} after ${Date.now() - started} ms; verify: ${errors.length} errors, ${checked.report.problems.length - errors.length} warnings`);
      // An interruption can leave orphans, a dead writer's lock, and Git's files behind the manifest; nothing else.
      for (const p of checked.report.problems) assert.ok(['orphan', 'lock', 'stale-git-file', 'bad-git-file'].includes(p.kind), `${trigger.label}: ${p.message}`);
      if (site.name === 'directory' || i === 0) assert.equal(checked.code, errors.length > 0 ? 1 : 0, what);
      const now = await storeRefs(blobs);
      assert.ok(sameRefs(now, old) || sameRefs(now, next), `${trigger.label}: the store's refs are neither all old nor all new`);
      remember(now);
      const committed = (await readManifest(blobs)) !== undefined;
      if (committed) {
        // Verify tells the truth: no errors exactly when every clone gets one complete state, the new one
        // or one the store held before.
        const views = await gitViews(site, store);
        const complete = oneCompleteState(views, [...history, next], 'refs/heads/main');
        assert.equal(errors.length === 0, complete, `${what}\nGit's clients: ${JSON.stringify(views.map((v) => ({ ...v, refs: v.refs?.size })))}`);
      } else {
        assert.deepEqual(errors, [], what);
      }
      if (trigger.label.startsWith('between packed-refs')) {
        // packed-refs has the new refs, info/refs the old: by path and over plain HTTP, clones get different refs.
        assert.ok(sameRefs(now, next) && old.size > 0, 'a later sync, committed before the writer stopped');
        assert.ok(errors.some((p) => p.kind === 'bad-git-file' && /packed-refs and info\/refs disagree/.test(p.message)), what);
      }
      if (trigger.label.startsWith('after the commit')) {
        // Git's files lag behind the manifest: those of the sync before (a complete older state, a
        // warning) or, after a first sync, none at all (every clone fails: errors). A sync that only
        // deletes a ref (no new layer) must still bring every one of them up to date, objects/info/packs included.
        assert.ok(sameRefs(now, next), 'the commit was made before the writer stopped');
        assert.ok(checked.report.problems.some((p) => p.kind === 'stale-git-file' || p.kind === 'bad-git-file'), "Git's files should lag behind");
        assert.equal(errors.length > 0, old.size === 0, `a first sync stopped after its commit leaves Git's clients nothing to clone, a later one an older state: ${what}`);
        const doomed = [...next.keys()].find((r) => r.startsWith('refs/heads/') && r !== 'refs/heads/main')!;
        deleteRef(source, doomed);
        const deleting = await syncStore(site, { into: store, from: source });
        assert.deepEqual(deleting.targets[0].updates.map((u) => `${u.kind} ${u.name}`), [`delete ${doomed}`]);
        const clean = await verifyOk(site, store, { allow: ['orphan', 'lock'] });
        assert.ok(!clean.problems.some((p) => p.kind === 'stale-git-file'));
        await cloneMatches(site, store, source);
      }
    }
    // The next sync completes; compaction with no grace removes what the interrupted ones left.
    if (sameRefs(await storeRefs(blobs), refMap(source))) advance();
    await mirrorCliOk(site, source, store);
    assert.ok(sameRefs(await storeRefs(blobs), refMap(source)));
    await verifyOk(site, store, { full: true, allow: ['orphan'] });
    await compactNow(site, store, { graceMs: 0 });
    await verifyOk(site, store);
    await cloneMatches(site, store, source);
  });

  it("refuses a sync's ref that a directory/file conflict blocks, in Git's words: nothing moves by default (atomic), the rest goes on with --no-atomic", async () => {
    const site = getSite();
    const source = initBare(dir('df-source'));
    const first = commitFiles(source, 'main', { 'a.txt': 'a\n' }, { parent: null });
    updateRef(source, 'refs/heads/x/y', first);
    const store = site.address('df');
    const blobs = site.blobs(store);
    await mirrorCliOk(site, source, store);
    // Renamed upstream: x/y became x; main moved on too. Without pruning, x/y stays in the store, in x's way.
    deleteRef(source, 'refs/heads/x/y');
    updateRef(source, 'refs/heads/x', first);
    const second = commitFiles(source, 'main', { 'b.txt': 'b\n' });
    const before = await storeRefs(blobs);
    const blocked = "failed to update ref: cannot lock ref 'refs/heads/x': 'refs/heads/x/y' exists; cannot create 'refs/heads/x'";
    const atomic = await packferryCli(site, ['mirror', '-q', '--json', '--no-prune', source, store]);
    assert.equal(atomic.code, 1, atomic.stderr);
    const updates = json<JsonReport>(atomic).targets[0].updates;
    assert.deepEqual(
      updates.map((u) => [u.ref, u.status, u.reason]),
      [
        ['refs/heads/main', 'rejected', 'atomic push failure'],
        ['refs/heads/x', 'rejected', blocked],
      ],
    );
    assert.ok(sameRefs(await storeRefs(blobs), before), 'nothing moved');
    const partial = await packferryCli(site, ['mirror', '-q', '--json', '--no-prune', '--no-atomic', source, store]);
    assert.equal(partial.code, 1, partial.stderr);
    assert.deepEqual(
      json<JsonReport>(partial).targets[0].updates.map((u) => [u.ref, u.status, u.reason]),
      [
        ['refs/heads/main', 'ok', undefined],
        ['refs/heads/x', 'rejected', blocked],
      ],
    );
    const after = await storeRefs(blobs);
    assert.equal(after.get('refs/heads/main'), second);
    assert.equal(after.get('refs/heads/x/y'), first);
    assert.equal(after.has('refs/heads/x'), false);
    await verifyOk(site, store);
    // Git can clone what the store holds.
    const clone = dir('df-clone');
    const cloned = await gitAsync(['clone', '-q', '--mirror', site.cloneUrl(store), clone]);
    assert.equal(cloned.code, 0, cloned.stderr);
    assert.deepEqual(refMap(clone), after);
    // With the obstacle pruned, the rename goes through.
    await mirrorCliOk(site, source, store);
    assert.ok(sameRefs(await storeRefs(blobs), refMap(source)));
  });

  it("leaves a store Git clones whole after SIGINT or SIGKILL at every step of a first and a later sync, verify says which, and the next sync (a no-op included) brings Git's files in line", async () => {
    const site = getSite();
    const points = ['store:receiving', 'store:staged', 'store:commit', 'store:committed', 'store:git-files'] as const;
    const source = dir('interrupt-source');
    await makeSource(source, 31);
    const later = site.address('interrupt-later');
    await mirrorCliOk(site, source, later);
    let step = 0;
    for (const kind of ['first', 'later'] as const) {
      for (const signal of ['SIGINT', 'SIGKILL'] as const) {
        for (const point of points) {
          const label = `${kind} sync, ${signal} at ${point}`;
          const store = kind === 'first' ? site.address('interrupt-first') : later;
          const blobs = site.blobs(store);
          const old = await storeRefs(blobs);
          if (kind === 'later') commitFiles(source, 'main', { [`step-${++step}.txt`]: `step ${step}\n` });
          const next = refMap(source);
          const child = run(['mirror', '-q', '--json', ...site.cliArgs(), source, store], { env: { ...site.cliEnv(), PACKFERRY_TEST_STOP_AT: point } });
          for (let i = 0; i < 3000 && !child.exited() && !child.stderr().includes(`stopped at ${point}`); i++) await sleep(5);
          assert.ok(child.stderr().includes(`stopped at ${point}`), `${label}: the writer never got there:\n${child.stderr()}`);
          child.kill(signal);
          const result = await child.done;
          if (signal === 'SIGINT') assert.equal(result.code, 130, `${label}: exit ${result.code}\n${result.stderr}`);
          const now = await storeRefs(blobs);
          assert.ok(sameRefs(now, old) || sameRefs(now, next), `${label}: the refs are neither all old nor all new`);
          const committed = ['store:committed', 'store:git-files'].includes(point);
          assert.ok(sameRefs(now, committed ? next : old), `${label}: the commit ${committed ? 'was' : 'was not'} made`);
          // What Git gets now, and what verify says about it: it passes only when Git's files describe a complete state.
          const clone = dir('interrupt-clone');
          const cloned = await gitAsync(['clone', '-q', '--mirror', site.cloneUrl(store), clone]);
          const checked = old.size === 0 && !committed ? undefined : await verifyCli(site, store);
          if (cloned.code === 0) {
            const seen = refMap(clone);
            assert.ok(sameRefs(seen, old) || sameRefs(seen, next), `${label}: git clone got a mix of old and new refs`);
            assert.equal((await gitAsync(['fsck', '--full', '--no-progress'], { cwd: clone })).code, 0, `${label}: the clone is not whole`);
          }
          if (checked !== undefined) {
            assert.equal(checked.code === 0, cloned.code === 0, `${label}: verify exit ${checked.code} while git clone ${cloned.code === 0 ? 'works' : `fails:\n${cloned.stderr}`}\n${JSON.stringify(checked.report.problems, null, 1)}`);
          } else {
            assert.notEqual(cloned.code, 0, `${label}: a store that never committed cannot be cloned`);
          }
          // The next sync completes (or, when the commit was made, has nothing to do) and leaves Git's files matching the manifest.
          await mirrorCliOk(site, source, store);
          const m = (await readManifest(blobs))!;
          assert.ok(sameRefs(await storeRefs(blobs), next), `${label}: the next sync did not complete`);
          assert.equal((await site.fetchKey(store, KEYS.infoRefs))?.toString(), renderInfoRefs(m.refs), `${label}: info/refs`);
          assert.equal((await site.fetchKey(store, KEYS.packedRefs))?.toString(), renderPackedRefs(m.refs), `${label}: packed-refs`);
          assert.equal((await site.fetchKey(store, KEYS.infoPacks))?.toString(), renderInfoPacks(m.layers.map((l) => l.name)), `${label}: objects/info/packs`);
          assert.equal((await site.fetchKey(store, KEYS.head))?.toString(), renderHead(m.head), `${label}: HEAD`);
          await verifyOk(site, store, { allow: ['orphan'] });
          await cloneMatches(site, store, source);
        }
      }
    }
  });

  it("lets two syncs of one store run at once, and, where commits fall back to the writer lock, refuses a writer while it is held and takes over stale and dead writers' locks", async () => {
    const site = getSite();
    const source = dir('locked-source');
    await makeSource(source, 12);
    const store = site.address('locked');
    const blobs = site.blobs(store);
    await syncStore(site, { into: store, from: source });

    // Two syncs of the same change at once (overlapping cron runs): both succeed, the change is made once.
    commitFiles(source, 'main', { 'both.txt': 'both at once\n' });
    const [one, two] = await Promise.all([mirrorCli(site, source, store), mirrorCli(site, source, store)]);
    assert.deepEqual([one.code, two.code], [0, 0], `${one.stderr}\n${two.stderr}`);
    assert.ok(sameRefs(await storeRefs(blobs), refMap(source)));
    await verifyOk(site, store, { allow: ['orphan'] });

    if ((await conditionalWrites(site.writerBlobs(store))) !== undefined) return; // no writer lock on this site: commits are conditional writes
    commitFiles(source, 'main', { 'locked.txt': 'while locked\n' });
    const manifestBefore = await blobs.get(KEYS.manifest);
    const lock = await acquireWriterLock(blobs, { owner: 'the test' });
    try {
      const refused = await mirrorCli(site, source, store);
      assert.equal(refused.code, 1);
      assert.equal(refused.report.targets[0].error?.code, ErrorCode.StoreLocked);
      assert.match(refused.report.targets[0].error?.message ?? '', /the test/);
      assert.deepEqual(await blobs.get(KEYS.manifest), manifestBefore, 'the refused writer changed nothing');
    } finally {
      await lock.release();
    }
    await verifyOk(site, store, { allow: ['orphan'] });

    // A lock not refreshed for 20 minutes (its writer crashed elsewhere) is taken over.
    const staleKey = `${KEYS.locks}000000000000001-stale.json`;
    await blobs.put(staleKey, Buffer.from(JSON.stringify({ owner: 'crashed writer', host: 'elsewhere.example', pid: 4242 })));
    await site.backdate(store, staleKey, 20 * 60 * 1000);
    const staleSeen = await verifyStore(blobs);
    assert.ok(staleSeen.problems.some((p) => p.kind === 'lock' && p.key === staleKey));
    await syncStore(site, { into: store, from: source });
    assert.equal(await blobs.head(staleKey), undefined, 'the stale lock was removed');

    // A fresh lock of a process of this host that no longer runs (a writer killed with SIGKILL) is taken over at once.
    const dead = run(['--version']);
    await dead.done;
    const deadKey = `${KEYS.locks}${Date.now().toString().padStart(15, '0')}-dead.json`;
    await blobs.put(deadKey, Buffer.from(JSON.stringify({ owner: 'killed writer', host: hostname(), pid: dead.pid })));
    assert.ok((await verifyStore(blobs)).problems.some((p) => p.kind === 'lock' && p.key === deadKey));
    commitFiles(source, 'main', { 'after-dead.txt': 'dead writer\n' });
    const started = Date.now();
    await syncStore(site, { into: store, from: source });
    assert.ok(Date.now() - started < 5000, 'taken over without waiting');
    assert.equal(await blobs.head(deadKey), undefined, "the dead writer's lock was removed");
    assert.ok(sameRefs(await storeRefs(blobs), refMap(source)));
    await verifyOk(site, store);
  });

  it('compacts layers geometrically and with --all; a clone begun before still completes during the grace period; old files go after it', async () => {
    const site = getSite();
    const source = dir('compact-source');
    const summary = await makeSource(source, 13);
    const store = site.address('compact');
    const blobs = site.blobs(store);
    await syncStore(site, { into: store, from: source });
    for (let i = 1; i <= 4; i++) {
      commitFiles(source, 'main', { [`small-${i}.txt`]: `small change ${i}\n` });
      await syncStore(site, { into: store, from: source });
    }
    const layers = (await readManifest(blobs))!.layers;
    assert.equal(layers.length, 5);

    // What a dumb-HTTP clone that started now has read before compaction.
    const seen: Record<string, Buffer> = {};
    for (const key of [KEYS.infoRefs, KEYS.infoPacks, KEYS.head]) seen[key] = (await site.fetchKey(store, key))!;
    const youngOrphan = packKey(`pack-${'1'.repeat(40)}`);
    await blobs.put(youngOrphan, Buffer.from('left by an interrupted write'));

    const dry = await compactNow(site, store, { dryRun: true });
    assert.equal(dry.merged.length, 4);
    assert.equal((await readManifest(blobs))!.generation, 5, 'a dry run changes nothing');
    const ran = await packferryCli(site, ['store', 'compact', '--json', store]);
    assert.equal(ran.code, 0, ran.stderr);
    const geometric = json<CompactJson>(ran);
    assert.deepEqual(geometric.merged, layers.slice(0, 4).map((l) => l.name), 'the four small layers are merged; the first, much bigger, stays');
    assert.equal(geometric.layer?.merged, 4);
    assert.equal(geometric.layer?.objects, layers.slice(0, 4).reduce((n, l) => n + l.objects, 0));
    assert.deepEqual(geometric.deleted, [], 'nothing is deleted within the grace period');
    let m = (await readManifest(blobs))!;
    assert.deepEqual(m.layers.map((l) => l.name), [geometric.layer!.name, layers[4].name]);
    assert.deepEqual(m.retired.map((r) => r.name), geometric.merged);
    for (const name of geometric.merged) {
      assert.ok(await blobs.head(packKey(name)), `${name}.pack is kept for the grace period`);
      assert.ok(await blobs.head(idxKey(name)), `${name}.idx is kept for the grace period`);
    }
    const afterGeometric = await verifyOk(site, store, { full: true, allow: ['orphan'] });
    assert.equal(afterGeometric.retiredPresent, 4);
    assert.deepEqual(afterGeometric.problems.map((p) => p.key), [youngOrphan]);
    await cloneMatches(site, store, source);
    // The clone that read objects/info/packs and info/refs before compaction fetches the retired packs now.
    const asked = site.frontRequests().length;
    await cloneMatches(site, store, source, site.frontUrl(store, seen));
    const fetched = site.frontRequests().slice(asked);
    assert.ok(
      geometric.merged.some((name) => fetched.some((p) => p.endsWith(`/objects/pack/${name}.pack`))),
      `the clone fetched retired packs: ${fetched.join(' ')}`,
    );

    // Unreachable objects: a branch deleted upstream leaves its commit behind until --all drops it.
    const doomed = commitFiles(source, 'doomed', { 'doomed.bin': noise(30_000, 'doomed') }, { parent: summary.head });
    await syncStore(site, { into: store, from: source });
    deleteRef(source, 'refs/heads/doomed');
    commitFiles(source, 'main', { 'last.txt': 'last\n' });
    await syncStore(site, { into: store, from: source });
    const full = await compactNow(site, store, { all: true, graceMs: 0 });
    assert.equal(full.layersAfter, 1);
    assert.equal(full.dropped, 3, 'the doomed commit, its tree and blob are dropped');
    assert.deepEqual(new Set(full.expired), new Set(geometric.merged), 'the layers retired earlier are past a zero grace');
    assert.ok(full.deleted.includes(youngOrphan), 'orphans older than the grace are deleted');
    for (const name of geometric.merged) assert.equal(await blobs.head(packKey(name)), undefined);
    const afterAll = await verifyOk(site, store);
    assert.equal(afterAll.objects, afterAll.reachable, 'only reachable objects are left');
    const repo = await openRepo(site, store);
    assert.equal((await repo.objects()).has(doomed), false);
    await repo.close();

    // The last retired layers go with the next compaction; the old clone's packs are gone now.
    const last = await compactNow(site, store, { graceMs: 0 });
    assert.deepEqual([last.merged.length, last.expired.length], [0, full.merged.length]);
    m = (await readManifest(blobs))!;
    assert.deepEqual([m.layers.length, m.retired.length], [1, 0]);
    const stale = await gitAsync(['clone', '-q', '--mirror', site.frontUrl(store, seen), dir('too-late')]);
    assert.notEqual(stale.code, 0, 'a clone from before compaction fails once the grace period is over');
    await verifyOk(site, store, { full: true });
    await cloneMatches(site, store, source);
  });

  it('verify detects a corrupt pack, a missing, foreign or lying index, a ref to a missing object, stale and broken Git files, orphans and corrupt LFS objects', async () => {
    const site = getSite();
    const source = dir('damage-source');
    await makeSource(source, 14);
    const store = site.address('damage');
    const blobs = site.blobs(store);
    await syncStore(site, { into: store, from: source });
    commitFiles(source, 'main', { 'second.bin': noise(20_000, 'second') });
    await syncStore(site, { into: store, from: source });
    await verifyOk(site, store, { full: true });
    const manifest = (await readManifest(blobs))!;
    const [newest, oldest] = manifest.layers.map((l) => l.name);
    // The command on directory stores; on S3 (slow to start) the same verification in this process, with the command's exit code.
    const check = async (flags: string[] = []) => {
      if (site.name === 'directory') return verifyCli(site, store, flags);
      const report = await verifyStore(blobs);
      const failed = report.problems.some((p) => p.severity === 'error' || flags.includes('--strict'));
      return { code: failed ? 1 : 0, report: { ...report, errors: report.problems.filter((p) => p.severity === 'error').length } };
    };
    const kinds = async (full = false) => (await verifyStore(blobs, { full })).problems.map((p) => `${p.severity} ${p.kind}`);
    const restoring = async (key: string, damage: (bytes: Buffer) => Promise<void>, examine: () => Promise<void>) => {
      const original = (await blobs.get(key))!;
      await damage(Buffer.from(original));
      try {
        await examine();
      } finally {
        await blobs.put(key, original);
      }
    };

    // A byte flipped in the middle of a pack: its checksum fails (the command exits 1).
    await restoring(
      packKey(newest),
      async (bytes) => {
        bytes[Math.floor(bytes.length / 2)] ^= 0xff;
        await blobs.put(packKey(newest), bytes);
      },
      async () => {
        const r = await verifyCli(site, store);
        assert.equal(r.code, 1);
        const bad = r.report.problems.find((p) => p.kind === 'bad-pack');
        assert.ok(bad && bad.key === packKey(newest) && /checksum mismatch/.test(bad.message), JSON.stringify(r.report.problems));
        assert.ok(r.report.errors >= 1);
      },
    );
    // A missing index; an index of another layer under this one's name.
    await restoring(
      idxKey(newest),
      async () => blobs.delete(idxKey(newest)),
      async () => {
        const r = await verifyStore(blobs);
        assert.ok(r.problems.some((p) => p.severity === 'error' && p.kind === 'missing-file' && p.key === idxKey(newest)));
        assert.ok(r.problems.some((p) => p.kind === 'missing-object'), 'the objects only that layer holds are missing');
        assert.equal(r.ok, false);
      },
    );
    await restoring(
      idxKey(newest),
      async () => blobs.put(idxKey(newest), (await blobs.get(idxKey(oldest)))!),
      async () => assert.ok((await kinds()).includes('error bad-index')),
    );
    // --full indexes the pack afresh: an index that parses but lies about an offset is caught.
    await restoring(
      idxKey(oldest),
      async (bytes) => {
        const offsetsAt = 8 + 256 * 4 + manifest.layers[1].objects * 24;
        bytes.writeUInt32BE(bytes.readUInt32BE(offsetsAt) + 1, offsetsAt);
        createHash('sha1').update(bytes.subarray(0, bytes.length - 20)).digest().copy(bytes, bytes.length - 20);
        await blobs.put(idxKey(oldest), bytes);
      },
      async () => assert.ok((await kinds(true)).includes('error index-mismatch')),
    );

    // A ref to an object no layer has.
    await restoring(
      KEYS.manifest,
      async (bytes) => {
        const m = parseManifest(bytes);
        m.refs.find((r) => r.name === 'refs/heads/main')!.oid = 'deadbeef'.repeat(5);
        await blobs.put(KEYS.manifest, serializeManifest(m));
      },
      async () => {
        const r = await check();
        assert.equal(r.code, 1);
        const missing = r.report.problems.find((p) => p.kind === 'missing-object');
        assert.ok(missing && missing.message.includes('deadbeef'.repeat(5)) && missing.message.includes('refs/heads/main'), JSON.stringify(r.report.problems));
      },
    );

    // packed-refs and info/refs behind the manifest, alike (an older state, as a writer that stopped after
    // its commit leaves): a warning, an error with --strict; info/refs naming an object in none of the
    // packs, objects/info/packs naming a missing pack: errors. Compaction rewrites them.
    const infoRefs = (await blobs.get(KEYS.infoRefs))!.toString();
    const packedRefs = (await blobs.get(KEYS.packedRefs))!.toString();
    await blobs.put(KEYS.infoRefs, Buffer.from(infoRefs.split('\n').filter((l) => !l.endsWith('\trefs/heads/main')).join('\n')));
    await blobs.put(KEYS.packedRefs, Buffer.from(packedRefs.split('\n').filter((l) => !l.endsWith(' refs/heads/main')).join('\n')));
    let r = await check();
    assert.equal(r.code, 0);
    assert.deepEqual(
      r.report.problems.map((p) => `${p.kind} ${p.key}`),
      [`stale-git-file ${KEYS.packedRefs}`, `stale-git-file ${KEYS.infoRefs}`],
    );
    assert.equal((await check(['--strict'])).code, 1);
    await blobs.put(KEYS.infoRefs, Buffer.from(infoRefs.replace(/^[0-9a-f]{40}/, '0123456789'.repeat(4))));
    r = await check();
    assert.equal(r.code, 1);
    assert.ok(r.report.problems.some((p) => p.kind === 'bad-git-file' && p.key === KEYS.infoRefs));
    await blobs.put(KEYS.infoPacks, Buffer.from(`P pack-${'2'.repeat(40)}.pack\n\n`));
    assert.ok((await kinds()).includes('error bad-git-file'), 'objects/info/packs naming a missing pack');
    const repaired = await compactNow(site, store);
    assert.equal(repaired.repaired, true);
    assert.equal((await blobs.get(KEYS.infoRefs))!.toString(), infoRefs);
    await verifyOk(site, store);

    // Orphans; a layer both listed and retired; LFS objects.
    const orphan = packKey(`pack-${'3'.repeat(40)}`);
    await blobs.put(orphan, Buffer.from('orphan'));
    assert.deepEqual(await kinds(), ['warning orphan']);
    await blobs.delete(orphan);
    await restoring(
      KEYS.manifest,
      async (bytes) => {
        const m = parseManifest(bytes);
        m.retired.push({ name: oldest, retired: new Date(0).toISOString() });
        await blobs.put(KEYS.manifest, serializeManifest(m));
      },
      async () => {
        assert.ok((await kinds()).includes('error manifest'));
        // Compaction never deletes a listed layer, whatever `retired` says.
        await compactNow(site, store, { graceMs: 0 });
        assert.ok(await blobs.head(packKey(oldest)), 'the listed layer survived');
      },
    );
    const content = Buffer.from('large file content\n');
    const oid = createHash('sha256').update(content).digest('hex');
    await blobs.put(lfsKey(oid), content);
    let lfs = await verifyStore(blobs, { full: true });
    assert.deepEqual([lfs.ok, lfs.lfsObjects, lfs.lfsChecked, lfs.problems.length], [true, 1, 1, 0]);
    await blobs.put(lfsKey(oid), Buffer.from('something else\n'));
    lfs = await verifyStore(blobs, { full: true });
    assert.ok(lfs.problems.some((p) => p.severity === 'error' && p.kind === 'lfs' && p.message.includes(oid)));
    assert.equal((await verifyStore(blobs)).ok, true, 'without --full LFS content is not read');
    await blobs.delete(lfsKey(oid));
    await verifyOk(site, store, { full: true });
  });
  it("verify fails refs Git cannot hold — a directory/file conflict, a bad name, a duplicate, a bad HEAD, a wrong peeled value — and Git's clients fail on them", async () => {
    const site = getSite();
    const source = dir('bad-refs-source');
    await makeSource(source, 15);
    const store = site.address('bad-refs');
    const blobs = site.blobs(store);
    await syncStore(site, { into: store, from: source });
    await verifyOk(site, store);
    const main = (await storeRefs(blobs)).get('refs/heads/main')!;
    const keys = [KEYS.manifest, KEYS.packedRefs, KEYS.infoRefs, KEYS.head];
    const original = await Promise.all(keys.map(async (key) => (await blobs.get(key))!));
    /** The manifest edited, and Git's files as a writer renders them from it. */
    const craft = async (edit: (m: Manifest) => void) => {
      const m = (await readManifest(blobs))!;
      edit(m);
      m.refs.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      await blobs.put(KEYS.manifest, serializeManifest(m));
      await blobs.put(KEYS.packedRefs, Buffer.from(renderPackedRefs(m.refs)));
      await blobs.put(KEYS.infoRefs, Buffer.from(renderInfoRefs(m.refs)));
      await blobs.put(KEYS.head, Buffer.from(renderHead(m.head)));
    };
    const restore = async () => {
      for (const [i, key] of keys.entries()) await blobs.put(key, original[i]);
    };
    const clone = async (url: string, flags = ['--mirror']) => {
      const to = dir('clone');
      return { ...(await gitAsync(['clone', '-q', ...flags, url, to])), dir: to };
    };
    /** The report's ref errors whose message names every one of `names`. */
    const refErrors = (report: { problems: { severity: string; kind: string; message: string }[] }, ...names: string[]) =>
      report.problems.filter((p) => p.severity === 'error' && p.kind === 'bad-ref' && names.every((n) => p.message.includes(n)));

    // refs/heads/x and refs/heads/x/y: Git keeps refs as files, and no clone can hold both.
    await craft((m) => m.refs.push({ name: 'refs/heads/x', oid: main }, { name: 'refs/heads/x/y', oid: main }));
    let cloned = await clone(site.cloneUrl(store));
    assert.notEqual(cloned.code, 0, 'git clone of a store holding refs/heads/x and refs/heads/x/y');
    assert.match(cloned.stderr, /cannot process 'refs\/heads\/x' and 'refs\/heads\/x\/y'/);
    const conflict = await verifyCli(site, store);
    assert.equal(conflict.code, 1, JSON.stringify(conflict.report.problems));
    assert.equal(refErrors(conflict.report, 'refs/heads/x and refs/heads/x/y', 'directory/file').length, 1, JSON.stringify(conflict.report.problems));
    await restore();

    // A name check-ref-format refuses: Git's clients leave it out.
    await craft((m) => m.refs.push({ name: 'refs/heads/a..b', oid: main }));
    cloned = await clone(site.cloneUrl(store));
    assert.equal(cloned.code, 0, cloned.stderr);
    assert.match(cloned.stderr, /Ignoring funny ref 'refs\/heads\/a\.\.b'/);
    assert.equal(refMap(cloned.dir).has('refs/heads/a..b'), false);
    let report = await verifyStore(blobs);
    assert.equal(report.ok, false);
    assert.equal(refErrors(report, '"refs/heads/a..b"', 'not a valid ref name').length, 1, JSON.stringify(report.problems));
    await restore();

    // A ref listed twice.
    await craft((m) => m.refs.push({ name: 'refs/heads/main', oid: main }));
    cloned = await clone(site.cloneUrl(store));
    assert.notEqual(cloned.code, 0);
    assert.match(cloned.stderr, /multiple updates for ref 'refs\/heads\/main' not allowed/);
    report = await verifyStore(blobs);
    assert.equal(report.ok, false);
    assert.equal(refErrors(report, 'refs/heads/main', 'listed twice').length, 1, JSON.stringify(report.problems));
    await restore();

    // HEAD outside refs/: no repository to Git by path, nothing checked out over plain HTTP.
    await craft((m) => {
      m.head = 'garbage';
    });
    if (site.name === 'directory') {
      cloned = await clone(store);
      assert.notEqual(cloned.code, 0);
      assert.match(cloned.stderr, /does not exist/);
    }
    cloned = await clone(site.name === 'directory' ? site.frontUrl(store, {}) : site.cloneUrl(store), []);
    assert.match(cloned.stderr, /remote HEAD refers to nonexistent ref/);
    report = await verifyStore(blobs);
    assert.equal(report.ok, false);
    assert.equal(refErrors(report, 'HEAD', '"garbage"').length, 1, JSON.stringify(report.problems));
    await restore();

    // A peeled value that is not where the tag's chain ends.
    const tag = (await readManifest(blobs))!.refs.find((r) => r.peeled !== undefined)!;
    await craft((m) => {
      m.refs.find((r) => r.name === tag.name)!.peeled = main === tag.peeled ? tag.oid : main;
    });
    report = await verifyStore(blobs);
    assert.equal(report.ok, false);
    assert.equal(refErrors(report, tag.name, `peels to ${tag.peeled}`).length, 1, JSON.stringify(report.problems));
    await restore();

    await verifyOk(site, store);
    await cloneMatches(site, store, source);
  });

  it("verify fails a store whose first sync stopped after its commit: Git's files are missing and every clone fails", async () => {
    const site = getSite();
    const source = dir('first-crash-source');
    await makeSource(source, 16);
    const store = site.address('first-crash');
    const blobs = site.blobs(store);
    await mirrorCliOk(site, source, store);
    // What a writer killed (or a disk that filled up) right after its first commit leaves: the manifest, no Git files.
    const gitFiles = [KEYS.head, KEYS.infoPacks, KEYS.infoRefs, KEYS.packedRefs];
    for (const key of gitFiles) await blobs.delete(key);
    const [byPath, overHttp] = await gitViews(site, store);
    assert.equal(byPath.ok, false, 'git clone by path');
    assert.match(byPath.stderr, /does not exist/);
    assert.equal(overHttp.ok, false, 'git clone over plain HTTP');
    assert.match(overHttp.stderr, /not found/);
    const r = await verifyCli(site, store);
    assert.equal(r.code, 1, JSON.stringify(r.report.problems));
    assert.equal(r.report.ok, false);
    assert.deepEqual(r.report.problems.map((p) => `${p.severity} ${p.kind} ${p.key}`).sort(), gitFiles.map((key) => `error bad-git-file ${key}`).sort());
    const message = (key: string) => r.report.problems.find((p) => p.key === key)!.message;
    assert.match(message(KEYS.infoRefs), /info\/refs is missing: `git clone` over plain HTTP fails \("repository not found"\)/);
    assert.match(message(KEYS.head), /HEAD is missing/);
    for (const p of r.report.problems) assert.match(p.message, /packferry store compact/, 'says what repairs it');
    assert.ok(r.report.problems.every((p) => !p.message.includes('older, complete state')));
    // Compaction rewrites Git's files, and then every clone works.
    const repaired = await compactNow(site, store);
    assert.equal(repaired.repaired, true);
    await verifyOk(site, store);
    const views = await gitViews(site, store);
    assert.ok(oneCompleteState(views, [refMap(source)], 'refs/heads/main'), JSON.stringify(views.map((v) => ({ ...v, refs: v.refs?.size }))));
    await cloneMatches(site, store, source);
  });

  it("verify tells an older, complete state of Git's files (a warning: clones get the old refs) from an incomplete one (an error: a clone fails or clones disagree)", async () => {
    const site = getSite();
    const source = dir('older-source');
    await makeSource(source, 17);
    const store = site.address('older');
    const blobs = site.blobs(store);
    const gitFiles = [KEYS.head, KEYS.infoPacks, KEYS.packedRefs, KEYS.infoRefs];
    const read = async () => new Map(await Promise.all(gitFiles.map(async (key) => [key, (await blobs.get(key))!] as const)));
    await syncStore(site, { into: store, from: source });
    const first = await read();
    const old = refMap(source);
    commitFiles(source, 'main', { 'second.bin': noise(20_000, 'second') });
    updateRef(source, 'refs/heads/second', git(['rev-parse', 'refs/heads/main'], { cwd: source }));
    await syncStore(site, { into: store, from: source });
    const next = refMap(source);
    const second = await read();
    const views = () => gitViews(site, store);
    const shown = (v: GitView[]) => JSON.stringify(v.map((x) => ({ ...x, refs: x.refs?.size })));

    // All of Git's files of the first sync under the second's manifest (a writer stopped right after its
    // commit): every clone gets the old refs. A warning per lagging file; an error with --strict.
    for (const key of gitFiles) await blobs.put(key, first.get(key)!);
    let seen = await views();
    assert.ok(oneCompleteState(seen, [old], 'refs/heads/main'), shown(seen));
    const warned = await verifyCli(site, store);
    assert.equal(warned.code, 0, JSON.stringify(warned.report.problems));
    assert.deepEqual(
      warned.report.problems.map((p) => `${p.severity} ${p.kind} ${p.key}`).sort(),
      [KEYS.infoPacks, KEYS.packedRefs, KEYS.infoRefs].map((key) => `warning stale-git-file ${key}`).sort(),
    );
    for (const p of warned.report.problems) assert.match(p.message, /Git's clients see an older, complete state until the next `packferry mirror`/);
    assert.equal((await verifyCli(site, store, ['--strict'])).code, 1);

    // The second sync's refs under the first's objects/info/packs: a clone by path reads every pack and
    // works, one over plain HTTP looks only in the listed packs and cannot find the new commit.
    await blobs.put(KEYS.packedRefs, second.get(KEYS.packedRefs)!);
    await blobs.put(KEYS.infoRefs, second.get(KEYS.infoRefs)!);
    seen = await views();
    assert.ok(seen[0].ok && sameRefs(seen[0].refs!, next), shown(seen));
    assert.equal(seen[1].ok, false, shown(seen));
    assert.match(seen[1].stderr, /Unable to find/);
    let report = await verifyStore(blobs);
    let errors = report.problems.filter((p) => p.severity === 'error');
    assert.deepEqual(errors.map((p) => `${p.kind} ${p.key}`), [`bad-git-file ${KEYS.infoRefs}`], JSON.stringify(report.problems));
    assert.match(errors[0].message, /refs\/heads\/second/);
    assert.match(errors[0].message, /in none of the packs objects\/info\/packs lists/);
    assert.ok(report.problems.every((p) => !p.message.includes('older, complete state')), JSON.stringify(report.problems));

    // The second sync's packed-refs, the first's info/refs (a writer stopped between the two): both clones
    // work, but they get different refs.
    for (const key of gitFiles) await blobs.put(key, second.get(key)!);
    await blobs.put(KEYS.infoRefs, first.get(KEYS.infoRefs)!);
    seen = await views();
    assert.ok(seen[0].ok && sameRefs(seen[0].refs!, next), shown(seen));
    assert.ok(seen[1].ok && sameRefs(seen[1].refs!, old), shown(seen));
    report = await verifyStore(blobs);
    errors = report.problems.filter((p) => p.severity === 'error');
    assert.deepEqual(errors.map((p) => `${p.kind} ${p.key}`), [`bad-git-file ${KEYS.infoRefs}`], JSON.stringify(report.problems));
    assert.match(errors[0].message, /packed-refs and info\/refs disagree about 2 refs \(refs\/heads\/main, refs\/heads\/second\)/);

    const repaired = await compactNow(site, store);
    assert.equal(repaired.repaired, true);
    await verifyOk(site, store);
    seen = await views();
    assert.ok(oneCompleteState(seen, [next], 'refs/heads/main'), shown(seen));
  });

}

/** Moves an annotated tag to a new tag object (a rewrite a mirror must carry). */
function rewriteTag(repo: string, name: string): void {
  const target = git(['rev-parse', 'refs/heads/main'], { cwd: repo });
  const body = `object ${target}\ntype commit\ntag ${name.slice('refs/tags/'.length)}\ntagger C O Mitter <committer@example.com> 1700000000 +0000\n\nmoved\n`;
  updateRef(repo, name, git(['mktag'], { cwd: repo, input: body }));
}

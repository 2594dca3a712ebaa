// `packferry store ls|verify|compact` as a command: help, usage errors
// (exit 2), a missing store (exit 3), the text reports, and the pure parts
// behind it: the geometric compaction plan (Git's repack --geometric rule)
// and --grace durations.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, isPackferryError } from '../../src/core/errors.js';
import { compactStore, planCompaction } from '../../src/store/compact.js';
import { FsBlobStore } from '../../src/store/fs-backend.js';
import { KEYS, packKey } from '../../src/store/layout.js';
import { StoreRepository } from '../../src/store/repository.js';
import { verifyStore } from '../../src/store/verify.js';
import { git, tempDir } from '../support/git.js';
import { commitFiles, initBare, makeSource, packferry } from '../support/mirror-fixtures.js';
import { readManifest, syncStore, type StoreSite } from './store-fixtures.js';

describe('planCompaction (geometric layers, newest first)', () => {
  it('merges nothing while each older layer is at least factor times the next newer one', () => {
    assert.equal(planCompaction([]), 0);
    assert.equal(planCompaction([5]), 0);
    assert.equal(planCompaction([1, 100]), 0);
    assert.equal(planCompaction([1, 2, 4, 8]), 0);
    assert.equal(planCompaction([10, 30, 100, 1000]), 0);
  });

  it('merges the newest layers up to the deepest break, then rolls up older ones smaller than factor times the merge', () => {
    assert.equal(planCompaction([60, 100]), 2);
    assert.equal(planCompaction([1, 1, 1, 100]), 3);
    assert.equal(planCompaction([10, 1, 100]), 2, 'a newer layer bigger than an older one');
    assert.equal(planCompaction([1, 100, 100]), 3, 'two similar old layers: everything above them goes too');
    assert.equal(planCompaction([1, 1, 3, 100]), 3, 'the merged 2 rolls up the 3 (3 < 2 x 2), then stops at 100');
    assert.equal(planCompaction([1, 2, 4, 8], 3), 4, 'a bigger factor asks for more');
    assert.equal(planCompaction([1, 1, 1, 1, 1, 1, 1, 64, 128]), 7);
  });

  it('refuses a factor of 1 or less', () => {
    assert.throws(() => planCompaction([1, 2], 1), (err: unknown) => isPackferryError(err, ErrorCode.Usage));
  });
});

describe('packferry store', () => {
  const work = tempDir('packferry-store-cli-');
  let store: string;
  let source: string;
  const site = { writerBlobs: (a: string) => new FsBlobStore(a), cacheDir: join(work.path, 'cache') } as unknown as StoreSite;

  before(async () => {
    source = join(work.path, 'source.git');
    await makeSource(source, 31);
    store = join(work.path, 'store');
    await syncStore(site, { into: store, from: source });
    commitFiles(source, 'main', { 'more.txt': 'more\n' });
    await syncStore(site, { into: store, from: source });
  });
  after(() => work.cleanup());

  it('shows its help, and is listed in the global help', async () => {
    const help = await packferry(['store', '--help']);
    assert.equal(help.code, 0);
    for (const line of ['packferry store ls', 'packferry store verify', 'packferry store compact', '--grace <time>', '--full', 'Exit status']) {
      assert.ok(help.stdout.includes(line), line);
    }
    const global = await packferry(['--help']);
    assert.match(global.stdout, /^ {3}store +Look at, verify and compact/m);
  });

  it('exits 2 on usage errors and says why', async () => {
    const cases: [string[], RegExp][] = [
      [['store'], /expected a subcommand/],
      [['store', 'fsck', store], /unknown subcommand "fsck"/],
      [['store', 'verify'], /exactly one <store>/],
      [['store', 'ls', store, store], /exactly one <store>/],
      [['store', 'ls', '--full', store], /--full is not an option of store ls/],
      [['store', 'verify', '--all', store], /--all is not an option of store verify/],
      [['store', 'compact', '--grace', 'soon', store], /--grace takes a duration/],
      [['store', 'compact', '--factor', '1', store], /--factor takes a number greater than 1/],
      [['store', 'verify', '--threads', '0', store], /--threads takes a positive whole number/],
      [['store', 'ls', '--bogus', store], /Unknown option '--bogus'/],
    ];
    for (const [args, message] of cases) {
      const r = await packferry(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message, args.join(' '));
    }
    const repo = initBare(join(work.path, 'plain.git'));
    const r = await packferry(['store', 'ls', repo]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /is a Git repository/);
  });

  it('exits 3 when there is no store', async () => {
    const missing = await packferry(['store', 'ls', '--json', join(work.path, 'nothing-here')]);
    assert.equal(missing.code, 3);
    assert.equal((JSON.parse(missing.stdout) as { error: { code: string } }).error.code, ErrorCode.NotFound);
    const empty = join(work.path, 'empty');
    mkdirSync(empty);
    const verify = await packferry(['store', 'verify', empty]);
    assert.equal(verify.code, 3);
    assert.match(verify.stderr, /no packferry store here/);
    const compact = await packferry(['store', 'compact', `store://${empty}`]);
    assert.equal(compact.code, 3);
  });

  it('prints ls, verify and compact reports for people', async () => {
    const head = git(['rev-parse', 'refs/heads/main'], { cwd: source });
    const ls = await packferry(['store', 'ls', '--refs', store]);
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /^generation {2}2 \(updated .+\)$/m);
    assert.match(ls.stdout, /^HEAD {8}refs\/heads\/main$/m);
    assert.match(ls.stdout, /^layers {6}2 \(\d+ objects, [\d.]+ KiB\)$/m);
    assert.match(ls.stdout, /^ {2}pack-[0-9a-f]{40} {2}generation 2 {2}3 objects {2}\d+ bytes$/m);
    assert.match(ls.stdout, /^retired {5}0$/m);
    assert.match(ls.stdout, /^lfs {9}0 objects, 0 bytes$/m);
    assert.ok(ls.stdout.includes(`${head} refs/heads/main\n`));
    assert.match(ls.stdout, /^[0-9a-f]{40} refs\/tags\/release\^\{\}$/m, 'peeled tags');

    const verify = await packferry(['store', 'verify', '--full', store]);
    assert.equal(verify.code, 0, verify.stderr);
    assert.match(verify.stdout, /: generation 2, 2 layers \(\d+ objects, 2 re-indexed\), \d+ refs reaching \d+ objects: ok\n$/);

    const orphan = packKey(`pack-${'4'.repeat(40)}`);
    writeFileSync(join(store, ...orphan.split('/')), 'orphan');
    const warned = await packferry(['store', 'verify', store]);
    assert.equal(warned.code, 0);
    assert.match(warned.stderr, new RegExp(`^warning: ${orphan} is not listed in the manifest \\(\\d+ s old\\): left by an interrupted write`, 'm'));
    assert.match(warned.stdout, /: 0 errors, 1 warning\n$/);
    assert.equal((await packferry(['store', 'verify', '--strict', store])).code, 1);

    const dry = await packferry(['store', 'compact', '-n', '--grace', '0', store]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.equal(dry.stdout, `nothing to merge: 2 layers in a geometric progression\nwould delete 1 file (0 expired layers, the rest orphans)\n`);
    const all = await packferry(['store', 'compact', '--all', '--grace', '0', store]);
    assert.equal(all.code, 0, all.stderr);
    const lines = all.stdout.split('\n');
    assert.match(lines[0], /^merged 2 layers \(\d+ objects, [\d.]+ KiB\) into pack-[0-9a-f]{40} \(\d+ objects, [\d.]+ KiB\)$/);
    assert.equal(lines[1], "retired layers' files are kept for 0 s, then deleted by a later compaction");
    assert.equal(lines[2], 'deleted 1 file (0 expired layers, the rest orphans)');
    assert.equal(lines[3], 'layers: 2 -> 1 (generation 3)');
    const blobs = new FsBlobStore(store);
    assert.equal(await blobs.head(orphan), undefined);
    assert.equal(JSON.parse((await blobs.get(KEYS.manifest))!.toString()).retired.length, 2);
  });
});

describe('compactStore', () => {
  const work = tempDir('packferry-compact-norefs-');
  after(() => work.cleanup());

  it('with --all and no refs left, retires every layer (nothing is reachable)', async () => {
    const site = { writerBlobs: (a: string) => new FsBlobStore(a), cacheDir: join(work.path, 'cache') } as unknown as StoreSite;
    const source = join(work.path, 'source.git');
    await makeSource(source, 32);
    const store = join(work.path, 'store');
    await syncStore(site, { into: store, from: source });
    for (const ref of git(['for-each-ref', '--format=%(refname)'], { cwd: source }).split('\n')) git(['update-ref', '-d', ref], { cwd: source });
    await syncStore(site, { into: store, from: source });
    const blobs = new FsBlobStore(store);
    const before = (await readManifest(blobs))!;
    assert.deepEqual([before.refs.length, before.layers.length], [0, 1]);
    const repo = await StoreRepository.open(blobs);
    const result = await compactStore(repo, { all: true });
    await repo.close();
    assert.deepEqual([result.merged.length, result.layer, result.layersAfter, result.dropped], [1, undefined, 0, before.layers[0].objects]);
    const after = (await readManifest(blobs))!;
    assert.deepEqual(after.layers, []);
    assert.deepEqual(after.retired.map((r) => r.name), [before.layers[0].name]);
    assert.equal((await blobs.get(KEYS.infoPacks))!.toString(), '\n');
    const checked = await verifyStore(blobs);
    assert.deepEqual([checked.ok, checked.problems.length, checked.retiredPresent], [true, 0, 1]);
  });
});


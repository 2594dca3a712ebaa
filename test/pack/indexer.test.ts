// Indexing packs made by real Git: the .idx must be byte-for-byte what
// `git index-pack` writes, whatever the delta encoding, the chunking of the
// input stream or the number of threads.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { indexPackFile, indexPackStream } from '../../src/pack/indexer.js';
import { describePack, verifyPack } from '../../src/pack/verify.js';
import { PackReader } from '../../src/pack/reader.js';
import { objectTypeFromPackType } from '../../src/core/object.js';
import { generateRepo, makeRefDeltaPack, type RepoSummary } from '../support/repogen.js';
import { git, gitAsync, gitBuffer, tempDir } from '../support/git.js';

async function* chunked(buf: Buffer, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

describe('index-pack against git', () => {
  const tmp = tempDir();
  let repo: RepoSummary;
  let ofsPack: string;
  let refPack: { pack: string; idx: string };

  before(async () => {
    repo = await generateRepo(join(tmp.path, 'repo.git'), { seed: 7, commits: 80, repack: true, largeFileSize: 256 * 1024 });
    ofsPack = repo.pack!;
    refPack = await makeRefDeltaPack(repo.dir, join(tmp.path, 'refs'));
  });
  after(() => tmp.cleanup());

  test('OFS_DELTA pack: idx identical to git index-pack, single thread', async () => {
    const gitIdx = readFileSync(ofsPack.replace(/\.pack$/, '.idx'));
    const result = await indexPackFile(ofsPack, { threads: 1 });
    assert.equal(result.objectCount, repo.objects.total);
    assert.ok(result.deltaCount > 0, 'the generated pack has deltas');
    assert.equal(result.checksum.toString('hex'), ofsPack.match(/pack-([0-9a-f]{40})\.pack$/)![1]);
    assert.ok(result.index.equals(gitIdx), 'idx bytes equal git index-pack output');
  });

  test('OFS_DELTA pack: idx identical with worker threads', async () => {
    const gitIdx = readFileSync(ofsPack.replace(/\.pack$/, '.idx'));
    const result = await indexPackFile(ofsPack, { threads: 3, minDeltasForWorkers: 1 });
    assert.ok(result.index.equals(gitIdx));
  });

  test('REF_DELTA pack: idx identical to git', async () => {
    const result = await indexPackFile(refPack.pack, { threads: 2, minDeltasForWorkers: 1 });
    assert.ok(result.refDeltas.entries.length > 0, 'the pack has REF_DELTA entries');
    assert.ok(result.index.equals(readFileSync(refPack.idx)));
  });

  test('reading the pack from the file (not held in memory) gives the same result, with and without workers', async () => {
    for (const pack of [ofsPack, refPack.pack]) {
      const gitIdx = readFileSync(pack.replace(/\.pack$/, '.idx'));
      for (const threads of [1, 2]) {
        const result = await indexPackFile(pack, { threads, minDeltasForWorkers: 1, inMemoryLimit: 0 });
        assert.ok(result.index.equals(gitIdx), `${pack} with ${threads} thread(s)`);
      }
    }
    const streamed = join(tmp.path, 'streamed-file-mode.pack');
    const result = await indexPackStream(chunked(readFileSync(ofsPack), 65536), streamed, { inMemoryLimit: 0 });
    assert.ok(result.index.equals(readFileSync(ofsPack.replace(/\.pack$/, '.idx'))));
  });

  test('a tiny delta-base cache gives the same result (bases rebuilt from the pack)', async () => {
    for (const inMemoryLimit of [0, undefined]) {
      const result = await indexPackFile(ofsPack, { threads: 1, cacheLimit: 1, inMemoryLimit });
      assert.ok(result.index.equals(readFileSync(ofsPack.replace(/\.pack$/, '.idx'))));
    }
  });

  for (const size of [1, 7, 4096, 1 << 20]) {
    test(`streamed in ${size}-byte chunks: pack written and idx identical`, async () => {
      const bytes = readFileSync(ofsPack);
      const out = join(tmp.path, `streamed-${size}.pack`);
      const result = await indexPackStream(chunked(size === 1 ? bytes.subarray(0, bytes.length) : bytes, size), out, { threads: 2 });
      assert.ok(readFileSync(out).equals(bytes), 'the stream is written unchanged');
      assert.ok(result.index.equals(readFileSync(ofsPack.replace(/\.pack$/, '.idx'))));
    });
  }

  test('a pack streamed from git pack-objects --stdout indexes like git index-pack --stdin', async () => {
    const packed = gitBuffer(['pack-objects', '--all', '--stdout', '-q', '--delta-base-offset'], { cwd: repo.dir, input: '' });
    const mine = join(tmp.path, 'from-stdout.pack');
    const result = await indexPackStream(Readable.from([packed]), mine);
    const theirs = join(tmp.path, 'git-stdin.pack');
    const out = git(['index-pack', '--stdin', theirs], { cwd: repo.dir, input: packed });
    assert.equal(out, `pack\t${result.checksum.toString('hex')}`);
    assert.ok(result.index.equals(readFileSync(theirs.replace(/\.pack$/, '.idx'))));
  });

  test('verify-pack -v lines equal git verify-pack -v', async () => {
    for (const pack of [ofsPack, refPack.pack]) {
      const report = await verifyPack(pack, pack.replace(/\.pack$/, '.idx'));
      assert.equal(report.ok, true);
      const ours = [...describePack(report.indexed)].join('\n');
      const theirs = git(['verify-pack', '-v', pack]).split('\n').slice(0, -1).join('\n');
      assert.equal(ours, theirs);
    }
  });

  test('verify-pack reports an index that does not match its pack', async () => {
    const pack = join(tmp.path, 'mismatch.pack');
    copyFileSync(ofsPack, pack);
    copyFileSync(refPack.idx, join(tmp.path, 'mismatch.idx'));
    const report = await verifyPack(pack, join(tmp.path, 'mismatch.idx'));
    assert.equal(report.ok, false);
    assert.match(report.problems.join('\n'), /index is for another pack|offset/);
  });

  test('PackReader reads every object exactly as git cat-file does', async () => {
    const reader = PackReader.open(ofsPack);
    try {
      const batch = await gitAsync(['cat-file', '--batch-all-objects', '--batch'], { cwd: repo.dir });
      const all = batch.stdout;
      let p = 0;
      let checked = 0;
      while (p < all.length) {
        const nl = all.indexOf(10, p);
        const [oid, type, sizeText] = all.subarray(p, nl).toString('latin1').split(' ');
        const size = Number(sizeText);
        const data = all.subarray(nl + 1, nl + 1 + size);
        p = nl + 1 + size + 1;
        const obj = reader.read(oid);
        assert.equal(objectTypeFromPackType(obj.type), type);
        assert.ok(obj.data.equals(data), `object ${oid} content`);
        assert.deepEqual(reader.readHeader(oid), { type: obj.type, size });
        checked++;
      }
      assert.equal(checked, repo.objects.total);
      assert.equal(reader.tryRead('0'.repeat(40)), undefined);
    } finally {
      reader.close();
    }
  });
});

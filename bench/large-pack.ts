// Bounded memory: index a synthetic pack of >= 1 GiB with both tools and
// report peak RSS (goal: packferry under 256 MiB). The pack is built with
// packferry's own writer from a seeded generator: large incompressible blobs
// (4-24 MiB) each followed by a chain of deltas that rewrite a small part of
// them, plus many small text blobs with delta chains. `git index-pack`
// checks the pack, and the two .idx files must be identical.
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, statSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyDelta, encodeDeltaSize } from '../src/pack/delta.js';
import { hashObject } from '../src/core/object.js';
import { writePack, type PackInput } from '../src/pack/writer.js';
import { gitEnv } from '../test/support/git.js';
import { Prng } from '../test/support/repogen.js';
import { benchCommand, compare, warmFile, type BenchContext, type BenchSuite, type SuiteResult } from './harness.js';
import { compareFiles } from './index-pack.js';
import { packObjectCount } from './repos.js';

const BLOB = 3;
const MiB = 1024 * 1024;

/** A delta that keeps `base` but replaces `length` bytes at `at` with `insert`. */
function replacingDelta(baseSize: number, at: number, insert: Buffer, length: number): Buffer {
  const parts: number[] = [...encodeDeltaSize(baseSize), ...encodeDeltaSize(baseSize - length + insert.length)];
  const copy = (offset: number, size: number) => {
    while (size > 0) {
      const n = Math.min(size, 0xffffff);
      parts.push(0x80 | 0x0f | 0x70, offset & 0xff, (offset >>> 8) & 0xff, (offset >>> 16) & 0xff, (offset >>> 24) & 0xff, n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff);
      offset += n;
      size -= n;
    }
  };
  copy(0, at);
  for (let p = 0; p < insert.length; p += 127) {
    const chunk = insert.subarray(p, p + 127);
    parts.push(chunk.length, ...chunk);
  }
  copy(at + length, baseSize - at - length);
  return Buffer.from(parts);
}

function textBlob(prng: Prng, lines: number): Buffer {
  const words = ['pack', 'delta', 'object', 'tree', 'commit', 'index', 'ref', 'mirror', 'store', 'serve', 'the', 'a', 'of'];
  const out: string[] = [];
  for (let l = 0; l < lines; l++) {
    const n = 4 + prng.int(10);
    const w: string[] = [];
    for (let k = 0; k < n; k++) w.push(words[prng.int(words.length)]);
    out.push(w.join(' '));
  }
  return Buffer.from(`${out.join('\n')}\n`);
}

/** The entries of the synthetic pack, generated lazily so generation itself stays small. */
function* syntheticEntries(targetBytes: number, seed: number, counter: { count: number; bytes: number }): Generator<PackInput> {
  const prng = new Prng(seed);
  while (counter.bytes < targetBytes) {
    // One large blob and a chain of three deltas on it.
    let base = prng.bytes((4 + prng.int(21)) * MiB);
    let baseId = hashObject('blob', base);
    counter.count++;
    counter.bytes += base.length;
    yield { kind: 'object', type: BLOB, data: base, oid: baseId };
    for (let d = 0; d < 3; d++) {
      const at = prng.int(base.length - 8192);
      const delta = replacingDelta(base.length, at, prng.bytes(2000), 2000);
      const result = applyDelta(base, delta);
      const oid = hashObject('blob', result);
      counter.count++;
      counter.bytes += delta.length;
      yield { kind: 'delta', base: baseId, delta, oid };
      base = result;
      baseId = oid;
    }
    // A family of small text blobs with deltas between them.
    for (let t = 0; t < 400; t++) {
      let text = textBlob(prng, 20 + prng.int(200));
      let textId = hashObject('blob', text);
      counter.count++;
      counter.bytes += text.length / 3;
      yield { kind: 'object', type: BLOB, data: text, oid: textId };
      for (let d = 0; d < 4; d++) {
        const insert = textBlob(prng, 1);
        const at = prng.int(Math.max(1, text.length - 100));
        const length = Math.min(40, text.length - at);
        const delta = replacingDelta(text.length, at, insert, length);
        const result = applyDelta(text, delta);
        const oid = hashObject('blob', result);
        counter.count++;
        counter.bytes += delta.length;
        yield { kind: 'delta', base: textId, delta, oid };
        text = result;
        textId = oid;
      }
    }
  }
}

/** Builds (once, cached in bench/out) a pack of about `targetBytes`. */
export async function syntheticPack(ctx: BenchContext, targetBytes: number): Promise<string> {
  mkdirSync(ctx.outDir, { recursive: true });
  const path = join(ctx.outDir, `synthetic-${Math.round(targetBytes / MiB)}MiB-v1.pack`);
  if (existsSync(path)) return path;
  ctx.log(`writing a synthetic ${Math.round(targetBytes / MiB)} MiB pack to ${path} (cached for later runs)...`);
  // First pass counts the entries (the header needs the count); the generator is deterministic.
  const counter = { count: 0, bytes: 0 };
  for (const entry of syntheticEntries(targetBytes, 42, counter)) void entry;
  const tmp = `${path}.tmp-${process.pid}`;
  const out = createWriteStream(tmp);
  for await (const chunk of writePack(counter.count, syntheticEntries(targetBytes, 42, { count: 0, bytes: 0 }), { compressionLevel: 1, ofsDelta: true })) {
    if (!out.write(chunk)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  renameSync(tmp, path);
  return path;
}

export const largePackSuite: BenchSuite = {
  name: 'index-pack-large',
  description: 'peak memory indexing a >= 1 GiB pack: git index-pack vs packferry index-pack',
  async run(ctx: BenchContext): Promise<SuiteResult> {
    const target = ctx.quick ? 64 * MiB : 1024 * MiB;
    const pack = await syntheticPack(ctx, target);
    const work = mkdtempSync(join(tmpdir(), 'packferry-bench-large-'));
    try {
      const gitIdx = join(work, 'git.idx');
      const pfIdx = join(work, 'packferry.idx');
      const env = { ...gitEnv, GIT_CEILING_DIRECTORIES: tmpdir() };
      warmFile(pack);
      const runs = Math.min(ctx.runs, 2);
      const gitRow = await benchCommand('git index-pack', 'git', 'git', ['index-pack', '-o', gitIdx, pack], { runs, cwd: work, env });
      const pfRow = await benchCommand('packferry index-pack', 'packferry', process.execPath, [join(ctx.root, 'bin', 'packferry.js'), 'index-pack', '-o', pfIdx, pack], {
        runs,
        cwd: work,
        env,
        before: () => rmSync(pfIdx, { force: true }),
      });
      const pfRss = pfRow.maxRssMiB;
      return {
        suite: 'index-pack-large',
        subject: { pack, 'pack size': `${(statSync(pack).size / MiB).toFixed(0)} MiB`, objects: packObjectCount(pack) },
        rows: [gitRow, pfRow],
        comparisons: [
          compare('index-pack (large)', gitRow, pfRow, {
            'idx identical': gitRow.ok && pfRow.ok ? compareFiles(gitIdx, pfIdx) : 'n/a',
            'packferry peak RSS under 256 MiB': pfRss === undefined ? 'n/a' : pfRss < 256 ? 'yes' : 'NO',
          }),
        ],
        notes: [],
      };
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  },
};

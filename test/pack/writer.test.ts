// The pack writer against real Git: packs written from the objects of a
// generated repository (as whole objects, as deltas taken from Git's own pack,
// and as raw entries reused byte for byte; OFS_DELTA and REF_DELTA) must be
// accepted by `git index-pack` and `git verify-pack -v`, hold exactly the
// source's objects, and read back through our indexer and PackReader.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, PackferryError } from '../../src/core/errors.js';
import { SHA1 } from '../../src/core/hash.js';
import { oidToHex } from '../../src/core/oid.js';
import { hashObject, objectTypeFromPackType, packTypeOf, parseObjectType } from '../../src/core/object.js';
import { PackObjectType } from '../../src/pack/format.js';
import { PackIndex } from '../../src/pack/idx.js';
import { indexPackStream } from '../../src/pack/indexer.js';
import { PackReader } from '../../src/pack/reader.js';
import { PackScanner } from '../../src/pack/scanner.js';
import { collectPack, writePack, type PackInput, type WritePackOptions } from '../../src/pack/writer.js';
import { git, gitAsync, tempDir } from '../support/git.js';
import { generateRepo, type RepoSummary } from '../support/repogen.js';
import { chunksOf, copyOp, gitIndexPack, insertOp, makeDelta, sha1 } from '../support/pack-craft.js';

const T = { timeout: 30_000 };

interface SourceObject {
  type: number;
  data: Buffer;
}

/** One entry of Git's pack as stored: enough to rewrite it as a delta or reuse it raw. */
interface StoredEntry {
  oid: string;
  offset: number;
  type: number;
  size: number;
  /** Inflated entry data: the object, or the delta. */
  data: Buffer;
  /** The entry's zlib stream, as stored. */
  compressed: Buffer;
  /** For deltas, the base's id. */
  base?: string;
}

/** Every object of a repository, from `git cat-file --batch-all-objects --batch`. */
async function readAllObjects(repoDir: string): Promise<Map<string, SourceObject>> {
  const { stdout: all } = await gitAsync(['cat-file', '--batch-all-objects', '--batch'], { cwd: repoDir });
  const objects = new Map<string, SourceObject>();
  let p = 0;
  while (p < all.length) {
    const nl = all.indexOf(10, p);
    const [oid, type, size] = all.subarray(p, nl).toString('latin1').split(' ');
    const data = Buffer.from(all.subarray(nl + 1, nl + 1 + Number(size)));
    objects.set(oid, { type: packTypeOf(parseObjectType(type)), data });
    p = nl + 1 + Number(size) + 1;
  }
  return objects;
}

/** Git's pack, entry by entry in pack order, with ids from its idx. */
function readStoredEntries(packPath: string): StoredEntry[] {
  const pack = readFileSync(packPath);
  const index = PackIndex.parse(readFileSync(packPath.replace(/\.pack$/, '.idx')));
  const oidAt = new Map<number, string>();
  for (let k = 0; k < index.count; k++) oidAt.set(index.offsetAt(k), oidToHex(index.oidAt(k)));
  const entries: StoredEntry[] = [];
  const scanner = new PackScanner({
    retainDataUpTo: Number.MAX_SAFE_INTEGER,
    onEntry: (e) => {
      const start = e.offset + e.headerLength;
      entries.push({
        oid: oidAt.get(e.offset)!,
        offset: e.offset,
        type: e.type,
        size: e.size,
        data: Buffer.from(e.data!),
        compressed: pack.subarray(start, e.offset + e.packedLength),
        base:
          e.type === PackObjectType.OfsDelta ? oidAt.get(e.baseOffset) : e.baseId !== undefined ? oidToHex(e.baseId) : undefined,
      });
    },
  });
  scanner.push(pack);
  scanner.end();
  scanner.close();
  return entries;
}

const isDelta = (type: number): boolean => type === PackObjectType.OfsDelta || type === PackObjectType.RefDelta;

/** Entry types of a pack, in pack order. */
function entryTypes(pack: Buffer): number[] {
  const types: number[] = [];
  const scanner = new PackScanner({ onEntry: (e) => types.push(e.type) });
  scanner.push(pack);
  scanner.end();
  scanner.close();
  return types;
}

describe('writePack', () => {
  const tmp = tempDir();
  const dir = tmp.path;
  let repo: RepoSummary;
  let objects: Map<string, SourceObject>;
  let stored: StoredEntry[];

  before(async () => {
    repo = await generateRepo(join(dir, 'repo.git'), { seed: 5, commits: 30, repack: true, largeFileSize: 64 * 1024, deepChain: 12 });
    objects = await readAllObjects(repo.dir);
    stored = readStoredEntries(repo.pack!);
    assert.equal(stored.length, objects.size);
    assert.ok(stored.filter((e) => isDelta(e.type)).length > 20, 'git made deltas');
  });
  after(() => tmp.cleanup());

  let written = 0;
  /**
   * Writes a pack and checks it against git (index-pack, verify-pack -v) and
   * against the source objects (through our indexer and PackReader). Returns
   * the pack bytes and git's verify-pack listing.
   */
  async function writeAndCheck(inputs: PackInput[], options: WritePackOptions = {}): Promise<{ pack: Buffer; verify: string[] }> {
    const result: { checksum?: Buffer } = {};
    let entriesReported = 0;
    const pack = await collectPack(writePack(inputs.length, inputs, { ...options, onEntry: (n) => (entriesReported = n) }, result));
    assert.equal(entriesReported, inputs.length);
    assert.ok(result.checksum!.equals(pack.subarray(-20)), 'result.checksum is the trailer');
    assert.ok(result.checksum!.equals(sha1(pack.subarray(0, -20))), 'the trailer is the SHA-1 of the pack');

    // git index-pack accepts it, and its idx equals ours.
    const theirs = await gitIndexPack(dir, pack);
    assert.ok(theirs.ok, `git index-pack rejected the pack: ${theirs.stderr}`);
    assert.equal(theirs.stdout, result.checksum!.toString('hex'));
    const name = join(dir, `written-${written++}.pack`);
    const ours = await indexPackStream(chunksOf(pack, 4096), name, { threads: 1 });
    assert.ok(ours.index.equals(theirs.idx!), 'our idx equals git index-pack');
    writeFileSync(name.replace(/\.pack$/, '.idx'), ours.index);

    // git verify-pack -v accepts it; the object set equals the source.
    const listing = git(['verify-pack', '-v', name]).split('\n');
    const lines = listing.filter((l) => /^[0-9a-f]{40} /.test(l));
    const ids = lines.map((l) => l.slice(0, 40)).sort();
    assert.deepEqual(ids, [...objects.keys()].sort(), 'the pack holds exactly the source objects');
    assert.match(listing.at(-1)!, new RegExp(`: ok$`));

    // Every object reads back with the source's type and content.
    const reader = PackReader.open(name);
    try {
      for (const [oid, obj] of objects) {
        const got = reader.read(oid);
        assert.equal(got.type, obj.type, oid);
        assert.ok(got.data.equals(obj.data), `content of ${oid}`);
      }
    } finally {
      reader.close();
    }
    return { pack, verify: lines };
  }

  /** verify-pack -v lines of deltas have seven fields: id type size size-in-pack offset depth base. */
  const deltaLines = (lines: string[]): number => lines.filter((l) => l.trim().split(/\s+/).length === 7).length;

  test('whole objects: git accepts the pack and it holds exactly the source objects', T, async () => {
    const inputs: PackInput[] = [...objects].map(([, o]) => ({ kind: 'object', type: o.type, data: o.data }));
    const { pack, verify } = await writeAndCheck(inputs);
    assert.equal(deltaLines(verify), 0);
    assert.ok(entryTypes(pack).every((t) => t >= 1 && t <= 4));
  });

  test('whole objects with a given id and compression level 0', T, async () => {
    const inputs: PackInput[] = [...objects].map(([oid, o]) => ({ kind: 'object', type: o.type, data: o.data, oid }));
    const stored = await writeAndCheck(inputs, { compressionLevel: 0 });
    const compressed = await collectPack(writePack(inputs.length, inputs, { compressionLevel: 9 }));
    assert.ok(stored.pack.length > compressed.length, 'level 0 stores, level 9 compresses');
  });

  test("deltas taken from git's pack, as OFS_DELTA", T, async () => {
    const inputs: PackInput[] = stored.map((e) =>
      isDelta(e.type) ? { kind: 'delta', base: e.base!, delta: e.data, oid: e.oid } : { kind: 'object', type: e.type, data: e.data, oid: e.oid },
    );
    const deltas = stored.filter((e) => isDelta(e.type)).length;
    const { pack, verify } = await writeAndCheck(inputs, { ofsDelta: true });
    assert.equal(deltaLines(verify), deltas, 'every delta stays a delta');
    const types = entryTypes(pack);
    assert.equal(types.filter((t) => t === PackObjectType.OfsDelta).length, deltas, 'all are OFS_DELTA (bases come first)');
  });

  test("deltas taken from git's pack, as REF_DELTA", T, async () => {
    const inputs: PackInput[] = stored.map((e) =>
      isDelta(e.type) ? { kind: 'delta', base: e.base!, delta: e.data, oid: e.oid } : { kind: 'object', type: e.type, data: e.data },
    );
    const deltas = stored.filter((e) => isDelta(e.type)).length;
    const { pack, verify } = await writeAndCheck(inputs, { ofsDelta: false });
    assert.equal(deltaLines(verify), deltas);
    assert.equal(entryTypes(pack).filter((t) => t === PackObjectType.RefDelta).length, deltas, 'all are REF_DELTA');
  });

  test('a delta whose base comes later is a REF_DELTA even with ofsDelta', T, async () => {
    // Hand-built delta: the new blob is the old one with a line appended (copy + insert).
    const [baseOid, base] = [...objects].find(([, o]) => o.type === PackObjectType.Blob && o.data.length > 200)!;
    const data = Buffer.concat([base.data, Buffer.from('one more line\n')]);
    const delta = makeDelta(base.data.length, data.length, copyOp(0, base.data.length), insertOp('one more line\n'));
    const oid = hashObject(objectTypeFromPackType(PackObjectType.Blob), data, SHA1);
    const inputs: PackInput[] = [
      { kind: 'delta', base: baseOid, delta, oid },
      ...[...objects].map(([id, o]): PackInput => ({ kind: 'object', type: o.type, data: o.data, oid: id })),
    ];
    objects.set(oid, { type: PackObjectType.Blob, data });
    try {
      const { pack } = await writeAndCheck(inputs, { ofsDelta: true });
      assert.equal(entryTypes(pack)[0], PackObjectType.RefDelta);
    } finally {
      objects.delete(oid);
    }
  });

  test("raw entries reused from git's pack, OFS: byte-for-byte git's pack", T, async () => {
    const inputs: PackInput[] = stored.map((e) => ({
      kind: 'raw',
      type: e.type,
      size: e.size,
      compressed: e.compressed,
      oid: e.oid,
      base: e.base,
    }));
    const { pack } = await writeAndCheck(inputs, { ofsDelta: true });
    assert.ok(pack.equals(readFileSync(repo.pack!)), 'the same entries in the same order give the same bytes');
  });

  test("raw entries reused from git's pack, REF", T, async () => {
    const inputs: PackInput[] = stored.map((e) => ({ kind: 'raw', type: e.type, size: e.size, compressed: e.compressed, oid: e.oid, base: e.base }));
    const { pack } = await writeAndCheck(inputs, { ofsDelta: false });
    const types = entryTypes(pack);
    assert.ok(!types.includes(PackObjectType.OfsDelta));
    assert.equal(types.filter((t) => t === PackObjectType.RefDelta).length, stored.filter((e) => isDelta(e.type)).length);
  });

  describe('errors', () => {
    async function expectWriteError(count: number, inputs: PackInput[], code: ErrorCode, message: RegExp): Promise<void> {
      await assert.rejects(collectPack(writePack(count, inputs)), (err: unknown) => {
        assert.ok(err instanceof PackferryError, String(err));
        assert.equal(err.code, code, err.message);
        assert.match(err.message, message);
        return true;
      });
    }
    const blob = (s: string): PackInput => ({ kind: 'object', type: PackObjectType.Blob, data: Buffer.from(s) });

    test('fewer objects than declared: ERR_PACK_OBJECT_COUNT, and no trailer is written', async () => {
      await expectWriteError(3, [blob('a'), blob('b')], ErrorCode.PackObjectCount, /given 2 objects, not the 3 declared/);
      const chunks: Buffer[] = [];
      await assert.rejects(async () => {
        for await (const c of writePack(3, [blob('a')])) chunks.push(c);
      });
      assert.equal(Buffer.concat(chunks).readUInt32BE(8), 3, 'the header went out, the trailer never does');
    });

    test('more objects than declared: ERR_PACK_OBJECT_COUNT', async () => {
      await expectWriteError(1, [blob('a'), blob('b')], ErrorCode.PackObjectCount, /more than the 1 declared/);
      await expectWriteError(0, [blob('a')], ErrorCode.PackObjectCount, /more than the 0 declared/);
    });

    test('an empty pack is valid (git accepts it)', async () => {
      const pack = await collectPack(writePack(0, []));
      assert.equal(pack.length, 32);
      const r = await gitIndexPack(dir, pack);
      assert.ok(r.ok, r.stderr);
    });

    test('bad inputs: invalid type, raw delta without base, bad base id', async () => {
      await expectWriteError(1, [{ kind: 'object', type: 6, data: Buffer.from('x') }], ErrorCode.InvalidObjectType, /not an object type: 6/);
      await expectWriteError(1, [{ kind: 'raw', type: 5, size: 1, compressed: Buffer.alloc(9), oid: 'a'.repeat(40) }], ErrorCode.InvalidObjectType, /not a pack entry type: 5/);
      await expectWriteError(
        1,
        [{ kind: 'raw', type: PackObjectType.OfsDelta, size: 1, compressed: Buffer.alloc(9), oid: 'a'.repeat(40) }],
        ErrorCode.Usage,
        /needs its base id/,
      );
      await expectWriteError(1, [{ kind: 'delta', base: 'abc', delta: Buffer.alloc(3), oid: 'a'.repeat(40) }], ErrorCode.InvalidObjectId, /invalid base id "abc"/);
    });
  });
});

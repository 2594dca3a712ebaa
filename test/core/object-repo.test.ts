// Every object of a repository git built (fast-import: a few hundred commits
// with merges, tags, executables, symlinks, submodules, nested directories,
// Latin-1 names and messages) read, checked and written back byte for byte;
// and a recursive tree walk with TreeCursor compared with git ls-tree -r.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SHA256 } from '../../src/core/hash.js';
import {
  TreeCursor,
  hashObject,
  isTreeMode,
  objectIdOf,
  objectTypeForMode,
  parseCommit,
  parseCommitLinks,
  parseObject,
  parseObjectType,
  serializeObject,
  type ObjectType,
} from '../../src/core/object.js';
import { scratchRepo, type ScratchRepo } from './object-fixtures.js';

/** Small deterministic PRNG (mulberry32), so the repository is the same on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A fast-import stream: two branches merged now and then, annotated tags, varied modes and names. */
function fastImportStream(commits: number): Buffer {
  const rand = prng(20240501);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const dirs = ['', 'src/', 'src/core/', 'docs/', 'a/b/c/', 'Été/'];
  const files = ['main.c', 'README', 'a.c', 'a', 'a-b', 'a.b', 'x y', 'caf\\351', 'run.sh'];
  const zones = ['+0000', '+0100', '-0530', '+1400', '-1200', '+0545'];
  const out: Buffer[] = [];
  const text = (s: string) => out.push(Buffer.from(s, 'latin1'));
  const data = (payload: Buffer) => {
    text(`data ${payload.length}\n`);
    out.push(payload);
    text('\n');
  };
  let mark = 0;
  const tips: Record<string, number> = {};
  for (let i = 0; i < commits; i++) {
    const branch = i > 3 && rand() < 0.3 ? 'side' : 'main';
    const m = ++mark;
    const when = 1600000000 + i * 3600;
    text(`commit refs/heads/${branch}\nmark :${m}\n`);
    text(`author Au Thor ${i % 7} <author${i % 3}@example.com> ${when} ${pick(zones)}\n`);
    text(`committer Com Mitter <committer@example.com> ${when + 60} ${pick(zones)}\n`);
    if (i % 17 === 5) text('encoding ISO-8859-1\n');
    data(Buffer.from(i % 17 === 5 ? `commit ${i} caf\xe9\n` : `commit ${i}\n\nbody line\n`, 'latin1'));
    if (tips[branch] !== undefined) text(`from :${tips[branch]}\n`);
    else if (branch === 'side') text(`from :${tips.main}\n`);
    if (branch === 'main' && tips.side !== undefined && rand() < 0.25) text(`merge :${tips.side}\n`);
    const changes = 1 + Math.floor(rand() * 4);
    for (let c = 0; c < changes; c++) {
      const path = `${pick(dirs)}${pick(files)}`;
      const quoted = `"${path}"`;
      const r = rand();
      if (r < 0.6) {
        text(`M 100644 inline ${quoted}\n`);
        data(Buffer.from(`content of ${path} at ${i}\n${'x'.repeat(Math.floor(rand() * 200))}\n`));
      } else if (r < 0.7) {
        text(`M 100755 inline ${quoted}\n`);
        data(Buffer.from(`#!/bin/sh\necho ${i}\n`));
      } else if (r < 0.8) {
        text(`M 120000 inline ${quoted}\n`);
        data(Buffer.from(`../target-${i}`));
      } else if (r < 0.85) {
        text(`M 160000 ${((i + 1) * 7919).toString(16).padStart(40, '0')} "mod${i % 3}"\n`);
      } else {
        text(`D ${quoted}\n`);
      }
    }
    text('\n');
    tips[branch] = m;
    if (i % 20 === 19) {
      text(`tag v${i}\nfrom :${m}\ntagger T Agger <tagger@example.com> ${when + 120} +0200\n`);
      data(Buffer.from(`release ${i}\n`));
    }
  }
  return Buffer.concat(out);
}

interface StoredObject {
  type: ObjectType;
  data: Buffer;
}

/** Every object, from `git cat-file --batch-all-objects --batch`. */
function allObjects(repo: ScratchRepo): Map<string, StoredObject> {
  // (one id per line header: "<oid> <type> <size>", then the bytes and a newline)
  const out = repo.gitBuffer(['cat-file', '--batch-all-objects', '--batch']);
  const objects = new Map<string, StoredObject>();
  let pos = 0;
  while (pos < out.length) {
    const nl = out.indexOf(0x0a, pos);
    const [oid, type, size] = out.toString('latin1', pos, nl).split(' ');
    const start = nl + 1;
    objects.set(oid, { type: parseObjectType(type), data: out.subarray(start, start + Number(size)) });
    pos = start + Number(size) + 1;
  }
  return objects;
}

describe('a whole repository built by git', () => {
  let repo: ScratchRepo;
  let objects: Map<string, StoredObject>;

  before(() => {
    repo = scratchRepo({ bare: true });
    repo.git(['fast-import', '--quiet'], fastImportStream(300));
    objects = allObjects(repo);
  });
  after(() => repo.cleanup());

  test('the repository has every kind of object and tree entry', () => {
    const counts = { commit: 0, tree: 0, blob: 0, tag: 0 };
    for (const o of objects.values()) counts[o.type]++;
    assert.ok(counts.commit >= 300 && counts.tag >= 10 && counts.tree > 300 && counts.blob > 300, JSON.stringify(counts));
    const modes = new Set<number>();
    let merges = 0;
    for (const o of objects.values()) {
      if (o.type === 'tree') {
        const c = new TreeCursor(o.data);
        while (c.next()) modes.add(c.mode);
      }
      if (o.type === 'commit' && parseCommit(o.data).parents.length > 1) merges++;
    }
    assert.deepEqual([...modes].sort(), [0o040000, 0o100644, 0o100755, 0o120000, 0o160000].sort());
    assert.ok(merges > 5, `${merges} merges`);
  });

  test('every object parses strictly with no problems, writes back byte for byte and hashes to its id', () => {
    for (const [oid, { type, data }] of objects) {
      const { object, problems } = parseObject(type, data, { strict: true });
      assert.deepEqual(problems, [], oid);
      assert.ok(serializeObject(object).equals(data), `${type} ${oid} does not round-trip`);
      assert.equal(hashObject(type, data), oid);
      assert.equal(objectIdOf(object), oid);
      if (object.type === 'commit') assert.deepEqual(parseCommitLinks(data), { tree: object.tree, parents: object.parents });
    }
  });

  test('a recursive walk with TreeCursor lists what git ls-tree -r -t lists', () => {
    const head = parseCommit(objects.get(repo.git(['rev-parse', 'main']))?.data as Buffer);
    const lines: string[] = [];
    const walk = (treeId: string, prefix: string) => {
      const c = new TreeCursor((objects.get(treeId) as StoredObject).data);
      while (c.next()) {
        const path = prefix + c.data.toString('latin1', c.nameStart, c.nameEnd);
        const oid = c.oidHex();
        lines.push(`${c.mode.toString(8).padStart(6, '0')} ${objectTypeForMode(c.mode)} ${oid}\t${path}`);
        if (isTreeMode(c.mode)) walk(oid, `${path}/`);
      }
    };
    walk(head.tree, '');
    const expected = repo.gitBuffer(['ls-tree', '-r', '-t', '-z', head.tree]).toString('latin1').split('\0').filter(Boolean);
    assert.ok(expected.length > 20);
    assert.deepEqual(lines, expected);
  });
});

describe('a SHA-256 repository built by git', () => {
  let repo: ScratchRepo;
  before(() => {
    repo = scratchRepo({ bare: true, objectFormat: 'sha256' });
    // Gitlinks name SHA-256 ids here, so leave them out of this history.
    const stream = fastImportStream(60).toString('latin1').replace(/^M 160000 .*\n/gm, '');
    repo.git(['fast-import', '--quiet'], Buffer.from(stream, 'latin1'));
  });
  after(() => repo.cleanup());

  test('every object parses with SHA-256 ids, writes back byte for byte and hashes to its id', () => {
    const objects = allObjects(repo);
    assert.ok(objects.size > 100);
    const seen = new Set<ObjectType>();
    for (const [oid, { type, data }] of objects) {
      assert.equal(oid.length, 64);
      const { object, problems } = parseObject(type, data, { algo: SHA256, strict: true });
      assert.deepEqual(problems, [], oid);
      assert.ok(serializeObject(object, SHA256).equals(data), `${type} ${oid}`);
      assert.equal(hashObject(type, data, SHA256), oid);
      if (object.type === 'commit') assert.equal(object.tree.length, 64);
      seen.add(type);
    }
    assert.equal(seen.size, 4);
  });
});

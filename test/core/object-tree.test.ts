// Trees: reading what git writes, writing what git reads, Git's tree order,
// and fsck's tree checks, each compared with real git.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ErrorCode, isPackferryError } from '../../src/core/errors.js';
import {
  FileMode,
  TreeCursor,
  compareTreeEntries,
  hashObject,
  isHfsDotGeneric,
  isNtfsDotgit,
  isTreeMode,
  iterateTree,
  parseObject,
  parseTree,
  serializeTree,
  sortTreeEntries,
  validateTree,
  type TreeEntry,
} from '../../src/core/object.js';
import { gitAsync } from '../support/git.js';
import { fsck, raw, scratchRepo, treeBytes, type ScratchRepo } from './object-fixtures.js';

let repo: ScratchRepo;
let blob: string; // "hello\n"
let emptyTree: string;
const gitlinkTarget = '1234567890abcdef1234567890abcdef12345678';

before(() => {
  repo = scratchRepo();
  blob = repo.git(['hash-object', '-w', '--stdin'], 'hello\n');
  emptyTree = repo.git(['hash-object', '-t', 'tree', '-w', '--stdin'], '');
});
after(() => repo.cleanup());

function mktree(lines: [string, string, string, Buffer | string][]): string {
  // `git mktree -z`: "<mode> SP <type> SP <oid> TAB <path>" NUL-terminated; git sorts the entries itself.
  const input = Buffer.concat(lines.map(([mode, type, oid, name]) => Buffer.concat([Buffer.from(`${mode} ${type} ${oid}\t`), Buffer.from(name), Buffer.from([0])])));
  return repo.git(['mktree', '-z'], input);
}

function problemIds(data: Buffer, strict: boolean): string[] {
  return validateTree(data, { strict }).map((p) => p.id).sort();
}

describe('reading trees git wrote', () => {
  let tree: string;
  let subtree: string;
  const latin1Name = Buffer.from([0x63, 0x61, 0x66, 0xe9]); // "café" in Latin-1: not UTF-8

  before(() => {
    const link = repo.git(['hash-object', '-w', '--stdin'], 'README');
    subtree = mktree([['100644', 'blob', blob, 'inner.txt']]);
    tree = mktree([
      ['100644', 'blob', blob, 'README'],
      ['100755', 'blob', blob, 'run.sh'],
      ['120000', 'blob', link, 'link'],
      ['040000', 'tree', subtree, 'foo'],
      ['100644', 'blob', blob, 'foo.c'],
      ['100644', 'blob', blob, 'foo-bar'],
      ['100644', 'blob', blob, 'foo0'],
      ['160000', 'commit', gitlinkTarget, 'sub'],
      ['100644', 'blob', blob, latin1Name],
    ]);
  });

  test('parse gives git ls-tree\'s entries, in Git\'s order, and serializes to the same bytes', () => {
    const data = repo.catFile('tree', tree);
    const parsed = parseTree(data);
    const listing = repo.gitBuffer(['ls-tree', '-z', tree]).toString('latin1').split('\0').filter(Boolean);
    assert.equal(parsed.entries.length, 9);
    assert.equal(listing.length, parsed.entries.length);
    for (const [i, line] of listing.entries()) {
      const m = /^(\d+) (\w+) ([0-9a-f]{40})\t(.*)$/s.exec(line);
      assert.ok(m, line);
      const e = parsed.entries[i];
      assert.equal(e.mode, parseInt(m[1], 8));
      assert.equal(e.oid.toString('hex'), m[3]);
      assert.deepEqual(e.name, Buffer.from(m[4], 'latin1'));
      assert.equal(e.rawMode, undefined);
    }
    // "foo-bar" < "foo.c" < "foo/" (a tree sorts as if its name ended in '/') < "foo0"
    const names = parsed.entries.map((e) => e.name.toString('latin1'));
    const at = names.indexOf('foo-bar');
    assert.deepEqual(names.slice(at, at + 4), ['foo-bar', 'foo.c', 'foo', 'foo0']);
    assert.deepEqual(serializeTree(parsed), data);
    assert.equal(hashObject('tree', serializeTree(parsed)), tree);
    const modes = new Set(parsed.entries.map((e) => e.mode));
    for (const m of Object.values(FileMode)) assert.ok(modes.has(m), m.toString(8));
    assert.deepEqual(validateTree(data, { strict: true }), []);
  });

  test('the cursor and the iterator see the same entries as parseTree, as views into the bytes', () => {
    const data = repo.catFile('tree', tree);
    const parsed = parseTree(data);
    const cursor = new TreeCursor(data);
    let i = 0;
    while (cursor.next()) {
      const e = parsed.entries[i++];
      assert.equal(cursor.mode, e.mode);
      assert.deepEqual(cursor.name(), e.name);
      assert.equal(cursor.oidHex(), e.oid.toString('hex'));
      assert.equal(cursor.data[cursor.nameEnd], 0);
      assert.equal(cursor.entryEnd, cursor.oidStart + 20);
      assert.equal(isTreeMode(cursor.mode), e.name.toString() === 'foo');
    }
    assert.equal(i, parsed.entries.length);
    assert.equal(cursor.next(), false);
    assert.deepEqual([...iterateTree(data)], parsed.entries);
    // Views, not copies: they share the tree's memory.
    assert.equal(parsed.entries[0].name.buffer, data.buffer);
  });

  test('a Uint8Array that is not a Buffer reads the same', () => {
    const data = repo.catFile('tree', tree);
    const copy = new Uint8Array(data.length + 8).subarray(4, 4 + data.length);
    copy.set(data);
    assert.deepEqual(parseTree(copy), parseTree(data));
  });

  test('the empty tree has no entries', () => {
    assert.deepEqual(parseTree(repo.catFile('tree', emptyTree)).entries, []);
    assert.equal(hashObject('tree', serializeTree([])), emptyTree);
  });

  test('a zero-padded mode from an old tree keeps its digits and round-trips', () => {
    const data = treeBytes([['040000', 'dir', emptyTree], ['0100644', 'file', blob]]);
    const oid = repo.writeLiteral('tree', data);
    const parsed = parseTree(repo.catFile('tree', oid));
    assert.equal(parsed.entries[0].mode, 0o40000);
    assert.equal(parsed.entries[0].rawMode, '040000');
    assert.equal(parsed.entries[1].rawMode, '0100644');
    assert.deepEqual(serializeTree(parsed), data);
    assert.equal(hashObject('tree', serializeTree(parsed)), oid);
  });
});

describe('writing trees git reads', () => {
  test('a sorted new tree hashes to the id git hash-object and git mktree give, and passes fsck --strict', async () => {
    const entries: TreeEntry[] = [
      { mode: FileMode.regular, name: Buffer.from('b.txt'), oid: raw(blob) },
      { mode: FileMode.tree, name: Buffer.from('a'), oid: raw(emptyTree) },
      { mode: FileMode.executable, name: Buffer.from('a.sh'), oid: raw(blob) },
      { mode: FileMode.symlink, name: Buffer.from('a-link'), oid: raw(blob) },
      { mode: FileMode.gitlink, name: Buffer.from('module'), oid: raw(gitlinkTarget) },
      { mode: FileMode.regular, name: Buffer.from('名前'), oid: raw(blob) },
    ];
    const data = serializeTree(sortTreeEntries(entries));
    const written = repo.git(['hash-object', '-t', 'tree', '-w', '--stdin'], data);
    assert.equal(hashObject('tree', data), written);
    const viaMktree = mktree(entries.map((e) => [e.mode.toString(8), e.mode === FileMode.tree ? 'tree' : e.mode === FileMode.gitlink ? 'commit' : 'blob', e.oid.toString('hex'), e.name]));
    assert.equal(viaMktree, written);
    const verdicts = await fsck(repo.path, true);
    assert.equal(verdicts.get(written), undefined, JSON.stringify(verdicts.get(written)));
  });

  test('sortTreeEntries orders like git mktree for random names', () => {
    const alphabet = ['a', 'b', '.', '-', '0', '~', ' ', '\xe9', '/'].map((c) => Buffer.from(c, 'latin1')[0]);
    const entryArb = fc.record({
      name: fc.array(fc.constantFrom(...alphabet.filter((c) => c !== 0x2f)), { minLength: 1, maxLength: 4 }).map((bytes) => Buffer.from(bytes)),
      dir: fc.boolean(),
    });
    fc.assert(
      fc.property(
        fc.uniqueArray(entryArb, { minLength: 1, maxLength: 12, selector: (e) => e.name.toString('latin1') }).filter((es) =>
          es.every((e) => e.name.toString('latin1') !== '.' && e.name.toString('latin1') !== '..'),
        ),
        (specs) => {
          const entries: TreeEntry[] = specs.map((s) => ({ mode: s.dir ? FileMode.tree : FileMode.regular, name: s.name, oid: raw(s.dir ? emptyTree : blob) }));
          const ours = hashObject('tree', serializeTree(sortTreeEntries(entries)));
          const theirs = mktree(entries.map((e) => [e.mode.toString(8), e.mode === FileMode.tree ? 'tree' : 'blob', e.oid.toString('hex'), e.name]));
          assert.equal(ours, theirs);
        },
      ),
      { numRuns: 40 },
    );
  });

  test('compareTreeEntries: a tree compares as if its name ended in "/"', () => {
    const file = (name: string) => ({ mode: FileMode.regular, name: Buffer.from(name) });
    const dir = (name: string) => ({ mode: FileMode.tree, name: Buffer.from(name) });
    assert.ok(compareTreeEntries(file('a.c'), dir('a')) < 0);
    assert.ok(compareTreeEntries(dir('a'), file('a0')) < 0);
    assert.ok(compareTreeEntries(file('a'), file('a.c')) < 0);
    assert.ok(compareTreeEntries(file('a'), dir('a')) < 0);
    assert.equal(compareTreeEntries(file('a'), file('a')), 0);
    assert.ok(compareTreeEntries(file('\xff'), file('a')) > 0);
  });

  test('entries that cannot be written are refused with ERR_INVALID_OBJECT', () => {
    const ok = { mode: FileMode.regular, name: Buffer.from('a'), oid: raw(blob) };
    const bad: [string, TreeEntry][] = [
      ['empty name', { ...ok, name: Buffer.alloc(0) }],
      ['NUL in name', { ...ok, name: Buffer.from('a\0b') }],
      ['short id', { ...ok, oid: Buffer.alloc(19) }],
      ['negative mode', { ...ok, mode: -1 }],
      ['fractional mode', { ...ok, mode: 1.5 }],
      ['rawMode not spelling mode', { ...ok, rawMode: '100755' }],
      ['rawMode not octal', { ...ok, rawMode: '10064x' }],
      ['empty rawMode', { ...ok, mode: 0, rawMode: '' }],
    ];
    for (const [what, entry] of bad) {
      assert.throws(() => serializeTree([entry]), (e) => isPackferryError(e, ErrorCode.InvalidObject), what);
    }
  });
});

describe('tree checks against git fsck', () => {
  // Each case is written with `hash-object --literally`; one fsck run then
  // judges them all, strictly and not.
  const cases: [string, () => Buffer][] = [
    ['valid', () => treeBytes([['100644', 'a', blob], ['40000', 'b', emptyTree]])],
    ['unsorted', () => treeBytes([['100644', 'b', blob], ['100644', 'a', blob]])],
    ['duplicate file', () => treeBytes([['100644', 'a', blob], ['100644', 'a', blob]])],
    ['file and tree of one name, not adjacent', () => treeBytes([['100644', 'foo', blob], ['100644', 'foo.bar', blob], ['40000', 'foo', emptyTree]])],
    ['dir sorted as if it ended in slash', () => treeBytes([['40000', 'a', emptyTree], ['100644', 'a.c', blob]])],
    ['dot', () => treeBytes([['100644', '.', blob]])],
    ['dotdot', () => treeBytes([['100644', '..', blob]])],
    ['.git', () => treeBytes([['100644', '.git', blob]])],
    ['.GiT', () => treeBytes([['40000', '.GiT', emptyTree]])],
    ['git~1', () => treeBytes([['100644', 'git~1', blob]])],
    ['.git with trailing dots and spaces (NTFS)', () => treeBytes([['100644', '.git. . ', blob]])],
    ['.git alternate data stream (NTFS)', () => treeBytes([['100644', '.git::$INDEX_ALLOCATION', blob]])],
    ['.git with zero-width joiner (HFS+)', () => treeBytes([['100644', '.g\u200cit', blob]])],
    ['.git after a backslash', () => treeBytes([['100644', 'a\\.git', blob]])],
    ['.gitx is fine', () => treeBytes([['100644', '.gitx', blob]])],
    ['slash in name', () => treeBytes([['100644', 'a/b', blob]])],
    ['null id', () => treeBytes([['100644', 'a', '0'.repeat(40)]])],
    ['legacy 100664', () => treeBytes([['100664', 'a', blob]])],
    ['bad mode 100600', () => treeBytes([['100600', 'a', blob]])],
    ['bad mode 644', () => treeBytes([['644', 'a', blob]])],
    ['zero-padded 040000', () => treeBytes([['040000', 'a', emptyTree]])],
    ['.gitmodules symlink', () => treeBytes([['120000', '.gitmodules', blob]])],
    ['GITMOD~1 symlink (NTFS short name)', () => treeBytes([['120000', 'GITMOD~1', blob]])],
    ['gi7eba~9 symlink (NTFS fall-back short name)', () => treeBytes([['120000', 'gi7eba~9', blob]])],
    ['.gitignore symlink', () => treeBytes([['120000', '.gitignore', blob]])],
    ['.gitattributes symlink', () => treeBytes([['120000', '.gitattributes', blob]])],
    ['.mailmap symlink', () => treeBytes([['120000', '.mailmap', blob]])],
    ['many problems at once', () => treeBytes([['040000', 'z', emptyTree], ['100644', '.git', blob], ['100644', 'a/b', blob], ['100600', '..', blob]])],
    ['truncated entry', () => Buffer.concat([treeBytes([['100644', 'a', blob]]), Buffer.from('100644 b\0abc')])],
  ];
  const ids = new Map<string, string>();
  let strict: Awaited<ReturnType<typeof fsck>>;
  let lenient: Awaited<ReturnType<typeof fsck>>;

  before(async () => {
    for (const [name, make] of cases) ids.set(name, repo.writeLiteral('tree', make()));
    strict = await fsck(repo.path, true);
    lenient = await fsck(repo.path, false);
  });

  for (const [name, make] of cases) {
    test(`${name}: same problems as git fsck, strict and not`, () => {
      const oid = ids.get(name) as string;
      const data = make();
      for (const [isStrict, verdicts] of [[true, strict], [false, lenient]] as const) {
        const theirs = verdicts.get(oid);
        const ours = validateTree(data, { strict: isStrict });
        assert.deepEqual(
          ours.map((p) => `${p.severity}:${p.id}`).sort(),
          [...(theirs?.graded ?? [])].sort(),
          `strict=${isStrict}: ours ${JSON.stringify(ours)} git ${JSON.stringify(theirs)}`,
        );
      }
    });
  }

  test('strict parseObject throws for exactly the trees fsck --strict calls errors', () => {
    for (const [name, make] of cases) {
      const verdict = strict.get(ids.get(name) as string);
      const gitErrors = (verdict?.graded ?? []).some((g) => g.startsWith('error:'));
      let threw = false;
      try {
        parseObject('tree', make(), { strict: true });
      } catch (err) {
        assert.ok(isPackferryError(err, ErrorCode.InvalidObject), name);
        threw = true;
      }
      assert.equal(threw, gitErrors, name);
    }
  });

  test('lenient parseObject returns readable trees with their problems', () => {
    const { object, problems } = parseObject('tree', treeBytes([['100644', '.git', blob], ['040000', 'a', emptyTree]]));
    assert.equal(object.type, 'tree');
    assert.deepEqual(problems.map((p) => [p.id, p.severity, p.offset]), [
      ['hasDotgit', 'warning', 0],
      ['zeroPaddedFilemode', 'warning', 32], // the second entry starts after "100644 .git\0" and 20 id bytes
    ]);
  });

  test('severity overrides work like fsck.<msg-id>', () => {
    const data = treeBytes([['100644', 'b', blob], ['100644', '.git', blob]]);
    assert.deepEqual(problemIds(data, false), ['hasDotgit', 'treeNotSorted']);
    const ignored = validateTree(data, { severities: { treeNotSorted: 'ignore', hasDotgit: 'error' } });
    assert.deepEqual(ignored.map((p) => `${p.severity}:${p.id}`), ['error:hasDotgit']);
  });

  test('a mode git misses because it checks modes in 16 bits is still a bad mode here', () => {
    // 01100644 truncated to 16 bits is 0100644: `git fsck --strict` says nothing.
    const data = treeBytes([['1100644', 'a', blob]]);
    assert.deepEqual(problemIds(data, true), ['badFilemode']);
    assert.equal(parseTree(data).entries[0].mode, 0o1100644);
  });
});

describe('trees git cannot read', () => {
  const cases: [string, Buffer][] = [
    ['id cut short', Buffer.concat([Buffer.from('100644 a\0'), Buffer.alloc(19, 1)])],
    ['no NUL after the name', Buffer.from('100644 a')],
    ['mode only', Buffer.from('100644')],
    ['empty name', Buffer.concat([Buffer.from('100644 \0'), Buffer.alloc(20, 1)])],
    ['empty mode', Buffer.concat([Buffer.from(' a\0'), Buffer.alloc(20, 1)])],
    ['non-octal digit in mode', Buffer.concat([Buffer.from('100648 a\0'), Buffer.alloc(20, 1)])],
    ['no space after the mode', Buffer.concat([Buffer.from('100644a\0'), Buffer.alloc(20, 1)])],
    ['trailing byte', Buffer.concat([Buffer.from('100644 a\0'), Buffer.alloc(20, 1), Buffer.from('1')])],
  ];
  for (const [name, data] of cases) {
    test(`${name}: git hash-object refuses it, parse throws badTree, validate reports badTree`, async () => {
      const res = await gitAsync(['hash-object', '-t', 'tree', '--stdin'], { cwd: repo.path, input: data });
      assert.notEqual(res.code, 0, 'git accepted it');
      assert.throws(
        () => parseTree(data),
        (e) => isPackferryError(e, ErrorCode.InvalidObject) && e.details.problem === 'badTree',
      );
      assert.throws(() => [...iterateTree(data)], (e) => isPackferryError(e, ErrorCode.InvalidObject));
      assert.deepEqual(problemIds(data, false), ['badTree']);
    });
  }
});

describe('.git look-alikes (path.c, utf8.c)', () => {
  const check = (name: string | Buffer) => {
    const b = Buffer.from(name);
    return isNtfsDotgit(b, 0, b.length) || isHfsDotGeneric(b, 0, b.length, 'git');
  };
  test('names Windows or macOS would resolve to .git', () => {
    for (const name of ['.git', '.GIT', 'git~1', 'GIT~1', '.git.', '.git ', '.git...  ', '.git:stream', '.git\\x', '\u200e.git', '.g\ufeffit', '.git\u200d']) {
      assert.ok(check(name), JSON.stringify(name));
    }
  });
  test('names that merely look similar', () => {
    for (const name of ['.gitx', 'git', '.gi', 'git~2', '.git.x', 'x.git', '.gi\u00e9', Buffer.from([0x2e, 0x67, 0x69, 0xff])]) {
      assert.ok(!check(name), JSON.stringify(name.toString()));
    }
  });
  test('malformed UTF-8 right after ".git" reads as its end, as in Git', () => {
    assert.ok(isHfsDotGeneric(Buffer.from([0x2e, 0x67, 0x69, 0x74, 0xff]), 0, 5, 'git'));
  });
});

// Commits and identities: commits git wrote (merges, octopus, encodings,
// signatures, mergetags) read and written back byte for byte; new commits
// written for git; fsck's commit checks compared with git fsck.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, isPackferryError } from '../../src/core/errors.js';
import {
  createIdentity,
  findHeader,
  formatTimezone,
  hashObject,
  objectIdOf,
  parseCommit,
  parseCommitLinks,
  parseIdentity,
  parseObject,
  serializeCommit,
  validateCommit,
  type Commit,
  type CommitInit,
} from '../../src/core/object.js';
import { fakeGpgProgram, fsck, scratchRepo, type ScratchRepo } from './object-fixtures.js';

let repo: ScratchRepo;
const E = '4b825dc642cb6eb9a060e54bf8d69288fbee4904'; // the empty tree

before(() => {
  repo = scratchRepo();
  repo.git(['hash-object', '-t', 'tree', '-w', '--stdin'], '');
});
after(() => repo.cleanup());

function commitText(...lines: string[]): Buffer {
  return Buffer.from(lines.join('\n'), 'latin1');
}

describe('commits git wrote', () => {
  const commits = new Map<string, string>();

  before(() => {
    const g = (...args: string[]) => repo.git(args);
    const gpg = fakeGpgProgram(repo.path);
    const write = (name: string, text: string) => writeFileSync(join(repo.path, name), text);
    write('a.txt', 'a\n');
    g('add', 'a.txt');
    g('commit', '-q', '-m', 'root');
    commits.set('root', g('rev-parse', 'HEAD'));
    g('checkout', '-q', '-b', 'side');
    write('b.txt', 'b\n');
    g('add', 'b.txt');
    g('commit', '-q', '-m', 'side work\n\nwith a body\nof two lines');
    g('checkout', '-q', '-b', 'third', 'main');
    write('c.txt', 'c\n');
    g('add', 'c.txt');
    g('commit', '-q', '-m', 'third');
    g('checkout', '-q', 'main');
    write('a.txt', 'a2\n');
    g('commit', '-q', '-am', 'main work');
    g('merge', '-q', '--no-ff', '--no-edit', 'side');
    commits.set('merge', g('rev-parse', 'HEAD'));
    g('checkout', '-q', '-b', 'octo', 'main~1');
    g('merge', '-q', '--no-edit', 'side', 'third');
    commits.set('octopus', g('rev-parse', 'HEAD'));
    g('checkout', '-q', 'main');
    // A Latin-1 message, recorded with "encoding ISO-8859-1".
    writeFileSync(join(repo.path, 'msg'), Buffer.from('caf\xe9\n', 'latin1'));
    g('-c', 'i18n.commitEncoding=ISO-8859-1', 'commit', '-q', '--allow-empty', '-F', 'msg');
    commits.set('encoding', g('rev-parse', 'HEAD'));
    g('-c', `gpg.program=${gpg}`, 'commit', '-q', '--allow-empty', '-S', '-m', 'signed');
    commits.set('signed', g('rev-parse', 'HEAD'));
    // Merging a signed tag records it in a "mergetag" header.
    g('-c', `gpg.program=${gpg}`, 'tag', '-s', '-m', 'release', 'v1', 'third');
    g('merge', '-q', '--no-ff', '--no-edit', 'v1');
    commits.set('mergetag', g('rev-parse', 'HEAD'));
    g('commit', '-q', '--allow-empty', '--allow-empty-message', '-m', '');
    commits.set('empty message', g('rev-parse', 'HEAD'));
    commits.set('no final newline', repo.git(['commit-tree', E, '-F', '-'], 'no newline at the end'));
  });

  test('every commit round-trips byte for byte and hashes to its id', () => {
    assert.equal(commits.size, 8);
    for (const [what, oid] of commits) {
      const data = repo.catFile('commit', oid);
      const commit = parseCommit(data);
      assert.deepEqual(serializeCommit(commit), data, what);
      assert.equal(hashObject('commit', serializeCommit(commit)), oid, what);
      assert.equal(objectIdOf(commit), oid, what);
      assert.deepEqual(validateCommit(data, { strict: true }), [], what);
    }
  });

  test('fields agree with git log', () => {
    for (const [what, oid] of commits) {
      const commit = parseCommit(repo.catFile('commit', oid));
      const [tree, parents, an, ae, at, cn, ce, ct] = repo.git(['log', '-1', '--format=%T%x00%P%x00%an%x00%ae%x00%at%x00%cn%x00%ce%x00%ct', oid]).split('\0');
      assert.equal(commit.tree, tree, what);
      assert.deepEqual(commit.parents, parents === '' ? [] : parents.split(' '), what);
      assert.deepEqual([commit.author.name, commit.author.email, String(commit.author.timestamp)], [an, ae, at], what);
      assert.deepEqual([commit.committer.name, commit.committer.email, String(commit.committer.timestamp)], [cn, ce, ct], what);
      assert.equal(commit.author.tzOffset, 0);
    }
  });

  test('merges have two parents, octopus merges three', () => {
    assert.equal(parseCommit(repo.catFile('commit', commits.get('merge') as string)).parents.length, 2);
    assert.equal(parseCommit(repo.catFile('commit', commits.get('octopus') as string)).parents.length, 3);
    assert.equal(parseCommit(repo.catFile('commit', commits.get('root') as string)).parents.length, 0);
  });

  test('the encoding header is read, and the message kept as bytes', () => {
    const commit = parseCommit(repo.catFile('commit', commits.get('encoding') as string));
    assert.equal(commit.encoding, 'ISO-8859-1');
    assert.deepEqual(commit.message, Buffer.from('caf\xe9\n', 'latin1'));
    assert.deepEqual(commit.extraHeaders, []);
  });

  test('a signed commit keeps its gpgsig header with its continuation lines', () => {
    const commit = parseCommit(repo.catFile('commit', commits.get('signed') as string));
    assert.equal(commit.extraHeaders.length, 1);
    assert.equal(commit.extraHeaders[0].key, 'gpgsig');
    const sig = findHeader(commit.extraHeaders, 'gpgsig')?.toString() ?? '';
    assert.match(sig, /^-----BEGIN PGP SIGNATURE-----\n\niHUE.*\n=FAKE\n-----END PGP SIGNATURE-----$/s);
    assert.equal(commit.message?.toString(), 'signed\n');
  });

  test('a merge of a signed tag keeps the whole tag in its mergetag header', () => {
    const commit = parseCommit(repo.catFile('commit', commits.get('mergetag') as string));
    const mergetag = findHeader(commit.extraHeaders, 'mergetag');
    assert.ok(mergetag);
    const tagOid = repo.git(['rev-parse', 'v1']);
    assert.deepEqual(mergetag, repo.catFile('tag', tagOid).subarray(0, -1), 'the tag object minus its final newline');
  });

  test('an empty message and a message without a final newline', () => {
    assert.deepEqual(parseCommit(repo.catFile('commit', commits.get('empty message') as string)).message, Buffer.alloc(0));
    assert.equal(parseCommit(repo.catFile('commit', commits.get('no final newline') as string)).message?.toString(), 'no newline at the end');
  });
});

describe('writing new commits', () => {
  const author = createIdentity({ name: 'A U Thor', email: 'author@example.com', timestamp: 1700000000, tzOffset: 60 });
  const committer = createIdentity({ name: 'Çé Mitter', email: 'c@example.com', timestamp: 1700000100, tzOffset: -330 });

  test('git hash-object computes the same id, git fsck --strict accepts it, git log reads it', async () => {
    const root = serializeCommit({ tree: E, author, committer, message: 'root\n' });
    const rootId = repo.git(['hash-object', '-t', 'commit', '-w', '--stdin'], root);
    assert.equal(hashObject('commit', root), rootId);
    const init: CommitInit = {
      tree: E,
      parents: [rootId, rootId],
      author,
      committer,
      encoding: 'UTF-8',
      extraHeaders: [{ key: 'x-packferry', value: Buffer.from('line one\n\nline three') }],
      message: 'subject\n\nbody\n',
    };
    const data = serializeCommit(init);
    const id = repo.git(['hash-object', '-t', 'commit', '-w', '--stdin'], data);
    assert.equal(hashObject('commit', data), id);
    assert.equal(repo.catFile('commit', id).toString(), data.toString());
    assert.match(data.toString(), /\nx-packferry line one\n \n line three\n\nsubject/);
    const verdicts = await fsck(repo.path, true);
    assert.equal(verdicts.get(id), undefined);
    assert.equal(verdicts.get(rootId), undefined);
    const [an, ae, ad, cn, cd, body] = repo.git(['log', '-1', '--date=raw', '--format=%an%x00%ae%x00%ad%x00%cn%x00%cd%x00%B', id]).split('\0');
    assert.deepEqual([an, ae, ad, cn, cd], ['A U Thor', 'author@example.com', '1700000000 +0100', 'Çé Mitter', '1700000100 -0530']);
    assert.equal(body, 'subject\n\nbody\n');
    const back = parseCommit(data);
    assert.deepEqual(back.extraHeaders, init.extraHeaders);
    assert.equal(back.encoding, 'UTF-8');
  });

  test('fields that cannot be written are refused with ERR_INVALID_OBJECT', () => {
    const ok: CommitInit = { tree: E, author, committer, message: 'x\n' };
    const bad: [string, CommitInit][] = [
      ['short tree id', { ...ok, tree: 'abc' }],
      ['uppercase tree id', { ...ok, tree: E.toUpperCase() }],
      ['bad parent', { ...ok, parents: ['zz'] }],
      ['newline in identity', { ...ok, author: { ...author, raw: Buffer.from('A <a> 1 +0000\nparent x') } }],
      ['newline in encoding', { ...ok, encoding: 'UTF-8\nx' }],
      ['space in header key', { ...ok, extraHeaders: [{ key: 'a b', value: Buffer.from('x') }] }],
      ['newline in header key', { ...ok, extraHeaders: [{ key: 'a\nb', value: Buffer.from('x') }] }],
      ['empty key without value', { ...ok, extraHeaders: [{ key: '', value: undefined }] }],
      ['non-8-bit key', { ...ok, extraHeaders: [{ key: 'ключ', value: Buffer.from('x') }] }],
    ];
    for (const [what, init] of bad) {
      assert.throws(() => serializeCommit(init), (e) => isPackferryError(e, ErrorCode.InvalidObject), what);
    }
  });
});

describe('commits with unusual headers that git accepts', () => {
  const cases: [string, Buffer][] = [
    ['bare header key', commitText(`tree ${E}`, 'author A <a> 1 +0000', 'committer C <c> 1 +0000', 'x-flag', '', 'm', '')],
    ['header with empty value', commitText(`tree ${E}`, 'author A <a> 1 +0000', 'committer C <c> 1 +0000', 'x-empty ', '', 'm', '')],
    ['continuation right after committer', commitText(`tree ${E}`, 'author A <a> 1 +0000', 'committer C <c> 1 +0000', ' orphan', ' lines', '', 'm', '')],
    ['continuation after a bare key', commitText(`tree ${E}`, 'author A <a> 1 +0000', 'committer C <c> 1 +0000', 'x-flag', ' more', '', 'm', '')],
    ['encoding after another header', commitText(`tree ${E}`, 'author A <a> 1 +0000', 'committer C <c> 1 +0000', 'x-a b', 'encoding ISO-8859-1', '', 'm', '')],
    ['two encodings', commitText(`tree ${E}`, 'author A <a> 1 +0000', 'committer C <c> 1 +0000', 'encoding A', 'encoding B', '', 'm', '')],
    ['non-ASCII encoding', commitText(`tree ${E}`, 'author A <a> 1 +0000', 'committer C <c> 1 +0000', 'encoding \xe9', '', 'm', '')],
    ['multi-line encoding', commitText(`tree ${E}`, 'author A <a> 1 +0000', 'committer C <c> 1 +0000', 'encoding A', ' B', '', 'm', '')],
    ['no empty line, no message', commitText(`tree ${E}`, 'author A <a> 1 +0000', 'committer C <c> 1 +0000', '')],
    ['header-like lines in the message', commitText(`tree ${E}`, 'author A <a> 1 +0000', 'committer C <c> 1 +0000', '', 'parent x', 'tree y', '')],
    ['empty lines in a continuation', commitText(`tree ${E}`, 'author A <a> 1 +0000', 'committer C <c> 1 +0000', 'gpgsig a', ' ', ' ', ' b', '', 'm', '')],
    ['tabs and odd spacing in identities', commitText(`tree ${E}`, 'author  A\t <a> \t 1 +0000', 'committer C <c> 1 +0000', '', '')],
  ];
  let verdicts: Awaited<ReturnType<typeof fsck>>;
  const ids = new Map<string, string>();
  before(async () => {
    for (const [name, data] of cases) ids.set(name, repo.writeLiteral('commit', data));
    verdicts = await fsck(repo.path, true);
  });
  for (const [name, data] of cases) {
    test(`${name}: git fsck --strict accepts it and it round-trips`, () => {
      assert.equal(verdicts.get(ids.get(name) as string), undefined, JSON.stringify(verdicts.get(ids.get(name) as string)));
      const commit = parseCommit(data);
      assert.deepEqual(serializeCommit(commit), data);
      assert.deepEqual(validateCommit(data, { strict: true }), []);
    });
  }

  test('how the unusual headers are represented', () => {
    const get = (name: string): Commit => parseCommit((cases.find((c) => c[0] === name) as [string, Buffer])[1]);
    assert.deepEqual(get('bare header key').extraHeaders, [{ key: 'x-flag', value: undefined }]);
    assert.deepEqual(get('header with empty value').extraHeaders, [{ key: 'x-empty', value: Buffer.alloc(0) }]);
    assert.deepEqual(get('continuation right after committer').extraHeaders, [{ key: '', value: Buffer.from('orphan\nlines') }]);
    assert.deepEqual(get('continuation after a bare key').extraHeaders, [
      { key: 'x-flag', value: undefined },
      { key: '', value: Buffer.from('more') },
    ]);
    const late = get('encoding after another header');
    assert.equal(late.encoding, undefined);
    assert.deepEqual(late.extraHeaders.map((h) => h.key), ['x-a', 'encoding']);
    const two = get('two encodings');
    assert.equal(two.encoding, 'A');
    assert.deepEqual(two.extraHeaders, [{ key: 'encoding', value: Buffer.from('B') }]);
    assert.equal(get('non-ASCII encoding').encoding, undefined);
    assert.equal(get('multi-line encoding').encoding, undefined);
    assert.equal(get('no empty line, no message').message, undefined);
    assert.equal(get('header-like lines in the message').message?.toString(), 'parent x\ntree y\n');
    assert.deepEqual(get('empty lines in a continuation').extraHeaders, [{ key: 'gpgsig', value: Buffer.from('a\n\n\nb') }]);
  });

  test('ids in uppercase hex, which Git accepts but never writes, read as lowercase', async () => {
    const data = commitText(`tree ${E.toUpperCase()}`, 'author A <a> 1 +0000', 'committer C <c> 1 +0000', '', 'm', '');
    const oid = repo.writeLiteral('commit', data);
    assert.equal((await fsck(repo.path, true)).get(oid), undefined);
    assert.equal(parseCommit(data).tree, E);
    assert.deepEqual(validateCommit(data, { strict: true }), []);
  });
});

describe('commit checks against git fsck', () => {
  const A = 'author A <a> 1 +0000';
  const C = 'committer C <c> 1 +0000';
  const withAuthor = (ident: string) => commitText(`tree ${E}`, `author ${ident}`, C, '', 'm', '');
  const valid = commitText(`tree ${E}`, A, C, '', 'm', '');
  const P = hashObject('commit', valid);
  const cases: [string, Buffer][] = [
    ['valid', valid],
    ['valid with parents', commitText(`tree ${E}`, `parent ${P}`, `parent ${P}`, A, C, '', 'm', '')],
    ['missing tree', commitText(A, C, '', 'm', '')],
    ['bad tree id', commitText('tree zz', A, C, '', 'm', '')],
    ['tree id with trailing space', commitText(`tree ${E} `, A, C, '', 'm', '')],
    ['bad parent id', commitText(`tree ${E}`, `parent ${P.slice(1)}`, A, C, '', 'm', '')],
    ['missing author', commitText(`tree ${E}`, C, '', 'm', '')],
    ['two authors', commitText(`tree ${E}`, A, A, C, '', 'm', '')],
    ['missing committer', commitText(`tree ${E}`, A, '', 'm', '')],
    ['parent after author', commitText(`tree ${E}`, A, `parent ${P}`, C, '', 'm', '')],
    ['missing name before email', withAuthor('<a> 1 +0000')],
    ['missing email', withAuthor('A 1 +0000')],
    ['bad name', withAuthor('A> <a> 1 +0000')],
    ['missing space before email', withAuthor('A<a> 1 +0000')],
    ['bad email', withAuthor('A <a<b> 1 +0000')],
    ['missing space before date', withAuthor('A <a>1 +0000')],
    ['no date', withAuthor('A <a>')],
    ['bad date', withAuthor('A <a> x +0000')],
    ['zero-padded date', withAuthor('A <a> 01 +0000')],
    ['zero date', withAuthor('A <a> 0 +0000')],
    ['date overflow', withAuthor('A <a> 99999999999999999999 +0000')],
    ['largest date', withAuthor('A <a> 9223372036854775807 +0000')],
    ['date just over time_t', withAuthor('A <a> 9223372036854775808 +0000')],
    ['short time zone', withAuthor('A <a> 1 +000')],
    ['time zone without sign', withAuthor('A <a> 1 0000')],
    ['long time zone', withAuthor('A <a> 1 +00000')],
    ['extra spaces before date', withAuthor('A <a>   \t 1 +0000')],
    ['bad committer', commitText(`tree ${E}`, A, 'committer C <c> 1 +0000 extra', '', 'm', '')],
    ['NUL in message', Buffer.concat([commitText(`tree ${E}`, A, C, '', 'm'), Buffer.from('\0x\n')])],
    ['NUL in a header', Buffer.concat([commitText(`tree ${E}`, A, C, 'x-h a'), Buffer.from('\0b\n\nm\n')])],
    ['unterminated header', commitText(`tree ${E}`, A, C)],
    ['empty object', Buffer.alloc(0)],
  ];
  const ids = new Map<string, string>();
  let verdicts: Awaited<ReturnType<typeof fsck>>;
  before(async () => {
    for (const [name, data] of cases) ids.set(name, repo.writeLiteral('commit', data));
    verdicts = await fsck(repo.path, true);
  });

  for (const [name, data] of cases) {
    test(`${name}: same verdict as git fsck --strict`, () => {
      const theirs = verdicts.get(ids.get(name) as string);
      const ours = validateCommit(data, { strict: true });
      if (theirs?.unparseable) {
        // Git's own reader refuses it before fsck can name a problem: ours refuses it too.
        assert.ok(ours.some((p) => p.severity === 'error'), JSON.stringify(ours));
        assert.throws(() => parseCommit(data), (e) => isPackferryError(e, ErrorCode.InvalidObject));
        return;
      }
      assert.deepEqual(ours.map((p) => `${p.severity}:${p.id}`), theirs?.graded ?? [], `ours ${JSON.stringify(ours)}`);
    });
  }

  test('parse throws for broken structure and names the problem', () => {
    const expect: [string, string][] = [
      ['missing tree', 'missingTree'],
      ['bad tree id', 'badTreeSha1'],
      ['tree id with trailing space', 'badTreeSha1'],
      ['bad parent id', 'badParentSha1'],
      ['missing author', 'missingAuthor'],
      ['two authors', 'multipleAuthors'],
      ['missing committer', 'missingCommitter'],
      ['parent after author', 'missingCommitter'],
      ['unterminated header', 'unterminatedHeader'],
      ['empty object', 'unterminatedHeader'],
    ];
    for (const [name, problem] of expect) {
      const data = (cases.find((c) => c[0] === name) as [string, Buffer])[1];
      assert.throws(
        () => parseCommit(data),
        (e) => isPackferryError(e, ErrorCode.InvalidObject) && e.details.problem === problem,
        name,
      );
    }
  });

  test('parseCommitLinks reads tree and parents as leniently as Git\'s own reader', () => {
    const get = (name: string) => (cases.find((c) => c[0] === name) as [string, Buffer])[1];
    assert.deepEqual(parseCommitLinks(get('valid with parents')), { tree: E, parents: [P, P] });
    // Git's parse_commit_buffer() does not need the identities: neither does a graph walk.
    assert.deepEqual(parseCommitLinks(get('missing author')), { tree: E, parents: [] });
    assert.deepEqual(parseCommitLinks(get('unterminated header')), { tree: E, parents: [] });
    assert.deepEqual(parseCommitLinks(commitText(`tree ${E.toUpperCase()}`, `parent ${P.toUpperCase()}`, '')), { tree: E, parents: [P] });
    const expect: [string, string][] = [
      ['missing tree', 'missingTree'],
      ['bad tree id', 'badTreeSha1'],
      ['tree id with trailing space', 'badTreeSha1'],
      ['bad parent id', 'badParentSha1'],
      ['empty object', 'missingTree'],
    ];
    for (const [name, problem] of expect) {
      assert.throws(() => parseCommitLinks(get(name)), (e) => isPackferryError(e, ErrorCode.InvalidObject) && e.details.problem === problem, name);
    }
  });

  test('fatal problems cannot be lowered by severity overrides, as in fsck_set_msg_type()', () => {
    const get = (name: string) => (cases.find((c) => c[0] === name) as [string, Buffer])[1];
    const lowered = validateCommit(get('unterminated header'), { severities: { unterminatedHeader: 'ignore' } });
    assert.deepEqual(lowered.map((p) => `${p.severity}:${p.id}`), ['error:unterminatedHeader']);
    const nul = validateCommit(get('NUL in a header'), { severities: { nulInHeader: 'warning' } });
    assert.deepEqual(nul.map((p) => `${p.severity}:${p.id}`), ['error:nulInHeader']);
    const raised = validateCommit(get('NUL in message'), { severities: { nulInCommit: 'error' } });
    assert.deepEqual(raised.map((p) => `${p.severity}:${p.id}`), ['error:nulInCommit']);
  });

  test('lenient parse reads commits with bad identities and reports them; strict parse throws', () => {
    const data = withAuthor('A <a> 01 +0000');
    const { object, problems } = parseObject('commit', data);
    assert.equal(object.type, 'commit');
    assert.deepEqual(problems.map((p) => p.id), ['zeroPaddedDate']);
    assert.throws(
      () => parseObject('commit', data, { strict: true }),
      (e) => isPackferryError(e, ErrorCode.InvalidObject) && (e.details.problems as unknown[]).length === 1,
    );
    const nul = (cases.find((c) => c[0] === 'NUL in message') as [string, Buffer])[1];
    assert.deepEqual(parseObject('commit', nul).problems.map((p) => `${p.severity}:${p.id}`), ['warning:nulInCommit']);
  });
});

describe('identities', () => {
  test('read as git log shows them, even when broken', () => {
    const idents = [
      'A U Thor <author@example.com> 1700000000 +0000',
      'No Email 5 +0000',
      'N <e',
      'N <e> notadate',
      '<e> 5 +0100',
      'N <a>b> 5 +0000',
      'N <e> 5',
      'N <e>  7   -0130',
      'N <e> 5 +01',
      'N e> 5 +0000',
      '  Spaced   Name   <x@y> 3 -0000',
      'Ünïcode Nàme <ü@example.com> 1 +1400',
    ];
    for (const ident of idents) {
      const oid = repo.writeLiteral('commit', Buffer.from(`tree ${E}\nauthor ${ident}\ncommitter C <c> 1 +0000\n\nm\n`, 'utf8'));
      const [an, ae, at] = repo.git(['log', '-1', '--format=%an%x00%ae%x00%at', oid]).split('\0');
      const parsed = parseIdentity(Buffer.from(ident));
      assert.equal(parsed.name, an, ident);
      assert.equal(parsed.email, ae, ident);
      assert.equal(parsed.timestamp, at === '' ? 0 : Number(at), ident);
      assert.deepEqual(parsed.raw, Buffer.from(ident));
    }
  });

  test('time zones: +hhmm read as minutes, -0000 kept as -0', () => {
    assert.equal(parseIdentity(Buffer.from('A <a> 1 +0130')).tzOffset, 90);
    assert.equal(parseIdentity(Buffer.from('A <a> 1 -0530')).tzOffset, -330);
    assert.ok(Object.is(parseIdentity(Buffer.from('A <a> 1 -0000')).tzOffset, -0));
    assert.equal(formatTimezone(90), '+0130');
    assert.equal(formatTimezone(-330), '-0530');
    assert.equal(formatTimezone(0), '+0000');
    assert.equal(formatTimezone(-0), '-0000');
    assert.equal(formatTimezone(14 * 60), '+1400');
    assert.throws(() => formatTimezone(100 * 60), (e) => isPackferryError(e, ErrorCode.Usage));
    assert.throws(() => formatTimezone(1.5), (e) => isPackferryError(e, ErrorCode.Usage));
  });

  test('createIdentity writes Git\'s form and refuses what would not read back', () => {
    const id = createIdentity({ name: 'A', email: 'a@b', timestamp: 1, tzOffset: -90 });
    assert.deepEqual(id, { name: 'A', email: 'a@b', timestamp: 1, tzOffset: -90, raw: Buffer.from('A <a@b> 1 -0130') });
    assert.equal(createIdentity({ name: '', email: 'x', timestamp: 0, tzOffset: 0 }).raw.toString(), '<x> 0 +0000');
    for (const bad of [{ name: 'a<b' }, { name: 'a>' }, { email: 'x\ny' }, { name: 'a\0' }, { timestamp: -1 }, { timestamp: 1.5 }, { tzOffset: 6000 }]) {
      assert.throws(() => createIdentity({ name: 'A', email: 'a', timestamp: 1, tzOffset: 0, ...bad }), (e) => isPackferryError(e, ErrorCode.Usage), JSON.stringify(bad));
    }
  });
});

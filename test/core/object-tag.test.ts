// Annotated tags: tags git wrote (of commits, trees, blobs and tags; signed)
// read and written back byte for byte; new tags accepted by git mktag; tag
// checks compared with git mktag and git fsck; ref name rules with
// git check-ref-format.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, isPackferryError } from '../../src/core/errors.js';
import {
  createIdentity,
  hashObject,
  isValidRefName,
  parseObject,
  parseTag,
  serializeTag,
  splitTagSignature,
  validateTag,
  type TagInit,
} from '../../src/core/object.js';
import { gitAsync } from '../support/git.js';
import { fakeGpgProgram, fsck, scratchRepo, type ScratchRepo } from './object-fixtures.js';

let repo: ScratchRepo;
let commit: string;
let tree: string;
let blob: string;

before(() => {
  repo = scratchRepo();
  writeFileSync(join(repo.path, 'f.txt'), 'f\n');
  repo.git(['add', 'f.txt']);
  repo.git(['commit', '-q', '-m', 'first']);
  commit = repo.git(['rev-parse', 'HEAD']);
  tree = repo.git(['rev-parse', 'HEAD^{tree}']);
  blob = repo.git(['rev-parse', 'HEAD:f.txt']);
});
after(() => repo.cleanup());

describe('tags git wrote', () => {
  const tags = new Map<string, { oid: string; objectType: string }>();
  before(() => {
    const gpg = fakeGpgProgram(repo.path);
    const make = (name: string, args: string[], objectType: string) => {
      repo.git(['tag', ...args]);
      tags.set(name, { oid: repo.git(['rev-parse', `refs/tags/${name}`]), objectType });
    };
    make('v1', ['-a', '-m', 'release 1\n\nnotes', 'v1', commit], 'commit');
    make('of-tree', ['-a', '-m', 'a tree', 'of-tree', tree], 'tree');
    make('of-blob', ['-a', '-m', 'a blob', 'of-blob', blob], 'blob');
    make('nested', ['-a', '-m', 'a tag of a tag', 'nested', 'v1'], 'tag');
    make('deep/name-ü', ['-a', '-m', 'slashes and UTF-8', 'deep/name-ü', commit], 'commit');
    repo.git(['-c', `gpg.program=${gpg}`, 'tag', '-s', '-m', 'signed release', 'signed', commit]);
    tags.set('signed', { oid: repo.git(['rev-parse', 'refs/tags/signed']), objectType: 'commit' });
  });

  test('every tag round-trips byte for byte, hashes to its id and passes strict checks', () => {
    assert.equal(tags.size, 6);
    for (const [name, { oid, objectType }] of tags) {
      const data = repo.catFile('tag', oid);
      const tag = parseTag(data);
      assert.deepEqual(serializeTag(tag), data, name);
      assert.equal(hashObject('tag', serializeTag(tag)), oid, name);
      assert.equal(tag.tag.toString(), name);
      assert.equal(tag.objectType, objectType);
      assert.deepEqual(validateTag(data, { strict: true }), [], name);
    }
  });

  test('fields agree with git for-each-ref', () => {
    for (const [name, { oid }] of tags) {
      const tag = parseTag(repo.catFile('tag', oid));
      const line = repo.git(['for-each-ref', '--format=%(*objectname)%00%(object)%00%(type)%00%(taggername)%00%(taggeremail)%00%(taggerdate:unix)', `refs/tags/${name}`]);
      const [, object, type, taggerName, taggerEmail, taggerDate] = line.split('\0');
      assert.equal(tag.object, object, name);
      assert.equal(tag.objectType, type, name);
      assert.equal(tag.tagger?.name, taggerName, name);
      assert.equal(`<${tag.tagger?.email}>`, taggerEmail, name);
      assert.equal(String(tag.tagger?.timestamp), taggerDate, name);
    }
  });

  test('a signed tag keeps its signature in the message; splitTagSignature finds it', () => {
    const data = repo.catFile('tag', tags.get('signed')?.oid as string);
    const tag = parseTag(data);
    const { payload, signature } = splitTagSignature(tag.message as Buffer);
    assert.equal(payload.toString(), 'signed release\n');
    assert.match(signature.toString(), /^-----BEGIN PGP SIGNATURE-----\n\n.*-----END PGP SIGNATURE-----\n$/s);
    // The signed payload is the whole object up to the signature, as Git verifies it.
    const v1 = parseTag(repo.catFile('tag', tags.get('v1')?.oid as string));
    assert.equal(splitTagSignature(v1.message as Buffer).signature.length, 0);
  });

  test('splitTagSignature takes the last line that opens a known signature format', () => {
    const msg = Buffer.from('text\n-----BEGIN PGP SIGNATURE-----\nnot really\n-----BEGIN SSH SIGNATURE-----\nsig\n-----END SSH SIGNATURE-----\n');
    const { payload, signature } = splitTagSignature(msg);
    assert.equal(signature.toString(), '-----BEGIN SSH SIGNATURE-----\nsig\n-----END SSH SIGNATURE-----\n');
    assert.equal(payload.length + signature.length, msg.length);
    assert.equal(splitTagSignature(Buffer.from('x -----BEGIN PGP SIGNATURE-----\n')).signature.length, 0, 'only at the start of a line');
  });
});

describe('writing new tags', () => {
  const tagger = createIdentity({ name: 'T Agger', email: 'tagger@example.com', timestamp: 1700000200, tzOffset: 120 });

  test('git mktag accepts them and computes the same id', () => {
    const inits: TagInit[] = [
      { object: commit, objectType: 'commit', tag: 'v2.0', tagger, message: 'version 2\n' },
      { object: tree, objectType: 'tree', tag: Buffer.from('tree-tag'), tagger, message: '' },
      { object: blob, objectType: 'blob', tag: 'ünï', tagger, message: 'multi\n\nparagraph\n' },
    ];
    for (const init of inits) {
      const data = serializeTag(init);
      const oid = repo.git(['mktag'], data);
      assert.equal(hashObject('tag', data), oid);
      assert.deepEqual(repo.catFile('tag', oid), data);
      const back = parseTag(data);
      assert.equal(back.object, init.object);
      assert.deepEqual(back.tagger, tagger);
    }
  });

  test('fields that cannot be written are refused with ERR_INVALID_OBJECT', () => {
    const ok: TagInit = { object: commit, objectType: 'commit', tag: 'v', tagger, message: 'm\n' };
    const bad: [string, TagInit][] = [
      ['bad object id', { ...ok, object: 'zz' }],
      ['unknown type', { ...ok, objectType: 'branch' as TagInit['objectType'] }],
      ['newline in name', { ...ok, tag: 'a\nb' }],
      ['newline in tagger', { ...ok, tagger: { ...tagger, raw: Buffer.from('T <t> 1 +0000\nx') } }],
      ['bad extra header', { ...ok, extraHeaders: [{ key: 'a b', value: undefined }] }],
    ];
    for (const [what, init] of bad) {
      assert.throws(() => serializeTag(init), (e) => isPackferryError(e, ErrorCode.InvalidObject), what);
    }
  });
});

describe('tag checks against git mktag and git fsck', () => {
  const T = 'tagger T <t> 1 +0000';
  const tagText = (...lines: string[]) => Buffer.from(lines.join('\n'), 'utf8');
  const head = () => [`object ${commit}`, 'type commit'];
  // Built lazily: `commit` is known only once the repository exists.
  const cases: [string, () => Buffer][] = [
    ['valid', () => tagText(...head(), 'tag v1', T, '', 'msg', '')],
    ['no tagger (early Git)', () => tagText(...head(), 'tag v1', '', 'msg', '')],
    ['no message, no empty line', () => tagText(...head(), 'tag v1', T, '')],
    ['empty message', () => tagText(...head(), 'tag v1', T, '', '')],
    ['NUL in message', () => Buffer.concat([tagText(...head(), 'tag v1', T, '', 'a'), Buffer.from('\0b\n')])],
    ['bad tag name a..b', () => tagText(...head(), 'tag a..b', T, '', 'msg', '')],
    ['bad tag name with space', () => tagText(...head(), 'tag a b', T, '', 'msg', '')],
    ['bad tag name x.lock', () => tagText(...head(), 'tag x.lock', T, '', 'msg', '')],
    ['empty tag name', () => tagText(...head(), 'tag ', T, '', 'msg', '')],
    ['tag name with slashes', () => tagText(...head(), 'tag a/b/c', T, '', 'msg', '')],
    ['extra header after tagger', () => tagText(...head(), 'tag v1', T, 'x-extra yes', '', 'msg', '')],
    ['bad tagger time zone', () => tagText(...head(), 'tag v1', 'tagger T <t> 1 +00', '', 'msg', '')],
    ['zero-padded tagger date', () => tagText(...head(), 'tag v1', 'tagger T <t> 01 +0000', '', 'msg', '')],
    ['bad tagger and extra header', () => tagText(...head(), 'tag v1', 'tagger T t> 1 +0000', 'x-extra yes', '', 'msg', '')],
    ['unknown type', () => tagText(`object ${commit}`, 'type commitx', 'tag v1', T, '', 'msg', '')],
    ['bad object id', () => tagText(`object ${commit.slice(2)}`, 'type commit', 'tag v1', T, '', 'msg', '')],
    ['missing object line', () => tagText('type commit', 'tag v1', T, '', 'msg', '')],
    ['missing type line', () => tagText(`object ${commit}`, 'tag v1', T, '', 'msg', '')],
    ['missing tag line', () => tagText(...head(), T, '', 'msg', '')],
    ['NUL in header', () => Buffer.concat([tagText(...head(), 'tag v'), Buffer.from('\0\n'), tagText(T, '', 'msg', '')])],
    ['unterminated header', () => tagText(...head(), 'tag v1', T)],
  ];

  let verdicts: Awaited<ReturnType<typeof fsck>>;
  const ids = new Map<string, string>();
  before(async () => {
    for (const [name, make] of cases) ids.set(name, repo.writeLiteral('tag', make()));
    verdicts = await fsck(repo.path, true);
  });

  for (const [name, make] of cases) {
    test(`${name}: git mktag and git fsck --strict agree with validateTag`, async () => {
      const data = make();
      // git mktag refuses any problem fsck reports, with extraHeaderEntry raised.
      const mktag = await gitAsync(['mktag'], { cwd: repo.path, input: data });
      const ours = validateTag(data, { strict: true, severities: { extraHeaderEntry: 'error' } });
      assert.equal(mktag.code === 0, ours.length === 0, `mktag: ${mktag.stderr} ours: ${JSON.stringify(ours)}`);

      const theirs = verdicts.get(ids.get(name) as string);
      if (theirs?.unparseable) {
        assert.throws(() => parseTag(data), (e) => isPackferryError(e, ErrorCode.InvalidObject));
        assert.ok(validateTag(data).some((p) => p.severity === 'error'));
        return;
      }
      const fsckStrict = validateTag(data, { strict: true });
      assert.deepEqual(fsckStrict.map((p) => `${p.severity}:${p.id}`), theirs?.graded ?? [], JSON.stringify(fsckStrict));
    });
  }

  test('tags git can read parse, and round-trip', () => {
    for (const name of ['valid', 'no tagger (early Git)', 'no message, no empty line', 'empty message', 'NUL in message', 'extra header after tagger', 'bad tag name a..b']) {
      const data = (cases.find((c) => c[0] === name) as [string, () => Buffer])[1]();
      assert.deepEqual(serializeTag(parseTag(data)), data, name);
    }
    const early = parseTag(tagText(...head(), 'tag v1', '', 'msg', ''));
    assert.equal(early.tagger, undefined);
    assert.equal(parseTag(tagText(...head(), 'tag v1', T, '')).message, undefined);
    assert.deepEqual(parseTag(tagText(...head(), 'tag v1', T, 'x-extra yes', '', 'msg', '')).extraHeaders, [{ key: 'x-extra', value: Buffer.from('yes') }]);
  });

  test('parse names the structural problem it throws for', () => {
    const expect: [string, string][] = [
      ['unknown type', 'badType'],
      ['bad object id', 'badObjectSha1'],
      ['missing object line', 'missingObject'],
      ['missing type line', 'missingTypeEntry'],
      ['missing tag line', 'missingTagEntry'],
      ['unterminated header', 'unterminatedHeader'],
    ];
    for (const [name, problem] of expect) {
      const data = (cases.find((c) => c[0] === name) as [string, () => Buffer])[1]();
      assert.throws(() => parseTag(data), (e) => isPackferryError(e, ErrorCode.InvalidObject) && e.details.problem === problem, name);
    }
  });

  test('a gpgsig header after the tagger is accepted as newer Git does', () => {
    // Git 2.39 counts this as an (ignored) extra header; later Git knows it.
    const data = tagText(...head(), 'tag v1', T, 'gpgsig-sha256 -----BEGIN PGP SIGNATURE-----', ' ', ' abc', ' -----END PGP SIGNATURE-----', '', 'msg', '');
    assert.deepEqual(validateTag(data, { strict: true, severities: { extraHeaderEntry: 'error' } }), []);
    const unterminated = tagText(...head(), 'tag v1', T, 'gpgsig-sha256 x', ' abc');
    assert.deepEqual(validateTag(unterminated).map((p) => p.id), ['unterminatedHeader']);
    const tag = parseTag(data);
    assert.equal(tag.extraHeaders[0].key, 'gpgsig-sha256');
    assert.deepEqual(serializeTag(tag), data);
  });

  test('lenient parseObject returns a tag with its problems', () => {
    const data = tagText(...head(), 'tag a..b', '', 'msg', '');
    const { object, problems } = parseObject('tag', data);
    assert.equal(object.type, 'tag');
    assert.deepEqual(problems.map((p) => `${p.severity}:${p.id}`), ['warning:badTagName', 'warning:missingTaggerEntry']);
    // Infos are not raised by strict, as in git fsck --strict.
    assert.equal(parseObject('tag', data, { strict: true }).problems.length, 2);
  });
});

describe('ref names (refs.c check_refname_format)', () => {
  test('agree with git check-ref-format', async () => {
    const names = [
      'refs/tags/v1.0', 'refs/tags/a/b', 'refs/tags/ü', 'refs/tags/@', 'refs/heads/main',
      'refs/tags/a..b', 'refs/tags/.a', 'refs/tags/a.', 'refs/tags/a.lock', 'refs/tags/a.lock/b', 'refs/tags/a//b',
      'refs/tags/a/', 'refs/tags/', 'refs/tags/a b', 'refs/tags/a\tb', 'refs/tags/a:b', 'refs/tags/a?', 'refs/tags/a*',
      'refs/tags/a[b', 'refs/tags/a\\b', 'refs/tags/a^b', 'refs/tags/a~1', 'refs/tags/a@{1}', 'refs/tags/a@b', 'refs/tags/a{b',
      'refs/tags/a\x7fb', 'refs/tags/a\x01b', '@', 'main', 'refs', '/refs/tags/a', 'refs/tags/.lock', 'refs/tags/-a',
    ];
    for (const name of names) {
      const res = await gitAsync(['check-ref-format', name]);
      assert.equal(isValidRefName(Buffer.from(name)), res.code === 0, JSON.stringify(name));
    }
  });
});

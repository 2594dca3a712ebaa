// The .gitmodules and .gitattributes checks (core/config-parse.ts,
// core/submodule-rules.ts, core/fsck.ts checkSpecialBlob) against the real
// git: the config parser reads what `git config --file F --list` reads
// (every variable, and where it stops), on hand-picked and generated files;
// the URL and name rules judge as `git fsck` judges generated .gitmodules
// blobs (gitmodulesUrl, gitmodulesName, gitmodulesPath, gitmodulesUpdate,
// gitmodulesParse); nothing ever throws, whatever the bytes.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { parseGitConfig } from '../../src/core/config-parse.js';
import { checkSpecialBlob, transferFsckOptions, type FsckProblem } from '../../src/core/fsck.js';
import { checkSubmoduleName, checkSubmoduleUrl, urlDecode } from '../../src/core/submodule-rules.js';
import { gitEnv, tempDir } from '../support/git.js';
import { fsck, scratchRepo, type ScratchRepo } from './object-fixtures.js';

const NUM_RUNS = Number(process.env.PACKFERRY_FUZZ_RUNS ?? 150);
const tmp = tempDir('packferry-gitmodules-');
let repo: ScratchRepo;

before(() => {
  repo = scratchRepo({ bare: true });
});

after(() => {
  repo.cleanup();
  tmp.cleanup();
});

interface Parsed {
  ok: boolean;
  entries: [string, string | null][];
}

function ours(bytes: Uint8Array): Parsed {
  const entries: [string, string | null][] = [];
  const result = parseGitConfig(bytes, (name, value) => entries.push([name, value]));
  return { ok: result.ok, entries };
}

let fileCounter = 0;

/** `git config -z --file F --list`: the variables (latin1) and whether it read the whole file. */
function theirs(bytes: Uint8Array): Parsed {
  const file = join(tmp.path, `config-${++fileCounter}`);
  writeFileSync(file, bytes);
  let out: Buffer;
  let ok = true;
  try {
    out = execFileSync('git', ['config', '-z', '--file', file, '--list'], { env: gitEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { status: number; stdout: Buffer; stderr: Buffer };
    assert.equal(e.status, 128, `git config failed oddly: ${e.stderr}`);
    assert.match(e.stderr.toString(), /bad config line \d+/);
    ok = false;
    out = e.stdout;
  }
  const entries: [string, string | null][] = [];
  const text = out.toString('latin1');
  for (const record of text.split('\0').slice(0, -1)) {
    const nl = record.indexOf('\n');
    entries.push(nl < 0 ? [record, null] : [record.slice(0, nl), record.slice(nl + 1)]);
  }
  return { ok, entries };
}

const latin1 = (s: string) => Buffer.from(s, 'latin1');

/** Pieces that matter to the config syntax (no NUL: git config prints C strings). */
const CONFIG_TOKENS = [
  '[', ']', '"', '\\', '=', ' ', '\t', '\n', '\r', '\r\n', '#', ';', '.', '-', '_', 'a', 'B', '7', '\xc3\xa9',
  '\xef\xbb\xbf', '\\n', '\\t', '\\b', '\\"', '\\\\', '\\x', '[submodule "x"]\n', '[Core]', 'url = ', 'path=', '\tkey', '"q"',
];

const configBytes = fc
  .array(fc.oneof(fc.constantFrom(...CONFIG_TOKENS), fc.string({ maxLength: 3 }).map((s) => s.replace(/\0/g, ''))), { maxLength: 40 })
  .map((parts) => latin1(parts.join('')));

/** Mostly valid files: sections (old and new style, quoted subsections with escapes) and variables with values. */
const structuredConfig = fc
  .array(
    fc.record({
      section: fc.constantFrom('submodule', 'Core', 'a.b', 'x-y', 'sub', ''),
      sub: fc.option(fc.stringMatching(/^[a-z."\\/ .\t-]{0,6}$/), { nil: undefined }),
      keys: fc.array(
        fc.record({
          key: fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,5}$/),
          sep: fc.constantFrom(' = ', '=', ' =', '\t=\t', ''),
          value: fc.stringMatching(/^[ a-z"\\;#=.\t/:%-]{0,10}$/),
          end: fc.constantFrom('\n', '\r\n', ' ; c\n', '\\\n', ''),
        }),
        { maxLength: 4 },
      ),
    }),
    { maxLength: 4 },
  )
  .map((sections) =>
    latin1(
      sections
        .map((s) => `[${s.section}${s.sub === undefined ? '' : ` "${s.sub}"`}]\n${s.keys.map((k) => `\t${k.key}${k.sep === '' ? '' : k.sep + k.value}${k.end}`).join('')}`)
        .join('\n'),
    ),
  );

describe('the config parser reads what git config reads', () => {
  it('on hand-picked files', () => {
    const cases = [
      '',
      '\xef\xbb\xbf[a]\nb = 1\n',
      '\xef\xbb[a]\n',
      'k = v\n[a "X\\"y"]\n\tKey\n\tz = "a  b"  c ; comment\n[s.Sub]x=1\n',
      '[submodule "a"]\n\turl = x \\\n y\n\tpath = "p"q"r"\n',
      '[a]\n\tx = "unterminated\n',
      '[a]\n\tx = bad \\q escape\n',
      '[a]\r\n\tx = y\r\n\tz = one\rtwo\n',
      '[a "b\n"]\n',
      '[]\n',
      '[a]x=1[b]',
      '[a]\n  1x = 2\n',
      '# comment\n; another\n[a] ; trailing\nb=c#d\n',
      '[a]\nb = "  lead"\nc = trail   \nd=\n',
      '[a "sub"] b = c\n',
      '[a .b]\n',
    ];
    for (const text of cases) assert.deepEqual(ours(latin1(text)), theirs(latin1(text)), JSON.stringify(text));
  });

  it('on generated files (fast-check)', () => {
    fc.assert(
      fc.property(fc.oneof(configBytes, structuredConfig), (bytes) => {
        assert.deepEqual(ours(bytes), theirs(bytes), JSON.stringify(bytes.toString('latin1')));
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('never throws, whatever the bytes (fast-check)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const r = ours(bytes);
        assert.equal(typeof r.ok, 'boolean');
        const options = transferFsckOptions();
        for (const kind of ['gitmodules', 'gitattributes'] as const) {
          for (const p of checkSpecialBlob(kind, 'e69de29bb2d1d6434b8b29ae775ad8c2e48c5391', { type: 'blob', size: bytes.length, data: bytes }, options)) {
            assert.match(p.id, /^git(modules|attributes)/);
          }
        }
      }),
      { numRuns: NUM_RUNS * 4 },
    );
  });
});

/** A config value that reads back as `s` (quoted; the escapes Git knows). */
function quote(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n').replace(/\t/g, '\\t')}"`;
}

describe('submodule rules', () => {
  it('refuse what Git refuses, by hand (and git fsck agrees)', async () => {
    const refused = [
      '-x',
      '--upload-pack=touch /tmp/x',
      './%0ahost=example.com',
      '../../:example.com/repo',
      '../..\\:example.com',
      'git://example.com:1234/%0a',
      'http::one.example.com',
      'https:///example.com/repo.git',
      'http://one.example.com%0a.two.example.com/',
      'https://user%0aname@example.com/',
      'ftp://example.com/a%0Ab',
    ];
    for (const url of refused) assert.equal(checkSubmoduleUrl(url), false, url);
    const accepted = ['./sub', '../sub', 'https://example.com/repo.git', 'git@example.com:repo.git', 'file:///tmp/x', '/abs/path', 'git://example.com/repo', './-dash', '%0a', 'ssh://-oProxyCommand=x/y'];
    for (const url of accepted) assert.equal(checkSubmoduleUrl(url), true, url);
    for (const name of ['', '..', '../x', 'a/../b', 'a\\..\\b', 'x/..']) assert.equal(checkSubmoduleName(name), false, name);
    for (const name of ['x', 'a/b', '...', '..a', 'a..', '.x/y']) assert.equal(checkSubmoduleName(name), true, name);
    assert.equal(urlDecode('a%0ab:c%0ad%00'), 'a%0ab:c\nd%00', 'no decoding before the first colon, nor of %00');
    const blobs = [...refused, ...accepted].map((u) => Buffer.from(`[submodule "s"]\n\turl = ${quote(u)}\n`, 'latin1'));
    const verdicts = await judged(blobs);
    assert.deepEqual(
      verdicts.map((v) => v.ids.includes('gitmodulesUrl')),
      [...refused.map(() => true), ...accepted.map(() => false)],
    );
  });

  /** Writes `.gitmodules` blobs (each named by a tree, so fsck reads them) and runs git fsck once for them all. */
  async function judged(blobs: Buffer[]): Promise<{ oid: string; ids: string[] }[]> {
    const oids = blobs.map((b) => repo.writeLiteral('blob', b));
    for (const oid of new Set(oids)) repo.git(['mktree'], `100644 blob ${oid}\t.gitmodules\n`);
    const verdicts = await fsck(repo.path, false);
    return oids.map((oid) => ({ oid, ids: [...new Set(verdicts.get(oid)?.ids ?? [])].sort() }));
  }

  function ourIds(blob: Buffer, oid: string): string[] {
    const problems: FsckProblem[] = checkSpecialBlob('gitmodules', oid, { type: 'blob', size: blob.length, data: blob }, { strict: false });
    return [...new Set(problems.map((p) => p.id))].sort();
  }


  const URL_PARTS = ['./', '../', '.\\', '..\\', ':', '/', '//', '%0a', '%0A', '%0', '%', '\n', '@', '?', '#', 'http://', 'https::', 'ftp://', 'ftps::', 'git://', '-', 'example.com', 'user:pw@', 'a', '~', ' ', '%2f', '%00'];
  const url = fc.array(fc.constantFrom(...URL_PARTS), { minLength: 1, maxLength: 7 }).map((p) => p.join(''));
  const NAME_PARTS = ['..', '.', '/', '\\', 'a', 'b', '...', ' '];
  const name = fc.array(fc.constantFrom(...NAME_PARTS), { maxLength: 6 }).map((p) => p.join(''));

  it('judge .gitmodules blobs as git fsck does (url, name, path, update; fast-check)', async () => {
    const samples = fc.sample(
      fc.record({
        name,
        url,
        path: fc.constantFrom('sub', '-sub', '--x', 'a-b'),
        update: fc.constantFrom('', 'none', 'checkout', '!rm -rf /', 'rebase', 'merge', '!', 'other'),
        broken: fc.constantFrom(false, false, false, true),
      }),
      { numRuns: NUM_RUNS * 2, seed: Number(process.env.PACKFERRY_FUZZ_SEED ?? 20260101) },
    );
    const blobs = samples.map((s, i) =>
      Buffer.from(
        `[submodule ${quote(s.name)}]\n\tpath = ${quote(s.path)}\n\turl = ${quote(s.url)}\n${s.update ? `\tupdate = ${quote(s.update)}\n` : ''}\t# sample ${i}\n${s.broken ? '[broken\n' : ''}`,
        'latin1',
      ),
    );
    for (const [i, s] of samples.entries()) {
      // The quoting round-trips: the rules see the generated strings.
      const seen = ours(blobs[i]).entries;
      assert.deepEqual(seen.find(([k]) => k.endsWith('.url'))?.[1], s.url);
    }
    const verdicts = await judged(blobs);
    const mismatches = verdicts.filter((v, i) => JSON.stringify(ourIds(blobs[i], v.oid)) !== JSON.stringify(v.ids));
    assert.deepEqual(
      mismatches.map((m) => ({ blob: blobs[verdicts.indexOf(m)].toString('latin1'), git: m.ids, packferry: ourIds(blobs[verdicts.indexOf(m)], m.oid) })),
      [],
    );
    assert.ok(verdicts.some((v) => v.ids.includes('gitmodulesUrl')) && verdicts.some((v) => v.ids.length === 0), 'the samples cover both verdicts');
  });
});

describe('.gitattributes', () => {
  it('long lines are refused as git fsck refuses them (up to a NUL)', async () => {
    const cases = [
      Buffer.from(`${'a'.repeat(2047)}\n`),
      Buffer.from(`${'a'.repeat(2048)}\n`),
      Buffer.from(`x\n${'b'.repeat(3000)}`),
      Buffer.concat([Buffer.from('x\0'), Buffer.from('c'.repeat(3000))]),
      Buffer.from(`${'d'.repeat(2048)}`),
    ];
    const oids = cases.map((b) => repo.writeLiteral('blob', b));
    for (const oid of oids) repo.git(['mktree'], `100644 blob ${oid}\t.gitattributes\n`);
    const verdicts = await fsck(repo.path, false);
    for (const [i, oid] of oids.entries()) {
      const mine = checkSpecialBlob('gitattributes', oid, { type: 'blob', size: cases[i].length, data: cases[i] }, { strict: false }).map((p) => p.id);
      assert.deepEqual(mine, [...new Set(verdicts.get(oid)?.ids ?? [])], `case ${i}`);
    }
    assert.deepEqual(
      oids.map((oid) => verdicts.get(oid)?.ids.includes('gitattributesLineLength') ?? false),
      [false, true, true, false, true],
    );
  });

  it('a non-blob, a missing or a too-large special file is reported with its id', () => {
    const o = transferFsckOptions();
    const oid = '0123456789012345678901234567890123456789';
    assert.deepEqual(checkSpecialBlob('gitmodules', oid, { type: 'tree', size: 10 }, o).map((p) => p.id), ['gitmodulesBlob']);
    assert.deepEqual(checkSpecialBlob('gitattributes', oid, undefined, o).map((p) => p.id), ['gitattributesMissing']);
    assert.deepEqual(checkSpecialBlob('gitmodules', oid, { type: 'blob', size: 2 ** 30 }, o).map((p) => p.id), ['gitmodulesLarge']);
    assert.deepEqual(checkSpecialBlob('gitattributes', oid, { type: 'blob', size: 2 ** 30 }, o).map((p) => p.id), ['gitattributesLarge']);
    assert.deepEqual(checkSpecialBlob('gitmodules', oid, { type: 'tree', size: 10 }, { ...o, skipList: new Set([oid]) }), []);
    // gitmodulesParse is only "info": a warning even when strict.
    const parse = checkSpecialBlob('gitmodules', oid, { type: 'blob', size: 3, data: Buffer.from('[x\n') }, o);
    assert.deepEqual(parse.map((p) => [p.id, p.severity]), [['gitmodulesParse', 'warning']]);
  });
});

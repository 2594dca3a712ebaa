// The `packferry` command as a user runs it: output, --json, exit codes, help.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { generateRepo, type RepoSummary } from '../support/repogen.js';
import { git, gitBuffer, tempDir } from '../support/git.js';

const bin = resolve('bin/packferry.js');

function packferry(args: string[], options: { input?: Buffer; cwd?: string } = {}) {
  const r = spawnSync(process.execPath, [bin, ...args], { input: options.input, cwd: options.cwd, maxBuffer: 1 << 28 });
  return { code: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

describe('packferry CLI: index-pack and verify-pack', () => {
  const tmp = tempDir();
  let repo: RepoSummary;
  before(async () => {
    repo = await generateRepo(join(tmp.path, 'repo.git'), { seed: 3, commits: 30, repack: true, largeFiles: 0 });
  });
  after(() => tmp.cleanup());

  test('--help lists the commands; each command has --help', () => {
    const top = packferry(['--help']);
    assert.equal(top.code, 0);
    assert.match(top.stdout, /index-pack/);
    assert.match(top.stdout, /verify-pack/);
    for (const cmd of ['index-pack', 'verify-pack']) {
      const r = packferry([cmd, '--help']);
      assert.equal(r.code, 0);
      assert.match(r.stdout, new RegExp(`usage: packferry ${cmd}`));
    }
  });

  test('unknown command and bad options are usage errors (exit 2)', () => {
    assert.equal(packferry(['frobnicate']).code, 2);
    const r = packferry(['index-pack', '--no-such-option', 'x.pack']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /usage error/);
    assert.equal(packferry(['index-pack', '--threads', 'zero', 'x.pack']).code, 2);
  });

  test('index-pack writes the idx beside the pack and prints the checksum, as git does', () => {
    const pack = join(tmp.path, 'copy.pack');
    copyFileSync(repo.pack!, pack);
    const r = packferry(['index-pack', pack]);
    assert.equal(r.code, 0, r.stderr);
    const expected = git(['index-pack', '-o', join(tmp.path, 'git.idx'), pack]);
    assert.equal(r.stdout.trim(), expected);
    assert.ok(readFileSync(join(tmp.path, 'copy.idx')).equals(readFileSync(join(tmp.path, 'git.idx'))));
    assert.equal(statSync(join(tmp.path, 'copy.idx')).mode & 0o777, 0o444, 'read-only, like Git');
    assert.equal(r.stderr, '', 'no progress when stderr is not a terminal');
  });

  test('index-pack --stdin writes the pack and prints pack<TAB>checksum; --json is machine-readable', () => {
    const bytes = readFileSync(repo.pack!);
    const out = join(tmp.path, 'in.pack');
    const r = packferry(['index-pack', '--stdin', out], { input: bytes });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^pack\t[0-9a-f]{40}\n$/);
    assert.ok(readFileSync(out).equals(bytes));
    const j = packferry(['index-pack', '--json', '-o', join(tmp.path, 'j.idx'), out]);
    const summary = JSON.parse(j.stdout);
    assert.equal(summary.ok, true);
    assert.equal(summary.objects, repo.objects.total);
    assert.equal(summary.checksum, r.stdout.trim().split('\t')[1]);
  });

  test('index-pack of a truncated pack exits 1 with the error code, and --stdin leaves no file behind', () => {
    const bytes = readFileSync(repo.pack!);
    const bad = join(tmp.path, 'truncated.pack');
    writeFileSync(bad, bytes.subarray(0, bytes.length - 100));
    const r = packferry(['index-pack', '--json', bad]);
    assert.equal(r.code, 1);
    assert.equal(JSON.parse(r.stdout).error.code, 'ERR_PACK_TRUNCATED');
    assert.match(r.stderr, /^fatal: /m);
    const out = join(tmp.path, 'never.pack');
    const s = packferry(['index-pack', '--stdin', out], { input: bytes.subarray(0, bytes.length - 100) });
    assert.equal(s.code, 1);
    assert.equal(existsSync(out), false);
  });

  test('index-pack of a missing file exits 3', () => {
    const r = packferry(['index-pack', join(tmp.path, 'nope.pack')]);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /no such file/);
  });

  test('a thin pack without --fix-thin fails with a hint; with --fix-thin it is completed', () => {
    const main = repo.head;
    const thin = gitBuffer(['pack-objects', '--thin', '--stdout', '--revs', '-q', '--delta-base-offset'], {
      cwd: repo.dir,
      input: `${main}\n^${main}~5\n`,
    });
    const plain = packferry(['index-pack', '--stdin', join(tmp.path, 'thin-a.pack')], { input: thin });
    assert.equal(plain.code, 1);
    assert.match(plain.stderr, /unresolved delta/);
    assert.match(plain.stderr, /hint: .*--fix-thin/);
    const out = join(tmp.path, 'thin-b.pack');
    const fixed = packferry(['index-pack', '--stdin', '--fix-thin', '--git-dir', repo.dir, out], { input: thin });
    assert.equal(fixed.code, 0, fixed.stderr);
    git(['verify-pack', out]);
    const hash = fixed.stdout.trim().split('\t')[1];
    assert.equal(git(['index-pack', '-o', join(tmp.path, 'thin-git.idx'), out]), hash);
    assert.ok(readFileSync(join(tmp.path, 'thin-git.idx')).equals(readFileSync(out.replace(/\.pack$/, '.idx'))));
  });

  test('verify-pack -v prints what git verify-pack -v prints; a bad index exits 1', () => {
    const r = packferry(['verify-pack', '-v', repo.pack!]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${git(['verify-pack', '-v', repo.pack!])}\n`);
    const s = packferry(['verify-pack', '-s', repo.pack!.replace(/\.pack$/, '.idx')]);
    assert.equal(s.stdout, `${git(['verify-pack', '-s', repo.pack!])}\n`);
    const pack = join(tmp.path, 'badidx.pack');
    copyFileSync(repo.pack!, pack);
    const idx = Buffer.from(readFileSync(repo.pack!.replace(/\.pack$/, '.idx')));
    idx[2000] ^= 1;
    writeFileSync(join(tmp.path, 'badidx.idx'), idx);
    const bad = packferry(['verify-pack', pack]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /bad/);
  });
});

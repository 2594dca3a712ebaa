// The README's quick start, command 1, as written: its mirror step (after
// `npm ci && npm run build`, which the test run has done) run by the shell
// in a Git repository, into a new local store. It must print Git's report,
// write nothing on a second run, and leave a store that Git clones and
// fscks with the source's refs.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { git, tempDir } from '../support/git.js';
import { makeSource, refMap } from '../support/mirror-fixtures.js';

const bin = resolve('bin/packferry.js');

/** The shell command of quick-start step 1, from after the install and build. */
function quickStartMirror(): string {
  const readme = readFileSync(resolve('README.md'), 'utf8');
  const block = /## Quick start\n\n```sh\n([\s\S]*?)```/.exec(readme);
  assert.ok(block, 'the README has a quick start block');
  const lines = block[1].split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
  assert.equal(lines.length, 2, 'exactly two commands');
  const prefix = 'npm ci && npm run build && ';
  assert.ok(lines[0].startsWith(prefix), lines[0]);
  assert.equal(lines[1], 'npm ci && npm test');
  return lines[0].slice(prefix.length);
}

describe('README quick start', () => {
  const tmp = tempDir('packferry-quick-start-');
  after(() => tmp.cleanup());

  it('mirrors the current repository into a new directory store, then finds it up to date; git clones the store', async () => {
    const source = await makeSource(join(tmp.path, 'work.git'), 5);
    const work = join(tmp.path, 'work');
    git(['clone', '-q', source.dir, work]);
    const command = quickStartMirror();
    assert.match(command, /node bin\/packferry\.js mirror \. "\$\(mktemp -d\)\/store\/packferry\.git"/);
    // The same command, with the program's absolute path and a store path this test can find again.
    const store = join(tmp.path, 'qs', 'store', 'packferry.git');
    const concrete = command.replace('node bin/packferry.js', `"${process.execPath}" "${bin}"`).replace('"$(mktemp -d)/store/packferry.git"', `"${store}"`);
    const first = spawnSync('sh', ['-c', concrete], { cwd: work, encoding: 'utf8' });
    assert.equal(first.status, 0, first.stderr);
    assert.match(first.stdout + first.stderr, /^To store:\/\/.*packferry\.git$/m);
    assert.match(first.stdout + first.stderr, /\* \[new branch\] +main -> main/);
    const second = spawnSync('sh', ['-c', concrete], { cwd: work, encoding: 'utf8' });
    assert.equal(second.status, 0, second.stderr);
    assert.match(second.stdout + second.stderr, /Everything up-to-date/);
    const clone = join(tmp.path, 'clone.git');
    git(['clone', '-q', '--mirror', store, clone]);
    git(['fsck', '--full', '--strict'], { cwd: clone });
    assert.deepEqual(refMap(clone), refMap(work), 'the branches and tags of the repository');
  });
});

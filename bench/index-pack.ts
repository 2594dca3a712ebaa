// Pack indexing: `git index-pack -o X.idx PACK` against
// `packferry index-pack -o X.idx PACK` on the same pack, in the same run,
// and both again with `--fsck-objects` (every object checked by Git's fsck
// rules: what a push or a mirror into a store costs on top of indexing).
// Both must print the pack's hash; the two .idx files are compared byte for
// byte (index v2 is fully determined by the pack, so they should be equal).
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gitEnv } from '../test/support/git.js';
import { benchCommand, compare, warmFile, type BenchContext, type BenchSuite, type SuiteResult } from './harness.js';
import { benchRepo } from './repos.js';

/** "yes", "no (...)" or "n/a (...)" for two files that should be identical. */
export function compareFiles(a: string, b: string): string {
  if (!existsSync(a) || !existsSync(b)) return `n/a (${existsSync(a) ? b : a} was not written)`;
  const x = readFileSync(a);
  const y = readFileSync(b);
  if (x.equals(y)) return 'yes';
  const n = Math.min(x.length, y.length);
  let i = 0;
  while (i < n && x[i] === y[i]) i++;
  return `no (sizes ${x.length} and ${y.length}, first difference at byte ${i})`;
}

export const indexPackSuite: BenchSuite = {
  name: 'index-pack',
  description: 'index a pack: git index-pack vs packferry index-pack',
  async run(ctx: BenchContext): Promise<SuiteResult> {
    const repo = await benchRepo(ctx);
    // Outside any repository, so git does not compare objects against an
    // object database (its collision check), and with no user config (the
    // defaults: 2 threads on this machine).
    const work = mkdtempSync(join(tmpdir(), 'packferry-bench-index-pack-'));
    try {
      const gitIdx = join(work, 'git.idx');
      const pfIdx = join(work, 'packferry.idx');
      const env = { ...gitEnv, GIT_CEILING_DIRECTORIES: tmpdir() };
      ctx.log(`index-pack: ${repo.pack} (${(repo.packBytes / 2 ** 20).toFixed(1)} MiB, ${repo.packObjects} objects), ${ctx.runs} run(s) each`);
      warmFile(repo.pack);
      const gitRow = await benchCommand('git index-pack', 'git', 'git', ['index-pack', '-o', gitIdx, repo.pack], {
        runs: ctx.runs,
        cwd: work,
        env,
        before: () => rmSync(gitIdx, { force: true }),
      });
      const pfRow = await benchCommand('packferry index-pack', 'packferry', process.execPath, [join(ctx.root, 'bin', 'packferry.js'), 'index-pack', '-o', pfIdx, repo.pack], {
        runs: ctx.runs,
        cwd: work,
        env,
        before: () => rmSync(pfIdx, { force: true }),
      });
      const gitFsckRow = await benchCommand('git index-pack --fsck-objects', 'git', 'git', ['index-pack', '--fsck-objects', '-o', gitIdx, repo.pack], {
        runs: ctx.runs,
        cwd: work,
        env,
        before: () => rmSync(gitIdx, { force: true }),
      });
      const pfFsckRow = await benchCommand(
        'packferry index-pack --fsck-objects',
        'packferry',
        process.execPath,
        [join(ctx.root, 'bin', 'packferry.js'), 'index-pack', '--fsck-objects', '-o', pfIdx, repo.pack],
        { runs: ctx.runs, cwd: work, env, before: () => rmSync(pfIdx, { force: true }) },
      );
      const checks: Record<string, string> = {};
      checks['pack hash printed'] = gitRow.ok && pfRow.ok ? (gitRow.stdout === pfRow.stdout ? `same (${gitRow.stdout})` : `DIFFERENT (git ${gitRow.stdout}, packferry ${pfRow.stdout})`) : 'n/a';
      checks['idx identical'] = gitRow.ok && pfRow.ok ? compareFiles(gitIdx, pfIdx) : `n/a (${gitRow.ok ? 'packferry' : 'git'} failed)`;
      return {
        suite: 'index-pack',
        subject: {
          repository: repo.label,
          pack: repo.pack,
          'pack size': `${(repo.packBytes / 2 ** 20).toFixed(1)} MiB`,
          objects: repo.packObjects,
        },
        rows: [gitRow, pfRow, gitFsckRow, pfFsckRow],
        comparisons: [
          compare('index-pack', gitRow, pfRow, checks),
          compare('index-pack --fsck-objects', gitFsckRow, pfFsckRow, {
            'packferry cost of the checks': pfRow.ok && pfFsckRow.ok ? `${(((pfFsckRow.wallMs - pfRow.wallMs) / pfRow.wallMs) * 100).toFixed(0)}% of its plain index-pack` : 'n/a',
            'git cost of the checks': gitRow.ok && gitFsckRow.ok ? `${(((gitFsckRow.wallMs - gitRow.wallMs) / gitRow.wallMs) * 100).toFixed(0)}% of its plain index-pack` : 'n/a',
          }),
        ],
        notes: repo.notes,
      };
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  },
};

// Mirroring: packferry mirror against Git's own recipes, on the same data in
// the same run (the targets of issue 3):
// - full mirror into an empty repository: `git clone --mirror SRC tmp &&
//   git -C tmp push --mirror DST` vs `packferry mirror SRC DST`;
// - incremental sync of 50 new commits: `git fetch --prune` + `git push
//   --mirror` from an existing local mirror vs `packferry mirror` (no local copy);
// - a no-op sync of 200 unchanged repositories: the same Git loop vs
//   `packferry mirror --batch` (one process, several at a time);
// and packferry's peak RSS during the full mirror.
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { git, gitEnv } from '../test/support/git.js';
import { generateRepo } from '../test/support/repogen.js';
import { benchCommand, compare, type BenchContext, type BenchRow, type BenchSuite, type Comparison, type SuiteResult } from './harness.js';
import { benchRepo } from './repos.js';

function refsOf(dir: string): string {
  return git(['for-each-ref', '--format=%(objectname) %(refname)', 'refs/heads', 'refs/tags'], { cwd: dir });
}

function sameRefs(a: string, b: string): string {
  return refsOf(a) === refsOf(b) ? 'yes' : 'NO';
}

/** Appends `count` commits to the default branch of a bare repository with fast-import (a small change each). */
function addCommits(repo: string, count: number): void {
  const branch = git(['symbolic-ref', 'HEAD'], { cwd: repo });
  const head = git(['rev-parse', branch], { cwd: repo });
  let stream = '';
  for (let i = 0; i < count; i++) {
    const content = `incremental change ${i}\n`.repeat(20);
    stream += `commit ${branch}\ncommitter Bench <bench@example.com> ${1800000000 + i} +0000\ndata 12\nbench ${String(i).padStart(5, '0')}\n`;
    if (i === 0) stream += `from ${head}\n`;
    stream += `M 100644 inline bench/incremental-${i % 7}.txt\ndata ${Buffer.byteLength(content)}\n${content}\n`;
  }
  git(['fast-import', '--quiet'], { cwd: repo, input: stream });
}

export const mirrorSuite: BenchSuite = {
  name: 'mirror',
  description: 'full, incremental and no-op mirror: git clone/fetch + push --mirror vs packferry mirror',
  async run(ctx: BenchContext): Promise<SuiteResult> {
    const repo = await benchRepo(ctx);
    const work = mkdtempSync(join(tmpdir(), 'packferry-bench-mirror-'));
    const env = { ...gitEnv, GIT_CEILING_DIRECTORIES: tmpdir() };
    const pf = [join(ctx.root, 'bin', 'packferry.js')];
    const rows: BenchRow[] = [];
    const comparisons: Comparison[] = [];
    try {
      const src = join(work, 'src.git');
      ctx.log(`mirror: copying ${repo.dir} as the source`);
      cpSync(repo.dir, src, { recursive: true });
      // Both sides mirror the same refs: branches and tags (a fetched real repository may carry refs/pull/*
      // and the like, which `push --mirror` would also try to push).
      const others = git(['for-each-ref', '--format=delete %(refname)'], { cwd: src })
        .split('\n')
        .filter((l) => l !== '' && !l.startsWith('delete refs/heads/') && !l.startsWith('delete refs/tags/'));
      if (others.length > 0) git(['update-ref', '--stdin'], { cwd: src, input: `${others.join('\n')}\n` });

      // Full mirror into empty repositories.
      const gitTmp = join(work, 'git-tmp.git');
      const gitDst = join(work, 'git-dst.git');
      const pfDst = join(work, 'pf-dst.git');
      const freshTargets = () => {
        rmSync(gitTmp, { recursive: true, force: true });
        for (const d of [gitDst, pfDst]) {
          rmSync(d, { recursive: true, force: true });
          git(['init', '-q', '--bare', d]);
        }
      };
      const gitFull = await benchCommand('git clone --mirror + push --mirror', 'git', 'bash', ['-c', `git clone -q --no-local --mirror "$1" "$2" && git -C "$2" push -q --mirror "$3"`, 'full', src, gitTmp, gitDst], {
        runs: ctx.runs,
        cwd: work,
        env,
        before: freshTargets,
      });
      const pfFull = await benchCommand('packferry mirror (full)', 'packferry', process.execPath, [...pf, 'mirror', '--json', src, pfDst], {
        runs: ctx.runs,
        cwd: work,
        env,
        before: () => {
          rmSync(pfDst, { recursive: true, force: true });
          git(['init', '-q', '--bare', pfDst]);
        },
      });
      rows.push(gitFull, pfFull);
      // GNU time's peak covers the git processes packferry runs (the target's index-pack); packferry reports its own.
      const ownRss = pfFull.ok ? (JSON.parse(pfFull.stdout) as { resources?: { maxRssKiB?: number } }).resources?.maxRssKiB : undefined;
      comparisons.push(
        compare('full mirror', gitFull, pfFull, {
          'target refs equal source (git)': gitFull.ok ? sameRefs(src, gitDst) : 'n/a',
          'target refs equal source (packferry)': pfFull.ok ? sameRefs(src, pfDst) : 'n/a',
          'packferry process alone, peak RSS': ownRss === undefined ? 'n/a' : `${(ownRss / 1024).toFixed(1)} MiB (goal <= 150 MiB: ${ownRss / 1024 <= 150 ? 'yes' : 'NO'})`,
        }),
      );

      // Incremental: 50 new commits upstream; Git works from its local mirror, packferry from nothing.
      const base = {
        mirror: join(work, 'inc-base-mirror.git'),
        gitDst: join(work, 'inc-base-git-dst.git'),
        pfDst: join(work, 'inc-base-pf-dst.git'),
      };
      if (gitFull.ok && pfFull.ok) {
        cpSync(gitTmp, base.mirror, { recursive: true });
        cpSync(gitDst, base.gitDst, { recursive: true });
        cpSync(pfDst, base.pfDst, { recursive: true });
        addCommits(src, 50);
        const incMirror = join(work, 'inc-mirror.git');
        const incGitDst = join(work, 'inc-git-dst.git');
        const incPfDst = join(work, 'inc-pf-dst.git');
        const gitInc = await benchCommand('git fetch --prune + push --mirror', 'git', 'bash', ['-c', `git -C "$1" fetch -q --prune && git -C "$1" push -q --mirror "$2"`, 'inc', incMirror, incGitDst], {
          runs: ctx.runs,
          cwd: work,
          env,
          before: () => {
            for (const [from, to] of [[base.mirror, incMirror], [base.gitDst, incGitDst]]) {
              rmSync(to, { recursive: true, force: true });
              cpSync(from, to, { recursive: true });
            }
          },
        });
        const pfInc = await benchCommand('packferry mirror (incremental)', 'packferry', process.execPath, [...pf, 'mirror', '-q', src, incPfDst], {
          runs: ctx.runs,
          cwd: work,
          env,
          before: () => {
            rmSync(incPfDst, { recursive: true, force: true });
            cpSync(base.pfDst, incPfDst, { recursive: true });
          },
        });
        rows.push(gitInc, pfInc);
        comparisons.push(
          compare('incremental (50 commits)', gitInc, pfInc, {
            'target refs equal source (git)': gitInc.ok ? sameRefs(src, incGitDst) : 'n/a',
            'target refs equal source (packferry)': pfInc.ok ? sameRefs(src, incPfDst) : 'n/a',
          }),
        );
      }

      // No-op sync of many small unchanged repositories.
      const count = ctx.quick ? 20 : 200;
      const small = join(work, 'noop');
      mkdirSync(small);
      const seedRepo = join(small, 'seed.git');
      await generateRepo(seedRepo, { seed: 5, commits: 12, largeFiles: 0, deepChain: 0, repack: true });
      const gitLoop: string[] = [];
      const batch: string[] = [];
      for (let i = 0; i < count; i++) {
        const s = join(small, `src-${i}.git`);
        const m = join(small, `mirror-${i}.git`);
        const g = join(small, `git-dst-${i}.git`);
        const p = join(small, `pf-dst-${i}.git`);
        for (const d of [s, m, g, p]) cpSync(seedRepo, d, { recursive: true });
        // The local mirror must fetch from its source: point its origin there, as clone --mirror does.
        git(['config', 'remote.origin.url', s], { cwd: m });
        git(['config', 'remote.origin.fetch', '+refs/*:refs/*'], { cwd: m });
        git(['config', 'remote.origin.mirror', 'true'], { cwd: m });
        gitLoop.push(`git -C ${m} fetch -q --prune && git -C ${m} push -q --mirror ${g}`);
        batch.push(`${s} ${p}`);
      }
      const loopFile = join(small, 'loop.sh');
      writeFileSync(loopFile, `set -e\n${gitLoop.join('\n')}\n`);
      const batchFile = join(small, 'batch.txt');
      writeFileSync(batchFile, `${batch.join('\n')}\n`);
      const gitNoop = await benchCommand(`git fetch + push --mirror x${count}`, 'git', 'bash', [loopFile], { runs: ctx.runs, cwd: work, env });
      const pfNoop = await benchCommand(`packferry mirror --batch x${count}`, 'packferry', process.execPath, [...pf, 'mirror', '-q', '--jobs', '8', '--batch', batchFile], {
        runs: ctx.runs,
        cwd: work,
        env,
      });
      rows.push(gitNoop, pfNoop);
      comparisons.push(compare(`no-op sync of ${count} repositories`, gitNoop, pfNoop, {}));

      return {
        suite: 'mirror',
        subject: { repository: repo.label, 'pack size': `${(repo.packBytes / 2 ** 20).toFixed(1)} MiB`, objects: repo.packObjects },
        rows,
        comparisons,
        notes: [
          'goals: full <= 0.7x, incremental <= 1.0x, no-op >= 3x faster (<= 0.33x), packferry RSS <= 150 MiB',
          'git clone runs with --no-local, as for a remote source (a local clone would hardlink the objects instead of transferring them)',
        ],
      };
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  },
};

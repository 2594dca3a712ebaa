// Mirroring into object storage (issue 4's figures), in one run against Git
// on the same data:
// - S3 requests per sync, counted by a proxy in front of a real S3-compatible
//   server (s3rver): a no-op sync and a 50-commit sync (goal <= 12 each);
// - full mirror into S3 vs `git clone --mirror` (goal <= 1.5x);
// - restore from the store into an empty bare repository vs `git push
//   --mirror` from a local clone (goal <= 1.5x);
// - peak RSS (packferry's own, reported by --json).
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { git, gitEnv } from '../test/support/git.js';
import { S3RVER_CREDENTIALS, startFaultProxy, startS3Server } from '../test/support/s3-server.js';
import { benchCommand, compare, type BenchContext, type BenchRow, type BenchSuite, type Comparison, type SuiteResult } from './harness.js';
import { benchRepo } from './repos.js';

function addCommits(repo: string, count: number): void {
  const branch = git(['symbolic-ref', 'HEAD'], { cwd: repo });
  const head = git(['rev-parse', branch], { cwd: repo });
  let stream = '';
  for (let i = 0; i < count; i++) {
    const content = `store bench change ${i}\n`.repeat(20);
    stream += `commit ${branch}\ncommitter Bench <bench@example.com> ${1800000000 + i} +0000\ndata 12\nbench ${String(i).padStart(5, '0')}\n`;
    if (i === 0) stream += `from ${head}\n`;
    stream += `M 100644 inline bench/store-${i % 7}.txt\ndata ${Buffer.byteLength(content)}\n${content}\n`;
  }
  git(['fast-import', '--quiet'], { cwd: repo, input: stream });
}

function ownRss(row: BenchRow): number | undefined {
  if (!row.ok) return undefined;
  try {
    return (JSON.parse(row.stdout) as { resources?: { maxRssKiB?: number } }).resources?.maxRssKiB;
  } catch {
    return undefined;
  }
}

function refs(dir: string): string {
  return git(['for-each-ref', '--format=%(objectname) %(refname)', 'refs/heads', 'refs/tags'], { cwd: dir });
}

export const storeSuite: BenchSuite = {
  name: 'store',
  description: 'mirror into S3 (s3rver), S3 requests per sync, restore from the store',
  async run(ctx: BenchContext): Promise<SuiteResult> {
    const repo = await benchRepo(ctx);
    const work = mkdtempSync(join(tmpdir(), 'packferry-bench-store-'));
    const s3 = await startS3Server({ buckets: ['bench'] });
    const proxy = await startFaultProxy(s3.port);
    const pf = join(ctx.root, 'bin', 'packferry.js');
    const env = {
      ...gitEnv,
      GIT_CEILING_DIRECTORIES: tmpdir(),
      AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
      AWS_REGION: 'us-east-1',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    };
    const rows: BenchRow[] = [];
    const comparisons: Comparison[] = [];
    const notes: string[] = [];
    try {
      const src = join(work, 'src.git');
      cpSync(repo.dir, src, { recursive: true });
      const others = git(['for-each-ref', '--format=delete %(refname)'], { cwd: src })
        .split('\n')
        .filter((l) => l !== '' && !l.startsWith('delete refs/heads/') && !l.startsWith('delete refs/tags/'));
      if (others.length > 0) git(['update-ref', '--stdin'], { cwd: src, input: `${others.join('\n')}\n` });

      // Timed runs talk to s3rver directly; the request-counting proxy (in this process, sharing its
      // cores) is used only for the syncs whose requests are counted.
      const mirrorArgs = (target: string, endpoint = s3.endpoint) => ['mirror', '--json', '--s3-endpoint', endpoint, src, target];

      // Full mirror into S3 vs git clone --mirror (from a "remote": --no-local).
      const gitClone = await benchCommand('git clone --mirror', 'git', 'git', ['clone', '-q', '--no-local', '--mirror', src, join(work, 'clone.git')], {
        runs: ctx.runs,
        cwd: work,
        env,
        before: () => rmSync(join(work, 'clone.git'), { recursive: true, force: true }),
      });
      const pfFull = await benchCommand('packferry mirror -> s3 (full)', 'packferry', process.execPath, [pf, ...mirrorArgs('s3://bench/mirrors/full.git')], {
        runs: ctx.runs,
        cwd: work,
        env,
        // A fresh repository each run (s3rver keeps a bucket's keys as files under its directory).
        before: () => rmSync(join(s3.directory, 'bench', 'mirrors', 'full.git'), { recursive: true, force: true }),
      });
      rows.push(gitClone, pfFull);
      const fullRss = ownRss(pfFull);
      comparisons.push(
        compare('full mirror into S3 vs git clone --mirror', gitClone, pfFull, {
          'packferry process alone, peak RSS': fullRss === undefined ? 'n/a' : `${(fullRss / 1024).toFixed(1)} MiB`,
        }),
      );

      // Requests per sync: a no-op, then 50 new commits.
      const store = 's3://bench/mirrors/incremental.git';
      await benchCommand('setup: first sync', 'packferry', process.execPath, [pf, ...mirrorArgs(store)], { runs: 1, cwd: work, env });
      proxy.clear();
      const noop = await benchCommand('packferry mirror -> s3 (no-op)', 'packferry', process.execPath, [pf, ...mirrorArgs(store, proxy.endpoint)], { runs: 1, cwd: work, env });
      const noopRequests = proxy.requests.length;
      const noopByMethod = ['GET', 'HEAD', 'PUT', 'POST', 'DELETE'].map((m) => `${m} ${proxy.count(m)}`).join(', ');
      addCommits(src, 50);
      proxy.clear();
      const inc = await benchCommand('packferry mirror -> s3 (50 commits)', 'packferry', process.execPath, [pf, ...mirrorArgs(store, proxy.endpoint)], { runs: 1, cwd: work, env });
      const incRequests = proxy.requests.length;
      const incByMethod = ['GET', 'HEAD', 'PUT', 'POST', 'DELETE'].map((m) => `${m} ${proxy.count(m)}`).join(', ');
      rows.push(noop, inc);
      notes.push(`S3 requests, no-op sync: ${noopRequests} (${noopByMethod}); goal <= 12`);
      notes.push(`S3 requests, 50-commit sync: ${incRequests} (${incByMethod}); goal <= 12`);

      // Restore: from the store into an empty bare repository vs git push --mirror from a local clone.
      const gitLocal = join(work, 'local.git');
      git(['clone', '-q', '--mirror', src, gitLocal]);
      const gitDst = join(work, 'git-restored.git');
      const pfDst = join(work, 'pf-restored.git');
      const gitPush = await benchCommand('git push --mirror (from a local clone)', 'git', 'git', ['-C', gitLocal, 'push', '-q', '--mirror', gitDst], {
        runs: ctx.runs,
        cwd: work,
        env,
        before: () => {
          rmSync(gitDst, { recursive: true, force: true });
          git(['init', '-q', '--bare', gitDst]);
        },
      });
      const pfRestore = await benchCommand('packferry mirror s3 -> bare repo', 'packferry', process.execPath, [pf, 'mirror', '--json', '--s3-endpoint', s3.endpoint, '--cache-dir', join(work, 'cache'), store, pfDst], {
        runs: ctx.runs,
        cwd: work,
        env,
        before: () => {
          rmSync(pfDst, { recursive: true, force: true });
          rmSync(join(work, 'cache'), { recursive: true, force: true });
          git(['init', '-q', '--bare', pfDst]);
        },
      });
      rows.push(gitPush, pfRestore);
      comparisons.push(
        compare('restore from the store vs git push --mirror', gitPush, pfRestore, {
          'restored refs equal source': pfRestore.ok ? (refs(pfDst) === refs(src) ? 'yes' : 'NO') : 'n/a',
          'packferry process alone, peak RSS': ownRss(pfRestore) === undefined ? 'n/a' : `${(ownRss(pfRestore)! / 1024).toFixed(1)} MiB`,
        }),
      );
      notes.push('goals: full mirror into S3 <= 1.5x git clone --mirror; restore <= 1.5x git push --mirror; requests per sync <= 12');
      return {
        suite: 'store',
        subject: { repository: repo.label, 'pack size': `${(repo.packBytes / 2 ** 20).toFixed(1)} MiB`, objects: repo.packObjects, s3: 's3rver 3.7.1 on 127.0.0.1' },
        rows,
        comparisons,
        notes,
      };
    } finally {
      await proxy.stop();
      await s3.stop();
      rmSync(work, { recursive: true, force: true });
    }
  },
};

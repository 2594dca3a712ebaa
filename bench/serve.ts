// Serving (issue 5's figures), in one run against Git on the same data:
// - clone from `packferry serve` vs from `git http-backend` behind an HTTP
//   server (goal <= 1.5x), and the same for --depth 1 and --single-branch
//   clones (no goal set);
// - push of the same repository into an empty one on each (goal <= 1.5x);
// - 50 concurrent clones from packferry serve: errors (goal 0), wall time,
//   and the server's peak RSS.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { git, gitAsync, gitEnv } from '../test/support/git.js';
import { startGitHttpServer } from '../test/support/git-http-server.js';
import { benchCommand, compare, type BenchContext, type BenchRow, type BenchSuite, type Comparison, type SuiteResult } from './harness.js';
import { benchRepo } from './repos.js';

async function startServe(pf: string, root: string, cacheDir: string): Promise<{ url: string; child: ChildProcess; stop(): Promise<void> }> {
  const child = spawn(process.execPath, [pf, 'serve', '--store', root, '--listen', '127.0.0.1:0', '--cache-dir', cacheDir, '--log-level', 'warn'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /listening on (\S+)/.exec(err);
      if (m) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`packferry serve exited with ${code}: ${err}`)));
  });
  return {
    url,
    child,
    async stop() {
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}

/** Peak resident memory of a running process (VmHWM), in MiB. */
function peakRssMiB(pid: number): number | undefined {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

export const serveSuite: BenchSuite = {
  name: 'serve',
  description: 'clone and push through packferry serve vs git http-backend; 50 concurrent clones',
  async run(ctx: BenchContext): Promise<SuiteResult> {
    const repo = await benchRepo(ctx);
    const work = mkdtempSync(join(tmpdir(), 'packferry-bench-serve-'));
    const pf = join(ctx.root, 'bin', 'packferry.js');
    const env = { ...gitEnv, GIT_CEILING_DIRECTORIES: tmpdir() };
    const rows: BenchRow[] = [];
    const comparisons: Comparison[] = [];
    const notes: string[] = [];
    let serve: Awaited<ReturnType<typeof startServe>> | undefined;
    let backend: Awaited<ReturnType<typeof startGitHttpServer>> | undefined;
    try {
      // The same repository on both servers: a bare copy for http-backend, a store for packferry.
      const gitRoot = join(work, 'git-root');
      mkdirSync(gitRoot);
      cpSync(repo.dir, join(gitRoot, 'bench.git'), { recursive: true });
      const others = git(['for-each-ref', '--format=delete %(refname)'], { cwd: join(gitRoot, 'bench.git') })
        .split('\n')
        .filter((l) => l !== '' && !l.startsWith('delete refs/heads/') && !l.startsWith('delete refs/tags/'));
      if (others.length > 0) git(['update-ref', '--stdin'], { cwd: join(gitRoot, 'bench.git'), input: `${others.join('\n')}\n` });
      git(['init', '-q', '--bare', join(gitRoot, 'empty.git')]);
      const storeRoot = join(work, 'store-root');
      ctx.log('serve: mirroring the repository into a store');
      const packferry = (args: string[]): string => {
        const r = spawnSync(process.execPath, [pf, ...args], { encoding: 'utf8' });
        if (r.status !== 0) throw new Error(`packferry ${args.join(' ')} failed: ${r.stderr}`);
        return r.stdout;
      };
      packferry(['mirror', '-q', join(gitRoot, 'bench.git'), join(storeRoot, 'bench.git')]);
      packferry(['repo', 'edit', 'bench', '--public', '--store', storeRoot]);
      packferry(['repo', 'create', 'empty', '--store', storeRoot]);
      const token = (JSON.parse(packferry(['token', 'create', 'bench', '--store', storeRoot, '--read', '--write', '--json'])) as { token: string }).token;
      serve = await startServe(pf, storeRoot, join(work, 'cache'));
      backend = await startGitHttpServer({ projectRoot: gitRoot });

      // Clone.
      const clone = (label: string, tool: string, url: string, extra: string[] = []) =>
        benchCommand(label, tool, 'git', ['clone', '-q', '--bare', ...extra, url, join(work, 'clone.git')], {
          runs: ctx.runs,
          cwd: work,
          env,
          before: () => rmSync(join(work, 'clone.git'), { recursive: true, force: true }),
        });
      const gitClone = await clone('git clone from git http-backend', 'git', `${backend.url}/bench.git`);
      const pfClone = await clone('git clone from packferry serve', 'packferry', `${serve.url}/bench.git`);
      rows.push(gitClone, pfClone);
      comparisons.push(compare('clone', gitClone, pfClone, {}));
      // The clones CI systems make: the newest commit only; one branch's whole history.
      for (const [what, extra] of [['--depth 1', ['--depth', '1']], ['--single-branch', ['--single-branch']]] as const) {
        const g = await clone(`git clone ${what} from git http-backend`, 'git', `${backend.url}/bench.git`, [...extra]);
        const p = await clone(`git clone ${what} from packferry serve`, 'packferry', `${serve.url}/bench.git`, [...extra]);
        rows.push(g, p);
        comparisons.push(compare(`clone ${what}`, g, p, {}));
      }

      // Push the whole repository into an empty one.
      const local = join(work, 'local.git');
      git(['clone', '-q', '--mirror', join(gitRoot, 'bench.git'), local]);
      const authUrl = serve.url.replace('://', `://bench:${token}@`);
      const gitPush = await benchCommand('git push to git http-backend', 'git', 'git', ['-C', local, 'push', '-q', `${backend.url}/empty.git`, 'refs/heads/*:refs/heads/*', 'refs/tags/*:refs/tags/*'], {
        runs: ctx.runs,
        cwd: work,
        env,
        before: () => {
          rmSync(join(gitRoot, 'empty.git'), { recursive: true, force: true });
          git(['init', '-q', '--bare', join(gitRoot, 'empty.git')]);
        },
      });
      const pfPush = await benchCommand('git push to packferry serve', 'packferry', 'git', ['-C', local, 'push', '-q', `${authUrl}/empty.git`, 'refs/heads/*:refs/heads/*', 'refs/tags/*:refs/tags/*'], {
        runs: ctx.runs,
        cwd: work,
        env,
        before: () => {
          rmSync(join(storeRoot, 'empty.git'), { recursive: true, force: true });
          packferry(['repo', 'create', 'empty', '--store', storeRoot]);
        },
      });
      rows.push(gitPush, pfPush);
      comparisons.push(compare('push', gitPush, pfPush, {}));

      // 50 concurrent clones.
      const n = ctx.quick ? 10 : 50;
      const started = performance.now();
      const results = await Promise.all(
        Array.from({ length: n }, (_, i) => gitAsync(['clone', '-q', '--bare', `${serve!.url}/bench.git`, join(work, `c${i}.git`)], { cwd: work })),
      );
      const wall = performance.now() - started;
      const errors = results.filter((r) => r.code !== 0);
      const rss = peakRssMiB(serve.child.pid!);
      notes.push(`${n} concurrent clones from packferry serve: ${errors.length} errors, ${(wall / 1000).toFixed(1)} s, server peak RSS ${rss === undefined ? 'n/a' : `${rss.toFixed(1)} MiB`}`);
      if (errors.length > 0) notes.push(`first error: ${errors[0].stderr.trim().split('\n').pop()}`);
      notes.push('goals: clone <= 1.5x git http-backend, push <= 1.5x, concurrent clones with 0 errors');
      return {
        suite: 'serve',
        subject: { repository: repo.label, 'pack size': `${(repo.packBytes / 2 ** 20).toFixed(1)} MiB`, objects: repo.packObjects },
        rows,
        comparisons,
        notes,
      };
    } finally {
      await serve?.stop();
      await backend?.close();
      rmSync(work, { recursive: true, force: true });
    }
  },
};

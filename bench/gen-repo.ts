// Generates a test or benchmark repository from the command line:
//
//   node dist/bench/gen-repo.js [--objects-target N | --commits N] [--seed S] [options] OUT.git
//
// With --objects-target the benchmark preset is used (bench/repos.ts:
// thousands of files, branches, merges, large files, one repacked pack);
// with --commits the generator's small defaults. Prints the summary as JSON.
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { generateRepo, makeRefDeltaPack, type RepoOptions } from '../test/support/repogen.js';
import { benchRepoOptions } from './repos.js';

const USAGE = `usage: node dist/bench/gen-repo.js [--objects-target N | --commits N] [--seed S] [options] OUT.git

  --objects-target N   commit until about N objects exist (benchmark preset)
  --commits N          make N commits (small test defaults)
  --seed S             PRNG seed (default 1); same options and seed, same ids
  --files N            files in the first commit
  --branches N         branches including main
  --large-files N      number of large files
  --large-file-size B  size in bytes of the largest one
  --deep-chain N       edits of the deep-chain file
  --no-repack          keep fast-import's pack (default with --commits)
  --repack             git repack -a -d -f into one pack (default with --objects-target)
  --depth D            repack --depth (default 50)
  --window W           repack --window (default 10)
  --ref-delta PREFIX   also write PREFIX-<hash>.pack/.idx with REF_DELTA entries`;

function int(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} wants a non-negative integer, got ${v}`);
  return n;
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        'objects-target': { type: 'string' },
        commits: { type: 'string' },
        seed: { type: 'string' },
        files: { type: 'string' },
        branches: { type: 'string' },
        'large-files': { type: 'string' },
        'large-file-size': { type: 'string' },
        'deep-chain': { type: 'string' },
        repack: { type: 'boolean' },
        'no-repack': { type: 'boolean' },
        depth: { type: 'string' },
        window: { type: 'string' },
        'ref-delta': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values: v, positionals } = parsed;
  if (v.help === true) {
    console.log(USAGE);
    return 0;
  }
  if (positionals.length !== 1) {
    console.error(`expected one output directory\n\n${USAGE}`);
    return 2;
  }
  const out = positionals[0];
  if (existsSync(out)) {
    console.error(`${out} already exists`);
    return 2;
  }
  let options: RepoOptions;
  try {
    const target = int('objects-target', v['objects-target']);
    const commits = int('commits', v.commits);
    const seed = int('seed', v.seed) ?? 1;
    options = target !== undefined ? benchRepoOptions(target, seed) : { seed };
    if (commits !== undefined) options.commits = commits;
    const set = <K extends keyof RepoOptions>(key: K, value: RepoOptions[K] | undefined): void => {
      if (value !== undefined) options[key] = value;
    };
    set('files', int('files', v.files));
    set('branches', int('branches', v.branches));
    set('largeFiles', int('large-files', v['large-files']));
    set('largeFileSize', int('large-file-size', v['large-file-size']));
    set('deepChain', int('deep-chain', v['deep-chain']));
    const depth = int('depth', v.depth);
    const window = int('window', v.window);
    if (v['no-repack'] === true) options.repack = false;
    else if (v.repack === true || depth !== undefined || window !== undefined || target !== undefined) options.repack = { depth: depth ?? 50, window: window ?? 10 };
  } catch (err) {
    console.error((err as Error).message);
    return 2;
  }
  const summary = await generateRepo(out, {
    ...options,
    progress: (p) => {
      if (process.stderr.isTTY) process.stderr.write(`\r${p.title}: ${p.done}${p.finished === true ? ', done.\n' : ''}`);
      else if (p.done % 2000 === 0 || p.finished === true) process.stderr.write(`${p.title}: ${p.done}${p.finished === true ? ', done.' : ''}\n`);
    },
  });
  const result: Record<string, unknown> = { ...summary };
  if (v['ref-delta'] !== undefined) result.refDeltaPack = await makeRefDeltaPack(summary.dir, v['ref-delta']);
  console.log(JSON.stringify(result, null, 2));
  return 0;
}

process.exitCode = await main(process.argv.slice(2));

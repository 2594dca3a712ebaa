// `npm run bench`: runs every benchmark suite and prints packferry-vs-git
// tables, or JSON with --json. Inputs are generated once and cached in
// bench/out/ (gitignored); BENCH_REPO=/path/to/repo.git benchmarks a real
// repository instead.
//
//   node dist/bench/run.js [--quick] [--json] [--runs N] [--objects N] [--only SUITE]
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { git } from '../test/support/git.js';
import { formatSuite, hasGnuTime, toJson, type BenchContext, type BenchSuite, type SuiteResult } from './harness.js';
import { indexPackSuite } from './index-pack.js';
import { largePackSuite } from './large-pack.js';
import { mirrorSuite } from './mirror.js';
import { storeSuite } from './store.js';
import { serveSuite } from './serve.js';

export const suites: BenchSuite[] = [indexPackSuite, largePackSuite, mirrorSuite, storeSuite, serveSuite];

const USAGE = `usage: node dist/bench/run.js [--quick] [--json] [--runs N] [--objects N] [--only SUITE]

  --quick       a small generated repository (5k objects) instead of 100k
  --json        print results as JSON on stdout (progress still goes to stderr)
  --runs N      runs per command; the median is reported (default 3)
  --objects N   size of the generated repository
  --only SUITE  run one suite (${suites.map((s) => s.name).join(', ')})

Environment: BENCH_REPO=/path/to/repo.git benchmarks that repository's largest pack.`;

/** Root of the checkout: dist/bench/run.js -> ../.. */
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

function positiveInt(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} wants a positive integer, got ${value}`);
  return n;
}

export async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        quick: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        runs: { type: 'string' },
        objects: { type: 'string' },
        only: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }));
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  let ctx: BenchContext;
  try {
    ctx = {
      quick: values.quick,
      runs: positiveInt('runs', values.runs) ?? 3,
      objects: positiveInt('objects', values.objects),
      outDir: join(root, 'bench', 'out'),
      root,
      log: (m) => console.error(m),
    };
  } catch (err) {
    console.error((err as Error).message);
    return 2;
  }
  const selected = values.only === undefined ? suites : suites.filter((s) => s.name === values.only);
  if (selected.length === 0) {
    console.error(`no suite named ${values.only}; suites: ${suites.map((s) => s.name).join(', ')}`);
    return 2;
  }
  if (!hasGnuTime()) ctx.log('note: /usr/bin/time (GNU time) not found; peak RSS is not measured (apt-get install time)');

  const machine = { cpus: cpus().length, node: process.version, git: git(['--version']), gnuTime: hasGnuTime() };
  if (!values.json) console.log(`machine: ${machine.cpus} cores, node ${machine.node}, ${machine.git}\n`);
  const results: SuiteResult[] = [];
  for (const suite of selected) {
    let result: SuiteResult;
    try {
      result = await suite.run(ctx);
    } catch (err) {
      result = { suite: suite.name, subject: {}, rows: [], comparisons: [], notes: [], error: err instanceof Error ? err.message : String(err) };
    }
    results.push(result);
    if (!values.json) console.log(`${formatSuite(result)}\n`);
  }
  if (values.json) console.log(toJson({ machine, quick: ctx.quick, runs: ctx.runs, suites: results }));
  // Failed packferry commands are results, not harness failures; a suite that could not run at all is.
  return results.some((r) => r.error !== undefined) ? 1 : 0;
}

process.exitCode = await main(process.argv.slice(2));

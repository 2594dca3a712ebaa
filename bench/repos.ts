// Benchmark inputs: a generated repository cached under bench/out/ (keyed on
// the generator version, size and seed), or a real one named by BENCH_REPO.
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { GENERATOR_VERSION, generateRepo, type RepoOptions, type RepoSummary } from '../test/support/repogen.js';
import type { BenchContext } from './harness.js';

/** Objects in the default benchmark repository, and in the `--quick` one. */
export const DEFAULT_OBJECTS = 100_000;
export const QUICK_OBJECTS = 5_000;
export const BENCH_SEED = 1;

/**
 * Generator options for a benchmark repository of about `objects` objects:
 * thousands of files in two directory levels, eight branches with merges,
 * three large files, a 120-step delta chain, repacked like `git gc
 * --aggressive`-lite (depth 50, window 10) into one pack.
 */
export function benchRepoOptions(objects: number, seed = BENCH_SEED): RepoOptions {
  const small = objects < 20_000;
  return {
    seed,
    objectsTarget: objects,
    files: small ? 400 : 4000,
    depth: 2,
    fanOut: 6,
    branches: 8,
    largeFiles: 3,
    largeFileSize: small ? 1 << 20 : 8 << 20,
    deepChain: 120,
    tagEvery: 50,
    changesPerCommit: 4,
    repack: { depth: 50, window: 10 },
  };
}

export interface BenchRepo {
  /** What is being measured, for the report. */
  label: string;
  dir: string;
  /** The pack the suites work on. */
  pack: string;
  packBytes: number;
  packObjects: number;
  notes: string[];
}

/** Object count from a pack's header (gitformat-pack: "PACK", version, count; network order). */
export function packObjectCount(packPath: string): number {
  const fd = openSync(packPath, 'r');
  try {
    const header = Buffer.alloc(12);
    if (readSync(fd, header, 0, 12, 0) !== 12 || header.toString('latin1', 0, 4) !== 'PACK') throw new Error(`${packPath}: not a pack file`);
    return header.readUInt32BE(8);
  } finally {
    closeSync(fd);
  }
}

/** The repository named by BENCH_REPO (its largest pack), or the cached generated one. */
export async function benchRepo(ctx: BenchContext): Promise<BenchRepo> {
  const fromEnv = process.env.BENCH_REPO;
  if (fromEnv !== undefined && fromEnv !== '') return realRepo(fromEnv);
  const objects = ctx.objects ?? (ctx.quick ? QUICK_OBJECTS : DEFAULT_OBJECTS);
  const summary = await cachedGeneratedRepo(ctx, objects);
  const pack = summary.pack;
  if (pack === undefined) throw new Error(`${summary.dir}: expected exactly one pack, found ${summary.packs.length}`);
  return {
    label: `generated (repogen v${GENERATOR_VERSION}, seed ${summary.seed}, ${summary.commits} commits, ${summary.objects.total} objects)`,
    dir: summary.dir,
    pack,
    packBytes: statSync(pack).size,
    packObjects: packObjectCount(pack),
    notes: [],
  };
}

function realRepo(path: string): BenchRepo {
  const dir = resolve(path);
  const candidates = [join(dir, 'objects', 'pack'), join(dir, '.git', 'objects', 'pack')];
  const packDir = candidates.find((d) => existsSync(d));
  if (packDir === undefined) throw new Error(`BENCH_REPO=${path}: no objects/pack directory (expected a bare repository or a work tree with .git)`);
  const packs = readdirSync(packDir)
    .filter((f) => f.endsWith('.pack'))
    .map((f) => ({ path: join(packDir, f), size: statSync(join(packDir, f)).size }))
    .sort((a, b) => b.size - a.size);
  if (packs.length === 0) throw new Error(`BENCH_REPO=${path}: no packs in ${packDir} (run git repack -a -d first)`);
  const notes: string[] = [];
  if (packs.length > 1) notes.push(`${packs.length} packs in ${packDir}; using the largest (git repack -a -d makes one)`);
  return { label: `BENCH_REPO ${dir}`, dir, pack: packs[0].path, packBytes: packs[0].size, packObjects: packObjectCount(packs[0].path), notes };
}

/**
 * Generates the benchmark repository once and reuses it: the summary is
 * written beside it last, so a run interrupted while generating leaves no
 * half-made repository that looks complete.
 */
export async function cachedGeneratedRepo(ctx: BenchContext, objects: number, seed = BENCH_SEED): Promise<RepoSummary> {
  mkdirSync(ctx.outDir, { recursive: true });
  const name = `repogen-v${GENERATOR_VERSION}-${objects}-seed${seed}`;
  const dir = join(ctx.outDir, `${name}.git`);
  const summaryFile = join(ctx.outDir, `${name}.json`);
  if (existsSync(summaryFile) && existsSync(dir)) {
    const summary = JSON.parse(readFileSync(summaryFile, 'utf8')) as RepoSummary;
    if (summary.pack !== undefined && existsSync(summary.pack)) {
      ctx.log(`using cached ${dir}`);
      return summary;
    }
  }
  rmSync(dir, { recursive: true, force: true });
  rmSync(summaryFile, { force: true });
  const tmp = join(ctx.outDir, `${name}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  ctx.log(`generating a repository of ~${objects} objects into ${dir} (cached for later runs)...`);
  const generated = await generateRepo(tmp, {
    ...benchRepoOptions(objects, seed),
    progress: (p) => {
      if (p.done % 2000 === 0 || p.finished === true) ctx.log(`  ${p.title}: ${p.done}${p.finished === true ? ', done' : ''}`);
    },
  });
  renameSync(tmp, dir);
  const summary = relocate(generated, tmp, dir);
  writeFileSync(summaryFile, `${JSON.stringify(summary, null, 2)}\n`);
  ctx.log(
    `generated ${summary.objects.total} objects (${summary.commits} commits) in ${(summary.timingsMs.total / 1000).toFixed(1)} s ` +
      `(fast-import ${(summary.timingsMs.fastImport / 1000).toFixed(1)} s, repack ${(summary.timingsMs.repack / 1000).toFixed(1)} s)`,
  );
  return summary;
}

/** The summary with paths under `from` moved to `to`. */
function relocate(s: RepoSummary, from: string, to: string): RepoSummary {
  const move = (p: string): string => (p.startsWith(from) ? to + p.slice(from.length) : p);
  const packs = s.packs.map(move);
  return { ...s, dir: move(s.dir), packs, pack: s.pack === undefined ? undefined : move(s.pack) };
}

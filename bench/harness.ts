// Benchmark harness: runs external commands under GNU time (`/usr/bin/time -v`)
// for peak memory, times them with the monotonic clock, repeats them and takes
// the median, and prints packferry-vs-git tables (or JSON).
//
// A failing command does not stop a benchmark: its row is marked failed with
// the command's own error message, so suites run even while a packferry
// command is still being written.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const GNU_TIME = '/usr/bin/time';

/** One run of one command. */
export interface Measurement {
  ok: boolean;
  exitCode: number | null;
  signal: string | null;
  /** Wall time from spawn to exit, monotonic clock. */
  wallMs: number;
  /** "Maximum resident set size" from GNU time; undefined without it. */
  maxRssKiB: number | undefined;
  userS: number | undefined;
  sysS: number | undefined;
  stdout: string;
  stderr: string;
  /** Why the run failed (exit status, signal, timeout, spawn error), with the command's last stderr line. */
  error: string | undefined;
}

export interface MeasureOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Kill the command (and its process group) after this long; default 30 minutes. */
  timeoutMs?: number;
}

const OUTPUT_LIMIT = 256 * 1024;

/** Values GNU time -v reports, by their label. */
export function parseGnuTime(text: string): { maxRssKiB?: number; userS?: number; sysS?: number; exitStatus?: number } {
  const num = (label: string): number | undefined => {
    const m = new RegExp(`^\\s*${label.replace(/[()]/g, '\\$&')}: ([0-9.]+)\\s*$`, 'm').exec(text);
    return m === null ? undefined : Number(m[1]);
  };
  return {
    maxRssKiB: num('Maximum resident set size (kbytes)'),
    userS: num('User time (seconds)'),
    sysS: num('System time (seconds)'),
    exitStatus: num('Exit status'),
  };
}

let gnuTimeChecked: boolean | undefined;
/** Whether GNU time is installed (Debian package `time`); without it RSS is not measured. */
export function hasGnuTime(): boolean {
  gnuTimeChecked ??= existsSync(GNU_TIME);
  return gnuTimeChecked;
}

/** Runs `cmd args` once and measures it. Never throws for a failing command. */
export function measure(cmd: string, args: string[], options: MeasureOptions = {}): Promise<Measurement> {
  const statsDir = mkdtempSync(join(tmpdir(), 'packferry-bench-time-'));
  const statsFile = join(statsDir, 'time.txt');
  const useTime = hasGnuTime();
  const argv = useTime ? ['-v', '-o', statsFile, cmd, ...args] : args;
  const program = useTime ? GNU_TIME : cmd;
  return new Promise((resolve) => {
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let outSize = 0;
    let errSize = 0;
    let timedOut = false;
    let spawnError: Error | undefined;
    const start = process.hrtime.bigint();
    const child = spawn(program, argv, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    child.stdout.on('data', (d: Buffer) => {
      if (outSize < OUTPUT_LIMIT) stdout.push(d);
      outSize += d.length;
    });
    child.stderr.on('data', (d: Buffer) => {
      if (errSize < OUTPUT_LIMIT) stderr.push(d);
      errSize += d.length;
    });
    const timer = setTimeout(() => {
      timedOut = true;
      // The whole process group: GNU time and the command it runs.
      if (child.pid !== undefined) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          child.kill('SIGKILL');
        }
      }
    }, options.timeoutMs ?? 30 * 60_000);
    child.on('error', (err) => {
      spawnError = err;
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const wallMs = Number(process.hrtime.bigint() - start) / 1e6;
      let stats: ReturnType<typeof parseGnuTime> = {};
      try {
        if (useTime && existsSync(statsFile)) stats = parseGnuTime(readFileSync(statsFile, 'utf8'));
      } finally {
        rmSync(statsDir, { recursive: true, force: true });
      }
      const out = Buffer.concat(stdout).toString('utf8');
      const err = Buffer.concat(stderr).toString('utf8');
      const lastErrLine = err.trim().split('\n').pop() ?? '';
      let error: string | undefined;
      if (spawnError !== undefined) error = `cannot run ${cmd}: ${spawnError.message}`;
      else if (timedOut) error = `timed out after ${options.timeoutMs ?? 30 * 60_000} ms`;
      else if (signal !== null) error = `killed by ${signal}`;
      else if (code !== 0) error = `exit ${code}${lastErrLine === '' ? '' : `: ${lastErrLine}`}`;
      resolve({
        ok: error === undefined,
        exitCode: code,
        signal,
        wallMs,
        maxRssKiB: stats.maxRssKiB,
        userS: stats.userS,
        sysS: stats.sysS,
        stdout: out,
        stderr: err,
        error,
      });
    });
  });
}

/** Reads a file once so that every measured run starts with it in the page cache. */
export function warmFile(path: string): void {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    while (readSync(fd, buf, 0, buf.length, null) > 0) {
      // discard
    }
  } finally {
    closeSync(fd);
  }
}

export function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** A command measured over several runs. */
export interface BenchRow {
  label: string;
  /** 'git' or 'packferry' (ratios are packferry / git). */
  tool: string;
  command: string;
  ok: boolean;
  runs: number;
  /** Median over the runs (NaN when the command failed). */
  wallMs: number;
  wallMsAll: number[];
  /** Median peak RSS in MiB (undefined without GNU time). */
  maxRssMiB: number | undefined;
  cpuS: number | undefined;
  /** stdout of the last run, trimmed. */
  stdout: string;
  error: string | undefined;
}

export interface BenchCommandOptions extends MeasureOptions {
  runs: number;
  /** Called before each run (e.g. to remove the previous run's output). */
  before?: () => void;
}

/** Runs a command `runs` times; stops at the first failure and marks the row failed. */
export async function benchCommand(label: string, tool: string, cmd: string, args: string[], options: BenchCommandOptions): Promise<BenchRow> {
  const results: Measurement[] = [];
  for (let i = 0; i < options.runs; i++) {
    options.before?.();
    const m = await measure(cmd, args, options);
    results.push(m);
    if (!m.ok) break;
  }
  const last = results[results.length - 1];
  const ok = results.every((r) => r.ok);
  const rss = results.map((r) => r.maxRssKiB).filter((v): v is number => v !== undefined);
  const cpu = results.map((r) => (r.userS === undefined || r.sysS === undefined ? undefined : r.userS + r.sysS)).filter((v): v is number => v !== undefined);
  return {
    label,
    tool,
    command: [cmd, ...args].map(shellQuote).join(' '),
    ok,
    runs: results.length,
    wallMs: ok ? median(results.map((r) => r.wallMs)) : Number.NaN,
    wallMsAll: results.map((r) => Math.round(r.wallMs)),
    maxRssMiB: ok && rss.length > 0 ? median(rss) / 1024 : undefined,
    cpuS: ok && cpu.length > 0 ? median(cpu) : undefined,
    stdout: last.stdout.trim(),
    error: last.error,
  };
}

function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** packferry / git for one measured pair. */
export interface Comparison {
  name: string;
  git: string;
  packferry: string;
  /** packferry wall / git wall; undefined when either failed. */
  wallRatio: number | undefined;
  gitRssMiB: number | undefined;
  packferryRssMiB: number | undefined;
  rssRatio: number | undefined;
  /** Extra checks: e.g. { "idx identical": "yes" }. */
  checks: Record<string, string>;
}

export function compare(name: string, gitRow: BenchRow, pfRow: BenchRow, checks: Record<string, string> = {}): Comparison {
  const both = gitRow.ok && pfRow.ok;
  return {
    name,
    git: gitRow.label,
    packferry: pfRow.label,
    wallRatio: both ? pfRow.wallMs / gitRow.wallMs : undefined,
    gitRssMiB: gitRow.maxRssMiB,
    packferryRssMiB: pfRow.maxRssMiB,
    rssRatio: both && gitRow.maxRssMiB !== undefined && pfRow.maxRssMiB !== undefined ? pfRow.maxRssMiB / gitRow.maxRssMiB : undefined,
    checks,
  };
}

/** What one suite reports. */
export interface SuiteResult {
  suite: string;
  /** The input: repository, pack, object count... */
  subject: Record<string, string | number>;
  rows: BenchRow[];
  comparisons: Comparison[];
  notes: string[];
  /** Set when the suite itself could not run (not when one of its commands failed). */
  error?: string;
}

export interface BenchContext {
  quick: boolean;
  runs: number;
  /** Directory for cached inputs (bench/out, gitignored). */
  outDir: string;
  /** Root of the packferry checkout (where bin/packferry.js is). */
  root: string;
  /** Object count for generated repositories, overriding the suite's default. */
  objects: number | undefined;
  /** Progress and notes; goes to stderr so `--json` output stays clean. */
  log: (message: string) => void;
}

export interface BenchSuite {
  readonly name: string;
  readonly description: string;
  run(ctx: BenchContext): Promise<SuiteResult>;
}

// ---------------------------------------------------------------------------
// Formatting.

export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  return ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`;
}

export function formatMiB(mib: number | undefined): string {
  return mib === undefined ? '-' : `${mib.toFixed(1)} MiB`;
}

function formatRatio(r: number | undefined): string {
  return r === undefined ? '-' : `${r.toFixed(2)}x`;
}

/** A plain-text table with left-aligned first column and right-aligned others. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === 0 || i === cells.length - 1 ? c.padEnd(widths[i]) : c.padStart(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export function formatSuite(r: SuiteResult): string {
  const out: string[] = [`== ${r.suite} ==`];
  for (const [k, v] of Object.entries(r.subject)) out.push(`${k}: ${v}`);
  if (r.error !== undefined) {
    out.push(`SUITE FAILED: ${r.error}`);
    return out.join('\n');
  }
  out.push('');
  out.push(
    table(
      ['command', 'wall (median)', 'runs (ms)', 'peak RSS', 'cpu', 'status'],
      r.rows.map((row) => [
        row.label,
        formatMs(row.wallMs),
        row.wallMsAll.join('/'),
        formatMiB(row.maxRssMiB),
        row.cpuS === undefined ? '-' : `${row.cpuS.toFixed(2)} s`,
        row.ok ? 'ok' : `FAILED: ${row.error ?? ''}`,
      ]),
    ),
  );
  for (const c of r.comparisons) {
    out.push('');
    out.push(`${c.name}: packferry / git wall time ${formatRatio(c.wallRatio)}; peak RSS git ${formatMiB(c.gitRssMiB)}, packferry ${formatMiB(c.packferryRssMiB)} (${formatRatio(c.rssRatio)})`);
    for (const [k, v] of Object.entries(c.checks)) out.push(`  ${k}: ${v}`);
  }
  for (const n of r.notes) out.push(`note: ${n}`);
  return out.join('\n');
}

/** JSON-safe copy (NaN becomes null). */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2);
}

// Fixtures for the mirror's acceptance tests (test/mirror/*.test.ts): small
// source repositories made by real Git, history edits on bare repositories
// (new commits, rewrites, deletions), the `packferry` command run as a user
// runs it, comparisons of `git for-each-ref` between source and target with
// `git fsck --full` on the target, and a stand-in for git-upload-pack that
// injects ref lines into its advertisement or dies in the middle of the pack.
//
// `mirrorConformance(site)` is the one suite every transport runs (file,
// smart HTTP, ssh): a `MirrorSite` says where its repositories live, how to
// name them as URLs, and how to cut a source's transfer mid-pack.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ErrorCode } from '../../src/core/errors.js';
import { mirror, type MirrorOptions, type MirrorResult } from '../../src/mirror/sync.js';
import { openTransport, type TransportOptions } from '../../src/transport/open.js';
import { git, gitEnv } from './git.js';
import { generateRepo, type RepoSummary } from './repogen.js';

export const BIN = resolve('bin/packferry.js');
export const ZERO_ID = '0'.repeat(40);
/** What a mirror looks at by default. */
export const MIRRORED = ['refs/heads/', 'refs/tags/'];

// ---------------------------------------------------------------------------
// Running the command.

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `node bin/packferry.js ARGS` without blocking the event loop (the
 * HTTP test server lives in this process). Progress is off unless asked for.
 */
export function packferry(args: string[], options: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...gitEnv, ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
    child.stdin.end(options.input ?? '');
  });
}

/** The --json report (docs/mirror.md "Output, exit codes"). */
export interface JsonUpdate {
  ref: string;
  kind: 'create' | 'update' | 'delete';
  old: string;
  new: string;
  status: 'ok' | 'rejected' | 'planned' | 'failed';
  fastForward?: boolean | null;
  attic?: string;
  reason?: string;
}
export interface JsonTarget {
  target: string;
  ok: boolean;
  error?: { code: string; message: string; hint?: string };
  pack?: { bytes: number; objects?: number };
  updates: JsonUpdate[];
  attic: { ref: string; oid: string; status: string; reason?: string }[];
  upToDate: number;
  invalidNames: string[];
}
export interface JsonReport {
  ok: boolean;
  source: string;
  sourceRefs?: number;
  sourceHead?: string;
  error?: { code: string; message: string; hint?: string };
  targets: JsonTarget[];
  resources?: { maxRssKiB?: number };
}

/** Parses --json output, failing the test with the command's output if it is not JSON. */
export function parseJson<T = JsonReport>(result: CliResult): T {
  try {
    return JSON.parse(result.stdout) as T;
  } catch {
    assert.fail(`not JSON (exit ${result.code}):\n${result.stdout}\n${result.stderr}`);
  }
}

/** Runs mirror() in this process with transports opened as the CLI opens them. */
export async function mirrorUrls(source: string, targets: string[], transport: TransportOptions, options: MirrorOptions = {}): Promise<MirrorResult> {
  const src = await openTransport(source, transport);
  const dst = await Promise.all(targets.map((t) => openTransport(t, transport)));
  return mirror(src, dst, options);
}

// ---------------------------------------------------------------------------
// Repositories.

/** `git for-each-ref` as "<oid> <name>" lines sorted by name, restricted to `prefixes` (all refs when empty). */
export function refLines(dir: string, prefixes: string[] = MIRRORED): string[] {
  const text = git(['for-each-ref', '--format=%(objectname) %(refname)', ...prefixes.map((p) => p.replace(/\/$/, ''))], { cwd: dir });
  return text === '' ? [] : text.split('\n').sort((a, b) => cmp(a.slice(41), b.slice(41)));
}

/** Name -> oid of `refLines`. */
export function refMap(dir: string, prefixes: string[] = MIRRORED): Map<string, string> {
  return new Map(refLines(dir, prefixes).map((l) => [l.slice(41), l.slice(0, 40)]));
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function fsck(dir: string): void {
  try {
    execFileSync('git', ['fsck', '--full', '--no-progress'], { cwd: dir, env: gitEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stdout?: Buffer; stderr?: Buffer };
    assert.fail(`git fsck --full failed in ${dir}:\n${e.stdout?.toString() ?? ''}${e.stderr?.toString() ?? ''}`);
  }
}

/** The target's mirrored refs equal the source's, and the target passes `git fsck --full`. */
export function assertMirrored(source: string, target: string, prefixes: string[] = MIRRORED): void {
  assert.deepEqual(refLines(target, prefixes), refLines(source, prefixes), `refs of ${target} differ from ${source}`);
  fsck(target);
}

/**
 * After an interrupted sync: every target ref has its value from before the
 * run or the source's (a ref missing now was either deleted upstream or absent
 * before), and fsck is clean.
 */
export function assertOldOrNew(target: string, before: Map<string, string>, source: Map<string, string>): void {
  const now = refMap(target);
  for (const [name, oid] of now) {
    assert.ok(oid === before.get(name) || oid === source.get(name), `${name} is ${oid}: neither its old value ${before.get(name)} nor the new ${source.get(name)}`);
  }
  for (const name of before.keys()) if (!now.has(name)) assert.ok(!source.has(name), `${name} vanished but the source still has it`);
  fsck(target);
}

/** Every ref of a repository and what HEAD says, for "nothing changed" checks. */
export function snapshot(dir: string): string {
  return [git(['symbolic-ref', 'HEAD'], { cwd: dir }), ...refLines(dir, [])].join('\n');
}

export function initBare(dir: string): string {
  git(['init', '-q', '--bare', '-b', 'main', dir]);
  return dir;
}

export function copyRepo(from: string, to: string): string {
  cpSync(from, to, { recursive: true });
  return to;
}

/** Small but complete: branches (one non-ASCII), merges, tags of commits, trees, blobs and tags. */
export const SMALL_REPO = { commits: 14, files: 8, branches: 3, largeFiles: 0, deepChain: 6, mergeEvery: 5, tagEvery: 6 } as const;

export async function makeSource(dir: string, seed = 1): Promise<RepoSummary> {
  return generateRepo(dir, { seed, ...SMALL_REPO });
}

/** Deterministic incompressible bytes (SHA-256 in counter mode). */
export function noise(size: number, seed: string): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0, off = 0; off < size; i++, off += 32) createHash('sha256').update(`${seed}:${i}`).digest().copy(out, off);
  return out;
}

let commitCounter = 0;

/**
 * Makes a commit in a bare repository: `parent`'s tree with `files` added or
 * replaced at the top level, and points refs/heads/<branch> at it. `parent`
 * defaults to the branch's tip; null makes a root commit.
 */
export function commitFiles(repo: string, branch: string, files: Record<string, string | Buffer>, options: { parent?: string | null } = {}): string {
  const parent = options.parent === undefined ? git(['rev-parse', `refs/heads/${branch}`], { cwd: repo }) : options.parent;
  const entries = new Map<string, string>();
  if (parent !== null) {
    for (const entry of git(['ls-tree', '-z', parent], { cwd: repo }).split('\0')) {
      if (entry === '') continue;
      const tab = entry.indexOf('\t');
      entries.set(entry.slice(tab + 1), entry.slice(0, tab));
    }
  }
  for (const [name, content] of Object.entries(files)) {
    entries.set(name, `100644 blob ${git(['hash-object', '-w', '--stdin'], { cwd: repo, input: content })}`);
  }
  const tree = git(['mktree', '-z'], { cwd: repo, input: [...entries].map(([name, entry]) => `${entry}\t${name}\0`).join('') });
  const n = ++commitCounter;
  const args = ['commit-tree', tree, '-m', `test commit ${n} on ${branch}`];
  if (parent !== null) args.push('-p', parent);
  const oid = git(args, { cwd: repo });
  git(['update-ref', `refs/heads/${branch}`, oid], { cwd: repo });
  return oid;
}

/** Rewrites a branch's history: a new commit on top of its grandparent, so the old tip is no ancestor. */
export function rewriteBranch(repo: string, branch: string): { old: string; new: string } {
  const old = git(['rev-parse', `refs/heads/${branch}`], { cwd: repo });
  const base = git(['rev-parse', `${old}~2`], { cwd: repo });
  return { old, new: commitFiles(repo, branch, { 'rewritten.txt': `rewritten ${branch} ${++commitCounter}\n` }, { parent: base }) };
}

export function updateRef(repo: string, name: string, oid: string): void {
  git(['update-ref', name, oid], { cwd: repo });
}

export function deleteRef(repo: string, name: string): void {
  git(['update-ref', '-d', name], { cwd: repo });
}

// ---------------------------------------------------------------------------
// A stand-in for git-upload-pack: runs the real one and edits what it says.

/**
 * A Node program that runs a git command with its stdout piped through: with
 * `inject`, pkt-lines are added before the flush that ends the ref listing
 * (v0/v1: the advertisement's flush; v2: the ls-refs response's, the second
 * flush); with `cutAfterPackBytes`, it writes that many bytes from the pack
 * signature on, then kills git and exits 1 (a transfer cut mid-pack).
 */
const FAKE_UPLOAD_PACK = String.raw`
import { spawn } from 'node:child_process';
const [configText, program, ...args] = process.argv.slice(2);
const config = JSON.parse(Buffer.from(configText, 'base64').toString('utf8'));
const child = spawn(program, args, { stdio: ['inherit', 'pipe', 'inherit'] });
const injectAt = (process.env.GIT_PROTOCOL || '').includes('version=2') ? 2 : 1;
const SIGNATURE = Buffer.from('PACK\0\0\0', 'latin1');
let injecting = Array.isArray(config.inject) && config.inject.length > 0;
let flushes = 0;
let pending = Buffer.alloc(0);
let written = 0;
let cutoff = Infinity;
let window = Buffer.alloc(0);
let stopped = false;

function pkt(line) {
  const data = Buffer.from(line + '\n', 'utf8');
  return Buffer.concat([Buffer.from((data.length + 4).toString(16).padStart(4, '0'), 'latin1'), data]);
}

function emit(buf) {
  if (stopped || buf.length === 0) return;
  if (config.cutAfterPackBytes !== undefined && cutoff === Infinity) {
    const joined = Buffer.concat([window, buf]);
    const at = joined.indexOf(SIGNATURE);
    if (at >= 0) cutoff = written - window.length + at + config.cutAfterPackBytes;
    else window = joined.subarray(Math.max(0, joined.length - SIGNATURE.length + 1));
  }
  if (written + buf.length >= cutoff) {
    stopped = true;
    process.stdout.write(buf.subarray(0, cutoff - written), () => {
      child.kill('SIGKILL');
      process.exit(1);
    });
    return;
  }
  written += buf.length;
  if (!process.stdout.write(buf)) {
    child.stdout.pause();
    process.stdout.once('drain', () => child.stdout.resume());
  }
}

child.stdout.on('data', (chunk) => {
  if (!injecting) return emit(chunk);
  pending = Buffer.concat([pending, chunk]);
  let pos = 0;
  while (injecting && pending.length - pos >= 4) {
    const len = parseInt(pending.toString('latin1', pos, pos + 4), 16);
    if (len === 0 && ++flushes === injectAt) {
      emit(pending.subarray(0, pos));
      emit(Buffer.concat(config.inject.map(pkt)));
      pending = pending.subarray(pos);
      pos = 0;
      injecting = false;
      break;
    }
    if (len < 4) pos += 4;
    else if (pending.length - pos >= len) pos += len;
    else break;
  }
  if (!injecting) {
    emit(pending);
    pending = Buffer.alloc(0);
  } else {
    emit(pending.subarray(0, pos));
    pending = pending.subarray(pos);
  }
});
child.on('close', (code, signal) => {
  if (stopped) return;
  emit(pending);
  process.exitCode = code ?? (signal ? 1 : 0);
});
`;

export interface FakeUploadPackConfig {
  /** Ref lines ("<oid> <name>") to add to the ref listing. */
  inject?: string[];
  /** Die after this many bytes counted from the pack signature. */
  cutAfterPackBytes?: number;
}

export interface FakeGit {
  /** A directory with a `git` wrapper: put it first on PATH. */
  readonly binDir: string;
  /** Environment for a CLI run whose local git-upload-pack behaves as `config` says (other git commands are untouched). */
  env(config: FakeUploadPackConfig): NodeJS.ProcessEnv;
  /** A shell command line to use as the remote upload-pack program (ssh's `uploadPack`). */
  uploadPackCommand(config: FakeUploadPackConfig): string;
}

function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** Writes the stand-in and a PATH wrapper for `git` into `dir`. */
export function installFakeGit(dir: string): FakeGit {
  mkdirSync(dir, { recursive: true });
  const script = join(dir, 'fake-upload-pack.mjs');
  writeFileSync(script, FAKE_UPLOAD_PACK);
  const realGit = execFileSync('sh', ['-c', 'command -v git'], { encoding: 'utf8' }).trim();
  const binDir = join(dir, 'bin');
  mkdirSync(binDir, { recursive: true });
  const wrapper = join(binDir, 'git');
  writeFileSync(
    wrapper,
    [
      '#!/bin/sh',
      'if [ "$1" = upload-pack ] && [ -n "$PACKFERRY_TEST_FAKE_UPLOAD_PACK" ]; then',
      `  exec ${shellQuote(process.execPath)} ${shellQuote(script)} "$PACKFERRY_TEST_FAKE_UPLOAD_PACK" ${shellQuote(realGit)} "$@"`,
      'fi',
      `exec ${shellQuote(realGit)} "$@"`,
      '',
    ].join('\n'),
  );
  chmodSync(wrapper, 0o755);
  const encode = (config: FakeUploadPackConfig) => Buffer.from(JSON.stringify(config)).toString('base64');
  return {
    binDir,
    env: (config) => ({ PATH: `${binDir}:${process.env.PATH ?? '/usr/bin:/bin'}`, PACKFERRY_TEST_FAKE_UPLOAD_PACK: encode(config) }),
    uploadPackCommand: (config) => [process.execPath, script, encode(config), realGit, 'upload-pack'].map(shellQuote).join(' '),
  };
}

// ---------------------------------------------------------------------------
// The suite every transport runs.

export interface MirrorSite {
  /** "file", "http", "ssh". */
  name: string;
  /** A directory this site serves repositories from. */
  root(): string;
  /** The URL of a repository under root(). */
  url(path: string): string;
  /** CLI options the transport needs (ssh keys). */
  cliArgs(): string[];
  /** Environment for CLI runs (GIT_SSH_COMMAND). */
  cliEnv?(): NodeJS.ProcessEnv;
  /** The same, for mirror() in this process. */
  transportOptions(): TransportOptions;
  /**
   * Runs a mirror of `source` to `targets` whose source transfer dies after
   * about `bytes` bytes of pack; returns what the run reported.
   */
  mirrorWithCutSource(source: string, targets: string[], bytes: number): Promise<{ ok: boolean; message: string }>;
  /** Tests left to the other transports (their logic is above the transport): 'abort', 'target-dies'. */
  skip?: ('abort' | 'target-dies')[];
}

/** A source that has moved on from what the target holds: new commits (one with 512 KiB of noise), a new tag, a deleted branch. */
function advance(source: string, summary: RepoSummary, label: string): void {
  commitFiles(source, 'main', { [`big-${label}.bin`]: noise(512 * 1024, label), 'notes.txt': `advanced ${label}\n` });
  const feature = summary.branches.find((b) => b !== 'main' && /^[\x20-\x7e]+$/.test(b)) as string;
  commitFiles(source, feature, { 'feature.txt': `feature work ${label}\n` });
  updateRef(source, `refs/tags/new-${label}`, git(['rev-parse', 'refs/heads/main'], { cwd: source }));
}

/** The acceptance tests of `packferry mirror` over one transport. */
export function mirrorConformance(site: MirrorSite): void {
  let counter = 0;
  const path = (label: string) => join(site.root(), `${label}-${++counter}.git`);
  const run = (args: string[]) => packferry(['mirror', '-q', ...site.cliArgs(), ...args], { env: site.cliEnv?.() });
  /** A source and, optionally, a target that is a copy of it (in sync). */
  async function pair(label: string, seed = 1): Promise<{ source: string; target: string; summary: RepoSummary }> {
    const source = path(`${label}-src`);
    const summary = await makeSource(source, seed);
    return { source, target: copyRepo(source, path(`${label}-dst`)), summary };
  }

  // The tests use repositories of their own: two at a time keeps both cores busy while one waits on a process or the network.
  describe(`mirror over ${site.name}`, { concurrency: 2 }, () => {
    it('full sync into an empty target, then an incremental sync sends only the new objects', async () => {
      const source = path('full-src');
      const summary = await makeSource(source);
      const target = initBare(path('full-dst'));
      const first = await run(['--json', site.url(source), site.url(target)]);
      assert.equal(first.code, 0, first.stdout + first.stderr);
      const r1 = parseJson(first);
      assert.equal(r1.ok, true);
      assert.equal(r1.sourceRefs, Object.keys(summary.refs).length);
      assert.equal(r1.sourceHead, 'refs/heads/main');
      assert.equal(r1.targets.length, 1);
      const t1 = r1.targets[0];
      assert.equal(t1.updates.length, Object.keys(summary.refs).length);
      assert.ok(t1.updates.every((u) => u.kind === 'create' && u.status === 'ok' && u.old === ZERO_ID));
      assert.equal(t1.pack?.objects, summary.objects.total, 'the first pack holds every object');
      assertMirrored(source, target);

      commitFiles(source, 'main', { 'incremental.txt': 'one more line\n' });
      const second = await run(['--json', site.url(source), site.url(target)]);
      assert.equal(second.code, 0, second.stdout + second.stderr);
      const t2 = parseJson(second).targets[0];
      assert.deepEqual(
        t2.updates.map((u) => [u.ref, u.kind, u.status, u.fastForward]),
        [['refs/heads/main', 'update', 'ok', true]],
      );
      assert.equal(t2.pack?.objects, 3, 'a commit, its root tree and one blob');
      assert.ok((t2.pack?.bytes ?? Infinity) * 10 < (t1.pack?.bytes ?? 0), `second pack ${t2.pack?.bytes} B vs first ${t1.pack?.bytes} B`);
      assertMirrored(source, target);
    });

    it('history rewritten upstream is reported as a forced update and the target matches', async () => {
      const { source, target, summary } = await pair('forced');
      const rewritten = rewriteBranch(source, 'main');
      const feature = summary.branches.find((b) => b !== 'main') as string;
      const ffOld = git(['rev-parse', `refs/heads/${feature}`], { cwd: source });
      const ffNew = commitFiles(source, feature, { 'ff.txt': 'fast-forward\n' });
      const r = await run([site.url(source), site.url(target)]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const lines = r.stdout.split('\n');
      assert.ok(lines.includes(` + ${rewritten.old.slice(0, 7)}...${rewritten.new.slice(0, 7)} main -> main (forced update)`), r.stdout);
      assert.ok(lines.includes(`   ${ffOld.slice(0, 7)}..${ffNew.slice(0, 7)}`.padEnd(20) + ` ${feature} -> ${feature}`), r.stdout);
      assertMirrored(source, target);
    });

    it('refs deleted upstream are kept with --no-prune, and pruned by default', async () => {
      const { source, target, summary } = await pair('prune');
      const feature = summary.branches.find((b) => b !== 'main') as string;
      deleteRef(source, `refs/heads/${feature}`);
      deleteRef(source, 'refs/tags/latest');
      const kept = await run(['--json', '--no-prune', site.url(source), site.url(target)]);
      assert.equal(kept.code, 0, kept.stdout + kept.stderr);
      assert.deepEqual(parseJson(kept).targets[0].updates, []);
      assert.equal(refMap(target).get(`refs/heads/${feature}`), summary.refs[`refs/heads/${feature}`]);
      assert.equal(refMap(target).get('refs/tags/latest'), summary.refs['refs/tags/latest']);

      const pruned = await run(['--json', site.url(source), site.url(target)]);
      assert.equal(pruned.code, 0, pruned.stdout + pruned.stderr);
      assert.deepEqual(
        parseJson(pruned).targets[0].updates.map((u) => [u.ref, u.kind, u.status, u.new]),
        [
          [`refs/heads/${feature}`, 'delete', 'ok', ZERO_ID],
          ['refs/tags/latest', 'delete', 'ok', ZERO_ID],
        ],
      );
      assertMirrored(source, target);
    });

    it('--safe keeps the tips of a rewound branch and a deleted tag under refs/packferry/attic/ and reports them', async () => {
      const { source, target, summary } = await pair('safe');
      const oldMain = summary.refs['refs/heads/main'];
      const rewound = git(['rev-parse', 'refs/heads/main~1'], { cwd: source });
      updateRef(source, 'refs/heads/main', rewound);
      const oldRelease = summary.refs['refs/tags/release'];
      deleteRef(source, 'refs/tags/release');
      const feature = summary.branches.find((b) => b !== 'main') as string;
      commitFiles(source, feature, { 'safe.txt': 'a fast-forward keeps nothing\n' });

      const r = await run(['--json', '--safe', site.url(source), site.url(target)]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const t = parseJson(r).targets[0];
      const mainAttic = `refs/packferry/attic/heads/main/${oldMain}`;
      const tagAttic = `refs/packferry/attic/tags/release/${oldRelease}`;
      assert.deepEqual(
        t.attic.map((a) => [a.ref, a.oid, a.status]).sort(),
        [
          [mainAttic, oldMain, 'ok'],
          [tagAttic, oldRelease, 'ok'],
        ],
      );
      const byRef = new Map(t.updates.map((u) => [u.ref, u]));
      assert.equal(byRef.get('refs/heads/main')?.fastForward, false);
      assert.equal(byRef.get('refs/heads/main')?.attic, mainAttic);
      assert.equal(byRef.get('refs/tags/release')?.attic, tagAttic);
      assert.equal(byRef.get(`refs/heads/${feature}`)?.fastForward, true);
      assert.equal(byRef.get(`refs/heads/${feature}`)?.attic, undefined);
      assertMirrored(source, target);
      assert.deepEqual(refLines(target, ['refs/packferry/']), [`${oldMain} ${mainAttic}`, `${oldRelease} ${tagAttic}`]);
    });

    it('--include/--exclude: exclude wins, and target refs outside the filters are never touched', async () => {
      const { source, target, summary } = await pair('filter');
      const main = summary.refs['refs/heads/main'];
      const older = git(['rev-parse', 'refs/heads/main~3'], { cwd: source });
      // Target-only refs: outside the filters (keep, notes, main, an excluded tag) and inside (feature/gone).
      updateRef(target, 'refs/heads/keep', older);
      updateRef(target, 'refs/notes/x', older);
      updateRef(target, 'refs/heads/main', older);
      updateRef(target, 'refs/tags/tree-tag', older);
      updateRef(target, 'refs/heads/feature/gone', older);
      const untouched = ['refs/heads/keep', 'refs/notes/x', 'refs/heads/main', 'refs/tags/tree-tag'].map((n) => `${older} ${n}`);
      for (const b of summary.branches.filter((x) => x !== 'main')) commitFiles(source, b, { 'filtered.txt': `on ${b}\n` });
      commitFiles(source, 'main', { 'not-mirrored.txt': 'main is not included\n' });

      const r = await run([
        '--json',
        '--include',
        'refs/heads/feature/*',
        '--include',
        'refs/tags/*',
        '--exclude',
        'refs/tags/*-tag',
        site.url(source),
        site.url(target),
      ]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const touched = parseJson(r)
        .targets[0].updates.map((u) => u.ref)
        .sort();
      assert.deepEqual(touched, [...summary.branches.filter((b) => b !== 'main').map((b) => `refs/heads/${b}`), 'refs/heads/feature/gone'].sort());
      const now = refLines(target, []);
      for (const line of untouched) assert.ok(now.includes(line), `${line} was changed: ${now.join('\n')}`);
      const mirrored = (dir: string) => refLines(dir, []).filter((l) => /^refs\/heads\/feature\/|^refs\/tags\/(?!.*-tag$)/.test(l.slice(41)));
      assert.deepEqual(mirrored(target), mirrored(source));
      assert.ok(!now.some((l) => l.endsWith(' refs/heads/feature/gone')), 'a target ref inside the filters and gone upstream is pruned');
      assert.notEqual(refMap(source).get('refs/heads/main'), main);
      fsck(target);
    });

    it('--dry-run changes nothing and lists the plan', async () => {
      const { source, target, summary } = await pair('dry');
      advance(source, summary, 'dry');
      deleteRef(source, 'refs/tags/latest');
      const unicode = summary.branches.find((b) => !/^[\x20-\x7e]+$/.test(b)) as string;
      const rewritten = rewriteBranch(source, unicode);
      const before = snapshot(target);
      const objectsBefore = git(['count-objects', '-v'], { cwd: target });
      const r = await run(['--dry-run', site.url(source), site.url(target)]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.equal(snapshot(target), before);
      assert.equal(git(['count-objects', '-v'], { cwd: target }), objectsBefore);
      assert.match(r.stdout, /^ \* \[new tag\] +new-dry -> new-dry$/m);
      assert.match(r.stdout, /^ - \[deleted\] +latest$/m);
      assert.match(r.stdout, /^ {3}[0-9a-f]{7}\.\.[0-9a-f]{7} +main -> main$/m);
      assert.ok(r.stdout.includes(` + ${rewritten.old.slice(0, 7)}...${rewritten.new.slice(0, 7)} ${unicode} -> ${unicode} (forced update)\n`), r.stdout);
      assert.match(r.stdout, /^\(dry run: nothing was changed\)$/m);
      // With --safe, the plan also names the tips that would be kept.
      const json = parseJson(await run(['--dry-run', '--safe', '--json', site.url(source), site.url(target)]));
      const t = json.targets[0];
      assert.ok(t.updates.length >= 4 && t.updates.every((u) => u.status === 'planned'), JSON.stringify(t.updates));
      assert.deepEqual(
        t.attic.map((a) => [a.ref, a.status]).sort(),
        [
          [`refs/packferry/attic/heads/${unicode}/${rewritten.old}`, 'planned'],
          [`refs/packferry/attic/tags/latest/${summary.refs['refs/tags/latest']}`, 'planned'],
        ].sort(),
      );
      assert.equal(t.pack, undefined);
      assert.equal(snapshot(target), before);
    });

    it('a source transfer killed mid-pack leaves every target ref old or new and fsck clean; the next sync completes', async () => {
      const { source, target, summary } = await pair('cut');
      const second = initBare(path('cut-dst2'));
      const before = refMap(target);
      advance(source, summary, 'cut');
      const outcome = await site.mirrorWithCutSource(source, [target, second], 20_000);
      assert.equal(outcome.ok, false, 'the run reports the failure');
      assertOldOrNew(target, before, refMap(source));
      assertOldOrNew(second, new Map(), refMap(source));
      const r = await run([site.url(source), site.url(target), site.url(second)]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assertMirrored(source, target);
      assertMirrored(source, second);
    });

    // Sites that leave a case out (ssh: each session costs ~0.4 s) have it covered by the file and HTTP sites.
    if (!site.skip?.includes('abort')) it('an abort (AbortSignal) in the middle of the pack stops the run; refs are old or new and the next sync completes', async () => {
      const { source, target, summary } = await pair('abort');
      const before = refMap(target);
      advance(source, summary, 'abort');
      const controller = new AbortController();
      let chunks = 0;
      const result = await mirrorUrls(site.url(source), [site.url(target)], site.transportOptions(), {
        signal: controller.signal,
        onEvent: (e) => {
          if (e.type === 'pack-progress' && ++chunks === 2) controller.abort();
        },
      });
      assert.equal(chunks >= 2, true, 'the pack arrived in several pieces');
      assert.equal(result.ok, false);
      assert.equal(result.targets[0].error?.code, ErrorCode.Aborted, result.targets[0].error?.message);
      assertOldOrNew(target, before, refMap(source));
      const again = await mirrorUrls(site.url(source), [site.url(target)], site.transportOptions());
      assert.equal(again.ok, true, again.targets[0]?.error?.message);
      assertMirrored(source, target);
    });

    it('several targets in one run each get their own pack', async () => {
      const { source, target: behind, summary } = await pair('multi');
      const empty = initBare(path('multi-empty'));
      commitFiles(source, 'main', { 'multi.txt': 'for the target that is behind\n' });
      const inSync = copyRepo(source, path('multi-insync'));
      const r = await run(['--json', site.url(source), site.url(empty), site.url(behind), site.url(inSync)]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const [e, b, s] = parseJson(r).targets;
      assert.equal(e.pack?.objects, summary.objects.total + 3);
      assert.equal(b.pack?.objects, 3);
      assert.equal(s.pack, undefined, 'nothing to send to a target that is up to date');
      assert.deepEqual(s.updates, []);
      for (const t of [empty, behind, inSync]) assertMirrored(source, t);
    });

    // Regression: the first target stopped reading the pack half-way, and the
    // second target's fetch read the rest of that pack from the shared source
    // session as its answer ("protocol error: a line is not valid UTF-8").
    if (!site.skip?.includes('target-dies')) it('a target whose receive-pack dies mid-pack fails alone: the next target still gets its pack', async () => {
      const { source, summary } = await pair('dies');
      // Bigger than every pipe and buffer between the source and the dying target.
      commitFiles(source, 'main', { 'dies.bin': noise(2 * 1024 * 1024, 'dies') });
      const dying = initBare(path('dies-dst'));
      // index-pack stops reading at this size: receive-pack answers "unpack ... failed" without reading the rest.
      git(['config', 'receive.maxInputSize', '4096'], { cwd: dying });
      const healthy = initBare(path('dies-ok'));
      const r = await run(['--json', site.url(source), site.url(dying), site.url(healthy)]);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      const [d, h] = parseJson(r).targets;
      assert.equal(d.ok, false);
      assert.deepEqual(refLines(dying), []);
      assert.equal(h.ok, true, JSON.stringify(h.error ?? h.updates.filter((u) => u.status !== 'ok')));
      assert.equal(h.pack?.objects, summary.objects.total + 3);
      assertMirrored(source, healthy);
    });

    // Regression: upload-pack v0/v1 serves one fetch per connection; the second
    // target's fetch (and --safe's commits-first fetch, and the fast-forward
    // checks) failed with "the remote end hung up unexpectedly".
    it('--protocol 0: a v0 source works like v2, for several targets, with forced updates and --safe', async () => {
      const { source, target: behind, summary } = await pair('v0');
      const empty = initBare(path('v0-empty'));
      const rewritten = rewriteBranch(source, 'main');
      const feature = summary.branches.find((b) => b !== 'main') as string;
      commitFiles(source, feature, { 'v0.txt': 'fast-forward\n' });
      const r = await run(['--json', '--safe', '--protocol', '0', site.url(source), site.url(empty), site.url(behind)]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const report = parseJson(r);
      assert.equal(report.ok, true, JSON.stringify(report.targets.map((t) => t.error)));
      assert.deepEqual(
        report.targets[1].updates.map((u) => [u.ref, u.fastForward]),
        [
          [`refs/heads/${feature}`, true],
          ['refs/heads/main', false],
        ],
      );
      assert.deepEqual(
        report.targets[1].attic.map((a) => [a.ref, a.status]),
        [[`refs/packferry/attic/heads/main/${rewritten.old}`, 'ok']],
      );
      assertMirrored(source, empty);
      assertMirrored(source, behind);
    });
  });
}

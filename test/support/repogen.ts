// A deterministic, seeded generator of Git repositories for tests and
// benchmarks, built on `git fast-import`.
//
// The generator keeps a small model of every branch (path -> file entry) in
// memory, decides each commit's changes with a seeded PRNG, and streams the
// fast-import commands to `git fast-import` with backpressure, so a repository
// of any size costs only the model's memory. Identities and timestamps are
// fixed functions of the commit number: the same options and seed give the same
// object ids on any machine and any Git version.
//
// What a generated repository contains (all on by default, sizes adjustable):
// - `main` plus feature branches (one with a non-ASCII name) that fork from
//   `main`, are merged back with non-trivial two-parent merges (the merge takes
//   the branch's changes and adds a resolution edit of its own), and re-fork;
// - text files edited line by line (inserts, deletions, replacements), binary
//   files (random bytes with NULs) edited in place, additions, deletions,
//   renames, mode changes, a few large files (1-8 MiB) each edited once;
// - a "deep chain" file changed by one fixed-width line per `main` commit, so a
//   repack with --depth=50 makes delta chains dozens of links long;
// - non-ASCII (UTF-8) file and directory names, empty files, a symlink
//   (mode 120000), an executable (mode 100755);
// - lightweight tags, annotated tags of commits, an annotated tag of a blob
//   that no tree contains, an annotated tag of a tree, and a tag of a tag.
//
// `git fsck --full --strict` passes on every generated repository.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Writable } from 'node:stream';
import type { ProgressSink } from '../../src/core/progress.js';
import { git, gitAsync, gitEnv } from './git.js';

/** Bumped whenever the same options and seed would give different objects (benchmarks key their cache on it). */
export const GENERATOR_VERSION = 1;

export interface RepackOptions {
  /** `--depth` (longest delta chain); default 50. */
  depth?: number;
  /** `--window`; default 10. */
  window?: number;
  /** `--threads`; default: Git's own (one per core). */
  threads?: number;
}

export interface RepoOptions {
  /** PRNG seed; default 1. */
  seed?: number;
  /** Commits to make (merges included), not counting the final tag objects. Default 60 unless `objectsTarget` is set. */
  commits?: number;
  /** Keep committing until about this many objects exist (an estimate made while generating; the summary has the real count). */
  objectsTarget?: number;
  /** Branches including `main`; default 4. */
  branches?: number;
  /** Files in the first commit (not counting the special files); default 40. */
  files?: number;
  /** Directory nesting below the root; default 3. */
  depth?: number;
  /** Subdirectories per directory; default 3. */
  fanOut?: number;
  /** Share of ordinary files that are binary; default 0.1. */
  binaryShare?: number;
  /** Number of large files; default 1. */
  largeFiles?: number;
  /** Size of the largest large file in bytes (the others are smaller steps of it); default 1 MiB. */
  largeFileSize?: number;
  /** Changes made to the deep-chain file, one per `main` commit; default 40. 0 leaves the file out. */
  deepChain?: number;
  /** Every n-th commit merges a feature branch into `main` (when one has unmerged work); default 10. 0 disables merges. */
  mergeEvery?: number;
  /** Every n-th `main` commit gets an annotated tag, and half-way between a lightweight one; default 20. */
  tagEvery?: number;
  /** Most files changed by one ordinary commit; default 3. */
  changesPerCommit?: number;
  /** Non-ASCII file, directory and branch names; default true. */
  unicode?: boolean;
  /** Finish with `git repack -a -d -f` (true: depth 50, window 10); default false. */
  repack?: boolean | RepackOptions;
  /** Finish with `git pack-refs --all`; default false (fast-import writes loose refs). */
  packRefs?: boolean;
  /** Progress while generating ("Generating commits"). */
  progress?: ProgressSink;
  signal?: AbortSignal;
}

export interface ObjectCounts {
  commit: number;
  tree: number;
  blob: number;
  tag: number;
  total: number;
}

export interface RepoSummary {
  /** Absolute path of the bare repository. */
  dir: string;
  seed: number;
  commits: number;
  merges: number;
  /** Counted by `git cat-file --batch-all-objects`. */
  objects: ObjectCounts;
  /** The generator's running estimate of `objects.total` (what `objectsTarget` was compared to). */
  estimatedObjects: number;
  /** Every ref (name -> object id), sorted by name; includes tags. */
  refs: Record<string, string>;
  /** Id of `refs/heads/main`. */
  head: string;
  branches: string[];
  /** Absolute paths of the repository's pack files. */
  packs: string[];
  /** The pack, when there is exactly one. */
  pack: string | undefined;
  looseObjects: number;
  /** Paths (on `main`) of the special files. */
  paths: {
    symlink: string;
    executable: string;
    empty: string[];
    deepChain: string | undefined;
    large: string[];
    binary: string[];
    unicode: string[];
  };
  tags: {
    annotated: string[];
    lightweight: string[];
    /** Annotated tag of a blob that is in no tree. */
    ofBlob: string;
    /** Annotated tag of `main`'s root tree. */
    ofTree: string;
    /** Annotated tag whose object is another annotated tag. */
    ofTag: string;
  };
  timingsMs: { fastImport: number; repack: number; total: number };
}

// ---------------------------------------------------------------------------
// Seeded PRNG (mulberry32): small, fast, and the same on every platform.

export class Prng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform 32-bit unsigned integer. */
  u32(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform float in [0, 1). */
  float(): number {
    return this.u32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.float() * n);
  }

  /** Uniform integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  /** `n` random bytes. */
  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    let i = 0;
    for (; i + 4 <= n; i += 4) out.writeUInt32LE(this.u32(), i);
    for (; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }

  /** `n` lowercase hex digits. */
  hex(n: number): string {
    let s = '';
    while (s.length < n) s += this.u32().toString(16).padStart(8, '0');
    return s.slice(0, n);
  }
}

// ---------------------------------------------------------------------------
// Vocabulary, people and clocks.

const WORDS = (
  'alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa ' +
  'quebec romeo sierra tango uniform victor whiskey xray yankee zulu pack index object tree blob commit ' +
  'tag ref branch merge delta chain offset hash store layer mirror fetch push clone serve stream buffer ' +
  'reader writer cache table count limit error value result option config parse encode decode inflate ' +
  'deflate window depth base target source header footer checksum verify update remove insert replace ' +
  'const let return if else for while function async await import export class interface type new this'
).split(' ');
const UNICODE_WORDS = ['café', 'naïve', 'über', 'façade', 'smörgåsbord', 'データ', '数据', 'данные', 'λόγος', 'ñandú'];
const DIR_WORDS = ['src', 'lib', 'docs', 'test', 'tools', 'core', 'util', 'net', 'ui', 'api', 'data', 'misc'];
const UNICODE_DIRS = ['données', '文档', 'Übersicht'];
const EXTENSIONS = ['ts', 'js', 'md', 'txt', 'c', 'h', 'py', 'json'];
const BINARY_EXTENSIONS = ['png', 'bin', 'dat', 'gz'];
const VERBS = ['Fix', 'Add', 'Update', 'Refactor', 'Remove', 'Improve', 'Document', 'Rename', 'Tune', 'Test'];

interface Person {
  readonly name: string;
  readonly email: string;
  readonly tz: string;
}

const PEOPLE: readonly Person[] = [
  { name: 'A U Thor', email: 'author@example.com', tz: '+0000' },
  { name: 'Zoë Ñúñez', email: 'zoe@example.org', tz: '+0100' },
  { name: '山田 太郎', email: 'taro@example.jp', tz: '+0900' },
  { name: 'Ола Нордман', email: 'ola@example.net', tz: '+0300' },
  { name: 'Dev Patel', email: 'dev@example.in', tz: '+0530' },
  { name: 'Sam Smith', email: 'sam@example.com', tz: '-0700' },
];
const COMMITTER: Person = { name: 'C O Mitter', email: 'committer@example.com', tz: '+0000' };
/** 2023-11-14T22:13:20Z; commit n is made about n hours later. */
const BASE_TIME = 1_700_000_000;

// ---------------------------------------------------------------------------
// The model: what each branch's tree holds.

type Mode = '100644' | '100755' | '120000';

/** A file as committed; immutable once emitted (edits make a new entry). */
interface Entry {
  readonly mode: Mode;
  readonly kind: 'text' | 'binary' | 'symlink' | 'large' | 'chain';
  /** Text and chain files: lines without their newline. */
  readonly lines?: readonly string[];
  /** Binary and large files, symlink targets. */
  readonly data?: Buffer;
  /** fast-import mark of the blob. */
  readonly mark: number;
}

/** A branch's files: every path, plus the editable ones in an array for O(1) random choice. */
class FileSet {
  readonly all = new Map<string, Entry>();
  private readonly editable: string[] = [];
  private readonly position = new Map<string, number>();

  clone(): FileSet {
    const copy = new FileSet();
    for (const [k, v] of this.all) copy.all.set(k, v);
    for (const p of this.editable) copy.addEditable(p);
    return copy;
  }

  get size(): number {
    return this.editable.length;
  }

  set(path: string, entry: Entry, editable: boolean): void {
    this.all.set(path, entry);
    if (editable && !this.position.has(path)) this.addEditable(path);
  }

  isEditable(path: string): boolean {
    return this.position.has(path);
  }

  delete(path: string): void {
    this.all.delete(path);
    const i = this.position.get(path);
    if (i === undefined) return;
    const last = this.editable.pop() as string;
    this.position.delete(path);
    if (last !== path) {
      this.editable[i] = last;
      this.position.set(last, i);
    }
  }

  randomEditable(rng: Prng): string | undefined {
    return this.editable.length === 0 ? undefined : this.editable[rng.int(this.editable.length)];
  }

  private addEditable(path: string): void {
    this.position.set(path, this.editable.length);
    this.editable.push(path);
  }
}

interface Branch {
  readonly name: string;
  readonly ref: string;
  files: FileSet;
  /** Mark of the tip commit; undefined before the branch's first commit. */
  tip: number | undefined;
  /** Paths changed since the branch forked from (or was last merged into) `main`. */
  changed: Set<string>;
  /** Mark of the `main` commit the branch forked from. */
  base: number | undefined;
  commitsSinceFork: number;
}

/** One change to a branch, as fast-import file commands. */
type Change =
  | { op: 'M'; path: string; entry: Entry }
  | { op: 'D'; path: string }
  | { op: 'R'; from: string; to: string };

// ---------------------------------------------------------------------------
// Streaming to fast-import with backpressure.

class CommandStream {
  private parts: Buffer[] = [];
  private size = 0;
  bytes = 0;

  constructor(
    private readonly out: Writable,
    /** Rejects if the reader goes away; raced against 'drain'. */
    private readonly exitedEarly: Promise<unknown>,
  ) {}

  text(s: string): void {
    this.buffer(Buffer.from(s, 'utf8'));
  }

  buffer(b: Buffer): void {
    this.parts.push(b);
    this.size += b.length;
    this.bytes += b.length;
  }

  /** `data <n>` followed by the bytes. */
  data(b: Buffer): void {
    this.text(`data ${b.length}\n`);
    this.buffer(b);
    this.text('\n');
  }

  /** Writes what is buffered once it is large (or always with `force`), waiting while the pipe is full. */
  async flush(force = false): Promise<void> {
    if (this.size === 0 || (!force && this.size < 1 << 20)) return;
    const chunk = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.size);
    this.parts = [];
    this.size = 0;
    if (!this.out.write(chunk)) {
      await Promise.race([once(this.out, 'drain'), this.exitedEarly]);
    }
  }
}

/** C-style quoting for fast-import paths; UTF-8 passes through unescaped. */
function quotePath(path: string): string {
  return `"${path.replace(/[\\"]/g, (c) => `\\${c}`).replace(/\n/g, '\\n')}"`;
}

function ident(p: Person, time: number): string {
  return `${p.name} <${p.email}> ${time} ${p.tz}`;
}

// ---------------------------------------------------------------------------
// The generator.

interface Resolved {
  seed: number;
  commits: number;
  objectsTarget: number;
  branches: number;
  files: number;
  depth: number;
  fanOut: number;
  binaryShare: number;
  largeFiles: number;
  largeFileSize: number;
  deepChain: number;
  mergeEvery: number;
  tagEvery: number;
  changesPerCommit: number;
  unicode: boolean;
}

function resolveOptions(o: RepoOptions): Resolved {
  const r: Resolved = {
    seed: o.seed ?? 1,
    commits: o.commits ?? (o.objectsTarget !== undefined ? Number.POSITIVE_INFINITY : 60),
    objectsTarget: o.objectsTarget ?? Number.POSITIVE_INFINITY,
    branches: o.branches ?? 4,
    files: o.files ?? 40,
    depth: o.depth ?? 3,
    fanOut: o.fanOut ?? 3,
    binaryShare: o.binaryShare ?? 0.1,
    largeFiles: o.largeFiles ?? 1,
    largeFileSize: o.largeFileSize ?? 1 << 20,
    deepChain: o.deepChain ?? 40,
    mergeEvery: o.mergeEvery ?? 10,
    tagEvery: o.tagEvery ?? 20,
    changesPerCommit: o.changesPerCommit ?? 3,
    unicode: o.unicode ?? true,
  };
  for (const [k, v] of Object.entries(r)) {
    if (typeof v === 'number' && (Number.isNaN(v) || v < 0)) throw new RangeError(`repogen: option ${k} must be >= 0 (got ${v})`);
  }
  if (r.branches < 1) throw new RangeError('repogen: branches must be >= 1 (main)');
  if (r.binaryShare > 1) throw new RangeError('repogen: binaryShare must be in [0, 1]');
  if (r.changesPerCommit < 1) throw new RangeError('repogen: changesPerCommit must be >= 1');
  return r;
}

class Generator {
  private readonly rng: Prng;
  private mark = 0;
  private commitCount = 0;
  private mainCommits = 0;
  private mergeCount = 0;
  private fileCounter = 0;
  private estimate = 0;
  private chainEdits = 0;
  private readonly dirs: string[] = [];
  private readonly branches: Branch[] = [];
  private readonly pendingLargeEdits: string[] = [];
  readonly annotated: string[] = [];
  readonly lightweight: string[] = [];
  /** Mark of each annotated tag, by name. */
  private readonly tagMarks = new Map<string, number>();
  readonly paths: RepoSummary['paths'] = {
    symlink: 'link-to-readme',
    executable: 'scripts/build.sh',
    empty: [],
    deepChain: undefined,
    large: [],
    binary: [],
    unicode: [],
  };

  constructor(
    private readonly o: Resolved,
    private readonly out: CommandStream,
  ) {
    this.rng = new Prng(o.seed);
    this.makeDirs();
    const names = ['main'];
    for (let i = 1; i < o.branches; i++) {
      names.push(o.unicode && i === 2 ? 'feature/ünïcødé-分支' : `feature/${WORDS[(o.seed + i * 7) % WORDS.length]}-${i}`);
    }
    for (const name of names) {
      this.branches.push({ name, ref: `refs/heads/${name}`, files: new FileSet(), tip: undefined, changed: new Set(), base: undefined, commitsSinceFork: 0 });
    }
  }

  get main(): Branch {
    return this.branches[0];
  }

  get branchNames(): string[] {
    return this.branches.map((b) => b.name);
  }

  get stats(): { commits: number; merges: number; estimate: number } {
    return { commits: this.commitCount, merges: this.mergeCount, estimate: this.estimate };
  }

  // -- structure ------------------------------------------------------------

  private makeDirs(): void {
    this.dirs.push('');
    let level = [''];
    for (let d = 0; d < this.o.depth; d++) {
      const next: string[] = [];
      for (const parent of level) {
        for (let i = 0; i < this.o.fanOut; i++) {
          const useUnicode = this.o.unicode && d === 0 && i === this.o.fanOut - 1;
          const base = useUnicode ? UNICODE_DIRS[0] : DIR_WORDS[(d * 5 + i) % DIR_WORDS.length];
          const name = d === 0 && (useUnicode || i < DIR_WORDS.length) ? base : `${base}${i}`;
          const dir = parent === '' ? name : `${parent}/${name}`;
          next.push(dir);
          this.dirs.push(dir);
        }
      }
      level = next;
    }
  }

  private newPath(binary: boolean): string {
    const dir = this.rng.pick(this.dirs);
    const n = this.fileCounter++;
    let stem = `${this.rng.pick(WORDS)}-${n}`;
    if (this.o.unicode && this.rng.chance(0.05)) stem = `${this.rng.pick(UNICODE_WORDS)}-${n}`;
    const ext = binary ? this.rng.pick(BINARY_EXTENSIONS) : this.rng.pick(EXTENSIONS);
    const name = `${stem}.${ext}`;
    return dir === '' ? name : `${dir}/${name}`;
  }

  // -- content --------------------------------------------------------------

  private line(): string {
    const n = this.rng.range(1, 12);
    const words: string[] = [];
    for (let i = 0; i < n; i++) {
      words.push(this.o.unicode && this.rng.chance(0.01) ? this.rng.pick(UNICODE_WORDS) : this.rng.pick(WORDS));
    }
    const indent = ['', '', '  ', '    ', '\t'][this.rng.int(5)];
    return indent + words.join(' ');
  }

  private textLines(): string[] {
    // Log-uniform sizes, 2 to 255 lines (integer arithmetic only, so every
    // platform draws the same numbers).
    const k = this.rng.range(1, 7);
    const count = this.rng.range(1 << k, (2 << k) - 1);
    const lines: string[] = [];
    for (let i = 0; i < count; i++) lines.push(this.line());
    return lines;
  }

  private chainLine(i: number): string {
    return `${String(i).padStart(4, '0')} ${this.rng.hex(59)}`;
  }

  /** Emits a blob command and returns the entry naming it. */
  private blob(kind: Entry['kind'], mode: Mode, content: { lines?: string[]; data?: Buffer }): Entry {
    const mark = ++this.mark;
    const bytes = content.lines !== undefined ? Buffer.from(content.lines.length === 0 ? '' : `${content.lines.join('\n')}\n`, 'utf8') : (content.data as Buffer);
    this.out.text(`blob\nmark :${mark}\n`);
    this.out.data(bytes);
    this.estimate++;
    return { mode, kind, lines: content.lines, data: content.data, mark };
  }

  private newTextFile(mode: Mode = '100644'): Entry {
    return this.blob('text', mode, { lines: this.textLines() });
  }

  private newBinaryFile(): Entry {
    const k = this.rng.range(8, 13); // 256 B to 16 KiB
    const size = this.rng.range(1 << k, (2 << k) - 1);
    const data = this.rng.bytes(size);
    data[this.rng.int(size)] = 0; // always at least one NUL, as Git's binary detection expects
    return this.blob('binary', '100644', { data });
  }

  private largeContent(index: number): Buffer {
    const size = Math.max(4096, Math.floor((this.o.largeFileSize * (index + 1)) / this.o.largeFiles));
    if (index % 2 === 0) return this.rng.bytes(size); // incompressible
    const parts: string[] = [];
    let length = 0;
    for (let n = 0; length < size; n++) {
      const l = `${n} ${this.line()}\n`;
      parts.push(l);
      length += Buffer.byteLength(l);
    }
    return Buffer.from(parts.join(''), 'utf8').subarray(0, size);
  }

  /** A small edit of an existing entry: a new blob that deltas well against the old one. */
  private edit(e: Entry): Entry {
    switch (e.kind) {
      case 'text': {
        const lines = [...(e.lines as string[])];
        if (lines.length > 0 && lines[lines.length - 1].startsWith('// rev ')) lines.pop();
        const edits = this.rng.range(1, 3);
        for (let i = 0; i < edits; i++) {
          const at = this.rng.int(lines.length + 1);
          const r = this.rng.float();
          if (r < 0.45 || lines.length < 2) lines.splice(at, 0, this.line());
          else if (r < 0.65) lines.splice(Math.min(at, lines.length - 1), 1);
          else lines[Math.min(at, lines.length - 1)] = this.line();
        }
        // A last line naming the version keeps every version distinct (no
        // accidental reverts to an earlier blob).
        lines.push(`// rev ${this.mark + 1}`);
        return this.blob('text', e.mode, { lines });
      }
      case 'binary':
      case 'large': {
        const data = Buffer.from(e.data as Buffer);
        const patches = this.rng.range(1, 4);
        for (let i = 0; i < patches; i++) {
          const len = Math.min(data.length, this.rng.range(1, 64));
          this.rng.bytes(len).copy(data, this.rng.int(data.length - len + 1));
        }
        data.writeUInt32LE(this.mark + 1, 0);
        return this.blob(e.kind, e.mode, { data });
      }
      case 'chain': {
        // One fixed-width line replaced and one short line appended: each
        // version is a little larger than the one before, so `repack` (which
        // sorts by size, largest first) meets them newest first and deltas
        // each against its successor, one link further down the chain.
        const lines = [...(e.lines as string[])];
        const at = this.rng.int(200);
        lines[at] = this.chainLine(at);
        lines.push(`step ${lines.length - 199}`);
        return this.blob('chain', e.mode, { lines });
      }
      case 'symlink':
        return this.blob('symlink', e.mode, { data: Buffer.from(`${(e.data as Buffer).toString()}.old`) });
    }
  }

  // -- commits ----------------------------------------------------------------

  /** The first commit on `main`: the initial files and every special file. */
  initialCommit(): void {
    const files = this.main.files;
    const changes: Change[] = [];
    const add = (path: string, entry: Entry, editable: boolean): void => {
      files.set(path, entry, editable);
      changes.push({ op: 'M', path, entry });
    };
    add('README.md', this.blob('text', '100644', { lines: ['# Generated repository', '', `seed ${this.o.seed}`, ...this.textLines()] }), false);
    add(this.paths.symlink, this.blob('symlink', '120000', { data: Buffer.from('README.md') }), false);
    add(this.paths.executable, this.blob('text', '100755', { lines: ['#!/bin/sh', 'set -eu', 'echo build'] }), false);
    for (const p of ['empty.txt', 'data/.keep']) {
      this.paths.empty.push(p);
      add(p, this.blob('text', '100644', { lines: [] }), false);
    }
    if (this.o.unicode) {
      for (const p of ['i18n/café-ñ/übersicht-日本語.txt', 'i18n/Ελληνικά/λέξεις.md', `${UNICODE_DIRS[1]}/说明.txt`]) {
        this.paths.unicode.push(p);
        add(p, this.newTextFile(), false);
      }
    }
    if (this.o.deepChain > 0) {
      const lines: string[] = [];
      for (let i = 0; i < 200; i++) lines.push(this.chainLine(i));
      this.paths.deepChain = 'chain/deep-chain.txt';
      add(this.paths.deepChain, this.blob('chain', '100644', { lines }), false);
    }
    for (let i = 0; i < this.o.largeFiles; i++) {
      const p = `assets/large-${i}.${i % 2 === 0 ? 'bin' : 'log'}`;
      this.paths.large.push(p);
      this.pendingLargeEdits.push(p);
      add(p, this.blob('large', '100644', { data: this.largeContent(i) }), false);
    }
    for (let i = 0; i < this.o.files; i++) {
      const binary = this.rng.chance(this.o.binaryShare);
      const path = this.newPath(binary);
      // The first few binary files stay as they are, so tests can find them on main.
      const keep = binary && this.paths.binary.length < 3;
      if (keep) this.paths.binary.push(path);
      add(path, binary ? this.newBinaryFile() : this.newTextFile(), !keep);
    }
    this.commit(this.main, changes, 'Initial commit', undefined);
  }

  /**
   * Makes the next commit: when a merge is due, merges the feature branch with
   * the most unmerged work (only branches both sides of which have moved since
   * the fork, so every merge is a real one); else ordinary work on a random branch.
   */
  step(): void {
    const n = this.commitCount;
    if (this.o.mergeEvery > 0 && n % this.o.mergeEvery === 0) {
      let best: Branch | undefined;
      for (const b of this.branches.slice(1)) {
        const diverged = b.commitsSinceFork > 0 && b.base !== this.main.tip;
        if (diverged && (best === undefined || b.commitsSinceFork > best.commitsSinceFork)) best = b;
      }
      if (best !== undefined) {
        this.merge(best);
        return;
      }
    }
    const branch = this.branches.length === 1 || this.rng.chance(0.4) ? this.main : this.rng.pick(this.branches.slice(1));
    this.work(branch);
  }

  private work(b: Branch): void {
    if (b.tip === undefined) this.fork(b);
    const changes: Change[] = [];
    const touched = new Set<string>();
    const count = this.rng.range(1, this.o.changesPerCommit);
    let verb = this.rng.pick(VERBS);
    for (let i = 0; i < count; i++) {
      const r = this.rng.float();
      const path = b.files.randomEditable(this.rng);
      if (r < 0.1 || path === undefined || b.files.size < 4) {
        const binary = this.rng.chance(this.o.binaryShare);
        const p = this.newPath(binary);
        const entry = binary ? this.newBinaryFile() : this.newTextFile(this.rng.chance(0.02) ? '100755' : '100644');
        b.files.set(p, entry, true);
        changes.push({ op: 'M', path: p, entry });
        touched.add(p);
        verb = 'Add';
        continue;
      }
      if (touched.has(path)) continue;
      const entry = b.files.all.get(path) as Entry;
      if (r < 0.14) {
        b.files.delete(path);
        changes.push({ op: 'D', path });
        verb = 'Remove';
      } else if (r < 0.19) {
        const to = this.newPath(entry.kind === 'binary');
        b.files.delete(path);
        b.files.set(to, entry, true);
        changes.push({ op: 'R', from: path, to });
        touched.add(to);
        verb = 'Rename';
      } else if (r < 0.2) {
        const flipped: Entry = { ...entry, mode: entry.mode === '100755' ? '100644' : '100755' };
        b.files.set(path, flipped, true);
        changes.push({ op: 'M', path, entry: flipped });
      } else {
        const edited = this.edit(entry);
        b.files.set(path, edited, true);
        changes.push({ op: 'M', path, entry: edited });
      }
      touched.add(path);
    }
    if (b === this.main) {
      if (this.paths.deepChain !== undefined && this.chainEdits < this.o.deepChain) {
        this.chainEdits++;
        changes.push(this.editSpecial(b, this.paths.deepChain));
      }
      if (this.pendingLargeEdits.length > 0 && this.mainCommits >= 2) {
        changes.push(this.editSpecial(b, this.pendingLargeEdits.shift() as string));
      }
    }
    this.commit(b, changes, this.message(verb, changes), undefined);
  }

  private editSpecial(b: Branch, path: string): Change {
    const entry = this.edit(b.files.all.get(path) as Entry);
    b.files.set(path, entry, false);
    return { op: 'M', path, entry };
  }

  private fork(b: Branch): void {
    b.files = this.main.files.clone();
    b.tip = this.main.tip;
    b.base = this.main.tip;
    b.changed = new Set();
    b.commitsSinceFork = 0;
  }

  /** Merges `feature` into `main`: its changes, plus a resolution edit only the merge has. */
  private merge(feature: Branch): void {
    const main = this.main;
    const changes: Change[] = [];
    let resolvable: string | undefined;
    for (const path of [...feature.changed].sort()) {
      const entry = feature.files.all.get(path);
      if (entry !== undefined) {
        if (main.files.all.get(path) !== entry) {
          main.files.set(path, entry, feature.files.isEditable(path));
          changes.push({ op: 'M', path, entry });
        }
        if (entry.kind === 'text' && main.files.isEditable(path)) resolvable = path;
      } else if (main.files.all.has(path)) {
        main.files.delete(path);
        changes.push({ op: 'D', path });
      }
    }
    resolvable ??= main.files.randomEditable(this.rng);
    if (resolvable !== undefined) {
      const entry = main.files.all.get(resolvable) as Entry;
      const resolved = this.edit(entry);
      main.files.set(resolvable, resolved, true);
      changes.push({ op: 'M', path: resolvable, entry: resolved });
    }
    this.commit(main, changes, `Merge branch '${feature.name}'\n\nResolved a conflict in ${resolvable ?? 'nothing'}.`, feature.tip);
    this.mergeCount++;
    // The feature continues from the merge, as after a real pull request.
    this.fork(feature);
  }

  private message(verb: string, changes: Change[]): string {
    const first = changes[0];
    const path = first === undefined ? 'nothing' : first.op === 'R' ? first.to : first.path;
    let msg = `${verb} ${path.split('/').pop()}`;
    if (this.rng.chance(0.5)) {
      const body: string[] = [];
      const lines = this.rng.range(1, 4);
      for (let i = 0; i < lines; i++) body.push(this.line().trim());
      msg += `\n\n${body.join('\n')}`;
    }
    if (this.rng.chance(0.2)) msg += `\n\nSigned-off-by: ${PEOPLE[0].name} <${PEOPLE[0].email}>`;
    return msg;
  }

  private commit(b: Branch, changes: Change[], message: string, mergeFrom: number | undefined): void {
    const mark = ++this.mark;
    const time = BASE_TIME + this.commitCount * 3600 + this.rng.int(1800);
    const author = this.rng.pick(PEOPLE);
    this.out.text(`commit ${b.ref}\nmark :${mark}\nauthor ${ident(author, time)}\ncommitter ${ident(COMMITTER, time + 60)}\n`);
    this.out.data(Buffer.from(`${message}\n`, 'utf8'));
    if (b.tip !== undefined) this.out.text(`from :${b.tip}\n`);
    if (mergeFrom !== undefined) this.out.text(`merge :${mergeFrom}\n`);
    const dirty = new Set<string>(['']);
    const touch = (path: string): void => {
      for (let i = path.lastIndexOf('/'); i > 0; i = path.lastIndexOf('/', i - 1)) dirty.add(path.slice(0, i));
    };
    for (const c of changes) {
      if (c.op === 'M') {
        this.out.text(`M ${c.entry.mode} :${c.entry.mark} ${quotePath(c.path)}\n`);
        touch(c.path);
      } else if (c.op === 'D') {
        this.out.text(`D ${quotePath(c.path)}\n`);
        touch(c.path);
      } else {
        this.out.text(`R ${quotePath(c.from)} ${quotePath(c.to)}\n`);
        touch(c.from);
        touch(c.to);
      }
      const path = c.op === 'R' ? c.to : c.path;
      if (b !== this.main) {
        b.changed.add(path);
        if (c.op === 'R') b.changed.add(c.from);
      }
    }
    this.out.text('\n');
    this.estimate += dirty.size + 1;
    b.tip = mark;
    this.commitCount++;
    if (b === this.main) {
      this.mainCommits++;
      this.tagIfDue();
    } else {
      b.commitsSinceFork++;
    }
  }

  // -- tags -------------------------------------------------------------------

  private annotatedTag(name: string, from: number, message: string): void {
    const mark = ++this.mark;
    const time = BASE_TIME + this.commitCount * 3600 + 1900;
    this.out.text(`tag ${name}\nmark :${mark}\nfrom :${from}\ntagger ${ident(PEOPLE[0], time)}\n`);
    this.out.data(Buffer.from(`${message}\n`, 'utf8'));
    this.annotated.push(name);
    this.tagMarks.set(name, mark);
    this.estimate++;
  }

  private lightweightTag(name: string, from: number): void {
    this.out.text(`reset refs/tags/${name}\nfrom :${from}\n\n`);
    this.lightweight.push(name);
  }

  private tagIfDue(): void {
    const every = this.o.tagEvery;
    if (every === 0 || this.main.tip === undefined) return;
    const n = this.mainCommits;
    if (n % every === 0) this.annotatedTag(`v1.${n / every}`, this.main.tip, `Release 1.${n / every}\n\n${this.line().trim()}`);
    else if (every > 1 && n % every === Math.floor(every / 2)) this.lightweightTag(`light-${Math.floor(n / every)}`, this.main.tip);
  }

  /** The tags every repository has: one of each kind (the tag of a tree is made after fast-import). */
  finalTags(): { ofBlob: string; ofTag: string } {
    const tip = this.main.tip as number;
    this.annotatedTag('release', tip, `Release of ${this.mainCommits} commits on main\n\nAnnotated tag of a commit.`);
    this.lightweightTag('latest', tip);
    // Like git.git's junio-gpg-pub: a blob that only a tag reaches.
    const key = this.blob('text', '100644', { lines: ['-----BEGIN PUBLIC KEY-----', this.rng.hex(64), '-----END PUBLIC KEY-----'] });
    this.annotatedTag('blob-tag', key.mark, 'Annotated tag of a blob');
    this.annotatedTag('tag-of-tag', this.tagMarks.get('release') as number, 'Annotated tag of the annotated tag "release"');
    return { ofBlob: 'blob-tag', ofTag: 'tag-of-tag' };
  }
}

// ---------------------------------------------------------------------------
// Public API.

/**
 * Generates a bare repository at `dir` (which must not exist or be empty).
 * Deterministic: the same options give the same object ids. On failure the
 * partial repository is removed.
 */
export async function generateRepo(dir: string, options: RepoOptions = {}): Promise<RepoSummary> {
  const o = resolveOptions(options);
  const abs = resolve(dir);
  if (existsSync(abs) && readdirSync(abs).length > 0) throw new Error(`repogen: ${abs} exists and is not empty`);
  const started = performance.now();
  let child: ChildProcess | undefined;
  let done: Promise<void> | undefined;
  try {
    mkdirSync(abs, { recursive: true });
    git(['init', '-q', '--bare', '-b', 'main', abs]);
    git(['config', 'gc.auto', '0'], { cwd: abs });

    child = spawn('git', ['fast-import', '--quiet', '--done'], {
      cwd: abs,
      env: gitEnv,
      stdio: ['pipe', 'ignore', 'pipe'],
      signal: options.signal,
    });
    done = waitForExit(child, 'git fast-import');
    // Settles with an error only if fast-import exits while input is still being written.
    const exitedEarly = done.then(() => {
      throw new Error('git fast-import exited while input was still being written');
    });
    exitedEarly.catch(() => {});
    const stdin = child.stdin as Writable;
    stdin.on('error', () => {}); // EPIPE when fast-import dies; reported through `done`
    const out = new CommandStream(stdin, exitedEarly);
    out.text('feature done\n');
    const gen = new Generator(o, out);
    gen.initialCommit();
    let lastReport = 0;
    while (gen.stats.commits < o.commits && gen.stats.estimate < o.objectsTarget) {
      options.signal?.throwIfAborted();
      gen.step();
      await out.flush();
      if (options.progress !== undefined && gen.stats.commits - lastReport >= 250) {
        lastReport = gen.stats.commits;
        options.progress({ title: 'Generating commits', done: gen.stats.commits, total: Number.isFinite(o.commits) ? o.commits : undefined, bytes: out.bytes });
      }
    }
    const special = gen.finalTags();
    out.text('done\n');
    await out.flush(true);
    stdin.end();
    await done;
    options.progress?.({ title: 'Generating commits', done: gen.stats.commits, bytes: out.bytes, finished: true });
    const fastImportMs = performance.now() - started;

    // fast-import cannot name a tree it wrote; tag main's root tree with mktag.
    const tree = git(['rev-parse', 'refs/heads/main^{tree}'], { cwd: abs });
    const tagger = ident(PEOPLE[0], BASE_TIME + gen.stats.commits * 3600 + 1950);
    const treeTag = git(['mktag'], { cwd: abs, input: `object ${tree}\ntype tree\ntag tree-tag\ntagger ${tagger}\n\nAnnotated tag of main's root tree\n` });
    git(['update-ref', 'refs/tags/tree-tag', treeTag], { cwd: abs });

    let repackMs = 0;
    if (options.repack) {
      const t = performance.now();
      await repack(abs, options.repack === true ? {} : options.repack, options.signal);
      repackMs = performance.now() - t;
    }
    if (options.packRefs) git(['pack-refs', '--all'], { cwd: abs });

    return {
      ...describeRepo(abs),
      seed: o.seed,
      commits: gen.stats.commits,
      merges: gen.stats.merges,
      estimatedObjects: gen.stats.estimate + 1,
      branches: gen.branchNames,
      paths: gen.paths,
      tags: { annotated: gen.annotated, lightweight: gen.lightweight, ofBlob: special.ofBlob, ofTree: 'tree-tag', ofTag: special.ofTag },
      timingsMs: { fastImport: Math.round(fastImportMs), repack: Math.round(repackMs), total: Math.round(performance.now() - started) },
    };
  } catch (err) {
    if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill();
    await done?.catch(() => {});
    rmSync(abs, { recursive: true, force: true });
    throw err;
  }
}

function waitForExit(child: ChildProcess, what: string): Promise<void> {
  const stderr: Buffer[] = [];
  let stderrSize = 0;
  child.stderr?.on('data', (d: Buffer) => {
    if (stderrSize < 64 * 1024) stderr.push(d);
    stderrSize += d.length;
  });
  return new Promise((resolvePromise, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) resolvePromise();
      else reject(new Error(`${what} failed (${signal ?? `exit ${code}`}): ${Buffer.concat(stderr).toString('utf8').trim()}`));
    });
  });
}

/** `git repack -a -d -f` into a single pack with OFS_DELTA entries and no bitmap. */
export async function repack(repoDir: string, options: RepackOptions = {}, signal?: AbortSignal): Promise<void> {
  const args = ['repack', '-a', '-d', '-f', '-q', '--no-write-bitmap-index', `--depth=${options.depth ?? 50}`, `--window=${options.window ?? 10}`];
  if (options.threads !== undefined) args.push(`--threads=${options.threads}`);
  const child = spawn('git', args, { cwd: repoDir, env: gitEnv, stdio: ['ignore', 'ignore', 'pipe'], signal });
  await waitForExit(child, 'git repack');
}

/** Object counts, refs and packs of any repository (generated or not). */
export function describeRepo(repoDir: string): Pick<RepoSummary, 'dir' | 'objects' | 'refs' | 'head' | 'packs' | 'pack' | 'looseObjects'> {
  const dir = resolve(repoDir);
  const objects: ObjectCounts = { commit: 0, tree: 0, blob: 0, tag: 0, total: 0 };
  const types = git(['cat-file', '--batch-all-objects', '--batch-check=%(objecttype)', '--unordered'], { cwd: dir });
  for (const t of types.split('\n')) {
    if (t === 'commit' || t === 'tree' || t === 'blob' || t === 'tag') objects[t]++;
    if (t !== '') objects.total++;
  }
  const refs: Record<string, string> = {};
  const refLines = git(['for-each-ref', '--format=%(objectname) %(refname)'], { cwd: dir });
  for (const line of refLines.split('\n')) {
    if (line === '') continue;
    const space = line.indexOf(' ');
    refs[line.slice(space + 1)] = line.slice(0, space);
  }
  const count = git(['count-objects', '-v'], { cwd: dir });
  const loose = Number(/^count: (\d+)$/m.exec(count)?.[1] ?? 0);
  const packDir = join(dir, 'objects', 'pack');
  const packs = existsSync(packDir)
    ? readdirSync(packDir)
        .filter((f) => f.endsWith('.pack'))
        .sort()
        .map((f) => join(packDir, f))
    : [];
  return { dir, objects, refs, head: refs['refs/heads/main'] ?? '', packs, pack: packs.length === 1 ? packs[0] : undefined, looseObjects: loose };
}

export interface PackFiles {
  pack: string;
  idx: string;
  /** The pack's name hash as printed by `git pack-objects`. */
  hash: string;
}

/**
 * Writes every object reachable from the refs of `repoDir` into
 * `<outPrefix>-<hash>.pack` (+ `.idx`) with REF_DELTA entries: `git
 * pack-objects` recomputes all deltas (`--no-reuse-delta`) and, without
 * `--delta-base-offset`, names each delta's base by object id.
 */
export async function makeRefDeltaPack(repoDir: string, outPrefix: string, options: { depth?: number; window?: number } = {}): Promise<PackFiles> {
  const args = ['pack-objects', '--all', '--no-reuse-delta', '-q', `--depth=${options.depth ?? 50}`, `--window=${options.window ?? 10}`, resolve(outPrefix)];
  const r = await gitAsync(args, { cwd: repoDir, input: '' });
  if (r.code !== 0) throw new Error(`git pack-objects failed (exit ${r.code}): ${r.stderr.trim()}`);
  const hash = r.stdout.toString('utf8').trim();
  const prefix = resolve(outPrefix);
  return { pack: `${prefix}-${hash}.pack`, idx: `${prefix}-${hash}.idx`, hash };
}

export interface PackEntryTypes {
  commit: number;
  tree: number;
  blob: number;
  tag: number;
  ofsDelta: number;
  refDelta: number;
}

/**
 * Counts a pack's entries by their stored type (OFS_DELTA and REF_DELTA
 * separately), reading each entry's first byte at the offsets listed by
 * `git show-index` (gitformat-pack: "type" is bits 4-6 of the first byte).
 */
export function packEntryTypes(packPath: string, idxPath = packPath.replace(/\.pack$/, '.idx')): PackEntryTypes {
  const listing = git(['show-index'], { input: readFileSync(idxPath) });
  const counts: PackEntryTypes = { commit: 0, tree: 0, blob: 0, tag: 0, ofsDelta: 0, refDelta: 0 };
  const names: Record<number, keyof PackEntryTypes> = { 1: 'commit', 2: 'tree', 3: 'blob', 4: 'tag', 6: 'ofsDelta', 7: 'refDelta' };
  const fd = openSync(packPath, 'r');
  try {
    const byte = Buffer.alloc(1);
    for (const line of listing.split('\n')) {
      if (line === '') continue;
      const offset = Number(line.slice(0, line.indexOf(' ')));
      readSync(fd, byte, 0, 1, offset);
      const name = names[(byte[0] >> 4) & 7];
      if (name === undefined) throw new Error(`${packPath}: invalid entry type ${(byte[0] >> 4) & 7} at offset ${offset}`);
      counts[name]++;
    }
  } finally {
    closeSync(fd);
  }
  return counts;
}

/** Longest delta chain in a pack, from `git verify-pack -v` ("chain length = N: M objects"). */
export function maxDeltaChain(idxPath: string): number {
  const out = git(['verify-pack', '-v', idxPath]);
  let max = 0;
  for (const m of out.matchAll(/^chain length = (\d+): \d+ objects?$/gm)) max = Math.max(max, Number(m[1]));
  return max;
}

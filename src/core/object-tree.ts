// Tree objects: a sequence of entries "<mode> SP <name> NUL <raw id>", the mode
// in octal ASCII without leading zeros, entries sorted in Git's tree order.
//
// Reference: Git's tree-walk.c `decode_tree_entry()` for what Git can read at
// all (an entry that fails there is "cannot be parsed as a tree"); tree.c /
// read-cache.c `base_name_compare()` for the order; fsck.c `fsck_tree()` and
// `verify_ordered()` for what Git considers valid; path.c `is_ntfs_dotgit()`
// and utf8.c `is_hfs_dotgit()` for the ".git" look-alikes that Windows and
// macOS resolve to ".git" (CVE-2014-9390, CVE-2019-1352).
//
// Graph walks read millions of trees, so the core reader is a cursor that
// allocates nothing per entry: it exposes offsets into the tree's bytes.
import { PackferryError, ErrorCode } from './errors.js';
import { SHA1, type HashAlgorithm } from './hash.js';
import { ProblemReporter, invalidObject, type FsckMsgId, type ObjectProblem, type ValidateOptions } from './object-problem.js';
import type { ObjectId } from './oid.js';

/** The modes Git writes in trees (fsck.c's "standard modes"). */
export const FileMode = Object.freeze({
  /** A subdirectory: another tree (S_IFDIR, written "40000"). */
  tree: 0o040000,
  regular: 0o100644,
  executable: 0o100755,
  symlink: 0o120000,
  /** A submodule commit (S_IFGITLINK). */
  gitlink: 0o160000,
} as const);

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

export function isTreeMode(mode: number): boolean {
  return (mode & S_IFMT) === S_IFDIR;
}

/** One entry of a tree. `name` and `oid` may be views into the tree's bytes. */
export interface TreeEntry {
  /** The mode as a number (the octal digits read as octal). */
  readonly mode: number;
  /** The name's bytes: need not be UTF-8. */
  readonly name: Buffer;
  /** The raw object id (20 bytes for SHA-1). */
  readonly oid: Buffer;
  /**
   * The mode's digits exactly as written, present only when they are not
   * `mode.toString(8)` (old trees have zero-padded "040000"); serialization
   * writes them back so such trees round-trip.
   */
  readonly rawMode?: string;
}

export interface Tree {
  readonly type: 'tree';
  readonly entries: readonly TreeEntry[];
}

const SP = 0x20;
const NUL = 0;
const SLASH = 0x2f;

function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.length);
}

/**
 * Walks a tree's entries without allocating: after each `next()` that returns
 * true, the fields describe the current entry as offsets into `data`.
 * Throws ERR_INVALID_OBJECT when an entry cannot be decoded (as Git's
 * `decode_tree_entry()` would refuse it).
 *
 *     const c = new TreeCursor(bytes);
 *     while (c.next()) if (isTreeMode(c.mode)) visit(c.data, c.oidStart);
 */
export class TreeCursor {
  readonly data: Buffer;
  readonly algo: HashAlgorithm;
  /** Mode of the current entry; octal digits beyond 32 bits wrap as in Git's C code. */
  mode = 0;
  /** Offset of the current entry's first byte (the first mode digit). */
  entryStart = 0;
  /** The current entry's name is `data[nameStart..nameEnd)`. */
  nameStart = 0;
  nameEnd = 0;
  /** The current entry's raw id is `data[oidStart..oidStart + algo.rawLength)`. */
  oidStart = 0;
  private pos = 0;

  constructor(data: Uint8Array, algo: HashAlgorithm = SHA1) {
    this.data = asBuffer(data);
    this.algo = algo;
  }

  /** Offset just past the current entry (where the next one starts). */
  get entryEnd(): number {
    return this.pos;
  }

  /** Decodes the next entry; false at the end of the tree. */
  next(): boolean {
    const start = this.pos;
    if (start >= this.data.length) return false;
    const mode = this.readMode(start);
    return this.finish(start, mode, this.modeEnd, this.data.indexOf(NUL, this.modeEnd));
  }

  /** Where the name starts after the mode readMode read (a field, so that reading an entry allocates nothing). */
  private modeEnd = 0;

  /** The octal mode of the entry at `start` and the space after it; sets modeEnd. */
  private readMode(start: number): number {
    const data = this.data;
    const len = data.length;
    let p = start;
    if (data[p] === SP) throw invalidObject('tree', 'badTree', 'malformed mode in tree entry', start);
    let mode = 0;
    for (;;) {
      if (p >= len) throw invalidObject('tree', 'badTree', 'truncated tree entry', start);
      const c = data[p++];
      if (c === SP) break;
      if (c < 0x30 || c > 0x37) throw invalidObject('tree', 'badTree', 'malformed mode in tree entry', start);
      mode = ((mode << 3) + (c - 0x30)) >>> 0;
    }
    this.modeEnd = p;
    return mode;
  }

  /**
   * `next()`, also telling what the name holds (for fsck, which looks at
   * every byte of every name anyway): bit 1 a slash, bit 2 a backslash; -1 at the end.
   */
  nextScanningName(): number {
    const data = this.data;
    const len = data.length;
    const start = this.pos;
    if (start >= len) return -1;
    const mode = this.readMode(start);
    const p = this.modeEnd;
    let flags = 0;
    let nul = p;
    for (; nul < len; nul++) {
      const c = data[nul];
      if (c <= 0x5c) {
        if (c === NUL) break;
        if (c === SLASH) flags |= 1;
        else if (c === 0x5c) flags |= 2;
      }
    }
    this.finish(start, mode, p, nul < len ? nul : -1);
    return flags;
  }

  private finish(start: number, mode: number, nameStart: number, nul: number): boolean {
    if (nul < 0) throw invalidObject('tree', 'badTree', 'truncated tree entry', start);
    if (nul === nameStart) throw invalidObject('tree', 'badTree', 'empty filename in tree entry', start);
    const oidStart = nul + 1;
    const end = oidStart + this.algo.rawLength;
    if (end > this.data.length) throw invalidObject('tree', 'badTree', 'too-short tree object', start);
    this.mode = mode;
    this.entryStart = start;
    this.nameStart = nameStart;
    this.nameEnd = nul;
    this.oidStart = oidStart;
    this.pos = end;
    return true;
  }

  /** The current entry's name, as a view (no copy). */
  name(): Buffer {
    return this.data.subarray(this.nameStart, this.nameEnd);
  }

  /** The current entry's raw id, as a view (no copy). */
  oid(): Buffer {
    return this.data.subarray(this.oidStart, this.oidStart + this.algo.rawLength);
  }

  oidHex(): ObjectId {
    return this.data.toString('hex', this.oidStart, this.oidStart + this.algo.rawLength);
  }

  /** The mode's digits as written, when they differ from `mode.toString(8)`. */
  rawMode(): string | undefined {
    const digits = this.nameStart - 1 - this.entryStart;
    // Without a leading zero, up to 10 octal digits cannot wrap 32 bits.
    if (digits <= 10 && (this.data[this.entryStart] !== 0x30 || digits === 1)) return undefined;
    const text = this.data.toString('latin1', this.entryStart, this.nameStart - 1);
    return text === this.mode.toString(8) ? undefined : text;
  }

  /** The current entry as an object; `name` and `oid` are views into `data`. */
  entry(): TreeEntry {
    const rawMode = this.rawMode();
    const name = this.name();
    const oid = this.oid();
    return rawMode === undefined ? { mode: this.mode, name, oid } : { mode: this.mode, name, oid, rawMode };
  }
}

/** Iterates over a tree's entries; `name` and `oid` are views into `data` (copy them to keep them past changes to `data`). */
export function* iterateTree(data: Uint8Array, algo: HashAlgorithm = SHA1): Generator<TreeEntry, void, undefined> {
  const cursor = new TreeCursor(data, algo);
  while (cursor.next()) yield cursor.entry();
}

/** Reads a whole tree. Structural only: order, modes and names are checked by `validateTree`. */
export function parseTree(data: Uint8Array, algo: HashAlgorithm = SHA1): Tree {
  const cursor = new TreeCursor(data, algo);
  const entries: TreeEntry[] = [];
  while (cursor.next()) entries.push(cursor.entry());
  return { type: 'tree', entries };
}

function modeDigits(entry: TreeEntry, index: number): string {
  const { mode, rawMode } = entry;
  if (!Number.isInteger(mode) || mode < 0 || mode > 0xffffffff) {
    throw new PackferryError(ErrorCode.InvalidObject, `tree entry ${index}: invalid mode ${String(mode)}`, { details: { index } });
  }
  if (rawMode === undefined) return mode.toString(8);
  let value = 0;
  for (let i = 0; i < rawMode.length; i++) {
    const c = rawMode.charCodeAt(i);
    if (c < 0x30 || c > 0x37) value = -1;
    if (value < 0) break;
    value = ((value << 3) + (c - 0x30)) >>> 0;
  }
  if (rawMode.length === 0 || value !== mode) {
    throw new PackferryError(ErrorCode.InvalidObject, `tree entry ${index}: rawMode ${JSON.stringify(rawMode)} does not spell mode ${mode.toString(8)}`, {
      details: { index },
    });
  }
  return rawMode;
}

/**
 * Writes a tree's bytes, entries in the order given (use `sortTreeEntries`
 * first for new trees). Throws ERR_INVALID_OBJECT for entries that cannot be
 * written at all: empty names, names containing NUL, ids of the wrong length.
 */
export function serializeTree(tree: Tree | readonly TreeEntry[], algo: HashAlgorithm = SHA1): Buffer {
  // (arrays have an `entries` method too, so test for the array.)
  const entries: readonly TreeEntry[] = Array.isArray(tree) ? (tree as readonly TreeEntry[]) : (tree as Tree).entries;
  const modes: string[] = new Array<string>(entries.length);
  let size = 0;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    modes[i] = modeDigits(e, i);
    if (!(e.name instanceof Uint8Array) || e.name.length === 0 || e.name.indexOf(NUL) >= 0) {
      throw new PackferryError(ErrorCode.InvalidObject, `tree entry ${i}: name must be non-empty bytes without NUL`, { details: { index: i } });
    }
    if (!(e.oid instanceof Uint8Array) || e.oid.length !== algo.rawLength) {
      throw new PackferryError(ErrorCode.InvalidObject, `tree entry ${i}: object id must be ${algo.rawLength} raw bytes`, { details: { index: i } });
    }
    size += modes[i].length + 1 + e.name.length + 1 + algo.rawLength;
  }
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    at += out.write(modes[i], at, 'latin1');
    out[at++] = SP;
    out.set(e.name, at);
    at += e.name.length;
    out[at++] = NUL;
    out.set(e.oid, at);
    at += algo.rawLength;
  }
  return out;
}

/**
 * Git's tree order (`base_name_compare()`): bytewise, except that a tree's
 * name compares as if it ended in '/'. So "a.c" < "a/" (a tree) but "a" (a
 * file) < "a.c".
 */
export function compareTreeEntries(a: Pick<TreeEntry, 'mode' | 'name'>, b: Pick<TreeEntry, 'mode' | 'name'>): number {
  const an = a.name;
  const bn = b.name;
  const len = Math.min(an.length, bn.length);
  for (let i = 0; i < len; i++) {
    const d = an[i] - bn[i];
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  const c1 = an.length > len ? an[len] : isTreeMode(a.mode) ? SLASH : NUL;
  const c2 = bn.length > len ? bn[len] : isTreeMode(b.mode) ? SLASH : NUL;
  return c1 < c2 ? -1 : c1 > c2 ? 1 : 0;
}

/** A copy of the entries in Git's tree order. */
export function sortTreeEntries<T extends Pick<TreeEntry, 'mode' | 'name'>>(entries: readonly T[]): T[] {
  return [...entries].sort(compareTreeEntries);
}

// ---- validation: fsck.c fsck_tree() -------------------------------------

const TREE_UNORDERED = -1;
const TREE_HAS_DUPS = -2;

/** fsck's "excessively large pathname" threshold (fsck.c max_tree_entry_len). */
const MAX_TREE_ENTRY_LEN = 4096;

function isLessThanSlash(c: number): boolean {
  return c > 0 && c < SLASH;
}

/**
 * fsck.c `verify_ordered()`: checks the order of two neighbours, and finds
 * duplicates that are not neighbours ("foo", "foo.bar", "foo/" with a file
 * and a tree both named "foo") through a stack of candidate file names.
 */
function verifyOrdered(
  data: Buffer,
  mode1: number,
  s1: number,
  e1: number,
  mode2: number,
  s2: number,
  e2: number,
  candidates: number[],
): number {
  const len1 = e1 - s1;
  const len2 = e2 - s2;
  const len = Math.min(len1, len2);
  // memcmp of the common prefix (a JS loop beats a native call on short names)
  for (let i = 0; i < len; i++) {
    const d = data[s1 + i] - data[s2 + i];
    if (d < 0) return 0;
    if (d > 0) return TREE_UNORDERED;
  }
  let c1 = len1 > len ? data[s1 + len] : NUL;
  let c2 = len2 > len ? data[s2 + len] : NUL;
  if (c1 === NUL && c2 === NUL) return TREE_HAS_DUPS;
  if (c1 === NUL && isTreeMode(mode1)) c1 = SLASH;
  if (c2 === NUL && isTreeMode(mode2)) c2 = SLASH;

  if (c1 === NUL && isLessThanSlash(c2)) {
    candidates.push(s1, e1);
  } else if (c2 === SLASH && isLessThanSlash(c1)) {
    while (candidates.length > 0) {
      const fe = candidates.pop() as number;
      const fs = candidates.pop() as number;
      const flen = fe - fs;
      if (flen > len2 || data.compare(data, fs, fe, s2, s2 + flen) !== 0) continue;
      if (flen === len2) return TREE_HAS_DUPS;
      if (isLessThanSlash(data[s2 + flen])) {
        candidates.push(fs, fe);
        break;
      }
    }
  }
  return c1 < c2 ? 0 : TREE_UNORDERED;
}

/** Names whose blobs fsck reads once every object is known (fsck.c `gitmodules_found`, `gitattributes_found`). */
export type SpecialBlobKind = 'gitmodules' | 'gitattributes';

export interface ValidateTreeOptions extends ValidateOptions {
  algo?: HashAlgorithm;
  /**
   * Told of every entry named .gitmodules or .gitattributes (or a name
   * Windows or macOS take for one) that is not a symbolic link: its raw id
   * is `data[oidStart..oidStart + algo.rawLength)`, a view valid only during
   * the call.
   */
  onSpecialBlob?: (kind: SpecialBlobKind, data: Buffer, oidStart: number) => void;
  /**
   * Also collects the ids the entries name, but submodule commits (which
   * live in another repository): what a link collection would gather from
   * the tree in a walk of its own, gathered in the same pass. Told to give
   * up when the tree cannot be decoded.
   */
  links?: TreeLinkSink;
}

/** Where a tree's links go (the pack layer's ObjectIdSet). */
export interface TreeLinkSink {
  /** The raw id at `data[at..]`. */
  add(data: Uint8Array, at: number): void;
  giveUp(): void;
}

/**
 * Checks a tree as `git fsck` does (fsck.c `fsck_tree()`), reporting each
 * kind of problem once with the offset of the first entry that has it.
 * Never throws for bad input: an undecodable tree is a `badTree` problem.
 *
 * One deliberate difference: Git stores modes in 16 bits while checking, so
 * it misses bad modes such as "1100644"; packferry checks the whole value.
 */
export function validateTree(data: Uint8Array, options: ValidateTreeOptions = {}): ObjectProblem[] {
  // Hot: every tree of every push passes here. No allocation per entry, none per tree until a problem shows.
  let reporter: ProblemReporter | undefined;
  const onSpecialBlob = options.onSpecialBlob;
  const links = options.links;
  const strict = options.strict === true;
  const algo = options.algo ?? SHA1;
  const cursor = new TreeCursor(data, algo);
  const buf = cursor.data;
  // Offset of the first entry with each kind of problem (-1: none), reported at the end as fsck_tree() does.
  let nullSha1 = -1;
  let fullPathname = -1;
  let hasDot = -1;
  let hasDotdot = -1;
  let hasDotgit = -1;
  let zeroPadded = -1;
  let badFilemode = -1;
  let duplicates = -1;
  let notSorted = -1;
  let largePathname = -1;

  let nameFlags = nextEntry(cursor);
  if (nameFlags === undefined) {
    links?.giveUp();
    return badTree(cursor, options);
  }
  let prevMode = 0;
  let prevStart = -1;
  let prevEnd = -1;
  let candidates: number[] | undefined;
  while (nameFlags >= 0) {
    const mode = cursor.mode;
    const entryStart = cursor.entryStart;
    const s = cursor.nameStart;
    const e = cursor.nameEnd;
    const isLink = (mode & S_IFMT) === S_IFLNK;

    if (nullSha1 < 0 && isNullId(buf, cursor.oidStart, algo.rawLength)) nullSha1 = entryStart;
    if (links !== undefined && mode !== 0o160000) links.add(buf, cursor.oidStart);
    if ((nameFlags & 1) !== 0 && fullPathname < 0) fullPathname = entryStart;
    const backslash = (nameFlags & 2) !== 0;
    const lead = buf[s];
    if (lead === 0x2e) {
      if (e - s === 1 && hasDot < 0) hasDot = entryStart;
      else if (e - s === 2 && buf[s + 1] === 0x2e && hasDotdot < 0) hasDotdot = entryStart;
    }
    // Every ".git" look-alike starts with '.', 'g'/'G' (short names), 'm'/'M'
    // (".mailmap" short names) or an ignorable UTF-8 code point (0xE2, 0xEF);
    // testing the first byte skips the slow checks for nearly every name.
    const folded = lead | 0x20;
    if (folded === 0x2e || folded === 0x67 || folded === 0x6d || lead === 0xe2 || lead === 0xef) {
      if (hasDotgit < 0 && (isHfsDotGeneric(buf, s, e, 'git') || isNtfsDotgit(buf, s, e))) hasDotgit = entryStart;
      if (isLink || onSpecialBlob) {
        // A .gitmodules or .gitattributes that is not a link is read later (fsck_finish); one that is, is refused here.
        if (isHfsDotGeneric(buf, s, e, 'gitmodules') || isNtfsDotGeneric(buf, s, e, 'gitmodules', 'gi7eba')) {
          if (isLink) (reporter ??= new ProblemReporter(options)).report('gitmodulesSymlink', '.gitmodules is a symbolic link', entryStart);
          else onSpecialBlob!('gitmodules', buf, cursor.oidStart);
        }
        if (isHfsDotGeneric(buf, s, e, 'gitattributes') || isNtfsDotGeneric(buf, s, e, 'gitattributes', 'gi7d29')) {
          if (isLink) (reporter ??= new ProblemReporter(options)).report('gitattributesSymlink', '.gitattributes is a symlink', entryStart);
          else onSpecialBlob!('gitattributes', buf, cursor.oidStart);
        }
      }
      if (isLink) {
        if (isHfsDotGeneric(buf, s, e, 'gitignore') || isNtfsDotGeneric(buf, s, e, 'gitignore', 'gi250a')) {
          (reporter ??= new ProblemReporter(options)).report('gitignoreSymlink', '.gitignore is a symlink', entryStart);
        }
        if (isHfsDotGeneric(buf, s, e, 'mailmap') || isNtfsDotGeneric(buf, s, e, 'mailmap', 'maba30')) {
          (reporter ??= new ProblemReporter(options)).report('mailmapSymlink', '.mailmap is a symlink', entryStart);
        }
      }
    }
    if (buf[entryStart] === 0x30 && zeroPadded < 0) zeroPadded = entryStart;
    if (e - s > MAX_TREE_ENTRY_LEN && largePathname < 0) largePathname = entryStart;
    // On Windows a backslash separates directories: check each component.
    if (backslash) {
      for (let b = findByte(buf, 0x5c, s, e); b >= 0; b = findByte(buf, 0x5c, b + 1, e)) {
        if (hasDotgit < 0 && isNtfsDotgit(buf, b + 1, e)) hasDotgit = entryStart;
        if ((isLink || onSpecialBlob) && isNtfsDotGeneric(buf, b + 1, e, 'gitmodules', 'gi7eba')) {
          if (isLink) (reporter ??= new ProblemReporter(options)).report('gitmodulesSymlink', '.gitmodules is a symbolic link', entryStart);
          else onSpecialBlob!('gitmodules', buf, cursor.oidStart);
        }
      }
    }

    nameFlags = nextEntry(cursor);
    if (nameFlags === undefined) {
      links?.giveUp();
      (reporter ??= new ProblemReporter(options)).report('badTree', 'cannot be parsed as a tree', cursor.entryEnd);
      break;
    }

    switch (mode) {
      case 0o100755:
      case 0o100644:
      case S_IFLNK:
      case S_IFDIR:
      case 0o160000:
        break;
      case 0o100664: // written by very early Git, which kept group write bits
        if (strict && badFilemode < 0) badFilemode = entryStart;
        break;
      default:
        if (badFilemode < 0) badFilemode = entryStart;
    }
    if (prevStart >= 0) {
      const order = verifyOrdered(buf, prevMode, prevStart, prevEnd, mode, s, e, (candidates ??= []));
      if (order === TREE_UNORDERED) {
        if (notSorted < 0) notSorted = entryStart;
      } else if (order === TREE_HAS_DUPS) {
        if (duplicates < 0) duplicates = entryStart;
      }
    }
    prevMode = mode;
    prevStart = s;
    prevEnd = e;
  }

  if (reporter === undefined && Math.max(nullSha1, fullPathname, hasDot, hasDotdot, hasDotgit, zeroPadded, badFilemode, duplicates, notSorted, largePathname) < 0) return [];
  const r = (reporter ??= new ProblemReporter(options));
  const flagged: [FsckMsgId, string, number][] = [
    ['nullSha1', 'contains entries pointing to null sha1', nullSha1],
    ['fullPathname', 'contains full pathnames', fullPathname],
    ['hasDot', "contains '.'", hasDot],
    ['hasDotdot', "contains '..'", hasDotdot],
    ['hasDotgit', "contains '.git'", hasDotgit],
    ['zeroPaddedFilemode', 'contains zero-padded file modes', zeroPadded],
    ['badFilemode', 'contains bad file modes', badFilemode],
    ['duplicateEntries', 'contains duplicate file entries', duplicates],
    ['treeNotSorted', 'not properly sorted', notSorted],
    ['largePathname', 'contains excessively large pathname', largePathname],
  ];
  for (const [id, message, offset] of flagged) if (offset >= 0) r.report(id, message, offset);
  return r.problems;
}

/** The next entry's name flags (-1 at the end); undefined when it cannot be decoded (fsck's "cannot be parsed as a tree"). */
function nextEntry(cursor: TreeCursor): number | undefined {
  try {
    return cursor.nextScanningName();
  } catch (err) {
    if (err instanceof PackferryError) return undefined;
    throw err;
  }
}

function badTree(cursor: TreeCursor, options: ValidateOptions): ObjectProblem[] {
  const reporter = new ProblemReporter(options);
  reporter.report('badTree', 'cannot be parsed as a tree', cursor.entryEnd);
  return reporter.problems;
}

/** Index of `byte` in `data[from..to)`, or -1 (indexOf would scan past `to`). */
function findByte(data: Buffer, byte: number, from: number, to: number): number {
  for (let i = from; i < to; i++) if (data[i] === byte) return i;
  return -1;
}

function isNullId(data: Buffer, start: number, length: number): boolean {
  for (let i = 0; i < length; i++) if (data[start + i] !== 0) return false;
  return true;
}

// ---- ".git" look-alikes: path.c and utf8.c --------------------------------

function lower(c: number): number {
  return c >= 0x41 && c <= 0x5a ? c + 0x20 : c;
}

/**
 * path.c `is_ntfs_dotgit()`: ".git" or its 8.3 short name "git~1", followed
 * only by spaces and periods (which Windows strips), then the end, a
 * directory separator, or ':' (an alternate data stream).
 */
export function isNtfsDotgit(data: Uint8Array, start: number, end: number): boolean {
  const at = (i: number): number => (i < end ? data[i] : NUL);
  let i = start;
  const c = at(i++);
  if (c === 0x2e) {
    if (lower(at(i++)) !== 0x67 || lower(at(i++)) !== 0x69 || lower(at(i++)) !== 0x74) return false;
  } else if (lower(c) === 0x67) {
    if (lower(at(i++)) !== 0x69 || lower(at(i++)) !== 0x74 || at(i++) !== 0x7e || at(i++) !== 0x31) return false;
  } else {
    return false;
  }
  for (;;) {
    const d = at(i++);
    if (d === NUL || d === SLASH || d === 0x5c || d === 0x3a) return true;
    if (d !== 0x2e && d !== SP) return false;
  }
}

/** path.c `is_ntfs_dot_generic()`: ".<name>", its short name "<name6>~1".."~4", or the hashed fall-back short name. */
export function isNtfsDotGeneric(data: Uint8Array, start: number, end: number, dotName: string, shortPrefix: string): boolean {
  const at = (i: number): number => (start + i < end ? data[start + i] : NUL);
  const caseEqual = (from: number, text: string, n: number): boolean => {
    for (let k = 0; k < n; k++) {
      const c = at(from + k);
      if (lower(c) !== text.charCodeAt(k)) return false;
      if (c === NUL) return false;
    }
    return true;
  };
  const onlySpacesAndPeriods = (i: number): boolean => {
    for (;;) {
      const c = at(i++);
      if (c === NUL || c === 0x3a) return true;
      if (c !== SP && c !== 0x2e) return false;
    }
  };
  if (at(0) === 0x2e && caseEqual(1, dotName, dotName.length)) return onlySpacesAndPeriods(dotName.length + 1);
  if (caseEqual(0, dotName, 6) && at(6) === 0x7e && at(7) >= 0x31 && at(7) <= 0x34) return onlySpacesAndPeriods(8);
  let sawTilde = false;
  for (let i = 0; i < 8; i++) {
    const c = at(i);
    if (c === NUL) return false;
    if (sawTilde) {
      if (c < 0x30 || c > 0x39) return false;
    } else if (c === 0x7e) {
      i++;
      if (at(i) < 0x31 || at(i) > 0x39) return false;
      sawTilde = true;
    } else if (i >= 6) {
      return false;
    } else if (c & 0x80) {
      return false;
    } else if (lower(c) !== shortPrefix.charCodeAt(i)) {
      return false;
    }
  }
  return onlySpacesAndPeriods(8);
}

// utf8.c next_hfs_char(): code points HFS+ ignores when comparing names.
const HFS_IGNORED = new Set([
  0x200c, 0x200d, 0x200e, 0x200f, 0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x206a, 0x206b, 0x206c, 0x206d, 0x206e, 0x206f, 0xfeff,
]);

/**
 * utf8.c `is_hfs_dot_generic()`: "." + name, case-insensitively, ignoring the
 * zero-width code points HFS+ ignores, followed by the end or '/'.
 * Malformed UTF-8 reads as the end of the name, as in Git.
 */
export function isHfsDotGeneric(data: Uint8Array, start: number, end: number, needle: string): boolean {
  let i = start;
  let broken = false;
  const at = (k: number): number => (k < end ? data[k] : NUL);
  // utf8.c pick_one_utf8_char(), skipping ignorable code points.
  const nextChar = (): number => {
    for (;;) {
      if (broken) return 0;
      const s0 = at(i);
      let ch: number;
      if (s0 < 0x80) {
        ch = s0;
        i += 1;
      } else if ((s0 & 0xe0) === 0xc0) {
        const s1 = at(i + 1);
        if ((s1 & 0xc0) !== 0x80 || (s0 & 0xfe) === 0xc0) {
          broken = true;
          return 0;
        }
        ch = ((s0 & 0x1f) << 6) | (s1 & 0x3f);
        i += 2;
      } else if ((s0 & 0xf0) === 0xe0) {
        const s1 = at(i + 1);
        const s2 = at(i + 2);
        if (
          (s1 & 0xc0) !== 0x80 ||
          (s2 & 0xc0) !== 0x80 ||
          (s0 === 0xe0 && (s1 & 0xe0) === 0x80) ||
          (s0 === 0xed && (s1 & 0xe0) === 0xa0) ||
          (s0 === 0xef && s1 === 0xbf && (s2 & 0xfe) === 0xbe)
        ) {
          broken = true;
          return 0;
        }
        ch = ((s0 & 0x0f) << 12) | ((s1 & 0x3f) << 6) | (s2 & 0x3f);
        i += 3;
      } else if ((s0 & 0xf8) === 0xf0) {
        const s1 = at(i + 1);
        const s2 = at(i + 2);
        const s3 = at(i + 3);
        if (
          (s1 & 0xc0) !== 0x80 ||
          (s2 & 0xc0) !== 0x80 ||
          (s3 & 0xc0) !== 0x80 ||
          (s0 === 0xf0 && (s1 & 0xf0) === 0x80) ||
          (s0 === 0xf4 && s1 > 0x8f) ||
          s0 > 0xf4
        ) {
          broken = true;
          return 0;
        }
        ch = ((s0 & 0x07) << 18) | ((s1 & 0x3f) << 12) | ((s2 & 0x3f) << 6) | (s3 & 0x3f);
        i += 4;
      } else {
        broken = true;
        return 0;
      }
      if (!HFS_IGNORED.has(ch)) return ch;
    }
  };
  if (nextChar() !== 0x2e) return false;
  for (let k = 0; k < needle.length; k++) {
    const c = nextChar();
    if (c > 127 || lower(c) !== needle.charCodeAt(k)) return false;
  }
  const c = nextChar();
  return c === 0 || c === SLASH;
}

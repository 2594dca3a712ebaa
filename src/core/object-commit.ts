// Commit objects:
//
//     tree <id>
//     parent <id>            (zero or more)
//     author <identity>
//     committer <identity>
//     encoding <name>        (optional; Git writes it when not UTF-8)
//     <other headers>        (mergetag, gpgsig, gpgsig-sha256, ...; values may
//                             continue on lines starting with a space)
//
//     <message>
//
// Reference: commit.c `write_commit_tree()` and `parse_commit_buffer()`;
// gitformat-signature ("Commit signatures", "Mergetag signatures"); fsck.c
// `fsck_commit()` and `verify_headers()` for validation.
//
// Reading keeps everything after the committer line in order, so that every
// object Git writes is serialized back to the same bytes.
import { PackferryError, ErrorCode } from './errors.js';
import { SHA1, type HashAlgorithm } from './hash.js';
import {
  NEWLINE,
  encodeHeaderField,
  endOfLine,
  isHexIdAt,
  lineStartsWith,
  readHeaderFields,
  readIdLine,
  splitHeaderBlock,
  startsWithAt,
  verifyHeaders,
  type HeaderField,
} from './object-headers.js';
import { checkIdentity, parseIdentity, type Identity } from './object-ident.js';
import { ProblemReporter, invalidObject, type ObjectProblem, type ValidateOptions } from './object-problem.js';
import { isObjectId, type ObjectId } from './oid.js';

export interface Commit {
  readonly type: 'commit';
  readonly tree: ObjectId;
  readonly parents: readonly ObjectId[];
  readonly author: Identity;
  readonly committer: Identity;
  /**
   * The `encoding` header when it directly follows the committer (where Git
   * writes it) and is printable ASCII; otherwise it stays in `extraHeaders`.
   */
  readonly encoding?: string;
  /** Headers after committer/encoding, in object order. */
  readonly extraHeaders: readonly HeaderField[];
  /** The bytes after the empty line; undefined for an object without one (no message at all). */
  readonly message: Buffer | undefined;
}

/** What `serializeCommit` needs: a `Commit`, or the fields of a new one. */
export interface CommitInit {
  readonly tree: ObjectId;
  readonly parents?: readonly ObjectId[];
  readonly author: Identity;
  readonly committer: Identity;
  readonly encoding?: string;
  readonly extraHeaders?: readonly HeaderField[];
  /** A string is written as UTF-8. Git ends messages with a newline; nothing is added here. */
  readonly message: Uint8Array | string | undefined;
}

const LF = 0x0a;

function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.length);
}

function isPrintableAscii(value: Buffer): boolean {
  for (const c of value) if (c < 0x20 || c > 0x7e) return false;
  return true;
}

/**
 * Reads a commit. Throws ERR_INVALID_OBJECT (details.problem is the fsck id)
 * when the tree, author and committer lines are not there in that order or an
 * id is malformed; other problems (bad identities, NUL bytes) are left to
 * `validateCommit`, as Git's own reader leaves them to fsck. Identities and
 * headers are views into `data`.
 */
export function parseCommit(data: Uint8Array, algo: HashAlgorithm = SHA1): Commit {
  const buf = asBuffer(data);
  const { lines, message } = splitHeaderBlock('commit', buf);
  let i = 0;
  const offsetOf = (k: number): number => (k < lines.length ? lines[k].start : buf.length);

  if (i >= lines.length || !lineStartsWith(buf, lines[i], 'tree ')) {
    throw invalidObject('commit', 'missingTree', "invalid format - expected 'tree' line", offsetOf(i));
  }
  const tree = readIdLine('commit', buf, lines[i++], 5, algo, 'badTreeSha1');
  const parents: ObjectId[] = [];
  while (i < lines.length && lineStartsWith(buf, lines[i], 'parent ')) {
    parents.push(readIdLine('commit', buf, lines[i++], 7, algo, 'badParentSha1'));
  }
  if (i >= lines.length || !lineStartsWith(buf, lines[i], 'author ')) {
    throw invalidObject('commit', 'missingAuthor', "invalid format - expected 'author' line", offsetOf(i));
  }
  const author = parseIdentity(buf.subarray(lines[i].start + 7, lines[i].eol));
  i++;
  if (i < lines.length && lineStartsWith(buf, lines[i], 'author ')) {
    throw invalidObject('commit', 'multipleAuthors', "invalid format - multiple 'author' lines", offsetOf(i));
  }
  if (i >= lines.length || !lineStartsWith(buf, lines[i], 'committer ')) {
    throw invalidObject('commit', 'missingCommitter', "invalid format - expected 'committer' line", offsetOf(i));
  }
  const committer = parseIdentity(buf.subarray(lines[i].start + 10, lines[i].eol));
  i++;

  const extraHeaders = readHeaderFields(buf, lines, i);
  const first = extraHeaders[0];
  if (first !== undefined && first.key === 'encoding' && first.value !== undefined && isPrintableAscii(first.value)) {
    return { type: 'commit', tree, parents, author, committer, encoding: first.value.toString('latin1'), extraHeaders: extraHeaders.slice(1), message };
  }
  return { type: 'commit', tree, parents, author, committer, extraHeaders, message };
}

/** A commit's links: what graph walks need. */
export interface CommitLinks {
  readonly tree: ObjectId;
  readonly parents: ObjectId[];
}

function idAt(buf: Buffer, start: number, algo: HashAlgorithm): ObjectId | undefined {
  const end = start + algo.hexLength;
  if (!isHexIdAt(buf, start, end, algo) || buf[end] !== LF) return undefined;
  const hex = buf.toString('latin1', start, end);
  return /[A-F]/.test(hex) ? hex.toLowerCase() : hex;
}

/**
 * Reads only a commit's tree and parents, as Git's `parse_commit_buffer()`
 * does, without looking at the rest: the fast path for graph walks over
 * millions of commits. Throws ERR_INVALID_OBJECT if the first line is not a
 * tree line or a parent line is malformed.
 */
export function parseCommitLinks(data: Uint8Array, algo: HashAlgorithm = SHA1): CommitLinks {
  const buf = asBuffer(data);
  const tree = startsWithAt(buf, 0, 'tree ') ? idAt(buf, 5, algo) : undefined;
  if (tree === undefined) {
    const problem = startsWithAt(buf, 0, 'tree ') ? 'badTreeSha1' : 'missingTree';
    throw invalidObject('commit', problem, "invalid format - expected 'tree' line", 0);
  }
  const parents: ObjectId[] = [];
  let p = 5 + algo.hexLength + 1;
  while (startsWithAt(buf, p, 'parent ')) {
    const parent = idAt(buf, p + 7, algo);
    if (parent === undefined) throw invalidObject('commit', 'badParentSha1', "invalid 'parent' line format - bad sha1", p);
    parents.push(parent);
    p += 7 + algo.hexLength + 1;
  }
  return { tree, parents };
}

function identityBytes(what: string, identity: Identity): Buffer {
  const raw = identity?.raw;
  if (!(raw instanceof Uint8Array) || raw.indexOf(LF) >= 0) {
    throw new PackferryError(ErrorCode.InvalidObject, `commit ${what} must be an identity without newlines`);
  }
  return raw;
}

function idBytes(what: string, id: ObjectId, algo: HashAlgorithm): Buffer {
  if (typeof id !== 'string' || !isObjectId(id, algo)) {
    throw new PackferryError(ErrorCode.InvalidObject, `commit ${what} is not a ${algo.name} object id: ${JSON.stringify(id)}`);
  }
  return Buffer.from(id, 'latin1');
}

/** Writes a commit's bytes. A parsed commit is written back byte for byte. */
export function serializeCommit(commit: CommitInit, algo: HashAlgorithm = SHA1): Buffer {
  const out: Buffer[] = [Buffer.from('tree '), idBytes('tree', commit.tree, algo), NEWLINE];
  for (const parent of commit.parents ?? []) out.push(Buffer.from('parent '), idBytes('parent', parent, algo), NEWLINE);
  out.push(Buffer.from('author '), identityBytes('author', commit.author), NEWLINE);
  out.push(Buffer.from('committer '), identityBytes('committer', commit.committer), NEWLINE);
  if (commit.encoding !== undefined) {
    if (typeof commit.encoding !== 'string' || !/^[\x20-\x7e]*$/.test(commit.encoding)) {
      throw new PackferryError(ErrorCode.InvalidObject, `commit encoding must be printable ASCII: ${JSON.stringify(commit.encoding)}`);
    }
    out.push(Buffer.from(`encoding ${commit.encoding}\n`, 'latin1'));
  }
  for (const field of commit.extraHeaders ?? []) encodeHeaderField(field, out);
  const { message } = commit;
  if (message !== undefined) {
    out.push(NEWLINE, typeof message === 'string' ? Buffer.from(message, 'utf8') : asBuffer(message));
  }
  return Buffer.concat(out);
}

// ---- validation: fsck.c ---------------------------------------------------

/** Checks a commit as `git fsck` does (fsck.c `fsck_commit()`). Never throws for bad input. */
export function validateCommit(data: Uint8Array, options: ValidateOptions & { algo?: HashAlgorithm } = {}): ObjectProblem[] {
  const buf = asBuffer(data);
  const algo = options.algo ?? SHA1;
  const reporter = new ProblemReporter(options);
  const problems = reporter.problems;
  if (verifyHeaders(buf, reporter)) return problems;
  const len = buf.length;
  let p = 0;

  if (!startsWithAt(buf, p, 'tree ')) {
    reporter.report('missingTree', "invalid format - expected 'tree' line", p);
    return problems;
  }
  p += 5;
  if (!isHexIdAt(buf, p, p + algo.hexLength, algo) || buf[p + algo.hexLength] !== LF) {
    if (reporter.report('badTreeSha1', "invalid 'tree' line format - bad sha1", p)) return problems;
  }
  p = endOfLine(buf, p) + 1;
  while (p < len && startsWithAt(buf, p, 'parent ')) {
    p += 7;
    if (!isHexIdAt(buf, p, p + algo.hexLength, algo) || buf[p + algo.hexLength] !== LF) {
      if (reporter.report('badParentSha1', "invalid 'parent' line format - bad sha1", p)) return problems;
    }
    p = endOfLine(buf, p) + 1;
  }
  let authors = 0;
  while (p < len && startsWithAt(buf, p, 'author ')) {
    authors++;
    const eol = endOfLine(buf, p);
    if (checkIdentity(buf, p + 7, eol, reporter)) return problems;
    p = eol + 1;
  }
  if (authors < 1) {
    if (reporter.report('missingAuthor', "invalid format - expected 'author' line", p)) return problems;
  } else if (authors > 1) {
    if (reporter.report('multipleAuthors', "invalid format - multiple 'author' lines", p)) return problems;
  }
  if (p >= len || !startsWithAt(buf, p, 'committer ')) {
    reporter.report('missingCommitter', "invalid format - expected 'committer' line", p);
    return problems;
  }
  const eol = endOfLine(buf, p);
  if (checkIdentity(buf, p + 10, eol, reporter)) return problems;
  const nul = buf.indexOf(0);
  if (nul >= 0) reporter.report('nulInCommit', 'NUL byte in the commit object body', nul);
  return problems;
}

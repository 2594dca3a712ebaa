// Checking objects as they arrive, as Git checks them with
// receive.fsckObjects / transfer.fsckObjects (index-pack --strict): each
// commit, tree and tag when it is in hand (fsck.c fsck_object()), and — once
// every object is known — the blobs that trees name .gitmodules or
// .gitattributes (fsck.c fsck_finish(), fsck_blob(): the .gitmodules rules
// of submodule-rules.ts over the config syntax of config-parse.ts, and
// .gitattributes' size and line-length limits of Git 2.39.1+). A blob is
// only known to be special once a tree names it, maybe in another thread or
// already in the store, hence the two steps: an FsckCollector per thread
// gathers problems and the ids of special blobs; `checkSpecialBlob` reads
// each such blob once, at the end, wherever it is.
//
// Problems are graded as Git grades them (object-problem.ts); a transfer
// check is strict (warnings are errors) and per-id levels relax it, as
// `receive.fsck.<msg-id>` does. Objects on the skip list report nothing
// (`receive.fsck.skipList`). Pure: no I/O here.
import { parseGitConfig } from './config-parse.js';
import { PackferryError, ErrorCode } from './errors.js';
import type { ObjectId } from './oid.js';
import { validateCommit } from './object-commit.js';
import { checkFsckOverride, hasErrors, ProblemReporter, severitiesFrom, type FsckLevel, type FsckMsgId, type ObjectProblem, type ValidateOptions } from './object-problem.js';
import { validateTag } from './object-tag.js';
import { validateTree, type SpecialBlobKind, type TreeLinkSink } from './object-tree.js';
import { OBJECT_TYPES, type ObjectType } from './object-type.js';
import { checkSubmoduleName, checkSubmoduleUrl, looksLikeCommandLineOption, parseSubmoduleUpdateType } from './submodule-rules.js';

/** How objects are checked: Git's grades (strict for transfers), per-id levels, and objects exempted. */
export interface FsckOptions extends ValidateOptions {
  /** Objects whose problems are not reported, as Git's `fsck.skipList` (lowercase hex ids). */
  skipList?: ReadonlySet<ObjectId>;
}

/** A problem of one object, as Git prints it: "object <oid>: <id>: <message>". */
export interface FsckProblem extends ObjectProblem {
  readonly oid: ObjectId;
  readonly type: ObjectType;
  /** Position of the object's entry in the pack it came in, when known (reports follow pack order). */
  readonly position?: number;
}

/** What checking a set of objects found (a structured-clone-able value: threads send it back). */
export interface FsckFindings {
  problems: FsckProblem[];
  /** Problems not kept beyond `MAX_KEPT_PROBLEMS`. */
  dropped: number;
  /** How many of those were errors. */
  droppedErrors: number;
  /** Blobs named .gitmodules by a tree (fsck.c gitmodules_found). */
  gitmodules: ObjectId[];
  /** Blobs named .gitattributes by a tree (fsck.c gitattributes_found). */
  gitattributes: ObjectId[];
}

/** Problems one collector keeps: a hostile pack of a million bad trees must not fill memory. */
const MAX_KEPT_PROBLEMS = 1000;

/** Git reads a .gitmodules blob whole; one larger than core.bigFileThreshold (512 MiB) it does not hold (gitmodulesLarge). */
export const GITMODULES_MAX_SIZE = 512 * 1024 * 1024;
/** attr.h ATTR_MAX_FILE_SIZE (Git 2.39.1). */
export const GITATTRIBUTES_MAX_SIZE = 100 * 1024 * 1024;
/** attr.h ATTR_MAX_LINE_LENGTH (Git 2.39.1). */
export const GITATTRIBUTES_MAX_LINE_LENGTH = 2048;

/** The options of a transfer check (strict, as index-pack --strict), with `<msg-id>=<level>` overrides. */
export function transferFsckOptions(levels: Partial<Record<FsckMsgId, FsckLevel>> = {}, skipList?: ReadonlySet<ObjectId>): FsckOptions {
  return { strict: true, severities: severitiesFrom(levels), skipList };
}

/**
 * Reads `<msg-id>=<level>` settings (Git's `--strict=` / `receive.fsck.<msg-id>`
 * syntax, one per item) into levels; `skipList=<file>` items are returned
 * as paths for the caller to read. Throws ERR_USAGE for anything else.
 */
export function parseFsckSettings(items: readonly string[]): { levels: Partial<Record<FsckMsgId, FsckLevel>>; skipLists: string[] } {
  const levels: Partial<Record<FsckMsgId, FsckLevel>> = {};
  const skipLists: string[] = [];
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq < 0) throw new PackferryError(ErrorCode.Usage, `expected <msg-id>=<level> or skipList=<file>, not ${JSON.stringify(item)}`);
    const key = item.slice(0, eq);
    const value = item.slice(eq + 1);
    if (key.toLowerCase() === 'skiplist') {
      if (value === '') throw new PackferryError(ErrorCode.Usage, 'skipList needs a file');
      skipLists.push(value);
      continue;
    }
    const { id, level } = checkFsckOverride(key, value.toLowerCase());
    levels[id] = level;
  }
  return { levels, skipLists };
}

/** A skip list file as Git reads one: an object id per line; '#' comments and blank lines are allowed. */
export function parseSkipList(text: string, source = 'skip list'): Set<ObjectId> {
  const ids = new Set<ObjectId>();
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') return;
    if (!/^[0-9a-fA-F]{40}$/.test(line)) throw new PackferryError(ErrorCode.Usage, `${source}:${i + 1}: invalid object id ${JSON.stringify(line.slice(0, 80))}`);
    ids.add(line.toLowerCase());
  });
  return ids;
}

/** Raw id bytes to lowercase hex. */
function hexOf(data: Uint8Array, at: number, length: number): ObjectId {
  return Buffer.from(data.buffer, data.byteOffset + at, length).toString('hex');
}

/**
 * Collects what one thread's objects show: call `checkObject` with each
 * whole commit, tree and tag (blobs are skipped: only special ones are
 * checked, at the end), then `findings()`.
 */
export class FsckCollector {
  private readonly problems: FsckProblem[] = [];
  private dropped = 0;
  private droppedErrors = 0;
  private readonly gitmodules = new Set<ObjectId>();
  private readonly gitattributes = new Set<ObjectId>();
  private readonly treeOptions;
  private readonly hashLength: number;

  /**
   * `treeLinks`: where the trees checked put the ids they name (the
   * thread's link collection), gathered in the same pass as the check: the
   * caller then skips collecting the links of trees itself.
   */
  constructor(
    private readonly options: FsckOptions,
    hashLength = 20,
    readonly treeLinks?: TreeLinkSink,
  ) {
    this.hashLength = hashLength;
    const onSpecialBlob = (kind: SpecialBlobKind, data: Buffer, at: number) =>
      (kind === 'gitmodules' ? this.gitmodules : this.gitattributes).add(hexOf(data, at, hashLength));
    this.treeOptions = { strict: options.strict, severities: options.severities, onSpecialBlob, links: treeLinks };
  }

  /** Checks a whole object of pack type `packType` (1 commit, 2 tree, 3 blob, 4 tag) whose raw id is `oid[oidAt..]`. */
  checkObject(packType: number, data: Uint8Array, oid: Uint8Array, oidAt = 0, position?: number): void {
    let problems: ObjectProblem[];
    switch (packType) {
      case 1:
        problems = validateCommit(data, this.options);
        break;
      case 2:
        problems = validateTree(data, this.treeOptions);
        break;
      case 4:
        problems = validateTag(data, this.options);
        break;
      default:
        return;
    }
    if (problems.length === 0) return;
    const hex = hexOf(oid, oidAt, this.hashLength);
    if (this.options.skipList?.has(hex)) return;
    const type = OBJECT_TYPES[packType - 1];
    for (const p of problems) this.keep({ ...p, oid: hex, type, ...(position === undefined ? {} : { position }) });
  }

  private keep(problem: FsckProblem): void {
    if (this.problems.length < MAX_KEPT_PROBLEMS) {
      this.problems.push(problem);
    } else {
      this.dropped++;
      if (problem.severity === 'error') this.droppedErrors++;
    }
  }

  findings(): FsckFindings {
    return { problems: this.problems, dropped: this.dropped, droppedErrors: this.droppedErrors, gitmodules: [...this.gitmodules], gitattributes: [...this.gitattributes] };
  }
}

/** Several threads' findings as one, problems in pack order. */
export function mergeFindings(parts: readonly FsckFindings[]): FsckFindings {
  const problems = parts.flatMap((p) => p.problems);
  const at = (p: FsckProblem) => p.position ?? Number.MAX_SAFE_INTEGER;
  problems.sort((a, b) => at(a) - at(b));
  return {
    problems,
    dropped: parts.reduce((n, p) => n + p.dropped, 0),
    droppedErrors: parts.reduce((n, p) => n + p.droppedErrors, 0),
    gitmodules: [...new Set(parts.flatMap((p) => p.gitmodules))],
    gitattributes: [...new Set(parts.flatMap((p) => p.gitattributes))],
  };
}

/** fsck.c fsck_gitmodules_fn() over every variable of a .gitmodules blob. */
function checkGitmodules(data: Uint8Array, reporter: ProblemReporter): void {
  const text = (latin1: string) => Buffer.from(latin1, 'latin1').toString('utf8');
  const cString = (s: string) => {
    const nul = s.indexOf('\0');
    return nul < 0 ? s : s.slice(0, nul);
  };
  const result = parseGitConfig(data, (fullName, rawValue) => {
    const name = cString(fullName);
    // parse_config_key(var, "submodule", &subsection, ...): only "submodule.<name>.<key>".
    if (!name.startsWith('submodule.')) return;
    const rest = name.slice('submodule'.length);
    const dot = rest.lastIndexOf('.');
    if (dot === 0) return;
    const subsection = rest.slice(1, dot);
    const key = rest.slice(dot + 1);
    const value = rawValue === null ? null : cString(rawValue);
    if (!checkSubmoduleName(subsection)) reporter.report('gitmodulesName', `disallowed submodule name: ${text(subsection)}`);
    if (value === null) return;
    if (key === 'url' && !checkSubmoduleUrl(value)) reporter.report('gitmodulesUrl', `disallowed submodule url: ${text(value)}`);
    if (key === 'path' && looksLikeCommandLineOption(value)) reporter.report('gitmodulesPath', `disallowed submodule path: ${text(value)}`);
    if (key === 'update' && parseSubmoduleUpdateType(value) === 'command') reporter.report('gitmodulesUpdate', `disallowed submodule update setting: ${text(value)}`);
  });
  if (!result.ok) reporter.report('gitmodulesParse', 'could not parse gitmodules blob');
}

/** fsck.c fsck_blob() for .gitattributes (Git 2.39.1): lines up to a NUL, none of 2048 bytes or more. */
function checkGitattributes(data: Uint8Array, reporter: ProblemReporter): void {
  let end = data.indexOf(0);
  if (end < 0) end = data.length;
  for (let p = 0; p < end; ) {
    let eol = data.indexOf(0x0a, p);
    if (eol < 0 || eol > end) eol = end;
    if (eol - p >= GITATTRIBUTES_MAX_LINE_LENGTH) {
      reporter.report('gitattributesLineLength', '.gitattributes has too long lines to parse');
      return;
    }
    p = eol + 1;
  }
}

/**
 * The end of a check (fsck.c fsck_finish → fsck_blobs → fsck_blob) for one
 * object that a tree names `kind`: `object` is what it is — undefined when
 * it is nowhere to be found, `data` undefined when it is larger than can be
 * read (`size` then says how large).
 */
export function checkSpecialBlob(
  kind: SpecialBlobKind,
  oid: ObjectId,
  object: { type: ObjectType; size: number; data?: Uint8Array } | undefined,
  options: FsckOptions,
): FsckProblem[] {
  if (options.skipList?.has(oid)) return [];
  const reporter = new ProblemReporter(options);
  const gitmodules = kind === 'gitmodules';
  if (object === undefined) {
    reporter.report(gitmodules ? 'gitmodulesMissing' : 'gitattributesMissing', `unable to read .${kind} blob`);
  } else if (object.type !== 'blob') {
    reporter.report(gitmodules ? 'gitmodulesBlob' : 'gitattributesBlob', `non-blob found at .${kind}`);
  } else if (gitmodules) {
    if (object.data === undefined || object.size > GITMODULES_MAX_SIZE) reporter.report('gitmodulesLarge', '.gitmodules too large to parse');
    else checkGitmodules(object.data, reporter);
  } else if (object.data === undefined || object.size > GITATTRIBUTES_MAX_SIZE) {
    reporter.report('gitattributesLarge', '.gitattributes too large to parse');
  } else {
    checkGitattributes(object.data, reporter);
  }
  const type = object?.type ?? 'blob';
  return reporter.problems.map((p) => ({ ...p, oid, type }));
}

/** Largest special blob worth reading: above it, `checkSpecialBlob` reports it too large without its data. */
export function specialBlobReadLimit(kind: SpecialBlobKind): number {
  return kind === 'gitmodules' ? GITMODULES_MAX_SIZE : GITATTRIBUTES_MAX_SIZE;
}

/** One problem as Git's fsck_error_function() prints it: "error: object <oid>: <id>: <message>" (or "warning: ..."). */
export function formatFsckProblem(p: FsckProblem): string {
  return `${p.severity}: object ${p.oid}: ${p.id}: ${p.message}`;
}

/** Ids of the problems graded as errors, each once, in order. */
export function errorIds(problems: readonly FsckProblem[]): FsckMsgId[] {
  return [...new Set(problems.filter((p) => p.severity === 'error').map((p) => p.id))];
}

/**
 * The error for objects that fail the check (ERR_FSCK): names the first
 * bad object and its id; `details.problems` holds them all (errors and
 * warnings, in pack order) and `details.ids` the ids of the errors.
 */
export function fsckError(problems: readonly FsckProblem[], droppedErrors = 0, hint?: string): PackferryError {
  const errors = problems.filter((p) => p.severity === 'error');
  const first = errors[0];
  const more = errors.length - 1 + droppedErrors;
  const message =
    first === undefined
      ? 'fsck error in packed objects'
      : `fsck error in packed object ${first.oid}: ${first.id}: ${first.message}${more > 0 ? ` (and ${more} more ${more === 1 ? 'problem' : 'problems'})` : ''}`;
  return new PackferryError(ErrorCode.FsckFailed, message, { hint, details: { problems, droppedErrors, ids: errorIds(problems) } });
}

export { checkFsckOverride, hasErrors, type FsckLevel, type FsckMsgId };

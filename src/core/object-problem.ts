// Problems found in Git objects, named and graded as `git fsck` names and
// grades them, so that reports and `fsck.<msg-id>`-style overrides mean the
// same thing to people who know Git.
//
// Reference: Git's fsck.h (FOREACH_FSCK_MSG_ID) and fsck.c `report()`;
// Documentation/fsck-msgids.txt. The ids are Git's camelCased message ids.
import { PackferryError, ErrorCode } from './errors.js';
import type { ObjectType } from './object-type.js';

/**
 * Git's default grade for each check (fsck.h). `fatal` cannot be lowered;
 * `info` is reported as a warning but is never raised to an error by
 * `strict`; `ignore` is only reported when raised through `severities`.
 */
export const FSCK_DEFAULT_SEVERITY = {
  // fatal: the header region cannot be scanned safely
  nulInHeader: 'fatal',
  unterminatedHeader: 'fatal',
  // errors
  badHeaderContinuation: 'error',
  badDate: 'error',
  badDateOverflow: 'error',
  badEmail: 'error',
  badGpgsig: 'error',
  badName: 'error',
  badObjectSha1: 'error',
  badParentSha1: 'error',
  badTimezone: 'error',
  badTree: 'error',
  badTreeSha1: 'error',
  badType: 'error',
  duplicateEntries: 'error',
  // .gitmodules and .gitattributes blobs (checked once every object is known: fsck.c fsck_finish)
  gitmodulesMissing: 'error',
  gitmodulesBlob: 'error',
  gitmodulesLarge: 'error',
  gitmodulesName: 'error',
  gitmodulesSymlink: 'error',
  gitmodulesUrl: 'error',
  gitmodulesPath: 'error',
  gitmodulesUpdate: 'error',
  gitattributesMissing: 'error',
  gitattributesLarge: 'error',
  gitattributesLineLength: 'error',
  gitattributesBlob: 'error',
  missingAuthor: 'error',
  missingCommitter: 'error',
  missingEmail: 'error',
  missingNameBeforeEmail: 'error',
  missingObject: 'error',
  missingSpaceBeforeDate: 'error',
  missingSpaceBeforeEmail: 'error',
  missingTag: 'error',
  missingTagEntry: 'error',
  missingTree: 'error',
  missingType: 'error',
  missingTypeEntry: 'error',
  multipleAuthors: 'error',
  treeNotSorted: 'error',
  unknownType: 'error', // (an object of no known type: a pack cannot carry one, but Git takes the setting)
  zeroPaddedDate: 'error',
  // warnings (errors under `strict`)
  emptyName: 'warning',
  fullPathname: 'warning',
  hasDot: 'warning',
  hasDotdot: 'warning',
  hasDotgit: 'warning',
  largePathname: 'warning',
  nullSha1: 'warning',
  nulInCommit: 'warning',
  zeroPaddedFilemode: 'warning',
  // infos (reported as warnings, never raised by `strict`)
  badFilemode: 'info',
  badTagName: 'info',
  gitmodulesParse: 'info',
  gitattributesSymlink: 'info',
  gitignoreSymlink: 'info',
  mailmapSymlink: 'info',
  missingTaggerEntry: 'info',
  // ignored unless raised (git mktag raises it to an error)
  extraHeaderEntry: 'ignore',
} as const satisfies Record<string, 'fatal' | 'error' | 'warning' | 'info' | 'ignore'>;

/** A stable problem id: Git's fsck message id, camelCased as in `fsck.<msg-id>`. */
export type FsckMsgId = keyof typeof FSCK_DEFAULT_SEVERITY;

/** The grades a check can be set to, in Git's words (`fsck.<msg-id>=error|warn|ignore`). */
export type FsckLevel = 'error' | 'warn' | 'ignore';

const LOWERCASE_IDS = new Map(Object.keys(FSCK_DEFAULT_SEVERITY).map((id) => [id.toLowerCase(), id as FsckMsgId]));

/** A message id as Git reads it (case does not matter: "hasdotgit" is hasDotgit); undefined when there is no such id. */
export function parseFsckMsgId(text: string): FsckMsgId | undefined {
  return LOWERCASE_IDS.get(text.toLowerCase());
}

/**
 * Checks one `<msg-id>=<level>` override as Git's fsck_set_msg_type() does:
 * the id must exist, the level be error, warn or ignore, and a fatal id
 * cannot be lowered. Returns the id in its canonical spelling.
 */
export function checkFsckOverride(id: string, level: string): { id: FsckMsgId; level: FsckLevel } {
  const known = parseFsckMsgId(id);
  if (known === undefined) throw new PackferryError(ErrorCode.Usage, `unknown fsck message id ${JSON.stringify(id)}`, { hint: "the ids are Git's (git help fsck, FSCK MESSAGES), e.g. hasDotgit, zeroPaddedFilemode, gitmodulesUrl" });
  if (level !== 'error' && level !== 'warn' && level !== 'ignore') {
    throw new PackferryError(ErrorCode.Usage, `unknown fsck message type ${JSON.stringify(level)} for ${known}: use error, warn or ignore`);
  }
  if (level !== 'error' && FSCK_DEFAULT_SEVERITY[known] === 'fatal') throw new PackferryError(ErrorCode.Usage, `cannot demote ${known} to ${level}: it is fatal`);
  return { id: known, level };
}

/** Per-id levels as `ValidateOptions.severities` takes them. */
export function severitiesFrom(levels: Partial<Record<FsckMsgId, FsckLevel>>): Partial<Record<FsckMsgId, ProblemSeverity | 'ignore'>> {
  const out: Partial<Record<FsckMsgId, ProblemSeverity | 'ignore'>> = {};
  for (const [id, level] of Object.entries(levels) as [FsckMsgId, FsckLevel][]) out[id] = level === 'warn' ? 'warning' : level;
  return out;
}

/** How a reported problem counts: an `error` makes the object invalid. */
export type ProblemSeverity = 'error' | 'warning';

export interface ObjectProblem {
  readonly id: FsckMsgId;
  readonly severity: ProblemSeverity;
  /** Git's wording, e.g. "not properly sorted". */
  readonly message: string;
  /** Byte offset in the object's data where the problem was first seen, when known. */
  readonly offset?: number;
}

export interface ValidateOptions {
  /** As `git fsck --strict`: warnings become errors, and legacy mode 100664 is a bad file mode. */
  strict?: boolean;
  /** Per-id overrides, as Git's `fsck.<msg-id>` config; fatal ids cannot be lowered. */
  severities?: Partial<Record<FsckMsgId, ProblemSeverity | 'ignore'>>;
}

/** Collects problems for one object, grading them as fsck.c's `fsck_msg_type()` and `report()` do. */
export class ProblemReporter {
  readonly problems: ObjectProblem[] = [];
  private readonly strict: boolean;
  private readonly severities: ValidateOptions['severities'];

  constructor(options: ValidateOptions = {}) {
    this.strict = options.strict === true;
    this.severities = options.severities;
  }

  get isStrict(): boolean {
    return this.strict;
  }

  /** Grade of `id` under these options, or undefined when it is ignored. */
  severityOf(id: FsckMsgId): ProblemSeverity | undefined {
    const base = FSCK_DEFAULT_SEVERITY[id];
    const override = this.severities?.[id];
    if (base === 'fatal') return 'error';
    if (override !== undefined) return override === 'ignore' ? undefined : override;
    switch (base) {
      case 'error':
        return 'error';
      case 'warning':
        return this.strict ? 'error' : 'warning';
      case 'info':
        return 'warning';
      default:
        return undefined;
    }
  }

  /** Records a problem; returns true when it is an error (fsck stops checking the object there). */
  report(id: FsckMsgId, message: string, offset?: number): boolean {
    const severity = this.severityOf(id);
    if (severity === undefined) return false;
    this.problems.push(offset === undefined ? { id, severity, message } : { id, severity, message, offset });
    return severity === 'error';
  }
}

/** True if any problem is an error. */
export function hasErrors(problems: readonly ObjectProblem[]): boolean {
  return problems.some((p) => p.severity === 'error');
}

/** The error thrown for bytes that cannot be read as an object of the given type. */
export function invalidObject(type: ObjectType, id: FsckMsgId, message: string, offset?: number): PackferryError {
  return new PackferryError(ErrorCode.InvalidObject, `invalid ${type} object: ${message}${offset === undefined ? '' : ` (at byte ${offset})`}`, {
    details: { objectType: type, problem: id, offset },
  });
}

/** The error thrown by strict parsing when validation found errors. */
export function objectProblemsError(type: ObjectType, problems: readonly ObjectProblem[]): PackferryError {
  const errors = problems.filter((p) => p.severity === 'error');
  const first = errors[0] ?? problems[0];
  const summary = first === undefined ? 'no problems' : `${first.id}: ${first.message}`;
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : '';
  return new PackferryError(ErrorCode.InvalidObject, `invalid ${type} object: ${summary}${more}`, {
    details: { objectType: type, problem: first?.id, offset: first?.offset, problems },
  });
}

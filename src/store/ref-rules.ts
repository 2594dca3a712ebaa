// What a ref may point at, as Git's refs layer decides it when a ref is
// written (refs/files-backend.c write_ref_to_lockfile(), is_branch()): a
// branch — HEAD or a ref under refs/heads/ — must name a commit. Git's
// receive-pack answers "failed to update ref" for such a ref and says why
// ("error: cannot update ref 'R': trying to write non-commit object O to
// branch 'R'"), whatever receive.fsckObjects says: this rule cannot be
// relaxed. One function, called by the server's receive-pack, the mirror's
// store target and `store verify`.
//
// And which sets of refs one repository can hold (refs.c
// check_refname_format, refs_verify_refname_available; the rules themselves
// are core/refs.ts): what `store verify` reports a store for, since Git's
// clients fail on such a set or drop refs from it.
import { directoryFileConflict, isRefName } from '../core/refs.js';
import type { ObjectId } from '../core/oid.js';
import type { ObjectType } from '../core/object.js';

/** Git's message when `ref` may not point at `oid`, an object of `type`; undefined when it may (or the type is unknown). */
export function refTargetProblem(ref: string, oid: ObjectId, type: ObjectType | undefined): string | undefined {
  const branch = ref === 'HEAD' || ref.startsWith('refs/heads/');
  if (!branch || type === undefined || type === 'commit') return undefined;
  return `trying to write non-commit object ${oid} to branch '${ref}'`;
}

export interface RefSetProblem {
  kind: 'bad-name' | 'duplicate' | 'directory-file';
  /** The refs concerned (two for a directory/file conflict). */
  refs: string[];
  /** What is wrong and what Git's clients do with it. */
  message: string;
}

/**
 * Why `names` (the refs of one repository) is not a set Git can hold: names
 * Git refuses, names listed twice, and directory/file conflicts (each pair
 * once, the ref above first). Empty when it is.
 */
export function refSetProblems(names: readonly string[]): RefSetProblem[] {
  const problems: RefSetProblem[] = [];
  const seen = new Set<string>();
  const twice = new Set<string>();
  for (const name of names) {
    if (seen.has(name)) {
      if (!twice.has(name)) problems.push({ kind: 'duplicate', refs: [name], message: `ref ${name} is listed twice: \`git clone\` fails ("multiple updates for ref '${name}' not allowed")` });
      twice.add(name);
      continue;
    }
    seen.add(name);
    if (!isRefName(name)) {
      problems.push({
        kind: 'bad-name',
        refs: [name],
        message: `ref ${JSON.stringify(name)} is not a valid ref name (git check-ref-format refuses it): Git's clients leave it out ("Ignoring funny ref") or fail, and a push of it is refused ("funny refname")`,
      });
    }
  }
  const sorted = [...seen].sort();
  for (const name of sorted) {
    const above = directoryFileConflict(name, seen, sorted);
    // Reported from the ref below, so each pair once.
    if (above === undefined || !name.startsWith(`${above}/`)) continue;
    problems.push({
      kind: 'directory-file',
      refs: [above, name],
      message: `refs ${above} and ${name} cannot both exist (a directory/file conflict: Git keeps ${above} as a file, which ${name} needs as a directory): \`git clone\` fails ("cannot process '${above}' and '${name}' at the same time")`,
    });
  }
  return problems;
}

// What a ref may point at, as Git's refs layer decides it when a ref is
// written (refs/files-backend.c write_ref_to_lockfile(), is_branch()): a
// branch — HEAD or a ref under refs/heads/ — must name a commit. Git's
// receive-pack answers "failed to update ref" for such a ref and says why
// ("error: cannot update ref 'R': trying to write non-commit object O to
// branch 'R'"), whatever receive.fsckObjects says: this rule cannot be
// relaxed. One function, called by the server's receive-pack, the mirror's
// store target and `store verify`.
import type { ObjectId } from '../core/oid.js';
import type { ObjectType } from '../core/object.js';

/** Git's message when `ref` may not point at `oid`, an object of `type`; undefined when it may (or the type is unknown). */
export function refTargetProblem(ref: string, oid: ObjectId, type: ObjectType | undefined): string | undefined {
  const branch = ref === 'HEAD' || ref.startsWith('refs/heads/');
  if (!branch || type === undefined || type === 'commit') return undefined;
  return `trying to write non-commit object ${oid} to branch '${ref}'`;
}

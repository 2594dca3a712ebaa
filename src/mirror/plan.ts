// Planning a sync: compare the source's refs with the target's, through the
// filter, and decide each ref's update (Kalandra's ref diff, with prune,
// safe mode and hostile names handled).
import { isRefName, ZERO_ID } from '../core/refs.js';
import type { ObjectId } from '../core/oid.js';
import type { AdvertisedRef } from '../protocol/advertisement.js';
import { PACKFERRY_NAMESPACE, type RefFilter } from './ref-filter.js';

export type UpdateKind = 'create' | 'update' | 'delete';

export interface RefUpdate {
  name: string;
  kind: UpdateKind;
  /** Target's value now (ZERO_ID for a create). */
  oldOid: ObjectId;
  /** Source's value (ZERO_ID for a delete). */
  newOid: ObjectId;
  /** For updates: is the old value an ancestor of the new one? undefined until known. */
  fastForward?: boolean | undefined;
  /** Safe mode: where the old tip is preserved on the target. */
  attic?: string;
}

export interface SyncPlan {
  updates: RefUpdate[];
  /** Refs in both that already agree. */
  upToDate: string[];
  /** Source refs refused because their names are not valid Git ref names. */
  invalidNames: string[];
}

export interface PlanOptions {
  filter: RefFilter;
  prune: boolean;
}

export function planSync(source: AdvertisedRef[], target: AdvertisedRef[], options: PlanOptions): SyncPlan {
  const targetByName = new Map<string, ObjectId>();
  for (const r of target) if (options.filter.matches(r.name)) targetByName.set(r.name, r.oid);
  const updates: RefUpdate[] = [];
  const upToDate: string[] = [];
  const invalidNames: string[] = [];
  const seen = new Set<string>();
  for (const r of source) {
    if (!options.filter.matches(r.name)) continue;
    if (!isRefName(r.name)) {
      invalidNames.push(r.name);
      continue;
    }
    seen.add(r.name);
    const old = targetByName.get(r.name);
    if (old === undefined) updates.push({ name: r.name, kind: 'create', oldOid: ZERO_ID, newOid: r.oid });
    else if (old !== r.oid) updates.push({ name: r.name, kind: 'update', oldOid: old, newOid: r.oid });
    else upToDate.push(r.name);
  }
  if (options.prune) {
    for (const [name, oid] of targetByName) {
      if (!seen.has(name) && !invalidNames.includes(name)) updates.push({ name, kind: 'delete', oldOid: oid, newOid: ZERO_ID });
    }
  }
  updates.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { updates, upToDate, invalidNames };
}

/** The names that hold `name` as a directory: refs, refs/heads for refs/heads/x. */
function parentNames(name: string): string[] {
  const out: string[] = [];
  for (let i = name.indexOf('/'); i >= 0; i = name.indexOf('/', i + 1)) out.push(name.slice(0, i));
  return out;
}

/**
 * Does the plan delete a ref whose name another update needs as a directory,
 * or create one inside a directory that a deletion empties (refs/heads/x
 * deleted and refs/heads/x/y created, or the reverse)? Git's files backend
 * cannot do both in one atomic transaction ("cannot lock ref ... exists").
 */
export function hasDirectoryConflict(updates: RefUpdate[]): boolean {
  const deleted = new Set(updates.filter((u) => u.kind === 'delete').map((u) => u.name));
  if (deleted.size === 0) return false;
  const written = updates.filter((u) => u.kind !== 'delete').map((u) => u.name);
  const writtenSet = new Set(written);
  return written.some((n) => parentNames(n).some((p) => deleted.has(p))) || [...deleted].some((n) => parentNames(n).some((p) => writtenSet.has(p)));
}

/** Where safe mode keeps a tip that an update or delete would lose: refs/packferry/attic/<ref without refs/>/<id>. */
export function atticRefFor(name: string, oid: ObjectId): string {
  return `${PACKFERRY_NAMESPACE}attic/${name.replace(/^refs\//, '')}/${oid}`;
}

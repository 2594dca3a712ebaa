// Fast-forward detection without a local repository. While the pack for a
// target streams past, its commits are collected (whole ones, and deltas
// whose base commit was seen earlier in the pack); then "is the target's old
// tip an ancestor of the new one?" is answered by walking parents from the
// new tip through those commits. Commits outside the pack are ones the
// target already has: reaching one without having met the old tip leaves
// the answer unknown, and unknown is treated as "not a fast-forward" (safe
// mode keeps the old tip).
import { applyDelta } from '../pack/delta.js';
import { PackObjectType } from '../pack/format.js';
import { PackScanner, type ScannedEntry } from '../pack/scanner.js';
import { hashObject, parseCommitLinks } from '../core/object.js';
import type { ObjectId } from '../core/oid.js';

/** Commits and their delta bases bigger than this are not collected. */
const MAX_COMMIT = 1024 * 1024;
/** Bytes of commit data kept as delta bases (parents are always kept). */
const BASE_CACHE_LIMIT = 32 * 1024 * 1024;

export type Ancestry = 'yes' | 'no' | 'unknown';

export class CommitCollector {
  private readonly parents = new Map<ObjectId, ObjectId[]>();
  private readonly dataByOffset = new Map<number, Buffer>();
  private readonly offsetById = new Map<ObjectId, number>();
  private cached = 0;
  private readonly scanner: PackScanner;
  private failed = false;

  constructor() {
    this.scanner = new PackScanner({ retainDataUpTo: MAX_COMMIT, onEntry: (e) => this.onEntry(e) });
  }

  /** Feeds pack bytes; a pack the scanner cannot read only makes the answers unknown. */
  push(chunk: Uint8Array): void {
    if (this.failed) return;
    try {
      this.scanner.push(chunk);
    } catch {
      this.failed = true;
    }
  }

  close(): void {
    this.scanner.close();
    this.dataByOffset.clear();
  }

  get commitCount(): number {
    return this.parents.size;
  }

  private onEntry(e: ScannedEntry): void {
    if (!e.data) return;
    let data: Buffer | undefined;
    if (e.type === PackObjectType.Commit) {
      data = Buffer.from(e.data);
    } else if (e.type === PackObjectType.OfsDelta || e.type === PackObjectType.RefDelta) {
      const baseOffset = e.type === PackObjectType.OfsDelta ? e.baseOffset : this.offsetById.get(Buffer.from(e.baseId!).toString('hex'));
      const base = baseOffset === undefined ? undefined : this.dataByOffset.get(baseOffset);
      if (!base) return; // not a commit, or a base we did not keep
      try {
        data = applyDelta(base, e.data);
      } catch {
        return;
      }
    } else {
      return;
    }
    const oid = hashObject('commit', data);
    try {
      this.parents.set(oid, parseCommitLinks(data).parents);
    } catch {
      return;
    }
    if (this.cached + data.length <= BASE_CACHE_LIMIT) {
      this.dataByOffset.set(e.offset, data);
      this.offsetById.set(oid, e.offset);
      this.cached += data.length;
    }
  }

  /**
   * Is `ancestor` reachable from `descendant` through the collected commits?
   * With `onlyHave` — the pack was fetched with `ancestor` as the only have —
   * every commit outside the pack is reachable from `ancestor` and is not it,
   * so not finding it is a definite no.
   */
  isAncestor(ancestor: ObjectId, descendant: ObjectId, onlyHave = false): Ancestry {
    if (ancestor === descendant) return 'yes';
    if (this.failed) return 'unknown';
    // Not a commit in the pack: a tag or tree (never a fast-forward, as in Git), or a commit the target had.
    if (!this.parents.has(descendant)) return onlyHave ? 'no' : 'unknown';
    const seen = new Set<ObjectId>([descendant]);
    const queue: ObjectId[] = [descendant];
    let boundary = false;
    while (queue.length > 0) {
      const cur = queue.pop()!;
      const ps = this.parents.get(cur);
      if (!ps) {
        boundary = true;
        continue;
      }
      for (const p of ps) {
        if (p === ancestor) return 'yes';
        if (!seen.has(p)) {
          seen.add(p);
          queue.push(p);
        }
      }
    }
    return boundary && !onlyHave ? 'unknown' : 'no';
  }
}

// The commit-graph questions upload-pack answers before it packs anything:
// - negotiation (gitprotocol-pack "Packfile Negotiation", gitprotocol-v2
//   "fetch", the acknowledgments section): which haves are common, and
//   whether the server is "ready" — Git's ok_to_give_up(): at least one
//   common have, and every want reaches a commit the client has (a have or
//   a have's parent) without going below the oldest common have's date
//   (commit-reach.c can_all_from_reach_with_flag);
// - shallow clones (gitprotocol-pack "Shallow Clones", gitprotocol-v2
//   "shallow-info"): which commits become the client's new shallow boundary
//   ("shallow <oid>") and which of its old shallow commits are no longer
//   shallow ("unshallow <oid>"), by depth (shallow.c get_shallow_commits),
//   relative depth (deepen-relative), or date and excluded refs
//   (get_shallow_commits_by_rev_list, for deepen-since and deepen-not);
//   then what the pack walk needs from it (upload-pack.c deepen(),
//   send_shallow(), send_unshallow()): the grafts, the extra wants and the
//   extra edges.
// Commits are read from the store once each and kept (parents, tree, date).
import { ErrorCode, PackferryError } from '../core/errors.js';
import { parseCommit, parseCommitLinks, parseTag } from '../core/object.js';
import { oidFromHex, type ObjectId } from '../core/oid.js';
import { PackObjectType } from '../pack/format.js';
import { INFINITE_DEPTH, type DeepenRequest } from '../protocol/upload-pack-server.js';
import type { LayeredObjects } from '../store/objects.js';
import type { RefEntry } from '../store/layout.js';

export interface CommitInfo {
  parents: ObjectId[];
  tree: ObjectId;
  /** The committer date, seconds since the epoch. */
  date: number;
}

/** Commits, types and tag targets read from a store's layers, each once. */
export class CommitGraph {
  private readonly commits = new Map<ObjectId, CommitInfo | null>();

  constructor(
    readonly objects: LayeredObjects,
    private readonly signal?: AbortSignal,
  ) {}

  has(oid: ObjectId): boolean {
    return this.objects.has(oid);
  }

  /** The object's type number (1 commit, 2 tree, 3 blob, 4 tag), undefined when the store lacks it. */
  async type(oid: ObjectId): Promise<number | undefined> {
    if (this.commits.get(oid)) return PackObjectType.Commit;
    const hit = this.objects.locateRaw(oidFromHex(oid));
    if (!hit) return undefined;
    const reader = await this.objects.reader(hit.layer);
    return reader.readHeader(oid)?.type;
  }

  /** A commit's parents, tree and date; undefined when `oid` is not a commit in the store. */
  async commit(oid: ObjectId): Promise<CommitInfo | undefined> {
    const known = this.commits.get(oid);
    if (known !== undefined) return known ?? undefined;
    if (this.signal?.aborted) throw new PackferryError(ErrorCode.Aborted, 'operation aborted', { cause: this.signal.reason });
    const obj = await this.objects.tryRead(oid);
    let info: CommitInfo | null = null;
    if (obj && obj.type === PackObjectType.Commit) {
      const links = parseCommitLinks(obj.data);
      info = { parents: links.parents, tree: links.tree, date: parseCommit(obj.data).committer.timestamp };
    }
    this.commits.set(oid, info);
    return info ?? undefined;
  }

  /** Follows tags to the first object that is not one (Git's deref_tag); undefined when something on the way is missing. */
  async peel(oid: ObjectId): Promise<{ oid: ObjectId; type: number } | undefined> {
    let cur = oid;
    for (let depth = 0; depth < 64; depth++) {
      const type = await this.type(cur);
      if (type === undefined) return undefined;
      if (type !== PackObjectType.Tag) return { oid: cur, type };
      const obj = await this.objects.tryRead(cur);
      if (!obj) return undefined;
      cur = parseTag(obj.data).object;
    }
    return undefined;
  }

  /** The commit a want or ref names (through tags), or undefined for trees, blobs and missing objects. */
  async peelToCommit(oid: ObjectId): Promise<ObjectId | undefined> {
    const peeled = await this.peel(oid);
    return peeled?.type === PackObjectType.Commit ? peeled.oid : undefined;
  }
}

// ---------------------------------------------------------------------------
// Negotiation

/**
 * The server's side of one negotiation round (Git's upload_pack_data:
 * have_obj, THEY_HAVE, oldest_have). Stateless transports send every common
 * have again in each round, so the state of one request is complete.
 */
export class Negotiation {
  /** Commits the client has: common haves and their parents (THEY_HAVE). */
  private readonly theyHave = new Set<ObjectId>();
  /** Common haves, each once (have_obj). */
  readonly haveObjs: ObjectId[] = [];
  private readonly haveSet = new Set<ObjectId>();
  /** The oldest common commit's date (oldest_have); 0 while there is none. */
  private oldestHave = 0;
  /** Wants already known to reach a common commit (they stay so as haves are added). */
  private readonly reaching = new Set<ObjectId>();
  /** The last ok_to_give_up answer, valid until a new common have arrives. */
  private cachedReady: boolean | undefined;

  constructor(
    private readonly graph: CommitGraph,
    private readonly wants: readonly ObjectId[],
  ) {}

  /**
   * A have line (Git's got_oid/do_got_oid): 'missing' when the store lacks
   * the object; otherwise it is common, and recorded.
   */
  async have(oid: ObjectId): Promise<'missing' | 'common'> {
    if (!this.graph.has(oid)) return 'missing';
    const commit = await this.graph.commit(oid);
    let known = false;
    if (commit) {
      known = this.theyHave.has(oid);
      this.theyHave.add(oid);
      if (this.oldestHave === 0 || commit.date < this.oldestHave) this.oldestHave = commit.date;
      for (const p of commit.parents) this.theyHave.add(p);
    }
    if (!known && !this.haveSet.has(oid)) {
      this.haveObjs.push(oid);
      this.haveSet.add(oid);
    }
    this.cachedReady = undefined;
    return 'common';
  }

  /** Git's ok_to_give_up(): a pack made now would be good (see the module header). */
  async okToGiveUp(): Promise<boolean> {
    if (this.haveObjs.length === 0) return false;
    if (this.cachedReady !== undefined) return this.cachedReady;
    const results = new Map<ObjectId, boolean>();
    let ready = true;
    for (const want of this.wants) {
      if (this.reaching.has(want)) continue;
      const commit = await this.graph.peelToCommit(want);
      if (commit === undefined) {
        this.reaching.add(want); // no way to tell from the ancestry alone: not a reason to wait
        continue;
      }
      if (await this.reachesCommon(commit, results)) this.reaching.add(want);
      else {
        ready = false;
        break;
      }
    }
    this.cachedReady = ready;
    return ready;
  }

  /** Does `start` reach a commit the client has, through commits no older than the oldest common have? */
  private async reachesCommon(start: ObjectId, results: Map<ObjectId, boolean>): Promise<boolean> {
    if (this.theyHave.has(start)) return true;
    const known = results.get(start);
    if (known !== undefined) return known;
    type Frame = { oid: ObjectId; parents: ObjectId[]; next: number; found: boolean };
    const onStack = new Set<ObjectId>([start]);
    const stack: Frame[] = [{ oid: start, parents: (await this.graph.commit(start))?.parents ?? [], next: 0, found: false }];
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      if (!top.found && top.next < top.parents.length) {
        const p = top.parents[top.next++];
        if (this.theyHave.has(p) || results.get(p) === true) {
          top.found = true;
          continue;
        }
        if (results.has(p) || onStack.has(p)) continue;
        const info = await this.graph.commit(p);
        if (!info || info.date < this.oldestHave) {
          results.set(p, false);
          continue;
        }
        onStack.add(p);
        stack.push({ oid: p, parents: info.parents, next: 0, found: false });
        continue;
      }
      stack.pop();
      onStack.delete(top.oid);
      results.set(top.oid, top.found);
      if (top.found && stack.length > 0) stack[stack.length - 1].found = true;
    }
    return results.get(start) === true;
  }
}

// ---------------------------------------------------------------------------
// Shallow

/** What a shallow request changes, for the response and for the pack walk. */
export interface ShallowPlan {
  /** "shallow <oid>": the client's new boundary commits. */
  shallow: ObjectId[];
  /** "unshallow <oid>": client shallow commits whose parents it now gets. */
  unshallow: ObjectId[];
  /** Commits walked as parentless: the new boundary and all the client's shallow commits (Git's registered grafts). */
  grafts: Set<ObjectId>;
  /** Parents of the unshallowed commits: wanted too. */
  extraWants: ObjectId[];
  /** The unshallowed commits: the client has them and their trees (extra_edge_obj). */
  edges: ObjectId[];
  /** The client's shallow commits the store has. */
  clientShallows: ObjectId[];
  /** Whether the pack is shallow at all (Git's shallow_nr > 0: --shallow, and aggressive edges for thin packs). */
  active: boolean;
}

/** Git's expand_ref() rules for deepen-not: the ref name as given, then under refs/, refs/tags/, refs/heads/, refs/remotes/. */
export function resolveDeepenNot(name: string, refs: readonly RefEntry[], head: { target: string; oid?: ObjectId } | undefined): ObjectId {
  const byName = new Map(refs.map((r) => [r.name, r.oid]));
  const candidates = [name, `refs/${name}`, `refs/tags/${name}`, `refs/heads/${name}`, `refs/remotes/${name}`, `refs/remotes/${name}/HEAD`];
  const found: ObjectId[] = [];
  for (const c of candidates) {
    const oid = c === 'HEAD' ? head?.oid : byName.get(c);
    if (oid !== undefined) found.push(oid);
  }
  if (found.length !== 1) {
    throw new PackferryError(ErrorCode.Protocol, `upload-pack: ambiguous deepen-not: ${JSON.stringify(name)}`, {
      details: { ref: name, matches: found.length },
    });
  }
  return found[0];
}

/**
 * shallow.c get_shallow_commits(): walks `depth` commits from the heads
 * (depth-first, first parent first, walking a commit again when it is found
 * nearer to a head). Commits at the depth are the boundary; those above are
 * not shallow. With INFINITE_DEPTH nothing is a boundary.
 */
async function shallowByDepth(graph: CommitGraph, heads: readonly ObjectId[], depth: number): Promise<{ boundary: ObjectId[]; notShallow: Set<ObjectId> }> {
  const depths = new Map<ObjectId, number>();
  const boundary: ObjectId[] = [];
  const notShallow = new Set<ObjectId>();
  const stack: ObjectId[] = [];
  let i = 0;
  let commit: ObjectId | undefined;
  let cur = 0;
  while (commit !== undefined || i < heads.length || stack.length > 0) {
    if (commit === undefined) {
      if (i < heads.length) {
        commit = await graph.peelToCommit(heads[i++]);
        if (commit === undefined) continue;
        depths.set(commit, 0);
        cur = 0;
      } else {
        commit = stack.pop()!;
        cur = depths.get(commit)!;
      }
    }
    const info = await graph.commit(commit);
    if (!info) throw missingCommit(commit);
    cur++;
    if (depth !== INFINITE_DEPTH && cur >= depth) {
      boundary.push(commit);
      commit = undefined;
      continue;
    }
    notShallow.add(commit);
    let next: ObjectId | undefined;
    for (let k = 0; k < info.parents.length; k++) {
      const p = info.parents[k];
      const seen = depths.get(p);
      if (seen !== undefined && cur >= seen) continue;
      depths.set(p, cur);
      if (k < info.parents.length - 1) stack.push(p);
      else next = p;
    }
    commit = next;
  }
  return { boundary, notShallow };
}

/**
 * shallow.c get_shallow_commits_by_rev_list() for "deepen-since" and
 * "deepen-not": the commits reachable from the wants through commits no
 * older than `since` and not reachable from the excluded refs; those with a
 * parent outside that set are the boundary.
 */
async function shallowByRevList(
  graph: CommitGraph,
  wants: readonly ObjectId[],
  since: number | undefined,
  excluded: readonly ObjectId[],
): Promise<{ boundary: ObjectId[]; notShallow: Set<ObjectId> }> {
  const hidden = new Set<ObjectId>();
  const pending: ObjectId[] = [];
  for (const oid of excluded) {
    const c = await graph.peelToCommit(oid);
    if (c !== undefined) pending.push(c);
  }
  while (pending.length > 0) {
    const c = pending.pop()!;
    if (hidden.has(c)) continue;
    hidden.add(c);
    const info = await graph.commit(c);
    if (info) pending.push(...info.parents);
  }
  const selected = new Set<ObjectId>();
  const order: ObjectId[] = [];
  for (const want of wants) {
    const c = await graph.peelToCommit(want);
    if (c !== undefined) pending.push(c);
  }
  while (pending.length > 0) {
    const c = pending.pop()!;
    if (selected.has(c) || hidden.has(c)) continue;
    const info = await graph.commit(c);
    if (!info) throw missingCommit(c);
    if (since !== undefined && info.date < since) continue;
    selected.add(c);
    order.push(c);
    pending.push(...info.parents);
  }
  if (selected.size === 0) {
    throw new PackferryError(ErrorCode.Protocol, 'upload-pack: no commits selected for shallow requests', {
      details: { since, excluded: excluded.length },
    });
  }
  const boundary: ObjectId[] = [];
  for (const c of order) {
    const info = (await graph.commit(c))!;
    if (info.parents.some((p) => !selected.has(p))) {
      boundary.push(c);
      selected.delete(c); // a boundary commit is shallow, not "not shallow" (Git clears NOT_SHALLOW on it)
    }
  }
  return { boundary, notShallow: selected };
}

function missingCommit(oid: ObjectId): PackferryError {
  return new PackferryError(ErrorCode.MissingObjects, `commit ${oid} is missing from the store`, { hint: 'run `packferry store verify`' });
}

/**
 * What the client's shallow lines and deepen arguments mean here (upload-pack.c
 * process_shallow, send_shallow_list, deepen, deepen_by_rev_list). Client
 * shallow commits the store lacks are ignored, as Git ignores them; one that
 * is not a commit is an error.
 */
export async function planShallow(
  graph: CommitGraph,
  wants: readonly ObjectId[],
  deepen: DeepenRequest,
  refs: readonly RefEntry[],
  head: { target: string; oid?: ObjectId } | undefined,
): Promise<ShallowPlan> {
  const clientShallows: ObjectId[] = [];
  for (const oid of deepen.shallows) {
    const type = await graph.type(oid);
    if (type === undefined) continue;
    if (type !== PackObjectType.Commit) throw new PackferryError(ErrorCode.Protocol, `upload-pack: invalid shallow object ${oid}`, { details: { oid } });
    clientShallows.push(oid);
  }
  const clientSet = new Set(clientShallows);
  const plan: ShallowPlan = { shallow: [], unshallow: [], grafts: new Set(), extraWants: [], edges: [], clientShallows, active: false };

  let result: { boundary: ObjectId[]; notShallow: Set<ObjectId> } | undefined;
  if (deepen.depth !== undefined) {
    if (deepen.depth === INFINITE_DEPTH) {
      // The store is complete: the client gets everything under its shallow commits.
      result = { boundary: [], notShallow: new Set(clientShallows) };
    } else if (deepen.deepenRelative) {
      // Git counts from the client's shallow commits that the refs reach; here: those the store has.
      result = await shallowByDepth(graph, clientShallows, Math.min(deepen.depth + 1, INFINITE_DEPTH - 1));
    } else {
      result = await shallowByDepth(graph, wants, deepen.depth);
    }
  } else if (deepen.deepenSince !== undefined || deepen.deepenNot.length > 0) {
    const excluded = deepen.deepenNot.map((name) => resolveDeepenNot(name, refs, head));
    result = await shallowByRevList(graph, wants, deepen.deepenSince, excluded);
  }
  if (result) {
    // send_shallow: a boundary commit the client already has as shallow, or that is within the depth elsewhere, is not news.
    for (const c of result.boundary) {
      if (clientSet.has(c) || result.notShallow.has(c) || plan.grafts.has(c)) continue;
      plan.shallow.push(c);
      plan.grafts.add(c);
    }
    // send_unshallow: client shallow commits now within the depth get their parents.
    for (const c of clientShallows) {
      if (!result.notShallow.has(c)) continue;
      plan.unshallow.push(c);
      const info = await graph.commit(c);
      if (info) plan.extraWants.push(...info.parents);
      plan.edges.push(c);
    }
  }
  for (const c of clientShallows) plan.grafts.add(c);
  plan.active = plan.shallow.length > 0 || clientShallows.length > 0;
  return plan;
}

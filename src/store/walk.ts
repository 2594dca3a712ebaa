// Which objects a fetch from the store must send: those reachable from the
// wants and not from the haves the store knows (git rev-list --objects
// <wants> --not <haves>, with Git's edge marking: the trees of the boundary
// commits are known to the receiver, and so is everything under them).
// Marks live in one bitmap per layer, indexed by position in the layer's pack
// index, so a walk over millions of objects costs bytes, not objects.
//
// For upload-pack (src/server/upload-pack.ts) the walk also takes what
// git pack-objects gets from upload-pack.c: shallow commits, walked as if
// they had no parents (the grafts of --shallow-file); extra edges, commits
// the receiver has whose trees it has complete (unshallowed commits, and the
// haves under --objects-edge-aggressive); and a partial-clone filter (Git's
// list-objects-filter.c: blob:none, blob:limit, tree:<depth>), which never
// drops a blob the wants name themselves (or through a tag).
import { PackferryError, ErrorCode } from '../core/errors.js';
import { FileMode, parseCommitLinks, parseIdentity, parseTag, TreeCursor } from '../core/object.js';
import { oidFromHex, oidToHex, type ObjectId } from '../core/oid.js';
import { PackObjectType } from '../pack/format.js';
import { LAYER_STRIDE, type Layer, type LayeredObjects } from './objects.js';

const SEEN = 1;
const UNINTERESTING = 2;
/** A blob a filter left out (not sent, not known to the receiver). */
const OMITTED = 4;
/** A commit read into the walk's queue. */
const QUEUED = 8;
/** A commit the walk took as one to send (it may still turn out to be the receiver's). */
const TAKEN = 16;
/** Commits walked past the point where only the receiver's are left (Git's SLOP, for dates out of order). */
const SLOP = 5;

interface QueuedCommit {
  oid: ObjectId;
  loc: { layer: Layer; position: number };
  /** Committer date, seconds since the epoch (0 when unreadable). */
  date: number;
  parents: ObjectId[];
  tree: ObjectId;
  /** Counted in `interestingCount` while queued. */
  interesting: boolean;
}

/** Commits by committer date, newest first (ties: first queued first); counts the interesting ones queued. */
class CommitQueue {
  private readonly heap: QueuedCommit[] = [];
  private readonly order = new Map<QueuedCommit, number>();
  private readonly byOid = new Map<ObjectId, QueuedCommit>();
  private counter = 0;
  interestingCount = 0;

  get size(): number {
    return this.heap.length;
  }

  push(c: QueuedCommit): void {
    this.order.set(c, this.counter++);
    this.byOid.set(c.oid, c);
    if (c.interesting) this.interestingCount++;
    const h = this.heap;
    h.push(c);
    for (let i = h.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (!this.before(h[i], h[parent])) break;
      [h[i], h[parent]] = [h[parent], h[i]];
      i = parent;
    }
  }

  peek(): QueuedCommit | undefined {
    return this.heap[0];
  }

  pop(): QueuedCommit {
    const h = this.heap;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < h.length && this.before(h[l], h[best])) best = l;
        if (r < h.length && this.before(h[r], h[best])) best = r;
        if (best === i) break;
        [h[i], h[best]] = [h[best], h[i]];
        i = best;
      }
    }
    this.order.delete(top);
    this.byOid.delete(top.oid);
    if (top.interesting) this.interestingCount--;
    return top;
  }

  /** A queued commit turned out to be the receiver's. */
  uninteresting(oid: ObjectId): void {
    const c = this.byOid.get(oid);
    if (c?.interesting) {
      c.interesting = false;
      this.interestingCount--;
    }
  }

  private before(a: QueuedCommit, b: QueuedCommit): boolean {
    return a.date > b.date || (a.date === b.date && this.order.get(a)! < this.order.get(b)!);
  }
}

const COMMITTER = Buffer.from('\ncommitter ');

/** A commit's committer date, read from its committer line (0 when there is none, as Git reads it). */
function committerDate(data: Uint8Array): number {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.length);
  const header = buf.indexOf('\n\n');
  const at = buf.indexOf(COMMITTER);
  if (at < 0 || (header >= 0 && at > header)) return 0;
  const start = at + COMMITTER.length;
  const eol = buf.indexOf(0x0a, start);
  return parseIdentity(buf.subarray(start, eol < 0 ? buf.length : eol)).timestamp;
}

export interface Located {
  layer: Layer;
  position: number;
  offset: number;
}

class Marks {
  private readonly maps = new Map<Layer, Uint8Array>();

  /** The mark array of a layer (created on first use). */
  array(layer: Layer): Uint8Array {
    let map = this.maps.get(layer);
    if (!map) {
      map = new Uint8Array(layer.index.count);
      this.maps.set(layer, map);
    }
    return map;
  }

  get(loc: { layer: Layer; position: number }): number {
    return this.maps.get(loc.layer)?.[loc.position] ?? 0;
  }

  add(loc: { layer: Layer; position: number }, flag: number): void {
    let map = this.maps.get(loc.layer);
    if (!map) {
      map = new Uint8Array(loc.layer.index.count);
      this.maps.set(loc.layer, map);
    }
    map[loc.position] |= flag;
  }
}

/**
 * Every object once (the newest layer's copy), in pack order. The list is
 * built only if asked for: a clone of a whole store sends the layers as they
 * lie and needs only the count (a list of 100k objects is ~5 MiB per clone).
 */
function everyObject(store: LayeredObjects, marks: Marks): Enumeration {
  let count = 0;
  let total = 0;
  store.layers.forEach((layer, li) => {
    total += layer.index.count;
    const map = marks.array(layer);
    const index = layer.index;
    for (let position = 0; position < index.count; position++) {
      // An object a newer layer also holds is sent from there.
      if (li > 0 && Math.floor(store.findRaw(index.oidAt(position)) / LAYER_STRIDE) < li) continue;
      map[position] = SEEN;
      count++;
    }
  });
  let objects: Located[] | undefined;
  const list = (): Located[] => {
    if (objects) return objects;
    objects = [];
    for (const layer of store.layers) {
      const map = marks.array(layer);
      const index = layer.index;
      const rows: Located[] = [];
      for (let position = 0; position < index.count; position++) if (map[position] & SEEN) rows.push({ layer, position, offset: index.offsetAt(position) });
      rows.sort((a, b) => a.offset - b.offset);
      for (const row of rows) objects.push(row);
    }
    return objects;
  };
  return {
    get objects() {
      return list();
    },
    count,
    common: [],
    wholeLayers: count === total,
    known: () => false,
    sent: (oid) => {
      const loc = store.locateRaw(oidFromHex(oid));
      return loc !== undefined && (marks.get(loc) & SEEN) !== 0;
    },
  };
}

export interface Enumeration {
  /** Objects to send, in pack order (layer by layer, by offset: delta bases before their deltas). */
  readonly objects: Located[];
  /** How many (`objects.length`, known without building the list). */
  readonly count: number;
  /** The haves the store has. */
  common: ObjectId[];
  /**
   * `objects` is every entry of every layer, each once, in layer order:
   * the pack can be the layers' entries copied whole (no object is in two layers).
   */
  wholeLayers?: boolean;
  /** Is this object known to the receiver (reachable from a common have)? */
  known(oid: ObjectId): boolean;
  /** Is this object among those sent? */
  sent(oid: ObjectId): boolean;
}

/** A partial-clone filter (git rev-list --filter), applied to objects reached through trees. */
export type ObjectFilter =
  /** No blobs. */
  | { kind: 'blob:none' }
  /** Blobs smaller than `limit` bytes only. */
  | { kind: 'blob:limit'; limit: number }
  /** Trees and blobs less than `depth` levels below a root tree only (the root tree is level 0). */
  | { kind: 'tree'; depth: number };

export interface EnumerateOptions {
  /** Commits and tags only (the "tree:0" filter, without the objects the wants name themselves). */
  commitsOnly?: boolean;
  /** A partial-clone filter; blobs the wants (or wanted tags) name themselves are sent all the same. */
  filter?: ObjectFilter;
  /** Commits walked as if they had no parents, on both sides (a shallow receiver's boundary, old and new). */
  shallow?: ReadonlySet<ObjectId>;
  /**
   * Commits the receiver has, with their whole trees (Git's edge commits):
   * walked like haves (not reported in `common`), and their trees marked
   * known as the boundary commits' are.
   */
  edges?: readonly ObjectId[];
  /** Called with the number of objects found to send so far, as the walk goes (for progress). */
  onProgress?: (found: number) => void;
  /**
   * The wants name every ref of the store and the receiver has nothing: send
   * every stored object without walking (a full restore of a mirror, whose
   * layers hold reachable objects only; at worst a few extra objects).
   */
  everything?: boolean;
  signal?: AbortSignal;
}

export async function enumerateObjects(store: LayeredObjects, wants: ObjectId[], haves: ObjectId[], options: EnumerateOptions = {}): Promise<Enumeration> {
  const marks = new Marks();
  const shallow = options.shallow;
  const edges = options.edges ?? [];
  const plain = options.filter === undefined && (shallow === undefined || shallow.size === 0) && edges.length === 0;
  if (options.everything && plain && !options.commitsOnly && !haves.some((h) => store.has(h))) return everyObject(store, marks);
  const onProgress = options.onProgress;
  const locate = (oid: ObjectId) => store.locateRaw(oidFromHex(oid));
  const read = async (oid: ObjectId) => {
    const obj = await store.tryRead(oid);
    if (!obj) throw new PackferryError(ErrorCode.MissingObjects, `object ${oid} is missing from the store`, { hint: 'run `packferry store verify`' });
    return obj;
  };
  const aborted = () => {
    if (options.signal?.aborted) throw new PackferryError(ErrorCode.Aborted, 'operation aborted');
  };

  // 1. What the wants and haves name: tags are followed (a wanted tag is
  // sent), trees and blobs noted; commits go into one queue, newest first.
  const common = haves.filter((h) => locate(h) !== undefined);
  const edgeCommits = edges.filter((e) => locate(e) !== undefined);
  const out: Located[] = [];
  const trees: ObjectId[] = [];
  /** Trees the wants name (directly or through tags). */
  const givenTrees: ObjectId[] = [];
  const boundary: ObjectId[] = [...edgeCommits];
  const queue = new CommitQueue();

  /** Reads a commit into the queue (once), interesting or not. */
  const enqueue = async (oid: ObjectId, loc: { layer: Layer; position: number }, uninteresting: boolean): Promise<void> => {
    marks.add(loc, QUEUED);
    const obj = await read(oid);
    const links = parseCommitLinks(obj.data);
    queue.push({ oid, loc, date: committerDate(obj.data), parents: links.parents, tree: links.tree, interesting: !uninteresting });
  };

  /**
   * Marks a commit the receiver has (Git's mark_parents_uninteresting): a
   * queued one just changes sides; one already taken as interesting (dates
   * out of order) passes the mark on to its parents at once; a new one is
   * queued, to pass it on when its turn comes.
   */
  const markUninteresting = async (start: ObjectId): Promise<void> => {
    const todo = [start];
    while (todo.length > 0) {
      const oid = todo.pop()!;
      const loc = locate(oid);
      if (!loc) continue; // the receiver has it; the store need not
      const flags = marks.get(loc);
      if (flags & UNINTERESTING) continue;
      marks.add(loc, UNINTERESTING);
      if (flags & QUEUED) {
        queue.uninteresting(oid);
        if (flags & TAKEN && !shallow?.has(oid)) todo.push(...parseCommitLinks((await read(oid)).data).parents);
        continue;
      }
      await enqueue(oid, loc, true);
    }
  };

  for (const start of [...common, ...edgeCommits]) {
    // A have: a commit, or a tag (its target is the receiver's too), or a tree or blob.
    for (let oid: ObjectId | undefined = start; oid !== undefined; ) {
      const loc = locate(oid);
      if (!loc || marks.get(loc) & UNINTERESTING) break;
      const obj = await read(oid);
      if (obj.type === PackObjectType.Commit) {
        await markUninteresting(oid);
        break;
      }
      marks.add(loc, UNINTERESTING);
      oid = obj.type === PackObjectType.Tag ? parseTag(obj.data).object : undefined;
    }
  }
  const named: ObjectId[] = [...wants];
  while (named.length > 0) {
    aborted();
    const oid = named.pop()!;
    const loc = locate(oid);
    if (!loc) throw new PackferryError(ErrorCode.NotFound, `object ${oid} is not in the store`, { details: { oid } });
    const flags = marks.get(loc);
    if (flags & (SEEN | UNINTERESTING | QUEUED)) continue;
    const obj = await read(oid);
    if (obj.type === PackObjectType.Commit) {
      await enqueue(oid, loc, false);
    } else if (obj.type === PackObjectType.Tag) {
      marks.add(loc, SEEN);
      out.push({ ...loc, offset: loc.layer.index.offsetAt(loc.position) });
      named.push(parseTag(obj.data).object);
    } else if (obj.type === PackObjectType.Tree) {
      givenTrees.push(oid); // a want (or tag) naming a tree directly
    } else if (!options.commitsOnly) {
      marks.add(loc, SEEN);
      out.push({ ...loc, offset: loc.layer.index.offsetAt(loc.position) });
    }
  }

  // 2. The commit walk (Git's limit_list): newest first, the receiver's
  // commits passing their mark on to their parents, until only its commits
  // are left — and a few more (SLOP) in case of dates out of order. Stopping
  // there can only send more than needed, never less.
  const taken: QueuedCommit[] = [];
  let slop = SLOP;
  while (queue.size > 0) {
    aborted();
    const c = queue.pop();
    if (marks.get(c.loc) & UNINTERESTING) {
      if (!shallow?.has(c.oid)) for (const p of c.parents) await markUninteresting(p);
      const next = queue.peek();
      if (next === undefined) break;
      if (next.date >= c.date || queue.interestingCount > 0) slop = SLOP;
      else if (--slop === 0) break;
      continue;
    }
    marks.add(c.loc, TAKEN);
    taken.push(c);
    onProgress?.(out.length + taken.length);
    if (shallow?.has(c.oid)) continue;
    for (const p of c.parents) {
      const ploc = locate(p);
      if (!ploc) throw new PackferryError(ErrorCode.MissingObjects, `commit ${p} is missing from the store`, { hint: 'run `packferry store verify`' });
      if (!(marks.get(ploc) & (QUEUED | UNINTERESTING))) await enqueue(p, ploc, false);
    }
  }
  // The commits to send: those taken and not found to be the receiver's
  // since; their parents that are the receiver's are the boundary.
  for (const c of taken) {
    if (marks.get(c.loc) & UNINTERESTING) continue;
    marks.add(c.loc, SEEN);
    out.push({ ...c.loc, offset: c.loc.layer.index.offsetAt(c.loc.position) });
    trees.push(c.tree);
    if (shallow?.has(c.oid)) continue;
    for (const p of c.parents) {
      const ploc = locate(p);
      if (ploc && marks.get(ploc) & UNINTERESTING) boundary.push(p);
    }
  }

  if (!options.commitsOnly) {
    // 3. The boundary commits' trees, and all below them, are the receiver's.
    // Trees are walked by raw id and location (no hex strings, no per-entry allocation): this is the hot loop.
    const readAt = async (loc: { layer: Layer; position: number }) => (await store.reader(loc.layer)).readAt(loc.layer.index.offsetAt(loc.position));
    // Per-layer mark arrays, indexed directly by the packed (layer, position) number of findRaw.
    const layerMarks = store.layers.map((layer) => marks.array(layer));
    // What a filter keeps of the blobs: all, none, or those under a size.
    const filter = options.filter;
    const blobLimit = filter?.kind === 'blob:none' ? 0 : filter?.kind === 'blob:limit' ? filter.limit : Infinity;
    const blobSize = async (layer: Layer, position: number): Promise<number> => {
      const header = (await store.reader(layer)).readHeader(oidToHex(layer.index.oidAt(position), 0, 20));
      return header?.size ?? Infinity;
    };
    const markTree = async (treeOid: ObjectId, flag: number, collect: boolean): Promise<void> => {
      const keepBlobs = !collect || blobLimit === Infinity;
      const treeStack: Uint8Array[] = [oidFromHex(treeOid)];
      while (treeStack.length > 0) {
        aborted();
        const t = treeStack.pop()!;
        const loc = store.locateRaw(t);
        if (!loc) {
          if (flag === UNINTERESTING) continue; // the receiver has it; the store need not
          throw new PackferryError(ErrorCode.MissingObjects, `tree ${oidToHex(t)} is missing from the store`, { hint: 'run `packferry store verify`' });
        }
        if (marks.get(loc) & (SEEN | UNINTERESTING)) continue;
        marks.add(loc, flag);
        if (collect) {
          out.push({ ...loc, offset: loc.layer.index.offsetAt(loc.position) });
          onProgress?.(out.length);
        }
        const cursor = new TreeCursor((await readAt(loc)).data);
        while (cursor.next()) {
          const mode = cursor.mode;
          if (mode === FileMode.gitlink) continue;
          if (mode === FileMode.tree) {
            treeStack.push(cursor.data.subarray(cursor.oidStart, cursor.oidStart + 20));
            continue;
          }
          if (!keepBlobs) {
            if (blobLimit === 0) continue;
            const found = store.findRaw(cursor.data, cursor.oidStart);
            if (found < 0) continue; // left out anyway: the filter decides without it
            const li = Math.floor(found / LAYER_STRIDE);
            const position = found - li * LAYER_STRIDE;
            const map = layerMarks[li];
            if (map[position] & (SEEN | UNINTERESTING | OMITTED)) continue;
            const layer = store.layers[li];
            if ((await blobSize(layer, position)) >= blobLimit) {
              map[position] |= OMITTED;
              continue;
            }
            map[position] |= SEEN;
            out.push({ layer, position, offset: layer.index.offsetAt(position) });
            continue;
          }
          const found = store.findRaw(cursor.data, cursor.oidStart);
          if (found < 0) {
            if (flag === UNINTERESTING) continue;
            throw new PackferryError(ErrorCode.MissingObjects, `blob ${oidToHex(cursor.data, cursor.oidStart, 20)} is missing from the store`, {
              hint: 'run `packferry store verify`',
            });
          }
          const li = Math.floor(found / LAYER_STRIDE);
          const position = found - li * LAYER_STRIDE;
          const map = layerMarks[li];
          if (map[position] & (SEEN | UNINTERESTING)) continue;
          map[position] |= flag;
          if (collect) {
            const layer = store.layers[li];
            out.push({ layer, position, offset: layer.index.offsetAt(position) });
          }
        }
      }
    };
    /**
     * tree:<depth> (list-objects-filter.c filter_trees_depth): trees and
     * blobs less than `limit` levels below a root tree. A tree is walked
     * again when it turns up nearer to a root than before. Unlike a blob, a
     * tree the wants name is filtered too (Git's process_tree applies the
     * filter whoever named the tree), as a root: tree:0 leaves it out.
     */
    const collectTreesToDepth = async (roots: ObjectId[], limit: number): Promise<void> => {
      const nearest = new Map<string, number>();
      const treeStack: Array<{ oid: Uint8Array; depth: number }> = roots.map((t) => ({ oid: oidFromHex(t), depth: 0 }));
      while (treeStack.length > 0) {
        aborted();
        const { oid: t, depth } = treeStack.pop()!;
        if (depth >= limit) continue;
        const loc = store.locateRaw(t);
        if (!loc) throw new PackferryError(ErrorCode.MissingObjects, `tree ${oidToHex(t)} is missing from the store`, { hint: 'run `packferry store verify`' });
        if (marks.get(loc) & UNINTERESTING) continue;
        const key = oidToHex(t);
        const before = nearest.get(key);
        if (before !== undefined && before <= depth) continue;
        nearest.set(key, depth);
        if (!(marks.get(loc) & SEEN)) {
          marks.add(loc, SEEN);
          out.push({ ...loc, offset: loc.layer.index.offsetAt(loc.position) });
          onProgress?.(out.length);
        }
        if (depth + 1 >= limit) continue; // everything below is left out
        const cursor = new TreeCursor((await readAt(loc)).data);
        while (cursor.next()) {
          const mode = cursor.mode;
          if (mode === FileMode.gitlink) continue;
          const child = cursor.data.subarray(cursor.oidStart, cursor.oidStart + 20);
          if (mode === FileMode.tree) {
            treeStack.push({ oid: Buffer.from(child), depth: depth + 1 });
            continue;
          }
          const bloc = store.locateRaw(child);
          if (!bloc) throw new PackferryError(ErrorCode.MissingObjects, `blob ${oidToHex(child)} is missing from the store`, { hint: 'run `packferry store verify`' });
          if (marks.get(bloc) & (SEEN | UNINTERESTING)) continue;
          marks.add(bloc, SEEN);
          out.push({ ...bloc, offset: bloc.layer.index.offsetAt(bloc.position) });
        }
      }
    };
    for (const c of boundary) {
      const obj = await read(c);
      if (obj.type !== PackObjectType.Commit) continue;
      const tree = parseCommitLinks(obj.data).tree;
      if (tree) await markTree(tree, UNINTERESTING, false);
    }
    // 4. The trees and blobs of the commits to send.
    if (filter?.kind === 'tree') {
      await collectTreesToDepth([...trees, ...givenTrees], filter.depth);
    } else {
      for (const t of givenTrees) await markTree(t, SEEN, true);
      for (const t of trees) await markTree(t, SEEN, true);
    }
  }

  const layerOrder = new Map(store.layers.map((l, i) => [l, i]));
  out.sort((a, b) => layerOrder.get(a.layer)! - layerOrder.get(b.layer)! || a.offset - b.offset);
  return {
    objects: out,
    count: out.length,
    common,
    known: (oid) => {
      const loc = locate(oid);
      return loc !== undefined && (marks.get(loc) & UNINTERESTING) !== 0;
    },
    sent: (oid) => {
      const loc = locate(oid);
      return loc !== undefined && (marks.get(loc) & SEEN) !== 0;
    },
  };
}

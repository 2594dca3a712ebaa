// Pass two of indexing: delta resolution (Git's builtin/index-pack.c
// resolve_deltas / find_unresolved_deltas). Starting from each whole object
// that deltas depend on, walk its tree of dependent deltas depth first: apply
// each delta to its base, hash the result to learn its id, and go on to the
// deltas based on it (OFS_DELTA children by offset, REF_DELTA children by id).
// Work is shared between threads through an atomic cursor over the roots;
// tables live in shared memory, so results are written in place.
//
// Memory stays bounded: the bases held along the current chain are limited
// by `cacheLimit`; past it the ones nearest the root are dropped and rebuilt
// from the pack when needed again, as Git does with delta_base_cache_limit.
import { hash as oneShotHash } from 'node:crypto';
import { PackferryError, ErrorCode } from '../core/errors.js';
import { DEFAULT_LIMITS, type Limits } from '../core/limits.js';
import { compareRawIds } from '../core/oid.js';
import { applyDelta } from './delta.js';
import { OBJECT_TYPES } from '../core/object.js';
import { isDeltaType } from './format.js';
import { BufferPool } from './buffer-pool.js';
import type { FsckCollector } from '../core/fsck.js';
import { collectLinks, type ObjectIdSet } from './links.js';
import { createInflater, type Inflater } from './inflate.js';
import type { PackFile } from './packfile.js';
import { SMALL_FLAG, SMALL_OBJECT, type PackTables } from './tables.js';
import { sortByObjectId } from './idx.js';

export const Counter = {
  NextRoot: 0,
  Resolved: 1,
  Failed: 2,
  /** Cursor over the big roots, which only the main thread takes (see BIG_ROOT). */
  NextBigRoot: 3,
} as const;

/**
 * Roots at least this large are all resolved by the main thread: their trees
 * hold several objects of that size at once (base, result), and each thread
 * keeps its own pool of such buffers, so spreading them over threads
 * multiplies peak memory for little gain.
 */
export const BIG_ROOT = 8 * 1024 * 1024;

export interface DeltaGraphBuffers {
  ofsChildStart: SharedArrayBuffer;
  ofsChildren: SharedArrayBuffer;
  refIds: SharedArrayBuffer;
  refChildren: SharedArrayBuffer;
  roots: SharedArrayBuffer;
  claimed: SharedArrayBuffer;
  counters: SharedArrayBuffer;
  smallRootCount?: number;
}

/** Who depends on whom: built once after pass one, shared by all threads. */
export class DeltaGraph {
  readonly ofsChildStart: Int32Array;
  readonly ofsChildren: Int32Array;
  /** Base ids of REF_DELTA entries, sorted. */
  readonly refIds: Uint8Array;
  /** The REF_DELTA entry for each id in `refIds`. */
  readonly refChildren: Int32Array;
  readonly roots: Int32Array;
  /** 1 once an entry's object is known (whole objects, or a delta claimed by a thread). */
  readonly claimed: Uint8Array;
  readonly counters: Int32Array;
  /** Roots before this position are small; the rest are big (see BIG_ROOT). */
  smallRootCount: number;

  constructor(readonly buffers: DeltaGraphBuffers) {
    this.ofsChildStart = new Int32Array(buffers.ofsChildStart);
    this.ofsChildren = new Int32Array(buffers.ofsChildren);
    this.refIds = new Uint8Array(buffers.refIds);
    this.refChildren = new Int32Array(buffers.refChildren);
    this.roots = new Int32Array(buffers.roots);
    this.claimed = new Uint8Array(buffers.claimed);
    this.counters = new Int32Array(buffers.counters);
    this.smallRootCount = buffers.smallRootCount ?? this.roots.length;
  }

  get refCount(): number {
    return this.refChildren.length;
  }

  /**
   * Builds the graph. `refBaseIds` holds the base id of each REF_DELTA entry
   * listed in `refEntries`. Whole objects are marked claimed. `spare` rows
   * are reserved for whole objects appended later (thin-pack bases), which
   * have no OFS_DELTA dependents.
   */
  static build(tables: PackTables, refEntries: Int32Array, refBaseIds: Uint8Array, spare = 0): DeltaGraph {
    const n = tables.count;
    const hashLength = tables.hashLength;
    const ofsChildStart = new Int32Array(new SharedArrayBuffer((n + spare + 1) * 4));
    let ofsCount = 0;
    for (let i = 0; i < n; i++) {
      const b = tables.baseIndex[i];
      if (b >= 0) {
        ofsChildStart[b + 1]++;
        ofsCount++;
      }
    }
    for (let i = 0; i < n + spare; i++) ofsChildStart[i + 1] += ofsChildStart[i];
    const ofsChildren = new Int32Array(new SharedArrayBuffer(Math.max(1, ofsCount) * 4));
    const fill = ofsChildStart.slice(0, n);
    for (let i = 0; i < n; i++) {
      const b = tables.baseIndex[i];
      if (b >= 0) ofsChildren[fill[b]++] = i;
    }
    const refCount = refEntries.length;
    const order = sortByObjectId(refBaseIds, refCount, hashLength);
    const refIds = new Uint8Array(new SharedArrayBuffer(Math.max(1, refCount * hashLength)));
    const refChildren = new Int32Array(new SharedArrayBuffer(refCount * 4));
    for (let k = 0; k < refCount; k++) {
      const j = order[k];
      refIds.set(refBaseIds.subarray(j * hashLength, (j + 1) * hashLength), k * hashLength);
      refChildren[k] = refEntries[j];
    }
    const claimed = new Uint8Array(new SharedArrayBuffer(Math.max(1, n + spare)));
    const graphBuffers: DeltaGraphBuffers = {
      ofsChildStart: ofsChildStart.buffer as SharedArrayBuffer,
      ofsChildren: ofsChildren.buffer as SharedArrayBuffer,
      refIds: refIds.buffer as SharedArrayBuffer,
      refChildren: refChildren.buffer as SharedArrayBuffer,
      roots: new SharedArrayBuffer(4),
      claimed: claimed.buffer as SharedArrayBuffer,
      counters: new SharedArrayBuffer(4 * 4),
    };
    const partial = new DeltaGraph(graphBuffers);
    // Roots: whole objects with deltas below them.
    const roots: number[] = [];
    const bigRoots: number[] = [];
    for (let i = 0; i < n; i++) {
      if (isDeltaType(tables.packType(i))) continue;
      claimed[i] = 1;
      if (partial.hasOpenChildren(i, tables)) (tables.sizes[i] < BIG_ROOT ? roots : bigRoots).push(i);
    }
    // Small roots first, then the big ones; the big cursor starts where they begin.
    const rootsBuffer = new SharedArrayBuffer((roots.length + bigRoots.length) * 4);
    new Int32Array(rootsBuffer).set([...roots, ...bigRoots]);
    const graph = new DeltaGraph({ ...graphBuffers, roots: rootsBuffer });
    graph.counters[Counter.NextBigRoot] = roots.length;
    graph.smallRootCount = roots.length;
    return graph;
  }

  /** First position in `refIds` equal to the id at `oids[at]`, and the end of that run. */
  refRange(oids: Uint8Array, at: number, hashLength: number): [number, number] {
    const count = this.refCount;
    if (count === 0) return [0, 0];
    let lo = 0;
    let hi = count;
    const ids = this.refIds;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareRawIds(ids, mid * hashLength, oids, at, hashLength) < 0) lo = mid + 1;
      else hi = mid;
    }
    let end = lo;
    while (end < count && compareRawIds(ids, end * hashLength, oids, at, hashLength) === 0) end++;
    return [lo, end];
  }

  hasOpenChildren(i: number, tables: PackTables): boolean {
    for (let k = this.ofsChildStart[i]; k < this.ofsChildStart[i + 1]; k++) if (this.claimed[this.ofsChildren[k]] === 0) return true;
    const [lo, hi] = this.refRange(tables.oids, i * tables.hashLength, tables.hashLength);
    for (let k = lo; k < hi; k++) if (this.claimed[this.refChildren[k]] === 0) return true;
    return false;
  }
}

const HEADER_ROOM = 32;
const TREE = 2;
const BLOB = 3;
/** Per-thread bound on base objects held while resolving (Git: core.deltaBaseCacheLimit, 96 MiB in all). */
export const DEFAULT_CACHE_LIMIT = 32 * 1024 * 1024;

interface Frame {
  index: number;
  /** The object's data, or null once dropped to save memory. */
  data: Buffer | null;
  type: number;
  depth: number;
  ofsNext: number;
  ofsEnd: number;
  refNext: number;
  refEnd: number;
}

export interface ResolveOptions {
  limits?: Partial<Limits>;
  /** Bytes of base objects held along the current chain before the oldest are dropped (default 32 MiB). */
  cacheLimit?: number;
  hashName: string;
  /** Called now and then with the number of deltas resolved (all threads). */
  onProgress?: (resolved: number) => void;
  /** Where the links of resolved commits, trees and tags are collected (see links.ts). */
  links?: ObjectIdSet;
  /** Where resolved commits, trees and tags are checked (IndexPackOptions.fsck). */
  fsck?: FsckCollector;
}

/**
 * Resolves deltas one root at a time until the shared cursor runs past the
 * roots. Safe to run on several threads over the same tables and graph.
 */
export class DeltaResolver {
  private readonly inflater: Inflater;
  private readonly limits: Limits;
  private readonly cacheLimit: number;
  private scratch: Buffer = Buffer.allocUnsafe(64 * 1024);
  private held = 0;
  private readonly pool = new BufferPool();
  private readonly allocate = (size: number): Buffer => this.pool.take(size);
  private resultScratch: Buffer = Buffer.allocUnsafe(64 * 1024);
  private readonly allocateScratch = (size: number): Buffer => {
    if (this.resultScratch.length < size) this.resultScratch = Buffer.allocUnsafe(Math.max(size, this.resultScratch.length * 2));
    return this.resultScratch;
  };
  private sinceProgress = 0;

  constructor(
    private readonly tables: PackTables,
    private readonly graph: DeltaGraph,
    private readonly pack: PackFile,
    private readonly options: ResolveOptions,
  ) {
    this.inflater = createInflater();
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.cacheLimit = options.cacheLimit ?? DEFAULT_CACHE_LIMIT;
  }

  /**
   * Resolves roots until none are left. Only the thread given `takeBigRoots`
   * (the main one) takes the big roots, first, then helps with the rest.
   */
  run(takeBigRoots = false): void {
    const { roots, counters } = this.graph;
    try {
      if (takeBigRoots) {
        while (Atomics.load(counters, Counter.Failed) === 0) {
          const r = Atomics.add(counters, Counter.NextBigRoot, 1);
          if (r >= roots.length) break;
          this.resolveFrom(roots[r]);
        }
      }
      const small = this.graph.smallRootCount;
      while (Atomics.load(counters, Counter.Failed) === 0) {
        const r = Atomics.add(counters, Counter.NextRoot, 1);
        if (r >= small) break;
        this.resolveFrom(roots[r]);
      }
    } catch (err) {
      Atomics.store(counters, Counter.Failed, 1);
      throw err;
    }
  }

  close(): void {
    this.inflater.close();
  }

  /** Inflates entry `i`'s data. With `keep`, into a fresh buffer with header room; else into a reused scratch buffer. */
  private inflateEntry(i: number, keep: boolean): Buffer {
    const t = this.tables;
    const start = t.offsets[i] + t.headerLengths[i];
    const size = t.sizes[i];
    let out: Buffer;
    if (keep) {
      out = this.pool.take(HEADER_ROOM + size + 1).subarray(HEADER_ROOM);
    } else {
      if (this.scratch.length < size + 1) this.scratch = Buffer.allocUnsafe(Math.max(size + 1, this.scratch.length * 2));
      out = this.scratch;
    }
    try {
      return this.pack.inflate(this.inflater, start, t.offsets[i + 1], size, out);
    } catch (err) {
      if (err instanceof PackferryError) {
        throw new PackferryError(err.code, `object at offset ${t.offsets[i]}: ${err.message}`, {
          cause: err,
          details: { ...err.details, offset: t.offsets[i] },
        });
      }
      throw err;
    }
  }

  /** Resolves everything that depends on the whole object `root` (whose data may be given). */
  resolveFrom(root: number, rootData: Buffer | null = null): void {
    const t = this.tables;
    const g = this.graph;
    const stack: Frame[] = [];
    this.held = 0;
    this.pushFrame(stack, root, rootData, t.objectType(root), t.depths[root]);
    while (stack.length > 0) {
      const top = stack.length - 1;
      const frame = stack[top];
      let child = -1;
      while (frame.ofsNext < frame.ofsEnd) {
        const c = g.ofsChildren[frame.ofsNext++];
        if (Atomics.compareExchange(g.claimed, c, 0, 1) === 0) {
          child = c;
          break;
        }
      }
      if (child < 0) {
        while (frame.refNext < frame.refEnd) {
          const c = g.refChildren[frame.refNext++];
          if (Atomics.compareExchange(g.claimed, c, 0, 1) === 0) {
            child = c;
            break;
          }
        }
      }
      if (child < 0) {
        if (frame.data) {
          this.held -= frame.data.length;
          this.pool.give(frame.data);
        }
        stack.pop();
        continue;
      }
      const base = this.baseData(stack, top);
      const depth = frame.depth + 1;
      if (depth > this.limits.maxDeltaChainDepth) {
        throw new PackferryError(
          ErrorCode.LimitExceeded,
          `delta chain at offset ${t.offsets[child]} is deeper than ${this.limits.maxDeltaChainDepth} (maxDeltaChainDepth)`,
          { details: { limit: 'maxDeltaChainDepth', offset: t.offsets[child] } },
        );
      }
      // Most results are leaves, needed only to be hashed: build them in a reused buffer, and copy
      // out the few that others depend on (per-object allocations left hundreds of MiB of garbage).
      const result = this.applyChild(child, base, this.allocateScratch);
      if (frame.ofsNext >= frame.ofsEnd && frame.refNext >= frame.refEnd && frame.data) {
        // That was the base's last dependent: free it now rather than when the walk returns (long chains).
        this.held -= frame.data.length;
        this.pool.give(frame.data);
        frame.data = null;
      }
      this.record(child, result, frame.type, depth);
      this.pushFrame(stack, child, result, frame.type, depth, true);
    }
  }

  private applyChild(child: number, base: Buffer, allocate: (size: number) => Buffer): Buffer {
    const delta = this.inflateEntry(child, false);
    try {
      return applyDelta(base, delta, this.limits, HEADER_ROOM, allocate);
    } catch (err) {
      if (err instanceof PackferryError) {
        const offset = this.tables.offsets[child];
        throw new PackferryError(err.code, `delta at offset ${offset}: ${err.message}`, { cause: err, details: { ...err.details, offset } });
      }
      throw err;
    }
  }

  /** Hashes a resolved object and stores its id, type, size and depth. */
  private record(i: number, data: Buffer, type: number, depth: number): void {
    const t = this.tables;
    const header = `${OBJECT_TYPES[type - 1]} ${data.length}\0`;
    const start = data.byteOffset - header.length;
    const full = Buffer.from(data.buffer, start, header.length + data.length);
    full.write(header, 0, 'latin1');
    const id = oneShotHash(this.options.hashName, full, 'buffer') as unknown as Buffer;
    t.oids.set(id, i * t.hashLength);
    t.types[i] = (type << 4) | t.packType(i) | (data.length < SMALL_OBJECT ? SMALL_FLAG : 0);
    t.depths[i] = depth;
    // (A check that collects the links of trees in its own pass spares a second walk over them.)
    const fsck = this.options.fsck;
    if (this.options.links && type !== BLOB && !(type === TREE && fsck?.treeLinks === this.options.links)) collectLinks(type, data, this.options.links);
    if (fsck && type !== BLOB) fsck.checkObject(type, data, id, 0, i);
    const resolved = Atomics.add(this.graph.counters, Counter.Resolved, 1) + 1;
    if (this.options.onProgress && ++this.sinceProgress >= 1024) {
      this.sinceProgress = 0;
      this.options.onProgress(resolved);
    }
  }

  /**
   * Pushes a frame for an object with dependents; does nothing when none
   * depend on it. With `copy`, `data` is scratch memory and is copied first.
   */
  private pushFrame(stack: Frame[], index: number, data: Buffer | null, type: number, depth: number, copy = false): void {
    const t = this.tables;
    const g = this.graph;
    const ofsNext = g.ofsChildStart[index];
    const ofsEnd = g.ofsChildStart[index + 1];
    const [refNext, refEnd] = g.refRange(t.oids, index * t.hashLength, t.hashLength);
    if (ofsNext === ofsEnd && refNext === refEnd) return;
    if (copy && data) {
      const kept = this.pool.take(HEADER_ROOM + data.length).subarray(HEADER_ROOM);
      data.copy(kept);
      data = kept;
    }
    stack.push({ index, data, type, depth, ofsNext, ofsEnd, refNext, refEnd });
    if (data) {
      this.held += data.length;
      this.evict(stack);
    }
  }

  /** Drops the data of frames nearest the root while over the cache limit, never the top one. */
  private evict(stack: Frame[]): void {
    for (let k = 0; this.held > this.cacheLimit && k < stack.length - 1; k++) {
      const f = stack[k];
      if (f.data) {
        this.held -= f.data.length;
        this.pool.give(f.data);
        f.data = null;
      }
    }
  }

  /** The data of `stack[k]`, rebuilt from the nearest ancestor still held (or the pack) if it was dropped. */
  private baseData(stack: Frame[], k: number): Buffer {
    const frame = stack[k];
    if (frame.data) return frame.data;
    let j = k;
    while (j >= 0 && !stack[j].data) j--;
    // Start from an ancestor's data (its frame keeps it) or the root read again from the pack (ours to drop).
    let data: Buffer;
    let owned: boolean;
    if (j < 0) {
      data = this.inflateEntry(stack[0].index, true);
      owned = true;
      j = 0;
    } else {
      data = stack[j].data!;
      owned = false;
    }
    for (let m = j + 1; m <= k; m++) {
      const next = this.applyChild(stack[m].index, data, this.allocate);
      if (owned) this.pool.give(data);
      data = next;
      owned = true;
    }
    frame.data = data;
    this.held += data.length;
    this.evict(stack);
    return data;
  }
}

// The links of a pack's objects, collected while it is indexed: Git's
// index-pack --check-self-contained-and-connected (builtin/index-pack.c,
// sha1_object → fsck_walk with mark_link), which lets clone and fetch skip
// the separate rev-list --objects walk when every link of every object in
// the pack is satisfied. Each thread that sees whole objects (pass one) or
// resolves deltas (pass two) keeps its own set of the ids that commits,
// trees and tags refer to, each id once; the caller checks them against the
// finished index and the objects it already has.
import { parseCommitLinks, parseTag, FileMode, TreeCursor } from '../core/object.js';
import { PackObjectType } from '../core/object-type.js';

/** A set of raw object ids (open addressing on the ids' first four bytes, which are uniformly distributed). */
export class ObjectIdSet {
  /** Distinct ids held. */
  size = 0;
  /**
   * Set when the set gave up: it would have passed its limit, or an object's
   * links could not be read (a malformed object, or one too large to be held
   * in memory while indexing). Its ids then prove nothing.
   */
  incomplete = false;
  private ids: Uint8Array;
  private table: Int32Array;
  private shift: number;

  constructor(
    readonly hashLength: number,
    /** Distinct ids past which the set gives up (memory stays bounded: limit × hash length bytes). */
    readonly limit: number,
  ) {
    this.ids = new Uint8Array(1024 * hashLength);
    this.table = new Int32Array(2048);
    this.shift = 32 - 11;
  }

  /** Adds the id at `raw[at]`. */
  add(raw: Uint8Array, at: number): void {
    if (this.incomplete) return;
    const n = this.hashLength;
    const key = ((raw[at] << 24) | (raw[at + 1] << 16) | (raw[at + 2] << 8) | raw[at + 3]) >>> 0;
    const table = this.table;
    const mask = table.length - 1;
    const ids = this.ids;
    let slot = Math.imul(key, 0x9e3779b1) >>> this.shift;
    for (;;) {
      const entry = table[slot];
      if (entry === 0) break;
      const base = (entry - 1) * n;
      let same = true;
      for (let i = 0; i < n; i++) {
        if (ids[base + i] !== raw[at + i]) {
          same = false;
          break;
        }
      }
      if (same) return;
      slot = (slot + 1) & mask;
    }
    if (this.size >= this.limit) {
      this.giveUp();
      return;
    }
    if ((this.size + 1) * n > ids.length) {
      const grown = new Uint8Array(ids.length * 2);
      grown.set(ids);
      this.ids = grown;
    }
    this.ids.set(raw.subarray(at, at + n), this.size * n);
    table[slot] = ++this.size;
    if (this.size * 2 > table.length) this.rehash(table.length * 2);
  }

  /** The id at position `k` (0 ≤ k < size) lives at `ids[k × hashLength]`. */
  get raw(): Uint8Array {
    return this.ids;
  }

  /** Gives up (see `incomplete`) and frees the memory held. */
  giveUp(): void {
    this.incomplete = true;
    this.size = 0;
    this.ids = new Uint8Array(0);
    this.table = new Int32Array(0);
  }

  /** The ids, for another thread: `size` ids of `hashLength` bytes (a copy; the set is left as it is). */
  export(): { ids: Uint8Array; size: number; incomplete: boolean } {
    return { ids: this.ids.slice(0, this.size * this.hashLength), size: this.size, incomplete: this.incomplete };
  }

  /** A set made from another thread's `export()` (only its ids are read back: it takes no more adds). */
  static imported(hashLength: number, exported: { ids: Uint8Array; size: number; incomplete: boolean }): ObjectIdSet {
    const set = new ObjectIdSet(hashLength, exported.size);
    if (exported.incomplete) set.giveUp();
    else {
      set.ids = exported.ids;
      set.size = exported.size;
      set.table = new Int32Array(0);
    }
    return set;
  }

  private rehash(slots: number): void {
    const n = this.hashLength;
    const ids = this.ids;
    const table = new Int32Array(slots);
    const mask = slots - 1;
    this.shift = 32 - Math.log2(slots);
    for (let k = 0; k < this.size; k++) {
      const at = k * n;
      const key = ((ids[at] << 24) | (ids[at + 1] << 16) | (ids[at + 2] << 8) | ids[at + 3]) >>> 0;
      let slot = Math.imul(key, 0x9e3779b1) >>> this.shift;
      while (table[slot] !== 0) slot = (slot + 1) & mask;
      table[slot] = k + 1;
    }
    this.table = table;
  }
}

/**
 * Adds the ids an object of `type` (1 commit, 2 tree, 4 tag) refers to:
 * a commit's tree and parents, a tree's entries but submodule commits
 * (which live in another repository), a tag's object. Blobs refer to
 * nothing. A malformed object makes the set incomplete: the caller's walk
 * then finds and names the problem.
 */
export function collectLinks(type: number, data: Uint8Array, set: ObjectIdSet): void {
  if (set.incomplete) return;
  try {
    switch (type) {
      case PackObjectType.commit: {
        const links = parseCommitLinks(data);
        if (links.tree === undefined) return set.giveUp();
        addHex(set, links.tree);
        for (const p of links.parents) addHex(set, p);
        return;
      }
      case PackObjectType.tree: {
        const c = new TreeCursor(data);
        while (c.next()) if (c.mode !== FileMode.gitlink) set.add(c.data, c.oidStart);
        return;
      }
      case PackObjectType.tag:
        addHex(set, parseTag(data).object);
        return;
      default:
        return;
    }
  } catch {
    set.giveUp();
  }
}

function addHex(set: ObjectIdSet, hex: string): void {
  const raw = Buffer.from(hex, 'hex');
  if (raw.length !== set.hashLength) return set.giveUp();
  set.add(raw, 0);
}

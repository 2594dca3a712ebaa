// Peeling: following annotated tags to the object they finally name, for the
// peeled values in packed-refs and info/refs ("^{}" lines).
import { parseTag } from '../core/object.js';
import type { ObjectId } from '../core/oid.js';
import { PackObjectType } from '../pack/format.js';
import type { PackedObject } from '../pack/reader.js';

/** Undefined when `oid` is not a tag; else the first non-tag object its chain reaches (at most 64 tags deep). */
export async function peelTag(oid: ObjectId, read: (oid: ObjectId) => Promise<PackedObject | undefined> | PackedObject | undefined): Promise<ObjectId | undefined> {
  let cur = oid;
  for (let depth = 0; depth < 64; depth++) {
    const obj = await read(cur);
    if (!obj || obj.type !== PackObjectType.Tag) return depth === 0 ? undefined : cur;
    cur = parseTag(obj.data).object;
  }
  return cur;
}

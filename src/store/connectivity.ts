// The connectivity check before refs move (Git's check_connected after a
// fetch or push: rev-list --objects <new tips> --not --all): every object
// reachable from the new tips is either already in the store or in the new
// layer. Objects already stored are complete by the store's invariant, so the
// walk goes only through the new layer's objects: commits, trees and tags are
// read and their links checked; blobs need only exist.
//
// When the layer's links were collected while it was indexed (Git's
// index-pack --check-self-contained-and-connected, pack/links.ts), the walk
// is skipped if every link and every tip is in the layer or already stored,
// as Git's clone and fetch skip rev-list then: the objects reached from the
// tips are then all present (each one's links are, down to stored objects,
// complete by the store's invariant). Otherwise the walk decides and names
// what is missing (links of unreachable objects may be missing harmlessly).
import { PackferryError, ErrorCode } from '../core/errors.js';
import { parseCommitLinks, parseTag, FileMode, TreeCursor } from '../core/object.js';
import { oidFromHex, oidToHex, type ObjectId } from '../core/oid.js';
import { PackObjectType } from '../pack/format.js';
import type { ObjectIdSet } from '../pack/links.js';
import type { PackReader } from '../pack/reader.js';
import type { Layer, LayeredObjects } from './objects.js';

export interface ConnectivityResult {
  /** New-layer objects reached from the tips (the rest of the layer is unreferenced); undefined when no walk was needed. */
  reached: number | undefined;
}

/**
 * Walks from `tips` through `layer` (read with `reader`), stopping at objects
 * `existing` already has — unless `links` (the layer's links, collected while
 * it was indexed) prove it connected without a walk. Throws
 * ERR_MISSING_OBJECTS naming the first object found in neither.
 */
export async function checkConnectivity(
  tips: ObjectId[],
  layer: Layer,
  reader: PackReader,
  existing: LayeredObjects | undefined,
  signal?: AbortSignal,
  links?: ObjectIdSet[],
): Promise<ConnectivityResult> {
  if (links !== undefined && linksSatisfied(tips, links, layer, existing, signal)) return { reached: undefined };
  const index = layer.index;
  const visited = new Uint8Array(index.count);
  const queue: number[] = [];
  let reached = 0;
  const missing = (oid: string, from?: string): PackferryError =>
    new PackferryError(ErrorCode.MissingObjects, `object ${oid}${from ? ` (referenced by ${from})` : ''} is neither in the pack nor in the store`, {
      details: { oid, from },
      hint: 'the pack is incomplete: nothing was changed',
    });
  /** Marks a referenced object; returns false if it is nowhere. Blobs and gitlinks are not followed. */
  const reach = (raw: Uint8Array, at: number, follow: boolean): boolean => {
    const k = index.findRaw(raw, at);
    if (k >= 0) {
      if (!visited[k]) {
        visited[k] = 1;
        reached++;
        if (follow) queue.push(k);
      }
      return true;
    }
    return existing?.hasRaw(raw, at) ?? false;
  };
  for (const tip of tips) {
    if (!reach(oidFromHex(tip), 0, true)) throw missing(tip);
  }
  while (queue.length > 0) {
    if (signal?.aborted) throw new PackferryError(ErrorCode.Aborted, 'operation aborted');
    const k = queue.pop()!;
    const oid = oidToHex(index.oidAt(k));
    const obj = reader.readAt(index.offsetAt(k));
    switch (obj.type) {
      case PackObjectType.Commit: {
        const links = parseCommitLinks(obj.data);
        if (links.tree === undefined || !reach(oidFromHex(links.tree), 0, true)) throw missing(links.tree ?? '(none)', oid);
        for (const p of links.parents) if (!reach(oidFromHex(p), 0, true)) throw missing(p, oid);
        break;
      }
      case PackObjectType.Tree: {
        const c = new TreeCursor(obj.data);
        while (c.next()) {
          if (c.mode === FileMode.gitlink) continue; // a submodule's commit lives in another repository
          if (!reach(c.data, c.oidStart, c.mode === FileMode.tree)) throw missing(oidToHex(c.data, c.oidStart, 20), oid);
        }
        break;
      }
      case PackObjectType.Tag: {
        const tag = parseTag(obj.data);
        if (!reach(oidFromHex(tag.object), 0, true)) throw missing(tag.object, oid);
        break;
      }
      default:
        break;
    }
  }
  return { reached };
}

/** Whether every tip and every id of `links` is in `layer` or in `existing` (false too when a set is incomplete). */
export function linksSatisfied(tips: ObjectId[], links: ObjectIdSet[], layer: Layer, existing: LayeredObjects | undefined, signal?: AbortSignal): boolean {
  const index = layer.index;
  const present = (raw: Uint8Array, at: number): boolean => index.findRaw(raw, at) >= 0 || (existing?.hasRaw(raw, at) ?? false);
  for (const tip of tips) if (!present(oidFromHex(tip), 0)) return false;
  for (const set of links) {
    if (set.incomplete) return false;
    const n = set.hashLength;
    const ids = set.raw;
    for (let k = 0; k < set.size; k++) {
      if ((k & 0xffff) === 0 && signal?.aborted) throw new PackferryError(ErrorCode.Aborted, 'operation aborted');
      if (!present(ids, k * n)) return false;
    }
  }
  return true;
}

/** Whether `links` are all collected (then the walk is most likely not needed, and the pack need not be read into memory for it). */
export function linksComplete(links: ObjectIdSet[] | undefined): boolean {
  return links !== undefined && links.every((set) => !set.incomplete);
}

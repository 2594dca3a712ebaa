// The pack part of an upload-pack response: gitprotocol-pack(5), "Packfile
// Data" (v0/v1: side-band or side-band-64k when the client asked for it,
// else the bare pack) and gitprotocol-v2(5), "fetch", the "packfile" section
// (always side-band-64k framing). Band 1 carries the pack, band 2 progress
// (unless no-progress), band 3 a fatal error (written by upload-pack.ts).
//
// What goes in: the store walk of src/store/walk.ts over the wants and the
// common haves (Git's `pack-objects --revs` fed by upload-pack.c
// create_pack_file: wants, then --not haves and extra edges, with shallow
// grafts and --filter), plus with include-tag the annotated tags of
// refs/tags/ whose target is in the pack (pack-objects.c add_ref_tag, the
// whole tag chain). Objects are copied as stored (src/store/pack-out.ts).
//
// While the walk runs nothing else can be sent, so the client hears from us
// every second: "Enumerating objects: N" on band 2, or, with no-progress, an
// empty band-1 packet every keepaliveMs (Git's uploadpack.keepAlive).
import { ErrorCode, PackferryError } from '../core/errors.js';
import { throwIfAborted } from '../core/abort.js';
import { parseTag } from '../core/object.js';
import { oidFromHex, type ObjectId } from '../core/oid.js';
import { PackObjectType } from '../pack/format.js';
import { flushPkt } from '../protocol/pkt-line.js';
import { Band, sideBandPacket, type SideBandMode } from '../protocol/side-band.js';
import type { FilterSpec } from '../protocol/upload-pack-server.js';
import type { RefEntry } from '../store/layout.js';
import type { LayeredObjects } from '../store/objects.js';
import { generatePack, type PackStats } from '../store/pack-out.js';
import { enumerateObjects, type Enumeration, type Located } from '../store/walk.js';
import type { ShallowPlan } from './upload-pack-graph.js';

/** How the pack travels: multiplexed (with its packet size), or bare after the last pkt-line (v0 without side-band). */
export type PackFraming = SideBandMode | 'raw';

export interface PackRequest {
  /** The wants, and the parents of unshallowed commits. */
  wants: ObjectId[];
  /** The common haves. */
  haves: ObjectId[];
  shallow?: ShallowPlan;
  filter?: FilterSpec;
  thin: boolean;
  ofsDelta: boolean;
  includeTag: boolean;
  progress: boolean;
  framing: PackFraming;
}

export interface PackSectionOptions {
  signal?: AbortSignal;
  /** Longest silence during the walk when there is no progress to show (default 5000 ms). */
  keepaliveMs?: number;
  /** How often progress is shown during the walk (default 1000 ms). */
  progressMs?: number;
}

/** Resolves true when `promise` settles within `ms`, false otherwise (the timer is cleared either way). */
function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    const done = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    promise.then(done, done);
  });
}

/** An empty band-1 packet: a keepalive Git's side-band reader ignores ("0005\1"). */
const KEEPALIVE = Buffer.from('0005\x01', 'latin1');

/**
 * The framed pack: progress and keepalives while the objects are found,
 * the pack, the "Total" line, and (multiplexed) the closing flush.
 */
export async function* packSection(
  objects: LayeredObjects,
  refs: readonly RefEntry[],
  request: PackRequest,
  options: PackSectionOptions = {},
): AsyncGenerator<Buffer, void, undefined> {
  const { framing, progress } = request;
  const signal = options.signal;
  const mode: SideBandMode | undefined = framing === 'raw' ? undefined : framing;
  const band2 = (text: string): Buffer => sideBandPacket(Band.Progress, text, mode);
  const showProgress = progress && mode !== undefined;

  const found = { n: 0 };
  const shallow = request.shallow;
  const plain = request.haves.length === 0 && request.filter === undefined && (shallow === undefined || !shallow.active);
  const wanted = new Set(request.wants);
  const edges = shallow === undefined ? [] : [...shallow.edges];
  if (shallow?.active && request.thin) edges.push(...request.haves); // --objects-edge-aggressive
  const task = enumerateObjects(objects, request.wants, request.haves, {
    // A clone of every ref: every stored object, without walking.
    everything: plain && refs.length > 0 && refs.every((r) => wanted.has(r.oid)),
    filter: request.filter,
    shallow: shallow?.grafts,
    edges,
    onProgress: (n) => (found.n = n),
    signal,
  });
  task.catch(() => {}); // awaited below; this only keeps an early return from leaving it unhandled
  const progressMs = options.progressMs ?? 1000;
  const keepaliveMs = options.keepaliveMs ?? 5000;
  let quiet = 0;
  while (!(await settlesWithin(task, showProgress ? progressMs : Math.min(progressMs, keepaliveMs)))) {
    throwIfAborted(signal);
    if (showProgress) {
      yield band2(`Enumerating objects: ${found.n}\r`);
    } else if (mode !== undefined) {
      quiet += Math.min(progressMs, keepaliveMs);
      if (quiet >= keepaliveMs) {
        quiet = 0;
        yield KEEPALIVE;
      }
    }
  }
  let plan = await task;
  if (request.includeTag) plan = await includeTags(objects, refs, plan);
  if (showProgress) yield band2(`Enumerating objects: ${plan.count}, done.\n`);

  const stats: PackStats = { objects: 0, deltas: 0, reused: 0, packReused: 0 };
  for await (const chunk of generatePack(objects, plan, { thin: request.thin, ofsDelta: request.ofsDelta, stats })) {
    throwIfAborted(signal);
    yield mode === undefined ? chunk : sideBandPacket(Band.Data, chunk, mode);
  }
  if (showProgress) {
    yield band2(`Total ${stats.objects} (delta ${stats.deltas}), reused ${stats.reused} (delta ${stats.deltas}), pack-reused ${stats.packReused}\n`);
  }
  if (mode !== undefined) yield flushPkt;
}

/**
 * include-tag: the annotated tags (and the tags they tag) of refs/tags/
 * whose peeled object is in the pack and which are not in it yet.
 */
export async function includeTags(objects: LayeredObjects, refs: readonly RefEntry[], plan: Enumeration): Promise<Enumeration> {
  const added: ObjectId[] = [];
  const addedSet = new Set<ObjectId>();
  const inPack = (oid: ObjectId): boolean => addedSet.has(oid) || plan.sent(oid);
  for (const ref of refs) {
    if (!ref.name.startsWith('refs/tags/') || ref.peeled === undefined) continue;
    if (!plan.sent(ref.peeled)) continue;
    let cur = ref.oid;
    for (let depth = 0; depth < 64 && !inPack(cur); depth++) {
      const obj = await objects.tryRead(cur);
      if (!obj || obj.type !== PackObjectType.Tag) {
        throw new PackferryError(ErrorCode.MissingObjects, `unable to pack objects reachable from tag ${ref.oid}`, {
          details: { ref: ref.name, oid: cur },
          hint: 'run `packferry store verify`',
        });
      }
      added.push(cur);
      addedSet.add(cur);
      const tag = parseTag(obj.data);
      if (tag.objectType !== 'tag') break;
      cur = tag.object;
    }
  }
  return added.length === 0 ? plan : withObjects(objects, plan, added);
}

/** `plan` with more objects, kept in pack order (layer by layer, by offset). */
function withObjects(objects: LayeredObjects, plan: Enumeration, oids: readonly ObjectId[]): Enumeration {
  const extra = new Set(oids);
  const located: Located[] = oids.map((oid) => {
    const hit = objects.locateRaw(oidFromHex(oid))!;
    return { layer: hit.layer, position: hit.position, offset: hit.layer.index.offsetAt(hit.position) };
  });
  const order = new Map(objects.layers.map((l, i) => [l, i]));
  const all = [...plan.objects, ...located].sort((a, b) => order.get(a.layer)! - order.get(b.layer)! || a.offset - b.offset);
  return {
    objects: all,
    count: all.length,
    common: plan.common,
    known: (oid) => plan.known(oid),
    sent: (oid) => extra.has(oid) || plan.sent(oid),
  };
}

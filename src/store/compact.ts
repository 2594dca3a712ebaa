// Compacting a repository's layers (`packferry store compact`), as Git's
// `git repack --geometric` and `git repack -a -d` do for packs.
//
// Which layers: each sync adds a small layer, so lookups and dumb-HTTP
// clones would slow down with their number. The layers are kept in a
// geometric progression by pack size: going from the oldest layer to the
// newest, each must be at least `factor` (default 2) times the size of the
// next newer one. The newest layers that break the progression are merged
// into one, together with any older layer smaller than `factor` times
// their total (Git's rule for rolling up packs). So a store synced N times
// holds O(log N) layers, and each object is rewritten O(log N) times in
// all. `all` merges every layer into one.
//
// What the new layer holds:
// - merging some of the layers (the newest ones): every object of those
//   layers, once (the newest copy). Nothing is dropped: telling which of
//   their objects no ref reaches would need a walk of the whole repository,
//   and a partial merge should cost only the layers it merges;
// - merging all layers: only the objects reachable from the refs (git
//   rev-list --objects --all); objects left unreachable by rewound or
//   deleted refs are dropped.
// Entries are copied as stored (compressed bytes untouched, deltas reused,
// store/pack-out.ts); a delta whose base is not in the new layer is written
// whole, so the layer is self-contained. It is indexed like any incoming
// pack, checked for connectivity, stored, and then the manifest commits with
// the merged layers moved to `retired` (with the time).
//
// Deleting: a retired layer's files stay for the grace period (default one
// hour), so a reader that read the previous manifest — or a dumb-HTTP client
// that read the previous objects/info/packs — can still fetch them. Each
// compaction deletes retired layers whose grace has passed (dropping them
// from the manifest in the same commit, then deleting the files), and files
// under objects/pack/ that no manifest names (orphans of interrupted writes)
// once they are older than the grace period. A name listed as a layer is
// never deleted, whatever else says so.
//
// Nothing is held while the new layer is built: it commits through the
// store's transaction (repository.ts transact) like any write, and a push
// that committed meanwhile stays — its layers are kept in front of the
// merged one. A compaction whose merged layers are no longer all listed
// (another compaction), or, for --all, whose refs changed meanwhile (a ref
// could now reach an object it dropped), commits nothing and says so.
import { throwIfAborted } from '../core/abort.js';
import { PackferryError, ErrorCode } from '../core/errors.js';
import { oidFromHex, type ObjectId } from '../core/oid.js';
import type { ProgressSink } from '../core/progress.js';
import { PackFile } from '../pack/packfile.js';
import { PackReader } from '../pack/reader.js';
import { checkConnectivity } from './connectivity.js';
import { idxKey, packKey } from './layout.js';
import type { LayerEntry, Manifest, RetiredLayer } from './manifest.js';
import { LayeredObjects, type Layer } from './objects.js';
import { generatePack } from './pack-out.js';
import { receivePack } from './receive.js';
import type { StoreRepository } from './repository.js';
import { enumerateObjects, type Enumeration, type Located } from './walk.js';

export const DEFAULT_GRACE_MS = 60 * 60 * 1000;
export const DEFAULT_FACTOR = 2;

export interface CompactOptions {
  /** Merge every layer into one, keeping only objects reachable from the refs. */
  all?: boolean;
  /** The geometric factor (default 2). */
  factor?: number;
  /** Retired layers and orphaned files are deleted once older than this (default one hour). */
  graceMs?: number;
  /** Plan only: change nothing. */
  dryRun?: boolean;
  threads?: number;
  /** Where an object store's new layer is spilled while indexed. */
  spillDir?: string;
  progress?: ProgressSink;
  signal?: AbortSignal;
}

export interface CompactResult {
  /** The manifest generation afterwards (unchanged when nothing was committed). */
  generation: number;
  layersBefore: number;
  layersAfter: number;
  /** The layers merged (or, in a dry run, to be merged). */
  merged: LayerEntry[];
  /** The layer they were merged into. */
  layer?: LayerEntry;
  /** Objects of the merged layers not carried over (duplicates, and with `all` unreachable ones). */
  dropped: number;
  /** Retired layers whose grace has passed, dropped from the manifest and deleted (or to be). */
  expired: string[];
  /** Files deleted (or to be): expired layers' and orphans'. */
  deleted: string[];
  /** Git's files lagged behind the manifest and were rewritten. */
  repaired: boolean;
  dryRun: boolean;
}

/**
 * How many of the newest layers to merge (0: none) for sizes given newest
 * first: Git's geometric repack (builtin/repack.c, init_pack_geometry and
 * split_pack_geometry), over layers in age order.
 */
export function planCompaction(sizes: readonly number[], factor = DEFAULT_FACTOR): number {
  if (!(factor > 1)) throw new PackferryError(ErrorCode.Usage, `the geometric factor must be greater than 1, not ${factor}`);
  const n = sizes.length;
  if (n < 2) return 0;
  // From the oldest: the first layer not at least `factor` times its newer neighbour breaks the progression.
  let i = n - 1;
  for (; i > 0; i--) if (sizes[i] < factor * sizes[i - 1]) break;
  if (i === 0) return 0;
  let split = i + 1;
  let total = 0;
  for (let k = 0; k < split; k++) total += sizes[k];
  // Older layers that would not be `factor` times bigger than the merged one are rolled up too.
  while (split < n && sizes[split] < factor * total) total += sizes[split++];
  return split;
}

function retiredAt(r: RetiredLayer): number {
  const t = Date.parse(r.retired);
  return Number.isNaN(t) ? Date.now() : t;
}

/** Objects of the first `k` layers, each once (its newest copy), in layer order then pack order. */
function unionOf(objects: LayeredObjects, k: number): Enumeration {
  const merged = new Set(objects.layers.slice(0, k));
  const out: Located[] = [];
  for (const layer of objects.layers.slice(0, k)) {
    const index = layer.index;
    const rows: Located[] = [];
    for (let position = 0; position < index.count; position++) {
      if (objects.locateRaw(index.oidAt(position))?.layer !== layer) continue; // a newer layer has it
      rows.push({ layer, position, offset: index.offsetAt(position) });
    }
    rows.sort((a, b) => a.offset - b.offset);
    out.push(...rows);
  }
  const inMerged = (oid: ObjectId): boolean => {
    const hit = objects.locateRaw(oidFromHex(oid));
    return hit !== undefined && merged.has(hit.layer);
  };
  return { objects: out, count: out.length, common: [], known: () => false, sent: inMerged };
}

/** Compacts the repository's layers (see the module comment). */
export async function compactStore(repo: StoreRepository, options: CompactOptions = {}): Promise<CompactResult> {
  if (!repo.exists) throw new PackferryError(ErrorCode.NotFound, `${repo.description}: no packferry store here`);
  const signal = options.signal;
  const graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
  const factor = options.factor ?? DEFAULT_FACTOR;
  if (options.dryRun) return plan(repo.manifest, await repo.blobs.list('objects/pack/', signal));

  {
    // The current state, and Git's files repaired if a writer stopped before writing them.
    await repo.refresh(signal);
    const repaired = await repo.ensurePublished(signal, { thorough: true });
    const before = repo.manifest;
    const result = plan(before, []);
    const k = result.merged.length;
    let layer: LayerEntry | undefined;
    if (k > 0 && options.all && before.refs.length === 0) {
      // No refs: nothing is reachable, every layer is retired.
      result.dropped = before.layers.reduce((n, l) => n + l.objects, 0);
    } else if (k > 0) {
      const built = await buildLayer(repo, k, options);
      if (built) {
        layer = built.entry;
        result.dropped = built.dropped;
      } else {
        result.merged = []; // nothing to gain: one layer, every object reachable
      }
    }
    const now = Date.now();
    const mergedNames = new Set(result.merged.map((l) => l.name));
    const sameRefs = (m: Manifest) => m.refs.length === before.refs.length && m.refs.every((r, i) => r.name === before.refs[i].name && r.oid === before.refs[i].oid);
    let conflict: string | undefined;
    let expired: RetiredLayer[] = [];
    const committed = await repo.transact(
      (current) => {
        conflict = undefined;
        if (![...mergedNames].every((n) => current.layers.some((l) => l.name === n))) {
          conflict = 'its layers were merged by another compaction meanwhile';
          return undefined;
        }
        if (options.all && result.merged.length > 0 && !sameRefs(current)) {
          conflict = 'refs changed while it ran, and a ref could now reach an object it dropped';
          return undefined;
        }
        // Layers committed since the plan (pushes, syncs) stay in front of the merged one.
        const kept = current.layers.filter((l) => !mergedNames.has(l.name));
        const newer = kept.filter((l) => !before.layers.some((b) => b.name === l.name));
        const older = kept.filter((l) => before.layers.some((b) => b.name === l.name));
        const layers = [...newer, ...(layer ? [{ ...layer, generation: current.generation + 1 }] : []), ...older];
        const live = new Set(layers.map((l) => l.name));
        expired = current.retired.filter((r) => now - retiredAt(r) >= graceMs && !live.has(r.name));
        if (result.merged.length === 0 && expired.length === 0) return undefined;
        const stamp = new Date(now).toISOString();
        const retired = [
          ...current.retired.filter((r) => !expired.includes(r) && !live.has(r.name)),
          ...result.merged.filter((l) => !live.has(l.name)).map((l) => ({ name: l.name, retired: stamp })),
        ];
        return { ...current, layers, retired };
      },
      { signal },
    );
    if (conflict !== undefined) {
      if (layer) await deleteLayerFiles(repo, layer.name, signal);
      throw new PackferryError(ErrorCode.StoreLocked, `${repo.description}: compaction committed nothing: ${conflict}`, { hint: 'run it again' });
    }
    result.expired = committed ? expired.map((r) => r.name) : [];
    result.layer = layer;
    result.repaired = repaired;
    result.generation = repo.manifest.generation;
    result.layersAfter = repo.manifest.layers.length;

    // Deleting, after the commit: expired layers, then orphans older than the grace period.
    const after = repo.manifest;
    const listed = new Set([...after.layers.map((l) => l.name), ...after.retired.map((r) => r.name)]);
    for (const name of result.expired) {
      if (listed.has(name)) continue;
      for (const key of [idxKey(name), packKey(name)]) {
        await repo.blobs.delete(key, signal);
        result.deleted.push(key);
      }
    }
    for (const info of await repo.blobs.list('objects/pack/', signal)) {
      if (result.deleted.includes(info.key)) continue;
      const m = /^objects\/pack\/(pack-[0-9a-f]{40})\.(pack|idx)$/.exec(info.key);
      if (m && listed.has(m[1])) continue;
      if (now - info.lastModified.getTime() < graceMs) continue;
      await repo.blobs.delete(info.key, signal);
      result.deleted.push(info.key);
    }
    return result;
  }

  function plan(m: Manifest, listing: { key: string; lastModified: Date }[]): CompactResult {
    const k = options.all ? m.layers.length : planCompaction(m.layers.map((l) => l.packBytes), factor);
    const now = Date.now();
    const merged = m.layers.slice(0, k);
    const live = new Set(m.layers.slice(k).map((l) => l.name));
    const expired = m.retired.filter((r) => now - retiredAt(r) >= graceMs && !live.has(r.name)).map((r) => r.name);
    const listed = new Set([...m.layers.map((l) => l.name), ...m.retired.map((r) => r.name)]);
    const deleted = [
      ...expired.flatMap((n) => [idxKey(n), packKey(n)]),
      ...listing
        .filter((i) => {
          const name = /^objects\/pack\/(pack-[0-9a-f]{40})\.(pack|idx)$/.exec(i.key)?.[1];
          return !(name !== undefined && listed.has(name)) && now - i.lastModified.getTime() >= graceMs;
        })
        .map((i) => i.key),
    ];
    return {
      generation: m.generation,
      layersBefore: m.layers.length,
      layersAfter: m.layers.length - (k > 1 ? k - 1 : 0),
      merged,
      dropped: 0,
      expired,
      deleted: options.dryRun ? [...new Set(deleted)] : [],
      repaired: false,
      dryRun: options.dryRun === true,
    };
  }
}

/** Removes a layer's files that no state names (a merged layer whose compaction did not commit). */
async function deleteLayerFiles(repo: StoreRepository, name: string, signal?: AbortSignal): Promise<void> {
  await repo.refresh(signal);
  if (repo.manifest.layers.some((l) => l.name === name) || repo.manifest.retired.some((r) => r.name === name)) return;
  await repo.blobs.delete(packKey(name), signal);
  await repo.blobs.delete(idxKey(name), signal);
}

/**
 * Writes, indexes, checks and stores the layer that replaces the newest `k`
 * layers. Returns undefined when there is nothing to gain (one layer, all of
 * it reachable).
 */
async function buildLayer(repo: StoreRepository, k: number, options: CompactOptions): Promise<{ entry: LayerEntry; dropped: number } | undefined> {
  const signal = options.signal;
  const objects = await repo.objects(signal);
  const all = k === objects.layers.length;
  const tips = [...new Set(repo.refs.map((r) => r.oid))];
  const plan = all ? await enumerateObjects(objects, tips, [], { signal }) : unionOf(objects, k);
  const inMerged = objects.layers.slice(0, k).reduce((n, l) => n + l.index.count, 0);
  if (k === 1 && plan.objects.length === inMerged) return undefined;
  if (plan.objects.length === 0) {
    throw new PackferryError(ErrorCode.Internal, 'compaction found no objects to keep', { hint: 'run `packferry store verify`' });
  }
  throwIfAborted(signal);
  const written = { n: 0 };
  const pack = generatePack(objects, plan, { ofsDelta: true, thin: false, onObject: (n) => (written.n = n) });
  const staged = await receivePack(repo, pack, { threads: options.threads, spillDir: options.spillDir, progress: options.progress, signal });
  let reader: PackReader | undefined;
  let rest: LayeredObjects | undefined;
  try {
    if (staged.entry.objects !== plan.objects.length) {
      throw new PackferryError(ErrorCode.Internal, `the merged layer holds ${staged.entry.objects} objects, not the ${plan.objects.length} written`);
    }
    // Every ref must still be complete: in the new layer, or in the layers not merged.
    reader = PackReader.fromIndex(PackFile.open(staged.localPack), staged.layer.index);
    const kept: Layer[] = objects.layers.slice(k);
    rest = kept.length > 0 ? new LayeredObjects(kept, repo.files) : undefined;
    await checkConnectivity(tips, staged.layer, reader, rest, signal, staged.indexed.links);
    await staged.stored; // the layer's files are in place before the manifest names them
  } catch (err) {
    await staged.remove().catch(() => {}); // (not if the manifest names it: a layer identical to a listed one is that layer)
    throw err;
  } finally {
    reader?.close();
    await rest?.close();
    await staged.discard().catch(() => {});
  }
  return { entry: { ...staged.entry, merged: k }, dropped: inMerged - plan.objects.length };
}

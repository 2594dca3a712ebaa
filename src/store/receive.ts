// Receiving a pack into a store as a new layer. The pack is indexed as it
// arrives (packferry's own index-pack, thin packs completed from the store's
// objects), its objects checked as Git's receive.fsckObjects checks them
// (when asked: per object while indexing, then the .gitmodules and
// .gitattributes blobs its trees name, in the pack or already stored), then
// checked for connectivity by the caller, and stored under its content name:
// objects/pack/pack-<checksum>.{pack,idx}. A pack that fails the object
// check is never stored.
//
// Temporary disk: indexing needs random access to the pack (delta bases are
// re-read from it), so the incoming pack is spilled to a local file while it
// arrives — for a directory store inside the store itself (then it is simply
// renamed into place), for an object store in the spill directory, removed
// once uploaded. The spill never exceeds the incoming pack's size.
import { createReadStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { fsckError, hasErrors, type FsckOptions, type FsckProblem } from '../core/fsck.js';
import type { ProgressSink } from '../core/progress.js';
import { testPoint } from '../core/test-points.js';
import { indexPackStream, type BaseResolver, type IndexedPack } from '../pack/indexer.js';
import { PackIndex } from '../pack/idx.js';
import { PackFile } from '../pack/packfile.js';
import { PackReader } from '../pack/reader.js';
import { finishFsck } from './fsck.js';
import { localFiles } from './backend.js';
import { idxKey, KEYS, packKey } from './layout.js';
import { parseManifest, type LayerEntry } from './manifest.js';
import type { StoreRepository } from './repository.js';
import { saveCachedIndex, type Layer, type LayeredObjects } from './objects.js';

export interface StagedLayer {
  entry: LayerEntry;
  layer: Layer;
  indexed: IndexedPack;
  /** Where the pack is on local disk until `discard` (for the connectivity check). */
  localPack: string;
  /** Settles once the layer's files are stored (object stores upload in the background): await before committing. */
  stored: Promise<void>;
  /** Removes the local spill (object stores). */
  discard(): Promise<void>;
  /** Removes the stored layer again (when the push it came with is refused). */
  remove(): Promise<void>;
  /** With `fsck`: problems found that are not errors (warnings, for the pusher to see), in pack order. */
  fsckWarnings: FsckProblem[];
}

export interface ReceiveOptions {
  /** Complete a thin pack from the store's objects. */
  fixThin?: boolean;
  /** Where object stores spill incoming packs (default the OS temporary directory). */
  spillDir?: string;
  threads?: number;
  progress?: ProgressSink;
  signal?: AbortSignal;
  /**
   * Check the objects as Git's receive.fsckObjects does (use
   * transferFsckOptions: strict, with per-id levels). A pack with errors
   * throws ERR_FSCK (core/fsck.ts fsckError) and nothing is stored.
   */
  fsck?: FsckOptions;
}

/** Whether the manifest in the store lists `name` as a layer or a retired one (true if it cannot be read). */
async function namedByManifest(repo: StoreRepository, name: string): Promise<boolean> {
  try {
    const bytes = await repo.blobs.get(KEYS.manifest);
    if (!bytes) return false;
    const m = parseManifest(bytes);
    return m.layers.some((l) => l.name === name) || m.retired.some((r) => r.name === name);
  } catch {
    return true;
  }
}

export async function receivePack(repo: StoreRepository, pack: AsyncIterable<Uint8Array>, options: ReceiveOptions = {}): Promise<StagedLayer> {
  const blobs = repo.blobs;
  const files = localFiles(blobs);
  const local = files !== undefined;
  const dir = files ? join(files.root, 'objects', 'pack') : (options.spillDir ?? join(tmpdir(), 'packferry-spill'));
  // A directory that a first write stopped in before its commit is still recognised as a store by its packferry/ (store/open.ts classifyPath).
  await files?.ensureDirectory('packferry');
  await mkdir(dir, { recursive: true });
  const spill = join(dir, `.incoming-${randomBytes(8).toString('hex')}.pack`);
  let fixThin: BaseResolver | undefined;
  const stored = options.fixThin || options.fsck ? await repo.objects(options.signal) : undefined;
  if (options.fixThin) fixThin = async (oid) => stored!.tryRead(oid);
  // Links are collected for the connectivity check that follows every receive (store/connectivity.ts).
  const indexed = await indexPackStream(withTestPoint(pack, options.signal), spill, {
    fixThin,
    threads: options.threads,
    progress: options.progress,
    signal: options.signal,
    collectLinks: true,
    fsck: options.fsck,
  });
  const name = `pack-${indexed.checksum.toString('hex')}`;
  const index = PackIndex.parse(indexed.index);
  let fsckWarnings: FsckProblem[] = [];
  if (options.fsck) {
    try {
      fsckWarnings = await checkObjects(indexed, spill, index, stored, options.fsck);
    } catch (err) {
      await rm(spill, { force: true });
      throw err;
    }
  }
  let localPack = spill;
  let storing: Promise<void>;
  try {
    if (local) {
      // In place: the index first, then the pack under its final name.
      await blobs.put(idxKey(name), indexed.index, { signal: options.signal });
      localPack = join(dir, `${name}.pack`);
      await rename(spill, localPack);
      storing = Promise.resolve();
    } else {
      // The upload runs while the caller checks the layer (connectivity, LFS); it awaits `stored` before committing.
      const size = (await stat(spill)).size;
      storing = (async () => {
        await blobs.put(packKey(name), createReadStream(spill, { highWaterMark: 1 << 20 }), { size, contentType: 'application/x-git-packed-objects', signal: options.signal });
        await blobs.put(idxKey(name), indexed.index, { contentType: 'application/x-git-packed-objects-toc', signal: options.signal });
        if (repo.idxCache) await saveCachedIndex(repo.idxCache, name, indexed.index).catch(() => {});
      })();
      storing.catch(() => {}); // observed by whoever awaits it; never an unhandled rejection
    }
  } catch (err) {
    await rm(spill, { force: true });
    throw err;
  }
  const packBytes = (await stat(localPack)).size;
  const entry: LayerEntry = {
    name,
    objects: indexed.objectCount,
    packBytes,
    idxBytes: indexed.index.length,
    generation: repo.manifest.generation + 1,
    created: new Date().toISOString(),
  };
  return {
    entry,
    layer: { name, index },
    indexed,
    localPack,
    stored: storing,
    fsckWarnings,
    discard: async () => {
      await storing.catch(() => {});
      if (!local) await rm(spill, { force: true });
    },
    remove: async () => {
      await storing.catch(() => {});
      if (!local) await rm(spill, { force: true });
      // Only a layer the stored manifest does not name: a commit whose answer was lost may have
      // happened, and a pack identical to one already listed (the same objects sent again) is that
      // layer. When in doubt the files stay, an orphan for compaction.
      if (await namedByManifest(repo, name)) return;
      await blobs.delete(packKey(name));
      await blobs.delete(idxKey(name));
    },
  };
}

/** `pack`, stopping at the test point 'store:receiving' after its first chunk (core/test-points.ts). */
async function* withTestPoint(pack: AsyncIterable<Uint8Array>, signal: AbortSignal | undefined): AsyncGenerator<Uint8Array> {
  let first = true;
  for await (const chunk of pack) {
    yield chunk;
    if (first) await testPoint('store:receiving', signal);
    first = false;
  }
}

/**
 * The object check's end (fsck_finish): the special blobs the pack's trees
 * name, read from the pack itself or the store. Throws ERR_FSCK when any
 * problem is an error; returns the warnings.
 */
async function checkObjects(indexed: IndexedPack, packPath: string, index: PackIndex, stored: LayeredObjects | undefined, options: FsckOptions): Promise<FsckProblem[]> {
  const findings = indexed.fsck!;
  let problems = findings.problems;
  if (findings.gitmodules.length > 0 || findings.gitattributes.length > 0) {
    const reader = PackReader.fromIndex(PackFile.open(packPath), index);
    try {
      const lookup = {
        header: async (oid: string) => reader.readHeader(oid) ?? (await stored?.tryReadHeader(oid)),
        read: async (oid: string) => reader.tryRead(oid) ?? (await stored?.tryRead(oid)),
      };
      problems = [...problems, ...(await finishFsck(findings, lookup, options))];
    } finally {
      reader.close();
    }
  }
  if (hasErrors(problems) || findings.droppedErrors > 0) throw fsckError(problems, findings.droppedErrors);
  return problems;
}

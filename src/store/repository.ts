// A repository in a packferry store (docs/store-format.md). Reading: the
// manifest, then layers on demand. Writing, always under the writer lock:
//   1. the new layer's pack and index are stored (immutable, content-named);
//   2. the manifest is replaced (the commit point: one atomic put);
//   3. Git's files are rewritten from it: objects/info/packs, packed-refs,
//      info/refs, HEAD.
// A reader never sees a ref whose objects are missing, and a crash at any
// point leaves the previous state readable: before 2 the new layer is just
// an unlisted file (verify reports it, compaction removes it); between 2 and
// 3 Git's files still describe the previous generation, complete in itself,
// and the next commit (or compaction) rewrites them all.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PackferryError, ErrorCode } from '../core/errors.js';
import type { ObjectId } from '../core/oid.js';
import type { BlobStore } from './backend.js';
import { FsBlobStore } from './fs-backend.js';
import { BARE_CONFIG, KEYS, renderHead, renderInfoPacks, renderInfoRefs, renderPackedRefs, type RefEntry } from './layout.js';
import { acquireWriterLock, type LockOptions, type WriterLock } from './lock.js';
import { emptyManifest, parseManifest, serializeManifest, type LayerEntry, type Manifest } from './manifest.js';
import { LayeredObjects, layerFilesFor, loadLayers, type Layer, type LayerFiles } from './objects.js';

export interface StoreRepositoryOptions {
  /** Where an object store's layers are cached locally (default: <tmpdir>/packferry-layers). */
  cacheDir?: string;
  signal?: AbortSignal;
}

export class StoreRepository {
  private objectsPromise: Promise<LayeredObjects> | undefined;
  /** The generation whose Git files this instance wrote completely (none at first: the last writer may have crashed). */
  private gitFilesWritten: number | undefined;
  readonly files: LayerFiles;
  /** Where an object store's pack indexes are cached locally (undefined for directory stores). */
  readonly idxCache: string | undefined;

  private constructor(
    readonly blobs: BlobStore,
    private current: Manifest,
    /** Whether a manifest exists (false: an empty or new location). */
    readonly exists: boolean,
    options: StoreRepositoryOptions,
  ) {
    const cacheDir = options.cacheDir ?? join(tmpdir(), 'packferry-layers');
    this.files = layerFilesFor(blobs, cacheDir);
    // Pack indexes of an object store are kept locally too: content-named, so never stale.
    this.idxCache = blobs instanceof FsBlobStore ? undefined : cacheDir;
  }

  static async open(blobs: BlobStore, options: StoreRepositoryOptions = {}): Promise<StoreRepository> {
    const bytes = await blobs.get(KEYS.manifest, options.signal);
    const manifest = bytes ? parseManifest(bytes) : emptyManifest();
    return new StoreRepository(blobs, manifest, bytes !== undefined, options);
  }

  get manifest(): Manifest {
    return this.current;
  }

  get description(): string {
    return this.blobs.description;
  }

  get refs(): RefEntry[] {
    return this.current.refs;
  }

  get head(): string {
    return this.current.head;
  }

  /** Every object of the current layers (the indexes are loaded on first use). */
  objects(signal?: AbortSignal): Promise<LayeredObjects> {
    this.objectsPromise ??= loadLayers(
      this.blobs,
      this.current.layers.map((l) => l.name),
      signal,
      this.idxCache,
    ).then((layers) => new LayeredObjects(layers, this.files));
    return this.objectsPromise;
  }

  lock(options: LockOptions = {}): Promise<WriterLock> {
    return acquireWriterLock(this.blobs, options);
  }

  /**
   * Re-reads the manifest (under the lock: another writer may have committed
   * since it was first read). Git's files are rewritten at every commit, so
   * ones left behind by a writer that crashed after its commit are brought up
   * to date by the next commit (`store verify` reports them meanwhile).
   */
  async refresh(signal?: AbortSignal): Promise<void> {
    const bytes = await this.blobs.get(KEYS.manifest, signal);
    if (bytes) {
      const m = parseManifest(bytes);
      if (m.generation !== this.current.generation) this.objectsPromise = undefined;
      this.current = m;
    }
  }

  /**
   * Commits a new generation: optionally a new layer (already stored), and
   * the complete new set of refs. The caller holds the lock and has checked
   * that the layers hold every object the refs reach.
   */
  async commit(change: { layer?: LayerEntry; layers?: LayerEntry[]; refs: RefEntry[]; head?: string; retired?: Manifest['retired'] }, signal?: AbortSignal): Promise<Manifest> {
    const prev = this.current;
    // A pack identical to a listed layer (the same objects sent again) is that layer: listed once. A
    // layer listed again is no longer retired (its files must outlive any grace period).
    const added = change.layer && !prev.layers.some((l) => l.name === change.layer!.name) ? [change.layer] : [];
    const layers = change.layers ?? [...added, ...prev.layers];
    const live = new Set(layers.map((l) => l.name));
    const next: Manifest = {
      ...prev,
      generation: prev.generation + 1,
      head: change.head ?? prev.head,
      refs: [...change.refs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
      layers,
      retired: (change.retired ?? prev.retired).filter((r) => !live.has(r.name)),
      updated: new Date().toISOString(),
    };
    if (!this.exists || prev.generation === 0) {
      // A new repository: the files Git needs to recognise it come first.
      await this.blobs.put(KEYS.config, Buffer.from(BARE_CONFIG), { contentType: 'text/plain', signal });
    }
    await this.blobs.put(KEYS.manifest, serializeManifest(next), { contentType: 'application/json', signal });
    this.current = next;
    this.objectsPromise = undefined;
    // Files are skipped as unchanged only when this instance wrote them for `prev`: a writer that
    // stopped after its commit may have left any of them behind, and only a rewrite repairs them.
    const trusted = this.gitFilesWritten === prev.generation ? prev : undefined;
    this.gitFilesWritten = undefined;
    await this.writeGitFiles(next, signal, trusted);
    this.gitFilesWritten = next.generation;
    return next;
  }

  /**
   * Git's view of the manifest, in the order that keeps it consistent: packs,
   * then refs, then HEAD. Files that cannot have changed since `prev` are
   * left alone (each put is a request to an object store).
   */
  private async writeGitFiles(m: Manifest, signal?: AbortSignal, prev?: Manifest): Promise<void> {
    const text = { contentType: 'text/plain', signal };
    // A directory store must also look like a repository to `git clone PATH`: it checks for refs/.
    if (this.blobs instanceof FsBlobStore) await this.blobs.ensureDirectory('refs/heads');
    const layersChanged = !prev || prev.layers.map((l) => l.name).join() !== m.layers.map((l) => l.name).join();
    if (layersChanged) await this.blobs.put(KEYS.infoPacks, Buffer.from(renderInfoPacks(m.layers.map((l) => l.name))), text);
    await this.blobs.put(KEYS.packedRefs, Buffer.from(renderPackedRefs(m.refs)), text);
    await this.blobs.put(KEYS.infoRefs, Buffer.from(renderInfoRefs(m.refs)), text);
    if (!prev || prev.head !== m.head || prev.generation === 0) await this.blobs.put(KEYS.head, Buffer.from(renderHead(m.head)), text);
  }

  /**
   * Rewrites Git's files if any differs from the manifest (a writer stopped
   * between its commit and its last step); true if it did. The caller holds
   * the lock. Costs a read of each file: for maintenance, not every sync.
   */
  async repairGitFiles(signal?: AbortSignal): Promise<boolean> {
    const m = this.current;
    const expected: [string, string][] = [
      [KEYS.infoPacks, renderInfoPacks(m.layers.map((l) => l.name))],
      [KEYS.packedRefs, renderPackedRefs(m.refs)],
      [KEYS.infoRefs, renderInfoRefs(m.refs)],
      [KEYS.head, renderHead(m.head)],
    ];
    const actual = await Promise.all(expected.map(([key]) => this.blobs.get(key, signal)));
    if (expected.every(([, text], i) => actual[i]?.toString() === text)) {
      this.gitFilesWritten = m.generation;
      return false;
    }
    this.gitFilesWritten = undefined;
    await this.writeGitFiles(m, signal);
    this.gitFilesWritten = m.generation;
    return true;
  }

  /** Creates an empty repository (a manifest of generation 0 and Git's files), if there is none. */
  async init(options: { head?: string; signal?: AbortSignal } = {}): Promise<void> {
    if (this.exists) return;
    const m: Manifest = { ...emptyManifest(), head: options.head ?? 'refs/heads/main', updated: new Date().toISOString() };
    await this.blobs.put(KEYS.config, Buffer.from(BARE_CONFIG), { contentType: 'text/plain', signal: options.signal });
    await this.blobs.put(KEYS.manifest, serializeManifest(m), { contentType: 'application/json', signal: options.signal });
    this.current = m;
    await this.writeGitFiles(m, options.signal);
    this.gitFilesWritten = m.generation;
  }

  refValue(name: string): ObjectId | undefined {
    return this.current.refs.find((r) => r.name === name)?.oid;
  }

  async close(): Promise<void> {
    const objects = await this.objectsPromise?.catch(() => undefined);
    await objects?.close();
  }
}

export type { Layer };

/** Throws unless the caller's view of a ref still holds (compare-and-swap under the lock). */
export function checkRefUnchanged(repo: StoreRepository, name: string, expected: ObjectId | undefined): void {
  const now = repo.refValue(name);
  if (now !== expected) {
    throw new PackferryError(ErrorCode.RefRejected, `${name} changed in the store while this update was prepared`, {
      details: { ref: name, expected, actual: now },
    });
  }
}

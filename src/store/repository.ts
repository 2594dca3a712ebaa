// A repository in a packferry store (docs/store-format.md). Reading: the
// manifest, then layers on demand. Every change — a push, a mirror sync, a
// compaction, a settings edit that moves HEAD — is one transaction
// (`transact`, and ref-transaction.ts above it for ref edits):
//   1. staged before anything is held: a new layer's pack and index stored
//      (immutable, content-named), checked by the caller;
//   2. committed: the next state is computed from the committed one and
//      swapped in by the commit contract (ref-database.ts: a compare-and-swap
//      of the generation, milliseconds); a writer that lost the race computes
//      again from the newer state;
//   3. published: Git's files rewritten from the committed state
//      (objects/info/packs, packed-refs, info/refs, HEAD), then the
//      generation they describe noted in packferry/published.json.
// A reader never sees a ref whose objects are missing, and a crash at any
// point leaves the previous state readable: before 2 the new layer is just
// an unlisted file (verify reports it, compaction removes it); between 2 and
// 3 Git's files lag behind, and the next write of any kind — a no-op sync
// included (`ensurePublished`) — finds published.json behind the manifest
// and rewrites them.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PackferryError, ErrorCode } from '../core/errors.js';
import { testPoint } from '../core/test-points.js';
import type { ObjectId } from '../core/oid.js';
import { localFiles, type BlobStore } from './backend.js';
import { BARE_CONFIG, KEYS, renderHead, renderInfoPacks, renderInfoRefs, renderPackedRefs, type RefEntry } from './layout.js';
import { emptyManifest, type Manifest } from './manifest.js';
import { LayeredObjects, layerFilesFor, loadLayers, type Layer, type LayerFiles } from './objects.js';
import { BlobRefDatabase, type RefDatabase } from './ref-database.js';

export interface StoreRepositoryOptions {
  /** Where an object store's layers are cached locally (default: <tmpdir>/packferry-layers). */
  cacheDir?: string;
  signal?: AbortSignal;
  /** The commit contract (default: the manifest blob of `blobs`, BlobRefDatabase). */
  refs?: RefDatabase;
}

/** One step of a transaction: the next state computed from the committed one, or undefined for no change. */
export type TransactionStep = (current: Manifest, exists: boolean) => Promise<Manifest | undefined> | Manifest | undefined;

export interface TransactOptions {
  signal?: AbortSignal;
  /** Attempts when other writers keep committing first (default 20). */
  attempts?: number;
  /** A state committed where none exists is generation 0, an empty repository (`init`), rather than 1. */
  initial?: boolean;
}

/** What packferry/published.json says: the generation whose Git files are all written. */
interface Published {
  generation: number;
}

export class StoreRepository {
  private objectsPromise: Promise<LayeredObjects> | undefined;
  readonly files: LayerFiles;
  /** Where an object store's pack indexes are cached locally (undefined for directory stores). */
  readonly idxCache: string | undefined;
  /** The commit contract: where the state is read and swapped. */
  readonly refdb: RefDatabase;
  /** The generation published.json was last seen (read or written) to say, by this instance. */
  private publishedSeen: number | undefined;

  private constructor(
    readonly blobs: BlobStore,
    private current: Manifest,
    /** Whether a manifest exists (false: an empty or new location). */
    private committed: boolean,
    refdb: RefDatabase,
    options: StoreRepositoryOptions,
  ) {
    const cacheDir = options.cacheDir ?? join(tmpdir(), 'packferry-layers');
    this.files = layerFilesFor(blobs, cacheDir);
    // Pack indexes of an object store are kept locally too: content-named, so never stale.
    this.idxCache = localFiles(blobs) ? undefined : cacheDir;
    this.refdb = refdb;
  }

  static async open(blobs: BlobStore, options: StoreRepositoryOptions = {}): Promise<StoreRepository> {
    const refdb = options.refs ?? new BlobRefDatabase(blobs);
    const manifest = await refdb.read(options.signal);
    return new StoreRepository(blobs, manifest ?? emptyManifest(), manifest !== undefined, refdb, options);
  }

  /** Whether a manifest exists (false: an empty or new location). */
  get exists(): boolean {
    return this.committed;
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

  /** Re-reads the committed state (another writer may have committed since it was read). */
  async refresh(signal?: AbortSignal): Promise<void> {
    const m = await this.refdb.read(signal);
    if (m) this.adopt(m);
  }

  private adopt(m: Manifest): void {
    if (m.generation !== this.current.generation || !this.committed) this.objectsPromise = undefined;
    this.current = m;
    this.committed = true;
  }

  /**
   * The one write path (see the module comment): `step` computes the next
   * state from the committed one; it is swapped in if no other writer
   * committed meanwhile, and computed again from the newer state if one did
   * (so `step` must decide from `current` alone: old values, conflicts). The
   * new layer files a state names must be stored before `step` returns it.
   * Then Git's files are published. Resolves with the state committed, or
   * undefined when `step` asked for no change (Git's files are still brought
   * up to date if a stopped writer left them behind).
   */
  async transact(step: TransactionStep, options: TransactOptions = {}): Promise<Manifest | undefined> {
    const signal = options.signal;
    const attempts = options.attempts ?? 20;
    for (let attempt = 0; ; attempt++) {
      // The first attempt starts from the state already read (the swap checks it is still the committed one);
      // after a lost race, from the one committed since.
      const base = attempt === 0 && this.committed ? this.current : await this.refdb.read(signal);
      if (base === undefined && this.committed) {
        // Deleted since it was opened (`repo rm`): a write must not bring it back.
        throw new PackferryError(ErrorCode.NotFound, `${this.description}: the repository was deleted`);
      }
      const exists = base !== undefined;
      const from = base ?? emptyManifest();
      if (base) this.adopt(base);
      const proposed = await step(from, exists);
      if (proposed === undefined) {
        if (exists) await this.ensurePublished(signal);
        return undefined;
      }
      const generation = exists ? from.generation + 1 : options.initial ? 0 : 1;
      const next: Manifest = { ...proposed, generation, updated: new Date().toISOString() };
      if (!exists) {
        // A new repository: the files Git needs to recognise it come first.
        await this.blobs.put(KEYS.config, Buffer.from(BARE_CONFIG), { contentType: 'text/plain', signal });
      }
      await testPoint('store:commit', signal);
      if (await this.refdb.compareAndSwap(exists ? from.generation : undefined, next, signal)) {
        this.adopt(next);
        this.objectsPromise = undefined;
        try {
          await testPoint('store:committed', signal);
          await this.publish(next, exists ? from : undefined, signal);
        } catch (err) {
          // Past the commit point the change is made: say so, whatever stopped the publication.
          const cause = err instanceof PackferryError ? err : undefined;
          throw new PackferryError(cause?.code ?? ErrorCode.Internal, `${this.description}: the refs moved (generation ${next.generation}), but Git's files were not all rewritten: ${(err as Error).message}`, {
            cause: err,
            details: { ...cause?.details, committed: next.generation },
            hint: "until the next write (a sync, even one with nothing to do, a push, `packferry store compact`) rewrites them, Git's clients see the previous state (after a repository's first commit: none)",
          });
        }
        return next;
      }
      if (attempt + 1 >= attempts) {
        throw new PackferryError(ErrorCode.StoreLocked, `${this.description}: other writers kept committing first (${attempts} attempts)`, {
          hint: 'try again',
        });
      }
      // Another writer committed first: a short random pause, then the step again from its state.
      await sleep(Math.min(1000, 5 * 2 ** Math.min(attempt, 7)) * Math.random(), undefined, { signal });
    }
  }

  /**
   * Writes Git's view of `m` (packs, then refs, then HEAD), then notes in
   * published.json that they describe it. Files that cannot differ from
   * `prev`'s are left alone when published.json says `prev` was published
   * completely. A writer that finds a newer state committed meanwhile
   * publishes that one instead (two writers publishing at once end with the
   * newest state's files).
   */
  async publish(m: Manifest, prev?: Manifest, signal?: AbortSignal): Promise<void> {
    let target = m;
    const published = prev === undefined ? undefined : (this.publishedSeen ?? (await this.readPublished(signal))?.generation);
    let trusted = prev !== undefined && published === prev.generation ? prev : undefined;
    for (let round = 0; round < 5; round++) {
      await this.writeGitFiles(target, signal, trusted);
      await testPoint('store:git-files', signal);
      await this.writePublished(target.generation, signal);
      const now = await this.refdb.read(signal);
      if (now === undefined || now.generation <= target.generation) return;
      this.adopt(now);
      target = now;
      trusted = undefined;
    }
  }

  /**
   * Brings Git's files in line with the committed state when published.json
   * says they lag behind it (a writer stopped between its commit and the
   * end of its publication; a store written before published.json existed
   * is compared file by file). True when anything was rewritten. For every
   * writer, a no-op sync included: one small read when nothing lags.
   * `thorough` (maintenance: `store compact`) compares every file with what
   * the state renders whatever published.json says, at the cost of reading
   * them all.
   */
  async ensurePublished(signal?: AbortSignal, options: { thorough?: boolean } = {}): Promise<boolean> {
    if (!this.committed) return false;
    const m = this.current;
    const published = await this.readPublished(signal);
    if (published?.generation === m.generation && !options.thorough) return false;
    if ((published === undefined || options.thorough) && (await this.gitFilesMatch(m, signal))) {
      if (published?.generation === m.generation) return false;
      await this.writePublished(m.generation, signal);
      return false;
    }
    await this.publish(m, undefined, signal);
    return true;
  }

  private async writePublished(generation: number, signal?: AbortSignal): Promise<void> {
    this.publishedSeen = undefined;
    await this.blobs.put(KEYS.published, Buffer.from(`${JSON.stringify({ generation } satisfies Published)}\n`), { contentType: 'application/json', signal });
    this.publishedSeen = generation;
  }

  private async readPublished(signal?: AbortSignal): Promise<Published | undefined> {
    const bytes = await this.blobs.get(KEYS.published, signal);
    let published: Published | undefined;
    try {
      const p = bytes ? (JSON.parse(bytes.toString('utf8')) as Partial<Published>) : undefined;
      published = p !== undefined && Number.isInteger(p.generation) ? { generation: p.generation! } : undefined;
    } catch {
      published = undefined;
    }
    this.publishedSeen = published?.generation;
    return published;
  }

  /** Whether every one of Git's files is exactly what `m` renders. */
  private async gitFilesMatch(m: Manifest, signal?: AbortSignal): Promise<boolean> {
    const expected: [string, string][] = [
      [KEYS.infoPacks, renderInfoPacks(m.layers.map((l) => l.name))],
      [KEYS.packedRefs, renderPackedRefs(m.refs)],
      [KEYS.infoRefs, renderInfoRefs(m.refs)],
      [KEYS.head, renderHead(m.head)],
    ];
    const actual = await Promise.all(expected.map(([key]) => this.blobs.get(key, signal)));
    return expected.every(([, text], i) => actual[i]?.toString() === text);
  }

  /**
   * Git's view of the manifest, in the order that keeps it consistent: packs,
   * then refs, then HEAD. Files that cannot have changed since `prev` are
   * left alone (each put is a request to an object store).
   */
  private async writeGitFiles(m: Manifest, signal?: AbortSignal, prev?: Manifest): Promise<void> {
    const text = { contentType: 'text/plain', signal };
    // A directory store must also look like a repository to `git clone PATH`: it checks for refs/.
    await localFiles(this.blobs)?.ensureDirectory('refs/heads');
    const layersChanged = !prev || prev.layers.map((l) => l.name).join() !== m.layers.map((l) => l.name).join();
    if (layersChanged) await this.blobs.put(KEYS.infoPacks, Buffer.from(renderInfoPacks(m.layers.map((l) => l.name))), text);
    await this.blobs.put(KEYS.packedRefs, Buffer.from(renderPackedRefs(m.refs)), text);
    await this.blobs.put(KEYS.infoRefs, Buffer.from(renderInfoRefs(m.refs)), text);
    if (!prev || prev.head !== m.head || prev.generation === 0) await this.blobs.put(KEYS.head, Buffer.from(renderHead(m.head)), text);
  }

  /** Creates an empty repository (generation 0 and Git's files), if there is none; a no-op when one exists. */
  async init(options: { head?: string; signal?: AbortSignal } = {}): Promise<void> {
    const head = options.head ?? 'refs/heads/main';
    await this.transact((_current, exists) => (exists ? undefined : { ...emptyManifest(), head }), { signal: options.signal, initial: true });
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

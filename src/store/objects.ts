// Reading objects across a store's layers: an in-memory multi-layer index
// (each layer's pack index v2: fan-out table, then binary search), searched
// newest layer first, and pack readers opened on demand. Layers are
// self-contained packs, so deltas never cross layers.
//
// Where the pack bytes come from: a directory store's packs are read in
// place; an object store's packs are downloaded once into a local cache of
// layers (content-named, so a cached copy is never stale) and read from there.
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { throwIfAborted } from '../core/abort.js';
import { PackferryError, ErrorCode } from '../core/errors.js';
import { oidFromHex, type ObjectId } from '../core/oid.js';
import { PackIndex } from '../pack/idx.js';
import { PackFile } from '../pack/packfile.js';
import { PackReader, type PackedObject } from '../pack/reader.js';
import { localFiles, type BlobStore, type LocalFiles } from './backend.js';
import { idxKey, packKey } from './layout.js';

/** See LayeredObjects.findRaw. */
export const LAYER_STRIDE = 2 ** 32;

export interface Layer {
  name: string;
  index: PackIndex;
}

/** Where a layer's pack file is on local disk. */
export interface LayerFiles {
  packPath(name: string, signal?: AbortSignal): Promise<string>;
}

/** Directory stores: the packs are already local. */
export class LocalLayerFiles implements LayerFiles {
  constructor(private readonly files: LocalFiles) {}
  async packPath(name: string): Promise<string> {
    return this.files.pathOf(`objects/pack/${name}.pack`);
  }
}

/** Object stores: packs are downloaded into `cacheDir` on first use. */
export class CachedLayerFiles implements LayerFiles {
  private readonly pending = new Map<string, Promise<string>>();

  constructor(
    private readonly store: BlobStore,
    private readonly cacheDir: string,
  ) {}

  packPath(name: string, signal?: AbortSignal): Promise<string> {
    let p = this.pending.get(name);
    if (!p) {
      p = this.download(name, signal);
      this.pending.set(name, p);
      p.catch(() => this.pending.delete(name));
    }
    return p;
  }

  private async download(name: string, signal?: AbortSignal): Promise<string> {
    const path = join(this.cacheDir, `${name}.pack`);
    if (await stat(path).then((s) => s.isFile(), () => false)) return path;
    await mkdir(this.cacheDir, { recursive: true });
    const body = await this.store.getStream(packKey(name), signal);
    if (!body) throw new PackferryError(ErrorCode.NotFound, `${this.store.description}: layer ${name} is missing`, { hint: 'run `packferry store verify`' });
    const tmp = `${path}.tmp-${randomBytes(6).toString('hex')}`;
    try {
      await pipeline(Readable.from(body), createWriteStream(tmp));
      await rename(tmp, path);
    } catch (err) {
      await unlink(tmp).catch(() => {});
      throw err;
    }
    return path;
  }
}

export function layerFilesFor(store: BlobStore, cacheDir: string): LayerFiles {
  const local = localFiles(store);
  return local ? new LocalLayerFiles(local) : new CachedLayerFiles(store, cacheDir);
}

/**
 * Loads the index of each named layer (newest first). With `cacheDir`, an
 * index found there is used as is (layers are content-named) and one fetched
 * is saved there. An index another reader of the process holds is shared.
 */
export async function loadLayers(store: BlobStore, names: string[], signal?: AbortSignal, cacheDir?: string): Promise<Layer[]> {
  return Promise.all(
    names.map(async (name) => {
      // A layer's index already in memory (another request's) is shared: layers are immutable.
      const key = `${store.description}\0${name}`;
      const live = liveIndexes.get(key)?.deref();
      if (live) return { name, index: live };
      // One load for concurrent readers; it is not cut short by one reader's signal, but each checks its own.
      let pending = loadingIndexes.get(key);
      if (!pending) {
        pending = loadLayer(store, name, cacheDir).then((layer) => {
          liveIndexes.set(key, new WeakRef(layer.index));
          forgetIndex.register(layer.index, key);
          return layer.index;
        });
        loadingIndexes.set(key, pending);
        const forget = () => loadingIndexes.delete(key);
        pending.then(forget, forget);
      }
      const index = await pending;
      throwIfAborted(signal);
      return { name, index };
    }),
  );
}

/**
 * Parsed layer indexes still in use somewhere in the process, by store and
 * layer name: a server's concurrent requests to one repository share one
 * copy (and its lookup table) instead of each parsing its own.
 */
const liveIndexes = new Map<string, WeakRef<PackIndex>>();
const loadingIndexes = new Map<string, Promise<PackIndex>>();
const forgetIndex = new FinalizationRegistry<string>((key) => {
  if (liveIndexes.get(key)?.deref() === undefined) liveIndexes.delete(key);
});

async function loadLayer(store: BlobStore, name: string, cacheDir?: string): Promise<Layer> {
  const cached = cacheDir ? await readFile(join(cacheDir, `${name}.idx`)).catch(() => undefined) : undefined;
  if (cached) {
    try {
      return { name, index: PackIndex.parse(cached) };
    } catch {
      // a damaged cache entry: fetch it again
    }
  }
  const bytes = await store.get(idxKey(name));
  if (!bytes) throw new PackferryError(ErrorCode.NotFound, `${store.description}: index of layer ${name} is missing`, { hint: 'run `packferry store verify`' });
  const layer = { name, index: PackIndex.parse(bytes) };
  if (cacheDir) await saveCachedIndex(cacheDir, name, bytes).catch(() => {});
  return layer;
}

/** Keeps a layer's index in the local cache (written whole, then renamed: readers never see half of one). */
export async function saveCachedIndex(cacheDir: string, name: string, bytes: Buffer): Promise<void> {
  await mkdir(cacheDir, { recursive: true });
  const tmp = join(cacheDir, `.${name}.idx.${randomBytes(6).toString('hex')}`);
  await writeFile(tmp, bytes);
  await rename(tmp, join(cacheDir, `${name}.idx`));
}

/** The objects of a set of layers. */
export class LayeredObjects {
  private readonly readers = new Map<string, Promise<PackReader>>();

  constructor(
    readonly layers: Layer[],
    private readonly files: LayerFiles,
  ) {}

  /** Which layer holds a raw id, and where: newest layer first. */
  locateRaw(oid: Uint8Array, at = 0): { layer: Layer; position: number } | undefined {
    for (const layer of this.layers) {
      const k = layer.index.findRaw(oid, at);
      if (k >= 0) return { layer, position: k };
    }
    return undefined;
  }

  /**
   * Allocation-free lookup for hot loops: `layer index × 2^32 + position`
   * (layers in `this.layers` order, newest first), or -1.
   */
  findRaw(oid: Uint8Array, at = 0): number {
    const layers = this.layers;
    for (let i = 0; i < layers.length; i++) {
      const k = layers[i].index.findRaw(oid, at);
      if (k >= 0) return i * LAYER_STRIDE + k;
    }
    return -1;
  }

  hasRaw(oid: Uint8Array, at = 0): boolean {
    return this.locateRaw(oid, at) !== undefined;
  }

  has(oid: ObjectId): boolean {
    return this.hasRaw(oidFromHex(oid));
  }

  async tryRead(oid: ObjectId): Promise<PackedObject | undefined> {
    const hit = this.locateRaw(oidFromHex(oid));
    if (!hit) return undefined;
    const reader = await this.reader(hit.layer);
    return reader.readAt(hit.layer.index.offsetAt(hit.position));
  }

  /** Type and size of an object without reading it whole. */
  async tryReadHeader(oid: ObjectId): Promise<{ type: number; size: number } | undefined> {
    const hit = this.locateRaw(oidFromHex(oid));
    if (!hit) return undefined;
    const reader = await this.reader(hit.layer);
    return reader.readHeader(oid);
  }

  async read(oid: ObjectId): Promise<PackedObject> {
    const obj = await this.tryRead(oid);
    if (!obj) throw new PackferryError(ErrorCode.NotFound, `object ${oid} is not in the store`, { details: { oid } });
    return obj;
  }

  /** A pack reader for one layer (opened once). */
  reader(layer: Layer): Promise<PackReader> {
    let r = this.readers.get(layer.name);
    if (!r) {
      r = this.files.packPath(layer.name).then((path) => PackReader.fromIndex(PackFile.open(path), layer.index));
      this.readers.set(layer.name, r);
    }
    return r;
  }

  /** The pack file path of a layer (for streaming it whole). */
  packPath(name: string): Promise<string> {
    return this.files.packPath(name);
  }

  get objectCount(): number {
    return this.layers.reduce((n, l) => n + l.index.count, 0);
  }

  async close(): Promise<void> {
    for (const r of this.readers.values()) (await r.catch(() => undefined))?.close();
    this.readers.clear();
  }
}

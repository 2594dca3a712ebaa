// The commit contract of a store repository: the one place its state (the
// manifest: layers, refs, HEAD, generation) is read and replaced. Small on
// purpose — read, compare-and-swap of the generation, watch — so that a
// directory, an S3 bucket and a consensus store (etcd, for the cluster) can
// each implement it, and the ref transaction (ref-transaction.ts) above it
// never knows which one it talks to.
//
// BlobRefDatabase keeps the state in packferry/manifest.json of a blob store.
// The swap is a conditional write of that one blob where the backend has
// them (a lockfile on a directory; S3's If-Match / If-None-Match where the
// service honours them: backend.ts conditionalWrites), and otherwise a read,
// compare and put under the writer lock (lock.ts), held for milliseconds.
import { ErrorCode, PackferryError } from '../core/errors.js';
import { conditionalWrites, type BlobStore } from './backend.js';
import { KEYS } from './layout.js';
import { acquireWriterLock } from './lock.js';
import { parseManifest, serializeManifest, type Manifest } from './manifest.js';

export interface RefDatabase {
  /** Where it is, for messages. */
  readonly description: string;
  /** The committed state; undefined when nothing was ever committed. */
  read(signal?: AbortSignal): Promise<Manifest | undefined>;
  /**
   * Commits `next` if the committed state is still generation `expected`
   * (undefined: nothing committed yet). `next.generation` must be
   * `expected + 1`, or for a first commit 0 (an empty repository: `repo
   * create`) or 1. True when committed; false, with nothing changed, when
   * another writer committed first.
   */
  compareAndSwap(expected: number | undefined, next: Manifest, signal?: AbortSignal): Promise<boolean>;
  /**
   * Calls `onGeneration` with the generation of every new state committed
   * from now on (at least every `intervalMs`, default 1 s), until the
   * returned function is called or `signal` aborts.
   */
  watch(onGeneration: (generation: number) => void, options?: { intervalMs?: number; signal?: AbortSignal }): () => void;
}

/** The state of one repository of a blob store, in its manifest blob. */
export class BlobRefDatabase implements RefDatabase {
  /** The version (ETag, content hash) of each generation read or written, for the next conditional write. */
  private readonly versions = new Map<number, string>();

  constructor(private readonly blobs: BlobStore) {}

  get description(): string {
    return this.blobs.description;
  }

  async read(signal?: AbortSignal): Promise<Manifest | undefined> {
    // The version read comes for free where conditional writes are known to hold; a reader does not probe for them.
    const cw = await conditionalWrites(this.blobs, signal, { probe: false });
    if (cw) {
      const got = await cw.getVersioned(KEYS.manifest, signal);
      if (got === undefined) return undefined;
      const m = parseManifest(got.body);
      this.remember(m.generation, got.version);
      return m;
    }
    const bytes = await this.blobs.get(KEYS.manifest, signal);
    return bytes === undefined ? undefined : parseManifest(bytes);
  }

  async compareAndSwap(expected: number | undefined, next: Manifest, signal?: AbortSignal): Promise<boolean> {
    if (expected === undefined ? next.generation > 1 : next.generation !== expected + 1) {
      throw new PackferryError(ErrorCode.Internal, `a commit after generation ${expected ?? '(none)'} cannot be generation ${next.generation}`);
    }
    const body = serializeManifest(next);
    const cw = await conditionalWrites(this.blobs, signal);
    if (cw) {
      let version: string | undefined;
      if (expected !== undefined) {
        version = this.versions.get(expected);
        if (version === undefined) {
          // Not read by this instance: read it now (its generation must still be the expected one).
          const got = await cw.getVersioned(KEYS.manifest, signal);
          if (got === undefined) return false;
          const m = parseManifest(got.body);
          this.remember(m.generation, got.version);
          if (m.generation !== expected) return false;
          version = got.version;
        }
      }
      const written = await cw.putIfVersion(KEYS.manifest, body, version, { contentType: 'application/json', signal });
      if (written) {
        // A conditional read of the new state will know its version when it reads it; until then the next swap reads it.
        this.versions.clear();
      }
      return written;
    }
    // Without conditional writes: read, compare and put under the writer lock, for as long as that takes.
    const lock = await acquireWriterLock(this.blobs, { owner: 'packferry commit', signal });
    try {
      const bytes = await this.blobs.get(KEYS.manifest, signal);
      const current = bytes === undefined ? undefined : parseManifest(bytes).generation;
      if (current !== expected) return false;
      await this.blobs.put(KEYS.manifest, body, { contentType: 'application/json', signal });
      return true;
    } finally {
      await lock.release().catch(() => {});
    }
  }

  watch(onGeneration: (generation: number) => void, options: { intervalMs?: number; signal?: AbortSignal } = {}): () => void {
    let last: number | undefined;
    let stopped = false;
    let busy = false;
    const poll = async () => {
      if (busy || stopped) return;
      busy = true;
      try {
        const bytes = await this.blobs.get(KEYS.manifest, options.signal);
        const generation = bytes === undefined ? undefined : parseManifest(bytes).generation;
        if (generation !== undefined && last !== undefined && generation !== last && !stopped) onGeneration(generation);
        if (generation !== undefined) last = generation;
      } catch {
        // A failed poll is tried again at the next tick.
      } finally {
        busy = false;
      }
    };
    void poll();
    const timer = setInterval(() => void poll(), options.intervalMs ?? 1000);
    timer.unref();
    const stop = () => {
      stopped = true;
      clearInterval(timer);
    };
    options.signal?.addEventListener('abort', stop, { once: true });
    return stop;
  }

  private remember(generation: number, version: string): void {
    if (this.versions.size > 8) this.versions.clear();
    this.versions.set(generation, version);
  }
}

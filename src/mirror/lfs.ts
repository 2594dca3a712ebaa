// Mirroring Git LFS objects into a store (what mirror-git-to-s3 does for
// LFS, done with verification and without re-downloading): the Git LFS
// pointers among a sync's new blobs (pointer spec v1, store/lfs.ts) are
// looked up in the store, and the missing objects are fetched through the
// source's Git LFS Batch API with the basic transfer adapter
// (transport/lfs.ts) and stored at lfs/objects/<aa>/<bb>/<sha256>, each
// verified (SHA-256 and size) while it streams.
//
// In a sync (sync.ts), this runs as the store target's before-commit hook
// (store-target.ts): after the new layer is indexed and connectivity-checked,
// before the manifest moves any ref — objects first, refs last, so a ref in
// the store never points at a commit whose LFS content is missing. By
// default an object that cannot be fetched or verified fails the sync with
// ERR_LFS_FETCH_FAILED and nothing is committed (the objects already fetched
// stay: they are verified, content-named, and skipped next time); with
// `tolerateFailures` the refs are committed and the failures listed in the
// report. Only the new layer's pointers are considered: LFS content of blobs
// that were already in the store (say, synced with LFS off) is not fetched
// again, and a tolerated failure is not retried by later syncs.
//
// Sources: http(s) remotes only (the Batch API at <url>.git/info/lfs); for
// any other source the pointers are counted and the report says they were
// not fetched. Targets: stores only (a Git server target would need the LFS
// upload API).
//
// Checking what is stored costs a HEAD per object, or one listing of
// lfs/objects/ when there are many pointers; downloads run `parallelism` at
// a time (default 4), batch requests at most `batchSize` objects each. A
// download cut off in the middle is retried twice; statuses 429/5xx are
// retried inside the client.
import { throwIfAborted } from '../core/abort.js';
import { PackferryError, ErrorCode, isPackferryError } from '../core/errors.js';
import { oidToHex, type ObjectId } from '../core/oid.js';
import { PackObjectType } from '../pack/format.js';
import { PackFile } from '../pack/packfile.js';
import { PackReader } from '../pack/reader.js';
import { LfsObjectStore, tryParseLfsPointer, type LfsPointer } from '../store/lfs.js';
import type { StagedLayer } from '../store/receive.js';
import type { HttpTransportOptions } from '../transport/http.js';
import type { LfsBatchClient, LfsBatchEntry, LfsClientOptions, LfsObjectSpec } from '../transport/lfs.js';
import type { BeforeCommitHook } from './store-target.js';

/** Default downloads at once. */
export const DEFAULT_LFS_PARALLELISM = 4;
/** Above this many objects to check, the store's lfs/objects/ is listed once instead of a HEAD per object. */
const LIST_THRESHOLD = 64;
/** Extra tries for a download cut off in the middle. */
const DOWNLOAD_RETRIES = 2;
/** An action expiring sooner than this is asked for again. */
const EXPIRY_MARGIN_MS = 5_000;

/** Where a source's LFS objects come from: its http(s) URL (credentials included) and the HTTP options of its transport. */
export interface LfsSource {
  url: string;
  http?: LfsClientOptions;
}

/** The LFS source for a mirror source address: http(s) URLs only. */
export function lfsSourceFor(address: string, http?: HttpTransportOptions): LfsSource | undefined {
  return /^https?:\/\//i.test(address) ? { url: address, http } : undefined;
}

/** A pointer found in a layer, with the blob it is in. */
export interface FoundLfsPointer extends LfsPointer {
  blob: ObjectId;
}

/**
 * The Git LFS pointers among a staged layer's blobs, one per distinct
 * (oid, size). Reads only blobs the indexer flagged as small (pointers are
 * under 1 KiB), so a layer of large files costs nothing.
 */
export async function findLfsPointers(
  staged: Pick<StagedLayer, 'indexed' | 'localPack' | 'layer'>,
  options: { reader?: PackReader; signal?: AbortSignal } = {},
): Promise<FoundLfsPointer[]> {
  const tables = staged.indexed.tables;
  const reader = options.reader ?? PackReader.fromIndex(PackFile.open(staged.localPack), staged.layer.index);
  try {
    const found = new Map<string, FoundLfsPointer>();
    for (let i = 0; i < tables.count; i++) {
      if ((i & 4095) === 4095) {
        throwIfAborted(options.signal);
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      if (tables.objectType(i) !== PackObjectType.Blob || !tables.isSmall(i)) continue;
      const pointer = tryParseLfsPointer(reader.readAt(tables.offsets[i]).data);
      if (pointer === undefined) continue;
      const key = `${pointer.oid}:${pointer.size}`;
      if (!found.has(key)) found.set(key, { ...pointer, blob: oidToHex(tables.oids, i * tables.hashLength, tables.hashLength) });
    }
    return [...found.values()];
  } finally {
    if (options.reader === undefined) reader.close();
  }
}

export interface LfsFailure {
  oid: string;
  size: number;
  error: PackferryError;
}

export interface LfsMirrorResult {
  /** Distinct objects the pointers name. */
  objects: number;
  /** Downloaded and stored by this run. */
  fetched: number;
  /** Already in the store. */
  present: number;
  /** Bytes downloaded and stored. */
  bytes: number;
  failed: LfsFailure[];
}

export interface LfsProgress {
  /** Objects settled (present, fetched or failed). */
  done: number;
  total: number;
  bytes: number;
}

export interface MirrorLfsOptions {
  pointers: readonly LfsObjectSpec[];
  /** The LFS server's client, or a function making it (called only if something must be fetched). */
  client: LfsBatchClient | (() => Promise<LfsBatchClient>);
  store: LfsObjectStore;
  /** Downloads at once (default 4). */
  parallelism?: number;
  signal?: AbortSignal;
  onProgress?: (progress: LfsProgress) => void;
}

/** Runs `work` over `items`, `limit` at a time. */
async function pool<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await work(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

function isRetryableDownload(err: unknown): boolean {
  return isPackferryError(err, ErrorCode.TransportInterrupted) || isPackferryError(err, ErrorCode.TransportTimeout);
}

function asError(err: unknown): PackferryError {
  if (err instanceof PackferryError) return err;
  return new PackferryError(ErrorCode.Internal, `internal error: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}

/**
 * Makes sure the store holds every object the pointers name: those already
 * stored (with the right size) are skipped, the others fetched, verified and
 * stored. Per-object failures are returned, not thrown; an aborted signal
 * throws.
 */
export async function mirrorLfsObjects(options: MirrorLfsOptions): Promise<LfsMirrorResult> {
  const { store, signal } = options;
  const parallelism = options.parallelism ?? DEFAULT_LFS_PARALLELISM;
  if (!Number.isInteger(parallelism) || parallelism < 1) throw new PackferryError(ErrorCode.Usage, `LFS parallelism must be a positive integer, not ${parallelism}`);
  const unique = new Map<string, LfsObjectSpec>();
  for (const p of options.pointers) unique.set(`${p.oid}:${p.size}`, { oid: p.oid, size: p.size });
  const objects = [...unique.values()];
  const result: LfsMirrorResult = { objects: objects.length, fetched: 0, present: 0, bytes: 0, failed: [] };
  let done = 0;
  const settle = () => options.onProgress?.({ done: ++done, total: objects.length, bytes: result.bytes });

  // 1. What is stored already.
  const missing: LfsObjectSpec[] = [];
  if (objects.length > LIST_THRESHOLD) {
    const stored = await store.list(signal);
    for (const o of objects) {
      if (stored.get(o.oid) === o.size) {
        result.present++;
        settle();
      } else missing.push(o);
    }
  } else {
    await pool(objects, Math.max(parallelism, 8), async (o) => {
      if (await store.has(o.oid, o.size, signal)) {
        result.present++;
        settle();
      } else missing.push(o);
    });
  }
  if (missing.length === 0) return result;

  // 2. The rest, a batch at a time.
  const client = typeof options.client === 'function' ? await options.client() : options.client;
  const fail = (o: LfsObjectSpec, err: unknown) => {
    throwIfAborted(signal);
    result.failed.push({ oid: o.oid, size: o.size, error: asError(err) });
    settle();
  };
  let fatal: PackferryError | undefined;
  for (let start = 0; start < missing.length; start += client.batchSize) {
    const batch = missing.slice(start, start + client.batchSize);
    if (fatal !== undefined) {
      // The batch API itself failed (after its retries): the same answer is expected for the rest.
      for (const o of batch) fail(o, fatal);
      continue;
    }
    let entries: LfsBatchEntry[];
    try {
      entries = await client.batchDownload(batch, signal);
    } catch (err) {
      throwIfAborted(signal);
      fatal = asError(err);
      for (const o of batch) fail(o, fatal);
      continue;
    }
    await pool(entries, parallelism, async (entry) => {
      if (entry.kind === 'error') {
        fail(entry, entry.error);
        return;
      }
      try {
        await fetchOne(client, store, entry, signal);
        result.fetched++;
        result.bytes += entry.size;
        settle();
      } catch (err) {
        fail(entry, err);
      }
    });
  }
  return result;
}

/** Downloads one object into the store, asking for a fresh action when its href has expired, retrying cut-off downloads. */
async function fetchOne(client: LfsBatchClient, store: LfsObjectStore, entry: Extract<LfsBatchEntry, { kind: 'download' }>, signal?: AbortSignal): Promise<void> {
  let action = entry.action;
  for (let attempt = 0; ; attempt++) {
    throwIfAborted(signal);
    if (action.expiresAt !== undefined && action.expiresAt - EXPIRY_MARGIN_MS < Date.now()) {
      const [fresh] = await client.batchDownload([{ oid: entry.oid, size: entry.size }], signal);
      if (fresh.kind === 'error') throw fresh.error;
      action = fresh.action;
    }
    const download = await client.download(action, signal);
    try {
      if (download.contentLength !== undefined && download.contentLength !== entry.size) {
        throw new PackferryError(ErrorCode.HashMismatch, `Git LFS object ${entry.oid}: the server sends ${download.contentLength} bytes, but its pointer says ${entry.size}`, {
          details: { oid: entry.oid, expectedSize: entry.size, actualSize: download.contentLength, check: 'size' },
          hint: 'the LFS server sent the wrong content for this object; nothing was stored',
        });
      }
      await store.put(entry.oid, download.body, entry.size, { signal });
      return;
    } catch (err) {
      if (attempt < DOWNLOAD_RETRIES && isRetryableDownload(err) && !signal?.aborted) continue;
      throw err;
    } finally {
      download.cancel();
    }
  }
}

// ---------------------------------------------------------------------------
// In a sync.

/** What a sync did about LFS for one store target (absent when LFS was off, the target not a store, or no layer was added). */
export type LfsReport =
  | ({ status: 'mirrored'; /** The LFS endpoint asked, without credentials (absent when nothing had to be fetched). */ endpoint?: string } & LfsMirrorResult)
  | { status: 'skipped'; reason: string; objects: number };

/** The source's LFS client, made on first use and shared by every target of a sync. */
export class LfsConnection {
  private client: Promise<LfsBatchClient> | undefined;
  private made: LfsBatchClient | undefined;

  constructor(readonly source: LfsSource) {}

  get(): Promise<LfsBatchClient> {
    this.client ??= import('../transport/lfs.js').then(({ LfsClient }) => (this.made = new LfsClient(this.source.url, this.source.http)));
    return this.client;
  }

  /** The endpoint, once the client exists. */
  get displayEndpoint(): string | undefined {
    return this.made?.displayEndpoint;
  }

  async close(): Promise<void> {
    const client = await this.client?.catch(() => undefined);
    await client?.close().catch(() => {});
  }
}

export interface LfsHookOptions {
  /** The source's LFS server; undefined when the source has none packferry can reach (then pointers are only counted). */
  connection: LfsConnection | undefined;
  tolerateFailures?: boolean;
  parallelism?: number;
  onProgress?: (progress: LfsProgress) => void;
  /** Receives the report (before the hook throws, when it does). */
  report: (report: LfsReport) => void;
}

/** The store target's before-commit hook that mirrors the new layer's LFS objects. */
export function lfsBeforeCommit(options: LfsHookOptions): BeforeCommitHook {
  return async ({ staged, reader, repo, signal }) => {
    const pointers = await findLfsPointers(staged, { reader, signal });
    const connection = options.connection;
    if (connection === undefined) {
      options.report({ status: 'skipped', reason: 'the source is not an http(s) remote', objects: new Set(pointers.map((p) => p.oid)).size });
      return;
    }
    const result = await mirrorLfsObjects({
      pointers,
      client: () => connection.get(),
      store: new LfsObjectStore(repo.blobs),
      parallelism: options.parallelism,
      signal,
      onProgress: options.onProgress,
    });
    const endpoint = connection.displayEndpoint;
    options.report({ status: 'mirrored', endpoint, ...result });
    if (result.failed.length > 0 && options.tolerateFailures !== true) throw lfsFailedError(result, endpoint ?? 'the LFS server');
  };
}

/** ERR_LFS_FETCH_FAILED for a run with failures: the first failure in the message, all of them in details. */
export function lfsFailedError(result: LfsMirrorResult, endpoint: string): PackferryError {
  const n = result.failed.length;
  const first = result.failed[0].error;
  return new PackferryError(
    ErrorCode.LfsFetchFailed,
    `${n} of ${result.objects} Git LFS ${result.objects === 1 ? 'object' : 'objects'} could not be fetched from ${endpoint}; nothing was committed (${first.message})`,
    {
      cause: first,
      hint: 'fix the source\'s LFS objects and sync again (objects already fetched are kept), or pass --lfs-tolerate-failures to commit the refs anyway, or --no-lfs',
      details: { endpoint, failed: result.failed.map((f) => ({ oid: f.oid, size: f.size, code: f.error.code, message: f.error.message })) },
    },
  );
}

// Indexing a pack: what `git index-pack` does (builtin/index-pack.c). Pass one
// streams the pack through the scanner, recording each entry and hashing whole
// objects; pass two resolves deltas on worker threads; thin packs can be
// completed by appending the missing bases (`--fix-thin`); the result is a
// version 2 index identical to Git's for the same pack.
import { availableParallelism } from 'node:os';
import { dirname } from 'node:path';
import { open, rename, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import { deflateSync, crc32 } from 'node:zlib';
import { throwIfAborted } from '../core/abort.js';
import { PackferryError, ErrorCode, writeFailure } from '../core/errors.js';
import { SHA1, type HashAlgorithm } from '../core/hash.js';
import { withLimits, type Limits } from '../core/limits.js';
import { FsckCollector, mergeFindings, type FsckFindings, type FsckOptions } from '../core/fsck.js';
import { hashObject, objectTypeFromPackType } from '../core/object.js';
import { oidToHex, type ObjectId } from '../core/oid.js';
import { noProgress, ProgressMeter, type ProgressSink } from '../core/progress.js';
import { encodeEntryHeader, MIN_ENTRY_SIZE, PACK_HEADER_SIZE, PackObjectType } from './format.js';
import { writePackIndexV2 } from './idx.js';
import { createInflater } from './inflate.js';
import { collectLinks, ObjectIdSet } from './links.js';
import { PackFile } from './packfile.js';
import { Counter, DEFAULT_CACHE_LIMIT, DeltaGraph, DeltaResolver } from './resolve.js';
import type { ResolveWorkerData, ResolveWorkerMessage } from './resolve-worker.js';
import { PackScanner, type PackTrailer, type ScannedEntry } from './scanner.js';
import { NOT_A_DELTA, PackTables, REF_DELTA_BASE, SMALL_FLAG, SMALL_OBJECT } from './tables.js';

/** A whole object supplied from elsewhere to complete a thin pack. */
export interface BaseObject {
  /** Object type number: 1 commit, 2 tree, 3 blob, 4 tag. */
  type: number;
  data: Uint8Array;
}

/** Looks up an object outside the pack (e.g. in the repository receiving it). */
export type BaseResolver = (oid: ObjectId) => Promise<BaseObject | undefined>;

export interface IndexPackOptions {
  hashAlgorithm?: HashAlgorithm;
  limits?: Partial<Limits>;
  /** Threads for delta resolution, including the main one (default: available cores). */
  threads?: number;
  /** Bytes of delta bases each thread may hold (default 32 MiB). */
  cacheLimit?: number;
  progress?: ProgressSink;
  signal?: AbortSignal;
  /** Complete a thin pack: missing REF_DELTA bases are looked up here and appended, as `git index-pack --fix-thin`. */
  fixThin?: BaseResolver;
  /** Fewest open deltas worth starting worker threads for (default 4096; tests lower it). */
  minDeltasForWorkers?: number;
  /**
   * Packs up to this size are held in memory (shared with the worker
   * threads) while deltas are resolved, saving a system call per delta.
   * Default 64 MiB; 0 always reads from the file.
   */
  inMemoryLimit?: number;
  /**
   * Collect the links of the pack's commits, trees and tags (Git's
   * index-pack --check-self-contained-and-connected), returned as `links`,
   * so that a connectivity check can skip its walk (store/connectivity.ts).
   */
  collectLinks?: boolean;
  /**
   * Check every commit, tree and tag as Git's index-pack --strict /
   * receive.fsckObjects does, where each is in hand (pass one, the delta
   * threads), and note the blobs trees name .gitmodules or .gitattributes;
   * returned as `fsck` for the caller to finish (core/fsck.ts).
   */
  fsck?: FsckOptions;
}

export interface IndexedPack {
  packPath: string;
  /** The pack's trailing checksum: its name in `pack-<checksum>.pack`. */
  checksum: Buffer;
  objectCount: number;
  /** Number of deltas resolved. */
  deltaCount: number;
  /** Bases appended to complete a thin pack. */
  appendedBases: number;
  /** The serialized version 2 index. */
  index: Buffer;
  /** Per-entry tables (ids, types, offsets, depths), e.g. for `verify-pack -v`. */
  tables: PackTables;
  /** REF_DELTA entries (by position in the pack) and their base ids, `entries.length × hash length` bytes. */
  refDeltas: { entries: Int32Array; baseIds: Uint8Array };
  /** With `collectLinks`: the ids the pack's objects refer to, one set per thread that saw objects (see pack/links.ts). */
  links?: ObjectIdSet[];
  /** With `fsck`: the problems found and the special blobs named, from every thread. */
  fsck?: FsckFindings;
}

/**
 * Distinct links one thread collects before it gives up (and the caller
 * walks instead): every object of the pack, plus as many objects outside it
 * (the links of an incremental pack into what the receiver has) and some.
 * At most ~20 bytes and 8 bytes of table per link.
 */
function linkLimit(objectCount: number): number {
  return 2 * objectCount + 262_144;
}

/** Below this many deltas, worker start-up costs more than it saves. */
const MIN_DELTAS_FOR_WORKERS = 4096;
const READ_CHUNK = 4 * 1024 * 1024;
const IN_MEMORY_LIMIT = 64 * 1024 * 1024;
const WRITE_BATCH = 1024 * 1024;

/** Collects pass-one results into the shared tables. */
class EntryRecorder {
  readonly tables: PackTables;
  refEntries: number[] = [];
  refBaseIds: Uint8Array;
  deltaCount = 0;

  /** Links of the whole objects seen in pass one (with IndexPackOptions.collectLinks). */
  readonly links: ObjectIdSet | undefined;
  /** Checks of the whole objects seen in pass one (with IndexPackOptions.fsck). */
  readonly fsck: FsckCollector | undefined;
  /** Whole commits, trees and tags too large to be held in pass one: checked from the pack at the end. */
  readonly unchecked: number[] = [];

  constructor(
    private readonly algo: HashAlgorithm,
    capacity: number,
    objectCount: number,
    collectLinks: boolean,
    fsck: FsckOptions | undefined,
  ) {
    this.tables = new PackTables(algo.rawLength, capacity);
    this.refBaseIds = new Uint8Array(1024 * algo.rawLength);
    this.links = collectLinks ? new ObjectIdSet(algo.rawLength, linkLimit(objectCount)) : undefined;
    // The checks of trees collect their links in the same pass.
    this.fsck = fsck ? new FsckCollector(fsck, algo.rawLength, this.links) : undefined;
  }

  record = (e: ScannedEntry): void => {
    const t = this.tables;
    const i = e.index;
    if (i >= t.capacity) t.ensureCapacity(i + 1);
    t.offsets[i] = e.offset;
    t.headerLengths[i] = e.headerLength;
    t.sizes[i] = e.size;
    t.crc32s[i] = e.crc32;
    t.count = i + 1;
    if (e.oid !== undefined) {
      t.types[i] = (e.type << 4) | e.type | (e.size < SMALL_OBJECT ? SMALL_FLAG : 0);
      t.oids.set(e.oid, i * t.hashLength);
      t.baseIndex[i] = NOT_A_DELTA;
      if (this.links && e.type !== PackObjectType.Blob) {
        // An object too large to be held while hashed was not kept: its links are unknown.
        if (!e.data) this.links.giveUp();
        else if (!(this.fsck && e.type === PackObjectType.Tree)) collectLinks(e.type, e.data, this.links);
      }
      if (this.fsck && e.type !== PackObjectType.Blob) {
        if (e.data) this.fsck.checkObject(e.type, e.data, e.oid, 0, i);
        else this.unchecked.push(i);
      }
      return;
    }
    t.types[i] = e.type;
    this.deltaCount++;
    if (e.type === PackObjectType.OfsDelta) {
      const base = t.findOffset(e.baseOffset);
      if (base < 0) {
        throw new PackferryError(
          ErrorCode.PackBadOffset,
          `OFS_DELTA at offset ${e.offset} points to offset ${e.baseOffset}, where no object starts`,
          { details: { offset: e.offset, baseOffset: e.baseOffset } },
        );
      }
      t.baseIndex[i] = base;
    } else {
      t.baseIndex[i] = REF_DELTA_BASE;
      const k = this.refEntries.length;
      const need = (k + 1) * this.algo.rawLength;
      if (need > this.refBaseIds.length) {
        const grown = new Uint8Array(this.refBaseIds.length * 2);
        grown.set(this.refBaseIds);
        this.refBaseIds = grown;
      }
      this.refBaseIds.set(e.baseId!, k * this.algo.rawLength);
      this.refEntries.push(i);
    }
  };
}

/** Indexes a pack file on disk. */
export async function indexPackFile(packPath: string, options: IndexPackOptions = {}): Promise<IndexedPack> {
  const algo = options.hashAlgorithm ?? SHA1;
  const progress = options.progress ?? noProgress;
  const fh = await open(packPath, 'r');
  let recorder: EntryRecorder | undefined;
  let trailer: PackTrailer;
  let memory: Buffer | undefined;
  try {
    const { size } = await fh.stat();
    const scanner = new PackScanner({
      hashAlgorithm: algo,
      hashObjects: true,
      passObjectData: options.collectLinks === true || options.fsck !== undefined,
      limits: options.limits,
      onHeader: (header) => {
        if (header.objectCount * MIN_ENTRY_SIZE > size - PACK_HEADER_SIZE - algo.rawLength) {
          throw new PackferryError(
            ErrorCode.PackObjectCount,
            `pack declares ${header.objectCount} objects but is only ${size} bytes long`,
            { details: { declared: header.objectCount, packLength: size } },
          );
        }
        recorder = new EntryRecorder(algo, header.objectCount, header.objectCount, options.collectLinks ?? false, options.fsck);
      },
      onEntry: (e) => recorder!.record(e),
    });
    try {
      const meter = new ProgressMeter(progress, 'Indexing objects');
      const onChunk = (chunk: Buffer): void => {
        throwIfAborted(options.signal);
        scanner.push(chunk);
        meter.update(scanner.entryCount, scanner.bytesConsumed);
      };
      if (size <= (options.inMemoryLimit ?? IN_MEMORY_LIMIT)) {
        memory = await readShared(fh, size);
        for (let at = 0; at < size; at += READ_CHUNK) onChunk(memory.subarray(at, Math.min(size, at + READ_CHUNK)));
      } else {
        await readInChunks(fh, size, onChunk);
      }
      trailer = scanner.end();
      meter.update(scanner.entryCount, scanner.bytesConsumed);
      meter.finish();
    } finally {
      scanner.close();
    }
  } finally {
    await fh.close();
  }
  return resolveAndIndex(packPath, memory, trailer, recorder!, options);
}

/** Reads a whole file into shared memory, which worker threads can use without copying. */
async function readShared(fh: FileHandle, size: number): Promise<Buffer> {
  const memory = Buffer.from(new SharedArrayBuffer(size));
  let done = 0;
  while (done < size) {
    const { bytesRead } = await fh.read(memory, done, size - done, done);
    if (bytesRead === 0) throw new PackferryError(ErrorCode.PackTruncated, `file ended at ${done} bytes, before the expected ${size}`);
    done += bytesRead;
  }
  return memory;
}

/**
 * Receives a pack from a stream: writes it to `packPath` while scanning it,
 * then resolves deltas and builds the index. On any error the partial file
 * is removed.
 */
export async function indexPackStream(
  source: AsyncIterable<Uint8Array>,
  packPath: string,
  options: IndexPackOptions = {},
): Promise<IndexedPack> {
  const algo = options.hashAlgorithm ?? SHA1;
  const progress = options.progress ?? noProgress;
  let recorder: EntryRecorder | undefined;
  let trailer: PackTrailer;
  let fh: FileHandle;
  try {
    fh = await open(packPath, 'wx+');
  } catch (err) {
    throw writeFailure(err, packPath, dirname(packPath));
  }
  try {
    const scanner = new PackScanner({
      hashAlgorithm: algo,
      hashObjects: true,
      passObjectData: options.collectLinks === true || options.fsck !== undefined,
      limits: options.limits,
      onHeader: (header) => {
        recorder = new EntryRecorder(algo, Math.min(header.objectCount, 1 << 16), header.objectCount, options.collectLinks ?? false, options.fsck);
      },
      onEntry: (e) => recorder!.record(e),
    });
    try {
      const meter = new ProgressMeter(progress, 'Receiving objects');
      // Small chunks are gathered into one write; the write completes before more is read (backpressure).
      const staging = Buffer.allocUnsafe(WRITE_BATCH);
      let staged = 0;
      let position = 0;
      for await (const chunk of source) {
        throwIfAborted(options.signal);
        scanner.push(chunk);
        if (staged + chunk.length > WRITE_BATCH && staged > 0) {
          await writeAll(fh, staging.subarray(0, staged), position);
          position += staged;
          staged = 0;
        }
        if (chunk.length >= WRITE_BATCH) {
          await writeAll(fh, chunk, position);
          position += chunk.length;
        } else {
          staging.set(chunk, staged);
          staged += chunk.length;
        }
        meter.update(scanner.entryCount, position + staged);
      }
      trailer = scanner.end();
      await writeAll(fh, staging.subarray(0, staged), position);
      meter.finish();
    } finally {
      scanner.close();
    }
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => {});
    await unlink(packPath).catch(() => {});
    // A full disk (or no rights) is the storage's problem, not a bug: ERR_STORE_IO.
    throw writeFailure(err, packPath, dirname(packPath));
  }
  try {
    let memory: Buffer | undefined;
    try {
      if (trailer.packLength <= (options.inMemoryLimit ?? IN_MEMORY_LIMIT)) memory = await readShared(fh, trailer.packLength);
    } finally {
      await fh.close();
    }
    return await resolveAndIndex(packPath, memory, trailer, recorder!, options);
  } catch (err) {
    await unlink(packPath).catch(() => {});
    throw writeFailure(err, packPath, dirname(packPath));
  }
}

async function resolveAndIndex(
  packPath: string,
  memory: Buffer | undefined,
  trailer: PackTrailer,
  recorder: EntryRecorder,
  options: IndexPackOptions,
): Promise<IndexedPack> {
  const algo = options.hashAlgorithm ?? SHA1;
  const limits = withLimits(options.limits);
  const progress = options.progress ?? noProgress;
  const tables = recorder.tables;
  const n = trailer.header.objectCount;
  tables.count = n;
  tables.offsets[n] = trailer.packLength - algo.rawLength;
  let checksum = trailer.checksum;
  let appendedBases = 0;

  const deltaCount = recorder.deltaCount;
  const refEntries = Int32Array.from(recorder.refEntries);
  const refBaseIds = recorder.refBaseIds.subarray(0, refEntries.length * algo.rawLength);
  let resolved = 0;
  const links: ObjectIdSet[] | undefined = recorder.links ? [recorder.links] : undefined;
  const newLinkSet = links ? () => new ObjectIdSet(algo.rawLength, linkLimit(n)) : undefined;
  const findings: FsckFindings[] = recorder.fsck ? [recorder.fsck.findings()] : [];
  const meter = new ProgressMeter(progress, 'Resolving deltas', deltaCount);
  if (deltaCount > 0) {
    throwIfAborted(options.signal);
    // Room for thin-pack bases: at most one per REF_DELTA.
    const graph = DeltaGraph.build(tables, refEntries, refBaseIds, options.fixThin ? refEntries.length : 0);
    const threads = await runResolution(packPath, memory, tables, graph, deltaCount, algo, limits, options, (done) => meter.update(done));
    links?.push(...threads.links);
    findings.push(...threads.fsck);
    resolved = Atomics.load(graph.counters, Counter.Resolved);
    if (resolved < deltaCount && options.fixThin) {
      const thinLinks = newLinkSet?.();
      if (thinLinks) links!.push(thinLinks);
      const thinFsck = options.fsck ? new FsckCollector(options.fsck, algo.rawLength, thinLinks) : undefined;
      const appended = await completeThinPack(packPath, tables, graph, refEntries, refBaseIds, options.fixThin, algo, limits, options.signal, thinLinks, thinFsck);
      if (thinFsck) findings.push(thinFsck.findings());
      appendedBases = appended.count;
      if (appended.count > 0) checksum = appended.checksum;
      resolved = Atomics.load(graph.counters, Counter.Resolved);
    }
    if (resolved < deltaCount) throw unresolvedError(deltaCount - resolved, tables, graph, options.fixThin !== undefined);
  }
  meter.update(resolved);
  meter.finish();
  if (options.fsck && recorder.unchecked.length > 0) findings.push(checkLargeObjects(packPath, memory, tables, recorder.unchecked, algo, limits, options.fsck));
  const index = writePackIndexV2(
    { count: tables.count, oids: tables.oids, offsets: tables.offsets, crc32s: tables.crc32s },
    checksum,
    algo,
  );
  return {
    packPath,
    checksum,
    objectCount: tables.count,
    deltaCount,
    appendedBases,
    index,
    tables,
    refDeltas: { entries: refEntries, baseIds: refBaseIds },
    links,
    fsck: options.fsck ? mergeFindings(findings) : undefined,
  };
}

/** Checks the whole commits, trees and tags pass one could not hold (larger than the scanner keeps), read again from the pack. */
function checkLargeObjects(
  packPath: string,
  memory: Buffer | undefined,
  tables: PackTables,
  entries: readonly number[],
  algo: HashAlgorithm,
  limits: Limits,
  options: FsckOptions,
): FsckFindings {
  const collector = new FsckCollector(options, algo.rawLength);
  const pack = memory ? PackFile.fromMemory(memory, packPath) : PackFile.open(packPath);
  const inflater = createInflater();
  try {
    for (const i of entries) {
      const size = tables.sizes[i];
      if (size > limits.maxObjectSize) continue; // the scanner refused it already
      const data = pack.inflate(inflater, tables.offsets[i] + tables.headerLengths[i], tables.offsets[i + 1], size, Buffer.allocUnsafe(size + 1));
      collector.checkObject(tables.packType(i), data, tables.oids, i * tables.hashLength, i);
    }
  } finally {
    inflater.close();
    pack.close();
  }
  return collector.findings();
}

function unresolvedError(count: number, tables: PackTables, graph: DeltaGraph, triedThin: boolean): PackferryError {
  // Name one missing base to help debugging.
  let example: string | undefined;
  for (let k = 0; k < graph.refCount && example === undefined; k++) {
    if (graph.claimed[graph.refChildren[k]] === 0) example = oidToHex(graph.refIds, k * tables.hashLength, tables.hashLength);
  }
  return new PackferryError(
    ErrorCode.DeltaBaseMissing,
    `pack has ${count} unresolved ${count === 1 ? 'delta' : 'deltas'}${example ? ` (e.g. base ${example} is missing)` : ''}`,
    {
      details: { unresolved: count, exampleBase: example },
      hint: triedThin
        ? 'the missing bases are not in the repository either'
        : 'a thin pack needs its bases: index it with --fix-thin inside the repository that has them',
    },
  );
}

async function runResolution(
  packPath: string,
  memory: Buffer | undefined,
  tables: PackTables,
  graph: DeltaGraph,
  openDeltas: number,
  algo: HashAlgorithm,
  limits: Limits,
  options: IndexPackOptions,
  onProgress: (resolved: number) => void,
): Promise<{ links: ObjectIdSet[]; fsck: FsckFindings[] }> {
  if (graph.roots.length === 0) return { links: [], fsck: [] };
  const linkLimitPerThread = options.collectLinks ? linkLimit(tables.count) : undefined;
  const threads = Math.max(1, Math.min(options.threads ?? availableParallelism(), 64));
  const workersWanted = openDeltas >= (options.minDeltasForWorkers ?? MIN_DELTAS_FOR_WORKERS) && graph.roots.length > 1 ? threads - 1 : 0;
  const cacheLimit = options.cacheLimit ?? DEFAULT_CACHE_LIMIT;
  const data: ResolveWorkerData = {
    packPath,
    packMemory: memory?.buffer as SharedArrayBuffer | undefined,
    tables: tables.buffers(),
    graph: { ...graph.buffers, smallRootCount: graph.smallRootCount },
    hashName: algo.name,
    limits,
    cacheLimit,
    linkLimit: linkLimitPerThread,
    fsck: options.fsck && { strict: options.fsck.strict, severities: options.fsck.severities, skipList: options.fsck.skipList && [...options.fsck.skipList] },
  };
  const workers: Promise<{ links?: ObjectIdSet; fsck?: FsckFindings }>[] = [];
  for (let w = 0; w < workersWanted; w++) workers.push(runWorker(data, algo.rawLength));
  const pack = memory ? PackFile.fromMemory(memory, packPath) : PackFile.open(packPath);
  const links = linkLimitPerThread === undefined ? undefined : new ObjectIdSet(tables.hashLength, linkLimitPerThread);
  const fsck = options.fsck ? new FsckCollector(options.fsck, algo.rawLength, links) : undefined;
  const resolver = new DeltaResolver(tables, graph, pack, { hashName: algo.name, limits, cacheLimit, onProgress, links, fsck });
  let mainError: unknown;
  try {
    resolver.run(true);
  } catch (err) {
    mainError = err;
  } finally {
    resolver.close();
    pack.close();
  }
  const timer = setInterval(() => onProgress(Atomics.load(graph.counters, Counter.Resolved)), 100);
  const results = await Promise.allSettled(workers);
  clearInterval(timer);
  if (mainError !== undefined) throw mainError;
  const sets: ObjectIdSet[] = links ? [links] : [];
  const found: FsckFindings[] = fsck ? [fsck.findings()] : [];
  for (const r of results) {
    if (r.status === 'rejected') throw r.reason;
    if (r.value.links) sets.push(r.value.links);
    if (r.value.fsck) found.push(r.value.fsck);
  }
  return { links: sets, fsck: found };
}

function runWorker(data: ResolveWorkerData, hashLength: number): Promise<{ links?: ObjectIdSet; fsck?: FsckFindings }> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./resolve-worker.js', import.meta.url), { workerData: data });
    let settled = false;
    worker.once('message', (msg: ResolveWorkerMessage) => {
      settled = true;
      if (msg.ok) resolve({ links: msg.links && ObjectIdSet.imported(hashLength, msg.links), fsck: msg.fsck });
      else if (msg.error.code) {
        reject(new PackferryError(msg.error.code as ErrorCode, msg.error.message, { details: msg.error.details }));
      } else {
        reject(new PackferryError(ErrorCode.Internal, `delta resolution thread failed: ${msg.error.message}`, { details: { stack: msg.error.stack } }));
      }
    });
    worker.once('error', (err) => {
      settled = true;
      reject(new PackferryError(ErrorCode.Internal, `delta resolution thread failed: ${err.message}`, { cause: err }));
    });
    worker.once('exit', (code) => {
      if (!settled) reject(new PackferryError(ErrorCode.Internal, `delta resolution thread exited with code ${code}`));
    });
  });
}

/**
 * Completes a thin pack as `git index-pack --fix-thin` does
 * (fix_unresolved_deltas): going through the still-unresolved REF_DELTAs in
 * pack order, fetch each one's base from `resolver`, check that it hashes to
 * the id asked for, append it as a whole object and resolve what depends on
 * it at once, so that a base which is itself a delta in the pack gets
 * resolved rather than appended twice. Finally the object count in the
 * header and the trailing checksum are rewritten.
 */
async function completeThinPack(
  packPath: string,
  tables: PackTables,
  graph: DeltaGraph,
  refEntries: Int32Array,
  refBaseIds: Uint8Array,
  resolver: BaseResolver,
  algo: HashAlgorithm,
  limits: Limits,
  signal: AbortSignal | undefined,
  links: ObjectIdSet | undefined,
  fsck: FsckCollector | undefined,
): Promise<{ count: number; checksum: Buffer }> {
  const H = algo.rawLength;
  const fh = await open(packPath, 'r+');
  const pack = PackFile.open(packPath);
  // The appended bases come from the receiver, complete and checked by its own invariant: only the deltas' links are collected, and only they are checked.
  const deltas = new DeltaResolver(tables, graph, pack, { hashName: algo.name, limits, links, fsck });
  // The trailer stays in place behind appended entries until the end: the inflater reads one byte past an entry.
  const placeholder = Buffer.alloc(H);
  try {
    let end = tables.offsets[tables.count];
    let count = 0;
    const asked = new Set<string>();
    for (let k = 0; k < refEntries.length; k++) {
      throwIfAborted(signal);
      if (graph.claimed[refEntries[k]] === 1) continue;
      const oid = oidToHex(refBaseIds, k * H, H);
      if (asked.has(oid)) continue;
      asked.add(oid);
      const base = await resolver(oid);
      if (base === undefined) continue;
      if (base.type < 1 || base.type > 4) {
        throw new PackferryError(ErrorCode.InvalidObjectType, `base ${oid} supplied for a thin pack has invalid type ${base.type}`);
      }
      if (base.data.length > limits.maxObjectSize) {
        throw new PackferryError(ErrorCode.LimitExceeded, `base ${oid} is larger than maxObjectSize`, { details: { limit: 'maxObjectSize' } });
      }
      if (hashObject(objectTypeFromPackType(base.type), base.data, algo) !== oid) {
        throw new PackferryError(ErrorCode.HashMismatch, `local object ${oid} is corrupt: its content does not hash to its id`, {
          details: { oid },
        });
      }
      const head = encodeEntryHeader(base.type, base.data.length);
      const entry = Buffer.concat([head, deflateSync(base.data)]);
      const i = tables.count;
      tables.ensureCapacity(i + 1);
      tables.offsets[i] = end;
      tables.headerLengths[i] = head.length;
      tables.sizes[i] = base.data.length;
      tables.crc32s[i] = crc32(entry);
      tables.types[i] = (base.type << 4) | base.type | (base.data.length < SMALL_OBJECT ? SMALL_FLAG : 0);
      tables.oids.set(Buffer.from(oid, 'hex'), i * H);
      tables.baseIndex[i] = NOT_A_DELTA;
      tables.depths[i] = 0;
      tables.count = i + 1;
      await writeAll(fh, Buffer.concat([entry, placeholder]), end);
      end += entry.length;
      tables.offsets[tables.count] = end;
      graph.claimed[i] = 1;
      count++;
      pack.refresh();
      deltas.resolveFrom(i, Buffer.from(base.data));
    }
    if (count === 0) return { count, checksum: Buffer.alloc(0) };
    const header = Buffer.alloc(4);
    header.writeUInt32BE(tables.count);
    await writeAll(fh, header, 8);
    await fh.truncate(end);
    // The object count changed, so the whole pack is hashed again for its new trailer.
    const hasher = algo.create();
    await readInChunks(fh, end, (chunk) => hasher.update(chunk));
    const checksum = hasher.digest();
    await writeAll(fh, checksum, end);
    await fh.sync();
    return { count, checksum };
  } finally {
    deltas.close();
    pack.close();
    await fh.close();
  }
}

async function writeAll(fh: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}

/** Reads `length` bytes from the start of a file in chunks, overlapping the next read with processing. */
async function readInChunks(fh: FileHandle, length: number, onChunk: (chunk: Buffer) => void): Promise<void> {
  const buffers = [Buffer.allocUnsafe(READ_CHUNK), Buffer.allocUnsafe(READ_CHUNK)];
  let position = 0;
  let which = 0;
  const readAt = (pos: number, buf: Buffer) => fh.read(buf, 0, Math.min(READ_CHUNK, length - pos), pos);
  let pending = length > 0 ? readAt(0, buffers[0]) : undefined;
  while (pending) {
    const { bytesRead } = await pending;
    if (bytesRead === 0) {
      throw new PackferryError(ErrorCode.PackTruncated, `file ended at ${position} bytes, before the expected ${length}`);
    }
    const chunk = buffers[which].subarray(0, bytesRead);
    position += bytesRead;
    which ^= 1;
    pending = position < length ? readAt(position, buffers[which]) : undefined;
    onChunk(chunk);
  }
}

/** Writes an index file the way Git does: to a temporary name, then renamed into place, read-only. */
export async function writeIndexFile(path: string, index: Buffer): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, index, { mode: 0o444 });
  await rename(tmp, path);
}

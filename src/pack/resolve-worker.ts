// Worker thread body for pass two: opens the pack itself and resolves roots
// from the shared cursor until none are left (see resolve.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { PackferryError } from '../core/errors.js';
import { FsckCollector, type FsckFindings, type FsckOptions } from '../core/fsck.js';
import { ObjectIdSet } from './links.js';
import { PackFile } from './packfile.js';
import { DeltaGraph, DeltaResolver, type DeltaGraphBuffers } from './resolve.js';
import { PackTables, type PackTablesBuffers } from './tables.js';
import type { Limits } from '../core/limits.js';

export interface ResolveWorkerData {
  packPath: string;
  /** The whole pack in shared memory, when it is small enough to hold. */
  packMemory: SharedArrayBuffer | undefined;
  tables: PackTablesBuffers;
  graph: DeltaGraphBuffers;
  hashName: string;
  limits: Partial<Limits>;
  cacheLimit: number;
  /** Collect the resolved objects' links, up to this many (IndexPackOptions.collectLinks). */
  linkLimit: number | undefined;
  /** Check the resolved objects (IndexPackOptions.fsck; the skip list as an array). */
  fsck?: Omit<FsckOptions, 'skipList'> & { skipList?: string[] };
}

export type ResolveWorkerMessage =
  | { ok: true; links?: { ids: Uint8Array; size: number; incomplete: boolean }; fsck?: FsckFindings }
  | { ok: false; error: { code?: string; message: string; details?: Record<string, unknown>; stack?: string } };

const data = workerData as ResolveWorkerData;
let message: ResolveWorkerMessage;
const pack = data.packMemory ? PackFile.fromMemory(new Uint8Array(data.packMemory), data.packPath) : PackFile.open(data.packPath);
const tables = PackTables.fromBuffers(data.tables);
const links = data.linkLimit === undefined ? undefined : new ObjectIdSet(tables.hashLength, data.linkLimit);
const fsck = data.fsck ? new FsckCollector({ ...data.fsck, skipList: data.fsck.skipList && new Set(data.fsck.skipList) }, tables.hashLength, links) : undefined;
const resolver = new DeltaResolver(tables, new DeltaGraph(data.graph), pack, {
  hashName: data.hashName,
  limits: data.limits,
  cacheLimit: data.cacheLimit,
  links,
  fsck,
});
try {
  resolver.run();
  message = { ok: true, links: links?.export(), fsck: fsck?.findings() };
} catch (err) {
  message =
    err instanceof PackferryError
      ? { ok: false, error: { code: err.code, message: err.message, details: { ...err.details } } }
      : { ok: false, error: { message: err instanceof Error ? err.message : String(err), stack: err instanceof Error ? err.stack : undefined } };
} finally {
  resolver.close();
  pack.close();
}
// The links' ids move to the main thread rather than being copied.
parentPort!.postMessage(message, message.ok && message.links ? [message.links.ids.buffer as ArrayBuffer] : []);

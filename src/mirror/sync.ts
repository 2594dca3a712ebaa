// The mirror sync engine (Kalandra's broker, done over): for each target,
// read its refs, plan the updates, negotiate the minimal pack with the source
// (wants: the new tips the target lacks; haves: everything the target has),
// and stream that pack from the source's upload-pack straight into the
// target's receive-pack. Nothing is written to local disk; memory holds one
// pkt-line at a time. receive-pack checks the pack and its connectivity
// before moving any ref, so an interrupted transfer leaves every ref as it
// was; with `atomic` the target applies all updates or none.
import { PackferryError, ErrorCode } from '../core/errors.js';
import { encodePackHeader } from '../pack/format.js';
import type { RemoteMessage } from '../protocol/side-band.js';
import type { RefUpdateCommand } from '../protocol/receive-pack.js';
import type { RemoteRefs } from '../transport/remote.js';
import type { Transport } from '../transport/types.js';
import { isTransport, transportSource, transportTarget, type MirrorSource, type MirrorTarget, type SourceSession, type TargetSession } from './endpoints.js';
import { CommitCollector, type Ancestry } from './ancestry.js';
import { ZERO_ID } from '../core/refs.js';
import { atticRefFor, hasDirectoryConflict, planSync, type RefUpdate } from './plan.js';
import { RefFilter } from './ref-filter.js';
import { LfsConnection, lfsBeforeCommit, type LfsReport } from './lfs.js';
import { createHash } from 'node:crypto';

export interface MirrorOptions {
  filter?: RefFilter;
  /** Delete target refs that are gone from the source (default true). */
  prune?: boolean;
  /** Keep every tip an update or delete would lose under refs/packferry/attic/ (default false). */
  safe?: boolean;
  /** Plan only: read refs, change nothing. */
  dryRun?: boolean;
  /** Use the target's `atomic` capability when it offers it (default true). */
  atomic?: boolean;
  pushOptions?: string[];
  /** Protocol version to ask the source for (default 2). */
  protocolVersion?: 0 | 1 | 2;
  onEvent?: (event: MirrorEvent) => void;
  signal?: AbortSignal;
  // --- LFS integration (mirror/lfs.ts) ---
  /** Mirror the Git LFS objects of new blobs into store targets, from http(s) sources (default true). */
  lfs?: boolean;
  /** Commit a sync even when LFS objects could not be fetched (they are listed in the result); default false: the sync fails, nothing moves. */
  lfsTolerateFailures?: boolean;
  /** LFS downloads at once (default 4). */
  lfsParallelism?: number;
}

export type MirrorEvent =
  | { type: 'source-refs'; count: number }
  | { type: 'target-start'; target: string; index: number; of: number }
  | { type: 'plan'; target: string; updates: number }
  | { type: 'pack-progress'; target: string; bytes: number; objects?: number }
  | { type: 'pack-done'; target: string; bytes: number; objects?: number }
  | { type: 'remote-message'; target: string; side: 'source' | 'target'; message: RemoteMessage }
  | { type: 'lfs-progress'; target: string; done: number; total: number; bytes: number };

export type UpdateStatus = 'ok' | 'rejected' | 'planned' | 'failed';

export interface UpdateResult extends RefUpdate {
  status: UpdateStatus;
  reason?: string;
}

export interface TargetResult {
  target: string;
  ok: boolean;
  error?: PackferryError;
  updates: UpdateResult[];
  /** Attic refs created in safe mode (old tips kept). */
  attic: UpdateResult[];
  upToDate: string[];
  invalidNames: string[];
  pack?: { bytes: number; objects?: number };
  /** LFS integration: what was done about Git LFS objects (store targets that received a layer, LFS on). */
  lfs?: LfsReport;
}

export interface MirrorResult {
  source: string;
  ok: boolean;
  /** Source refs after filtering; undefined when the source could not be read. */
  sourceRefs?: number;
  sourceHead?: string;
  error?: PackferryError;
  targets: TargetResult[];
}

/** A pack with no objects: what a push sends when every object is already there. */
export function emptyPack(): Buffer {
  const header = encodePackHeader(0);
  return Buffer.concat([header, createHash('sha1').update(header).digest()]);
}

function asPackferryError(err: unknown): PackferryError {
  if (err instanceof PackferryError) return err;
  return new PackferryError(ErrorCode.Internal, `internal error: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}

/** The source's session (upload-pack), opened on first use: a sync that finds nothing to do never starts it. */
class SourceConnection {
  private client: Promise<SourceSession> | undefined;

  constructor(
    private readonly source: MirrorSource,
    private readonly options: MirrorOptions,
  ) {}

  get(): Promise<SourceSession> {
    this.client ??= this.source.connect({ protocolVersion: this.options.protocolVersion ?? 2, signal: this.options.signal });
    return this.client;
  }

  async close(): Promise<void> {
    const client = await this.client?.catch(() => undefined);
    await client?.close().catch(() => {});
  }
}

/** Mirrors `source` into each of `targets` (Git servers through transports, or stores). */
export async function mirror(sourceIn: Transport | MirrorSource, targetsIn: (Transport | MirrorTarget)[], options: MirrorOptions = {}): Promise<MirrorResult> {
  const source = isTransport(sourceIn) ? transportSource(sourceIn) : sourceIn;
  const targets = targetsIn.map((t) => (isTransport(t) ? transportTarget(t) : t));
  const filter = options.filter ?? new RefFilter();
  const emit = options.onEvent ?? (() => {});
  const result: MirrorResult = { source: source.displayUrl, ok: true, targets: [] };
  const connection = new SourceConnection(source, options);
  // LFS integration: one LFS client for the source, shared by the targets.
  const lfs = options.lfs !== false && source.lfs !== undefined ? new LfsConnection(source.lfs) : undefined;
  let sourceRefs: RemoteRefs;
  try {
    // A local source's refs are read from its files; anything else asks upload-pack.
    sourceRefs = (await source.peekRefs?.()) ?? (await (await connection.get()).listRefs(filter.prefixes()));
  } catch (err) {
    await connection.close();
    result.ok = false;
    result.error = asPackferryError(err);
    return result;
  }
  result.sourceRefs = sourceRefs.refs.filter((r) => filter.matches(r.name)).length;
  result.sourceHead = sourceRefs.head;
  emit({ type: 'source-refs', count: result.sourceRefs });
  try {
    for (let i = 0; i < targets.length; i++) {
      emit({ type: 'target-start', target: targets[i].displayUrl, index: i, of: targets.length });
      const r = await syncTarget(connection, sourceRefs, targets[i], filter, options, emit, lfs);
      result.targets.push(r);
      if (!r.ok) result.ok = false;
    }
  } finally {
    await connection.close();
    await lfs?.close();
  }
  return result;
}

async function syncTarget(
  source: SourceConnection,
  sourceRefs: RemoteRefs,
  target: MirrorTarget,
  filter: RefFilter,
  options: MirrorOptions,
  emit: (e: MirrorEvent) => void,
  lfs: LfsConnection | undefined,
): Promise<TargetResult> {
  const name = target.displayUrl;
  const result: TargetResult = { target: name, ok: true, updates: [], attic: [], upToDate: [], invalidNames: [] };
  let receive: TargetSession | undefined;
  try {
    // Nothing to do is found without starting receive-pack when the target's refs can be read directly.
    const peeked = await target.peekRefs?.();
    if (peeked !== undefined) {
      const quick = planSync(sourceRefs.refs, peeked.refs, { filter, prune: options.prune ?? true });
      if (quick.updates.length === 0) {
        result.upToDate = quick.upToDate;
        result.invalidNames = quick.invalidNames;
        emit({ type: 'plan', target: name, updates: 0 });
        return result;
      }
    }
    receive = await target.connect({ signal: options.signal });
    const plan = planSync(sourceRefs.refs, receive.refs, { filter, prune: options.prune ?? true });
    result.upToDate = plan.upToDate;
    result.invalidNames = plan.invalidNames;
    emit({ type: 'plan', target: name, updates: plan.updates.length });
    let updates = plan.updates;
    if (!receive.has('delete-refs')) {
      // Without delete-refs a delete would fail the whole push: report it instead.
      for (const u of updates.filter((x) => x.kind === 'delete')) {
        result.updates.push({ ...u, status: 'rejected', reason: 'the target does not allow deleting refs (no delete-refs capability)' });
      }
      updates = updates.filter((u) => u.kind !== 'delete');
    }
    if (updates.length === 0) {
      await receive.close();
      receive = undefined;
      result.ok = result.updates.every((u) => u.status !== 'rejected');
      return result;
    }

    const targetOids = new Set(receive.refs.map((r) => r.oid));
    const wants = [...new Set(updates.filter((u) => u.kind !== 'delete' && !targetOids.has(u.newOid)).map((u) => u.newOid))];
    const haves = [...targetOids];
    const fetchOptions = {
      haves,
      thinPack: !receive.has('no-thin'),
      ofsDelta: receive.has('ofs-delta'),
      signal: options.signal,
    };

    // Which updates are fast-forwards: in safe mode this must be known before the
    // commands are sent, and a dry run reports it (with what safe mode would keep),
    // so the commits are fetched first (without trees and blobs when the source can
    // filter); otherwise it is read off the pack as it passes.
    const changed = updates.filter((u) => u.kind === 'update');
    const upload = wants.length > 0 || changed.length > 0 ? await source.get() : undefined;
    let collector: CommitCollector | undefined;
    if ((options.safe || options.dryRun) && changed.length > 0 && upload) {
      collector = await collectCommits(upload, changed, options.signal);
      setFastForward(changed, collector);
      collector.close();
      collector = undefined;
      await settleUnknown(upload, changed, options.signal);
    } else if (changed.length > 0 && wants.length > 0) {
      collector = new CommitCollector();
    }

    // Old tips are kept first, then deletions, then the rest: in that order a
    // push that is not atomic never loses a tip, and a deletion frees its name
    // for a ref below it (x deleted, x/y created) or above it before that is made.
    const keep: RefUpdateCommand[] = [];
    const commands: RefUpdateCommand[] = [...updates.filter((u) => u.kind === 'delete'), ...updates.filter((u) => u.kind !== 'delete')].map((u) => ({
      oldOid: u.oldOid,
      newOid: u.newOid,
      name: u.name,
    }));
    const attic: RefUpdate[] = [];
    if (options.safe) {
      const existing = new Map(receive.refs.map((r) => [r.name, r.oid]));
      for (const u of updates) {
        if (u.kind === 'create' || u.fastForward === true) continue;
        const ref = atticRefFor(u.name, u.oldOid);
        u.attic = ref;
        if (existing.get(ref) === u.oldOid) continue;
        attic.push({ name: ref, kind: 'create', oldOid: existing.get(ref) ?? ZERO_ID, newOid: u.oldOid });
        keep.push({ oldOid: existing.get(ref) ?? ZERO_ID, newOid: u.oldOid, name: ref });
      }
    }
    commands.unshift(...keep);

    if (options.dryRun) {
      result.updates.push(...updates.map((u) => ({ ...u, status: 'planned' as const })));
      result.attic = attic.map((a) => ({ ...a, status: 'planned' as const }));
      result.ok = result.updates.every((u) => u.status !== 'rejected');
      return result;
    }

    let pack: AsyncIterable<Uint8Array> | undefined;
    const counted = { bytes: 0, objects: undefined as number | undefined };
    if (wants.length > 0 && upload) {
      const fetched = await upload.fetch({
        ...fetchOptions,
        wants,
        onProgress: (message) => emit({ type: 'remote-message', target: name, side: 'source', message }),
      });
      pack = observe(fetched.pack, counted, collector, (bytes, objects) => emit({ type: 'pack-progress', target: name, bytes, objects }));
    } else if (commands.some((c) => c.newOid !== ZERO_ID)) {
      pack = (async function* () {
        yield emptyPack();
      })();
    }

    const report = await receive.push({
      commands,
      pack,
      // Git cannot delete x and create x/y (or the reverse) in one atomic ref
      // transaction; one ref at a time, in the order above, it can.
      atomic: (options.atomic ?? true) && !hasDirectoryConflict(updates),
      pushOptions: options.pushOptions,
      head: sourceRefs.head,
      onProgress: (message) => emit({ type: 'remote-message', target: name, side: 'target', message }),
      signal: options.signal,
      // LFS integration: store targets mirror the new layer's LFS objects before committing.
      beforeCommit:
        options.lfs === false
          ? undefined
          : lfsBeforeCommit({
              connection: lfs,
              tolerateFailures: options.lfsTolerateFailures,
              parallelism: options.lfsParallelism,
              onProgress: (p) => emit({ type: 'lfs-progress', target: name, ...p }),
              report: (r) => {
                result.lfs = r;
              },
            }),
    });
    // Ends the session (a store target closes the repository; receive-pack has already finished).
    await receive.close();
    receive = undefined;
    if (wants.length > 0) {
      result.pack = { bytes: counted.bytes, objects: counted.objects };
      emit({ type: 'pack-done', target: name, bytes: counted.bytes, objects: counted.objects });
    }
    if (collector) {
      setFastForward(changed, collector);
      collector.close();
    }
    if (!options.safe && upload) await settleUnknown(upload, changed, options.signal).catch(() => {});
    const byName = new Map(report.refs.map((r) => [r.name, r]));
    const statusOf = (u: RefUpdate): UpdateResult => {
      if (report.unpack !== 'ok') return { ...u, status: 'failed', reason: `unpack failed: ${report.unpack}` };
      const s = byName.get(u.name);
      if (!s) return { ...u, status: 'failed', reason: 'the target did not report on this ref' };
      return s.ok ? { ...u, status: 'ok' } : { ...u, status: 'rejected', reason: s.reason };
    };
    result.updates.push(...updates.map(statusOf));
    result.attic = attic.map(statusOf);
    result.ok = report.unpack === 'ok' && [...result.updates, ...result.attic].every((u) => u.status === 'ok');
  } catch (err) {
    result.ok = false;
    result.error = asPackferryError(err);
  } finally {
    await receive?.close().catch(() => {});
  }
  return result;
}

/** Counts bytes and reads the object count from the pack header while passing the chunks on. */
async function* observe(
  pack: AsyncIterable<Uint8Array>,
  counted: { bytes: number; objects?: number },
  collector: CommitCollector | undefined,
  onProgress: (bytes: number, objects?: number) => void,
): AsyncGenerator<Uint8Array> {
  let header = Buffer.alloc(0);
  for await (const chunk of pack) {
    if (counted.objects === undefined && header.length < 12) {
      header = Buffer.concat([header, chunk.subarray(0, 12 - header.length)]);
      if (header.length === 12 && header.toString('latin1', 0, 4) === 'PACK') counted.objects = header.readUInt32BE(8);
    }
    counted.bytes += chunk.length;
    collector?.push(chunk);
    onProgress(counted.bytes, counted.objects);
    yield chunk;
  }
}

/** Fetches just the commits between the target's old tips and the new ones, to learn which updates fast-forward. */
async function collectCommits(upload: SourceSession, changed: RefUpdate[], signal?: AbortSignal): Promise<CommitCollector> {
  const collector = new CommitCollector();
  const fetched = await upload.fetch({
    wants: [...new Set(changed.map((u) => u.newOid))],
    haves: [...new Set(changed.map((u) => u.oldOid))],
    ofsDelta: true,
    filter: 'tree:0',
    signal,
  });
  for await (const chunk of fetched.pack) collector.push(chunk);
  return collector;
}

function setFastForward(changed: RefUpdate[], collector: CommitCollector, onlyHave = false): void {
  for (const u of changed) {
    if (u.fastForward !== undefined) continue;
    const a: Ancestry = collector.isAncestor(u.oldOid, u.newOid, onlyHave);
    u.fastForward = a === 'yes' ? true : a === 'no' ? false : undefined;
  }
}

/** Most refs whose fast-forward question is settled one by one (each costs a small fetch). */
const MAX_SINGLE_CHECKS = 32;

/**
 * Settles the updates the shared walk could not decide: for each, fetch the
 * commits between its old and new tip alone, where the answer is exact.
 */
async function settleUnknown(upload: SourceSession, changed: RefUpdate[], signal?: AbortSignal): Promise<void> {
  const open = changed.filter((u) => u.fastForward === undefined).slice(0, MAX_SINGLE_CHECKS);
  for (const u of open) {
    const collector = await collectCommits(upload, [u], signal);
    try {
      setFastForward([u], collector, true);
    } finally {
      collector.close();
    }
  }
}

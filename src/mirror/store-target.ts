// A packferry store as a mirror target: it answers like a receive-pack —
// its refs, the capabilities it supports, a push of commands and a pack —
// but stores the pack as a new layer instead. The writer lock is taken when
// the session opens, so the refs the plan is made from cannot change under
// it; the layer is indexed, its objects checked as Git's receive.fsckObjects
// checks them (strict, with the levels given: `packferry mirror --fsck`),
// its connectivity checked and every branch must name a commit (Git's refs
// layer) before the manifest (and with it every ref) moves.
import { readFile } from 'node:fs/promises';
import { PackferryError, ErrorCode, isPackferryError } from '../core/errors.js';
import { formatFsckProblem, transferFsckOptions, type FsckOptions } from '../core/fsck.js';
import { objectTypeFromPackType, parseTag } from '../core/object.js';
import type { ObjectId } from '../core/oid.js';
import { PackObjectType } from '../pack/format.js';
import { PackFile } from '../pack/packfile.js';
import { PackReader } from '../pack/reader.js';
import type { AdvertisedRef } from '../protocol/advertisement.js';
import type { RefUpdateCommand, ReportStatus } from '../protocol/receive-pack.js';
import { checkConnectivity, linksComplete } from '../store/connectivity.js';
import type { WriterLock } from '../store/lock.js';
import type { LayeredObjects } from '../store/objects.js';
import { receivePack, type StagedLayer } from '../store/receive.js';
import { refTargetProblem } from '../store/ref-rules.js';
import type { StoreRepository } from '../store/repository.js';
import type { TargetPushOptions, TargetSession } from './endpoints.js';
import { ZERO_ID } from '../core/refs.js';

// --- LFS integration (mirror/lfs.ts): a hook between the connectivity check and the commit. ---
/** A received layer, indexed and connectivity-checked, not yet committed. */
export interface ReceivedLayer {
  staged: StagedLayer;
  /** A reader over the layer's pack (open until the push ends). */
  reader: PackReader;
  repo: StoreRepository;
  signal?: AbortSignal;
}

/**
 * Runs after a push's new layer is indexed and its connectivity checked, and
 * before the manifest (with every ref) is committed: work that must be done
 * before refs can point at the layer (mirroring its Git LFS objects: objects
 * first, refs last). If it throws, the layer is removed and nothing moves.
 */
export type BeforeCommitHook = (layer: ReceivedLayer) => Promise<void>;
// --- end LFS integration ---

/** Packs up to this size are read into memory for the connectivity check. */
const IN_MEMORY_CHECK = 64 * 1024 * 1024;

/** The capabilities a store target offers (it wants self-contained packs: no-thin). */
const STORE_CAPABILITIES = new Set(['delete-refs', 'ofs-delta', 'atomic', 'no-thin', 'report-status']);

export class StoreTargetSession implements TargetSession {
  readonly refs: AdvertisedRef[];
  private closed = false;

  private constructor(
    private readonly repo: StoreRepository,
    private readonly lock: WriterLock,
    private readonly fsck: FsckOptions,
  ) {
    this.refs = repo.refs.map((r) => ({ name: r.name, oid: r.oid, peeled: r.peeled }));
  }

  /** `fsck`: how received objects are checked (default: Git's transfer checks, strict, nothing relaxed). */
  static async open(repo: StoreRepository, options: { owner?: string; signal?: AbortSignal; fsck?: FsckOptions } = {}): Promise<StoreTargetSession> {
    const lock = await repo.lock({ owner: options.owner ?? 'packferry mirror', signal: options.signal });
    try {
      await repo.refresh(options.signal);
      return new StoreTargetSession(repo, lock, options.fsck ?? transferFsckOptions());
    } catch (err) {
      await lock.release().catch(() => {});
      throw err;
    }
  }

  has(capability: string): boolean {
    return STORE_CAPABILITIES.has(capability);
  }

  async push(options: TargetPushOptions): Promise<ReportStatus> {
    const repo = this.repo;
    const current = new Map(repo.refs.map((r) => [r.name, r]));
    // Compare-and-swap against the refs read under the lock.
    for (const c of options.commands) {
      const now = current.get(c.name)?.oid ?? ZERO_ID;
      if (now !== c.oldOid) {
        return { unpack: 'ok', refs: options.commands.map((x) => ({ name: x.name, ok: false, reason: x === c ? 'stale old value' : 'atomic push failed' })) };
      }
    }
    let staged: StagedLayer | undefined;
    const existing = repo.manifest.layers.length > 0 ? await repo.objects(options.signal) : undefined;
    if (options.pack && options.commands.some((c) => c.newOid !== ZERO_ID)) {
      try {
        staged = await receivePack(repo, options.pack, { signal: options.signal, fsck: this.fsck });
      } catch (err) {
        if (!isPackferryError(err, ErrorCode.FsckFailed)) throw err;
        const ids = (err.details.ids as string[] | undefined) ?? [];
        throw new PackferryError(err.code, err.message, {
          cause: err,
          details: err.details,
          hint: `Git's receive.fsckObjects refuses these objects too; nothing was stored. To store them anyway: ${ids.map((id) => `--fsck ${id}=warn`).join(' ') || '--fsck <msg-id>=warn'} (or =ignore)`,
        });
      }
      // Problems relaxed to warnings are shown as a Git server shows them to a pusher.
      for (const w of staged.fsckWarnings.slice(0, 50)) options.onProgress?.({ text: formatFsckProblem(w), end: '\n' });
      if (staged.entry.objects === 0) {
        await staged.remove();
        staged = undefined;
      }
    }
    let reader: PackReader | undefined;
    try {
      if (staged) {
        // A walk reads every new commit and tree: a pack of moderate size is read into memory for it,
        // unless the links collected while indexing are likely to make it unnecessary.
        const walk = !linksComplete(staged.indexed.links) && staged.entry.packBytes <= IN_MEMORY_CHECK;
        const packFile = walk ? PackFile.fromMemory(await readFile(staged.localPack), staged.localPack) : PackFile.open(staged.localPack);
        reader = PackReader.fromIndex(packFile, staged.layer.index);
        const tips = [...new Set(options.commands.filter((c) => c.newOid !== ZERO_ID).map((c) => c.newOid))];
        await checkConnectivity(tips, staged.layer, reader, existing, options.signal, staged.indexed.links);
        await checkRefTargets(options.commands, reader, staged, existing);
        // LFS integration: the layer's LFS objects are stored before any ref can point at it.
        if (options.beforeCommit) await options.beforeCommit({ staged, reader, repo, signal: options.signal });
      } else {
        for (const c of options.commands) {
          if (c.newOid !== ZERO_ID && !existing?.has(c.newOid)) {
            throw new PackferryError(ErrorCode.MissingObjects, `object ${c.newOid} for ${c.name} is not in the store`, { hint: 'the pack is incomplete: nothing was changed' });
          }
        }
        await checkRefTargets(options.commands, undefined, undefined, existing);
      }
      const next = new Map(current);
      for (const c of options.commands) {
        if (c.newOid === ZERO_ID) next.delete(c.name);
        else next.set(c.name, { name: c.name, oid: c.newOid, peeled: await peel(c.newOid, reader, staged, existing) });
      }
      const head = options.head !== undefined && /^refs\/[^\s]+$/.test(options.head) ? options.head : undefined;
      await staged?.stored; // the layer's files are in place before the manifest names them
      await repo.commit({ layer: staged?.entry, refs: [...next.values()], head }, options.signal);
    } catch (err) {
      await staged?.remove().catch(() => {});
      throw err;
    } finally {
      reader?.close();
      await staged?.discard().catch(() => {});
    }
    return { unpack: 'ok', refs: options.commands.map((c: RefUpdateCommand) => ({ name: c.name, ok: true })) };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.lock.release().catch(() => {});
    await this.repo.close();
  }
}

/** Git's refs layer: every branch a command sets names a commit (store/ref-rules.ts); throws ERR_REF_REJECTED. */
async function checkRefTargets(commands: RefUpdateCommand[], reader: PackReader | undefined, staged: StagedLayer | undefined, existing: LayeredObjects | undefined): Promise<void> {
  for (const c of commands) {
    if (c.newOid === ZERO_ID) continue;
    const head = reader && staged && staged.layer.index.find(c.newOid) >= 0 ? reader.readHeader(c.newOid) : await existing?.tryReadHeader(c.newOid);
    const problem = refTargetProblem(c.name, c.newOid, head && objectTypeFromPackType(head.type));
    if (problem !== undefined) {
      throw new PackferryError(ErrorCode.RefRejected, `cannot update ref '${c.name}': ${problem}`, {
        details: { ref: c.name, oid: c.newOid },
        hint: `Git refuses it too; nothing was stored. Leave the ref out: --exclude ${c.name}`,
      });
    }
  }
}

/** For a tag, the object its chain of tags ends at (for packed-refs' and info/refs' peeled lines). */
async function peel(oid: ObjectId, reader: PackReader | undefined, staged: StagedLayer | undefined, existing: LayeredObjects | undefined): Promise<ObjectId | undefined> {
  let cur = oid;
  for (let depth = 0; depth < 64; depth++) {
    let obj: { type: number; data: Buffer } | undefined;
    if (reader && staged && staged.layer.index.find(cur) >= 0) obj = reader.read(cur);
    else obj = await existing?.tryRead(cur);
    if (!obj || obj.type !== PackObjectType.Tag) return depth === 0 ? undefined : cur;
    cur = parseTag(obj.data).object;
  }
  return cur;
}

// A packferry store as a mirror target: it answers like a receive-pack —
// its refs, the capabilities it supports, a push of commands and a pack —
// but stores the pack as a new layer instead, through the store's one ref
// transaction (store/ref-transaction.ts): the layer is indexed and its
// objects checked as Git's receive.fsckObjects checks them (strict, with the
// levels given: `packferry mirror --fsck`) while nothing is held; then the
// commands commit against the state committed at that moment, each ref
// compared with the old value the plan was made from, so a writer that
// changed a ref meanwhile is not overwritten (Git's "failed to update ref").
import { PackferryError, ErrorCode, isPackferryError } from '../core/errors.js';
import { formatFsckProblem, transferFsckOptions, type FsckOptions } from '../core/fsck.js';
import { ZERO_ID } from '../core/refs.js';
import type { PackReader } from '../pack/reader.js';
import type { AdvertisedRef } from '../protocol/advertisement.js';
import type { ReportStatus } from '../protocol/receive-pack.js';
import { receivePack, type StagedLayer } from '../store/receive.js';
import { updateRefs } from '../store/ref-transaction.js';
import type { StoreRepository } from '../store/repository.js';
import type { TargetPushOptions, TargetSession } from './endpoints.js';

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

/** The capabilities a store target offers (it wants self-contained packs: no-thin). */
const STORE_CAPABILITIES = new Set(['delete-refs', 'ofs-delta', 'atomic', 'no-thin', 'report-status']);

export class StoreTargetSession implements TargetSession {
  readonly refs: AdvertisedRef[];
  private closed = false;

  private constructor(
    private readonly repo: StoreRepository,
    private readonly fsck: FsckOptions,
  ) {
    this.refs = repo.refs.map((r) => ({ name: r.name, oid: r.oid, peeled: r.peeled }));
  }

  /**
   * A session on the repository's state as `repo` read it: nothing is held
   * (the commands' old values are what the push's transaction compares
   * against, with the state committed by then). The caller has brought Git's
   * files up to date (repository.ts ensurePublished), so that a sync with
   * nothing to do repairs them too.
   * `fsck`: how received objects are checked (default: Git's transfer checks, strict, nothing relaxed).
   */
  static open(repo: StoreRepository, options: { fsck?: FsckOptions } = {}): StoreTargetSession {
    return new StoreTargetSession(repo, options.fsck ?? transferFsckOptions());
  }

  has(capability: string): boolean {
    return STORE_CAPABILITIES.has(capability);
  }

  async push(options: TargetPushOptions): Promise<ReportStatus> {
    const repo = this.repo;
    let staged: StagedLayer | undefined;
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
    const head = options.head !== undefined && /^refs\/[^\s]+$/.test(options.head) ? options.head : undefined;
    const beforeCommit = options.beforeCommit;
    const { outcomes } = await updateRefs(
      repo,
      { layer: staged, edits: options.commands.map((c) => ({ name: c.name, old: c.oldOid, new: c.newOid, doneIfAlreadyNew: true })), head, atomic: options.atomic },
      {
        signal: options.signal,
        // LFS integration: the layer's LFS objects are stored before any ref can point at it.
        beforeCommit:
          beforeCommit && staged
            ? async (pending) => {
                await beforeCommit({ staged: staged!, reader: pending.layerReader!, repo, signal: options.signal });
              }
            : undefined,
      },
    );
    // A refusal's reason carries Git's message beside it (e.g. the ref a directory/file conflict is with).
    return {
      unpack: 'ok',
      refs: outcomes.map((o) => (o.ok ? { name: o.name, ok: true } : { name: o.name, ok: false, reason: o.message === undefined ? o.reason : `${o.reason}: ${o.message}` })),
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.repo.close();
  }
}

// One ref transaction of a store repository: what `git receive-pack` does
// between the pack and the report (receive-pack.c execute_commands, update;
// refs.c ref_transaction_*), and what every writer of a store — the
// server's receive-pack, a mirror into a store, `repo edit` — goes through.
//
//   1. names: Git's check-ref-format (`funny refname`), each ref once;
//   2. objects: every new tip reachable in the new layer or already stored
//      (`missing necessary objects`), a branch naming a commit (Git's refs
//      layer), fast-forwards where asked (`non-fast-forward`), tags peeled;
//   3. the front end's own say (`beforeCommit`: hooks, LFS objects first);
//   4. the commit, from the state committed at that moment: each ref's
//      expected old value (`failed to update ref`, "cannot lock ref 'R': is
//      at X but expected Y"), directory/file conflicts with the refs there
//      and earlier in the batch ("'R' exists; cannot create 'S'"), all or
//      nothing when atomic — swapped in by compare-and-swap, and checked
//      again from the newer state if another writer committed first.
// Steps 1-3 run once, holding nothing, however long they take (a pack
// trickling in, a hook); step 4 takes milliseconds. Outcomes are per ref, in
// Git's words, so each front end reports them as Git would.
import { readFile } from 'node:fs/promises';
import { ErrorCode, isPackferryError } from '../core/errors.js';
import { objectTypeFromPackType, parseCommitLinks } from '../core/object.js';
import type { ObjectId } from '../core/oid.js';
import { directoryFileConflict, isRefName, ZERO_ID } from '../core/refs.js';
import { testPoint } from '../core/test-points.js';
import { PackObjectType } from '../pack/format.js';
import type { ObjectIdSet } from '../pack/links.js';
import { PackFile } from '../pack/packfile.js';
import { PackReader, type PackedObject } from '../pack/reader.js';
import { checkConnectivity, linksComplete } from './connectivity.js';
import type { RefEntry } from './layout.js';
import type { Manifest } from './manifest.js';
import { LayeredObjects, loadLayers } from './objects.js';
import { peelTag } from './peel.js';
import type { StagedLayer } from './receive.js';
import { refTargetProblem } from './ref-rules.js';
import type { StoreRepository } from './repository.js';

/** One ref change. */
export interface RefEdit {
  name: string;
  /** The value the writer saw: the ref must still have it when the change commits (ZERO_ID: it must not exist). Undefined: whatever it is. */
  old?: ObjectId;
  /** The new value; ZERO_ID deletes the ref. */
  new: ObjectId;
  /** Refuse unless `old` is an ancestor of `new` ("non-fast-forward"); a deletion is refused too ("deletion prohibited"). */
  fastForwardOnly?: boolean;
  /**
   * When the ref holds `new` already (another writer made the same change
   * first: two syncs of one mirror overlapping), the edit is done rather than
   * refused. Git's receive-pack has no such thing; a mirror wants it.
   */
  doneIfAlreadyNew?: boolean;
}

/** What became of one edit. */
export interface RefOutcome {
  name: string;
  ok: boolean;
  /** Git's reason on the report-status line ("failed to update ref", "funny refname", ...). */
  reason?: string;
  /** Git's error beside it, for the pusher ("cannot lock ref 'R': is at X but expected Y"). */
  message?: string;
}

export interface RefTransaction {
  /** The new layer (stored, or being stored) when the edits need objects. */
  layer?: StagedLayer;
  edits: RefEdit[];
  /** A new HEAD (a ref name); kept when undefined. */
  head?: string;
  /** All or nothing (Git's atomic push): one refused edit refuses every one ("atomic push failure"). */
  atomic?: boolean;
}

/** What `beforeCommit` is given: the edits still accepted and a way to read the objects they name. */
export interface PendingCommit {
  accepted: RefEdit[];
  /** Reads an object from the new layer or the store. */
  read(oid: ObjectId): Promise<PackedObject | undefined>;
  /** A reader over the new layer's pack (undefined without one), open until the transaction ends. */
  layerReader: PackReader | undefined;
}

export interface RefTransactionOptions {
  signal?: AbortSignal;
  /**
   * The front end's own checks, once every edit passed the store's against
   * the state they were read from and before the commit (receive-pack's
   * hooks; a mirror's LFS objects, stored before any ref can name them).
   * Returns refusals ({ name, reason }) for some edits; throwing stops the
   * whole transaction (nothing moves).
   */
  beforeCommit?: (pending: PendingCommit) => Promise<{ name: string; reason: string; message?: string }[] | void>;
}

export interface RefTransactionResult {
  /** One per edit, in the order given. */
  outcomes: RefOutcome[];
  /** The state committed, or undefined when nothing was (every edit refused, or nothing to do). */
  committed?: Manifest;
}

/** Packs up to this size are read into memory for a connectivity walk. */
const IN_MEMORY_CHECK = 64 * 1024 * 1024;

/** See the module comment. The staged layer is removed when nothing ends up naming it; its local spill is discarded either way. */
export async function updateRefs(repo: StoreRepository, tx: RefTransaction, options: RefTransactionOptions = {}): Promise<RefTransactionResult> {
  const signal = options.signal;
  const outcomes: RefOutcome[] = tx.edits.map((e) => ({ name: e.name, ok: true }));
  const refuse = (i: number, reason: string, message?: string): void => {
    if (outcomes[i].ok) outcomes[i] = message === undefined ? { name: outcomes[i].name, ok: false, reason } : { name: outcomes[i].name, ok: false, reason, message };
  };
  const accepted = () => tx.edits.map((e, i) => ({ e, i })).filter(({ i }) => outcomes[i].ok);
  const atomically = (): boolean => {
    if (tx.atomic && outcomes.some((o) => !o.ok)) {
      for (let i = 0; i < outcomes.length; i++) refuse(i, 'atomic push failure');
      return true;
    }
    return false;
  };

  // 1. Names.
  const seen = new Set<string>();
  tx.edits.forEach((e, i) => {
    if (!e.name.startsWith('refs/') || !isRefName(e.name)) refuse(i, 'funny refname');
    else if (seen.has(e.name)) refuse(i, 'duplicate ref');
    seen.add(e.name);
    if ((e.old === undefined || e.old === ZERO_ID) && e.new === ZERO_ID) refuse(i, 'nothing to do');
  });

  const staged = tx.layer;
  let layerReader: PackReader | undefined;
  let existing: LayeredObjects | undefined;
  let used = false;
  try {
    const snapshot = repo.manifest;
    existing = snapshot.layers.length > 0 ? await repo.objects(signal) : undefined;
    if (staged) {
      // A connectivity walk reads every new commit and tree: a pack of moderate size is read into memory
      // for it, unless the links collected while indexing are likely to make it unnecessary.
      const walk = !linksComplete(staged.indexed.links) && staged.entry.packBytes <= IN_MEMORY_CHECK;
      const file = walk ? PackFile.fromMemory(await readFile(staged.localPack), staged.localPack) : PackFile.open(staged.localPack);
      layerReader = PackReader.fromIndex(file, staged.layer.index);
    }
    const inLayer = (oid: ObjectId) => layerReader !== undefined && staged!.layer.index.find(oid) >= 0;
    const read = async (oid: ObjectId): Promise<PackedObject | undefined> => (inLayer(oid) ? layerReader!.read(oid) : existing?.tryRead(oid));
    const header = async (oid: ObjectId) => (inLayer(oid) ? layerReader!.readHeader(oid) : existing?.tryReadHeader(oid));

    // 2. Objects: connectivity for all the new tips in one walk; only when it fails, one walk per tip says which.
    const connected = async (tips: ObjectId[], over: LayeredObjects | undefined, links?: ObjectIdSet[]): Promise<boolean> => {
      try {
        if (staged) await checkConnectivity([...new Set(tips)], staged.layer, layerReader!, over, signal, links);
        else if (tips.some((t) => !over?.has(t))) return false;
        return true;
      } catch (err) {
        if (!isPackferryError(err, ErrorCode.MissingObjects)) throw err;
        return false;
      }
    };
    const tipsOf = () => accepted().filter(({ e }) => e.new !== ZERO_ID);
    const tips = tipsOf();
    if (tips.length > 0 && !(await connected(tips.map(({ e }) => e.new), existing, staged?.indexed.links))) {
      for (const { e, i } of tips) if (!(await connected([e.new], existing))) refuse(i, 'missing necessary objects');
    }
    const peeled = new Map<ObjectId, ObjectId | undefined>();
    for (const { e, i } of tipsOf()) {
      const head = await header(e.new);
      const problem = refTargetProblem(e.name, e.new, head && objectTypeFromPackType(head.type));
      if (problem !== undefined) refuse(i, 'failed to update ref', `cannot update ref '${e.name}': ${problem}`);
      else if (!peeled.has(e.new)) peeled.set(e.new, await peelTag(e.new, read));
    }
    for (const { e, i } of accepted()) {
      if (!e.fastForwardOnly || e.old === undefined || e.old === ZERO_ID) continue;
      if (e.new === ZERO_ID) refuse(i, 'deletion prohibited');
      else if (!(await isAncestor(e.old, e.new, read))) refuse(i, 'non-fast-forward');
    }
    atomically();

    // 3. The front end's say.
    if (options.beforeCommit && accepted().length > 0) {
      const refusals = (await options.beforeCommit({ accepted: accepted().map(({ e }) => e), read, layerReader })) ?? [];
      for (const r of refusals) {
        const i = tx.edits.findIndex((e, k) => e.name === r.name && outcomes[k].ok);
        if (i >= 0) refuse(i, r.reason, r.message);
      }
      atomically();
    }
    const prepared = outcomes.map((o) => ({ ...o }));
    if (accepted().length === 0 && tx.head === undefined) {
      await repo.ensurePublished(signal);
      return { outcomes };
    }
    if (staged && tipsOf().length > 0) await staged.stored; // the layer's files are in place before a state names them
    if (staged) await testPoint('store:staged', signal);

    // 4. The commit, from whatever state is committed when it happens.
    const committed = await repo.transact(
      async (current) => {
        for (let i = 0; i < outcomes.length; i++) outcomes[i] = { ...prepared[i] };
        const refs = new Map(current.refs.map((r) => [r.name, r]));
        for (const { e, i } of accepted()) {
          const now = refs.get(e.name)?.oid ?? ZERO_ID;
          if (e.old !== undefined && now !== e.old && !(e.doneIfAlreadyNew && now === e.new)) refuse(i, 'failed to update ref', lockMessage(e.name, now, e.old));
        }
        // Directory/file conflicts, in order as Git's transaction meets them: `names` is the refs there are
        // at each step; `sorted` every name that may be one (those not, or no longer, there are passed over).
        const names = new Set(refs.keys());
        const sorted = [...new Set([...names, ...accepted().map(({ e }) => e.name)])].sort();
        for (const { e, i } of accepted()) {
          if (e.new === ZERO_ID) {
            names.delete(e.name);
            continue;
          }
          if (names.has(e.name)) continue;
          const other = directoryFileConflict(e.name, names, sorted);
          if (other !== undefined) {
            refuse(i, 'failed to update ref', `cannot lock ref '${e.name}': '${other}' exists; cannot create '${e.name}'`);
            continue;
          }
          names.add(e.name);
        }
        if (atomically() || (accepted().length === 0 && tx.head === undefined)) return undefined;
        // A layer the snapshot relied on that is gone (compaction merged or dropped it): the tips are checked against what is there now.
        const listed = new Set(current.layers.map((l) => l.name));
        if (snapshot.layers.some((l) => !listed.has(l.name))) {
          const now = await loadLayers(repo.blobs, current.layers.map((l) => l.name), signal, repo.idxCache);
          const over = new LayeredObjects(now, repo.files);
          try {
            for (const { e, i } of accepted()) if (e.new !== ZERO_ID && !(await connected([e.new], over))) refuse(i, 'missing necessary objects');
          } finally {
            await over.close();
          }
          if (atomically() || (accepted().length === 0 && tx.head === undefined)) return undefined;
        }
        // Edits that change something (with doneIfAlreadyNew, a ref may hold its new value already).
        const changing = accepted().filter(({ e }) => (refs.get(e.name)?.oid ?? ZERO_ID) !== e.new);
        if (changing.length === 0 && (tx.head === undefined || tx.head === current.head)) return undefined;
        for (const { e } of changing) {
          if (e.new === ZERO_ID) refs.delete(e.name);
          else refs.set(e.name, peeledEntry(e.name, e.new, peeled.get(e.new)));
        }
        const addsObjects = staged !== undefined && changing.some(({ e }) => e.new !== ZERO_ID);
        const layers = addsObjects && !listed.has(staged.entry.name) ? [{ ...staged.entry, generation: current.generation + 1 }, ...current.layers] : current.layers;
        return {
          ...current,
          head: tx.head ?? current.head,
          refs: [...refs.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
          layers,
          // A layer listed again is no longer retired: its files must outlive any grace period.
          retired: current.retired.filter((r) => r.name !== staged?.entry.name || !addsObjects),
        };
      },
      { signal },
    );
    // (On an error the layer is removed unless the stored state names it: a commit whose answer was lost may have happened.)
    used = committed !== undefined && staged !== undefined && committed.layers.some((l) => l.name === staged.entry.name);
    return { outcomes, committed };
  } finally {
    layerReader?.close();
    if (staged && !used) await staged.remove().catch(() => {});
    await staged?.discard().catch(() => {});
  }
}

function peeledEntry(name: string, oid: ObjectId, peeled: ObjectId | undefined): RefEntry {
  return peeled === undefined ? { name, oid } : { name, oid, peeled };
}

/** Git's words when a ref is not at the value expected (refs/files-backend.c lock_raw_ref, verify_lock). */
function lockMessage(name: string, now: ObjectId, expected: ObjectId): string {
  if (expected === ZERO_ID) return `cannot lock ref '${name}': reference already exists`;
  if (now === ZERO_ID) return `cannot lock ref '${name}': unable to resolve reference '${name}'`;
  return `cannot lock ref '${name}': is at ${now} but expected ${expected}`;
}

/** Is `ancestor` reachable from `descendant` through commit parents? (Bounded: at most `limit` commits are read.) */
export async function isAncestor(
  ancestor: ObjectId,
  descendant: ObjectId,
  read: (oid: ObjectId) => Promise<PackedObject | undefined>,
  limit = 1_000_000,
): Promise<boolean> {
  if (ancestor === descendant) return true;
  const seen = new Set([descendant]);
  const queue = [descendant];
  while (queue.length > 0 && seen.size < limit) {
    const obj = await read(queue.shift()!);
    if (!obj || obj.type !== PackObjectType.Commit) continue;
    for (const p of parseCommitLinks(obj.data).parents) {
      if (p === ancestor) return true;
      if (!seen.has(p)) {
        seen.add(p);
        queue.push(p);
      }
    }
  }
  return false;
}

// git-receive-pack over a packferry store, for smart HTTP (gitprotocol-pack
// "Pushing Data", gitprotocol-http "Smart Service git-receive-pack"). The
// pack streams into a new layer (indexed as it arrives, thin packs completed
// from the store, every object checked as Git's receive.fsckObjects checks
// it, with the repository's fsck levels), its connectivity is checked,
// branches must name commits (Git's refs layer), the hooks are run, and only
// then does the manifest — and every accepted ref with it — move, in one
// compare-and-swap under the repository's writer lock: of two pushes racing
// for a branch one wins and the other gets a clean "ng".
import { readFile } from 'node:fs/promises';
import { ErrorCode, isPackferryError, type PackferryError } from '../core/errors.js';
import { formatFsckProblem, type FsckOptions, type FsckProblem } from '../core/fsck.js';
import { objectTypeFromPackType, parseCommitLinks } from '../core/object.js';
import type { ObjectId } from '../core/oid.js';
import { PackObjectType } from '../pack/format.js';
import { PackFile } from '../pack/packfile.js';
import { PackReader } from '../pack/reader.js';
import { PktLineReader } from '../protocol/pkt-line-reader.js';
import { flushPkt } from '../protocol/pkt-line.js';
import {
  encodeReportStatus,
  readReceivePackRequest,
  receivePackAdvertisement,
  type RefStatus,
  type RefUpdateCommand,
  type ReportStatus,
} from '../protocol/receive-pack.js';
import { Band, sideBandPacket } from '../protocol/side-band.js';
import { directoryFileConflict, isRefName, ZERO_ID } from '../core/refs.js';
import type { BlobStore } from '../store/backend.js';
import { checkConnectivity, linksComplete } from '../store/connectivity.js';
import type { ObjectIdSet } from '../pack/links.js';
import { FsBlobStore } from '../store/fs-backend.js';
import { peelTag } from '../store/peel.js';
import { receivePack, type StagedLayer } from '../store/receive.js';
import { refTargetProblem } from '../store/ref-rules.js';
import type { StoreRepository } from '../store/repository.js';
import { hookInput, runHook, type HookSettings } from './hooks.js';

/** Packs up to this size are read into memory for the connectivity check. */
const IN_MEMORY_CHECK = 64 * 1024 * 1024;

export function advertiseReceivePack(repo: StoreRepository): Buffer {
  return receivePackAdvertisement(repo.refs);
}

export interface ReceivePackContext {
  repo: StoreRepository;
  /** The repository's blob store (for hooks). */
  store: BlobStore;
  name: string;
  user?: string;
  /** Non-fast-forward updates and branch deletions are refused unless `mayForce` (repository setting). */
  denyNonFastForwards?: boolean;
  mayForce?: boolean;
  cacheDir: string;
  /** How hooks are run (the server's settings). */
  hooks: HookSettings;
  signal?: AbortSignal;
  /** Told the outcome of every push that gets as far as a report-status (for metrics). */
  onReport?: (report: ReportStatus) => void;
  /** How pushed objects are checked: Git's transfer checks with the repository's fsck settings (root.ts repositoryFsckOptions). */
  fsck: FsckOptions;
}

/** Problem lines shown to a pusher before the rest are counted. */
const MAX_FSCK_LINES = 50;

export interface Outcome {
  command: RefUpdateCommand;
  status: RefStatus;
}

/** Serves one push: the POST body in, the response body out (report-status, side-band framed when asked). */
export async function* serveReceivePack(ctx: ReceivePackContext, body: AsyncIterable<Uint8Array>): AsyncGenerator<Buffer> {
  const reader = new PktLineReader(body, { signal: ctx.signal });
  const request = await readReceivePackRequest(reader);
  if (request.commands.length === 0) return;
  const caps = request.capabilities;
  const sideBand = caps.has('side-band-64k');
  const quiet = caps.has('quiet');
  const messages: string[] = [];
  const say = (text: string) => {
    if (text !== '') messages.push(text);
  };
  const flushMessages = function* (): Generator<Buffer> {
    if (!sideBand) {
      messages.length = 0;
      return;
    }
    for (const text of messages.splice(0)) yield sideBandPacket(Band.Progress, text);
  };

  const outcomes: Outcome[] = request.commands.map((command) => ({ command, status: { name: command.name, ok: true } }));
  const refuse = (o: Outcome, reason: string) => {
    if (o.status.ok) o.status = { name: o.command.name, ok: false, reason };
  };
  const seen = new Set<string>();
  for (const o of outcomes) {
    const name = o.command.name;
    if (!name.startsWith('refs/') || !isRefName(name)) refuse(o, 'funny refname');
    else if (seen.has(name)) refuse(o, 'duplicate ref');
    seen.add(name);
    if (o.command.oldOid === ZERO_ID && o.command.newOid === ZERO_ID) refuse(o, 'nothing to do');
  }
  const needsPack = request.commands.some((c) => c.newOid !== ZERO_ID);
  const atomic = caps.has('atomic');

  let unpack = 'ok';
  let staged: StagedLayer | undefined;
  let packReader: PackReader | undefined;
  let lock;
  const repo = ctx.repo;
  try {
    try {
      lock = await repo.lock({ owner: `push by ${ctx.user ?? 'anonymous'}`, signal: ctx.signal });
    } catch (err) {
      if (!isPackferryError(err, ErrorCode.StoreLocked)) throw err;
      for (const o of outcomes) refuse(o, 'another push to this repository is in progress; try again');
      yield* respond();
      return;
    }
    await repo.refresh(ctx.signal);
    const current = new Map(repo.refs.map((r) => [r.name, r.oid]));
    for (const o of outcomes) {
      if ((current.get(o.command.name) ?? ZERO_ID) !== o.command.oldOid) refuse(o, 'stale info: the ref changed since it was read, fetch first');
    }
    for (const { outcome, other } of nameConflicts(outcomes, current)) refuse(outcome, `refname conflicts with ${other}`);
    const existing = repo.manifest.layers.length > 0 ? await repo.objects(ctx.signal) : undefined;
    if (needsPack) {
      try {
        staged = await receivePack(repo, reader.readRemainder(), { fixThin: true, signal: ctx.signal, fsck: ctx.fsck });
        sayProblems(staged.fsckWarnings);
        if (staged.entry.objects === 0) {
          await staged.remove();
          staged = undefined;
        }
      } catch (err) {
        // As Git's index-pack/unpack-objects --strict under receive-pack: the problems, then why it stopped.
        if (isPackferryError(err, ErrorCode.FsckFailed)) sayFsckFailure(err);
        unpack = isPackferryError(err) ? err.message.replace(/\n/g, ' ') : 'unpacker error';
        for (const o of outcomes) refuse(o, 'unpacker error');
        yield* respond();
        return;
      }
    }
    if (staged) {
      // A connectivity walk reads every new commit and tree: a pack of moderate size is read into memory
      // for it, unless the links collected while indexing are likely to make it unnecessary.
      const walk = !linksComplete(staged.indexed.links) && staged.entry.packBytes <= IN_MEMORY_CHECK;
      const file = walk ? PackFile.fromMemory(await readFile(staged.localPack), staged.localPack) : PackFile.open(staged.localPack);
      packReader = PackReader.fromIndex(file, staged.layer.index);
    }
    const read = async (oid: ObjectId) => {
      if (packReader && staged && staged.layer.index.find(oid) >= 0) return packReader.read(oid);
      return existing?.tryRead(oid);
    };
    // Every new tip's objects must be in the new layer or already stored: one walk
    // from all the tips together; only when it fails, a walk per ref tells which.
    const tips = outcomes.filter((o) => o.status.ok && o.command.newOid !== ZERO_ID);
    // (The links collected while indexing may spare the first walk; the per-ref ones are walks.)
    const connected = async (list: Outcome[], links?: ObjectIdSet[]): Promise<boolean> => {
      try {
        if (staged) await checkConnectivity([...new Set(list.map((o) => o.command.newOid))], staged.layer, packReader!, existing, ctx.signal, links);
        else if (list.some((o) => !existing?.has(o.command.newOid))) return false;
        return true;
      } catch (err) {
        if (!isPackferryError(err, ErrorCode.MissingObjects)) throw err;
        return false;
      }
    };
    if (tips.length > 0 && !(await connected(tips, staged?.indexed.links))) {
      for (const o of tips) if (!(await connected([o]))) refuse(o, 'missing necessary objects');
    }
    // Git's refs layer: a branch names a commit.
    for (const o of outcomes) {
      if (!o.status.ok || o.command.newOid === ZERO_ID) continue;
      const oid = o.command.newOid;
      const head = packReader && staged!.layer.index.find(oid) >= 0 ? packReader.readHeader(oid) : await existing?.tryReadHeader(oid);
      const problem = refTargetProblem(o.command.name, oid, head && objectTypeFromPackType(head.type));
      if (problem !== undefined) {
        say(`error: cannot update ref '${o.command.name}': ${problem}\n`);
        refuse(o, 'failed to update ref');
      }
    }
    if (ctx.denyNonFastForwards && !ctx.mayForce) {
      for (const o of outcomes) {
        if (!o.status.ok || o.command.oldOid === ZERO_ID || !o.command.name.startsWith('refs/heads/')) continue;
        if (o.command.newOid === ZERO_ID) refuse(o, 'deletion prohibited');
        else if (!(await isAncestor(o.command.oldOid, o.command.newOid, read))) refuse(o, 'non-fast-forward');
      }
    }
    if (atomic && outcomes.some((o) => !o.status.ok)) for (const o of outcomes) refuse(o, 'atomic push failure');

    const hookContext = {
      repository: ctx.name,
      user: ctx.user,
      pushOptions: request.pushOptions,
      gitDir: ctx.store instanceof FsBlobStore ? ctx.store.root : undefined,
      cacheDir: ctx.cacheDir,
      settings: ctx.hooks,
    };
    let accepted = outcomes.filter((o) => o.status.ok);
    if (accepted.length > 0) {
      const pre = await runHook(ctx.store, 'pre-receive', hookContext, [], hookInput(accepted.map((o) => o.command)));
      if (pre) {
        say(pre.output);
        if (pre.code !== 0) for (const o of accepted) refuse(o, 'pre-receive hook declined');
      }
      for (const o of outcomes.filter((x) => x.status.ok)) {
        const update = await runHook(ctx.store, 'update', hookContext, [o.command.name, o.command.oldOid, o.command.newOid], '');
        if (update) {
          say(update.output);
          if (update.code !== 0) refuse(o, 'hook declined');
        }
      }
      if (atomic && outcomes.some((o) => !o.status.ok)) for (const o of outcomes) refuse(o, 'atomic push failure');
    }
    yield* flushMessages();

    accepted = outcomes.filter((o) => o.status.ok);
    if (accepted.length > 0) {
      const next = new Map(repo.refs.map((r) => [r.name, r]));
      for (const { command: c } of accepted) {
        if (c.newOid === ZERO_ID) next.delete(c.name);
        else next.set(c.name, { name: c.name, oid: c.newOid, peeled: await peelTag(c.newOid, read) });
      }
      const addsObjects = staged !== undefined && accepted.some((o) => o.command.newOid !== ZERO_ID);
      if (addsObjects) await staged!.stored;
      await repo.commit({ layer: addsObjects ? staged!.entry : undefined, refs: [...next.values()] }, ctx.signal);
      if (!addsObjects && staged) await staged.remove();
      staged = undefined; // committed (or removed): no longer ours to clean up
      await lock.release().catch(() => {});
      lock = undefined;
      const post = await runHook(ctx.store, 'post-receive', hookContext, [], hookInput(accepted.map((o) => o.command)));
      if (post) say(post.output);
    }
    if (!quiet) say('');
    yield* respond();
  } finally {
    packReader?.close();
    if (staged) await staged.remove().catch(() => {});
    await lock?.release().catch(() => {});
  }

  function sayProblems(problems: readonly FsckProblem[], more = 0): void {
    for (const p of problems.slice(0, MAX_FSCK_LINES)) say(`${formatFsckProblem(p)}\n`);
    const left = Math.max(0, problems.length - MAX_FSCK_LINES) + more;
    const grade = more > 0 || problems.some((p) => p.severity === 'error') ? 'error' : 'warning';
    if (left > 0) say(`${grade}: ... and ${left} more ${left === 1 ? 'problem' : 'problems'}\n`);
  }

  function sayFsckFailure(err: PackferryError): void {
    const problems = (err.details.problems ?? []) as FsckProblem[];
    sayProblems(problems, Number(err.details.droppedErrors ?? 0));
    // Git names the step that failed: a single object's check, or the check of the blobs trees name.
    const perObject = problems.some((p) => p.severity === 'error' && p.position !== undefined);
    say(`fatal: ${perObject ? 'fsck error in packed object' : 'fsck error in pack objects'}\n`);
  }

  function* respond(): Generator<Buffer> {
    yield* flushMessages();
    const status: ReportStatus = { unpack, refs: outcomes.map((o) => o.status) };
    ctx.onReport?.(status);
    const report = encodeReportStatus(status);
    if (sideBand) {
      yield sideBandPacket(Band.Data, report);
      yield flushPkt;
    } else {
      yield report;
    }
  }
}

/**
 * Commands that would leave a ref beside a directory of refs of the same
 * name (refs/heads/a and refs/heads/a/b; "refs/heads" and anything under
 * it), which Git cannot store: a clone of the repository would fail. Checked
 * against the refs there would be if every command still accepted went
 * through; each such command is paired with a ref it conflicts with.
 */
export function nameConflicts(outcomes: Outcome[], current: Map<string, string>): { outcome: Outcome; other: string }[] {
  const kept = new Set(current.keys());
  const added = new Set<string>();
  for (const o of outcomes) {
    if (!o.status.ok) continue;
    if (o.command.newOid === ZERO_ID) kept.delete(o.command.name);
    else if (!kept.has(o.command.name)) added.add(o.command.name);
  }
  // The refs that stay are named first: they are what the pusher has to fetch or delete.
  const sets = [kept, added].map((names) => ({ names, sorted: [...names].sort() }));
  const conflicts: { outcome: Outcome; other: string }[] = [];
  for (const o of outcomes) {
    if (!o.status.ok || o.command.newOid === ZERO_ID) continue;
    for (const set of sets) {
      const other = directoryFileConflict(o.command.name, set.names, set.sorted);
      if (other !== undefined) {
        conflicts.push({ outcome: o, other });
        break;
      }
    }
  }
  return conflicts;
}


/** Is `ancestor` reachable from `descendant`? A walk over commit parents (bounded). */
async function isAncestor(
  ancestor: ObjectId,
  descendant: ObjectId,
  read: (oid: ObjectId) => Promise<{ type: number; data: Buffer } | undefined>,
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

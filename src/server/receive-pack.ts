// git-receive-pack over a packferry store, for smart HTTP (gitprotocol-pack
// "Pushing Data", gitprotocol-http "Smart Service git-receive-pack"). The
// pack streams into a new layer (indexed as it arrives, thin packs completed
// from the store, every object checked as Git's receive.fsckObjects checks
// it, with the repository's fsck levels) while nothing is held; then the
// commands go through the store's one ref transaction
// (store/ref-transaction.ts: names, connectivity, branches naming commits,
// fast-forwards, then the hooks, then a compare-and-swap of milliseconds
// against the state committed at that moment). A push that trickles its
// pack holds up no other push; of two pushes racing for a branch one wins and
// the other is refused as Git refuses it ("failed to update ref").
import { ErrorCode, isPackferryError, type PackferryError } from '../core/errors.js';
import { formatFsckProblem, type FsckOptions, type FsckProblem } from '../core/fsck.js';
import { ZERO_ID } from '../core/refs.js';
import { PktLineReader } from '../protocol/pkt-line-reader.js';
import { flushPkt } from '../protocol/pkt-line.js';
import { encodeReportStatus, readReceivePackRequest, receivePackAdvertisement, type RefUpdateCommand, type ReportStatus } from '../protocol/receive-pack.js';
import { Band, sideBandPacket } from '../protocol/side-band.js';
import { localFiles, type BlobStore } from '../store/backend.js';
import { receivePack, type StagedLayer } from '../store/receive.js';
import { updateRefs, type RefEdit, type RefOutcome } from '../store/ref-transaction.js';
import type { StoreRepository } from '../store/repository.js';
import { hookInput, runHook, type HookSettings } from './hooks.js';

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
  const commands = request.commands;
  let unpack = 'ok';
  let outcomes: RefOutcome[] = commands.map((c) => ({ name: c.name, ok: true }));
  const repo = ctx.repo;

  let staged: StagedLayer | undefined;
  if (commands.some((c) => c.newOid !== ZERO_ID)) {
    try {
      staged = await receivePack(repo, reader.readRemainder(), { fixThin: true, signal: ctx.signal, fsck: ctx.fsck });
      sayProblems(staged.fsckWarnings);
      if (staged.entry.objects === 0) {
        await staged.remove();
        staged = undefined;
      }
    } catch (err) {
      if (isPackferryError(err, ErrorCode.Aborted) || ctx.signal?.aborted) throw err;
      // As Git's index-pack/unpack-objects --strict under receive-pack: the problems, then why it stopped.
      if (isPackferryError(err, ErrorCode.FsckFailed)) sayFsckFailure(err);
      unpack = isPackferryError(err) ? err.message.replace(/\n/g, ' ') : 'unpacker error';
      outcomes = commands.map((c) => ({ name: c.name, ok: false, reason: 'unpacker error' }));
      yield* respond();
      return;
    }
  }

  const hookContext = {
    repository: ctx.name,
    user: ctx.user,
    pushOptions: request.pushOptions,
    gitDir: localFiles(ctx.store)?.root,
    cacheDir: ctx.cacheDir,
    settings: ctx.hooks,
  };
  const asCommand = (e: RefEdit): RefUpdateCommand => ({ name: e.name, oldOid: e.old ?? ZERO_ID, newOid: e.new });
  const denyNonFastForwards = ctx.denyNonFastForwards === true && ctx.mayForce !== true;
  const result = await updateRefs(
    repo,
    {
      layer: staged,
      edits: commands.map((c) => ({
        name: c.name,
        old: c.oldOid,
        new: c.newOid,
        fastForwardOnly: denyNonFastForwards && c.oldOid !== ZERO_ID && c.name.startsWith('refs/heads/'),
      })),
      atomic: caps.has('atomic'),
    },
    {
      signal: ctx.signal,
      // Git's order: pre-receive for the whole push, then the update hook for each ref, then the ref transaction.
      beforeCommit: async ({ accepted }) => {
        const refusals: { name: string; reason: string }[] = [];
        const pre = await runHook(ctx.store, 'pre-receive', hookContext, [], hookInput(accepted.map(asCommand)));
        if (pre) {
          say(pre.output);
          if (pre.code !== 0) return accepted.map((e) => ({ name: e.name, reason: 'pre-receive hook declined' }));
        }
        for (const e of accepted) {
          const c = asCommand(e);
          const update = await runHook(ctx.store, 'update', hookContext, [c.name, c.oldOid, c.newOid], '');
          if (update) {
            say(update.output);
            if (update.code !== 0) refusals.push({ name: e.name, reason: 'hook declined' });
          }
        }
        return refusals;
      },
    },
  );
  outcomes = result.outcomes;
  // Git's error lines beside the refusals that have one (rp_error: "cannot lock ref ...").
  for (const o of outcomes) if (o.message !== undefined) say(`error: ${o.message}\n`);
  yield* flushMessages();
  if (result.committed) {
    const accepted = commands.filter((_c, i) => outcomes[i].ok);
    const post = await runHook(ctx.store, 'post-receive', hookContext, [], hookInput(accepted));
    if (post) say(post.output);
  }
  if (!quiet) say('');
  yield* respond();

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
    const status: ReportStatus = { unpack, refs: outcomes.map((o) => (o.ok ? { name: o.name, ok: true } : { name: o.name, ok: false, reason: o.reason })) };
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

// git-upload-pack over a packferry store, for the stateless transport of
// smart HTTP (gitprotocol-http(5), "Smart Clients", "Smart Service
// git-upload-pack"): one function for the info/refs advertisement, one for a
// POST's response. The HTTP front end (src/server/http.ts) owns the
// transport: the "# service=git-upload-pack" preamble, content types, gzip
// request bodies, status codes.
//
// - protocol v2 (gitprotocol-v2(5)): the capability advertisement; "ls-refs"
//   (ref-prefix, symrefs, peel, unborn); "fetch" (want, have, done,
//   thin-pack, ofs-delta, include-tag, no-progress, wait-for-done, shallow,
//   deepen, deepen-since, deepen-not, deepen-relative, filter), answering
//   "acknowledgments" (ACK per common have, NAK when none, "ready" when a
//   good pack can be made) and, once done or ready, "shallow-info" and
//   "packfile";
// - protocol v0/v1 (gitprotocol-pack(5), "Reference Discovery", "Packfile
//   Negotiation", "Shallow Clones", "Packfile Data"): the ref advertisement,
//   and each stateless round: the shallow list, ACK <oid> common/ready or
//   continue lines by multi_ack_detailed or multi_ack (or the single ACK of
//   neither), NAK at the end of a round, and after "done" (or "ready" with
//   no-done) the final "ACK <oid>" or NAK and the pack.
//
// Any object in the store may be wanted by id (allow-tip-sha1-in-want,
// allow-reachable-sha1-in-want, and more: partial clones fetch missing blobs
// that way); a want the store lacks is "not our ref".
//
// Errors. A bad request (ERR_PROTOCOL, ERR_LIMIT_EXCEEDED, ERR_PKT_LINE_*),
// an unknown want (ERR_NOT_FOUND) or a store failure found before the first
// byte of the response is thrown by the first `next()` of the response
// iterator: the caller chooses an HTTP status or a 200 with
// `uploadPackErrorPacket(err)`, which Git prints as "remote error: ...".
// Once the response has started, an error is told in-band, as Git does it —
// an "ERR" pkt-line before the pack, a band-3 message inside a multiplexed
// pack — then passed to `onError`, and the response ends. An abort (the
// signal) ends it with ERR_ABORTED thrown, without a message.
import { ErrorCode, isPackferryError, PackferryError } from '../core/errors.js';
import type { ObjectId } from '../core/oid.js';
import { flushPkt, delimPkt, pktLineText } from '../protocol/pkt-line.js';
import { Band, sideBandPacket, type SideBandMode } from '../protocol/side-band.js';
import {
  encodeAcknowledgments,
  encodeAdvertisementV0,
  encodeCapabilityAdvertisementV2,
  encodeErrorPacket,
  encodeLsRefs,
  encodeShallowInfo,
  encodeShallowLines,
  isDeepening,
  parseCommandRequest,
  parseFetchArgs,
  parseLsRefsArgs,
  parseUploadPackRequestV0,
  readRequestPackets,
  uploadPackCapabilitiesV0,
  uploadPackCapabilitiesV2,
  uploadPackLimits,
  type FetchArgs,
  type UploadPackLimits,
  type UploadPackRequestV0,
} from '../protocol/upload-pack-server.js';
import type { RefEntry } from '../store/layout.js';
import type { StoreRepository } from '../store/repository.js';
import { CommitGraph, Negotiation, planShallow, type ShallowPlan } from './upload-pack-graph.js';
import { packSection, type PackFraming, type PackRequest, type PackSectionOptions } from './upload-pack-pack.js';

export interface AdvertiseUploadPackOptions {
  /** From the Git-Protocol header of the GET (version=2), or the service's default 0. */
  protocolVersion: 0 | 1 | 2;
}

export interface ServeUploadPackOptions {
  /** The protocol of the POST (Git-Protocol header); 1 is served as 0. */
  protocolVersion: 0 | 1 | 2;
  /** Aborting (e.g. the client went away) stops the walk and the pack. */
  signal?: AbortSignal;
  /** Bounds on the request (see DEFAULT_UPLOAD_PACK_LIMITS). */
  limits?: Partial<UploadPackLimits>;
  /** Receives an error that was reported to the client in-band (after the response started), for logs. */
  onError?: (err: unknown) => void;
  /** Longest silence while objects are being found, when there is no progress to show (default 5000 ms). */
  keepaliveMs?: number;
  /** How often progress is shown while objects are being found (default 1000 ms). */
  progressMs?: number;
}

/** HEAD as the store has it: the ref it names, and that ref's value (none: unborn). */
function headOf(repo: StoreRepository): { target: string; oid?: ObjectId } {
  return { target: repo.head, oid: repo.refValue(repo.head) };
}

function sortedRefs(repo: StoreRepository): RefEntry[] {
  return [...repo.refs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * The body of GET info/refs?service=git-upload-pack after the "# service"
 * preamble: for v2 the capability advertisement, for v0/v1 the refs with
 * their capabilities (and "version 1" first for v1).
 */
export function advertiseUploadPack(repo: StoreRepository, options: AdvertiseUploadPackOptions): Buffer {
  if (options.protocolVersion === 2) return encodeCapabilityAdvertisementV2(uploadPackCapabilitiesV2());
  const head = headOf(repo);
  const caps = uploadPackCapabilitiesV0(head.oid === undefined ? undefined : head.target);
  return encodeAdvertisementV0(sortedRefs(repo), head, caps, options.protocolVersion);
}

/** The "ERR <message>" pkt-line for an error (e.g. one thrown before the response started). */
export function uploadPackErrorPacket(err: unknown): Buffer {
  return encodeErrorPacket(errorMessage(err));
}

function errorMessage(err: unknown): string {
  if (isPackferryError(err)) return err.message;
  return `upload-pack: internal error${err instanceof Error ? `: ${err.message}` : ''}`;
}

/** Where the response is, for reporting an error in-band. */
interface ResponseState {
  started: boolean;
  /** In a multiplexed pack (band 3 for errors), in a bare pack (no way to tell), or among pkt-lines ("ERR"). */
  stage: 'lines' | SideBandMode | 'raw';
}

/**
 * The response to one POST to git-upload-pack. See the module header for
 * how errors come out.
 */
export async function* serveUploadPack(
  repo: StoreRepository,
  request: AsyncIterable<Uint8Array>,
  options: ServeUploadPackOptions,
): AsyncGenerator<Buffer, void, undefined> {
  const state: ResponseState = { started: false, stage: 'lines' };
  try {
    for await (const chunk of respond(repo, request, options, state)) {
      state.started = true;
      yield chunk;
    }
  } catch (err) {
    if (!state.started || isPackferryError(err, ErrorCode.Aborted) || options.signal?.aborted) throw err;
    options.onError?.(err);
    if (state.stage === 'lines') yield encodeErrorPacket(errorMessage(err));
    else if (state.stage !== 'raw') yield sideBandPacket(Band.Error, `${errorMessage(err)}\n`, state.stage);
  }
}

async function* respond(
  repo: StoreRepository,
  request: AsyncIterable<Uint8Array>,
  options: ServeUploadPackOptions,
  state: ResponseState,
): AsyncGenerator<Buffer, void, undefined> {
  const limits = uploadPackLimits(options.limits);
  const packets = await readRequestPackets(request, { maxBytes: limits.maxRequestBytes, signal: options.signal });
  if (options.protocolVersion === 2) {
    const command = parseCommandRequest(packets, limits);
    if (command === undefined) return;
    if (command.command === 'ls-refs') {
      yield encodeLsRefs(sortedRefs(repo), headOf(repo), parseLsRefsArgs(command.args, limits));
      return;
    }
    if (command.command === 'fetch') {
      yield* fetchV2(repo, parseFetchArgs(command.args, limits), options, state);
      return;
    }
    throw new PackferryError(ErrorCode.Protocol, `upload-pack: invalid command ${JSON.stringify(command.command.slice(0, 100))}`);
  }
  yield* fetchV0(repo, parseUploadPackRequestV0(packets, limits), options, state);
}

/** Every want must be in the store (Git: "not our ref"). */
function checkWants(graph: CommitGraph, wants: readonly ObjectId[]): void {
  for (const oid of wants) {
    if (!graph.has(oid)) {
      throw new PackferryError(ErrorCode.NotFound, `upload-pack: not our ref ${oid}`, { details: { oid } });
    }
  }
}

function packOptions(options: ServeUploadPackOptions): PackSectionOptions {
  return { signal: options.signal, keepaliveMs: options.keepaliveMs, progressMs: options.progressMs };
}

async function* fetchV2(
  repo: StoreRepository,
  args: FetchArgs,
  options: ServeUploadPackOptions,
  state: ResponseState,
): AsyncGenerator<Buffer, void, undefined> {
  // No wants (and no wait-for-done): the client asks for nothing (Git answers nothing).
  if (args.wants.length === 0 && !args.waitForDone) return;
  const objects = await repo.objects(options.signal);
  const graph = new CommitGraph(objects, options.signal);
  checkWants(graph, args.wants);
  const negotiation = new Negotiation(graph, args.wants);
  const common: ObjectId[] = [];
  for (const have of args.haves) {
    if ((await negotiation.have(have)) === 'common') common.push(have);
  }
  let head: Buffer[] = [];
  if (!args.done) {
    const ready = !args.waitForDone && args.wants.length > 0 && (await negotiation.okToGiveUp());
    head.push(encodeAcknowledgments(common, ready));
    if (!ready) {
      yield Buffer.concat([...head, flushPkt]);
      return;
    }
    head.push(delimPkt);
  }
  const refs = sortedRefs(repo);
  const sendShallowInfo = isDeepening(args.deepen) || args.deepen.shallows.length > 0;
  let shallow: ShallowPlan | undefined;
  if (sendShallowInfo) {
    shallow = await planShallow(graph, args.wants, args.deepen, refs, headOf(repo));
    // Git sends the section when it deepens, or when the client named shallow commits it has.
    if (isDeepening(args.deepen) || shallow.clientShallows.length > 0) head.push(encodeShallowInfo(shallow.shallow, shallow.unshallow));
  }
  head.push(pktLineText('packfile'));
  yield Buffer.concat(head);
  head = [];
  state.stage = 'side-band-64k';
  const pack: PackRequest = {
    wants: shallow ? [...args.wants, ...shallow.extraWants] : args.wants,
    haves: negotiation.haveObjs,
    shallow,
    filter: args.filter,
    thin: args.thinPack,
    ofsDelta: args.ofsDelta,
    includeTag: args.includeTag,
    progress: !args.noProgress,
    framing: 'side-band-64k',
  };
  yield* packSection(objects, refs, pack, packOptions(options));
}

async function* fetchV0(
  repo: StoreRepository,
  req: UploadPackRequestV0,
  options: ServeUploadPackOptions,
  state: ResponseState,
): AsyncGenerator<Buffer, void, undefined> {
  if (req.wants.length === 0) return;
  const objects = await repo.objects(options.signal);
  const graph = new CommitGraph(objects, options.signal);
  checkWants(graph, req.wants);
  const caps = req.capabilities;
  const refs = sortedRefs(repo);
  const out: Buffer[] = [];

  // The shallow list comes first in every round (receive_needs: send_shallow_list, then a flush).
  let shallow: ShallowPlan | undefined;
  if (isDeepening(req.deepen) || req.deepen.shallows.length > 0) {
    shallow = await planShallow(graph, req.wants, req.deepen, refs, headOf(repo));
    if (isDeepening(req.deepen)) out.push(...encodeShallowLines(shallow.shallow, shallow.unshallow), flushPkt);
  }
  const negotiationPart = req.negotiation;
  if (negotiationPart === undefined) {
    // The client only asked for the shallow list (or stopped after its wants).
    if (out.length > 0) yield Buffer.concat(out);
    return;
  }

  // get_common_commits
  const multiAck = caps.has('multi_ack_detailed') ? 'detailed' : caps.has('multi_ack') ? 'plain' : 'none';
  const noDone = caps.has('no-done');
  const negotiation = new Negotiation(graph, req.wants);
  let lastCommon: ObjectId | undefined;
  let gotCommon = false;
  let gotOther = false;
  let sentReady = false;
  let common = 0;
  for (const have of negotiationPart.haves) {
    if ((await negotiation.have(have)) === 'missing') {
      gotOther = true;
      if (multiAck !== 'none' && (await negotiation.okToGiveUp())) {
        if (multiAck === 'detailed') {
          sentReady = true;
          out.push(pktLineText(`ACK ${have} ready`));
        } else out.push(pktLineText(`ACK ${have} continue`));
      }
      continue;
    }
    gotCommon = true;
    lastCommon = have;
    common = negotiation.haveObjs.length;
    if (multiAck === 'detailed') out.push(pktLineText(`ACK ${have} common`));
    else if (multiAck === 'plain') out.push(pktLineText(`ACK ${have} continue`));
    else if (common === 1) out.push(pktLineText(`ACK ${have}`));
  }
  if (negotiationPart.end === 'flush') {
    if (multiAck === 'detailed' && gotCommon && !gotOther && (await negotiation.okToGiveUp())) {
      sentReady = true;
      out.push(pktLineText(`ACK ${lastCommon!} ready`));
    }
    if (negotiation.haveObjs.length === 0 || multiAck !== 'none') out.push(pktLineText('NAK'));
    if (!(noDone && sentReady)) {
      // The end of this round: the client sends more haves, or "done", in its next request.
      yield Buffer.concat(out);
      return;
    }
    out.push(pktLineText(`ACK ${lastCommon!}`));
  } else if (negotiation.haveObjs.length > 0) {
    if (multiAck !== 'none') out.push(pktLineText(`ACK ${lastCommon!}`));
  } else {
    out.push(pktLineText('NAK'));
  }

  const framing: PackFraming = caps.has('side-band-64k') ? 'side-band-64k' : caps.has('side-band') ? 'side-band' : 'raw';
  yield Buffer.concat(out);
  state.stage = framing;
  const pack: PackRequest = {
    wants: shallow ? [...req.wants, ...shallow.extraWants] : req.wants,
    haves: negotiation.haveObjs,
    shallow,
    filter: req.filter,
    thin: caps.has('thin-pack'),
    ofsDelta: caps.has('ofs-delta'),
    includeTag: caps.has('include-tag'),
    progress: !caps.has('no-progress'),
    framing,
  };
  yield* packSection(objects, refs, pack, packOptions(options));
}

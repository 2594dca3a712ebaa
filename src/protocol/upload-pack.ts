// The client side of upload-pack: what to send and how to read the answers.
// - protocol v2 (gitprotocol-v2, "ls-refs" and "fetch"): each command is a
//   self-contained request: "command=<name>", capabilities, delim, arguments,
//   flush;
// - protocol v0/v1 (gitprotocol-pack, "Packfile Negotiation") with
//   multi_ack_detailed: want lines (the first carries the capabilities), a
//   flush, have lines, "done"; the server ACKs common objects as it reads
//   them and ends with "ACK <last common>" or "NAK", then the pack.
// Pure: builders return bytes, readers consume a PktLineReader they are given.
import { PackferryError, ErrorCode } from '../core/errors.js';
import type { ObjectId } from '../core/oid.js';
import { checkOid, packetText, type AdvertisedRef } from './advertisement.js';
import { AGENT, type Capabilities } from './capabilities.js';
import { delimPkt, flushPkt, pktLineText } from './pkt-line.js';
import type { PktLineReader } from './pkt-line-reader.js';

function protocolError(message: string): PackferryError {
  return new PackferryError(ErrorCode.Protocol, `protocol error: ${message}`);
}

/** "command=<name>" with our agent (and the object format when the server names one). */
function commandHeader(command: string, serverCaps: Capabilities): Buffer[] {
  const parts = [pktLineText(`command=${command}`)];
  if (serverCaps.has('agent')) parts.push(pktLineText(`agent=${AGENT}`));
  const format = serverCaps.get('object-format');
  if (format !== undefined) parts.push(pktLineText(`object-format=${format}`));
  return parts;
}

export interface LsRefsOptions {
  /** Only refs starting with one of these (an optimisation; the caller still filters). */
  prefixes?: string[];
  symrefs?: boolean;
  peel?: boolean;
  unborn?: boolean;
}

export function lsRefsRequest(serverCaps: Capabilities, options: LsRefsOptions = {}): Buffer {
  const parts = commandHeader('ls-refs', serverCaps);
  parts.push(delimPkt);
  if (options.peel !== false) parts.push(pktLineText('peel'));
  if (options.symrefs !== false) parts.push(pktLineText('symrefs'));
  if (options.unborn && serverCaps.hasFeature('ls-refs', 'unborn')) parts.push(pktLineText('unborn'));
  for (const prefix of options.prefixes ?? []) parts.push(pktLineText(`ref-prefix ${prefix}`));
  parts.push(flushPkt);
  return Buffer.concat(parts);
}

export interface LsRefsResult {
  refs: AdvertisedRef[];
  /** Set when HEAD is unborn (the `unborn` feature): the branch HEAD names. */
  unbornHead?: string;
}

/** Reads an ls-refs response up to its flush. */
export async function readLsRefs(reader: PktLineReader): Promise<LsRefsResult> {
  const refs: AdvertisedRef[] = [];
  let unbornHead: string | undefined;
  for (;;) {
    const packet = await reader.read();
    if (packet.type === 'flush') return { refs, unbornHead };
    if (packet.type !== 'data') throw protocolError(`unexpected ${packet.type} packet in ls-refs output`);
    const [id, name, ...attributes] = packetText(packet.data).split(' ');
    if (name === undefined || name === '') throw protocolError('ls-refs line without a ref name');
    let symrefTarget: string | undefined;
    let peeled: ObjectId | undefined;
    for (const attr of attributes) {
      if (attr.startsWith('symref-target:')) symrefTarget = attr.slice(14);
      else if (attr.startsWith('peeled:')) peeled = checkOid(attr.slice(7), 'ls-refs peeled');
    }
    if (id === 'unborn') {
      if (name === 'HEAD') unbornHead = symrefTarget;
      continue;
    }
    refs.push({ name, oid: checkOid(id, 'ls-refs'), peeled, symrefTarget });
  }
}

export interface FetchRequest {
  wants: ObjectId[];
  haves: ObjectId[];
  done: boolean;
  thinPack?: boolean;
  ofsDelta?: boolean;
  includeTag?: boolean;
  noProgress?: boolean;
  /** Partial-clone filter spec ("blob:none", "tree:0"), when the server supports filters. */
  filter?: string;
}

/** A v2 fetch command. Options the server does not support must already be left out by the caller. */
export function fetchRequestV2(serverCaps: Capabilities, req: FetchRequest): Buffer {
  const parts = commandHeader('fetch', serverCaps);
  parts.push(delimPkt);
  if (req.thinPack) parts.push(pktLineText('thin-pack'));
  if (req.ofsDelta) parts.push(pktLineText('ofs-delta'));
  if (req.includeTag) parts.push(pktLineText('include-tag'));
  if (req.noProgress) parts.push(pktLineText('no-progress'));
  if (req.filter !== undefined) parts.push(pktLineText(`filter ${req.filter}`));
  for (const oid of req.wants) parts.push(pktLineText(`want ${oid}`));
  for (const oid of req.haves) parts.push(pktLineText(`have ${oid}`));
  if (req.done) parts.push(pktLineText('done'));
  parts.push(flushPkt);
  return Buffer.concat(parts);
}

export interface Acknowledgments {
  common: ObjectId[];
  ready: boolean;
  /** A packfile section follows (after a delim) in the same response. */
  packfileFollows: boolean;
}

/**
 * Reads a v2 fetch response up to the start of the packfile section's data.
 * Returns the acknowledgments (empty when the request said "done") and
 * whether the pack follows; when it does, the side-band packets of the
 * packfile section are next on `reader`. Sections packferry does not ask for
 * (shallow-info, wanted-refs, packfile-uris) are an error.
 */
export async function readFetchResponseV2(reader: PktLineReader): Promise<Acknowledgments> {
  const acks: Acknowledgments = { common: [], ready: false, packfileFollows: false };
  let packet = await reader.read();
  if (packet.type !== 'data') throw protocolError(`unexpected ${packet.type} packet at the start of a fetch response`);
  let section = packetText(packet.data);
  if (section === 'acknowledgments') {
    for (;;) {
      packet = await reader.read();
      if (packet.type === 'flush') return acks; // negotiation goes on
      if (packet.type === 'delim') break;
      if (packet.type !== 'data') throw protocolError(`unexpected ${packet.type} packet in acknowledgments`);
      const line = packetText(packet.data);
      if (line === 'NAK') continue;
      if (line === 'ready') acks.ready = true;
      else if (line.startsWith('ACK ')) acks.common.push(checkOid(line.slice(4), 'ACK'));
      else throw protocolError(`unexpected line in acknowledgments: ${JSON.stringify(line.slice(0, 80))}`);
    }
    packet = await reader.read();
    if (packet.type !== 'data') throw protocolError(`unexpected ${packet.type} packet after acknowledgments`);
    section = packetText(packet.data);
  }
  if (section !== 'packfile') throw protocolError(`unexpected section ${JSON.stringify(section.slice(0, 40))} in fetch response`);
  acks.packfileFollows = true;
  return acks;
}

/** The v0/v1 capabilities packferry asks for, among those the server offers. */
export function chooseUploadPackCapsV0(serverCaps: Capabilities, wanted: string[]): string[] {
  const chosen = wanted.filter((c) => serverCaps.has(c));
  if (serverCaps.has('agent')) chosen.push(`agent=${AGENT}`);
  const format = serverCaps.get('object-format');
  if (format !== undefined) chosen.push(`object-format=${format}`);
  return chosen;
}

/**
 * A v0/v1 fetch request in one piece: wants (capabilities on the first),
 * flush, every have, done. Valid on both stateful and stateless (HTTP)
 * connections.
 */
export function fetchRequestV0(req: FetchRequest, caps: string[]): Buffer {
  if (req.wants.length === 0) throw new PackferryError(ErrorCode.Internal, 'internal error: a fetch needs at least one want');
  const parts: Buffer[] = [];
  req.wants.forEach((oid, i) => parts.push(pktLineText(i === 0 ? `want ${oid} ${caps.join(' ')}` : `want ${oid}`)));
  if (req.filter !== undefined) parts.push(pktLineText(`filter ${req.filter}`));
  parts.push(flushPkt);
  for (const oid of req.haves) parts.push(pktLineText(`have ${oid}`));
  parts.push(pktLineText('done'));
  return Buffer.concat(parts);
}

/**
 * Reads the v0 negotiation answer to `fetchRequestV0` (multi_ack_detailed:
 * "ACK <id> common|ready" lines, then "ACK <id>" or "NAK"), leaving the
 * reader at the start of the pack.
 */
export async function readFetchResponseV0(reader: PktLineReader): Promise<ObjectId[]> {
  const common: ObjectId[] = [];
  for (;;) {
    const packet = await reader.read();
    if (packet.type !== 'data') throw protocolError(`unexpected ${packet.type} packet in negotiation`);
    const line = packetText(packet.data);
    if (line === 'NAK') return common;
    if (!line.startsWith('ACK ')) {
      if (line.startsWith('ERR ')) throw new PackferryError(ErrorCode.RemoteError, `remote error: ${line.slice(4)}`);
      throw protocolError(`unexpected line in negotiation: ${JSON.stringify(line.slice(0, 80))}`);
    }
    const [oid, status] = line.slice(4).split(' ');
    checkOid(oid, 'ACK');
    if (status === undefined) return [...common, oid];
    if (status === 'common' || status === 'ready' || status === 'continue') common.push(oid);
    else throw protocolError(`unknown ACK status ${JSON.stringify(status)}`);
  }
}

// The server side of upload-pack, as pure request parsers and response
// encoders (the store-backed service is src/server/upload-pack.ts):
// - gitprotocol-pack(5), "Reference Discovery" (the v0/v1 advertisement) and
//   "Packfile Negotiation" (want/shallow/deepen/filter lines, then have lines
//   ending in a flush or "done"), over the stateless transport of
//   gitprotocol-http(5), "Smart Service git-upload-pack": every POST holds the
//   whole state (the wants again, the common haves again), so one request is
//   parsed whole;
// - gitprotocol-v2(5), "Capability Advertisement", "Command Request" (command,
//   capability lines, delim, arguments, flush), "ls-refs" and "fetch";
// - gitprotocol-capabilities(5) for what the client may ask for in v0, and
//   the filter specs of git-rev-list(1) "--filter" (list-objects-filter-options.c).
//
// Behaviour follows Git's upload-pack.c, serve.c and ls-refs.c (2.39): the
// same argument names, the same refusals ("expected flush after fetch
// arguments", "unexpected line", Invalid deepen, ...), but every refusal is a
// PackferryError (ERR_PROTOCOL, or ERR_LIMIT_EXCEEDED for a named limit of
// UploadPackLimits) instead of a dying process; the caller turns it into an
// HTTP status or an "ERR" pkt-line (uploadPackErrorPacket).
import { ZERO_ID } from '../core/refs.js';
import { ErrorCode, PackferryError } from '../core/errors.js';
import type { ObjectId } from '../core/oid.js';
import { AGENT, Capabilities } from './capabilities.js';
import { lineText, pktLine, pktLineText, flushPkt, delimPkt, DELIM, FLUSH, LARGE_PACKET_DATA_MAX, RESPONSE_END, type Packet } from './pkt-line.js';
import { PktLineReader } from './pkt-line-reader.js';

// ---------------------------------------------------------------------------
// Limits

/** Named bounds on one upload-pack request (all input is hostile). */
export interface UploadPackLimits {
  /** Bytes of one request body, pkt-line headers included. */
  maxRequestBytes: number;
  /** Distinct "want" lines. */
  maxWants: number;
  /** "have" lines. */
  maxHaves: number;
  /** "shallow" lines. */
  maxShallows: number;
  /** "deepen-not" lines. */
  maxDeepenNots: number;
  /**
   * "ref-prefix" lines of ls-refs. Beyond this many, Git's ls-refs ignores
   * them all and lists every ref (TOO_MANY_PREFIXES, 65536); so do we.
   */
  maxRefPrefixes: number;
  /** Capability lines of a v2 command request. */
  maxCapabilityLines: number;
  /**
   * pkt-lines of one request, flushes and delims included: bounds the
   * memory a request holds before it is parsed (enough for maxWants wants
   * and maxHaves haves together).
   */
  maxRequestLines: number;
}

export const DEFAULT_UPLOAD_PACK_LIMITS: Readonly<UploadPackLimits> = Object.freeze({
  maxRequestBytes: 32 * 1024 * 1024,
  maxWants: 100_000,
  maxHaves: 100_000,
  maxShallows: 100_000,
  maxDeepenNots: 1_000,
  maxRefPrefixes: 65_536,
  maxCapabilityLines: 1_000,
  maxRequestLines: 250_000,
});

export function uploadPackLimits(overrides?: Partial<UploadPackLimits>): UploadPackLimits {
  return { ...DEFAULT_UPLOAD_PACK_LIMITS, ...overrides };
}

function limitError(name: keyof UploadPackLimits, limit: number): PackferryError {
  return new PackferryError(ErrorCode.LimitExceeded, `upload-pack: request over the limit ${name} (${limit})`, {
    details: { limit: name, value: limit },
  });
}

function protocolError(message: string, details: Record<string, unknown> = {}): PackferryError {
  return new PackferryError(ErrorCode.Protocol, `upload-pack: ${message}`, { details });
}

/** A line for error messages: printable, at most 100 characters. */
function show(line: string): string {
  return JSON.stringify(line.length > 100 ? `${line.slice(0, 100)}...` : line);
}

// ---------------------------------------------------------------------------
// Reading a request

/**
 * Packets read from one request, kept compactly: every data payload in one
 * buffer, and per packet its type and where its payload lies. A request of
 * n lines costs its own bytes plus 9 bytes a line, not an object per line;
 * `at(i)` makes each packet when it is parsed.
 */
export class RequestPackets {
  private data = new Uint8Array(4096);
  private used = 0;
  private ends = new Int32Array(256);
  private types = new Uint8Array(256);
  length = 0;

  push(packet: Packet): void {
    if (this.length === this.types.length) {
      const ends = new Int32Array(this.length * 2);
      ends.set(this.ends);
      this.ends = ends;
      const types = new Uint8Array(this.length * 2);
      types.set(this.types);
      this.types = types;
    }
    if (packet.type === 'data') {
      const need = this.used + packet.data.length;
      if (need > this.data.length) {
        const grown = new Uint8Array(Math.max(need, this.data.length * 2));
        grown.set(this.data.subarray(0, this.used));
        this.data = grown;
      }
      this.data.set(packet.data, this.used);
      this.used = need;
    }
    this.types[this.length] = PACKET_CODES[packet.type];
    this.ends[this.length] = this.used;
    this.length++;
  }

  at(i: number): Packet | undefined {
    if (i < 0 || i >= this.length) return undefined;
    const code = this.types[i];
    if (code !== DATA_CODE) return code === FLUSH_CODE ? FLUSH : code === DELIM_CODE ? DELIM : RESPONSE_END;
    return { type: 'data', data: this.data.subarray(i === 0 ? 0 : this.ends[i - 1], this.ends[i]) };
  }
}

const DATA_CODE = 0;
const FLUSH_CODE = 1;
const DELIM_CODE = 2;
const PACKET_CODES: Record<Packet['type'], number> = { data: DATA_CODE, flush: FLUSH_CODE, delim: DELIM_CODE, 'response-end': 3 };

/** What the request parsers read: an array of packets, or RequestPackets. */
export interface PacketList {
  readonly length: number;
  at(index: number): Packet | undefined;
}

/**
 * Reads one request body (a stateless POST), up to the end of the stream,
 * refusing more than `maxBytes` or `maxLines` pkt-lines. An empty data
 * packet ("0004"), which no upload-pack request holds (Git's upload-pack
 * dies at the first), ends the request at once. Throws ERR_LIMIT_EXCEEDED,
 * ERR_PROTOCOL, ERR_PKT_LINE_LENGTH or ERR_PKT_LINE_TRUNCATED.
 */
export async function readRequestPackets(
  source: AsyncIterable<Uint8Array>,
  options: { maxBytes?: number; maxLines?: number; signal?: AbortSignal } = {},
): Promise<RequestPackets> {
  const maxBytes = options.maxBytes ?? DEFAULT_UPLOAD_PACK_LIMITS.maxRequestBytes;
  const maxLines = options.maxLines ?? DEFAULT_UPLOAD_PACK_LIMITS.maxRequestLines;
  const reader = new PktLineReader(source, { signal: options.signal });
  const packets = new RequestPackets();
  try {
    for (;;) {
      const packet = await reader.tryRead();
      if (packet === undefined) return packets;
      if (reader.offset > maxBytes) throw limitError('maxRequestBytes', maxBytes);
      if (packets.length >= maxLines) throw limitError('maxRequestLines', maxLines);
      if (packet.type === 'data' && packet.data.length === 0) throw protocolError('unexpected empty pkt-line (0004) in the request');
      packets.push(packet);
    }
  } finally {
    await reader.close();
  }
}

/** A data packet's text (one trailing LF removed), or the packet's type in brackets for the others. */
function packetLine(packet: Packet): string {
  return packet.type === 'data' ? lineText(packet.data) : `[${packet.type}]`;
}

const OID_HEX = /^[0-9a-f]{40}$/;

/** Reads "<prefix><oid>" (exactly an object id after the prefix). */
function oidAfter(line: string, prefix: string, what: string): ObjectId {
  const hex = line.slice(prefix.length);
  if (!OID_HEX.test(hex)) throw protocolError(`${what}: expected an object id, got ${show(line)}`);
  return hex;
}

/** Git's INFINITE_DEPTH: "deepen 2147483647" is what `git fetch --unshallow` sends. */
export const INFINITE_DEPTH = 0x7fffffff;

/** "deepen <n>": a positive decimal number, at most INFINITE_DEPTH (larger values mean the same). */
function parseDepth(line: string, arg: string): number {
  if (!/^[0-9]{1,20}$/.test(arg)) throw protocolError(`Invalid deepen: ${show(line)}`);
  const depth = Number(arg);
  if (depth <= 0) throw protocolError(`Invalid deepen: ${show(line)}`);
  return Math.min(depth, INFINITE_DEPTH);
}

/** "deepen-since <timestamp>": seconds since the epoch, not 0. */
function parseSince(line: string, arg: string): number {
  if (!/^[0-9]{1,16}$/.test(arg)) throw protocolError(`Invalid deepen-since: ${show(line)}`);
  const since = Number(arg);
  if (since <= 0 || !Number.isSafeInteger(since)) throw protocolError(`Invalid deepen-since: ${show(line)}`);
  return since;
}

/** What the client asks about the depth of its history (shared by v0 and v2). */
export interface DeepenRequest {
  /** The client's shallow commits ("shallow <oid>"): it lacks their parents. */
  shallows: ObjectId[];
  /** "deepen <n>": n commits from the wants (or from the client's shallow commits, with deepenRelative). */
  depth?: number;
  /** "deepen-since <timestamp>". */
  deepenSince?: number;
  /** "deepen-not <ref>": ref names, as the client wrote them (resolved by the server). */
  deepenNot: string[];
  /** "deepen-relative" (v2 argument; v0 capability). */
  deepenRelative: boolean;
}

function emptyDeepen(): DeepenRequest {
  return { shallows: [], deepenNot: [], deepenRelative: false };
}

/**
 * Takes a shallow/deepen line into `d`; false when the line is not one.
 * (Git's process_shallow, process_deepen, process_deepen_since, process_deepen_not.)
 */
function deepenLine(line: string, d: DeepenRequest, limits: UploadPackLimits, seen: Set<ObjectId>): boolean {
  if (line.startsWith('shallow ')) {
    const oid = oidAfter(line, 'shallow ', 'invalid shallow line');
    if (!seen.has(oid)) {
      if (d.shallows.length >= limits.maxShallows) throw limitError('maxShallows', limits.maxShallows);
      seen.add(oid);
      d.shallows.push(oid);
    }
    return true;
  }
  if (line.startsWith('deepen ')) {
    d.depth = parseDepth(line, line.slice(7));
    return true;
  }
  if (line.startsWith('deepen-since ')) {
    d.deepenSince = parseSince(line, line.slice(13));
    return true;
  }
  if (line.startsWith('deepen-not ')) {
    const ref = line.slice(11);
    if (ref === '') throw protocolError(`ambiguous deepen-not: ${show(line)}`);
    if (d.deepenNot.length >= limits.maxDeepenNots) throw limitError('maxDeepenNots', limits.maxDeepenNots);
    d.deepenNot.push(ref);
    return true;
  }
  return false;
}

/** Git refuses "deepen" together with "deepen-since" or "deepen-not". */
function checkDeepen(d: DeepenRequest): void {
  if (d.depth !== undefined && (d.deepenSince !== undefined || d.deepenNot.length > 0)) {
    throw protocolError('deepen and deepen-since (or deepen-not) cannot be used together');
  }
}

/** True when the request asks for anything about history depth (Git sends shallow information back then). */
export function isDeepening(d: DeepenRequest): boolean {
  return d.depth !== undefined || d.deepenSince !== undefined || d.deepenNot.length > 0;
}

// ---------------------------------------------------------------------------
// Filters (git-rev-list --filter; gitprotocol-v2 "fetch", argument "filter")

/** A partial-clone filter packferry implements. */
export type FilterSpec =
  /** No blobs (except those wanted by id). */
  | { kind: 'blob:none' }
  /** Only blobs smaller than `limit` bytes. */
  | { kind: 'blob:limit'; limit: number }
  /** No trees or blobs at `depth` or deeper below a commit's root tree (depth 0); tree:0 sends commits and tags only. */
  | { kind: 'tree'; depth: number };

/** Git's git_parse_ulong: decimal digits with an optional k, m or g (any case) suffix. */
function parseUnsigned(text: string, spec: string): number {
  const m = /^([0-9]{1,16})([kKmMgG]?)$/.exec(text);
  if (m === null) throw protocolError(`invalid filter-spec ${show(spec)}`);
  const unit = m[2].toLowerCase();
  const value = Number(m[1]) * (unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1);
  if (!Number.isSafeInteger(value)) throw protocolError(`invalid filter-spec ${show(spec)}`);
  return value;
}

/**
 * Parses a filter spec: "blob:none", "blob:limit=<n>[kmg]", "tree:<depth>".
 * Others Git knows ("sparse:oid=", "object:type=", "combine:") are refused
 * with ERR_PROTOCOL, as is anything else.
 */
export function parseFilterSpec(spec: string): FilterSpec {
  if (spec === 'blob:none') return { kind: 'blob:none' };
  if (spec.startsWith('blob:limit=')) return { kind: 'blob:limit', limit: parseUnsigned(spec.slice(11), spec) };
  if (spec.startsWith('tree:')) return { kind: 'tree', depth: parseUnsigned(spec.slice(5), spec) };
  throw protocolError(`unsupported filter-spec ${show(spec)} (packferry serves blob:none, blob:limit=<n> and tree:<depth>)`);
}

// ---------------------------------------------------------------------------
// Protocol v0/v1 requests

/** The v0 capabilities this server offers (besides symref, object-format and agent). */
export const UPLOAD_PACK_CAPABILITIES_V0 = [
  'multi_ack',
  'thin-pack',
  'side-band',
  'side-band-64k',
  'ofs-delta',
  'shallow',
  'deepen-since',
  'deepen-not',
  'deepen-relative',
  'no-progress',
  'include-tag',
  'multi_ack_detailed',
  'allow-tip-sha1-in-want',
  'allow-reachable-sha1-in-want',
  'no-done',
  'filter',
] as const;

/** A v0/v1 upload-pack request (one stateless POST). */
export interface UploadPackRequestV0 {
  wants: ObjectId[];
  /** The capabilities the client chose (after the first want's id; Git reads them on every want line). */
  capabilities: Capabilities;
  deepen: DeepenRequest;
  /** "filter <spec>" (the client must have asked for the "filter" capability). */
  filter?: FilterSpec;
  /**
   * The negotiation part, after the wants' flush: the have lines, and how
   * the request ended ("done": send the pack; "flush": one more round).
   * Undefined when the request ends right after the wants' flush (a
   * stateless client asking only for the shallow list) or has no wants.
   */
  negotiation?: { haves: ObjectId[]; end: 'done' | 'flush' };
}

/**
 * Parses a v0/v1 stateless request (gitprotocol-pack "Packfile
 * Negotiation"; Git's receive_needs and get_common_commits):
 *
 *     want <oid> <capabilities>      (first)
 *     want <oid> | shallow <oid> | deepen <n> | deepen-since <t> | deepen-not <ref> | filter <spec>
 *     flush
 *     have <oid> ...
 *     done | flush
 *
 * A stream that ends where a flush or "done" is due is read as Git reads it
 * at the end of a stateless request: as that flush.
 */
export function parseUploadPackRequestV0(packets: PacketList, limits: UploadPackLimits = DEFAULT_UPLOAD_PACK_LIMITS): UploadPackRequestV0 {
  const request: UploadPackRequestV0 = { wants: [], capabilities: new Capabilities(), deepen: emptyDeepen() };
  const wanted = new Set<ObjectId>();
  const shallowSeen = new Set<ObjectId>();
  let filterSpec: string | undefined;
  let i = 0;
  for (; i < packets.length; i++) {
    const packet = packets.at(i)!;
    if (packet.type !== 'data') break; // flush ends the wants (Git: any non-data packet)
    const line = packetLine(packet);
    if (deepenLine(line, request.deepen, limits, shallowSeen)) continue;
    if (line.startsWith('filter ')) {
      if (filterSpec !== undefined) throw protocolError('multiple filter-specs cannot be combined');
      filterSpec = line.slice(7);
      continue;
    }
    if (!line.startsWith('want ') || !OID_HEX.test(line.slice(5, 45)) || (line.length > 45 && line[45] !== ' ')) {
      throw protocolError(`protocol error, expected to get object ID, not ${show(line)}`);
    }
    const oid = line.slice(5, 45);
    for (const word of line.slice(46).split(' ')) {
      if (word === '') continue;
      const eq = word.indexOf('=');
      const name = eq < 0 ? word : word.slice(0, eq);
      if (!request.capabilities.has(name) || eq >= 0) request.capabilities.add(name, eq < 0 ? undefined : word.slice(eq + 1));
    }
    if (!wanted.has(oid)) {
      if (request.wants.length >= limits.maxWants) throw limitError('maxWants', limits.maxWants);
      wanted.add(oid);
      request.wants.push(oid);
    }
  }
  checkDeepen(request.deepen);
  if (request.capabilities.has('deepen-relative')) request.deepen.deepenRelative = true;
  if (filterSpec !== undefined) {
    if (!request.capabilities.has('filter')) throw protocolError('filtering capability not negotiated');
    request.filter = parseFilterSpec(filterSpec);
  }
  const format = request.capabilities.get('object-format');
  if (format !== undefined && format !== 'sha1') throw protocolError(`mismatched object format: the client uses ${show(format)}, the repository sha1`);
  // The wants end at a flush; the end of the request right there means no negotiation (Git: GENTLE_ON_EOF).
  i++;
  if (request.wants.length === 0 || i >= packets.length) return request;
  const haves: ObjectId[] = [];
  for (; i < packets.length; i++) {
    const packet = packets.at(i)!;
    if (packet.type !== 'data') return { ...request, negotiation: { haves, end: 'flush' } };
    const line = packetLine(packet);
    if (line === 'done') return { ...request, negotiation: { haves, end: 'done' } };
    if (!line.startsWith('have ')) throw protocolError(`expected SHA1 list, got ${show(line)}`);
    if (haves.length >= limits.maxHaves) throw limitError('maxHaves', limits.maxHaves);
    haves.push(oidAfter(line, 'have ', 'expected SHA1 object'));
  }
  return { ...request, negotiation: { haves, end: 'flush' } };
}

// ---------------------------------------------------------------------------
// Protocol v2 requests

/** One v2 command request: "command=<name>", capability lines, delim, arguments, flush. */
export interface CommandRequest {
  command: string;
  /** The capability lines before the delim (agent, object-format, server-option, ...). */
  capabilities: Capabilities;
  /** The argument lines between the delim and the flush. */
  args: string[];
}

/** The capabilities a v2 client may send in a command request (those this server advertises, with a value). */
const V2_REQUEST_CAPABILITIES = new Set(['agent', 'object-format', 'server-option']);

/**
 * Parses a v2 command request (gitprotocol-v2 "Command Request"; Git's
 * serve.c process_request). Returns undefined for an empty request (a flush,
 * or nothing), which asks for nothing. Refuses unknown capabilities, a
 * missing command, a request not ended by a flush, and data after it.
 */
export function parseCommandRequest(packets: PacketList, limits: UploadPackLimits = DEFAULT_UPLOAD_PACK_LIMITS): CommandRequest | undefined {
  let command: string | undefined;
  const capabilities = new Capabilities();
  let capabilityLines = 0;
  let i = 0;
  for (; i < packets.length; i++) {
    const packet = packets.at(i)!;
    if (packet.type === 'flush' || packet.type === 'delim') break;
    if (packet.type !== 'data') throw protocolError(`unexpected ${packet.type} packet in a command request`);
    const line = packetLine(packet);
    if (line.startsWith('command=')) {
      if (command !== undefined) throw protocolError('command requested after already requesting command');
      command = line.slice(8);
      continue;
    }
    if (++capabilityLines > limits.maxCapabilityLines) throw limitError('maxCapabilityLines', limits.maxCapabilityLines);
    const eq = line.indexOf('=');
    const name = eq < 0 ? line : line.slice(0, eq);
    if (!V2_REQUEST_CAPABILITIES.has(name) || eq < 0) throw protocolError(`unknown capability ${show(line)}`);
    capabilities.add(name, line.slice(eq + 1));
  }
  if (i >= packets.length) {
    if (command === undefined && capabilityLines === 0) return undefined; // nothing at all
    throw protocolError('expected flush after command request');
  }
  if (command === undefined) {
    if (packets.at(i)!.type === 'flush' && capabilityLines === 0) return undefined; // an empty request
    throw protocolError('no command requested');
  }
  const format = capabilities.get('object-format');
  if (format !== undefined && format !== 'sha1') throw protocolError(`mismatched object format: the client uses ${show(format)}, the repository sha1`);
  const args: string[] = [];
  if (packets.at(i)!.type === 'delim') {
    for (i++; i < packets.length; i++) {
      const packet = packets.at(i)!;
      if (packet.type === 'flush') break;
      if (packet.type !== 'data') throw protocolError(`unexpected ${packet.type} packet in the arguments of ${command}`);
      args.push(packetLine(packet));
    }
    if (i >= packets.length) throw protocolError(`expected flush after ${command} arguments`);
  }
  if (i + 1 < packets.length) throw protocolError(`data after the end of the ${command} request`);
  return { command, capabilities, args };
}

/** The arguments of ls-refs (gitprotocol-v2 "ls-refs"). */
export interface LsRefsArgs {
  symrefs: boolean;
  peel: boolean;
  unborn: boolean;
  /** Only refs starting with one of these; empty: all refs (also when there were over maxRefPrefixes). */
  prefixes: string[];
}

export function parseLsRefsArgs(args: readonly string[], limits: UploadPackLimits = DEFAULT_UPLOAD_PACK_LIMITS): LsRefsArgs {
  const out: LsRefsArgs = { symrefs: false, peel: false, unborn: false, prefixes: [] };
  let tooMany = false;
  for (const arg of args) {
    if (arg === 'peel') out.peel = true;
    else if (arg === 'symrefs') out.symrefs = true;
    else if (arg === 'unborn') out.unborn = true;
    else if (arg.startsWith('ref-prefix ')) {
      if (out.prefixes.length < limits.maxRefPrefixes) out.prefixes.push(arg.slice(11));
      else tooMany = true;
    } else throw protocolError(`unexpected line: ${show(arg)}`);
  }
  // Git: once there are too many prefixes, none is used (they must form a complete list).
  if (tooMany) out.prefixes = [];
  return out;
}

/** The arguments of fetch (gitprotocol-v2 "fetch"). */
export interface FetchArgs {
  wants: ObjectId[];
  haves: ObjectId[];
  done: boolean;
  thinPack: boolean;
  ofsDelta: boolean;
  noProgress: boolean;
  includeTag: boolean;
  waitForDone: boolean;
  deepen: DeepenRequest;
  filter?: FilterSpec;
}

/**
 * Parses the arguments of a v2 fetch (Git's upload-pack.c process_args).
 * Arguments of features this server does not advertise (want-ref,
 * packfile-uris, sideband-all) are "unexpected lines", as in Git.
 */
export function parseFetchArgs(args: readonly string[], limits: UploadPackLimits = DEFAULT_UPLOAD_PACK_LIMITS): FetchArgs {
  const out: FetchArgs = {
    wants: [],
    haves: [],
    done: false,
    thinPack: false,
    ofsDelta: false,
    noProgress: false,
    includeTag: false,
    waitForDone: false,
    deepen: emptyDeepen(),
  };
  const wanted = new Set<ObjectId>();
  const shallowSeen = new Set<ObjectId>();
  for (const arg of args) {
    if (arg.startsWith('want ')) {
      const oid = oidAfter(arg, 'want ', 'protocol error, expected to get object ID');
      if (!wanted.has(oid)) {
        if (out.wants.length >= limits.maxWants) throw limitError('maxWants', limits.maxWants);
        wanted.add(oid);
        out.wants.push(oid);
      }
    } else if (arg.startsWith('have ')) {
      if (out.haves.length >= limits.maxHaves) throw limitError('maxHaves', limits.maxHaves);
      out.haves.push(oidAfter(arg, 'have ', 'protocol error, expected to get object ID'));
    } else if (arg === 'thin-pack') out.thinPack = true;
    else if (arg === 'ofs-delta') out.ofsDelta = true;
    else if (arg === 'no-progress') out.noProgress = true;
    else if (arg === 'include-tag') out.includeTag = true;
    else if (arg === 'done') out.done = true;
    else if (arg === 'wait-for-done') out.waitForDone = true;
    else if (arg === 'deepen-relative') out.deepen.deepenRelative = true;
    else if (arg.startsWith('filter ')) {
      if (out.filter !== undefined) throw protocolError('multiple filter-specs cannot be combined');
      out.filter = parseFilterSpec(arg.slice(7));
    } else if (!deepenLine(arg, out.deepen, limits, shallowSeen)) throw protocolError(`unexpected line: ${show(arg)}`);
  }
  checkDeepen(out.deepen);
  return out;
}

// ---------------------------------------------------------------------------
// Responses

/** A ref as advertised: its name, value, and for annotated tags the peeled value. */
export interface ServedRef {
  name: string;
  oid: ObjectId;
  peeled?: ObjectId;
}


/**
 * The v0/v1 ref advertisement (gitprotocol-pack "Reference Discovery"), as
 * `git upload-pack --advertise-refs` writes it: for v1 a "version 1" line
 * first; HEAD (when it names an existing ref) and then every ref, the first
 * line carrying the capabilities after a NUL, each annotated tag followed by
 * its peeled "^{}" line; an empty repository sends "capabilities^{}" with
 * the zero id. Ends with a flush.
 */
export function encodeAdvertisementV0(
  refs: readonly ServedRef[],
  head: { target: string; oid?: ObjectId } | undefined,
  capabilities: readonly string[],
  version: 0 | 1,
): Buffer {
  const parts: Buffer[] = [];
  if (version === 1) parts.push(pktLineText('version 1'));
  const caps = capabilities.join(' ');
  let first = true;
  const line = (oid: ObjectId, name: string): void => {
    parts.push(pktLineText(first ? `${oid} ${name}\0${caps}` : `${oid} ${name}`));
    first = false;
  };
  if (head?.oid !== undefined) line(head.oid, 'HEAD');
  for (const ref of refs) {
    line(ref.oid, ref.name);
    if (ref.peeled !== undefined) parts.push(pktLineText(`${ref.peeled} ${ref.name}^{}`));
  }
  if (first) line(ZERO_ID, 'capabilities^{}');
  parts.push(flushPkt);
  return Buffer.concat(parts);
}

/** The v2 capability advertisement: "version 2", one capability per line, flush. */
export function encodeCapabilityAdvertisementV2(capabilities: readonly string[]): Buffer {
  return Buffer.concat([pktLineText('version 2'), ...capabilities.map((c) => pktLineText(c)), flushPkt]);
}

/** The capabilities of protocol v2 this server advertises. */
export function uploadPackCapabilitiesV2(): string[] {
  return [`agent=${AGENT}`, 'ls-refs=unborn', 'fetch=shallow wait-for-done filter', 'server-option', 'object-format=sha1'];
}

/** The v0/v1 capability words, with HEAD's symref when HEAD names an existing ref. */
export function uploadPackCapabilitiesV0(headTarget: string | undefined): string[] {
  const caps: string[] = [...UPLOAD_PACK_CAPABILITIES_V0];
  if (headTarget !== undefined) caps.push(`symref=HEAD:${headTarget}`);
  caps.push('object-format=sha1', `agent=${AGENT}`);
  return caps;
}

/**
 * The ls-refs response (Git's ls-refs.c): HEAD first (when it matches the
 * prefixes), "unborn HEAD" for a HEAD without a ref when asked for unborn
 * and symrefs, then the refs; "symref-target:" for HEAD with symrefs,
 * "peeled:" for annotated tags with peel. Ends with a flush.
 */
export function encodeLsRefs(
  refs: readonly ServedRef[],
  head: { target: string; oid?: ObjectId } | undefined,
  args: LsRefsArgs,
): Buffer {
  const matches = (name: string): boolean => args.prefixes.length === 0 || args.prefixes.some((p) => name.startsWith(p));
  const parts: Buffer[] = [];
  if (head !== undefined && matches('HEAD')) {
    if (head.oid !== undefined) {
      parts.push(pktLineText(`${head.oid} HEAD${args.symrefs ? ` symref-target:${head.target}` : ''}`));
    } else if (args.unborn && args.symrefs) {
      parts.push(pktLineText(`unborn HEAD symref-target:${head.target}`));
    }
  }
  for (const ref of refs) {
    if (!matches(ref.name)) continue;
    parts.push(pktLineText(`${ref.oid} ${ref.name}${args.peel && ref.peeled !== undefined ? ` peeled:${ref.peeled}` : ''}`));
  }
  parts.push(flushPkt);
  return Buffer.concat(parts);
}

/** The acknowledgments section of a v2 fetch response (without its closing delim or flush). */
export function encodeAcknowledgments(common: readonly ObjectId[], ready: boolean): Buffer {
  const parts = [pktLineText('acknowledgments')];
  if (common.length === 0) parts.push(pktLineText('NAK'));
  for (const oid of common) parts.push(pktLineText(`ACK ${oid}`));
  if (ready) parts.push(pktLineText('ready'));
  return Buffer.concat(parts);
}

/** A shallow-info section: "shallow-info", the lines, then the delim before "packfile". */
export function encodeShallowInfo(shallow: readonly ObjectId[], unshallow: readonly ObjectId[]): Buffer {
  return Buffer.concat([pktLineText('shallow-info'), ...encodeShallowLines(shallow, unshallow), delimPkt]);
}

/** "shallow <oid>" and "unshallow <oid>" lines (v0 sends them followed by a flush). */
export function encodeShallowLines(shallow: readonly ObjectId[], unshallow: readonly ObjectId[]): Buffer[] {
  return [...shallow.map((oid) => pktLineText(`shallow ${oid}`)), ...unshallow.map((oid) => pktLineText(`unshallow ${oid}`))];
}

/**
 * An "ERR <message>" pkt-line: how upload-pack reports a fatal error before
 * the pack (Git's clients print "remote error: <message>"). The message is
 * cut to fit one pkt-line and kept on one line.
 */
export function encodeErrorPacket(message: string): Buffer {
  let text = `ERR ${message.replace(/[\r\n]+/g, ' ')}\n`;
  while (Buffer.byteLength(text) > LARGE_PACKET_DATA_MAX) text = `${text.slice(0, Math.floor(text.length * 0.9))}\n`;
  return pktLine(text);
}

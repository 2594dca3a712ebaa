// Conversations with a remote repository over any transport: list its refs,
// fetch a pack from upload-pack (protocol v2 when offered, else v0/v1 with
// multi_ack_detailed), and push commands and a pack to receive-pack. The
// pack is handed over as a stream and never held or stored here.
import { PackferryError, ErrorCode } from '../core/errors.js';
import type { ObjectId } from '../core/oid.js';
import { readAdvertisement, type AdvertisedRef } from '../protocol/advertisement.js';
import { Capabilities } from '../protocol/capabilities.js';
import { flushPkt } from '../protocol/pkt-line.js';
import { PktLineReader } from '../protocol/pkt-line-reader.js';
import { chooseReceivePackCaps, readReportStatus, receivePackRequest, type RefUpdateCommand, type ReportStatus } from '../protocol/receive-pack.js';
import { demuxSideBand, type RemoteMessage } from '../protocol/side-band.js';
import {
  chooseUploadPackCapsV0,
  fetchRequestV0,
  fetchRequestV2,
  lsRefsRequest,
  readFetchResponseV0,
  readFetchResponseV2,
  readLsRefs,
} from '../protocol/upload-pack.js';
import type { ServiceSession, Transport } from './types.js';

export interface RemoteRefs {
  /** Refs, without HEAD; peeled ids for annotated tags where the server gave them. */
  refs: AdvertisedRef[];
  /** What HEAD points at (a branch name), when the server says. */
  head?: string;
  /** HEAD's value, when it resolves to an object. */
  headOid?: ObjectId;
}

export interface FetchOptions {
  wants: ObjectId[];
  /** Objects the receiving side has: sent as haves, in rounds. */
  haves: ObjectId[];
  thinPack?: boolean;
  ofsDelta?: boolean;
  includeTag?: boolean;
  /** A partial-clone filter ("tree:0"); ignored when the server does not support filters (check `supportsFilter`). */
  filter?: string;
  /** Band-2 messages from the server ("Counting objects..."); without it, no-progress is asked for. */
  onProgress?: (message: RemoteMessage) => void;
  signal?: AbortSignal;
}

export interface FetchedPack {
  /** Haves the server acknowledged as common. */
  common: ObjectId[];
  /** The pack bytes; must be consumed to the end (or the session closed). */
  pack: AsyncIterable<Uint8Array>;
}

/** First round of haves in a v2 negotiation; each round doubles, as in Git's fetch-pack. */
const INITIAL_HAVES = 64;
const MAX_HAVES_PER_ROUND = 4096;

function splitHead(refs: AdvertisedRef[]): RemoteRefs {
  const head = refs.find((r) => r.name === 'HEAD');
  return { refs: refs.filter((r) => r.name !== 'HEAD'), head: head?.symrefTarget, headOid: head?.oid };
}

/** A service session and what its advertisement said. */
interface UploadPackSession {
  session: ServiceSession;
  version: 0 | 1 | 2;
  capabilities: Capabilities;
  refs: AdvertisedRef[] | undefined;
}

async function openUploadPack(transport: Transport, protocolVersion: 0 | 1 | 2, signal?: AbortSignal): Promise<UploadPackSession> {
  const session = await transport.open('git-upload-pack', { protocolVersion, signal });
  try {
    const ad = await readAdvertisement(session.advertisement);
    if (ad.version === 2) {
      if (!ad.capabilities.has('ls-refs') || !ad.capabilities.has('fetch')) {
        throw new PackferryError(ErrorCode.UnsupportedCapability, 'the server speaks protocol v2 without ls-refs and fetch');
      }
      return { session, version: 2, capabilities: ad.capabilities, refs: undefined };
    }
    return { session, version: ad.version, capabilities: ad.capabilities, refs: ad.refs };
  } catch (err) {
    await session.close().catch(() => {});
    throw err;
  }
}

/**
 * A session with git-upload-pack. Over a stateful connection (file, ssh) a
 * session carries only so many fetches: in v0/v1, upload-pack sends one pack
 * and exits (gitprotocol-pack, "Packfile Data"); in v2, the next command can
 * only follow a response read to its end. When the session cannot carry the
 * next fetch, a new connection is opened for it.
 */
export class UploadPackClient {
  /** The current session cannot carry another fetch. */
  private spent = false;

  private constructor(
    private readonly transport: Transport,
    private readonly protocolVersion: 0 | 1 | 2,
    private current: UploadPackSession,
    /** The refs of the first v0/v1 advertisement (what listRefs reports). */
    private readonly v0Refs: AdvertisedRef[] | undefined,
  ) {}

  static async connect(transport: Transport, options: { protocolVersion?: 0 | 1 | 2; signal?: AbortSignal } = {}): Promise<UploadPackClient> {
    const protocolVersion = options.protocolVersion ?? 2;
    const opened = await openUploadPack(transport, protocolVersion, options.signal);
    return new UploadPackClient(transport, protocolVersion, opened, opened.refs);
  }

  get version(): 0 | 1 | 2 {
    return this.current.version;
  }

  get capabilities(): Capabilities {
    return this.current.capabilities;
  }

  private get session(): ServiceSession {
    return this.current.session;
  }

  /** A session that can take a fetch: the current one, or a new connection when it is spent. */
  private async ready(signal?: AbortSignal): Promise<void> {
    if (!this.spent) return;
    const old = this.current.session;
    await old.close().catch(() => {});
    this.current = await openUploadPack(this.transport, this.protocolVersion, signal);
    this.spent = false;
  }

  /** The server's refs (v2: one ls-refs request; v0: the advertisement already read). */
  async listRefs(prefixes?: string[]): Promise<RemoteRefs> {
    if (this.v0Refs) return splitHead(this.v0Refs);
    await this.ready();
    const reader = await this.session.request(lsRefsRequest(this.capabilities, { prefixes: prefixes && ['HEAD', ...prefixes], unborn: true }), {
      idempotent: true,
    });
    const result = await readLsRefs(reader);
    const refs = splitHead(result.refs);
    if (refs.head === undefined && result.unbornHead !== undefined) refs.head = result.unbornHead;
    return refs;
  }

  /** Does the server accept partial-clone filters? */
  get supportsFilter(): boolean {
    return this.version === 2 ? this.capabilities.hasFeature('fetch', 'filter') : this.capabilities.has('filter');
  }

  /** Negotiates and returns the pack stream (the wants must be non-empty). */
  async fetch(options: FetchOptions): Promise<FetchedPack> {
    if (options.wants.length === 0) throw new PackferryError(ErrorCode.Internal, 'internal error: fetch without wants');
    await this.ready(options.signal);
    // Until its pack has been read to the end, a stateful session is spent; v0/v1 ones for good.
    this.spent = !this.session.stateless;
    return this.version === 2 ? this.fetchV2(options) : this.fetchV0(options);
  }

  private async fetchV2(options: FetchOptions): Promise<FetchedPack> {
    const caps = this.capabilities;
    const base = {
      wants: options.wants,
      thinPack: options.thinPack === true,
      ofsDelta: options.ofsDelta === true,
      includeTag: options.includeTag === true,
      noProgress: options.onProgress === undefined,
      filter: this.supportsFilter ? options.filter : undefined,
    };
    const common = new Set<ObjectId>();
    let sent = 0;
    let batch = INITIAL_HAVES;
    for (;;) {
      const fresh = options.haves.slice(sent, sent + batch);
      sent += fresh.length;
      batch = Math.min(batch * 2, MAX_HAVES_PER_ROUND);
      const done = sent >= options.haves.length;
      // Stateless by design: each round repeats the wants and the haves found common so far.
      const body = fetchRequestV2(caps, { ...base, haves: [...common, ...fresh], done });
      const reader = await this.session.request(body, { idempotent: true, signal: options.signal });
      const acks = await readFetchResponseV2(reader);
      for (const oid of acks.common) common.add(oid);
      if (acks.packfileFollows) return { common: [...common], pack: this.packStream(reader, options) };
      if (done) throw new PackferryError(ErrorCode.Protocol, 'protocol error: the server sent no pack after "done"');
    }
  }

  private async fetchV0(options: FetchOptions): Promise<FetchedPack> {
    const caps = chooseUploadPackCapsV0(this.capabilities, [
      'multi_ack_detailed',
      'side-band-64k',
      ...(options.thinPack ? ['thin-pack'] : []),
      ...(options.ofsDelta ? ['ofs-delta'] : []),
      ...(options.includeTag ? ['include-tag'] : []),
      ...(options.onProgress === undefined ? ['no-progress'] : []),
      ...(options.filter !== undefined ? ['filter'] : []),
    ]);
    const filter = caps.includes('filter') ? options.filter : undefined;
    if (!caps.includes('side-band-64k') && this.capabilities.has('side-band')) caps.push('side-band');
    const reader = await this.session.request(fetchRequestV0({ wants: options.wants, haves: options.haves, done: true, filter }, caps), {
      idempotent: true,
      // upload-pack v0/v1 serves one fetch per connection: nothing more will be said.
      end: !this.session.stateless,
      signal: options.signal,
    });
    const common = await readFetchResponseV0(reader);
    const sideBand = caps.includes('side-band-64k') || caps.includes('side-band');
    return { common, pack: sideBand ? this.packStream(reader, options) : reader.readRemainder() };
  }

  /** The pack inside side-band packets, up to the closing flush. */
  private async *packStream(reader: PktLineReader, options: FetchOptions): AsyncGenerator<Uint8Array> {
    const end = yield* demuxSideBand(reader, { onProgress: options.onProgress, signal: options.signal });
    if (end.type !== 'flush') throw new PackferryError(ErrorCode.Protocol, `protocol error: pack data ended with a ${end.type} packet`);
    // Read to its end: a v2 session can take the next command.
    if (this.version === 2) this.spent = false;
  }

  async close(): Promise<void> {
    // v2 over a stateful connection: a flush ends the command loop cleanly.
    if (this.version === 2 && !this.session.stateless) {
      await this.session.request(flushPkt, { end: true }).catch(() => {});
    }
    await this.session.close();
  }
}

export interface PushOptions {
  commands: RefUpdateCommand[];
  /** The pack to send; omitted when every command is a delete (the protocol forbids a pack then). */
  pack?: AsyncIterable<Uint8Array>;
  atomic?: boolean;
  pushOptions?: string[];
  quiet?: boolean;
  onProgress?: (message: RemoteMessage) => void;
  signal?: AbortSignal;
  /** What HEAD should name afterwards; targets that can set it (stores) do, receive-pack cannot. */
  head?: string;
}

/** A session with git-receive-pack. */
export class ReceivePackClient {
  private finished = false;

  private constructor(
    private readonly session: ServiceSession,
    readonly capabilities: Capabilities,
    readonly refs: AdvertisedRef[],
  ) {}

  static async connect(transport: Transport, options: { signal?: AbortSignal } = {}): Promise<ReceivePackClient> {
    // receive-pack has no protocol v2; asking for v1 keeps servers from guessing.
    const session = await transport.open('git-receive-pack', { protocolVersion: 0, signal: options.signal });
    try {
      const ad = await readAdvertisement(session.advertisement);
      if (ad.version === 2) throw new PackferryError(ErrorCode.Protocol, 'protocol error: receive-pack answered with protocol v2');
      return new ReceivePackClient(session, ad.capabilities, ad.refs);
    } catch (err) {
      await session.close().catch(() => {});
      throw err;
    }
  }

  has(capability: string): boolean {
    return this.capabilities.has(capability);
  }

  /** Sends the commands and the pack; returns the report (or a synthesized one without report-status). */
  async push(options: PushOptions): Promise<ReportStatus> {
    const caps = chooseReceivePackCaps(this.capabilities, {
      atomic: options.atomic,
      quiet: options.quiet ?? options.onProgress === undefined,
      pushOptions: (options.pushOptions?.length ?? 0) > 0,
    });
    if (options.pushOptions?.length && !caps.includes('push-options')) {
      throw new PackferryError(ErrorCode.UnsupportedCapability, 'the target does not accept push options');
    }
    const header = receivePackRequest(options.commands, caps, options.pushOptions);
    const onlyDeletes = options.commands.every((c) => /^0+$/.test(c.newOid));
    const pack = onlyDeletes ? undefined : options.pack;
    async function* body(): AsyncGenerator<Uint8Array> {
      yield header;
      if (pack) yield* pack;
    }
    this.finished = true;
    const reader = await this.session.request(body(), { end: true, idempotent: false, signal: options.signal });
    if (!caps.includes('report-status') && !caps.includes('report-status-v2')) {
      await this.session.close();
      return { unpack: 'ok', refs: options.commands.map((c) => ({ name: c.name, ok: true })) };
    }
    let report: ReportStatus;
    if (caps.includes('side-band-64k')) {
      // The report travels inside band 1 as pkt-lines of its own.
      const inner = new PktLineReader(demuxSideBand(reader, { onProgress: options.onProgress, signal: options.signal }));
      report = await readReportStatus(inner);
      await inner.close().catch(() => {});
    } else {
      report = await readReportStatus(reader);
    }
    await this.session.close();
    return report;
  }

  /** Ends the session; with nothing pushed, tells the server so (a flush). */
  async close(): Promise<void> {
    if (!this.finished) {
      this.finished = true;
      if (!this.session.stateless) await this.session.request(flushPkt, { end: true }).catch(() => {});
    }
    await this.session.close();
  }
}

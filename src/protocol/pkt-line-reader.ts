// pkt-line over a byte stream: gitprotocol-common(5), "pkt-line Format".
//
// A thin async wrapper around the pure decoder in pkt-line.ts. Chunks arrive
// split anywhere (inside the 4-byte length too). A packet that lies wholly in
// one chunk is returned as a view of that chunk; only a packet that spans
// chunks is assembled, by copying exactly its own bytes once, so the cost is
// linear in the input however it is chunked. Chunks are never modified, so
// returned views stay valid for as long as the caller keeps them.
//
// After the last pkt-line of a v0 fetch without side-band (gitprotocol-pack(5),
// "Packfile Data") the raw pack follows on the same stream: readRemainder()
// hands back the bytes already buffered and then the rest of the source.
import { ErrorCode, PackferryError } from '../core/errors.js';
import { throwIfAborted } from '../core/abort.js';
import { decodePktLine, truncatedError, type Packet } from './pkt-line.js';

export interface PktLineReaderOptions {
  /** Checked before each packet; aborting fails the next read with ERR_ABORTED. */
  signal?: AbortSignal;
}

const EMPTY = new Uint8Array(0);

type ByteSource = AsyncIterable<Uint8Array> | AsyncIterator<Uint8Array>;

function toIterator(source: ByteSource): AsyncIterator<Uint8Array> {
  if (Symbol.asyncIterator in source) return source[Symbol.asyncIterator]();
  return source;
}

/**
 * Pull-style pkt-line reader. `tryRead()` returns undefined at a clean end of
 * stream; `read()` throws ERR_PKT_LINE_TRUNCATED there instead. A stream that
 * ends inside a packet is ERR_PKT_LINE_TRUNCATED either way; malformed length
 * prefixes are ERR_PKT_LINE_LENGTH with the absolute stream offset in details.
 *
 * Iterating the reader (`for await (const p of reader)`) reads packets until
 * the end; breaking out of the loop leaves the reader usable.
 */
export class PktLineReader implements AsyncIterable<Packet> {
  private readonly source: AsyncIterator<Uint8Array>;
  private readonly signal: AbortSignal | undefined;
  /** The chunk being decoded, and the position in it. */
  private buf: Uint8Array = EMPTY;
  private pos = 0;
  /** Stream offset of buf[0]. */
  private base = 0;
  /** Bytes taken from the source but not yet moved into `buf` (left over from assembling a packet). */
  private pending: Uint8Array | undefined;
  private sourceDone = false;
  /** A packet decoded by tryPeek but not yet consumed, and its size. */
  private peeked: { packet: Packet; consumed: number } | undefined;
  private released = false;

  constructor(source: ByteSource, options: PktLineReaderOptions = {}) {
    this.source = toIterator(source);
    this.signal = options.signal;
  }

  /** Stream offset of the next byte not yet consumed (a peeked packet is not consumed). */
  get offset(): number {
    return this.base + this.pos;
  }

  /** The next packet, or undefined when the stream ended cleanly between packets. */
  async tryRead(): Promise<Packet | undefined> {
    const next = this.peeked ?? (await this.decodeNext());
    if (next === undefined) return undefined;
    this.peeked = undefined;
    this.pos += next.consumed;
    return next.packet;
  }

  /** The next packet; a stream that has ended is ERR_PKT_LINE_TRUNCATED. */
  async read(): Promise<Packet> {
    const packet = await this.tryRead();
    if (packet === undefined) {
      throw new PackferryError(ErrorCode.PktLineTruncated, 'the remote end hung up unexpectedly: expected a pkt-line', {
        details: { offset: this.offset },
      });
    }
    return packet;
  }

  /** The next packet without consuming it (undefined at a clean end of stream). */
  async tryPeek(): Promise<Packet | undefined> {
    this.peeked ??= await this.decodeNext();
    return this.peeked?.packet;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Packet, void, undefined> {
    for (let packet = await this.tryRead(); packet !== undefined; packet = await this.tryRead()) yield packet;
  }

  /**
   * Stops reading pkt-lines and hands back every byte not yet consumed: first
   * what is buffered (including a peeked packet, which was not consumed), then
   * the rest of the source, chunk by chunk without copying. After this the
   * reader cannot be used any more.
   */
  readRemainder(): AsyncIterable<Uint8Array> {
    const { buffered, rest } = this.release();
    return remainder(buffered, rest);
  }

  /**
   * Like readRemainder, in two parts: the bytes already buffered (0 to 2
   * views) and the source iterator positioned after them (undefined if the
   * source has already ended).
   */
  release(): { buffered: Uint8Array[]; rest: AsyncIterator<Uint8Array> | undefined } {
    this.checkUsable();
    this.released = true;
    this.peeked = undefined;
    const buffered: Uint8Array[] = [];
    if (this.pos < this.buf.length) buffered.push(this.buf.subarray(this.pos));
    if (this.pending !== undefined) buffered.push(this.pending);
    this.buf = EMPTY;
    this.pos = 0;
    this.pending = undefined;
    return { buffered, rest: this.sourceDone ? undefined : this.source };
  }

  /** Closes the source (calls its `return()`), for when the caller stops early. */
  async close(): Promise<void> {
    if (this.released) return;
    this.released = true;
    this.buf = EMPTY;
    this.pending = undefined;
    this.peeked = undefined;
    if (!this.sourceDone) {
      this.sourceDone = true;
      await this.source.return?.();
    }
  }

  private checkUsable(): void {
    if (this.released) {
      throw new PackferryError(ErrorCode.Usage, 'pkt-line reader used after readRemainder(), release() or close()');
    }
  }

  /** The next non-empty chunk: left-over bytes first, then the source. Undefined at end of stream. */
  private async nextChunk(): Promise<Uint8Array | undefined> {
    if (this.pending !== undefined) {
      const chunk = this.pending;
      this.pending = undefined;
      return chunk;
    }
    while (!this.sourceDone) {
      const result = await this.source.next();
      if (result.done) {
        this.sourceDone = true;
        break;
      }
      const chunk: unknown = result.value;
      if (!(chunk instanceof Uint8Array)) {
        throw new PackferryError(ErrorCode.Usage, `pkt-line source yielded ${typeof chunk}, expected Uint8Array chunks`);
      }
      if (chunk.length > 0) return chunk;
    }
    return undefined;
  }

  /** Decodes the next packet without consuming it; undefined at a clean end of stream. */
  private async decodeNext(): Promise<{ packet: Packet; consumed: number } | undefined> {
    this.checkUsable();
    throwIfAborted(this.signal);
    for (;;) {
      const result = decodePktLine(this.buf, this.pos, this.base);
      if (result.kind === 'complete') return result;
      const have = this.buf.length - this.pos;
      if (have === 0) {
        // Nothing buffered: move to the next chunk, or end cleanly.
        const chunk = await this.nextChunk();
        if (chunk === undefined) return undefined;
        this.base += this.buf.length;
        this.buf = chunk;
        this.pos = 0;
        continue;
      }
      // A packet (or its length prefix) continues in later chunks: copy exactly
      // its bytes into one new buffer. If only the prefix was missing, the next
      // round learns the full length and assembles the rest the same way.
      const target = have + result.needed;
      const assembled = new Uint8Array(target);
      assembled.set(this.buf.subarray(this.pos));
      let filled = have;
      while (filled < target) {
        throwIfAborted(this.signal);
        const chunk = await this.nextChunk();
        if (chunk === undefined) {
          // Keep what was pulled (a caller that peeked may still want the
          // bytes through readRemainder), then report as the unsplit decoder would.
          const offset = this.base + this.pos;
          this.base = offset;
          this.buf = assembled.subarray(0, filled);
          this.pos = 0;
          throw truncatedError(offset, filled, target - filled);
        }
        const take = Math.min(chunk.length, target - filled);
        assembled.set(take === chunk.length ? chunk : chunk.subarray(0, take), filled);
        filled += take;
        if (take < chunk.length) this.pending = chunk.subarray(take);
      }
      this.base += this.pos;
      this.buf = assembled;
      this.pos = 0;
    }
  }
}

async function* remainder(
  buffered: Uint8Array[],
  rest: AsyncIterator<Uint8Array> | undefined,
): AsyncGenerator<Uint8Array, void, undefined> {
  for (const chunk of buffered) yield chunk;
  if (rest === undefined) return;
  let finished = false;
  try {
    for (;;) {
      const result = await rest.next();
      if (result.done) {
        finished = true;
        return;
      }
      yield result.value;
    }
  } finally {
    if (!finished) await rest.return?.();
  }
}

/**
 * Reads pkt-lines from a byte stream until it ends. A stream that ends inside
 * a packet fails with ERR_PKT_LINE_TRUNCATED; a clean end between packets just
 * ends the iteration (whether a flush was required is the caller's protocol
 * question). Breaking out of the loop closes the source.
 */
export async function* readPktLines(
  source: ByteSource,
  options: PktLineReaderOptions = {},
): AsyncGenerator<Packet, void, undefined> {
  const reader = new PktLineReader(source, options);
  try {
    for (let packet = await reader.tryRead(); packet !== undefined; packet = await reader.tryRead()) yield packet;
  } finally {
    await reader.close();
  }
}

// Side-band multiplexing of the pack stream.
//
// Implements gitprotocol-pack(5), "Packfile Data" (the side-band and
// side-band-64k capabilities of protocol v0/v1) and gitprotocol-v2(5), the
// "packfile" section of the fetch response, which is always multiplexed.
// Each data pkt-line starts with one band byte: 1 pack data, 2 progress text,
// 3 a fatal error message.
//
// Behaviour follows Git's reader, sideband.c (demultiplex_sideband and
// recv_sideband in Git 2.39):
//   - band 2 text is split into lines on both CR and LF; a line may continue
//     across packets, so partial text is kept until its CR or LF arrives;
//   - band 3 ends the transfer with the remote's message;
//   - an empty packet ("0004", no band byte) and any other band are
//     protocol errors;
//   - a band byte with no payload ("0005\1", "0005\2") is a keepalive;
//   - flush (and delim or response-end) ends the multiplexed stream; the end
//     of input before that is an unexpected disconnect.
// The writer follows send_sideband: every packet, length prefix and band byte
// included, is at most 1000 bytes for side-band and LARGE_PACKET_MAX (65520)
// for side-band-64k, so it carries at most 995 or 65515 data bytes.
// (gitprotocol-pack words this as "999 data bytes plus 1 control code, for a
// total of up to 1000 bytes in a pkt-line", counting without the 4-byte
// prefix; Git itself, which the tests check, counts the prefix in.)
import { ErrorCode, PackferryError } from '../core/errors.js';
import { throwIfAborted } from '../core/abort.js';
import type { ProgressEvent } from '../core/progress.js';
import { LARGE_PACKET_MAX, PKT_LINE_HEADER_LENGTH, writePktLineHeader, type Packet } from './pkt-line.js';

/** Side-band channels. */
export const Band = {
  /** Pack data. */
  Data: 1,
  /** Progress and informational messages for the user. */
  Progress: 2,
  /** A fatal error: the transfer ends. */
  Error: 3,
} as const;
export type Band = (typeof Band)[keyof typeof Band];

/** Which side-band capability is in use; it decides the largest packet. */
export type SideBandMode = 'side-band' | 'side-band-64k';

/** Largest whole packet (prefix and band byte included) with "side-band" (Git's DEFAULT_PACKET_MAX). */
export const SIDE_BAND_MAX = 1000;
/** Largest whole packet with "side-band-64k" and in protocol v2. */
export const SIDE_BAND_64K_MAX = LARGE_PACKET_MAX;

/** Largest whole packet for a mode. */
export function sideBandPacketMax(mode: SideBandMode): number {
  return mode === 'side-band' ? SIDE_BAND_MAX : SIDE_BAND_64K_MAX;
}

/** One message from band 2, as Git splits them. */
export interface RemoteMessage {
  /** The text, without its terminator. */
  readonly text: string;
  /**
   * How it ended: '\r' for a progress update the next message overwrites,
   * '\n' for a finished line, '' for text left over when the band ended
   * without a terminator. Git sends "\r\n" at the end of a progress phase,
   * which arrives as a message ending in '\r' followed by an empty one ending
   * in '\n' (keep the last update on screen).
   */
  readonly end: '\r' | '\n' | '';
}

const textDecoder = new TextDecoder('utf-8');

/**
 * Splits band-2 bytes into messages on CR and LF. Pure and incremental: push
 * packets as they come, then `finish` once the band ends. Bytes are decoded as
 * UTF-8 only once a whole message is there, so a character split across
 * packets survives.
 */
export class RemoteMessageSplitter {
  private partial: Uint8Array[] = [];
  private partialLength = 0;

  push(data: Uint8Array, emit: (message: RemoteMessage) => void): void {
    let start = 0;
    for (let i = 0; i < data.length; i++) {
      const c = data[i];
      if (c !== 0x0a && c !== 0x0d) continue;
      emit({ text: this.take(data.subarray(start, i)), end: c === 0x0a ? '\n' : '\r' });
      start = i + 1;
    }
    if (start < data.length) {
      this.partial.push(data.subarray(start));
      this.partialLength += data.length - start;
    }
  }

  /** Emits text still waiting for its terminator, if any. */
  finish(emit: (message: RemoteMessage) => void): void {
    if (this.partialLength > 0) emit({ text: this.take(new Uint8Array(0)), end: '' });
  }

  private take(tail: Uint8Array): string {
    if (this.partialLength === 0) return textDecoder.decode(tail);
    const bytes = Buffer.concat([...this.partial, tail], this.partialLength + tail.length);
    this.partial = [];
    this.partialLength = 0;
    return textDecoder.decode(bytes);
  }
}

export interface DemuxSideBandOptions {
  /** Receives band-2 messages, split as Git splits them. */
  onProgress?: (message: RemoteMessage) => void;
  /** Checked before each packet. */
  signal?: AbortSignal;
}

/**
 * Demultiplexes a side-band stream: yields the band-1 payloads (views into
 * the packets, no copies) and reports band 2 through `onProgress`. Stops at
 * the first flush, delim or response-end packet, which it returns (so the
 * caller may read on from the same PktLineReader; the source is closed only
 * when the demultiplexing stops early). Errors:
 *  - band 3: ERR_REMOTE, message "remote: <text>";
 *  - an unknown band or an empty packet: ERR_SIDE_BAND_CHANNEL;
 *  - the packets end before a flush: ERR_PKT_LINE_TRUNCATED.
 */
export async function* demuxSideBand(
  packets: AsyncIterable<Packet>,
  options: DemuxSideBandOptions = {},
): AsyncGenerator<Uint8Array, Packet, undefined> {
  const { onProgress, signal } = options;
  const splitter = new RemoteMessageSplitter();
  const emit = onProgress ?? ((): void => {});
  // Iterated by hand, not with for-await: ending at a flush must not call the
  // source's return(), so that a PktLineReader can go on past the flush.
  const iterator = packets[Symbol.asyncIterator]();
  let ended = false;
  let index = 0;
  try {
    for (;; index++) {
      throwIfAborted(signal);
      const result = await iterator.next();
      if (result.done) {
        ended = true;
        splitter.finish(emit);
        throw new PackferryError(ErrorCode.PktLineTruncated, 'unexpected disconnect while reading sideband packet', {
          details: { packet: index },
        });
      }
      const packet = result.value;
      if (packet.type !== 'data') {
        ended = true;
        splitter.finish(emit);
        return packet;
      }
      const data = packet.data;
      if (data.length === 0) {
        throw new PackferryError(ErrorCode.SideBandChannel, 'protocol error: empty side-band packet (no band byte)', {
          details: { packet: index },
        });
      }
      const band = data[0];
      if (band === Band.Data) {
        if (data.length > 1) yield data.subarray(1);
      } else if (band === Band.Progress) {
        if (onProgress !== undefined) splitter.push(data.subarray(1), emit);
      } else if (band === Band.Error) {
        splitter.finish(emit);
        throw remoteError(data.subarray(1));
      } else {
        throw new PackferryError(ErrorCode.SideBandChannel, `protocol error: bad band #${band}`, {
          details: { band, packet: index },
        });
      }
    }
  } finally {
    // Stopped early (an error, or the consumer broke off): release the source.
    if (!ended) await iterator.return?.();
  }
}

function remoteError(payload: Uint8Array): PackferryError {
  // Git sends the message as a C string, NUL included (upload-pack's
  // "aborting due to possible repository corruption..."), and prints it with
  // %s: text from the first NUL on is not part of it.
  const nul = payload.indexOf(0);
  const message = textDecoder.decode(nul < 0 ? payload : payload.subarray(0, nul)).replace(/\n+$/, '');
  return new PackferryError(ErrorCode.RemoteError, `remote: ${message}`, {
    details: { band: Band.Error, message },
  });
}

/**
 * Frames `data` on a band as one or more side-band packets, split at the
 * mode's largest packet, in one buffer (one copy of the data). Empty data
 * gives an empty buffer: nothing to send.
 */
export function sideBandPacket(band: Band, data: string | Uint8Array, mode: SideBandMode = 'side-band-64k'): Buffer {
  if (band !== Band.Data && band !== Band.Progress && band !== Band.Error) {
    throw new PackferryError(ErrorCode.Usage, `side-band: no band ${String(band)} (1, 2 or 3)`);
  }
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const perPacket = sideBandPacketMax(mode) - PKT_LINE_HEADER_LENGTH - 1;
  const count = Math.ceil(bytes.length / perPacket);
  const out = Buffer.allocUnsafe(bytes.length + count * (PKT_LINE_HEADER_LENGTH + 1));
  let at = 0;
  for (let start = 0; start < bytes.length; start += perPacket) {
    const end = Math.min(start + perPacket, bytes.length);
    writePktLineHeader(out, at, end - start + PKT_LINE_HEADER_LENGTH + 1);
    out[at + PKT_LINE_HEADER_LENGTH] = band;
    out.set(bytes.subarray(start, end), at + PKT_LINE_HEADER_LENGTH + 1);
    at += end - start + PKT_LINE_HEADER_LENGTH + 1;
  }
  return out;
}

/** Frames a stream of chunks on one band (e.g. pack data on band 1), chunk by chunk. */
export async function* muxSideBand(
  source: AsyncIterable<Uint8Array>,
  band: Band,
  mode: SideBandMode = 'side-band-64k',
): AsyncGenerator<Buffer, void, undefined> {
  for await (const chunk of source) {
    if (chunk.length > 0) yield sideBandPacket(band, chunk, mode);
  }
}

const UNIT: Record<string, number> = { byte: 1, bytes: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 };

/**
 * Reads one of Git's progress messages (progress.c), e.g.
 * "Counting objects:  45% (450/1000)" or "Enumerating objects: 12, done."
 * or "Receiving objects: 10% (1/10), 1.00 MiB | 2.00 MiB/s", as a
 * ProgressEvent. Other text (e.g. "Total 3 (delta 0), reused 0 ...") is
 * undefined.
 */
export function parseProgressMessage(text: string): ProgressEvent | undefined {
  const m =
    /^(.+?): +(?:(\d+)% \((\d+)\/(\d+)\)|(\d+))(?:, (\d+(?:\.\d+)?) (bytes?|KiB|MiB|GiB)(?: \| [^,]*)?)? *(, done\.)? *$/.exec(
      text,
    );
  if (m === null) return undefined;
  const [, title, , done, total, count, size, unit, finished] = m;
  const event: { -readonly [K in keyof ProgressEvent]: ProgressEvent[K] } = {
    title,
    done: Number(done ?? count),
  };
  if (total !== undefined) event.total = Number(total);
  if (size !== undefined) event.bytes = Math.round(Number(size) * UNIT[unit]);
  if (finished !== undefined) event.finished = true;
  return event;
}

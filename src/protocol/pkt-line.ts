// pkt-line framing: the pure decoder and the encoder.
//
// Implements gitprotocol-common(5), "pkt-line Format", plus the two special
// packets of gitprotocol-v2(5), "Packet-Line Framing" (delim-pkt 0001 and
// response-end-pkt 0002).
//
// Decisions taken from Git's own reader (pkt-line.c, packet_read_with_status
// in Git 2.39), and checked against `git upload-pack` in test/protocol:
//   - the 4 length characters are hex digits of either case ("000A" and
//     "000a" are the same length, as Git's hexval table accepts both);
//     anything else ("+00a", " 00a", "0x1a") is ERR_PKT_LINE_LENGTH;
//   - 0000 is flush, 0001 delim, 0002 response-end, 0003 is an error;
//   - 0004 is an empty data packet: senders SHOULD NOT send it, but Git
//     reads it as an empty line, so we do too;
//   - a length above LARGE_PACKET_MAX (65520) is an error. Git 2.39 happens to
//     tolerate up to 65523 (its buffer is one NUL byte larger than needed); we
//     follow the documented MUST instead.
//
// The decoder does no I/O and never copies: a data packet is a view
// (subarray) into the caller's buffer. See pkt-line-reader.ts for streams.
import { ErrorCode, PackferryError } from '../core/errors.js';

/** Largest pkt-line, length prefix included (Git's LARGE_PACKET_MAX). */
export const LARGE_PACKET_MAX = 65520;
/** Largest payload of one pkt-line (Git's LARGE_PACKET_DATA_MAX). */
export const LARGE_PACKET_DATA_MAX = LARGE_PACKET_MAX - 4;
/** Size of the hex length prefix. */
export const PKT_LINE_HEADER_LENGTH = 4;

export interface DataPacket {
  readonly type: 'data';
  /** The payload, without the length prefix: a view into the input, never a copy. */
  readonly data: Uint8Array;
}
export interface FlushPacket {
  readonly type: 'flush';
}
export interface DelimPacket {
  readonly type: 'delim';
}
export interface ResponseEndPacket {
  readonly type: 'response-end';
}
/** One pkt-line: data, or one of the special packets 0000, 0001, 0002. */
export type Packet = DataPacket | FlushPacket | DelimPacket | ResponseEndPacket;

/** The flush-pkt, "0000". */
export const FLUSH: FlushPacket = Object.freeze({ type: 'flush' });
/** The delim-pkt, "0001" (protocol v2). */
export const DELIM: DelimPacket = Object.freeze({ type: 'delim' });
/** The response-end-pkt, "0002" (protocol v2, stateless transports). */
export const RESPONSE_END: ResponseEndPacket = Object.freeze({ type: 'response-end' });

/**
 * What one decode step found: a whole packet and how many input bytes it
 * took, or how many more bytes (at least) are needed before one can be read.
 */
export type DecodeResult =
  | { readonly kind: 'complete'; readonly packet: Packet; readonly consumed: number }
  | { readonly kind: 'incomplete'; readonly needed: number };

const COMPLETE_FLUSH: DecodeResult = Object.freeze({ kind: 'complete', packet: FLUSH, consumed: 4 });
const COMPLETE_DELIM: DecodeResult = Object.freeze({ kind: 'complete', packet: DELIM, consumed: 4 });
const COMPLETE_RESPONSE_END: DecodeResult = Object.freeze({ kind: 'complete', packet: RESPONSE_END, consumed: 4 });

/** Value of each byte as a hex digit, or -1: Git's hexval table (both cases). */
const HEX_VALUE: Int8Array = (() => {
  const table = new Int8Array(256).fill(-1);
  for (let i = 0; i < 10; i++) table[0x30 + i] = i;
  for (let i = 0; i < 6; i++) {
    table[0x41 + i] = 10 + i;
    table[0x61 + i] = 10 + i;
  }
  return table;
})();

/** The 4 header bytes, printable, for error messages ("00\x01z"). */
function showHeader(buf: Uint8Array, offset: number): string {
  let out = '';
  for (let i = offset; i < offset + 4 && i < buf.length; i++) {
    const c = buf[i];
    out += c >= 0x20 && c < 0x7f && c !== 0x5c ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, '0')}`;
  }
  return out;
}

/**
 * Reads the pkt-len at `offset`: a number in 0..65535. Throws
 * ERR_PKT_LINE_LENGTH when one of the 4 bytes is not a hex digit.
 * The caller guarantees 4 bytes are available.
 */
function readLength(buf: Uint8Array, offset: number, streamOffset: number): number {
  const a = HEX_VALUE[buf[offset]];
  const b = HEX_VALUE[buf[offset + 1]];
  const c = HEX_VALUE[buf[offset + 2]];
  const d = HEX_VALUE[buf[offset + 3]];
  if ((a | b | c | d) < 0) {
    const header = showHeader(buf, offset);
    throw new PackferryError(ErrorCode.PktLineLength, `protocol error: bad line length character: ${header}`, {
      details: { offset: streamOffset + offset, header },
    });
  }
  return (a << 12) | (b << 8) | (c << 4) | d;
}

/**
 * Decodes one pkt-line from `buf` at `offset`, without I/O and without
 * copying. `streamOffset` is the position of `buf[0]` in the whole stream; it
 * only makes the `offset` in error details absolute.
 *
 * Throws PackferryError ERR_PKT_LINE_LENGTH (details: offset of the packet,
 * header) for a non-hex length, 0003, or a length above LARGE_PACKET_MAX.
 */
export function decodePktLine(buf: Uint8Array, offset = 0, streamOffset = 0): DecodeResult {
  if (!(offset >= 0 && offset <= buf.length && Number.isInteger(offset))) {
    throw new PackferryError(ErrorCode.Usage, `decodePktLine: offset ${offset} outside the buffer (0..${buf.length})`);
  }
  const available = buf.length - offset;
  if (available < PKT_LINE_HEADER_LENGTH) return { kind: 'incomplete', needed: PKT_LINE_HEADER_LENGTH - available };
  const length = readLength(buf, offset, streamOffset);
  if (length < PKT_LINE_HEADER_LENGTH) {
    if (length === 0) return COMPLETE_FLUSH;
    if (length === 1) return COMPLETE_DELIM;
    if (length === 2) return COMPLETE_RESPONSE_END;
    throw lengthError(length, buf, offset, streamOffset);
  }
  if (length > LARGE_PACKET_MAX) throw lengthError(length, buf, offset, streamOffset);
  if (available < length) return { kind: 'incomplete', needed: length - available };
  return {
    kind: 'complete',
    packet: { type: 'data', data: buf.subarray(offset + PKT_LINE_HEADER_LENGTH, offset + length) },
    consumed: length,
  };
}

function lengthError(length: number, buf: Uint8Array, offset: number, streamOffset: number): PackferryError {
  const header = showHeader(buf, offset);
  const why = length > LARGE_PACKET_MAX ? ` (more than LARGE_PACKET_MAX, ${LARGE_PACKET_MAX})` : '';
  return new PackferryError(ErrorCode.PktLineLength, `protocol error: bad line length ${length}${why}`, {
    details: { offset: streamOffset + offset, header, length },
  });
}

/**
 * Decodes a whole buffer of pkt-lines (a small request body, a test fixture).
 * Every byte must belong to a packet: leftover bytes are ERR_PKT_LINE_TRUNCATED.
 * Data packets are views into `buf`.
 */
export function decodePktLines(buf: Uint8Array, offset = 0): Packet[] {
  const packets: Packet[] = [];
  let pos = offset;
  while (pos < buf.length) {
    const result = decodePktLine(buf, pos);
    if (result.kind === 'incomplete') throw truncatedError(pos, buf.length - pos, result.needed);
    packets.push(result.packet);
    pos += result.consumed;
  }
  return packets;
}

/** The error for a stream that ended inside a packet. Shared with the streaming reader. */
export function truncatedError(offset: number, available: number, needed: number): PackferryError {
  return new PackferryError(
    ErrorCode.PktLineTruncated,
    `the remote end hung up unexpectedly: stream ended inside a pkt-line (${available} of ${available + needed}+ bytes)`,
    { details: { offset, available, needed } },
  );
}

const textDecoder = new TextDecoder('utf-8');

/**
 * The text of a data packet's payload, with one trailing LF removed (the
 * spec: receivers treat lines the same with or without their LF).
 */
export function lineText(data: Uint8Array): string {
  const end = data.length > 0 && data[data.length - 1] === 0x0a ? data.length - 1 : data.length;
  return textDecoder.decode(data.subarray(0, end));
}

// ---------------------------------------------------------------------------
// Encoder

const HEX_DIGITS = '0123456789abcdef';

/** Writes `length` as 4 lowercase hex digits at `offset` (Git's set_packet_header). */
export function writePktLineHeader(target: Uint8Array, offset: number, length: number): void {
  target[offset] = HEX_DIGITS.charCodeAt((length >> 12) & 15);
  target[offset + 1] = HEX_DIGITS.charCodeAt((length >> 8) & 15);
  target[offset + 2] = HEX_DIGITS.charCodeAt((length >> 4) & 15);
  target[offset + 3] = HEX_DIGITS.charCodeAt(length & 15);
}

/** The flush-pkt "0000". Shared: do not modify. */
export const flushPkt: Buffer = Buffer.from('0000', 'latin1');
/** The delim-pkt "0001". Shared: do not modify. */
export const delimPkt: Buffer = Buffer.from('0001', 'latin1');
/** The response-end-pkt "0002". Shared: do not modify. */
export const responseEndPkt: Buffer = Buffer.from('0002', 'latin1');

/**
 * Frames `data` (a string is UTF-8 encoded) as one pkt-line. Throws
 * ERR_PKT_LINE_LENGTH when the payload is over LARGE_PACKET_DATA_MAX bytes.
 * Empty data gives "0004", which Git reads but the spec says SHOULD NOT be sent.
 */
export function pktLine(data: string | Uint8Array): Buffer {
  if (typeof data === 'string') {
    const size = Buffer.byteLength(data, 'utf8');
    checkPayloadSize(size);
    const out = Buffer.allocUnsafe(size + PKT_LINE_HEADER_LENGTH);
    writePktLineHeader(out, 0, size + PKT_LINE_HEADER_LENGTH);
    out.write(data, PKT_LINE_HEADER_LENGTH, 'utf8');
    return out;
  }
  checkPayloadSize(data.length);
  const out = Buffer.allocUnsafe(data.length + PKT_LINE_HEADER_LENGTH);
  writePktLineHeader(out, 0, data.length + PKT_LINE_HEADER_LENGTH);
  out.set(data, PKT_LINE_HEADER_LENGTH);
  return out;
}

function checkPayloadSize(size: number): void {
  if (size > LARGE_PACKET_DATA_MAX) {
    throw new PackferryError(
      ErrorCode.PktLineLength,
      `protocol error: impossibly long line (${size} bytes, at most ${LARGE_PACKET_DATA_MAX} fit in a pkt-line)`,
      { details: { length: size + PKT_LINE_HEADER_LENGTH } },
    );
  }
}

/**
 * Frames one line of text, adding the LF that non-binary lines should end
 * with: pktLineText('done') is "0009done\n". The text must not itself contain
 * a LF (ERR_USAGE): one pkt-line carries one line.
 */
export function pktLineText(line: string): Buffer {
  if (line.includes('\n')) {
    throw new PackferryError(ErrorCode.Usage, 'a pkt-line text line must not contain a line feed', {
      details: { line },
    });
  }
  return pktLine(`${line}\n`);
}

/** Encodes any packet, the inverse of decodePktLine. */
export function encodePacket(packet: Packet): Buffer {
  switch (packet.type) {
    case 'data':
      return pktLine(packet.data);
    case 'flush':
      return flushPkt;
    case 'delim':
      return delimPkt;
    case 'response-end':
      return responseEndPkt;
  }
}

/** Encodes a sequence of packets into one buffer (a request body). */
export function encodePackets(packets: Iterable<Packet>): Buffer {
  const parts: Buffer[] = [];
  for (const packet of packets) parts.push(encodePacket(packet));
  return Buffer.concat(parts);
}

// A small, strict DER (ITU-T X.690 §10) reader and writer: just enough ASN.1
// for packferry's certificate extensions (SEQUENCE, INTEGER, BOOLEAN,
// UTF8String, OBJECT IDENTIFIER) and for finding an extension inside a
// certificate (RFC 5280 §4.1) without loading an X.509 library on the
// request path. Pure over bytes: no I/O. Every read is bounds-checked and
// rejects non-minimal lengths, indefinite lengths and multi-byte tags, so
// hostile input fails with ERR_CERTIFICATE instead of misreading.
import { PackferryError, ErrorCode } from '../../core/errors.js';

export const Tag = {
  Boolean: 0x01,
  Integer: 0x02,
  OctetString: 0x04,
  ObjectIdentifier: 0x06,
  Utf8String: 0x0c,
  Sequence: 0x30,
} as const;

/** One decoded TLV: its tag byte, its content bytes, and where the next TLV starts. */
export interface Tlv {
  tag: number;
  content: Buffer;
  end: number;
}

function bad(message: string): PackferryError {
  return new PackferryError(ErrorCode.Certificate, `malformed DER: ${message}`);
}

/** Reads the TLV at `offset` (within `buf`), checking that it ends within `limit`. */
export function readTlv(buf: Buffer, offset = 0, limit = buf.length): Tlv {
  if (offset + 2 > limit) throw bad(`truncated header at offset ${offset}`);
  const tag = buf[offset];
  if ((tag & 0x1f) === 0x1f) throw bad(`multi-byte tag at offset ${offset}`);
  let length = buf[offset + 1];
  let pos = offset + 2;
  if (length === 0x80) throw bad(`indefinite length at offset ${offset}`);
  if (length > 0x80) {
    const n = length & 0x7f;
    if (n > 4) throw bad(`length of ${n} bytes at offset ${offset}`);
    if (pos + n > limit) throw bad(`truncated length at offset ${offset}`);
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + buf[pos + i];
    if (buf[pos] === 0 || length < 0x80) throw bad(`non-minimal length at offset ${offset}`);
    pos += n;
  }
  if (pos + length > limit) throw bad(`value of ${length} bytes overruns its container at offset ${offset}`);
  return { tag, content: buf.subarray(pos, pos + length), end: pos + length };
}

/** Reads exactly one TLV filling `buf`, of the expected tag. */
export function readOne(buf: Buffer, tag: number, what: string): Buffer {
  const tlv = readTlv(buf);
  if (tlv.tag !== tag) throw bad(`${what}: expected tag 0x${tag.toString(16)}, got 0x${tlv.tag.toString(16)}`);
  if (tlv.end !== buf.length) throw bad(`${what}: ${buf.length - tlv.end} bytes after the value`);
  return tlv.content;
}

/** The TLVs directly inside a constructed value's content. */
export function children(content: Buffer): Tlv[] {
  const out: Tlv[] = [];
  let pos = 0;
  while (pos < content.length) {
    const tlv = readTlv(content, pos);
    out.push(tlv);
    pos = tlv.end;
  }
  return out;
}

function encodeLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  while (n > 0) {
    bytes.unshift(n & 0xff);
    n = Math.floor(n / 256);
  }
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

export function encodeTlv(tag: number, content: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([tag]), encodeLength(content.length), content]);
}

export function encodeSequence(items: Uint8Array[]): Buffer {
  return encodeTlv(Tag.Sequence, Buffer.concat(items));
}

export function encodeBoolean(value: boolean): Buffer {
  return encodeTlv(Tag.Boolean, Buffer.from([value ? 0xff : 0x00]));
}

export function decodeBoolean(tlv: Tlv, what: string): boolean {
  if (tlv.tag !== Tag.Boolean || tlv.content.length !== 1) throw bad(`${what}: not a BOOLEAN`);
  if (tlv.content[0] === 0xff) return true;
  if (tlv.content[0] === 0x00) return false;
  throw bad(`${what}: BOOLEAN is neither 0x00 nor 0xff`);
}

/** A small non-negative INTEGER (versions). */
export function encodeSmallInteger(value: number): Buffer {
  if (!Number.isInteger(value) || value < 0 || value > 0x7fff_ffff) throw new PackferryError(ErrorCode.Internal, `integer ${value} out of range`);
  const bytes: number[] = [];
  let n = value;
  do {
    bytes.unshift(n & 0xff);
    n = Math.floor(n / 256);
  } while (n > 0);
  if (bytes[0] & 0x80) bytes.unshift(0);
  return encodeTlv(Tag.Integer, Buffer.from(bytes));
}

export function decodeSmallInteger(tlv: Tlv, what: string): number {
  const c = tlv.content;
  if (tlv.tag !== Tag.Integer || c.length === 0 || c.length > 4) throw bad(`${what}: not a small INTEGER`);
  if (c[0] & 0x80) throw bad(`${what}: negative INTEGER`);
  if (c.length > 1 && c[0] === 0 && !(c[1] & 0x80)) throw bad(`${what}: non-minimal INTEGER`);
  return c.readUIntBE(0, c.length);
}

export function encodeUtf8(value: string): Buffer {
  return encodeTlv(Tag.Utf8String, Buffer.from(value, 'utf8'));
}

export function decodeUtf8(tlv: Tlv, what: string): string {
  if (tlv.tag !== Tag.Utf8String) throw bad(`${what}: not a UTF8String`);
  const text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  try {
    return text.decode(tlv.content);
  } catch {
    throw bad(`${what}: invalid UTF-8`);
  }
}

/** DER content bytes of an OBJECT IDENTIFIER given in dotted form ("1.3.6.1..."). */
export function encodeOidContent(oid: string): Buffer {
  const arcs = oid.split('.').map((s) => {
    if (!/^(0|[1-9]\d*)$/.test(s)) throw new PackferryError(ErrorCode.Internal, `bad OID ${oid}`);
    return BigInt(s);
  });
  if (arcs.length < 2 || arcs[0] > 2n || (arcs[0] < 2n && arcs[1] > 39n)) throw new PackferryError(ErrorCode.Internal, `bad OID ${oid}`);
  const values = [arcs[0] * 40n + arcs[1], ...arcs.slice(2)];
  const out: number[] = [];
  for (const v of values) {
    const groups: number[] = [];
    let n = v;
    do {
      groups.unshift(Number(n & 0x7fn));
      n >>= 7n;
    } while (n > 0n);
    for (let i = 0; i < groups.length - 1; i++) groups[i] |= 0x80;
    out.push(...groups);
  }
  return Buffer.from(out);
}

/** Dotted form of an OBJECT IDENTIFIER's content bytes. */
export function decodeOidContent(content: Buffer): string {
  if (content.length === 0 || content[content.length - 1] & 0x80) throw bad('OBJECT IDENTIFIER truncated');
  const values: bigint[] = [];
  let n = 0n;
  let start = true;
  for (const b of content) {
    if (start && b === 0x80) throw bad('non-minimal OBJECT IDENTIFIER arc');
    n = (n << 7n) | BigInt(b & 0x7f);
    start = !(b & 0x80);
    if (start) {
      values.push(n);
      n = 0n;
    }
  }
  const first = values[0];
  const head = first < 80n ? [first / 40n, first % 40n] : [2n, first - 80n];
  return [...head, ...values.slice(1)].map(String).join('.');
}

/** One extension of a certificate (RFC 5280 §4.1: Extension ::= SEQUENCE { extnID, critical, extnValue }). */
export interface RawExtension {
  oid: string;
  critical: boolean;
  /** The extnValue OCTET STRING's content: the DER of the extension's own value. */
  value: Buffer;
}

/**
 * The extensions of a DER certificate (RFC 5280 §4.1.2.9), in order. A v1
 * certificate has none. Checks the structure it walks through; does not
 * verify signatures (the TLS stack or the caller does that).
 */
export function certificateExtensions(certDer: Buffer): RawExtension[] {
  const cert = children(readOne(certDer, Tag.Sequence, 'Certificate'));
  if (cert.length !== 3 || cert[0].tag !== Tag.Sequence) throw bad('Certificate is not SEQUENCE { tbsCertificate, signatureAlgorithm, signature }');
  const out: RawExtension[] = [];
  for (const field of children(cert[0].content)) {
    if (field.tag !== 0xa3) continue; // [3] EXPLICIT Extensions
    for (const ext of children(readOne(field.content, Tag.Sequence, 'Extensions'))) {
      if (ext.tag !== Tag.Sequence) throw bad('Extension is not a SEQUENCE');
      const parts = children(ext.content);
      if (parts.length < 2 || parts.length > 3 || parts[0].tag !== Tag.ObjectIdentifier) throw bad('Extension is not SEQUENCE { extnID, [critical], extnValue }');
      const critical = parts.length === 3 ? decodeBoolean(parts[1], 'Extension.critical') : false;
      const value = parts[parts.length - 1];
      if (value.tag !== Tag.OctetString) throw bad('Extension.extnValue is not an OCTET STRING');
      out.push({ oid: decodeOidContent(parts[0].content), critical, value: value.content });
    }
  }
  return out;
}

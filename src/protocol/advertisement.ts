// What a service says first (gitprotocol-pack "Reference Discovery";
// gitprotocol-v2 "Capability Advertisement"):
// - v0/v1: an optional "version 1" line, then "<oid> <refname>\0<caps>" on the
//   first ref line, "<oid> <refname>" on the rest, "<oid> <refname>^{}" for a
//   peeled tag, "shallow <oid>" lines, then a flush. An empty repository sends
//   "<zero-id> capabilities^{}\0<caps>".
// - v2: "version 2", then one capability per line, then a flush.
import { PackferryError, ErrorCode } from '../core/errors.js';
import type { ObjectId } from '../core/oid.js';
import { Capabilities } from './capabilities.js';
import type { PktLineReader } from './pkt-line-reader.js';

export interface AdvertisedRef {
  name: string;
  oid: ObjectId;
  /** For annotated tags: the object the tag finally points at ("^{}" line, or v2 peeled:). */
  peeled?: ObjectId;
  /** For symbolic refs (HEAD): the ref it points at. */
  symrefTarget?: string;
}

export type Advertisement =
  | { version: 0 | 1; refs: AdvertisedRef[]; capabilities: Capabilities; shallow: ObjectId[] }
  | { version: 2; capabilities: Capabilities };

const utf8 = new TextDecoder('utf-8', { fatal: true });
const OID_RE = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

function protocolError(message: string, details: Record<string, unknown> = {}): PackferryError {
  return new PackferryError(ErrorCode.Protocol, `protocol error: ${message}`, { details });
}

/** A pkt-line's text without its final LF, as UTF-8 (ref names that are not UTF-8 are refused). */
export function packetText(data: Uint8Array): string {
  const end = data.length > 0 && data[data.length - 1] === 0x0a ? data.length - 1 : data.length;
  try {
    return utf8.decode(data.subarray(0, end));
  } catch {
    throw protocolError('a line is not valid UTF-8', { line: Buffer.from(data.subarray(0, 200)).toString('latin1') });
  }
}

export function checkOid(text: string, what: string): ObjectId {
  if (!OID_RE.test(text)) throw protocolError(`bad object id in ${what}: ${JSON.stringify(text.slice(0, 80))}`);
  return text;
}

/** Reads the advertisement up to and including its flush. */
export async function readAdvertisement(reader: PktLineReader): Promise<Advertisement> {
  let packet = await reader.read();
  if (packet.type === 'flush') {
    // Nothing advertised: a v0 server with an empty repository and no capabilities line (old servers).
    return { version: 0, refs: [], capabilities: new Capabilities(), shallow: [] };
  }
  if (packet.type !== 'data') throw protocolError(`unexpected ${packet.type} packet at the start of the advertisement`);
  let text = packetText(packet.data);
  let version: 0 | 1 = 0;
  if (text === 'version 2') return { version: 2, capabilities: await readV2Capabilities(reader) };
  if (text === 'version 1') {
    version = 1;
    packet = await reader.read();
    if (packet.type === 'flush') return { version, refs: [], capabilities: new Capabilities(), shallow: [] };
    if (packet.type !== 'data') throw protocolError(`unexpected ${packet.type} packet in the ref advertisement`);
    text = packetText(packet.data);
  }
  const refs: AdvertisedRef[] = [];
  const shallow: ObjectId[] = [];
  let capabilities = new Capabilities();
  let first = true;
  for (;;) {
    if (first) {
      const nul = text.indexOf('\0');
      if (nul >= 0) {
        capabilities = Capabilities.parseV0(text.slice(nul + 1));
        text = text.slice(0, nul);
      }
    }
    if (text.startsWith('shallow ')) {
      shallow.push(checkOid(text.slice(8), 'shallow line'));
    } else {
      const sp = text.indexOf(' ');
      if (sp < 0) throw protocolError(`bad ref line ${JSON.stringify(text.slice(0, 120))}`);
      const oid = checkOid(text.slice(0, sp), 'ref advertisement');
      const name = text.slice(sp + 1);
      if (first && name === 'capabilities^{}') {
        // An empty repository: no refs, only capabilities.
      } else if (name.endsWith('^{}')) {
        const base = refs[refs.length - 1];
        if (!base || base.name !== name.slice(0, -3)) throw protocolError(`peeled line for ${name} does not follow its ref`);
        base.peeled = oid;
      } else {
        refs.push({ name, oid });
      }
    }
    first = false;
    packet = await reader.read();
    if (packet.type === 'flush') break;
    if (packet.type !== 'data') throw protocolError(`unexpected ${packet.type} packet in the ref advertisement`);
    text = packetText(packet.data);
  }
  for (const symref of capabilities.all('symref')) {
    const colon = symref.indexOf(':');
    const ref = refs.find((r) => r.name === symref.slice(0, colon));
    if (colon > 0 && ref) ref.symrefTarget = symref.slice(colon + 1);
  }
  return { version, refs, capabilities, shallow };
}

async function readV2Capabilities(reader: PktLineReader): Promise<Capabilities> {
  const caps = new Capabilities();
  for (;;) {
    const packet = await reader.read();
    if (packet.type === 'flush') return caps;
    if (packet.type !== 'data') throw protocolError(`unexpected ${packet.type} packet in the capability advertisement`);
    const line = packetText(packet.data);
    const eq = line.indexOf('=');
    caps.add(eq < 0 ? line : line.slice(0, eq), eq < 0 ? undefined : line.slice(eq + 1));
  }
}

// The client side of receive-pack (gitprotocol-pack, "Pushing Data";
// gitprotocol-capabilities: report-status, report-status-v2, atomic,
// delete-refs, push-options, side-band-64k, quiet, ofs-delta): the command
// list, push options, and reading the report-status back.
import { ZERO_ID } from '../core/refs.js';
import { PackferryError, ErrorCode } from '../core/errors.js';
import type { ObjectId } from '../core/oid.js';
import { packetText } from './advertisement.js';
import { AGENT, Capabilities } from './capabilities.js';
import { flushPkt, pktLineText } from './pkt-line.js';
import type { PktLineReader } from './pkt-line-reader.js';

export interface RefUpdateCommand {
  /** The value the ref must have now (zero id: it must not exist). */
  oldOid: ObjectId;
  /** The new value (zero id: delete). */
  newOid: ObjectId;
  name: string;
}

/** The capabilities packferry asks receive-pack for, among those it offers. */
export function chooseReceivePackCaps(serverCaps: Capabilities, options: { atomic?: boolean; quiet?: boolean; pushOptions?: boolean }): string[] {
  const caps: string[] = [];
  if (serverCaps.has('report-status-v2')) caps.push('report-status-v2');
  else if (serverCaps.has('report-status')) caps.push('report-status');
  if (serverCaps.has('side-band-64k')) caps.push('side-band-64k');
  if (options.quiet && serverCaps.has('quiet')) caps.push('quiet');
  if (options.atomic && serverCaps.has('atomic')) caps.push('atomic');
  if (options.pushOptions && serverCaps.has('push-options')) caps.push('push-options');
  if (serverCaps.has('ofs-delta')) caps.push('ofs-delta');
  if (serverCaps.has('agent')) caps.push(`agent=${AGENT}`);
  const format = serverCaps.get('object-format');
  if (format !== undefined) caps.push(`object-format=${format}`);
  return caps;
}

/** The command list (capabilities after a NUL on the first), its flush, and push options if any. */
export function receivePackRequest(commands: RefUpdateCommand[], caps: string[], pushOptions: string[] = []): Buffer {
  if (commands.length === 0) throw new PackferryError(ErrorCode.Internal, 'internal error: a push needs at least one command');
  const parts = commands.map((c, i) => {
    for (const s of [c.name, ...pushOptions]) {
      if (/[\0\n]/.test(s)) throw new PackferryError(ErrorCode.InvalidRefName, `refusing to send a name with NUL or LF: ${JSON.stringify(s)}`);
    }
    return pktLineText(i === 0 ? `${c.oldOid} ${c.newOid} ${c.name}\0${caps.join(' ')}` : `${c.oldOid} ${c.newOid} ${c.name}`);
  });
  parts.push(flushPkt);
  if (caps.includes('push-options')) {
    for (const option of pushOptions) parts.push(pktLineText(option));
    parts.push(flushPkt);
  }
  return Buffer.concat(parts);
}

export interface RefStatus {
  name: string;
  ok: boolean;
  /** Why the ref was refused ("non-fast-forward", a hook's message...). */
  reason?: string;
}

export interface ReportStatus {
  /** "ok", or what went wrong unpacking the pack. */
  unpack: string;
  refs: RefStatus[];
}

/** Reads a report-status (or report-status-v2) up to its flush. */
export async function readReportStatus(reader: PktLineReader): Promise<ReportStatus> {
  const first = await reader.read();
  if (first.type !== 'data') throw new PackferryError(ErrorCode.Protocol, `protocol error: unexpected ${first.type} packet instead of report-status`);
  const unpackLine = packetText(first.data);
  if (!unpackLine.startsWith('unpack ')) throw new PackferryError(ErrorCode.Protocol, `protocol error: bad report-status line ${JSON.stringify(unpackLine.slice(0, 80))}`);
  const report: ReportStatus = { unpack: unpackLine.slice(7), refs: [] };
  for (;;) {
    const packet = await reader.read();
    if (packet.type === 'flush') return report;
    if (packet.type !== 'data') throw new PackferryError(ErrorCode.Protocol, `protocol error: unexpected ${packet.type} packet in report-status`);
    const line = packetText(packet.data);
    if (line.startsWith('ok ')) {
      report.refs.push({ name: line.slice(3), ok: true });
    } else if (line.startsWith('ng ')) {
      const rest = line.slice(3);
      const sp = rest.indexOf(' ');
      report.refs.push({ name: sp < 0 ? rest : rest.slice(0, sp), ok: false, reason: sp < 0 ? 'rejected' : rest.slice(sp + 1) });
    } else if (line.startsWith('option ')) {
      // report-status-v2 detail about the previous ref (refname, old-oid, new-oid, forced-update): not needed.
    } else {
      throw new PackferryError(ErrorCode.Protocol, `protocol error: bad report-status line ${JSON.stringify(line.slice(0, 80))}`);
    }
  }
}

// ---- the server side ----------------------------------------------------

/** What receive-pack offers (gitprotocol-capabilities, receive-pack's list). */
export const RECEIVE_PACK_CAPABILITIES = [
  'report-status',
  'report-status-v2',
  'delete-refs',
  'side-band-64k',
  'quiet',
  'atomic',
  'ofs-delta',
  'push-options',
  'object-format=sha1',
  `agent=${AGENT}`,
];


/** The ref advertisement receive-pack sends: refs sorted, capabilities after a NUL on the first line. */
export function receivePackAdvertisement(refs: { name: string; oid: ObjectId }[], capabilities: string[] = RECEIVE_PACK_CAPABILITIES): Buffer {
  const sorted = [...refs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const caps = capabilities.join(' ');
  const lines =
    sorted.length === 0
      ? [pktLineText(`${ZERO_ID} capabilities^{}\0${caps}`)]
      : sorted.map((r, i) => pktLineText(i === 0 ? `${r.oid} ${r.name}\0${caps}` : `${r.oid} ${r.name}`));
  return Buffer.concat([...lines, flushPkt]);
}

export interface ReceivePackRequest {
  commands: RefUpdateCommand[];
  /** The capabilities the client chose (from the first command line). */
  capabilities: Capabilities;
  pushOptions: string[];
  /** "shallow <oid>" lines a shallow client sent first. */
  shallow: ObjectId[];
}

const OID_RE = /^[0-9a-f]{40}$/;

/**
 * Reads the command list (and push options, when the client chose
 * push-options) of a push. The pack, if any, follows on the same stream
 * (`reader.readRemainder()`). At most `maxCommands` commands.
 */
export async function readReceivePackRequest(reader: PktLineReader, maxCommands = 100_000): Promise<ReceivePackRequest> {
  const bad = (why: string) => new PackferryError(ErrorCode.Protocol, `protocol error: ${why}`);
  const commands: RefUpdateCommand[] = [];
  const shallow: ObjectId[] = [];
  let capabilities = new Capabilities();
  for (;;) {
    const packet = await reader.read();
    if (packet.type === 'flush') break;
    if (packet.type !== 'data') throw bad(`unexpected ${packet.type} packet in the command list`);
    let line = packetText(packet.data);
    if (commands.length === 0) {
      const nul = line.indexOf('\0');
      if (nul >= 0) {
        capabilities = Capabilities.parseV0(line.slice(nul + 1));
        line = line.slice(0, nul);
      }
    }
    if (line.startsWith('shallow ')) {
      const oid = line.slice(8);
      if (!OID_RE.test(oid)) throw bad('bad shallow line');
      shallow.push(oid);
      continue;
    }
    if (line.startsWith('push-cert')) throw new PackferryError(ErrorCode.UnsupportedCapability, 'signed pushes (push-cert) are not supported');
    const parts = line.split(' ');
    if (parts.length !== 3 || !OID_RE.test(parts[0]) || !OID_RE.test(parts[1]) || parts[2] === '') throw bad(`bad command line ${JSON.stringify(line.slice(0, 120))}`);
    if (commands.length >= maxCommands) throw new PackferryError(ErrorCode.LimitExceeded, `more than ${maxCommands} ref updates in one push`);
    commands.push({ oldOid: parts[0], newOid: parts[1], name: parts[2] });
  }
  const pushOptions: string[] = [];
  if (capabilities.has('push-options') && commands.length > 0) {
    for (;;) {
      const packet = await reader.read();
      if (packet.type === 'flush') break;
      if (packet.type !== 'data') throw bad(`unexpected ${packet.type} packet in push options`);
      if (pushOptions.length >= 1000) throw new PackferryError(ErrorCode.LimitExceeded, 'more than 1000 push options');
      pushOptions.push(packetText(packet.data));
    }
  }
  return { commands, capabilities, pushOptions, shallow };
}

/** A report-status (v1; with `v2`, report-status-v2, which adds nothing packferry needs) as pkt-lines. */
export function encodeReportStatus(report: ReportStatus): Buffer {
  const lines = [pktLineText(`unpack ${report.unpack}`)];
  for (const r of report.refs) lines.push(pktLineText(r.ok ? `ok ${r.name}` : `ng ${r.name} ${r.reason ?? 'rejected'}`));
  lines.push(flushPkt);
  return Buffer.concat(lines);
}

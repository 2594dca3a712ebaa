// The client side of receive-pack (gitprotocol-pack, "Pushing Data";
// gitprotocol-capabilities: report-status, report-status-v2, atomic,
// delete-refs, push-options, side-band-64k, quiet, ofs-delta): the command
// list, push options, and reading the report-status back.
import { PackferryError, ErrorCode } from '../core/errors.js';
import type { ObjectId } from '../core/oid.js';
import { packetText } from './advertisement.js';
import { AGENT, type Capabilities } from './capabilities.js';
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

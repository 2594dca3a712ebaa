// The pure pkt-line decoder and the encoder (gitprotocol-common, "pkt-line Format").
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCode, PackferryError } from '../../src/core/errors.js';
import {
  DELIM,
  FLUSH,
  LARGE_PACKET_DATA_MAX,
  LARGE_PACKET_MAX,
  RESPONSE_END,
  decodePktLine,
  decodePktLines,
  delimPkt,
  encodePacket,
  encodePackets,
  flushPkt,
  lineText,
  pktLine,
  pktLineText,
  responseEndPkt,
  type Packet,
} from '../../src/protocol/index.js';

const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');
const text = (packet: Packet): string => {
  assert.equal(packet.type, 'data');
  return Buffer.from(packet.data).toString('latin1');
};

function assertPackferryError(fn: () => unknown, code: string, details?: Record<string, unknown>): PackferryError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof PackferryError, `expected a PackferryError, got ${String(caught)}`);
  assert.equal(caught.code, code);
  if (details !== undefined) {
    for (const [key, value] of Object.entries(details)) assert.deepEqual(caught.details[key], value, key);
  }
  return caught;
}

describe('decodePktLine', () => {
  it('decodes the examples of gitprotocol-common', () => {
    for (const [wire, payload] of [
      ['0006a\n', 'a\n'],
      ['0005a', 'a'],
      ['000bfoobar\n', 'foobar\n'],
      ['0004', ''],
    ] as const) {
      const result = decodePktLine(bytes(wire));
      assert.equal(result.kind, 'complete');
      assert.equal(result.consumed, wire.length);
      assert.equal(text(result.packet), payload);
    }
  });

  it('decodes flush, delim and response-end as their own packet types', () => {
    for (const [wire, packet] of [
      ['0000', FLUSH],
      ['0001', DELIM],
      ['0002', RESPONSE_END],
    ] as const) {
      const result = decodePktLine(bytes(wire + 'rest'));
      assert.deepEqual(result, { kind: 'complete', packet, consumed: 4 });
    }
  });

  it('returns a view into the input, not a copy', () => {
    const input = bytes('xx0009done\nyy');
    const result = decodePktLine(input, 2);
    assert.equal(result.kind, 'complete');
    assert.equal(result.packet.type, 'data');
    assert.equal(result.packet.data.buffer, input.buffer);
    assert.equal(result.packet.data.byteOffset, input.byteOffset + 6);
    assert.equal(result.consumed, 9);
  });

  it('reports how many bytes are still needed', () => {
    assert.deepEqual(decodePktLine(bytes('')), { kind: 'incomplete', needed: 4 });
    assert.deepEqual(decodePktLine(bytes('00')), { kind: 'incomplete', needed: 2 });
    assert.deepEqual(decodePktLine(bytes('000bfoo')), { kind: 'incomplete', needed: 4 });
    assert.deepEqual(decodePktLine(bytes('xx000bfoo'), 2), { kind: 'incomplete', needed: 4 });
  });

  it('accepts upper-case hex digits as Git does', () => {
    const result = decodePktLine(bytes('000A peel\n'));
    assert.equal(result.kind, 'complete');
    assert.equal(text(result.packet), ' peel\n');
    assert.equal(decodePktLine(bytes(`FFF0${'x'.repeat(65516)}`)).kind, 'complete');
  });

  it('rejects 0003, the one reserved length below 4', () => {
    assertPackferryError(() => decodePktLine(bytes('0003')), ErrorCode.PktLineLength, { offset: 0, length: 3 });
  });

  it('accepts a pkt-line of exactly LARGE_PACKET_MAX bytes and rejects one byte more', () => {
    const max = Buffer.concat([bytes('fff0'), Buffer.alloc(LARGE_PACKET_DATA_MAX, 0x61)]);
    const ok = decodePktLine(max);
    assert.equal(ok.kind, 'complete');
    assert.equal(ok.consumed, LARGE_PACKET_MAX);
    // Git 2.39 itself would read fff1..fff3; the spec's MUST wins here.
    for (const header of ['fff1', 'fff3', 'ffff']) {
      const err = assertPackferryError(() => decodePktLine(bytes(header)), ErrorCode.PktLineLength, { offset: 0 });
      assert.match(err.message, /bad line length \d+ \(more than LARGE_PACKET_MAX/);
    }
  });

  it('puts the absolute offset of the bad packet in the error', () => {
    const input = bytes('0000zz00');
    assertPackferryError(() => decodePktLine(input, 4, 1000), ErrorCode.PktLineLength, {
      offset: 1004,
      header: 'zz00',
    });
  });

  it('shows unprintable header bytes escaped in the message', () => {
    const err = assertPackferryError(() => decodePktLine(Uint8Array.of(0x30, 0x00, 0x5c, 0xff)), ErrorCode.PktLineLength);
    assert.equal(err.message, 'protocol error: bad line length character: 0\\x00\\x5c\\xff');
  });

  // Regression tests for length prefixes that a parseInt-based reader (as in
  // isomorphic-git) accepts: every one of the 4 bytes must be a hex digit.
  for (const header of ['+00a', '-001', ' 00a', '00a ', '0x1a', '1e3 ', '00\n0', '\u0000\u0000\u0000\u0000', 'zzzz']) {
    it(`rejects the length prefix ${JSON.stringify(header)}`, () => {
      assertPackferryError(() => decodePktLine(bytes(`${header}xxxxxxxxxxxxxxxxxxxxxxxxxx`)), ErrorCode.PktLineLength, {
        offset: 0,
      });
    });
  }
});

describe('decodePktLines', () => {
  it('decodes a whole request body', () => {
    const packets = decodePktLines(bytes('0014command=ls-refs\n00010009peel\n0000'));
    assert.deepEqual(
      packets.map((p) => (p.type === 'data' ? lineText(p.data) : p.type)),
      ['command=ls-refs', 'delim', 'peel', 'flush'],
    );
  });

  it('fails with ERR_PKT_LINE_TRUNCATED on a packet cut short, at that packet', () => {
    assertPackferryError(() => decodePktLines(bytes('0000000bfoo')), ErrorCode.PktLineTruncated, {
      offset: 4,
      available: 7,
      needed: 4,
    });
    assertPackferryError(() => decodePktLines(bytes('000')), ErrorCode.PktLineTruncated, { offset: 0, needed: 1 });
  });
});

describe('lineText', () => {
  it('strips exactly one trailing LF and decodes UTF-8', () => {
    assert.equal(lineText(bytes('a\n')), 'a');
    assert.equal(lineText(bytes('a')), 'a');
    assert.equal(lineText(bytes('a\n\n')), 'a\n');
    assert.equal(lineText(Buffer.from('Grüße\n', 'utf8')), 'Grüße');
    assert.equal(lineText(new Uint8Array(0)), '');
  });
});

describe('encoder', () => {
  it('frames data with a lowercase 4-digit hex length', () => {
    assert.equal(pktLine('a\n').toString('latin1'), '0006a\n');
    assert.equal(pktLine('a').toString('latin1'), '0005a');
    assert.equal(pktLine(bytes('foobar\n')).toString('latin1'), '000bfoobar\n');
    assert.equal(pktLine('').toString('latin1'), '0004');
    assert.equal(pktLine('x'.repeat(0xab - 4)).subarray(0, 4).toString('latin1'), '00ab');
  });

  it('counts UTF-8 bytes, not characters', () => {
    assert.deepEqual(pktLine('é'), Buffer.concat([bytes('0006'), Buffer.from('é', 'utf8')]));
  });

  it('adds the LF of a text line', () => {
    assert.equal(pktLineText('done').toString('latin1'), '0009done\n');
    assertPackferryError(() => pktLineText('two\nlines'), ErrorCode.Usage);
  });

  it('encodes the special packets', () => {
    assert.equal(flushPkt.toString('latin1'), '0000');
    assert.equal(delimPkt.toString('latin1'), '0001');
    assert.equal(responseEndPkt.toString('latin1'), '0002');
    assert.equal(encodePacket(FLUSH), flushPkt);
    assert.equal(encodePacket(DELIM), delimPkt);
    assert.equal(encodePacket(RESPONSE_END), responseEndPkt);
  });

  it('accepts LARGE_PACKET_DATA_MAX bytes of payload and refuses one more', () => {
    const max = pktLine(new Uint8Array(LARGE_PACKET_DATA_MAX));
    assert.equal(max.length, LARGE_PACKET_MAX);
    assert.equal(max.subarray(0, 4).toString('latin1'), 'fff0');
    assertPackferryError(() => pktLine(new Uint8Array(LARGE_PACKET_DATA_MAX + 1)), ErrorCode.PktLineLength, {
      length: LARGE_PACKET_MAX + 1,
    });
    assertPackferryError(() => pktLine('é'.repeat(LARGE_PACKET_DATA_MAX / 2 + 1)), ErrorCode.PktLineLength);
  });

  it('round-trips a request through encodePackets and decodePktLines', () => {
    const packets: Packet[] = [
      { type: 'data', data: bytes('command=fetch\n') },
      DELIM,
      { type: 'data', data: bytes('want 0123456789012345678901234567890123456789\n') },
      { type: 'data', data: new Uint8Array(0) },
      FLUSH,
      RESPONSE_END,
    ];
    const wire = encodePackets(packets);
    assert.equal(
      wire.toString('latin1'),
      '0012command=fetch\n00010032want 0123456789012345678901234567890123456789\n000400000002',
    );
    assert.deepEqual(
      decodePktLines(wire).map((p) => (p.type === 'data' ? { type: p.type, data: Buffer.from(p.data) } : p)),
      packets.map((p) => (p.type === 'data' ? { type: p.type, data: Buffer.from(p.data) } : p)),
    );
  });
});

// Property tests (fast-check) for the pkt-line decoder, the streaming reader
// and side-band. All input is hostile: whatever the bytes and however they are
// chunked, decoding must give the same answer as decoding them in one piece,
// end, and fail only with PackferryErrors (never a TypeError, never a hang).
// Crashes found here are kept as named regression tests at the bottom.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  Band,
  DELIM,
  FLUSH,
  LARGE_PACKET_DATA_MAX,
  PktLineReader,
  RESPONSE_END,
  RemoteMessageSplitter,
  decodePktLine,
  decodePktLines,
  demuxSideBand,
  encodePackets,
  readPktLines,
  sideBandPacket,
  sideBandPacketMax,
  type Packet,
  type RemoteMessage,
  type SideBandMode,
} from '../../src/protocol/index.js';
import { PackferryError } from '../../src/core/errors.js';
import { chunked, collect, concatStream, outcome, type Outcome } from './helpers.js';

const NUM_RUNS = 300;

async function* fromArray<T>(items: T[]): AsyncGenerator<T> {
  yield* items;
}

/** A packet as plain comparable data. */
type Plain = string;
const plain = (p: Packet): Plain => (p.type === 'data' ? `data:${Buffer.from(p.data).toString('hex')}` : p.type);

/** Bytes that look like pkt-line streams often enough to reach deep states. */
const hexish = fc.constantFrom(...'0123456789abcdefABCDEFg +-x\n\u0000'.split(''));
const piece: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 40 }),
  fc.uint8Array({ maxLength: 300 }).map((data) => encodePackets([{ type: 'data', data }])),
  fc.constantFrom('0000', '0001', '0002', '0003', '0004', '0005\u0001', 'fff0', 'fff1', 'FFFF').map((s) =>
    Buffer.from(s, 'latin1'),
  ),
  fc.array(hexish, { minLength: 1, maxLength: 6 }).map((cs) => Buffer.from(cs.join(''), 'latin1')),
);
const streamBytes: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 500 }),
  fc.array(piece, { maxLength: 12 }).map((pieces) => Buffer.concat(pieces)),
);
const cuts = fc.array(fc.nat({ max: 600 }), { maxLength: 20 });

/** The reference: the pure decoder over the whole buffer, packets until the first error. */
function decodeWhole(buf: Uint8Array): { packets: Plain[]; end: Outcome<null> } {
  const packets: Plain[] = [];
  let pos = 0;
  for (;;) {
    try {
      if (pos === buf.length) return { packets, end: { ok: true, value: null } };
      const r = decodePktLine(buf, pos);
      if (r.kind === 'incomplete') {
        // The same error the stream reports for bytes left at its end.
        decodePktLines(buf, pos);
        assert.fail('decodePktLines must throw on an incomplete tail');
      }
      packets.push(plain(r.packet));
      pos += r.consumed;
    } catch (err) {
      if (err instanceof assert.AssertionError) throw err;
      return { packets, end: { ok: false, code: (err as { code: string }).code, details: { ...(err as { details: object }).details } } };
    }
  }
}

/** The streaming reader over `buf` cut at `cutPoints`, in the same shape. */
async function decodeStream(buf: Uint8Array, cutPoints: number[]): Promise<{ packets: Plain[]; end: Outcome<null> }> {
  const packets: Plain[] = [];
  const end = await outcome(async () => {
    for await (const p of readPktLines(chunked(buf, cutPoints))) packets.push(plain(p));
    return null;
  });
  return { packets, end };
}

const packetArb: fc.Arbitrary<Packet> = fc.oneof(
  { weight: 5, arbitrary: fc.uint8Array({ maxLength: 200 }).map((data): Packet => ({ type: 'data', data })) },
  { weight: 1, arbitrary: fc.constantFrom<Packet>(FLUSH, DELIM, RESPONSE_END) },
);

describe('fuzz: pkt-line decoding', () => {
  it('decodes any bytes split at any chunk boundaries exactly as in one piece', { timeout: 120_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(streamBytes, cuts, async (buf, cutPoints) => {
        const whole = decodeWhole(buf);
        const streamed = await decodeStream(buf, cutPoints);
        assert.deepEqual(streamed, whole);
      }),
      { numRuns: NUM_RUNS * 3 },
    );
  });

  it('fails only with PackferryErrors of the pkt-line codes', { timeout: 60_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(streamBytes, cuts, async (buf, cutPoints) => {
        const { end } = await decodeStream(buf, cutPoints); // rethrows anything that is not a PackferryError
        if (!end.ok) {
          assert.ok(['ERR_PKT_LINE_LENGTH', 'ERR_PKT_LINE_TRUNCATED'].includes(end.code), end.code);
          assert.equal(typeof end.details.offset, 'number');
          assert.ok((end.details.offset as number) < buf.length);
        }
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('says how many bytes are needed truthfully', () => {
    fc.assert(
      fc.property(streamBytes, fc.nat({ max: 600 }), (buf, cut) => {
        const whole = outcomeSync(() => decodePktLine(buf));
        const k = Math.min(cut, buf.length);
        const part = outcomeSync(() => decodePktLine(buf.subarray(0, k)));
        if (!whole.ok) {
          // A bad length is seen as soon as its 4 bytes are there, never before.
          if (k >= 4) assert.deepEqual(part, whole);
          else assert.deepEqual(part, { ok: true, value: { kind: 'incomplete', needed: 4 - k } });
        } else if (whole.value.kind === 'complete') {
          const consumed = whole.value.consumed;
          if (k >= consumed) assert.deepEqual(plainResult(part), plainResult(whole));
          else assert.deepEqual(part, { ok: true, value: { kind: 'incomplete', needed: k < 4 ? 4 - k : consumed - k } });
        } else {
          // The whole buffer is itself short of a packet: the prefix needs the same end point.
          const end = buf.length + whole.value.needed;
          assert.deepEqual(part, { ok: true, value: { kind: 'incomplete', needed: k < 4 ? 4 - k : end - k } });
        }
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('round-trips any packets through the encoder and the streaming decoder', { timeout: 60_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(packetArb, { maxLength: 20 }), cuts, async (packets, cutPoints) => {
        const wire = encodePackets(packets);
        assert.deepEqual(decodePktLines(wire).map(plain), packets.map(plain));
        assert.deepEqual((await collect(readPktLines(chunked(wire, cutPoints)))).map(plain), packets.map(plain));
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('round-trips full-size packets split anywhere', { timeout: 60_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: LARGE_PACKET_DATA_MAX - 3, max: LARGE_PACKET_DATA_MAX }), { minLength: 1, maxLength: 3 }),
        fc.array(fc.nat({ max: 3 * 65520 }), { maxLength: 30 }),
        async (sizes, cutPoints) => {
          const packets: Packet[] = sizes.map((n, i) => ({ type: 'data', data: new Uint8Array(n).fill(i + 1) }));
          const wire = encodePackets(packets);
          const got = await collect(readPktLines(chunked(wire, cutPoints)));
          assert.deepEqual(
            got.map((p) => (p.type === 'data' ? [p.data.length, p.data[0], p.data[p.data.length - 1]] : p.type)),
            sizes.map((n, i) => [n, i + 1, i + 1]),
          );
        },
      ),
      { numRuns: 50 },
    );
  });

  it('hands back exactly the bytes after the packets read, however split', { timeout: 60_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(packetArb, { maxLength: 8 }),
        fc.uint8Array({ maxLength: 300 }),
        cuts,
        fc.boolean(),
        async (packets, tail, cutPoints, peek) => {
          const wire = Buffer.concat([encodePackets(packets), tail]);
          const reader = new PktLineReader(chunked(wire, cutPoints));
          for (const expected of packets) assert.equal(plain(await reader.read()), plain(expected));
          if (peek) await outcome(() => reader.tryPeek()); // the tail may or may not decode as a packet
          assert.deepEqual(await concatStream(reader.readRemainder()), Buffer.from(tail));
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });
});

function outcomeSync<T>(fn: () => T): Outcome<T> {
  try {
    return { ok: true, value: fn() };
  } catch (err) {
    if (err instanceof PackferryError) return { ok: false, code: err.code, details: { ...err.details } };
    throw err;
  }
}

function plainResult(o: Outcome<ReturnType<typeof decodePktLine>>): unknown {
  if (!o.ok) return o;
  return o.value.kind === 'complete' ? { packet: plain(o.value.packet), consumed: o.value.consumed } : o.value;
}

describe('fuzz: side-band', () => {
  const sideBandPacketArb: fc.Arbitrary<Packet> = fc.oneof(
    {
      weight: 6,
      arbitrary: fc
        .tuple(fc.oneof(fc.constantFrom(1, 2, 3), fc.integer({ min: 0, max: 255 })), fc.uint8Array({ maxLength: 50 }))
        .map(([b, payload]): Packet => ({ type: 'data', data: Buffer.concat([Uint8Array.of(b), payload]) })),
    },
    { weight: 1, arbitrary: fc.constantFrom<Packet>(FLUSH, DELIM, RESPONSE_END, { type: 'data', data: new Uint8Array(0) }) },
  );

  it('demultiplexes any packets into band-1 data or a PackferryError', { timeout: 60_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(sideBandPacketArb, { maxLength: 15 }), async (packets) => {
        const data: Buffer[] = [];
        const result = await outcome(async () => {
          for await (const chunk of demuxSideBand(fromArray(packets), { onProgress: () => {} })) {
            data.push(Buffer.from(chunk));
          }
        });
        // The reference: band-1 payloads up to the first packet that ends or breaks the stream.
        const expected: Buffer[] = [];
        let expectedCode: string | undefined = 'ERR_PKT_LINE_TRUNCATED';
        for (const p of packets) {
          if (p.type !== 'data') {
            expectedCode = undefined;
            break;
          }
          const b = p.data[0];
          if (p.data.length === 0 || b === 0 || b > 3) {
            expectedCode = 'ERR_SIDE_BAND_CHANNEL';
            break;
          }
          if (b === Band.Error) {
            expectedCode = 'ERR_REMOTE';
            break;
          }
          if (b === Band.Data && p.data.length > 1) expected.push(Buffer.from(p.data.subarray(1)));
        }
        assert.deepEqual(Buffer.concat(data), Buffer.concat(expected));
        assert.equal(result.ok ? undefined : result.code, expectedCode);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('muxes any data into packets no larger than the mode allows, and back', { timeout: 60_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 5000 }),
        fc.constantFrom<SideBandMode>('side-band', 'side-band-64k'),
        fc.constantFrom(Band.Data, Band.Progress),
        cuts,
        async (data, mode, b, cutPoints) => {
          const wire = Buffer.concat([sideBandPacket(b, data, mode), Buffer.from('0000')]);
          const packets = await collect(readPktLines(chunked(wire, cutPoints)));
          for (const p of packets) if (p.type === 'data') assert.ok(p.data.length + 4 <= sideBandPacketMax(mode));
          const progress: string[] = [];
          const out = await concatStream(demuxSideBand(fromArray(packets), { onProgress: (m) => progress.push(m.text) }));
          if (b === Band.Data) assert.deepEqual(out, Buffer.from(data));
          else {
            assert.equal(out.length, 0);
            assert.equal(progress.join(''), Buffer.from(data).toString('utf8').replace(/[\r\n]/g, ''));
          }
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });

  it('splits progress text the same way however it is packetized', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 80 }), fc.array(fc.nat({ max: 200 })), (s, cutPoints) => {
        const text = s.replace(/x/g, '\r').replace(/y/g, '\n');
        const buf = Buffer.from(text, 'utf8');
        const run = (pieces: Uint8Array[]): RemoteMessage[] => {
          const out: RemoteMessage[] = [];
          const splitter = new RemoteMessageSplitter();
          for (const piece of pieces) splitter.push(piece, (m) => out.push(m));
          splitter.finish((m) => out.push(m));
          return out;
        };
        const points = [0, ...[...new Set(cutPoints.filter((c) => c < buf.length))].sort((a, b) => a - b), buf.length];
        const pieces = points.slice(1).map((end, i) => buf.subarray(points[i], end));
        const whole = run([buf]);
        assert.deepEqual(run(pieces), whole);
        assert.equal(whole.map((m) => m.text + m.end).join(''), text);
      }),
      { numRuns: NUM_RUNS },
    );
  });
});

// Crashes the properties above found, kept as named regression tests.
describe('fuzz regressions', () => {
  // Found by "hands back exactly the bytes after the packets read": peeking at
  // a tail too short to be a pkt-line pulled its second chunk into the
  // assembly buffer, failed with ERR_PKT_LINE_TRUNCATED, and dropped that
  // chunk, so readRemainder() lost bytes. Counterexample:
  // [[flush], Uint8Array [0,0], cuts [5], peek].
  it('keeps the bytes of a truncated peek for readRemainder', async () => {
    const wire = Buffer.from([0x30, 0x30, 0x30, 0x30, 0, 0]);
    const reader = new PktLineReader(chunked(wire, [5]));
    assert.equal((await reader.read()).type, 'flush');
    const peek = await outcome(() => reader.tryPeek());
    assert.deepEqual(peek, { ok: false, code: 'ERR_PKT_LINE_TRUNCATED', details: { offset: 4, available: 2, needed: 2 } });
    assert.deepEqual(await concatStream(reader.readRemainder()), Buffer.from([0, 0]));
  });
});

// The streaming pkt-line reader: chunk boundaries anywhere, truncation,
// peeking, handing back the remainder (the raw pack after a v0 NAK).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCode, isPackferryError } from '../../src/core/errors.js';
import {
  PktLineReader,
  decodePktLines,
  encodePackets,
  flushPkt,
  lineText,
  pktLine,
  pktLineText,
  readPktLines,
  type Packet,
} from '../../src/protocol/index.js';
import { byteByByte, chunked, collect, concatStream } from './helpers.js';

const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');
const show = (p: Packet): string => (p.type === 'data' ? `data:${Buffer.from(p.data).toString('latin1')}` : p.type);

const sample = Buffer.concat([
  pktLineText('version 2'),
  pktLineText('agent=git/2.39.5'),
  bytes('0001'),
  pktLine(Buffer.alloc(70000 - 65536 + 3000, 0x62)),
  pktLine(''),
  flushPkt,
  bytes('0002'),
]);
const expected = decodePktLines(sample).map(show);

/** A source that records whether it was closed through return(). */
function trackedSource(chunks: Uint8Array[]): AsyncIterable<Uint8Array> & { returned: boolean; pulled: number } {
  const state = {
    returned: false,
    pulled: 0,
    [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
      let i = 0;
      return {
        next: async () => {
          state.pulled++;
          return i < chunks.length ? { done: false, value: chunks[i++] } : { done: true, value: undefined };
        },
        return: async () => {
          state.returned = true;
          return { done: true, value: undefined };
        },
      };
    },
  };
  return state;
}

describe('readPktLines', () => {
  it('decodes a stream in one chunk', async () => {
    assert.deepEqual((await collect(readPktLines(chunked(sample)))).map(show), expected);
  });

  it('decodes a stream delivered one byte at a time', async () => {
    assert.deepEqual((await collect(readPktLines(byteByByte(sample)))).map(show), expected);
  });

  it('decodes with a cut at every position, including inside the length prefix', async () => {
    const head = sample.subarray(0, 39); // version, agent, delim
    const headExpected = decodePktLines(head).map(show);
    assert.deepEqual(headExpected, ['data:version 2\n', 'data:agent=git/2.39.5\n', 'delim']);
    for (let cut = 1; cut < head.length; cut++) {
      for (const second of [cut + 1, cut + 3, head.length - 1]) {
        const got = await collect(readPktLines(chunked(head, [cut, second])));
        assert.deepEqual(got.map(show), headExpected, `cuts at ${cut}, ${second}`);
      }
    }
  });

  it('returns views into the chunks for packets that lie within one chunk', async () => {
    const chunk = Buffer.concat([pktLineText('one'), pktLineText('two')]);
    const [one, two] = await collect(readPktLines(chunked(chunk)));
    assert.ok(one.type === 'data' && two.type === 'data');
    assert.equal(one.data.buffer, chunk.buffer);
    assert.equal(two.data.buffer, chunk.buffer);
  });

  it('ignores empty chunks', async () => {
    const source = (async function* () {
      yield new Uint8Array(0);
      yield bytes('00');
      yield new Uint8Array(0);
      yield bytes('09done\n0000');
      yield new Uint8Array(0);
    })();
    assert.deepEqual((await collect(readPktLines(source))).map(show), ['data:done\n', 'flush']);
  });

  it('ends cleanly at a packet boundary, and fails with ERR_PKT_LINE_TRUNCATED inside a packet', async () => {
    assert.deepEqual(await collect(readPktLines(chunked(new Uint8Array(0)))), []);
    for (const [input, offset] of [
      ['0009done\n000', 9],
      ['0009done\n0009do', 9],
      ['0', 0],
    ] as const) {
      await assert.rejects(collect(readPktLines(byteByByte(bytes(input)))), (err: unknown) => {
        assert.ok(isPackferryError(err, ErrorCode.PktLineTruncated));
        assert.equal(err.details.offset, offset);
        return true;
      });
    }
  });

  it('reports a bad length with its absolute stream offset, whatever the chunking', async () => {
    const input = Buffer.concat([pktLineText('a'), pktLineText('bb'), bytes('00g0xxxxxxxxxxxxxxxx')]);
    for (const source of [chunked(input), byteByByte(input), chunked(input, [13, 15])]) {
      await assert.rejects(collect(readPktLines(source)), (err: unknown) => {
        assert.ok(isPackferryError(err, ErrorCode.PktLineLength));
        assert.equal(err.details.offset, 13);
        assert.equal(err.details.header, '00g0');
        return true;
      });
    }
  });

  it('closes the source when the consumer stops early', async () => {
    const source = trackedSource([Buffer.concat([pktLineText('a'), pktLineText('b')])]);
    for await (const packet of readPktLines(source)) {
      assert.equal(show(packet), 'data:a\n');
      break;
    }
    assert.equal(source.returned, true);
  });

  it('stops with ERR_ABORTED once the signal is aborted', async () => {
    const controller = new AbortController();
    const got: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const packet of readPktLines(byteByByte(sample), { signal: controller.signal })) {
          got.push(show(packet));
          controller.abort(new Error('user pressed ^C'));
        }
      })(),
      (err: unknown) => isPackferryError(err, ErrorCode.Aborted),
    );
    assert.deepEqual(got, ['data:version 2\n']);
  });

  it('rejects a source that yields something other than bytes', async () => {
    const source = (async function* () {
      yield '0009done\n' as unknown as Uint8Array;
    })();
    await assert.rejects(collect(readPktLines(source)), (err: unknown) => isPackferryError(err, ErrorCode.Usage));
  });
});

describe('PktLineReader', () => {
  it('reads, peeks without consuming, and tells the stream offset', async () => {
    const reader = new PktLineReader(byteByByte(sample));
    assert.equal(show((await reader.tryPeek())!), 'data:version 2\n');
    assert.equal(show((await reader.tryPeek())!), 'data:version 2\n');
    assert.equal(reader.offset, 0);
    assert.equal(show(await reader.read()), 'data:version 2\n');
    assert.equal(reader.offset, 14);
    const rest: string[] = [];
    for await (const packet of reader) rest.push(show(packet));
    assert.deepEqual(rest, expected.slice(1));
    assert.equal(await reader.tryRead(), undefined);
    assert.equal(await reader.tryPeek(), undefined);
    await assert.rejects(reader.read(), (err: unknown) => isPackferryError(err, ErrorCode.PktLineTruncated));
  });

  it('stays usable after a for-await loop is broken off', async () => {
    const reader = new PktLineReader(chunked(sample, [3, 20, 30]));
    for await (const packet of reader) {
      assert.equal(show(packet), 'data:version 2\n');
      break;
    }
    assert.equal(show(await reader.read()), 'data:agent=git/2.39.5\n');
  });

  it('hands back buffered bytes and the rest of the stream after the last pkt-line (v0 NAK then PACK)', async () => {
    const pack = Buffer.concat([bytes('PACK'), Buffer.alloc(5000, 7)]);
    const wire = Buffer.concat([pktLineText('NAK'), pack]);
    for (const cuts of [[], [1], [5], [8], [9], [10], [11, 300, 301], [2, 4, 6, 8, 4000]]) {
      const source = trackedSource([...(await collect(chunked(wire, cuts)))]);
      const reader = new PktLineReader(source);
      const nak = await reader.read();
      assert.equal(nak.type === 'data' && lineText(nak.data), 'NAK', `cuts ${cuts.join(',')}`);
      assert.deepEqual(await concatStream(reader.readRemainder()), pack, `cuts ${cuts.join(',')}`);
      await assert.rejects(reader.tryRead(), (err: unknown) => isPackferryError(err, ErrorCode.Usage));
    }
  });

  it('hands back a peeked packet as part of the remainder', async () => {
    const wire = Buffer.concat([pktLineText('NAK'), pktLineText('ACK'), bytes('PACK...')]);
    const reader = new PktLineReader(byteByByte(wire));
    await reader.read();
    assert.equal(show((await reader.tryPeek())!), 'data:ACK\n');
    assert.equal((await concatStream(reader.readRemainder())).toString('latin1'), '0008ACK\nPACK...');
  });

  it('gives the remainder without copying, and the source iterator once drained', async () => {
    const first = Buffer.concat([pktLineText('NAK'), bytes('PA')]);
    const second = bytes('CK and the rest');
    const source = trackedSource([first, second]);
    const reader = new PktLineReader(source);
    await reader.read();
    const { buffered, rest } = reader.release();
    assert.equal(buffered.length, 1);
    assert.equal(buffered[0].buffer, first.buffer);
    assert.ok(rest !== undefined);
    const next = await rest.next();
    assert.equal(next.value, second);
  });

  it('closes the source when the remainder is abandoned', async () => {
    const source = trackedSource([pktLineText('NAK'), bytes('PACK'), bytes('more')]);
    const reader = new PktLineReader(source);
    await reader.read();
    for await (const chunk of reader.readRemainder()) {
      assert.equal(Buffer.from(chunk).toString('latin1'), 'PACK');
      break;
    }
    assert.equal(source.returned, true);
  });

  it('assembles a packet split over many chunks with one copy of its bytes', async () => {
    const big = pktLine(Buffer.alloc(65516, 0x5a));
    const wire = Buffer.concat([big, big, flushPkt]);
    const cuts = Array.from({ length: 400 }, (_, i) => i * 331 + 1);
    const chunks = await collect(chunked(wire, cuts));
    const source = trackedSource(chunks);
    const packets = await collect(readPktLines(source));
    assert.deepEqual(
      packets.map((p) => (p.type === 'data' ? p.data.length : p.type)),
      [65516, 65516, 'flush'],
    );
    assert.ok(packets[0].type === 'data' && packets[0].data.every((b) => b === 0x5a));
    // Each chunk was pulled once: no re-reading, no quadratic buffering.
    assert.equal(source.pulled, chunks.length + 1);
  });

  it('is linear in the input even when every chunk is a single byte', async () => {
    const wire = encodePackets([
      { type: 'data', data: Buffer.alloc(65516, 1) },
      { type: 'data', data: Buffer.alloc(65516, 2) },
    ]);
    const start = process.hrtime.bigint();
    const packets = await collect(readPktLines(byteByByte(wire)));
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    assert.equal(packets.length, 2);
    // 131 kB one byte at a time: a few hundred ms even on a slow machine;
    // quadratic copying would take minutes.
    assert.ok(ms < 10_000, `took ${ms} ms`);
  });

  it('refuses to be used after close()', async () => {
    const source = trackedSource([pktLineText('a')]);
    const reader = new PktLineReader(source);
    await reader.close();
    assert.equal(source.returned, true);
    await assert.rejects(reader.read(), (err: unknown) => isPackferryError(err, ErrorCode.Usage));
    assert.throws(() => reader.readRemainder(), (err: unknown) => isPackferryError(err, ErrorCode.Usage));
  });

  it('accepts an AsyncIterator as its source', async () => {
    const iterator = chunked(sample, [7]);
    const reader = new PktLineReader(iterator[Symbol.asyncIterator]());
    assert.deepEqual((await collect(reader)).map(show), expected);
  });
});

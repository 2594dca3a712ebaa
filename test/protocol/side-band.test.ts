// Side-band demultiplexing and multiplexing (gitprotocol-pack, "Packfile Data").
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCode, isPackferryError } from '../../src/core/errors.js';
import {
  Band,
  DELIM,
  FLUSH,
  PktLineReader,
  RESPONSE_END,
  RemoteMessageSplitter,
  SIDE_BAND_64K_MAX,
  SIDE_BAND_MAX,
  decodePktLines,
  demuxSideBand,
  flushPkt,
  muxSideBand,
  parseProgressMessage,
  pktLine,
  pktLineText,
  sideBandPacket,
  type Packet,
  type RemoteMessage,
} from '../../src/protocol/index.js';
import { byteByByte, chunked, collect, concatStream } from './helpers.js';

const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');
const band = (n: number, payload: string | Uint8Array): Packet => ({
  type: 'data',
  data: Buffer.concat([Uint8Array.of(n), typeof payload === 'string' ? bytes(payload) : payload]),
});

async function* packetsOf(...packets: Packet[]): AsyncGenerator<Packet> {
  yield* packets;
}

/** Runs the demuxer to its end: the pack bytes, the messages, and the packet that ended it. */
async function demuxAll(
  packets: AsyncIterable<Packet>,
): Promise<{ data: Buffer; messages: RemoteMessage[]; end: Packet }> {
  const messages: RemoteMessage[] = [];
  const gen = demuxSideBand(packets, { onProgress: (m) => messages.push(m) });
  const parts: Uint8Array[] = [];
  for (;;) {
    const step = await gen.next();
    if (step.done) return { data: Buffer.concat(parts), messages, end: step.value };
    parts.push(step.value);
  }
}

describe('demuxSideBand', () => {
  it('yields band 1, reports band 2, and returns the flush that ended it', async () => {
    const { data, messages, end } = await demuxAll(
      packetsOf(
        band(2, 'Enumerating objects: 3, done.\n'),
        band(1, 'PACK'),
        band(2, 'Counting objects:  50% (1/2)\rCounting'),
        band(2, ' objects: 100% (2/2)\r'),
        band(2, 'Counting objects: 100% (2/2), done.\n'),
        band(1, '\u0000\u0000\u0000\u0002'),
        FLUSH,
      ),
    );
    assert.equal(data.toString('latin1'), 'PACK\u0000\u0000\u0000\u0002');
    assert.deepEqual(messages, [
      { text: 'Enumerating objects: 3, done.', end: '\n' },
      { text: 'Counting objects:  50% (1/2)', end: '\r' },
      { text: 'Counting objects: 100% (2/2)', end: '\r' },
      { text: 'Counting objects: 100% (2/2), done.', end: '\n' },
    ]);
    assert.equal(end, FLUSH);
  });

  it('yields views of the packets, not copies', async () => {
    const packet = band(1, 'PACKDATA');
    const gen = demuxSideBand(packetsOf(packet, FLUSH));
    const first = await gen.next();
    assert.ok(!first.done && packet.type === 'data');
    assert.equal(first.value.buffer, packet.data.buffer);
    assert.equal(first.value.byteOffset, packet.data.byteOffset + 1);
  });

  it('treats band bytes without payload as keepalives', async () => {
    const { data, messages } = await demuxAll(packetsOf(band(1, ''), band(2, ''), band(1, 'x'), FLUSH));
    assert.equal(data.toString('latin1'), 'x');
    assert.deepEqual(messages, []);
  });

  it('ends at delim and response-end as Git does', async () => {
    assert.equal((await demuxAll(packetsOf(band(1, 'a'), DELIM))).end, DELIM);
    assert.equal((await demuxAll(packetsOf(band(1, 'a'), RESPONSE_END))).end, RESPONSE_END);
  });

  it('throws ERR_REMOTE with the message of band 3, after reporting pending progress', async () => {
    const messages: RemoteMessage[] = [];
    const received: string[] = [];
    await assert.rejects(
      (async () => {
        const packets = packetsOf(band(1, 'PA'), band(2, 'half a line'), band(3, 'upload-pack: out of memory\n'), band(1, 'CK'));
        for await (const chunk of demuxSideBand(packets, { onProgress: (m) => messages.push(m) })) {
          received.push(Buffer.from(chunk).toString('latin1'));
        }
      })(),
      (err: unknown) => {
        assert.ok(isPackferryError(err, ErrorCode.RemoteError));
        assert.equal(err.message, 'remote: upload-pack: out of memory');
        assert.equal(err.details.message, 'upload-pack: out of memory');
        return true;
      },
    );
    assert.deepEqual(received, ['PA']);
    assert.deepEqual(messages, [{ text: 'half a line', end: '' }]);
  });

  it('cuts a band-3 message at its NUL, as Git prints it with %s', async () => {
    await assert.rejects(
      collect(demuxSideBand(packetsOf(band(3, 'aborting due to possible repository corruption on the remote side.\u0000')))),
      { message: 'remote: aborting due to possible repository corruption on the remote side.' },
    );
  });

  it('rejects an unknown band and an empty packet with ERR_SIDE_BAND_CHANNEL', async () => {
    for (const n of [0, 4, 0x50, 255]) {
      await assert.rejects(collect(demuxSideBand(packetsOf(band(1, 'x'), band(n, 'data')))), (err: unknown) => {
        assert.ok(isPackferryError(err, ErrorCode.SideBandChannel));
        assert.equal(err.details.band, n);
        assert.equal(err.details.packet, 1);
        return true;
      });
    }
    await assert.rejects(
      collect(demuxSideBand(packetsOf({ type: 'data', data: new Uint8Array(0) }))),
      (err: unknown) => isPackferryError(err, ErrorCode.SideBandChannel),
    );
  });

  // Regression: a v0 pack stream sent without side-band starts with "PACK";
  // read as side-band, "P" (0x50) is band 80 and must be an error, not data.
  it('refuses a raw pack read as side-band', async () => {
    await assert.rejects(collect(demuxSideBand(packetsOf({ type: 'data', data: bytes('PACK\u0000\u0000\u0000\u0002') }))), {
      code: ErrorCode.SideBandChannel,
      message: 'protocol error: bad band #80',
    });
  });

  it('fails with ERR_PKT_LINE_TRUNCATED when the packets end before a flush', async () => {
    await assert.rejects(collect(demuxSideBand(packetsOf(band(1, 'PACK')))), (err: unknown) =>
      isPackferryError(err, ErrorCode.PktLineTruncated),
    );
  });

  it('leaves a PktLineReader usable after the flush', async () => {
    const wire = Buffer.concat([sideBandPacket(Band.Data, 'PACK'), flushPkt, pktLineText('after')]);
    const reader = new PktLineReader(byteByByte(wire));
    assert.equal((await concatStream(demuxSideBand(reader))).toString('latin1'), 'PACK');
    const after = await reader.read();
    assert.equal(after.type === 'data' && Buffer.from(after.data).toString('latin1'), 'after\n');
  });

  it('closes the packet source when it stops on an error', async () => {
    let returned = false;
    const source: AsyncIterable<Packet> = {
      [Symbol.asyncIterator]: () => ({
        next: async () => ({ done: false, value: band(9, 'x') }),
        return: async () => {
          returned = true;
          return { done: true, value: undefined };
        },
      }),
    };
    await assert.rejects(collect(demuxSideBand(source)), { code: ErrorCode.SideBandChannel });
    assert.equal(returned, true);
  });

  it('stops with ERR_ABORTED when aborted', async () => {
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(collect(demuxSideBand(packetsOf(band(1, 'x'), FLUSH), { signal: controller.signal })), {
      code: ErrorCode.Aborted,
    });
  });
});

describe('RemoteMessageSplitter', () => {
  it('splits on CR and LF as Git does, keeping "\\r\\n" as an update and an empty line', () => {
    const messages: RemoteMessage[] = [];
    const splitter = new RemoteMessageSplitter();
    splitter.push(bytes('Compressing objects: 100% (2/2)\r\nTotal 3'), (m) => messages.push(m));
    splitter.push(bytes(' (delta 0)\n\ntail'), (m) => messages.push(m));
    splitter.finish((m) => messages.push(m));
    assert.deepEqual(messages, [
      { text: 'Compressing objects: 100% (2/2)', end: '\r' },
      { text: '', end: '\n' },
      { text: 'Total 3 (delta 0)', end: '\n' },
      { text: '', end: '\n' },
      { text: 'tail', end: '' },
    ]);
  });

  it('decodes a UTF-8 character split across packets', () => {
    const messages: RemoteMessage[] = [];
    const splitter = new RemoteMessageSplitter();
    const line = Buffer.from('Résolution des deltas\n', 'utf8');
    splitter.push(line.subarray(0, 2), (m) => messages.push(m));
    splitter.push(line.subarray(2), (m) => messages.push(m));
    assert.deepEqual(messages, [{ text: 'Résolution des deltas', end: '\n' }]);
  });
});

describe('sideBandPacket and muxSideBand', () => {
  it('frames small data as one packet', () => {
    assert.equal(sideBandPacket(Band.Progress, 'hi\n').toString('latin1'), '0008\u0002hi\n');
    assert.equal(sideBandPacket(Band.Data, new Uint8Array(0)).length, 0);
  });

  for (const [mode, max] of [
    ['side-band', SIDE_BAND_MAX],
    ['side-band-64k', SIDE_BAND_64K_MAX],
  ] as const) {
    it(`splits data into packets of at most ${max} bytes for ${mode}`, async () => {
      const data = Buffer.alloc(max * 3 + 17, 0xab);
      const wire = sideBandPacket(Band.Data, data, mode);
      const packets = decodePktLines(wire);
      const lengths = packets.map((p) => (p.type === 'data' ? p.data.length + 4 : -1));
      assert.deepEqual(lengths.slice(0, 3), [max, max, max]);
      assert.equal(lengths[3], 4 + 1 + 17 + 3 * 5);
      assert.equal(lengths.length, 4);
      assert.deepEqual(await concatStream(demuxSideBand(packetsOf(...packets, FLUSH))), data);
    });
  }

  it('refuses a band other than 1, 2 or 3', () => {
    assert.throws(() => sideBandPacket(4 as Band, 'x'), { code: ErrorCode.Usage });
  });

  it('frames a stream chunk by chunk', async () => {
    const source = chunked(Buffer.alloc(3000, 1), [1000, 2999]);
    const wire = Buffer.concat(await collect(muxSideBand(source, Band.Data, 'side-band')));
    const packets = decodePktLines(wire);
    assert.deepEqual(
      packets.map((p) => (p.type === 'data' ? p.data.length : 0)),
      [996, 6, 996, 996, 10, 2],
    );
    assert.deepEqual(await concatStream(demuxSideBand(packetsOf(...packets, FLUSH))), Buffer.alloc(3000, 1));
  });

  it('encodes like pktLine for a single packet', () => {
    assert.deepEqual(sideBandPacket(Band.Data, bytes('abc')), pktLine(bytes('\u0001abc')));
  });
});

describe('parseProgressMessage', () => {
  it("reads Git's progress formats", () => {
    assert.deepEqual(parseProgressMessage('Enumerating objects: 12, done.'), {
      title: 'Enumerating objects',
      done: 12,
      finished: true,
    });
    assert.deepEqual(parseProgressMessage('Counting objects:  45% (450/1000)'), {
      title: 'Counting objects',
      done: 450,
      total: 1000,
    });
    assert.deepEqual(parseProgressMessage('Receiving objects: 100% (10/10), 1.50 MiB | 2.00 MiB/s, done.'), {
      title: 'Receiving objects',
      done: 10,
      total: 10,
      bytes: 1572864,
      finished: true,
    });
    assert.deepEqual(parseProgressMessage('Receiving objects:  10% (1/10), 512 bytes | 512.00 KiB/s'), {
      title: 'Receiving objects',
      done: 1,
      total: 10,
      bytes: 512,
    });
    assert.deepEqual(parseProgressMessage('Compressing objects: 100% (2/2)   , done.'), {
      title: 'Compressing objects',
      done: 2,
      total: 2,
      finished: true,
    });
  });

  it('returns undefined for other messages', () => {
    assert.equal(parseProgressMessage('Total 3 (delta 0), reused 0 (delta 0), pack-reused 0'), undefined);
    assert.equal(parseProgressMessage('error: 5 objects missing'), undefined);
    assert.equal(parseProgressMessage(''), undefined);
  });
});

// The upload-pack request parsers and response encoders
// (src/protocol/upload-pack-server.ts), and serveUploadPack's behaviour
// that no real client shows: errors before and during the response, limits,
// aborts, the v0 acknowledgment modes (multi_ack_detailed with no-done,
// multi_ack, neither), a bare pack without side-band, progress and
// keepalives. Parsers are fuzzed (fast-check): any request gives a result or
// a PackferryError, and so does serveUploadPack over a real store.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { ErrorCode, isPackferryError, PackferryError } from '../../src/core/errors.js';
import { readAdvertisement } from '../../src/protocol/advertisement.js';
import { Capabilities } from '../../src/protocol/capabilities.js';
import { PktLineReader } from '../../src/protocol/pkt-line-reader.js';
import { decodePktLines, encodePackets, flushPkt, lineText, pktLineText, type Packet } from '../../src/protocol/pkt-line.js';
import { demuxSideBand, type RemoteMessage } from '../../src/protocol/side-band.js';
import { fetchRequestV2, lsRefsRequest, readLsRefs } from '../../src/protocol/upload-pack.js';
import {
  DEFAULT_UPLOAD_PACK_LIMITS,
  INFINITE_DEPTH,
  encodeAdvertisementV0,
  encodeErrorPacket,
  encodeLsRefs,
  parseCommandRequest,
  parseFetchArgs,
  parseFilterSpec,
  parseLsRefsArgs,
  parseUploadPackRequestV0,
  readRequestPackets,
  uploadPackLimits,
} from '../../src/protocol/upload-pack-server.js';
import { FsBlobStore } from '../../src/store/fs-backend.js';
import { StoreRepository } from '../../src/store/repository.js';
import { mirror } from '../../src/mirror/sync.js';
import { storeTarget } from '../../src/mirror/endpoints.js';
import { openTransport } from '../../src/transport/open.js';
import { advertiseUploadPack, serveUploadPack, uploadPackErrorPacket, type ServeUploadPackOptions } from '../../src/server/upload-pack.js';
import { git, tempDir } from '../support/git.js';
import { generateRepo, type RepoSummary } from '../support/repogen.js';
import { gitUploadPack, packObjectIds, parseResponse, type ParsedResponse } from './upload-pack-helpers.js';

const NUM_RUNS = Number(process.env.PACKFERRY_FUZZ_RUNS ?? 300);
const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const C = 'c'.repeat(40);

const lines = (...texts: (string | null)[]): Packet[] =>
  texts.map((t) => (t === null ? { type: 'flush' } : t === '|' ? { type: 'delim' } : { type: 'data', data: Buffer.from(`${t}\n`) }));

/** Runs fn; returns the PackferryError it throws (fails if it does not throw one). */
function errorOf(fn: () => unknown): PackferryError {
  try {
    fn();
  } catch (err) {
    assert.ok(isPackferryError(err), `not a PackferryError: ${String(err)}`);
    return err;
  }
  assert.fail('expected an error');
}

async function* single(body: Uint8Array): AsyncGenerator<Uint8Array> {
  yield body;
}

/** The text of the first pkt-line of `body`. */
function firstLine(body: Buffer): string {
  const first = decodePktLines(body)[0];
  assert.equal(first.type, 'data');
  return lineText((first as { data: Uint8Array }).data);
}

describe('v0 requests', () => {
  it('reads wants with capabilities, shallow and deepen lines, a filter, haves and done', () => {
    const req = parseUploadPackRequestV0(
      lines(
        `want ${A} multi_ack_detailed side-band-64k thin-pack ofs-delta filter agent=git/2.39.5`,
        `want ${B}`,
        `want ${A}`,
        `shallow ${C}`,
        'deepen 3',
        'filter blob:limit=2k',
        null,
        `have ${C}`,
        `have ${B}`,
        'done',
      ),
    );
    assert.deepEqual(req.wants, [A, B]);
    assert.ok(req.capabilities.has('multi_ack_detailed') && req.capabilities.has('thin-pack'));
    assert.equal(req.capabilities.get('agent'), 'git/2.39.5');
    assert.deepEqual(req.deepen, { shallows: [C], depth: 3, deepenNot: [], deepenRelative: false });
    assert.deepEqual(req.filter, { kind: 'blob:limit', limit: 2048 });
    assert.deepEqual(req.negotiation, { haves: [C, B], end: 'done' });
  });

  it('tells a request that stops after the wants from one that ends a round with a flush', () => {
    assert.equal(parseUploadPackRequestV0(lines(`want ${A} deepen-relative`, 'deepen 1', null)).negotiation, undefined);
    assert.equal(parseUploadPackRequestV0(lines(`want ${A} deepen-relative`, 'deepen 1', null)).deepen.deepenRelative, true);
    assert.deepEqual(parseUploadPackRequestV0(lines(`want ${A}`, null, `have ${B}`, null)).negotiation, { haves: [B], end: 'flush' });
    assert.deepEqual(parseUploadPackRequestV0(lines(`want ${A}`, null, `have ${B}`)).negotiation, { haves: [B], end: 'flush' });
    assert.deepEqual(parseUploadPackRequestV0(lines(`want ${A}`, null, 'done')).negotiation, { haves: [], end: 'done' });
    assert.deepEqual(parseUploadPackRequestV0(lines(null)).wants, []);
    assert.equal(parseUploadPackRequestV0(lines('deepen-since 1700000000', 'deepen-not refs/tags/v1', `want ${A}`, null)).deepen.deepenSince, 1700000000);
  });

  it('refuses what Git refuses', () => {
    const cases: [Packet[], RegExp][] = [
      [lines(`have ${A}`, null), /expected to get object ID/],
      [lines(`want ${A}x`, null), /expected to get object ID/],
      [lines(`want ${A.toUpperCase()}`, null), /expected to get object ID/],
      [lines(`want ${A}`, 'filter blob:none', null), /filtering capability not negotiated/],
      [lines(`want ${A} filter`, 'filter blob:none', 'filter tree:0', null), /multiple filter-specs/],
      [lines(`want ${A}`, 'deepen 2', 'deepen-since 5', null), /cannot be used together/],
      [lines(`want ${A}`, 'deepen 0', null), /Invalid deepen/],
      [lines(`want ${A}`, 'deepen -1', null), /Invalid deepen/],
      [lines(`want ${A}`, 'deepen-since 0', null), /Invalid deepen-since/],
      [lines(`want ${A}`, 'shallow xyz', null), /invalid shallow line/],
      [lines(`want ${A} object-format=sha256`, null), /mismatched object format/],
      [lines(`want ${A}`, null, `want ${B}`), /expected SHA1 list/],
      [lines(`want ${A}`, null, 'have 1234'), /expected SHA1 object/],
    ];
    for (const [packets, message] of cases) {
      const err = errorOf(() => parseUploadPackRequestV0(packets));
      assert.equal(err.code, ErrorCode.Protocol, err.message);
      assert.match(err.message, message);
    }
  });

  it('enforces the limits on wants, haves and shallow lines (repeated wants count once)', () => {
    const limits = uploadPackLimits({ maxWants: 2, maxHaves: 1, maxShallows: 1 });
    parseUploadPackRequestV0(lines(`want ${A}`, `want ${B}`, `want ${A}`, null), limits);
    for (const packets of [
      lines(`want ${A}`, `want ${B}`, `want ${C}`, null),
      lines(`want ${A}`, null, `have ${B}`, `have ${C}`, 'done'),
      lines(`want ${A}`, `shallow ${B}`, `shallow ${C}`, null),
    ]) {
      assert.equal(errorOf(() => parseUploadPackRequestV0(packets, limits)).code, ErrorCode.LimitExceeded);
    }
  });
});

describe('v2 command requests', () => {
  const serverCaps = new Capabilities([
    ['agent', 'x'],
    ['object-format', 'sha1'],
    ['ls-refs', 'unborn'],
  ]);

  it('reads what packferry\'s own client sends (fetch and ls-refs)', () => {
    const fetch = parseCommandRequest(
      decodePktLines(fetchRequestV2(serverCaps, { wants: [A, B], haves: [C], done: true, thinPack: true, ofsDelta: true, includeTag: true, noProgress: true, filter: 'tree:1' })),
    )!;
    assert.equal(fetch.command, 'fetch');
    assert.equal(fetch.capabilities.get('object-format'), 'sha1');
    const args = parseFetchArgs(fetch.args);
    assert.deepEqual(
      { ...args, deepen: undefined },
      { wants: [A, B], haves: [C], done: true, thinPack: true, ofsDelta: true, noProgress: true, includeTag: true, waitForDone: false, filter: { kind: 'tree', depth: 1 }, deepen: undefined },
    );
    const ls = parseCommandRequest(decodePktLines(lsRefsRequest(serverCaps, { prefixes: ['refs/heads/', 'HEAD'], unborn: true })))!;
    assert.equal(ls.command, 'ls-refs');
    assert.deepEqual(parseLsRefsArgs(ls.args), { symrefs: true, peel: true, unborn: true, prefixes: ['refs/heads/', 'HEAD'] });
  });

  it('reads every fetch argument packferry serves', () => {
    const args = parseFetchArgs([
      `want ${A}`,
      `have ${B}`,
      `shallow ${C}`,
      'deepen-since 1700000000',
      'deepen-not main',
      'deepen-not refs/tags/v1',
      'deepen-relative',
      'wait-for-done',
      'filter blob:none',
    ]);
    assert.deepEqual(args.deepen, { shallows: [C], deepenSince: 1700000000, deepenNot: ['main', 'refs/tags/v1'], deepenRelative: true });
    assert.equal(args.waitForDone, true);
    assert.equal(parseFetchArgs([`want ${A}`, 'deepen 99999999999']).deepen.depth, INFINITE_DEPTH);
  });

  it('an empty request asks for nothing; malformed ones are refused', () => {
    assert.equal(parseCommandRequest([]), undefined);
    assert.equal(parseCommandRequest(lines(null)), undefined);
    const cases: [Packet[], RegExp][] = [
      [lines('agent=x', null), /no command requested/],
      [lines('command=fetch', 'command=ls-refs', null), /already requesting command/],
      [lines('command=fetch', 'session-id=1', null), /unknown capability/],
      [lines('command=fetch', 'agent', null), /unknown capability/],
      [lines('command=fetch', 'object-format=sha256', null), /mismatched object format/],
      [lines('command=fetch', '|', 'done'), /expected flush after fetch arguments/],
      [lines('command=fetch'), /expected flush after command request/],
      [lines('command=fetch', '|', null, 'command=ls-refs'), /data after the end/],
      [[...lines('command=fetch'), { type: 'response-end' }], /unexpected response-end/],
    ];
    for (const [packets, message] of cases) {
      const err = errorOf(() => parseCommandRequest(packets));
      assert.equal(err.code, ErrorCode.Protocol, err.message);
      assert.match(err.message, message);
    }
    for (const [args, message] of [
      [['want-ref refs/heads/main'], /unexpected line/],
      [['sideband-all'], /unexpected line/],
      [[`want ${A}`, 'filter blob:none', 'filter blob:none'], /multiple filter-specs/],
      [['deepen 1', 'deepen-not main'], /cannot be used together/],
      [['deepen-not '], /ambiguous deepen-not/],
      [['filter sparse:oid=abc'], /unsupported filter-spec/],
    ] as [string[], RegExp][]) {
      assert.match(errorOf(() => parseFetchArgs(args)).message, message);
    }
    assert.match(errorOf(() => parseLsRefsArgs(['refs/heads/'])).message, /unexpected line/);
  });

  it('ls-refs: over maxRefPrefixes prefixes, none is used (as Git does past 65536)', () => {
    assert.deepEqual(parseLsRefsArgs(['ref-prefix a', 'ref-prefix b'], uploadPackLimits({ maxRefPrefixes: 2 })).prefixes, ['a', 'b']);
    assert.deepEqual(parseLsRefsArgs(['ref-prefix a', 'ref-prefix b', 'ref-prefix c'], uploadPackLimits({ maxRefPrefixes: 2 })).prefixes, []);
    assert.equal(DEFAULT_UPLOAD_PACK_LIMITS.maxRefPrefixes, 65536);
  });

  it('filter specs', () => {
    assert.deepEqual(parseFilterSpec('blob:none'), { kind: 'blob:none' });
    assert.deepEqual(parseFilterSpec('blob:limit=0'), { kind: 'blob:limit', limit: 0 });
    assert.deepEqual(parseFilterSpec('blob:limit=3M'), { kind: 'blob:limit', limit: 3 * 1024 * 1024 });
    assert.deepEqual(parseFilterSpec('tree:0'), { kind: 'tree', depth: 0 });
    assert.deepEqual(parseFilterSpec('tree:12'), { kind: 'tree', depth: 12 });
    for (const bad of ['blob:limit=', 'blob:limit=1x', 'tree:', 'tree:-1', 'combine:blob:none+tree:0', 'object:type=blob', 'sparse:oid=HEAD', '', 'blob:nonee']) {
      assert.equal(errorOf(() => parseFilterSpec(bad)).code, ErrorCode.Protocol, bad);
    }
  });

  it('readRequestPackets bounds the request size and reports a cut request', async () => {
    const body = encodePackets(lines(`want ${A}`, `want ${B}`, null));
    assert.equal((await readRequestPackets(single(body), { maxBytes: body.length })).length, 3);
    await assert.rejects(readRequestPackets(single(body), { maxBytes: body.length - 5 }), (err: unknown) => isPackferryError(err, ErrorCode.LimitExceeded));
    await assert.rejects(readRequestPackets(single(body.subarray(0, 20))), (err: unknown) => isPackferryError(err, ErrorCode.PktLineTruncated));
  });
});

describe('responses', () => {
  const refs = [
    { name: 'refs/heads/main', oid: A },
    { name: 'refs/tags/v1', oid: B, peeled: A },
  ];

  it('the v0/v1 advertisement reads back with packferry\'s client reader', async () => {
    const body = encodeAdvertisementV0(refs, { target: 'refs/heads/main', oid: A }, ['multi_ack', 'symref=HEAD:refs/heads/main', 'agent=x'], 1);
    assert.equal(firstLine(body), 'version 1');
    const adv = await readAdvertisement(new PktLineReader(single(body)));
    if (adv.version !== 1) assert.fail(`version ${adv.version}`);
    assert.deepEqual(
      adv.refs.map((r) => [r.name, r.oid, r.peeled, r.symrefTarget]),
      [
        ['HEAD', A, undefined, 'refs/heads/main'],
        ['refs/heads/main', A, undefined, undefined],
        ['refs/tags/v1', B, A, undefined],
      ],
    );
    assert.ok(adv.capabilities.has('multi_ack'));
    // An empty repository: the capabilities on a zero-id "capabilities^{}" line.
    const empty = encodeAdvertisementV0([], { target: 'refs/heads/main' }, ['multi_ack'], 0);
    assert.equal(empty.toString('latin1'), `${pktLineText(`${'0'.repeat(40)} capabilities^{}\0multi_ack`).toString('latin1')}0000`);
  });

  it('ls-refs: HEAD first, prefixes, symref-target, peeled, unborn', async () => {
    const head = { target: 'refs/heads/main', oid: A };
    const all = await readLsRefs(new PktLineReader(single(encodeLsRefs(refs, head, { symrefs: true, peel: true, unborn: false, prefixes: [] }))));
    assert.deepEqual(
      all.refs.map((r) => [r.name, r.oid, r.symrefTarget, r.peeled]),
      [
        ['HEAD', A, 'refs/heads/main', undefined],
        ['refs/heads/main', A, undefined, undefined],
        ['refs/tags/v1', B, undefined, A],
      ],
    );
    const tags = encodeLsRefs(refs, head, { symrefs: false, peel: false, unborn: false, prefixes: ['refs/tags/'] });
    assert.equal(tags.toString(), `${pktLineText(`${B} refs/tags/v1`).toString()}0000`);
    const unborn = encodeLsRefs([], { target: 'refs/heads/trunk' }, { symrefs: true, peel: true, unborn: true, prefixes: ['HEAD'] });
    assert.equal((await readLsRefs(new PktLineReader(single(unborn)))).unbornHead, 'refs/heads/trunk');
    // Without "unborn", an unborn HEAD is not listed at all.
    assert.equal(encodeLsRefs([], { target: 'refs/heads/trunk' }, { symrefs: true, peel: true, unborn: false, prefixes: [] }).toString(), '0000');
  });

  it('an ERR packet holds one line and fits in a pkt-line', () => {
    assert.equal(encodeErrorPacket('upload-pack: not our ref x').toString(), '0023ERR upload-pack: not our ref x\n');
    const long = encodeErrorPacket(`a\nb${'x'.repeat(100_000)}`);
    assert.ok(long.length <= 65520);
    assert.equal(firstLine(long).includes('\n'), false);
    assert.match(firstLine(long), /^ERR a b/);
  });
});

// ---------------------------------------------------------------------------
// serveUploadPack over a real store

const tmp = tempDir('packferry-upload-pack-unit-');
const src = join(tmp.path, 'src.git');
const storeDir = join(tmp.path, 'store.git');
let summary: RepoSummary;
let oids: string[];

async function openStore(dir = storeDir): Promise<StoreRepository> {
  return StoreRepository.open(new FsBlobStore(dir));
}

/** The response, or the error thrown before any of it. */
async function serve(body: Buffer, options: Partial<ServeUploadPackOptions> & { protocolVersion: 0 | 1 | 2 }, dir = storeDir): Promise<{ body: Buffer; error?: unknown }> {
  const repo = await openStore(dir);
  const parts: Buffer[] = [];
  try {
    for await (const chunk of serveUploadPack(repo, single(body), options)) parts.push(chunk);
    return { body: Buffer.concat(parts) };
  } catch (err) {
    return { body: Buffer.concat(parts), error: err };
  } finally {
    await repo.close();
  }
}

/** The pkt-lines of a response up to its pack, and the pack's band-1 bytes and band-2 messages. */
async function readResponse(body: Buffer, untilPack: (line: string) => boolean): Promise<{ lines: string[]; pack?: Buffer; messages: RemoteMessage[]; keepalives: number }> {
  const reader = new PktLineReader(single(body));
  const out: { lines: string[]; pack?: Buffer; messages: RemoteMessage[]; keepalives: number } = { lines: [], messages: [], keepalives: 0 };
  for (let p = await reader.tryRead(); p !== undefined; p = await reader.tryRead()) {
    if (p.type !== 'data') {
      out.lines.push(`[${p.type}]`);
      continue;
    }
    const line = lineText(p.data);
    out.lines.push(line);
    if (untilPack(line)) {
      const parts: Uint8Array[] = [];
      const counting = (async function* () {
        for (let q = await reader.tryRead(); q !== undefined; q = await reader.tryRead()) {
          if (q.type === 'data' && q.data.length === 1 && q.data[0] === 1) out.keepalives++;
          yield q;
        }
      })();
      for await (const chunk of demuxSideBand(counting, { onProgress: (m) => out.messages.push(m) })) parts.push(chunk);
      out.pack = Buffer.concat(parts);
      return out;
    }
  }
  return out;
}

before(async () => {
  summary = await generateRepo(src, { seed: 5, commits: 12, files: 6, branches: 2, largeFiles: 0, deepChain: 3, mergeEvery: 5, tagEvery: 4 });
  const result = await mirror(await openTransport(src, {}), [storeTarget(`store://${storeDir}`, () => openStore())]);
  assert.ok(result.ok);
  oids = git(['rev-list', '--all', '--objects'], { cwd: src })
    .split('\n')
    .map((l) => l.slice(0, 40));
});

after(() => tmp.cleanup());

describe('serveUploadPack', () => {
  it('the advertisement lists the store\'s refs, HEAD first, with peeled tags', async () => {
    const repo = await openStore();
    try {
      const adv = await readAdvertisement(new PktLineReader(single(advertiseUploadPack(repo, { protocolVersion: 0 }))));
      if (adv.version === 2) assert.fail('not v0');
      assert.equal(adv.refs[0].name, 'HEAD');
      assert.equal(adv.refs[0].symrefTarget, 'refs/heads/main');
      assert.deepEqual(adv.refs.slice(1).map((r) => `${r.oid} ${r.name}`), git(['for-each-ref', '--format=%(objectname) %(refname)'], { cwd: src }).split('\n'));
      const peeled = adv.refs.filter((r) => r.peeled !== undefined).map((r) => `${r.name} ${r.peeled}`);
      // Fully peeled, as ls-remote shows them.
      const expected = git(['ls-remote', src], { cwd: src })
        .split('\n')
        .filter((l) => l.endsWith('^{}'))
        .map((l) => `${l.slice(41, -3)} ${l.slice(0, 40)}`);
      assert.deepEqual(peeled, expected);
      assert.ok(peeled.length >= 3);
      for (const cap of ['multi_ack_detailed', 'side-band-64k', 'shallow', 'deepen-since', 'deepen-not', 'deepen-relative', 'include-tag', 'filter', 'no-done', 'allow-reachable-sha1-in-want']) {
        assert.ok(adv.capabilities.has(cap), cap);
      }
      const v2 = await readAdvertisement(new PktLineReader(single(advertiseUploadPack(repo, { protocolVersion: 2 }))));
      assert.equal(v2.version, 2);
      assert.ok(v2.capabilities.hasFeature('fetch', 'shallow') && v2.capabilities.hasFeature('fetch', 'filter'));
      assert.ok(v2.capabilities.hasFeature('ls-refs', 'unborn'));
    } finally {
      await repo.close();
    }
  });

  it('a want the store lacks is thrown before the response, as "not our ref"', async () => {
    const missing = 'e'.repeat(40);
    for (const [version, body] of [
      [2, encodePackets(lines('command=fetch', '|', `want ${missing}`, 'done', null))],
      [0, encodePackets(lines(`want ${missing} side-band-64k`, null, 'done'))],
    ] as const) {
      const { body: out, error } = await serve(body, { protocolVersion: version });
      assert.equal(out.length, 0);
      assert.ok(isPackferryError(error, ErrorCode.NotFound));
      assert.equal(uploadPackErrorPacket(error).toString(), `004aERR upload-pack: not our ref ${missing}\n`);
    }
    const { error } = await serve(encodePackets(lines('command=object-info', '|', null)), { protocolVersion: 2 });
    assert.ok(isPackferryError(error, ErrorCode.Protocol));
    assert.match(String(error), /invalid command/);
    const big = encodePackets(lines('command=fetch', '|', ...oids.slice(0, 50).map((o) => `have ${o}`), null));
    const limited = await serve(big, { protocolVersion: 2, limits: { maxRequestBytes: 1000 } });
    assert.ok(isPackferryError(limited.error, ErrorCode.LimitExceeded));
  });

  it('v2: acknowledgments without done; NAK and no pack when nothing is common; wait-for-done holds "ready" back', async () => {
    const main = summary.head;
    const parent = git(['rev-parse', 'main~3'], { cwd: src });
    const nothing = await serve(encodePackets(lines('command=fetch', '|', `want ${main}`, `have ${'f'.repeat(40)}`, null)), { protocolVersion: 2 });
    assert.equal(nothing.body.toString(), '0014acknowledgments\n0008NAK\n0000');
    const ready = await readResponse((await serve(encodePackets(lines('command=fetch', '|', `want ${main}`, `have ${parent}`, 'ofs-delta', null)), { protocolVersion: 2 })).body, (l) => l === 'packfile');
    assert.deepEqual(ready.lines, ['acknowledgments', `ACK ${parent}`, 'ready', '[delim]', 'packfile']);
    assert.ok(ready.pack!.subarray(0, 4).equals(Buffer.from('PACK')));
    const waiting = await serve(encodePackets(lines('command=fetch', '|', `want ${main}`, `have ${parent}`, 'wait-for-done', null)), { protocolVersion: 2 });
    assert.equal(waiting.body.toString(), `0014acknowledgments\n0031ACK ${parent}\n0000`);
    // A fetch without wants asks for nothing.
    assert.equal((await serve(encodePackets(lines('command=fetch', '|', `have ${parent}`, 'done', null)), { protocolVersion: 2 })).body.length, 0);
  });

  /** Our answer and git upload-pack's to the same v0 request: the same lines, and packs of the same objects. */
  async function bothV0(request: Buffer): Promise<ParsedResponse> {
    const ours = await parseResponse((await serve(request, { protocolVersion: 0 })).body, 0);
    const theirs = await parseResponse(gitUploadPack(src, request, 0), 0);
    assert.deepEqual(ours.lines, theirs.lines);
    assert.equal(ours.pack === undefined, theirs.pack === undefined);
    if (ours.pack && theirs.pack) assert.deepEqual(packObjectIds(ours.pack, src), packObjectIds(theirs.pack, src));
    return ours;
  }

  it('v0: multi_ack_detailed: "ready" at an unknown have once a want reaches a common commit; with no-done the pack follows', async () => {
    const main = summary.head;
    const parent = git(['rev-parse', 'main~2'], { cwd: src });
    const unknown = 'f'.repeat(40);
    const res = await bothV0(encodePackets(lines(`want ${main} multi_ack_detailed no-done side-band-64k ofs-delta`, null, `have ${parent}`, `have ${unknown}`, null)));
    assert.deepEqual(res.lines, [`ACK ${parent} common`, `ACK ${unknown} ready`, 'NAK', `ACK ${parent}`]);
    assert.deepEqual(packObjectIds(res.pack!, src), git(['rev-list', '--objects', main, `^${parent}`], { cwd: src }).split('\n').map((l) => l.slice(0, 40)).sort());
    // Only common haves: "ready" at the flush. Without no-done the round ends after NAK; the client says "done" next.
    const round = await bothV0(encodePackets(lines(`want ${main} multi_ack_detailed side-band-64k`, null, `have ${parent}`, null)));
    assert.deepEqual(round.lines, [`ACK ${parent} common`, `ACK ${parent} ready`, 'NAK']);
    assert.equal(round.pack, undefined);
    // An unknown have before any common one: no "ready" in this round.
    const early = await bothV0(encodePackets(lines(`want ${main} multi_ack_detailed side-band-64k`, null, `have ${unknown}`, `have ${parent}`, null)));
    assert.deepEqual(early.lines, [`ACK ${parent} common`, 'NAK']);
  });

  it('v0: multi_ack says "continue"; without multi_ack only while one have is common; no side-band sends the bare pack', async () => {
    const main = summary.head;
    const p1 = git(['rev-parse', 'main~1'], { cwd: src });
    const p2 = git(['rev-parse', 'main~2'], { cwd: src });
    const plain = await bothV0(encodePackets(lines(`want ${main} multi_ack side-band`, null, `have ${p1}`, `have ${p2}`, null)));
    assert.deepEqual(plain.lines, [`ACK ${p1} continue`, `ACK ${p2} continue`, 'NAK']);
    // p2 is p1's parent: Git counts it as known already, so "ACK" goes on while one have is common.
    const none = await bothV0(encodePackets(lines(`want ${main}`, null, `have ${p1}`, `have ${p2}`, 'done')));
    assert.deepEqual(none.lines, [`ACK ${p1}`, `ACK ${p2}`]);
    assert.ok(none.pack!.subarray(0, 4).equals(Buffer.from('PACK')));
    // No common have and done: NAK, then the bare pack.
    const nak = await serve(encodePackets(lines(`want ${p2}`, null, 'done')), { protocolVersion: 0 });
    assert.equal(nak.body.subarray(0, 12).toString(), '0008NAK\nPACK');
    await bothV0(encodePackets(lines(`want ${p2}`, null, 'done')));
  });

  it('progress on band 2 and keepalives while the walk is slow', async () => {
    const repo = await openStore();
    try {
      const objects = await repo.objects();
      const read = objects.tryRead.bind(objects);
      objects.tryRead = async (oid) => {
        await new Promise((r) => setTimeout(r, 15));
        return read(oid);
      };
      const run = async (args: string[]): Promise<Buffer> => {
        const parts: Buffer[] = [];
        const body = encodePackets(lines('command=fetch', '|', `want ${git(['rev-parse', 'main~1'], { cwd: src })}`, 'done', ...args, null));
        for await (const chunk of serveUploadPack(repo, single(body), { protocolVersion: 2, progressMs: 5, keepaliveMs: 10 })) parts.push(chunk);
        return Buffer.concat(parts);
      };
      const progress = await readResponse(await run([]), (l) => l === 'packfile');
      const texts = progress.messages.map((m) => m.text);
      assert.ok(texts.some((t) => /^Enumerating objects: \d+$/.test(t)), texts.join('|'));
      assert.ok(texts.some((t) => /^Enumerating objects: \d+, done\.$/.test(t)));
      assert.ok(texts.some((t) => /^Total \d+ \(delta \d+\), reused \d+ \(delta \d+\), pack-reused \d+$/.test(t)));
      const quiet = await readResponse(await run(['no-progress']), (l) => l === 'packfile');
      assert.deepEqual(quiet.messages, []);
      assert.ok(quiet.keepalives > 0, `keepalives while the walk runs: ${JSON.stringify({ k: quiet.keepalives, lines: quiet.lines, m: quiet.messages.length })}`);
      assert.ok(quiet.pack!.subarray(0, 4).equals(Buffer.from('PACK')));
    } finally {
      await repo.close();
    }
  });

  it('an error in the middle of the pack goes to band 3 and to onError; an abort throws', async () => {
    // A copy of the store whose main tree is damaged: the walk fails after the "packfile" line.
    const broken = join(tmp.path, 'broken.git');
    cpSync(storeDir, broken, { recursive: true });
    const repo = await openStore(broken);
    const layer = repo.manifest.layers[0].name;
    await repo.close();
    const packPath = join(broken, 'objects', 'pack', `${layer}.pack`);
    const tree = git(['rev-parse', 'main^{tree}'], { cwd: src });
    const idx = git(['show-index'], { input: readFileSync(packPath.replace(/\.pack$/, '.idx')) });
    const offset = Number(idx.split('\n').find((l) => l.includes(tree))!.split(' ')[0]);
    const bytes = readFileSync(packPath);
    bytes.fill(0xff, offset + 3, offset + 20);
    writeFileSync(packPath, bytes);
    const reported: unknown[] = [];
    const { body, error } = await serve(encodePackets(lines('command=fetch', '|', `want ${summary.head}`, 'done', null)), { protocolVersion: 2, onError: (e) => reported.push(e) }, broken);
    assert.equal(error, undefined);
    assert.equal(reported.length, 1);
    assert.ok(isPackferryError(reported[0]));
    const reader = new PktLineReader(single(body));
    assert.deepEqual(lineText(((await reader.read()) as { data: Uint8Array }).data), 'packfile');
    await assert.rejects(
      (async () => {
        for await (const _ of demuxSideBand(reader)) void _;
      })(),
      (err: unknown) => isPackferryError(err, ErrorCode.RemoteError) && err.message.includes((reported[0] as Error).message),
    );
    // An aborted request ends with ERR_ABORTED, nothing in-band.
    const controller = new AbortController();
    controller.abort();
    const aborted = await serve(encodePackets(lines('command=fetch', '|', `want ${summary.head}`, 'done', null)), { protocolVersion: 2, signal: controller.signal });
    assert.ok(isPackferryError(aborted.error, ErrorCode.Aborted));
  });
});

describe('the commit walk', () => {
  /**
   * A linear history of `dates.length` commits (committer dates as given),
   * one file changed per commit, mirrored into a new store. Returns the
   * commits, oldest first.
   */
  async function history(name: string, dates: number[]): Promise<{ repo: string; store: string; commits: string[] }> {
    const repo = join(tmp.path, `${name}.git`);
    const store = join(tmp.path, `${name}-store.git`);
    git(['init', '-q', '--bare', '-b', 'main', repo]);
    const commits: string[] = [];
    dates.forEach((date, i) => {
      const blob = git(['hash-object', '-w', '--stdin'], { cwd: repo, input: `content ${i}\n` });
      const tree = git(['mktree'], { cwd: repo, input: `100644 blob ${blob}\tfile-${i % 3}.txt\n` });
      const env = { GIT_COMMITTER_DATE: `${date} +0000`, GIT_AUTHOR_DATE: `${date} +0000` };
      const args = ['commit-tree', tree, '-m', `commit ${i}`, ...(i > 0 ? ['-p', commits[i - 1]] : [])];
      commits.push(git(args, { cwd: repo, env }));
    });
    git(['update-ref', 'refs/heads/main', commits[commits.length - 1]], { cwd: repo });
    const result = await mirror(await openTransport(repo, {}), [storeTarget(`store://${store}`, () => openStore(store))]);
    assert.ok(result.ok);
    return { repo, store, commits };
  }

  /** The objects of a v2 fetch of `want` with `have`, and how many objects the store read for it. */
  async function fetchObjects(store: string, baseRepo: string, want: string, have: string): Promise<{ objects: string[]; reads: number }> {
    const repo = await openStore(store);
    try {
      const objects = await repo.objects();
      const read = objects.tryRead.bind(objects);
      let reads = 0;
      objects.tryRead = async (oid) => {
        reads++;
        return read(oid);
      };
      const parts: Buffer[] = [];
      const body = encodePackets(lines('command=fetch', '|', 'ofs-delta', 'no-progress', `want ${want}`, `have ${have}`, 'done', null));
      for await (const chunk of serveUploadPack(repo, single(body), { protocolVersion: 2 })) parts.push(chunk);
      const res = await parseResponse(Buffer.concat(parts), 2);
      return { objects: packObjectIds(res.pack!, baseRepo), reads };
    } finally {
      await repo.close();
    }
  }

  const expected = (repo: string, want: string, have: string): string[] =>
    git(['rev-list', '--objects', want, `^${have}`], { cwd: repo })
      .split('\n')
      .map((l) => l.slice(0, 40))
      .sort();

  it('an incremental fetch reads the commits near the tips, not the whole history', async () => {
    const { repo, store, commits } = await history('long', Array.from({ length: 80 }, (_, i) => 1_600_000_000 + i * 60));
    const tip = commits[79];
    const { objects, reads } = await fetchObjects(store, repo, tip, commits[77]);
    assert.deepEqual(objects, expected(repo, tip, commits[77]));
    assert.ok(reads < 20, `${reads} commits read for a fetch of 2`);
  });

  it('committer dates out of order cost more reading, never a missing or extra object', async () => {
    // Commit 5 claims to be older than all the others; commit 6 newer again.
    const dates = Array.from({ length: 12 }, (_, i) => 1_600_000_000 + i * 60);
    dates[5] = 1_000_000_000;
    const { repo, store, commits } = await history('skewed', dates);
    for (const [want, have] of [
      [commits[11], commits[3]],
      [commits[11], commits[5]],
      [commits[6], commits[4]],
      [commits[5], commits[2]],
    ]) {
      assert.deepEqual((await fetchObjects(store, repo, want, have)).objects, expected(repo, want, have));
    }
    // All dates the same: the order of discovery decides, with the same result.
    const flat = await history('flat', Array.from({ length: 10 }, () => 1_700_000_000));
    assert.deepEqual((await fetchObjects(flat.store, flat.repo, flat.commits[9], flat.commits[4])).objects, expected(flat.repo, flat.commits[9], flat.commits[4]));
  });
});

describe('fuzzing', () => {
  const oidArb = fc.constantFrom(A, B, C, '0'.repeat(40));
  const lineArb = fc.oneof(
    oidArb.map((o) => `want ${o}`),
    fc.tuple(oidArb, fc.subarray(['multi_ack_detailed', 'side-band-64k', 'filter', 'no-done', 'deepen-relative', 'object-format=sha1', 'agent=x'])).map(([o, caps]) => `want ${o} ${caps.join(' ')}`),
    oidArb.map((o) => `have ${o}`),
    oidArb.map((o) => `shallow ${o}`),
    fc.integer({ min: -2, max: 2 ** 33 }).map((n) => `deepen ${n}`),
    fc.integer({ min: -2, max: 2 ** 40 }).map((n) => `deepen-since ${n}`),
    fc.string({ maxLength: 12 }).map((s) => `deepen-not ${s}`),
    fc.constantFrom('done', 'thin-pack', 'ofs-delta', 'no-progress', 'include-tag', 'wait-for-done', 'deepen-relative', 'peel', 'symrefs', 'unborn', 'ref-prefix refs/'),
    fc.constantFrom('command=fetch', 'command=ls-refs', 'command=', 'agent=git/2', 'object-format=sha1', 'server-option=x', 'filter blob:none', 'filter tree:3', 'filter blob:limit=1k'),
    fc.string({ maxLength: 30 }).map((s) => `filter ${s}`),
    fc.string({ maxLength: 60 }),
  );
  const packetArb: fc.Arbitrary<Packet> = fc.oneof(
    { weight: 8, arbitrary: lineArb.map((l) => ({ type: 'data' as const, data: Buffer.from(`${l}\n`) })) },
    { weight: 2, arbitrary: fc.constantFrom<Packet>({ type: 'flush' }, { type: 'delim' }, { type: 'response-end' }) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 50 }).map((data) => ({ type: 'data' as const, data })) },
  );
  const request = fc.array(packetArb, { maxLength: 24 });
  const small = uploadPackLimits({ maxWants: 3, maxHaves: 3, maxShallows: 2, maxDeepenNots: 2, maxRefPrefixes: 2, maxCapabilityLines: 3 });

  /** Runs fn: a result or a PackferryError; anything else fails the property. */
  function parsesOrRefuses(fn: () => unknown): void {
    try {
      fn();
    } catch (err) {
      if (!(err instanceof PackferryError)) throw err;
    }
  }

  it('the parsers give a result or a PackferryError, whatever the packets', () => {
    fc.assert(
      fc.property(request, (packets) => {
        parsesOrRefuses(() => parseUploadPackRequestV0(packets, small));
        parsesOrRefuses(() => {
          const command = parseCommandRequest(packets, small);
          if (command?.command === 'fetch') parseFetchArgs(command.args, small);
          if (command?.command === 'ls-refs') parseLsRefsArgs(command.args, small);
        });
        parsesOrRefuses(() => parseFetchArgs(packets.filter((p) => p.type === 'data').map((p) => lineText((p as { data: Uint8Array }).data)), small));
      }),
      { numRuns: NUM_RUNS },
    );
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (spec) => parsesOrRefuses(() => parseFilterSpec(spec))),
      { numRuns: NUM_RUNS },
    );
  });

  it('serveUploadPack over a real store answers or throws a PackferryError, whatever the request', async () => {
    const storeOids = fc.constantFrom(...oids.slice(0, 30), summary.head, 'f'.repeat(40));
    const realLine = fc.oneof(
      storeOids.map((o) => `want ${o}`),
      storeOids.map((o) => `want ${o} multi_ack_detailed side-band-64k thin-pack ofs-delta include-tag filter no-done deepen-relative`),
      storeOids.map((o) => `have ${o}`),
      storeOids.map((o) => `shallow ${o}`),
      fc.integer({ min: 1, max: 5 }).map((n) => `deepen ${n}`),
      fc.constantFrom('deepen-since 1600000000', 'deepen-since 1700000000', 'deepen-not main', 'deepen-not nothing', 'deepen-relative', 'done', 'thin-pack', 'ofs-delta', 'include-tag', 'no-progress'),
      fc.constantFrom('filter blob:none', 'filter tree:0', 'filter tree:2', 'filter blob:limit=100', 'peel', 'symrefs', 'unborn', 'ref-prefix refs/tags/'),
    );
    const realRequest = fc.tuple(
      fc.constantFrom<0 | 2>(0, 2),
      fc.constantFrom('command=fetch', 'command=ls-refs'),
      fc.array(realLine, { maxLength: 10 }),
      fc.array(realLine, { maxLength: 5 }),
    );
    await fc.assert(
      fc.asyncProperty(realRequest, async ([version, command, first, second]) => {
        const packets = version === 2 ? lines(command, '|', ...first, ...second, null) : lines(...first, null, ...second, 'done');
        const { body, error } = await serve(encodePackets(packets), { protocolVersion: version, onError: (e) => assert.fail(`in-band error: ${String(e)}`) });
        if (error !== undefined && !(error instanceof PackferryError)) throw error;
        if (error === undefined && version === 2 && body.length > 0) {
          // Whatever came out is well-formed: pkt-lines, then (for a fetch with a pack) side-band ending in a flush.
          const res = await readResponse(body, (l) => l === 'packfile');
          if (res.pack !== undefined) assert.ok(res.pack.subarray(0, 4).equals(Buffer.from('PACK')));
        }
      }),
      { numRuns: 60 },
    );
  });

  it('a flush alone and an empty body ask for nothing', async () => {
    for (const version of [0, 2] as const) {
      assert.equal((await serve(flushPkt, { protocolVersion: version })).body.length, 0);
      assert.equal((await serve(Buffer.alloc(0), { protocolVersion: version })).body.length, 0);
    }
  });
});

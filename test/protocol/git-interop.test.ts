// pkt-line and side-band against the real Git: decode what `git upload-pack`
// says (v0 and v2 advertisements, ls-refs, fetch with and without side-band,
// a corrupt repository's band-3 error), check the packs with
// `git index-pack`, compare our encoder byte for byte with what Git's client
// sends, and have Git's own side-band reader (`git archive --remote`) read
// what our multiplexer writes.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ErrorCode, isPackferryError } from '../../src/core/errors.js';
import {
  PktLineReader,
  SIDE_BAND_64K_MAX,
  SIDE_BAND_MAX,
  decodePktLines,
  delimPkt,
  demuxSideBand,
  encodePacket,
  encodePackets,
  flushPkt,
  lineText,
  parseProgressMessage,
  pktLine,
  pktLineText,
  readPktLines,
  type Packet,
  type RemoteMessage,
} from '../../src/protocol/index.js';
import { git, gitBuffer, tempDir } from '../support/git.js';
import { collect, concatStream, killChildren, pseudoRandomBytes, startGit } from './helpers.js';

const here = dirname(fileURLToPath(import.meta.url));
/** The compiled protocol layer, for the fake upload-archive script. */
const protocolModule = pathToFileURL(resolve(here, '../../src/protocol/index.js')).href;

const tmp = tempDir('packferry-protocol-');
const repo = join(tmp.path, 'repo');
const corrupt = join(tmp.path, 'corrupt');
let gitVersion = '';
let refs: { name: string; oid: string; peeled?: string }[] = [];
let headOid = '';

const text = (p: Packet): string => {
  assert.equal(p.type, 'data', `expected a data packet, got ${p.type}`);
  return lineText(p.data);
};

/** Passes a byte stream through, keeping a copy of every chunk (to compare bytes). */
async function* tee(source: AsyncIterable<Uint8Array>, sink: Uint8Array[]): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) {
    sink.push(chunk);
    yield chunk;
  }
}

/** Passes packets through, noting each one's wire length. */
async function* measure(source: AsyncIterable<Packet>, lengths: number[]): AsyncGenerator<Packet> {
  for await (const p of source) {
    lengths.push(p.type === 'data' ? p.data.length + 4 : 4);
    yield p;
  }
}

/** Runs `git index-pack --stdin` on a pack in a fresh bare repository; returns its output ("pack\t<hash>"). */
function indexPack(pack: Uint8Array, name: string): { dir: string; output: string } {
  const dir = join(tmp.path, name);
  git(['init', '-q', '--bare', dir]);
  return { dir, output: git(['index-pack', '--stdin'], { cwd: dir, input: pack }) };
}

function countObjects(...revs: string[]): number {
  return git(['rev-list', '--objects', ...revs], { cwd: repo }).split('\n').length;
}

function checkPack(pack: Buffer, objects: number): void {
  assert.equal(pack.subarray(0, 4).toString('latin1'), 'PACK');
  assert.equal(pack.readUInt32BE(4), 2, 'pack version');
  assert.equal(pack.readUInt32BE(8), objects, 'object count');
  const digest = createHash('sha1').update(pack.subarray(0, pack.length - 20)).digest();
  assert.deepEqual(pack.subarray(pack.length - 20), digest, 'trailing checksum');
}

before(() => {
  gitVersion = git(['version']).replace(/^git version /, '');
  git(['init', '-q', '-b', 'main', repo]);
  writeFileSync(join(repo, 'README'), 'packferry protocol fixture\n');
  git(['add', 'README'], { cwd: repo });
  git(['commit', '-q', '-m', 'first'], { cwd: repo });
  // Incompressible, so the pack spans many side-band packets.
  writeFileSync(join(repo, 'big.bin'), pseudoRandomBytes(300_000));
  git(['add', 'big.bin'], { cwd: repo });
  git(['commit', '-q', '-m', 'big'], { cwd: repo });
  git(['tag', '-a', '-m', 'release', 'v1.0'], { cwd: repo });
  git(['checkout', '-q', '-b', 'feature'], { cwd: repo });
  writeFileSync(join(repo, 'feature.txt'), 'more\n');
  git(['add', 'feature.txt'], { cwd: repo });
  git(['commit', '-q', '-m', 'feature'], { cwd: repo });
  git(['tag', 'light'], { cwd: repo });
  git(['checkout', '-q', 'main'], { cwd: repo });
  headOid = git(['rev-parse', 'HEAD'], { cwd: repo });
  refs = git(['for-each-ref', '--format=%(refname) %(objectname) %(*objectname)'], { cwd: repo })
    .split('\n')
    .map((line) => {
      const [name, oid, peeled] = line.split(' ');
      return peeled ? { name, oid, peeled } : { name, oid };
    });

  // A repository whose only blob is corrupt: upload-pack's pack-objects dies
  // and upload-pack reports it on band 3.
  git(['init', '-q', '-b', 'main', corrupt]);
  writeFileSync(join(corrupt, 'data'), pseudoRandomBytes(5000, 7));
  git(['add', 'data'], { cwd: corrupt });
  git(['commit', '-q', '-m', 'will be corrupted'], { cwd: corrupt });
  const blob = git(['rev-parse', 'HEAD:data'], { cwd: corrupt });
  const path = join(corrupt, '.git', 'objects', blob.slice(0, 2), blob.slice(2));
  chmodSync(path, 0o644);
  writeFileSync(path, 'garbage');
});

after(() => {
  killChildren();
  tmp.cleanup();
});

describe('real git: advertisements', () => {
  it('decodes the v0 ref advertisement of git upload-pack, byte for byte', async () => {
    const raw: Uint8Array[] = [];
    const run = startGit(['upload-pack', '--advertise-refs', repo]);
    const packets = await collect(readPktLines(tee(run.stdout, raw)));
    assert.equal((await run.exit).code, 0);

    const [first, ...rest] = packets;
    const [headLine, caps] = text(first).split('\0');
    assert.equal(headLine, `${headOid} HEAD`);
    const capabilities = caps.split(' ');
    for (const cap of ['side-band', 'side-band-64k', 'ofs-delta', 'symref=HEAD:refs/heads/main', 'object-format=sha1']) {
      assert.ok(capabilities.includes(cap), `${cap} in ${caps}`);
    }
    assert.ok(capabilities.includes(`agent=git/${gitVersion}`));

    assert.equal(rest.at(-1)?.type, 'flush');
    const expected = refs.flatMap((r) =>
      r.peeled ? [`${r.oid} ${r.name}`, `${r.peeled} ${r.name}^{}`] : [`${r.oid} ${r.name}`],
    );
    assert.deepEqual(rest.slice(0, -1).map(text), expected);
    // Every line ends in LF as Git sends it, and our encoder reproduces the stream exactly.
    assert.deepEqual(encodePackets(packets), Buffer.concat(raw));
  });

  it('decodes the v2 capability advertisement, byte for byte', async () => {
    const raw: Uint8Array[] = [];
    const run = startGit(['upload-pack', '--advertise-refs', repo], { env: { GIT_PROTOCOL: 'version=2' } });
    const packets = await collect(readPktLines(tee(run.stdout, raw)));
    assert.equal((await run.exit).code, 0);
    const lines = packets.slice(0, -1).map(text);
    assert.equal(packets.at(-1)?.type, 'flush');
    assert.equal(lines[0], 'version 2');
    assert.ok(lines.includes(`agent=git/${gitVersion}`));
    assert.ok(lines.some((l) => l === 'ls-refs' || l.startsWith('ls-refs=')));
    assert.ok(lines.some((l) => l === 'fetch' || l.startsWith('fetch=')));
    assert.ok(lines.includes('object-format=sha1'));
    assert.deepEqual(encodePackets(packets), Buffer.concat(raw));
    for (const p of packets) assert.deepEqual(encodePacket(p), p.type === 'data' ? pktLineText(lineText(p.data)) : flushPkt);
  });
});

describe('real git: protocol v2 commands', () => {
  it('runs ls-refs and gets every ref, peeled tags and the HEAD symref', async () => {
    const request = Buffer.concat([
      pktLineText('command=ls-refs'),
      pktLineText('object-format=sha1'),
      delimPkt,
      pktLineText('peel'),
      pktLineText('symrefs'),
      pktLineText('ref-prefix HEAD'),
      pktLineText('ref-prefix refs/'),
      flushPkt,
    ]);
    const run = startGit(['upload-pack', '--stateless-rpc', repo], { env: { GIT_PROTOCOL: 'version=2' }, input: request });
    const packets = await collect(readPktLines(run.stdout));
    const { code, stderr } = await run.exit;
    assert.equal(code, 0, stderr);
    assert.equal(packets.at(-1)?.type, 'flush');
    assert.deepEqual(packets.slice(0, -1).map(text), [
      `${headOid} HEAD symref-target:refs/heads/main`,
      ...refs.map((r) => (r.peeled ? `${r.oid} ${r.name} peeled:${r.peeled}` : `${r.oid} ${r.name}`)),
    ]);
  });

  it('runs fetch: decodes the packfile section, demultiplexes it, and git index-pack accepts the pack', async () => {
    const wants = [...new Set(refs.map((r) => r.oid))];
    const request = Buffer.concat([
      pktLineText('command=fetch'),
      pktLineText('object-format=sha1'),
      delimPkt,
      pktLineText('ofs-delta'),
      ...wants.map((oid) => pktLineText(`want ${oid}`)),
      pktLineText('done'),
      flushPkt,
    ]);
    const run = startGit(['upload-pack', '--stateless-rpc', repo], { env: { GIT_PROTOCOL: 'version=2' }, input: request });
    const reader = new PktLineReader(run.stdout);
    assert.equal(text(await reader.read()), 'packfile');

    const messages: RemoteMessage[] = [];
    const lengths: number[] = [];
    const demux = demuxSideBand(measure(reader, lengths), { onProgress: (m) => messages.push(m) });
    const parts: Uint8Array[] = [];
    let step = await demux.next();
    for (; !step.done; step = await demux.next()) parts.push(step.value);
    assert.equal(step.value.type, 'flush');
    assert.equal(await reader.tryRead(), undefined, 'nothing after the final flush');
    const { code, stderr } = await run.exit;
    assert.equal(code, 0, stderr);

    const pack = Buffer.concat(parts);
    const objects = countObjects('--all');
    checkPack(pack, objects);
    assert.ok(pack.length > 300_000);
    assert.ok(lengths.length > 10, 'the pack came in many side-band packets');
    assert.ok(Math.max(...lengths) <= SIDE_BAND_64K_MAX);

    const { dir, output } = indexPack(pack, 'v2-fetch.git');
    assert.equal(output, `pack\t${pack.subarray(pack.length - 20).toString('hex')}`);
    assert.equal(git(['cat-file', '-t', refs.find((r) => r.name === 'refs/tags/v1.0')!.oid], { cwd: dir }), 'tag');

    // Progress arrived on band 2, split on CR and LF, in Git's format.
    const finished = messages.map((m) => parseProgressMessage(m.text)).filter((e) => e?.finished);
    assert.ok(
      finished.some((e) => e?.title === 'Counting objects' && e.total === objects && e.done === objects),
      JSON.stringify(messages),
    );
    assert.ok(messages.some((m) => m.end === '\r'), 'progress updates end in CR');
    const total = messages.find((m) => m.text.startsWith('Total '));
    assert.ok(total !== undefined && total.text.startsWith(`Total ${objects} `), total?.text);
  });

  it("turns upload-pack's band-3 report about a corrupt repository into ERR_REMOTE", async () => {
    const request = Buffer.concat([
      pktLineText('command=fetch'),
      delimPkt,
      pktLineText(`want ${git(['rev-parse', 'HEAD'], { cwd: corrupt })}`),
      pktLineText('done'),
      flushPkt,
    ]);
    const run = startGit(['upload-pack', '--stateless-rpc', corrupt], { env: { GIT_PROTOCOL: 'version=2' }, input: request });
    const reader = new PktLineReader(run.stdout);
    assert.equal(text(await reader.read()), 'packfile');
    const messages: RemoteMessage[] = [];
    await assert.rejects(collect(demuxSideBand(reader, { onProgress: (m) => messages.push(m) })), (err: unknown) => {
      assert.ok(isPackferryError(err, ErrorCode.RemoteError));
      assert.equal(err.message, 'remote: aborting due to possible repository corruption on the remote side.');
      return true;
    });
    assert.ok(messages.some((m) => /corrupt|unable to unpack/.test(m.text)), JSON.stringify(messages));
    await reader.close();
    assert.notEqual((await run.exit).code, 0);
  });
});

describe('real git: protocol v0 fetch', () => {
  it('reads NAK then a side-band pack in packets of at most 1000 bytes (995 data bytes)', async () => {
    const request = Buffer.concat([
      pktLineText(`want ${headOid} side-band ofs-delta agent=packferry/test`),
      flushPkt,
      pktLineText('done'),
    ]);
    const run = startGit(['upload-pack', '--stateless-rpc', repo], { input: request });
    const reader = new PktLineReader(run.stdout);
    assert.equal(text(await reader.read()), 'NAK');
    const lengths: number[] = [];
    const pack = await concatStream(demuxSideBand(measure(reader, lengths)));
    assert.equal((await run.exit).code, 0);
    checkPack(pack, countObjects('main'));
    indexPack(pack, 'v0-side-band.git');
    // Git's send_sideband counts the 4-byte prefix and the band byte in the 1000.
    assert.equal(Math.max(...lengths), SIDE_BAND_MAX);
  });

  it('reads NAK then the raw pack from the same stream with readRemainder()', async () => {
    const request = Buffer.concat([pktLineText(`want ${headOid} ofs-delta`), flushPkt, pktLineText('done')]);
    const run = startGit(['upload-pack', '--stateless-rpc', repo], { input: request });
    const reader = new PktLineReader(run.stdout);
    assert.equal(text(await reader.read()), 'NAK');
    const pack = await concatStream(reader.readRemainder());
    assert.equal((await run.exit).code, 0);
    checkPack(pack, countObjects('main'));
    const { output } = indexPack(pack, 'v0-raw.git');
    assert.equal(output, `pack\t${pack.subarray(pack.length - 20).toString('hex')}`);
  });
});

describe('real git: the decoder agrees with Git on edge cases', () => {
  // Each case goes after "command=ls-refs" + delim, where upload-pack reads
  // arguments; Git's complaint tells how it decoded the packet.
  const cases: { name: string; wire: Buffer; git: RegExp; ours: string | { code: string } }[] = [
    { name: 'upper-case hex length', wire: Buffer.from('000A peel\n'), git: /unexpected line: ' peel'/, ours: ' peel\n' },
    { name: 'empty data packet 0004', wire: Buffer.from('0004'), git: /unexpected line: ''/, ours: '' },
    { name: 'length 0003', wire: Buffer.from('0003'), git: /bad line length 3/, ours: { code: ErrorCode.PktLineLength } },
    {
      name: 'non-hex length',
      wire: Buffer.from('00g0xxxxxxxx'),
      git: /bad line length character: 00g0/,
      ours: { code: ErrorCode.PktLineLength },
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const request = Buffer.concat([pktLineText('command=ls-refs'), delimPkt, c.wire, flushPkt]);
      const run = startGit(['upload-pack', '--stateless-rpc', repo], { env: { GIT_PROTOCOL: 'version=2' }, input: request });
      await concatStream(run.stdout);
      const { code, stderr } = await run.exit;
      assert.notEqual(code, 0);
      assert.match(stderr, c.git);
      if (typeof c.ours === 'string') {
        const [packet] = decodePktLines(c.wire);
        assert.equal(packet.type === 'data' && Buffer.from(packet.data).toString('latin1'), c.ours);
      } else {
        assert.throws(() => decodePktLines(c.wire), c.ours);
      }
    });
  }

  it('is deliberately stricter than Git 2.39 about lengths 65521..65523', async () => {
    const wire = Buffer.concat([Buffer.from('fff1'), Buffer.alloc(65517, 0x78)]);
    const request = Buffer.concat([pktLineText('command=ls-refs'), delimPkt, wire, flushPkt]);
    const run = startGit(['upload-pack', '--stateless-rpc', repo], { env: { GIT_PROTOCOL: 'version=2' }, input: request });
    await concatStream(run.stdout);
    // Git reads the over-long line (and then rejects it as an argument) ...
    assert.match((await run.exit).stderr, /unexpected line: 'xxxx/);
    // ... while gitprotocol-common says no pkt-line may exceed 65520 bytes.
    assert.throws(() => decodePktLines(wire), { code: ErrorCode.PktLineLength });
  });
});

describe("real git: our encoder matches Git's client byte for byte", () => {
  let recorder = '';
  before(() => {
    recorder = join(tmp.path, 'record-upload-pack.sh');
    writeFileSync(recorder, '#!/bin/sh\ntee -a "$PACKFERRY_RECORD" | git upload-pack "$@"\n');
    chmodSync(recorder, 0o755);
  });

  function record(name: string, args: string[]): Buffer {
    const file = join(tmp.path, `${name}.request`);
    gitBuffer(args, { cwd: tmp.path, env: { PACKFERRY_RECORD: file } });
    return readFileSync(file);
  }

  it('ls-remote over protocol v2', () => {
    const request = record('ls-remote', ['-c', 'protocol.version=2', 'ls-remote', `--upload-pack=${recorder}`, repo]);
    assert.deepEqual(
      request,
      Buffer.concat([
        pktLineText('command=ls-refs'),
        pktLine(`agent=git/${gitVersion}`), // Git's client sends its capabilities without LF
        pktLine('object-format=sha1'),
        delimPkt,
        pktLineText('peel'),
        pktLineText('symrefs'),
        pktLineText('unborn'),
        flushPkt,
        flushPkt, // the end of the session
      ]),
    );
  });

  for (const version of ['2', '0']) {
    it(`clone over protocol v${version}`, () => {
      const request = record(`clone-v${version}`, [
        '-c',
        `protocol.version=${version}`,
        'clone',
        '-q',
        '--bare',
        `--upload-pack=${recorder}`,
        pathToFileURL(repo).href,
        `clone-v${version}.git`,
      ]);
      const packets = decodePktLines(request);
      assert.deepEqual(encodePackets(packets), request);
      const lines = packets.map((p) => (p.type === 'data' ? lineText(p.data) : p.type));
      // Every "want" line Git sent is exactly what pktLineText makes of it.
      const wants = packets.filter((p) => p.type === 'data' && lineText(p.data).startsWith('want '));
      assert.ok(wants.length >= 2, lines.join(' | '));
      for (const w of wants) {
        const line = lineText((w as { data: Uint8Array }).data);
        assert.deepEqual(encodePacket(w), pktLineText(line));
      }
      assert.ok(lines.includes('done'));
      if (version === '2') assert.ok(lines.includes('command=fetch') && lines.includes('delim'));
      else assert.match(lines[0], /^want [0-9a-f]{40} .*side-band-64k/);
      assert.equal(git(['rev-parse', 'main'], { cwd: join(tmp.path, `clone-v${version}.git`) }), headOid);
    });
  }
});

describe("real git: Git's side-band reader reads what our multiplexer writes", () => {
  let script = '';
  before(() => {
    // A fake git-upload-archive (gitprotocol-pack has no such section; the
    // exchange is archive.c's): read the arguments, ACK, then the archive on
    // band 1 and progress on band 2, using our encoder and multiplexer.
    const dir = join(tmp.path, 'fake');
    mkdirSync(dir);
    script = join(dir, 'fake-upload-archive.mjs');
    writeFileSync(
      script,
      `import { readFileSync, writeFileSync } from 'node:fs';
import { PktLineReader, flushPkt, lineText, pktLineText, sideBandPacket } from ${JSON.stringify(protocolModule)};
const reader = new PktLineReader(process.stdin);
const args = [];
for (let p = await reader.read(); p.type !== 'flush'; p = await reader.read()) args.push(lineText(p.data));
writeFileSync(process.env.PACKFERRY_ARGS, JSON.stringify(args));
const out = [pktLineText('ACK'), flushPkt];
out.push(sideBandPacket(2, 'Preparing:  50% (1/2)\\r'));
out.push(sideBandPacket(1, readFileSync(process.env.PACKFERRY_PAYLOAD), process.env.PACKFERRY_MODE));
out.push(sideBandPacket(2, 'Preparing: 100% (2/2), done.\\n'));
out.push(process.env.PACKFERRY_FAIL ? sideBandPacket(3, process.env.PACKFERRY_FAIL) : flushPkt);
process.stdout.write(Buffer.concat(out));
`,
    );
  });

  async function archive(mode: string, payload: Buffer, fail = ''): Promise<{ code: number | null; stdout: Buffer; stderr: string; args: string[] }> {
    const payloadFile = join(tmp.path, 'fake', `payload-${mode}`);
    const argsFile = join(tmp.path, 'fake', `args-${mode}`);
    writeFileSync(payloadFile, payload);
    const exec = `'${process.execPath}' '${script}'`;
    const run = startGit(['archive', `--remote=${repo}`, `--exec=${exec}`, 'HEAD'], {
      env: { PACKFERRY_PAYLOAD: payloadFile, PACKFERRY_ARGS: argsFile, PACKFERRY_MODE: mode, PACKFERRY_FAIL: fail },
    });
    const stdout = await concatStream(run.stdout);
    const { code, stderr } = await run.exit;
    return { code, stdout, stderr, args: JSON.parse(readFileSync(argsFile, 'utf8')) as string[] };
  }

  for (const mode of ['side-band-64k', 'side-band']) {
    it(`git archive --remote receives ${mode} data intact`, async () => {
      const payload = pseudoRandomBytes(200_000, 42);
      const { code, stdout, stderr, args } = await archive(mode, payload);
      assert.equal(code, 0, stderr);
      assert.deepEqual(stdout, payload);
      assert.match(stderr, /remote: Preparing: 100% \(2\/2\), done\./);
      assert.deepEqual(args, ['argument HEAD']);
    });
  }

  it('git archive --remote reports our band-3 message and fails', async () => {
    const { code, stderr } = await archive('side-band-64k', Buffer.from('partial'), 'no such tree\n');
    assert.notEqual(code, 0);
    assert.match(stderr, /remote: no such tree/);
  });
});

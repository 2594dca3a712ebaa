// Helpers for the upload-pack tests: reading an upload-pack response (v2
// sections or v0 lines, then the demultiplexed pack), the object ids of a
// (thin) pack (by `git index-pack --fix-thin`), and replaying a request a real client sent us
// against `git upload-pack --stateless-rpc` on the source repository, so the
// two answers can be compared: negotiation lines, shallow lines, and the set
// of objects in the pack.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PktLineReader } from '../../src/protocol/pkt-line-reader.js';
import { decodePktLine, lineText } from '../../src/protocol/pkt-line.js';
import { demuxSideBand } from '../../src/protocol/side-band.js';
import { FsBlobStore } from '../../src/store/fs-backend.js';
import { StoreRepository } from '../../src/store/repository.js';
import { serveUploadPack } from '../../src/server/upload-pack.js';
import { git, gitEnv } from '../support/git.js';

export interface ParsedResponse {
  /** Every pkt-line before the pack, as text ("[delim]" and "[flush]" for those). */
  lines: string[];
  /** The pack's bytes, when there was one. */
  pack?: Buffer;
  /** An "ERR" line or a band-3 message. */
  error?: string;
}

async function* single(body: Uint8Array): AsyncGenerator<Uint8Array> {
  yield body;
}

/**
 * Reads a response: pkt-lines, then the pack — v2 after "packfile"; v0 where
 * the first side-band packet (band 1, 2 or 3: no negotiation line starts
 * with those bytes) or the bare "PACK" signature turns up.
 */
export async function parseResponse(body: Buffer, version: 0 | 1 | 2): Promise<ParsedResponse> {
  const out: ParsedResponse = { lines: [] };
  let pos = 0;
  const readPack = async (multiplexed: boolean): Promise<void> => {
    const parts: Uint8Array[] = [];
    try {
      if (multiplexed) for await (const chunk of demuxSideBand(new PktLineReader(single(body.subarray(pos))))) parts.push(chunk);
      else parts.push(body.subarray(pos));
    } catch (err) {
      out.error = (err as Error).message;
    }
    out.pack = Buffer.concat(parts);
  };
  while (pos < body.length) {
    if (version !== 2 && body.subarray(pos, pos + 4).toString('latin1') === 'PACK') {
      await readPack(false);
      return out;
    }
    const result = decodePktLine(body, pos);
    if (result.kind === 'incomplete') throw new Error(`truncated response at ${pos}`);
    const packet = result.packet;
    if (packet.type !== 'data') {
      out.lines.push(`[${packet.type}]`);
      pos += result.consumed;
      continue;
    }
    if (version !== 2 && packet.data.length > 0 && packet.data[0] >= 1 && packet.data[0] <= 3) {
      await readPack(true);
      return out;
    }
    pos += result.consumed;
    const line = lineText(packet.data);
    if (line.startsWith('ERR ')) {
      out.error = line.slice(4);
      return out;
    }
    out.lines.push(line);
    if (version === 2 && line === 'packfile') {
      await readPack(true);
      return out;
    }
  }
  return out;
}

/**
 * The ids of the objects in a pack, sorted. The pack may be thin: it is
 * completed by `git index-pack --fix-thin` in a scratch repository that
 * borrows `baseRepo`'s objects, and the bases appended at its end are left
 * out again (they are not what the server sent).
 */
export function packObjectIds(pack: Buffer, baseRepo: string): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'packferry-pack-ids-'));
  try {
    execFileSync('git', ['init', '-q', '--bare', dir], { env: gitEnv });
    writeFileSync(join(dir, 'objects', 'info', 'alternates'), `${resolve(baseRepo, 'objects')}\n`);
    const out = execFileSync('git', ['index-pack', '--stdin', '--fix-thin'], { cwd: dir, input: pack, env: gitEnv, stdio: ['pipe', 'pipe', 'pipe'] }).toString();
    const hash = /([0-9a-f]{40})/.exec(out)![1];
    const idx = readFileSync(join(dir, 'objects', 'pack', `pack-${hash}.idx`));
    const text = execFileSync('git', ['show-index'], { input: idx, env: gitEnv }).toString();
    const end = pack.length - 20; // entries past the original ones were appended by --fix-thin
    return text
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => l.split(' '))
      .filter(([offset]) => Number(offset) < end)
      .map(([, oid]) => oid)
      .sort();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** What `git upload-pack --stateless-rpc` answers to `body` on `repoDir`. */
export function gitUploadPack(repoDir: string, body: Buffer, version: 0 | 1 | 2): Buffer {
  return execFileSync('git', ['upload-pack', '--stateless-rpc', repoDir], {
    input: body,
    env: { ...gitEnv, GIT_PROTOCOL: version === 2 ? 'version=2' : '' },
    maxBuffer: 1 << 30,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

/** What serveUploadPack answers to `body` on the store at `storeDir` (an error before the response: "ERR"). */
export async function ourUploadPack(storeDir: string, body: Buffer, version: 0 | 1 | 2): Promise<Buffer> {
  const repo = await StoreRepository.open(new FsBlobStore(storeDir));
  const parts: Buffer[] = [];
  try {
    for await (const chunk of serveUploadPack(repo, single(body), { protocolVersion: version })) parts.push(chunk);
  } catch (err) {
    parts.push(Buffer.from(`ERR ${(err as Error).message}`));
  } finally {
    await repo.close();
  }
  return Buffer.concat(parts);
}

/**
 * Lines of a response in a comparable form: sorted, and without repeated
 * shallow lines (Git repeats "shallow <oid>" when several wants name the
 * same commit; once is enough).
 */
function normalLines(lines: string[]): string[] {
  return [...new Set(lines.filter((l) => l.startsWith('shallow ')))].concat(lines.filter((l) => !l.startsWith('shallow '))).sort();
}

export interface ReplayResult {
  ours: ParsedResponse;
  theirs: ParsedResponse;
  oursObjects?: string[];
  theirsObjects?: string[];
}

/**
 * Replays one request against both servers and asserts the answers agree:
 * the same lines (in any order) and the same objects in the pack.
 */
export async function replayAndCompare(
  storeDir: string,
  sourceDir: string,
  body: Buffer,
  version: 0 | 1 | 2,
  label: string,
  /** Objects Git may send and packferry need not (see the caller's reason). */
  tolerated: ReadonlySet<string> = new Set(),
): Promise<ReplayResult> {
  const ours = await parseResponse(await ourUploadPack(storeDir, body, version), version);
  const theirs = await parseResponse(gitUploadPack(sourceDir, body, version), version);
  assert.equal(ours.error, theirs.error, `${label}: errors differ`);
  assert.deepEqual(normalLines(ours.lines), normalLines(theirs.lines), `${label}: response lines differ`);
  assert.equal(ours.pack !== undefined, theirs.pack !== undefined, `${label}: one side sent a pack`);
  const result: ReplayResult = { ours, theirs };
  if (ours.pack && theirs.pack) {
    result.oursObjects = packObjectIds(ours.pack, sourceDir);
    result.theirsObjects = packObjectIds(theirs.pack, sourceDir).filter((oid) => !tolerated.has(oid) || result.oursObjects!.includes(oid));
    assert.deepEqual(result.oursObjects, result.theirsObjects, `${label}: pack objects differ`);
  }
  return result;
}

/** Every object id in a repository (`git cat-file --batch-all-objects`), sorted. */
export function objectIds(dir: string): string[] {
  const text = git(['cat-file', '--batch-all-objects', '--batch-check=%(objectname)'], { cwd: dir });
  return text === '' ? [] : text.split('\n').sort();
}

/** The shallow commits of a repository (its `shallow` file), sorted. */
export function shallowCommits(dir: string): string[] {
  const path = resolve(dir, git(['rev-parse', '--git-path', 'shallow'], { cwd: dir }));
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .sort();
}

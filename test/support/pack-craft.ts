// Building packs by hand for tests (gitformat-pack): entries from raw parts,
// deltas from copy/insert instructions, and a correct SHA-1 trailer, so that a
// test's pack carries exactly the one defect it is about. Also the harness
// that feeds the same bytes to indexPackFile, indexPackStream and to
// `git index-pack`, the reference.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createHash } from 'node:crypto';
import { deflateSync } from 'node:zlib';
import { PackferryError, type ErrorCode } from '../../src/core/errors.js';
import { encodeDeltaSize } from '../../src/pack/delta.js';
import { encodeEntryHeader, encodePackHeader, PackObjectType } from '../../src/pack/format.js';
import { indexPackFile, indexPackStream, type IndexedPack, type IndexPackOptions } from '../../src/pack/indexer.js';
import { hashObject, objectTypeFromPackType } from '../../src/core/object.js';
import { SHA1 } from '../../src/core/hash.js';
import { gitAsync } from './git.js';

export const { Commit, Tree, Blob, Tag, OfsDelta, RefDelta } = PackObjectType;

export function sha1(...parts: Uint8Array[]): Buffer {
  const h = createHash('sha1');
  for (const p of parts) h.update(p);
  return h.digest();
}

/** The hex id of an object. */
export function oidOf(type: number, data: Uint8Array): string {
  return hashObject(objectTypeFromPackType(type), data, SHA1);
}

/** Appends the SHA-1 trailer to a pack body (header and entries). */
export function withTrailer(body: Uint8Array): Buffer {
  return Buffer.concat([body, sha1(body)]);
}

/** Recomputes the trailer of a whole pack (its last 20 bytes) after the body was edited. */
export function fixTrailer(pack: Uint8Array): Buffer {
  return withTrailer(pack.subarray(0, pack.length - 20));
}

/** A pack from raw entry bytes; `count` defaults to the number of entries. */
export function assemblePack(entries: Uint8Array[], options: { count?: number; version?: number; signature?: string } = {}): Buffer {
  const header = encodePackHeader(options.count ?? entries.length);
  if (options.version !== undefined) header.writeUInt32BE(options.version, 4);
  if (options.signature !== undefined) header.write(options.signature, 0, 4, 'latin1');
  return withTrailer(Buffer.concat([header, ...entries]));
}

export interface EntryParts {
  /** Size written in the entry header (default: the data's length). */
  declaredSize?: number;
  /** The compressed stream (default: deflate of the data). */
  zlib?: Uint8Array;
  baseDistance?: number;
  baseId?: Uint8Array | string;
}

/** One entry's raw bytes: header (type, size, OFS distance or REF base id) then the zlib stream. */
export function rawEntry(type: number, data: Uint8Array, parts: EntryParts = {}): Buffer {
  const baseId = typeof parts.baseId === 'string' ? Buffer.from(parts.baseId, 'hex') : parts.baseId;
  const head = encodeEntryHeader(type, parts.declaredSize ?? data.length, parts.baseDistance ?? 0, baseId);
  return Buffer.concat([head, parts.zlib ?? deflateSync(data)]);
}

// ---------------------------------------------------------------------------
// Deltas (gitformat-pack, "Deltified representation").

/** The delta header: base size and result size as little-endian base-128 varints. */
export function deltaHeader(baseSize: number, resultSize: number): Buffer {
  return Buffer.from([...encodeDeltaSize(baseSize), ...encodeDeltaSize(resultSize)]);
}

/**
 * A copy instruction with only the non-zero offset and size bytes present,
 * as Git encodes it. A size of 0x10000 is written as no size bytes at all.
 */
export function copyOp(offset: number, size: number): Buffer {
  let op = 0x80;
  const args: number[] = [];
  for (let i = 0; i < 4; i++) {
    const b = Math.floor(offset / 2 ** (8 * i)) & 0xff;
    if (b !== 0) {
      op |= 1 << i;
      args.push(b);
    }
  }
  if (size !== 0x10000) {
    for (let i = 0; i < 3; i++) {
      const b = (size >> (8 * i)) & 0xff;
      if (b !== 0) {
        op |= 0x10 << i;
        args.push(b);
      }
    }
  }
  return Buffer.from([op, ...args]);
}

/** Insert instructions for `data` (split into runs of at most 127 bytes). */
export function insertOp(data: Uint8Array | string): Buffer {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'latin1') : Buffer.from(data);
  const parts: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += 127) {
    const run = bytes.subarray(i, i + 127);
    parts.push(Buffer.from([run.length]), run);
  }
  return Buffer.concat(parts);
}

/** A delta from base size, result size and instructions. */
export function makeDelta(baseSize: number, resultSize: number, ...ops: Uint8Array[]): Buffer {
  return Buffer.concat([deltaHeader(baseSize, resultSize), ...ops]);
}

// ---------------------------------------------------------------------------
// A builder that tracks offsets, so OFS_DELTA distances are easy to write.

export interface BuiltEntry {
  offset: number;
  bytes: Buffer;
}

export class PackBuilder {
  readonly entries: BuiltEntry[] = [];
  private end = 12;

  /** Appends raw entry bytes; returns the entry's offset. */
  raw(bytes: Buffer): number {
    const offset = this.end;
    this.entries.push({ offset, bytes });
    this.end += bytes.length;
    return offset;
  }

  /** Offset the next entry will have. */
  get nextOffset(): number {
    return this.end;
  }

  object(type: number, data: Uint8Array | string, parts: EntryParts = {}): number {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    return this.raw(rawEntry(type, bytes, parts));
  }

  ofsDelta(baseOffset: number, delta: Uint8Array, parts: EntryParts = {}): number {
    return this.raw(rawEntry(OfsDelta, delta, { baseDistance: this.end - baseOffset, ...parts }));
  }

  refDelta(baseId: string | Uint8Array, delta: Uint8Array, parts: EntryParts = {}): number {
    return this.raw(rawEntry(RefDelta, delta, { baseId, ...parts }));
  }

  build(options: { count?: number; version?: number; signature?: string } = {}): Buffer {
    return assemblePack(
      this.entries.map((e) => e.bytes),
      options,
    );
  }
}

// ---------------------------------------------------------------------------
// Feeding bytes to the indexer and to git.

export async function* chunksOf(buf: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, Math.min(buf.length, i + size));
}

let counter = 0;
function freshName(dir: string, label: string): string {
  return join(dir, `${label.replace(/[^a-z0-9]+/gi, '-').slice(0, 40)}-${process.pid}-${counter++}.pack`);
}

export interface ExpectedFailure {
  code: ErrorCode;
  /** The message must match this. */
  message?: RegExp;
  hint?: RegExp;
  options?: IndexPackOptions;
  /** Chunk sizes for the stream (default: the whole pack at once, then 1, 7 and 64-byte chunks). */
  chunkSizes?: number[];
  /** Also index it as a file (default true). */
  file?: boolean;
}

async function rejection(run: () => Promise<unknown>, what: string): Promise<PackferryError> {
  try {
    await run();
  } catch (err) {
    if (!(err instanceof PackferryError)) {
      assert.fail(`${what}: expected a PackferryError, got ${err instanceof Error ? `${err.name}: ${err.stack}` : String(err)}`);
    }
    return err;
  }
  return assert.fail(`${what}: expected an error, but the pack was accepted`);
}

function checkError(err: PackferryError, expected: ExpectedFailure, what: string): void {
  assert.equal(err.code, expected.code, `${what}: code (message: ${err.message})`);
  if (expected.message) assert.match(err.message, expected.message, `${what}: message`);
  if (expected.hint) assert.match(err.hint ?? '', expected.hint, `${what}: hint`);
}

/**
 * Indexes `pack` with indexPackFile and, in several chunkings, with
 * indexPackStream; each must fail with the expected code, and the stream's
 * partial file must be gone. Returns the errors (the file's first).
 */
export async function expectIndexFailure(dir: string, pack: Uint8Array, expected: ExpectedFailure): Promise<PackferryError[]> {
  const errors: PackferryError[] = [];
  if (expected.file !== false) {
    const file = freshName(dir, 'file');
    writeFileSync(file, pack);
    const fileErr = await rejection(() => indexPackFile(file, { threads: 1, ...expected.options }), 'indexPackFile');
    checkError(fileErr, expected, 'indexPackFile');
    errors.push(fileErr);
  }
  const sizes = expected.chunkSizes ?? [Math.max(1, pack.length), 1, 7, 64];
  for (const size of sizes) {
    const out = freshName(dir, `stream-${size}`);
    const err = await rejection(() => indexPackStream(chunksOf(pack, size), out, { threads: 1, ...expected.options }), `indexPackStream(${size}-byte chunks)`);
    checkError(err, expected, `indexPackStream(${size}-byte chunks)`);
    assert.equal(existsSync(out), false, `indexPackStream(${size}-byte chunks) removes the partial pack`);
    errors.push(err);
  }
  return errors;
}

/** Indexes `pack` as a stream and as a file; both must succeed with the same idx. */
export async function indexBoth(dir: string, pack: Uint8Array, options: IndexPackOptions = {}): Promise<IndexedPack> {
  const file = freshName(dir, 'ok-file');
  writeFileSync(file, pack);
  const a = await indexPackFile(file, { threads: 1, ...options });
  const b = await indexPackStream(chunksOf(pack, 13), freshName(dir, 'ok-stream'), { threads: 1, ...options });
  assert.ok(a.index.equals(b.index), 'file and stream give the same idx');
  return a;
}

export interface GitIndexResult {
  ok: boolean;
  stderr: string;
  /** The idx git wrote, when it succeeded. */
  idx?: Buffer;
  /** What git printed (the pack checksum). */
  stdout: string;
}

/**
 * `git index-pack -o <idx> <pack>` on the bytes, outside any repository (so no
 * object store can fill in missing bases).
 */
export async function gitIndexPack(dir: string, pack: Uint8Array, extraArgs: string[] = []): Promise<GitIndexResult> {
  const file = freshName(dir, 'git');
  writeFileSync(file, pack);
  const idx = file.replace(/\.pack$/, '.idx');
  const r = await gitAsync(['index-pack', ...extraArgs, '-o', idx, file], { cwd: dir, env: { GIT_CEILING_DIRECTORIES: dirname(dir) } });
  const ok = r.code === 0;
  return { ok, stderr: r.stderr, stdout: r.stdout.toString('utf8').trim(), idx: ok ? readFileSync(idx) : undefined };
}

/** Asserts that git rejects the bytes too; returns its message. */
export async function expectGitRejects(dir: string, pack: Uint8Array, stderr?: RegExp): Promise<string> {
  const r = await gitIndexPack(dir, pack);
  assert.equal(r.ok, false, `git index-pack must reject the pack too (it printed ${JSON.stringify(r.stdout)})`);
  if (stderr) assert.match(r.stderr, stderr, 'git index-pack message');
  return r.stderr;
}

// Helpers for the protocol tests: chunked byte sources, collecting streams,
// and running git with a streamed stdout (so the decoder sees real pipe
// chunking) while keeping track of children to kill in `after` hooks.
import { spawn, type ChildProcess } from 'node:child_process';
import { gitEnv } from '../support/git.js';
import { isPackferryError } from '../../src/core/errors.js';

/** Yields `buf` split at the given cut points (offsets, any order, duplicates allowed). */
export async function* chunked(buf: Uint8Array, cuts: number[] = []): AsyncGenerator<Uint8Array> {
  const points = [...new Set(cuts.filter((c) => c > 0 && c < buf.length))].sort((a, b) => a - b);
  let start = 0;
  for (const p of points) {
    yield buf.subarray(start, p);
    start = p;
  }
  yield buf.subarray(start);
}

/** Yields `buf` one byte at a time (the worst case for reassembly). */
export async function* byteByByte(buf: Uint8Array): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < buf.length; i++) yield buf.subarray(i, i + 1);
}

export async function collect<T>(source: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of source) out.push(item);
  return out;
}

export async function concatStream(source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const chunk of source) parts.push(chunk);
  return Buffer.concat(parts);
}

/** The outcome of an operation as plain data, for comparing two decoders. */
export type Outcome<T> = { ok: true; value: T } | { ok: false; code: string; details: Record<string, unknown> };

/** Runs `fn`; a PackferryError becomes a failed outcome, any other error is rethrown (a bug). */
export async function outcome<T>(fn: () => Promise<T> | T): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await fn() };
  } catch (err) {
    if (isPackferryError(err)) return { ok: false, code: err.code, details: { ...err.details } };
    throw err;
  }
}

export interface RunningGit {
  child: ChildProcess;
  /** stdout, chunk by chunk as the pipe delivers it. */
  stdout: AsyncIterable<Buffer>;
  /** Resolves when git exits. */
  exit: Promise<{ code: number | null; stderr: string }>;
}

const children = new Set<ChildProcess>();

/** Starts git with stdin fed from `input` and stdout left as a stream. */
export function startGit(
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: Uint8Array } = {},
): RunningGit {
  const child = spawn('git', args, { cwd: options.cwd, env: { ...gitEnv, ...options.env }, stdio: 'pipe' });
  children.add(child);
  const stderr: Buffer[] = [];
  child.stderr.on('data', (d: Buffer) => stderr.push(d));
  child.stdin.on('error', () => {}); // git may exit before reading all of stdin
  child.stdin.end(options.input);
  const exit = new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      children.delete(child);
      resolve({ code, stderr: Buffer.concat(stderr).toString('utf8') });
    });
  });
  return { child, stdout: child.stdout, exit };
}

/** Kills git processes still running (for `after` hooks). */
export function killChildren(): void {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
}

/** Deterministic pseudo-random bytes (xorshift32), incompressible enough to make a big pack. */
export function pseudoRandomBytes(length: number, seed = 0x9e3779b9): Buffer {
  const out = Buffer.allocUnsafe(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

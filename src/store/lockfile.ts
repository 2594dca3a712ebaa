// Git's lockfile discipline (lockfile.c, tempfile.c) for one file of a
// directory store: a writer creates `<file>.lock` exclusively (O_EXCL), so
// of any number of writers exactly one holds it; it says who holds it
// (pid, host, creation time, a random nonce). While the lock is taken,
// others wait with Git's jittered exponential backoff
// (lock_file_timeout), up to a bound, then fail with ERR_STORE_LOCKED.
//
// Git leaves a lock of a crashed writer for the user to remove; a store
// lock is held only for milliseconds, so it is taken over instead: at once
// when it was written by a process of this host that no longer runs (as
// `git gc` treats gc.pid), or by this process for an attempt it no longer
// makes; and when it is older than `staleMs` (30 s) whoever wrote it.
// Taking over moves the lock aside by rename (one of several writers that
// judged it stale moves it) and checks that what moved is the lock that was
// judged; a live lock moved by mistake is linked back. A holder checks that
// its lock is still its own just before it commits (`stillHeld`).
import { randomBytes } from 'node:crypto';
import { link, lstat, open, readFile, rename, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { throwIfAborted } from '../core/abort.js';
import { PackferryError, ErrorCode, writeFailure } from '../core/errors.js';
import { ownerIsDeadLocalProcess } from './lock.js';

export const LOCK_SUFFIX = '.lock';
/** Temporary files of a directory store start with this (the backend never lists them). */
export const TEMP_PREFIX = '.tmp-';

export interface FileLock {
  /** The lock file (`<file>.lock`). */
  readonly lockPath: string;
  /** Whether the lock file is still the one this holder made (not taken over as stale). */
  stillHeld(): Promise<boolean>;
  /** Removes the lock file if it is still this holder's. */
  release(): Promise<void>;
}

export interface FileLockOptions {
  /** How long to wait for a lock another writer holds (default 10 s). */
  waitMs?: number;
  /** A lock older than this is taken over whoever holds it (default 30 s). */
  staleMs?: number;
  signal?: AbortSignal;
}

interface LockBody {
  pid?: number;
  host?: string;
  created?: string;
  nonce?: string;
}

interface SeenLock {
  ino: number;
  mtimeMs: number;
  size: number;
  body: LockBody | undefined;
}

export const DEFAULT_LOCK_WAIT_MS = 10_000;
export const DEFAULT_STALE_LOCK_MS = 30_000;

/** The nonces of the locks this process holds now: a lock of this pid with another nonce is abandoned. */
const held = new Set<string>();

function parseBody(text: Buffer): LockBody | undefined {
  try {
    const body = JSON.parse(text.toString('utf8')) as unknown;
    return body !== null && typeof body === 'object' ? (body as LockBody) : undefined;
  } catch {
    return undefined;
  }
}

async function inspect(path: string): Promise<SeenLock | undefined> {
  try {
    const info = await lstat(path);
    const body = parseBody(await readFile(path));
    return { ino: info.ino, mtimeMs: info.mtimeMs, size: info.size, body };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function sameLock(a: SeenLock, b: SeenLock): boolean {
  return a.ino === b.ino && a.mtimeMs === b.mtimeMs && a.size === b.size && a.body?.nonce === b.body?.nonce;
}

function isStale(seen: SeenLock, staleMs: number): boolean {
  if (ownerIsDeadLocalProcess(seen.body)) return true;
  const b = seen.body;
  if (b?.host === hostname() && b.pid === process.pid && typeof b.nonce === 'string' && !held.has(b.nonce)) return true;
  return Date.now() - seen.mtimeMs > staleMs;
}

/** Moves a stale lock aside, if it is still the one judged stale. */
async function breakLock(lockPath: string, judged: SeenLock): Promise<void> {
  const now = await inspect(lockPath);
  if (now === undefined || !sameLock(now, judged)) return;
  const aside = join(dirname(lockPath), `${TEMP_PREFIX}${randomBytes(8).toString('hex')}`);
  try {
    await rename(lockPath, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  const moved = await inspect(aside);
  if (moved !== undefined && !sameLock(moved, judged)) {
    // Another writer took the stale lock over and locked between the check and the rename: give its lock back.
    // (EEXIST: a third one locked meanwhile; the holder whose lock this was sees it is gone before it commits.)
    await link(aside, lockPath).catch(() => {});
  }
  await unlink(aside).catch(() => {});
}

/**
 * Takes `<path>.lock` (Git's hold_lock_file_for_update_timeout). Throws
 * ERR_STORE_LOCKED when another writer holds it for longer than `waitMs`,
 * ERR_STORE_IO when the lock file cannot be written.
 */
export async function lockFile(path: string, options: FileLockOptions = {}): Promise<FileLock> {
  const lockPath = path + LOCK_SUFFIX;
  const waitMs = options.waitMs ?? DEFAULT_LOCK_WAIT_MS;
  const staleMs = options.staleMs ?? DEFAULT_STALE_LOCK_MS;
  const deadline = Date.now() + waitMs;
  const nonce = randomBytes(12).toString('hex');
  const body = Buffer.from(JSON.stringify({ pid: process.pid, host: hostname(), created: new Date().toISOString(), nonce }));
  // Git's backoff: 1 ms, growing by about half each time, jittered ±25%, here capped at 50 ms (a lock is held for milliseconds).
  let backoffMs = 1;
  for (;;) {
    throwIfAborted(options.signal);
    let fh;
    try {
      fh = await open(lockPath, 'wx', 0o644);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw writeFailure(err, lockPath, dirname(path));
      const seen = await inspect(lockPath);
      if (seen === undefined) continue;
      if (isStale(seen, staleMs)) {
        await breakLock(lockPath, seen);
        continue;
      }
      if (Date.now() >= deadline) throw lockedError(path, lockPath, seen, waitMs, staleMs);
      await new Promise((resolve) => setTimeout(resolve, backoffMs * (0.75 + Math.random() / 2)));
      backoffMs = Math.min(50, backoffMs * 1.5 + 1);
      continue;
    }
    held.add(nonce);
    try {
      await fh.writeFile(body);
    } catch (err) {
      await fh.close().catch(() => {});
      await unlink(lockPath).catch(() => {});
      held.delete(nonce);
      throw writeFailure(err, lockPath, dirname(path));
    }
    const mine = await fh.stat();
    await fh.close();
    const stillHeld = async (): Promise<boolean> => {
      const now = await inspect(lockPath).catch(() => undefined);
      return now !== undefined && now.ino === mine.ino && now.body?.nonce === nonce;
    };
    let released = false;
    return {
      lockPath,
      stillHeld,
      async release() {
        if (released) return;
        released = true;
        try {
          if (await stillHeld()) await unlink(lockPath).catch(() => {});
        } finally {
          held.delete(nonce);
        }
      },
    };
  }
}

function lockedError(path: string, lockPath: string, seen: SeenLock, waitMs: number, staleMs: number): PackferryError {
  const b = seen.body;
  const who = typeof b?.pid === 'number' ? `process ${b.pid}${b.host ? ` on ${b.host}` : ''}` : 'another writer';
  return new PackferryError(ErrorCode.StoreLocked, `${basename(path)} is locked by ${who} (${lockPath}), still after ${Math.round(waitMs / 100) / 10} s`, {
    details: { lock: lockPath, pid: b?.pid, host: b?.host, created: b?.created },
    hint: `a store lock is held for milliseconds: if ${lockPath} is left by a writer that hung, it is taken over once it is ${Math.round(staleMs / 1000)} seconds old`,
  });
}

// One writer at a time, where a backend cannot compare-and-swap a blob: the
// commit of a repository (ref-database.ts) and the change of a small
// document (document.ts) on an S3-compatible service that ignores
// conditional writes take it for their few requests. Object stores do not
// all offer compare-and-swap (S3 only recently), so the lock is
// built from what every backend guarantees — atomic puts of unique keys and
// read-after-write listing: a writer puts its own lock file under
// packferry/locks/, then lists them; it holds the lock only if its file is
// the only live one. Two writers that race both see two files and both back
// off (then retry after a random pause); a writer that saw only itself is
// certain any later one sees its file. The holder refreshes its file; one
// not refreshed for `staleMs` (a crashed writer) is ignored and removed. A
// lock file written on this host by a process that no longer runs (a writer
// killed with SIGKILL, or a machine that rebooted) is removed at once, as
// Git's `gc` treats its gc.pid: a recycled pid only delays this until the
// file goes stale.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { PackferryError, ErrorCode } from '../core/errors.js';
import type { BlobStore } from './backend.js';
import { KEYS } from './layout.js';

export interface WriterLock {
  readonly key: string;
  release(): Promise<void>;
}

export interface LockOptions {
  /** Who is writing, for the message another writer gets. */
  owner?: string;
  /** A lock file not refreshed for this long belongs to a dead writer (default 10 minutes). */
  staleMs?: number;
  /** Tries when racing another writer (default 4). */
  attempts?: number;
  signal?: AbortSignal;
}

const DEFAULT_STALE_MS = 10 * 60 * 1000;

export async function acquireWriterLock(store: BlobStore, options: LockOptions = {}): Promise<WriterLock> {
  const staleMs = options.staleMs ?? DEFAULT_STALE_MS;
  const attempts = options.attempts ?? 4;
  const body = Buffer.from(
    JSON.stringify({ owner: options.owner ?? 'packferry', host: hostname(), pid: process.pid, created: new Date().toISOString() }),
  );
  let holder: { key: string; owner: string; since: Date } | undefined;
  for (let attempt = 0; attempt < attempts; attempt++) {
    const key = `${KEYS.locks}${Date.now().toString().padStart(15, '0')}-${randomBytes(6).toString('hex')}.json`;
    await store.put(key, body, { contentType: 'application/json', signal: options.signal });
    const now = Date.now();
    const live = [];
    for (const info of await store.list(KEYS.locks, options.signal)) {
      if (info.key === key) continue;
      if (now - info.lastModified.getTime() > staleMs || (await heldByDeadLocalProcess(store, info.key))) {
        await store.delete(info.key).catch(() => {});
        continue;
      }
      live.push(info);
    }
    if (live.length === 0) return startRefreshing(store, key, body, staleMs);
    await store.delete(key);
    const other = live[0];
    // An unreadable lock file still counts.
    const who = await readLockOwner(store, other.key);
    const owner = who?.owner ? `${who.owner}${who.host ? `, pid ${who.pid} on ${who.host}` : ''}` : 'another writer';
    holder = { key: other.key, owner, since: other.lastModified };
    // Two writers that raced both back off; a random pause lets one of them win the next round.
    if (attempt + 1 < attempts) await new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 400 * (attempt + 1)));
  }
  throw new PackferryError(ErrorCode.StoreLocked, `${store.description}: another writer (${holder?.owner}) is updating this repository`, {
    details: { lock: holder?.key, since: holder?.since.toISOString() },
    hint: `wait for it to finish; a lock left by a crashed writer expires ${Math.round(staleMs / 60000)} minutes after its last refresh`,
  });
}

/** What a lock file says about its writer (undefined if unreadable). */
export async function readLockOwner(store: BlobStore, key: string): Promise<{ owner?: string; host?: string; pid?: number; created?: string } | undefined> {
  const text = await store.get(key).catch(() => undefined);
  if (!text) return undefined;
  try {
    const body = JSON.parse(text.toString()) as unknown;
    return body !== null && typeof body === 'object' ? (body as { owner?: string; host?: string; pid?: number; created?: string }) : undefined;
  } catch {
    return undefined;
  }
}

/** Whether a process of this host with this id is running (EPERM: it is, under another user). */
export function processIsRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether what a lock file says names a process of this host that has exited (this process never has). */
export function ownerIsDeadLocalProcess(body: { host?: unknown; pid?: unknown } | undefined): boolean {
  if (body?.host !== hostname() || typeof body.pid !== 'number' || !Number.isInteger(body.pid) || body.pid <= 0) return false;
  return body.pid !== process.pid && !processIsRunning(body.pid);
}

/** A lock file written by a process of this host that has exited. */
export async function heldByDeadLocalProcess(store: BlobStore, key: string): Promise<boolean> {
  return ownerIsDeadLocalProcess(await readLockOwner(store, key));
}

function startRefreshing(store: BlobStore, key: string, body: Buffer, staleMs: number): WriterLock {
  const timer = setInterval(() => {
    void store.put(key, body).catch(() => {});
  }, Math.max(1000, staleMs / 3));
  timer.unref();
  return {
    key,
    async release() {
      clearInterval(timer);
      await store.delete(key);
    },
  };
}

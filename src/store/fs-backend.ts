// The directory backend: keys are files under a root directory. Writes go
// to a temporary file in the same directory, are flushed to disk, and are
// renamed into place, and the directory is flushed too, so a reader (or a
// crash) sees the old file or the new one, never a partial one.
//
// Compare-and-swap of one file (ConditionalWrites) follows Git's lockfile
// discipline (lockfile.ts): `<file>.lock` taken exclusively, the current
// file read and its version (the SHA-256 of its content) compared, the new
// content written to a temporary file, flushed and renamed into place, the
// lock removed. Neither locks nor temporary files are ever listed.
//
// A write the operating system refuses for lack of room or rights (ENOSPC,
// EDQUOT, EROFS, EACCES, EPERM) is ERR_STORE_IO, naming the file, with a hint.
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { throwIfAborted } from '../core/abort.js';
import { PackferryError, ErrorCode, writeFailure } from '../core/errors.js';
import { checkKey, type BlobInfo, type BlobStore, type ConditionalWrites, type LocalFiles, type PutOptions, type VersionedBlob } from './backend.js';
import { DEFAULT_LOCK_WAIT_MS, DEFAULT_STALE_LOCK_MS, LOCK_SUFFIX, lockFile, TEMP_PREFIX } from './lockfile.js';

export interface FsBlobStoreOptions {
  /** How long a compare-and-swap waits for another writer's lock on the same file (default 10 s). */
  lockWaitMs?: number;
  /** A file lock older than this is taken over (default 30 s). */
  staleLockMs?: number;
}

/** The version a conditional write names: the SHA-256 of the content. */
function versionOf(content: Uint8Array): string {
  return createHash('sha256').update(content).digest('hex');
}

/** `mkdir -p`, with the real reason when it fails. */
async function makeDirectories(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    // A recursive mkdir says ENOENT when a parent could not be made (a read-only file system, no rights): make them one by one to learn why.
    const missing: string[] = [];
    for (let d = dir; d !== dirname(d) && !existsSync(d); d = dirname(d)) missing.unshift(d);
    for (const d of missing) {
      await mkdir(d).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'EEXIST') throw e;
      });
    }
  }
}

/** Flushes a directory's entries (a rename in it) to disk; where a directory cannot be flushed, nothing. */
async function syncDirectory(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch {
    // Some file systems refuse fsync on a directory (EINVAL); the rename stands.
  } finally {
    await fh?.close().catch(() => {});
  }
}

export class FsBlobStore implements BlobStore, LocalFiles, ConditionalWrites {
  readonly description: string;
  private readonly lockWaitMs: number;
  private readonly staleLockMs: number;

  constructor(
    readonly root: string,
    options: FsBlobStoreOptions = {},
  ) {
    this.description = root;
    this.lockWaitMs = options.lockWaitMs ?? DEFAULT_LOCK_WAIT_MS;
    this.staleLockMs = options.staleLockMs ?? DEFAULT_STALE_LOCK_MS;
  }

  private path(key: string): string {
    return join(this.root, ...checkKey(key).split('/'));
  }

  pathOf(key: string): string {
    return this.path(key);
  }

  async get(key: string): Promise<Buffer | undefined> {
    try {
      return await readFile(this.path(key));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'EISDIR') return undefined;
      throw err;
    }
  }

  async getRange(key: string, start: number, end: number): Promise<Buffer> {
    let fh;
    try {
      fh = await open(this.path(key), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new PackferryError(ErrorCode.NotFound, `${this.description}: ${key} is missing`);
      throw err;
    }
    try {
      const buf = Buffer.allocUnsafe(end - start);
      let done = 0;
      while (done < buf.length) {
        const { bytesRead } = await fh.read(buf, done, buf.length - done, start + done);
        if (bytesRead === 0) throw new PackferryError(ErrorCode.PackTruncated, `${this.description}: ${key} is shorter than ${end} bytes`);
        done += bytesRead;
      }
      return buf;
    } finally {
      await fh.close();
    }
  }

  async getStream(key: string): Promise<AsyncIterable<Uint8Array> | undefined> {
    const path = this.path(key);
    try {
      const info = await stat(path);
      if (!info.isFile()) return undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    return createReadStream(path, { highWaterMark: 1 << 20 });
  }

  async head(key: string): Promise<BlobInfo | undefined> {
    try {
      const info = await stat(this.path(key));
      return info.isFile() ? { key, size: info.size, lastModified: info.mtime } : undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /** Writes `body` to a new temporary file beside `path`, flushed; returns its name. */
  private async writeTemp(path: string, body: Uint8Array | AsyncIterable<Uint8Array>, options: PutOptions): Promise<string> {
    const tmp = join(dirname(path), `${TEMP_PREFIX}${randomBytes(8).toString('hex')}`);
    const fh = await open(tmp, 'wx', options.secret === true ? 0o600 : 0o644);
    try {
      if (body instanceof Uint8Array) {
        await fh.writeFile(body);
      } else {
        for await (const chunk of body) {
          if (options.signal?.aborted) throw new PackferryError(ErrorCode.Aborted, 'operation aborted', { cause: options.signal.reason });
          await fh.write(chunk);
        }
      }
      await fh.sync();
      await fh.close();
      return tmp;
    } catch (err) {
      await fh.close().catch(() => {});
      await unlink(tmp).catch(() => {});
      throw err;
    }
  }

  async put(key: string, body: Uint8Array | AsyncIterable<Uint8Array>, options: PutOptions = {}): Promise<void> {
    const path = this.path(key);
    const dir = dirname(path);
    try {
      await makeDirectories(dir);
      const tmp = await this.writeTemp(path, body, options);
      try {
        await rename(tmp, path);
      } catch (err) {
        await unlink(tmp).catch(() => {});
        throw err;
      }
      await syncDirectory(dir);
    } catch (err) {
      throw writeFailure(err, path, dir);
    }
  }

  /** Compare-and-swap of single files: this backend always has it. */
  async conditionalWrites(): Promise<ConditionalWrites> {
    return this;
  }

  async getVersioned(key: string): Promise<VersionedBlob | undefined> {
    const body = await this.get(key);
    return body === undefined ? undefined : { body, version: versionOf(body) };
  }

  async putIfVersion(key: string, body: Uint8Array, expected: string | undefined, options: PutOptions = {}): Promise<boolean> {
    const path = this.path(key);
    const dir = dirname(path);
    throwIfAborted(options.signal);
    try {
      await makeDirectories(dir);
    } catch (err) {
      throw writeFailure(err, dir);
    }
    const lock = await lockFile(path, { waitMs: this.lockWaitMs, staleMs: this.staleLockMs, signal: options.signal });
    let tmp: string | undefined;
    try {
      const current = await this.get(key);
      if ((current === undefined ? undefined : versionOf(current)) !== expected) return false;
      tmp = await this.writeTemp(path, body, options);
      // Taken over as stale meanwhile (this writer stalled for staleLockMs): another write may have come first.
      if (!(await lock.stillHeld())) return false;
      await rename(tmp, path);
      tmp = undefined;
      await syncDirectory(dir);
      return true;
    } catch (err) {
      throw writeFailure(err, path, dir);
    } finally {
      if (tmp !== undefined) await unlink(tmp).catch(() => {});
      await lock.release();
    }
  }

  async delete(key: string): Promise<void> {
    const path = this.path(key);
    try {
      await rm(path, { force: true });
    } catch (err) {
      throw writeFailure(err, path, dirname(path));
    }
  }

  async list(prefix: string): Promise<BlobInfo[]> {
    // The deepest directory the prefix names fully, then filter by the rest.
    const slash = prefix.lastIndexOf('/');
    const dir = slash < 0 ? this.root : join(this.root, ...prefix.slice(0, slash).split('/'));
    const out: BlobInfo[] = [];
    const walk = async (d: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(d, { withFileTypes: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return;
        throw err;
      }
      for (const e of entries) {
        const full = join(d, e.name);
        if (e.isDirectory()) await walk(full);
        else if (e.isFile() && !e.name.startsWith(TEMP_PREFIX) && !e.name.endsWith(LOCK_SUFFIX)) {
          const key = relative(this.root, full).split(sep).join('/');
          if (!key.startsWith(prefix)) continue;
          const info = await stat(full).catch(() => undefined);
          if (info) out.push({ key, size: info.size, lastModified: info.mtime });
        }
      }
    };
    await walk(dir);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  /** Creates an empty directory (Git wants refs/ to exist in a repository; blobs alone cannot make one). */
  async ensureDirectory(key: string): Promise<void> {
    const path = this.path(key);
    try {
      await makeDirectories(path);
    } catch (err) {
      throw writeFailure(err, path);
    }
  }

  async close(): Promise<void> {}
}

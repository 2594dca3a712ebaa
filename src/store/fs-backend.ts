// The directory backend: keys are files under a root directory. Writes go
// to a temporary file in the same directory, are flushed to disk, and are
// renamed into place, so a reader (or a crash) sees the old file or the new
// one, never a partial one.
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { randomBytes } from 'node:crypto';
import { PackferryError, ErrorCode } from '../core/errors.js';
import { checkKey, type BlobInfo, type BlobStore, type LocalFiles, type PutOptions } from './backend.js';

export class FsBlobStore implements BlobStore, LocalFiles {
  readonly description: string;

  constructor(readonly root: string) {
    this.description = root;
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

  async put(key: string, body: Uint8Array | AsyncIterable<Uint8Array>, options: PutOptions = {}): Promise<void> {
    const path = this.path(key);
    await mkdir(dirname(path), { recursive: true });
    const tmp = join(dirname(path), `.tmp-${randomBytes(8).toString('hex')}`);
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
      await rename(tmp, path);
    } catch (err) {
      await fh.close().catch(() => {});
      await unlink(tmp).catch(() => {});
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    await rm(this.path(key), { force: true });
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
        else if (e.isFile() && !e.name.startsWith('.tmp-')) {
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
    await mkdir(this.path(key), { recursive: true });
  }

  async close(): Promise<void> {}
}

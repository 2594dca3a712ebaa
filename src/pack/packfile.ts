// Random access to a pack file on disk for pass two of indexing and for
// object reads: a sliding read window, so that walking neighbouring entries
// (a base and its deltas usually sit close together) costs few system calls.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { PackferryError, ErrorCode } from '../core/errors.js';
import { inflateKnownSize, type Inflater } from './inflate.js';

const DEFAULT_WINDOW = 64 * 1024;
/**
 * Bytes read on a window miss when less is asked for. Delta resolution jumps
 * around the pack (measured on git.git: a third of reads miss whatever the
 * window), so reading ahead much more only copies bytes nobody uses.
 */
const DEFAULT_READAHEAD = 8 * 1024;

export class PackFile {
  length: number;
  private window: Buffer;
  private windowStart = 0;
  private windowLength = 0;
  private closed = false;

  private constructor(
    private readonly fd: number,
    /** The whole pack, when it is held in memory (then `fd` is -1). */
    private readonly memory: Buffer | undefined,
    readonly path: string,
    windowSize: number,
    private readonly readahead: number,
  ) {
    this.length = memory ? memory.length : fstatSync(fd).size;
    this.window = memory ?? Buffer.allocUnsafe(windowSize);
    if (memory) this.windowLength = memory.length;
  }

  static open(path: string, windowSize = DEFAULT_WINDOW, readahead = DEFAULT_READAHEAD): PackFile {
    return new PackFile(openSync(path, 'r'), undefined, path, windowSize, readahead);
  }

  /** A pack already in memory (for packs small enough to keep whole: no system calls at all). */
  static fromMemory(bytes: Uint8Array, path = '(memory)'): PackFile {
    return new PackFile(-1, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), path, 0, 0);
  }

  /**
   * Returns `length` bytes at `offset`. The view stays valid only until the
   * next call; copy what must be kept.
   */
  read(offset: number, length: number): Buffer {
    if (offset < 0 || length < 0 || offset + length > this.length) {
      throw new PackferryError(ErrorCode.PackBadOffset, `read of ${length} bytes at offset ${offset} is outside the ${this.length}-byte pack`, {
        details: { offset, length, packLength: this.length },
      });
    }
    if (offset >= this.windowStart && offset + length <= this.windowStart + this.windowLength) {
      const at = offset - this.windowStart;
      return this.window.subarray(at, at + length);
    }
    if (length > this.window.length) {
      const buf = Buffer.allocUnsafe(length);
      this.readFully(buf, length, offset);
      return buf;
    }
    const fill = Math.min(Math.max(length, this.readahead), this.length - offset);
    this.readFully(this.window, fill, offset);
    this.windowStart = offset;
    this.windowLength = fill;
    return this.window.subarray(0, length);
  }

  /**
   * Inflates the zlib stream stored at [start, end) into `out`, checking that
   * it ends exactly at `end` and yields exactly `size` bytes. A stream longer
   * than the window is fed through it piece by piece, so no copy of its
   * compressed bytes is ever made.
   */
  inflate(inflater: Inflater, start: number, end: number, size: number, out: Buffer): Buffer {
    // One byte past the stream (the next entry or the trailer) lets the inflater see where it ends.
    const stop = end + 1;
    let data: Buffer;
    let consumedTo: number;
    if (stop - start <= this.window.length) {
      const input = this.read(start, stop - start);
      const r = inflateKnownSize(inflater, input, 0, input.length, size, out);
      data = r.data;
      consumedTo = start + r.compressedLength;
    } else {
      inflater.reset();
      let pos = start;
      let produced = 0;
      for (;;) {
        const n = Math.min(this.window.length, stop - pos);
        const ended = inflater.write(this.read(pos, n), 0, n, out, produced, size + 1 - produced);
        produced += inflater.produced;
        pos += inflater.consumed;
        if (produced > size) {
          throw new PackferryError(ErrorCode.PackSizeMismatch, `object inflates to more than its declared ${size} bytes`, { details: { declared: size } });
        }
        if (ended) break;
        if (pos >= stop) throw new PackferryError(ErrorCode.PackTruncated, 'zlib stream is truncated', { details: { declared: size, produced } });
      }
      if (produced !== size) {
        throw new PackferryError(ErrorCode.PackSizeMismatch, `object inflates to ${produced} bytes, not its declared ${size}`, {
          details: { declared: size, produced },
        });
      }
      data = out.subarray(0, size);
      consumedTo = pos;
    }
    if (consumedTo !== end) {
      throw new PackferryError(ErrorCode.PackZlib, `zlib stream ends at offset ${consumedTo}, not where the next entry starts (${end})`, {
        details: { end, streamEnd: consumedTo },
      });
    }
    return data;
  }

  /** Takes note of data appended to the file since it was opened (thin-pack completion). */
  refresh(): void {
    if (this.memory) return;
    this.length = fstatSync(this.fd).size;
    this.windowLength = 0;
  }

  private readFully(buf: Buffer, length: number, offset: number): void {
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, buf, done, length - done, offset + done);
      if (n === 0) throw new PackferryError(ErrorCode.PackTruncated, `pack file ended early at offset ${offset + done}`);
      done += n;
    }
  }

  close(): void {
    if (!this.closed) {
      this.closed = true;
      if (!this.memory) closeSync(this.fd);
    }
  }
}

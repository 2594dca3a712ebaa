// Random access to a pack file on disk for pass two of indexing and for
// object reads: a sliding read window, so that walking neighbouring entries
// (a base and its deltas usually sit close together) costs few system calls.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { PackferryError, ErrorCode } from '../core/errors.js';

const DEFAULT_WINDOW = 64 * 1024;

export class PackFile {
  readonly length: number;
  private window: Buffer;
  private windowStart = 0;
  private windowLength = 0;
  private closed = false;

  private constructor(
    private readonly fd: number,
    readonly path: string,
    windowSize: number,
  ) {
    this.length = fstatSync(fd).size;
    this.window = Buffer.allocUnsafe(windowSize);
  }

  static open(path: string, windowSize = DEFAULT_WINDOW): PackFile {
    return new PackFile(openSync(path, 'r'), path, windowSize);
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
    const fill = Math.min(this.window.length, this.length - offset);
    this.readFully(this.window, fill, offset);
    this.windowStart = offset;
    this.windowLength = fill;
    return this.window.subarray(0, length);
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
      closeSync(this.fd);
    }
  }
}

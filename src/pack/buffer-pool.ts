// Reuse of large object buffers during delta resolution. Resolving a pack of
// big blobs allocates a fresh multi-megabyte buffer per object; V8 collects
// such external memory lazily, so garbage piled up to hundreds of MiB per
// thread (measured on a 1 GiB pack of 4-24 MiB blobs). Handing buffers back
// when an object is done keeps the footprint at what is really in use.

/** Buffers smaller than this are left to V8 (Node pools small ones itself). */
const MIN_POOLED = 256 * 1024;

export class BufferPool {
  private readonly free: ArrayBuffer[] = [];
  private freeBytes = 0;

  constructor(private readonly maxFreeBytes = 64 * 1024 * 1024) {}

  /** A buffer of exactly `size` bytes (contents undefined), reusing a released one when one fits. */
  take(size: number): Buffer {
    if (size >= MIN_POOLED) {
      let best = -1;
      for (let k = 0; k < this.free.length; k++) {
        const len = this.free[k].byteLength;
        if (len >= size && (best < 0 || len < this.free[best].byteLength)) best = k;
      }
      if (best >= 0) {
        const ab = this.free[best];
        this.free.splice(best, 1);
        this.freeBytes -= ab.byteLength;
        return Buffer.from(ab, 0, size);
      }
    }
    return Buffer.allocUnsafe(size);
  }

  /**
   * Hands back the memory behind `view` (a buffer from `take`, or a view into
   * one). The caller must hold no other reference to it.
   */
  give(view: Uint8Array): void {
    const ab = view.buffer;
    if (!(ab instanceof ArrayBuffer) || ab.byteLength < MIN_POOLED) return;
    this.free.push(ab);
    this.freeBytes += ab.byteLength;
    while (this.freeBytes > this.maxFreeBytes && this.free.length > 0) {
      const dropped = this.free.shift()!;
      this.freeBytes -= dropped.byteLength;
    }
  }
}

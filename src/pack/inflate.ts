// A resettable, incremental zlib inflater for pack entries (gitformat-pack:
// each entry's data is a zlib stream whose compressed length is not stored;
// the stream's own end marks where the next entry begins).
//
// Why not zlib.inflateSync per entry: it builds a whole stream object per call
// (~12 µs), which dominates on packs of a million small objects. Node's zlib
// stream keeps a native handle that can be reset and written synchronously
// (~0.7 µs per entry); we drive that handle directly. It is an internal of
// node:zlib (stable since Node 10, checked at start-up); where it is missing a
// slower fallback built on the public API keeps everything working.
import zlib from 'node:zlib';
import { PackferryError, ErrorCode } from '../core/errors.js';

const Z_NO_FLUSH = zlib.constants.Z_NO_FLUSH;
const Z_SYNC_FLUSH = zlib.constants.Z_SYNC_FLUSH;

interface NativeZlibHandle {
  reset(): void;
  writeSync(flush: number, input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): void;
  onerror: (message: string, errno: number) => void;
  close(): void;
}

/**
 * Inflates one zlib stream at a time, fed in pieces. After `write`, `consumed`
 * and `produced` tell how much input was used and output written. The stream
 * has ended when input is left over while output space remains
 * (`write` returns true); a stream that ends exactly at the end of the input is
 * seen as ended on the next `write` (which then consumes nothing).
 */
export interface Inflater {
  /** Bytes of input consumed by the last write. */
  readonly consumed: number;
  /** Bytes of output produced by the last write. */
  readonly produced: number;
  /** Starts a new zlib stream. */
  reset(): void;
  /** Returns true when the zlib stream has ended within this input. Throws ERR_PACK_ZLIB on corrupt data. */
  write(input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): boolean;
  close(): void;
}

class NativeInflater implements Inflater {
  consumed = 0;
  produced = 0;
  private failure: { message: string; errno: number } | null = null;

  constructor(
    private readonly stream: zlib.Inflate,
    private readonly handle: NativeZlibHandle,
    private readonly state: Uint32Array,
  ) {
    // Replacing Node's handler keeps the handle alive after an error, so a reset makes it usable again.
    handle.onerror = (message, errno) => {
      this.failure = { message, errno };
    };
  }

  reset(): void {
    this.failure = null;
    this.handle.reset();
  }

  write(input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): boolean {
    this.handle.writeSync(Z_NO_FLUSH, input, inOff, inLen, out, outOff, outLen);
    if (this.failure !== null) {
      const { message, errno } = this.failure;
      throw new PackferryError(ErrorCode.PackZlib, `corrupt zlib stream: ${message}`, { details: { errno } });
    }
    const availOut = this.state[0];
    const availIn = this.state[1];
    this.produced = outLen - availOut;
    this.consumed = inLen - availIn;
    return availIn > 0 && availOut > 0;
  }

  close(): void {
    this.stream.close();
  }
}

/** Public-API fallback: re-inflates the buffered input on each write (slower, same results). */
class FallbackInflater implements Inflater {
  consumed = 0;
  produced = 0;
  private pending: Buffer[] = [];
  private pendingLength = 0;
  private emitted = 0;

  reset(): void {
    this.pending = [];
    this.pendingLength = 0;
    this.emitted = 0;
  }

  write(input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): boolean {
    const before = this.pendingLength;
    const piece = Buffer.from(input.buffer, input.byteOffset + inOff, inLen);
    const all = Buffer.concat([...this.pending, piece]);
    let result: { buffer: Buffer; engine: zlib.Inflate };
    try {
      result = zlib.inflateSync(all, { info: true, finishFlush: Z_SYNC_FLUSH }) as unknown as { buffer: Buffer; engine: zlib.Inflate };
    } catch (err) {
      throw new PackferryError(ErrorCode.PackZlib, `corrupt zlib stream: ${(err as Error).message}`, { cause: err });
    }
    const used = result.engine.bytesWritten;
    const fresh = result.buffer.subarray(this.emitted, this.emitted + outLen);
    out.set(fresh, outOff);
    this.emitted += fresh.length;
    this.produced = fresh.length;
    const ended = used < all.length && this.emitted === result.buffer.length;
    if (this.emitted < result.buffer.length) {
      // Output space ran out: nothing more of the input is treated as consumed until it is drained.
      this.pending = [all];
      this.pendingLength = all.length;
      this.consumed = inLen;
      return false;
    }
    this.consumed = Math.max(0, Math.min(inLen, used - before));
    const kept = all.subarray(0, before + this.consumed);
    this.pending = [kept];
    this.pendingLength = kept.length;
    return ended;
  }

  close(): void {
    this.reset();
  }
}

let nativeAvailable: boolean | undefined;

/** True when the fast native-handle inflater works on this Node.js. */
export function hasNativeInflater(): boolean {
  if (nativeAvailable === undefined) {
    try {
      const inflater = createNative();
      const sample = zlib.deflateSync(Buffer.from('packferry'));
      const input = Buffer.concat([sample, Buffer.from('X')]);
      const out = Buffer.alloc(16);
      inflater.reset();
      const ended = inflater.write(input, 0, input.length, out, 0, out.length);
      nativeAvailable = ended && inflater.consumed === sample.length && out.subarray(0, inflater.produced).toString() === 'packferry';
      inflater.close();
    } catch {
      nativeAvailable = false;
    }
  }
  return nativeAvailable;
}

function createNative(): NativeInflater {
  const stream = zlib.createInflate();
  const internals = stream as unknown as { _handle?: NativeZlibHandle; _writeState?: Uint32Array };
  const handle = internals._handle;
  const state = internals._writeState;
  if (!handle || typeof handle.writeSync !== 'function' || typeof handle.reset !== 'function' || !(state instanceof Uint32Array)) {
    throw new Error('native zlib handle unavailable');
  }
  return new NativeInflater(stream, handle, state);
}

export function createInflater(options: { forceFallback?: boolean } = {}): Inflater {
  if (!options.forceFallback && hasNativeInflater()) return createNative();
  return new FallbackInflater();
}

/**
 * Inflates a complete zlib stream of known inflated `size` starting at
 * `input[inOff]`. The input must run at least one byte past the stream's end
 * (in a pack the next entry or the trailer always follows), which is how the
 * end is seen. Returns the data and the compressed length. Throws
 * ERR_PACK_SIZE_MISMATCH if the stream inflates to another size,
 * ERR_PACK_TRUNCATED if the input ends first.
 */
export function inflateKnownSize(
  inflater: Inflater,
  input: Uint8Array,
  inOff: number,
  inLen: number,
  size: number,
  out: Buffer = Buffer.allocUnsafe(size + 1),
): { data: Buffer; compressedLength: number } {
  // One spare byte of output space: a stream that fills it is longer than declared.
  if (out.length < size + 1) throw new PackferryError(ErrorCode.Internal, 'internal error: output buffer too small');
  inflater.reset();
  const ended = inflater.write(input, inOff, inLen, out, 0, size + 1);
  const produced = inflater.produced;
  if (produced > size) {
    throw new PackferryError(ErrorCode.PackSizeMismatch, `object inflates to more than its declared ${size} bytes`, {
      details: { declared: size },
    });
  }
  if (!ended) {
    throw new PackferryError(ErrorCode.PackTruncated, 'zlib stream is truncated', { details: { declared: size, produced } });
  }
  if (produced !== size) {
    throw new PackferryError(ErrorCode.PackSizeMismatch, `object inflates to ${produced} bytes, not its declared ${size}`, {
      details: { declared: size, produced },
    });
  }
  return { data: out.subarray(0, size), compressedLength: inflater.consumed };
}

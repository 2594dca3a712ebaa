// Cancellation: every long operation takes an optional AbortSignal and checks
// it at safe points (between pack entries, between requests).
import { PackferryError, ErrorCode } from './errors.js';

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    throw new PackferryError(ErrorCode.Aborted, 'operation aborted', { cause: signal.reason });
  }
}

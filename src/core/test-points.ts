// Named points in the store's write path where a test can stop the process,
// to reach exactly the states a crash or an interrupt leaves (as Git's own
// test suite reaches them through its GIT_TEST_* variables). With
// PACKFERRY_TEST_STOP_AT=<point>, the process prints "packferry: stopped at
// <point>" on standard error when it gets there and waits: until it is killed
// (SIGKILL), or its operation is aborted (SIGINT), which then fails there as
// it would have at that moment. Unset, a point costs a variable read.
import { PackferryError, ErrorCode } from './errors.js';

export type TestPoint =
  /** The first bytes of an incoming pack have arrived. */
  | 'store:receiving'
  /** A new layer is stored, nothing is committed yet. */
  | 'store:staged'
  /** About to swap in the next state (the commit point). */
  | 'store:commit'
  /** Committed; Git's files not yet written. */
  | 'store:committed'
  /** Git's files written; published.json not yet. */
  | 'store:git-files';

export async function testPoint(point: TestPoint, signal?: AbortSignal): Promise<void> {
  if (process.env.PACKFERRY_TEST_STOP_AT !== point) return;
  process.stderr.write(`packferry: stopped at ${point}\n`);
  await new Promise<void>((resolve, reject) => {
    const timer = setInterval(() => {}, 60_000); // keeps the process alive while it waits
    const abort = () => {
      clearInterval(timer);
      reject(new PackferryError(ErrorCode.Aborted, 'operation aborted', { cause: signal?.reason }));
    };
    if (signal?.aborted) abort();
    signal?.addEventListener('abort', abort, { once: true });
    void resolve;
  });
}

// Progress reporting: long operations report to a sink; the CLI renders it
// Git's way on a TTY ("Indexing objects:  45% (450/1000)") and not at all otherwise.

export interface ProgressEvent {
  /** Git's phrase for the phase, e.g. "Receiving objects", "Resolving deltas". */
  readonly title: string;
  /** Units done so far. */
  readonly done: number;
  /** Units in all, when known. */
  readonly total?: number;
  /** Bytes processed so far, for throughput. */
  readonly bytes?: number;
  /** True once the phase has finished. */
  readonly finished?: boolean;
}

export type ProgressSink = (event: ProgressEvent) => void;

/** A sink that ignores everything. */
export const noProgress: ProgressSink = () => {};

/**
 * Rate-limits calls to a sink: reports at most every `intervalMs`, plus the
 * first and the final event, so hot loops can call `update` freely.
 */
export class ProgressMeter {
  private lastReport = 0;
  private done = 0;
  private bytes = 0;

  constructor(
    private readonly sink: ProgressSink,
    private readonly title: string,
    private readonly total?: number,
    private readonly intervalMs = 100,
  ) {}

  update(done: number, bytes?: number): void {
    this.done = done;
    if (bytes !== undefined) this.bytes = bytes;
    if (this.sink === noProgress) return;
    const now = Date.now();
    if (now - this.lastReport < this.intervalMs) return;
    this.lastReport = now;
    this.sink({ title: this.title, done, total: this.total, bytes: this.bytes });
  }

  finish(): void {
    this.sink({ title: this.title, done: this.done, total: this.total, bytes: this.bytes, finished: true });
  }
}

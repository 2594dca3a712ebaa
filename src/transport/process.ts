// A stateful service session over a child process's stdin/stdout — how Git
// talks to git-upload-pack/git-receive-pack locally and through ssh
// (gitprotocol-pack, "Transports"). The advertisement and every response are
// read from the one stdout stream; requests are written to stdin with
// backpressure. When the process fails, reads end with an error built from
// its stderr instead of a bare "truncated" error.
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { PackferryError, ErrorCode } from '../core/errors.js';
import { PktLineReader } from '../protocol/pkt-line-reader.js';
import type { RequestOptions, ServiceSession } from './types.js';

const STDERR_LIMIT = 64 * 1024;

/** Turns a failed process's stderr (and exit status) into the most specific error. */
export type ProcessErrorClassifier = (stderr: string, exit: { code: number | null; signal: NodeJS.Signals | null }) => PackferryError;

export class ProcessSession implements ServiceSession {
  readonly stateless = false;
  readonly advertisement: PktLineReader;
  private stderr = '';
  private readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private stdinError: Error | undefined;
  private closed = false;
  private writes: Promise<void> = Promise.resolve();
  private bodyError: unknown;

  constructor(
    private readonly child: ChildProcess,
    private readonly classify: ProcessErrorClassifier,
    signal?: AbortSignal,
  ) {
    child.stderr?.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString('utf8')).slice(-STDERR_LIMIT);
    });
    // EPIPE and the like when the process died: reported through its exit.
    child.stdin?.on('error', (err) => {
      this.stdinError = err;
    });
    this.exited = new Promise((resolve) => {
      child.once('close', (code, sig) => {
        this.exitInfo = { code, signal: sig };
        resolve(this.exitInfo);
      });
      child.once('error', (err) => {
        this.stderr += `\n${err.message}`;
        this.exitInfo = { code: 127, signal: null };
        resolve(this.exitInfo);
      });
    });
    if (signal) {
      const onAbort = () => child.kill('SIGTERM');
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
      void this.exited.then(() => signal.removeEventListener('abort', onAbort));
    }
    this.advertisement = new PktLineReader(this.stdoutThenExit(), { signal });
  }

  /** stdout's chunks; at its end, a failed exit becomes the error the reader throws. */
  private async *stdoutThenExit(): AsyncGenerator<Uint8Array> {
    const stdout = this.child.stdout;
    if (stdout) for await (const chunk of stdout) yield chunk as Buffer;
    const exit = await this.exited;
    if (this.bodyError !== undefined) throw this.bodyError;
    if (exit.code !== 0 && !this.closed) throw this.failure(exit);
  }

  private failure(exit: { code: number | null; signal: NodeJS.Signals | null }): PackferryError {
    return this.classify(this.stderr, exit);
  }

  /**
   * Writes the body in the background and returns the reader at once, so
   * the caller can read responses while a large pack is still being sent
   * (waiting for the write first could deadlock on a full stdout pipe). If
   * the body fails, the process is killed and reads end with that error.
   */
  async request(body: Uint8Array | AsyncIterable<Uint8Array>, options: RequestOptions = {}): Promise<PktLineReader> {
    const writing = this.writes.then(() => this.writeBody(body, options.end === true));
    this.writes = writing.catch((err: unknown) => {
      this.bodyError ??= err;
      this.child.kill('SIGTERM');
    });
    return this.advertisement;
  }

  private async writeBody(body: Uint8Array | AsyncIterable<Uint8Array>, end: boolean): Promise<void> {
    const stdin = this.child.stdin;
    if (!stdin) throw new PackferryError(ErrorCode.Internal, 'internal error: process has no stdin');
    const write = async (chunk: Uint8Array): Promise<void> => {
      if (this.stdinError || this.exitInfo) return; // the process is gone: its exit status tells why
      if (!stdin.write(chunk)) await Promise.race([once(stdin, 'drain'), this.exited]);
    };
    if (body instanceof Uint8Array) await write(body);
    else for await (const chunk of body) await write(chunk);
    if (end) stdin.end();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.writes;
    this.child.stdin?.end();
    // Stop reading stdout (the process's exit is only reported once its streams are done with).
    await this.advertisement.close().catch(() => {});
    this.child.stdout?.destroy();
    const timer = setTimeout(() => this.child.kill('SIGTERM'), 10_000);
    const exit = await this.exited;
    clearTimeout(timer);
    if (this.bodyError !== undefined) throw this.bodyError;
    if (exit.code !== 0 && exit.signal === null) throw this.failure(exit);
  }

  /** The process's stderr so far (bounded), for messages. */
  get stderrText(): string {
    return this.stderr;
  }
}

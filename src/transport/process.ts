// A stateful service session over a child process's stdin/stdout — how Git
// talks to git-upload-pack / git-receive-pack on this machine and through
// ssh (gitprotocol-pack, "Transports"). The service speaks first on stdout,
// which one PktLineReader reads for the whole conversation; each request is
// written to stdin in the background, in order, with backpressure, so a
// caller can read responses while a long pack is still being sent. `start`
// waits for the first byte of output, so a process that fails at once fails
// `open`. When stdout ends, the reader waits for the exit status: a failure
// then surfaces as the transport's classified error, not a bare end of stream.
import type { ChildProcess } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { throwIfAborted } from '../core/abort.js';
import { ErrorCode, PackferryError, isPackferryError } from '../core/errors.js';
import { PktLineReader } from '../protocol/pkt-line-reader.js';
import { flushPkt } from '../protocol/pkt-line.js';
import type { GitServiceName, RequestOptions, ServiceSession } from './types.js';

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Whether the service had said anything before it failed. */
export type ProcessPhase = 'connecting' | 'talking';

export const DEFAULT_MAX_STDERR = 64 * 1024;
export const DEFAULT_KILL_GRACE_MS = 2000;
export const DEFAULT_CLOSE_DRAIN = 1024 * 1024;
/** How long to wait for stderr's last bytes after the process exited. */
const STDERR_SETTLE_MS = 500;

/** Keeps the last `max` characters written to it. */
class TailBuffer {
  private parts: string[] = [];
  private length = 0;
  constructor(private readonly max: number) {}
  push(text: string): void {
    this.parts.push(text);
    this.length += text.length;
    while (this.length - this.parts[0].length >= this.max) this.length -= (this.parts.shift() as string).length;
  }
  toString(): string {
    const all = this.parts.join('');
    return all.length > this.max ? all.slice(all.length - this.max) : all;
  }
}

/** A pipe to the service's stdin closed under us (the process is gone or going): the reader reports why. */
class StdinClosed extends Error {}

function waitForDrain(stream: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    if (stream.destroyed || stream.writableEnded) {
      reject(new StdinClosed('stdin is closed'));
      return;
    }
    const done = (err?: Error): void => {
      stream.off('drain', onDrain);
      stream.off('close', onClose);
      stream.off('error', onError);
      if (err !== undefined) reject(err);
      else resolve();
    };
    const onDrain = (): void => done();
    const onClose = (): void => done(new StdinClosed('stdin closed'));
    const onError = (err: Error): void => done(new StdinClosed(err.message));
    stream.on('drain', onDrain);
    stream.on('close', onClose);
    stream.on('error', onError);
  });
}

function abortError(reason: unknown): PackferryError {
  return new PackferryError(ErrorCode.Aborted, 'operation aborted', { cause: reason });
}

export interface ProcessSessionSettings {
  service: GitServiceName;
  displayUrl: string;
  signal: AbortSignal | undefined;
  onStderr: ((text: string) => void) | undefined;
  maxStderrBytes: number;
  killGraceMs: number;
  closeDrainBytes: number;
  /** The process was spawned `detached` (a process group of its own): signals go to the whole group. */
  processGroup: boolean;
  /** The error for a failed exit, from stderr and the phase it failed in. */
  classify(stderr: string, exit: ProcessExit, phase: ProcessPhase): PackferryError;
  /** The error for a program that could not be started. */
  spawnFailure(err: Error): PackferryError;
  /** Exit statuses that can come from our hanging up on unread output (ssh's 255, a signal). */
  hangupExit(exit: ProcessExit): boolean;
}

export class ProcessSession implements ServiceSession {
  readonly stateless = false;
  readonly advertisement: PktLineReader;

  private readonly child: ChildProcess;
  private readonly stdin: Writable;
  private readonly stdout: Readable;
  private readonly out: AsyncIterator<Buffer>;
  private readonly settings: ProcessSessionSettings;
  private readonly stderr: TailBuffer;
  private readonly exited: Promise<ProcessExit>;
  private readonly stderrClosed: Promise<void>;
  private readonly cleanups: (() => void)[] = [];

  /** The first chunk of stdout, read by start() and not yet given to the reader. */
  private first: Buffer | undefined;
  private received = 0;
  private stdoutEnded = false;
  /** No more requests: `end: true` was given, or close() began. */
  private stdinDone = false;
  private writes: Promise<void> = Promise.resolve();
  private spawnError: Error | undefined;
  private bodyError: unknown;
  private abortReason: { reason: unknown } | undefined;
  /** The one error this session reports (computed once, so the reader and close() agree). */
  private failure: PackferryError | undefined;
  private closing: Promise<void> | undefined;
  private killTimer: NodeJS.Timeout | undefined;

  constructor(child: ChildProcess, settings: ProcessSessionSettings) {
    this.child = child;
    this.settings = settings;
    this.stdin = child.stdin as Writable;
    this.stdout = child.stdout as Readable;
    this.stderr = new TailBuffer(settings.maxStderrBytes);
    // Write errors (EPIPE when the process is gone) are reported through the
    // reader, from the exit status; here they must only not crash the process.
    this.stdin.on('error', () => {});
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      child.once('error', (err) => {
        this.spawnError = err;
        resolve({ code: null, signal: null });
      });
    });
    const stderr = child.stderr as Readable;
    stderr.setEncoding('utf8');
    stderr.on('data', (text: string) => {
      this.stderr.push(text);
      settings.onStderr?.(text);
    });
    this.stderrClosed = new Promise((resolve) => stderr.once('close', () => resolve()));
    this.out = this.stdout[Symbol.asyncIterator]();
    this.advertisement = new PktLineReader(this.source(), { signal: settings.signal });
    this.watch(settings.signal);
  }

  /** Waits for the first byte of output; a process that fails before it is open()'s error. */
  async start(): Promise<void> {
    let next: IteratorResult<Buffer>;
    try {
      next = await this.out.next();
    } catch {
      next = { done: true, value: undefined };
    }
    if (next.done !== true) {
      this.first = next.value;
      this.received += next.value.length;
      return;
    }
    this.stdoutEnded = true;
    const exit = await this.finished();
    if (!this.succeeded(exit)) {
      this.dispose();
      throw this.error(exit);
    }
  }

  async request(body: Uint8Array | AsyncIterable<Uint8Array>, options: RequestOptions = {}): Promise<PktLineReader> {
    if (this.closing !== undefined) throw new PackferryError(ErrorCode.Usage, 'session: request after close()');
    if (this.stdinDone) {
      throw new PackferryError(ErrorCode.Usage, 'session: request after a request with { end: true }');
    }
    if (this.failure !== undefined) throw this.failure;
    throwIfAborted(options.signal);
    this.watch(options.signal);
    const end = options.end === true;
    if (end) this.stdinDone = true;
    // Written in the background, in order, so that the caller can read the
    // response while a long body (a pack) is still being sent.
    this.writes = this.writes.then(() => this.writeBody(body, end));
    return this.advertisement;
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  /** The byte source under the reader: stdout, then the exit status's verdict. */
  private async *source(): AsyncGenerator<Uint8Array, void, undefined> {
    if (this.first !== undefined) {
      const chunk = this.first;
      this.first = undefined;
      yield chunk;
    }
    while (!this.stdoutEnded) {
      let next: IteratorResult<Buffer>;
      try {
        next = await this.out.next();
      } catch {
        next = { done: true, value: undefined };
      }
      if (next.done === true) break;
      this.received += next.value.length;
      yield next.value;
    }
    this.stdoutEnded = true;
    const exit = await this.finished();
    if (!this.succeeded(exit)) throw this.error(exit);
  }

  private async writeBody(body: Uint8Array | AsyncIterable<Uint8Array>, end: boolean): Promise<void> {
    try {
      if (body instanceof Uint8Array) {
        await this.write(body);
      } else {
        for await (const chunk of body) {
          if (this.abortReason !== undefined || this.failure !== undefined) break;
          await this.write(chunk);
        }
      }
      if (end) this.stdin.end();
    } catch (err) {
      if (err instanceof StdinClosed) return; // the process went away: its exit status tells why
      // The caller's body failed (e.g. the pack it streams): stop the service,
      // and let the reader and close() report the body's own error.
      this.bodyError = err;
      this.terminate();
    }
  }

  private async write(chunk: Uint8Array): Promise<void> {
    if (this.stdin.destroyed || this.stdin.writableEnded) throw new StdinClosed('stdin is closed');
    if (chunk.length === 0) return;
    if (!this.stdin.write(chunk)) await waitForDrain(this.stdin);
  }

  /** Ends the conversation as Git's disconnect_git does: a flush-pkt, stdin closed, then the exit status. */
  private async shutdown(): Promise<void> {
    try {
      await this.writes;
      if (!this.stdinDone && this.abortReason === undefined && this.bodyError === undefined) {
        this.stdinDone = true;
        try {
          await this.write(flushPkt);
        } catch {
          // already gone: the exit status says how it went
        }
      }
      if (!this.stdin.writableEnded) this.stdin.end();
      const cutOff = !(await this.drain());
      const exit = await this.finished();
      if (this.succeeded(exit)) return;
      // We hung up on unread output: ssh's failure to write it is ours, not the remote's.
      if (cutOff && this.abortReason === undefined && this.bodyError === undefined && this.ownFailure(exit)) return;
      throw this.error(exit);
    } finally {
      this.dispose();
    }
  }

  /**
   * Reads and drops what the service still says, up to closeDrainBytes, so it
   * can finish normally. False if it had more to say and the pipe was cut.
   */
  private async drain(): Promise<boolean> {
    let dropped = this.first?.length ?? 0;
    this.first = undefined;
    while (!this.stdoutEnded && this.abortReason === undefined) {
      if (dropped > this.settings.closeDrainBytes) {
        this.stdout.destroy();
        return false;
      }
      let next: IteratorResult<Buffer>;
      try {
        next = await this.out.next();
      } catch {
        break;
      }
      if (next.done === true) break;
      dropped += next.value.length;
    }
    this.stdoutEnded = true;
    return true;
  }

  private ownFailure(exit: ProcessExit): boolean {
    return this.settings.hangupExit(exit);
  }

  private succeeded(exit: ProcessExit): boolean {
    return exit.code === 0 && this.spawnError === undefined && this.abortReason === undefined && this.bodyError === undefined;
  }

  /** The exit status, once stderr has been read to its end (or briefly waited for). */
  private async finished(): Promise<ProcessExit> {
    const exit = await this.exited;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.stderrClosed,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, STDERR_SETTLE_MS);
      }),
    ]);
    clearTimeout(timer);
    return exit;
  }

  /** The session's error, decided once: abort, the caller's body, a failed spawn, or what ssh said. */
  private error(exit: ProcessExit): PackferryError {
    if (this.failure !== undefined) return this.failure;
    const { settings } = this;
    if (this.abortReason !== undefined) {
      this.failure = abortError(this.abortReason.reason);
    } else if (this.bodyError !== undefined) {
      this.failure = isPackferryError(this.bodyError)
        ? this.bodyError
        : new PackferryError(ErrorCode.Internal, `request body failed: ${String(this.bodyError)}`, { cause: this.bodyError });
    } else if (this.spawnError !== undefined) {
      this.failure = settings.spawnFailure(this.spawnError);
    } else {
      this.failure = settings.classify(this.stderr.toString(), exit, this.received > 0 ? 'talking' : 'connecting');
    }
    return this.failure;
  }

  private watch(signal: AbortSignal | undefined): void {
    if (signal === undefined) return;
    const onAbort = (): void => {
      if (this.abortReason !== undefined) return;
      this.abortReason = { reason: signal.reason };
      this.terminate();
    };
    if (signal.aborted) {
      onAbort();
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    this.cleanups.push(() => signal.removeEventListener('abort', onAbort));
  }

  /** SIGTERM to the process group, SIGKILL after the grace period. */
  private terminate(): void {
    this.stdin.destroy();
    if (this.child.exitCode !== null || this.child.signalCode !== null || this.killTimer !== undefined) return;
    this.signalGroup('SIGTERM');
    this.killTimer = setTimeout(() => this.signalGroup('SIGKILL'), this.settings.killGraceMs);
    this.killTimer.unref();
    void this.exited.then(() => clearTimeout(this.killTimer));
  }

  private signalGroup(signal: NodeJS.Signals): void {
    const pid = this.child.pid;
    if (pid === undefined) return;
    try {
      if (!this.settings.processGroup) throw new Error('no process group');
      process.kill(-pid, signal);
    } catch {
      try {
        this.child.kill(signal);
      } catch {
        // already gone
      }
    }
  }

  private dispose(): void {
    for (const cleanup of this.cleanups.splice(0)) cleanup();
  }
}

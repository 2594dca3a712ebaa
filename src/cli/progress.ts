// Progress display in Git's style, on standard error and only on a terminal:
//   Receiving objects:  45% (450/1000), 1.20 MiB | 2.40 MiB/s
//   Resolving deltas: 100% (94/94), done.
import type { ProgressEvent, ProgressSink } from '../core/progress.js';

export function humanBytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(2)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(2)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(2)} KiB`;
  return `${n} ${n === 1 ? 'byte' : 'bytes'}`;
}

/** A sink that draws on `stream` when it is a TTY and `enabled`; otherwise does nothing. */
export function terminalProgress(stream: NodeJS.WriteStream = process.stderr, enabled = true): ProgressSink {
  if (!enabled || !stream.isTTY) return () => {};
  let current: string | undefined;
  let started = 0;
  let lastLength = 0;
  return (event: ProgressEvent) => {
    if (event.title !== current) {
      current = event.title;
      started = Date.now();
      lastLength = 0;
    }
    let line = `${event.title}: `;
    if (event.total !== undefined && event.total > 0) {
      const pct = Math.floor((event.done * 100) / event.total);
      line += `${String(pct).padStart(3)}% (${event.done}/${event.total})`;
    } else if (event.bytes === undefined) {
      line += `${event.done}`;
    }
    if (event.bytes !== undefined && event.bytes > 0) {
      const seconds = (Date.now() - started) / 1000;
      line += `${event.total !== undefined || line.endsWith(': ') ? '' : ', '}${humanBytes(event.bytes)}`;
      if (seconds > 0.5) line += ` | ${humanBytes(event.bytes / seconds)}/s`;
    }
    if (event.finished) line += ', done.';
    const pad = lastLength > line.length ? ' '.repeat(lastLength - line.length) : '';
    lastLength = line.length;
    stream.write(`${line}${pad}${event.finished ? '\n' : '\r'}`);
  };
}

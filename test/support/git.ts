// Running the real `git` in tests: an isolated environment (no user or system
// config, fixed identity and dates) so results are reproducible anywhere.
import { execFileSync, spawn, type SpawnOptions } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const gitEnv: NodeJS.ProcessEnv = {
  ...process.env,
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_AUTHOR_NAME: 'A U Thor',
  GIT_AUTHOR_EMAIL: 'author@example.com',
  GIT_AUTHOR_DATE: '1700000000 +0000',
  GIT_COMMITTER_NAME: 'C O Mitter',
  GIT_COMMITTER_EMAIL: 'committer@example.com',
  GIT_COMMITTER_DATE: '1700000000 +0000',
  GIT_TERMINAL_PROMPT: '0',
  LC_ALL: 'C',
};

export interface GitOptions {
  cwd?: string;
  input?: string | Uint8Array;
  env?: NodeJS.ProcessEnv;
}

/** Runs git synchronously and returns stdout as a Buffer; throws with stderr on failure. */
export function gitBuffer(args: string[], options: GitOptions = {}): Buffer {
  return execFileSync('git', args, {
    cwd: options.cwd,
    input: options.input,
    env: { ...gitEnv, ...options.env },
    maxBuffer: 1 << 30,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

/** Runs git synchronously and returns stdout as text without its final newline. */
export function git(args: string[], options: GitOptions = {}): string {
  return gitBuffer(args, options).toString('utf8').replace(/\n$/, '');
}

/** Runs git asynchronously; resolves with exit code, stdout and stderr. */
export function gitAsync(
  args: string[],
  options: GitOptions & { spawn?: SpawnOptions } = {},
): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', args, { cwd: options.cwd, env: { ...gitEnv, ...options.env }, ...options.spawn });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (d: Buffer) => out.push(d));
    child.stderr?.on('data', (d: Buffer) => err.push(d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8') }));
    if (options.input !== undefined) child.stdin?.end(options.input);
    else child.stdin?.end();
  });
}

/** A temporary directory removed by `cleanup()` (call it from an `after` hook). */
export function tempDir(prefix = 'packferry-test-'): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

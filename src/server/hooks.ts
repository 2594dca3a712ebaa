// Server-side hooks (githooks: pre-receive, update, post-receive), run as
// Git runs them: pre-receive and post-receive read "<old> <new> <ref>" lines
// on stdin, update gets the ref, old and new ids as arguments; the push
// options arrive in GIT_PUSH_OPTION_COUNT / GIT_PUSH_OPTION_<n>. What a hook
// prints goes back to the pushing client (side-band 2, shown as "remote:").
// A pre-receive that exits non-zero refuses the whole push, an update hook
// its own ref; post-receive runs after the refs moved and cannot refuse.
//
// Hooks live in the store beside the repository (hooks/<name>), so they
// follow it between machines; for a directory store they run in place,
// for an object store they are copied into the local cache first.
import { spawn } from 'node:child_process';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import type { RefUpdateCommand } from '../protocol/receive-pack.js';
import type { BlobStore } from '../store/backend.js';
import { FsBlobStore } from '../store/fs-backend.js';
import type { HookName } from '../store/root.js';

export interface HookRun {
  /** Exit status (null when killed, e.g. by the timeout). */
  code: number | null;
  /** stdout and stderr, interleaved as they came. */
  output: string;
}

export interface HookContext {
  /** The repository's name, in PACKFERRY_REPOSITORY. */
  repository: string;
  /** Who is pushing, in PACKFERRY_USER (and GIT_PUSHER, as some hooks expect). */
  user?: string;
  pushOptions: string[];
  /** GIT_DIR for a directory store: the repository itself, readable by git (new objects included). */
  gitDir?: string;
  /** Where object-store hooks are copied to. */
  cacheDir: string;
  timeoutMs?: number;
  /** Receives output as it arrives (to stream it to the client). */
  onOutput?: (text: string) => void;
}

const HOOK_TIMEOUT_MS = 60_000;
const OUTPUT_LIMIT = 1024 * 1024;

/** The hook's executable path, or undefined when the repository has none. */
async function hookPath(store: BlobStore, name: HookName, cacheDir: string): Promise<string | undefined> {
  const key = `hooks/${name}`;
  if (store instanceof FsBlobStore) {
    const info = await store.head(key);
    return info ? join(store.root, 'hooks', name) : undefined;
  }
  const body = await store.get(key);
  if (!body) return undefined;
  // Content-named in the cache: an edited hook is a new file.
  const dir = join(cacheDir, 'hooks');
  await mkdir(dir, { recursive: true });
  const path = join(dir, `${name}-${createHash('sha256').update(body).digest('hex').slice(0, 16)}`);
  await writeFile(path, body, { mode: 0o755 });
  return path;
}

export async function runHook(store: BlobStore, name: HookName, context: HookContext, args: string[], stdin: string): Promise<HookRun | undefined> {
  const path = await hookPath(store, name, context.cacheDir);
  if (path === undefined) return undefined;
  if (store instanceof FsBlobStore) await chmod(path, 0o755).catch(() => {});
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PACKFERRY_REPOSITORY: context.repository,
    GIT_PUSH_OPTION_COUNT: String(context.pushOptions.length),
  };
  context.pushOptions.forEach((o, i) => {
    env[`GIT_PUSH_OPTION_${i}`] = o;
  });
  if (context.user !== undefined) {
    env.PACKFERRY_USER = context.user;
    env.GIT_PUSHER = context.user;
  }
  if (context.gitDir !== undefined) env.GIT_DIR = context.gitDir;
  return new Promise((resolve) => {
    const child = spawn(path, args, { cwd: context.gitDir ?? context.cacheDir, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    const collect = (d: Buffer) => {
      const text = d.toString('utf8');
      if (output.length < OUTPUT_LIMIT) output += text;
      context.onOutput?.(text);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.stdin.on('error', () => {}); // a hook that does not read its stdin
    const timer = setTimeout(() => child.kill('SIGKILL'), context.timeoutMs ?? HOOK_TIMEOUT_MS);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ code: 126, output: `hook ${name} could not run: ${err.message}\n` });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
    child.stdin.end(stdin);
  });
}

/** pre-receive/post-receive input: one "<old> <new> <ref>" line per command. */
export function hookInput(commands: RefUpdateCommand[]): string {
  return commands.map((c) => `${c.oldOid} ${c.newOid} ${c.name}\n`).join('');
}

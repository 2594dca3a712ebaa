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
//
// A hook is code run by the server, so it is kept from the server's own
// secrets and from what outlives it (docs/serve.md "Hooks"):
// - a clean environment: Git's variables and a documented few, nothing of
//   the server's (no AWS_* keys, no tokens);
// - its own process group, killed as a whole when the hook exits and at the
//   time limit; its output bounded;
// - where bubblewrap works, a sandbox, as repoSpanner's hook runner: the
//   system read-only, the repository read-only and nothing else of the
//   store, a scratch directory as HOME and /tmp, its own pid namespace (so
//   nothing it starts, setsid or not, outlives it), no network unless
//   allowed.
// The settings are the server's (ServeOptions.hooks: `packferry serve`
// makes them once with prepareHookSettings, which probes bubblewrap).
import { spawn } from 'node:child_process';
import { constants, type Dirent } from 'node:fs';
import { access, chmod, lstat, mkdir, mkdtemp, readdir, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join, relative, resolve, sep } from 'node:path';
import { createHash } from 'node:crypto';
import { StringDecoder } from 'node:string_decoder';
import { PackferryError, ErrorCode } from '../core/errors.js';
import type { RefUpdateCommand } from '../protocol/receive-pack.js';
import { localFiles, type BlobStore } from '../store/backend.js';
import type { HookName } from '../store/root.js';

export interface HookRun {
  /** Exit status (null when killed, e.g. at the time limit). */
  code: number | null;
  /** stdout and stderr, interleaved as they came (at most OUTPUT_LIMIT bytes of it). */
  output: string;
  /** Killed at the time limit. */
  timedOut: boolean;
}

export interface HookContext {
  /** The repository's name, in PACKFERRY_REPOSITORY. */
  repository: string;
  /** Who is pushing, in PACKFERRY_USER (and GIT_PUSHER, as some hooks expect). */
  user?: string;
  pushOptions: string[];
  /** GIT_DIR for a directory store: the repository itself, readable by git (new objects included). */
  gitDir?: string;
  /** Where object-store hooks are copied to, and where the scratch directories are made. */
  cacheDir: string;
  /** Receives output as it arrives (what is kept of it). */
  onOutput?: (text: string) => void;
  /** How hooks are run (the server's settings). */
  settings: HookSettings;
}

/** How hooks are run; `packferry serve` options. */
export interface HookSettings {
  /** The time limit of one hook run, in milliseconds. */
  timeoutMs: number;
  /** Run hooks under bubblewrap (whose path is given, and which was found to work), or as plain processes. */
  sandbox: { kind: 'bwrap'; bwrap: string } | { kind: 'none' };
  /** Sandboxed hooks may use the network (they share the server's). */
  network: boolean;
  /** Any admin of a repository, not only a server-wide admin, may install, read, change and delete its hooks. */
  repositoryAdminsManageHooks: boolean;
}

export type HookSandboxMode = 'auto' | 'bwrap' | 'none';

export interface HookSettingsOptions {
  /** auto (default): bubblewrap when it works, else none with a warning; bwrap: bubblewrap or an error. */
  sandbox?: HookSandboxMode;
  timeoutMs?: number;
  network?: boolean;
  repositoryAdminsManageHooks?: boolean;
  /** Where the probe's scratch directory goes (default the OS temporary directory). */
  scratchParent?: string;
}

export const HOOK_TIMEOUT_MS = 60_000;
/** Output kept (and sent to the client) per hook run; the rest is read and dropped. */
export const HOOK_OUTPUT_LIMIT = 1024 * 1024;
/** The PATH hooks get. */
export const HOOK_PATH = '/usr/local/bin:/usr/bin:/bin';
/** After the hook's main process exits: how long its output pipes may stay open (held by what it started). */
const PIPE_GRACE_MS = 1000;
const PROBE_TIMEOUT_MS = 10_000;

/** System directories the sandbox shows read-only (or as the same symlinks, on merged-/usr systems). */
const SYSTEM_DIRS = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];
/** What of /etc the sandbox shows (read-only): what sh, git and the C library need; no secrets. */
const ETC_ENTRIES = ['alternatives', 'ld.so.cache', 'ld.so.conf', 'ld.so.conf.d', 'localtime', 'nsswitch.conf', 'passwd', 'group', 'gitconfig'];
/** ... and with the network allowed, what name resolution and TLS need. */
const NETWORK_ETC_ENTRIES = ['hosts', 'host.conf', 'resolv.conf', 'gai.conf', 'ssl', 'ca-certificates'];

/** The bwrap on PATH, if any. */
async function findBwrap(): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(delimiter)) {
    if (dir === '') continue;
    const path = join(dir, 'bwrap');
    try {
      await access(path, constants.X_OK);
      return path;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * Settings from options, with the sandbox probed: bubblewrap must exist and
 * actually run a shell the way hooks are run (it can be installed and still
 * fail, e.g. without unprivileged user namespaces). `warning` says why hooks
 * run unsandboxed in auto mode; bwrap mode throws instead.
 */
export async function prepareHookSettings(options: HookSettingsOptions = {}): Promise<{ settings: HookSettings; warning?: string }> {
  const mode = options.sandbox ?? 'auto';
  const timeoutMs = options.timeoutMs ?? HOOK_TIMEOUT_MS;
  if (!(timeoutMs > 0)) throw new PackferryError(ErrorCode.Usage, 'the hook time limit must be positive');
  const base = { timeoutMs, network: options.network === true, repositoryAdminsManageHooks: options.repositoryAdminsManageHooks === true };
  if (mode === 'none') return { settings: { ...base, sandbox: { kind: 'none' } } };
  const bwrap = await findBwrap();
  const problem = bwrap === undefined ? 'bwrap (Debian package bubblewrap) is not on PATH' : await probeBwrap(bwrap, base.network, options.scratchParent ?? tmpdir());
  if (problem === undefined) return { settings: { ...base, sandbox: { kind: 'bwrap', bwrap: bwrap! } } };
  if (mode === 'bwrap') {
    throw new PackferryError(ErrorCode.Usage, `cannot sandbox hooks: ${problem}`, {
      hint: 'install bubblewrap and allow unprivileged user namespaces, or choose --hook-sandbox auto or none',
    });
  }
  return { settings: { ...base, sandbox: { kind: 'none' } }, warning: `hooks run without a sandbox: ${problem}` };
}

/** Runs `sh -c 'echo ok'` as a hook would run; undefined when that works, else why not. */
async function probeBwrap(bwrap: string, network: boolean, scratchParent: string): Promise<string | undefined> {
  await mkdir(scratchParent, { recursive: true });
  const scratch = await mkdtemp(join(scratchParent, 'hook-probe-'));
  try {
    const args = await sandboxArgs({ network, scratch, command: ['/bin/sh', '-c', 'echo ok'] });
    const run = await runBounded(bwrap, args, { cwd: scratch, env: { PATH: HOOK_PATH }, stdin: '', timeoutMs: PROBE_TIMEOUT_MS });
    if (run.code === 0 && run.output === 'ok\n') return undefined;
    if (run.timedOut) return `${bwrap} did not finish within ${PROBE_TIMEOUT_MS / 1000} s`;
    return `${bwrap} fails (exit ${run.code}): ${run.output.trim().slice(0, 500) || 'no output'}`;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** The hook's executable path, or undefined when the repository has none. */
async function hookPath(store: BlobStore, name: HookName, cacheDir: string): Promise<string | undefined> {
  const key = `hooks/${name}`;
  const local = localFiles(store);
  if (local) {
    const info = await store.head(key);
    return info ? local.pathOf(key) : undefined;
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

/**
 * The whole environment a hook gets (docs/serve.md "Hooks"): what Git's
 * receive-pack gives hooks (GIT_DIR, the push options), who and what the
 * push is for, and a fixed PATH, HOME, TMPDIR and locale. Nothing of the
 * server's own environment.
 */
export function hookEnvironment(context: HookContext, home: string, gitDir: string | undefined): Record<string, string> {
  const env: Record<string, string> = {
    PATH: HOOK_PATH,
    HOME: home,
    TMPDIR: home,
    LANG: 'C.UTF-8',
    LC_ALL: 'C.UTF-8',
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
  if (gitDir !== undefined) env.GIT_DIR = gitDir;
  return env;
}

export async function runHook(store: BlobStore, name: HookName, context: HookContext, args: string[], stdin: string): Promise<HookRun | undefined> {
  const found = await hookPath(store, name, context.cacheDir);
  if (found === undefined) return undefined;
  if (localFiles(store)) await chmod(found, 0o755).catch(() => {});
  // Absolute: bwrap's binds and --chdir need them, and a hook may change directory.
  const path = resolve(found);
  const gitDir = context.gitDir === undefined ? undefined : resolve(context.gitDir);
  const settings = context.settings;
  const scratchParent = resolve(context.cacheDir, 'hook-scratch');
  await mkdir(scratchParent, { recursive: true });
  const scratch = await mkdtemp(join(scratchParent, `${name}-`));
  try {
    let run: HookRun;
    if (settings.sandbox.kind === 'bwrap') {
      const command = [path, ...args];
      const sandbox = await sandboxArgs({ network: settings.network, scratch, gitDir, hook: path, command });
      const env = hookEnvironment(context, '/tmp', gitDir);
      run = await runBounded(settings.sandbox.bwrap, sandbox, { cwd: scratch, env, stdin, timeoutMs: settings.timeoutMs, onOutput: context.onOutput });
    } else {
      const env = hookEnvironment(context, scratch, gitDir);
      run = await runBounded(path, args, { cwd: gitDir ?? scratch, env, stdin, timeoutMs: settings.timeoutMs, onOutput: context.onOutput });
    }
    if (run.timedOut) run.output += `${run.output === '' || run.output.endsWith('\n') ? '' : '\n'}hook ${name} stopped: it ran longer than the ${settings.timeoutMs / 1000} s time limit\n`;
    return run;
  } finally {
    await rm(scratch, { recursive: true, force: true }).catch(() => {});
  }
}

interface SandboxSpec {
  network: boolean;
  /** Bound read-write as /tmp (and HOME). */
  scratch: string;
  /** The repository, bound read-only at its own path (the working directory). */
  gitDir?: string;
  /** The hook's file, bound read-only at its own path when it is not in gitDir. */
  hook?: string;
  command: string[];
}

/** bwrap's arguments for one hook run (docs/serve.md "The sandbox"). */
async function sandboxArgs(spec: SandboxSpec): Promise<string[]> {
  // --cap-drop ALL: run by root, bwrap would otherwise keep every capability inside, enough to remount the binds writable.
  const args = ['--unshare-all', ...(spec.network ? ['--share-net'] : []), '--cap-drop', 'ALL', '--die-with-parent', '--new-session'];
  for (const dir of SYSTEM_DIRS) {
    const info = await lstat(dir).catch(() => undefined);
    if (info?.isSymbolicLink()) args.push('--symlink', await readlink(dir), dir);
    else if (info?.isDirectory()) args.push('--ro-bind', dir, dir);
  }
  for (const entry of [...ETC_ENTRIES, ...(spec.network ? NETWORK_ETC_ENTRIES : [])]) args.push('--ro-bind-try', `/etc/${entry}`, `/etc/${entry}`);
  args.push('--proc', '/proc', '--dev', '/dev', '--bind', spec.scratch, '/tmp');
  // After /tmp: a repository (or cached hook) under /tmp is then mounted on top of the scratch directory, not hidden by it.
  if (spec.gitDir !== undefined) {
    args.push('--ro-bind', spec.gitDir, spec.gitDir);
    // A repository named "a.git/b" lives inside a.git's directory: not a.git's hooks' to read.
    for (const nested of await nestedRepositories(spec.gitDir)) args.push('--tmpfs', nested, '--remount-ro', nested);
  }
  if (spec.hook !== undefined && (spec.gitDir === undefined || !isInside(spec.hook, spec.gitDir))) args.push('--ro-bind', spec.hook, spec.hook);
  args.push('--chdir', spec.gitDir ?? '/tmp', '--remount-ro', '/', '--', ...spec.command);
  return args;
}

function isInside(path: string, dir: string): boolean {
  const rel = relative(dir, path);
  return rel !== '' && !rel.startsWith('..') && !rel.startsWith(sep);
}

/** Directories named *.git below `dir`: other repositories of a directory store. */
async function nestedRepositories(dir: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (at: string): Promise<void> => {
    let entries: Dirent[];
    try {
      entries = await readdir(at, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const path = join(at, e.name);
      if (e.name.endsWith('.git')) found.push(path);
      else await walk(path);
    }
  };
  await walk(dir);
  return found;
}

interface BoundedRun {
  cwd: string;
  env: Record<string, string>;
  stdin: string;
  timeoutMs: number;
  onOutput?: (text: string) => void;
}

/**
 * Runs `command` in a process group of its own, collecting at most
 * HOOK_OUTPUT_LIMIT bytes of its output. When it exits, or at the time limit,
 * the whole group is killed; its output pipes are then given PIPE_GRACE_MS to
 * close (a process that left the group may hold them) before they are closed
 * from this end. A command that cannot be started gives code 126.
 */
function runBounded(command: string, args: string[], options: BoundedRun): Promise<HookRun> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    let output = '';
    let kept = 0;
    let truncated = false;
    let timedOut = false;
    const collect = (decoder: StringDecoder) => (d: Buffer) => {
      if (kept >= HOOK_OUTPUT_LIMIT) {
        truncated = true;
        return;
      }
      const part = d.subarray(0, HOOK_OUTPUT_LIMIT - kept);
      kept += part.length;
      if (part.length < d.length) truncated = true;
      const text = decoder.write(part);
      output += text;
      if (text !== '') options.onOutput?.(text);
    };
    child.stdout.on('data', collect(new StringDecoder('utf8')));
    child.stderr.on('data', collect(new StringDecoder('utf8')));
    child.stdin.on('error', () => {}); // a hook that does not read its stdin
    const killGroup = () => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, options.timeoutMs);
    let settled = false;
    const finish = (code: number | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (truncated) output += `${output.endsWith('\n') ? '' : '\n'}(hook output cut off after ${HOOK_OUTPUT_LIMIT} bytes)\n`;
      resolve({ code: timedOut ? null : code, output, timedOut });
    };
    child.on('error', (err) => {
      killGroup();
      output += `${command} could not run: ${err.message}\n`;
      finish(126);
    });
    child.on('exit', (code) => {
      killGroup();
      const pipes = [child.stdout, child.stderr].map((s) => new Promise<void>((r) => (s.readableEnded || s.destroyed ? r() : s.once('close', () => r()))));
      const grace = setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
      }, PIPE_GRACE_MS);
      void Promise.all(pipes).then(() => {
        clearTimeout(grace);
        finish(code);
      });
    });
    child.stdin.end(options.stdin);
  });
}

/** pre-receive/post-receive input: one "<old> <new> <ref>" line per command. */
export function hookInput(commands: RefUpdateCommand[]): string {
  return commands.map((c) => `${c.oldOid} ${c.newOid} ${c.name}\n`).join('');
}

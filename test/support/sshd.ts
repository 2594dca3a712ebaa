// A real OpenSSH server on loopback for the ssh transport tests
// (gitprotocol-pack(5), "Transports": Git over ssh runs
// `git-upload-pack '<path>'` / `git-receive-pack '<path>'` as the remote
// command and speaks pkt-lines over its stdin and stdout).
//
// Everything lives in one temporary directory: a generated ed25519 host key,
// a client key pair and its authorized_keys, a known_hosts file naming the
// server as "[127.0.0.1]:PORT" (as ssh writes non-default ports), and an
// sshd_config that allows only that key. sshd runs in the foreground (-D),
// logging to stderr (-e), on a port found by binding 127.0.0.1:0; if another
// process takes the port before sshd binds it, sshd is started again on a new
// one. The session runs the login user's shell with sshd's default PATH, which
// finds git-upload-pack in /usr/bin.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { tempDir } from './git.js';

export const SSHD_PATH = '/usr/sbin/sshd';

export interface Sshd {
  readonly port: number;
  /** The login user (the user running the tests). */
  readonly user: string;
  /** The client's private key (its public half is in authorized_keys). */
  readonly identityFile: string;
  /** known_hosts with the server's host key for [127.0.0.1]:port. */
  readonly knownHostsFile: string;
  /** The server's host public key line ("ssh-ed25519 AAAA..."). */
  readonly hostPublicKey: string;
  /** A directory for the test's own files, removed by stop(). */
  readonly dir: string;
  /** `ssh://user@127.0.0.1:PORT<absolutePath>`. */
  url(absolutePath: string): string;
  /** A new key pair that the server does not accept; returns the private key path. */
  makeKey(name: string): string;
  /** Pids of the processes serving connections (sshd's per-connection children and what they run). */
  sessionPids(): number[];
  /** Kills every sshd session process (the connections drop), leaving the listener running. */
  killSessions(): number;
  /** Server log so far (sshd -e writes it to stderr). */
  log(): string;
  stop(): Promise<void>;
}

/** Finds a port that is free now, by binding 127.0.0.1:0 and closing. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port from listen(0)');
  server.close();
  await once(server, 'close');
  return address.port;
}

function keygen(path: string, comment: string): string {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', path], { stdio: 'pipe' });
  return readFileSync(`${path}.pub`, 'utf8').trim();
}

/** Resolves once 127.0.0.1:port accepts a TCP connection; rejects if `exited` settles first or after `timeoutMs`. */
async function waitForPort(port: number, exited: Promise<unknown>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let stopped = false;
  void exited.then(() => {
    stopped = true;
  });
  while (!stopped) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`sshd did not listen on 127.0.0.1:${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('sshd exited before it listened');
}

/** Pids of every descendant of `pid` (from /proc). */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    // "pid (comm) state ppid ...": comm may contain spaces and parentheses.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const list = children.get(ppid) ?? [];
    list.push(Number(name));
    children.set(ppid, list);
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const child of children.get(queue.shift() as number) ?? []) {
      out.push(child);
      queue.push(child);
    }
  }
  return out;
}

export async function startSshd(): Promise<Sshd> {
  if (!existsSync(SSHD_PATH)) throw new Error(`${SSHD_PATH} not found: install openssh-server (see .ci/run)`);
  // sshd's privilege separation directory; Debian's package creates it at boot.
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const tmp = tempDir('packferry-sshd-');
  const dir = tmp.path;
  const user = userInfo().username;
  const hostKey = join(dir, 'host_ed25519');
  const hostPublicKey = keygen(hostKey, 'packferry-test-host');
  const identityFile = join(dir, 'client_ed25519');
  const clientPublicKey = keygen(identityFile, 'packferry-test-client');
  const authorizedKeys = join(dir, 'authorized_keys');
  writeFileSync(authorizedKeys, `${clientPublicKey}\n`, { mode: 0o600 });
  const knownHostsFile = join(dir, 'known_hosts');
  const work = join(dir, 'work');
  mkdirSync(work);

  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const config = join(dir, 'sshd_config');
    writeFileSync(
      config,
      [
        'ListenAddress 127.0.0.1',
        `Port ${port}`,
        `HostKey ${hostKey}`,
        `AuthorizedKeysFile ${authorizedKeys}`,
        `PidFile ${join(dir, 'sshd.pid')}`,
        'UsePAM no',
        'StrictModes no',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'PubkeyAuthentication yes',
        'PermitRootLogin prohibit-password',
        'AcceptEnv GIT_PROTOCOL',
        'PermitUserEnvironment no',
        'X11Forwarding no',
        'AllowTcpForwarding no',
        'LogLevel VERBOSE',
        '',
      ].join('\n'),
    );
    writeFileSync(knownHostsFile, `[127.0.0.1]:${port} ${hostPublicKey}\n`);
    const child: ChildProcess = spawn(SSHD_PATH, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (d: string) => {
      stderr += d;
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const spawnFailed = once(child, 'error');
    try {
      await Promise.race([waitForPort(port, exited, 10_000), spawnFailed.then(([err]) => Promise.reject(err))]);
    } catch (err) {
      child.kill('SIGKILL');
      if (/Address already in use/.test(stderr) && attempt < 5) continue;
      tmp.cleanup();
      throw new Error(`sshd failed to start: ${err instanceof Error ? err.message : String(err)}\n${stderr}`);
    }
    const pid = child.pid as number;
    let stopped: Promise<void> | undefined;
    return {
      port,
      user,
      identityFile,
      knownHostsFile,
      hostPublicKey,
      dir: work,
      url: (absolutePath) => `ssh://${user}@127.0.0.1:${port}${absolutePath}`,
      makeKey: (name) => {
        const path = join(dir, `extra-${name}`);
        keygen(path, `packferry-test-${name}`);
        return path;
      },
      sessionPids: () => descendants(pid),
      killSessions: () => {
        const pids = descendants(pid);
        for (const p of pids) {
          try {
            process.kill(p, 'SIGKILL');
          } catch {
            // already gone
          }
        }
        return pids.length;
      },
      log: () => stderr,
      stop: () => {
        stopped ??= (async () => {
          if (child.exitCode === null && child.signalCode === null) {
            // SIGTERM stops the listener; the sessions it forked go on until their client leaves, so end them too.
            for (const p of descendants(pid)) {
              try {
                process.kill(p, 'SIGKILL');
              } catch {
                // already gone
              }
            }
            child.kill('SIGTERM');
            await exited;
          }
          tmp.cleanup();
        })();
        return stopped;
      },
    };
  }
}

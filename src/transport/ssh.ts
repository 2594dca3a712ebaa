// The ssh transport: gitprotocol-pack(5), "Transports" and "SSH Transport";
// gitprotocol-v2(5), "SSH and File Transport" (GIT_PROTOCOL=version=2 sent
// with `-o SendEnv=GIT_PROTOCOL`); git-clone(1), "GIT URLS".
//
// Like Git, packferry speaks ssh by running the OpenSSH client, so
// ~/.ssh/config, ssh-agent, the keys in ~/.ssh, known_hosts, GIT_SSH_COMMAND,
// GIT_SSH and GIT_SSH_VARIANT work exactly as they do for `git fetch`. The
// command line is built in ssh-command.ts (connect.c's rules plus
// BatchMode=yes and StrictHostKeyChecking=yes); failures are told apart in
// ssh-errors.ts.
//
// One process per session (a stateful conversation, gitprotocol-http "Smart
// Clients" calls the other kind stateless): the service speaks first on
// stdout, which one PktLineReader reads for the whole conversation; each
// request is written to stdin. `open` resolves once the first byte of the
// advertisement has arrived, so a refused host key, key or repository fails
// `open` itself. When stdout ends, the reader waits for the exit status: a
// failure then surfaces from the reader as the classified error instead of a
// bare end of stream.
import { spawn } from 'node:child_process';
import { throwIfAborted } from '../core/abort.js';
import { ErrorCode, PackferryError } from '../core/errors.js';
import { DEFAULT_CLOSE_DRAIN, DEFAULT_KILL_GRACE_MS, DEFAULT_MAX_STDERR, ProcessSession } from './process.js';
import {
  buildSshInvocation,
  probeArguments,
  programInvocation,
  selectSshProgram,
  type SshCommandSettings,
  type SshProgram,
  type SshVariant,
} from './ssh-command.js';
import { SSH_OWN_FAILURE, classifySshFailure } from './ssh-errors.js';
import type { GitServiceName, OpenServiceOptions, ServiceSession, Transport } from './types.js';
import { displayUrl, type GitUrl, type SshUrl } from './url.js';

export interface SshTransportOptions extends Omit<SshCommandSettings, 'remoteProgram'> {
  /** Environment for ssh and where GIT_SSH_COMMAND, GIT_SSH and GIT_SSH_VARIANT are read; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Program to run on the server for fetches (git's --upload-pack); default git-upload-pack. */
  uploadPack?: string;
  /** Program to run on the server for pushes (git's --receive-pack); default git-receive-pack. */
  receivePack?: string;
  /** Receives ssh's stderr (its own messages and the remote's) as it arrives. */
  onStderr?: (text: string) => void;
  /** How much of stderr is kept for error messages (the tail); default 64 KiB. */
  maxStderrBytes?: number;
  /** After an abort: how long ssh gets to exit after SIGTERM before SIGKILL; default 2000 ms. */
  killGraceMs?: number;
  /**
   * close(): how much unread output is read and dropped while the service
   * finishes (trailing hook output, a last flush) before the rest is cut off
   * by closing the pipe; default 1 MiB.
   */
  closeDrainBytes?: number;
}

/** Git over ssh: one OpenSSH process per service session. */
export class SshTransport implements Transport {
  readonly displayUrl: string;
  readonly url: SshUrl;
  private readonly options: SshTransportOptions;
  /** The settled variant once the 'auto' probe has run. */
  private probed: Promise<Exclude<SshVariant, 'auto'>> | undefined;

  constructor(url: GitUrl, options: SshTransportOptions = {}) {
    if (url.scheme !== 'ssh') {
      throw new PackferryError(ErrorCode.Usage, `SshTransport needs an ssh URL, got ${url.scheme}`);
    }
    this.url = url;
    this.options = options;
    this.displayUrl = displayUrl(url);
  }

  async open(service: GitServiceName, options: OpenServiceOptions): Promise<ServiceSession> {
    const { signal } = options;
    throwIfAborted(signal);
    const env = this.options.env ?? process.env;
    const program = selectSshProgram(env, this.options);
    const variant = program.variant === 'auto' ? await this.probe(program, env, options) : program.variant;
    throwIfAborted(signal);
    const invocation = buildSshInvocation({
      program,
      variant,
      user: this.url.user,
      host: this.url.host,
      port: this.url.port,
      path: this.url.path,
      service,
      protocolVersion: options.protocolVersion,
      settings: {
        ...this.options,
        remoteProgram: service === 'git-upload-pack' ? this.options.uploadPack : this.options.receivePack,
      },
    });
    const childEnv: NodeJS.ProcessEnv = { ...env };
    for (const [key, value] of Object.entries(invocation.env)) {
      if (value === undefined) delete childEnv[key];
      else childEnv[key] = value;
    }
    // A process group of its own (setsid): an abort ends a wrapper script and
    // the ssh it started together, and ssh has no terminal to prompt on.
    const child = spawn(invocation.file, invocation.args, { stdio: ['pipe', 'pipe', 'pipe'], env: childEnv, detached: true });
    const { host, port } = this.url;
    const displayUrl = this.displayUrl;
    const session = new ProcessSession(child, {
      service,
      displayUrl,
      signal,
      onStderr: this.options.onStderr,
      maxStderrBytes: this.options.maxStderrBytes ?? DEFAULT_MAX_STDERR,
      killGraceMs: this.options.killGraceMs ?? DEFAULT_KILL_GRACE_MS,
      closeDrainBytes: this.options.closeDrainBytes ?? DEFAULT_CLOSE_DRAIN,
      processGroup: true,
      classify: (stderr, exit, phase) => classifySshFailure({ stderr, exit, phase, displayUrl, host, port, service }),
      spawnFailure: (err) =>
        new PackferryError(ErrorCode.TransportConnect, `could not run the ssh program ${JSON.stringify(program.command)}: ${err.message}`, {
          cause: err,
          hint: 'install the OpenSSH client (ssh), or set GIT_SSH_COMMAND',
          details: { url: displayUrl },
        }),
      hangupExit: (exit) => exit.signal !== null || exit.code === SSH_OWN_FAILURE,
    });
    await session.start();
    return session;
  }

  /**
   * Git's probe for an unknown ssh program (fill_ssh_args): run
   * `<ssh> -G <options> [user@]host`; success means OpenSSH, failure 'simple'.
   */
  private probe(program: SshProgram, env: NodeJS.ProcessEnv, options: OpenServiceOptions): Promise<Exclude<SshVariant, 'auto'>> {
    this.probed ??= new Promise((resolve) => {
      const args = probeArguments(this.url.user, this.url.host, this.url.port, options.protocolVersion, this.options.ipVersion);
      const { file, args: argv } = programInvocation(program, args);
      const child = spawn(file, argv, { stdio: 'ignore', env });
      child.once('error', () => resolve('simple'));
      child.once('exit', (code) => resolve(code === 0 ? 'ssh' : 'simple'));
    });
    return this.probed;
  }
}


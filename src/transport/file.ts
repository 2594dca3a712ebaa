// Local repositories (paths and file:// URLs): like Git, run
// git-upload-pack / git-receive-pack on the path and talk over their
// stdin/stdout (gitprotocol-pack, "Transports"; protocol v2 is asked for with
// GIT_PROTOCOL=version=2, gitprotocol-v2 "SSH and File Transport").
import { spawn } from 'node:child_process';
import { throwIfAborted } from '../core/abort.js';
import { PackferryError, ErrorCode } from '../core/errors.js';
import { DEFAULT_CLOSE_DRAIN, DEFAULT_KILL_GRACE_MS, DEFAULT_MAX_STDERR, ProcessSession, type ProcessExit } from './process.js';
import { readLocalRefs, type LocalRefs } from './local-refs.js';
import type { GitServiceName, OpenServiceOptions, ServiceSession, Transport } from './types.js';

export interface FileTransportOptions {
  /** The git program (default "git"). */
  gitProgram?: string;
  env?: NodeJS.ProcessEnv;
}

/** What a local git service's failure means, from its stderr. */
export function classifyGitFailure(stderr: string, exit: ProcessExit, displayUrl: string): PackferryError {
  const text = stderr.trim();
  const last = text.split('\n').slice(-3).join('\n');
  if (/does not appear to be a git repository|not a git repository|No such file or directory/i.test(text)) {
    return new PackferryError(ErrorCode.NotFound, `repository not found: ${displayUrl}`, {
      details: { url: displayUrl, stderr: last },
      hint: 'check the path; a local source or target must be an existing Git repository',
    });
  }
  const how = exit.signal ? `was killed by ${exit.signal}` : `exited with status ${exit.code}`;
  return new PackferryError(ErrorCode.RemoteError, `git service for ${displayUrl} ${how}${last ? `: ${last}` : ''}`, {
    details: { url: displayUrl, code: exit.code, signal: exit.signal, stderr: last },
  });
}

export class FileTransport implements Transport {
  readonly displayUrl: string;

  constructor(
    readonly path: string,
    private readonly options: FileTransportOptions = {},
  ) {
    this.displayUrl = path;
  }

  peekRefs(): Promise<LocalRefs | undefined> {
    return readLocalRefs(this.path);
  }

  async open(service: GitServiceName, options: OpenServiceOptions): Promise<ServiceSession> {
    throwIfAborted(options.signal);
    const env: NodeJS.ProcessEnv = { ...process.env, ...this.options.env };
    if (options.protocolVersion > 0) env.GIT_PROTOCOL = `version=${options.protocolVersion}`;
    else delete env.GIT_PROTOCOL;
    const program = this.options.gitProgram ?? 'git';
    const sub = service === 'git-upload-pack' ? 'upload-pack' : 'receive-pack';
    const displayUrl = this.displayUrl;
    // "--" keeps a path that starts with "-" from being read as an option.
    const child = spawn(program, [sub, '--', this.path], { env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    const session = new ProcessSession(child, {
      service,
      displayUrl,
      signal: options.signal,
      onStderr: undefined,
      maxStderrBytes: DEFAULT_MAX_STDERR,
      killGraceMs: DEFAULT_KILL_GRACE_MS,
      closeDrainBytes: DEFAULT_CLOSE_DRAIN,
      processGroup: true,
      classify: (stderr, exit) => classifyGitFailure(stderr, exit, displayUrl),
      spawnFailure: (err) =>
        new PackferryError(ErrorCode.TransportConnect, `could not run ${JSON.stringify(program)}: ${err.message}`, {
          cause: err,
          hint: 'is git installed and on PATH?',
        }),
      // Hanging up on unread output kills git with SIGPIPE.
      hangupExit: (exit) => exit.signal !== null,
    });
    await session.start();
    return session;
  }
}

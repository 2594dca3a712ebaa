// Local repositories (paths and file:// URLs): like Git, run
// git-upload-pack / git-receive-pack on the path and talk over their
// stdin/stdout (gitprotocol-pack, "Transports"; protocol v2 is asked for with
// GIT_PROTOCOL=version=2).
import { spawn } from 'node:child_process';
import { PackferryError, ErrorCode } from '../core/errors.js';
import { ProcessSession, type ProcessErrorClassifier } from './process.js';
import type { GitServiceName, OpenServiceOptions, ServiceSession, Transport } from './types.js';

export interface FileTransportOptions {
  /** The git program (default "git"). */
  gitProgram?: string;
  env?: NodeJS.ProcessEnv;
}

export const classifyGitFailure: ProcessErrorClassifier = (stderr, exit) => {
  const text = stderr.trim();
  const last = text.split('\n').slice(-3).join('\n');
  if (/does not appear to be a git repository|not a git repository|No such file or directory/i.test(text)) {
    return new PackferryError(ErrorCode.NotFound, `repository not found: ${last}`, { details: { stderr: last } });
  }
  if (exit.code === 127 && /ENOENT|not found/i.test(text)) {
    return new PackferryError(ErrorCode.TransportConnect, `cannot run git: ${last}`, { hint: 'is git installed and on PATH?' });
  }
  const how = exit.signal ? `was killed by ${exit.signal}` : `exited with status ${exit.code}`;
  return new PackferryError(ErrorCode.RemoteError, `remote service ${how}${last ? `: ${last}` : ''}`, {
    details: { code: exit.code, signal: exit.signal, stderr: last },
  });
};

export class FileTransport implements Transport {
  readonly displayUrl: string;

  constructor(
    readonly path: string,
    private readonly options: FileTransportOptions = {},
  ) {
    this.displayUrl = path;
  }

  async open(service: GitServiceName, options: OpenServiceOptions): Promise<ServiceSession> {
    const env: NodeJS.ProcessEnv = { ...process.env, ...this.options.env };
    if (options.protocolVersion > 0) env.GIT_PROTOCOL = `version=${options.protocolVersion}`;
    else delete env.GIT_PROTOCOL;
    const sub = service === 'git-upload-pack' ? 'upload-pack' : 'receive-pack';
    // "--" keeps a path that starts with "-" from being read as an option.
    const child = spawn(this.options.gitProgram ?? 'git', [sub, '--', this.path], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    return new ProcessSession(child, classifyGitFailure, options.signal);
  }
}

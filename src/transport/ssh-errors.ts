// What went wrong, from what ssh and the remote Git said on stderr and how
// the process ended. Git itself only prints the stderr and "fatal: Could not
// read from remote repository" (connect.c, die_initial_contact); packferry
// turns the well-known messages into stable error codes with a hint.
//
// Two phases:
//  - connecting: no byte of the service's output has arrived yet. ssh's own
//    messages (host key, authentication, connection) and the remote Git's
//    "does not appear to be a git repository" are told apart here;
//  - talking: the advertisement had started. If ssh itself failed (exit 255,
//    or killed by a signal) the connection was lost: ERR_TRANSPORT_INTERRUPTED.
//    If the remote program failed (ssh passes on its exit status), ERR_REMOTE.
import { ErrorCode, PackferryError } from '../core/errors.js';

export type SshPhase = 'connecting' | 'talking';

export interface SshExit {
  /** Exit status, or null when the process was killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SshFailureContext {
  /** What stderr said (possibly only its tail). */
  stderr: string;
  exit: SshExit;
  phase: SshPhase;
  /** For messages: the remote, without credentials. */
  displayUrl: string;
  /** For messages and hints. */
  host?: string;
  port?: number;
  service?: string;
}

/** ssh's status for its own errors (as opposed to the remote command's status). */
export const SSH_OWN_FAILURE = 255;

interface Rule {
  code: ErrorCode;
  pattern: RegExp;
  summary: string;
  hint: (ctx: SshFailureContext) => string | undefined;
}

function keyscanCommand(ctx: SshFailureContext): string {
  const host = ctx.host ?? 'HOST';
  return ctx.port !== undefined ? `ssh-keyscan -p ${ctx.port} ${host}` : `ssh-keyscan ${host}`;
}

/** Rules for the connecting phase, most specific first. */
const CONNECTING_RULES: readonly Rule[] = [
  {
    code: ErrorCode.SshHostKey,
    pattern:
      /REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed|No \S+ host key is known for|host key for .* has changed/i,
    summary: 'ssh host key verification failed',
    hint: (ctx) =>
      `check the server's host key fingerprint out of band, then add it to known_hosts (${keyscanCommand(ctx)} >> ~/.ssh/known_hosts), or pass --ssh-known-hosts FILE`,
  },
  {
    code: ErrorCode.TransportAuth,
    pattern: /Permission denied \((?:publickey|password|keyboard-interactive|gssapi|hostbased)|Too many authentication failures/,
    summary: 'ssh authentication failed',
    hint: () => 'pass the private key with --ssh-key FILE or load it into ssh-agent (ssh-add), and check that the server has its public key',
  },
  {
    code: ErrorCode.TransportConnect,
    pattern:
      /Could not resolve hostname|Connection refused|Connection timed out|Operation timed out|No route to host|Network is unreachable|Connection reset by peer|kex_exchange_identification|Connection closed by \S+ port \d+/,
    summary: 'could not connect',
    hint: () => 'check the host name and port, and that the server is reachable from here',
  },
  {
    code: ErrorCode.RemoteError,
    // The remote shell could not find the program: "bash: line 1: git-upload-pack: command not found", "sh: 1: git-upload-pack: not found".
    pattern: /\bgit[-\w]*: (?:command )?not found\s*$/m,
    summary: 'the server has no such Git program',
    hint: () => 'is Git installed on the server, and on the PATH of non-interactive ssh sessions? (--upload-pack / --receive-pack name its path)',
  },
  {
    code: ErrorCode.NotFound,
    pattern: /does not appear to be a git repository|[Rr]epository not found|could not be found|not found/,
    summary: 'repository not found',
    hint: () => 'check the path: without a leading / it is relative to the login home on the server',
  },
];

/** The last `lines` non-empty lines of stderr, without CRs. */
export function stderrTail(stderr: string, lines = 8): string {
  return stderr
    .replace(/\r/g, '')
    .split('\n')
    .map((l) => l.trimEnd())
    .filter((l) => l !== '')
    .slice(-lines)
    .join('\n');
}

function describeExit(exit: SshExit): string {
  return exit.signal !== null ? `killed by ${exit.signal}` : `exit status ${exit.code}`;
}

/** Turns a failed ssh process into the most specific PackferryError. */
export function classifySshFailure(ctx: SshFailureContext): PackferryError {
  const tail = stderrTail(ctx.stderr);
  const details = {
    url: ctx.displayUrl,
    exitCode: ctx.exit.code,
    signal: ctx.exit.signal,
    phase: ctx.phase,
    stderr: tail,
    ...(ctx.service !== undefined ? { service: ctx.service } : {}),
  };
  const said = tail === '' ? '' : `\n${tail}`;
  if (ctx.phase === 'connecting') {
    for (const rule of CONNECTING_RULES) {
      if (rule.pattern.test(ctx.stderr)) {
        return new PackferryError(rule.code, `${rule.summary}: ${ctx.displayUrl}${said}`, {
          hint: rule.hint(ctx),
          details,
        });
      }
    }
    return new PackferryError(
      ErrorCode.RemoteError,
      `could not read from remote repository ${ctx.displayUrl} (ssh ${describeExit(ctx.exit)})${said}`,
      { details },
    );
  }
  if (ctx.exit.signal !== null || ctx.exit.code === SSH_OWN_FAILURE || ctx.exit.code === null) {
    return new PackferryError(
      ErrorCode.TransportInterrupted,
      `the ssh connection to ${ctx.displayUrl} was lost mid-stream (ssh ${describeExit(ctx.exit)})${said}`,
      { details },
    );
  }
  return new PackferryError(
    ErrorCode.RemoteError,
    `the remote ${ctx.service ?? 'service'} failed (${describeExit(ctx.exit)}): ${ctx.displayUrl}${said}`,
    { details },
  );
}

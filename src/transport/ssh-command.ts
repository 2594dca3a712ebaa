// The ssh command line, built as Git builds it: connect.c (git_connect,
// fill_ssh_args, push_ssh_options, determine_ssh_variant, Git 2.39) and
// git(1) "ENVIRONMENT VARIABLES": GIT_SSH_COMMAND, GIT_SSH, GIT_SSH_VARIANT;
// git-config(1) core.sshCommand and ssh.variant.
//
// Which program: GIT_SSH_COMMAND (run by the shell, arguments appended), else
// core.sshCommand (the `sshCommand` option here), else GIT_SSH (a program,
// no shell), else `ssh`. Which variant of ssh it is decides the arguments
// (GIT_SSH_VARIANT / ssh.variant, else the program's base name: ssh, plink,
// tortoiseplink; anything else is "auto", which Git settles by running
// `<ssh> -G ...` and treating success as OpenSSH; ssh.ts does that probe).
//
// The remote command is gitprotocol-pack(5), "Transports" / "SSH Transport":
// `git-upload-pack '<path>'`, the path quoted as Git's sq_quote does.
//
// To the arguments Git gives OpenSSH (-o SendEnv=GIT_PROTOCOL for protocol
// v1/v2, -p PORT) packferry adds, for OpenSSH only: -o BatchMode=yes (never
// prompt: packferry runs unattended), -o StrictHostKeyChecking=yes (never
// accept an unknown host key silently), -i KEY -o IdentitiesOnly=yes, and
// -o UserKnownHostsFile=FILE. OpenSSH keeps the first value it reads for an
// option, so the user's own `-o` options (in GIT_SSH_COMMAND or `sshOptions`)
// win over these, and these win over ~/.ssh/config.
import { basename } from 'node:path';
import { ErrorCode, PackferryError } from '../core/errors.js';
import type { GitServiceName } from './types.js';

/** Git's ssh variants (ssh.variant). */
export type SshVariant = 'auto' | 'ssh' | 'simple' | 'plink' | 'putty' | 'tortoiseplink';
const VARIANTS: readonly SshVariant[] = ['auto', 'ssh', 'simple', 'plink', 'putty', 'tortoiseplink'];

/** Host-key policy passed as StrictHostKeyChecking (OpenSSH only). */
export type StrictHostKeyChecking = 'yes' | 'accept-new' | 'no';

/** The settings that shape the ssh command line (all optional). */
export interface SshCommandSettings {
  /** Private key to use, and only it: `-i FILE -o IdentitiesOnly=yes`. */
  identityFile?: string;
  /** known_hosts file to check the server's key against: `-o UserKnownHostsFile=FILE`. */
  knownHostsFile?: string;
  /** Default 'yes'. 'no' is for tests and throwaway hosts only. */
  strictHostKeyChecking?: StrictHostKeyChecking;
  /** Extra OpenSSH options, "Key=Value" each, passed as `-o` before packferry's own. */
  sshOptions?: readonly string[];
  /** `-o ConnectTimeout=N` (seconds). */
  connectTimeoutSeconds?: number;
  /** Force IPv4 or IPv6 (Git's --ipv4/--ipv6): `-4` / `-6`. */
  ipVersion?: 4 | 6;
  /** Like core.sshCommand: used when GIT_SSH_COMMAND is not set. */
  sshCommand?: string;
  /** Like ssh.variant: used when GIT_SSH_VARIANT is not set. */
  sshVariant?: SshVariant;
  /** The program to run on the server (git's --upload-pack / --receive-pack); default the service's name. */
  remoteProgram?: string;
}

/** How to start the ssh program: a file and its arguments, run with or without a shell. */
export interface SshProgram {
  /** The command text (GIT_SSH_COMMAND / core.sshCommand) or program (GIT_SSH / ssh). */
  readonly command: string;
  /** True when `command` is shell text, run as `sh -c '<command> "$@"'`. */
  readonly shell: boolean;
  /** The variant as configured or guessed from the name ('auto': probe it). */
  readonly variant: SshVariant;
}

export interface SshInvocation {
  /** What spawn() runs. */
  readonly file: string;
  readonly args: readonly string[];
  /** Variables to set (GIT_PROTOCOL) or remove (undefined) in the child's environment. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** The arguments given to the ssh program (without the shell wrapping), for logs and tests. */
  readonly sshArgs: readonly string[];
}

/** Git's sq_quote_buf: wraps in single quotes; ' becomes '\'' and ! becomes '\!'. */
export function sqQuote(text: string): string {
  return `'${text.replace(/['!]/g, (c) => `'\\${c}'`)}'`;
}

/** Git's split_cmdline, enough to find the program's name: words split on blanks, with '...' and "..." quoting and backslash escapes. */
export function splitCommandLine(text: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote === undefined && /\s/.test(c)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      continue;
    }
    inWord = true;
    if (c === quote) quote = undefined;
    else if (quote === undefined && (c === '"' || c === "'")) quote = c;
    else if (c === '\\' && quote !== "'" && i + 1 < text.length) word += text[++i];
    else word += c;
  }
  if (quote !== undefined) {
    throw new PackferryError(ErrorCode.Usage, `unclosed quote in ssh command: ${text}`);
  }
  if (inWord) words.push(word);
  return words;
}

function parseVariant(value: string, source: string): SshVariant {
  if ((VARIANTS as readonly string[]).includes(value)) return value as SshVariant;
  throw new PackferryError(ErrorCode.Usage, `${source}: unknown ssh variant '${value}' (${VARIANTS.join(', ')})`);
}

/** Git's determine_ssh_variant, from the program's base name. */
export function variantFromName(program: string): SshVariant {
  const name = basename(program).toLowerCase();
  if (name === 'ssh' || name === 'ssh.exe') return 'ssh';
  if (name === 'plink' || name === 'plink.exe') return 'plink';
  if (name === 'tortoiseplink' || name === 'tortoiseplink.exe') return 'tortoiseplink';
  return 'auto';
}

/** Picks the ssh program as Git's fill_ssh_args does, from the environment and the settings. */
export function selectSshProgram(env: NodeJS.ProcessEnv, settings: SshCommandSettings = {}): SshProgram {
  const override =
    env.GIT_SSH_VARIANT !== undefined && env.GIT_SSH_VARIANT !== ''
      ? parseVariant(env.GIT_SSH_VARIANT, 'GIT_SSH_VARIANT')
      : settings.sshVariant !== undefined
        ? parseVariant(settings.sshVariant, 'sshVariant')
        : 'auto';
  const commandText =
    env.GIT_SSH_COMMAND !== undefined && env.GIT_SSH_COMMAND !== '' ? env.GIT_SSH_COMMAND : settings.sshCommand;
  if (commandText !== undefined && commandText !== '') {
    const first = splitCommandLine(commandText)[0];
    const variant = override !== 'auto' ? override : first === undefined ? 'auto' : variantFromName(first);
    return { command: commandText, shell: true, variant };
  }
  const program = env.GIT_SSH !== undefined && env.GIT_SSH !== '' ? env.GIT_SSH : 'ssh';
  return { command: program, shell: false, variant: override !== 'auto' ? override : variantFromName(program) };
}

/** Escapes OpenSSH's %-tokens in a file name given through -i or -o. */
function escapeTokens(path: string): string {
  return path.replace(/%/g, '%%');
}

/** An -o value that OpenSSH splits on whitespace (UserKnownHostsFile takes several files): quote it. */
function quoteOptionValue(value: string): string {
  if (!/[\s"'\\]/.test(value)) return value;
  if (value.includes('"')) {
    throw new PackferryError(ErrorCode.Usage, `ssh option value may not contain '"': ${value}`);
  }
  return `"${value}"`;
}

function optionKey(option: string): string {
  const m = /^\s*([A-Za-z0-9]+)\s*[=\s]/.exec(option);
  return (m?.[1] ?? option).toLowerCase();
}

/**
 * Git's push_ssh_options: -o SendEnv=GIT_PROTOCOL (OpenSSH, protocol v1/v2),
 * -4/-6, -batch (TortoisePlink), the port (-p, or -P for PuTTY's tools).
 * `variant` must be settled (not 'auto').
 */
export function gitSshOptions(
  variant: Exclude<SshVariant, 'auto'>,
  port: number | undefined,
  protocolVersion: 0 | 1 | 2,
  ipVersion?: 4 | 6,
): string[] {
  const args: string[] = [];
  if (variant === 'ssh' && protocolVersion > 0) args.push('-o', 'SendEnv=GIT_PROTOCOL');
  if (ipVersion !== undefined) {
    if (variant === 'simple') throw new PackferryError(ErrorCode.Usage, `ssh variant 'simple' does not support -${ipVersion}`);
    args.push(`-${ipVersion}`);
  }
  if (variant === 'tortoiseplink') args.push('-batch');
  if (port !== undefined) {
    if (variant === 'simple') {
      throw new PackferryError(ErrorCode.Usage, "ssh variant 'simple' does not support setting port", {
        hint: 'set GIT_SSH_VARIANT=ssh if the command is OpenSSH, or put the port in ~/.ssh/config',
      });
    }
    args.push(variant === 'ssh' ? '-p' : '-P', String(port));
  }
  return args;
}

/**
 * packferry's additions (see the module header): the user's -o options, then
 * BatchMode, StrictHostKeyChecking, ConnectTimeout, the identity file and the
 * known_hosts file, each unless the user's options already set it. Other
 * variants get only what they understand (-i, and -batch for plink/putty);
 * OpenSSH-only settings are ERR_USAGE there.
 */
export function packferrySshOptions(variant: Exclude<SshVariant, 'auto'>, settings: SshCommandSettings = {}): string[] {
  const args: string[] = [];
  if (variant === 'ssh') {
    const user = settings.sshOptions ?? [];
    const given = new Set(user.map(optionKey));
    for (const option of user) args.push('-o', option);
    const add = (key: string, value: string): void => {
      if (!given.has(key.toLowerCase())) args.push('-o', `${key}=${value}`);
    };
    add('BatchMode', 'yes');
    add('StrictHostKeyChecking', settings.strictHostKeyChecking ?? 'yes');
    if (settings.connectTimeoutSeconds !== undefined) add('ConnectTimeout', String(settings.connectTimeoutSeconds));
    if (settings.identityFile !== undefined) {
      args.push('-i', escapeTokens(settings.identityFile));
      add('IdentitiesOnly', 'yes');
    }
    if (settings.knownHostsFile !== undefined) {
      add('UserKnownHostsFile', quoteOptionValue(escapeTokens(settings.knownHostsFile)));
    }
    return args;
  }
  if (settings.sshOptions !== undefined && settings.sshOptions.length > 0) {
    throw new PackferryError(ErrorCode.Usage, `ssh options (-o) need OpenSSH; the ssh variant is '${variant}'`);
  }
  if (settings.knownHostsFile !== undefined) {
    throw new PackferryError(ErrorCode.Usage, `a known_hosts file needs OpenSSH; the ssh variant is '${variant}'`);
  }
  if (settings.identityFile !== undefined) {
    if (variant === 'simple') {
      throw new PackferryError(ErrorCode.Usage, "ssh variant 'simple' does not support an identity file");
    }
    args.push('-i', settings.identityFile);
  }
  if (variant === 'plink' || variant === 'putty') args.push('-batch');
  return args;
}

/** The remote command: `git-upload-pack '<path>'` (gitprotocol-pack "SSH Transport"). */
export function remoteCommand(service: GitServiceName, path: string, program?: string): string {
  return `${program ?? service} ${sqQuote(path)}`;
}

/** The "[user@]host" argument, as Git passes it (an IPv6 address without brackets). */
export function sshDestination(user: string | undefined, host: string): string {
  return user !== undefined ? `${user}@${host}` : host;
}

/**
 * Wraps the ssh program and its arguments for spawn(): shell text runs as
 * `sh -c '<command> "$@"' '<command>' args...` (Git's prepare_shell_cmd).
 */
export function programInvocation(program: SshProgram, sshArgs: readonly string[]): { file: string; args: string[] } {
  if (!program.shell) return { file: program.command, args: [...sshArgs] };
  return { file: '/bin/sh', args: ['-c', `${program.command} "$@"`, program.command, ...sshArgs] };
}

/**
 * The whole invocation for one service: program, arguments, environment.
 * `variant` is the settled variant (after a probe for 'auto').
 * Protocol v2 is never asked of git-receive-pack (Git falls back to v0 for
 * push, as connect.c does).
 */
export function buildSshInvocation(params: {
  program: SshProgram;
  variant: Exclude<SshVariant, 'auto'>;
  user: string | undefined;
  host: string;
  port: number | undefined;
  path: string;
  service: GitServiceName;
  protocolVersion: 0 | 1 | 2;
  settings?: SshCommandSettings;
}): SshInvocation {
  const { program, variant, service, settings = {} } = params;
  const version = service === 'git-receive-pack' && params.protocolVersion === 2 ? 0 : params.protocolVersion;
  const sshArgs = [
    ...gitSshOptions(variant, params.port, version, settings.ipVersion),
    ...packferrySshOptions(variant, settings),
    sshDestination(params.user, params.host),
    remoteCommand(service, params.path, settings.remoteProgram),
  ];
  const env: Record<string, string | undefined> = {
    GIT_PROTOCOL: variant === 'ssh' && version > 0 ? `version=${version}` : undefined,
  };
  const { file, args } = programInvocation(program, sshArgs);
  return { file, args, env, sshArgs };
}

/** The arguments of Git's variant probe: `<ssh> -G <Git's options as for OpenSSH> [user@]host`. */
export function probeArguments(
  user: string | undefined,
  host: string,
  port: number | undefined,
  protocolVersion: 0 | 1 | 2,
  ipVersion?: 4 | 6,
): string[] {
  return ['-G', ...gitSshOptions('ssh', port, protocolVersion, ipVersion), sshDestination(user, host)];
}

// Shared CLI plumbing: exit codes, argument parsing helpers, usage errors.
import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { PackferryError, ErrorCode, isPackferryError } from '../core/errors.js';
import { parseFsckSettings, parseSkipList, transferFsckOptions, type FsckLevel, type FsckMsgId, type FsckOptions } from '../core/fsck.js';
import type { S3Options } from '../store/open.js';

/** Exit codes: documented in docs/cli.md; scripts rely on them. */
export const ExitCode = {
  Ok: 0,
  /** The operation ran and found a problem (bad pack, failed verification, rejected ref). */
  Failure: 1,
  /** Bad command line. */
  Usage: 2,
  /** Something named on the command line does not exist. */
  NotFound: 3,
  /** A bug in packferry. */
  Internal: 70,
  /** Interrupted (SIGINT) or aborted. */
  Interrupted: 130,
} as const;

export class UsageError extends Error {
  constructor(
    message: string,
    readonly usage?: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

/** "90s", "30m", "2h", "1d", "500ms", or a number of seconds: milliseconds. */
export function parseDuration(text: string, option: string, usage: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) throw new UsageError(`${option} takes a duration such as 90s, 30m or 2h, not ${JSON.stringify(text)}`, usage);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h' | 'd'];
  return Math.round(Number(m[1]) * unit);
}

/** "4096", "512k", "64M", "4G" (powers of 1024, as Git's sizes): bytes, at least 1. */
export function parseByteSize(text: string, option: string, usage: string): number {
  const m = /^(\d+(?:\.\d+)?)([kmgt]i?b?)?$/i.exec(text.trim());
  const value = m === null ? NaN : Number(m[1]) * 1024 ** ' kmgt'.indexOf((m[2] ?? ' ')[0].toLowerCase());
  if (!(value >= 1) || !Number.isSafeInteger(Math.round(value))) throw new UsageError(`${option} takes a size such as 4096, 512k, 64M or 4G, not ${JSON.stringify(text)}`, usage);
  return Math.round(value);
}

/** A positive whole number. */
export function parseCount(text: string, option: string, usage: string): number {
  if (!/^[1-9]\d{0,8}$/.test(text.trim())) throw new UsageError(`${option} takes a positive whole number, not ${JSON.stringify(text)}`, usage);
  return Number(text);
}

/** node:util parseArgs, with unknown options reported as a usage error that shows the command's help. */
export function parseCommandArgs<T extends ParseArgsConfig['options']>(
  argv: string[],
  options: T,
  usage: string,
): { values: Record<string, string | boolean | string[] | boolean[] | undefined>; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
    return { values: values as Record<string, string | boolean | string[] | boolean[] | undefined>, positionals };
  } catch (err) {
    throw new UsageError((err as Error).message, usage);
  }
}

/** The --s3-* flags of the commands that write to a store (parseArgs declarations; read with s3OptionsFrom). */
export const S3_FLAGS = {
  's3-endpoint': { type: 'string' },
  's3-region': { type: 'string' },
  's3-path-style': { type: 'boolean' },
  's3-storage-class': { type: 'string' },
  's3-sse': { type: 'string' },
  's3-kms-key-id': { type: 'string' },
  's3-conditional-writes': { type: 'string' },
} as const;


/** The S3 options given by a command's --s3-* flags (those it declares); --s3-sse and --s3-conditional-writes are checked. */
export function s3OptionsFrom(values: Record<string, unknown>, usage: string): S3Options {
  const sse = values['s3-sse'] as string | undefined;
  if (sse !== undefined && sse !== 'AES256' && sse !== 'aws:kms') throw new UsageError('--s3-sse takes AES256 or aws:kms', usage);
  const conditional = values['s3-conditional-writes'] as string | undefined;
  if (conditional !== undefined && conditional !== 'auto' && conditional !== 'on' && conditional !== 'off') {
    throw new UsageError(`--s3-conditional-writes takes auto, on or off, not ${JSON.stringify(conditional)}`, usage);
  }
  return {
    conditionalWrites: conditional as S3Options['conditionalWrites'],
    endpoint: values['s3-endpoint'] as string | undefined,
    region: values['s3-region'] as string | undefined,
    forcePathStyle: values['s3-path-style'] === true ? true : undefined,
    storageClass: values['s3-storage-class'] as S3Options['storageClass'],
    serverSideEncryption: sse as S3Options['serverSideEncryption'],
    kmsKeyId: values['s3-kms-key-id'] as string | undefined,
  };
}

/** A subcommand's arguments: how many positionals, which options of the command's are its own. */
export interface SubcommandSpec {
  args: number;
  options: readonly string[];
  /** The usage error when the number of positionals is wrong. */
  usage: string;
}

/**
 * `COMMAND SUB [options] <args>`: which subcommand, and its options and
 * positionals. Every option of `options` is parsed; one that neither the
 * subcommand nor `shared` takes, an unknown subcommand or a wrong count of
 * arguments is a usage error.
 */
export function parseSubcommandArgs<T extends ParseArgsConfig['options']>(
  command: string,
  argv: string[],
  subcommands: Record<string, SubcommandSpec>,
  shared: readonly string[],
  options: T,
  usage: string,
): { sub: string; values: Record<string, string | boolean | string[] | boolean[] | undefined>; positionals: string[] } {
  const names = Object.keys(subcommands);
  const list = `${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}`;
  const [sub, ...rest] = argv;
  if (sub === undefined) throw new UsageError(`expected a subcommand: ${list}`, usage);
  const spec = Object.hasOwn(subcommands, sub) ? subcommands[sub] : undefined;
  if (spec === undefined) throw new UsageError(`unknown subcommand ${JSON.stringify(sub)} (${list})`, usage);
  const { values, positionals } = parseCommandArgs(rest, options, usage);
  for (const name of Object.keys(values)) {
    if (!spec.options.includes(name) && !shared.includes(name)) throw new UsageError(`--${name} is not an option of ${command} ${sub}`, usage);
  }
  if (positionals.length !== spec.args) throw new UsageError(spec.usage, usage);
  return { sub, values, positionals };
}

/** The repeatable `--fsck <msg-id>=<level>` / `--fsck skipList=<file>` flag (Git's receive.fsck.* settings), read and checked. */
export function fsckLevelsFrom(items: readonly string[] | undefined, usage: string): { levels: Partial<Record<FsckMsgId, FsckLevel>>; skipList?: Set<string> } {
  let parsed;
  try {
    parsed = parseFsckSettings(items ?? []);
  } catch (err) {
    if (isPackferryError(err, ErrorCode.Usage)) throw new UsageError(`--fsck: ${err.message}`, usage);
    throw err;
  }
  const skip = new Set<string>();
  for (const file of parsed.skipLists) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new PackferryError(ErrorCode.NotFound, `cannot read the skip list ${file}: ${(err as Error).message}`);
    }
    for (const oid of parseSkipList(text, file)) skip.add(oid);
  }
  return { levels: parsed.levels, skipList: parsed.skipLists.length > 0 ? skip : undefined };
}

/** Git's transfer checks (strict) as `--fsck` flags adjust them. */
export function fsckOptionsFrom(items: readonly string[] | undefined, usage: string): FsckOptions {
  const { levels, skipList } = fsckLevelsFrom(items, usage);
  return transferFsckOptions(levels, skipList);
}

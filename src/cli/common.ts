// Shared CLI plumbing: exit codes, argument parsing helpers, usage errors.
import { parseArgs, type ParseArgsConfig } from 'node:util';

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

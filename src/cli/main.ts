// The `packferry` command: parses arguments, wires the layers together, and
// turns errors into messages and exit codes. The only place that sees every layer.
import { PackferryError, ErrorCode } from '../core/errors.js';
import { commands, type CommandEntry } from './commands.js';
import { ExitCode, UsageError } from './common.js';

const VERSION = '0.1.0';

function globalHelp(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  const lines = commands.map((c) => `   ${c.name.padEnd(width)}   ${c.summary}`);
  return [
    'usage: packferry <command> [<args>]',
    '',
    'Mirror, store, serve and replicate Git repositories.',
    '',
    'Commands:',
    ...lines,
    '',
    "Run 'packferry <command> --help' for a command's options.",
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '-h' || name === '--help' || name === 'help') {
    const topic = name === 'help' ? commands.find((c) => c.name === rest[0]) : undefined;
    console.log(topic ? (await topic.load()).help : globalHelp());
    return name === undefined ? ExitCode.Usage : ExitCode.Ok;
  }
  if (name === '--version' || name === 'version') {
    console.log(`packferry ${VERSION}`);
    return ExitCode.Ok;
  }
  const entry: CommandEntry | undefined = commands.find((c) => c.name === name);
  if (entry === undefined) {
    console.error(`packferry: '${name}' is not a packferry command. See 'packferry --help'.`);
    return ExitCode.Usage;
  }
  const command = await entry.load();
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(command.help);
    return ExitCode.Ok;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    return reportError(err, rest.includes('--json'));
  }
}

function reportError(err: unknown, json: boolean): number {
  if (err instanceof UsageError) {
    console.error(`usage error: ${err.message}`);
    if (err.usage) console.error(err.usage);
    return ExitCode.Usage;
  }
  if (err instanceof PackferryError) {
    if (json) console.log(JSON.stringify({ ok: false, error: err.toJSON() }));
    console.error(`fatal: ${err.message}`);
    if (err.hint) console.error(`hint: ${err.hint}`);
    return exitCodeFor(err.code);
  }
  console.error(`fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  return ExitCode.Internal;
}

function exitCodeFor(code: ErrorCode): number {
  switch (code) {
    case ErrorCode.Usage:
      return ExitCode.Usage;
    case ErrorCode.Internal:
      return ExitCode.Internal;
    case ErrorCode.Aborted:
      return ExitCode.Interrupted;
    case ErrorCode.NotFound:
      return ExitCode.NotFound;
    default:
      return ExitCode.Failure;
  }
}

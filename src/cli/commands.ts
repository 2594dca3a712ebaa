// The command table. Each command's module exports a Command.
import { mirrorCommand } from './mirror-command.js';
import { indexPackCommand, verifyPackCommand } from './pack-commands.js';

export interface Command {
  readonly name: string;
  readonly summary: string;
  readonly help: string;
  run(argv: string[]): Promise<number>;
}

export const commands: Command[] = [mirrorCommand, indexPackCommand, verifyPackCommand];

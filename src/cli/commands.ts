// The command table. Commands are loaded when run, so that `packferry
// index-pack` does not pay for loading the HTTP client, and --help is quick.

export interface Command {
  readonly name: string;
  readonly summary: string;
  readonly help: string;
  run(argv: string[]): Promise<number>;
}

export interface CommandEntry {
  readonly name: string;
  readonly summary: string;
  load(): Promise<Command>;
}

export const commands: CommandEntry[] = [
  {
    name: 'mirror',
    summary: 'Mirror a repository to one or more targets, streaming only the missing objects',
    load: async () => (await import('./mirror-command.js')).mirrorCommand,
  },
  {
    name: 'store',
    summary: 'Look at, verify and compact a repository in a packferry store',
    load: async () => (await import('./store-command.js')).storeCommand,
  },
  {
    name: 'ca',
    summary: 'A certificate authority for a cluster: CA, node and client certificates with rights',
    load: async () => (await import('./ca-command.js')).caCommand,
  },
  {
    name: 'token',
    summary: 'Create, list and revoke access tokens for packferry serve',
    load: async () => (await import('./token-command.js')).tokenCommand,
  },
  {
    name: 'serve',
    summary: 'Serve the repositories of a store over Git smart HTTP(S)',
    load: async () => (await import('./serve-command.js')).serveCommand,
  },
  {
    name: 'repo',
    summary: 'Create, list, edit and remove repositories of a store or server',
    load: async () => (await import('./repo-command.js')).repoCommand,
  },
  {
    name: 'index-pack',
    summary: 'Build the index for a pack (as git index-pack)',
    load: async () => (await import('./pack-commands.js')).indexPackCommand,
  },
  {
    name: 'verify-pack',
    summary: 'Check packs against their indexes (as git verify-pack)',
    load: async () => (await import('./pack-commands.js')).verifyPackCommand,
  },
];

// Where `index-pack --fix-thin` finds missing bases: the repository's object
// directory, located as Git does (--git-dir, $GIT_DIR, ./.git, or a bare
// repository in the current directory).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PackferryError, ErrorCode } from '../core/errors.js';
import type { BaseResolver } from '../pack/indexer.js';
import { ObjectDirectory } from '../store/object-directory.js';

export async function openObjectDirectoryResolver(gitDir?: string): Promise<{ resolve: BaseResolver; close(): void }> {
  const dir = gitDir ?? process.env.GIT_DIR ?? (existsSync('.git') ? '.git' : existsSync(join('.', 'objects')) ? '.' : undefined);
  if (dir === undefined) {
    throw new PackferryError(ErrorCode.NotFound, 'not in a Git repository: --fix-thin needs one for the missing bases', {
      hint: 'run it inside the repository, or pass --git-dir',
    });
  }
  const objects = ObjectDirectory.open(dir);
  return { resolve: async (oid) => objects.tryRead(oid), close: () => objects.close() };
}

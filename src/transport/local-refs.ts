// Reading a local repository's refs straight from its files
// (gitrepository-layout: HEAD, packed-refs, refs/), without starting
// git-upload-pack or git-receive-pack — what a mirror needs to find out that
// nothing changed, at a fraction of a process start. Anything unusual
// (reftable, linked worktrees, hidden refs, unreadable files) makes it give
// up, and the caller asks the real service instead.
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { AdvertisedRef } from '../protocol/advertisement.js';

export interface LocalRefs {
  refs: AdvertisedRef[];
  /** The branch HEAD names. */
  head?: string;
}

const OID = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

async function isFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isFile() ?? false;
}

async function isDir(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isDirectory() ?? false;
}

/** The Git directory of a repository path (bare, or a work tree with .git), or undefined. */
async function gitDirOf(path: string): Promise<string | undefined> {
  if ((await isFile(join(path, 'HEAD'))) && (await isDir(join(path, 'objects')))) return path;
  const dotGit = join(path, '.git');
  if (await isDir(dotGit)) return dotGit;
  return undefined;
}

export async function readLocalRefs(path: string): Promise<LocalRefs | undefined> {
  try {
    const gitDir = await gitDirOf(resolve(path));
    if (gitDir === undefined || (await isFile(join(gitDir, 'commondir')))) return undefined;
    const config = (await readFile(join(gitDir, 'config'), 'utf8').catch(() => '')).toLowerCase();
    // Ref formats and hidden refs that only Git itself knows how to honour.
    if (config.includes('refstorage') || config.includes('hiderefs')) return undefined;
    const values = new Map<string, string>();
    const peeled = new Map<string, string>();
    const symrefs = new Map<string, string>();
    const packed = await readFile(join(gitDir, 'packed-refs'), 'utf8').catch(() => '');
    let last: string | undefined;
    for (const line of packed.split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      if (line.startsWith('^')) {
        if (last === undefined || !OID.test(line.slice(1))) return undefined;
        peeled.set(last, line.slice(1));
        continue;
      }
      const sp = line.indexOf(' ');
      const oid = line.slice(0, sp);
      if (sp < 0 || !OID.test(oid)) return undefined;
      last = line.slice(sp + 1);
      values.set(last, oid);
    }
    const walk = async (dir: string, prefix: string): Promise<boolean> => {
      for (const e of await readdir(dir, { withFileTypes: true })) {
        const name = `${prefix}${e.name}`;
        if (e.isDirectory()) {
          if (!(await walk(join(dir, e.name), `${name}/`))) return false;
        } else if (e.isFile()) {
          if (e.name.endsWith('.lock') || e.name.startsWith('.')) continue;
          const text = (await readFile(join(dir, e.name), 'utf8')).trim();
          if (text.startsWith('ref: ')) symrefs.set(name, text.slice(5));
          else if (OID.test(text)) {
            values.set(name, text);
            peeled.delete(name); // a loose ref overrides the packed one and its peeled value
          } else return false;
        } else {
          return false;
        }
      }
      return true;
    };
    if ((await isDir(join(gitDir, 'refs'))) && !(await walk(join(gitDir, 'refs'), 'refs/'))) return undefined;
    for (const [name, target] of symrefs) {
      const oid = values.get(target);
      if (oid !== undefined) values.set(name, oid);
    }
    const headText = (await readFile(join(gitDir, 'HEAD'), 'utf8')).trim();
    const head = headText.startsWith('ref: ') ? headText.slice(5) : undefined;
    const refs: AdvertisedRef[] = [...values]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([name, oid]) => ({ name, oid, peeled: peeled.get(name), symrefTarget: symrefs.get(name) }));
    return { refs, head };
  } catch {
    return undefined;
  }
}

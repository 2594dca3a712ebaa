// Repositories with Git LFS content, made by the real `git lfs` client and
// pushed over HTTP (with Basic auth) to the test LFS server
// (test/support/lfs-server.ts), for the LFS tests.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { git, gitAsync, gitEnv } from '../support/git.js';
import type { LfsServer } from '../support/lfs-server.js';

export const AUTH = { username: 'alice', password: 's3cret pass' };

export interface LfsFile {
  path: string;
  content: Buffer;
  oid: string;
}

export interface LfsRepo {
  name: string;
  /** The working repository the commits are made in. */
  work: string;
  /** The bare repository the server serves. */
  bare: string;
  /** The repository URL with credentials. */
  url: string;
  /** Every LFS file committed so far, by path (latest content). */
  files: Map<string, LfsFile>;
  /** Every LFS object ever committed, by oid. */
  objects: Map<string, Buffer>;
}

export const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Deterministic incompressible bytes. */
export function bytes(size: number, seed: string): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0, off = 0; off < size; i++, off += 32) createHash('sha256').update(`${seed}:${i}`).digest().copy(out, off);
  return out;
}

/** git with HOME in the test's directory (git-lfs reads and writes its global state there). */
export function lfsEnv(home: string): NodeJS.ProcessEnv {
  return { ...gitEnv, HOME: home };
}

async function run(args: string[], cwd: string, home: string): Promise<string> {
  const r = await gitAsync(args, { cwd, env: lfsEnv(home) });
  assert.equal(r.code, 0, `git ${args.join(' ')} failed in ${cwd}:\n${r.stderr}`);
  return r.stdout.toString('utf8');
}

/**
 * A new repository `name` on the server: `git lfs track '*.bin'`, the files
 * committed (*.bin go to LFS, the rest stays in Git), pushed with `git push`
 * (git-lfs's pre-push hook uploads the LFS objects through the batch API).
 */
export async function makeLfsRepo(server: LfsServer, root: string, name: string, files: Record<string, Buffer | string>): Promise<LfsRepo> {
  const bare = join(root, 'srv', `${name}.git`);
  const work = join(root, 'work', name);
  mkdirSync(join(root, 'work'), { recursive: true });
  git(['init', '-q', '--bare', '-b', 'main', bare]);
  git(['init', '-q', '-b', 'main', work]);
  await run(['lfs', 'install', '--local'], work, root);
  await run(['lfs', 'track', '*.bin'], work, root);
  git(['remote', 'add', 'origin', server.repoUrl(`${name}.git`)], { cwd: work });
  const repo: LfsRepo = { name, work, bare, url: server.repoUrl(`${name}.git`), files: new Map(), objects: new Map() };
  await commitAndPush(repo, root, files, 'first');
  return repo;
}

/** Writes `files` in the working repository, commits and pushes them. */
export async function commitAndPush(repo: LfsRepo, root: string, files: Record<string, Buffer | string>, message: string): Promise<void> {
  for (const [path, data] of Object.entries(files)) {
    const content = Buffer.isBuffer(data) ? data : Buffer.from(data);
    mkdirSync(join(repo.work, path, '..'), { recursive: true });
    writeFileSync(join(repo.work, path), content);
    if (path.endsWith('.bin')) {
      const oid = sha256(content);
      repo.files.set(path, { path, content, oid });
      repo.objects.set(oid, content);
    }
  }
  await run(['add', '-A'], repo.work, root);
  await run(['commit', '-q', '-m', message], repo.work, root);
  await run(['push', '-q', 'origin', 'main'], repo.work, root);
  // The server got every object: the pointers in Git and the content in LFS agree.
  const stored = await run(['lfs', 'ls-files', '--long'], repo.work, root);
  for (const f of repo.files.values()) assert.ok(stored.includes(f.oid), `git lfs ls-files lists ${f.path}`);
}

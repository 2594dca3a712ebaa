// Objects Git's fsck refuses, made with the real git: trees written byte for
// byte (`git hash-object --literally -t tree`, which takes names `git mktree`
// refuses: "a/b", ".", duplicates), commits likewise, .gitmodules blobs with
// hostile URLs and names. Each case builds one commit on top of a parent in
// a repository and names the message id Git 2.39's receive.fsckObjects
// refuses it with (fsck.c, fsck.h FOREACH_FSCK_MSG_ID).
import { git, gitBuffer } from './git.js';

export interface TreeEntrySpec {
  /** The mode's digits as written, e.g. "100644", "40000", "120000". */
  mode: string;
  /** The name's bytes (a string is UTF-8). */
  name: string | Buffer;
  oid: string;
}

/** Writes a blob; its id. */
export function writeBlob(repo: string, content: string | Buffer): string {
  return git(['hash-object', '-w', '--stdin'], { cwd: repo, input: content });
}

/** Writes a tree exactly as given (no sorting, no checks); its id. */
export function writeRawTree(repo: string, entries: TreeEntrySpec[]): string {
  const bytes = Buffer.concat(
    entries.map((e) => Buffer.concat([Buffer.from(`${e.mode} `, 'latin1'), Buffer.isBuffer(e.name) ? e.name : Buffer.from(e.name, 'utf8'), Buffer.from([0]), Buffer.from(e.oid, 'hex')])),
  );
  return git(['hash-object', '--literally', '-t', 'tree', '-w', '--stdin'], { cwd: repo, input: bytes });
}

/** Writes a commit's bytes as given; its id. */
export function writeRawCommit(repo: string, text: string): string {
  return git(['hash-object', '--literally', '-t', 'commit', '-w', '--stdin'], { cwd: repo, input: text });
}

/** A commit of `tree` on top of `parent` (git commit-tree, the test identity). */
export function writeCommit(repo: string, tree: string, parent: string | undefined, message: string): string {
  return git(['commit-tree', tree, ...(parent ? ['-p', parent] : []), '-m', message], { cwd: repo });
}

export interface HostileCase {
  /** What is wrong, for test names. */
  name: string;
  /** The message id Git refuses it with. */
  id: string;
  /** Writes the objects into `repo` (any repository) and returns a commit with `parent` as its parent. */
  build(repo: string, parent: string | undefined): string;
}

function treeCase(name: string, id: string, entries: (blob: string) => TreeEntrySpec[]): HostileCase {
  return {
    name,
    id,
    build(repo, parent) {
      const blob = writeBlob(repo, `content of ${name}\n`);
      return writeCommit(repo, writeRawTree(repo, entries(blob)), parent, `hostile: ${name}`);
    },
  };
}

function gitmodulesCase(name: string, id: string, gitmodules: string): HostileCase {
  return {
    name,
    id,
    build(repo, parent) {
      const blob = writeBlob(repo, gitmodules);
      const readme = writeBlob(repo, `about ${name}\n`);
      const tree = writeRawTree(repo, [
        { mode: '100644', name: '.gitmodules', oid: blob },
        { mode: '100644', name: 'README', oid: readme },
      ]);
      return writeCommit(repo, tree, parent, `hostile: ${name}`);
    },
  };
}

/** The twelve hostile pushes of the issue, each with the id `git receive-pack` (receive.fsckObjects=true) refuses it with. */
export const HOSTILE_CASES: readonly HostileCase[] = [
  treeCase('a tree entry ".git"', 'hasDotgit', (b) => [{ mode: '100644', name: '.git', oid: b }]),
  treeCase('a tree entry ".GIT"', 'hasDotgit', (b) => [{ mode: '100644', name: '.GIT', oid: b }]),
  treeCase('a tree entry "git~1" (the 8.3 name of .git)', 'hasDotgit', (b) => [{ mode: '100644', name: 'git~1', oid: b }]),
  treeCase('a tree entry ".g\\u200cit" (HFS+ ignores U+200C)', 'hasDotgit', (b) => [{ mode: '100644', name: '.g\u200cit', oid: b }]),
  treeCase('a tree entry ".."', 'hasDotdot', (b) => [{ mode: '100644', name: '..', oid: b }]),
  treeCase('a tree entry "."', 'hasDot', (b) => [{ mode: '100644', name: '.', oid: b }]),
  treeCase('a tree entry "a/b"', 'fullPathname', (b) => [{ mode: '100644', name: 'a/b', oid: b }]),
  gitmodulesCase('a .gitmodules url "--upload-pack=..."', 'gitmodulesUrl', '[submodule "x"]\n\tpath = x\n\turl = --upload-pack=touch /tmp/packferry-pwned\n'),
  gitmodulesCase('a submodule name "../../modules/evil"', 'gitmodulesName', '[submodule "../../modules/evil"]\n\tpath = x\n\turl = ./x\n'),
  {
    name: 'a symbolic link .gitmodules',
    id: 'gitmodulesSymlink',
    build(repo, parent) {
      const target = writeBlob(repo, '/etc/passwd');
      return writeCommit(repo, writeRawTree(repo, [{ mode: '120000', name: '.gitmodules', oid: target }]), parent, 'hostile: symlinked .gitmodules');
    },
  },
  treeCase('duplicate tree entries', 'duplicateEntries', (b) => [
    { mode: '100644', name: 'dup', oid: b },
    { mode: '100644', name: 'dup', oid: b },
  ]),
  {
    name: 'an author line without ">"',
    id: 'badEmail',
    build(repo, parent) {
      const tree = git(['mktree'], { cwd: repo, input: `100644 blob ${writeBlob(repo, 'bad author\n')}\tfile\n` });
      const text = [
        `tree ${tree}`,
        ...(parent ? [`parent ${parent}`] : []),
        'author A U Thor <author@example.com 1700000000 +0000',
        'committer C O Mitter <committer@example.com> 1700000000 +0000',
        '',
        'hostile: bad author line',
        '',
      ].join('\n');
      return writeRawCommit(repo, text);
    },
  },
];

/** The message ids Git names in `stderr`: from "error: object <oid>: <id>: ..." and "error in <type> <oid>: <id>: ..." lines (git push, git fsck). */
export function fsckIdsIn(stderr: string, severity: 'error' | 'warning' = 'error'): string[] {
  const ids = new Set<string>();
  const re = new RegExp(`${severity}(?::? object| in \\w+) [0-9a-f]{40}: (\\w+):`, 'g');
  for (const m of stderr.matchAll(re)) ids.add(m[1]);
  return [...ids].sort();
}

/** A bare repository with receive.fsckObjects=true, as the reference Git server (`config`: more settings). */
export function referenceServer(dir: string, config: Record<string, string> = {}): string {
  git(['init', '-q', '--bare', dir]);
  git(['config', 'receive.fsckObjects', 'true'], { cwd: dir });
  for (const [k, v] of Object.entries(config)) git(['config', k, v], { cwd: dir });
  return dir;
}

/** The raw bytes of an object (git cat-file). */
export function catObject(repo: string, type: string, oid: string): Buffer {
  return gitBuffer(['cat-file', type, oid], { cwd: repo });
}

// Helpers for the object-model tests: a scratch repository driven by real
// git, writing hand-made objects into it and reading `git fsck`'s verdicts.
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { git, gitAsync, gitBuffer, tempDir } from '../support/git.js';

export interface ScratchRepo {
  readonly path: string;
  cleanup(): void;
  git(args: string[], input?: string | Uint8Array): string;
  gitBuffer(args: string[], input?: string | Uint8Array): Buffer;
  /** Writes bytes as an object of `type` without Git's format checks (`hash-object --literally`). */
  writeLiteral(type: string, data: string | Uint8Array): string;
  /** The object's bytes, as `git cat-file <type> <oid>` gives them. */
  catFile(type: string, oid: string): Buffer;
}

export function scratchRepo(options: { objectFormat?: 'sha1' | 'sha256'; bare?: boolean } = {}): ScratchRepo {
  const dir = tempDir('packferry-object-');
  const args = ['init', '-q', '-b', 'main'];
  if (options.objectFormat) args.push(`--object-format=${options.objectFormat}`);
  if (options.bare) args.push('--bare');
  args.push(dir.path);
  git(args);
  const run = (a: string[], input?: string | Uint8Array): string => git(a, { cwd: dir.path, input });
  const runBuffer = (a: string[], input?: string | Uint8Array): Buffer => gitBuffer(a, { cwd: dir.path, input });
  return {
    path: dir.path,
    cleanup: dir.cleanup,
    git: run,
    gitBuffer: runBuffer,
    writeLiteral: (type, data) => run(['hash-object', '-t', type, '--literally', '-w', '--stdin'], data),
    catFile: (type, oid) => runBuffer(['cat-file', type, oid]),
  };
}

export interface FsckVerdict {
  /** Message ids reported for the object ("treeNotSorted", ...). */
  readonly ids: string[];
  /** Lines naming the object with an error or warning grade, as "error:treeNotSorted". */
  readonly graded: string[];
  /** Git could not parse the object at all ("object could not be parsed"). */
  readonly unparseable: boolean;
}

/** Runs `git fsck` and returns what it said about each object. */
export async function fsck(repoPath: string, strict: boolean): Promise<Map<string, FsckVerdict>> {
  const args = ['fsck', '--no-dangling', '--no-progress', '--no-reflogs'];
  if (strict) args.push('--strict');
  const { stderr, stdout } = await gitAsync(args, { cwd: repoPath });
  const verdicts = new Map<string, FsckVerdict>();
  const get = (oid: string): FsckVerdict => {
    let v = verdicts.get(oid);
    if (v === undefined) {
      v = { ids: [], graded: [], unparseable: false };
      verdicts.set(oid, v);
    }
    return v;
  };
  for (const line of (stderr + stdout.toString('utf8')).split('\n')) {
    const m = /^(error|warning) in (?:tree|commit|tag|blob) ([0-9a-f]+): (\w+): /.exec(line);
    if (m) {
      get(m[2]).ids.push(m[3]);
      get(m[2]).graded.push(`${m[1]}:${m[3]}`);
      continue;
    }
    const u = /^error: ([0-9a-f]{40,64}): object could not be parsed/.exec(line);
    if (u) (get(u[1]) as { unparseable: boolean }).unparseable = true;
  }
  return verdicts;
}

/**
 * A stand-in for gpg that Git can sign with (`gpg.program`): it prints a
 * fixed, well-formed-looking signature and the status line Git waits for, so
 * `git commit -S` and `git tag -s` write real signed objects without keys.
 */
export function fakeGpgProgram(dir: string): string {
  const path = join(dir, 'fake-gpg.sh');
  writeFileSync(
    path,
    [
      '#!/bin/sh',
      'cat >/dev/null',
      'printf "[GNUPG:] KEY_CONSIDERED FAKE 0\\n[GNUPG:] SIG_CREATED D 22 8 00 1700000000 FAKE\\n" >&2',
      'printf -- "-----BEGIN PGP SIGNATURE-----\\n\\niHUEABYKAB0WIQRmYWtlIHNpZ25hdHVyZSBmb3IgdGVzdHMACgkQZmFrZQ==\\n=FAKE\\n-----END PGP SIGNATURE-----\\n"',
      '',
    ].join('\n'),
  );
  chmodSync(path, 0o755);
  return path;
}

/** Hex id to raw bytes. */
export function raw(hex: string): Buffer {
  return Buffer.from(hex, 'hex');
}

/** Builds tree bytes from [mode text, name, hex id] triples, in the order given. */
export function treeBytes(entries: [string, string | Buffer, string][]): Buffer {
  return Buffer.concat(entries.flatMap(([mode, name, oid]) => [Buffer.from(`${mode} `), Buffer.from(name), Buffer.from([0]), raw(oid)]));
}

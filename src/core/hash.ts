// Object-id hash algorithms (gitformat-pack, "hash-function-transition").
// SHA-1 is what Git repositories use today; SHA-256 is described so that the
// formats can take it later without changing their shape.
//
// Note on collision detection: Git hashes with SHA-1DC, which rejects inputs
// built for the SHAttered-style collision attack. packferry uses plain SHA-1
// from OpenSSL (node:crypto), about 3x faster here. See docs/security.md.
import { createHash, type Hash } from 'node:crypto';

export interface HashAlgorithm {
  /** Git's name for it, as in `extensions.objectFormat`. */
  readonly name: 'sha1' | 'sha256';
  /** Length of a raw id in bytes. */
  readonly rawLength: 20 | 32;
  /** Length of a hex id in characters. */
  readonly hexLength: 40 | 64;
  /** Format id used in pack index v3 / commit-graph headers. */
  readonly formatId: number;
  /** The id of the empty tree. */
  readonly emptyTree: string;
  /** The all-zero id Git uses for "no object". */
  readonly zero: string;
  create(): Hash;
}

export const SHA1: HashAlgorithm = {
  name: 'sha1',
  rawLength: 20,
  hexLength: 40,
  formatId: 0x73686131,
  emptyTree: '4b825dc642cb6eb9a060e54bf8d69288fbee4904',
  zero: '0'.repeat(40),
  create: () => createHash('sha1'),
};

export const SHA256: HashAlgorithm = {
  name: 'sha256',
  rawLength: 32,
  hexLength: 64,
  formatId: 0x73323536,
  emptyTree: '6ef19b41225c5369f1c104d45d8d85efa9b057b53b14b4b9b939dd74decc5321',
  zero: '0'.repeat(64),
  create: () => createHash('sha256'),
};

export function hashAlgorithmByName(name: string): HashAlgorithm | undefined {
  if (name === 'sha1') return SHA1;
  if (name === 'sha256') return SHA256;
  return undefined;
}

// Ref names and the rules every ref database applies (Git's refs.c
// check_refname_format and refs_verify_refname_available): which names are
// refs at all, and which sets of names can be stored together. Pure; the
// store's ref transaction, the server and the mirror share them.
import { isValidRefName } from './object-tag.js';

/** The all-zero object id: "no ref" as old or new value of an update (gitprotocol-pack). */
export const ZERO_ID = '0'.repeat(40);

/**
 * A full ref name Git accepts (check_refname_format with no flags:
 * "refs/heads/main", "refs/tags/v1.0"), and without ASCII controls or spaces,
 * which a ref's name in the protocol (a line) or in packed-refs cannot carry.
 */
export function isRefName(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) return false;
  }
  return isValidRefName(Buffer.from(name, 'utf8'));
}

/**
 * A ref of `names` that `name` cannot be stored beside, Git's
 * directory/file conflict: one that is a directory above it
 * ("refs/heads/a" for "refs/heads/a/b") or below it. `sorted` holds every
 * name of `names` in order, and may hold others (names deleted since, names
 * not yet added), which are passed over; undefined when there is none.
 */
export function directoryFileConflict(name: string, names: ReadonlySet<string>, sorted: readonly string[]): string | undefined {
  for (let slash = name.indexOf('/'); slash >= 0; slash = name.indexOf('/', slash + 1)) {
    if (names.has(name.slice(0, slash))) return name.slice(0, slash);
  }
  const below = `${name}/`;
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] < below) lo = mid + 1;
    else hi = mid;
  }
  for (; lo < sorted.length && sorted[lo].startsWith(below); lo++) if (names.has(sorted[lo])) return sorted[lo];
  return undefined;
}

/**
 * A ref HEAD may name: under refs/ (git symbolic-ref refuses "HEAD outside
 * of refs/", and a HEAD file that does not say "ref: refs/" is not a
 * repository to Git: setup.c validate_headref) and a valid ref name.
 */
export function isHeadTarget(name: string): boolean {
  return name.startsWith('refs/') && isRefName(name);
}

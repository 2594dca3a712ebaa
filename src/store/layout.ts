// The store's repository layout (docs/store-format.md): a bare Git
// repository that Git's "dumb" HTTP client can clone from plain files
// (gitprotocol-http "Dumb Clients"; gitrepository-layout), plus packferry's
// own manifest. Everything Git reads is derived from the manifest and
// written after it.
import type { ObjectId } from '../core/oid.js';

export const KEYS = {
  head: 'HEAD',
  config: 'config',
  packedRefs: 'packed-refs',
  infoRefs: 'info/refs',
  infoPacks: 'objects/info/packs',
  manifest: 'packferry/manifest.json',
  /** The generation whose Git files are all written (repository.ts publish). */
  published: 'packferry/published.json',
  locks: 'packferry/locks/',
  incoming: 'packferry/incoming/',
  lfs: 'lfs/objects/',
} as const;

export function packKey(name: string): string {
  return `objects/pack/${name}.pack`;
}

export function idxKey(name: string): string {
  return `objects/pack/${name}.idx`;
}

/** lfs/objects/<aa>/<bb>/<oid>, as Git LFS lays out its local store. */
export function lfsKey(oid: string): string {
  return `${KEYS.lfs}${oid.slice(0, 2)}/${oid.slice(2, 4)}/${oid}`;
}

export interface RefEntry {
  name: string;
  oid: ObjectId;
  /** For annotated tags: the object the tag chain ends at. */
  peeled?: ObjectId;
}

function byName(a: RefEntry, b: RefEntry): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** packed-refs, with peeled values, sorted (what `git pack-refs` writes). */
export function renderPackedRefs(refs: RefEntry[]): string {
  const lines = ['# pack-refs with: peeled fully-peeled sorted '];
  for (const r of [...refs].sort(byName)) {
    lines.push(`${r.oid} ${r.name}`);
    if (r.peeled !== undefined) lines.push(`^${r.peeled}`);
  }
  return `${lines.join('\n')}\n`;
}

/** info/refs as `git update-server-info` writes it: "<oid>\t<ref>", then "<peeled>\t<ref>^{}" for tags. */
export function renderInfoRefs(refs: RefEntry[]): string {
  let out = '';
  for (const r of [...refs].sort(byName)) {
    out += `${r.oid}\t${r.name}\n`;
    if (r.peeled !== undefined) out += `${r.peeled}\t${r.name}^{}\n`;
  }
  return out;
}

/** objects/info/packs: "P pack-<name>.pack" per pack, then an empty line. */
export function renderInfoPacks(layerNames: string[]): string {
  return `${layerNames.map((n) => `P ${n}.pack\n`).join('')}\n`;
}

export function renderHead(target: string): string {
  return `ref: ${target}\n`;
}

export const BARE_CONFIG = '[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = true\n';

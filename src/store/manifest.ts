// packferry's manifest: the store's single source of truth, replaced as a
// whole (an atomic put) at each commit. It names the layers (immutable,
// content-named packs, newest first), the refs with their peeled values, HEAD,
// and a generation number that grows by one per commit. Git's own files
// (packed-refs, info/refs, objects/info/packs) are derived from it.
import { PackferryError, ErrorCode } from '../core/errors.js';
import type { ObjectId } from '../core/oid.js';
import type { RefEntry } from './layout.js';

export const MANIFEST_FORMAT = 'packferry-store';
export const MANIFEST_VERSION = 1;

export interface LayerEntry {
  /** "pack-<checksum>": objects/pack/<name>.pack and .idx. */
  name: string;
  objects: number;
  packBytes: number;
  idxBytes: number;
  /** The generation that added it. */
  generation: number;
  created: string;
  /** Set by compaction for the layers it merged: how many layers this one replaced. */
  merged?: number;
}

export interface RetiredLayer {
  name: string;
  /** When compaction stopped listing it; its files are deleted after the grace period. */
  retired: string;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  version: typeof MANIFEST_VERSION;
  objectFormat: 'sha1' | 'sha256';
  generation: number;
  head: string;
  refs: RefEntry[];
  layers: LayerEntry[];
  retired: RetiredLayer[];
  updated: string;
}

export function emptyManifest(): Manifest {
  return {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    objectFormat: 'sha1',
    generation: 0,
    head: 'refs/heads/main',
    refs: [],
    layers: [],
    retired: [],
    updated: new Date(0).toISOString(),
  };
}

function bad(why: string): PackferryError {
  return new PackferryError(ErrorCode.InvalidObject, `corrupt store manifest: ${why}`, {
    hint: 'run `packferry store verify` on the store',
  });
}

const OID = /^[0-9a-f]{40}$/;
const LAYER = /^pack-[0-9a-f]{40}$/;

export function parseManifest(bytes: Buffer): Manifest {
  let m: Manifest;
  try {
    m = JSON.parse(bytes.toString('utf8')) as Manifest;
  } catch (err) {
    throw bad(`not JSON (${(err as Error).message})`);
  }
  if (m === null || typeof m !== 'object') throw bad('not an object');
  if (m.format !== MANIFEST_FORMAT) throw bad(`format is ${JSON.stringify(m.format)}`);
  if (m.version !== MANIFEST_VERSION) {
    throw new PackferryError(ErrorCode.Usage, `store format version ${m.version} is not supported by this packferry (it knows ${MANIFEST_VERSION})`, {
      hint: 'upgrade packferry',
    });
  }
  if (!Number.isInteger(m.generation) || m.generation < 0) throw bad('bad generation');
  if (typeof m.head !== 'string') throw bad('bad head');
  if (!Array.isArray(m.refs) || !Array.isArray(m.layers) || !Array.isArray(m.retired)) throw bad('refs, layers or retired missing');
  for (const r of m.refs) {
    if (typeof r.name !== 'string' || !OID.test(r.oid) || (r.peeled !== undefined && !OID.test(r.peeled))) throw bad(`bad ref ${JSON.stringify(r)}`);
  }
  for (const l of m.layers) if (!LAYER.test(l.name)) throw bad(`bad layer name ${JSON.stringify(l.name)}`);
  return m;
}

export function serializeManifest(m: Manifest): Buffer {
  return Buffer.from(`${JSON.stringify(m, null, 1)}\n`);
}

export function refMap(m: Manifest): Map<string, ObjectId> {
  return new Map(m.refs.map((r) => [r.name, r.oid]));
}

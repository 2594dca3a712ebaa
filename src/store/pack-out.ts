// Generating a pack from the store for a fetch (what git pack-objects does
// for upload-pack, with delta and object reuse): each object's entry is
// copied as stored — compressed bytes untouched — in layer order, so a
// delta's base comes first and the delta becomes an OFS_DELTA (or a
// REF_DELTA to an object the receiver has, in a thin pack). A delta whose
// base is neither sent nor known to the receiver is sent whole.
//
// When the plan is every entry of every layer (a clone of a whole store),
// the layers' entries are streamed as they lie in their files, behind a new
// header and checksum (Git's "pack-reused"): layers are self-contained, so
// their OFS_DELTA distances and REF_DELTA bases stay valid side by side.
import { open } from 'node:fs/promises';
import { SHA1 } from '../core/hash.js';
import type { PackInput, WritePackOptions } from '../pack/writer.js';
import { writePack } from '../pack/writer.js';
import { encodePackHeader, isDeltaType, PACK_HEADER_SIZE } from '../pack/format.js';
import { ErrorCode, PackferryError } from '../core/errors.js';
import type { LayeredObjects } from './objects.js';
import type { Enumeration } from './walk.js';

/** What a generated pack holds, counted as it is written (pack-objects' "Total" line). */
export interface PackStats {
  /** Entries written. */
  objects: number;
  /** Entries written as deltas. */
  deltas: number;
  /** Entries copied as stored one by one (the rest were deltas sent whole). */
  reused: number;
  /** Entries copied with whole layers (not counted in `deltas` or `reused`, as Git's "pack-reused"). */
  packReused: number;
}

export interface GeneratePackOptions {
  /** The receiver accepts deltas against objects it has (thin-pack). */
  thin?: boolean;
  /** The receiver understands OFS_DELTA (ofs-delta); else REF_DELTA. */
  ofsDelta?: boolean;
  onObject?: (written: number) => void;
  /** Filled in as entries are written. */
  stats?: PackStats;
}

export function generatePack(store: LayeredObjects, plan: Enumeration, options: GeneratePackOptions = {}): AsyncGenerator<Buffer> {
  // Whole layers can be copied unless their OFS_DELTAs would have to become REF_DELTAs.
  if (plan.wholeLayers && options.ofsDelta !== false && plan.count > 0) return copyLayers(store, plan.count, options);
  async function* inputs(): AsyncGenerator<PackInput> {
    for (const item of plan.objects) {
      const reader = await store.reader(item.layer);
      const raw = reader.rawEntryPieces(item.offset, RAW_PIECE);
      const oid = reader.oidAtOffset(item.offset);
      const stats = options.stats;
      if (stats) stats.objects++;
      if (!isDeltaType(raw.type)) {
        if (stats) stats.reused++;
        yield { kind: 'raw', type: raw.type, size: raw.size, compressed: raw.compressed, oid };
        continue;
      }
      const base = raw.baseOid!;
      if (plan.sent(base) || (options.thin && plan.known(base))) {
        if (stats) {
          stats.reused++;
          stats.deltas++;
        }
        yield { kind: 'raw', type: raw.type, size: raw.size, compressed: raw.compressed, oid, base };
      } else {
        const whole = reader.readAt(item.offset);
        yield { kind: 'object', type: whole.type, data: whole.data, oid };
      }
    }
  }
  const writeOptions: WritePackOptions = { ofsDelta: options.ofsDelta ?? true, onEntry: options.onObject };
  return writePack(plan.count, inputs(), writeOptions);
}

/** Bytes read from a layer file at a time when layers are copied whole. */
const COPY_CHUNK = 1024 * 1024;
/** Bytes of one reused entry read at a time (a 1 GiB blob flows out in such pieces). */
const RAW_PIECE = 1024 * 1024;

/** A pack made of every layer's entries as they lie in the files: a new header and checksum around them. */
async function* copyLayers(store: LayeredObjects, count: number, options: GeneratePackOptions): AsyncGenerator<Buffer> {
  const hash = SHA1.create();
  const header = encodePackHeader(count);
  hash.update(header);
  yield header;
  let written = 0;
  for (const layer of store.layers) {
    const fh = await open(await store.packPath(layer.name), 'r');
    try {
      const end = (await fh.stat()).size - SHA1.rawLength;
      for (let pos = PACK_HEADER_SIZE; pos < end; ) {
        const chunk = Buffer.allocUnsafe(Math.min(COPY_CHUNK, end - pos));
        let filled = 0;
        while (filled < chunk.length) {
          const { bytesRead } = await fh.read(chunk, filled, chunk.length - filled, pos + filled);
          if (bytesRead === 0) throw new PackferryError(ErrorCode.PackTruncated, `layer ${layer.name} ended before its checksum`);
          filled += bytesRead;
        }
        pos += chunk.length;
        hash.update(chunk);
        yield chunk;
      }
    } finally {
      await fh.close();
    }
    written += layer.index.count;
    if (options.stats) {
      options.stats.objects += layer.index.count;
      options.stats.packReused += layer.index.count;
    }
    options.onObject?.(written);
  }
  yield hash.digest();
}

// Generating a pack from the store for a fetch (what git pack-objects does
// for upload-pack, with delta and object reuse): each object's entry is
// copied as stored — compressed bytes untouched — in layer order, so a
// delta's base comes first and the delta becomes an OFS_DELTA (or a
// REF_DELTA to an object the receiver has, in a thin pack). A delta whose
// base is neither sent nor known to the receiver is sent whole.
import type { PackInput, WritePackOptions } from '../pack/writer.js';
import { writePack } from '../pack/writer.js';
import { isDeltaType } from '../pack/format.js';
import type { LayeredObjects } from './objects.js';
import type { Enumeration } from './walk.js';

/** What a generated pack holds, counted as it is written (pack-objects' "Total" line). */
export interface PackStats {
  /** Entries written. */
  objects: number;
  /** Entries written as deltas. */
  deltas: number;
  /** Entries copied as stored (the rest were deltas sent whole). */
  reused: number;
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
  async function* inputs(): AsyncGenerator<PackInput> {
    for (const item of plan.objects) {
      const reader = await store.reader(item.layer);
      const raw = reader.rawEntry(item.offset);
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
  return writePack(plan.objects.length, inputs(), writeOptions);
}

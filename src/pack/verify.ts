// Verifying a pack against its index, as `git verify-pack` does (it runs
// `git index-pack --verify-stat`): index the pack afresh, which checks the
// trailer, every zlib stream, every delta and every object id, then compare
// the result with the index on disk.
import { readFile } from 'node:fs/promises';
import { PackferryError } from '../core/errors.js';
import { SHA1 } from '../core/hash.js';
import { oidToHex } from '../core/oid.js';
import { objectTypeFromPackType } from '../core/object.js';
import { isDeltaType } from './format.js';
import { PackIndex } from './idx.js';
import { indexPackFile, type IndexedPack, type IndexPackOptions } from './indexer.js';
import { REF_DELTA_BASE } from './tables.js';

export interface VerifyReport {
  ok: boolean;
  /** What differs between the pack and the index on disk. */
  problems: string[];
  indexed: IndexedPack;
}

/** Verifies `packPath` against `idxPath`. Pack corruption throws; index mismatches are listed in `problems`. */
export async function verifyPack(packPath: string, idxPath: string, options: IndexPackOptions = {}): Promise<VerifyReport> {
  const algo = options.hashAlgorithm ?? SHA1;
  const indexed = await indexPackFile(packPath, options);
  const onDisk = await readFile(idxPath);
  const problems: string[] = [];
  if (!onDisk.equals(indexed.index)) {
    let index: PackIndex | undefined;
    try {
      index = PackIndex.parse(onDisk, algo);
    } catch (err) {
      problems.push(err instanceof PackferryError ? err.message : String(err));
    }
    if (index) problems.push(...compareIndexes(index, PackIndex.parse(indexed.index, algo)));
    if (problems.length === 0) problems.push('index differs from the one computed from the pack');
  }
  return { ok: problems.length === 0, problems, indexed };
}

function compareIndexes(onDisk: PackIndex, computed: PackIndex): string[] {
  const problems: string[] = [];
  const H = computed.hashLength;
  if (!onDisk.packChecksum.equals(computed.packChecksum)) {
    problems.push(`index is for another pack (pack checksum ${onDisk.packChecksum.toString('hex')}, pack has ${computed.packChecksum.toString('hex')})`);
  }
  if (onDisk.count !== computed.count) problems.push(`index lists ${onDisk.count} objects, the pack holds ${computed.count}`);
  for (let k = 0; k < computed.count && problems.length < 50; k++) {
    const oid = computed.oidAt(k);
    const hex = oidToHex(oid, 0, H);
    const j = onDisk.findRaw(oid);
    if (j < 0) {
      problems.push(`object ${hex} is missing from the index`);
      continue;
    }
    if (onDisk.offsetAt(j) !== computed.offsetAt(k)) problems.push(`object ${hex}: index says offset ${onDisk.offsetAt(j)}, pack has it at ${computed.offsetAt(k)}`);
    if (onDisk.crc32At(j) !== computed.crc32At(k)) problems.push(`object ${hex}: CRC-32 in the index does not match the pack`);
  }
  for (let j = 0; j < onDisk.count && problems.length < 50; j++) {
    if (computed.findRaw(onDisk.oidAt(j)) < 0) problems.push(`index lists ${oidToHex(onDisk.oidAt(j), 0, H)}, which is not in the pack`);
  }
  return problems;
}

/** Lines of `git verify-pack -v`: one per entry in pack order, then the chain-length histogram. */
export function* describePack(indexed: IndexedPack, statOnly = false): Generator<string> {
  const t = indexed.tables;
  const H = t.hashLength;
  const n = t.count;
  let deepest = 0;
  for (let i = 0; i < n; i++) if (t.depths[i] > deepest) deepest = t.depths[i];
  const histogram = new Array<number>(deepest + 1).fill(0);
  const refBase = new Map<number, string>();
  const { entries: refEntries, baseIds } = indexed.refDeltas;
  if (!statOnly) for (let k = 0; k < refEntries.length; k++) refBase.set(refEntries[k], oidToHex(baseIds, k * H, H));
  for (let i = 0; i < n; i++) {
    const delta = isDeltaType(t.packType(i));
    if (delta) histogram[t.depths[i]]++;
    if (statOnly) continue;
    const oid = oidToHex(t.oids, i * H, H);
    const type = objectTypeFromPackType(t.objectType(i)).padEnd(6);
    let line = `${oid} ${type} ${t.sizes[i]} ${t.offsets[i + 1] - t.offsets[i]} ${t.offsets[i]}`;
    if (delta) {
      const b = t.baseIndex[i];
      const baseId = b === REF_DELTA_BASE ? refBase.get(i) : oidToHex(t.oids, b * H, H);
      line += ` ${t.depths[i]} ${baseId}`;
    }
    yield line;
  }
  const whole = n - histogram.reduce((a, b) => a + b, 0);
  if (whole > 0) yield `non delta: ${whole} ${whole === 1 ? 'object' : 'objects'}`;
  for (let d = 1; d <= deepest; d++) {
    if (histogram[d] > 0) yield `chain length = ${d}: ${histogram[d]} ${histogram[d] === 1 ? 'object' : 'objects'}`;
  }
}

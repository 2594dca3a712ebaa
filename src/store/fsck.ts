// The end of an object check (Git's fsck_finish): once every object of a
// push, a mirror or a store is known, each blob that a tree names
// .gitmodules or .gitattributes is read — from the new pack or from the
// objects already stored, as Git reads it from the repository — and checked
// (core/fsck.ts checkSpecialBlob). Shared by receivePack (store/receive.ts)
// and `store verify --full` (store/verify.ts).
import { checkSpecialBlob, specialBlobReadLimit, type FsckFindings, type FsckOptions, type FsckProblem } from '../core/fsck.js';
import { objectTypeFromPackType, type SpecialBlobKind } from '../core/object.js';
import type { ObjectId } from '../core/oid.js';

/** Where the objects a check may need are: type and size first, then the data of the few worth reading. */
export interface ObjectLookup {
  header(oid: ObjectId): Promise<{ type: number; size: number } | undefined>;
  read(oid: ObjectId): Promise<{ type: number; data: Buffer } | undefined>;
}

/** Checks the special blobs `findings` name; their problems (the per-object ones are in `findings.problems`). */
export async function finishFsck(findings: FsckFindings, lookup: ObjectLookup, options: FsckOptions): Promise<FsckProblem[]> {
  const problems: FsckProblem[] = [];
  const kinds: [SpecialBlobKind, ObjectId[]][] = [
    ['gitmodules', findings.gitmodules],
    ['gitattributes', findings.gitattributes],
  ];
  for (const [kind, oids] of kinds) {
    for (const oid of oids) {
      if (options.skipList?.has(oid)) continue;
      const head = await lookup.header(oid);
      let object: Parameters<typeof checkSpecialBlob>[2];
      if (head !== undefined) {
        const type = objectTypeFromPackType(head.type);
        const data = type === 'blob' && head.size <= specialBlobReadLimit(kind) ? (await lookup.read(oid))?.data : undefined;
        object = { type, size: head.size, data };
      }
      problems.push(...checkSpecialBlob(kind, oid, object, options));
    }
  }
  return problems;
}

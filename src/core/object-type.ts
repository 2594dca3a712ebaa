// Git's four object types, by name and by the 3-bit type number used in pack
// entry headers (gitformat-pack, "Object types": OBJ_COMMIT = 1 ... OBJ_TAG = 4;
// 6 and 7 are the delta types and belong to the pack layer; 0 and 5 are
// invalid/reserved).
import { PackferryError, ErrorCode } from './errors.js';

export type ObjectType = 'commit' | 'tree' | 'blob' | 'tag';

/** The object types in pack type-number order. */
export const OBJECT_TYPES: readonly ObjectType[] = Object.freeze(['commit', 'tree', 'blob', 'tag']);

/** Pack type numbers of the base object types (gitformat-pack). */
export const PackObjectType = Object.freeze({ commit: 1, tree: 2, blob: 3, tag: 4 } as const);
export type PackObjectTypeNumber = (typeof PackObjectType)[ObjectType];

export function isObjectType(name: string): name is ObjectType {
  return name === 'blob' || name === 'tree' || name === 'commit' || name === 'tag';
}

/** The pack type number of an object type. */
export function packTypeOf(type: ObjectType): PackObjectTypeNumber {
  return PackObjectType[type];
}

/** The object type of a pack type number 1-4; throws ERR_INVALID_OBJECT_TYPE for anything else (including the delta types 6 and 7). */
export function objectTypeFromPackType(typeNumber: number): ObjectType {
  const type = OBJECT_TYPES[typeNumber - 1];
  if (type === undefined || !Number.isInteger(typeNumber)) {
    throw new PackferryError(ErrorCode.InvalidObjectType, `not a base object type number: ${String(typeNumber)}`, {
      details: { typeNumber },
    });
  }
  return type;
}

/** Reads a type name ("blob", "tree", "commit", "tag"); throws ERR_INVALID_OBJECT_TYPE otherwise. */
export function parseObjectType(name: string | Uint8Array): ObjectType {
  // No type name is longer than 6 bytes: never decode more than a few.
  const text =
    typeof name === 'string' ? name.slice(0, 64) : Buffer.from(name.buffer, name.byteOffset, Math.min(name.length, 64)).toString('latin1');
  if (name.length > 64 || !isObjectType(text)) {
    throw new PackferryError(ErrorCode.InvalidObjectType, `unknown object type: ${JSON.stringify(text)}`, { details: { type: text } });
  }
  return text;
}

/**
 * The type of object a tree entry's mode points at, as Git's `object_type()`:
 * directories are trees, gitlinks (submodules) are commits, anything else a blob.
 */
export function objectTypeForMode(mode: number): ObjectType {
  const format = mode & 0o170000;
  if (format === 0o040000) return 'tree';
  if (format === 0o160000) return 'commit';
  return 'blob';
}

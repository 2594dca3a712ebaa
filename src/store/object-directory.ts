// Reading objects from a Git object directory (gitrepository-layout,
// "objects"): loose objects at objects/xx/yyyy... (zlib of "<type> <size>\0"
// and the data) and packs at objects/pack/pack-*.{pack,idx}.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { PackferryError, ErrorCode } from '../core/errors.js';
import { SHA1, type HashAlgorithm } from '../core/hash.js';
import { withLimits, type Limits } from '../core/limits.js';
import { decodeObjectHeader, packTypeOf } from '../core/object.js';
import { isObjectId, type ObjectId } from '../core/oid.js';
import { PackReader, type PackedObject } from '../pack/reader.js';

export class ObjectDirectory {
  private readonly packs: PackReader[];
  private readonly limits: Limits;

  private constructor(
    readonly path: string,
    packs: PackReader[],
    private readonly algo: HashAlgorithm,
    limits: Partial<Limits> | undefined,
  ) {
    this.packs = packs;
    this.limits = withLimits(limits);
  }

  /** Opens `<gitDir>/objects`. */
  static open(gitDir: string, options: { hashAlgorithm?: HashAlgorithm; limits?: Partial<Limits> } = {}): ObjectDirectory {
    const objects = join(gitDir, 'objects');
    if (!existsSync(objects) || !statSync(objects).isDirectory()) {
      throw new PackferryError(ErrorCode.NotFound, `${gitDir} is not a Git directory (no objects/)`, {
        hint: 'point --git-dir at a repository (the .git directory, or a bare repository)',
      });
    }
    const packDir = join(objects, 'pack');
    const packs: PackReader[] = [];
    if (existsSync(packDir)) {
      for (const name of readdirSync(packDir).sort()) {
        if (!name.endsWith('.idx')) continue;
        const pack = join(packDir, name.replace(/\.idx$/, '.pack'));
        if (existsSync(pack)) packs.push(PackReader.open(pack, join(packDir, name), { hashAlgorithm: options.hashAlgorithm }));
      }
    }
    return new ObjectDirectory(objects, packs, options.hashAlgorithm ?? SHA1, options.limits);
  }

  /** The object, from a pack or loose, or undefined. */
  tryRead(oid: ObjectId): PackedObject | undefined {
    if (!isObjectId(oid, this.algo)) return undefined;
    for (const pack of this.packs) {
      const obj = pack.tryRead(oid);
      if (obj) return obj;
    }
    return this.readLoose(oid);
  }

  private readLoose(oid: ObjectId): PackedObject | undefined {
    const path = join(this.path, oid.slice(0, 2), oid.slice(2));
    if (!existsSync(path)) return undefined;
    let raw: Buffer;
    try {
      raw = inflateSync(readFileSync(path), { maxOutputLength: this.limits.maxObjectSize + 64 });
    } catch (err) {
      throw new PackferryError(ErrorCode.InvalidObject, `loose object ${oid} is corrupt: ${(err as Error).message}`, { cause: err });
    }
    const header = decodeObjectHeader(raw, this.limits);
    if (header.kind !== 'complete' || raw.length - header.length !== header.size) {
      throw new PackferryError(ErrorCode.InvalidObject, `loose object ${oid} has a bad header or size`);
    }
    return { type: packTypeOf(header.type), data: raw.subarray(header.length) };
  }

  close(): void {
    for (const pack of this.packs) pack.close();
  }
}

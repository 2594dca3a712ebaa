// Store addresses (docs/store-format.md "Addresses"):
// - s3://bucket/prefix/NAME.git: an object store (endpoint from
//   AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL or options; the AWS credential chain);
// - store://PATH: a directory store, whatever is there now;
// - a plain PATH is a directory store when it does not exist yet, is empty,
//   or already holds a packferry store (packferry/manifest.json, or the
//   packferry/ directory of a first write that was interrupted); a Git
//   repository there means Git's transport instead (decided by the caller
//   with `classifyPath`).
// Object-store code is loaded only when an s3:// address is used.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PackferryError, ErrorCode } from '../core/errors.js';
import type { BlobStore } from './backend.js';
import { FsBlobStore } from './fs-backend.js';
import { KEYS } from './layout.js';
import type { S3BlobStoreOptions } from './s3-backend.js';

export type S3Options = Omit<S3BlobStoreOptions, 'bucket' | 'prefix'>;

export function isStoreAddress(address: string): boolean {
  return address.startsWith('s3://') || address.startsWith('store://');
}

/** What a local path holds, for choosing between a directory store and Git's file transport. */
export function classifyPath(path: string): 'missing' | 'empty' | 'store' | 'git' | 'other' {
  if (!existsSync(path)) return 'missing';
  if (!statSync(path).isDirectory()) return 'other';
  if (existsSync(join(path, ...KEYS.manifest.split('/')))) return 'store';
  const entries = readdirSync(path);
  if (entries.length === 0) return 'empty';
  if (existsSync(join(path, 'HEAD')) && existsSync(join(path, 'objects'))) return 'git';
  if (existsSync(join(path, '.git'))) return 'git';
  // A first write that stopped before its commit point left packferry's own files (its lock) but no manifest yet.
  if (statSync(join(path, 'packferry'), { throwIfNoEntry: false })?.isDirectory()) return 'store';
  return 'other';
}

/** The blob store an address names. */
export async function openBlobStore(address: string, s3: S3Options = {}): Promise<BlobStore> {
  if (address.startsWith('s3://')) {
    const { S3BlobStore } = await import('./s3-backend.js');
    return S3BlobStore.fromUrl(address, s3);
  }
  const path = address.startsWith('store://') ? address.slice('store://'.length) : address;
  if (path === '') throw new PackferryError(ErrorCode.InvalidUrl, `no path in store address ${JSON.stringify(address)}`);
  const kind = classifyPath(path);
  if (kind === 'other' || kind === 'git') {
    throw new PackferryError(ErrorCode.Usage, `${path} is ${kind === 'git' ? 'a Git repository' : 'not empty and not a packferry store'}`, {
      hint: kind === 'git' ? 'name it without store:// to use it as a Git repository' : 'give a new or empty directory, or an existing store',
    });
  }
  return new FsBlobStore(resolve(path));
}

// Turning command-line addresses into mirror sources and targets: a store
// (s3://, store://, or a directory path that is new, empty or a store) or a
// Git server reached through its transport (any other URL or path).
import { resolve } from 'node:path';
import { PackferryError, ErrorCode } from '../core/errors.js';
import type { FsckOptions } from '../core/fsck.js';
import { storeSource, storeTarget, transportSource, transportTarget, type MirrorSource, type MirrorTarget } from '../mirror/endpoints.js';
import { classifyPath, isStoreAddress, openBlobStore, type S3Options } from '../store/open.js';
import { StoreRepository } from '../store/repository.js';
import { openTransport, type TransportOptions } from '../transport/open.js';

export interface EndpointOptions {
  transport: TransportOptions;
  s3: S3Options;
  /** Where layers of object stores are cached for reading. */
  cacheDir?: string;
  /** How store targets check the objects they receive (`--fsck`). */
  fsck?: FsckOptions;
}

/** A plain local path (not a URL, not host:path). */
function isPlainPath(address: string): boolean {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(address)) return false;
  const colon = address.indexOf(':');
  const slash = address.indexOf('/');
  return colon < 0 || (slash >= 0 && slash < colon);
}

function storeOpener(address: string, options: EndpointOptions): () => Promise<StoreRepository> {
  return async () => StoreRepository.open(await openBlobStore(address, options.s3), { cacheDir: options.cacheDir });
}

function displayOf(address: string): string {
  return address.startsWith('s3://') || address.startsWith('store://') ? address : `store://${resolve(address)}`;
}

export async function resolveSource(address: string, options: EndpointOptions): Promise<MirrorSource> {
  if (isStoreAddress(address) || (isPlainPath(address) && classifyPath(address) === 'store')) {
    return storeSource(displayOf(address), storeOpener(address, options));
  }
  if (isPlainPath(address) && classifyPath(address) === 'missing') {
    throw new PackferryError(ErrorCode.NotFound, `repository not found: ${address}`, { hint: 'a source must be an existing Git repository or packferry store' });
  }
  return transportSource(await openTransport(address, options.transport));
}

export async function resolveTarget(address: string, options: EndpointOptions): Promise<MirrorTarget> {
  if (isStoreAddress(address)) return storeTarget(displayOf(address), storeOpener(address, options), { fsck: options.fsck });
  if (isPlainPath(address)) {
    const kind = classifyPath(address);
    if (kind === 'missing' || kind === 'empty' || kind === 'store') return storeTarget(displayOf(address), storeOpener(address, options), { fsck: options.fsck });
    if (kind === 'other') {
      throw new PackferryError(ErrorCode.Usage, `${address} is neither a Git repository nor a packferry store`, {
        hint: 'name a new directory to create a store there, or an existing repository or store',
      });
    }
  }
  return transportTarget(await openTransport(address, options.transport));
}

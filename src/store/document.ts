// Read-modify-write of one small document (a JSON blob such as the tokens
// file or a repository's settings) by any number of writers at once,
// without losing a change. With the store's conditional writes
// (backend.ts ConditionalWrites: a directory's lockfile, S3's If-Match) it
// is optimistic concurrency: read the document and its version, compute the
// new one, put it only if the version is unchanged, else read again and
// retry after a jittered pause (bounded). Without them (an S3-compatible
// service that ignores conditional writes) the writer lock (lock.ts) is held
// around the read, the change and the put.
//
// `change` may run more than once (once per try): it must compute the new
// document from the one it is given and nothing else it saw before.
import { throwIfAborted } from '../core/abort.js';
import { PackferryError, ErrorCode } from '../core/errors.js';
import { conditionalWrites, type BlobStore, type PutOptions } from './backend.js';
import { acquireWriterLock } from './lock.js';

/** The new document, or undefined to leave it as it is. */
export type DocumentChange = (current: Buffer | undefined) => Buffer | undefined | Promise<Buffer | undefined>;

export interface UpdateDocumentOptions {
  signal?: AbortSignal;
  /** Who is writing, for the writer lock's message to others (without conditional writes). */
  lockOwner?: string;
  /** Where the writer lock lives when it is needed (default `store`: its packferry/locks/). */
  lockStore?: BlobStore;
  /** The new document's Content-Type. */
  contentType?: string;
  /** Readable by the owner only (a directory store writes it 0600). */
  secret?: boolean;
  /** Compare-and-swap tries before giving up with ERR_STORE_LOCKED (default 50). */
  attempts?: number;
  /** Writer-lock tries when racing other writers (default 40), without conditional writes. */
  lockAttempts?: number;
}

export interface UpdatedDocument {
  /** Whether this call wrote the document. */
  changed: boolean;
  /** The document as it is now (the new one when changed). */
  body: Buffer | undefined;
  /** How it was kept consistent. */
  via: 'compare-and-swap' | 'writer lock';
  /** Compare-and-swap tries (1 when no other writer came first). */
  tries: number;
}

export const DEFAULT_DOCUMENT_ATTEMPTS = 50;

/** Applies `change` to the document at `key`, atomically with respect to every other updateDocument of it. */
export async function updateDocument(store: BlobStore, key: string, change: DocumentChange, options: UpdateDocumentOptions = {}): Promise<UpdatedDocument> {
  const { signal } = options;
  const put: PutOptions = { contentType: options.contentType, secret: options.secret, signal };
  const cas = await conditionalWrites(store, signal);
  if (cas === undefined) {
    const lock = await acquireWriterLock(options.lockStore ?? store, { owner: options.lockOwner, attempts: options.lockAttempts ?? 40, signal });
    try {
      const current = await store.get(key, signal);
      const next = await change(current);
      if (next === undefined) return { changed: false, body: current, via: 'writer lock', tries: 1 };
      await store.put(key, next, put);
      return { changed: true, body: next, via: 'writer lock', tries: 1 };
    } finally {
      await lock.release().catch(() => {});
    }
  }
  const attempts = options.attempts ?? DEFAULT_DOCUMENT_ATTEMPTS;
  for (let tries = 1; ; tries++) {
    throwIfAborted(signal);
    const current = await cas.getVersioned(key, signal);
    const next = await change(current?.body);
    if (next === undefined) return { changed: false, body: current?.body, via: 'compare-and-swap', tries };
    if (await cas.putIfVersion(key, next, current?.version, put)) return { changed: true, body: next, via: 'compare-and-swap', tries };
    if (tries >= attempts) {
      throw new PackferryError(ErrorCode.StoreLocked, `${store.description}: ${key} kept changing under ${attempts} tries to update it`, {
        hint: 'other writers are changing it all the time: try again',
        details: { key, tries },
      });
    }
    // Jittered and growing, so writers that collided do not collide again in step.
    await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(200, 5 * tries)));
  }
}

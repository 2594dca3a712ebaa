// Many repositories in one store (what a server hosts): NAME.git/ under a
// directory or a bucket prefix, each a store repository of its own
// (docs/store-format.md), plus per-repository settings that are not history:
// packferry/settings.json (public flag, description) and hooks/<name>.
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PackferryError, ErrorCode } from '../core/errors.js';
import { checkFsckOverride, transferFsckOptions, type FsckLevel, type FsckMsgId, type FsckOptions } from '../core/fsck.js';
import type { BlobStore } from './backend.js';
import { FsBlobStore } from './fs-backend.js';
import { updateDocument } from './document.js';
import { KEYS } from './layout.js';
import { StoreRepository, type StoreRepositoryOptions } from './repository.js';
import type { S3BlobStoreOptions } from './s3-backend.js';

export interface RepositorySettings {
  /** Readable without credentials. */
  public: boolean;
  description?: string;
  /** Refuse non-fast-forward updates and deletions of branches, except to admins (Git's receive.denyNonFastForwards). */
  denyNonFastForwards?: boolean;
  /** Levels of Git's object checks for pushes to this repository, by message id (Git's receive.fsck.<msg-id>). */
  fsck?: Partial<Record<FsckMsgId, FsckLevel>>;
  /** Objects whose problems pushes may bring (Git's receive.fsck.skipList), lowercase hex ids. */
  fsckSkipList?: string[];
}

export const SETTINGS_KEY = 'packferry/settings.json';
export const HOOK_NAMES = ['pre-receive', 'update', 'post-receive'] as const;
export type HookName = (typeof HOOK_NAMES)[number];

/**
 * Repository names: one or more path segments of [A-Za-z0-9._-], no segment
 * starting with '.', without the ".git" suffix, at most 200 characters. Rejects
 * "..", absolute paths, backslashes, control characters: anything that could
 * leave the store's root.
 */
export function checkRepositoryName(name: string): string {
  const bad = (why: string) =>
    new PackferryError(ErrorCode.InvalidUrl, `invalid repository name ${JSON.stringify(name.slice(0, 100))}: ${why}`, {
      hint: 'names use letters, digits, ".", "_" and "-", in segments separated by "/"',
    });
  if (name.length === 0 || name.length > 200) throw bad('empty or too long');
  for (const seg of name.split('/')) {
    if (seg === '' || seg.startsWith('.') || !/^[A-Za-z0-9._-]+$/.test(seg)) throw bad(`bad segment ${JSON.stringify(seg)}`);
  }
  if (name.endsWith('.git')) throw bad('give the name without .git');
  // "team/a.git/objects" would be a directory inside the repository team/a.git.
  if (name.split('/').some((seg) => seg.endsWith('.git'))) throw bad('a segment ending in .git would put the repository inside another');
  return name;
}

/** Where repositories live and how a repository's own blob store is made. */
export interface StoreRoot {
  readonly description: string;
  /** Keys at the root itself (e.g. packferry/tokens.json), outside any repository. */
  readonly blobs: BlobStore;
  /** A repository's blob store (its keys relative to NAME.git/). */
  repositoryStore(name: string): BlobStore;
  /** Every repository name (those with a manifest). */
  list(signal?: AbortSignal): Promise<string[]>;
  /**
   * Whether the root is there and can be read, before a server starts on it:
   * ERR_NOT_FOUND for a directory that does not exist, the backend's error
   * for a bucket that cannot be read (missing, no credentials, no rights).
   */
  check(signal?: AbortSignal): Promise<void>;
  close(): Promise<void>;
}

export class FsStoreRoot implements StoreRoot {
  readonly description: string;
  private readonly root: FsBlobStore;

  constructor(readonly path: string) {
    this.description = path;
    this.root = new FsBlobStore(path);
  }

  get blobs(): BlobStore {
    return this.root;
  }

  repositoryStore(name: string): BlobStore {
    return new FsBlobStore(join(this.path, `${checkRepositoryName(name)}.git`));
  }

  async list(): Promise<string[]> {
    return namesFrom(await this.root.list(''));
  }

  async check(): Promise<void> {
    const info = await stat(this.path).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (info === undefined) {
      throw new PackferryError(ErrorCode.NotFound, `store ${this.path} does not exist`, {
        hint: `create the directory (mkdir -p ${this.path}), or mirror a repository into it with 'packferry mirror SOURCE ${join(this.path, 'NAME.git')}'`,
      });
    }
    if (!info.isDirectory()) throw new PackferryError(ErrorCode.Usage, `store ${this.path} is not a directory`);
  }

  async close(): Promise<void> {}
}

export class S3StoreRoot implements StoreRoot {
  readonly description: string;
  private readonly stores = new Map<string, BlobStore>();

  constructor(
    private readonly base: BlobStore & { readonly bucket: string; readonly prefix: string },
    private readonly make: (options: S3BlobStoreOptions) => BlobStore,
    private readonly options: Omit<S3BlobStoreOptions, 'bucket' | 'prefix'>,
  ) {
    this.description = base.description;
  }

  get blobs(): BlobStore {
    return this.base;
  }

  repositoryStore(name: string): BlobStore {
    checkRepositoryName(name);
    let s = this.stores.get(name);
    if (!s) {
      s = this.make({ ...this.options, bucket: this.base.bucket, prefix: `${this.base.prefix}${name}.git/` });
      this.stores.set(name, s);
    }
    return s;
  }

  async list(signal?: AbortSignal): Promise<string[]> {
    return namesFrom(await this.base.list('', signal));
  }

  async check(signal?: AbortSignal): Promise<void> {
    // A listing of the root's own few keys: fails for a missing bucket, missing credentials or rights.
    await this.base.list('packferry/', signal);
  }

  async close(): Promise<void> {
    for (const s of this.stores.values()) await s.close();
    await this.base.close();
  }
}

function namesFrom(keys: { key: string }[]): string[] {
  const suffix = `.git/${KEYS.manifest}`;
  return keys
    .filter((k) => k.key.endsWith(suffix))
    .map((k) => k.key.slice(0, -suffix.length))
    .filter((n) => {
      try {
        checkRepositoryName(n);
        return true;
      } catch {
        return false;
      }
    })
    .sort();
}

/** A store root from an address: s3://bucket/prefix, store://PATH or a directory. */
export async function openStoreRoot(address: string, s3: Omit<S3BlobStoreOptions, 'bucket' | 'prefix'> = {}): Promise<StoreRoot> {
  if (address.startsWith('s3://')) {
    const { S3BlobStore } = await import('./s3-backend.js');
    return new S3StoreRoot(S3BlobStore.fromUrl(address, s3), (o) => new S3BlobStore(o), s3);
  }
  return new FsStoreRoot(address.startsWith('store://') ? address.slice('store://'.length) : address);
}

export async function openRepository(root: StoreRoot, name: string, options: StoreRepositoryOptions = {}): Promise<StoreRepository> {
  return StoreRepository.open(root.repositoryStore(name), options);
}

export async function readSettings(store: BlobStore, signal?: AbortSignal): Promise<RepositorySettings> {
  return parseSettings(store, await store.get(SETTINGS_KEY, signal));
}

/** The settings a settings file holds (none: a private repository's defaults). */
function parseSettings(store: BlobStore, bytes: Buffer | undefined): RepositorySettings {
  if (!bytes) return { public: false };
  try {
    const s = JSON.parse(bytes.toString('utf8')) as Partial<RepositorySettings>;
    return {
      public: s.public === true,
      description: typeof s.description === 'string' ? s.description : undefined,
      denyNonFastForwards: s.denyNonFastForwards === true,
      ...fsckSettingsFrom(s),
    };
  } catch {
    throw new PackferryError(ErrorCode.InvalidObject, `${store.description}: ${SETTINGS_KEY} is not valid JSON`);
  }
}

function serializeSettings(settings: RepositorySettings): Buffer {
  return Buffer.from(`${JSON.stringify(settings, null, 1)}\n`);
}

export async function writeSettings(store: BlobStore, settings: RepositorySettings, signal?: AbortSignal): Promise<void> {
  await store.put(SETTINGS_KEY, serializeSettings(settings), { contentType: 'application/json', signal });
}

/** Changes the settings as `edit` says, atomically with respect to every other change of them (store/document.ts). */
export async function updateSettings(store: BlobStore, edit: (current: RepositorySettings) => RepositorySettings, signal?: AbortSignal): Promise<RepositorySettings> {
  let next: RepositorySettings | undefined;
  await updateDocument(
    store,
    SETTINGS_KEY,
    (bytes) => {
      next = edit(parseSettings(store, bytes));
      return serializeSettings(next);
    },
    { contentType: 'application/json', lockOwner: 'repository settings', signal },
  );
  return next!;
}

/** The fsck fields of a settings file, keeping only entries Git would accept (a hand-edited file cannot lower a fatal id). */
function fsckSettingsFrom(s: Partial<RepositorySettings>): Pick<RepositorySettings, 'fsck' | 'fsckSkipList'> {
  const out: Pick<RepositorySettings, 'fsck' | 'fsckSkipList'> = {};
  if (s.fsck !== null && typeof s.fsck === 'object') {
    const levels: Partial<Record<FsckMsgId, FsckLevel>> = {};
    for (const [id, level] of Object.entries(s.fsck)) {
      try {
        const checked = checkFsckOverride(id, String(level));
        levels[checked.id] = checked.level;
      } catch {
        // not an id and level Git knows: ignored, as the check's default then applies
      }
    }
    if (Object.keys(levels).length > 0) out.fsck = levels;
  }
  if (Array.isArray(s.fsckSkipList)) {
    const ids = s.fsckSkipList.filter((x): x is string => typeof x === 'string' && /^[0-9a-f]{40}$/.test(x));
    if (ids.length > 0) out.fsckSkipList = ids;
  }
  return out;
}

/** How pushes to a repository are checked: Git's transfer checks (strict) with the repository's levels and skip list. */
export function repositoryFsckOptions(settings: Pick<RepositorySettings, 'fsck' | 'fsckSkipList'>): FsckOptions {
  const skip = settings.fsckSkipList ?? [];
  return transferFsckOptions(settings.fsck ?? {}, skip.length > 0 ? new Set(skip) : undefined);
}

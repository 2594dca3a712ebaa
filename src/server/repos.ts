// Repository administration on a store root, shared by the admin API and
// `packferry repo ... --store STORE`: create, describe, edit, delete, hooks.
import { rm } from 'node:fs/promises';
import { PackferryError, ErrorCode } from '../core/errors.js';
import { checkFsckOverride } from '../core/fsck.js';
import { isRefName } from '../core/refs.js';
import { localFiles } from '../store/backend.js';
import { KEYS } from '../store/layout.js';
import { updateRefs } from '../store/ref-transaction.js';
import { StoreRepository } from '../store/repository.js';
import { checkRepositoryName, HOOK_NAMES, readSettings, updateSettings, writeSettings, type HookName, type RepositorySettings, type StoreRoot } from '../store/root.js';

export interface RepositoryInfo extends RepositorySettings {
  name: string;
  head: string;
  generation: number;
  layers: number;
  objects: number;
  refCount: number;
  refs?: { name: string; oid: string; peeled?: string }[];
}

export interface RepositoryEdit {
  public?: boolean;
  description?: string | null;
  defaultBranch?: string;
  denyNonFastForwards?: boolean;
  /** Per message id: a level (error, warn, ignore) for pushes' object checks, or null for Git's default. */
  fsck?: Record<string, string | null>;
  /** Objects exempt from the checks (hex ids), replacing the list; null or [] removes it. */
  fsckSkipList?: string[] | null;
}

/** `edit.fsck` and `edit.fsckSkipList` applied to settings, checked as Git checks receive.fsck.* (ERR_USAGE). */
function applyFsckEdit(settings: RepositorySettings, edit: RepositoryEdit): void {
  if (edit.fsck !== undefined) {
    if (edit.fsck === null || typeof edit.fsck !== 'object' || Array.isArray(edit.fsck)) throw new PackferryError(ErrorCode.Usage, 'fsck must be an object of <msg-id>: <level>');
    const levels = { ...settings.fsck };
    for (const [id, level] of Object.entries(edit.fsck)) {
      if (level === null) {
        const known = checkFsckOverride(id, 'error').id;
        delete levels[known];
      } else {
        const checked = checkFsckOverride(id, String(level));
        levels[checked.id] = checked.level;
      }
    }
    settings.fsck = Object.keys(levels).length > 0 ? levels : undefined;
  }
  if (edit.fsckSkipList !== undefined) {
    const ids = edit.fsckSkipList ?? [];
    if (!Array.isArray(ids) || ids.some((x) => typeof x !== 'string' || !/^[0-9a-fA-F]{40}$/.test(x))) {
      throw new PackferryError(ErrorCode.Usage, 'fsckSkipList must be a list of object ids');
    }
    settings.fsckSkipList = ids.length > 0 ? [...new Set(ids.map((x) => x.toLowerCase()))] : undefined;
  }
}

/**
 * "main" or "refs/heads/main" → "refs/heads/main"; refuses names that could
 * not be branches (Git's check-ref-format rules, as for pushed refs: so any
 * branch a push can make, "feature/ünïcødé" too, can be the default).
 */
export function branchRef(value: string): string {
  const ref = value.startsWith('refs/') ? value : `refs/heads/${value}`;
  if (!isRefName(ref)) throw new PackferryError(ErrorCode.InvalidRefName, `invalid default branch ${JSON.stringify(value)}`);
  return ref;
}

export async function repositoryExists(root: StoreRoot, name: string): Promise<boolean> {
  return (await root.repositoryStore(name).head(KEYS.manifest)) !== undefined;
}

export async function describeRepository(root: StoreRoot, name: string, options: { refs?: boolean; cacheDir?: string } = {}): Promise<RepositoryInfo | undefined> {
  const store = root.repositoryStore(name);
  const repo = await StoreRepository.open(store, { cacheDir: options.cacheDir });
  if (!repo.exists) return undefined;
  const settings = await readSettings(store);
  const m = repo.manifest;
  return {
    name,
    ...settings,
    head: m.head,
    generation: m.generation,
    layers: m.layers.length,
    objects: m.layers.reduce((n, l) => n + l.objects, 0),
    refCount: m.refs.length,
    ...(options.refs ? { refs: m.refs } : {}),
  };
}

export async function createRepository(
  root: StoreRoot,
  name: string,
  options: { public?: boolean; description?: string; defaultBranch?: string; denyNonFastForwards?: boolean; cacheDir?: string } = {},
): Promise<RepositoryInfo> {
  checkRepositoryName(name);
  // Everything is checked before anything is written: a refused creation leaves nothing behind.
  const head = options.defaultBranch !== undefined ? branchRef(options.defaultBranch) : 'refs/heads/main';
  const store = root.repositoryStore(name);
  const repo = await StoreRepository.open(store, { cacheDir: options.cacheDir });
  if (repo.exists) throw new PackferryError(ErrorCode.Usage, `repository ${name} already exists`, { details: { exists: true } });
  await writeSettings(store, { public: options.public === true, description: options.description, denyNonFastForwards: options.denyNonFastForwards === true });
  await repo.init({ head });
  return (await describeRepository(root, name, { cacheDir: options.cacheDir }))!;
}

export async function editRepository(root: StoreRoot, name: string, edit: RepositoryEdit, options: { cacheDir?: string } = {}): Promise<RepositoryInfo> {
  const store = root.repositoryStore(name);
  if (!(await repositoryExists(root, name))) throw new PackferryError(ErrorCode.NotFound, `repository ${name} does not exist`);
  // Checked before anything is written: a refused edit changes nothing.
  const head = edit.defaultBranch === undefined ? undefined : branchRef(edit.defaultBranch);
  await updateSettings(store, (current) => {
    const next = { ...current };
    if (edit.public !== undefined) next.public = edit.public;
    if (edit.description !== undefined) next.description = edit.description ?? undefined;
    if (edit.denyNonFastForwards !== undefined) next.denyNonFastForwards = edit.denyNonFastForwards;
    applyFsckEdit(next, edit);
    return next;
  });
  if (head !== undefined) {
    const repo = await StoreRepository.open(store, { cacheDir: options.cacheDir });
    try {
      await updateRefs(repo, { edits: [], head });
    } finally {
      await repo.close();
    }
  }
  return (await describeRepository(root, name, options))!;
}

export async function deleteRepository(root: StoreRoot, name: string): Promise<void> {
  const store = root.repositoryStore(name);
  if (!(await repositoryExists(root, name))) throw new PackferryError(ErrorCode.NotFound, `repository ${name} does not exist`);
  const local = localFiles(store);
  if (local) {
    await rm(local.root, { recursive: true, force: true });
    return;
  }
  // The manifest first: from then on the repository no longer exists, whatever else is left.
  await store.delete(KEYS.manifest);
  for (const key of await store.list('')) await store.delete(key.key);
}

export function checkHookName(name: string): HookName {
  if (!(HOOK_NAMES as readonly string[]).includes(name)) {
    throw new PackferryError(ErrorCode.Usage, `unknown hook ${JSON.stringify(name)} (hooks: ${HOOK_NAMES.join(', ')})`);
  }
  return name as HookName;
}

export async function setHook(root: StoreRoot, name: string, hook: HookName, script: Buffer | undefined): Promise<void> {
  if (!(await repositoryExists(root, name))) throw new PackferryError(ErrorCode.NotFound, `repository ${name} does not exist`);
  const store = root.repositoryStore(name);
  if (script === undefined) await store.delete(`hooks/${hook}`);
  else await store.put(`hooks/${hook}`, script, { contentType: 'text/plain' });
}

export async function listRepositories(root: StoreRoot, options: { cacheDir?: string; filter?: (name: string, settings: RepositorySettings) => boolean } = {}): Promise<RepositoryInfo[]> {
  const out: RepositoryInfo[] = [];
  for (const name of await root.list()) {
    const settings = await readSettings(root.repositoryStore(name));
    if (options.filter && !options.filter(name, settings)) continue;
    const info = await describeRepository(root, name, options);
    if (info) out.push(info);
  }
  return out;
}

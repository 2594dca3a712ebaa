// Checking a repository in a store end to end (`packferry store verify`),
// what `git fsck` and `git verify-pack` are to a Git repository:
//
// 1. the manifest parses, names each layer once, and never names a layer
//    both live and retired; its refs are a set Git can hold (valid names,
//    each once, no directory/file conflicts: store/ref-rules.ts) and HEAD
//    names a ref under refs/;
// 2. each layer's pack and index exist with the sizes the manifest records,
//    the index parses (its own checksum included) and belongs to the pack
//    (the pack checksum it records is the layer's name), and the pack's
//    header and trailing checksum are right (every byte of the pack is
//    hashed); with `full`, the pack is indexed afresh and the result compared
//    with the stored index (git verify-pack), which checks every object, and
//    every object is checked as Git's receive.fsckObjects checks it (strict,
//    with the repository's fsck levels: what a push of it would be refused
//    for), the .gitmodules and .gitattributes blobs trees name included;
// 3. every ref's closure is complete across the layers: a walk from all refs
//    reads every commit, tree and tag (re-hashing each against its id and
//    checking its type) and finds every blob; annotated tags' peeled values
//    are what the manifest records; every branch names a commit;
// 4. Git's derived files (objects/info/packs, packed-refs, info/refs, HEAD)
//    agree with the manifest. When they do not, what Git's clients get
//    decides (checkGitFiles): a complete older state (a writer stopped
//    between its commit and its last step) is a warning, since every clone
//    still gets a consistent repository and the next write rewrites them;
//    anything a clone fails on or gets wrong — a missing file (a first sync
//    stopped after its commit leaves none), a ref in none of the listed
//    packs, a listed pack that is gone, packed-refs and info/refs that
//    disagree — is an error;
// 5. files no manifest names (orphans of an interrupted write) are
//    warnings, as are stale lock files;
// 6. LFS objects sit under their own names (with `full`, their SHA-256 is
//    checked).
//
// Errors make the report not ok; warnings do not (unless the caller is
// strict). Layers of an object store are downloaded once, into a temporary
// directory removed at the end, and hashed on the way: the check reads the
// store's bytes, never a local cache's.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { throwIfAborted } from '../core/abort.js';
import { PackferryError, ErrorCode } from '../core/errors.js';
import { isHeadTarget } from '../core/refs.js';
import { formatFsckProblem, mergeFindings, type FsckFindings, type FsckLevel, type FsckMsgId, type FsckOptions, type FsckProblem } from '../core/fsck.js';
import { FileMode, hashObject, iterateTree, objectTypeFromPackType, parseCommitLinks, parseTag, type ObjectType } from '../core/object.js';
import { oidFromHex, oidToHex, type ObjectId } from '../core/oid.js';
import type { ProgressSink } from '../core/progress.js';
import { PACK_HEADER_SIZE, PackObjectType } from '../pack/format.js';
import { PackIndex } from '../pack/idx.js';
import { verifyPack } from '../pack/verify.js';
import { localFiles, type BlobInfo, type BlobStore } from './backend.js';
import { idxKey, KEYS, lfsKey, packKey, renderHead, renderInfoPacks, renderInfoRefs, renderPackedRefs } from './layout.js';
import { heldByDeadLocalProcess, readLockOwner } from './lock.js';
import { parseManifest, type Manifest } from './manifest.js';
import { LayeredObjects, type Layer, type LayerFiles } from './objects.js';
import { finishFsck } from './fsck.js';
import { refSetProblems, refTargetProblem } from './ref-rules.js';
import { readSettings, repositoryFsckOptions } from './root.js';

export type ProblemSeverity = 'error' | 'warning';

/** What kind of problem, for scripts (stable names). */
export type ProblemKind =
  | 'manifest'
  | 'missing-file'
  | 'size-mismatch'
  | 'bad-index'
  | 'bad-pack'
  | 'index-mismatch'
  | 'missing-object'
  | 'bad-object'
  | 'bad-ref'
  | 'stale-git-file'
  | 'bad-git-file'
  | 'orphan'
  | 'lock'
  | 'lfs'
  | 'fsck';

export interface StoreProblem {
  severity: ProblemSeverity;
  kind: ProblemKind;
  message: string;
  /** The store key concerned, if one. */
  key?: string;
  oid?: ObjectId;
}

export interface VerifyStoreOptions {
  /** Also index every pack afresh and compare with its index, and hash every LFS object. */
  full?: boolean;
  /** Threads for indexing with `full`. */
  threads?: number;
  /** Where an object store's layers are downloaded while checked (default: the OS temporary directory). */
  workDir?: string;
  /**
   * With `full`, objects are checked as Git's transfer checks do (strict),
   * with the levels and skip list of the repository's
   * packferry/settings.json, and these on top (`store verify --fsck`).
   */
  fsck?: { levels?: Partial<Record<FsckMsgId, FsckLevel>>; skipList?: ReadonlySet<ObjectId> };
  /** A lock file not refreshed for this long is reported as stale (default 10 minutes, as the lock's own). */
  staleLockMs?: number;
  progress?: ProgressSink;
  signal?: AbortSignal;
}

export interface VerifyStoreReport {
  /** No errors (warnings allowed). */
  ok: boolean;
  store: string;
  generation?: number;
  layers: number;
  /** Objects in the listed layers (duplicates across layers counted once per layer). */
  objects: number;
  refs: number;
  /** Distinct objects reached from the refs. */
  reachable: number;
  /** Layers whose index was rebuilt from the pack (`full`). */
  indexed: number;
  /** Retired layers whose files are still there (kept for the grace period). */
  retiredPresent: number;
  lfsObjects: number;
  /** LFS objects whose SHA-256 was checked (`full`). */
  lfsChecked: number;
  problems: StoreProblem[];
}

/** Most messages of one kind about individual objects; the rest are counted. */
const MAX_OBJECT_MESSAGES = 20;
const DEFAULT_STALE_LOCK_MS = 10 * 60 * 1000;
const LAYER_NAME = /^pack-[0-9a-f]{40}$/;
const LFS_KEY = /^lfs\/objects\/([0-9a-f]{2})\/([0-9a-f]{2})\/([0-9a-f]{64})$/;

class Problems {
  readonly list: StoreProblem[] = [];
  private readonly perKind = new Map<ProblemKind, number>();

  add(severity: ProblemSeverity, kind: ProblemKind, message: string, extra: { key?: string; oid?: ObjectId } = {}): void {
    const n = (this.perKind.get(kind) ?? 0) + 1;
    this.perKind.set(kind, n);
    if ((kind === 'missing-object' || kind === 'bad-object' || kind === 'fsck') && n > MAX_OBJECT_MESSAGES) return;
    this.list.push({ severity, kind, message, ...extra });
  }

  error(kind: ProblemKind, message: string, extra?: { key?: string; oid?: ObjectId }): void {
    this.add('error', kind, message, extra);
  }

  warning(kind: ProblemKind, message: string, extra?: { key?: string; oid?: ObjectId }): void {
    this.add('warning', kind, message, extra);
  }

  /** Adds "... and N more" for kinds whose messages were capped. */
  finish(): StoreProblem[] {
    for (const kind of ['missing-object', 'bad-object', 'fsck'] as const) {
      const n = this.perKind.get(kind) ?? 0;
      const what = kind === 'missing-object' ? 'missing objects' : kind === 'bad-object' ? 'bad objects' : 'fsck problems';
      if (n > MAX_OBJECT_MESSAGES) this.list.push({ severity: 'error', kind, message: `... and ${n - MAX_OBJECT_MESSAGES} more ${what}` });
    }
    return this.list;
  }
}

function age(info: BlobInfo, now: number): string {
  const s = Math.max(0, Math.round((now - info.lastModified.getTime()) / 1000));
  if (s < 120) return `${s} s old`;
  if (s < 7200) return `${Math.round(s / 60)} min old`;
  return `${Math.round(s / 3600)} h old`;
}

/** Local paths of the layers' packs (in place for a directory store, downloaded otherwise). */
class CheckedLayerFiles implements LayerFiles {
  readonly paths = new Map<string, string>();
  async packPath(name: string): Promise<string> {
    const path = this.paths.get(name);
    if (path === undefined) throw new PackferryError(ErrorCode.Internal, `layer ${name} was not fetched for checking`);
    return path;
  }
}

interface PackCheck {
  /** The pack's header and trailer are right and its bytes hash to its name. */
  intact: boolean;
  objectCount?: number;
}

/**
 * Hashes a pack as it streams past (and, for an object store, writes it to
 * `copyTo`): checks the header, that the trailing checksum is the hash of
 * everything before it, and that it is the layer's name.
 */
async function checkPackBytes(
  body: AsyncIterable<Uint8Array>,
  copyTo: string | undefined,
  name: string,
  problems: Problems,
  signal?: AbortSignal,
): Promise<PackCheck> {
  const hash = createHash('sha1');
  let tail = Buffer.alloc(0);
  let header = Buffer.alloc(0);
  let total = 0;
  async function* tap(source: AsyncIterable<Uint8Array>): AsyncGenerator<Buffer> {
    for await (const c of source) {
      throwIfAborted(signal);
      const chunk = Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
      total += chunk.length;
      if (header.length < PACK_HEADER_SIZE) header = Buffer.concat([header, chunk.subarray(0, PACK_HEADER_SIZE - header.length)]);
      // Everything but the last 20 bytes seen so far goes into the hash.
      if (chunk.length >= 20) {
        hash.update(tail);
        hash.update(chunk.subarray(0, chunk.length - 20));
        tail = Buffer.from(chunk.subarray(chunk.length - 20));
      } else {
        const joined = Buffer.concat([tail, chunk]);
        hash.update(joined.subarray(0, joined.length - 20 < 0 ? 0 : joined.length - 20));
        tail = joined.subarray(Math.max(0, joined.length - 20));
      }
      yield chunk;
    }
  }
  const key = packKey(name);
  if (copyTo !== undefined) {
    await pipeline(Readable.from(body), tap, createWriteStream(copyTo), { signal });
  } else {
    for await (const _ of tap(body)) {
      // consumed for the hash
    }
  }
  if (total < PACK_HEADER_SIZE + 20) {
    problems.error('bad-pack', `layer ${name}: the pack is truncated (${total} bytes)`, { key });
    return { intact: false };
  }
  let intact = true;
  if (header.toString('latin1', 0, 4) !== 'PACK') {
    problems.error('bad-pack', `layer ${name}: not a pack (bad signature)`, { key });
    return { intact: false };
  }
  const version = header.readUInt32BE(4);
  if (version !== 2 && version !== 3) {
    problems.error('bad-pack', `layer ${name}: unsupported pack version ${version}`, { key });
    intact = false;
  }
  const digest = hash.digest();
  if (!digest.equals(tail)) {
    problems.error('bad-pack', `layer ${name}: pack checksum mismatch (the trailer says ${tail.toString('hex')}, the bytes hash to ${digest.toString('hex')}): the pack is corrupt`, { key });
    intact = false;
  } else if (`pack-${tail.toString('hex')}` !== name) {
    problems.error('bad-pack', `layer ${name}: the pack stored under this name is pack-${tail.toString('hex')}`, { key });
    intact = false;
  }
  return { intact, objectCount: header.readUInt32BE(8) };
}

/** A ref as Git's files list it. */
interface GitRef {
  name: string;
  oid: ObjectId;
  peeled?: ObjectId;
}

/** packed-refs: "<oid> <name>" lines, each optionally followed by "^<peeled>" (the header skipped); undefined if malformed. */
function parsePackedRefs(text: string): GitRef[] | undefined {
  const refs: GitRef[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('^')) {
      if (!/^\^[0-9a-f]{40}$/.test(line) || refs.length === 0) return undefined;
      refs[refs.length - 1].peeled = line.slice(1);
      continue;
    }
    // The name is the rest of the line, as Git reads it (a bad name is reported as one, not as a bad file).
    const m = /^([0-9a-f]{40}) (.+)$/.exec(line);
    if (!m) return undefined;
    refs.push({ name: m[2], oid: m[1] });
  }
  return refs;
}

/** info/refs: "<oid>\t<name>" lines, each tag's followed by "<peeled>\t<name>^{}"; undefined if malformed. */
function parseInfoRefs(text: string): GitRef[] | undefined {
  const refs: GitRef[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const m = /^([0-9a-f]{40})\t(.+)$/.exec(line);
    if (!m) return undefined;
    if (m[2].endsWith('^{}')) {
      const last = refs[refs.length - 1];
      if (last === undefined || last.name !== m[2].slice(0, -3)) return undefined;
      last.peeled = m[1];
    } else {
      refs.push({ name: m[2], oid: m[1] });
    }
  }
  return refs;
}

/** Pack names ("pack-<hex>") listed in objects/info/packs; undefined if malformed. */
function parseInfoPacks(text: string): string[] | undefined {
  const names: string[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const m = /^P (pack-[0-9a-f]{40})\.pack$/.exec(line);
    if (!m) return undefined;
    names.push(m[1]);
  }
  return names;
}

/** Verifies the repository stored in `blobs`. Throws ERR_NOT_FOUND if there is no store there at all. */
export async function verifyStore(blobs: BlobStore, options: VerifyStoreOptions = {}): Promise<VerifyStoreReport> {
  const signal = options.signal;
  const problems = new Problems();
  const now = Date.now();
  const report: VerifyStoreReport = {
    ok: false,
    store: blobs.description,
    layers: 0,
    objects: 0,
    refs: 0,
    reachable: 0,
    indexed: 0,
    retiredPresent: 0,
    lfsObjects: 0,
    lfsChecked: 0,
    problems: [],
  };
  // The manifest first, then the files: a layer a writer adds meanwhile is at worst an orphan here,
  // while a listed layer's files outlive its retirement by the grace period.
  const manifestBytes = await blobs.get(KEYS.manifest, signal);
  const packFiles = new Map((await blobs.list('objects/pack/', signal)).map((i) => [i.key, i]));
  if (manifestBytes === undefined) {
    // Git's files without a manifest: the manifest was lost. Only layers, config and locks: a first write
    // stopped before its commit point, and the repository is (still) empty.
    const gitFiles = [];
    for (const key of [KEYS.head, KEYS.packedRefs, KEYS.infoRefs, KEYS.infoPacks]) if (await blobs.head(key, signal)) gitFiles.push(key);
    const config = await blobs.head(KEYS.config, signal);
    const locks = await blobs.list(KEYS.locks, signal);
    if (gitFiles.length === 0 && packFiles.size === 0 && !config && locks.length === 0) {
      throw new PackferryError(ErrorCode.NotFound, `${blobs.description}: no packferry store here (no ${KEYS.manifest})`);
    }
    if (gitFiles.length > 0) {
      problems.error('manifest', `${KEYS.manifest} is missing, but Git's files (${gitFiles.join(', ')}) are there: the manifest was lost`, { key: KEYS.manifest });
    } else {
      report.generation = 0;
      reportLeftovers(packFiles, new Set(), problems, now);
      await reportLocks(blobs, problems, now, options);
    }
    report.problems = problems.finish();
    report.ok = report.problems.every((p) => p.severity !== 'error');
    return report;
  }
  let manifest: Manifest;
  try {
    manifest = parseManifest(manifestBytes);
  } catch (err) {
    if (!(err instanceof PackferryError) || err.code === ErrorCode.Usage) throw err;
    problems.error('manifest', err.message, { key: KEYS.manifest });
    report.problems = problems.finish();
    return report;
  }
  report.generation = manifest.generation;
  report.layers = manifest.layers.length;
  report.refs = manifest.refs.length;

  // 1. The manifest's own consistency.
  const live = new Set<string>();
  for (const l of manifest.layers) {
    if (live.has(l.name)) problems.error('manifest', `layer ${l.name} is listed twice`, { key: KEYS.manifest });
    live.add(l.name);
  }
  const retired = new Set<string>();
  for (const r of manifest.retired) {
    if (typeof r.name !== 'string' || !LAYER_NAME.test(r.name)) {
      problems.error('manifest', `bad retired layer name ${JSON.stringify(r.name)}`, { key: KEYS.manifest });
      continue;
    }
    if (live.has(r.name)) {
      problems.error('manifest', `layer ${r.name} is both listed and retired: compaction would delete a live layer`, { key: KEYS.manifest });
    }
    retired.add(r.name);
    if (packFiles.has(packKey(r.name)) || packFiles.has(idxKey(r.name))) report.retiredPresent++;
  }
  // The refs as a set: what the store's ref transaction refuses to create (store/ref-rules.ts).
  for (const p of refSetProblems(manifest.refs.map((r) => r.name))) {
    problems.error('bad-ref', `${p.message} (the manifest holds ${p.refs.length === 1 ? 'it' : 'both'}, and packed-refs and info/refs are written from it)`, { key: KEYS.manifest });
  }
  const names = new Set(manifest.refs.map((r) => r.name));
  if (!isHeadTarget(manifest.head)) {
    problems.error(
      'bad-ref',
      `HEAD names ${JSON.stringify(manifest.head)}, which is not a ref HEAD can name (a valid ref name under refs/): ${
        manifest.head.startsWith('refs/') ? 'clones check nothing out' : headOutsideRefs(localFiles(blobs) !== undefined)
      }`,
      { key: KEYS.manifest },
    );
  } else if (manifest.refs.length > 0 && !names.has(manifest.head)) {
    problems.warning('bad-ref', `HEAD names ${manifest.head}, which does not exist: clones will not check out a branch`);
  }

  // 2. Layers.
  // A directory store's packs are read in place; an object store's are downloaded.
  const local = localFiles(blobs);
  const workDir = local ? undefined : await mkdtemp(join(options.workDir ?? tmpdir(), 'packferry-verify-'));
  const files = new CheckedLayerFiles();
  const readable: Layer[] = [];
  let objects: LayeredObjects | undefined;
  const fsck = options.full ? await verifyFsckOptions(blobs, options) : undefined;
  const findings: FsckFindings[] = [];
  try {
    let done = 0;
    for (const l of manifest.layers) {
      throwIfAborted(signal);
      options.progress?.({ title: 'Checking layers', done, total: manifest.layers.length });
      done++;
      const pk = packKey(l.name);
      const ik = idxKey(l.name);
      const packInfo = packFiles.get(pk);
      const idxInfo = packFiles.get(ik);
      if (!packInfo) problems.error('missing-file', `layer ${l.name}: ${pk} is missing`, { key: pk });
      else if (packInfo.size !== l.packBytes) problems.error('size-mismatch', `layer ${l.name}: the pack is ${packInfo.size} bytes, the manifest says ${l.packBytes}`, { key: pk });
      if (!idxInfo) problems.error('missing-file', `layer ${l.name}: ${ik} is missing`, { key: ik });
      else if (idxInfo.size !== l.idxBytes) problems.error('size-mismatch', `layer ${l.name}: the index is ${idxInfo.size} bytes, the manifest says ${l.idxBytes}`, { key: ik });

      let index: PackIndex | undefined;
      let idxBytes: Buffer | undefined;
      if (idxInfo) {
        idxBytes = await blobs.get(ik, signal);
        if (idxBytes === undefined) {
          problems.error('missing-file', `layer ${l.name}: ${ik} is missing`, { key: ik });
        } else {
          try {
            index = PackIndex.parse(idxBytes);
          } catch (err) {
            if (!(err instanceof PackferryError)) throw err;
            problems.error('bad-index', `layer ${l.name}: ${err.message}`, { key: ik });
          }
        }
      }
      if (index) {
        if (`pack-${index.packChecksum.toString('hex')}` !== l.name) {
          problems.error('bad-index', `layer ${l.name}: the index belongs to another pack (pack-${index.packChecksum.toString('hex')})`, { key: ik });
        }
        if (index.count !== l.objects) problems.error('manifest', `layer ${l.name}: the index lists ${index.count} objects, the manifest says ${l.objects}`, { key: KEYS.manifest });
        report.objects += index.count;
      }
      if (!packInfo) continue;
      let packPath: string;
      let check: PackCheck;
      if (local) {
        packPath = local.pathOf(pk);
        check = await checkPackBytes(createReadStream(packPath, { highWaterMark: 1 << 20 }), undefined, l.name, problems, signal);
      } else {
        const body = await blobs.getStream(pk, signal);
        if (!body) {
          problems.error('missing-file', `layer ${l.name}: ${pk} is missing`, { key: pk });
          continue;
        }
        packPath = join(workDir!, `${l.name}.pack`);
        check = await checkPackBytes(body, packPath, l.name, problems, signal);
      }
      if (index && check.objectCount !== undefined && check.objectCount !== index.count) {
        problems.error('index-mismatch', `layer ${l.name}: the pack holds ${check.objectCount} objects, its index lists ${index.count}`, { key: pk });
      }
      files.paths.set(l.name, packPath);
      if (options.full && index && idxBytes && check.intact) {
        const idxPath = local ? local.pathOf(ik) : join(workDir!, `${l.name}.idx`);
        if (!local) await writeFile(idxPath, idxBytes);
        try {
          const result = await verifyPack(packPath, idxPath, { threads: options.threads, signal, fsck });
          report.indexed++;
          if (result.indexed.fsck) findings.push(result.indexed.fsck);
          for (const p of result.problems) problems.error('index-mismatch', `layer ${l.name}: ${p}`, { key: ik });
        } catch (err) {
          if (!(err instanceof PackferryError) || err.code === ErrorCode.Aborted) throw err;
          problems.error('bad-pack', `layer ${l.name}: ${err.message}`, { key: pk });
        }
      }
      // A pack that fails its checksum is still walked: the walk then names the objects that are damaged.
      if (index) readable.push({ name: l.name, index });
    }
    options.progress?.({ title: 'Checking layers', done, total: manifest.layers.length, finished: true });

    // 3. Every ref's closure.
    objects = new LayeredObjects(readable, files);
    report.reachable = await walkRefs(objects, manifest, problems, options);
    if (fsck) await reportFsck(findings, objects, fsck, problems);

    // 4. Git's files.
    await checkGitFiles(blobs, manifest, readable, packFiles, problems, signal);
  } finally {
    await objects?.close();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  }

  // 5. Files nobody lists, and locks of writers that died.
  reportLeftovers(packFiles, new Set([...live, ...retired]), problems, now);
  await reportLocks(blobs, problems, now, options);

  // 6. LFS objects.
  await checkLfs(blobs, report, problems, options);

  report.problems = problems.finish();
  report.ok = report.problems.every((p) => p.severity !== 'error');
  return report;
}

/** The repository's own fsck settings, with the caller's on top. */
async function verifyFsckOptions(blobs: BlobStore, options: VerifyStoreOptions): Promise<FsckOptions> {
  const settings = await readSettings(blobs, options.signal).catch(() => ({ fsck: undefined, fsckSkipList: undefined }));
  return repositoryFsckOptions({
    fsck: { ...settings.fsck, ...options.fsck?.levels },
    fsckSkipList: [...(settings.fsckSkipList ?? []), ...(options.fsck?.skipList ?? [])],
  });
}

/** What the object checks of every layer found, with the special blobs they name read from any layer. */
async function reportFsck(findings: FsckFindings[], objects: LayeredObjects, options: FsckOptions, problems: Problems): Promise<void> {
  const found = mergeFindings(findings);
  const all: FsckProblem[] = [...found.problems, ...(await finishFsck(found, { header: (oid) => objects.tryReadHeader(oid), read: (oid) => objects.tryRead(oid) }, options))];
  const seen = new Set<string>();
  for (const p of all) {
    // The same object in two layers is one problem.
    const key = `${p.oid} ${p.id} ${p.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    problems.add(p.severity, 'fsck', formatFsckProblem(p).replace(/^(error|warning): /, ''), { oid: p.oid });
  }
  for (let k = 0; k < found.droppedErrors; k++) problems.add('error', 'fsck', 'an object fails the checks (not listed: too many)');
}

/** Files under objects/pack/ that belong to no listed layer: orphans of interrupted writes. */
function reportLeftovers(packFiles: Map<string, BlobInfo>, listed: Set<string>, problems: Problems, now: number): void {
  for (const [key, info] of packFiles) {
    const m = /^objects\/pack\/(pack-[0-9a-f]{40})\.(pack|idx)$/.exec(key);
    if (m && listed.has(m[1])) continue;
    const what = m ? 'is not listed in the manifest' : 'is not part of the store';
    problems.warning('orphan', `${key} ${what} (${age(info, now)}): left by an interrupted write; \`packferry store compact\` deletes it once older than the grace period`, { key });
  }
}

/** Lock files of writers that died (not refreshed, or of a process of this host that is gone). */
async function reportLocks(blobs: BlobStore, problems: Problems, now: number, options: VerifyStoreOptions): Promise<void> {
  const staleMs = options.staleLockMs ?? DEFAULT_STALE_LOCK_MS;
  for (const info of await blobs.list(KEYS.locks, options.signal)) {
    if (now - info.lastModified.getTime() > staleMs) {
      problems.warning('lock', `${info.key} is a writer lock not refreshed for ${age(info, now).replace(' old', '')}: its writer died; the next writer removes it`, { key: info.key });
    } else if (await heldByDeadLocalProcess(blobs, info.key)) {
      const who = await readLockOwner(blobs, info.key);
      problems.warning('lock', `${info.key} is a writer lock of pid ${who?.pid}, which no longer runs on this host: the next writer removes it`, { key: info.key });
    }
  }
}

/** Walks from every ref; returns how many distinct objects were reached. */
async function walkRefs(objects: LayeredObjects, manifest: Manifest, problems: Problems, options: VerifyStoreOptions): Promise<number> {
  const marks = new Map<Layer, Uint8Array>();
  let reached = 0;
  /** Marks an object seen; false if it was seen before. */
  const mark = (layer: Layer, position: number): boolean => {
    let map = marks.get(layer);
    if (!map) {
      map = new Uint8Array(layer.index.count);
      marks.set(layer, map);
    }
    if (map[position]) return false;
    map[position] = 1;
    reached++;
    return true;
  };
  interface Item {
    oid: ObjectId;
    expect?: ObjectType;
    from: string;
  }
  const stack: Item[] = [];
  const missing = (oid: ObjectId, from: string) => problems.error('missing-object', `object ${oid} is missing (${from})`, { oid });
  const visit = async (item: Item): Promise<void> => {
    const hit = objects.locateRaw(oidFromHex(item.oid));
    if (!hit) return missing(item.oid, item.from);
    if (!mark(hit.layer, hit.position)) return;
    let obj;
    try {
      const reader = await objects.reader(hit.layer);
      obj = reader.readAt(hit.layer.index.offsetAt(hit.position));
    } catch (err) {
      if (!(err instanceof PackferryError)) throw err;
      return problems.error('bad-object', `object ${item.oid} in layer ${hit.layer.name} cannot be read: ${err.message}`, { oid: item.oid });
    }
    const type = objectTypeFromPackType(obj.type);
    if (hashObject(type, obj.data) !== item.oid) {
      return problems.error('bad-object', `object ${item.oid} in layer ${hit.layer.name} is corrupt: its content hashes to ${hashObject(type, obj.data)}`, { oid: item.oid });
    }
    if (item.expect !== undefined && type !== item.expect) {
      return problems.error('bad-object', `object ${item.oid} is a ${type}, but ${item.from} says it is a ${item.expect}`, { oid: item.oid });
    }
    try {
      switch (obj.type) {
        case PackObjectType.Commit: {
          const links = parseCommitLinks(obj.data);
          const from = `parent of commit ${item.oid}`;
          stack.push({ oid: links.tree, expect: 'tree', from: `tree of commit ${item.oid}` });
          for (const p of links.parents) stack.push({ oid: p, expect: 'commit', from });
          break;
        }
        case PackObjectType.Tree: {
          for (const entry of iterateTree(obj.data)) {
            if (entry.mode === FileMode.gitlink) continue; // a submodule's commit lives in another repository
            if (entry.mode === FileMode.tree) {
              stack.push({ oid: oidToHex(entry.oid), expect: 'tree', from: `entry ${JSON.stringify(entry.name.toString('utf8'))} of tree ${item.oid}` });
              continue;
            }
            const blob = objects.locateRaw(entry.oid);
            if (!blob) missing(oidToHex(entry.oid), `blob ${JSON.stringify(entry.name.toString('utf8'))} of tree ${item.oid}`);
            else mark(blob.layer, blob.position);
          }
          break;
        }
        case PackObjectType.Tag: {
          const tag = parseTag(obj.data);
          stack.push({ oid: tag.object, expect: tag.objectType, from: `target of tag ${item.oid}` });
          break;
        }
        default:
          break;
      }
    } catch (err) {
      if (!(err instanceof PackferryError)) throw err;
      problems.error('bad-object', `${type} ${item.oid} is malformed: ${err.message}`, { oid: item.oid });
    }
  };
  let refsDone = 0;
  for (const ref of manifest.refs) {
    throwIfAborted(options.signal);
    stack.push({ oid: ref.oid, from: `ref ${ref.name}` });
    while (stack.length > 0) {
      if ((reached & 0xfff) === 0) throwIfAborted(options.signal);
      await visit(stack.pop()!);
    }
    options.progress?.({ title: 'Checking connectivity', done: ++refsDone, total: manifest.refs.length });
    await checkPeeled(objects, ref, problems);
    await checkRefTarget(objects, ref, problems);
  }
  options.progress?.({ title: 'Checking connectivity', done: refsDone, total: manifest.refs.length, finished: true });
  return reached;
}

/** A branch names a commit (Git's refs layer, store/ref-rules.ts). */
async function checkRefTarget(objects: LayeredObjects, ref: Manifest['refs'][number], problems: Problems): Promise<void> {
  let head;
  try {
    head = await objects.tryReadHeader(ref.oid);
  } catch {
    return; // reported by the walk
  }
  if (!head || head.type < 1 || head.type > 4) return;
  const problem = refTargetProblem(ref.name, ref.oid, objectTypeFromPackType(head.type));
  if (problem !== undefined) problems.error('bad-ref', `ref ${ref.name}: ${problem}: Git refuses it, and every mirror of this store to a Git server fails`, { oid: ref.oid });
}

/** The manifest's peeled value of a ref is where its chain of tags ends (undefined for a ref that is not a tag). */
async function checkPeeled(objects: LayeredObjects, ref: Manifest['refs'][number], problems: Problems): Promise<void> {
  let cur = ref.oid;
  let depth = 0;
  for (; depth < 64; depth++) {
    let obj;
    try {
      obj = await objects.tryRead(cur);
    } catch {
      return; // reported by the walk
    }
    if (!obj) return; // reported by the walk
    if (obj.type !== PackObjectType.Tag) break;
    try {
      cur = parseTag(obj.data).object;
    } catch {
      return;
    }
  }
  const actual = depth === 0 ? undefined : cur;
  if (actual !== ref.peeled) {
    problems.error(
      'bad-ref',
      actual === undefined
        ? `ref ${ref.name} is not an annotated tag, but the manifest records a peeled value ${ref.peeled}`
        : `ref ${ref.name} peels to ${actual}, but the manifest records ${ref.peeled ?? 'none'}: packed-refs and info/refs mislead clients`,
    );
  }
}

/** What Git's clients do with a HEAD file that does not say "ref: refs/..." (setup.c validate_headref). */
function headOutsideRefs(directory: boolean): string {
  return `${directory ? '`git clone` of the directory fails ("repository does not exist"), and ' : ''}\`git clone\` over plain HTTP checks nothing out ("remote HEAD refers to nonexistent ref")`;
}

/** What repairs Git's files: every write rewrites them from the manifest. */
const REWRITE = "the next `packferry mirror` or push into the store, or `packferry store compact`, rewrites Git's files from the manifest";

/** Up to three refs of a list, for messages. */
function someRefs(refs: string[]): string {
  return refs.length <= 3 ? refs.join(', ') : `${refs.slice(0, 3).join(', ')} and ${refs.length - 3} more`;
}

/**
 * Git's files against the manifest. Identical: nothing to say. Otherwise
 * what Git's clients get decides: a complete older state — HEAD names a
 * ref under refs/, packed-refs and info/refs agree and are valid sets of
 * refs, and every ref they list names an object in a pack that
 * objects/info/packs lists and whose files are there — is a warning (a
 * writer stopped between its commit and its last step; the next write
 * rewrites them). Anything else is an error saying which clone fails and how.
 */
async function checkGitFiles(
  blobs: BlobStore,
  manifest: Manifest,
  layers: Layer[],
  packFiles: Map<string, BlobInfo>,
  problems: Problems,
  signal?: AbortSignal,
): Promise<void> {
  const local = localFiles(blobs);
  if ((await blobs.head(KEYS.config, signal)) === undefined) {
    problems.warning('missing-file', `${KEYS.config} is missing: Git assumes the defaults`, { key: KEYS.config });
  }
  if (local && !(await stat(local.pathOf('refs')).then((s) => s.isDirectory(), () => false))) {
    problems.error('missing-file', `refs/ is missing: \`git clone\` of the directory does not recognise it as a repository`, { key: 'refs' });
  }
  const text = async (key: string) => (await blobs.get(key, signal))?.toString('utf8');
  const [head, packedRefs, infoRefs, infoPacks] = await Promise.all([KEYS.head, KEYS.packedRefs, KEYS.infoRefs, KEYS.infoPacks].map(text));
  const layerNames = manifest.layers.map((l) => l.name);
  const same = {
    head: head === renderHead(manifest.head),
    packedRefs: packedRefs === renderPackedRefs(manifest.refs),
    infoRefs: infoRefs === renderInfoRefs(manifest.refs),
    infoPacks: infoPacks === renderInfoPacks(layerNames),
  };
  if (same.head && same.packedRefs && same.infoRefs && same.infoPacks) return;

  // How Git reads the files in place: `git clone PATH` of a directory store, or of a copy of a bucket.
  const inPlace = local ? '`git clone` of the directory' : 'Git reading a copy of the files (`git clone` of a copy of the bucket)';
  let failures = 0;
  const broken = (key: string, message: string, oid?: ObjectId) => {
    failures++;
    problems.error('bad-git-file', `${message}; ${REWRITE}`, { key, ...(oid ? { oid } : {}) });
  };
  /** Files behind the manifest (or differing in form) that Git's clients can still use. */
  const lags: { key: string; why: string; older: boolean }[] = [];

  // packed-refs and info/refs: the refs Git's clients see (by path, and over plain HTTP).
  const refsFile = (key: string, body: string | undefined, isSame: boolean, parse: (t: string) => GitRef[] | undefined): GitRef[] | undefined => {
    if (body === undefined) return undefined;
    if (isSame) return manifest.refs;
    const refs = parse(body);
    if (refs === undefined) {
      broken(key, `${key} is malformed: Git's clients cannot read its refs`);
      return undefined;
    }
    for (const p of refSetProblems(refs.map((r) => r.name))) broken(key, `${key}: ${p.message}`);
    const current = new Map(manifest.refs.map((r) => [r.name, r]));
    const listed = new Set(refs.map((r) => r.name));
    let differ = 0;
    for (const r of refs) {
      const m = current.get(r.name);
      if (m === undefined || m.oid !== r.oid || m.peeled !== r.peeled) differ++;
    }
    for (const name of current.keys()) if (!listed.has(name)) differ++;
    lags.push({ key, why: differ === 0 ? 'differs from the manifest in form only' : `is behind the manifest (${differ} ref${differ === 1 ? '' : 's'} differ)`, older: differ > 0 });
    return refs;
  };
  const packed = refsFile(KEYS.packedRefs, packedRefs, same.packedRefs, parsePackedRefs);
  const info = refsFile(KEYS.infoRefs, infoRefs, same.infoRefs, parseInfoRefs);
  if (infoRefs === undefined) broken(KEYS.infoRefs, `${KEYS.infoRefs} is missing: \`git clone\` over plain HTTP fails ("repository not found")`);
  if (packedRefs === undefined) {
    if (manifest.refs.length > 0) broken(KEYS.packedRefs, `${KEYS.packedRefs} is missing: ${inPlace} sees none of the ${manifest.refs.length} refs (an empty repository)`);
    else lags.push({ key: KEYS.packedRefs, why: 'is missing (the manifest has no refs either)', older: false });
  }
  if (packed && info) {
    const byName = new Map(packed.map((r) => [r.name, r]));
    const differ: string[] = [];
    for (const r of info) {
      const p = byName.get(r.name);
      if (p === undefined || p.oid !== r.oid || p.peeled !== r.peeled) differ.push(r.name);
      byName.delete(r.name);
    }
    differ.push(...byName.keys());
    if (differ.length > 0) {
      broken(
        KEYS.infoRefs,
        `${KEYS.packedRefs} and ${KEYS.infoRefs} disagree about ${differ.length} ref${differ.length === 1 ? '' : 's'} (${someRefs(differ)}): ${inPlace} and \`git clone\` over plain HTTP get different refs`,
      );
    }
  }

  // objects/info/packs: the packs a plain-HTTP client fetches from; every ref it is shown must be in one.
  const gitRefs = info ?? packed ?? [];
  let listed: string[] | undefined;
  if (infoPacks === undefined) {
    if (gitRefs.length > 0 || manifest.refs.length > 0) broken(KEYS.infoPacks, `${KEYS.infoPacks} is missing: \`git clone\` over plain HTTP finds none of the refs' objects and fails`);
    else lags.push({ key: KEYS.infoPacks, why: 'is missing (no refs need it)', older: false });
  } else if (same.infoPacks) {
    listed = layerNames;
  } else {
    listed = parseInfoPacks(infoPacks);
    if (listed === undefined) {
      broken(KEYS.infoPacks, `${KEYS.infoPacks} is malformed: \`git clone\` over plain HTTP cannot read it`);
    } else {
      const absent = listed.filter((n) => !packFiles.has(packKey(n)) || !packFiles.has(idxKey(n)));
      for (const n of absent) broken(KEYS.infoPacks, `${KEYS.infoPacks} lists ${n}, whose files are missing: \`git clone\` over plain HTTP fails`);
      lags.push({ key: KEYS.infoPacks, why: `lists other packs than the manifest (${listed.length} listed, ${layerNames.length} in the manifest)`, older: true });
    }
  }
  if (listed !== undefined && gitRefs.length > 0) {
    // The listed packs' indexes: the layers' (loaded already), others' (retired or orphaned layers) read here.
    const loaded = new Map(layers.map((l) => [l.name, l.index]));
    const indexes: PackIndex[] = [];
    for (const n of listed) {
      const have = loaded.get(n);
      if (have) {
        indexes.push(have);
        continue;
      }
      if (!packFiles.has(idxKey(n))) continue; // reported above
      const bytes = await blobs.get(idxKey(n), signal);
      if (!bytes) continue;
      try {
        indexes.push(PackIndex.parse(bytes));
      } catch {
        // A layer's own corrupt index is reported with the layer.
        if (!layerNames.includes(n)) broken(KEYS.infoPacks, `${KEYS.infoPacks} lists ${n}, whose index is corrupt: \`git clone\` over plain HTTP fails`);
      }
    }
    const unreachable = gitRefs.filter((r) => !indexes.some((ix) => ix.findRaw(oidFromHex(r.oid)) >= 0));
    if (unreachable.length > 0) {
      const first = unreachable[0];
      broken(
        info ? KEYS.infoRefs : KEYS.packedRefs,
        `${info ? KEYS.infoRefs : KEYS.packedRefs} names ${unreachable.length} ref${unreachable.length === 1 ? '' : 's'} (${someRefs(unreachable.map((r) => r.name))}) whose objects are in none of the packs ${KEYS.infoPacks} lists (${first.name} is ${first.oid}): \`git clone\` over plain HTTP fails ("Unable to find ${first.oid}")`,
        first.oid,
      );
    }
  }

  // HEAD: "ref: refs/...", or Git does not take the directory for a repository.
  if (head === undefined) {
    broken(KEYS.head, `${KEYS.head} is missing: ${headOutsideRefs(local !== undefined)}`);
  } else if (!same.head) {
    const target = /^ref: (\S+)\n?$/.exec(head)?.[1];
    if (target === undefined || !isHeadTarget(target)) {
      broken(
        KEYS.head,
        `${KEYS.head} says ${JSON.stringify(head.slice(0, 80))}, not "ref: " and a ref under refs/: ${head.startsWith('ref: refs/') ? 'clones check nothing out' : headOutsideRefs(local !== undefined)}`,
      );
    } else {
      lags.push({ key: KEYS.head, why: `names ${target}, the manifest ${manifest.head}`, older: true });
    }
  }

  for (const lag of lags) {
    // Beside an error, a lagging file is part of the broken state the error describes (and repaired with it).
    const state = failures > 0 ? '' : lag.older ? `: Git's clients see an older, complete state until ${REWRITE}` : `: Git's clients see the manifest's state; ${REWRITE}`;
    problems.warning('stale-git-file', `${lag.key} ${lag.why}${state}`, { key: lag.key });
  }
}

async function checkLfs(blobs: BlobStore, report: VerifyStoreReport, problems: Problems, options: VerifyStoreOptions): Promise<void> {
  const signal = options.signal;
  for (const info of await blobs.list(KEYS.lfs, signal)) {
    const m = LFS_KEY.exec(info.key);
    if (!m || m[1] !== m[3].slice(0, 2) || m[2] !== m[3].slice(2, 4)) {
      problems.warning('lfs', `${info.key} is not where an LFS object belongs (lfs/objects/<aa>/<bb>/<sha256>)`, { key: info.key });
      continue;
    }
    report.lfsObjects++;
    if (!options.full) continue;
    const body = await blobs.getStream(lfsKey(m[3]), signal);
    if (!body) {
      problems.error('lfs', `${info.key} vanished while being checked`, { key: info.key });
      continue;
    }
    const hash = createHash('sha256');
    for await (const chunk of body) hash.update(chunk);
    const digest = hash.digest('hex');
    report.lfsChecked++;
    if (digest !== m[3]) problems.error('lfs', `LFS object ${m[3]} is corrupt: its content hashes to ${digest}`, { key: info.key });
  }
}

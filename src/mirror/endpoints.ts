// The two ends of a mirror, whatever they are: a Git server reached through
// a transport (upload-pack / receive-pack), or a packferry store. The sync
// engine sees a source that lists refs and produces packs, and a target that
// lists refs and takes commands with a pack.
import type { FsckOptions } from '../core/fsck.js';
import type { AdvertisedRef } from '../protocol/advertisement.js';
import type { ReportStatus } from '../protocol/receive-pack.js';
import type { StoreRepository } from '../store/repository.js';
import { enumerateObjects } from '../store/walk.js';
import { generatePack } from '../store/pack-out.js';
import { ReceivePackClient, UploadPackClient, type FetchedPack, type FetchOptions, type PushOptions, type RemoteRefs } from '../transport/remote.js';
import type { Transport } from '../transport/types.js';
import { StoreTargetSession, type BeforeCommitHook } from './store-target.js';
import type { LfsSource } from './lfs.js';

export interface SourceSession {
  listRefs(prefixes?: string[]): Promise<RemoteRefs>;
  fetch(options: FetchOptions): Promise<FetchedPack>;
  close(): Promise<void>;
}

/** A push to a target; store targets also run `beforeCommit` (LFS integration), Git servers ignore it. */
export interface TargetPushOptions extends PushOptions {
  beforeCommit?: BeforeCommitHook;
}

export interface TargetSession {
  readonly refs: AdvertisedRef[];
  has(capability: string): boolean;
  push(options: TargetPushOptions): Promise<ReportStatus>;
  close(): Promise<void>;
}

export interface PeekedRefs {
  refs: AdvertisedRef[];
  head?: string;
}

export interface MirrorSource {
  readonly displayUrl: string;
  /** Refs read cheaply and exactly without opening a session, when possible. */
  peekRefs?(): Promise<PeekedRefs | undefined>;
  connect(options: { protocolVersion: 0 | 1 | 2; signal?: AbortSignal }): Promise<SourceSession>;
  /** LFS integration: where the source's Git LFS objects come from (http(s) sources; see lfsSourceFor in mirror/lfs.ts). */
  readonly lfs?: LfsSource;
}

export interface MirrorTarget {
  readonly displayUrl: string;
  peekRefs?(): Promise<PeekedRefs | undefined>;
  connect(options: { signal?: AbortSignal }): Promise<TargetSession>;
}

export function isTransport(x: unknown): x is Transport {
  return typeof (x as Transport).open === 'function';
}

/** A Git server as a source: its upload-pack. */
export function transportSource(transport: Transport): MirrorSource {
  return {
    displayUrl: transport.displayUrl,
    peekRefs: transport.peekRefs ? () => transport.peekRefs!() : undefined,
    connect: (options) => UploadPackClient.connect(transport, options),
  };
}

/** A Git server as a target: its receive-pack. */
export function transportTarget(transport: Transport): MirrorTarget {
  return {
    displayUrl: transport.displayUrl,
    peekRefs: transport.peekRefs ? () => transport.peekRefs!() : undefined,
    connect: (options) => ReceivePackClient.connect(transport, options),
  };
}

/** A store as a source: packs are generated from its layers, reusing their deltas. */
export function storeSource(displayUrl: string, open: () => Promise<StoreRepository>): MirrorSource {
  return {
    displayUrl,
    peekRefs: async () => {
      const repo = await open();
      try {
        if (!repo.exists) return undefined;
        return { refs: repo.refs.map((r) => ({ ...r })), head: repo.head };
      } finally {
        await repo.close();
      }
    },
    connect: async () => new StoreSourceSession(await open()),
  };
}

/**
 * A store as a target: each sync adds a layer through the store's ref
 * transaction. The repository read for peekRefs is reused by the session:
 * one request less per sync. Peeking is also where a sync with nothing to do
 * meets the store, so it brings Git's files up to date there if a stopped
 * writer left them behind (repository.ts ensurePublished: one small read
 * otherwise).
 * `fsck`: how the objects it receives are checked (default: Git's transfer checks).
 */
export function storeTarget(displayUrl: string, open: () => Promise<StoreRepository>, options: { fsck?: FsckOptions } = {}): MirrorTarget {
  let peeked: StoreRepository | undefined;
  return {
    displayUrl,
    peekRefs: async () => {
      peeked ??= await open();
      await peeked.ensurePublished();
      return { refs: peeked.refs.map((r) => ({ ...r })), head: peeked.head };
    },
    connect: async (connectOptions) => {
      let repo = peeked;
      peeked = undefined;
      if (repo === undefined) {
        repo = await open();
        await repo.ensurePublished(connectOptions.signal);
      }
      return StoreTargetSession.open(repo, { fsck: options.fsck });
    },
  };
}

class StoreSourceSession implements SourceSession {
  constructor(private readonly repo: StoreRepository) {}

  async listRefs(): Promise<RemoteRefs> {
    return { refs: this.repo.refs.map((r) => ({ ...r })), head: this.repo.head };
  }

  async fetch(options: FetchOptions): Promise<FetchedPack> {
    const objects = await this.repo.objects(options.signal);
    const wants = new Set(options.wants);
    const everything = options.haves.length === 0 && this.repo.refs.every((r) => wants.has(r.oid));
    const plan = await enumerateObjects(objects, options.wants, options.haves, { commitsOnly: options.filter === 'tree:0', everything, signal: options.signal });
    return { common: plan.common, pack: generatePack(objects, plan, { thin: options.thinPack, ofsDelta: options.ofsDelta }) };
  }

  async close(): Promise<void> {
    await this.repo.close();
  }
}

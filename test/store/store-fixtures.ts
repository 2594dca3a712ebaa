// Fixtures for the store's acceptance tests (test/store/*-store.test.ts):
// a `StoreSite` says where stores live (a directory, or a bucket of a real
// s3rver process), how the `packferry` command reaches them, how Git clones
// them, and how to watch what a command writes. `startFront` is a plain HTTP
// server that serves a store's files as a dumb-HTTP Git server would (query
// strings ignored, as S3 ignores them), optionally with some files replaced
// by earlier copies: what a clone that began before a change has read.
// `localCopy` copies a store's files into a directory, as Git reads a copy of
// a bucket in place.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { storeSource, storeTarget } from '../../src/mirror/endpoints.js';
import { mirror, type MirrorResult } from '../../src/mirror/sync.js';
import type { BlobStore } from '../../src/store/backend.js';
import { StoreRepository } from '../../src/store/repository.js';
import { openTransport } from '../../src/transport/open.js';
import { KEYS } from '../../src/store/layout.js';
import { parseManifest, type Manifest } from '../../src/store/manifest.js';
import { gitEnv } from '../support/git.js';
import { BIN, type CliResult } from '../support/mirror-fixtures.js';

export interface Observed<T> {
  result: T;
  /** Keys written (created or replaced). */
  written: string[];
  deleted: string[];
  /** Requests made to the store (object stores only). */
  requests?: number;
}

export interface StoreSite {
  /** "directory" or "s3". */
  readonly name: string;
  /** A new, empty store address. */
  address(label: string): string;
  /** The store's blobs, for inspecting and damaging it (closed by the site). */
  blobs(address: string): BlobStore;
  /** The store's blobs as the code under test reaches them in this process (S3: through the proxy that `observe` watches). */
  writerBlobs(address: string): BlobStore;
  /** Arguments every `packferry` run against this site needs. */
  cliArgs(): string[];
  cliEnv(): NodeJS.ProcessEnv;
  /** Where Git clones the store from: a path for directory stores, the bucket's plain-HTTP URL for S3. */
  cloneUrl(address: string): string;
  /** The store's files, fetched the way `startFront` serves them. */
  fetchKey(address: string, key: string): Promise<Buffer | undefined>;
  /** The store through the site's front: `overrides` (key -> bytes) are served instead of the stored files. */
  frontUrl(address: string, overrides: Record<string, Buffer>): string;
  /** Paths the front was asked for. */
  frontRequests(): string[];
  /** Where layers are cached when read in this process (object stores). */
  readonly cacheDir: string;
  /** Makes a key look `ms` old. */
  backdate(address: string, key: string, ms: number): Promise<void>;
  /** Runs `fn` and reports what it wrote to the store. */
  observe<T>(address: string, fn: () => Promise<T>): Promise<Observed<T>>;
  /** Object stores: the next matching request hangs (never reaches the server); for killing a writer at a known point. */
  hang?(match: (method: string, key: string) => boolean): { seen: () => boolean };
}

/** `packferry ARGS` in a child process. */
export function packferryCli(site: StoreSite, args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CliResult> {
  return run([...args.slice(0, args[0] === 'store' ? 2 : 1), ...site.cliArgs(), ...args.slice(args[0] === 'store' ? 2 : 1)], {
    env: { ...site.cliEnv(), ...options.env },
    timeoutMs: options.timeoutMs,
  }).done;
}

export interface Running {
  readonly pid: number;
  readonly done: Promise<CliResult>;
  exited(): boolean;
  /** SIGKILL (or the signal given). */
  kill(signal?: NodeJS.Signals): void;
  /** What it wrote to standard error so far. */
  stderr(): string;
}

/** Starts `node bin/packferry.js ARGS` and returns at once. */
export function run(args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Running {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...gitEnv, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d: Buffer) => err.push(d));
  let exited = false;
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      exited = true;
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 + 9 : null), stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
  });
  return {
    pid: child.pid ?? -1,
    done,
    exited: () => exited,
    kill: (signal = 'SIGKILL') => child.kill(signal),
    stderr: () => Buffer.concat(err).toString('utf8'),
  };
}

/** Parses a command's --json output, failing with its output if it is not JSON. */
export function json<T>(result: CliResult): T {
  try {
    return JSON.parse(result.stdout) as T;
  } catch {
    assert.fail(`not JSON (exit ${result.code}):\n${result.stdout}\n${result.stderr}`);
  }
}

/** Opens the store as a repository in this process (through `writerBlobs`). */
export function openRepo(site: StoreSite, address: string): Promise<StoreRepository> {
  return StoreRepository.open(site.writerBlobs(address), { cacheDir: site.cacheDir });
}

/** A sync in this process (what the CLI runs): a Git repository into a store, or a store out to a Git repository. */
export async function syncStore(site: StoreSite, direction: { into: string; from: string } | { out: string; to: string }): Promise<MirrorResult> {
  const result =
    'into' in direction
      ? await mirror(await openTransport(direction.from), [storeTarget(direction.into, () => openRepo(site, direction.into))])
      : await mirror(storeSource(direction.out, () => openRepo(site, direction.out)), [await openTransport(direction.to)]);
  assert.ok(result.ok, `sync failed: ${result.error?.message ?? result.targets.map((t) => t.error?.message ?? JSON.stringify(t.updates.filter((u) => u.status !== 'ok'))).join('; ')}`);
  return result;
}

export async function readManifest(blobs: BlobStore): Promise<Manifest | undefined> {
  const bytes = await blobs.get(KEYS.manifest);
  return bytes ? parseManifest(bytes) : undefined;
}

/** The store's refs (name -> oid) as its manifest has them; empty when there is no manifest yet. */
export async function storeRefs(blobs: BlobStore): Promise<Map<string, string>> {
  const m = await readManifest(blobs);
  return new Map((m?.refs ?? []).map((r) => [r.name, r.oid]));
}

export function sameRefs(a: Map<string, string>, b: Map<string, string>): boolean {
  return a.size === b.size && [...a].every(([k, v]) => b.get(k) === v);
}

export interface VerifyJson {
  ok: boolean;
  errors: number;
  warnings: number;
  generation?: number;
  layers: number;
  objects: number;
  refs: number;
  reachable: number;
  indexed: number;
  retiredPresent: number;
  lfsObjects: number;
  lfsChecked: number;
  problems: { severity: 'error' | 'warning'; kind: string; message: string; key?: string }[];
}

export interface Front {
  readonly url: string;
  /** Serves `overrides` under `/<prefix>/<key>` instead of what `upstream` has. */
  override(prefix: string, overrides: Record<string, Buffer>): void;
  /** Paths requested, oldest first. */
  readonly requests: string[];
  stop(): Promise<void>;
}

/** A dumb-HTTP file server over `upstream` (a path -> bytes lookup). */
export async function startFront(upstream: (path: string) => Promise<Buffer | undefined>): Promise<Front> {
  const overrides = new Map<string, Buffer>();
  const requests: string[] = [];
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    const path = decodeURIComponent((req.url ?? '/').split('?')[0]);
    requests.push(path);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405).end();
      return;
    }
    const fixed = overrides.get(path);
    const body = fixed !== undefined ? Promise.resolve(fixed) : upstream(path).catch(() => undefined);
    void body.then((bytes) => {
      if (bytes === undefined) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bytes.length });
      res.end(req.method === 'HEAD' ? undefined : bytes);
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    requests,
    override(prefix, files) {
      for (const [key, bytes] of Object.entries(files)) overrides.set(`/${prefix}/${key}`, bytes);
    },
    async stop() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}

/** Reads a file under `root` for a front (undefined if missing or outside). */
export function fileUpstream(root: string): (path: string) => Promise<Buffer | undefined> {
  return async (path) => {
    if (path.split('/').some((seg) => seg === '..')) return undefined;
    return readFile(join(root, ...path.split('/').filter((s) => s !== ''))).catch(() => undefined);
  };
}

/**
 * The store's files copied into `to` (what `aws s3 sync` of its prefix
 * gives), plus the empty refs/ that Git wants in a repository and a bucket
 * cannot hold: the store as `git clone PATH` of such a copy reads it.
 */
export async function localCopy(blobs: BlobStore, to: string): Promise<string> {
  for (const info of await blobs.list('')) {
    const bytes = await blobs.get(info.key);
    if (bytes === undefined) continue;
    const path = join(to, ...info.key.split('/'));
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, bytes);
  }
  await mkdir(join(to, 'refs', 'heads'), { recursive: true });
  return to;
}

// The store's acceptance scenarios (store-scenarios.ts) on directory stores:
// stores are plain directories, Git clones them by path, and a small HTTP
// server serves their files for the dumb-HTTP clone that compaction must not
// break. What a command wrote is seen by comparing the files before and after.
import { after, before, describe } from 'node:test';
import { readdirSync, statSync } from 'node:fs';
import { readFile, utimes } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { FsBlobStore } from '../../src/store/fs-backend.js';
import { tempDir } from '../support/git.js';
import { storeScenarios } from './store-scenarios.js';
import { fileUpstream, startFront, type Front, type StoreSite } from './store-fixtures.js';

/** path -> "size mtime inode" of every file under `root`. */
function files(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string): void => {
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const full = join(d, e.name);
      if (e.isDirectory()) walk(full);
      else {
        const s = statSync(full, { throwIfNoEntry: false });
        if (s) out.set(relative(root, full).split(sep).join('/'), `${s.size} ${s.mtimeMs} ${s.ino}`);
      }
    }
  };
  walk(root);
  return out;
}

const root = tempDir('packferry-dir-stores-');
let front: Front;
let n = 0;

before(async () => {
  front = await startFront(fileUpstream(root.path));
});

after(async () => {
  await front?.stop();
  root.cleanup();
});

const site: StoreSite = {
  name: 'directory',
  cacheDir: join(root.path, 'cache'),
  address: (label) => join(root.path, 'stores', `${label}-${++n}.git`),
  blobs: (address) => new FsBlobStore(address),
  writerBlobs: (address) => new FsBlobStore(address),
  cliArgs: () => [],
  cliEnv: () => ({}),
  cloneUrl: (address) => address,
  fetchKey: (address, key) => readFile(join(address, ...key.split('/'))).catch(() => undefined),
  frontUrl(address, overrides) {
    const rel = relative(root.path, address).split(sep).join('/');
    front.override(rel, overrides);
    return `${front.url}/${rel}`;
  },
  frontRequests: () => front.requests,
  async backdate(address, key, ms) {
    const t = new Date(Date.now() - ms);
    await utimes(join(address, ...key.split('/')), t, t);
  },
  async observe(address, fn) {
    const beforeFiles = files(address);
    const result = await fn();
    const afterFiles = files(address);
    const written = [...afterFiles].filter(([k, v]) => beforeFiles.get(k) !== v).map(([k]) => k);
    const deleted = [...beforeFiles.keys()].filter((k) => !afterFiles.has(k));
    return { result, written, deleted };
  },
};

describe('store acceptance: directory stores', () => storeScenarios(() => site));

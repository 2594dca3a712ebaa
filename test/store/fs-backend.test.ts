// The directory backend against the BlobStore conformance suite; "half
// done" there means a temporary file (.tmp-*) left beside the keys.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { FsBlobStore } from '../../src/store/fs-backend.js';
import { tempDir } from '../support/git.js';
import { backendConformance } from './backend-conformance.js';

async function tempFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) await walk(join(dir, entry.name));
      else if (entry.name.startsWith('.tmp-')) out.push(join(dir, entry.name));
    }
  };
  await walk(root);
  return out;
}

backendConformance('directory (FsBlobStore)', async () => {
  const dir = tempDir('packferry-fs-backend-');
  const store = new FsBlobStore(dir.path);
  return {
    store,
    cleanup: async () => {
      await store.close();
      dir.cleanup();
    },
    leftovers: () => tempFiles(dir.path),
  };
});

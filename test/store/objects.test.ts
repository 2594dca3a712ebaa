// Layer indexes shared within a process (store/objects.ts loadLayers): a
// server's concurrent requests to one repository use one parsed index per
// layer; another store's layer of the same name has its own; a layer added
// since is loaded; objects read through a shared index are right.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { FsBlobStore } from '../../src/store/fs-backend.js';
import { StoreRepository } from '../../src/store/repository.js';
import { git, tempDir } from '../support/git.js';
import { commitFiles, makeSource } from '../support/mirror-fixtures.js';
import { syncStore, type StoreSite } from './store-fixtures.js';

describe('layer indexes in memory', () => {
  const work = tempDir('packferry-store-objects-');
  const site = { writerBlobs: (a: string) => new FsBlobStore(a), cacheDir: join(work.path, 'cache') } as unknown as StoreSite;
  after(() => work.cleanup());

  it('are shared by the readers of one store, not across stores, and a new layer is loaded', async () => {
    const source = join(work.path, 'source.git');
    await makeSource(source, 21);
    const a = join(work.path, 'a.git');
    const b = join(work.path, 'b.git');
    await syncStore(site, { into: a, from: source });
    await syncStore(site, { into: b, from: source });
    const open = (dir: string) => StoreRepository.open(new FsBlobStore(dir), { cacheDir: site.cacheDir });
    const [r1, r2, other] = await Promise.all([open(a), open(a), open(b)]);
    const [o1, o2, o3] = await Promise.all([r1.objects(), r2.objects(), other.objects()]);
    assert.equal(o1.layers[0].name, o3.layers[0].name, 'the same pack, so the same layer name, in both stores');
    assert.equal(o1.layers[0].index, o2.layers[0].index, 'one parsed index for two readers of one store');
    assert.notEqual(o1.layers[0].index, o3.layers[0].index, "another store's layer is read from its own files");

    commitFiles(source, 'main', { 'new.txt': 'a second layer\n' });
    await syncStore(site, { into: a, from: source });
    const r3 = await open(a);
    const o4 = await r3.objects();
    assert.equal(o4.layers.length, 2);
    assert.equal(o4.layers[1].index, o1.layers[0].index, 'the old layer is still shared');
    const tip = git(['rev-parse', 'refs/heads/main'], { cwd: source });
    const obj = await o4.read(tip);
    assert.equal(obj.type, 1);
    assert.match(obj.data.toString(), /^tree [0-9a-f]{40}\n/);
    assert.equal(o2.has(tip), false, 'an earlier reader keeps its own view of the layers');
    for (const r of [r1, r2, r3, other]) await r.close();
  });
});

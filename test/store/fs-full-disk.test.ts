// A directory store on a real small file system: a 1 MiB tmpfs mounted by
// the test (it needs root, as `mount` does; CI runs as root), and the same
// read-only. A write the disk has no room for, or a read-only file system
// refuses, is ERR_STORE_IO naming the file with a hint ("the disk is
// full"), never an internal error, and leaves no temporary or lock file;
// `packferry mirror` into such a store exits 1 with that message.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, isPackferryError, type PackferryError } from '../../src/core/errors.js';
import { FsBlobStore } from '../../src/store/fs-backend.js';
import { git, tempDir } from '../support/git.js';
import { commitFiles, noise, packferry } from '../support/mirror-fixtures.js';
import { oddChunks } from './backend-conformance.js';

const MIB = 1024 * 1024;
const tmp = tempDir('packferry-full-disk-');
const full = join(tmp.path, 'small');
const readOnly = join(tmp.path, 'read-only');
const mounted: string[] = [];

function mountTmpfs(dir: string, options: string): void {
  mkdirSync(dir, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (err) {
    throw new Error(`this test mounts a small tmpfs and needs root (or CAP_SYS_ADMIN): mount -t tmpfs -o ${options} tmpfs ${dir} failed: ${(err as { stderr?: Buffer }).stderr?.toString() ?? String(err)}`);
  }
  mounted.push(dir);
}

function unmountAll(): void {
  while (mounted.length > 0) {
    const dir = mounted.pop()!;
    try {
      execFileSync('umount', [dir], { stdio: 'pipe' });
    } catch {
      execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
    }
  }
}

// A test process that dies without its after hook must not leave the mounts behind.
process.once('exit', unmountAll);

function emptyOut(dir: string): void {
  for (const name of readdirSync(dir)) rmSync(join(dir, name), { recursive: true, force: true });
}

/** Every temporary or lock file under dir. */
function leftovers(dir: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[]).filter((n) => n.includes('.tmp-') || n.endsWith('.lock') || n.includes('.incoming-'));
}

async function rejectsStoreIo(promise: Promise<unknown>, errno: string, hint: RegExp): Promise<PackferryError> {
  let caught: unknown;
  await assert.rejects(promise, (err: unknown) => {
    caught = err;
    return true;
  });
  assert.ok(isPackferryError(caught, ErrorCode.StoreIo), `expected ERR_STORE_IO, got ${String(caught)}`);
  assert.equal(caught.details.errno, errno);
  assert.match(caught.hint ?? '', hint);
  return caught;
}

before(() => {
  mountTmpfs(full, 'size=1m');
  mountTmpfs(readOnly, 'size=1m');
  writeFileSync(join(readOnly, 'doc'), 'read-only\n');
  execFileSync('mount', ['-o', 'remount,ro', readOnly], { stdio: 'pipe' });
});

after(() => {
  unmountAll();
  tmp.cleanup();
});

describe('a directory store on a full disk', () => {
  it('put: ERR_STORE_IO "the disk is full", the old value kept, no temporary file left', async () => {
    emptyOut(full);
    const store = new FsBlobStore(join(full, 'repo.git'));
    await store.put('objects/pack/pack-a.pack', Buffer.from('old'));
    const err = await rejectsStoreIo(store.put('objects/pack/pack-a.pack', randomBytes(2 * MIB)), 'ENOSPC', /the disk is full/);
    assert.match(err.message, /cannot write .*objects\/pack\/pack-a\.pack: no space left on the device \(ENOSPC\)/);
    assert.match(err.hint ?? '', new RegExp(`file system that holds ${join(full, 'repo.git', 'objects', 'pack')}`));
    assert.deepEqual(await store.get('objects/pack/pack-a.pack'), Buffer.from('old'));
    // A streamed body too.
    await rejectsStoreIo(store.put('objects/pack/pack-b.pack', oddChunks(randomBytes(2 * MIB))), 'ENOSPC', /the disk is full/);
    assert.equal(await store.head('objects/pack/pack-b.pack'), undefined);
    assert.deepEqual(leftovers(full), []);
  });

  it('putIfVersion: ERR_STORE_IO, nothing changed, the lock released: the next write that fits goes through', async () => {
    emptyOut(full);
    const store = new FsBlobStore(join(full, 'repo.git'));
    assert.equal(await store.putIfVersion('packferry/manifest.json', Buffer.from('{"generation":1}'), undefined), true);
    const v1 = await store.getVersioned('packferry/manifest.json');
    assert.ok(v1 !== undefined);
    await rejectsStoreIo(store.putIfVersion('packferry/manifest.json', randomBytes(2 * MIB), v1.version), 'ENOSPC', /the disk is full/);
    assert.deepEqual(await store.get('packferry/manifest.json'), Buffer.from('{"generation":1}'));
    assert.deepEqual(leftovers(full), [], 'no lock, no temporary file');
    assert.equal(await store.putIfVersion('packferry/manifest.json', Buffer.from('{"generation":2}'), v1.version), true);
    // A disk so full that not even the lock file fits.
    writeFileSync(join(full, 'fill'), Buffer.alloc(0));
    const v2 = await store.getVersioned('packferry/manifest.json');
    await assert.rejects(
      (async () => {
        for (let i = 0; ; i++) writeFileSync(join(full, `fill-${i}`), Buffer.alloc(64 * 1024));
      })(),
      /ENOSPC/,
    );
    await rejectsStoreIo(store.putIfVersion('packferry/manifest.json', Buffer.from('{"generation":3, "more": "than fits in what is left"}'.repeat(200)), v2?.version), 'ENOSPC', /the disk is full/);
    assert.deepEqual(leftovers(full), []);
  });

  it('a read-only file system: ERR_STORE_IO "read-only" for put, putIfVersion, delete and ensureDirectory', async () => {
    const store = new FsBlobStore(readOnly);
    await rejectsStoreIo(store.put('x', Buffer.from('x')), 'EROFS', /read-only file system/);
    await rejectsStoreIo(store.putIfVersion('doc', Buffer.from('x'), (await store.getVersioned('doc'))?.version), 'EROFS', /read-only/);
    await rejectsStoreIo(store.delete('doc'), 'EROFS', /read-only/);
    await rejectsStoreIo(store.ensureDirectory('refs/heads'), 'EROFS', /read-only/);
    assert.deepEqual(await store.get('doc'), Buffer.from('read-only\n'), 'still readable');
  });

  describe('packferry mirror into a store on it', () => {
    const source = join(tmp.path, 'source.git');
    before(() => {
      git(['init', '-q', '--bare', source]);
      // 1.5 MiB that does not compress: the pack cannot fit.
      commitFiles(source, 'main', { a: noise(512 * 1024, 'a') }, { parent: null });
      commitFiles(source, 'main', { b: noise(512 * 1024, 'b') });
      commitFiles(source, 'main', { c: noise(512 * 1024, 'c') });
    });

    it('the pack does not fit: exit 1 with ERR_STORE_IO and the disk-full hint, not an internal error', async () => {
      emptyOut(full);
      const target = `store://${join(full, 'repo.git')}`;
      const human = await packferry(['mirror', source, target]);
      assert.equal(human.code, 1, `${human.stdout}${human.stderr}`);
      const text = human.stdout + human.stderr;
      assert.match(text, /no space left on the device \(ENOSPC\)/);
      assert.match(text, /hint: the disk is full/);
      assert.doesNotMatch(text, /internal error/);
      emptyOut(full);
      const json = await packferry(['mirror', '--json', source, target]);
      assert.equal(json.code, 1);
      const report = JSON.parse(json.stdout) as { ok: boolean; error?: { code: string }; targets: { error?: { code: string; hint?: string } }[] };
      assert.equal(report.ok, false);
      const error = report.error ?? report.targets[0]?.error;
      assert.equal(error?.code, 'ERR_STORE_IO', json.stdout);
      assert.deepEqual(leftovers(full), []);
    });

    it('the disk is full before the first write (the writer lock): exit 1 with ERR_STORE_IO', async () => {
      emptyOut(full);
      await assert.rejects(
        (async () => {
          for (let i = 0; ; i++) writeFileSync(join(full, `fill-${i}`), Buffer.alloc(64 * 1024));
        })(),
        /ENOSPC/,
      );
      const result = await packferry(['mirror', '--json', source, `store://${join(full, 'repo.git')}`]);
      assert.equal(result.code, 1, `${result.stdout}${result.stderr}`);
      const report = JSON.parse(result.stdout) as { error?: { code: string; hint?: string }; targets: { error?: { code: string; hint?: string } }[] };
      const error = report.error ?? report.targets[0]?.error;
      assert.equal(error?.code, 'ERR_STORE_IO', result.stdout);
      assert.match(error?.hint ?? '', /the disk is full/);
    });
  });
});

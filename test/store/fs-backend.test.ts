// The directory backend against the BlobStore conformance suite; "half
// done" there means a temporary file (.tmp-*) or a lock (*.lock) left
// beside the keys. Then what is the directory's own in its compare-and-swap
// (Git's lockfile discipline, src/store/lockfile.ts): a lock left by a
// writer killed with SIGKILL while it held it (a real child process) is
// taken over at once; a running holder is waited for, then ERR_STORE_LOCKED;
// a lock older than the stale bound is taken over whoever wrote it; file
// modes and the version.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ErrorCode, isPackferryError } from '../../src/core/errors.js';
import { FsBlobStore } from '../../src/store/fs-backend.js';
import { tempDir } from '../support/git.js';
import { backendConformance } from './backend-conformance.js';

async function tempFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) await walk(join(dir, entry.name));
      else if (entry.name.startsWith('.tmp-') || entry.name.endsWith('.lock')) out.push(join(dir, entry.name));
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
}, { conditionalWrites: true });

describe('directory compare-and-swap: the lock file', () => {
  const tmp = tempDir('packferry-fs-lock-');
  const children = new Set<ChildProcess>();
  let dirs = 0;
  after(() => {
    for (const child of children) child.kill('SIGKILL');
    tmp.cleanup();
  });
  // A writer in another process: takes the lock of a file exactly as putIfVersion does (lockfile.ts), says so,
  // and holds it until told to release it (a line on stdin) or killed.
  const holderScript = join(tmp.path, 'hold-lock.mjs');
  writeFileSync(
    holderScript,
    `const { lockFile } = await import(process.argv[2]);
const lock = await lockFile(process.argv[3]);
process.stdout.write('locked\\n');
process.stdin.once('data', async () => {
  await lock.release();
  process.stdout.write('released\\n');
  process.exit(0);
});
`,
  );
  const lockModule = pathToFileURL(resolve('dist/src/store/lockfile.js')).href;

  const fresh = (): string => join(tmp.path, `store-${++dirs}`);

  /** Starts a holder of FILE's lock and waits until it holds it. */
  const startHolder = async (file: string): Promise<ChildProcess & { said: () => string }> => {
    const child = spawn(process.execPath, [holderScript, lockModule, file], { stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(child);
    child.once('exit', () => children.delete(child));
    let out = '';
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    await new Promise<void>((resolvePromise, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('locked\n')) resolvePromise();
      });
      child.once('exit', (code) => reject(new Error(`the lock holder exited (${code}): ${err}`)));
    });
    return Object.assign(child, { said: () => out });
  };

  const exited = (child: ChildProcess): Promise<void> =>
    child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((r) => child.once('exit', () => r()));

  const leftovers = async (root: string): Promise<string[]> => (await readdir(root, { recursive: true })).filter((n) => n.includes('.tmp-') || n.endsWith('.lock'));

  it('a lock left by a writer killed with SIGKILL between lock and rename is taken over at once', async () => {
    const root = fresh();
    // A wait for a live holder would take 20 s: the takeover must not wait at all.
    const store = new FsBlobStore(root, { lockWaitMs: 20_000 });
    await store.put('packferry/manifest.json', Buffer.from('{"generation":1}'));
    const base = await store.getVersioned('packferry/manifest.json');
    assert.ok(base !== undefined);
    const file = store.pathOf('packferry/manifest.json');
    const holder = await startHolder(file);
    const lock = JSON.parse(readFileSync(`${file}.lock`, 'utf8')) as { pid: number; host: string; created: string };
    assert.equal(lock.pid, holder.pid, 'the lock names its holder');
    assert.equal(lock.host, hostname());
    holder.kill('SIGKILL');
    await exited(holder);
    assert.equal(holder.signalCode, 'SIGKILL');
    assert.ok(existsSync(`${file}.lock`), 'the killed writer left its lock');
    assert.deepEqual((await store.list('')).map((i) => i.key), ['packferry/manifest.json'], 'the lock is never listed');
    const t0 = Date.now();
    assert.equal(await store.putIfVersion('packferry/manifest.json', Buffer.from('{"generation":2}'), base.version), true);
    const took = Date.now() - t0;
    assert.ok(took < 2000, `taken over in ${took} ms, not after a wait`);
    assert.deepEqual(await store.get('packferry/manifest.json'), Buffer.from('{"generation":2}'));
    assert.deepEqual(await leftovers(root), [], 'neither the old lock nor a temporary file is left');
  });

  it('a lock held by a running writer is waited for, then ERR_STORE_LOCKED naming it; released, the write goes through', async () => {
    const root = fresh();
    await new FsBlobStore(root).put('doc', Buffer.from('v1'));
    const impatient = new FsBlobStore(root, { lockWaitMs: 300 });
    const patient = new FsBlobStore(root, { lockWaitMs: 10_000 });
    const base = await patient.getVersioned('doc');
    assert.ok(base !== undefined);
    const holder = await startHolder(patient.pathOf('doc'));
    const t0 = Date.now();
    await assert.rejects(impatient.putIfVersion('doc', Buffer.from('v2'), base.version), (err: unknown) => {
      assert.ok(isPackferryError(err, ErrorCode.StoreLocked), String(err));
      assert.match(err.message, new RegExp(`locked by process ${holder.pid} on `));
      assert.match(err.hint ?? '', /held for milliseconds/);
      return true;
    });
    assert.ok(Date.now() - t0 >= 300, 'it waited first');
    assert.deepEqual(await patient.get('doc'), Buffer.from('v1'), 'nothing changed');
    const t1 = Date.now();
    const waiting = patient.putIfVersion('doc', Buffer.from('v2'), base.version);
    setTimeout(() => holder.stdin?.write('release\n'), 200);
    assert.equal(await waiting, true);
    assert.ok(Date.now() - t1 >= 200, 'the write waited for the holder');
    await exited(holder);
    assert.match(holder.said(), /released/);
    assert.deepEqual(await patient.get('doc'), Buffer.from('v2'));
    assert.deepEqual(await leftovers(root), []);
  });

  it('a lock older than the stale bound is taken over whoever wrote it; a fresh one of another host is waited for', async () => {
    const root = fresh();
    const store = new FsBlobStore(root, { lockWaitMs: 200 });
    await store.put('doc', Buffer.from('v1'));
    const base = await store.getVersioned('doc');
    assert.ok(base !== undefined);
    const lockPath = `${store.pathOf('doc')}.lock`;
    writeFileSync(lockPath, JSON.stringify({ pid: 4242, host: 'another-host.example', created: new Date().toISOString(), nonce: 'n' }));
    await assert.rejects(store.putIfVersion('doc', Buffer.from('v2'), base.version), (err: unknown) => isPackferryError(err, ErrorCode.StoreLocked) && /process 4242 on another-host\.example/.test(err.message));
    const old = (Date.now() - 60_000) / 1000;
    utimesSync(lockPath, old, old);
    assert.equal(await store.putIfVersion('doc', Buffer.from('v2'), base.version), true, 'a 60 s old lock is stale (bound 30 s)');
    // The bound is an option.
    const quick = new FsBlobStore(root, { lockWaitMs: 5000, staleLockMs: 100 });
    const v2 = await quick.getVersioned('doc');
    writeFileSync(lockPath, JSON.stringify({ pid: 4242, host: 'another-host.example', created: new Date().toISOString(), nonce: 'm' }));
    const t0 = Date.now();
    assert.equal(await quick.putIfVersion('doc', Buffer.from('v3'), v2?.version), true);
    assert.ok(Date.now() - t0 < 2000);
    // A lock of this very process that no attempt of it holds (an attempt that gave up) is abandoned: taken over at once.
    writeFileSync(lockPath, JSON.stringify({ pid: process.pid, host: hostname(), created: new Date().toISOString(), nonce: 'given-up' }));
    assert.equal(await store.putIfVersion('doc', Buffer.from('v4'), (await store.getVersioned('doc'))?.version), true);
    assert.deepEqual(await store.get('doc'), Buffer.from('v4'));
    assert.deepEqual(await leftovers(root), []);
  });

  it('the version is the SHA-256 of the content; secret documents are written 0600, others 0644', async () => {
    const root = fresh();
    const store = new FsBlobStore(root);
    assert.equal(await store.putIfVersion('packferry/tokens.json', Buffer.from('{}'), undefined, { secret: true }), true);
    assert.equal(statSync(store.pathOf('packferry/tokens.json')).mode & 0o777, 0o600);
    const v = await store.getVersioned('packferry/tokens.json');
    assert.equal(v?.version, createHash('sha256').update('{}').digest('hex'));
    assert.equal(await store.putIfVersion('packferry/tokens.json', Buffer.from('{"a":1}'), v?.version, { secret: true }), true);
    assert.equal(statSync(store.pathOf('packferry/tokens.json')).mode & 0o777, 0o600, 'still 0600 after an update');
    assert.equal(await store.putIfVersion('settings.json', Buffer.from('{}'), undefined), true);
    assert.equal(statSync(store.pathOf('settings.json')).mode & 0o777 & ~process.umask(), 0o644 & ~process.umask());
  });
});

// The commit contract's conformance suite (src/store/ref-database.ts): what
// every implementation of RefDatabase must do, run against each of them (a
// directory store; a real S3-compatible server with conditional writes and
// without; later a consensus store) by ref-database.test.ts. Each test gets a
// fresh location, and opens several independent databases on it where
// writers race, as separate processes or nodes would.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCode, isPackferryError } from '../../src/core/errors.js';
import { emptyManifest, type Manifest } from '../../src/store/manifest.js';
import type { RefDatabase } from '../../src/store/ref-database.js';

export interface RefDatabaseSite {
  /** A fresh, empty location; `open()` gives a new database on it each time (another writer). */
  fresh(): Promise<{ open(): RefDatabase }>;
}

function state(generation: number, refs: Record<string, string> = {}): Manifest {
  return {
    ...emptyManifest(),
    generation,
    refs: Object.entries(refs)
      .map(([name, oid]) => ({ name, oid }))
      .sort((a, b) => (a.name < b.name ? -1 : 1)),
    updated: new Date().toISOString(),
  };
}

const oid = (n: number) => n.toString(16).padStart(40, '0');

export function refDatabaseConformance(site: () => RefDatabaseSite): void {
  it('reads nothing where nothing was committed, then what was', async () => {
    const loc = await site().fresh();
    const db = loc.open();
    assert.equal(await db.read(), undefined);
    assert.equal(await db.compareAndSwap(undefined, state(1, { 'refs/heads/main': oid(1) })), true);
    const got = await loc.open().read();
    assert.equal(got?.generation, 1);
    assert.deepEqual(got?.refs, [{ name: 'refs/heads/main', oid: oid(1) }]);
  });

  it('commits only from the generation it names: a first commit once, a stale generation never', async () => {
    const loc = await site().fresh();
    const [a, b] = [loc.open(), loc.open()];
    assert.equal(await a.compareAndSwap(undefined, state(0)), true, 'an empty repository (generation 0) first');
    assert.equal(await b.compareAndSwap(undefined, state(1)), false, 'a second first commit is refused');
    assert.equal(await b.compareAndSwap(0, state(1, { 'refs/heads/a': oid(1) })), true);
    assert.equal(await a.compareAndSwap(0, state(1, { 'refs/heads/b': oid(2) })), false, 'from a generation that is gone');
    assert.equal(await a.compareAndSwap(1, state(2, { 'refs/heads/b': oid(2) })), true);
    const m = await loc.open().read();
    assert.equal(m?.generation, 2);
    assert.deepEqual(m?.refs, [{ name: 'refs/heads/b', oid: oid(2) }]);
  });

  it('refuses a next state that does not follow the generation it replaces', async () => {
    const loc = await site().fresh();
    const db = loc.open();
    await db.compareAndSwap(undefined, state(1));
    for (const [expected, next] of [
      [1, 3],
      [1, 1],
      [undefined, 2],
    ] as const) {
      await assert.rejects(db.compareAndSwap(expected, state(next)), (err: unknown) => isPackferryError(err, ErrorCode.Internal), `${expected} -> ${next}`);
    }
    assert.equal((await db.read())?.generation, 1);
  });

  it('lets exactly one of many writers racing from the same generation commit', async () => {
    const loc = await site().fresh();
    await loc.open().compareAndSwap(undefined, state(1));
    const writers = Array.from({ length: 8 }, () => loc.open());
    const results = await Promise.all(writers.map((w, i) => w.compareAndSwap(1, state(2, { [`refs/heads/w${i}`]: oid(i + 1) }))));
    assert.equal(results.filter(Boolean).length, 1, JSON.stringify(results));
    const winner = results.indexOf(true);
    assert.deepEqual((await loc.open().read())?.refs, [{ name: `refs/heads/w${winner}`, oid: oid(winner + 1) }]);
  });

  it('loses no update when writers keep reading and retrying: every one of 4 x 5 additions is there', async () => {
    const loc = await site().fresh();
    await loc.open().compareAndSwap(undefined, state(1));
    await Promise.all(
      Array.from({ length: 4 }, async (_, w) => {
        const db = loc.open();
        for (let k = 0; k < 5; k++) {
          for (let attempt = 0; ; attempt++) {
            assert.ok(attempt < 200, 'a writer never got through');
            const cur = (await db.read())!;
            const refs = Object.fromEntries(cur.refs.map((r) => [r.name, r.oid]));
            refs[`refs/heads/w${w}-${k}`] = oid(w * 10 + k + 1);
            if (await db.compareAndSwap(cur.generation, state(cur.generation + 1, refs))) break;
            await new Promise((resolve) => setTimeout(resolve, Math.random() * 20));
          }
        }
      }),
    );
    const m = (await loc.open().read())!;
    assert.equal(m.refs.length, 20);
    assert.equal(m.generation, 21);
  });

  it('tells a watcher of every new generation', async () => {
    const loc = await site().fresh();
    const db = loc.open();
    await db.compareAndSwap(undefined, state(1));
    const seen: number[] = [];
    const stop = loc.open().watch((g) => seen.push(g), { intervalMs: 50 });
    try {
      await new Promise((resolve) => setTimeout(resolve, 150));
      for (let g = 1; g < 4; g++) {
        assert.equal(await db.compareAndSwap(g, state(g + 1)), true);
        for (let i = 0; i < 100 && !seen.includes(g + 1); i++) await new Promise((resolve) => setTimeout(resolve, 20));
        assert.ok(seen.includes(g + 1), `generation ${g + 1} seen: ${JSON.stringify(seen)}`);
      }
    } finally {
      stop();
    }
    const after = seen.length;
    await db.compareAndSwap(4, state(5));
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(seen.length, after, 'nothing after stop()');
  });
}

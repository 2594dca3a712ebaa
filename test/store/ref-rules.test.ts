// The ref-set rules `store verify` applies (src/store/ref-rules.ts
// refSetProblems): against a naive statement of Git's rules, on random sets
// of names built from few components, so that conflicts and duplicates are
// common (fast-check), and on the cases users met.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isRefName } from '../../src/core/refs.js';
import { refSetProblems } from '../../src/store/ref-rules.js';

const component = fc.constantFrom('x', 'y', 'main', 'a..b', 'v1.lock', 'sp ace', '');
const refName = fc.array(component, { minLength: 1, maxLength: 3 }).map((parts) => `refs/heads/${parts.join('/')}`);

describe('refSetProblems', () => {
  it("reports the refs in directory/file conflicts, duplicates and bad names, as Git's rules say, each once", () => {
    fc.assert(
      fc.property(fc.array(refName, { maxLength: 12 }), (names) => {
        const problems = refSetProblems(names);
        const distinct = [...new Set(names)];
        // Directory/file: every ref that is a directory above, or below, another one; each pair above-first.
        const conflicting = distinct.filter((r) => distinct.some((s) => s !== r && (s.startsWith(`${r}/`) || r.startsWith(`${s}/`))));
        const pairs = problems.filter((p) => p.kind === 'directory-file');
        for (const p of pairs) assert.ok(p.refs[1].startsWith(`${p.refs[0]}/`), JSON.stringify(p));
        assert.deepEqual(new Set(pairs.flatMap((p) => p.refs)), new Set(conflicting));
        assert.equal(new Set(pairs.map((p) => p.refs.join(' '))).size, pairs.length, 'each pair once');
        // Duplicates: once per name listed more than once.
        const twice = distinct.filter((r) => names.indexOf(r) !== names.lastIndexOf(r));
        assert.deepEqual(problems.filter((p) => p.kind === 'duplicate').map((p) => p.refs[0]).sort(), twice.sort());
        // Bad names: once per distinct name check-ref-format refuses.
        assert.deepEqual(problems.filter((p) => p.kind === 'bad-name').map((p) => p.refs[0]).sort(), distinct.filter((r) => !isRefName(r)).sort());
      }),
      { numRuns: 500 },
    );
  });

  it('names both refs of a conflict in the words Git fails with', () => {
    const [p] = refSetProblems(['refs/heads/main', 'refs/heads/x', 'refs/heads/x/y']);
    assert.deepEqual(p.refs, ['refs/heads/x', 'refs/heads/x/y']);
    assert.match(p.message, /cannot process 'refs\/heads\/x' and 'refs\/heads\/x\/y' at the same time/);
    assert.deepEqual(refSetProblems(['refs/heads/main', 'refs/heads/x', 'refs/heads/xy', 'refs/tags/x']), []);
  });
});

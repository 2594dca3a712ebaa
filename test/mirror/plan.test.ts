// The pure parts of a sync plan that the acceptance tests reach only through
// Git: which deletions and creations Git cannot do in one atomic transaction.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ZERO_ID } from '../../src/core/refs.js';
import { hasDirectoryConflict, type RefUpdate } from '../../src/mirror/plan.js';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const create = (name: string): RefUpdate => ({ name, kind: 'create', oldOid: ZERO_ID, newOid: A });
const update = (name: string): RefUpdate => ({ name, kind: 'update', oldOid: A, newOid: B });
const remove = (name: string): RefUpdate => ({ name, kind: 'delete', oldOid: A, newOid: ZERO_ID });

describe('hasDirectoryConflict', () => {
  it('a deleted ref whose name a created one needs as a directory, and the reverse', () => {
    assert.equal(hasDirectoryConflict([remove('refs/heads/x'), create('refs/heads/x/y')]), true);
    assert.equal(hasDirectoryConflict([remove('refs/heads/x'), create('refs/heads/x/y/z')]), true);
    assert.equal(hasDirectoryConflict([remove('refs/heads/x/y'), create('refs/heads/x')]), true);
    assert.equal(hasDirectoryConflict([remove('refs/heads/x/y/z'), update('refs/heads/x')]), true);
  });

  it('no conflict: names that only share a prefix, no deletion, or deletions only', () => {
    assert.equal(hasDirectoryConflict([remove('refs/heads/x'), create('refs/heads/xy')]), false);
    assert.equal(hasDirectoryConflict([remove('refs/heads/x/y'), create('refs/heads/x/z')]), false);
    assert.equal(hasDirectoryConflict([create('refs/heads/x'), update('refs/heads/y/z')]), false);
    assert.equal(hasDirectoryConflict([remove('refs/heads/x'), remove('refs/heads/x/y')]), false);
    assert.equal(hasDirectoryConflict([]), false);
  });
});

// The pure rules behind two fixes found by the serve acceptance tests:
// - plainRequestTarget (src/server/http.ts): which request targets the
//   server routes at all. Node hands over the raw target; WHATWG URL parsing
//   resolved "..", "%2e%2e", "\" and "//host" in it, so "/x/../r.git/HEAD"
//   was served as /r.git/HEAD, and "GET http://[bad" threw outside any
//   try and stopped the server.
// - directoryFileConflict (src/core/refs.ts): a pushed ref beside a
//   directory of refs of the same name ("refs/heads/main/x" next to
//   "refs/heads/main") was accepted, and no Git clone could store both.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { plainRequestTarget } from '../../src/server/http.js';
import { directoryFileConflict } from '../../src/core/refs.js';

describe('plainRequestTarget', () => {
  it('keeps the paths and queries git sends', () => {
    for (const target of [
      '/',
      '/healthz',
      '/r.git/info/refs?service=git-upload-pack',
      '/team/x.git/git-receive-pack',
      '/r.git/objects/pack/pack-0123456789012345678901234567890123456789.pack',
      '/api/v1/repos/team/x/hooks/pre-receive',
      '/r.git/',
      '/a%20b.git/HEAD',
      '/r.git/info/refs?service=git-upload-pack&x=/../..',
      '/r..git/HEAD',
      '/...git/HEAD',
    ]) {
      assert.equal(plainRequestTarget(target), target, target);
    }
  });

  it('takes the path of the absolute form', () => {
    assert.equal(plainRequestTarget('http://example.com/r.git/HEAD'), '/r.git/HEAD');
    assert.equal(plainRequestTarget('HTTPS://example.com:8443/r.git/info/refs?service=git-upload-pack'), '/r.git/info/refs?service=git-upload-pack');
    assert.equal(plainRequestTarget('http://example.com'), '/');
    assert.equal(plainRequestTarget('http://[bad'), '/');
    assert.equal(plainRequestTarget('http://example.com/../r.git/HEAD'), undefined);
  });

  it('refuses dot segments, empty segments, backslashes, encoded slashes and control characters', () => {
    for (const target of [
      '/x/../r.git/HEAD',
      '/..',
      '/r.git/..',
      '/x/%2e%2e/r.git/HEAD',
      '/x/%2E%2e/r.git/HEAD',
      '/x/.%2E/r.git/HEAD',
      '/./r.git/HEAD',
      '/r.git/%2e/HEAD',
      '//r.git/HEAD',
      '//evil.example/r.git/HEAD',
      '/r.git//HEAD',
      '/x\\..\\r.git/HEAD',
      '/r.git%5cHEAD',
      '/r.git%5CHEAD',
      '/x%2f..%2fr.git/HEAD',
      '/%2Fetc/passwd.git/HEAD',
      '/r.git%00/HEAD',
      '/r%0a.git/HEAD',
      '/r%7f.git/HEAD',
      '/r\u0001.git/HEAD',
      '/r.git#x',
      '*',
      '%',
      'r.git/HEAD',
      '',
    ]) {
      assert.equal(plainRequestTarget(target), undefined, JSON.stringify(target));
    }
  });
});

describe('directoryFileConflict (core/refs.ts)', () => {
  const refs = ['refs/heads/main', 'refs/heads/feature/x'];
  const conflict = (name: string, names: string[] = refs, sorted: string[] = [...names].sort()) => directoryFileConflict(name, new Set(names), sorted);

  it('finds a ref below or above an existing one', () => {
    assert.equal(conflict('refs/heads/main/sub'), 'refs/heads/main');
    assert.equal(conflict('refs/heads/feature'), 'refs/heads/feature/x');
    assert.equal(conflict('refs/heads'), 'refs/heads/feature/x');
    assert.equal(conflict('refs/heads/feature/x/y/z'), 'refs/heads/feature/x');
  });

  it('allows names that only share a prefix, and the ref itself', () => {
    for (const name of ['refs/heads/main2', 'refs/heads/mai', 'refs/heads/feature-x', 'refs/heads/feature.x', 'refs/heads/main']) assert.equal(conflict(name), undefined, name);
  });

  it('passes over names of the sorted list that are not (or no longer) refs', () => {
    const sorted = ['refs/heads/main', 'refs/tags/v1/a', 'refs/tags/v1/b', 'refs/tags/v1/c'].sort();
    assert.equal(conflict('refs/tags/v1', ['refs/heads/main', 'refs/tags/v1/c'], sorted), 'refs/tags/v1/c');
    assert.equal(conflict('refs/tags/v1', ['refs/heads/main'], sorted), undefined);
  });
});

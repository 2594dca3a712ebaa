// The rights model (src/server/auth/rights.ts), authorization and the 404
// rule (authorize.ts), and packferry's DER certificate extensions
// (extensions.ts, der.ts): glob semantics by example and against a
// reference matcher (fast-check), the flag rules, encode/decode round trips,
// and hostile extension bytes failing only with ERR_CERTIFICATE.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ErrorCode, isPackferryError } from '../../src/core/errors.js';
import { allows, formatRights, globMatch, makeRights, NO_RIGHTS, type Rights } from '../../src/server/auth/rights.js';
import { authorize, denial, NOT_FOUND_BODY } from '../../src/server/auth/authorize.js';
import { ANONYMOUS, describeIdentity, type Identity } from '../../src/server/auth/identity.js';
import { decodeNode, decodeRights, encodeNode, encodeRights } from '../../src/server/auth/extensions.js';
import { decodeOidContent, encodeBoolean, encodeOidContent, encodeSequence, encodeSmallInteger, encodeUtf8, readTlv } from '../../src/server/auth/der.js';

/** Reference semantics: the glob as an anchored regular expression ('*' → '.*', '?' → '.'). */
function referenceMatch(glob: string, text: string): boolean {
  const re = Array.from(glob)
    .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[\\^$.|+()[\]{}]/g, '\\$&')))
    .join('');
  return new RegExp(`^${re}$`, 'su').test(text);
}

const certIdentity = (rights: Partial<Rights>): Identity => ({
  kind: 'cert',
  user: 'alice',
  rights: makeRights(rights),
  serial: '01',
  fingerprint256: 'AA',
  notAfter: new Date(Date.now() + 86_400_000),
});

describe('globs', () => {
  test('"*" matches any characters, "/" included; "?" one character; the rest literally', () => {
    const cases: [string, string, boolean][] = [
      ['*', 'anything/at/all', true],
      ['*', '', true],
      ['team/*', 'team/a', true],
      ['team/*', 'team/a/b', true],
      ['team/*', 'team', false],
      ['team/*', 'teams/a', false],
      ['**', 'a/b/c', true],
      ['*/web', 'org/team/web', true],
      ['*/web', 'org/team/website', false],
      ['repo-?', 'repo-1', true],
      ['repo-?', 'repo-12', false],
      ['a.b', 'aXb', false],
      ['a.b', 'a.b', true],
      ['Team/*', 'team/x', false],
      ['*a*b*c*', 'xxaxxbxxcxx', true],
      ['*a*b*c*', 'xxaxxcxxbxx', false],
      ['europe-*', 'europe-west1', true],
    ];
    for (const [glob, text, expected] of cases) assert.equal(globMatch(glob, text), expected, `${glob} vs ${text}`);
  });

  test('property: globMatch agrees with the regular-expression reference', () => {
    const alphabet = fc.constantFrom('a', 'b', '/', '.', '-', 'é');
    const text = fc.array(alphabet, { maxLength: 12 }).map((a) => a.join(''));
    const glob = fc.array(fc.oneof(alphabet, fc.constant('*'), fc.constant('?')), { maxLength: 10 }).map((a) => a.join(''));
    fc.assert(
      fc.property(glob, text, (g, t) => globMatch(g, t) === referenceMatch(g, t)),
      { numRuns: 3000 },
    );
  });

  test('no exponential backtracking on hostile globs', () => {
    const start = performance.now();
    assert.equal(globMatch('*a'.repeat(100) + 'b', 'a'.repeat(5000)), false);
    assert.ok(performance.now() - start < 2000, 'bounded time');
  });
});

describe('rights', () => {
  test('defaults: no flags, every region and repository; globs are checked', () => {
    const r = makeRights();
    assert.deepEqual({ ...r, regions: [...r.regions], repos: [...r.repos] }, { admin: false, read: false, write: false, regions: ['*'], repos: ['*'] });
    assert.throws(() => makeRights({ repos: [''] }), (e) => isPackferryError(e, ErrorCode.Usage));
    assert.throws(() => makeRights({ repos: ['a\nb'] }), (e) => isPackferryError(e, ErrorCode.Usage));
    assert.throws(() => makeRights({ repos: Array(65).fill('x') }), (e) => isPackferryError(e, ErrorCode.Usage));
  });

  test('read and write are separate; admin implies both; the flag alone is not enough outside the globs', () => {
    const region = 'r1';
    const read = makeRights({ read: true });
    const write = makeRights({ write: true });
    const admin = makeRights({ admin: true, repos: ['team/*'], regions: ['r*'] });
    assert.equal(allows(read, { action: 'read', repo: 'x', region }), true);
    assert.equal(allows(read, { action: 'write', repo: 'x', region }), false);
    assert.equal(allows(write, { action: 'write', repo: 'x', region }), true);
    assert.equal(allows(write, { action: 'read', repo: 'x', region }), false, 'write does not imply read');
    assert.equal(allows(read, { action: 'admin', repo: 'x', region }), false);
    for (const action of ['read', 'write', 'admin'] as const) {
      assert.equal(allows(admin, { action, repo: 'team/a/b', region }), true, action);
      assert.equal(allows(admin, { action, repo: 'other', region }), false, `${action} outside the repo globs`);
      assert.equal(allows(admin, { action, repo: 'team/a', region: 'eu1' }), false, `${action} outside the region globs`);
    }
    assert.equal(allows(NO_RIGHTS, { action: 'read', repo: 'x', region }), false);
  });

  test('a node-wide action (no repository) needs a repository glob matching everything', () => {
    assert.equal(allows(makeRights({ admin: true }), { action: 'admin', region: 'r' }), true);
    assert.equal(allows(makeRights({ admin: true, repos: ['**'] }), { action: 'admin', region: 'r' }), true);
    assert.equal(allows(makeRights({ admin: true, repos: ['team/*'] }), { action: 'admin', region: 'r' }), false);
  });

  test('formatRights', () => {
    assert.equal(formatRights(makeRights({ read: true, write: true, repos: ['a/*', 'b'] })), 'read, write; regions *; repos a/* b');
    assert.equal(formatRights(NO_RIGHTS), 'no rights; regions *; repos *');
  });
});

describe('authorize and the 404 rule', () => {
  const pub = { public: true };
  const priv = { public: false };

  test('anyone reads a public repository; nothing else without rights', () => {
    assert.equal(authorize(ANONYMOUS, 'read', 'p', pub), true);
    assert.equal(authorize(ANONYMOUS, 'write', 'p', pub), false);
    assert.equal(authorize(ANONYMOUS, 'read', 'p', priv), false);
    assert.equal(authorize(ANONYMOUS, 'read', 'p', undefined), false, 'a missing repository is not public');
    const node: Identity = { kind: 'node', cluster: 'c', region: 'r', node: 'n', serial: '1', fingerprint256: 'F', notAfter: new Date() };
    assert.equal(authorize(node, 'read', 'p', priv), false);
    assert.equal(authorize(node, 'read', 'p', pub), true);
  });

  test('certificates and tokens: their rights, in the node region', () => {
    const alice = certIdentity({ read: true, repos: ['team/*'], regions: ['eu-*'] });
    assert.equal(authorize(alice, 'read', 'team/x', priv, { region: 'eu-1' }), true);
    assert.equal(authorize(alice, 'read', 'team/x', priv, { region: 'us-1' }), false);
    assert.equal(authorize(alice, 'read', 'team/x', priv), false, 'default region "default" is not eu-*');
    assert.equal(authorize(alice, 'write', 'team/x', priv, { region: 'eu-1' }), false);
    assert.equal(authorize(alice, 'read', 'other', pub, { region: 'us-1' }), true, 'public is public');
    const token: Identity = { kind: 'token', user: 'ci', rights: makeRights({ write: true }), tokenId: 'abcdefabcdef' };
    assert.equal(authorize(token, 'write', 'any/thing', undefined), true, 'allowed to create');
    assert.equal(describeIdentity(token), 'token:ci(abcdefabcdef)');
    assert.equal(describeIdentity(alice), 'cert:alice');
  });

  test('denial: 404 with one body whatever the reason; 401 challenge only for anonymous when tokens are on', () => {
    const alice = certIdentity({ read: true });
    assert.deepEqual(denial(alice), denial(ANONYMOUS));
    assert.equal(denial(alice, { challenge: true }).status, 404);
    assert.equal(denial(ANONYMOUS).status, 404);
    assert.equal(denial(ANONYMOUS).body, NOT_FOUND_BODY);
    const challenge = denial({ kind: 'anonymous', rejected: 'token unknown' }, { challenge: true });
    assert.equal(challenge.status, 401);
    assert.match(challenge.headers['www-authenticate'], /^Basic realm="packferry"/);
  });
});

describe('certificate extensions (DER)', () => {
  test('rights round-trip exactly', () => {
    const rights = makeRights({ admin: false, read: true, write: true, regions: ['eu-*', 'us-east'], repos: ['team/*', 'ünïcode/?'] });
    const der = encodeRights(rights);
    assert.equal(der[0], 0x30, 'a SEQUENCE');
    assert.deepEqual(decodeRights(der), rights);
    fc.assert(
      fc.property(fc.boolean(), fc.boolean(), fc.boolean(), fc.array(fc.string({ minLength: 1, maxLength: 20 }).filter((s) => !Array.from(s).some((c) => c < ' ' || c === '\u007f')), { minLength: 1, maxLength: 5 }), (admin, read, write, repos) => {
        const r = makeRights({ admin, read, write, repos });
        assert.deepEqual(decodeRights(encodeRights(r)), r);
      }),
      { numRuns: 300 },
    );
  });

  test('node identity round-trips', () => {
    const n = { cluster: 'c.example', region: 'r1', node: 'n1' };
    assert.deepEqual(decodeNode(encodeNode(n)), n);
  });

  test('OIDs encode as X.690 says', () => {
    assert.equal(encodeOidContent('1.2.840.113549').toString('hex'), '2a864886f70d');
    assert.equal(decodeOidContent(Buffer.from('2a864886f70d', 'hex')), '1.2.840.113549');
    assert.equal(decodeOidContent(encodeOidContent('1.3.6.1.4.1.59541.1.1')), '1.3.6.1.4.1.59541.1.1');
    assert.equal(decodeOidContent(encodeOidContent('2.999.3')), '2.999.3');
  });

  test('strict DER: non-minimal and indefinite lengths, truncation and trailing bytes are refused', () => {
    const bad = (hex: string) => () => readTlv(Buffer.from(hex, 'hex'));
    assert.throws(bad('3080'), /indefinite/);
    assert.throws(bad('30810100'), /non-minimal/);
    assert.throws(bad('3005010100'), /overruns/);
    assert.throws(bad('1f'), /truncated|multi-byte/);
    const der = encodeRights(makeRights({ read: true }));
    assert.throws(() => decodeRights(Buffer.concat([der, Buffer.from([0])])), (e) => isPackferryError(e, ErrorCode.Certificate));
    // BOOLEAN must be 0x00 or 0xff in DER.
    const tampered = Buffer.from(der);
    tampered[tampered.indexOf(Buffer.from([0x01, 0x01, 0xff])) + 2] = 0x01;
    assert.throws(() => decodeRights(tampered), /BOOLEAN/);
    // An empty glob list in a certificate is malformed (it must not silently mean "everything").
    const empty = encodeSequence([encodeSmallInteger(1), encodeBoolean(false), encodeBoolean(true), encodeBoolean(false), encodeSequence([]), encodeSequence([encodeUtf8('*')])]);
    assert.throws(() => decodeRights(empty), /empty glob list/);
  });

  test('property: any mutation of a rights extension decodes to valid rights or fails with ERR_CERTIFICATE', () => {
    const der = encodeRights(makeRights({ read: true, write: true, repos: ['team/*', 'x'], regions: ['r1'] }));
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(der.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), fc.nat(der.length), (edits, cut) => {
        const bytes = Buffer.from(der);
        for (const [i, v] of edits) bytes[i] = v;
        try {
          const r = decodeRights(bytes.subarray(0, cut === 0 ? bytes.length : cut));
          assert.ok(r.regions.length > 0 && r.repos.length > 0);
        } catch (err) {
          assert.ok(isPackferryError(err, ErrorCode.Certificate), String(err));
        }
      }),
      { numRuns: 2000 },
    );
  });
});

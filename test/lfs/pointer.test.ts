// Git LFS pointers (git-lfs docs/spec.md "The Pointer", spec v1): what the
// real `git lfs pointer` writes parses; the strict rules (version first,
// sorted keys, sha256 oids in lowercase hex, canonical sizes, a final
// newline, under 1024 bytes) each refuse what breaks them; CRLF pointers (which
// the reference client smudges) parse and say so; and a fast-check fuzz of
// the parser over mutated pointers and arbitrary bytes: a value or
// ERR_LFS_POINTER, never another error.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { ErrorCode, PackferryError } from '../../src/core/errors.js';
import { formatLfsPointer, isLfsOid, LFS_SPEC_V1, MAX_POINTER_SIZE, parseLfsPointer, tryParseLfsPointer } from '../../src/store/lfs.js';
import { gitAsync, tempDir } from '../support/git.js';

const OID = createHash('sha256').update('hello lfs').digest('hex');
const EXT = createHash('sha256').update('before the extension').digest('hex');
const b = (s: string) => Buffer.from(s, 'latin1');
const canonical = `version ${LFS_SPEC_V1}\noid sha256:${OID}\nsize 9\n`;

function refuses(text: string | Buffer, why: RegExp): void {
  const data = typeof text === 'string' ? b(text) : text;
  assert.throws(
    () => parseLfsPointer(data),
    (err: unknown) => err instanceof PackferryError && err.code === ErrorCode.LfsPointer && why.test(err.message),
    `expected ERR_LFS_POINTER matching ${why} for ${JSON.stringify(data.toString('latin1'))}`,
  );
  assert.equal(tryParseLfsPointer(data), undefined);
}

describe('LFS pointer parsing (spec v1)', () => {
  it('parses the canonical pointer, and formats it back byte for byte', () => {
    const p = parseLfsPointer(b(canonical));
    assert.deepEqual(p, { oid: OID, size: 9, extensions: [], crlf: false });
    assert.equal(formatLfsPointer(p), canonical);
    assert.deepEqual(tryParseLfsPointer(b(canonical)), p);
    assert.equal(isLfsOid(OID), true);
    assert.equal(isLfsOid(OID.toUpperCase()), false);
  });

  it('parses what the real `git lfs pointer` writes', async () => {
    const tmp = tempDir('packferry-lfs-pointer-');
    try {
      const content = Buffer.alloc(123_457, 0x5a);
      writeFileSync(join(tmp.path, 'big.bin'), content);
      const r = await gitAsync(['lfs', 'pointer', '--file', 'big.bin'], { cwd: tmp.path });
      assert.equal(r.code, 0, r.stderr);
      const p = parseLfsPointer(r.stdout);
      assert.equal(p.oid, createHash('sha256').update(content).digest('hex'));
      assert.equal(p.size, content.length);
      assert.equal(formatLfsPointer(p), r.stdout.toString('latin1'));
    } finally {
      tmp.cleanup();
    }
  });

  it('accepts CRLF line endings on every line (the reference client smudges them) and reports them', () => {
    const p = parseLfsPointer(b(canonical.replace(/\n/g, '\r\n')));
    assert.deepEqual(p, { oid: OID, size: 9, extensions: [], crlf: true });
    refuses(canonical.replace('\n', '\r\n'), /mixed line endings/);
    refuses(`version ${LFS_SPEC_V1}\noid sha256:${OID}\r\nsize 9\n`, /mixed line endings|carriage return/);
  });

  it('parses extensions in priority order, between version and oid', () => {
    const text = `version ${LFS_SPEC_V1}\next-0-foo sha256:${EXT}\next-1-bar_2 sha256:${OID}\noid sha256:${OID}\nsize 9\n`;
    const p = parseLfsPointer(b(text));
    assert.deepEqual(p.extensions, [
      { name: 'foo', priority: 0, oid: EXT },
      { name: 'bar_2', priority: 1, oid: OID },
    ]);
    assert.equal(formatLfsPointer(p), text);
    refuses(`version ${LFS_SPEC_V1}\next-1-foo sha256:${EXT}\next-0-bar sha256:${OID}\noid sha256:${OID}\nsize 9\n`, /out of order/);
    refuses(`version ${LFS_SPEC_V1}\next-1-foo sha256:${EXT}\next-1-bar sha256:${OID}\noid sha256:${OID}\nsize 9\n`, /out of order/);
    refuses(`version ${LFS_SPEC_V1}\next-0-foo sha1:${EXT.slice(0, 40)}\noid sha256:${OID}\nsize 9\n`, /bad extension line/);
    refuses(`version ${LFS_SPEC_V1}\next-10-foo sha256:${EXT}\noid sha256:${OID}\nsize 9\n`, /bad extension line/);
    refuses(`version ${LFS_SPEC_V1}\noid sha256:${OID}\next-0-foo sha256:${EXT}\nsize 9\n`, /expected "size"|bad size/);
  });

  it('refuses pointers of 1024 bytes or more', () => {
    const padded = `version ${LFS_SPEC_V1}\n${`ext-0-${'x'.repeat(1000)} sha256:${EXT}\n`}oid sha256:${OID}\nsize 9\n`;
    assert.ok(padded.length >= MAX_POINTER_SIZE);
    refuses(padded, /a pointer is smaller than 1024/);
    refuses(canonical + ' '.repeat(MAX_POINTER_SIZE), /a pointer is smaller than 1024/);
  });

  it('refuses bad oids', () => {
    refuses(canonical.replace(OID, OID.toUpperCase()), /bad oid/);
    refuses(canonical.replace(OID, OID.slice(1)), /bad oid/);
    refuses(canonical.replace(OID, `${OID}0`), /bad oid/);
    refuses(canonical.replace(`sha256:${OID}`, `sha1:${OID.slice(0, 40)}`), /bad oid/);
    refuses(canonical.replace(`sha256:${OID}`, OID), /bad oid/);
    refuses(canonical.replace(OID, `${OID.slice(0, 63)}g`), /bad oid/);
    refuses(`version ${LFS_SPEC_V1}\nsize 9\n`, /expected "oid"/);
  });

  it('refuses bad sizes', () => {
    for (const size of ['-1', '+9', '09', '9.0', '0x9', '', ' 9', '9 ', '1e3', '99999999999999999']) {
      refuses(canonical.replace('size 9', `size ${size}`), /bad size|unexpected line|too large/);
    }
    refuses(canonical.replace('size 9', 'size 9007199254740993'), /bad size|too large/);
    assert.equal(parseLfsPointer(b(canonical.replace('size 9', 'size 0'))).size, 0);
    assert.equal(parseLfsPointer(b(canonical.replace('size 9', 'size 9007199254740991'))).size, Number.MAX_SAFE_INTEGER);
    refuses(`version ${LFS_SPEC_V1}\noid sha256:${OID}\n`, /expected "size"/);
  });

  it('refuses other versions, unknown keys, blank lines, stray spaces and a missing final newline', () => {
    refuses(canonical.replace(LFS_SPEC_V1, 'https://hawser.github.com/spec/v1'), /unknown version/);
    refuses(canonical.replace(LFS_SPEC_V1, `${LFS_SPEC_V1}/`), /unknown version/);
    refuses(`oid sha256:${OID}\nversion ${LFS_SPEC_V1}\nsize 9\n`, /first line/);
    refuses(`${canonical}x-custom value\n`, /unexpected line/);
    refuses(canonical.replace('\noid', '\n\noid'), /expected "oid"/);
    refuses(`${canonical}\n`, /unexpected line/);
    refuses(canonical.replace('size 9', 'size  9'), /bad size/);
    refuses(canonical.replace('oid sha256', 'oid  sha256'), /bad oid/);
    refuses(canonical.slice(0, -1), /no newline/);
    refuses(`${canonical.slice(0, -1)} \n`, /bad size/);
    refuses(canonical.replace('size 9', 'size 9\0'), /byte 0x00/);
    refuses(Buffer.concat([b(canonical.slice(0, -1)), Buffer.from([0xc3, 0xa9, 0x0a])]), /byte 0xc3/);
    assert.equal(tryParseLfsPointer(b('hello world\n')), undefined);
    assert.equal(tryParseLfsPointer(b('')), undefined);
  });

  it('fuzz: mutated pointers and arbitrary bytes give a pointer or ERR_LFS_POINTER, nothing else', () => {
    const seeds = [
      canonical,
      canonical.replace(/\n/g, '\r\n'),
      `version ${LFS_SPEC_V1}\next-0-foo sha256:${EXT}\noid sha256:${OID}\nsize 123456789\n`,
    ].map(b);
    const mutated = fc
      .tuple(
        fc.constantFrom(...seeds),
        fc.array(
          fc.oneof(
            fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
            fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
            fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ maxLength: 8 }) }),
            fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 8 }) }),
          ),
          { maxLength: 4 },
        ),
      )
      .map(([seed, edits]) => {
        let buf = Buffer.from(seed);
        for (const e of edits) {
          const at = buf.length === 0 ? 0 : e.at % (buf.length + 1);
          if (e.kind === 'flip' && buf.length > 0) buf[at % buf.length] = e.value;
          else if (e.kind === 'cut') buf = buf.subarray(0, at);
          else if (e.kind === 'insert') buf = Buffer.concat([buf.subarray(0, at), e.bytes, buf.subarray(at)]);
          else if (e.kind === 'delete') buf = Buffer.concat([buf.subarray(0, at), buf.subarray(at + e.length)]);
        }
        return buf;
      });
    const check = (data: Uint8Array) => {
      let value;
      try {
        value = parseLfsPointer(data);
      } catch (err) {
        assert.ok(err instanceof PackferryError && err.code === ErrorCode.LfsPointer, `unexpected ${String(err)}`);
        assert.equal(tryParseLfsPointer(data), undefined);
        return;
      }
      // A value is a valid pointer: it formats back to the same bytes (modulo CRLF).
      assert.ok(isLfsOid(value.oid) && Number.isSafeInteger(value.size) && value.size >= 0);
      const text = Buffer.from(data).toString('latin1');
      assert.equal(formatLfsPointer(value), value.crlf ? text.replace(/\r\n/g, '\n') : text);
      assert.deepEqual(tryParseLfsPointer(data), value);
    };
    fc.assert(fc.property(mutated, check), { numRuns: 3000 });
    fc.assert(fc.property(fc.uint8Array({ maxLength: 1200 }), check), { numRuns: 1000 });
  });
});

// The parsers of option values shared by every command (src/cli/common.ts).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseByteSize, parseCount, parseDuration, s3OptionsFrom, UsageError } from '../../src/cli/common.js';

describe('parseDuration', () => {
  it('reads units, fractions and plain seconds', () => {
    const d = (t: string) => parseDuration(t, '--grace', 'usage');
    assert.equal(d('90s'), 90_000);
    assert.equal(d('30m'), 1_800_000);
    assert.equal(d('2h'), 7_200_000);
    assert.equal(d('1.5h'), 5_400_000);
    assert.equal(d('1d'), 86_400_000);
    assert.equal(d('250ms'), 250);
    assert.equal(d('10'), 10_000);
    assert.equal(d('0'), 0);
  });

  it('rejects anything else as a usage error naming the option', () => {
    for (const bad of ['soon', '-1h', '1w', '', 'h']) {
      assert.throws(() => parseDuration(bad, '--body-timeout', 'usage'), (err: unknown) => err instanceof UsageError && err.message.startsWith('--body-timeout takes a duration'), bad);
    }
  });
});

describe('parseByteSize', () => {
  it('reads plain bytes and binary suffixes, as Git does', () => {
    const b = (t: string) => parseByteSize(t, '--max-memory', 'usage');
    assert.equal(b('4096'), 4096);
    assert.equal(b('512k'), 512 * 1024);
    assert.equal(b('64M'), 64 * 1024 ** 2);
    assert.equal(b('4G'), 4 * 1024 ** 3);
    assert.equal(b('1.5GiB'), 1.5 * 1024 ** 3);
    assert.equal(b('2t'), 2 * 1024 ** 4);
  });

  it('rejects zero, negatives and words', () => {
    for (const bad of ['0', '-1', 'lots', '', '4X', '1e9']) {
      assert.throws(() => parseByteSize(bad, '--max-memory', 'usage'), UsageError, bad);
    }
  });
});

describe('parseCount', () => {
  it('takes positive whole numbers only', () => {
    assert.equal(parseCount('8', '--max-requests', 'usage'), 8);
    for (const bad of ['0', '-3', '1.5', 'many', '', '12345678901']) assert.throws(() => parseCount(bad, '--max-requests', 'usage'), UsageError, bad);
  });
});

describe('s3OptionsFrom', () => {
  it('--s3-conditional-writes takes auto, on or off; anything else is a usage error naming the option', () => {
    for (const mode of ['auto', 'on', 'off'] as const) assert.equal(s3OptionsFrom({ 's3-conditional-writes': mode }, 'usage').conditionalWrites, mode);
    assert.equal(s3OptionsFrom({}, 'usage').conditionalWrites, undefined, 'unset: the store decides (auto)');
    for (const bad of ['yes', 'true', '', 'AUTO']) {
      assert.throws(() => s3OptionsFrom({ 's3-conditional-writes': bad }, 'usage'), (err: unknown) => err instanceof UsageError && err.message.startsWith('--s3-conditional-writes takes auto, on or off'), bad);
    }
  });
});

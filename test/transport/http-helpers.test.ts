// The pure parts of the HTTP transport: the netrc parser (curl's format),
// URL validation and redaction, backoff and Retry-After, proxy variables and
// NO_PROXY, and which credentials go to which origin.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCode, isPackferryError } from '../../src/core/errors.js';
import { TOKEN_USERNAME, authorizationHeader, credentialsFor, type CredentialSources, type HttpCredentials } from '../../src/transport/http-credentials.js';
import { DEFAULT_RETRY_POLICY, parseRetryAfter, retryDelayMs } from '../../src/transport/http-retry.js';
import { parseHttpUrl, redactUrl, repositoryUrl } from '../../src/transport/http-url.js';
import { bypassesProxy, proxySettingsFromEnv } from '../../src/transport/http.js';
import { findNetrcEntry, parseNetrc } from '../../src/transport/netrc.js';

describe('netrc', () => {
  it('reads machine, login, password, account and default, across lines and on one line', () => {
    const entries = parseNetrc(
      'machine a.example login alice password one\n' +
        'machine b.example\n  login bob\n  password two\n  account acct\n' +
        'default login anon password three\n',
    );
    assert.deepEqual(entries, [
      { machine: 'a.example', login: 'alice', password: 'one', account: undefined },
      { machine: 'b.example', login: 'bob', password: 'two', account: 'acct' },
      { machine: undefined, login: 'anon', password: 'three', account: undefined },
    ]);
  });

  it('quoted tokens with escapes, comments, and macdef bodies are handled as curl does', () => {
    const entries = parseNetrc(
      '# a comment line with machine words: machine evil login x password y\n' +
        'machine q.example login "user name" password "pa ss\\"word\\\\"\n' +
        'macdef init\ncd /pub\nmachine inside-macro login no password no\n\n' +
        'machine after.example login c password d # trailing comment\n',
    );
    assert.deepEqual(
      entries.map((e) => [e.machine, e.login, e.password]),
      [
        ['q.example', 'user name', 'pa ss"word\\'],
        ['after.example', 'c', 'd'],
      ],
    );
  });

  it('an unterminated file ends the last entry cleanly', () => {
    assert.deepEqual(parseNetrc('machine x login'), [{ machine: 'x', login: undefined, password: undefined, account: undefined }]);
    assert.deepEqual(parseNetrc(''), []);
  });

  it('finds the first machine entry (case-insensitive), by login when given, else default unless refused', () => {
    const entries = parseNetrc('machine Host.Example login a password 1\nmachine host.example login b password 2\ndefault login d password 4\n');
    assert.equal(findNetrcEntry(entries, 'host.example')?.password, '1');
    assert.equal(findNetrcEntry(entries, 'HOST.example', { login: 'b' })?.password, '2');
    assert.equal(findNetrcEntry(entries, 'host.example', { login: 'c' }), undefined, 'default has login d');
    assert.equal(findNetrcEntry(entries, 'other.example')?.password, '4');
    assert.equal(findNetrcEntry(entries, 'other.example', { allowDefault: false }), undefined);
  });
});

describe('HTTP URLs', () => {
  it('takes the userinfo out (percent-decoded) and drops trailing slashes', () => {
    const u = parseHttpUrl('https://us%40er:p%3Ass@git.example:8443/group/repo.git//');
    assert.equal(u.username, 'us@er');
    assert.equal(u.password, 'p:ss');
    assert.equal(u.base.href, 'https://git.example:8443/group/repo.git');
    assert.equal(repositoryUrl(u.base, 'info/refs', { service: 'git-upload-pack' }).href, 'https://git.example:8443/group/repo.git/info/refs?service=git-upload-pack');
    assert.equal(repositoryUrl(parseHttpUrl('http://h/').base, 'git-receive-pack').href, 'http://h/git-receive-pack');
  });

  it('refuses other schemes, queries, fragments and non-URLs with ERR_INVALID_URL, without leaking secrets', () => {
    for (const bad of ['ssh://h/r.git', 'file:///r.git', 'https://u:secret@h/r.git?x', 'http://h/r.git#f', 'h/r.git', 'http://u:%zz@h/r']) {
      assert.throws(
        () => parseHttpUrl(bad),
        (err: unknown) => isPackferryError(err, ErrorCode.InvalidUrl) && !err.message.includes('secret'),
        bad,
      );
    }
  });

  it('redacts userinfo and secret-looking query parameters', () => {
    assert.equal(redactUrl('https://u:p@h/r.git'), 'https://h/r.git');
    assert.equal(redactUrl('https://h/r?access_token=abc&service=x'), 'https://h/r?access_token=REDACTED&service=x');
    assert.equal(redactUrl('not a url //user:pw@host'), 'not a url //host');
  });
});

describe('retry timing', () => {
  it('full jitter stays below the doubling ceiling and the cap', () => {
    const policy = { retries: 10, baseDelayMs: 100, maxDelayMs: 1000 };
    assert.equal(retryDelayMs(policy, 0, undefined, () => 0), 0);
    assert.equal(retryDelayMs(policy, 0, undefined, () => 0.999), 99);
    assert.equal(retryDelayMs(policy, 2, undefined, () => 0.5), 200);
    assert.equal(retryDelayMs(policy, 20, undefined, () => 0.999), 999);
    for (let retry = 0; retry < 8; retry++) {
      const d = retryDelayMs(DEFAULT_RETRY_POLICY, retry, undefined);
      assert.ok(d >= 0 && d < Math.min(10_000, 250 * 2 ** retry), `retry ${retry}: ${d}`);
    }
  });

  it('Retry-After wins over jitter and is capped', () => {
    const policy = { retries: 4, baseDelayMs: 100, maxDelayMs: 5000 };
    assert.equal(retryDelayMs(policy, 0, 3000, () => 0), 3000);
    assert.equal(retryDelayMs(policy, 0, 3_600_000, () => 0), 5000);
  });

  it('parses delay-seconds and HTTP-dates; ignores anything else', () => {
    const now = Date.parse('Wed, 21 Oct 2015 07:28:00 GMT');
    assert.equal(parseRetryAfter('120', now), 120_000);
    assert.equal(parseRetryAfter(' 0 ', now), 0);
    assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:28:30 GMT', now), 30_000);
    assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:00:00 GMT', now), 0);
    assert.equal(parseRetryAfter(undefined, now), undefined);
    assert.equal(parseRetryAfter('-5', now), undefined);
    assert.equal(parseRetryAfter('soon', now), undefined);
    assert.equal(parseRetryAfter('1.5', now), undefined);
  });
});

describe('proxy settings', () => {
  it('lowercase variables win, ALL_PROXY is the fallback, options.proxy overrides', () => {
    const env = { http_proxy: 'http://lower:1', HTTP_PROXY: 'http://upper:1', ALL_PROXY: 'http://all:1', NO_PROXY: '.internal.example, 10.0.0.1:8080' };
    const s = proxySettingsFromEnv(env);
    assert.equal(s.http, 'http://lower:1');
    assert.equal(s.https, 'http://all:1');
    assert.deepEqual(s.noProxy, [
      { host: 'internal.example', port: undefined },
      { host: '10.0.0.1', port: 8080 },
    ]);
    assert.equal(proxySettingsFromEnv(env, null).http, undefined);
    assert.equal(proxySettingsFromEnv(env, 'http://opt:1').https, 'http://opt:1');
    assert.equal(proxySettingsFromEnv({ HTTP_PROXY: '' }).http, undefined);
  });

  it('NO_PROXY matches hosts, domain suffixes and ports; "*" matches everything', () => {
    const { noProxy } = proxySettingsFromEnv({ no_proxy: '*.corp.example,git.example:8443,[::1]' });
    assert.equal(bypassesProxy(new URL('https://a.corp.example/r'), noProxy), true);
    assert.equal(bypassesProxy(new URL('https://corp.example/r'), noProxy), true);
    assert.equal(bypassesProxy(new URL('https://evilcorp.example/r'), noProxy), false);
    assert.equal(bypassesProxy(new URL('https://git.example:8443/r'), noProxy), true);
    assert.equal(bypassesProxy(new URL('https://git.example/r'), noProxy), false);
    assert.equal(bypassesProxy(new URL('http://[::1]:80/r'), noProxy), true);
    assert.equal(bypassesProxy(new URL('http://anything/r'), proxySettingsFromEnv({ NO_PROXY: '*' }).noProxy), true);
  });
});

describe('credentials', () => {
  const origin = new URL('https://git.example/r.git');
  const netrc = parseNetrc('machine git.example login n password netrc-pw\nmachine other.example login o password other-pw\ndefault login d password default-pw\n');
  const password = (c: HttpCredentials | undefined): string | undefined => (c?.scheme === 'basic' ? c.password : undefined);
  const sources = (extra: Partial<CredentialSources>): CredentialSources => ({ origin, netrc: () => netrc, ...extra });

  it('URL password, then token, then netrc', () => {
    assert.deepEqual(credentialsFor(origin, sources({ username: 'u', password: 'p', token: 't' })), { scheme: 'basic', username: 'u', password: 'p', source: 'url' });
    assert.deepEqual(credentialsFor(origin, sources({ token: 't' })), { scheme: 'basic', username: TOKEN_USERNAME, password: 't', source: 'token' });
    assert.deepEqual(credentialsFor(origin, sources({ username: 'u', token: 't' })), { scheme: 'basic', username: 'u', password: 't', source: 'token' });
    assert.deepEqual(credentialsFor(origin, sources({ token: 't', tokenScheme: 'bearer' })), { scheme: 'bearer', token: 't', source: 'token' });
    assert.deepEqual(credentialsFor(origin, sources({})), { scheme: 'basic', username: 'n', password: 'netrc-pw', source: 'netrc' });
    assert.equal(credentialsFor(origin, { origin }), undefined);
  });

  it('another origin (host, port or scheme) gets only a netrc machine entry of its own', () => {
    const all = sources({ username: 'u', password: 'p', token: 't' });
    assert.equal(password(credentialsFor(new URL('https://other.example/r.git'), all)), 'other-pw');
    assert.equal(credentialsFor(new URL('https://third.example/r.git'), all), undefined, 'not the default entry');
    assert.equal(password(credentialsFor(new URL('http://git.example/r.git'), all)), 'netrc-pw', 'the scheme changed: no URL password');
    assert.equal(credentialsFor(new URL('https://git.example:444/r.git'), sources({ password: 'p' }))?.source, 'netrc');
    assert.equal(credentialsFor(new URL('https://git.example/elsewhere.git'), all)?.source, 'url', 'same origin, other path');
  });

  it('Authorization headers', () => {
    assert.equal(authorizationHeader({ scheme: 'basic', username: 'a', password: 'b:c', source: 'url' }), `Basic ${Buffer.from('a:b:c').toString('base64')}`);
    assert.equal(authorizationHeader({ scheme: 'bearer', token: 'xyz', source: 'token' }), 'Bearer xyz');
  });
});

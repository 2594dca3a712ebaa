// Git remote URLs (git-clone(1), "GIT URLS"; connect.c parse_connect_url):
// our parser against Git's own reading of the same URL
// (`git fetch-pack --diag-url`), the hostile inputs we refuse, and the
// credential-free display form.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ErrorCode, isPackferryError } from '../../src/core/errors.js';
import { displayUrl, isLocalPath, parseGitUrl, type GitUrl } from '../../src/transport/url.js';
import { git, tempDir } from '../support/git.js';

const tmp = tempDir('packferry-url-');

before(() => {
  git(['init', '-q', tmp.path]);
});
after(() => tmp.cleanup());

/** What `git fetch-pack --diag-url` prints, as a record. */
function gitDiag(url: string): Record<string, string> {
  const out = git(['fetch-pack', '--diag-url', url], { cwd: tmp.path });
  const fields: Record<string, string> = {};
  for (const line of out.split('\n')) {
    const m = /^Diag: (\w+)=(.*)$/.exec(line);
    if (m !== null) fields[m[1]] = m[2];
  }
  return fields;
}

function expectInvalid(input: string, reason?: RegExp): void {
  assert.throws(
    () => parseGitUrl(input),
    (err: unknown) => {
      assert.ok(isPackferryError(err, ErrorCode.InvalidUrl), `expected ERR_INVALID_URL for ${JSON.stringify(input)}, got ${String(err)}`);
      if (reason !== undefined) assert.match(err.message, reason);
      return true;
    },
  );
}

describe('parseGitUrl: the forms of git-clone "GIT URLS"', () => {
  const cases: [string, GitUrl][] = [
    ['ssh://user@host.xz:2222/path/to/repo.git', { scheme: 'ssh', user: 'user', host: 'host.xz', port: 2222, path: '/path/to/repo.git' }],
    ['ssh://host.xz/path/to/repo.git/', { scheme: 'ssh', host: 'host.xz', path: '/path/to/repo.git/' }],
    ['git+ssh://host.xz/repo', { scheme: 'ssh', host: 'host.xz', path: '/repo' }],
    ['ssh+git://git@host.xz/repo', { scheme: 'ssh', user: 'git', host: 'host.xz', path: '/repo' }],
    ['ssh://host.xz/~user/repo.git', { scheme: 'ssh', host: 'host.xz', path: '~user/repo.git' }],
    ['ssh://host.xz:22/~/repo.git', { scheme: 'ssh', host: 'host.xz', port: 22, path: '~/repo.git' }],
    ['ssh://[::1]:2222/srv/repo', { scheme: 'ssh', host: '::1', port: 2222, path: '/srv/repo' }],
    ['ssh://user@[fe80::1]/srv/repo', { scheme: 'ssh', user: 'user', host: 'fe80::1', path: '/srv/repo' }],
    ['ssh://host:/p', { scheme: 'ssh', host: 'host', path: '/p' }],
    ['ssh://a@b@host/p', { scheme: 'ssh', user: 'a@b', host: 'host', path: '/p' }],
    ['ssh://host/my%20repo.git', { scheme: 'ssh', host: 'host', path: '/my repo.git' }],
    ['git@github.com:owner/repo.git', { scheme: 'ssh', user: 'git', host: 'github.com', path: 'owner/repo.git' }],
    ['host.xz:/abs/repo', { scheme: 'ssh', host: 'host.xz', path: '/abs/repo' }],
    ['host.xz:~user/repo', { scheme: 'ssh', host: 'host.xz', path: '~user/repo' }],
    ['host.xz:/~user/repo', { scheme: 'ssh', host: 'host.xz', path: '~user/repo' }],
    ['host:my%20repo', { scheme: 'ssh', host: 'host', path: 'my%20repo' }],
    ['host:p:q', { scheme: 'ssh', host: 'host', path: 'p:q' }],
    ['user@[::1]:repo', { scheme: 'ssh', user: 'user', host: '::1', path: 'repo' }],
    ['[myhost:123]:src', { scheme: 'ssh', host: 'myhost', port: 123, path: 'src' }],
    ['[user@myhost:123]:src', { scheme: 'ssh', user: 'user', host: 'myhost', port: 123, path: 'src' }],
    ['[::1]:22:p', { scheme: 'ssh', host: '::1', path: '22:p' }],
    ['file:///srv/repo.git', { scheme: 'file', path: '/srv/repo.git' }],
    ['file://localhost/srv/repo.git', { scheme: 'file', path: '/srv/repo.git' }],
    ['file:///tmp/a%20b', { scheme: 'file', path: '/tmp/a b' }],
    ['/srv/repo.git', { scheme: 'file', path: '/srv/repo.git' }],
    ['/srv/a:b', { scheme: 'file', path: '/srv/a:b' }],
    ['./x:y', { scheme: 'file', path: './x:y' }],
    ['../repo', { scheme: 'file', path: '../repo' }],
    ['repo', { scheme: 'file', path: 'repo' }],
    ['./-dash', { scheme: 'file', path: './-dash' }],
    ['https://example.com/owner/repo.git', { scheme: 'https', url: 'https://example.com/owner/repo.git' }],
    ['http://user:secret@example.com:8080/r', { scheme: 'http', url: 'http://user:secret@example.com:8080/r' }],
  ];
  for (const [input, expected] of cases) {
    it(input, () => assert.deepEqual(parseGitUrl(input), expected));
  }
});

describe('parseGitUrl agrees with `git fetch-pack --diag-url`', () => {
  const accepted = [
    'ssh://user@host:22/path/repo.git',
    'ssh://host/~/repo',
    'ssh://[::1]:2222/~user/repo',
    'ssh://user@[::1]:22/p',
    'ssh://[::1]/p',
    'ssh://user@h:/p',
    'ssh://us%40er@h/p',
    'ssh://h%2fx/p',
    'ssh://h/p?x#y',
    'ssh://h/a b',
    'ssh://user@[fe80::1%25eth0]:22/p',
    'git+ssh://[user@h]:22/p',
    'ssh+git://h/p',
    'host:path',
    'host:/abs',
    'host:~/repo',
    'h:/~u/r',
    'h:a~b', // Git looks only at the second character for '~'
    'h:p%20q',
    'a@b:c@d:/p',
    'user@[::1]:repo',
    '[myhost:123]:src',
    '[user@h:22]:p',
    'user@[1:2]:p',
    '[h]:p',
    'c:/x',
    './x:y',
    '/abs:y',
    'relative/path',
    'file:///tmp/a%20b',
    'file:///',
    'file://localhost/tmp/x',
  ];
  for (const input of accepted) {
    it(input, () => {
      const ours = parseGitUrl(input);
      const theirs = gitDiag(input);
      if (ours.scheme === 'ssh') {
        assert.equal(theirs.protocol, 'ssh');
        assert.equal(theirs.userandhost, ours.user !== undefined ? `${ours.user}@${ours.host}` : ours.host);
        assert.equal(theirs.port, ours.port !== undefined ? String(ours.port) : 'NONE');
        assert.equal(theirs.path, ours.path);
      } else {
        assert.equal(ours.scheme, 'file');
        assert.equal(theirs.protocol, 'file');
        assert.equal(theirs.path, ours.path);
      }
    });
  }
});

describe('parseGitUrl refuses hostile and broken input with ERR_INVALID_URL', () => {
  it('a host or user that ssh would read as an option (CVE-2017-1000117)', () => {
    expectInvalid('ssh://-oProxyCommand=touch%20pwned/x', /may not start with '-'/);
    expectInvalid('ssh://%2DoProxyCommand=x/p', /host may not start with '-'/); // only after %-decoding
    expectInvalid('-oProxyCommand=x:p', /host may not start with '-'/);
    expectInvalid('[-oProxyCommand=x]:p', /host may not start with '-'/);
    expectInvalid('ssh://user@-h/p', /host may not start with '-'/);
    expectInvalid('ssh://-user@h/p', /user may not start with '-'/);
    expectInvalid('-user@h:p', /user may not start with '-'/);
    expectInvalid('user@[-h]:p', /host may not start with '-'/);
  });
  it("a path that the remote program would read as an option (Git: \"strange pathname '-x' blocked\")", () => {
    expectInvalid('h:-x', /path may not start with '-'/);
    expectInvalid('-x', /path may not start with '-'/);
  });
  it('NUL, CR and LF, also when %-encoded', () => {
    expectInvalid('ssh://h/a\0b', /NUL, CR or LF/);
    expectInvalid('ssh://h/a\nb', /NUL, CR or LF/);
    expectInvalid('h:a\rb', /NUL, CR or LF/);
    expectInvalid('/srv/a\nb', /NUL, CR or LF/);
    expectInvalid('https://h/a\nb', /NUL, CR or LF/);
    expectInvalid('ssh://h/a%0ab', /NUL, CR or LF/);
    expectInvalid('ssh://h%0d/p', /NUL, CR or LF/);
    expectInvalid('file:///a%0Ab', /NUL, CR or LF/);
  });
  it('whitespace or control characters in a host or user', () => {
    expectInvalid('ssh://h%20x/p', /host contains whitespace/);
    expectInvalid('ssh://u%09@h/p', /user contains whitespace/);
    expectInvalid('https://h/a\tb', /control characters/);
  });
  it('empty host, user or path', () => {
    expectInvalid('', /empty URL/);
    expectInvalid('ssh:///p', /no host/);
    expectInvalid('ssh://user@/p', /no host/);
    expectInvalid(':p', /no host/);
    expectInvalid('ssh://@h/p', /empty user/);
    expectInvalid('@h:p', /empty user/);
    expectInvalid('ssh://h', /no path/);
    expectInvalid('h:', /no path/);
    expectInvalid('[::1]', /no path/);
    expectInvalid('file://', /no path/);
    expectInvalid('http://', /not a valid URL/);
  });
  it('ports that are not 1-65535 in digits', () => {
    expectInvalid('ssh://h:abc/p', /bad port/);
    expectInvalid('ssh://h:+22/p', /bad port/);
    expectInvalid('ssh://h: 22/p', /bad port/);
    expectInvalid('ssh://h:22:33/p', /bad port/);
    expectInvalid('ssh://h:0/p', /outside 1-65535/);
    expectInvalid('ssh://h:70000/p', /outside 1-65535/);
  });
  it('a password in an ssh URL, without echoing it', () => {
    assert.throws(
      () => parseGitUrl('ssh://alice:hunter2@h/p'),
      (err: unknown) => isPackferryError(err, ErrorCode.InvalidUrl) && /password/.test(err.message) && !err.message.includes('hunter2'),
    );
  });
  it('unbalanced brackets and junk after them', () => {
    expectInvalid('ssh://[::1/p', /unbalanced/);
    expectInvalid('ssh://[h]x:22/p', /after '\]'/);
  });
  it('schemes and forms packferry does not speak', () => {
    expectInvalid('git://host/repo', /git:\/\//);
    expectInvalid('foo::https://host/repo', /remote helpers/);
    expectInvalid('ftp://host/repo', /protocol 'ftp' is not supported/);
    expectInvalid('SSH://host/repo', /protocol 'SSH' is not supported/); // Git's get_protocol is case-sensitive too
    expectInvalid('file://otherhost/srv/repo', /not this machine/);
  });
  it('never anything but ERR_INVALID_URL, and never a host or user ssh could misread (fuzz)', () => {
    const pieces = fc.constantFrom('ssh://', 'git+ssh://', 'file://', 'https://', '[', ']', '@', ':', '/', '-', '~', '%2d', '%0a', '%00', '%', 'a', 'host', '22', ' ', '\t', '\n', '\0', 'é');
    fc.assert(
      fc.property(fc.array(pieces, { maxLength: 12 }), fc.string({ maxLength: 8 }), (parts, extra) => {
        const input = parts.join('') + extra;
        let url: GitUrl;
        try {
          url = parseGitUrl(input);
        } catch (err) {
          assert.ok(isPackferryError(err, ErrorCode.InvalidUrl), `${JSON.stringify(input)}: ${String(err)}`);
          return;
        }
        if (url.scheme === 'ssh') {
          assert.ok(url.host !== '' && !url.host.startsWith('-') && !/[\s\0]/.test(url.host), JSON.stringify(url));
          assert.ok(url.user === undefined || (url.user !== '' && !url.user.startsWith('-') && !/[\s\0:]/.test(url.user)));
          assert.ok(url.path !== '' && !url.path.startsWith('-') && !/[\0\n\r]/.test(url.path));
        }
      }),
      { numRuns: 3000 },
    );
  });
});

describe('isLocalPath (url_is_local_not_ssh)', () => {
  it('is local without a colon, or with a slash before the first colon', () => {
    assert.equal(isLocalPath('repo'), true);
    assert.equal(isLocalPath('./a:b'), true);
    assert.equal(isLocalPath('/a:b'), true);
    assert.equal(isLocalPath('a:b'), false);
    assert.equal(isLocalPath('a:b/c'), false);
  });
});

describe('displayUrl', () => {
  it('drops HTTP credentials, user names included (a token is often one)', () => {
    assert.equal(displayUrl(parseGitUrl('https://user:secret@example.com/r.git')), 'https://example.com/r.git');
    assert.equal(displayUrl(parseGitUrl('https://ghp_token@example.com/r.git')), 'https://example.com/r.git');
    assert.equal(displayUrl(parseGitUrl('http://example.com:8080/r?x=1')), 'http://example.com:8080/r?x=1');
  });
  it('shows ssh URLs in a form Git reads back the same way', () => {
    const forms: [string, string][] = [
      ['ssh://u@h:2222/srv/r.git', 'ssh://u@h:2222/srv/r.git'],
      ['git+ssh://h/srv/r.git', 'ssh://h/srv/r.git'],
      ['git@github.com:o/r.git', 'git@github.com:o/r.git'],
      ['[h:2222]:rel', '[h:2222]:rel'],
      ['h:~/r', 'ssh://h/~/r'],
      ['ssh://[::1]:22/p', 'ssh://[::1]:22/p'],
      ['user@[::1]:rel', 'user@[::1]:rel'],
      ['file:///srv/r', '/srv/r'],
      ['./r', './r'],
    ];
    for (const [input, shown] of forms) {
      const url = parseGitUrl(input);
      assert.equal(displayUrl(url), shown, input);
      assert.deepEqual(parseGitUrl(displayUrl(url)), url, `round trip of ${input}`);
    }
  });
  it('round-trips generated ssh URLs through parse and display', () => {
    const word = fc.stringMatching(/^[a-z0-9][a-z0-9._]{0,8}$/);
    fc.assert(
      fc.property(
        fc.option(word, { nil: undefined }),
        fc.oneof(word, fc.constant('::1'), fc.constant('fe80::2')),
        fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }),
        fc.array(word, { minLength: 1, maxLength: 3 }),
        (user, host, port, segments) => {
          const path = `/${segments.join('/')}`;
          const written = `ssh://${user !== undefined ? `${user}@` : ''}${host.includes(':') ? `[${host}]` : host}${port !== undefined ? `:${port}` : ''}${path}`;
          const expected: GitUrl = {
            scheme: 'ssh',
            ...(user !== undefined ? { user } : {}),
            host,
            ...(port !== undefined ? { port } : {}),
            path: path[1] === '~' ? path.slice(1) : path,
          };
          const url = parseGitUrl(written);
          assert.deepEqual(url, expected);
          assert.deepEqual(parseGitUrl(displayUrl(url)), url);
        },
      ),
      { numRuns: 500 },
    );
  });
});

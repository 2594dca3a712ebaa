// `packferry mirror` over smart HTTP: source and targets served by the real
// `git http-backend` (test/support/git-http-server.ts), through the shared
// acceptance suite; then HTTP on one side only, and a v0 source over HTTP
// (stateless: the negotiation is resent whole in each request).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { basename, join } from 'node:path';
import { tempDir } from '../support/git.js';
import { startGitHttpServer, type GitHttpServer } from '../support/git-http-server.js';
import {
  assertMirrored,
  commitFiles,
  initBare,
  makeSource,
  mirrorConformance,
  packferry,
  parseJson,
} from '../support/mirror-fixtures.js';

const tmp = tempDir('packferry-mirror-http-');
let server: GitHttpServer;
before(async () => {
  server = await startGitHttpServer({ projectRoot: tmp.path });
});
after(async () => {
  await server?.close();
  tmp.cleanup();
});

const url = (path: string) => `${server.url}/${basename(path)}`;
const HTTP_ARGS = ['--netrc', '/dev/null'];

mirrorConformance({
  name: 'smart HTTP (git http-backend)',
  root: () => tmp.path,
  url,
  cliArgs: () => HTTP_ARGS,
  transportOptions: () => ({ http: { netrc: false } }),
  async mirrorWithCutSource(source, targets, bytes) {
    // The source's second POST to git-upload-pack is the fetch (the first is ls-refs): cut its response.
    let posts = 0;
    const fetchPath = `/${basename(source)}/git-upload-pack`;
    server.dropNext(bytes, { match: (r) => r.method === 'POST' && r.path === fetchPath && ++posts === 2 });
    const r = await packferry(['mirror', '-q', ...HTTP_ARGS, url(source), ...targets.map(url)]);
    assert.equal(posts >= 2, true, 'the fetch was cut');
    return { ok: r.code === 0, message: r.stdout + r.stderr };
  },
});

describe('mirror with HTTP on one side', () => {
  let n = 0;
  const path = (label: string) => join(tmp.path, `${label}-side-${++n}.git`);

  it('HTTP source to a local target, and a local source to an HTTP target', async () => {
    const source = path('src');
    await makeSource(source, 5);
    const local = initBare(path('local'));
    const remote = initBare(path('remote'));
    const down = await packferry(['mirror', '-q', ...HTTP_ARGS, url(source), local]);
    assert.equal(down.code, 0, down.stdout + down.stderr);
    assertMirrored(source, local);
    commitFiles(local, 'main', { 'pushed.txt': 'from the local copy\n' });
    const up = await packferry(['mirror', '-q', '--json', ...HTTP_ARGS, local, url(remote)]);
    assert.equal(up.code, 0, up.stdout + up.stderr);
    assert.equal(parseJson(up).targets[0].target, url(remote));
    assertMirrored(local, remote);
  });
});

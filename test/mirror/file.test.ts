// `packferry mirror` between local repositories (paths: git-upload-pack and
// git-receive-pack run on this machine), through the shared acceptance suite.
// A transfer is cut by a stand-in git-upload-pack put first on PATH.
import { after } from 'node:test';
import { join } from 'node:path';
import { tempDir } from '../support/git.js';
import { installFakeGit, mirrorConformance, packferry } from '../support/mirror-fixtures.js';

const tmp = tempDir('packferry-mirror-file-');
const fake = installFakeGit(join(tmp.path, 'fake'));
after(() => tmp.cleanup());

mirrorConformance({
  name: 'file (local paths)',
  root: () => tmp.path,
  url: (path) => path,
  cliArgs: () => [],
  transportOptions: () => ({}),
  async mirrorWithCutSource(source, targets, bytes) {
    const r = await packferry(['mirror', '-q', source, ...targets], { env: fake.env({ cutAfterPackBytes: bytes }) });
    return { ok: r.code === 0, message: r.stdout + r.stderr };
  },
});

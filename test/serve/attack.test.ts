// `packferry serve` under attack (the acceptance test of the hostile-clients
// work): 8 anonymous pkt-line bombs sent again as soon as each is answered,
// and 100 slow clients from four other addresses — 25 sending their headers a
// line at a time, 25 trickling a request body, 25 sending a chunked body that
// never ends, 25 asking for a 24 MiB clone and never reading it (which once
// held the whole pack in memory for each) — while a
// normal `git clone` runs. The server must stay up, stay under 768 MiB
// resident, and serve the clone. The clone's time with and without the
// attack is reported as diagnostics.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { setTimeout as sleep } from 'node:timers/promises';
import { git, tempDir } from '../support/git.js';
import { noise } from '../support/mirror-fixtures.js';
import { anonymousClient, FLUSH, gitOk, lsRemote, pf, pkt, rawRequest, residentMiB, startServe, stopAllServers, type ServeProcess } from '../support/serve-fixtures.js';

const tmp = tempDir('packferry-serve-attack-');
const root = join(tmp.path, 'root');
const none = anonymousClient();
let server: ServeProcess;
const sockets = new Set<net.Socket>();
const timers = new Set<NodeJS.Timeout>();

function connect(localAddress: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port: server.port, localAddress }, () => resolve(socket));
    sockets.add(socket);
    socket.on('error', () => {});
    socket.once('error', reject);
  });
}

function every(ms: number, fn: () => void): void {
  timers.add(setInterval(fn, ms));
}

before(async () => {
  const big = join(tmp.path, 'big');
  git(['init', '-q', '-b', 'main', big]);
  writeFileSync(join(big, 'noise.bin'), noise(24 * 1024 * 1024, 'attack-big'));
  writeFileSync(join(big, 'README'), 'attack\n');
  git(['add', '.'], { cwd: big });
  git(['commit', '-q', '-m', 'noise'], { cwd: big });
  await pf(['mirror', big, join(root, 'pub.git')]);
  await pf(['repo', 'edit', 'pub', '--public', '--store', root]);
  server = await startServe(['--store', root]);
});

after(async () => {
  for (const t of timers) clearInterval(t);
  for (const s of sockets) s.destroy();
  await stopAllServers();
  tmp.cleanup();
});

describe('packferry serve under attack', () => {
  it('stays up and under 768 MiB through 8 pkt-line bombs and 100 slow clients, and serves a git clone meanwhile', async (t) => {
    const url = `${server.url}/pub.git`;
    const head = (await lsRemote(none, url)).get('refs/heads/main')!;
    const cloneTime = async (name: string) => {
      const started = Date.now();
      const dir = join(tmp.path, name);
      await gitOk(none, ['clone', '-q', url, dir]);
      const ms = Date.now() - started;
      await gitOk(none, ['fsck', '--full', '--no-progress'], { cwd: dir });
      return ms;
    };
    const quiet = await cloneTime('quiet');
    const rssBefore = residentMiB(server.pid);

    let attacking = true;
    // 8 bombs, each sent again once answered.
    const bomb = gzipSync(Buffer.from('0004'.repeat(8_000_000)));
    let bombs = 0;
    const bombers = Array.from({ length: 8 }, async () => {
      while (attacking) {
        const res = await rawRequest(server.url, '/pub.git/git-upload-pack', {
          method: 'POST',
          headers: { 'content-type': 'application/x-git-upload-pack-request', 'content-encoding': 'gzip', 'git-protocol': 'version=2' },
          body: bomb,
          localAddress: '127.0.0.6',
        }).catch(() => undefined);
        if (res) bombs++;
      }
    });
    // 100 slow clients.
    const headers = 'Host: 127.0.0.1\r\nContent-Type: application/x-git-upload-pack-request\r\nGit-Protocol: version=2\r\n';
    const slow: Promise<net.Socket>[] = [];
    for (let i = 0; i < 25; i++) {
      slow.push(
        connect('127.0.0.2').then((s) => {
          s.write('POST /pub.git/git-upload-pack HTTP/1.1\r\n');
          every(2000, () => s.writable && s.write(`X-Slow-${i}: ${'a'.repeat(10)}\r\n`));
          return s;
        }),
      );
      slow.push(
        connect('127.0.0.3').then((s) => {
          s.write(`POST /pub.git/git-upload-pack HTTP/1.1\r\n${headers}Content-Length: 100000\r\n\r\n`);
          every(500, () => s.writable && s.write('0'));
          return s;
        }),
      );
      slow.push(
        connect('127.0.0.4').then((s) => {
          s.write(`POST /pub.git/git-upload-pack HTTP/1.1\r\n${headers}Transfer-Encoding: chunked\r\n\r\n`);
          every(500, () => s.writable && s.write('1\r\n0\r\n'));
          return s;
        }),
      );
      // Half of them take OFS_DELTAs (the store's layers are sent as they lie), half do not (entry by entry).
      const body = Buffer.concat([pkt('command=fetch\n'), Buffer.from('0001'), ...(i % 2 === 0 ? [pkt('ofs-delta\n')] : []), pkt(`want ${head}\n`), pkt('done\n'), FLUSH]);
      slow.push(
        connect('127.0.0.5').then((s) => {
          s.write(`POST /pub.git/git-upload-pack HTTP/1.1\r\n${headers}Content-Length: ${body.length}\r\n\r\n`);
          s.write(body);
          s.pause(); // never reads the pack
          return s;
        }),
      );
    }
    await Promise.all(slow);
    let peak = rssBefore.rss;
    every(100, () => {
      try {
        peak = Math.max(peak, residentMiB(server.pid).rss);
      } catch {
        // (the server died: the assertions below say so)
      }
    });
    await sleep(2000);
    const attacked = await cloneTime('attacked');
    await sleep(2000);
    const healthy = await rawRequest(server.url, '/healthz');
    attacking = false;
    await Promise.all(bombers);
    const rss = residentMiB(server.pid);
    t.diagnostic(`git clone of a 24 MiB repository: ${quiet} ms alone, ${attacked} ms under attack; ${bombs} bombs answered`);
    t.diagnostic(`server RSS: ${rssBefore.rss.toFixed(0)} MiB before, peak ${Math.max(peak, rss.peak).toFixed(0)} MiB (VmHWM ${rss.peak.toFixed(0)} MiB)`);
    assert.equal(healthy.status, 200, 'the server is up');
    assert.ok(rss.peak < 768, `peak RSS ${rss.peak.toFixed(0)} MiB`);
    assert.ok(bombs >= 8, 'every bomb was answered');
  });
});

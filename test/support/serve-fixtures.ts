// Fixtures for the acceptance tests of `packferry serve` (test/serve/): the
// real server as a child process (`node bin/packferry.js serve`, port 0, the
// address read from its "listening on URL" line), certificates made by the
// real `packferry ca` commands, the real `git` as the client (with client
// certificates, tokens, or nothing), raw HTTP requests for what Git would
// never send, and the checks every scenario ends with: `git fsck --full` on
// clones, `git ls-remote` against `git for-each-ref`, `packferry store
// verify` on the store.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import https from 'node:https';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gitAsync, gitEnv } from './git.js';
import { BIN, packferry, type CliResult } from './mirror-fixtures.js';

// ---------------------------------------------------------------------------
// The server process.

export interface ServeProcess {
  /** The base URL it printed, e.g. https://127.0.0.1:41234 */
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  /** Its standard output so far (JSON log lines). */
  logs(): string;
  /** Its standard error so far. */
  stderr(): string;
  /** SIGTERM (once); resolves when it has exited, with its exit code (null: killed by a signal). */
  terminate(): Promise<number | null>;
  /** terminate(), then SIGKILL after 5 s. */
  stop(): Promise<number | null>;
}

const live = new Set<ServeProcess>();
const liveChildren = new Set<ChildProcess>();

// A test process that ends without its `after` hooks (an uncaught error, the
// runner's timeout or interrupt) must not leave servers running behind it.
process.once('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
  process.once(signal, () => process.exit(code)); // (the 'exit' handler above then kills the servers)
}

/**
 * Starts `packferry serve ARGS --listen 127.0.0.1:0` and waits for its
 * "packferry serve: listening on URL" line (15 s at most).
 */
export async function startServe(args: string[], options: { env?: NodeJS.ProcessEnv } = {}): Promise<ServeProcess> {
  const child: ChildProcess = spawn(process.execPath, [BIN, 'serve', '--listen', '127.0.0.1:0', ...args], {
    env: { ...gitEnv, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stdout!.on('data', (d: string) => {
    out += d;
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`packferry serve did not start within 15 s:\n${err}`));
    }, 15_000);
    child.stderr!.on('data', (d: string) => {
      err += d;
      const m = /^packferry serve: listening on (\S+)$/m.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`packferry serve exited (code ${child.exitCode}) before it listened:\n${err}`));
    });
  });
  let stopping: Promise<number | null> | undefined;
  let signalled = false;
  const exitCode = exited.then(() => child.exitCode);
  const server: ServeProcess = {
    url,
    port: Number(new URL(url).port),
    pid: child.pid!,
    logs: () => out,
    stderr: () => err,
    terminate() {
      if (!signalled && child.exitCode === null && child.signalCode === null) {
        signalled = true;
        child.kill('SIGTERM');
      }
      return exitCode;
    },
    stop() {
      stopping ??= (async () => {
        live.delete(server);
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        const code = await server.terminate();
        clearTimeout(timer);
        return code;
      })();
      return stopping;
    },
  };
  live.add(server);
  return server;
}

/** Stops every server this process started (for `after` hooks). */
export async function stopAllServers(): Promise<void> {
  await Promise.all([...live].map((s) => s.stop()));
}

// ---------------------------------------------------------------------------
// The packferry command.

/** `packferry ARGS`, which must succeed; its result. */
export async function pf(args: string[], env?: NodeJS.ProcessEnv): Promise<CliResult> {
  const result = await packferry(args, { env });
  assert.equal(result.code, 0, `packferry ${args.join(' ')} failed (exit ${result.code}):\n${result.stdout}${result.stderr}`);
  return result;
}

/** `packferry store verify --json ADDRESS`: no errors (orphans and other warnings allowed). */
export async function assertStoreVerifies(address: string, env?: NodeJS.ProcessEnv): Promise<{ warnings: { kind: string; message: string }[] }> {
  const result = await packferry(['store', 'verify', '--json', address], { env });
  let report: { ok: boolean; errors: number; problems: { severity: string; kind: string; message: string }[] };
  try {
    report = JSON.parse(result.stdout) as typeof report;
  } catch {
    assert.fail(`store verify printed no JSON (exit ${result.code}):\n${result.stdout}${result.stderr}`);
  }
  const errors = report.problems.filter((p) => p.severity === 'error');
  assert.deepEqual(errors, [], `packferry store verify ${address} found errors`);
  assert.equal(report.ok, true);
  assert.equal(result.code, 0);
  return { warnings: report.problems.filter((p) => p.severity === 'warning') };
}

// ---------------------------------------------------------------------------
// Certificates from `packferry ca`.

export interface CertFiles {
  cert: string;
  key: string;
}

export interface CliPki {
  dir: string;
  /** DIR/ca.crt */
  caFile: string;
  /** The node certificate "n1" for 127.0.0.1 and localhost. */
  node: CertFiles;
  /** DIR/USER.crt and .key of a leaf made by `packferry ca leaf`. */
  user(name: string): CertFiles;
}

/**
 * `packferry ca init CLUSTER`, `ca node r1 n1 --san 127.0.0.1,localhost` and
 * one `ca leaf USER FLAGS...` per entry of `leaves` (run in parallel).
 */
export async function makeCliPki(dir: string, leaves: Record<string, string[]>, cluster = 'test'): Promise<CliPki> {
  await pf(['ca', 'init', cluster, '--dir', dir]);
  await Promise.all([
    pf(['ca', 'node', 'r1', 'n1', '--dir', dir, '--san', '127.0.0.1,localhost']),
    ...Object.entries(leaves).map(([user, flags]) => pf(['ca', 'leaf', user, '--dir', dir, ...flags])),
  ]);
  const files = (name: string): CertFiles => ({ cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) });
  return { dir, caFile: join(dir, 'ca.crt'), node: files('n1'), user: files };
}

// ---------------------------------------------------------------------------
// Git clients.

/** How one client runs git: its `-c` settings and environment. */
export interface GitClient {
  readonly config: string[];
  readonly env: NodeJS.ProcessEnv;
}

/** No credentials at all. Git is told to trust `caFile` when given (HTTPS). */
export function anonymousClient(caFile?: string, config: string[] = []): GitClient {
  // GIT_SSL_CAINFO, when the environment sets it, wins over http.sslCAInfo: set both.
  const env: NodeJS.ProcessEnv = { GIT_ASKPASS: '', SSH_ASKPASS: '', GIT_SSL_CAINFO: caFile ?? '' };
  return { config: [...(caFile ? [`http.sslCAInfo=${caFile}`] : []), ...config], env };
}

/** Presents a client certificate (http.sslCert, http.sslKey). */
export function certClient(caFile: string, files: CertFiles): GitClient {
  return anonymousClient(caFile, [`http.sslCert=${files.cert}`, `http.sslKey=${files.key}`]);
}

/** Sends `Authorization: Bearer TOKEN` on every request (http.extraHeader). */
export function bearerClient(token: string, caFile?: string): GitClient {
  return anonymousClient(caFile, [`http.extraHeader=Authorization: Bearer ${token}`]);
}

export interface GitRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export async function runGit(client: GitClient, args: string[], options: { cwd?: string; input?: string } = {}): Promise<GitRun> {
  const r = await gitAsync([...client.config.flatMap((c) => ['-c', c]), ...args], { cwd: options.cwd, input: options.input, env: client.env });
  return { code: r.code, stdout: r.stdout.toString('utf8'), stderr: r.stderr };
}

/** Runs git, which must succeed; its stdout without the final newline. */
export async function gitOk(client: GitClient, args: string[], options: { cwd?: string; input?: string } = {}): Promise<string> {
  const r = await runGit(client, args, options);
  assert.equal(r.code, 0, `git ${args.join(' ')} failed (exit ${r.code}):\n${r.stderr}`);
  return r.stdout.replace(/\n$/, '');
}

let commits = 0;

/** Writes `file` in the working clone `dir` and commits it (no server involved); the new commit's id. */
export async function commitFile(dir: string, file: string, content: string): Promise<string> {
  const local = anonymousClient();
  writeFileSync(join(dir, file), content);
  await gitOk(local, ['add', file], { cwd: dir });
  await gitOk(local, ['commit', '-q', '-m', `edit ${file} (${++commits})`], { cwd: dir });
  return gitOk(local, ['rev-parse', 'HEAD'], { cwd: dir });
}

/** Runs git, which must fail; its stderr. */
export async function gitFails(client: GitClient, args: string[], options: { cwd?: string; input?: string } = {}): Promise<string> {
  const r = await runGit(client, args, options);
  assert.notEqual(r.code, 0, `git ${args.join(' ')} should have failed:\n${r.stdout}${r.stderr}`);
  return r.stderr;
}

/** `git ls-remote URL`: refs (name -> oid) without HEAD and peeled `^{}` lines. */
export async function lsRemote(client: GitClient, url: string): Promise<Map<string, string>> {
  const out = await gitOk(client, ['ls-remote', url]);
  const refs = new Map<string, string>();
  for (const line of out.split('\n')) {
    if (line === '') continue;
    const [oid, name] = line.split('\t');
    if (name === 'HEAD' || name.endsWith('^{}')) continue;
    refs.set(name, oid);
  }
  return refs;
}

/** What HEAD points at on the server (`git ls-remote --symref URL HEAD`), e.g. "refs/heads/main". */
export async function remoteHead(client: GitClient, url: string): Promise<string | undefined> {
  const out = await gitOk(client, ['ls-remote', '--symref', url, 'HEAD']);
  return /^ref: (\S+)\tHEAD$/m.exec(out)?.[1];
}

/**
 * A clone's refs as the server's names: a bare or mirror clone's refs as
 * they are; a working clone's refs/remotes/origin/X as refs/heads/X, and its tags.
 */
export async function cloneRefs(dir: string): Promise<Map<string, string>> {
  const none = anonymousClient();
  const bare = (await gitOk(none, ['rev-parse', '--is-bare-repository'], { cwd: dir })) === 'true';
  const out = await gitOk(none, ['for-each-ref', '--format=%(objectname) %(refname)'], { cwd: dir });
  const refs = new Map<string, string>();
  for (const line of out.split('\n')) {
    if (line === '') continue;
    const [oid, name] = line.split(' ');
    if (bare) refs.set(name, oid);
    else if (name.startsWith('refs/remotes/origin/') && name !== 'refs/remotes/origin/HEAD') refs.set(`refs/heads/${name.slice(20)}`, oid);
    else if (name.startsWith('refs/tags/')) refs.set(name, oid);
  }
  return refs;
}

/** `git fsck --full` passes in `dir` (a partial clone checks what it has). */
export async function assertFsck(dir: string): Promise<void> {
  const r = await runGit(anonymousClient(), ['fsck', '--full', '--no-progress'], { cwd: dir });
  assert.equal(r.code, 0, `git fsck --full failed in ${dir}:\n${r.stdout}${r.stderr}`);
}

/** The clone's refs equal `git ls-remote URL`'s, and fsck is clean. */
export async function assertCloneMatches(client: GitClient, url: string, dir: string): Promise<Map<string, string>> {
  const remote = await lsRemote(client, url);
  assert.deepEqual(sortedEntries(await cloneRefs(dir)), sortedEntries(remote), `refs of ${dir} differ from ls-remote ${url}`);
  await assertFsck(dir);
  return remote;
}

export function sortedEntries<V>(m: Map<string, V>): [string, V][] {
  return [...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

// ---------------------------------------------------------------------------
// Raw HTTP(S) requests (for what git would never send).

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export interface RawRequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  /** HTTPS: trust this CA (PEM file). */
  ca?: string;
  /** HTTPS: present this client certificate. */
  cert?: CertFiles;
  /** Connect from this local address (127.0.0.2 ...: another client on loopback). */
  localAddress?: string;
}

/** One request on a fresh connection; `path` is sent exactly as given (no normalisation). */
export function rawRequest(base: string, path: string, options: RawRequestOptions = {}): Promise<RawResponse> {
  const u = new URL(base);
  const tls = u.protocol === 'https:';
  const common = {
    host: u.hostname,
    port: Number(u.port),
    path,
    method: options.method ?? 'GET',
    headers: options.headers,
    agent: false as const,
    localAddress: options.localAddress,
  };
  return new Promise((resolve, reject) => {
    const onResponse = (res: http.IncomingMessage) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
      res.on('error', reject);
    };
    const req = tls
      ? https.request(
          {
            ...common,
            ca: options.ca ? readFileSync(options.ca) : undefined,
            cert: options.cert ? readFileSync(options.cert.cert) : undefined,
            key: options.cert ? readFileSync(options.cert.key) : undefined,
          },
          onResponse,
        )
      : http.request(common, onResponse);
    req.on('error', reject);
    req.end(options.body);
  });
}

/** A process's resident memory now and at its peak (VmRSS, VmHWM), in MiB. */
export function residentMiB(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kib('VmRSS') / 1024, peak: kib('VmHWM') / 1024 };
}

/** The value of one series in a Prometheus text exposition (`name{labels}`), 0 when absent. */
export function metricValue(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

// ---------------------------------------------------------------------------
// Hand-made receive-pack requests.

/** A pkt-line holding `text`. */
export function pkt(text: string | Buffer): Buffer {
  const data = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  return Buffer.concat([Buffer.from((data.length + 4).toString(16).padStart(4, '0'), 'latin1'), data]);
}

export const FLUSH = Buffer.from('0000', 'latin1');
export const ZERO_OID = '0'.repeat(40);

/** A command list: "OLD NEW REF" lines, the capabilities on the first, a flush. */
export function commandList(commands: { old: string; new: string; ref: string }[], caps = 'report-status side-band-64k'): Buffer {
  return Buffer.concat([...commands.map((c, i) => pkt(`${c.old} ${c.new} ${c.ref}${i === 0 ? `\0${caps}` : ''}\n`)), FLUSH]);
}

/** The report-status lines in a receive-pack response (side-band band 1 unwrapped, or bare pkt-lines). */
export function reportLines(body: Buffer): string[] {
  const lines: string[] = [];
  const walk = (buf: Buffer, sideBand: boolean) => {
    let at = 0;
    let inner = Buffer.alloc(0);
    while (at + 4 <= buf.length) {
      const len = parseInt(buf.subarray(at, at + 4).toString('latin1'), 16);
      if (Number.isNaN(len)) break;
      if (len < 4) {
        at += 4;
        continue;
      }
      const data = buf.subarray(at + 4, at + len);
      at += len;
      if (sideBand) {
        if (data[0] === 1) inner = Buffer.concat([inner, data.subarray(1)]);
      } else {
        lines.push(data.toString('utf8').replace(/\n$/, ''));
      }
    }
    if (sideBand) walk(inner, false);
  };
  const sideBand = body.length > 4 && body[4] <= 3 && body[4] >= 1;
  walk(body, sideBand);
  return lines;
}

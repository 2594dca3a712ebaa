// A real Git LFS server for tests, in front of a real Git smart-HTTP server,
// so the real `git lfs` client can push to it and clone from it:
//
//   POST <repo>/info/lfs/objects/batch     the Batch API (git-lfs docs/api/batch.md),
//                                          upload and download, "basic" transfers
//   PUT  <repo>/info/lfs/objects/<oid>     basic upload (docs/api/basic-transfers.md):
//                                          verified (SHA-256, size) before it is kept
//   GET  <repo>/info/lfs/objects/<oid>     basic download
//   POST <repo>/info/lfs/locks/verify      the locking API's verify (no locks), so pushes
//                                          do not warn
//   anything else                          proxied to test/support/git-http-server.ts
//                                          (`git http-backend`) over the same projectRoot
//
// Objects are kept in memory per repository path. With `auth`, every request
// (Git's and LFS's) needs that Basic user; download and upload actions carry
// their own "Authorization: RemoteAuth <token>" header (as hosted LFS servers
// hand out short-lived tokens), which the object URLs accept instead.
//
// Beside serving, it counts (batch requests with their operation and oids,
// downloads and uploads by oid) and injects faults: statuses for the next N
// batch requests (429 with Retry-After, 503), per-object errors in batch
// answers, wrong content or a wrong size for an object's downloads,
// downloads cut off half way, and actions that expire at once. Listens on 127.0.0.1 port 0; close() from an
// `after` hook.
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { startGitHttpServer, type BasicAuth, type GitHttpServer } from './git-http-server.js';

export const LFS_TYPE = 'application/vnd.git-lfs+json';

export interface LfsServerOptions {
  /** The directory of bare repositories (served by git http-backend). */
  projectRoot: string;
  /** Require this Basic user for everything. */
  auth?: BasicAuth;
}

export interface BatchRecord {
  repo: string;
  operation: string;
  oids: string[];
  status: number;
  authorization: string | undefined;
}

export type Corruption = 'content' | 'longer' | 'shorter' | 'wrong-length-header';

export interface LfsServer {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  /** The repository URL, with the Basic user in it when the server has one (and `withAuth` is not false). */
  repoUrl(name: string, withAuth?: boolean): string;
  /** Stored objects: repository path ("/name.git") -> oid -> content. */
  readonly objects: Map<string, Map<string, Buffer>>;
  readonly batches: BatchRecord[];
  /** Oids of the object downloads answered with content. */
  readonly downloads: string[];
  readonly uploads: string[];
  /** Answer the next `count` batch requests with `status`. */
  failBatch(count: number, status: number, retryAfter?: string): void;
  /** Answer `oid` in download batches with this per-object error. */
  objectError(oid: string, code: number, message: string): void;
  /** Serve `oid` wrongly from now on. */
  corrupt(oid: string, how: Corruption): void;
  /** Cut the connection half way through the next `count` downloads of `oid`. */
  dropDownload(oid: string, count: number): void;
  /** Download actions expire as they are given (expires_in 0), for the next `count` batches. */
  expireActions(count: number): void;
  /** Forget faults and counters (objects stay). */
  reset(): void;
  close(): Promise<void>;
}

const OID = /^[0-9a-f]{64}$/;

export async function startLfsServer(options: LfsServerOptions): Promise<LfsServer> {
  const git: GitHttpServer = await startGitHttpServer({ projectRoot: options.projectRoot });
  const objects = new Map<string, Map<string, Buffer>>();
  const batches: BatchRecord[] = [];
  const downloads: string[] = [];
  const uploads: string[] = [];
  const batchFaults: { status: number; retryAfter?: string }[] = [];
  const objectErrors = new Map<string, { code: number; message: string }>();
  const corrupt = new Map<string, Corruption>();
  const drops = new Map<string, number>();
  let expiring = 0;
  const token = randomBytes(16).toString('hex');
  const sockets = new Set<Socket>();
  let base = '';

  const store = (repo: string) => {
    let m = objects.get(repo);
    if (m === undefined) objects.set(repo, (m = new Map()));
    return m;
  };
  const basicOk = (header: string | undefined): boolean => {
    if (options.auth === undefined) return true;
    if (header === undefined || !/^basic /i.test(header)) return false;
    const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
    return decoded === `${options.auth.username}:${options.auth.password}`;
  };
  const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': LFS_TYPE, ...headers });
    res.end(JSON.stringify(body));
  };
  const readBody = async (req: IncomingMessage): Promise<Buffer> => {
    const chunks: Buffer[] = [];
    for await (const c of req as AsyncIterable<Buffer>) chunks.push(c);
    return Buffer.concat(chunks);
  };

  const handleLfs = async (req: IncomingMessage, res: ServerResponse, repo: string, rest: string): Promise<void> => {
    const method = req.method ?? 'GET';
    const objectAuth = req.headers.authorization === `RemoteAuth ${token}` || basicOk(req.headers.authorization);
    if (rest === 'objects/batch' && method === 'POST') {
      const record: BatchRecord = { repo, operation: '', oids: [], status: 0, authorization: req.headers.authorization };
      batches.push(record);
      const body = await readBody(req);
      if (!basicOk(req.headers.authorization)) {
        record.status = 401;
        json(res, 401, { message: 'Credentials needed' }, { 'lfs-authenticate': 'Basic realm="lfs-test"', 'www-authenticate': 'Basic realm="lfs-test"' });
        return;
      }
      const fault = batchFaults.shift();
      if (fault !== undefined) {
        record.status = fault.status;
        json(res, fault.status, { message: `injected ${fault.status}` }, fault.retryAfter === undefined ? {} : { 'retry-after': fault.retryAfter });
        return;
      }
      let request: { operation?: string; objects?: { oid: string; size: number }[]; transfers?: string[] };
      try {
        request = JSON.parse(body.toString('utf8')) as typeof request;
      } catch {
        record.status = 422;
        json(res, 422, { message: 'bad JSON' });
        return;
      }
      record.operation = request.operation ?? '';
      record.oids = (request.objects ?? []).map((o) => o.oid);
      if (request.transfers !== undefined && !request.transfers.includes('basic')) {
        record.status = 422;
        json(res, 422, { message: 'only basic transfers' });
        return;
      }
      const have = store(repo);
      const expire = expiring > 0;
      if (expire) expiring--;
      const action = (oid: string) => ({
        href: `${base}${repo}/info/lfs/objects/${oid}`,
        header: { Authorization: `RemoteAuth ${token}` },
        ...(expire ? { expires_in: 0 } : { expires_in: 3600 }),
      });
      const out = (request.objects ?? []).map(({ oid, size }) => {
        if (!OID.test(oid) || !Number.isSafeInteger(size) || size < 0) return { oid, size, error: { code: 422, message: 'invalid object' } };
        if (request.operation === 'upload') {
          return have.has(oid) ? { oid, size } : { oid, size, authenticated: true, actions: { upload: action(oid) } };
        }
        const injected = objectErrors.get(oid);
        if (injected !== undefined) return { oid, size, error: injected };
        if (!have.has(oid)) return { oid, size, error: { code: 404, message: 'Object does not exist' } };
        return { oid, size: have.get(oid)!.length, authenticated: true, actions: { download: action(oid) } };
      });
      record.status = 200;
      json(res, 200, { transfer: 'basic', objects: out, hash_algo: 'sha256' });
      return;
    }
    if (rest === 'locks/verify' && method === 'POST') {
      await readBody(req);
      if (!basicOk(req.headers.authorization)) {
        json(res, 401, { message: 'Credentials needed' }, { 'www-authenticate': 'Basic realm="lfs-test"' });
        return;
      }
      json(res, 200, { ours: [], theirs: [] });
      return;
    }
    const m = /^objects\/([0-9a-f]{64})$/.exec(rest);
    if (m !== null && (method === 'GET' || method === 'PUT')) {
      const oid = m[1];
      if (!objectAuth) {
        await readBody(req);
        json(res, 401, { message: 'Credentials needed' }, { 'www-authenticate': 'Basic realm="lfs-test"' });
        return;
      }
      const have = store(repo);
      if (method === 'PUT') {
        const body = await readBody(req);
        if (createHash('sha256').update(body).digest('hex') !== oid) {
          json(res, 422, { message: 'content does not match the oid' });
          return;
        }
        have.set(oid, body);
        uploads.push(oid);
        res.writeHead(200);
        res.end();
        return;
      }
      const content = have.get(oid);
      if (content === undefined) {
        json(res, 404, { message: 'Object does not exist' });
        return;
      }
      downloads.push(oid);
      const drop = drops.get(oid) ?? 0;
      if (drop > 0) {
        drops.set(oid, drop - 1);
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(content.length) });
        res.write(content.subarray(0, content.length >> 1), () => res.socket?.destroy());
        return;
      }
      let body = content;
      let length = content.length;
      switch (corrupt.get(oid)) {
        case 'content':
          body = Buffer.from(content);
          body[body.length >> 1] ^= 0xff;
          length = body.length;
          break;
        case 'longer':
          body = Buffer.concat([content, Buffer.from('trailing garbage')]);
          length = body.length;
          break;
        case 'shorter':
          body = content.subarray(0, content.length - 1);
          length = body.length;
          break;
        case 'wrong-length-header':
          length = content.length + 1;
          break;
      }
      if (corrupt.get(oid) === 'wrong-length-header') {
        // A lying Content-Length: the client must not trust it over the pointer.
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(length) });
        res.write(body);
        res.socket?.end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(length) });
      res.end(body);
      return;
    }
    await readBody(req);
    json(res, 404, { message: `no such LFS route: ${method} ${rest}` });
  };

  const proxy = (req: IncomingMessage, res: ServerResponse) => {
    if (!basicOk(req.headers.authorization)) {
      req.resume();
      res.writeHead(401, { 'www-authenticate': 'Basic realm="lfs-test"', 'content-type': 'text/plain' });
      res.end('authentication required\n');
      return;
    }
    const upstream = http.request(
      { host: '127.0.0.1', port: git.port, path: req.url, method: req.method, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
        answer.on('error', () => res.destroy());
      },
    );
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(upstream);
  };

  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://placeholder').pathname;
    const m = /^(.*?)\/info\/lfs\/(.*)$/.exec(path);
    if (m === null) {
      proxy(req, res);
      return;
    }
    handleLfs(req, res, m[1], m[2]).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500);
      res.end(String(err));
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  base = `http://127.0.0.1:${port}`;

  return {
    url: base,
    repoUrl(name, withAuth = true) {
      const auth = options.auth !== undefined && withAuth ? `${encodeURIComponent(options.auth.username)}:${encodeURIComponent(options.auth.password)}@` : '';
      return `http://${auth}127.0.0.1:${port}/${name}`;
    },
    objects,
    batches,
    downloads,
    uploads,
    failBatch(count, status, retryAfter) {
      for (let i = 0; i < count; i++) batchFaults.push({ status, retryAfter });
    },
    objectError(oid, code, message) {
      objectErrors.set(oid, { code, message });
    },
    corrupt(oid, how) {
      corrupt.set(oid, how);
    },
    dropDownload(oid, count) {
      drops.set(oid, count);
    },
    expireActions(count) {
      expiring = count;
    },
    reset() {
      batches.length = 0;
      downloads.length = 0;
      uploads.length = 0;
      batchFaults.length = 0;
      objectErrors.clear();
      corrupt.clear();
      drops.clear();
      expiring = 0;
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
      await git.close();
    },
  };
}

// A minimal smart-HTTP server for upload-pack tests (gitprotocol-http(5),
// "Smart Clients"): serves advertiseUploadPack and serveUploadPack of
// src/server/upload-pack.ts over node:http, so the real `git` can clone and
// fetch from a packferry store. It stands in for the `packferry serve` front
// end (src/server/http.ts), which does the same with authentication,
// metrics and the rest:
//
//   GET  /<name>/info/refs?service=git-upload-pack   the advertisement, after
//        "# service=git-upload-pack" and a flush for v0/v1 (Git's
//        http-backend leaves that preamble out for v2)
//   POST /<name>/git-upload-pack                      one stateless round
//
// The Git-Protocol header picks the protocol; gzip request bodies (Git
// compresses those over 1 KiB) are inflated. An error thrown before the
// response starts is answered as Git does it: 200 and an "ERR" pkt-line.
// Every POST body is kept (inflated) with its protocol, so tests can replay
// the same requests against `git upload-pack --stateless-rpc`.
// Listens on 127.0.0.1, port 0. Call close() from an `after` hook.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { createGunzip } from 'node:zlib';
import { FsBlobStore } from '../../src/store/fs-backend.js';
import { StoreRepository } from '../../src/store/repository.js';
import { advertiseUploadPack, serveUploadPack, uploadPackErrorPacket, type ServeUploadPackOptions } from '../../src/server/upload-pack.js';
import { flushPkt, pktLineText } from '../../src/protocol/pkt-line.js';
import { drained } from '../../src/server/http.js';

export interface HarnessRequest {
  method: string;
  /** The repository name (the path's first part). */
  repo: string;
  protocolVersion: 0 | 1 | 2;
  /** POST: the inflated request body. */
  body?: Buffer;
  status: number;
  /** An error serveUploadPack threw before answering, or reported in-band. */
  error?: unknown;
}

export interface UploadPackHarness {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  /** Every request, in order. */
  readonly requests: HarnessRequest[];
  /** http://127.0.0.1:PORT/<name> */
  repoUrl(name: string): string;
  close(): Promise<void>;
}

export interface HarnessOptions {
  /** Repository name (e.g. "repo.git") -> directory of a packferry store. */
  repos: Record<string, string>;
  /** Passed to serveUploadPack (limits, keepalive). */
  serve?: Partial<Omit<ServeUploadPackOptions, 'protocolVersion' | 'signal'>>;
}

function protocolVersion(req: IncomingMessage): 0 | 1 | 2 {
  const header = req.headers['git-protocol'];
  const text = Array.isArray(header) ? header.join(':') : (header ?? '');
  const versions = text.split(':').map((p) => (p.startsWith('version=') ? Number(p.slice(8)) : 0));
  return versions.includes(2) ? 2 : versions.includes(1) ? 1 : 0;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const encoding = req.headers['content-encoding'];
  const source: AsyncIterable<Buffer> = encoding === 'gzip' || encoding === 'x-gzip' ? req.pipe(createGunzip()) : req;
  const parts: Buffer[] = [];
  for await (const chunk of source) parts.push(chunk);
  return Buffer.concat(parts);
}

async function* once1(body: Buffer): AsyncGenerator<Uint8Array> {
  yield body;
}

export async function startUploadPackHarness(options: HarnessOptions): Promise<UploadPackHarness> {
  const requests: HarnessRequest[] = [];

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const m = /^\/([^/]+)\/(info\/refs|git-upload-pack)$/.exec(url.pathname);
    const dir = m ? options.repos[m[1]] : undefined;
    const version = protocolVersion(req);
    const record: HarnessRequest = { method: req.method ?? '', repo: m?.[1] ?? '', protocolVersion: version, status: 404 };
    requests.push(record);
    if (!m || dir === undefined) {
      res.writeHead(404).end();
      return;
    }
    const repo = await StoreRepository.open(new FsBlobStore(dir));
    try {
      if (req.method === 'GET' && m[2] === 'info/refs' && url.searchParams.get('service') === 'git-upload-pack') {
        const body = advertiseUploadPack(repo, { protocolVersion: version });
        const preamble = version === 2 ? Buffer.alloc(0) : Buffer.concat([pktLineText('# service=git-upload-pack'), flushPkt]);
        record.status = 200;
        res.writeHead(200, { 'content-type': 'application/x-git-upload-pack-advertisement', 'cache-control': 'no-cache' });
        res.end(Buffer.concat([preamble, body]));
        return;
      }
      if (req.method !== 'POST' || m[2] !== 'git-upload-pack') {
        record.status = 405;
        res.writeHead(405).end();
        return;
      }
      const body = await readBody(req);
      record.body = body;
      const abort = new AbortController();
      res.on('close', () => {
        if (!res.writableFinished) abort.abort();
      });
      const output = serveUploadPack(repo, once1(body), {
        ...options.serve,
        protocolVersion: version,
        signal: abort.signal,
        onError: (err) => {
          record.error = err;
          options.serve?.onError?.(err);
        },
      });
      const iterator = output[Symbol.asyncIterator]();
      let first: IteratorResult<Buffer>;
      try {
        first = await iterator.next();
      } catch (err) {
        record.error = err;
        record.status = 200;
        res.writeHead(200, { 'content-type': 'application/x-git-upload-pack-result', 'cache-control': 'no-cache' });
        res.end(uploadPackErrorPacket(err));
        return;
      }
      record.status = 200;
      res.writeHead(200, { 'content-type': 'application/x-git-upload-pack-result', 'cache-control': 'no-cache' });
      for (let r = first; !r.done; r = await iterator.next()) {
        if (!res.write(r.value)) await drained(res);
        if (res.destroyed) {
          await iterator.return?.();
          return;
        }
      }
      res.end();
    } finally {
      await repo.close();
    }
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      requests.push({ method: req.method ?? '', repo: '', protocolVersion: 0, status: 500, error: err });
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    requests,
    repoUrl: (name) => `${url}/${name}`,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close').catch(() => {});
    },
  };
}

// A real Git smart-HTTP server for tests: Node's http server in front of
// `git http-backend`, run as a CGI program once per request (RFC 3875; Git's
// own setup is in git-http-backend(1) and gitprotocol-http(5), "Smart
// Server Response"). The request body streams into the CGI's stdin and its
// output (a "Status:" line, headers, a blank line, the body) streams back.
//
// Beside serving, the server injects the faults a transport must survive:
// statuses (429 with Retry-After, 503) for the next N requests, a connection
// closed after K bytes of a response body, delays before the headers or in
// the middle of a body, info/refs redirects to another path prefix or host,
// and HTTP Basic / Bearer authentication. Every request is logged (method,
// path, host, status, Authorization, Git-Protocol) for assertions.
//
// `startForwardProxy` is a plain HTTP forward proxy (absolute-URI requests,
// RFC 9112 section 3.2.2; no CONNECT) that logs what it forwards.
//
// Everything listens on 127.0.0.1, port 0 (HTTPS when given a key and
// certificate). Call close() from an `after` hook.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { gitEnv } from './git.js';
import { drained } from '../../src/server/http.js';

/** What a fault matcher sees of a request. */
export interface RequestInfo {
  method: string;
  /** Path without the query. */
  path: string;
  /** The `service` query parameter, if any. */
  service: string | undefined;
}

export type RequestMatcher = (request: RequestInfo) => boolean;

/** One request as the server saw it. */
export interface RequestRecord extends RequestInfo {
  /** Path and query, as sent. */
  url: string;
  /** The Host header. */
  host: string;
  status: number;
  authorization: string | undefined;
  gitProtocol: string | undefined;
  userAgent: string | undefined;
  contentType: string | undefined;
}

export interface BasicAuth {
  username: string;
  password: string;
}

export interface GitHttpServerOptions {
  /** GIT_PROJECT_ROOT: the directory holding the bare repositories. */
  projectRoot: string;
  /**
   * Path prefixes under which the repositories are served: with '/a', the
   * repository `repo.git` is at http://host/a/repo.git. Default [''] (root).
   */
  prefixes?: string[];
  /** Require credentials: any of these Basic users, or a Bearer token. */
  auth?: { basic?: BasicAuth[]; bearer?: string[] };
  /** Set http.receivepack (default true, so pushes work without REMOTE_USER). */
  receivePack?: boolean;
  /** Serve HTTPS with this key and certificate (PEM). */
  tls?: { key: string | Buffer; cert: string | Buffer };
}

export interface RedirectRule {
  /** A path prefix that is not served: GET .../info/refs under it is redirected, anything else is 404. */
  from: string;
  /** Where to: a path prefix on this server ('/new') or an absolute base ('http://localhost:1234/new'). */
  to: string;
  status?: 301 | 302 | 303 | 307 | 308;
}

export interface GitHttpServer {
  /** http://127.0.0.1:PORT (https:// with `tls`; no trailing slash). */
  readonly url: string;
  readonly port: number;
  /** Every request, in arrival order (including faulted ones). */
  readonly requests: RequestRecord[];
  /** Answer the next `count` matching requests with `status` (a Retry-After header when given). */
  failNext(count: number, status: number, options?: { retryAfter?: string; match?: RequestMatcher }): void;
  /** Destroy the socket after `afterBytes` bytes of the next `count` matching response bodies. */
  dropNext(afterBytes: number, options?: { count?: number; match?: RequestMatcher }): void;
  /**
   * Pause `ms` milliseconds in the next `count` matching responses: before the
   * headers, or (with `afterBytes`) after that many body bytes.
   */
  delayNext(ms: number, options?: { count?: number; afterBytes?: number; match?: RequestMatcher }): void;
  /** Add a redirect rule for GET info/refs. */
  redirect(rule: RedirectRule): void;
  close(): Promise<void>;
}

interface CountedFault {
  remaining: number;
  match: RequestMatcher | undefined;
}
interface StatusFault extends CountedFault {
  status: number;
  retryAfter: string | undefined;
}
interface DropFault extends CountedFault {
  afterBytes: number;
}
interface DelayFault extends CountedFault {
  ms: number;
  afterBytes: number | undefined;
}

/** Takes one use of the first fault in `list` matching `info`. */
function takeFault<T extends CountedFault>(list: T[], info: RequestInfo): T | undefined {
  const fault = list.find((f) => f.remaining > 0 && (f.match === undefined || f.match(info)));
  if (fault !== undefined) fault.remaining--;
  return fault;
}

/** Starts an HTTP listener on 127.0.0.1:0; closing also drops open connections. */
async function listen(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  tls?: { key: string | Buffer; cert: string | Buffer },
): Promise<{ server: http.Server; port: number; sockets: Set<Socket> }> {
  const server = tls === undefined ? http.createServer(handler) : https.createServer(tls, handler);
  const sockets = new Set<Socket>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port, sockets };
}

async function stop(server: http.Server, sockets: Set<Socket>): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  for (const socket of sockets) socket.destroy();
  await closed;
}

function checkAuth(auth: NonNullable<GitHttpServerOptions['auth']>, header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const space = header.indexOf(' ');
  const scheme = header.slice(0, space).toLowerCase();
  const value = header.slice(space + 1).trim();
  if (scheme === 'basic') {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const username = decoded.slice(0, colon);
    const password = decoded.slice(colon + 1);
    const ok = (auth.basic ?? []).some((u) => u.username === username && u.password === password);
    return ok ? username : undefined;
  }
  if (scheme === 'bearer') return (auth.bearer ?? []).includes(value) ? 'bearer' : undefined;
  return undefined;
}

/** Splits CGI output into its header block and the body bytes that followed it, once the blank line has arrived. */
function splitCgiHeaders(buf: Buffer): { head: string; body: Buffer } | undefined {
  const crlf = buf.indexOf('\r\n\r\n');
  const lf = buf.indexOf('\n\n');
  if (crlf < 0 && lf < 0) return undefined;
  const [end, sep] = crlf >= 0 && (lf < 0 || crlf < lf) ? [crlf, 4] : [lf, 2];
  return { head: buf.subarray(0, end).toString('latin1'), body: buf.subarray(end + sep) };
}

export async function startGitHttpServer(options: GitHttpServerOptions): Promise<GitHttpServer> {
  const prefixes = options.prefixes ?? [''];
  const requests: RequestRecord[] = [];
  const statusFaults: StatusFault[] = [];
  const dropFaults: DropFault[] = [];
  const delayFaults: DelayFault[] = [];
  const redirects: Required<RedirectRule>[] = [];
  const children = new Set<ChildProcess>();

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const target = new URL(req.url ?? '/', 'http://placeholder');
    const info: RequestInfo = {
      method: req.method ?? 'GET',
      path: target.pathname,
      service: target.searchParams.get('service') ?? undefined,
    };
    const record: RequestRecord = {
      ...info,
      url: req.url ?? '/',
      host: req.headers.host ?? '',
      status: 0,
      authorization: req.headers.authorization,
      gitProtocol: header(req, 'git-protocol'),
      userAgent: req.headers['user-agent'],
      contentType: req.headers['content-type'],
    };
    requests.push(record);
    const finish = (status: number, headers: Record<string, string> = {}, body = ''): void => {
      record.status = status;
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...headers });
      res.end(body);
      req.resume();
    };

    const delay = takeFault(delayFaults, info);
    if (delay !== undefined && delay.afterBytes === undefined) {
      await pause(delay.ms, req.socket);
      if (req.socket.destroyed) return; // the client gave up, or the server is closing
    }

    const failure = takeFault(statusFaults, info);
    if (failure !== undefined) {
      const headers: Record<string, string> = failure.retryAfter === undefined ? {} : { 'retry-after': failure.retryAfter };
      finish(failure.status, headers, `injected ${failure.status}\n`);
      return;
    }

    const redirect = redirects.find((r) => info.path === r.from || info.path.startsWith(`${r.from}/`));
    if (redirect !== undefined) {
      if (info.method === 'GET' && info.path.endsWith('/info/refs')) {
        const rest = target.pathname.slice(redirect.from.length) + target.search;
        finish(redirect.status, { location: redirect.to + rest }, 'moved\n');
      } else {
        finish(404, {}, 'not found (redirected prefix)\n');
      }
      return;
    }

    const prefix = prefixes
      .filter((p) => p === '' || info.path.startsWith(`${p}/`))
      .sort((a, b) => b.length - a.length)[0];
    if (prefix === undefined) {
      finish(404, {}, 'not found\n');
      return;
    }

    let remoteUser = '';
    if (options.auth !== undefined) {
      const user = checkAuth(options.auth, req.headers.authorization);
      if (user === undefined) {
        finish(401, { 'www-authenticate': 'Basic realm="packferry-test"' }, 'authentication required\n');
        return;
      }
      remoteUser = user;
    }

    // CGI meta-variables (RFC 3875, section 4.1), and each request header as HTTP_<NAME>.
    const env: NodeJS.ProcessEnv = {
      ...gitEnv,
      GIT_PROJECT_ROOT: options.projectRoot,
      GIT_HTTP_EXPORT_ALL: '1',
      GATEWAY_INTERFACE: 'CGI/1.1',
      SERVER_PROTOCOL: `HTTP/${req.httpVersion}`,
      HTTPS: options.tls === undefined ? 'off' : 'on',
      REQUEST_METHOD: info.method,
      PATH_INFO: info.path.slice(prefix.length),
      QUERY_STRING: target.search.slice(1),
      REMOTE_ADDR: req.socket.remoteAddress ?? '127.0.0.1',
      REMOTE_USER: remoteUser,
      CONTENT_TYPE: req.headers['content-type'] ?? '',
      GIT_CONFIG_COUNT: '1',
      GIT_CONFIG_KEY_0: 'http.receivepack',
      GIT_CONFIG_VALUE_0: options.receivePack === false ? 'false' : 'true',
    };
    if (req.headers['content-length'] !== undefined) env.CONTENT_LENGTH = req.headers['content-length'];
    const gitProtocol = header(req, 'git-protocol');
    if (gitProtocol !== undefined) env.GIT_PROTOCOL = gitProtocol;
    for (const [name, value] of Object.entries(req.headers)) {
      if (typeof value === 'string') env[`HTTP_${name.toUpperCase().replace(/-/g, '_')}`] = value;
    }

    const stderr: Buffer[] = [];
    const child = spawn('git', ['http-backend'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(child);
    child.on('close', () => children.delete(child));
    child.on('error', (err) => stderr.push(Buffer.from(`cannot run git http-backend: ${err.message}\n`)));
    child.stderr.on('data', (d: Buffer) => stderr.push(d));
    child.stdin.on('error', () => {}); // the CGI may exit before reading everything
    req.pipe(child.stdin);

    const drop = takeFault(dropFaults, info);
    let head: Buffer = Buffer.alloc(0);
    let headersSent = false;
    let sent = 0;
    for await (const chunk of child.stdout as AsyncIterable<Buffer>) {
      let body = chunk;
      if (!headersSent) {
        head = Buffer.concat([head, chunk]);
        const split = splitCgiHeaders(head);
        if (split === undefined) continue;
        headersSent = true;
        let status = 200;
        const headers: Record<string, string> = {};
        for (const line of split.head.split(/\r?\n/)) {
          const colon = line.indexOf(':');
          const name = line.slice(0, colon).trim();
          const value = line.slice(colon + 1).trim();
          if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10);
          else headers[name] = value;
        }
        record.status = status;
        res.writeHead(status, headers);
        res.flushHeaders();
        body = split.body;
      }
      if (body.length === 0) continue;
      if (delay?.afterBytes !== undefined && sent <= delay.afterBytes && sent + body.length > delay.afterBytes) {
        const cut = delay.afterBytes - sent;
        if (cut > 0) res.write(body.subarray(0, cut));
        sent += cut;
        body = body.subarray(cut);
        await pause(delay.ms, req.socket);
        if (res.destroyed) break;
      }
      if (drop !== undefined && sent + body.length >= drop.afterBytes) {
        const cut = drop.afterBytes - sent;
        await new Promise<void>((resolve) => res.write(body.subarray(0, cut), () => resolve()));
        res.socket?.destroy();
        child.kill();
        return;
      }
      sent += body.length;
      if (!res.write(body)) await drained(res);
      if (res.destroyed) break;
    }
    const [code] = (await (child.exitCode === null ? once(child, 'close') : [child.exitCode])) as [number | null];
    if (!headersSent) {
      finish(500, {}, `git http-backend exited with ${code}: ${Buffer.concat(stderr).toString('utf8')}`);
      return;
    }
    res.end();
  };

  const { server, port, sockets } = await listen((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500);
      res.end(String(err));
    });
  }, options.tls);

  return {
    url: `${options.tls === undefined ? 'http' : 'https'}://127.0.0.1:${port}`,
    port,
    requests,
    failNext(count, status, opts = {}) {
      statusFaults.push({ remaining: count, status, retryAfter: opts.retryAfter, match: opts.match });
    },
    dropNext(afterBytes, opts = {}) {
      dropFaults.push({ remaining: opts.count ?? 1, afterBytes, match: opts.match });
    },
    delayNext(ms, opts = {}) {
      delayFaults.push({ remaining: opts.count ?? 1, ms, afterBytes: opts.afterBytes, match: opts.match });
    },
    redirect(rule) {
      redirects.push({ status: 302, ...rule });
    },
    async close() {
      for (const child of children) child.kill();
      await stop(server, sockets);
    },
  };
}

/** Waits `ms`, or less if the connection closes first (so no timer outlives a test). */
function pause(ms: number, socket: Socket): Promise<void> {
  if (socket.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      socket.off('close', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    socket.on('close', done);
  });
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

export interface ForwardProxy {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  /** The absolute URIs forwarded, with their methods. */
  readonly requests: { method: string; url: string }[];
  close(): Promise<void>;
}

/** A plain HTTP forward proxy: forwards absolute-URI requests (no CONNECT). */
export async function startForwardProxy(): Promise<ForwardProxy> {
  const requests: { method: string; url: string }[] = [];
  const { server, port, sockets } = await listen((req, res) => {
    const method = req.method ?? 'GET';
    const url = req.url ?? '';
    requests.push({ method, url });
    if (!/^http:\/\//i.test(url)) {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end('this proxy only forwards absolute http:// URIs\n');
      return;
    }
    const target = new URL(url);
    const headers = { ...req.headers };
    delete headers['proxy-connection'];
    delete headers['proxy-authorization'];
    const upstream = http.request(
      { host: target.hostname, port: target.port, path: target.pathname + target.search, method, headers },
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
  });
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => stop(server, sockets),
  };
}

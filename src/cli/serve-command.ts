// `packferry serve`: Git smart HTTP (and plain HTTP) over the repositories of
// a store, with client certificates, tokens, an admin API, /healthz and
// /metrics (src/server/http.ts).
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { PackferryError, ErrorCode } from '../core/errors.js';
import { openStoreRoot } from '../store/root.js';
import type { ServerLimits } from '../server/http.js';
import { ExitCode, parseByteSize, parseCommandArgs, parseCount, parseDuration, s3OptionsFrom, UsageError } from './common.js';
import type { Command } from './commands.js';
import type { HookSettingsOptions } from '../server/hooks.js';

const HELP = `usage: packferry serve --store <store> [--listen <host:port>] [options]

Serves the repositories of a store (a directory, or s3://bucket/prefix) over
Git's smart HTTP protocol (clone, fetch, push; protocol v2 and v0) and plain
HTTP file reads, with an admin API under /api/v1, /healthz and /metrics.

Options:
    --store <store>         the store: a directory or s3://bucket/prefix
    --listen <host:port>    where to listen (default 127.0.0.1:8080)
    --tls-cert <file>       serve HTTPS with this certificate (e.g. from 'packferry ca node')
    --tls-key <file>        its key
    --client-ca <file>      accept client certificates issued by this CA
                            (their rights decide what each user may do)
    --no-tokens             ignore Authorization headers (certificates and public reads only)
    --region <name>         this node's region, for region-scoped rights (default "default")
    --cache-dir <dir>       local cache of layers and hooks (default: a temporary directory)
    --max-push <size>       largest push accepted (default 4G)
    --hook-sandbox <mode>   auto (default): run hooks under bubblewrap when it works,
                            else without a sandbox (a warning is logged); bwrap: refuse
                            to start unless it works; none: no sandbox
    --hook-timeout <time>   time limit of one hook run (default 60s)
    --hook-network          let sandboxed hooks use the network
    --repository-admins-manage-hooks
                            an admin of a repository may install its hooks through
                            the admin API (default: server-wide admins only)

  What clients may make the server spend (beyond these, 503 with Retry-After):
    --max-requests <n>      requests in progress at once (default 256)
    --max-requests-per-client <n>
                            the same for one user, or one address for
                            anonymous clients (default 64)
    --max-memory <size>     refuse new requests while the process uses more
                            (default: half of Node's heap limit)
    --body-timeout <time>   time a request body may take before the bytes it
                            brought earn it more, and its longest silence (default 60s)
    --body-min-rate <bytes> bytes a second that earn a body one more second (default 1024)
    --send-timeout <time>   cut off a client that takes nothing of its response
                            for this long (default 60s)

    --log-level <level>     fatal, error, warn, info (default), debug
    --s3-endpoint <url>     S3-compatible endpoint for an s3:// store
    --s3-path-style         path-style addressing
    --s3-conditional-writes auto|on|off
                            S3 conditional writes for compare-and-swap (default
                            auto: probed once)
    -h, --help              show this help

Hooks run with a clean environment, in a process group killed with them;
see docs/serve.md "Hooks".

Logs are JSON lines on standard output. SIGINT or SIGTERM stops the server
after the requests in progress.`;

function parseListen(value: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(value);
  if (!m) throw new UsageError(`--listen takes HOST:PORT, not ${JSON.stringify(value)}`, HELP);
  const port = Number(m[3]);
  if (port > 65535) throw new UsageError(`bad port ${port}`, HELP);
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}

export const serveCommand: Command = {
  name: 'serve',
  summary: 'Serve the repositories of a store over Git smart HTTP(S)',
  help: HELP,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(
      argv,
      {
        store: { type: 'string' },
        listen: { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'client-ca': { type: 'string' },
        'no-tokens': { type: 'boolean' },
        region: { type: 'string' },
        'cache-dir': { type: 'string' },
        'max-push': { type: 'string' },
        'max-requests': { type: 'string' },
        'max-requests-per-client': { type: 'string' },
        'max-memory': { type: 'string' },
        'body-timeout': { type: 'string' },
        'body-min-rate': { type: 'string' },
        'send-timeout': { type: 'string' },
        'hook-sandbox': { type: 'string' },
        'hook-timeout': { type: 'string' },
        'hook-network': { type: 'boolean' },
        'repository-admins-manage-hooks': { type: 'boolean' },
        'log-level': { type: 'string' },
        's3-endpoint': { type: 'string' },
        's3-path-style': { type: 'boolean' },
        's3-conditional-writes': { type: 'string' },
      },
      HELP,
    );
    if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`, HELP);
    if (values.store === undefined) throw new UsageError('--store is required', HELP);
    const { host, port } = parseListen((values.listen as string | undefined) ?? '127.0.0.1:8080');
    if ((values['tls-cert'] === undefined) !== (values['tls-key'] === undefined)) throw new UsageError('--tls-cert and --tls-key go together', HELP);
    if (values['client-ca'] !== undefined && values['tls-cert'] === undefined) throw new UsageError('--client-ca needs --tls-cert and --tls-key', HELP);
    const maxPush = values['max-push'] === undefined ? undefined : parseByteSize(values['max-push'] as string, '--max-push', HELP);
    const limits = serverLimitsFrom(values);
    const hookSandbox = (values['hook-sandbox'] as string | undefined) ?? 'auto';
    if (hookSandbox !== 'auto' && hookSandbox !== 'bwrap' && hookSandbox !== 'none') throw new UsageError('--hook-sandbox takes auto, bwrap or none', HELP);
    const hookTimeoutMs = values['hook-timeout'] === undefined ? undefined : parseDuration(values['hook-timeout'] as string, '--hook-timeout', HELP);
    if (hookTimeoutMs !== undefined && !(hookTimeoutMs >= 100 && hookTimeoutMs <= 86_400_000)) throw new UsageError('--hook-timeout takes 100ms to 24h', HELP);
    // Without --cache-dir, a temporary directory of this run's own, removed when it stops.
    const ownCache = values['cache-dir'] === undefined;
    const cacheDir = ownCache ? mkdtempSync(join(tmpdir(), 'packferry-serve-')) : (values['cache-dir'] as string);
    mkdirSync(cacheDir, { recursive: true });
    const hooks: HookSettingsOptions = {
      sandbox: hookSandbox,
      timeoutMs: hookTimeoutMs,
      network: values['hook-network'] === true,
      repositoryAdminsManageHooks: values['repository-admins-manage-hooks'] === true,
      scratchParent: cacheDir,
    };
    try {
      return await serve(values, host, port, maxPush, limits, cacheDir, hooks);
    } finally {
      if (ownCache) rmSync(cacheDir, { recursive: true, force: true });
    }
  },
};

/** The --max-* and --*-timeout options (those given). */
function serverLimitsFrom(values: Record<string, unknown>): Partial<ServerLimits> {
  const limits: Partial<ServerLimits> = {};
  const text = (name: string) => values[name] as string | undefined;
  if (text('max-requests') !== undefined) limits.maxRequests = parseCount(text('max-requests')!, '--max-requests', HELP);
  if (text('max-requests-per-client') !== undefined) limits.maxRequestsPerClient = parseCount(text('max-requests-per-client')!, '--max-requests-per-client', HELP);
  if (text('max-memory') !== undefined) limits.maxMemoryBytes = parseByteSize(text('max-memory')!, '--max-memory', HELP);
  if (text('body-timeout') !== undefined) {
    limits.bodyTimeoutMs = parseDuration(text('body-timeout')!, '--body-timeout', HELP);
    limits.bodyIdleMs = limits.bodyTimeoutMs;
  }
  if (text('body-min-rate') !== undefined) limits.bodyMinRate = parseByteSize(text('body-min-rate')!, '--body-min-rate', HELP);
  if (text('send-timeout') !== undefined) limits.sendStallMs = parseDuration(text('send-timeout')!, '--send-timeout', HELP);
  for (const [name, ms] of [['--body-timeout', limits.bodyTimeoutMs], ['--send-timeout', limits.sendStallMs]] as const) {
    if (ms !== undefined && ms < 100) throw new UsageError(`${name} must be at least 100ms`, HELP);
  }
  return limits;
}

/** Runs the server until SIGINT or SIGTERM. */
async function serve(
  values: Record<string, unknown>,
  host: string,
  port: number,
  maxPush: number | undefined,
  limits: Partial<ServerLimits>,
  cacheDir: string,
  hookOptions: HookSettingsOptions,
): Promise<number> {
  const logger = pino({ level: (values['log-level'] as string | undefined) ?? 'info', base: { service: 'packferry' } });
  const root = await openStoreRoot(values.store as string, s3OptionsFrom(values, HELP));
  // Serving nothing from a mistyped path, or from a bucket it cannot read, would only fail later, request by request.
  try {
    await root.check();
  } catch (err) {
    await root.close();
    throw err;
  }
  const { prepareHookSettings } = await import('../server/hooks.js');
  const hooks = await prepareHookSettings(hookOptions);
  if (hooks.warning !== undefined) logger.warn(hooks.warning);
  logger.info(
    { sandbox: hooks.settings.sandbox.kind, timeoutMs: hooks.settings.timeoutMs, network: hooks.settings.network, repositoryAdminsManageHooks: hooks.settings.repositoryAdminsManageHooks },
    'hooks',
  );
  const { createPackferryServer } = await import('../server/http.js');
  const { TokenStore, readTlsServerOptions } = await import('../server/auth/index.js');
  const tls =
    values['tls-cert'] !== undefined
      ? await readTlsServerOptions({ cert: values['tls-cert'] as string, key: values['tls-key'] as string, clientCa: values['client-ca'] as string | undefined })
      : undefined;
  const server = createPackferryServer({
    root,
    tls,
    tokens: values['no-tokens'] === true ? undefined : new TokenStore(root.blobs),
    region: values.region as string | undefined,
    cacheDir,
    logger,
    maxPushBytes: maxPush,
    limits,
    hooks: hooks.settings,
  });
  let url: string;
  try {
    url = await server.listen(host, port);
  } catch (err) {
    throw new PackferryError(ErrorCode.TransportConnect, `cannot listen on ${host}:${port}: ${(err as Error).message}`, { cause: err });
  }
  // Before the address is announced: a SIGTERM sent as soon as it is read must stop the server gently.
  const stopped = new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  logger.info({ url, store: root.description, tls: tls !== undefined }, 'listening');
  // Tests and scripts read the address from here.
  process.stderr.write(`packferry serve: listening on ${url}\n`);
  await stopped;
  logger.info('stopping');
  await server.close();
  await root.close();
  return ExitCode.Ok;
}

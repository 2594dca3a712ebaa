// `packferry mirror SOURCE TARGET...`: keep targets identical to a source by
// streaming only the minimal pack between them (see src/mirror/sync.ts).
import { readFileSync } from 'node:fs';
import { PackferryError, ErrorCode } from '../core/errors.js';
import { mirror, type MirrorEvent, type MirrorOptions, type MirrorResult } from '../mirror/sync.js';
import { RefFilter } from '../mirror/ref-filter.js';
import { lfsSourceFor } from '../mirror/lfs.js';
import type { TransportOptions } from '../transport/open.js';
import { resolveSource, resolveTarget, type EndpointOptions } from './endpoints.js';
import { ExitCode, fsckOptionsFrom, parseCommandArgs, S3_FLAGS, s3OptionsFrom, UsageError } from './common.js';
import type { Command } from './commands.js';
import { formatMirror, mirrorJson } from './mirror-report.js';
import { humanBytes, terminalProgress } from './progress.js';

const HELP = `usage: packferry mirror [options] <source> <target>...
   or: packferry mirror [options] --batch <file>

Makes each target's refs identical to the source's, sending each target only
the objects it lacks: the pack is negotiated with the source and streamed
straight into the target's receive-pack. No repository is kept locally.

Sources and targets are Git URLs (local paths of Git repositories, file://,
ssh://[user@]host[:port]/path, [user@]host:path, http(s)://) or packferry
stores: s3://bucket/prefix/NAME.git, store://PATH, or a directory path that
does not exist yet, is empty, or holds a store (see docs/store-format.md).

Refs:
    --include <glob>      mirror refs matching this (repeatable; default
                          refs/heads/* and refs/tags/*); '*' also matches '/'
    --exclude <glob>      skip refs matching this (repeatable; wins over --include)
    --no-prune            keep target refs that are gone from the source
    --safe                never lose a tip: before a ref is rewound or deleted,
                          its old value is kept under refs/packferry/attic/
    -n, --dry-run         show what would change; change nothing
    --no-atomic           do not ask for an all-or-nothing push, even if offered
    -o, --push-option <s> pass a push option to the target (repeatable)

Connections:
    --netrc <file>        credentials for http(s) (default ~/.netrc)
    --token <token>       an http(s) token (also $PACKFERRY_TOKEN)
    --token-scheme <s>    basic (default) or bearer
    --ssh-key <file>      ssh private key to use (only this one)
    --ssh-known-hosts <f> known_hosts file to check ssh host keys against
    --timeout <seconds>   http(s) timeouts and ssh ConnectTimeout
    --protocol <n>        protocol version to ask the source for (2, 1 or 0)

Stores:
    --s3-endpoint <url>   S3-compatible endpoint (default $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, AWS)
    --s3-region <name>    region (default $AWS_REGION, us-east-1)
    --s3-path-style       path-style addressing (default for IP and localhost endpoints)
    --s3-storage-class <c> storage class for new objects (e.g. STANDARD_IA)
    --s3-sse <mode>       server-side encryption: AES256 or aws:kms
    --s3-kms-key-id <id>  KMS key for aws:kms
    --s3-conditional-writes auto|on|off
                          compare-and-swap with S3's conditional writes: auto
                          (default) probes once whether the service honours
                          them; off takes the writer lock instead
    --cache-dir <dir>     where layers of an s3:// source are cached while reading
    --fsck <id>=<level>   a store target checks every object it receives as Git's
                          receive.fsckObjects does (strict); this sets one check
                          (a Git fsck message id, e.g. hasDotgit) to error, warn
                          or ignore (repeatable); --fsck skipList=<file> exempts
                          the objects listed in a file

Git LFS (store targets, http(s) sources):
    --no-lfs              do not mirror Git LFS objects (by default the LFS
                          objects of new pointer blobs are fetched through the
                          source's LFS batch API, verified, and stored at
                          lfs/objects/ before the refs move)
    --lfs-tolerate-failures
                          move the refs even if some LFS objects cannot be
                          fetched (they are listed); by default the sync fails

Many repositories:
    --batch <file>        read "<source> <target>..." lines from a file ('-': stdin);
                          blank lines and lines starting with # are skipped
    -j, --jobs <n>        mirror this many repositories at once (default 4)

Output:
    --json                print a JSON report
    -v, --verbose         also list refs that are up to date
    --progress            show progress even when stderr is not a terminal
    -q, --quiet           no progress
    -h, --help            show this help

Exit status: 0 every target is in sync, 1 something failed or was rejected
(the report says what), 2 usage error.`;

interface Job {
  source: string;
  targets: string[];
}

function readBatch(path: string): Job[] {
  const text = path === '-' ? readFileSync(0, 'utf8') : readFileSync(path, 'utf8');
  const jobs: Job[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const words = line.split(/\s+/);
    if (words.length < 2) throw new UsageError(`${path}:${i + 1}: expected "<source> <target>...", got ${JSON.stringify(line)}`);
    jobs.push({ source: words[0], targets: words.slice(1) });
  });
  return jobs;
}

function positiveInt(value: unknown, what: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${what} takes a positive whole number, not ${JSON.stringify(value)}`, HELP);
  return n;
}

export const mirrorCommand: Command = {
  name: 'mirror',
  summary: 'Mirror a repository to one or more targets, streaming only the missing objects',
  help: HELP,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(
      argv,
      {
        include: { type: 'string', multiple: true },
        exclude: { type: 'string', multiple: true },
        'no-prune': { type: 'boolean' },
        safe: { type: 'boolean' },
        'dry-run': { type: 'boolean', short: 'n' },
        'no-atomic': { type: 'boolean' },
        'push-option': { type: 'string', short: 'o', multiple: true },
        netrc: { type: 'string' },
        token: { type: 'string' },
        'token-scheme': { type: 'string' },
        'ssh-key': { type: 'string' },
        'ssh-known-hosts': { type: 'string' },
        timeout: { type: 'string' },
        protocol: { type: 'string' },
        ...S3_FLAGS,
        'cache-dir': { type: 'string' },
        fsck: { type: 'string', multiple: true },
        'no-lfs': { type: 'boolean' },
        'lfs-tolerate-failures': { type: 'boolean' },
        batch: { type: 'string' },
        jobs: { type: 'string', short: 'j' },
        json: { type: 'boolean' },
        verbose: { type: 'boolean', short: 'v' },
        progress: { type: 'boolean' },
        quiet: { type: 'boolean', short: 'q' },
      },
      HELP,
    );
    let jobs: Job[];
    if (values.batch !== undefined) {
      if (positionals.length > 0) throw new UsageError('--batch takes no <source> or <target> arguments', HELP);
      jobs = readBatch(values.batch as string);
    } else {
      if (positionals.length < 2) throw new UsageError('expected a <source> and at least one <target>', HELP);
      jobs = [{ source: positionals[0], targets: positionals.slice(1) }];
    }
    const protocol = values.protocol === undefined ? 2 : Number(values.protocol);
    if (protocol !== 0 && protocol !== 1 && protocol !== 2) throw new UsageError('--protocol takes 0, 1 or 2', HELP);
    const tokenScheme = values['token-scheme'] as string | undefined;
    if (tokenScheme !== undefined && tokenScheme !== 'basic' && tokenScheme !== 'bearer') throw new UsageError('--token-scheme takes basic or bearer', HELP);
    const timeout = positiveInt(values.timeout, '--timeout');
    const concurrency = positiveInt(values.jobs, '--jobs') ?? 4;
    const filter = new RefFilter((values.include as string[] | undefined) ?? undefined, (values.exclude as string[] | undefined) ?? []);
    const transportOptions: TransportOptions = {
      http: {
        netrc: values.netrc as string | undefined,
        token: values.token as string | undefined,
        tokenScheme: tokenScheme as 'basic' | 'bearer' | undefined,
        ...(timeout ? { connectTimeoutMs: timeout * 1000, headersTimeoutMs: timeout * 1000, bodyTimeoutMs: timeout * 1000 } : {}),
      },
      ssh: {
        identityFile: values['ssh-key'] as string | undefined,
        knownHostsFile: values['ssh-known-hosts'] as string | undefined,
        connectTimeoutSeconds: timeout,
      },
    };
    const s3 = s3OptionsFrom(values, HELP);
    const endpointOptions: EndpointOptions = {
      transport: transportOptions,
      s3,
      cacheDir: values['cache-dir'] as string | undefined,
      fsck: fsckOptionsFrom(values.fsck as string[] | undefined, HELP),
    };
    const json = values.json === true;
    const dryRun = values['dry-run'] === true;
    const progress = terminalProgress(process.stderr, values.progress === true || (!values.quiet && !json));
    const controller = new AbortController();
    const onSignal = () => controller.abort(new PackferryError(ErrorCode.Aborted, 'interrupted'));
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    const results: MirrorResult[] = [];
    try {
      const runOne = async (job: Job): Promise<MirrorResult> => {
        const onEvent = (e: MirrorEvent) => {
          // What the target's hooks say is shown as git push shows it ("remote: ..."); progress chatter is not.
          if (e.type === 'remote-message' && e.side === 'target' && e.message.end !== '\r' && e.message.text !== '' && !json && !values.quiet) {
            process.stderr.write(`remote: ${e.message.text}\n`);
            return;
          }
          if (jobs.length > 1) return; // concurrent jobs: the report says it all
          if (e.type === 'pack-progress') progress({ title: `Sending objects to ${e.target}`, done: 0, bytes: e.bytes });
          else if (e.type === 'pack-done') progress({ title: `Sending objects to ${e.target}`, done: 0, bytes: e.bytes, finished: true });
          else if (e.type === 'lfs-progress') progress({ title: 'Fetching LFS objects', done: e.done, total: e.total, bytes: e.bytes, finished: e.done === e.total });
        };
        const options: MirrorOptions = {
          filter,
          prune: values['no-prune'] !== true,
          safe: values.safe === true,
          dryRun,
          atomic: values['no-atomic'] !== true,
          pushOptions: values['push-option'] as string[] | undefined,
          protocolVersion: protocol,
          onEvent,
          signal: controller.signal,
          lfs: values['no-lfs'] !== true,
          lfsTolerateFailures: values['lfs-tolerate-failures'] === true,
        };
        try {
          const resolved = await resolveSource(job.source, endpointOptions);
          // LFS integration: an http(s) source's LFS objects come from its LFS API, with the same credentials.
          const lfs = lfsSourceFor(job.source, transportOptions.http);
          const source = lfs === undefined ? resolved : { ...resolved, lfs };
          const targets = await Promise.all(job.targets.map((t) => resolveTarget(t, endpointOptions)));
          return await mirror(source, targets, options);
        } catch (err) {
          if (!(err instanceof PackferryError)) throw err;
          return { source: job.source, ok: false, error: err, targets: [] };
        }
      };
      // A small pool: `concurrency` repositories at a time, reports in input order.
      const pending = new Array<Promise<MirrorResult>>(jobs.length);
      let next = 0;
      const worker = async () => {
        while (next < jobs.length) {
          const i = next++;
          pending[i] = runOne(jobs[i]);
          await pending[i];
        }
      };
      await Promise.all(Array.from({ length: Math.min(concurrency, jobs.length) }, worker));
      for (const p of pending) results.push(await p);
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    const ok = results.every((r) => r.ok);
    if (json) {
      const out = results.map(mirrorJson);
      // This process's own peak memory (git processes it ran are not counted), for capacity planning.
      const resources = { maxRssKiB: process.resourceUsage().maxRSS };
      console.log(JSON.stringify(jobs.length === 1 && values.batch === undefined ? { ...(out[0] as object), resources } : { ok, repositories: out, resources }));
    } else {
      const text = results.map((r) => formatMirror(r, { dryRun, verbose: values.verbose === true })).join('\n');
      if (text) console.log(text);
      const bytes = results.flatMap((r) => r.targets).reduce((n, t) => n + (t.pack?.bytes ?? 0), 0);
      if (jobs.length > 1) {
        const failed = results.filter((r) => !r.ok).length;
        console.error(`${results.length} repositories, ${failed} failed, ${humanBytes(bytes)} sent`);
      }
    }
    if (controller.signal.aborted) return ExitCode.Interrupted;
    return ok ? ExitCode.Ok : ExitCode.Failure;
  },
};

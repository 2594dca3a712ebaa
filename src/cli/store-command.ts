// `packferry store ls|verify|compact STORE`: looking at, checking and
// compacting a repository in a packferry store (docs/store-format.md).
import { PackferryError, ErrorCode } from '../core/errors.js';
import type { BlobStore } from '../store/backend.js';
import { compactStore, DEFAULT_FACTOR, DEFAULT_GRACE_MS, type CompactResult } from '../store/compact.js';
import { KEYS } from '../store/layout.js';
import { openBlobStore } from '../store/open.js';
import { StoreRepository } from '../store/repository.js';
import { verifyStore, type VerifyStoreReport } from '../store/verify.js';
import { ExitCode, fsckLevelsFrom, parseDuration, parseSubcommandArgs, S3_FLAGS, s3OptionsFrom, UsageError, type SubcommandSpec } from './common.js';
import type { Command } from './commands.js';
import { humanBytes, terminalProgress } from './progress.js';

const HELP = `usage: packferry store ls [--refs] [options] <store>
   or: packferry store verify [--full [--fsck <msg-id>=<level>]...] [--strict] [options] <store>
   or: packferry store compact [--all] [--factor <n>] [--grace <time>] [-n] [options] <store>

Looks at, checks and compacts a repository in a packferry store: a directory
(store://PATH or a path holding a store) or s3://bucket/prefix/NAME.git.

ls        the manifest's generation, HEAD, refs, layers (objects, size,
          generation), retired layers, and LFS objects
    --refs                also list every ref

verify    checks the store end to end: the manifest; every layer's pack and
          index (present, sizes, index belongs to its pack, the pack's
          checksum over all its bytes); that every ref's objects are all
          there (commits, trees and tags read and re-hashed, blobs found);
          that the refs are a set Git can hold (valid names, none twice, no
          directory/file conflicts, HEAD under refs/); Git's files
          (objects/info/packs, packed-refs, info/refs, HEAD) against the
          manifest (an older, complete state is a warning, files a clone
          fails on an error); files no manifest names (orphans of an
          interrupted write, reported as warnings); LFS objects' names
    --full                also index every pack afresh and compare with its
                          index (as git verify-pack), check every object as
                          Git's receive.fsckObjects does (strict: what a push
                          of it would be refused for, with the levels of the
                          repository's settings), and hash every LFS object
    --fsck <id>=<level>   with --full: set one check (a Git fsck message id) to
                          error, warn or ignore (repeatable); skipList=<file>
                          exempts the objects listed in a file
    --strict              warnings count as problems too
    --threads <n>         threads for indexing with --full

compact   merges layers under the writer lock: the newest layers that break
          a geometric progression of sizes (each older layer at least
          <factor> times the next newer one) become one layer; merged layers
          are retired, and their files deleted only once the grace period has
          passed (a clone in progress never breaks). Retired layers past the
          grace period and unlisted files older than it are deleted.
    --all                 merge every layer into one, keeping only the objects
                          the refs reach
    --factor <n>          the geometric factor (default ${DEFAULT_FACTOR})
    --grace <time>        how long retired layers and orphaned files are kept,
                          e.g. 90s, 30m, 2h, 0 (default ${DEFAULT_GRACE_MS / 3600000}h)
    -n, --dry-run         show what would be merged and deleted; change nothing
    --threads <n>         threads for indexing the merged layer

Stores:
    --s3-endpoint <url>   S3-compatible endpoint (default $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, AWS)
    --s3-region <name>    region (default $AWS_REGION, us-east-1)
    --s3-path-style       path-style addressing (default for IP and localhost endpoints)
    --s3-storage-class <c> storage class for the layers compaction writes
    --s3-sse <mode>       server-side encryption for them: AES256 or aws:kms
    --s3-kms-key-id <id>  KMS key for aws:kms
    --s3-conditional-writes auto|on|off
                          compare-and-swap with S3's conditional writes: auto
                          (default) probes once whether the service honours
                          them; off takes the writer lock instead
    --cache-dir <dir>     where layers of an s3:// store are cached while read
                          (verify reads the store itself: it downloads each
                          layer once into the temporary directory, $TMPDIR)

Output:
    --json                print a JSON report
    --progress            show progress even when stderr is not a terminal
    -q, --quiet           no progress
    -h, --help            show this help

Exit status: 0 success (verify: no errors), 1 verify found problems or the
store is locked by another writer, 2 usage error, 3 no store there.`;

const OPTIONS = {
  refs: { type: 'boolean' },
  full: { type: 'boolean' },
  strict: { type: 'boolean' },
  all: { type: 'boolean' },
  factor: { type: 'string' },
  grace: { type: 'string' },
  'dry-run': { type: 'boolean', short: 'n' },
  threads: { type: 'string' },
  fsck: { type: 'string', multiple: true },
  ...S3_FLAGS,
  'cache-dir': { type: 'string' },
  json: { type: 'boolean' },
  progress: { type: 'boolean' },
  quiet: { type: 'boolean', short: 'q' },
} as const;

/** Which options each subcommand takes (besides the store and output ones). */
const OWN: Record<string, SubcommandSpec> = {
  ls: { args: 1, options: ['refs'], usage: 'store ls takes exactly one <store>' },
  verify: { args: 1, options: ['full', 'strict', 'threads', 'fsck'], usage: 'store verify takes exactly one <store>' },
  compact: { args: 1, options: ['all', 'factor', 'grace', 'dry-run', 'threads'], usage: 'store compact takes exactly one <store>' },
};
const SHARED = [...Object.keys(S3_FLAGS), 'cache-dir', 'json', 'progress', 'quiet'];

function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000} h`;
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000} min`;
  return `${ms / 1000} s`;
}

function positiveInt(value: unknown, what: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${what} takes a positive whole number, not ${JSON.stringify(value)}`, HELP);
  return n;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export const storeCommand: Command = {
  name: 'store',
  summary: 'Look at, verify and compact a repository in a packferry store',
  help: HELP,
  async run(argv) {
    const { sub, values, positionals } = parseSubcommandArgs('store', argv, OWN, SHARED, OPTIONS, HELP);
    const address = positionals[0];
    const s3 = s3OptionsFrom(values, HELP);
    const json = values.json === true;
    const progress = terminalProgress(process.stderr, values.progress === true || (!values.quiet && !json));
    const threads = positiveInt(values.threads, '--threads');
    const controller = new AbortController();
    const onSignal = () => controller.abort(new PackferryError(ErrorCode.Aborted, 'interrupted'));
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    const blobs = await openBlobStore(address, s3);
    try {
      switch (sub) {
        case 'ls':
          return await list(blobs, values.refs === true, json, values['cache-dir'] as string | undefined);
        case 'verify': {
          if (values.fsck !== undefined && values.full !== true) throw new UsageError('--fsck goes with --full', HELP);
          const fsck = fsckLevelsFrom(values.fsck as string[] | undefined, HELP);
          const report = await verifyStore(blobs, { full: values.full === true, threads, progress, signal: controller.signal, fsck });
          return printVerify(report, json, values.strict === true);
        }
        default: {
          let factor: number | undefined;
          if (values.factor !== undefined) {
            factor = Number(values.factor);
            if (!(factor > 1)) throw new UsageError(`--factor takes a number greater than 1, not ${JSON.stringify(values.factor)}`, HELP);
          }
          const graceMs = values.grace === undefined ? undefined : parseDuration(values.grace as string, '--grace', HELP);
          const repo = await StoreRepository.open(blobs, { cacheDir: values['cache-dir'] as string | undefined, signal: controller.signal });
          try {
            const result = await compactStore(repo, {
              all: values.all === true,
              factor,
              graceMs,
              dryRun: values['dry-run'] === true,
              threads,
              progress,
              signal: controller.signal,
            });
            printCompact(result, json, graceMs ?? DEFAULT_GRACE_MS);
            return ExitCode.Ok;
          } finally {
            await repo.close();
          }
        }
      }
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await blobs.close();
    }
  },
};

async function list(blobs: BlobStore, showRefs: boolean, json: boolean, cacheDir: string | undefined): Promise<number> {
  const repo = await StoreRepository.open(blobs, { cacheDir });
  try {
    if (!repo.exists) throw new PackferryError(ErrorCode.NotFound, `${blobs.description}: no packferry store here (no ${KEYS.manifest})`);
    const m = repo.manifest;
    const lfs = await blobs.list(KEYS.lfs);
    const lfsBytes = lfs.reduce((n, i) => n + i.size, 0);
    if (json) {
      console.log(
        JSON.stringify({
          ok: true,
          store: blobs.description,
          generation: m.generation,
          updated: m.updated,
          head: m.head,
          refCount: m.refs.length,
          ...(showRefs ? { refs: m.refs } : {}),
          layers: m.layers,
          retired: m.retired,
          lfs: { objects: lfs.length, bytes: lfsBytes },
        }),
      );
      return ExitCode.Ok;
    }
    const objects = m.layers.reduce((n, l) => n + l.objects, 0);
    const bytes = m.layers.reduce((n, l) => n + l.packBytes, 0);
    const lines = [
      `store       ${blobs.description}`,
      `generation  ${m.generation} (updated ${m.updated})`,
      `HEAD        ${m.head}`,
      `refs        ${m.refs.length}`,
      `layers      ${m.layers.length} (${plural(objects, 'object')}, ${humanBytes(bytes)})`,
      ...m.layers.map(
        (l) => `  ${l.name}  generation ${l.generation}  ${plural(l.objects, 'object')}  ${humanBytes(l.packBytes)}${l.merged ? `  (merged ${l.merged} layers)` : ''}`,
      ),
      `retired     ${m.retired.length}${m.retired.length > 0 ? ' (files kept for the grace period, then deleted by compaction)' : ''}`,
      ...m.retired.map((r) => `  ${r.name}  retired ${r.retired}`),
      `lfs         ${plural(lfs.length, 'object')}, ${humanBytes(lfsBytes)}`,
    ];
    if (showRefs) {
      lines.push('');
      for (const r of m.refs) {
        lines.push(`${r.oid} ${r.name}`);
        if (r.peeled) lines.push(`${r.peeled} ${r.name}^{}`);
      }
    }
    console.log(lines.join('\n'));
    return ExitCode.Ok;
  } finally {
    await repo.close();
  }
}

function printVerify(report: VerifyStoreReport, json: boolean, strict: boolean): number {
  const errors = report.problems.filter((p) => p.severity === 'error').length;
  const warnings = report.problems.length - errors;
  const ok = errors === 0 && (!strict || warnings === 0);
  if (json) {
    console.log(JSON.stringify({ ...report, ok, errors, warnings }));
  } else {
    for (const p of report.problems) console.error(`${p.severity}: ${p.message}`);
    const summary =
      `${report.store}: generation ${report.generation ?? '?'}, ${plural(report.layers, 'layer')} (${plural(report.objects, 'object')}` +
      `${report.indexed > 0 ? `, ${report.indexed} re-indexed` : ''}), ${plural(report.refs, 'ref')} reaching ${plural(report.reachable, 'object')}` +
      `${report.lfsObjects > 0 ? `, ${plural(report.lfsObjects, 'LFS object')}${report.lfsChecked > 0 ? ' (hashed)' : ''}` : ''}`;
    console.log(`${summary}: ${errors === 0 && warnings === 0 ? 'ok' : `${plural(errors, 'error')}, ${plural(warnings, 'warning')}`}`);
  }
  return ok ? ExitCode.Ok : ExitCode.Failure;
}

function printCompact(r: CompactResult, json: boolean, graceMs: number): void {
  if (json) {
    console.log(JSON.stringify({ ok: true, ...r, merged: r.merged.map((l) => l.name), graceMs }));
    return;
  }
  const verb = r.dryRun ? 'would merge' : 'merged';
  if (r.merged.length === 0) {
    console.log(`nothing to merge: ${plural(r.layersBefore, 'layer')}${r.layersBefore > 1 ? ' in a geometric progression' : ''}`);
  } else {
    const objects = r.merged.reduce((n, l) => n + l.objects, 0);
    const bytes = r.merged.reduce((n, l) => n + l.packBytes, 0);
    let line = `${verb} ${plural(r.merged.length, 'layer')} (${plural(objects, 'object')}, ${humanBytes(bytes)})`;
    if (r.layer) line += ` into ${r.layer.name} (${plural(r.layer.objects, 'object')}, ${humanBytes(r.layer.packBytes)})`;
    if (!r.dryRun && r.dropped > 0) line += `; ${plural(r.dropped, 'object')} not carried over (duplicates or unreachable)`;
    console.log(line);
    if (!r.dryRun) console.log(`retired layers' files are kept for ${formatDuration(graceMs)}, then deleted by a later compaction`);
  }
  if (r.repaired) console.log("rewrote Git's files (objects/info/packs, packed-refs, info/refs, HEAD): they lagged behind the manifest");
  if (r.deleted.length > 0) {
    console.log(`${r.dryRun ? 'would delete' : 'deleted'} ${plural(r.deleted.length, 'file')} (${plural(r.expired.length, 'expired layer')}, the rest orphans)`);
  }
  if (!r.dryRun) console.log(`layers: ${r.layersBefore} -> ${r.layersAfter} (generation ${r.generation})`);
}

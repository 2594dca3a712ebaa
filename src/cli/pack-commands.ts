// `packferry index-pack` and `packferry verify-pack`: Git's commands of the
// same names, over packferry's own pack engine.
import { existsSync, rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { PackferryError, ErrorCode } from '../core/errors.js';
import { formatFsckProblem, fsckError, hasErrors, type FsckOptions } from '../core/fsck.js';
import { PackIndex } from '../pack/idx.js';
import { indexPackFile, indexPackStream, writeIndexFile, type IndexedPack } from '../pack/indexer.js';
import { PackFile } from '../pack/packfile.js';
import { PackReader } from '../pack/reader.js';
import { finishFsck } from '../store/fsck.js';
import { describePack, verifyPack } from '../pack/verify.js';
import { ExitCode, fsckOptionsFrom, parseCommandArgs, UsageError } from './common.js';
import type { Command } from './commands.js';
import { terminalProgress } from './progress.js';
import { openObjectDirectoryResolver } from './thin-bases.js';

const INDEX_PACK_HELP = `usage: packferry index-pack [options] <pack-file>
   or: packferry index-pack --stdin [--fix-thin] [options] <pack-file>

Builds the pack index (.idx) for a pack, as 'git index-pack' does: every
object is inflated, every delta resolved and every id computed; the index is
byte-for-byte the one Git writes. Prints the pack's checksum.

Options:
    -o <index-file>       write the index here (default: the pack's name with .idx)
    --stdin               read the pack from standard input and write it to <pack-file>
    --fix-thin            complete a thin pack with bases from the repository
                          (the Git directory in --git-dir, $GIT_DIR or ./.git)
    --git-dir <dir>       repository for --fix-thin
    --threads <n>         threads for delta resolution (default: ${availableParallelism()})
    --fsck-objects        check every object as 'git index-pack --fsck-objects'
                          does (Git's fsck rules, strict; the .gitmodules and
                          .gitattributes blobs the pack's trees name, when in
                          the pack): no index is written if one fails
    --fsck <id>=<level>   set one check (a Git fsck message id) to error, warn
                          or ignore; implies --fsck-objects (repeatable)
    --progress            show progress even when stderr is not a terminal
    -q, --quiet           no progress
    --json                print a JSON summary instead of the checksum
    -h, --help            show this help

Exit status: 0 success, 1 the pack is corrupt, incomplete or fails the
checks, 2 usage error.`;

const VERIFY_PACK_HELP = `usage: packferry verify-pack [-v | -s] <pack>...

Checks packs against their indexes, as 'git verify-pack' does: the pack is
indexed afresh (checksums, zlib streams, deltas, object ids) and the result
compared with the .idx on disk. <pack> may name the .pack or the .idx.

Options:
    -v, --verbose         list every object (id, type, size, size in pack,
                          offset, and depth and base for deltas), then the
                          delta chain histogram, as Git prints them
    -s, --stat-only       only the histogram
    --threads <n>         threads for delta resolution
    --json                print a JSON report
    -h, --help            show this help

Exit status: 0 all packs verify, 1 a pack or index is bad, 2 usage error.`;

function threadsOption(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--threads takes a positive whole number, not ${JSON.stringify(value)}`);
  return n;
}

async function* stdinChunks(): AsyncGenerator<Uint8Array> {
  for await (const chunk of process.stdin) yield chunk as Buffer;
}

export const indexPackCommand: Command = {
  name: 'index-pack',
  summary: 'Build the index for a pack (as git index-pack)',
  help: INDEX_PACK_HELP,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(
      argv,
      {
        output: { type: 'string', short: 'o' },
        stdin: { type: 'boolean' },
        'fix-thin': { type: 'boolean' },
        'git-dir': { type: 'string' },
        threads: { type: 'string' },
        'fsck-objects': { type: 'boolean' },
        fsck: { type: 'string', multiple: true },
        progress: { type: 'boolean' },
        quiet: { type: 'boolean', short: 'q' },
        json: { type: 'boolean' },
      },
      INDEX_PACK_HELP,
    );
    // As Git's index-pack, which leaves .gitmodules blobs missing from the pack to its caller (it prints their ids).
    const fsckItems = (values.fsck as string[] | undefined) ?? [];
    const fsck: FsckOptions | undefined =
      values['fsck-objects'] === true || fsckItems.length > 0 ? fsckOptionsFrom(['gitmodulesMissing=ignore', ...fsckItems], INDEX_PACK_HELP) : undefined;
    if (positionals.length !== 1) throw new UsageError('expected exactly one <pack-file>', INDEX_PACK_HELP);
    const packPath = positionals[0];
    if (!packPath.endsWith('.pack')) throw new UsageError(`pack file name must end with .pack: ${packPath}`, INDEX_PACK_HELP);
    if (values['fix-thin'] && !values.stdin) throw new UsageError('--fix-thin needs --stdin (as in Git)', INDEX_PACK_HELP);
    const idxPath = (values.output as string | undefined) ?? packPath.replace(/\.pack$/, '.idx');
    const showProgress = values.progress === true || (!values.quiet && !values.json);
    const progress = terminalProgress(process.stderr, showProgress);
    const threads = threadsOption(values.threads);
    let indexed: IndexedPack;
    if (values.stdin) {
      if (existsSync(packPath)) {
        throw new PackferryError(ErrorCode.Usage, `${packPath} already exists`, { hint: 'remove it or name a new file' });
      }
      const resolver = values['fix-thin'] ? await openObjectDirectoryResolver(values['git-dir'] as string | undefined) : undefined;
      try {
        indexed = await indexPackStream(stdinChunks(), packPath, { progress, threads, fixThin: resolver?.resolve, fsck });
      } finally {
        resolver?.close();
      }
    } else {
      if (!existsSync(packPath)) throw new PackferryError(ErrorCode.NotFound, `cannot open pack ${packPath}: no such file`);
      indexed = await indexPackFile(packPath, { progress, threads, fsck });
    }
    if (fsck) {
      try {
        await checkPackObjects(indexed, fsck);
      } catch (err) {
        if (values.stdin) rmSync(packPath, { force: true });
        throw err;
      }
    }
    await writeIndexFile(idxPath, indexed.index);
    const checksum = indexed.checksum.toString('hex');
    if (values.json) {
      console.log(
        JSON.stringify({
          ok: true,
          pack: packPath,
          index: idxPath,
          checksum,
          objects: indexed.objectCount,
          deltas: indexed.deltaCount,
          appendedBases: indexed.appendedBases,
        }),
      );
    } else {
      console.log(values.stdin ? `pack\t${checksum}` : checksum);
    }
    return ExitCode.Ok;
  },
};

/** The end of --fsck-objects: the special blobs found in the pack itself; every problem printed as Git prints it. */
async function checkPackObjects(indexed: IndexedPack, fsck: FsckOptions): Promise<void> {
  const found = indexed.fsck!;
  const reader = PackReader.fromIndex(PackFile.open(indexed.packPath), PackIndex.parse(indexed.index));
  let problems;
  try {
    problems = [...found.problems, ...(await finishFsck(found, { header: async (oid) => reader.readHeader(oid), read: async (oid) => reader.tryRead(oid) }, fsck))];
  } finally {
    reader.close();
  }
  for (const p of problems) process.stderr.write(`${formatFsckProblem(p)}\n`);
  if (hasErrors(problems) || found.droppedErrors > 0) throw fsckError(problems, found.droppedErrors);
}

export const verifyPackCommand: Command = {
  name: 'verify-pack',
  summary: 'Check packs against their indexes (as git verify-pack)',
  help: VERIFY_PACK_HELP,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(
      argv,
      {
        verbose: { type: 'boolean', short: 'v' },
        'stat-only': { type: 'boolean', short: 's' },
        threads: { type: 'string' },
        json: { type: 'boolean' },
      },
      VERIFY_PACK_HELP,
    );
    if (positionals.length === 0) throw new UsageError('expected at least one <pack>', VERIFY_PACK_HELP);
    const threads = threadsOption(values.threads);
    let failed = false;
    const reports: unknown[] = [];
    for (const name of positionals) {
      const base = name.replace(/\.(pack|idx)$/, '');
      const packPath = `${base}.pack`;
      const idxPath = `${base}.idx`;
      for (const p of [packPath, idxPath]) {
        if (!existsSync(p)) throw new PackferryError(ErrorCode.NotFound, `cannot open ${p}: no such file`);
      }
      try {
        const report = await verifyPack(packPath, idxPath, { threads });
        if (values.json) {
          reports.push({ pack: packPath, ok: report.ok, problems: report.problems, objects: report.indexed.objectCount });
        } else {
          if (values.verbose || values['stat-only']) {
            for (const line of describePack(report.indexed, values['stat-only'] === true)) console.log(line);
          }
          for (const problem of report.problems) console.error(`error: ${problem}`);
          if (values.verbose) console.log(`${packPath}: ${report.ok ? 'ok' : 'bad'}`);
          else if (!report.ok) console.error(`${packPath}: bad`);
        }
        failed ||= !report.ok;
      } catch (err) {
        if (!(err instanceof PackferryError)) throw err;
        failed = true;
        if (values.json) reports.push({ pack: packPath, ok: false, error: err.toJSON() });
        else console.error(`error: ${err.message}\n${packPath}: bad`);
      }
    }
    if (values.json) console.log(JSON.stringify({ ok: !failed, packs: reports }));
    return failed ? ExitCode.Failure : ExitCode.Ok;
  },
};

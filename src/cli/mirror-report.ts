// Reporting a mirror run the way `git push` reports (transport.c
// print_ref_status): one line per ref with a flag, a summary column and the
// ref names; or JSON for scripts.
import type { MirrorResult, TargetResult, UpdateResult } from '../mirror/sync.js';
import type { LfsReport } from '../mirror/lfs.js';
import { humanBytes } from './progress.js';

/** Git's TRANSPORT_SUMMARY_WIDTH for 7-digit abbreviations. */
const SUMMARY_WIDTH = 17;

function shortRef(name: string): string {
  for (const prefix of ['refs/heads/', 'refs/tags/', 'refs/remotes/']) if (name.startsWith(prefix)) return name.slice(prefix.length);
  return name;
}

function abbrev(oid: string): string {
  return oid.slice(0, 7);
}

function newKind(name: string): string {
  if (name.startsWith('refs/tags/')) return '[new tag]';
  if (name.startsWith('refs/heads/')) return '[new branch]';
  return '[new reference]';
}

export function formatUpdate(u: UpdateResult): string {
  const ref = shortRef(u.name);
  const line = (flag: string, summary: string, rest: string) => ` ${flag} ${summary.padEnd(SUMMARY_WIDTH)} ${rest}`;
  if (u.status === 'rejected' || u.status === 'failed') {
    const summary = u.kind === 'delete' ? '[remote rejected]' : '[remote rejected]';
    return line('!', summary, `${u.kind === 'delete' ? ref : `${ref} -> ${ref}`} (${u.reason ?? 'rejected'})`);
  }
  switch (u.kind) {
    case 'create':
      return line('*', newKind(u.name), `${ref} -> ${ref}`);
    case 'delete':
      return line('-', '[deleted]', ref);
    case 'update':
      if (u.fastForward === true) return line(' ', `${abbrev(u.oldOid)}..${abbrev(u.newOid)}`, `${ref} -> ${ref}`);
      if (u.fastForward === false) return line('+', `${abbrev(u.oldOid)}...${abbrev(u.newOid)}`, `${ref} -> ${ref} (forced update)`);
      return line('+', `${abbrev(u.oldOid)}...${abbrev(u.newOid)}`, `${ref} -> ${ref} (not known to be a fast-forward)`);
  }
}

// --- LFS integration ---
/** "LFS: 3 objects fetched, 2 already stored, 1.20 MiB", and a line per failed object; nothing when there were no pointers. */
export function formatLfs(report: LfsReport | undefined, options: { verbose: boolean }): string[] {
  if (report === undefined || (report.objects === 0 && !options.verbose)) return [];
  if (report.status === 'skipped') {
    return [`LFS: ${report.objects} ${report.objects === 1 ? 'object' : 'objects'} not fetched (${report.reason})`];
  }
  const lines = [`LFS: ${report.fetched} ${report.fetched === 1 ? 'object' : 'objects'} fetched, ${report.present} already stored, ${humanBytes(report.bytes)}`];
  const shown = options.verbose ? report.failed : report.failed.slice(0, 10);
  if (report.failed.length > 0) lines[0] += `, ${report.failed.length} failed`;
  for (const f of shown) lines.push(` ! [lfs]             ${f.oid} (${f.error.message})`);
  if (shown.length < report.failed.length) lines.push(` ! [lfs]             ... and ${report.failed.length - shown.length} more (--verbose lists them)`);
  return lines;
}
// --- end LFS integration ---

export function formatTarget(t: TargetResult, options: { dryRun: boolean; verbose: boolean }): string[] {
  const lines = [`To ${t.target}`];
  if (t.error) {
    lines.push(` ! [error]           ${t.error.message}`);
    if (t.error.hint) lines.push(`hint: ${t.error.hint}`);
    lines.push(...formatLfs(t.lfs, options));
    return lines;
  }
  if (t.updates.length === 0) {
    lines.push('Everything up-to-date');
  }
  for (const u of t.updates) lines.push(formatUpdate(u));
  for (const a of t.attic) {
    lines.push(a.status === 'ok' || a.status === 'planned' ? ` * [kept]            ${a.newOid.slice(0, 7)} -> ${a.name}` : formatUpdate(a));
  }
  if (options.verbose) for (const r of t.upToDate) lines.push(` = [up to date]      ${shortRef(r)} -> ${shortRef(r)}`);
  for (const n of t.invalidNames) lines.push(` ! [skipped]         ${JSON.stringify(n)} (not a valid ref name)`);
  if (options.dryRun && t.updates.length > 0) lines.push('(dry run: nothing was changed)');
  lines.push(...formatLfs(t.lfs, options));
  return lines;
}

export function formatMirror(result: MirrorResult, options: { dryRun: boolean; verbose: boolean }): string {
  if (result.error) {
    return [`From ${result.source}`, ` ! [error]           ${result.error.message}`, ...(result.error.hint ? [`hint: ${result.error.hint}`] : [])].join('\n');
  }
  return result.targets.flatMap((t) => formatTarget(t, options)).join('\n');
}

/** The JSON form: stable field names, errors as {code, message, hint}. */
export function mirrorJson(result: MirrorResult): unknown {
  const err = (e: MirrorResult['error']) => (e ? { code: e.code, message: e.message, hint: e.hint } : undefined);
  return {
    ok: result.ok,
    source: result.source,
    sourceRefs: result.sourceRefs,
    sourceHead: result.sourceHead,
    error: err(result.error),
    targets: result.targets.map((t) => ({
      target: t.target,
      ok: t.ok,
      error: err(t.error),
      pack: t.pack,
      lfs: lfsJson(t.lfs),
      updates: t.updates.map((u) => ({
        ref: u.name,
        kind: u.kind,
        old: u.oldOid,
        new: u.newOid,
        status: u.status,
        fastForward: u.kind === 'update' ? (u.fastForward ?? null) : undefined,
        attic: u.attic,
        reason: u.reason,
      })),
      attic: t.attic.map((a) => ({ ref: a.name, oid: a.newOid, status: a.status, reason: a.reason })),
      upToDate: t.upToDate.length,
      invalidNames: t.invalidNames,
    })),
  };
}

/** LFS integration: the JSON form of an LFS report (failures as {oid, size, code, message}). */
function lfsJson(report: LfsReport | undefined): unknown {
  if (report === undefined) return undefined;
  if (report.status === 'skipped') return report;
  return { ...report, failed: report.failed.map((f) => ({ oid: f.oid, size: f.size, code: f.error.code, message: f.error.message })) };
}

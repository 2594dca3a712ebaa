// `packferry ca init|node|leaf|info`: the built-in certificate authority
// (src/server/auth/ca.ts; docs/security.md "The built-in CA"), as
// repoSpanner's `ca` commands.
import { readFile } from 'node:fs/promises';
import { PackferryError, ErrorCode } from '../core/errors.js';
import type { CertificateInfo, CertificatePair } from '../server/auth/ca.js';
import { formatRights, rightsJson } from '../server/auth/rights.js';
import { ExitCode, parseSubcommandArgs, UsageError, type SubcommandSpec } from './common.js';
import type { Command } from './commands.js';

const HELP = `usage: packferry ca init <cluster> --dir <cadir> [--days <n>] [--force] [--json]
   or: packferry ca node <region> <node> --dir <cadir> [--san <ip|name>[,...]]... [--days <n>] [--force] [--json]
   or: packferry ca leaf <user> --dir <cadir> [--admin] [--read] [--write]
                         [--region <glob>]... [--repo <glob>]... [--days <n>] [--force] [--json]
   or: packferry ca info <cert> [--ca <ca.crt>] [--json]

A certificate authority for one packferry cluster. Keys are ECDSA P-256;
files are PEM; private keys are written with mode 0600. Nothing is
overwritten unless --force is given.

init      creates the CA: <cadir>/ca.crt and <cadir>/ca.key (default
          validity 3650 days). Keep ca.key offline if you can: whoever has
          it can issue any rights.
node      issues a server certificate for a node: <cadir>/<node>.crt and
          .key, CN=<node>, subjectAltName = the --san addresses and names
          plus <node>.<region>.<cluster>, usable for serverAuth and
          clientAuth, with the node's region in a packferry extension
          (default validity 825 days). Give it to 'packferry serve
          --tls-cert/--tls-key', and <cadir>/ca.crt as --client-ca.
    --san <list>          IP addresses and DNS names the node is reached at,
                          comma-separated (repeatable)
leaf      issues a client certificate for a user: <cadir>/<user>.crt and
          .key, CN=<user>, clientAuth, with the user's rights in the
          packferry rights extension (default validity 365 days). With no
          flags the user has no rights beyond reading public repositories.
    --admin               the admin API; implies --read and --write
    --read                clone and fetch
    --write               push (does not imply --read)
    --region <glob>       regions the rights hold in (repeatable; default *)
    --repo <glob>         repositories the rights hold for (repeatable;
                          default *). '*' matches any characters, '/' too;
                          '?' one character
info      shows a certificate: subject, issuer, serial, validity, SHA-256
          fingerprint, subjectAltName, key usage, packferry rights or node
    --ca <ca.crt>         also check that <cert> was issued by this CA and is
                          valid now (exit 1 if not)

Common options:
    --dir <cadir>         the CA directory (created, mode 0700, by init)
    --days <n>            validity in days from now (0: expires at once)
    --force               replace existing files
    --json                print a JSON report
    -h, --help            show this help

Exit status: 0 done, 1 a file exists already (without --force), a
certificate or key cannot be used, or --ca does not verify; 2 usage error;
3 no CA in <cadir> or no such certificate file.`;

const OPTIONS = {
  dir: { type: 'string' },
  days: { type: 'string' },
  force: { type: 'boolean' },
  san: { type: 'string', multiple: true },
  admin: { type: 'boolean' },
  read: { type: 'boolean' },
  write: { type: 'boolean' },
  region: { type: 'string', multiple: true },
  repo: { type: 'string', multiple: true },
  ca: { type: 'string' },
  json: { type: 'boolean' },
} as const;

const OWN: Record<string, SubcommandSpec> = {
  init: { args: 1, options: ['dir', 'days', 'force'], usage: 'ca init takes one <cluster>' },
  node: { args: 2, options: ['dir', 'days', 'force', 'san'], usage: 'ca node takes a <region> and a <node>' },
  leaf: { args: 1, options: ['dir', 'days', 'force', 'admin', 'read', 'write', 'region', 'repo'], usage: 'ca leaf takes one <user>' },
  info: { args: 1, options: ['ca'], usage: 'ca info takes one <cert> file' },
};

function parseDays(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (typeof value !== 'string' || !/^\d+$/.test(value) || !Number.isSafeInteger(n)) throw new UsageError(`--days takes a whole number of days (0 or more), not ${JSON.stringify(value)}`, HELP);
  return n;
}

export function certificateJson(info: CertificateInfo): Record<string, unknown> {
  return {
    kind: info.kind,
    subject: info.subject,
    commonName: info.commonName,
    issuer: info.issuer,
    serial: info.serial,
    notBefore: info.notBefore.toISOString(),
    notAfter: info.notAfter.toISOString(),
    status: info.status,
    fingerprint256: info.fingerprint256,
    dnsNames: info.dnsNames,
    ipAddresses: info.ipAddresses,
    extendedKeyUsage: info.extendedKeyUsage,
    ...(info.rights ? { rights: rightsJson(info.rights) } : {}),
    ...(info.node ? { node: info.node } : {}),
    problems: info.problems,
  };
}

export function formatCertificate(info: CertificateInfo): string {
  const lines: [string, string][] = [
    ['kind', { ca: 'certificate authority', node: 'node (server) certificate', leaf: 'client certificate', other: 'certificate (not issued by packferry)' }[info.kind]],
    ['subject', info.subject],
    ['issuer', info.issuer],
    ['serial', info.serial],
    ['valid from', info.notBefore.toISOString()],
    ['valid until', `${info.notAfter.toISOString()} (${info.status})`],
    ['sha256', info.fingerprint256],
  ];
  const sans = [...info.dnsNames.map((n) => `DNS:${n}`), ...info.ipAddresses.map((a) => `IP:${a}`)];
  if (sans.length > 0) lines.push(['alt names', sans.join(', ')]);
  if (info.extendedKeyUsage.length > 0) lines.push(['usage', info.extendedKeyUsage.join(', ')]);
  if (info.node) lines.push(['node', `${info.node.node} in region ${info.node.region} of cluster ${info.node.cluster}`]);
  if (info.rights) lines.push(['rights', formatRights(info.rights)]);
  for (const p of info.problems) lines.push(['problem', p]);
  const width = Math.max(...lines.map(([k]) => k.length)) + 1;
  return lines.map(([k, v]) => `${`${k}:`.padEnd(width)} ${v}`).join('\n');
}

async function readCertificateFile(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new PackferryError(ErrorCode.NotFound, `${path} does not exist`);
    throw err;
  }
}

export const caCommand: Command = {
  name: 'ca',
  summary: 'A certificate authority for a cluster: CA, node and client certificates with rights',
  help: HELP,
  async run(argv) {
    const { sub, values, positionals } = parseSubcommandArgs('ca', argv, OWN, ['json'], OPTIONS, HELP);
    const json = values.json === true;
    // Loaded here: the X.509 library is needed by ca commands only.
    const ca = await import('../server/auth/ca.js');

    if (sub === 'info') {
      const bytes = await readCertificateFile(positionals[0]);
      const info = ca.inspectCertificate(bytes);
      let verified: boolean | undefined;
      if (values.ca !== undefined) {
        const caBytes = await readCertificateFile(values.ca as string);
        verified = ca.isIssuedBy(bytes, caBytes) && info.status === 'valid';
      }
      if (json) {
        console.log(JSON.stringify({ ok: verified !== false, file: positionals[0], ...certificateJson(info), ...(verified !== undefined ? { verified } : {}) }));
      } else {
        console.log(formatCertificate(info));
        if (verified !== undefined) console.log(`${'verified:'.padEnd(12)} ${verified ? `yes, issued by ${values.ca as string} and valid now` : `NO: not issued by ${values.ca as string}, or not valid now`}`);
      }
      return verified === false ? ExitCode.Failure : ExitCode.Ok;
    }

    const dir = values.dir as string | undefined;
    if (dir === undefined || dir === '') throw new UsageError(`ca ${sub} needs --dir <cadir>`, HELP);
    const days = parseDays(values.days);
    const force = values.force === true;
    let name: string;
    let pair: CertificatePair;
    if (sub === 'init') {
      name = 'ca';
      pair = await ca.createCa(positionals[0], { days });
    } else if (sub === 'node') {
      const authority = await ca.readCa(dir);
      name = ca.checkName('node', positionals[1]);
      const sans = ((values.san as string[] | undefined) ?? []).flatMap((s) => s.split(',')).map((s) => s.trim()).filter((s) => s !== '');
      pair = await ca.issueNodeCertificate(authority, { region: positionals[0], node: name, sans, days });
    } else {
      const authority = await ca.readCa(dir);
      name = ca.checkName('user', positionals[0]);
      const rights = {
        admin: values.admin === true,
        read: values.read === true,
        write: values.write === true,
        regions: values.region as string[] | undefined,
        repos: values.repo as string[] | undefined,
      };
      pair = await ca.issueLeafCertificate(authority, { user: name, rights, days });
    }
    const files = await ca.writeCertificatePair(dir, name, pair, { force });
    const info = ca.inspectCertificate(pair.cert);
    if (json) {
      console.log(JSON.stringify({ ok: true, cert: files.certFile, key: files.keyFile, ...certificateJson(info) }));
    } else {
      console.log(`wrote ${files.certFile} and ${files.keyFile}`);
      console.log(formatCertificate(info));
      if (sub === 'init') console.log(`keep ${files.keyFile} secret: whoever has it can issue any rights`);
    }
    return ExitCode.Ok;
  },
};

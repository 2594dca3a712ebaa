// `packferry token create|ls|revoke`: access tokens for `packferry serve`,
// kept (hashed) in the server's store root (src/server/auth/tokens.ts;
// docs/security.md "Tokens").
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { PackferryError, ErrorCode } from '../core/errors.js';
import type { BlobStore } from '../store/backend.js';
import { FsBlobStore } from '../store/fs-backend.js';
import type { S3Options } from '../store/open.js';
import { formatRights, rightsJson } from '../server/auth/rights.js';
import { TOKENS_KEY, TokenStore, type TokenInfo } from '../server/auth/tokens.js';
import { ExitCode, parseSubcommandArgs, s3OptionsFrom, UsageError, type SubcommandSpec } from './common.js';
import type { Command } from './commands.js';

const HELP = `usage: packferry token create <user> --store <root> [--read] [--write] [--admin]
                         [--region <glob>]... [--repo <glob>]... [--expires <days>] [--json]
   or: packferry token ls --store <root> [--json]
   or: packferry token revoke <id> --store <root> [--json]

Access tokens for 'packferry serve', for clients without a client
certificate. Git sends one as the password of an https:// URL (any user
name), or as 'Authorization: Bearer <token>' (git -c http.extraHeader=...).
Tokens are kept hashed (SHA-256) in ${TOKENS_KEY} at the store root the
server serves: a directory, store://PATH, or s3://bucket/prefix.

create    makes a token and prints it: it is shown this once and stored
          only as a hash. With no flags the token has no rights beyond
          reading public repositories.
    --admin               the admin API; implies --read and --write
    --read                clone and fetch
    --write               push (does not imply --read)
    --region <glob>       regions the rights hold in (repeatable; default *)
    --repo <glob>         repositories the rights hold for (repeatable;
                          default *). '*' matches any characters, '/' too;
                          '?' one character
    --expires <days>      expire this many days from now (default: never)
ls        lists tokens: id, user, rights, created, expiry (never the secret)
revoke    deletes the token with this id (from 'token ls'); a running
          server stops accepting it within 5 seconds

Stores:
    --store <root>        the store root (required)
    --s3-endpoint <url>   S3-compatible endpoint (default $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, AWS)
    --s3-region <name>    region (default $AWS_REGION, us-east-1)
    --s3-path-style       path-style addressing (default for IP and localhost endpoints)
    --s3-conditional-writes auto|on|off
                          compare-and-swap with S3's conditional writes: auto
                          (default) probes once whether the service honours
                          them; off takes the writer lock instead

Output:
    --json                print a JSON report
    -h, --help            show this help

Exit status: 0 done, 1 the tokens file is unreadable, 2 usage error, 3 no
such store directory or token id.`;

const OPTIONS = {
  store: { type: 'string' },
  admin: { type: 'boolean' },
  read: { type: 'boolean' },
  write: { type: 'boolean' },
  region: { type: 'string', multiple: true },
  repo: { type: 'string', multiple: true },
  expires: { type: 'string' },
  's3-endpoint': { type: 'string' },
  's3-region': { type: 'string' },
  's3-path-style': { type: 'boolean' },
  's3-conditional-writes': { type: 'string' },
  json: { type: 'boolean' },
} as const;

const SHARED = ['store', 's3-endpoint', 's3-region', 's3-path-style', 's3-conditional-writes', 'json'];
const OWN: Record<string, SubcommandSpec> = {
  create: { args: 1, options: ['admin', 'read', 'write', 'region', 'repo', 'expires'], usage: 'token create takes one <user>' },
  ls: { args: 0, options: [], usage: 'token ls takes no arguments' },
  revoke: { args: 1, options: [], usage: 'token revoke takes one <id>' },
};

/** The blob store of a store root: s3://bucket/prefix, store://PATH or an existing directory. */
async function openRoot(address: string, s3: S3Options): Promise<BlobStore> {
  if (address.startsWith('s3://')) {
    const { S3BlobStore } = await import('../store/s3-backend.js');
    return S3BlobStore.fromUrl(address, s3);
  }
  const path = address.startsWith('store://') ? address.slice('store://'.length) : address;
  if (path === '') throw new UsageError('--store needs a path', HELP);
  // A typo must not quietly start a new, empty token file that the server never reads.
  if (!existsSync(path) || !statSync(path).isDirectory()) {
    throw new PackferryError(ErrorCode.NotFound, `store root ${path} is not a directory`, { hint: 'give the directory that packferry serve serves' });
  }
  return new FsBlobStore(resolve(path));
}

function tokenJson(t: TokenInfo, now: Date): Record<string, unknown> {
  return {
    id: t.id,
    user: t.user,
    rights: rightsJson(t.rights),
    created: t.created.toISOString(),
    expires: t.expires?.toISOString() ?? null,
    expired: t.expires !== undefined && t.expires <= now,
  };
}

function formatToken(t: TokenInfo, now: Date): string {
  const expiry = t.expires === undefined ? 'never expires' : `${t.expires <= now ? 'expired' : 'expires'} ${t.expires.toISOString()}`;
  return `${t.id}  ${t.user}  ${formatRights(t.rights)}  created ${t.created.toISOString()}, ${expiry}`;
}

export const tokenCommand: Command = {
  name: 'token',
  summary: 'Create, list and revoke access tokens for packferry serve',
  help: HELP,
  async run(argv) {
    const { sub, values, positionals } = parseSubcommandArgs('token', argv, OWN, SHARED, OPTIONS, HELP);
    const address = values.store as string | undefined;
    if (address === undefined) throw new UsageError(`token ${sub} needs --store <root>`, HELP);
    let expiresInDays: number | undefined;
    if (values.expires !== undefined) {
      expiresInDays = Number(values.expires);
      if (!/^\d+(\.\d+)?$/.test(values.expires as string) || !(expiresInDays > 0)) throw new UsageError(`--expires takes a positive number of days, not ${JSON.stringify(values.expires)}`, HELP);
    }
    const json = values.json === true;
    const s3 = s3OptionsFrom(values, HELP);
    const blobs = await openRoot(address, s3);
    const store = new TokenStore(blobs);
    const now = new Date();
    try {
      if (sub === 'create') {
        const { token, info } = await store.create({
          user: positionals[0],
          rights: {
            admin: values.admin === true,
            read: values.read === true,
            write: values.write === true,
            regions: values.region as string[] | undefined,
            repos: values.repo as string[] | undefined,
          },
          expiresInDays,
        });
        if (json) {
          console.log(JSON.stringify({ ok: true, token, ...tokenJson(info, now) }));
        } else {
          console.log(token);
          console.error(`token ${info.id} for ${info.user}: ${formatRights(info.rights)}; ${info.expires ? `expires ${info.expires.toISOString()}` : 'never expires'}`);
          console.error('it is shown only this once: store it now');
        }
      } else if (sub === 'ls') {
        const tokens = await store.list();
        if (json) console.log(JSON.stringify({ ok: true, tokens: tokens.map((t) => tokenJson(t, now)) }));
        else if (tokens.length === 0) console.log('no tokens');
        else for (const t of tokens) console.log(formatToken(t, now));
      } else {
        const info = await store.revoke(positionals[0]);
        if (json) console.log(JSON.stringify({ ok: true, revoked: tokenJson(info, now) }));
        else console.log(`revoked token ${info.id} of ${info.user}`);
      }
    } finally {
      await blobs.close();
    }
    return ExitCode.Ok;
  },
};

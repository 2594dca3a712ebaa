// `packferry repo create|ls|rm|edit`: repository administration, on a store
// directly (--store) or through a server's admin API (--server, with a
// client certificate or a token).
import { readFileSync } from 'node:fs';
import { PackferryError, ErrorCode } from '../core/errors.js';
import { checkFsckOverride, parseSkipList } from '../core/fsck.js';
import { ExitCode, parseCommandArgs, UsageError } from './common.js';
import type { Command } from './commands.js';

const HELP = `usage: packferry repo create <name> [--public] [--description <text>] [--default-branch <b>] [--deny-non-fast-forwards] (--store <s> | --server <url>)
   or: packferry repo ls (--store <s> | --server <url>)
   or: packferry repo show <name> (--store <s> | --server <url>)
   or: packferry repo edit <name> [--public | --private] [--description <text>] [--default-branch <b>]
                          [--deny-non-fast-forwards | --allow-non-fast-forwards]
                          [--fsck <msg-id>=<level>]... [--fsck skipList=<file>]
                          [--hook <hook>=<file>]... [--remove-hook <hook>]... (--store <s> | --server <url>)
   or: packferry repo rm <name> (--store <s> | --server <url>)

Manages the repositories of a store: directly (--store DIR or s3://bucket/prefix)
or through a running 'packferry serve' (--server https://host:port), which
needs admin rights: a client certificate (--cert/--key, with --ca to check
the server) or a token (--token, or $PACKFERRY_TOKEN).

Hooks (pre-receive, update, post-receive) are executables run on every push,
as Git runs them; --hook pre-receive=./check.sh uploads one. Through a server
that needs a server-wide admin (admin on every region and repository), unless
the server runs with --repository-admins-manage-hooks; with --store, write
access to the store is enough.

Every pushed object is checked as Git's receive.fsckObjects checks it
(strict). --fsck <msg-id>=error|warn|ignore sets one check for this
repository, as Git's receive.fsck.<msg-id> (e.g. --fsck hasDotgit=warn);
<msg-id>=default goes back to Git's grade. --fsck skipList=<file> exempts
the objects listed in the file (one id per line), skipList= removes the list.

Options:
    --json                  print JSON
    -h, --help              show this help

Exit status: 0 done, 1 the operation failed, 2 usage error, 3 no such repository.`;

type Values = Record<string, string | boolean | string[] | boolean[] | undefined>;

interface Backend {
  create(name: string, body: Record<string, unknown>): Promise<unknown>;
  list(): Promise<unknown[]>;
  show(name: string): Promise<unknown>;
  edit(name: string, body: Record<string, unknown>): Promise<unknown>;
  remove(name: string): Promise<void>;
  setHook(name: string, hook: string, script: Buffer | undefined): Promise<void>;
  close(): Promise<void>;
}

async function storeBackend(address: string): Promise<Backend> {
  const { openStoreRoot } = await import('../store/root.js');
  const repos = await import('../server/repos.js');
  const root = await openStoreRoot(address);
  const need = async <T>(p: Promise<T | undefined>, name: string): Promise<T> => {
    const v = await p;
    if (v === undefined) throw new PackferryError(ErrorCode.NotFound, `repository ${name} does not exist in ${root.description}`);
    return v;
  };
  return {
    create: (name, body) =>
      repos.createRepository(root, name, {
        public: body.public as boolean | undefined,
        description: body.description as string | undefined,
        defaultBranch: body.defaultBranch as string | undefined,
        denyNonFastForwards: body.denyNonFastForwards as boolean | undefined,
      }),
    list: () => repos.listRepositories(root),
    show: (name) => need(repos.describeRepository(root, name, { refs: true }), name),
    edit: (name, body) => repos.editRepository(root, name, body as never),
    remove: (name) => repos.deleteRepository(root, name),
    setHook: (name, hook, script) => repos.setHook(root, name, repos.checkHookName(hook), script),
    close: () => root.close(),
  };
}

async function serverBackend(url: string, values: Values): Promise<Backend> {
  const { Agent, request } = await import('undici');
  const read = (f: unknown) => (typeof f === 'string' ? readFileSync(f) : undefined);
  const dispatcher = new Agent({ connect: { cert: read(values.cert), key: read(values.key), ca: read(values.ca) } });
  const token = (values.token as string | undefined) ?? process.env.PACKFERRY_TOKEN;
  const base = url.replace(/\/+$/, '');
  const call = async (method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE', path: string, body?: unknown, raw?: Buffer): Promise<Record<string, unknown>> => {
    let res;
    try {
      res = await request(`${base}${path}`, {
        method,
        dispatcher,
        headers: {
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        body: raw ?? (body !== undefined ? JSON.stringify(body) : undefined),
      });
    } catch (err) {
      throw new PackferryError(ErrorCode.TransportConnect, `cannot reach ${base}: ${(err as Error).message}`, { cause: err });
    }
    const text = await res.body.text();
    if (res.statusCode === 404 || res.statusCode === 401) {
      throw new PackferryError(ErrorCode.NotFound, `not found, or not allowed (${res.statusCode})`, {
        hint: 'the server answers 404 to what the credentials do not allow: check --cert/--key or --token, and the rights they carry',
      });
    }
    let doc: Record<string, unknown> = {};
    try {
      doc = JSON.parse(text) as Record<string, unknown>;
    } catch {
      doc = { message: text };
    }
    if (res.statusCode >= 400) {
      const e = (doc.error ?? {}) as { code?: string; message?: string };
      throw new PackferryError(ErrorCode.RemoteError, `server: ${e.message ?? text.trim()}`, { details: { status: res.statusCode, code: e.code } });
    }
    return doc;
  };
  const enc = (name: string) => name.split('/').map(encodeURIComponent).join('/');
  return {
    create: async (name, body) => (await call('POST', '/api/v1/repos', { name, ...body })).repository,
    list: async () => (await call('GET', '/api/v1/repos')).repositories as unknown[],
    show: async (name) => (await call('GET', `/api/v1/repos/${enc(name)}`)).repository,
    edit: async (name, body) => (await call('PATCH', `/api/v1/repos/${enc(name)}`, body)).repository,
    remove: async (name) => {
      await call('DELETE', `/api/v1/repos/${enc(name)}`);
    },
    setHook: async (name, hook, script) => {
      await call(script ? 'PUT' : 'DELETE', `/api/v1/repos/${enc(name)}/hooks/${hook}`, undefined, script);
    },
    close: () => dispatcher.close(),
  };
}

/** `--fsck` items as an edit: {fsck: {id: level | null}, fsckSkipList?: ids | null}. */
function fsckEdit(items: string[]): Record<string, unknown> {
  const fsck: Record<string, string | null> = {};
  const out: Record<string, unknown> = {};
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq < 0) throw new UsageError(`--fsck takes <msg-id>=<level> or skipList=<file>, not ${JSON.stringify(item)}`, HELP);
    const key = item.slice(0, eq);
    const value = item.slice(eq + 1);
    if (key.toLowerCase() === 'skiplist') {
      if (value === '') {
        out.fsckSkipList = null;
        continue;
      }
      let text: string;
      try {
        text = readFileSync(value, 'utf8');
      } catch (err) {
        throw new PackferryError(ErrorCode.NotFound, `cannot read the skip list ${value}: ${(err as Error).message}`);
      }
      out.fsckSkipList = [...parseSkipList(text, value)];
      continue;
    }
    try {
      if (value === 'default') fsck[checkFsckOverride(key, 'error').id] = null;
      else fsck[checkFsckOverride(key, value.toLowerCase()).id] = value.toLowerCase();
    } catch (err) {
      throw new UsageError(`--fsck: ${(err as Error).message}`, HELP);
    }
  }
  if (Object.keys(fsck).length > 0) out.fsck = fsck;
  return out;
}

function printRepository(r: Record<string, unknown>): void {
  const fsck = Object.entries((r.fsck ?? {}) as Record<string, string>).map(([id, level]) => `${id}=${level}`);
  const skip = Array.isArray(r.fsckSkipList) ? [`skipList (${r.fsckSkipList.length})`] : [];
  const checks = fsck.length + skip.length > 0 ? `  fsck ${[...fsck, ...skip].join(' ')}` : '';
  console.log(`${r.name}  ${r.public ? 'public' : 'private'}  HEAD ${r.head}  ${r.refCount} refs  ${r.layers} layers  ${r.objects} objects${checks}${r.description ? `  ${r.description}` : ''}`);
}

export const repoCommand: Command = {
  name: 'repo',
  summary: 'Create, list, edit and remove repositories of a store or server',
  help: HELP,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(
      argv,
      {
        store: { type: 'string' },
        server: { type: 'string' },
        cert: { type: 'string' },
        key: { type: 'string' },
        ca: { type: 'string' },
        token: { type: 'string' },
        public: { type: 'boolean' },
        private: { type: 'boolean' },
        description: { type: 'string' },
        'default-branch': { type: 'string' },
        'deny-non-fast-forwards': { type: 'boolean' },
        'allow-non-fast-forwards': { type: 'boolean' },
        fsck: { type: 'string', multiple: true },
        hook: { type: 'string', multiple: true },
        'remove-hook': { type: 'string', multiple: true },
        json: { type: 'boolean' },
      },
      HELP,
    );
    const [action, name, ...extra] = positionals;
    if (extra.length > 0) throw new UsageError(`unexpected argument ${extra[0]}`, HELP);
    if (!['create', 'ls', 'show', 'edit', 'rm'].includes(action ?? '')) throw new UsageError('expected create, ls, show, edit or rm', HELP);
    if (action !== 'ls' && name === undefined) throw new UsageError(`repo ${action} needs a repository name`, HELP);
    if ((values.store === undefined) === (values.server === undefined)) throw new UsageError('give exactly one of --store or --server', HELP);
    if (values.public && values.private) throw new UsageError('--public and --private exclude each other', HELP);
    const repoName = name?.replace(/\.git$/, '');
    const backend = values.store !== undefined ? await storeBackend(values.store as string) : await serverBackend(values.server as string, values);
    const json = values.json === true;
    const out = (value: unknown, text: () => void) => (json ? console.log(JSON.stringify({ ok: true, ...(value as object) })) : text());
    try {
      const settings: Record<string, unknown> = {};
      if (values.public) settings.public = true;
      if (values.private) settings.public = false;
      if (values.description !== undefined) settings.description = values.description;
      if (values['default-branch'] !== undefined) settings.defaultBranch = values['default-branch'];
      if (values['deny-non-fast-forwards']) settings.denyNonFastForwards = true;
      if (values['allow-non-fast-forwards']) settings.denyNonFastForwards = false;
      if (values.fsck !== undefined) {
        if (action !== 'edit') throw new UsageError('--fsck goes with repo edit', HELP);
        Object.assign(settings, fsckEdit(values.fsck as string[]));
      }
      switch (action) {
        case 'create': {
          const r = (await backend.create(repoName!, settings)) as Record<string, unknown>;
          out({ repository: r }, () => console.log(`created ${r.name}`));
          break;
        }
        case 'ls': {
          const list = (await backend.list()) as Record<string, unknown>[];
          out({ repositories: list }, () => list.forEach(printRepository));
          break;
        }
        case 'show': {
          const r = (await backend.show(repoName!)) as Record<string, unknown>;
          out({ repository: r }, () => {
            printRepository(r);
            for (const ref of (r.refs as { name: string; oid: string }[]) ?? []) console.log(`${ref.oid}\t${ref.name}`);
          });
          break;
        }
        case 'edit': {
          for (const spec of (values.hook as string[] | undefined) ?? []) {
            const eq = spec.indexOf('=');
            if (eq < 0) throw new UsageError(`--hook takes <hook>=<file>, not ${JSON.stringify(spec)}`, HELP);
            await backend.setHook(repoName!, spec.slice(0, eq), readFileSync(spec.slice(eq + 1)));
          }
          for (const hook of (values['remove-hook'] as string[] | undefined) ?? []) await backend.setHook(repoName!, hook, undefined);
          const r = (Object.keys(settings).length > 0 ? await backend.edit(repoName!, settings) : await backend.show(repoName!)) as Record<string, unknown>;
          out({ repository: r }, () => printRepository(r));
          break;
        }
        case 'rm':
          await backend.remove(repoName!);
          out({ deleted: repoName }, () => console.log(`removed ${repoName}`));
          break;
      }
    } finally {
      await backend.close();
    }
    return ExitCode.Ok;
  },
};

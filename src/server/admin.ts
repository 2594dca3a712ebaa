// The admin API of `packferry serve` (JSON over HTTP, under /api/v1), used by
// `packferry repo create|ls|rm|edit --server URL`:
//   GET    /api/v1/repos                      repositories the caller may read
//   POST   /api/v1/repos                      {name, public?, description?, defaultBranch?, denyNonFastForwards?}
//   GET    /api/v1/repos/NAME                 one repository (refs included)
//   PATCH  /api/v1/repos/NAME                 {public?, description?, defaultBranch?, denyNonFastForwards?, fsck?, fsckSkipList?}
//   DELETE /api/v1/repos/NAME
//   PUT|GET|DELETE /api/v1/repos/NAME/hooks/(pre-receive|update|post-receive)
//   GET    /api/v1/status
// Creating, editing and deleting need admin rights on the repository; hooks
// need a server-wide admin (or, with serve --repository-admins-manage-hooks,
// the repository's admin); what the caller may not see is answered 404, like
// everything else.
import { PackferryError, ErrorCode } from '../core/errors.js';
import { checkRepositoryName, readSettings } from '../store/root.js';
import { authorize, authorizeHooks } from './auth/index.js';
import { readRequestBody } from './body.js';
import { refuse, type RequestContext } from './http.js';
import {
  checkHookName,
  createRepository,
  deleteRepository,
  describeRepository,
  editRepository,
  listRepositories,
  repositoryExists,
  setHook,
  type RepositoryEdit,
} from './repos.js';

const MAX_JSON = 64 * 1024;
const MAX_HOOK = 1024 * 1024;
export const SERVER_VERSION = '0.1.0';

function json(ctx: RequestContext, status: number, value: unknown): void {
  ctx.res.statusCode = status;
  ctx.res.setHeader('content-type', 'application/json; charset=utf-8');
  ctx.res.end(`${JSON.stringify(value)}\n`);
}

/** A small body, read whole: bounded in size and time as every body is (body.ts). */
async function readBody(ctx: RequestContext, limit: number): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const chunk of readRequestBody(ctx.req, { limit, limits: ctx.limits })) parts.push(chunk);
  return Buffer.concat(parts);
}

async function readJson(ctx: RequestContext): Promise<Record<string, unknown>> {
  const body = await readBody(ctx, MAX_JSON);
  try {
    const value = JSON.parse(body.toString('utf8') || '{}') as unknown;
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error('not an object');
    return value as Record<string, unknown>;
  } catch (err) {
    throw new PackferryError(ErrorCode.Usage, `request body is not a JSON object: ${(err as Error).message}`);
  }
}

function optionalString(value: unknown, what: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new PackferryError(ErrorCode.Usage, `${what} must be a string`);
  return value;
}

function optionalBoolean(value: unknown, what: string): boolean | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'boolean') throw new PackferryError(ErrorCode.Usage, `${what} must be true or false`);
  return value;
}

export async function handleAdmin(ctx: RequestContext): Promise<void> {
  const { req, identity, options } = ctx;
  const { root, cacheDir } = options;
  const path = ctx.url.pathname;
  const region = { region: options.region };
  try {
    if (path === '/api/v1/status' && req.method === 'GET') {
      if (!authorize(identity, 'admin', undefined, undefined, region)) return refuse(ctx);
      return json(ctx, 200, { ok: true, version: SERVER_VERSION, store: root.description, repositories: (await root.list()).length });
    }
    if (path === '/api/v1/repos' && req.method === 'GET') {
      const repositories = await listRepositories(root, { cacheDir, filter: (name, settings) => authorize(identity, 'read', name, settings, region) });
      return json(ctx, 200, { ok: true, repositories });
    }
    if (path === '/api/v1/repos' && req.method === 'POST') {
      const body = await readJson(ctx);
      const name = (optionalString(body.name, 'name') ?? '').replace(/\.git$/, '');
      checkRepositoryName(name);
      if (!authorize(identity, 'admin', name, undefined, region)) return refuse(ctx);
      if (await repositoryExists(root, name)) return json(ctx, 409, { ok: false, error: { code: ErrorCode.Usage, message: `repository ${name} already exists` } });
      const repository = await createRepository(root, name, {
        public: optionalBoolean(body.public, 'public'),
        description: optionalString(body.description, 'description'),
        defaultBranch: optionalString(body.defaultBranch, 'defaultBranch'),
        denyNonFastForwards: optionalBoolean(body.denyNonFastForwards, 'denyNonFastForwards'),
        cacheDir,
      });
      return json(ctx, 201, { ok: true, repository });
    }
    const m = /^\/api\/v1\/repos\/(.+?)(?:\/hooks\/([a-z-]+))?$/.exec(path);
    if (!m) return refuse(ctx);
    const name = m[1].replace(/\.git$/, '');
    try {
      checkRepositoryName(name);
    } catch {
      return refuse(ctx);
    }
    // Rights first, from the settings alone (a missing repository's read as a private one's), then existence: the 404 rule in time too.
    const settings = await readSettings(root.repositoryStore(name));
    const exists = () => repositoryExists(root, name);
    if (m[2] !== undefined) {
      // Hooks run code as the server: a server-wide admin's, unless serve lets repository admins (hooks.ts).
      const { repositoryAdminsManageHooks } = options.hooks;
      if (!authorizeHooks(identity, name, settings, { ...region, repositoryAdmins: repositoryAdminsManageHooks }) || !(await exists())) return refuse(ctx);
      const hook = checkHookName(m[2]);
      if (req.method === 'PUT') {
        const script = await readBody(ctx, MAX_HOOK);
        await setHook(root, name, hook, script);
        return json(ctx, 200, { ok: true, hook, bytes: script.length });
      }
      if (req.method === 'DELETE') {
        await setHook(root, name, hook, undefined);
        return json(ctx, 200, { ok: true, hook, deleted: true });
      }
      if (req.method === 'GET') {
        const script = await root.repositoryStore(name).get(`hooks/${hook}`);
        if (!script) return refuse(ctx);
        ctx.res.setHeader('content-type', 'text/plain; charset=utf-8');
        ctx.res.end(script);
        return;
      }
      return refuse(ctx);
    }
    if (req.method === 'GET') {
      if (!authorize(identity, 'read', name, settings, region) || !(await exists())) return refuse(ctx);
      return json(ctx, 200, { ok: true, repository: await describeRepository(root, name, { refs: true, cacheDir }) });
    }
    if (!authorize(identity, 'admin', name, settings, region) || !(await exists())) return refuse(ctx);
    if (req.method === 'PATCH') {
      const body = await readJson(ctx);
      const edit: RepositoryEdit = {
        public: optionalBoolean(body.public, 'public'),
        description: body.description === null ? null : optionalString(body.description, 'description'),
        defaultBranch: optionalString(body.defaultBranch, 'defaultBranch'),
        denyNonFastForwards: optionalBoolean(body.denyNonFastForwards, 'denyNonFastForwards'),
        fsck: body.fsck as RepositoryEdit['fsck'], // checked by editRepository
        fsckSkipList: body.fsckSkipList as RepositoryEdit['fsckSkipList'],
      };
      return json(ctx, 200, { ok: true, repository: await editRepository(root, name, edit, { cacheDir }) });
    }
    if (req.method === 'DELETE') {
      await deleteRepository(root, name);
      return json(ctx, 200, { ok: true, deleted: name });
    }
    return refuse(ctx);
  } catch (err) {
    if (err instanceof PackferryError && [ErrorCode.Usage, ErrorCode.InvalidRefName, ErrorCode.InvalidUrl, ErrorCode.LimitExceeded].includes(err.code as never)) {
      return json(ctx, err.code === ErrorCode.LimitExceeded ? 413 : 400, { ok: false, error: { code: err.code, message: err.message } });
    }
    throw err;
  }
}

// A real S3-compatible server for the store's tests: the `s3rver` npm package
// (3.7.1, a Koa application over a directory) run as a child process on
// 127.0.0.1, and a small fault-injecting HTTP proxy to put in front of it.
//
// s3rver listens on port 0 and prints the port the kernel gave it, so no
// other process can take the port between a probe and the bind. The child
// watches its stdin and exits when the pipe closes, so a test process that
// dies does not leave a server behind.
//
// s3rver 3.7.1 differs from S3 where the store's contract depends on S3, so
// the launcher below patches these gaps (each one is a documented S3 rule):
// - PutObject, UploadPart and CompleteMultipartUpload write a temporary file
//   and rename it into place, after checking the body's length against
//   Content-Length (IncompleteBody) and its MD5 against Content-MD5
//   (BadDigest). s3rver wrote the object file in place, so a concurrent GET
//   saw a partly written object and a dropped upload left a truncated one.
//   An aws-chunked body (x-amz-decoded-content-length) that s3rver cannot
//   decode is refused instead of being stored with its chunk framing.
// - GetObject/HeadObject open the file before taking its size, so a reader
//   gets one whole version even while a writer renames a new one in place.
//   (s3rver's Range parsing is kept as it is: "bytes=N-0" reads to the end,
//   which the backend must cope with, as with any server that sends more.)
// - ListObjects(V2) returns keys in S3's order (UTF-8 byte order); s3rver
//   walked directories, where "a/b" comes before "a.txt" and pagination by
//   start-after skipped keys.
// - AbortMultipartUpload and ListMultipartUploads exist (s3rver answered
//   405 and 501); these two skip s3rver's signature check.
// - UploadPart into an upload that is gone answers NoSuchUpload instead of
//   creating the upload's directory again.
// - An object's file and the .md5 file its ETag comes from change together,
//   under a mutex per key that GetObject/HeadObject take too: s3rver wrote
//   the .md5 after renaming the object, so a reader could get one version's
//   body with another's ETag (and a compare-and-swap on that ETag would
//   overwrite a write it never saw).
// Extended, only with `startS3Server({ conditionalWrites: true })`: S3's
// conditional writes on PutObject, following S3's documented semantics
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html):
// `If-None-Match: *` writes only where there is no object, `If-Match: <ETag>`
// only over that version; either refused is 412 PreconditionFailed with S3's
// XML error body (<Condition> names the header), If-Match where there is no
// object is 404 NoSuchKey, If-None-Match with anything but "*" is 501
// NotImplemented. The conditions are evaluated when the upload completes,
// under the key's mutex, so of concurrent conditional puts to one key from
// one version exactly one succeeds and the others get 412 (S3: "the first
// write operation to finish succeeds"); a delete of the key that succeeds
// while a conditional put is uploading makes that put fail with 409
// ConditionalRequestConflict, as S3 documents. CompleteMultipartUpload and
// CopyObject ignore the headers (the store never sends them there). Without
// the option the headers are ignored, as s3rver 3.7.1 ignores them: the
// "service without conditional writes" of the tests.
// And s3rver's ListObjectsV2 continuation tokens use DES, which Node 17+
// (OpenSSL 3) offers only with --openssl-legacy-provider.
//
// Credentials are s3rver's built-in account: S3RVER / S3RVER.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import http, { type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { CreateBucketCommand, ListBucketsCommand, ListMultipartUploadsCommand, S3Client } from '@aws-sdk/client-s3';
import { tempDir } from './git.js';

const LAUNCHER = String.raw`'use strict';
const crypto = require('crypto');
const fs = require('fs');
const fsp = fs.promises;
const path = require('path');
const { pipeline, Transform } = require('stream');

const moduleDir = process.env.S3RVER_MODULE_DIR;
const S3rver = require(moduleDir);
const FilesystemStore = require(path.join(moduleDir, 'lib/stores/filesystem.js'));
const S3Object = require(path.join(moduleDir, 'lib/models/object.js'));
const S3Error = require(path.join(moduleDir, 'lib/models/error.js'));

const OBJECT_SUFFIX = '._S3rver_object';
const isEnoent = (err) => err && err.code === 'ENOENT';

/**
 * Streams content into a temporary file beside target, checks length and
 * MD5, and renames it into place, or hands it to commit(tmp) to do that.
 */
async function writeChecked(content, target, makeDir, commit) {
  if (makeDir) await fsp.mkdir(path.dirname(target), { recursive: true });
  const tmp = path.join(path.dirname(target), '.tmp-' + crypto.randomBytes(8).toString('hex'));
  const md5 = crypto.createHash('md5');
  let size = 0;
  try {
    if (Buffer.isBuffer(content)) {
      md5.update(content);
      size = content.length;
      await fsp.writeFile(tmp, content);
    } else {
      await new Promise((resolve, reject) =>
        pipeline(
          content,
          new Transform({
            transform(chunk, _enc, cb) {
              md5.update(chunk);
              size += chunk.length;
              cb(null, chunk);
            },
          }),
          fs.createWriteStream(tmp),
          (err) => (err ? reject(err) : resolve()),
        ),
      );
    }
    const headers = content.headers || {};
    if ('x-amz-decoded-content-length' in headers) {
      throw new S3Error('NotImplemented', 'aws-chunked request bodies are not supported by this server');
    }
    if (headers['content-length'] !== undefined && Number(headers['content-length']) !== size) {
      throw new S3Error('IncompleteBody', 'You did not provide the number of bytes specified by the Content-Length HTTP header');
    }
    const digest = md5.digest();
    if (headers['content-md5'] !== undefined && headers['content-md5'] !== digest.toString('base64')) {
      throw new S3Error('BadDigest', 'The Content-MD5 you specified did not match what we received.');
    }
    const md5hex = digest.toString('hex');
    if (commit) await commit(tmp, md5hex);
    else await fsp.rename(tmp, target);
    return { size, md5: md5hex };
  } catch (err) {
    await fsp.unlink(tmp).catch(() => {});
    throw err;
  }
}

// One object's state (its file and the .md5 file its ETag comes from) changes
// only under its key's mutex, and readers take the pair under it too: S3
// never answers a body with another version's ETag.
const keyMutexes = new Map();
async function withKey(bucket, key, fn) {
  const id = bucket + '/' + key;
  const before = keyMutexes.get(id) || Promise.resolve();
  let release;
  const mine = new Promise((resolve) => (release = resolve));
  const tail = before.then(() => mine);
  keyMutexes.set(id, tail);
  await before;
  try {
    return await fn();
  } finally {
    release();
    if (keyMutexes.get(id) === tail) keyMutexes.delete(id);
  }
}

// Conditional writes (S3RVER_CONDITIONAL_WRITES=1), as S3 documents them
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html).
const CONDITIONAL_WRITES = process.env.S3RVER_CONDITIONAL_WRITES === '1';
/** Conditional puts in progress, by bucket/key: a delete that succeeds meanwhile makes them fail with 409. */
const conditionalInFlight = new Map();

function entityTags(value) {
  return String(value).split(',').map((t) => t.trim().replace(/^W\//, '').replace(/^"(.*)"$/, '$1'));
}

/** The conditions of a PutObject, or undefined; If-None-Match takes only "*". */
function putConditions(headers) {
  const ifMatch = headers['if-match'];
  const ifNoneMatch = headers['if-none-match'];
  if (ifMatch === undefined && ifNoneMatch === undefined) return undefined;
  if (ifNoneMatch !== undefined && ifNoneMatch.trim() !== '*') {
    throw new S3Error('NotImplemented', 'A header you provided implies functionality that is not implemented', { Header: 'If-None-Match' });
  }
  return { ifMatch, ifNoneMatch };
}

/** Throws what S3 answers when a condition does not hold on the object as it is now. */
async function checkConditions(store, bucket, key, conditions) {
  const current = await store.getMetadata(bucket, key).catch((err) => {
    if (isEnoent(err)) return undefined;
    throw err;
  });
  if (conditions.ifMatch !== undefined) {
    if (current === undefined) throw new S3Error('NoSuchKey', 'The specified key does not exist.', { Key: key });
    const etag = entityTags(current.etag)[0];
    const wanted = entityTags(conditions.ifMatch);
    if (!wanted.includes('*') && !wanted.includes(etag)) {
      throw new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', { Condition: 'If-Match' });
    }
  }
  if (conditions.ifNoneMatch !== undefined && current !== undefined) {
    throw new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', { Condition: 'If-None-Match' });
  }
}

function conditionalConflict() {
  const err = new S3Error('ConditionalRequestConflict', 'A conflicting operation occurred. If using PutObject you can retry the request.');
  err.status = 409;
  err.expose = true;
  return err;
}

FilesystemStore.prototype.putObject = async function putObject(object) {
  const objectPath = this.getResourcePath(object.bucket, object.key, 'object');
  const headers = (object.content && object.content.headers) || {};
  const conditions = CONDITIONAL_WRITES ? putConditions(headers) : undefined;
  const id = object.bucket + '/' + object.key;
  const inFlight = conditions ? { conflicted: false } : undefined;
  if (inFlight) {
    if (!conditionalInFlight.has(id)) conditionalInFlight.set(id, new Set());
    conditionalInFlight.get(id).add(inFlight);
  }
  try {
    // The conditions are evaluated when the upload completes, with the object as it is then.
    return await writeChecked(object.content, objectPath, true, (tmp, md5) =>
      withKey(object.bucket, object.key, async () => {
        if (inFlight && inFlight.conflicted) throw conditionalConflict();
        if (conditions) await checkConditions(this, object.bucket, object.key, conditions);
        await fsp.rename(tmp, objectPath);
        await this.putMetadata(object.bucket, object.key, object.metadata, md5);
      }),
    );
  } finally {
    if (inFlight) {
      const set = conditionalInFlight.get(id);
      set.delete(inFlight);
      if (set.size === 0) conditionalInFlight.delete(id);
    }
  }
};

const deleteObject = FilesystemStore.prototype.deleteObject;
FilesystemStore.prototype.deleteObject = async function (bucket, key) {
  return withKey(bucket, key, async () => {
    await deleteObject.call(this, bucket, key);
    for (const inFlight of conditionalInFlight.get(bucket + '/' + key) || []) inFlight.conflicted = true;
  });
};

FilesystemStore.prototype.putPart = async function putPart(bucket, uploadId, partNumber, content) {
  const uploadDir = path.join(this.getResourcePath(bucket, undefined, 'uploads'), uploadId);
  try {
    await fsp.stat(uploadDir);
  } catch (err) {
    if (isEnoent(err)) throw new S3Error('NoSuchUpload', 'The specified upload does not exist.', { UploadId: uploadId });
    throw err;
  }
  const partPath = path.join(uploadDir, String(partNumber));
  // No mkdir: a part that arrives after an abort must not bring the upload back.
  const { size, md5 } = await writeChecked(content, partPath, false);
  await fsp.writeFile(partPath + '.md5', md5);
  return { size, md5 };
};

const putObjectMultipart = FilesystemStore.prototype.putObjectMultipart;
FilesystemStore.prototype.putObjectMultipart = async function (bucket, uploadId, parts) {
  const uploadDir = path.join(this.getResourcePath(bucket, undefined, 'uploads'), uploadId);
  try {
    await fsp.stat(uploadDir);
  } catch (err) {
    if (isEnoent(err)) throw new S3Error('NoSuchUpload', 'The specified upload does not exist.', { UploadId: uploadId });
    throw err;
  }
  return putObjectMultipart.call(this, bucket, uploadId, parts);
};

FilesystemStore.prototype.getObject = function getObject(bucket, key, options) {
  return withKey(bucket, key, () => openObject.call(this, bucket, key, options));
};

async function openObject(bucket, key, options) {
  let handle;
  try {
    handle = await fsp.open(this.getResourcePath(bucket, key, 'object'), 'r');
  } catch (err) {
    if (isEnoent(err)) return null;
    throw err;
  }
  try {
    const stat = await handle.stat();
    const metadata = await this.getMetadata(bucket, key).catch((err) => {
      if (isEnoent(err)) return {};
      throw err;
    });
    metadata['content-length'] = stat.size;
    metadata['last-modified'] = stat.mtime.toUTCString();
    const lastByte = Math.max(0, stat.size - 1);
    const range = {
      start: (options && options.start) || 0,
      end: Math.min((options && options.end) || Infinity, lastByte),
    };
    const ranged = options && (options.start !== undefined || options.end);
    if (range.start < 0 || Math.min(range.end, lastByte) < range.start) {
      await handle.close();
      const object = new S3Object(bucket, key, null, metadata);
      if (ranged) object.range = range;
      return object;
    }
    // The stream owns the handle from here and closes it (autoClose).
    const content = fs.createReadStream(null, { fd: handle, start: range.start, end: range.end });
    const object = new S3Object(bucket, key, content, metadata);
    if (ranged) object.range = range;
    return object;
  } catch (err) {
    await handle.close().catch(() => {});
    if (isEnoent(err)) return null;
    throw err;
  }
}

function* walkFiles(dir) {
  let names;
  try {
    names = fs.readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    if (isEnoent(err)) return;
    throw err;
  }
  for (const entry of names) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) yield* walkFiles(full);
    else yield full;
  }
}

FilesystemStore.prototype.listObjects = async function listObjects(bucket, options) {
  const { delimiter = '', startAfter = '', prefix = '', maxKeys = Infinity } = options;
  const bucketPath = this.getBucketPath(bucket);
  const start = prefix.lastIndexOf('/');
  const top = start < 0 ? bucketPath : path.join(bucketPath, ...prefix.slice(0, start).split('/'));
  const all = [];
  for (const file of walkFiles(top)) {
    if (!file.endsWith(OBJECT_SUFFIX)) continue;
    const key = path.relative(bucketPath, file).split(path.sep).join('/').slice(0, -OBJECT_SUFFIX.length);
    if (key.startsWith(prefix) && key > startAfter) all.push(key);
  }
  all.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const commonPrefixes = new Set();
  const keys = [];
  let isTruncated = false;
  for (const key of all) {
    if (delimiter) {
      const idx = key.slice(prefix.length).indexOf(delimiter);
      if (idx !== -1) {
        commonPrefixes.add(key.slice(0, prefix.length + idx + 1));
        continue;
      }
    }
    if (keys.length >= maxKeys) {
      isTruncated = true;
      break;
    }
    keys.push(key);
  }
  const objects = [];
  for (const key of keys) {
    const metadata = await this.getMetadata(bucket, key).catch((err) => {
      if (isEnoent(err)) return undefined;
      throw err;
    });
    if (metadata !== undefined) objects.push(new S3Object(bucket, key, null, metadata));
  }
  return { objects, commonPrefixes: [...commonPrefixes].sort(), isTruncated };
};

/** AbortMultipartUpload and ListMultipartUploads, which s3rver 3.7.1 lacks. */
async function multipartAdmin(ctx, next) {
  const m = /^\/([^/]+)(?:\/(.*))?$/.exec(ctx.path);
  if (!m) return next();
  const bucket = decodeURIComponent(m[1]);
  const key = m[2] ? decodeURIComponent(m[2]) : undefined;
  const isAbort = ctx.method === 'DELETE' && key !== undefined && 'uploadId' in ctx.query;
  const isList = ctx.method === 'GET' && key === undefined && 'uploads' in ctx.query;
  if (!isAbort && !isList) return next();
  if (!(await ctx.store.getBucket(bucket))) {
    throw new S3Error('NoSuchBucket', 'The specified bucket does not exist', { BucketName: bucket });
  }
  const uploadsDir = ctx.store.getResourcePath(bucket, undefined, 'uploads');
  if (isAbort) {
    const uploadId = String(ctx.query.uploadId);
    const uploadDir = path.join(uploadsDir, uploadId);
    let known = /^[0-9a-f]+$/.test(uploadId);
    if (known) known = await fsp.readFile(path.join(uploadDir, 'key'), 'utf8').then((k) => k === key, () => false);
    if (!known) throw new S3Error('NoSuchUpload', 'The specified upload does not exist.', { UploadId: uploadId });
    // A part still being written may add a file meanwhile (ENOTEMPTY): try again.
    await fsp.rm(uploadDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 20 });
    ctx.status = 204;
    return;
  }
  const prefix = typeof ctx.query.prefix === 'string' ? ctx.query.prefix : '';
  const uploads = [];
  let ids = [];
  try {
    ids = await fsp.readdir(uploadsDir);
  } catch (err) {
    if (!isEnoent(err)) throw err;
  }
  for (const id of ids.sort()) {
    const uploadKey = await fsp.readFile(path.join(uploadsDir, id, 'key'), 'utf8').catch(() => undefined);
    if (uploadKey === undefined || !uploadKey.startsWith(prefix)) continue;
    const stat = await fsp.stat(path.join(uploadsDir, id));
    uploads.push({ Key: uploadKey, UploadId: id, Initiated: stat.mtime.toISOString(), StorageClass: 'STANDARD' });
  }
  uploads.sort((a, b) => (a.Key < b.Key ? -1 : a.Key > b.Key ? 1 : 0));
  ctx.body = {
    ListMultipartUploadsResult: {
      '@': { xmlns: 'http://s3.amazonaws.com/doc/2006-03-01/' },
      Bucket: bucket,
      KeyMarker: '',
      UploadIdMarker: '',
      Prefix: prefix,
      MaxUploads: 1000,
      IsTruncated: false,
      Upload: uploads,
    },
  };
}

async function main() {
  const app = new S3rver({
    address: '127.0.0.1',
    port: 0,
    directory: process.env.S3RVER_DATA_DIR,
    silent: true,
    configureBuckets: [],
  });
  // Before the router (the last middleware), after the XML encoder.
  app.middleware.splice(app.middleware.length - 1, 0, multipartAdmin);
  const { port } = await app.run();
  process.stdout.write(JSON.stringify({ port }) + '\n');
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
`;

export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;
export const S3RVER_REGION = 'us-east-1';

/**
 * A client configured as s3rver needs it. @aws-sdk v3 sends aws-chunked
 * bodies with CRC32 trailers by default (flexible checksums), which s3rver
 * 3.7.1 predates: checksums only when an operation requires one.
 */
export function s3rverClient(endpoint: string): S3Client {
  return new S3Client({
    endpoint,
    region: S3RVER_REGION,
    forcePathStyle: true,
    credentials: { ...S3RVER_CREDENTIALS },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // Retries a keep-alive connection the server closed as it was reused.
    maxAttempts: 3,
  });
}

export interface PendingUpload {
  key: string;
  uploadId: string;
}

export interface S3Server {
  /** `http://127.0.0.1:PORT` */
  readonly endpoint: string;
  readonly port: number;
  /** The directory s3rver keeps its buckets in. */
  readonly directory: string;
  /** A client for set-up and inspection (not the code under test). */
  readonly client: S3Client;
  createBucket(name: string): Promise<void>;
  /** Multipart uploads begun and neither completed nor aborted (ListMultipartUploads). */
  pendingUploads(bucket: string, prefix?: string): Promise<PendingUpload[]>;
  /** What the server wrote to stderr so far. */
  log(): string;
  /** Whether the server process is still running (false after a crash or stop()). */
  running(): boolean;
  stop(): Promise<void>;
}

export interface S3ServerOptions {
  buckets?: string[];
  /** Honour If-Match / If-None-Match on PutObject as S3 does (default: ignore them, as s3rver 3.7.1 and some services do). */
  conditionalWrites?: boolean;
}

export async function startS3Server(options: S3ServerOptions = {}): Promise<S3Server> {
  const tmp = tempDir('packferry-s3rver-');
  const directory = join(tmp.path, 'data');
  mkdirSync(directory);
  const launcher = join(tmp.path, 'launch.cjs');
  writeFileSync(launcher, LAUNCHER);
  const moduleDir = dirname(createRequire(import.meta.url).resolve('s3rver/package.json'));
  // s3rver's ListObjectsV2 continuation tokens are DES-encrypted, which
  // OpenSSL 3 keeps in its legacy provider.
  const child: ChildProcess = spawn(process.execPath, ['--openssl-legacy-provider', launcher], {
    env: { ...process.env, S3RVER_MODULE_DIR: moduleDir, S3RVER_DATA_DIR: directory, S3RVER_CONDITIONAL_WRITES: options.conditionalWrites === true ? '1' : '0' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (d: string) => {
    stderr += d;
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error('s3rver did not start within 15 s')), 15_000);
      child.stdout?.setEncoding('utf8');
      child.stdout?.on('data', (d: string) => {
        out += d;
        const line = /^\{.*\}$/m.exec(out);
        if (line) {
          clearTimeout(timer);
          resolve((JSON.parse(line[0]) as { port: number }).port);
        }
      });
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      void exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`s3rver exited before it listened (code ${child.exitCode})`));
      });
    });
  } catch (err) {
    child.kill('SIGKILL');
    tmp.cleanup();
    throw new Error(`s3rver failed to start: ${err instanceof Error ? err.message : String(err)}\n${stderr}`);
  }
  const endpoint = `http://127.0.0.1:${port}`;
  const client = s3rverClient(endpoint);
  let stopped: Promise<void> | undefined;
  const server: S3Server = {
    endpoint,
    port,
    directory,
    client,
    async createBucket(name) {
      await client.send(new CreateBucketCommand({ Bucket: name }));
    },
    async pendingUploads(bucket, prefix) {
      const out = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
      return (out.Uploads ?? []).map((u) => ({ key: u.Key ?? '', uploadId: u.UploadId ?? '' }));
    },
    log: () => stderr,
    running: () => child.exitCode === null && child.signalCode === null,
    stop() {
      stopped ??= (async () => {
        client.destroy();
        if (child.exitCode === null && child.signalCode === null) {
          child.stdin?.end();
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
          await exited;
          clearTimeout(timer);
        }
        tmp.cleanup();
      })();
      return stopped;
    },
  };
  try {
    // Answers S3 requests (not merely accepts connections).
    await client.send(new ListBucketsCommand({}));
    for (const bucket of options.buckets ?? []) await server.createBucket(bucket);
  } catch (err) {
    await server.stop();
    throw err;
  }
  return server;
}

// ---------------------------------------------------------------------------
// The fault proxy.

/** What the proxy does to a request instead of (or before) forwarding it. */
export type Fault =
  /** Answer with an S3 XML error body (`<Error><Code>SlowDown</Code>...`). */
  | { kind: 'error'; status: number; code: string; message?: string }
  /** Wait, then forward. */
  | { kind: 'delay'; ms: number }
  /** Read the request and never answer (the client's timeout must act). */
  | { kind: 'hang' }
  /** Close the connection without an answer. */
  | { kind: 'reset' }
  /** Forward, so the server acts on the request, then close the connection instead of passing its answer on (an answer lost on the way back). */
  | { kind: 'lose-answer' };

export const slowDown: Fault = { kind: 'error', status: 503, code: 'SlowDown', message: 'Please reduce your request rate.' };
export const serviceUnavailable: Fault = { kind: 'error', status: 503, code: 'ServiceUnavailable', message: 'Service is unable to handle request.' };
export const internalError: Fault = { kind: 'error', status: 500, code: 'InternalError', message: 'We encountered an internal error. Please try again.' };

export interface RecordedRequest {
  method: string;
  /** Path and query, as sent. */
  url: string;
  headers: IncomingHttpHeaders;
  /** The fault applied, if any. */
  fault?: Fault['kind'];
  /** The status the client got (undefined while pending, or for hang/reset). */
  status?: number;
}

export interface FaultProxy {
  /** `http://127.0.0.1:PORT` */
  readonly endpoint: string;
  readonly port: number;
  /** Every request seen, oldest first. */
  readonly requests: RecordedRequest[];
  /** The next `count` (default 1) requests — of `method` and matching `match`, if given — get `fault`. */
  inject(fault: Fault, options?: { count?: number; method?: string; match?: (req: RecordedRequest) => boolean }): void;
  /** How many requests were seen, of `method` if given. */
  count(method?: string): number;
  /** Forgets the recorded requests and any faults not yet used. */
  clear(): void;
  stop(): Promise<void>;
}

export async function startFaultProxy(upstreamPort: number): Promise<FaultProxy> {
  const requests: RecordedRequest[] = [];
  let faults: { fault: Fault; left: number; method?: string; match?: (req: RecordedRequest) => boolean }[] = [];
  const sockets = new Set<Socket>();
  const agent = new http.Agent({ keepAlive: true });

  const takeFault = (rec: RecordedRequest): Fault | undefined => {
    const entry = faults.find((f) => f.left > 0 && (f.method === undefined || f.method === rec.method) && (f.match?.(rec) ?? true));
    if (!entry) return undefined;
    entry.left--;
    faults = faults.filter((f) => f.left > 0);
    return entry.fault;
  };

  const forward = (req: http.IncomingMessage, res: http.ServerResponse, rec: RecordedRequest, loseAnswer = false): void => {
    const upstream = http.request(
      { host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: req.headers, agent },
      (upRes) => {
        rec.status = upRes.statusCode;
        if (loseAnswer) {
          upRes.resume();
          upRes.on('end', () => req.socket.destroy());
          return;
        }
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
        upRes.on('error', () => res.destroy());
      },
    );
    upstream.on('error', () => {
      if (!res.headersSent) {
        rec.status = 502;
        res.writeHead(502).end();
      } else {
        res.destroy();
      }
    });
    req.on('error', () => upstream.destroy());
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.pipe(upstream);
  };

  const server = http.createServer((req, res) => {
    const rec: RecordedRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers };
    requests.push(rec);
    const fault = takeFault(rec);
    if (fault === undefined) return forward(req, res, rec);
    rec.fault = fault.kind;
    switch (fault.kind) {
      case 'error': {
        req.resume();
        req.on('end', () => {
          const body =
            '<?xml version="1.0" encoding="UTF-8"?>\n' +
            `<Error><Code>${fault.code}</Code><Message>${fault.message ?? fault.code}</Message>` +
            `<RequestId>fault-${requests.length}</RequestId></Error>`;
          rec.status = fault.status;
          res.writeHead(fault.status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
          res.end(body);
        });
        return;
      }
      case 'delay': {
        req.pause();
        setTimeout(() => forward(req, res, rec), fault.ms);
        return;
      }
      case 'hang':
        req.resume();
        return;
      case 'reset':
        req.socket.destroy();
        return;
      case 'lose-answer':
        forward(req, res, rec, true);
        return;
    }
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  let stopped: Promise<void> | undefined;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    requests,
    inject(fault, options = {}) {
      faults.push({ fault, left: options.count ?? 1, method: options.method, match: options.match });
    },
    count: (method) => requests.filter((r) => method === undefined || r.method === method).length,
    clear() {
      requests.length = 0;
      faults = [];
    },
    stop() {
      stopped ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const socket of sockets) socket.destroy();
        agent.destroy();
        await closed;
      })();
      return stopped;
    },
  };
}

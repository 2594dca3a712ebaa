// The S3 backend: a BlobStore over one bucket and key prefix on AWS S3 or any
// S3-compatible service (@aws-sdk/client-s3). It keeps the contract of
// backend.ts with S3's own guarantees: a PUT (single or multipart) is
// atomic and S3 has strong read-after-write consistency; list() pages
// through ListObjectsV2 with continuation tokens.
//
// Uploads: bytes in memory up to `multipartThreshold` (64 MiB), and a stream
// that ends within its first part, go as a single PutObject; anything longer goes as a multipart
// upload in parts of `partSize` (>= 8 MiB)
// with at most `queueSize` parts in flight, so memory stays near
// partSize x (queueSize + 2) whatever the body's length. Each part carries a
// Content-MD5 that S3 checks. If the body fails, the signal aborts or a part
// cannot be stored, the parts in flight are cancelled and awaited, then the
// upload is aborted (AbortMultipartUpload), so neither a half object nor
// stored parts are left behind; only then does put() reject. (This is why
// uploads are not done with @aws-sdk/lib-storage: its abort() settles
// before the AbortMultipartUpload request is sent, and after a failed part
// it goes on reading and uploading the rest of the body.)
//
// Checksums: the SDK's flexible checksums (aws-chunked bodies with CRC32
// trailers) are sent only where an operation requires them, because many
// S3-compatible services cannot decode aws-chunked bodies; Content-MD5
// gives S3-checked integrity on every service.
//
// Retries: the SDK's standard strategy (up to `maxAttempts` tries, with
// backoff) retries 500/502/503/504, throttling (SlowDown, 429), timeouts and
// dropped connections; every body sent is a Buffer, so each try can resend it.
// Failures become PackferryErrors (s3-errors.ts).
//
// Conditional writes (ConditionalWrites, compare-and-swap of one object) are
// S3's own (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html):
// the version is the object's ETag; PutObject with If-Match: <ETag> writes
// only over that version, with If-None-Match: * only where there is no
// object. 412 PreconditionFailed, and 404 NoSuchKey for If-Match where the
// object is gone, mean another write came first; 409
// ConditionalRequestConflict (a conflicting operation during the upload) is
// tried again a few times. An S3-compatible service may ignore the headers,
// so whether it honours them is probed once per endpoint and bucket (a
// probe object under the store's prefix, created twice with If-None-Match
// and overwritten with a wrong If-Match: both must be refused) and
// remembered for the process; `conditionalWrites: 'on' | 'off'` skips the
// probe.
import { createHash, randomBytes } from 'node:crypto';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type CompletedPart,
  type S3ClientConfig,
  type ServerSideEncryption,
  type StorageClass,
} from '@aws-sdk/client-s3';
import { throwIfAborted } from '../core/abort.js';
import { PackferryError, ErrorCode } from '../core/errors.js';
import { checkKey, type BlobInfo, type BlobStore, type ConditionalWrites, type PutOptions, type VersionedBlob } from './backend.js';
import { contentTypeFor } from './s3-content-type.js';
import { isNoSuchKey, mapS3Error, type S3ErrorContext } from './s3-errors.js';
import {
  checkBucketName,
  defaultForcePathStyle,
  normalizePrefix,
  parseS3Url,
  resolveS3Endpoint,
  resolveS3Region,
} from './s3-url.js';

export { parseS3Url, formatS3Url, bucketNameProblem, type S3Location } from './s3-url.js';

const MIB = 1024 * 1024;
/** S3's smallest part (except the last). */
const MIN_PART_SIZE = 5 * MIB;
export const DEFAULT_PART_SIZE = 8 * MIB;
export const DEFAULT_QUEUE_SIZE = 4;
/** S3's largest number of parts in one multipart upload. */
const MAX_PARTS = 10_000;
export const DEFAULT_MULTIPART_THRESHOLD = 64 * MIB;

export interface S3BlobStoreOptions {
  bucket: string;
  /** Keys live under it, e.g. 'mirrors/repo.git/' ('/' is appended if missing; '' is the bucket's root). */
  prefix?: string;
  /** e.g. http://127.0.0.1:9000; default: AWS_ENDPOINT_URL_S3, then AWS_ENDPOINT_URL, else AWS. */
  endpoint?: string;
  /** Default: AWS_REGION, AWS_DEFAULT_REGION, else 'us-east-1'. */
  region?: string;
  /** Default: true when the endpoint's host is an IP address or localhost. */
  forcePathStyle?: boolean;
  /** x-amz-storage-class for new objects (STANDARD, STANDARD_IA, INTELLIGENT_TIERING...). */
  storageClass?: string;
  serverSideEncryption?: 'AES256' | 'aws:kms';
  /** The KMS key for serverSideEncryption 'aws:kms' (the bucket's default key if unset). */
  kmsKeyId?: string;
  /** Default: the SDK's standard chain (environment, shared files/AWS_PROFILE, SSO, web identity, ECS, EC2). */
  credentials?: S3ClientConfig['credentials'];
  /** Tries per request, the first included (default 5). */
  maxAttempts?: number;
  /** How long a request may wait with no bytes moving, and for its connection (default 60000). */
  requestTimeoutMs?: number;
  /** Multipart part size (default and minimum 8 MiB; raised so a known size fits in 10,000 parts). */
  partSize?: number;
  /** Bytes in memory up to this size go as one PutObject, larger ones in parts (default 64 MiB; at least partSize). */
  multipartThreshold?: number;
  /** Parts uploaded at once (default 4). */
  queueSize?: number;
  /** Keys per ListObjectsV2 page (default 1000, S3's maximum). */
  listPageSize?: number;
  /** Where endpoint and region defaults come from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /**
   * S3's conditional writes (If-Match / If-None-Match on PutObject): 'auto'
   * probes once, before the first conditional write, whether the service
   * honours them (the default for an endpoint other than AWS S3's), 'on'
   * trusts that it does (the default for AWS S3, which documents them),
   * 'off' never uses them (writers take the writer lock).
   */
  conditionalWrites?: ConditionalWritesMode;
}

export type ConditionalWritesMode = 'auto' | 'on' | 'off';

/** Whether a service honours conditional writes, by endpoint and bucket: probed once per process. */
const probes = new Map<string, Promise<boolean>>();

/** Tries of a conditional put that S3 answers 409 ConditionalRequestConflict. */
const CONFLICT_TRIES = 4;

interface SdkError {
  name?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number; attempts?: number };
}

function sdkStatus(err: unknown): number | undefined {
  return (err as SdkError | undefined)?.$metadata?.httpStatusCode;
}

function sdkCode(err: unknown): string | undefined {
  const e = err as SdkError | undefined;
  return e?.Code ?? e?.name;
}

/** A refused precondition: 412, or 404 for If-Match where there is no object. */
function isPreconditionFailed(err: unknown): boolean {
  return sdkStatus(err) === 412 || sdkCode(err) === 'PreconditionFailed';
}

function isConditionalConflict(err: unknown): boolean {
  return sdkStatus(err) === 409 && sdkCode(err) !== 'BucketAlreadyExists';
}

/** The service does not know the conditional headers (501 NotImplemented, or 400 refusing them). */
function isNotImplemented(err: unknown): boolean {
  const status = sdkStatus(err);
  const code = sdkCode(err);
  return status === 501 || code === 'NotImplemented' || (status === 400 && (code === 'InvalidArgument' || code === 'InvalidRequest'));
}

interface ResponseBody extends AsyncIterable<Uint8Array> {
  destroy?(error?: Error): void;
}

/** Resolves with `promise`, or rejects with an abort error as soon as `signal` aborts. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.reject(new PackferryError(ErrorCode.Aborted, 'operation aborted', { cause: signal.reason }));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new PackferryError(ErrorCode.Aborted, 'operation aborted', { cause: signal.reason }));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

interface Part {
  data: Buffer;
  last: boolean;
}

/**
 * Cuts a body into parts of exactly `partSize` bytes (the last one shorter,
 * possibly empty), copying the bytes, so a body may reuse its chunks' memory
 * after yielding them. A part is yielded once it is known whether more
 * follows. Checks the total against `expectedSize` when given.
 */
async function* readParts(body: AsyncIterable<Uint8Array>, partSize: number, expectedSize: number | undefined, signal: AbortSignal | undefined): AsyncGenerator<Part> {
  const source = body[Symbol.asyncIterator]();
  let finished = false;
  let current: Buffer | undefined;
  let filled = 0;
  let full: Buffer | undefined;
  let total = 0;
  try {
    for (;;) {
      const next = await abortable(source.next(), signal);
      if (next.done) break;
      const chunk = next.value;
      total += chunk.length;
      if (expectedSize !== undefined && total > expectedSize) {
        throw new PackferryError(ErrorCode.Usage, `put: the body is longer than the size given (${expectedSize} bytes)`);
      }
      let offset = 0;
      while (offset < chunk.length) {
        if (full !== undefined) {
          yield { data: full, last: false };
          full = undefined;
        }
        current ??= Buffer.allocUnsafe(partSize);
        const n = Math.min(partSize - filled, chunk.length - offset);
        current.set(chunk.subarray(offset, offset + n), filled);
        filled += n;
        offset += n;
        if (filled === partSize) {
          full = current;
          current = undefined;
          filled = 0;
        }
      }
    }
    finished = true;
    if (expectedSize !== undefined && total !== expectedSize) {
      throw new PackferryError(ErrorCode.Usage, `put: the body is ${total} bytes, not the ${expectedSize} given`);
    }
    if (full !== undefined) {
      if (filled === 0) {
        yield { data: full, last: true };
        return;
      }
      yield { data: full, last: false };
    }
    yield { data: current === undefined ? Buffer.alloc(0) : current.subarray(0, filled), last: true };
  } finally {
    // Stop the body (a file stream closes its file); not awaited, since a
    // stalled body would hold this up.
    if (!finished) void Promise.resolve(source.return?.()).catch(() => {});
  }
}

function md5Base64(data: Uint8Array): string {
  return createHash('md5').update(data).digest('base64');
}

function compareKeys(a: BlobInfo, b: BlobInfo): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

export class S3BlobStore implements BlobStore, ConditionalWrites {
  readonly description: string;
  readonly bucket: string;
  readonly prefix: string;
  /** The endpoint in use, or undefined for AWS. */
  readonly endpoint: string | undefined;
  readonly region: string;
  readonly forcePathStyle: boolean;
  readonly partSize: number;
  readonly queueSize: number;
  readonly multipartThreshold: number;
  readonly requestTimeoutMs: number;
  /** The SDK client (for what the store does not cover). */
  readonly client: S3Client;
  private readonly storageClass: string | undefined;
  private readonly serverSideEncryption: 'AES256' | 'aws:kms' | undefined;
  private readonly kmsKeyId: string | undefined;
  private readonly listPageSize: number;
  readonly conditionalWritesMode: ConditionalWritesMode;

  /** A store for `s3://BUCKET/PREFIX`, with further options. */
  static fromUrl(url: string, options: Omit<S3BlobStoreOptions, 'bucket' | 'prefix'> = {}): S3BlobStore {
    const { bucket, prefix } = parseS3Url(url);
    return new S3BlobStore({ ...options, bucket, prefix });
  }

  constructor(options: S3BlobStoreOptions) {
    const env = options.env ?? process.env;
    this.bucket = checkBucketName(options.bucket);
    this.prefix = normalizePrefix(options.prefix ?? '');
    this.endpoint = resolveS3Endpoint(options.endpoint, env);
    this.region = resolveS3Region(options.region, env);
    this.forcePathStyle = options.forcePathStyle ?? defaultForcePathStyle(this.endpoint);
    this.partSize = Math.max(options.partSize ?? DEFAULT_PART_SIZE, MIN_PART_SIZE);
    this.queueSize = Math.max(1, Math.floor(options.queueSize ?? DEFAULT_QUEUE_SIZE));
    this.multipartThreshold = Math.max(options.multipartThreshold ?? DEFAULT_MULTIPART_THRESHOLD, this.partSize);
    this.requestTimeoutMs = options.requestTimeoutMs ?? 60_000;
    this.listPageSize = Math.min(1000, Math.max(1, Math.floor(options.listPageSize ?? 1000)));
    this.storageClass = options.storageClass;
    this.serverSideEncryption = options.serverSideEncryption;
    this.kmsKeyId = options.kmsKeyId;
    // AWS S3 itself documents conditional writes (2024): only other services are probed.
    this.conditionalWritesMode = options.conditionalWrites ?? (this.endpoint === undefined ? 'on' : 'auto');
    if (this.conditionalWritesMode !== 'auto' && this.conditionalWritesMode !== 'on' && this.conditionalWritesMode !== 'off') {
      throw new PackferryError(ErrorCode.Usage, `conditionalWrites is auto, on or off, not ${JSON.stringify(this.conditionalWritesMode)}`);
    }
    if (this.kmsKeyId !== undefined && this.serverSideEncryption !== 'aws:kms') {
      throw new PackferryError(ErrorCode.Usage, 'kmsKeyId needs serverSideEncryption "aws:kms"');
    }
    this.description = `s3://${this.bucket}/${this.prefix}`;
    this.client = new S3Client({
      region: this.region,
      endpoint: this.endpoint,
      forcePathStyle: this.forcePathStyle,
      ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
      maxAttempts: Math.max(1, options.maxAttempts ?? 5),
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: {
        connectionTimeout: Math.min(this.requestTimeoutMs, 30_000),
        socketTimeout: this.requestTimeoutMs,
      },
    });
  }

  private fullKey(key: string): string {
    return this.prefix + checkKey(key);
  }

  private context(op: string, key: string | undefined, signal: AbortSignal | undefined): S3ErrorContext {
    return { op, bucket: this.bucket, key, endpoint: this.endpoint, region: this.region, requestTimeoutMs: this.requestTimeoutMs, signal };
  }

  /** Runs one SDK call, turning its failures into PackferryErrors. */
  private async call<T>(op: string, key: string | undefined, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
    throwIfAborted(signal);
    try {
      return await fn();
    } catch (err) {
      throw mapS3Error(err, this.context(op, key, signal));
    }
  }

  /** The object's body stream, or undefined if it is missing. */
  private async getObject(op: string, full: string, range: string | undefined, signal: AbortSignal | undefined) {
    throwIfAborted(signal);
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: full, Range: range }), { abortSignal: signal });
      return out;
    } catch (err) {
      if (isNoSuchKey(err) && !signal?.aborted) return undefined;
      throw mapS3Error(err, this.context(op, full, signal));
    }
  }

  /** Reads a response body; stops (and drops the connection) once `limit` bytes are in. */
  private async readBody(body: ResponseBody, op: string, full: string, signal: AbortSignal | undefined, sizeHint?: number, limit = Infinity): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let length = 0;
    try {
      for await (const chunk of body) {
        throwIfAborted(signal);
        chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        length += chunk.byteLength;
        if (length >= limit) {
          body.destroy?.();
          break;
        }
      }
    } catch (err) {
      body.destroy?.();
      throw mapS3Error(err, this.context(op, full, signal));
    }
    if (chunks.length === 1) return chunks[0];
    return Buffer.concat(chunks, sizeHint !== undefined && sizeHint === length ? sizeHint : length);
  }

  async get(key: string, signal?: AbortSignal): Promise<Buffer | undefined> {
    const full = this.fullKey(key);
    const out = await this.getObject('get', full, undefined, signal);
    if (out === undefined) return undefined;
    return this.readBody(out.Body as unknown as ResponseBody, 'get', full, signal, out.ContentLength);
  }

  async getRange(key: string, start: number, end: number, signal?: AbortSignal): Promise<Buffer> {
    const full = this.fullKey(key);
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
      throw new PackferryError(ErrorCode.Usage, `getRange: bad range [${start}, ${end}) of ${key}`);
    }
    if (start === end) {
      // HTTP cannot ask for no bytes; the object must still exist.
      if ((await this.head(key, signal)) === undefined) throw new PackferryError(ErrorCode.NotFound, `${this.description}: ${key} is missing`);
      return Buffer.alloc(0);
    }
    let out;
    try {
      out = await this.getObject('get range of', full, `bytes=${start}-${end - 1}`, signal);
    } catch (err) {
      if ((err as PackferryError).details?.s3Code === 'InvalidRange') {
        throw new PackferryError(ErrorCode.PackTruncated, `${this.description}: ${key} is shorter than ${end} bytes`, { cause: err });
      }
      throw err;
    }
    if (out === undefined) throw new PackferryError(ErrorCode.NotFound, `${this.description}: ${key} is missing`);
    // Where the bytes sent begin: a server may ignore the range (200, the
    // whole object) or send more than asked; take the bytes asked for.
    let sentFrom = 0;
    const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(out.ContentRange ?? '');
    if (m !== null) sentFrom = Number(m[1]);
    if (sentFrom > start) {
      (out.Body as unknown as ResponseBody).destroy?.();
      throw new PackferryError(ErrorCode.Protocol, `${this.description}: asked for ${key} from byte ${start}, got it from byte ${sentFrom}`);
    }
    const data = await this.readBody(out.Body as unknown as ResponseBody, 'get range of', full, signal, undefined, end - sentFrom);
    if (data.length < end - sentFrom) {
      throw new PackferryError(ErrorCode.PackTruncated, `${this.description}: ${key} is shorter than ${end} bytes`);
    }
    return data.subarray(start - sentFrom, end - sentFrom);
  }

  async getStream(key: string, signal?: AbortSignal): Promise<AsyncIterable<Uint8Array> | undefined> {
    const full = this.fullKey(key);
    const out = await this.getObject('get', full, undefined, signal);
    if (out === undefined) return undefined;
    const body = out.Body as unknown as ResponseBody;
    const context = (): S3ErrorContext => this.context('get', full, signal);
    return (async function* stream(): AsyncGenerator<Uint8Array> {
      let done = false;
      try {
        for await (const chunk of body) {
          throwIfAborted(signal);
          yield chunk;
        }
        done = true;
      } catch (err) {
        throw mapS3Error(err, context());
      } finally {
        if (!done) body.destroy?.();
      }
    })();
  }

  async head(key: string, signal?: AbortSignal): Promise<BlobInfo | undefined> {
    const full = this.fullKey(key);
    throwIfAborted(signal);
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: full }), { abortSignal: signal });
      return { key, size: out.ContentLength ?? 0, lastModified: out.LastModified ?? new Date(0) };
    } catch (err) {
      // A HEAD answer has no body: a missing bucket is a plain 404 too.
      if (isNoSuchKey(err) && !signal?.aborted) return undefined;
      throw mapS3Error(err, this.context('head', full, signal));
    }
  }

  private objectParams(key: string, options: PutOptions) {
    return {
      Bucket: this.bucket,
      Key: this.prefix + key,
      ContentType: options.contentType ?? contentTypeFor(key),
      StorageClass: this.storageClass as StorageClass | undefined,
      ServerSideEncryption: this.serverSideEncryption as ServerSideEncryption | undefined,
      SSEKMSKeyId: this.kmsKeyId,
    };
  }

  private async putSingle(key: string, data: Uint8Array, options: PutOptions): Promise<void> {
    const params = this.objectParams(key, options);
    await this.call('put', params.Key, options.signal, () =>
      this.client.send(new PutObjectCommand({ ...params, Body: data, ContentLength: data.length, ContentMD5: md5Base64(data) }), {
        abortSignal: options.signal,
      }),
    );
  }

  async put(key: string, body: Uint8Array | AsyncIterable<Uint8Array>, options: PutOptions = {}): Promise<void> {
    checkKey(key);
    throwIfAborted(options.signal);
    if (body instanceof Uint8Array) {
      if (options.size !== undefined && options.size !== body.length) {
        throw new PackferryError(ErrorCode.Usage, `put: the body is ${body.length} bytes, not the ${options.size} given`);
      }
      if (body.length <= this.multipartThreshold) return this.putSingle(key, body, options);
      const whole = body;
      body = (async function* one() {
        yield whole;
      })();
    }
    let partSize = this.partSize;
    if (options.size !== undefined) partSize = Math.max(partSize, Math.ceil(options.size / MAX_PARTS));
    const parts = readParts(body, partSize, options.size, options.signal);
    try {
      const first = await parts.next();
      if (first.done) throw new PackferryError(ErrorCode.Internal, 'internal error: no part from readParts');
      if (first.value.last) return await this.putSingle(key, first.value.data, options);
      await this.putMultipart(key, first.value.data, parts, options);
    } finally {
      await parts.return(undefined);
    }
  }

  private async putMultipart(key: string, firstPart: Buffer, parts: AsyncGenerator<Part>, options: PutOptions): Promise<void> {
    const { signal } = options;
    const params = this.objectParams(key, options);
    const full = params.Key;
    const created = await this.call('put (start multipart upload)', full, signal, () =>
      this.client.send(new CreateMultipartUploadCommand(params), { abortSignal: signal }),
    );
    const uploadId = created.UploadId;
    if (uploadId === undefined) throw new PackferryError(ErrorCode.Protocol, `${this.description}: no UploadId for ${key}`);

    const cancelParts = new AbortController();
    const partSignal = signal === undefined ? cancelParts.signal : AbortSignal.any([signal, cancelParts.signal]);
    const completed: CompletedPart[] = [];
    const inFlight = new Set<Promise<void>>();
    const state: { failure?: { error: unknown } } = {};
    const throwIfFailed = (): void => {
      if (state.failure !== undefined) throw state.failure.error;
    };
    const upload = (data: Buffer, partNumber: number): void => {
      const task = this.call(`put (part ${partNumber})`, full, partSignal, () =>
        this.client.send(
          new UploadPartCommand({
            Bucket: this.bucket,
            Key: full,
            UploadId: uploadId,
            PartNumber: partNumber,
            Body: data,
            ContentLength: data.length,
            ContentMD5: md5Base64(data),
          }),
          { abortSignal: partSignal },
        ),
      )
        .then((out) => {
          if (out.ETag === undefined) throw new PackferryError(ErrorCode.Protocol, `${this.description}: no ETag for part ${partNumber} of ${key}`);
          completed.push({ PartNumber: partNumber, ETag: out.ETag });
        })
        .catch((err: unknown) => {
          state.failure ??= { error: err };
          cancelParts.abort();
        })
        .finally(() => inFlight.delete(task));
      inFlight.add(task);
    };

    try {
      let partNumber = 1;
      upload(firstPart, partNumber);
      for (;;) {
        while (inFlight.size >= this.queueSize && state.failure === undefined) await Promise.race(inFlight);
        throwIfFailed();
        const next = await parts.next();
        if (next.done) break;
        if (++partNumber > MAX_PARTS) {
          throw new PackferryError(ErrorCode.LimitExceeded, `put ${key}: more than ${MAX_PARTS} parts of ${this.partSize} bytes`, {
            hint: 'give the body size (PutOptions.size) or a larger partSize',
          });
        }
        upload(next.value.data, partNumber);
      }
      await Promise.all(inFlight);
      throwIfFailed();
      completed.sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0));
      // Once every part is stored the upload is finished, even if the signal aborts now.
      await this.call('put (complete multipart upload)', full, undefined, () =>
        this.client.send(
          new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: full, UploadId: uploadId, MultipartUpload: { Parts: completed } }),
        ),
      );
    } catch (err) {
      cancelParts.abort();
      await Promise.allSettled([...inFlight]);
      await parts.return(undefined);
      try {
        await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: full, UploadId: uploadId }));
      } catch (abortErr) {
        if (err instanceof PackferryError) {
          (err.details as Record<string, unknown>).abortMultipartUploadFailed = String(abortErr);
        }
      }
      if (signal?.aborted) throw mapS3Error(err, this.context('put', full, signal));
      throw err;
    }
  }

  async delete(key: string, signal?: AbortSignal): Promise<void> {
    const full = this.fullKey(key);
    await this.call('delete', full, signal, () => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: full }), { abortSignal: signal }));
  }

  async list(prefix: string, signal?: AbortSignal): Promise<BlobInfo[]> {
    const out: BlobInfo[] = [];
    let token: string | undefined;
    const seen = new Set<string>();
    for (;;) {
      const page = await this.call('list', undefined, signal, () =>
        this.client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix + prefix, ContinuationToken: token, MaxKeys: this.listPageSize }),
          { abortSignal: signal },
        ),
      );
      for (const item of page.Contents ?? []) {
        const fullKey = item.Key;
        if (fullKey === undefined || !fullKey.startsWith(this.prefix)) continue;
        const key = fullKey.slice(this.prefix.length);
        // "Folder" markers (keys ending in '/') are not store keys.
        if (key === '' || key.endsWith('/')) continue;
        out.push({ key, size: item.Size ?? 0, lastModified: item.LastModified ?? new Date(0) });
      }
      if (!page.IsTruncated) break;
      token = page.NextContinuationToken;
      if (token === undefined || seen.has(token)) {
        throw new PackferryError(ErrorCode.Protocol, `${this.description}: listing ${prefix}: the service sent a truncated page without a new continuation token`);
      }
      seen.add(token);
    }
    return out.sort(compareKeys);
  }

  // -------------------------------------------------------------------------
  // Conditional writes.

  /** This store's compare-and-swap, when the service honours S3's conditional writes (probed once; see the header). */
  async conditionalWrites(signal?: AbortSignal, options: { probe?: boolean } = {}): Promise<ConditionalWrites | undefined> {
    if (this.conditionalWritesMode === 'off') return undefined;
    if (this.conditionalWritesMode === 'on') return this;
    const id = `${this.endpoint ?? `aws:${this.region}`}\n${this.bucket}`;
    let probe = probes.get(id);
    if (probe === undefined && options.probe === false) return undefined;
    if (probe === undefined) {
      probe = this.probeConditionalWrites(signal);
      probes.set(id, probe);
      // A probe that could not run (network, credentials) decides nothing: the next caller probes again.
      probe.catch(() => probes.delete(id));
    }
    return (await abortable(probe, signal)) ? this : undefined;
  }

  /** Whether the service refuses what S3 refuses: a second create with If-None-Match: *, and a put with a wrong If-Match. */
  private async probeConditionalWrites(signal: AbortSignal | undefined): Promise<boolean> {
    const key = `packferry/probe-conditional-writes-${randomBytes(8).toString('hex')}`;
    const body = Buffer.from('packferry conditional writes probe\n');
    const attempt = async (condition: { IfMatch?: string; IfNoneMatch?: string }): Promise<'written' | 'refused' | 'unsupported'> => {
      try {
        await this.conditionalPut(key, body, condition, { contentType: 'text/plain; charset=utf-8', signal });
        return 'written';
      } catch (err) {
        if (isPreconditionFailed(err) || isConditionalConflict(err)) return 'refused';
        if (isNotImplemented(err)) return 'unsupported';
        throw mapS3Error(err, this.context('probe conditional writes with', this.prefix + key, signal));
      }
    };
    try {
      if ((await attempt({ IfNoneMatch: '*' })) !== 'written') return false;
      if ((await attempt({ IfNoneMatch: '*' })) !== 'refused') return false;
      return (await attempt({ IfMatch: '"00000000000000000000000000000000"' })) === 'refused';
    } finally {
      await this.delete(key).catch(() => {});
    }
  }

  /** One PutObject with a condition; the SDK's error as it is. */
  private async conditionalPut(key: string, data: Uint8Array, condition: { IfMatch?: string; IfNoneMatch?: string }, options: PutOptions) {
    throwIfAborted(options.signal);
    const params = this.objectParams(key, options);
    return this.client.send(new PutObjectCommand({ ...params, ...condition, Body: data, ContentLength: data.length, ContentMD5: md5Base64(data) }), {
      abortSignal: options.signal,
    });
  }

  async getVersioned(key: string, signal?: AbortSignal): Promise<VersionedBlob | undefined> {
    const full = this.fullKey(key);
    const out = await this.getObject('get', full, undefined, signal);
    if (out === undefined) return undefined;
    const body = await this.readBody(out.Body as unknown as ResponseBody, 'get', full, signal, out.ContentLength);
    if (out.ETag === undefined) throw new PackferryError(ErrorCode.Protocol, `${this.description}: no ETag for ${key}`, { hint: 'the service does not send ETags: use --s3-conditional-writes off' });
    return { body, version: out.ETag };
  }

  async putIfVersion(key: string, body: Uint8Array, expected: string | undefined, options: PutOptions = {}): Promise<boolean> {
    const full = this.fullKey(key);
    const condition = expected === undefined ? { IfNoneMatch: '*' } : { IfMatch: expected };
    for (let tries = 1; ; tries++) {
      try {
        await this.conditionalPut(key, body, condition, options);
        return true;
      } catch (err) {
        if (options.signal?.aborted) throw mapS3Error(err, this.context('put', full, options.signal));
        const attempts = (err as SdkError).$metadata?.attempts ?? 1;
        if (isPreconditionFailed(err) || (expected !== undefined && isNoSuchKey(err))) {
          // Refused after the SDK tried again: the first try may have been written and its answer lost.
          if (attempts > 1) return this.holds(key, body, options.signal);
          return false;
        }
        if (isConditionalConflict(err)) {
          // S3: "a conflicting operation occurred during the upload": try again (the condition decides anew), then give up.
          if (tries >= CONFLICT_TRIES) return false;
          await new Promise((resolve) => setTimeout(resolve, 10 * tries + Math.random() * 20 * tries));
          continue;
        }
        throw mapS3Error(err, this.context('put', full, options.signal));
      }
    }
  }

  /** Whether the object is `body` now (a conditional put whose answer was lost landed). */
  private async holds(key: string, body: Uint8Array, signal: AbortSignal | undefined): Promise<boolean> {
    const now = await this.get(key, signal);
    return now !== undefined && Buffer.from(body.buffer, body.byteOffset, body.byteLength).equals(now);
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}

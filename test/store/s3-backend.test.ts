// The S3 backend against a real S3-compatible server process (s3rver, see
// test/support/s3-server.ts): the BlobStore conformance suite (each store on
// its own prefix of one bucket; "half done" means a pending multipart
// upload, from ListMultipartUploads), then what is S3's own: s3:// URLs,
// addressing style and endpoint from the environment, retries on 5xx and
// SlowDown and their limits, timeouts, refused connections, credentials,
// a missing bucket, storage class and encryption headers, Content-Type,
// multipart uploads cancelled by a signal or failed by the server (and
// aborted), and list pagination; S3's conditional writes: the probe and
// its cache, 'on' and 'off', a service that ignores the headers or refuses
// them (501), 409 ConditionalRequestConflict retried, an answer lost after
// the write landed, and s3rver's own answers (412, 404, 501, 409) with the
// conditional writes the test server adds. Faults come from a proxy in
// front of the server that also records every request. Two servers run:
// one with conditional writes, one without (as s3rver 3.7.1 and some
// S3-compatible services: the headers are ignored).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { DeleteObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { ErrorCode, isPackferryError, PackferryError } from '../../src/core/errors.js';
import { parseS3Url, S3BlobStore, type S3BlobStoreOptions } from '../../src/store/s3-backend.js';
import { bucketNameProblem, defaultForcePathStyle, resolveS3Endpoint } from '../../src/store/s3-url.js';
import { contentTypeFor } from '../../src/store/s3-content-type.js';
import { freePort } from '../support/sshd.js';
import {
  internalError,
  S3RVER_CREDENTIALS,
  serviceUnavailable,
  slowDown,
  startFaultProxy,
  startS3Server,
  type Fault,
  type FaultProxy,
  type S3Server,
} from '../support/s3-server.js';
import { backendConformance, oddChunks } from './backend-conformance.js';

// The SDK warns once per process that its 2027 releases need Node 22.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const BUCKET = 'packferry-test';
const MIB = 1024 * 1024;

let server: S3Server;
let proxy: FaultProxy;
/** A server that ignores conditional headers, and a proxy in front of it. */
let plain: S3Server;
let plainProxy: FaultProxy;
const stores: S3BlobStore[] = [];
let prefixes = 0;

before(async () => {
  [server, plain] = await Promise.all([startS3Server({ buckets: [BUCKET], conditionalWrites: true }), startS3Server({ buckets: [BUCKET] })]);
  [proxy, plainProxy] = await Promise.all([startFaultProxy(server.port), startFaultProxy(plain.port)]);
});

after(async () => {
  assert.ok(server === undefined || server.running(), `s3rver died during the tests:\n${server?.log()}`);
  assert.ok(plain === undefined || plain.running(), `s3rver (without conditional writes) died during the tests:\n${plain?.log()}`);
  for (const store of stores) await store.close();
  await proxy?.stop();
  await plainProxy?.stop();
  await server?.stop();
  await plain?.stop();
});

/** A store on a fresh prefix, straight to s3rver unless an endpoint is given. */
function makeStore(options: Partial<S3BlobStoreOptions> = {}): S3BlobStore {
  const store = new S3BlobStore({
    bucket: BUCKET,
    prefix: `t${++prefixes}/repo.git`,
    endpoint: server.endpoint,
    credentials: { ...S3RVER_CREDENTIALS },
    ...options,
  });
  stores.push(store);
  return store;
}

/** A store whose requests go through the fault proxy (which is cleared first). */
function proxied(options: Partial<S3BlobStoreOptions> = {}): S3BlobStore {
  proxy.clear();
  return makeStore({ endpoint: proxy.endpoint, ...options });
}

async function rejectsWith(promise: Promise<unknown>, code: ErrorCode, check?: (err: PackferryError) => void): Promise<PackferryError> {
  let caught: unknown;
  await assert.rejects(promise, (err: unknown) => {
    caught = err;
    return true;
  });
  assert.ok(isPackferryError(caught), `expected a PackferryError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  check?.(caught);
  return caught;
}

backendConformance(
  'S3 (s3rver 3.7.1 process, with conditional writes)',
  async () => {
    const store = makeStore();
    return {
      store,
      cleanup: () => store.close(),
      leftovers: async () => (await server.pendingUploads(BUCKET, store.prefix)).map((u) => u.key),
    };
  },
  { conditionalWrites: true },
);

backendConformance(
  'S3 (s3rver 3.7.1 process, without conditional writes)',
  async () => {
    const store = makeStore({ endpoint: plain.endpoint });
    return {
      store,
      cleanup: () => store.close(),
      leftovers: async () => (await plain.pendingUploads(BUCKET, store.prefix)).map((u) => u.key),
    };
  },
  { conditionalWrites: false },
);

describe('parseS3Url and endpoint settings', () => {
  it('parses s3://bucket/prefix into a bucket and a prefix ending with /', () => {
    assert.deepEqual(parseS3Url('s3://my-backups/mirrors/repo.git'), { bucket: 'my-backups', prefix: 'mirrors/repo.git/' });
    assert.deepEqual(parseS3Url('s3://my-backups/mirrors/repo.git/'), { bucket: 'my-backups', prefix: 'mirrors/repo.git/' });
    assert.deepEqual(parseS3Url('s3://my-backups'), { bucket: 'my-backups', prefix: '' });
    assert.deepEqual(parseS3Url('s3://my-backups/'), { bucket: 'my-backups', prefix: '' });
    assert.deepEqual(parseS3Url('S3://a.b-c1/x'), { bucket: 'a.b-c1', prefix: 'x/' });
    assert.deepEqual(parseS3Url('s3://bucket/my%20repo.git'), { bucket: 'bucket', prefix: 'my repo.git/' });
    assert.deepEqual(parseS3Url('s3://bucket/ü/NAME.git'), { bucket: 'bucket', prefix: 'ü/NAME.git/' });
  });

  it('rejects URLs and bucket names S3 would refuse, saying why', () => {
    const bad: [string, RegExp][] = [
      ['https://bucket/x', /not an S3 URL/],
      ['s3:/bucket/x', /not an S3 URL/],
      ['s3://bucket/x?versionId=1', /not an S3 URL/],
      ['s3://bucket/x#frag', /not an S3 URL/],
      ['s3://', /3 to 63/],
      ['s3://ab/x', /3 to 63/],
      [`s3://${'a'.repeat(64)}/x`, /3 to 63/],
      ['s3://My-Bucket/x', /lowercase/],
      ['s3://under_score/x', /lowercase/],
      ['s3://-bucket/x', /begin and end/],
      ['s3://bucket-/x', /begin and end/],
      ['s3://a..b/x', /adjacent dots/],
      ['s3://192.168.1.10/x', /IP address/],
      ['s3://xn--bucket/x', /xn--/],
      ['s3://bucket-s3alias/x', /-s3alias/],
      ['s3://bucket/a//b', /key prefix/],
      ['s3://bucket/a/../b', /key prefix/],
      ['s3://bucket/./b', /key prefix/],
      ['s3://bucket/%zz', /percent-escape/],
    ];
    for (const [url, message] of bad) {
      assert.throws(
        () => parseS3Url(url),
        (err: unknown) => isPackferryError(err, ErrorCode.InvalidUrl) && message.test(err.message) && err.hint !== undefined,
        url,
      );
    }
    assert.equal(bucketNameProblem('ok-bucket.name1'), undefined);
    assert.throws(() => new S3BlobStore({ bucket: 'Bad_Bucket' }), (err: unknown) => isPackferryError(err, ErrorCode.InvalidUrl));
  });

  it('S3BlobStore.fromUrl, description, and path-style addressing for IP addresses and localhost', () => {
    const store = S3BlobStore.fromUrl('s3://packferry-test/mirrors/NAME.git', { endpoint: 'http://127.0.0.1:9', credentials: { ...S3RVER_CREDENTIALS } });
    stores.push(store);
    assert.equal(store.bucket, 'packferry-test');
    assert.equal(store.prefix, 'mirrors/NAME.git/');
    assert.equal(store.description, 's3://packferry-test/mirrors/NAME.git/');
    assert.equal(store.forcePathStyle, true);
    assert.equal(defaultForcePathStyle('http://127.0.0.1:9000'), true);
    assert.equal(defaultForcePathStyle('http://[::1]:9000'), true);
    assert.equal(defaultForcePathStyle('http://localhost:9000'), true);
    assert.equal(defaultForcePathStyle('https://s3.eu-west-1.amazonaws.com'), false);
    assert.equal(defaultForcePathStyle('https://minio.example.com'), false);
    assert.equal(defaultForcePathStyle(undefined), false);
    assert.equal(new S3BlobStore({ bucket: 'b-1', endpoint: 'http://127.0.0.1:9', forcePathStyle: false }).forcePathStyle, false);
    assert.equal(new S3BlobStore({ bucket: 'b-1', prefix: '', env: {} }).endpoint, undefined);
    assert.equal(new S3BlobStore({ bucket: 'b-1', env: {} }).region, 'us-east-1');
    assert.equal(new S3BlobStore({ bucket: 'b-1', env: { AWS_REGION: 'eu-west-3' } }).region, 'eu-west-3');
    assert.equal(new S3BlobStore({ bucket: 'b-1', region: 'ap-south-1', env: { AWS_REGION: 'eu-west-3' } }).region, 'ap-south-1');
    assert.equal(resolveS3Endpoint(undefined, { AWS_ENDPOINT_URL: 'http://general:1', AWS_ENDPOINT_URL_S3: 'http://s3only:2' }), 'http://s3only:2');
    assert.equal(resolveS3Endpoint(undefined, { AWS_ENDPOINT_URL: 'http://general:1' }), 'http://general:1');
    assert.throws(() => resolveS3Endpoint('ftp://x', {}), (err: unknown) => isPackferryError(err, ErrorCode.InvalidUrl));
    assert.throws(() => new S3BlobStore({ bucket: 'b-1', kmsKeyId: 'k' }), (err: unknown) => isPackferryError(err, ErrorCode.Usage));
  });

  it('requests go path-style to an IP endpoint: /BUCKET/PREFIX/KEY', async () => {
    const store = proxied();
    await store.put('info/refs', Buffer.from('refs\n'));
    assert.deepEqual(await store.get('info/refs'), Buffer.from('refs\n'));
    const put = proxy.requests.find((r) => r.method === 'PUT');
    assert.ok(put !== undefined);
    assert.ok(put.url.startsWith(`/${BUCKET}/${store.prefix}info/refs`), put.url);
    assert.equal(put.headers.host, `127.0.0.1:${proxy.port}`, 'the bucket is not in the host name');
  });

  it('honours AWS_ENDPOINT_URL_S3 from the environment when no endpoint is given', async () => {
    const saved = process.env.AWS_ENDPOINT_URL_S3;
    process.env.AWS_ENDPOINT_URL_S3 = proxy.endpoint;
    try {
      proxy.clear();
      const store = new S3BlobStore({ bucket: BUCKET, prefix: `env-${++prefixes}`, credentials: { ...S3RVER_CREDENTIALS } });
      stores.push(store);
      assert.equal(store.endpoint, proxy.endpoint);
      assert.equal(store.forcePathStyle, true);
      await store.put('HEAD', Buffer.from('ref: refs/heads/main\n'));
      assert.deepEqual(await store.get('HEAD'), Buffer.from('ref: refs/heads/main\n'));
      assert.equal(proxy.count('PUT'), 1, 'the put went to the endpoint from the environment');
      assert.equal(proxy.count('GET'), 1);
    } finally {
      if (saved === undefined) delete process.env.AWS_ENDPOINT_URL_S3;
      else process.env.AWS_ENDPOINT_URL_S3 = saved;
    }
  });
});

describe('retries, timeouts and errors', () => {
  it('retries SlowDown (503) and then succeeds', async () => {
    const store = proxied();
    proxy.inject(slowDown, { count: 2, method: 'PUT' });
    await store.put('objects/info/packs', Buffer.from('P pack-1.pack\n'));
    assert.equal(proxy.count('PUT'), 3, 'two SlowDown answers, then the stored one');
    assert.deepEqual(proxy.requests.map((r) => r.status), [503, 503, 200]);
    assert.deepEqual(await store.get('objects/info/packs'), Buffer.from('P pack-1.pack\n'));
  });

  it('retries 500 and 503 on reads, on list and on multipart parts', async () => {
    const store = proxied();
    await store.put('a', Buffer.from('A'));
    proxy.clear();
    proxy.inject(internalError, { count: 1, method: 'GET' });
    proxy.inject(serviceUnavailable, { count: 1, method: 'GET' });
    assert.deepEqual(await store.get('a'), Buffer.from('A'));
    assert.equal(proxy.count('GET'), 3);
    proxy.clear();
    proxy.inject(internalError, { count: 2, method: 'GET' });
    assert.deepEqual((await store.list('')).map((i) => i.key), ['a']);
    assert.equal(proxy.count('GET'), 3);
    // The second part of a multipart upload fails twice before it is stored.
    proxy.clear();
    proxy.inject(internalError, { count: 2, method: 'PUT', match: (r) => r.url.includes('partNumber=2') });
    const data = randomBytes(17 * MIB);
    await store.put('objects/pack/pack-retry.pack', oddChunks(data));
    assert.equal(proxy.requests.filter((r) => r.url.includes('partNumber=2')).length, 3);
    assert.equal(proxy.requests.filter((r) => r.url.includes('partNumber=')).length, 5, 'three parts, one retried twice');
    assert.ok((await store.get('objects/pack/pack-retry.pack'))?.equals(data));
  });

  it('gives up after maxAttempts with a clear HTTP status error naming SlowDown', async () => {
    const store = proxied({ maxAttempts: 2 });
    proxy.inject(slowDown, { count: 5, method: 'PUT' });
    await rejectsWith(store.put('x', Buffer.from('x')), ErrorCode.HttpStatus, (err) => {
      assert.match(err.message, /503 SlowDown after 2 attempts/);
      assert.match(err.message, new RegExp(`s3://${BUCKET}/${store.prefix}x`));
      assert.match(err.hint ?? '', /throttling/);
      assert.equal(err.details.s3Code, 'SlowDown');
    });
    assert.equal(proxy.count('PUT'), 2);
  });

  it('a server that does not answer: ERR_TRANSPORT_TIMEOUT after the retries', async () => {
    const store = proxied({ requestTimeoutMs: 300, maxAttempts: 2 });
    proxy.inject({ kind: 'hang' }, { count: 2, method: 'GET' });
    const t0 = Date.now();
    await rejectsWith(store.get('whatever'), ErrorCode.TransportTimeout, (err) => {
      assert.match(err.message, /no answer from http:\/\/127\.0\.0\.1:\d+ within 300 ms after 2 attempts/);
      assert.match(err.hint ?? '', /requestTimeoutMs/);
    });
    assert.equal(proxy.count('GET'), 2);
    assert.ok(Date.now() - t0 < 5000, 'gave up promptly');
    // A slow answer inside the limit is fine.
    await store.put('slow', Buffer.from('s'));
    proxy.inject({ kind: 'delay', ms: 100 }, { method: 'GET' });
    assert.deepEqual(await store.get('slow'), Buffer.from('s'));
  });

  it('a connection dropped without an answer is retried', async () => {
    const store = proxied();
    await store.put('r', Buffer.from('r'));
    proxy.inject({ kind: 'reset' }, { count: 1, method: 'GET' });
    assert.deepEqual(await store.get('r'), Buffer.from('r'));
    assert.equal(proxy.count('GET'), 2);
    // Dropped on every try: ERR_TRANSPORT_INTERRUPTED, not a timeout.
    const once = proxied({ maxAttempts: 2 });
    proxy.inject({ kind: 'reset' }, { count: 2, method: 'GET' });
    await rejectsWith(once.get('r'), ErrorCode.TransportInterrupted, (err) => assert.match(err.message, /dropped \(ECONNRESET\) after 2 attempts/));
  });

  it('nothing listening: ERR_TRANSPORT_CONNECT naming the endpoint', async () => {
    const port = await freePort();
    const store = makeStore({ endpoint: `http://127.0.0.1:${port}`, maxAttempts: 2 });
    await rejectsWith(store.get('x'), ErrorCode.TransportConnect, (err) => {
      assert.match(err.message, new RegExp(`cannot reach http://127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\)`));
      assert.match(err.hint ?? '', /AWS_ENDPOINT_URL_S3/);
    });
  });

  it('a missing bucket: ERR_NOT_FOUND naming the bucket, from get, put and list', async () => {
    const store = makeStore({ bucket: 'no-such-bucket' });
    for (const op of [() => store.get('x'), () => store.put('x', Buffer.from('x')), () => store.list(''), () => store.getStream('x')]) {
      await rejectsWith(op(), ErrorCode.NotFound, (err) => {
        assert.match(err.message, /S3 bucket "no-such-bucket" does not exist/);
        assert.match(err.hint ?? '', /aws s3 mb s3:\/\/no-such-bucket/);
        assert.equal(err.details.bucket, 'no-such-bucket');
      });
    }
  });

  it('credentials the server does not know: ERR_TRANSPORT_AUTH with a hint naming the variables', async () => {
    const store = makeStore({ credentials: { accessKeyId: 'NOT-A-KEY', secretAccessKey: 'x' } });
    await rejectsWith(store.get('x'), ErrorCode.TransportAuth, (err) => {
      assert.match(err.message, /InvalidAccessKeyId, HTTP 403/);
      assert.match(err.hint ?? '', /AWS_ACCESS_KEY_ID/);
      assert.match(err.hint ?? '', /AWS_PROFILE/);
    });
    // s3rver does not check SigV4 signatures; S3's answers come from the proxy.
    const viaProxy = proxied();
    proxy.inject({ kind: 'error', status: 403, code: 'SignatureDoesNotMatch', message: 'The request signature we calculated does not match' }, { method: 'GET' });
    await rejectsWith(viaProxy.get('x'), ErrorCode.TransportAuth, (err) => assert.match(err.hint ?? '', /AWS_SECRET_ACCESS_KEY/));
    proxy.inject({ kind: 'error', status: 403, code: 'AccessDenied', message: 'Access Denied' }, { method: 'PUT' });
    await rejectsWith(viaProxy.put('x', Buffer.from('x')), ErrorCode.TransportAuth, (err) => assert.match(err.hint ?? '', /s3:PutObject/));
    proxy.inject({ kind: 'error', status: 403, code: 'AccessDenied', message: 'Access Denied' }, { method: 'GET' });
    await rejectsWith(viaProxy.list(''), ErrorCode.TransportAuth);
    assert.equal(proxy.count(), 3, 'auth failures are not retried');
  });

  it('without explicit credentials, the SDK chain takes them from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY', async () => {
    const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY, profile: process.env.AWS_PROFILE };
    const restore = (name: string, value: string | undefined): void => {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    };
    try {
      delete process.env.AWS_PROFILE;
      process.env.AWS_ACCESS_KEY_ID = S3RVER_CREDENTIALS.accessKeyId;
      process.env.AWS_SECRET_ACCESS_KEY = S3RVER_CREDENTIALS.secretAccessKey;
      const store = makeStore({ credentials: undefined });
      await store.put('from-env', Buffer.from('env'));
      assert.deepEqual(await store.get('from-env'), Buffer.from('env'));
      process.env.AWS_ACCESS_KEY_ID = 'UNKNOWN-KEY';
      const denied = makeStore({ credentials: undefined });
      await rejectsWith(denied.get('from-env'), ErrorCode.TransportAuth, (err) => assert.equal(err.details.s3Code, 'InvalidAccessKeyId'));
    } finally {
      restore('AWS_ACCESS_KEY_ID', saved.id);
      restore('AWS_SECRET_ACCESS_KEY', saved.secret);
      restore('AWS_PROFILE', saved.profile);
    }
  });

  it('an aborted signal stops a read with ERR_ABORTED', async () => {
    const store = proxied();
    await store.put('k', Buffer.from('k'));
    const controller = new AbortController();
    proxy.inject({ kind: 'hang' }, { method: 'GET' });
    setTimeout(() => controller.abort(new Error('user stop')), 100);
    await rejectsWith(store.get('k', controller.signal), ErrorCode.Aborted);
    await rejectsWith(store.head('k', controller.signal), ErrorCode.Aborted);
  });
});

describe('uploads', () => {
  it('sends the storage class and server-side encryption headers on single and multipart uploads', async () => {
    const store = proxied({ storageClass: 'STANDARD_IA', serverSideEncryption: 'aws:kms', kmsKeyId: 'alias/packferry' });
    await store.put('small', Buffer.from('small'));
    await store.put('objects/pack/pack-sse.pack', oddChunks(randomBytes(9 * MIB)));
    const put = proxy.requests.find((r) => r.method === 'PUT' && !r.url.includes('partNumber'));
    const create = proxy.requests.find((r) => r.method === 'POST' && r.url.includes('uploads'));
    for (const req of [put, create]) {
      assert.ok(req !== undefined);
      assert.equal(req.headers['x-amz-storage-class'], 'STANDARD_IA');
      assert.equal(req.headers['x-amz-server-side-encryption'], 'aws:kms');
      assert.equal(req.headers['x-amz-server-side-encryption-aws-kms-key-id'], 'alias/packferry');
    }
    const head = await server.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `${store.prefix}small` }));
    assert.equal(head.StorageClass, 'STANDARD_IA');
    const aes = proxied({ serverSideEncryption: 'AES256' });
    await aes.put('x', Buffer.from('x'));
    assert.equal(proxy.requests[0].headers['x-amz-server-side-encryption'], 'AES256');
    assert.equal(proxy.requests[0].headers['x-amz-storage-class'], undefined);
  });

  it('single puts carry Content-MD5 and Content-Type; small streams go as one PutObject, large ones in 8 MiB parts', async () => {
    const store = proxied();
    await store.put('info/refs', oddChunks(Buffer.from('abc\trefs/heads/main\n')));
    await store.put('objects/pack/pack-1.pack', oddChunks(randomBytes(MIB)));
    assert.deepEqual(proxy.requests.map((r) => r.method), ['PUT', 'PUT'], 'no multipart upload for small streams');
    assert.ok(proxy.requests.every((r) => typeof r.headers['content-md5'] === 'string'));
    assert.equal(proxy.requests[0].headers['content-type'], 'text/plain; charset=utf-8');
    assert.equal(proxy.requests[1].headers['content-type'], 'application/x-git-packed-objects');
    assert.equal(proxy.requests[0].headers['content-encoding'], undefined, 'no aws-chunked body');
    proxy.clear();
    const data = randomBytes(8 * MIB * 2 + 1);
    await store.put('objects/pack/pack-2.pack', oddChunks(data), { contentType: 'application/x-custom' });
    const partNumber = (url: string): number => Number(/partNumber=(\d+)/.exec(url)?.[1]);
    const parts = proxy.requests.filter((r) => r.url.includes('partNumber=')).sort((a, b) => partNumber(a.url) - partNumber(b.url));
    assert.deepEqual(parts.map((r) => [partNumber(r.url), Number(r.headers['content-length'])]), [[1, 8 * MIB], [2, 8 * MIB], [3, 1]]);
    assert.ok(parts.every((r) => typeof r.headers['content-md5'] === 'string'));
    assert.equal(proxy.requests.find((r) => r.method === 'POST' && r.url.includes('uploads'))?.headers['content-type'], 'application/x-custom');
    const head = await server.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `${store.prefix}info/refs` }));
    assert.equal(head.ContentType, 'text/plain; charset=utf-8');
    assert.equal(contentTypeFor('objects/pack/pack-1.idx'), 'application/x-git-packed-objects-toc');
    assert.equal(contentTypeFor('objects/info/packs'), 'text/plain; charset=utf-8');
    assert.equal(contentTypeFor('HEAD'), 'text/plain; charset=utf-8');
    assert.equal(contentTypeFor('lfs/objects/ab/cd/abcdef'), 'application/octet-stream');
  });

  it('a body whose length differs from the size given is refused, and nothing is stored', async () => {
    const store = makeStore();
    await rejectsWith(store.put('k', Buffer.from('abc'), { size: 4 }), ErrorCode.Usage);
    await rejectsWith(store.put('k', oddChunks(Buffer.from('abc')), { size: 4 }), ErrorCode.Usage);
    await rejectsWith(store.put('k', oddChunks(randomBytes(9 * MIB)), { size: 8 * MIB }), ErrorCode.Usage);
    await rejectsWith(store.put('k', oddChunks(randomBytes(9 * MIB)), { size: 10 * MIB }), ErrorCode.Usage);
    assert.equal(await store.head('k'), undefined);
    assert.deepEqual(await server.pendingUploads(BUCKET, store.prefix), []);
  });

  it('a multipart upload cancelled by its signal is aborted before put rejects', async () => {
    const store = proxied();
    await store.put('objects/pack/pack-a.pack', Buffer.from('old'));
    const controller = new AbortController();
    let pulled = 0;
    async function* endless(): AsyncGenerator<Uint8Array> {
      for (;;) {
        const chunk = randomBytes(MIB);
        pulled += chunk.length;
        if (pulled === 20 * MIB) controller.abort(new Error('user stop'));
        yield chunk;
        await new Promise((r) => setImmediate(r));
      }
    }
    await rejectsWith(store.put('objects/pack/pack-a.pack', endless(), { signal: controller.signal }), ErrorCode.Aborted);
    assert.ok(pulled <= 21 * MIB, `the body stops being read once aborted (read ${pulled} bytes)`);
    const aborts = proxy.requests.filter((r) => r.method === 'DELETE');
    assert.ok(aborts.length >= 1 && aborts.every((r) => /uploadId=/.test(r.url)), 'AbortMultipartUpload was sent');
    assert.equal(aborts.at(-1)?.status, 204, `AbortMultipartUpload succeeded (statuses ${aborts.map((r) => r.status).join(', ')})`);
    assert.deepEqual(await server.pendingUploads(BUCKET, store.prefix), []);
    assert.deepEqual(await store.get('objects/pack/pack-a.pack'), Buffer.from('old'));
  });

  it('a part the server keeps failing ends the upload: the rest of the body is not read, the upload is aborted', async () => {
    const store = proxied({ maxAttempts: 2, queueSize: 2 });
    let pulled = 0;
    async function* body(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 200; i++) {
        pulled += MIB;
        yield randomBytes(MIB);
      }
    }
    proxy.inject(internalError, { count: 2, method: 'PUT', match: (r) => r.url.includes('partNumber=1&') || r.url.endsWith('partNumber=1') });
    await rejectsWith(store.put('objects/pack/pack-b.pack', body()), ErrorCode.HttpStatus, (err) => {
      assert.match(err.message, /part 1/);
      assert.match(err.message, /500 InternalError after 2 attempts/);
    });
    assert.ok(pulled < 100 * MIB, `stopped reading the body after the failure (read ${pulled / MIB} MiB of 200)`);
    assert.equal(proxy.count('DELETE'), 1);
    assert.deepEqual(await server.pendingUploads(BUCKET, store.prefix), []);
    assert.equal(await store.head('objects/pack/pack-b.pack'), undefined);
  });

  it('memory stays bounded: with parts held up, the body is read only about queueSize parts ahead', async () => {
    const store = proxied({ queueSize: 2 });
    let pulled = 0;
    async function* body(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 40; i++) {
        pulled += MIB;
        yield randomBytes(MIB);
      }
    }
    proxy.inject({ kind: 'delay', ms: 1200 }, { count: 2, method: 'PUT', match: (r) => r.url.includes('partNumber=') });
    const done = store.put('objects/pack/pack-slow.pack', body());
    await new Promise((r) => setTimeout(r, 700));
    // Two parts in flight, the next one being filled: (queueSize + 1) x 8 MiB at most.
    assert.ok(pulled <= 3 * 8 * MIB, `read ${pulled / MIB} MiB ahead while two parts were held up`);
    assert.ok(pulled >= 2 * 8 * MIB, `read ${pulled / MIB} MiB: both parts are in flight`);
    await done;
    assert.equal(pulled, 40 * MIB);
    assert.equal((await store.head('objects/pack/pack-slow.pack'))?.size, 40 * MIB);
  });

  it('bytes in memory over multipartThreshold go in parts too', async () => {
    const store = proxied({ multipartThreshold: 8 * MIB });
    assert.equal(makeStore().multipartThreshold, 64 * MIB, 'the default');
    const data = randomBytes(16 * MIB + 3);
    await store.put('objects/pack/pack-mem.pack', data);
    assert.equal(proxy.requests.filter((r) => r.url.includes('partNumber=')).length, 3);
    assert.ok((await store.get('objects/pack/pack-mem.pack'))?.equals(data));
  });

  it('list pages through ListObjectsV2 with continuation tokens', async () => {
    const store = proxied({ listPageSize: 3 });
    const keys = ['a', 'b/1', 'b/2', 'c', 'd e', 'f', 'g'];
    for (const key of keys) await store.put(key, Buffer.from(key));
    proxy.clear();
    assert.deepEqual((await store.list('')).map((i) => i.key), keys);
    const lists = proxy.requests.filter((r) => r.method === 'GET');
    assert.equal(lists.length, 3, '7 keys in pages of 3');
    assert.ok(lists.every((r) => r.url.includes('list-type=2') && r.url.includes('max-keys=3')));
    assert.ok(lists.slice(1).every((r) => r.url.includes('continuation-token=')));
  });
});

describe('conditional writes', () => {
  /** A bucket no store of this process has probed yet (the probe is remembered per endpoint and bucket). */
  let buckets = 0;
  const freshBucket = async (on: S3Server): Promise<string> => {
    const name = `cw-probe-${++buckets}-${randomBytes(3).toString('hex')}`;
    await on.createBucket(name);
    return name;
  };
  const conditionHeaders = (fault: FaultProxy) =>
    fault.requests.filter((r) => r.method === 'PUT').map((r) => [r.headers['if-none-match'] ?? null, r.headers['if-match'] ?? null]);

  it('auto probes once per endpoint and bucket: If-None-Match twice, a wrong If-Match, then the probe object is deleted', async () => {
    const bucket = await freshBucket(server);
    const store = proxied({ bucket });
    const ability = await store.conditionalWrites();
    assert.ok(ability !== undefined, 'a service with conditional writes is found to have them');
    assert.deepEqual(conditionHeaders(proxy), [['*', null], ['*', null], [null, '"00000000000000000000000000000000"']]);
    assert.deepEqual(proxy.requests.map((r) => [r.method, r.status]), [['PUT', 200], ['PUT', 412], ['PUT', 412], ['DELETE', 204]]);
    assert.ok(proxy.requests.every((r) => r.url.includes(`/${store.prefix}packferry/probe-conditional-writes-`)), 'the probe object is under the store prefix');
    assert.deepEqual(await store.list(''), [], 'the probe object is gone');
    // Another store on the same endpoint and bucket, another prefix: no probe again.
    proxy.clear();
    const other = makeStore({ endpoint: proxy.endpoint, bucket });
    assert.ok((await other.conditionalWrites()) !== undefined);
    assert.equal(proxy.count(), 0, 'the answer is remembered');
  });

  it('auto on a service that ignores the headers: undefined (the second create was accepted), and remembered', async () => {
    plainProxy.clear();
    const bucket = await freshBucket(plain);
    const store = makeStore({ endpoint: plainProxy.endpoint, bucket });
    assert.equal(await store.conditionalWrites(), undefined);
    assert.deepEqual(plainProxy.requests.map((r) => [r.method, r.status]), [['PUT', 200], ['PUT', 200], ['DELETE', 204]], 'the second create was not refused: no need to go on');
    assert.deepEqual(await store.list(''), []);
    plainProxy.clear();
    assert.equal(await makeStore({ endpoint: plainProxy.endpoint, bucket }).conditionalWrites(), undefined);
    assert.equal(plainProxy.count(), 0);
  });

  it("'on' trusts the service without a probe; against one that ignores the headers nothing is enforced, which is what auto's probe finds out", async () => {
    plainProxy.clear();
    const store = makeStore({ endpoint: plainProxy.endpoint, conditionalWrites: 'on' });
    const ability = await store.conditionalWrites();
    assert.ok(ability !== undefined);
    assert.equal(plainProxy.count(), 0, 'no probe');
    assert.equal(await ability.putIfVersion('doc', Buffer.from('one'), undefined), true);
    // The service accepts the second create: the guarantee does not hold there.
    assert.equal(await ability.putIfVersion('doc', Buffer.from('two'), undefined), true);
    assert.deepEqual(conditionHeaders(plainProxy), [['*', null], ['*', null]], 'the headers were sent');
    // The same requests against the service that honours them.
    const honest = makeStore({ conditionalWrites: 'on' });
    const c = await honest.conditionalWrites();
    assert.ok(c !== undefined);
    assert.equal(await c.putIfVersion('doc', Buffer.from('one'), undefined), true);
    assert.equal(await c.putIfVersion('doc', Buffer.from('two'), undefined), false);
  });

  it("'off' never uses them and sends nothing; a bad mode is a usage error", async () => {
    const store = proxied({ conditionalWrites: 'off' });
    assert.equal(await store.conditionalWrites(), undefined);
    assert.equal(proxy.count(), 0);
    assert.throws(() => makeStore({ conditionalWrites: 'maybe' as never }), (err: unknown) => isPackferryError(err, ErrorCode.Usage));
  });

  it('a service answering 501 NotImplemented to the headers has none; a probe that cannot run is not remembered', async () => {
    const bucket = await freshBucket(server);
    const store = proxied({ bucket });
    proxy.inject({ kind: 'error', status: 501, code: 'NotImplemented', message: 'A header you provided implies functionality that is not implemented' }, { method: 'PUT' });
    assert.equal(await store.conditionalWrites(), undefined);
    const refused = await freshBucket(server);
    const denied = proxied({ bucket: refused });
    proxy.inject({ kind: 'error', status: 403, code: 'AccessDenied', message: 'Access Denied' }, { method: 'PUT' });
    await rejectsWith(denied.conditionalWrites(), ErrorCode.TransportAuth, (err) => assert.match(err.message, /probe conditional writes/));
    proxy.clear();
    assert.ok((await denied.conditionalWrites()) !== undefined, 'probed again, and found');
    assert.ok(proxy.count('PUT') >= 3);
  });

  it('409 ConditionalRequestConflict is tried again; after four, the write reports that another came first', async () => {
    const store = proxied({ conditionalWrites: 'on' });
    const c = await store.conditionalWrites();
    assert.ok(c !== undefined);
    const conflict: Fault = { kind: 'error', status: 409, code: 'ConditionalRequestConflict', message: 'A conflicting operation occurred. If using PutObject you can retry the request.' };
    proxy.inject(conflict, { method: 'PUT' });
    assert.equal(await c.putIfVersion('doc', Buffer.from('one'), undefined), true);
    assert.equal(proxy.count('PUT'), 2);
    const v = await c.getVersioned('doc');
    assert.ok(v !== undefined);
    proxy.clear();
    proxy.inject(conflict, { method: 'PUT', count: 4 });
    assert.equal(await c.putIfVersion('doc', Buffer.from('two'), v.version), false);
    assert.equal(proxy.count('PUT'), 4);
    assert.deepEqual(await store.get('doc'), Buffer.from('one'), 'nothing written');
    assert.equal(await c.putIfVersion('doc', Buffer.from('two'), v.version), true, 'the same write once the conflict is over');
  });

  it('a conditional put whose answer is lost after it landed (the SDK tries again and gets 412) reports true; a real loss reports false', async () => {
    const store = proxied({ conditionalWrites: 'on' });
    const c = await store.conditionalWrites();
    assert.ok(c !== undefined);
    proxy.inject({ kind: 'lose-answer' }, { method: 'PUT' });
    assert.equal(await c.putIfVersion('doc', Buffer.from('mine'), undefined), true);
    assert.deepEqual(proxy.requests.filter((r) => r.method === 'PUT').map((r) => r.status), [200, 412], 'written, answer lost, tried again: refused');
    const v = await c.getVersioned('doc');
    assert.ok(v !== undefined);
    proxy.clear();
    proxy.inject({ kind: 'lose-answer' }, { method: 'PUT' });
    assert.equal(await c.putIfVersion('doc', Buffer.from('update'), v.version), true);
    assert.deepEqual(await store.get('doc'), Buffer.from('update'));
    // Another writer's different body under the same lost-answer shape is not mistaken for ours.
    const stale = await c.getVersioned('doc');
    assert.ok(stale !== undefined);
    await store.put('doc', Buffer.from('theirs'));
    assert.equal(await c.putIfVersion('doc', Buffer.from('late'), stale.version), false);
  });

  it("s3rver's conditional writes answer as S3: 412 PreconditionFailed naming the condition, 404 for If-Match of a missing key, 501 for If-None-Match with an ETag", async () => {
    const client = server.client;
    const key = `raw-${randomBytes(4).toString('hex')}`;
    const put = (condition: { IfMatch?: string; IfNoneMatch?: string }, body = 'x') =>
      client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: Buffer.from(body), ...condition }));
    const failure = async (p: Promise<unknown>): Promise<{ status?: number; code?: string; condition?: unknown }> => {
      try {
        await p;
      } catch (err) {
        const e = err as { name?: string; Code?: string; Condition?: unknown; $metadata?: { httpStatusCode?: number } };
        return { status: e.$metadata?.httpStatusCode, code: e.Code ?? e.name, condition: e.Condition };
      }
      return assert.fail('the put was not refused');
    };
    assert.deepEqual(await failure(put({ IfMatch: '"0123"' })), { status: 404, code: 'NoSuchKey', condition: undefined });
    const created = await put({ IfNoneMatch: '*' }, 'first');
    assert.ok(created.ETag);
    assert.deepEqual(await failure(put({ IfNoneMatch: '*' })), { status: 412, code: 'PreconditionFailed', condition: 'If-None-Match' });
    assert.deepEqual(await failure(put({ IfMatch: '"0123"' })), { status: 412, code: 'PreconditionFailed', condition: 'If-Match' });
    assert.deepEqual(await failure(put({ IfNoneMatch: created.ETag })), { status: 501, code: 'NotImplemented', condition: undefined });
    const updated = await put({ IfMatch: created.ETag }, 'second');
    assert.notEqual(updated.ETag, created.ETag);
    const head = await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
    assert.equal(head.ETag, updated.ETag);
    assert.equal(head.ContentLength, 6);
    // Without the option the server ignores them.
    const ignored = await plain.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: Buffer.from('a'), IfMatch: '"0123"' }));
    assert.ok(ignored.ETag);
    await plain.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: Buffer.from('b'), IfNoneMatch: '*' }));
  });

  it("s3rver: a delete that succeeds while a conditional put uploads makes the put fail with 409 ConditionalRequestConflict", async () => {
    const client = server.client;
    const key = `raw-409-${randomBytes(4).toString('hex')}`;
    const created = await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: Buffer.from('base') }));
    const body = new PassThrough();
    const uploading = client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body, ContentLength: 10, IfMatch: created.ETag }));
    uploading.catch(() => {});
    body.write('hello');
    await sleep(300); // the request is at the server, its body half sent
    await client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: key }));
    body.end('world');
    await assert.rejects(uploading, (err: { name?: string; $metadata?: { httpStatusCode?: number } }) => {
      assert.equal(err.$metadata?.httpStatusCode, 409);
      assert.equal(err.name, 'ConditionalRequestConflict');
      return true;
    });
    await assert.rejects(client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key })), (err: { $metadata?: { httpStatusCode?: number } }) => err.$metadata?.httpStatusCode === 404);
  });
});

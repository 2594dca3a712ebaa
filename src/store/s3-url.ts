// Where an S3 store is: `s3://BUCKET/PREFIX` URLs, bucket-name rules, and the
// endpoint and addressing style an S3 client should use. Pure: the
// environment is passed in.
//
// Bucket names follow the rules for general purpose buckets
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html),
// which also keep a name usable as a DNS label for virtual-hosted addressing.
import { isIP } from 'node:net';
import { PackferryError, ErrorCode } from '../core/errors.js';

export interface S3Location {
  bucket: string;
  /** '' (the bucket's root) or '/'-separated segments ending with '/'. */
  prefix: string;
}

const URL_HINT = 'write it as s3://BUCKET/PREFIX, e.g. s3://my-backups/mirrors/repo.git';

/** Why `name` is not a valid S3 bucket name, or undefined if it is one. */
export function bucketNameProblem(name: string): string | undefined {
  if (name.length < 3 || name.length > 63) return 'must be 3 to 63 characters long';
  if (!/^[a-z0-9.-]+$/.test(name)) return 'may hold only lowercase letters, digits, dots and hyphens';
  if (!/^[a-z0-9]/.test(name) || !/[a-z0-9]$/.test(name)) return 'must begin and end with a letter or a digit';
  if (name.includes('..')) return 'must not hold two adjacent dots';
  if (/^\d+\.\d+\.\d+\.\d+$/.test(name)) return 'must not look like an IP address';
  for (const reserved of ['xn--', 'sthree-', 'amzn-s3-demo-']) {
    if (name.startsWith(reserved)) return `must not begin with "${reserved}"`;
  }
  for (const reserved of ['-s3alias', '--ol-s3', '.mrap', '--x-s3', '--table-s3']) {
    if (name.endsWith(reserved)) return `must not end with "${reserved}"`;
  }
  return undefined;
}

export function checkBucketName(name: string): string {
  const problem = bucketNameProblem(name);
  if (problem !== undefined) {
    throw new PackferryError(ErrorCode.InvalidUrl, `bad S3 bucket name ${JSON.stringify(name)}: it ${problem}`, {
      hint: 'see the S3 bucket naming rules',
      details: { bucket: name },
    });
  }
  return name;
}

/**
 * A key prefix as the store uses it: '' or segments (no empty, '.' or '..'
 * ones, no leading '/') followed by '/'. A missing trailing '/' is added.
 */
export function normalizePrefix(prefix: string): string {
  if (prefix === '' || prefix === '/') return '';
  const trimmed = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  for (const part of trimmed.split('/')) {
    if (part === '' || part === '.' || part === '..' || part.includes('\\') || part.includes('\0')) {
      throw new PackferryError(ErrorCode.InvalidUrl, `bad S3 key prefix ${JSON.stringify(prefix)}`, {
        hint: "a prefix is '/'-separated names without empty, '.' or '..' parts, e.g. mirrors/repo.git/",
      });
    }
  }
  return `${trimmed}/`;
}

/** Parses `s3://BUCKET[/PREFIX]`; percent-escapes in the prefix are decoded. */
export function parseS3Url(url: string): S3Location {
  const m = /^s3:\/\/([^/?#]*)(\/[^?#]*)?$/i.exec(url);
  if (m === null) {
    throw new PackferryError(ErrorCode.InvalidUrl, `not an S3 URL: ${JSON.stringify(url)}`, { hint: URL_HINT });
  }
  const bucket = checkBucketName(m[1]);
  let path = m[2] ?? '';
  try {
    path = decodeURIComponent(path);
  } catch (err) {
    throw new PackferryError(ErrorCode.InvalidUrl, `bad percent-escape in S3 URL ${JSON.stringify(url)}`, { cause: err, hint: URL_HINT });
  }
  try {
    return { bucket, prefix: normalizePrefix(path.replace(/^\//, '')) };
  } catch (err) {
    throw new PackferryError(ErrorCode.InvalidUrl, `bad key prefix in S3 URL ${JSON.stringify(url)}`, { cause: err, hint: URL_HINT });
  }
}

export function formatS3Url(location: S3Location): string {
  return `s3://${location.bucket}/${location.prefix}`;
}

/**
 * The endpoint to use: the explicit one, else the SDK's standard variables
 * AWS_ENDPOINT_URL_S3 and AWS_ENDPOINT_URL; undefined means AWS itself.
 */
export function resolveS3Endpoint(explicit: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  const endpoint = explicit ?? (env.AWS_ENDPOINT_URL_S3 || undefined) ?? (env.AWS_ENDPOINT_URL || undefined);
  if (endpoint === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(endpoint);
  } catch (err) {
    throw new PackferryError(ErrorCode.InvalidUrl, `bad S3 endpoint URL ${JSON.stringify(endpoint)}`, {
      cause: err,
      hint: 'an endpoint is an http(s) URL such as http://127.0.0.1:9000 or https://s3.example.com',
    });
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new PackferryError(ErrorCode.InvalidUrl, `bad S3 endpoint URL ${JSON.stringify(endpoint)}: not http(s)`, {
      hint: 'an endpoint is an http(s) URL such as http://127.0.0.1:9000 or https://s3.example.com',
    });
  }
  return endpoint;
}

/**
 * Path-style addressing (`http://host/BUCKET/key`) where virtual-hosted
 * style (`http://BUCKET.host/key`) cannot work: an IP address or localhost.
 */
export function defaultForcePathStyle(endpoint: string | undefined): boolean {
  if (endpoint === undefined) return false;
  const host = new URL(endpoint).hostname.replace(/^\[|\]$/g, '');
  return isIP(host) !== 0 || host === 'localhost' || host.endsWith('.localhost');
}

/** The region: explicit, else AWS_REGION, AWS_DEFAULT_REGION, else us-east-1. */
export function resolveS3Region(explicit: string | undefined, env: NodeJS.ProcessEnv): string {
  return explicit || env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1';
}

// One error base class for all of packferry, with stable codes (as undici does).
// Library code throws; the edge (CLI, HTTP, pkt-line ERR) decides how to report.

/**
 * Stable error codes. Scripts and tests match on these, so a code is never
 * renamed or reused once released; add new ones instead.
 */
export const ErrorCode = {
  /** A broken invariant inside packferry: a bug, never the input's fault. */
  Internal: 'ERR_INTERNAL',
  /** Bad arguments to a command or function. */
  Usage: 'ERR_USAGE',
  /** The operation was cancelled through its AbortSignal. */
  Aborted: 'ERR_ABORTED',
  NotFound: 'ERR_NOT_FOUND',
  /** A named limit (see limits.ts) was exceeded. */
  LimitExceeded: 'ERR_LIMIT_EXCEEDED',

  // core: object ids and objects
  InvalidObjectId: 'ERR_INVALID_OBJECT_ID',
  InvalidObject: 'ERR_INVALID_OBJECT',
  InvalidObjectType: 'ERR_INVALID_OBJECT_TYPE',
  HashMismatch: 'ERR_HASH_MISMATCH',
  /** Objects fail Git's fsck checks (receive.fsckObjects): a push or mirror was refused, or a store holds such objects. */
  FsckFailed: 'ERR_FSCK',

  // protocol: pkt-line and side-band
  PktLineLength: 'ERR_PKT_LINE_LENGTH',
  PktLineTruncated: 'ERR_PKT_LINE_TRUNCATED',
  SideBandChannel: 'ERR_SIDE_BAND_CHANNEL',
  RemoteError: 'ERR_REMOTE',

  // pack: streaming parse, deltas, index
  PackSignature: 'ERR_PACK_SIGNATURE',
  PackVersion: 'ERR_PACK_VERSION',
  PackTruncated: 'ERR_PACK_TRUNCATED',
  PackChecksum: 'ERR_PACK_CHECKSUM',
  PackObjectCount: 'ERR_PACK_OBJECT_COUNT',
  PackEntryHeader: 'ERR_PACK_ENTRY_HEADER',
  PackZlib: 'ERR_PACK_ZLIB',
  PackSizeMismatch: 'ERR_PACK_SIZE_MISMATCH',
  PackBadOffset: 'ERR_PACK_BAD_OFFSET',
  PackTrailingData: 'ERR_PACK_TRAILING_DATA',
  PackDuplicateObject: 'ERR_PACK_DUPLICATE_OBJECT',
  DeltaCorrupt: 'ERR_DELTA_CORRUPT',
  DeltaBaseMissing: 'ERR_DELTA_BASE_MISSING',
  DeltaCycle: 'ERR_DELTA_CYCLE',
  IndexCorrupt: 'ERR_INDEX_CORRUPT',
  IndexMismatch: 'ERR_INDEX_MISMATCH',

  // protocol: messages
  /** The peer sent something the protocol does not allow here. */
  Protocol: 'ERR_PROTOCOL',
  /** The peer lacks a capability the operation needs. */
  UnsupportedCapability: 'ERR_UNSUPPORTED_CAPABILITY',

  // transport
  /** Could not reach the remote (DNS, refused, reset before any answer). */
  TransportConnect: 'ERR_TRANSPORT_CONNECT',
  /** The remote refused our credentials (HTTP 401/403, ssh publickey). */
  TransportAuth: 'ERR_TRANSPORT_AUTH',
  /** An SSH host key is unknown or does not match known_hosts. */
  SshHostKey: 'ERR_SSH_HOST_KEY',
  /** An HTTP status that is not success, not auth, not retried away. */
  HttpStatus: 'ERR_HTTP_STATUS',
  /** A connect, header or body timeout expired. */
  TransportTimeout: 'ERR_TRANSPORT_TIMEOUT',
  /** The connection dropped in the middle of a response. */
  TransportInterrupted: 'ERR_TRANSPORT_INTERRUPTED',
  /** A URL packferry cannot use. */
  InvalidUrl: 'ERR_INVALID_URL',

  // store
  /** Another writer holds the repository's lock. */
  StoreLocked: 'ERR_STORE_LOCKED',
  /** A new ref's objects are not all in the store (a connectivity check failed). */
  MissingObjects: 'ERR_MISSING_OBJECTS',
  /** A file could not be written: the disk is full, a quota is exceeded, the file system is read-only, or permission is denied. */
  StoreIo: 'ERR_STORE_IO',

  // mirror
  /** The target refused one or more ref updates. */
  RefRejected: 'ERR_REF_REJECTED',
  /** A ref name fails Git's check-ref-format rules. */
  InvalidRefName: 'ERR_INVALID_REF_NAME',

  // Git LFS (store/lfs.ts, transport/lfs.ts, mirror/lfs.ts)
  /** A blob is not a valid Git LFS pointer (pointer spec v1). */
  LfsPointer: 'ERR_LFS_POINTER',
  /** The LFS server could not give one object (a per-object error in a batch response, or no download action). */
  LfsObject: 'ERR_LFS_OBJECT',
  /** Some LFS objects of a sync could not be fetched or verified: the sync was not committed. */
  LfsFetchFailed: 'ERR_LFS_FETCH_FAILED',

  // server security (src/server/auth/): certificates, keys, the built-in CA
  /** A certificate or key cannot be read or used (bad PEM/DER, wrong kind, key and certificate do not match, not issued by the CA). */
  Certificate: 'ERR_CERTIFICATE',
  /** A file packferry would create exists already (a CA, a certificate, a key): never overwritten without --force. */
  AlreadyExists: 'ERR_ALREADY_EXISTS',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface PackferryErrorOptions {
  /** The underlying error, if any. */
  cause?: unknown;
  /** A short suggestion for the user, printed by the CLI after the message. */
  hint?: string;
  /** Structured fields (offsets, object ids, limits) for logs and `--json`. */
  details?: Record<string, unknown>;
}

export class PackferryError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, options: PackferryErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PackferryError';
    this.code = code;
    this.hint = options.hint;
    this.details = options.details ?? {};
  }

  toJSON(): Record<string, unknown> {
    return { name: this.name, code: this.code, message: this.message, hint: this.hint, ...this.details };
  }
}

export function isPackferryError(err: unknown, code?: ErrorCode): err is PackferryError {
  return err instanceof PackferryError && (code === undefined || err.code === code);
}

/** Throws an ERR_INTERNAL error: for states that are bugs, never bad input. */
export function assertInvariant(condition: unknown, message: string): asserts condition {
  if (!condition) throw new PackferryError(ErrorCode.Internal, `internal error: ${message}`);
}

/** Why the operating system refused a write, and what to do about it (by errno code). */
const WRITE_FAILURES: Record<string, { what: string; hint: (dir: string) => string }> = {
  ENOSPC: { what: 'no space left on the device', hint: (dir) => `the disk is full: free space on the file system that holds ${dir}, or use another one` },
  EDQUOT: { what: 'the disk quota is exceeded', hint: (dir) => `the disk quota is exceeded: free space under ${dir}, or raise the quota` },
  EROFS: { what: 'the file system is read-only', hint: (dir) => `${dir} is on a read-only file system: remount it read-write, or use another directory` },
  EACCES: { what: 'permission denied', hint: (dir) => `permission denied: check the owner and mode of ${dir} (and the directories above it)` },
  EPERM: { what: 'operation not permitted', hint: (dir) => `operation not permitted: check the owner, mode and attributes (chattr) of ${dir}` },
};

/**
 * A failed write to local storage as ERR_STORE_IO when the operating system
 * refused it for lack of room or rights (ENOSPC, EDQUOT, EROFS, EACCES,
 * EPERM), naming the file and what to do; anything else is returned as it
 * is. `dir` is what the hint names (default: the file's path).
 */
export function writeFailure(err: unknown, path: string, dir = path): unknown {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (err instanceof PackferryError || typeof code !== 'string' || !Object.hasOwn(WRITE_FAILURES, code)) return err;
  const known = WRITE_FAILURES[code];
  return new PackferryError(ErrorCode.StoreIo, `cannot write ${path}: ${known.what} (${code})`, {
    cause: err,
    hint: known.hint(dir),
    details: { path, errno: code },
  });
}

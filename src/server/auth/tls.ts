// TLS for `packferry serve` (docs/security.md "TLS and client
// certificates"): Node https/tls server options from --tls-cert, --tls-key
// and --client-ca, and the identity a verified client certificate gives.
//
// With a client CA the server *requests* a certificate but does not reject
// the handshake without one (rejectUnauthorized: false), so token and
// anonymous public reads still work over TLS. OpenSSL still verifies any
// certificate presented, against the client CA only (Node's `ca` option
// replaces the default roots), and records the outcome in
// `socket.authorized`: `identityFromSocket` trusts a certificate only when
// that is true, and re-checks the validity period on every request (a
// keep-alive connection may outlive its certificate).
import { readFile } from 'node:fs/promises';
import { createSecureContext, type TLSSocket } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import type { ServerOptions } from 'node:https';
import { PackferryError, ErrorCode } from '../../core/errors.js';
import { OID, readPackferryExtensions } from './extensions.js';
import { ANONYMOUS, type Identity } from './identity.js';
import { NO_RIGHTS } from './rights.js';

export interface TlsPem {
  /** The server's certificate chain (PEM). */
  cert: string | Buffer;
  /** The server's private key (PEM). */
  key: string | Buffer;
  /** CA certificate(s) that client certificates must chain to (PEM); without it no client certificate is requested. */
  clientCa?: string | Buffer;
}

export interface TlsFiles {
  /** --tls-cert */
  cert: string;
  /** --tls-key */
  key: string;
  /** --client-ca */
  clientCa?: string;
}

/**
 * https.createServer / tls.createServer options. Checks that the key matches
 * the certificate and that everything parses (ERR_CERTIFICATE otherwise), so
 * a bad file fails at startup rather than at the first handshake.
 */
export function tlsServerOptions(pem: TlsPem): ServerOptions {
  const options: ServerOptions = {
    cert: pem.cert,
    key: pem.key,
    minVersion: 'TLSv1.2',
    ...(pem.clientCa !== undefined ? { ca: pem.clientCa, requestCert: true, rejectUnauthorized: false } : { requestCert: false }),
  };
  try {
    createSecureContext(options);
  } catch (err) {
    throw new PackferryError(ErrorCode.Certificate, `the TLS certificate or key cannot be used: ${(err as Error).message}`, {
      cause: err,
      hint: 'give the node certificate (--tls-cert) and its own key (--tls-key), both PEM',
    });
  }
  if (pem.clientCa !== undefined) {
    let ca: X509Certificate;
    try {
      ca = new X509Certificate(pem.clientCa);
    } catch (err) {
      throw new PackferryError(ErrorCode.Certificate, `the client CA cannot be read: ${(err as Error).message}`, { cause: err });
    }
    if (!ca.ca) throw new PackferryError(ErrorCode.Certificate, 'the client CA certificate is not a CA certificate', { hint: 'give the cluster CA: CADIR/ca.crt' });
  }
  return options;
}

/** tlsServerOptions from files; ERR_NOT_FOUND for a missing file. */
export async function readTlsServerOptions(files: TlsFiles): Promise<ServerOptions> {
  const read = async (path: string, what: string) => {
    try {
      return await readFile(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new PackferryError(ErrorCode.NotFound, `${what} ${path} does not exist`);
      throw err;
    }
  };
  return tlsServerOptions({
    cert: await read(files.cert, '--tls-cert'),
    key: await read(files.key, '--tls-key'),
    ...(files.clientCa !== undefined ? { clientCa: await read(files.clientCa, '--client-ca') } : {}),
  });
}

/** What a verified certificate says, without the validity check that depends on the time. */
type Parsed = { identity: Identity; notBefore: number; notAfter: number };

const parsed = new Map<string, Parsed>();
const MAX_CACHED = 1024;

function parsePeer(peer: X509Certificate): Parsed {
  const notBefore = Date.parse(peer.validFrom);
  const notAfter = Date.parse(peer.validTo);
  const reject = (why: string): Parsed => ({ identity: { kind: 'anonymous', rejected: why }, notBefore, notAfter });
  if (peer.ca) return reject('a CA certificate is not a client certificate');
  let ext;
  try {
    ext = readPackferryExtensions(peer.raw);
  } catch (err) {
    return reject(`client certificate: ${(err as Error).message}`);
  }
  const base = { serial: peer.serialNumber.toLowerCase(), fingerprint256: peer.fingerprint256, notAfter: new Date(notAfter) };
  if (!(peer.keyUsage ?? []).includes(OID.clientAuth)) return reject('the certificate is not for client authentication (no clientAuth usage)');
  if (ext.node) return { identity: { kind: 'node', ...ext.node, ...base }, notBefore, notAfter };
  const cn = /^CN=(.*)$/m.exec(peer.subject)?.[1];
  if (!cn) return reject('the client certificate has no common name');
  return { identity: { kind: 'cert', user: cn, rights: ext.rights ?? NO_RIGHTS, ...base }, notBefore, notAfter };
}

/**
 * The identity a TLS connection's client certificate gives: a `cert` (user
 * and rights from the packferry extension; no extension: no rights) or `node`
 * identity when the certificate verified against the client CA and is within
 * its validity period now; otherwise anonymous, with the reason in `rejected`
 * when a certificate was presented.
 */
export function identityFromSocket(socket: TLSSocket, now: Date = new Date()): Identity {
  if (typeof socket.getPeerX509Certificate !== 'function') return ANONYMOUS; // not a TLS socket
  const peer = socket.getPeerX509Certificate();
  if (peer === undefined) return ANONYMOUS;
  if (!socket.authorized) {
    return { kind: 'anonymous', rejected: `client certificate not accepted: ${String(socket.authorizationError ?? 'not verified')}` };
  }
  let entry = parsed.get(peer.fingerprint256);
  if (entry === undefined) {
    entry = parsePeer(peer);
    if (parsed.size >= MAX_CACHED) parsed.clear();
    parsed.set(peer.fingerprint256, entry);
  }
  const t = now.getTime();
  if (t < entry.notBefore || t > entry.notAfter) return { kind: 'anonymous', rejected: 'client certificate expired or not yet valid' };
  return entry.identity;
}

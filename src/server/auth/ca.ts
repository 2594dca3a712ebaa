// packferry's built-in certificate authority (as repoSpanner's `ca`
// commands; docs/security.md "The built-in CA"): one self-signed CA per
// cluster, server certificates for nodes, and client (leaf) certificates
// whose packferry extension carries the user's rights.
//
// Keys are ECDSA P-256 with SHA-256 signatures: accepted by Node's TLS
// (OpenSSL), by Git's libcurl whether built on OpenSSL or GnuTLS, and by
// every TLS 1.2/1.3 stack in use. Private keys are written as unencrypted
// PKCS#8 PEM files of mode 0600; certificates as PEM. Issuing uses
// @peculiar/x509 over Node's WebCrypto; reading certificates (`ca info`, the
// server) uses Node's own X509Certificate and der.ts, so the request path
// never loads the issuing library.
import 'reflect-metadata'; // @peculiar/x509's dependency injection (tsyringe) needs it loaded first
import * as x509 from '@peculiar/x509';
import { createPrivateKey, createPublicKey, randomBytes, webcrypto, X509Certificate as NodeX509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { chmod, link, mkdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PackferryError, ErrorCode } from '../../core/errors.js';
import { encodeNode, encodeRights, NODE_OID, OID, readPackferryExtensions, RIGHTS_OID, type NodeIdentity } from './extensions.js';
import { checkName, isDnsName } from './names.js';
export { checkName } from './names.js';
import { makeRights, type Rights } from './rights.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
/** Certificates start this long before they are issued, so a peer whose clock is a little behind accepts them. */
const BACKDATE_MS = 5 * 60_000;
const DAY_MS = 86_400_000;

export const CA_CERT_FILE = 'ca.crt';
export const CA_KEY_FILE = 'ca.key';

/** Default validity, in days. */
export const DEFAULT_DAYS = { ca: 3650, node: 825, leaf: 365 } as const;

/** A certificate and its private key, both PEM. */
export interface CertificatePair {
  cert: string;
  key: string;
}

/** How long a certificate is valid: `days` from now, or explicit dates (tests issue expired certificates this way). */
export interface Validity {
  days?: number;
  notBefore?: Date;
  notAfter?: Date;
  /** "Now", for tests. */
  now?: Date;
}

/** A loaded CA, ready to issue. */
export interface CertificateAuthority {
  readonly cluster: string;
  readonly certPem: string;
  readonly cert: x509.X509Certificate;
  readonly key: webcrypto.CryptoKey;
}

// ---- keys and PEM -----------------------------------------------------------

async function generateKeys(): Promise<webcrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
}

async function privateKeyPem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }).toString();
}

function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] & 0x7f) | 0x10; // positive, and no leading zero byte: exactly 16 bytes of DER INTEGER
  return bytes.toString('hex');
}

function validityDates(validity: Validity, defaultDays: number): { notBefore: Date; notAfter: Date } {
  const now = validity.now ?? new Date();
  const notBefore = validity.notBefore ?? new Date(now.getTime() - BACKDATE_MS);
  const days = validity.days ?? defaultDays;
  if (!Number.isFinite(days) || days < 0) throw new PackferryError(ErrorCode.Usage, `validity of ${days} days`);
  const notAfter = validity.notAfter ?? new Date(now.getTime() + days * DAY_MS);
  if (notAfter.getTime() < notBefore.getTime()) throw new PackferryError(ErrorCode.Usage, 'a certificate cannot expire before it starts');
  // X.509 times have a resolution of one second.
  return { notBefore: new Date(Math.floor(notBefore.getTime() / 1000) * 1000), notAfter: new Date(Math.floor(notAfter.getTime() / 1000) * 1000) };
}

// ---- issuing --------------------------------------------------------------

/** A new self-signed CA for `cluster` (subject "CN=packferry CA, O=<cluster>"). */
export async function createCa(cluster: string, validity: Validity = {}): Promise<CertificatePair> {
  checkName('cluster', cluster);
  const keys = await generateKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ CN: ['packferry CA'] }, { O: [cluster] }],
    ...validityDates(validity, DEFAULT_DAYS.ca),
    keys,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert: cert.toString('pem') + '\n', key: await privateKeyPem(keys.privateKey) };
}

/** Loads a CA from its PEM certificate and key; checks that the certificate is a CA and that the key is its key. */
export async function loadCa(pair: CertificatePair): Promise<CertificateAuthority> {
  let nodeCert: NodeX509Certificate;
  let cert: x509.X509Certificate;
  try {
    nodeCert = new NodeX509Certificate(pair.cert);
    cert = new x509.X509Certificate(nodeCert.raw);
  } catch (err) {
    throw new PackferryError(ErrorCode.Certificate, `the CA certificate cannot be read: ${(err as Error).message}`, { cause: err });
  }
  if (!nodeCert.ca) throw new PackferryError(ErrorCode.Certificate, `the certificate for ${nodeCert.subject.replace(/\n/g, ', ')} is not a CA certificate`);
  let keyDer: Buffer;
  try {
    const keyObject = createPrivateKey(pair.key);
    const spki = (k: { export(o: { type: 'spki'; format: 'der' }): Buffer }) => k.export({ type: 'spki', format: 'der' });
    if (!spki(createPublicKey(keyObject)).equals(spki(nodeCert.publicKey))) throw new Error('the key does not belong to the CA certificate');
    keyDer = keyObject.export({ type: 'pkcs8', format: 'der' });
  } catch (err) {
    throw new PackferryError(ErrorCode.Certificate, `the CA key cannot be used: ${(err as Error).message}`, { cause: err });
  }
  let key: webcrypto.CryptoKey;
  try {
    key = await webcrypto.subtle.importKey('pkcs8', keyDer, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
  } catch (err) {
    throw new PackferryError(ErrorCode.Certificate, 'the CA key is not an ECDSA P-256 key', { cause: err });
  }
  const cluster = cert.subjectName.getField('O')[0] ?? '';
  return { cluster, certPem: pair.cert, cert, key };
}

/** Reads CADIR/ca.crt and CADIR/ca.key; ERR_NOT_FOUND when there is no CA there. */
export async function readCa(dir: string): Promise<CertificateAuthority> {
  const read = async (file: string) => {
    try {
      return await readFile(join(dir, file), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new PackferryError(ErrorCode.NotFound, `no CA in ${dir}: ${file} is missing`, { hint: 'create one with: packferry ca init CLUSTER --dir DIR' });
      }
      throw err;
    }
  };
  return loadCa({ cert: await read(CA_CERT_FILE), key: await read(CA_KEY_FILE) });
}

async function issue(
  ca: CertificateAuthority,
  subject: x509.JsonName,
  extensions: x509.Extension[],
  validity: Validity,
  defaultDays: number,
): Promise<CertificatePair> {
  const keys = await generateKeys();
  const caKeyId = ca.cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject,
    issuer: ca.cert.subjectName,
    ...validityDates(validity, defaultDays),
    publicKey: keys.publicKey,
    signingKey: ca.key,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ...(caKeyId ? [new x509.AuthorityKeyIdentifierExtension(caKeyId)] : []),
      ...extensions,
    ],
  });
  return { cert: cert.toString('pem') + '\n', key: await privateKeyPem(keys.privateKey) };
}

export interface NodeCertificateOptions extends Validity {
  region: string;
  node: string;
  /** IP addresses and DNS names the node is reached at (subjectAltName). */
  sans?: string[];
}

/**
 * A server certificate for a node: CN=<node>, OU=<region>, O=<cluster>;
 * subjectAltName = the given IPs and DNS names plus <node>.<region>.<cluster>
 * (the name peers use, as in repoSpanner); extended key usage serverAuth and
 * clientAuth (a node is also a client of its peers); the packferry node
 * extension.
 */
export async function issueNodeCertificate(ca: CertificateAuthority, options: NodeCertificateOptions): Promise<CertificatePair> {
  const region = checkName('region', options.region);
  const node = checkName('node', options.node);
  const names: x509.JsonGeneralName[] = [];
  const seen = new Set<string>();
  for (const raw of [...(options.sans ?? []), `${node}.${region}.${ca.cluster}`]) {
    const san = raw.trim();
    if (san === '' || seen.has(san.toLowerCase())) continue;
    seen.add(san.toLowerCase());
    if (isIP(san)) names.push({ type: 'ip', value: san });
    else if (isDnsName(san)) names.push({ type: 'dns', value: san });
    else throw new PackferryError(ErrorCode.Usage, `subject alternative name ${JSON.stringify(san)} is neither an IP address nor a DNS name`);
  }
  const identity: NodeIdentity = { cluster: ca.cluster, region, node };
  return issue(
    ca,
    [{ CN: [node] }, { OU: [region] }, { O: [ca.cluster] }],
    [
      new x509.ExtendedKeyUsageExtension([OID.serverAuth, OID.clientAuth]),
      new x509.SubjectAlternativeNameExtension(names),
      new x509.Extension(NODE_OID, false, encodeNode(identity)),
    ],
    options,
    DEFAULT_DAYS.node,
  );
}

export interface LeafCertificateOptions extends Validity {
  user: string;
  rights: Partial<Rights>;
}

/** A client certificate for a user: CN=<user>, O=<cluster>; extended key usage clientAuth; the packferry rights extension. */
export async function issueLeafCertificate(ca: CertificateAuthority, options: LeafCertificateOptions): Promise<CertificatePair> {
  const user = checkName('user', options.user);
  const rights = makeRights(options.rights);
  return issue(
    ca,
    [{ CN: [user] }, { O: [ca.cluster] }],
    [new x509.ExtendedKeyUsageExtension([OID.clientAuth]), new x509.Extension(RIGHTS_OID, false, encodeRights(rights))],
    options,
    DEFAULT_DAYS.leaf,
  );
}

// ---- files ------------------------------------------------------------------

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/**
 * Writes DIR/NAME.crt (mode 0644) and DIR/NAME.key (mode 0600), creating DIR
 * (mode 0700). Refuses (ERR_ALREADY_EXISTS) if either exists, unless `force`.
 * Each file is written under a temporary name and then linked (or, with
 * force, renamed) into place, so no reader sees half a key.
 */
export async function writeCertificatePair(dir: string, name: string, pair: CertificatePair, options: { force?: boolean } = {}): Promise<{ certFile: string; keyFile: string }> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  if (!options.force) {
    for (const f of [certFile, keyFile]) {
      if (await exists(f)) throw new PackferryError(ErrorCode.AlreadyExists, `${f} exists already`, { hint: 'pass --force to replace it' });
    }
  }
  const put = async (file: string, text: string, mode: number) => {
    const tmp = `${file}.tmp-${randomBytes(6).toString('hex')}`;
    await writeFile(tmp, text, { mode, flag: 'wx' });
    try {
      await chmod(tmp, mode); // the umask may have narrowed it; never widened
      if (options.force) {
        await rename(tmp, file);
      } else {
        try {
          await link(tmp, file);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new PackferryError(ErrorCode.AlreadyExists, `${file} exists already`, { hint: 'pass --force to replace it' });
          throw err;
        }
      }
    } finally {
      await unlink(tmp).catch(() => undefined);
    }
  };
  await put(keyFile, pair.key, 0o600);
  await put(certFile, pair.cert, 0o644);
  return { certFile, keyFile };
}

// ---- reading ------------------------------------------------------------------

export type CertificateKind = 'ca' | 'node' | 'leaf' | 'other';

/** What `ca info` shows, and what the server can log about a certificate. */
export interface CertificateInfo {
  kind: CertificateKind;
  subject: string;
  /** The subject's common name. */
  commonName: string | undefined;
  issuer: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
  status: 'valid' | 'expired' | 'not yet valid';
  /** SHA-256 of the DER certificate, colon-separated hex (as openssl prints it). */
  fingerprint256: string;
  dnsNames: string[];
  ipAddresses: string[];
  /** Extended key usages by name (serverAuth, clientAuth) or OID. */
  extendedKeyUsage: string[];
  rights?: Rights;
  node?: NodeIdentity;
  /** What could not be read (a malformed packferry extension). */
  problems: string[];
}

function dn(text: string): string {
  return text.split('\n').join(', ');
}

function field(text: string, name: string): string | undefined {
  for (const line of text.split('\n')) if (line.startsWith(`${name}=`)) return line.slice(name.length + 1);
  return undefined;
}

const EKU_NAMES: Record<string, string> = { [OID.serverAuth]: 'serverAuth', [OID.clientAuth]: 'clientAuth' };

/** Reads a certificate (PEM or DER; the first of a PEM bundle). ERR_CERTIFICATE if it is not one. */
export function inspectCertificate(data: string | Buffer, now: Date = new Date()): CertificateInfo {
  let cert: NodeX509Certificate;
  try {
    cert = new NodeX509Certificate(data);
  } catch (err) {
    throw new PackferryError(ErrorCode.Certificate, `not a certificate: ${(err as Error).message}`, { cause: err });
  }
  const notBefore = new Date(cert.validFrom);
  const notAfter = new Date(cert.validTo);
  const dnsNames: string[] = [];
  const ipAddresses: string[] = [];
  for (const entry of (cert.subjectAltName ?? '').split(', ')) {
    if (entry.startsWith('DNS:')) dnsNames.push(entry.slice(4));
    else if (entry.startsWith('IP Address:')) ipAddresses.push(entry.slice('IP Address:'.length));
  }
  const problems: string[] = [];
  let ext: ReturnType<typeof readPackferryExtensions> = {};
  try {
    ext = readPackferryExtensions(cert.raw);
  } catch (err) {
    problems.push((err as Error).message);
  }
  const eku = cert.keyUsage ?? [];
  const kind: CertificateKind = cert.ca ? 'ca' : ext.node ? 'node' : eku.includes(OID.clientAuth) ? 'leaf' : 'other';
  return {
    kind,
    subject: dn(cert.subject),
    commonName: field(cert.subject, 'CN'),
    issuer: dn(cert.issuer),
    serial: cert.serialNumber.toLowerCase(),
    notBefore,
    notAfter,
    status: now < notBefore ? 'not yet valid' : now > notAfter ? 'expired' : 'valid',
    fingerprint256: cert.fingerprint256,
    dnsNames,
    ipAddresses,
    extendedKeyUsage: eku.map((o) => EKU_NAMES[o] ?? o),
    ...(ext.rights ? { rights: ext.rights } : {}),
    ...(ext.node ? { node: ext.node } : {}),
    problems,
  };
}

/** Whether `cert` was issued and signed by `caCert` (both PEM or DER). Does not look at dates. */
export function isIssuedBy(cert: string | Buffer, caCert: string | Buffer): boolean {
  try {
    const c = new NodeX509Certificate(cert);
    const ca = new NodeX509Certificate(caCert);
    return ca.ca && c.checkIssued(ca) && c.verify(ca.publicKey);
  } catch {
    return false;
  }
}

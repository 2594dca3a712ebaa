// The built-in CA (src/server/auth/ca.ts) and `packferry ca`: certificates
// cross-checked with openssl (verify, purposes, expiry, the packferry
// extension's DER through asn1parse), what inspectCertificate reads, file
// modes and the no-overwrite rule, and the command's output and exit codes.
import { after, before, describe, mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { ErrorCode, isPackferryError } from '../../src/core/errors.js';
import { main } from '../../src/cli/main.js';
import {
  createCa,
  inspectCertificate,
  isIssuedBy,
  issueLeafCertificate,
  issueNodeCertificate,
  loadCa,
  readCa,
  writeCertificatePair,
} from '../../src/server/auth/ca.js';
import { certificateExtensions } from '../../src/server/auth/der.js';
import { RIGHTS_OID } from '../../src/server/auth/extensions.js';
import { makeRights } from '../../src/server/auth/rights.js';
import { tempDir } from '../support/git.js';
import { makePki, type TestPki } from '../support/pki.js';

const tmp = tempDir('packferry-ca-');
let pki: TestPki;
before(async () => {
  pki = await makePki(join(tmp.path, 'ca'), 'example.cluster');
});
after(() => tmp.cleanup());

function openssl(args: string[], input?: Buffer) {
  const r = spawnSync('openssl', args, { input });
  return { code: r.status, out: r.stdout.toString() + r.stderr.toString() };
}

const bin = resolve('bin/packferry.js');
function packferry(args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args]);
  return { code: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

/** The command in this process (for exit codes of usage errors: no process start), output captured. */
async function packferryHere(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = mock.method(console, 'log', (...a: unknown[]) => void out.push(a.join(' ')));
  const error = mock.method(console, 'error', (...a: unknown[]) => void err.push(a.join(' ')));
  try {
    const code = await main(args);
    return { code, stdout: out.join('\n'), stderr: err.join('\n') };
  } finally {
    log.mock.restore();
    error.mock.restore();
  }
}

describe('certificates, checked by openssl', () => {
  test('openssl verify accepts node and leaf certificates, each for its purpose only', async () => {
    const alice = await pki.leaf('alice', { read: true });
    const ok = openssl(['verify', '-CAfile', pki.caFile, pki.node.certFile, alice.certFile]);
    assert.equal(ok.code, 0, ok.out);
    assert.match(ok.out, /n1\.crt: OK/);
    assert.match(ok.out, /alice\.crt: OK/);
    assert.equal(openssl(['verify', '-purpose', 'sslserver', '-CAfile', pki.caFile, pki.node.certFile]).code, 0);
    assert.equal(openssl(['verify', '-purpose', 'sslclient', '-CAfile', pki.caFile, pki.node.certFile]).code, 0, 'nodes are clients of their peers');
    assert.equal(openssl(['verify', '-purpose', 'sslclient', '-CAfile', pki.caFile, alice.certFile]).code, 0);
    assert.notEqual(openssl(['verify', '-purpose', 'sslserver', '-CAfile', pki.caFile, alice.certFile]).code, 0, 'a user certificate cannot serve');
    // openssl agrees the key belongs to the certificate.
    const pub = (args: string[]) => openssl(args).out;
    assert.equal(pub(['pkey', '-in', alice.keyFile, '-pubout']), pub(['x509', '-in', alice.certFile, '-noout', '-pubkey']));
  });

  test('openssl refuses an expired certificate and one from another CA', async () => {
    const expired = await pki.leaf('expired', { read: true }, { notBefore: new Date(Date.now() - 2 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) });
    const r = openssl(['verify', '-CAfile', pki.caFile, expired.certFile]);
    assert.notEqual(r.code, 0);
    assert.match(r.out, /expired/);
    const other = await loadCa(await createCa('other'));
    const stranger = await issueLeafCertificate(other, { user: 'stranger', rights: { admin: true } });
    const file = join(tmp.path, 'stranger.crt');
    writeFileSync(file, stranger.cert);
    assert.notEqual(openssl(['verify', '-CAfile', pki.caFile, file]).code, 0);
    assert.equal(isIssuedBy(stranger.cert, pki.caPair.cert), false);
    assert.equal(isIssuedBy(stranger.cert, other.certPem), true);
  });

  test('the CA: self-signed, CA:TRUE with path length 0, keyCertSign; P-256 keys, ECDSA-SHA256 signatures', () => {
    const text = openssl(['x509', '-in', pki.caFile, '-noout', '-text']).out;
    assert.match(text, /CA:TRUE, pathlen:0/);
    assert.match(text, /Certificate Sign/);
    assert.match(text, /NIST CURVE: P-256/);
    assert.match(text, /Signature Algorithm: ecdsa-with-SHA256/);
    assert.match(text, /Subject: CN = packferry CA, O = example.cluster/);
    assert.equal(openssl(['verify', '-CAfile', pki.caFile, pki.caFile]).code, 0);
  });

  test('the rights extension is DER that openssl reads: SEQUENCE { version, admin, read, write, regions, repos }', async () => {
    const bob = await pki.leaf('bob', { read: true, write: true, regions: ['eu-*'], repos: ['team/*', 'docs'] });
    const ext = certificateExtensions(new X509Certificate(bob.cert).raw).find((e) => e.oid === RIGHTS_OID);
    assert.ok(ext);
    assert.equal(ext.critical, false, 'non-critical: other TLS stacks may ignore it');
    const parsed = openssl(['asn1parse', '-inform', 'DER'], ext.value).out;
    const lines = parsed.split('\n').map((l) => l.replace(/^\s*\d+:d=(\d+)\s+hl=\d+\s+l=\s*\d+\s+/, '$1 ').replace(/\s+/g, ' ').trim()).filter(Boolean);
    assert.deepEqual(lines, [
      '0 cons: SEQUENCE',
      '1 prim: INTEGER :01',
      '1 prim: BOOLEAN :0',
      '1 prim: BOOLEAN :255',
      '1 prim: BOOLEAN :255',
      '1 cons: SEQUENCE',
      '2 prim: UTF8STRING :eu-*',
      '1 cons: SEQUENCE',
      '2 prim: UTF8STRING :team/*',
      '2 prim: UTF8STRING :docs',
    ]);
    // And openssl shows the extension under packferry's OID.
    assert.match(openssl(['x509', '-in', bob.certFile, '-noout', '-text']).out, /1\.3\.6\.1\.4\.1\.59541\.1\.1:/);
  });
});

describe('inspectCertificate', () => {
  test('a leaf: subject, issuer, usage, rights', async () => {
    const carol = await pki.leaf('carol', { admin: true, repos: ['ops/*'] });
    const info = inspectCertificate(carol.cert);
    assert.equal(info.kind, 'leaf');
    assert.equal(info.subject, 'CN=carol, O=example.cluster');
    assert.equal(info.commonName, 'carol');
    assert.equal(info.issuer, 'CN=packferry CA, O=example.cluster');
    assert.deepEqual(info.extendedKeyUsage, ['clientAuth']);
    assert.deepEqual(info.rights, makeRights({ admin: true, repos: ['ops/*'] }));
    assert.equal(info.status, 'valid');
    assert.match(info.serial, /^[0-9a-f]{32}$/);
    assert.equal(info.fingerprint256, new X509Certificate(carol.cert).fingerprint256);
    const days = (info.notAfter.getTime() - Date.now()) / 86_400_000;
    assert.ok(days > 364 && days <= 365, `default leaf validity 365 days, got ${days}`);
  });

  test('a node: SANs (with <node>.<region>.<cluster>), both usages, the node extension', () => {
    const info = inspectCertificate(pki.node.cert);
    assert.equal(info.kind, 'node');
    assert.equal(info.subject, 'CN=n1, OU=r1, O=example.cluster');
    assert.deepEqual(info.dnsNames, ['localhost', 'n1.r1.example.cluster']);
    assert.deepEqual(info.ipAddresses, ['127.0.0.1']);
    assert.deepEqual(info.extendedKeyUsage, ['serverAuth', 'clientAuth']);
    assert.deepEqual(info.node, { cluster: 'example.cluster', region: 'r1', node: 'n1' });
    assert.ok(new X509Certificate(pki.node.cert).checkIP('127.0.0.1'));
    assert.ok(new X509Certificate(pki.node.cert).checkHost('n1.r1.example.cluster'));
  });

  test('the CA, and something that is not a certificate', () => {
    assert.equal(inspectCertificate(pki.caPair.cert).kind, 'ca');
    assert.throws(() => inspectCertificate('not a certificate'), (e) => isPackferryError(e, ErrorCode.Certificate));
  });
});

describe('CA library', () => {
  test('loadCa refuses a key that is not the CA\'s and a certificate that is not a CA', async () => {
    const other = await createCa('other');
    await assert.rejects(loadCa({ cert: pki.caPair.cert, key: other.key }), (e) => isPackferryError(e, ErrorCode.Certificate) && /does not belong/.test(e.message));
    await assert.rejects(loadCa({ cert: pki.node.cert, key: pki.node.key }), (e) => isPackferryError(e, ErrorCode.Certificate) && /not a CA/.test(e.message));
    await assert.rejects(readCa(join(tmp.path, 'nowhere')), (e) => isPackferryError(e, ErrorCode.NotFound));
    assert.equal((await readCa(pki.dir)).cluster, 'example.cluster');
  });

  test('key files are 0600, certificates 0644; nothing is overwritten without force', async () => {
    const dir = join(tmp.path, 'modes');
    const pair = await issueNodeCertificate(pki.ca, { region: 'r2', node: 'n2', sans: ['::1', 'node2.example'] });
    const files = await writeCertificatePair(dir, 'n2', pair);
    assert.equal(statSync(files.keyFile).mode & 0o777, 0o600);
    assert.equal(statSync(files.certFile).mode & 0o777, 0o644);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    const again = await issueNodeCertificate(pki.ca, { region: 'r2', node: 'n2' });
    await assert.rejects(writeCertificatePair(dir, 'n2', again), (e) => isPackferryError(e, ErrorCode.AlreadyExists));
    assert.equal(readFileSync(files.certFile, 'utf8'), pair.cert, 'untouched');
    await writeCertificatePair(dir, 'n2', again, { force: true });
    assert.equal(readFileSync(files.certFile, 'utf8'), again.cert);
    assert.equal(statSync(files.keyFile).mode & 0o777, 0o600);
  });

  test('names and addresses are checked', async () => {
    await assert.rejects(createCa('bad name'), (e) => isPackferryError(e, ErrorCode.Usage));
    await assert.rejects(issueLeafCertificate(pki.ca, { user: '../etc/passwd', rights: {} }), (e) => isPackferryError(e, ErrorCode.Usage));
    await assert.rejects(issueLeafCertificate(pki.ca, { user: 'ca', rights: {} }), /reserved/);
    await assert.rejects(issueNodeCertificate(pki.ca, { region: 'r', node: 'n', sans: ['not a host'] }), (e) => isPackferryError(e, ErrorCode.Usage));
    await assert.rejects(issueLeafCertificate(pki.ca, { user: 'u', rights: {}, notBefore: new Date(2000, 1, 2), notAfter: new Date(2000, 1, 1) }), /expire before it starts/);
  });
});

describe('packferry ca', () => {
  test('init, node, leaf and info, as a user runs them', () => {
    const dir = join(tmp.path, 'cli');
    const init = packferry(['ca', 'init', 'prod', '--dir', dir]);
    assert.equal(init.code, 0, init.stderr);
    assert.match(init.stdout, /wrote .*ca\.crt and .*ca\.key/);
    assert.equal(statSync(join(dir, 'ca.key')).mode & 0o777, 0o600);
    const again = packferry(['ca', 'init', 'prod', '--dir', dir]);
    assert.equal(again.code, 1, 'refuses to overwrite');
    assert.match(again.stderr, /exists already/);
    assert.match(again.stderr, /--force/);

    const node = packferry(['ca', 'node', 'eu', 'web1', '--dir', dir, '--san', '127.0.0.1,localhost', '--san', 'git.example.org', '--json']);
    assert.equal(node.code, 0, node.stderr);
    const n = JSON.parse(node.stdout) as { kind: string; dnsNames: string[]; ipAddresses: string[]; node: unknown; cert: string };
    assert.equal(n.kind, 'node');
    assert.deepEqual(n.dnsNames, ['localhost', 'git.example.org', 'web1.eu.prod']);
    assert.deepEqual(n.ipAddresses, ['127.0.0.1']);
    assert.deepEqual(n.node, { cluster: 'prod', region: 'eu', node: 'web1' });

    const leaf = packferry(['ca', 'leaf', 'alice', '--dir', dir, '--read', '--write', '--repo', 'team/*', '--region', 'eu', '--days', '30']);
    assert.equal(leaf.code, 0, leaf.stderr);
    assert.match(leaf.stdout, /rights: +read, write; regions eu; repos team\/\*/);
    assert.equal(openssl(['verify', '-CAfile', join(dir, 'ca.crt'), join(dir, 'web1.crt'), join(dir, 'alice.crt')]).code, 0);

    const info = packferry(['ca', 'info', join(dir, 'alice.crt'), '--ca', join(dir, 'ca.crt')]);
    assert.equal(info.code, 0, info.stderr);
    assert.match(info.stdout, /^kind: +client certificate$/m);
    assert.match(info.stdout, /^subject: +CN=alice, O=prod$/m);
    assert.match(info.stdout, /^issuer: +CN=packferry CA, O=prod$/m);
    assert.match(info.stdout, /^valid until: .* \(valid\)$/m);
    assert.match(info.stdout, /^sha256: +([0-9A-F]{2}:){31}[0-9A-F]{2}$/m);
    assert.match(info.stdout, /^verified: +yes/m);
    const infoJson = JSON.parse(packferry(['ca', 'info', join(dir, 'alice.crt'), '--json']).stdout) as { rights: unknown; notAfter: string };
    assert.deepEqual(infoJson.rights, { admin: false, read: true, write: true, regions: ['eu'], repos: ['team/*'] });
    const days = (Date.parse(infoJson.notAfter) - Date.now()) / 86_400_000;
    assert.ok(days > 29 && days <= 30);
    const nodeInfo = packferry(['ca', 'info', join(dir, 'web1.crt')]);
    assert.match(nodeInfo.stdout, /^alt names: +DNS:localhost, DNS:git.example.org, DNS:web1.eu.prod, IP:127.0.0.1$/m);
    assert.match(nodeInfo.stdout, /^node: +web1 in region eu of cluster prod$/m);
  });

  test('--days 0 issues a certificate that is already expired; info --ca says so with exit 1', () => {
    const dir = join(tmp.path, 'cli0');
    assert.equal(packferry(['ca', 'init', 'c', '--dir', dir]).code, 0);
    assert.equal(packferry(['ca', 'leaf', 'late', '--dir', dir, '--read', '--days', '0']).code, 0);
    const info = packferry(['ca', 'info', join(dir, 'late.crt'), '--ca', join(dir, 'ca.crt'), '--json']);
    assert.equal(info.code, 1);
    const j = JSON.parse(info.stdout) as { status: string; verified: boolean; ok: boolean };
    assert.deepEqual([j.status, j.verified, j.ok], ['expired', false, false]);
    assert.notEqual(openssl(['verify', '-CAfile', join(dir, 'ca.crt'), join(dir, 'late.crt')]).code, 0);
  });

  test('usage errors (2), a missing CA or file (3)', async () => {
    assert.equal((await packferryHere(['ca'])).code, 2);
    assert.equal((await packferryHere(['ca', 'mint', 'x'])).code, 2);
    assert.equal((await packferryHere(['ca', 'init', 'x'])).code, 2, 'no --dir');
    assert.equal((await packferryHere(['ca', 'init', 'x', '--dir', join(tmp.path, 'u'), '--san', 'a'])).code, 2, '--san is for node');
    assert.equal((await packferryHere(['ca', 'leaf', 'x', '--dir', join(tmp.path, 'u'), '--days', '-1'])).code, 2);
    assert.equal((await packferryHere(['ca', 'leaf', 'x', '--dir', join(tmp.path, 'no-ca')])).code, 3);
    assert.equal((await packferryHere(['ca', 'info', join(tmp.path, 'none.crt')])).code, 3);
    const help = await packferryHere(['ca', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /usage: packferry ca init/);
    assert.match((await packferryHere(['--help'])).stdout, /^ +ca +A certificate authority/m);
    assert.match((await packferryHere(['--help'])).stdout, /^ +token +Create, list and revoke access tokens/m);
  });
});

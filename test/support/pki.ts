// Test certificates from packferry's own CA (src/server/auth/ca.ts): a
// cluster CA with a node certificate for 127.0.0.1/localhost and client
// certificates, written to a directory as `packferry ca` would, so tests can
// hand the files to openssl, git and Node's TLS alike.
import {
  createCa,
  issueLeafCertificate,
  issueNodeCertificate,
  loadCa,
  writeCertificatePair,
  type CertificateAuthority,
  type CertificatePair,
  type Validity,
} from '../../src/server/auth/ca.js';
import type { Rights } from '../../src/server/auth/rights.js';

export interface TestPki {
  dir: string;
  ca: CertificateAuthority;
  caPair: CertificatePair;
  caFile: string;
  node: CertificatePair & { certFile: string; keyFile: string };
  /** Issues a client certificate and writes DIR/<user>.crt and .key. */
  leaf(user: string, rights: Partial<Rights>, validity?: Validity): Promise<CertificatePair & { certFile: string; keyFile: string }>;
}

/** A CA for `cluster` in `dir` with a node certificate "n1" in region "r1" for 127.0.0.1 and localhost. */
export async function makePki(dir: string, cluster = 'test'): Promise<TestPki> {
  const caPair = await createCa(cluster);
  const ca = await loadCa(caPair);
  const caFiles = await writeCertificatePair(dir, 'ca', caPair);
  const nodePair = await issueNodeCertificate(ca, { region: 'r1', node: 'n1', sans: ['127.0.0.1', 'localhost'] });
  const nodeFiles = await writeCertificatePair(dir, 'n1', nodePair);
  return {
    dir,
    ca,
    caPair,
    caFile: caFiles.certFile,
    node: { ...nodePair, ...nodeFiles },
    async leaf(user, rights, validity = {}) {
      const pair = await issueLeafCertificate(ca, { user, rights, ...validity });
      return { ...pair, ...(await writeCertificatePair(dir, user, pair, { force: true })) };
    },
  };
}


// Who is asking (docs/security.md "Authentication"): the result of
// authenticating a request, as a tagged union. Only `cert` and `token`
// identities carry rights; `anonymous` reads public repositories only; a
// `node` is another packferry node of the cluster presenting its node
// certificate (it gets no user rights here: the cluster layer decides what
// peers may do).
import type { NodeIdentity } from './extensions.js';
import type { Rights } from './rights.js';

export interface AnonymousIdentity {
  kind: 'anonymous';
  /** Why credentials that were presented gave no identity (for logs, never for the client). */
  rejected?: string;
}

export interface CertIdentity {
  kind: 'cert';
  /** The certificate's subject common name. */
  user: string;
  rights: Rights;
  serial: string;
  fingerprint256: string;
  notAfter: Date;
}

export interface TokenIdentity {
  kind: 'token';
  user: string;
  rights: Rights;
  tokenId: string;
  expires?: Date;
}

export interface NodePeerIdentity extends NodeIdentity {
  kind: 'node';
  serial: string;
  fingerprint256: string;
  notAfter: Date;
}

export type Identity = AnonymousIdentity | CertIdentity | TokenIdentity | NodePeerIdentity;

export const ANONYMOUS: AnonymousIdentity = Object.freeze({ kind: 'anonymous' });

/** "cert:alice", "token:ci(3f2a…)", "node:n1.r1.c", "anonymous": for logs. */
export function describeIdentity(identity: Identity): string {
  switch (identity.kind) {
    case 'anonymous':
      return 'anonymous';
    case 'cert':
      return `cert:${identity.user}`;
    case 'token':
      return `token:${identity.user}(${identity.tokenId})`;
    case 'node':
      return `node:${identity.node}.${identity.region}.${identity.cluster}`;
  }
}

// The server's security API in one import (docs/security.md): authenticate a
// request, authorize an action, refuse with the 404 rule, TLS options, the
// token store, the rights model. The certificate authority (ca.ts, which
// loads the X.509 issuing library) is imported on its own by `packferry ca`.
export { authenticate, parseAuthorization, tokenOf, type AuthenticateOptions, type Credentials } from './authenticate.js';
export { authorize, authorizeHooks, denial, NOT_FOUND_BODY, type AccessSettings, type AuthorizeOptions, type Denial } from './authorize.js';
export { ANONYMOUS, describeIdentity, type AnonymousIdentity, type CertIdentity, type Identity, type NodePeerIdentity, type TokenIdentity } from './identity.js';
export { NODE_OID, PACKFERRY_OID_ARC, RIGHTS_OID, readPackferryExtensions, type NodeIdentity } from './extensions.js';
export { allows, DEFAULT_REGION, formatRights, globMatch, isServerAdmin, makeRights, NO_RIGHTS, type AccessRequest, type Action, type Rights } from './rights.js';
export { identityFromSocket, readTlsServerOptions, tlsServerOptions, type TlsFiles, type TlsPem } from './tls.js';
export { TOKENS_KEY, TokenStore, type CreateTokenOptions, type TokenCheck, type TokenInfo, type TokenStoreOptions } from './tokens.js';

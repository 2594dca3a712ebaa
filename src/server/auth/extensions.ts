// packferry's own X.509 certificate extensions (docs/security.md
// "Certificate rights"): the rights of a client (leaf) certificate and the
// region/node of a server (node) certificate. DER-encoded, non-critical, under
// a private-enterprise-style arc:
//
//   packferry                  1.3.6.1.4.1.59541.1
//   packferry-rights           1.3.6.1.4.1.59541.1.1   (leaf certificates)
//   packferry-node             1.3.6.1.4.1.59541.1.2   (node certificates)
//
//   PackferryRights ::= SEQUENCE {
//     version   INTEGER (1),
//     admin     BOOLEAN,
//     read      BOOLEAN,
//     write     BOOLEAN,
//     regions   SEQUENCE OF UTF8String,  -- globs, at least one
//     repos     SEQUENCE OF UTF8String,  -- globs, at least one
//     ...                                -- later versions append; readers ignore
//   }
//   PackferryNode ::= SEQUENCE {
//     version   INTEGER (1),
//     cluster   UTF8String,
//     region    UTF8String,
//     node      UTF8String,
//     ...
//   }
//
// The arc's enterprise number is not registered with IANA. That is safe for
// this use: the extensions are read only from certificates that verified
// against the server's own packferry CA, which issues nothing else.
import { PackferryError, ErrorCode } from '../../core/errors.js';
import {
  certificateExtensions,
  children,
  decodeBoolean,
  decodeSmallInteger,
  decodeUtf8,
  encodeBoolean,
  encodeSequence,
  encodeSmallInteger,
  encodeUtf8,
  readOne,
  Tag,
  type Tlv,
} from './der.js';
import { makeRights, RIGHTS_LIMITS, type Rights } from './rights.js';

export const PACKFERRY_OID_ARC = '1.3.6.1.4.1.59541.1';
export const RIGHTS_OID = `${PACKFERRY_OID_ARC}.1`;
export const NODE_OID = `${PACKFERRY_OID_ARC}.2`;

/** Standard OIDs this module's callers check. */
export const OID = {
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

const VERSION = 1;

function bad(message: string): PackferryError {
  return new PackferryError(ErrorCode.Certificate, message);
}

function encodeStrings(list: readonly string[]): Buffer {
  return encodeSequence(list.map(encodeUtf8));
}

function decodeStrings(tlv: Tlv, what: string): string[] {
  if (tlv.tag !== Tag.Sequence) throw bad(`${what}: not a SEQUENCE OF UTF8String`);
  const items = children(tlv.content);
  if (items.length > RIGHTS_LIMITS.maxGlobs) throw bad(`${what}: more than ${RIGHTS_LIMITS.maxGlobs} entries`);
  return items.map((item) => decodeUtf8(item, what));
}

/** The DER value (extnValue content) of a rights extension. */
export function encodeRights(rights: Rights): Buffer {
  const r = makeRights(rights);
  return encodeSequence([
    encodeSmallInteger(VERSION),
    encodeBoolean(r.admin),
    encodeBoolean(r.read),
    encodeBoolean(r.write),
    encodeStrings(r.regions),
    encodeStrings(r.repos),
  ]);
}

/** Rights from a rights extension's DER value; throws ERR_CERTIFICATE if malformed. */
export function decodeRights(der: Buffer): Rights {
  const fields = children(readOne(der, Tag.Sequence, 'PackferryRights'));
  if (fields.length < 6) throw bad('packferry rights extension: too few fields');
  const version = decodeSmallInteger(fields[0], 'PackferryRights.version');
  if (version < 1) throw bad(`packferry rights extension: version ${version}`);
  const regions = decodeStrings(fields[4], 'PackferryRights.regions');
  const repos = decodeStrings(fields[5], 'PackferryRights.repos');
  // An empty list would mean "everything" to makeRights: in a certificate it is malformed instead.
  if (regions.length === 0 || repos.length === 0) throw bad('packferry rights extension: empty glob list');
  try {
    return makeRights({
      admin: decodeBoolean(fields[1], 'PackferryRights.admin'),
      read: decodeBoolean(fields[2], 'PackferryRights.read'),
      write: decodeBoolean(fields[3], 'PackferryRights.write'),
      regions,
      repos,
    });
  } catch (err) {
    if (err instanceof PackferryError && err.code === ErrorCode.Usage) throw bad(`packferry rights extension: ${err.message}`);
    throw err;
  }
}

export interface NodeIdentity {
  cluster: string;
  region: string;
  node: string;
}

export function encodeNode(identity: NodeIdentity): Buffer {
  return encodeSequence([encodeSmallInteger(VERSION), encodeUtf8(identity.cluster), encodeUtf8(identity.region), encodeUtf8(identity.node)]);
}

export function decodeNode(der: Buffer): NodeIdentity {
  const fields = children(readOne(der, Tag.Sequence, 'PackferryNode'));
  if (fields.length < 4) throw bad('packferry node extension: too few fields');
  const version = decodeSmallInteger(fields[0], 'PackferryNode.version');
  if (version < 1) throw bad(`packferry node extension: version ${version}`);
  return {
    cluster: decodeUtf8(fields[1], 'PackferryNode.cluster'),
    region: decodeUtf8(fields[2], 'PackferryNode.region'),
    node: decodeUtf8(fields[3], 'PackferryNode.node'),
  };
}

/** What packferry reads from a certificate's extensions. */
export interface PackferryExtensions {
  rights?: Rights;
  node?: NodeIdentity;
}

/** The packferry extensions of a DER certificate; throws ERR_CERTIFICATE if one is malformed or appears twice. */
export function readPackferryExtensions(certDer: Buffer): PackferryExtensions {
  const out: PackferryExtensions = {};
  for (const ext of certificateExtensions(certDer)) {
    if (ext.oid === RIGHTS_OID) {
      if (out.rights) throw bad('two packferry rights extensions');
      out.rights = decodeRights(ext.value);
    } else if (ext.oid === NODE_OID) {
      if (out.node) throw bad('two packferry node extensions');
      out.node = decodeNode(ext.value);
    }
  }
  return out;
}

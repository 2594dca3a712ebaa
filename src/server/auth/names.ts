// Names the security layer accepts: clusters, regions and nodes (DNS names
// and labels, as they appear in node certificates' subjectAltName) and users
// (certificate common names and token owners). Node and user names also
// become file names in a CA directory, so nothing here can leave it.
import { PackferryError, ErrorCode } from '../../core/errors.js';

const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';

export const NAME_RULES = {
  cluster: { re: new RegExp(`^${LABEL}(?:\\.${LABEL})*$`), text: 'a DNS name: letters, digits, "-" and "."' },
  region: { re: new RegExp(`^${LABEL}$`), text: 'a DNS label: letters, digits and "-"' },
  node: { re: new RegExp(`^${LABEL}$`), text: 'a DNS label: letters, digits and "-"' },
  user: { re: /^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$/, text: 'letters, digits, ".", "_", "@", "+" and "-", at most 64' },
} as const;

export type NameKind = keyof typeof NAME_RULES;

/** Checks a cluster, region, node or user name ("ca" is reserved for the CA's own files). */
export function checkName(kind: NameKind, name: string): string {
  const rule = NAME_RULES[kind];
  if (typeof name !== 'string' || !rule.re.test(name) || name.length > 253) {
    throw new PackferryError(ErrorCode.Usage, `invalid ${kind} name ${JSON.stringify(String(name).slice(0, 80))}`, { hint: `use ${rule.text}` });
  }
  if ((kind === 'node' || kind === 'user') && name.toLowerCase() === 'ca') throw new PackferryError(ErrorCode.Usage, `"${name}" is reserved for the CA's own files`);
  return name;
}

/** Whether a subjectAltName entry is a DNS name packferry writes into certificates. */
export function isDnsName(name: string): boolean {
  return name.length <= 253 && NAME_RULES.cluster.re.test(name);
}

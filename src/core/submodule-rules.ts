// The rules fsck applies to the variables of a .gitmodules blob (Git 2.39):
// submodule-config.c check_submodule_name() and parse_submodule_update_type(),
// fsck.c check_submodule_url() with url_to_curl_url() and
// count_leading_dotdots(), credential.c credential_from_url_gently(), url.c
// url_decode_mem(), and cache.h looks_like_command_line_option(). They keep a
// cloned repository from writing outside its submodule directories
// (CVE-2018-11235), from passing options to the transport (CVE-2018-17456)
// and from sending credentials for one host to another (CVE-2020-5260,
// CVE-2020-11008).
//
// Strings here are latin1 (one character per byte) and, as in Git's C
// code, end at the first NUL.

/** A value Git would take as an option on a command line (CVE-2018-17456). */
export function looksLikeCommandLineOption(value: string): boolean {
  return value.charCodeAt(0) === 0x2d;
}

function isDirSeparator(c: string | undefined): boolean {
  return c === '/' || c === '\\';
}

/** A submodule name may not be empty nor have ".." as a component (either separator, on every platform). */
export function checkSubmoduleName(name: string): boolean {
  if (name.length === 0) return false;
  return !name.split(/[/\\]/).includes('..');
}

export type SubmoduleUpdateType = 'none' | 'checkout' | 'rebase' | 'merge' | 'command' | 'unspecified';

/** submodule.<name>.update: "!command" runs a command on `git submodule update`, which fsck refuses. */
export function parseSubmoduleUpdateType(value: string): SubmoduleUpdateType {
  if (value === 'none' || value === 'checkout' || value === 'rebase' || value === 'merge') return value;
  return value.startsWith('!') ? 'command' : 'unspecified';
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}

/** url.c url_decode_mem(): %XX decoded (not %00), except before the first ':' (a scheme is kept as it is). */
export function urlDecode(text: string): string {
  let out = '';
  let q = 0;
  const colon = text.indexOf(':');
  if (colon > 0) {
    out = text.slice(0, colon);
    q = colon;
  }
  for (; q < text.length; q++) {
    const c = text.charCodeAt(q);
    if (c === 0) break;
    if (c === 0x25 && text.length - q >= 3) {
      const hi = hexValue(text.charCodeAt(q + 1));
      const lo = hexValue(text.charCodeAt(q + 2));
      const value = hi < 0 || lo < 0 ? -1 : (hi << 4) | lo;
      if (value > 0) {
        out += String.fromCharCode(value);
        q += 2;
        continue;
      }
    }
    out += text[q];
  }
  return out;
}

/** "./" or "../" (either separator) at the start: a URL relative to the superproject's. */
function startsWithDotSlash(url: string, at: number): boolean {
  return url[at] === '.' && isDirSeparator(url[at + 1]);
}

function startsWithDotDotSlash(url: string, at: number): boolean {
  return url[at] === '.' && url[at + 1] === '.' && isDirSeparator(url[at + 2]);
}

/** The URL handed to git-remote-curl, for the transports it implements. */
function curlUrl(url: string): string | undefined {
  for (const prefix of ['http::', 'https::', 'ftp::', 'ftps::']) if (url.startsWith(prefix)) return url.slice(prefix.length);
  for (const prefix of ['http://', 'https://', 'ftp://', 'ftps://']) if (url.startsWith(prefix)) return url;
  return undefined;
}

/**
 * credential.c credential_from_url_gently() (a full URL, not a partial one):
 * the host, or undefined when the URL has no scheme or a component decodes
 * to something with a newline (which the credential protocol cannot carry).
 */
function credentialHost(url: string): string | undefined {
  const protoEnd = url.indexOf('://');
  if (protoEnd <= 0) return undefined;
  const cp = protoEnd + 3;
  const at = url.indexOf('@', cp);
  const colon = url.indexOf(':', cp);
  let slash = cp;
  while (slash < url.length && url[slash] !== '/' && url[slash] !== '?' && url[slash] !== '#') slash++;
  const components: string[] = [url.slice(0, protoEnd)];
  let host: number;
  if (at < 0 || slash <= at) {
    host = cp;
  } else if (colon < 0 || at <= colon) {
    components.push(urlDecode(url.slice(cp, at)));
    host = at + 1;
  } else {
    components.push(urlDecode(url.slice(cp, colon)), urlDecode(url.slice(colon + 1, at)));
    host = at + 1;
  }
  const hostName = urlDecode(url.slice(host, slash));
  components.push(hostName);
  let path = slash;
  while (url[path] === '/') path++;
  if (path < url.length) components.push(urlDecode(url.slice(path)));
  return components.some((c) => c.includes('\n')) ? undefined : hostName;
}

/** fsck.c check_submodule_url(): false for a URL fsck refuses (gitmodulesUrl). */
export function checkSubmoduleUrl(url: string): boolean {
  if (looksLikeCommandLineOption(url)) return false;
  if (startsWithDotSlash(url, 0) || startsWithDotDotSlash(url, 0) || url.startsWith('git://')) {
    // Could be appended to an http URL and decoded there.
    if (urlDecode(url).includes('\n')) return false;
    // "../" past the root can reach the host part ("https::example.com", "https:///example.com": CVE-2020-11008).
    let dotdots = 0;
    let at = 0;
    for (;;) {
      if (startsWithDotDotSlash(url, at)) {
        dotdots++;
        at += 3;
      } else if (startsWithDotSlash(url, at)) {
        at += 2;
      } else break;
    }
    return !(dotdots > 0 && (url[at] === ':' || url[at] === '/'));
  }
  const curl = curlUrl(url);
  if (curl !== undefined) {
    const host = credentialHost(curl);
    return host !== undefined && host !== '';
  }
  return true;
}

// Annotated tag objects:
//
//     object <id>
//     type <commit|tree|blob|tag>
//     tag <name>
//     tagger <identity>      (optional: the earliest tags have none)
//     <other headers>        (e.g. gpgsig-sha256 for a tag signed over the
//                             other hash in a converted repository)
//
//     <message, with an OpenPGP/SSH/X.509 signature appended when signed>
//
// Reference: tag.c `parse_tag_buffer()`; gitformat-signature ("Tag
// signatures"); gpg-interface.c `parse_signed_buffer()`; fsck.c
// `fsck_tag_standalone()` for validation; refs.c `check_refname_format()`
// for tag names.
import { PackferryError, ErrorCode } from './errors.js';
import { SHA1, type HashAlgorithm } from './hash.js';
import {
  NEWLINE,
  encodeHeaderField,
  endOfLine,
  isHexIdAt,
  lineStartsWith,
  readHeaderFields,
  readIdLine,
  splitHeaderBlock,
  startsWithAt,
  verifyHeaders,
  type HeaderField,
} from './object-headers.js';
import { checkIdentity, parseIdentity, type Identity } from './object-ident.js';
import { ProblemReporter, invalidObject, type ObjectProblem, type ValidateOptions } from './object-problem.js';
import { isObjectType, type ObjectType } from './object-type.js';
import { isObjectId, type ObjectId } from './oid.js';

export interface Tag {
  readonly type: 'tag';
  /** The tagged object. */
  readonly object: ObjectId;
  /** The tagged object's type (the `type` header). */
  readonly objectType: ObjectType;
  /** The tag's name (the `tag` header), as bytes: need not be UTF-8. */
  readonly tag: Buffer;
  readonly tagger: Identity | undefined;
  /** Headers after tagger, in object order. */
  readonly extraHeaders: readonly HeaderField[];
  /** The bytes after the empty line, signature included; undefined when there is no empty line. */
  readonly message: Buffer | undefined;
}

export interface TagInit {
  readonly object: ObjectId;
  readonly objectType: ObjectType;
  /** A string is written as UTF-8. */
  readonly tag: Uint8Array | string;
  readonly tagger?: Identity;
  readonly extraHeaders?: readonly HeaderField[];
  readonly message: Uint8Array | string | undefined;
}

const LF = 0x0a;

function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.length);
}

/**
 * Reads a tag. Throws ERR_INVALID_OBJECT (details.problem is the fsck id)
 * when the object, type and tag lines are not there in that order, the id is
 * malformed or the type unknown, as Git's `parse_tag_buffer()` refuses those.
 */
export function parseTag(data: Uint8Array, algo: HashAlgorithm = SHA1): Tag {
  const buf = asBuffer(data);
  const { lines, message } = splitHeaderBlock('tag', buf);
  const offsetOf = (k: number): number => (k < lines.length ? lines[k].start : buf.length);
  let i = 0;
  if (i >= lines.length || !lineStartsWith(buf, lines[i], 'object ')) {
    throw invalidObject('tag', 'missingObject', "invalid format - expected 'object' line", offsetOf(i));
  }
  const object = readIdLine('tag', buf, lines[i++], 7, algo, 'badObjectSha1');
  if (i >= lines.length || !lineStartsWith(buf, lines[i], 'type ')) {
    throw invalidObject('tag', 'missingTypeEntry', "invalid format - expected 'type' line", offsetOf(i));
  }
  const typeName = buf.toString('latin1', lines[i].start + 5, Math.min(lines[i].eol, lines[i].start + 5 + 16));
  if (lines[i].eol - lines[i].start - 5 > 16 || !isObjectType(typeName)) {
    throw invalidObject('tag', 'badType', "invalid 'type' value", offsetOf(i));
  }
  i++;
  if (i >= lines.length || !lineStartsWith(buf, lines[i], 'tag ')) {
    throw invalidObject('tag', 'missingTagEntry', "invalid format - expected 'tag' line", offsetOf(i));
  }
  const tag = buf.subarray(lines[i].start + 4, lines[i].eol);
  i++;
  let tagger: Identity | undefined;
  if (i < lines.length && lineStartsWith(buf, lines[i], 'tagger ')) {
    tagger = parseIdentity(buf.subarray(lines[i].start + 7, lines[i].eol));
    i++;
  }
  const extraHeaders = readHeaderFields(buf, lines, i);
  return { type: 'tag', object, objectType: typeName, tag, tagger, extraHeaders, message };
}

/** Writes a tag's bytes. A parsed tag is written back byte for byte. */
export function serializeTag(tag: TagInit, algo: HashAlgorithm = SHA1): Buffer {
  if (typeof tag.object !== 'string' || !isObjectId(tag.object, algo)) {
    throw new PackferryError(ErrorCode.InvalidObject, `tag object is not a ${algo.name} object id: ${JSON.stringify(tag.object)}`);
  }
  if (!isObjectType(tag.objectType)) {
    throw new PackferryError(ErrorCode.InvalidObject, `tag type is not an object type: ${JSON.stringify(tag.objectType)}`);
  }
  const name = typeof tag.tag === 'string' ? Buffer.from(tag.tag, 'utf8') : asBuffer(tag.tag);
  if (name.indexOf(LF) >= 0) throw new PackferryError(ErrorCode.InvalidObject, 'tag name must not contain a newline');
  const out: Buffer[] = [Buffer.from(`object ${tag.object}\ntype ${tag.objectType}\ntag `, 'latin1'), name, NEWLINE];
  if (tag.tagger !== undefined) {
    const raw = tag.tagger.raw;
    if (!(raw instanceof Uint8Array) || raw.indexOf(LF) >= 0) {
      throw new PackferryError(ErrorCode.InvalidObject, 'tagger must be an identity without newlines');
    }
    out.push(Buffer.from('tagger '), raw, NEWLINE);
  }
  for (const field of tag.extraHeaders ?? []) encodeHeaderField(field, out);
  const { message } = tag;
  if (message !== undefined) out.push(NEWLINE, typeof message === 'string' ? Buffer.from(message, 'utf8') : asBuffer(message));
  return Buffer.concat(out);
}

// gpg-interface.c: the first line of each signature format Git knows.
const SIGNATURE_STARTS = [
  '-----BEGIN PGP SIGNATURE-----',
  '-----BEGIN PGP MESSAGE-----',
  '-----BEGIN SIGNED MESSAGE-----',
  '-----BEGIN SSH SIGNATURE-----',
].map((s) => Buffer.from(s, 'latin1'));

/**
 * Splits a tag message into the signed payload and the signature, as
 * gpg-interface.c `parse_signed_buffer()`: the signature starts at the last
 * line that opens a known signature format. `signature` is empty when the
 * message is not signed.
 */
export function splitTagSignature(message: Uint8Array): { payload: Buffer; signature: Buffer } {
  const buf = asBuffer(message);
  let match = buf.length;
  let pos = 0;
  while (pos < buf.length) {
    for (const start of SIGNATURE_STARTS) {
      if (buf.length - pos >= start.length && buf.compare(start, 0, start.length, pos, pos + start.length) === 0) {
        match = pos;
        break;
      }
    }
    const eol = buf.indexOf(LF, pos);
    pos = eol < 0 ? buf.length : eol + 1;
  }
  return { payload: buf.subarray(0, match), signature: buf.subarray(match) };
}

// refs.c refname_disposition: 0 ok, 1 end of component, 2 '.', 3 '{', 4 forbidden, 5 '*'.
const REFNAME_DISPOSITION = new Uint8Array(256);
for (let c = 0; c < 0x20; c++) REFNAME_DISPOSITION[c] = 4;
REFNAME_DISPOSITION[0] = 1;
REFNAME_DISPOSITION[0x2f] = 1; // /
REFNAME_DISPOSITION[0x2e] = 2; // .
REFNAME_DISPOSITION[0x7b] = 3; // {
for (const c of ' :?[\\^~\x7f') REFNAME_DISPOSITION[c.charCodeAt(0)] = 4;
REFNAME_DISPOSITION[0x2a] = 5; // *

/**
 * refs.c `check_refname_format()` with no flags: true if `name` is a valid
 * full ref name ("refs/tags/v1.0"). Bytes are checked as Git checks them.
 */
export function isValidRefName(name: Uint8Array): boolean {
  const len = name.length;
  const at = (i: number): number => (i < len ? name[i] : 0);
  if (len === 1 && name[0] === 0x40) return false; // "@"
  let pos = 0;
  let components = 0;
  let componentLength = 0;
  for (;;) {
    // check_refname_component()
    let last = 0;
    let cp = pos;
    for (;; cp++) {
      const ch = at(cp);
      const disp = REFNAME_DISPOSITION[ch];
      if (disp === 1) break;
      if (disp === 2 && last === 0x2e) return false; // ".."
      if (disp === 3 && last === 0x40) return false; // "@{"
      if (disp === 4 || disp === 5) return false;
      last = ch;
    }
    componentLength = cp - pos;
    if (componentLength === 0) return false;
    if (at(pos) === 0x2e) return false; // component starts with '.'
    if (componentLength >= 5 && Buffer.from(name.buffer, name.byteOffset + cp - 5, 5).toString('latin1') === '.lock') return false;
    components++;
    if (cp >= len || at(cp) === 0) {
      // A NUL ends the name for Git (it reads a C string).
      break;
    }
    pos = cp + 1;
  }
  if (at(pos + componentLength - 1) === 0x2e) return false; // ends with '.'
  return components >= 2;
}

/** Checks a tag as `git fsck` does (fsck.c `fsck_tag_standalone()`). Never throws for bad input. */
export function validateTag(data: Uint8Array, options: ValidateOptions & { algo?: HashAlgorithm } = {}): ObjectProblem[] {
  const buf = asBuffer(data);
  const algo = options.algo ?? SHA1;
  const reporter = new ProblemReporter(options);
  const problems = reporter.problems;
  if (verifyHeaders(buf, reporter)) return problems;
  const len = buf.length;
  let p = 0;

  if (!startsWithAt(buf, p, 'object ')) {
    reporter.report('missingObject', "invalid format - expected 'object' line", p);
    return problems;
  }
  p += 7;
  if (!isHexIdAt(buf, p, p + algo.hexLength, algo) || buf[p + algo.hexLength] !== LF) {
    if (reporter.report('badObjectSha1', "invalid 'object' line format - bad sha1", p)) return problems;
  }
  p = endOfLine(buf, p) + 1;

  if (p >= len || !startsWithAt(buf, p, 'type ')) {
    reporter.report('missingTypeEntry', "invalid format - expected 'type' line", p);
    return problems;
  }
  p += 5;
  let eol = buf.indexOf(LF, p);
  if (eol < 0) {
    reporter.report('missingType', "invalid format - unexpected end after 'type' line", p);
    return problems;
  }
  if (eol - p > 16 || !isObjectType(buf.toString('latin1', p, eol))) {
    if (reporter.report('badType', "invalid 'type' value", p)) return problems;
  }
  p = eol + 1;

  if (p >= len || !startsWithAt(buf, p, 'tag ')) {
    reporter.report('missingTagEntry', "invalid format - expected 'tag' line", p);
    return problems;
  }
  p += 4;
  eol = buf.indexOf(LF, p);
  if (eol < 0) {
    reporter.report('missingTag', "invalid format - unexpected end after 'type' line", p);
    return problems;
  }
  if (!isValidRefName(Buffer.concat([Buffer.from('refs/tags/'), buf.subarray(p, eol)]))) {
    if (reporter.report('badTagName', `invalid 'tag' name: ${buf.toString('utf8', p, Math.min(eol, p + 200))}`, p)) return problems;
  }
  p = eol + 1;

  if (p >= len || !startsWithAt(buf, p, 'tagger ')) {
    // Early tags have no tagger: only informational.
    if (reporter.report('missingTaggerEntry', "invalid format - expected 'tagger' line", p)) return problems;
  } else {
    eol = endOfLine(buf, p);
    // fsck carries on after a bad tagger, so later problems are reported too.
    checkIdentity(buf, p + 7, eol, reporter);
    p = eol + 1;
  }

  if (p < len && (startsWithAt(buf, p, 'gpgsig ') || startsWithAt(buf, p, 'gpgsig-sha256 '))) {
    eol = buf.indexOf(LF, p);
    if (eol < 0) {
      reporter.report('badGpgsig', "invalid format - unexpected end after 'gpgsig' or 'gpgsig-sha256' line", p);
      return problems;
    }
    p = eol + 1;
    while (p < len && buf[p] === 0x20) {
      eol = buf.indexOf(LF, p);
      if (eol < 0) {
        reporter.report('badHeaderContinuation', "invalid format - unexpected end in 'gpgsig' or 'gpgsig-sha256' continuation line", p);
        return problems;
      }
      p = eol + 1;
    }
  }

  if (p < len && buf[p] !== LF) {
    // Unknown headers pass verify_headers(); git mktag raises this to an error.
    reporter.report('extraHeaderEntry', "invalid format - extra header(s) after 'tagger'", p);
  }
  return problems;
}

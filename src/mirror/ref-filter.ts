// Which refs a mirror looks at: include/exclude globs over full ref names
// ("refs/heads/*"), where `*` matches any run of characters including "/"
// (as in a refspec's pattern), `?` one character and `[...]` a class. A ref
// is mirrored when it matches an include and no exclude (exclude wins).
// packferry's own namespace refs/packferry/ is never mirrored or pruned.
import { PackferryError, ErrorCode } from '../core/errors.js';

export const DEFAULT_INCLUDE = ['refs/heads/*', 'refs/tags/*'];
export const PACKFERRY_NAMESPACE = 'refs/packferry/';

function globToRegExp(glob: string): RegExp {
  let re = '^';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const close = glob.indexOf(']', i + 2);
      if (close < 0) throw new PackferryError(ErrorCode.Usage, `bad ref pattern ${JSON.stringify(glob)}: unclosed [`);
      let body = glob.slice(i + 1, close);
      if (body.startsWith('!')) body = `^${body.slice(1)}`;
      re += `[${body.replace(/\\/g, '\\\\')}]`;
      i = close;
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`${re}$`, 's');
}

export class RefFilter {
  private readonly include: RegExp[];
  private readonly exclude: RegExp[];

  constructor(
    readonly includePatterns: string[] = DEFAULT_INCLUDE,
    readonly excludePatterns: string[] = [],
  ) {
    this.include = includePatterns.map(globToRegExp);
    this.exclude = excludePatterns.map(globToRegExp);
  }

  matches(name: string): boolean {
    if (name.startsWith(PACKFERRY_NAMESPACE)) return false;
    return this.include.some((r) => r.test(name)) && !this.exclude.some((r) => r.test(name));
  }

  /** Literal prefixes of the include patterns (for ls-refs ref-prefix), or undefined if a pattern starts with a wildcard. */
  prefixes(): string[] | undefined {
    const out: string[] = [];
    for (const p of this.includePatterns) {
      const wild = p.search(/[*?[]/);
      const prefix = wild < 0 ? p : p.slice(0, wild);
      if (prefix === '') return undefined;
      out.push(prefix);
    }
    return out;
  }
}

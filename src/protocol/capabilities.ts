// Capability lists (gitprotocol-capabilities): v0/v1 send them after a NUL
// on the first ref line, space-separated, `name` or `name=value` (symref may
// repeat); v2 sends one per pkt-line, where a command's value lists the
// features it supports (`fetch=shallow wait-for-done filter`).

export class Capabilities {
  private readonly map = new Map<string, string[]>();

  constructor(entries: Iterable<[string, string | undefined]> = []) {
    for (const [name, value] of entries) this.add(name, value);
  }

  /** Parses a v0/v1 capability string ("multi_ack thin-pack symref=HEAD:refs/heads/main ..."). */
  static parseV0(text: string): Capabilities {
    const caps = new Capabilities();
    for (const word of text.split(' ')) {
      if (word === '') continue;
      const eq = word.indexOf('=');
      caps.add(eq < 0 ? word : word.slice(0, eq), eq < 0 ? undefined : word.slice(eq + 1));
    }
    return caps;
  }

  add(name: string, value?: string): void {
    const list = this.map.get(name);
    if (list) {
      if (value !== undefined) list.push(value);
    } else {
      this.map.set(name, value === undefined ? [] : [value]);
    }
  }

  has(name: string): boolean {
    return this.map.has(name);
  }

  /** The (first) value of `name=value`, or undefined. */
  get(name: string): string | undefined {
    return this.map.get(name)?.[0];
  }

  /** Every value given for `name` (symref can repeat). */
  all(name: string): string[] {
    return this.map.get(name) ?? [];
  }

  /** v2: does the command `name` list `feature` (e.g. fetch=shallow filter)? */
  hasFeature(name: string, feature: string): boolean {
    const value = this.get(name);
    return value !== undefined && value.split(' ').includes(feature);
  }

  names(): string[] {
    return [...this.map.keys()];
  }

  toString(): string {
    const parts: string[] = [];
    for (const [name, values] of this.map) {
      if (values.length === 0) parts.push(name);
      for (const v of values) parts.push(`${name}=${v}`);
    }
    return parts.join(' ');
  }
}

/** What packferry calls itself in `agent=` (servers log it; git/ prefix keeps servers treating us as Git). */
export const AGENT = 'git/2.39-packferry-0.1';
